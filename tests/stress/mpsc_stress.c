/* mpsc_stress.c - many producers, one sleeping consumer, on shard/mpsc.
 *
 * P producer threads each push N sequence-numbered nodes, as single pushes,
 * hand-linked chains and batches of random length, pausing now and then so
 * that the consumer runs dry and goes to sleep often. Some bursts are
 * synchronous: the producer waits until the consumer has taken them, so
 * that a lost wake-up stalls the run instead of being rescued by the next
 * push. The consumer drains
 * the queue and sleeps with the wake protocol, on a semaphore standing in
 * for io_uring_submit_and_wait (producers sem_post() when need_wake says
 * so). Checked:
 *  - per-producer FIFO: each producer's sequence numbers arrive in order,
 *    so nothing is lost, duplicated or reordered;
 *  - every node arrives (the run ends only when all P*N did);
 *  - no lost wake-up: the consumer never sits asleep for long while the
 *    queue holds something (a timed wait that expires with a non-empty
 *    queue is a failure);
 *  - at most one wake-up per announced sleep.
 * Run it under ThreadSanitizer (make tsan) to check the memory ordering.
 *
 * Usage: mpsc_stress [N_PER_PRODUCER [PRODUCERS]]; or set
 * SMQ_STRESS_N / SMQ_STRESS_P. Defaults are smaller under TSan.
 * Exit: 0 pass, 1 fail, 77 skip (threads could not be created).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shard/mpsc.h"

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

#ifdef UNDER_TSAN
#define DEFAULT_N 100000
#else
#define DEFAULT_N 200000
#endif
#define DEFAULT_P 8
#define MAX_P 64
#define MAX_CHAIN 8
#define DEADLINE_S 60		/* the whole run; a hang is a failure */
#define LOST_WAKE_MS 2000	/* asleep this long with items queued = lost */

struct item {
	struct smq_mpsc_node node;
	uint32_t producer;
	uint32_t seq;
	int popped;		/* written by the consumer only */
};

struct producer {
	pthread_t thread;
	uint32_t id;
	uint32_t n;
	uint64_t rng;
	struct item *items;
	unsigned wakes;		/* wake-ups this producer sent */
};

static struct smq_mpsc inbox;
static sem_t wake_sem;
static atomic_uint producers_done;
static _Atomic uint32_t taken[MAX_P];	/* per producer: nodes the consumer took */

static uint32_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return (uint32_t)(*s >> 16);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void maybe_pause(struct producer *p)
{
	uint32_t r = rnd(&p->rng) % 64;

	if (r == 0) {
		struct timespec ts = { 0, 20000 + (long)(rnd(&p->rng) % 80000) };

		nanosleep(&ts, NULL);
	} else if (r < 4) {
		sched_yield();
	}
}

/* Push items [seq, seq+len) of @p in one of three ways. */
static void push_some(struct producer *p, uint32_t seq, uint32_t len)
{
	struct item *it = &p->items[seq];
	uint32_t how = rnd(&p->rng) % 3;

	for (uint32_t i = 0; i < len; i++) {
		it[i].producer = p->id;
		it[i].seq = seq + i;
		it[i].popped = 0;
	}
	if (len == 1 || how == 0) {
		for (uint32_t i = 0; i < len; i++)
			smq_mpsc_push(&inbox, &it[i].node);
	} else if (how == 1) {
		for (uint32_t i = 0; i + 1 < len; i++)
			smq_mpsc_link(&it[i].node, &it[i + 1].node);
		smq_mpsc_push_chain(&inbox, &it[0].node, &it[len - 1].node);
	} else {
		struct smq_mpsc_batch b;

		smq_mpsc_batch_init(&b);
		for (uint32_t i = 0; i < len; i++)
			smq_mpsc_batch_add(&b, &it[i].node);
		smq_mpsc_batch_push(&inbox, &b);
	}
	if (smq_mpsc_need_wake(&inbox)) {
		p->wakes++;
		sem_post(&wake_sem);
	}
}

/* Wait until the consumer took everything this producer pushed. Bounded
 * by the consumer, which fails the run on a lost wake-up. */
static void wait_taken(struct producer *p, uint32_t seq)
{
	while (atomic_load_explicit(&taken[p->id], memory_order_acquire) < seq)
		sched_yield();
}

static void *producer_main(void *arg)
{
	struct producer *p = arg;
	uint32_t seq = 0;

	while (seq < p->n) {
		uint32_t len = 1 + rnd(&p->rng) % MAX_CHAIN;

		if (len > p->n - seq)
			len = p->n - seq;
		push_some(p, seq, len);
		seq += len;
		if (rnd(&p->rng) % 16 == 0)
			wait_taken(p, seq);
		else
			maybe_pause(p);
	}
	atomic_fetch_add(&producers_done, 1);
	return NULL;
}

struct consumer {
	unsigned nprod;
	uint32_t n;
	uint32_t *expect;	/* next sequence number per producer */
	uint64_t received;
	unsigned sleeps_announced;	/* prepare_sleep calls */
	unsigned sleeps;		/* prepare_sleep said yes */
	unsigned in_flight_retries;
	unsigned spurious;
};

static int check_item(struct consumer *c, struct item *it)
{
	if (it->producer >= c->nprod) {
		fprintf(stderr, "FAIL: node from unknown producer %u\n", it->producer);
		return -1;
	}
	if (it->popped) {
		fprintf(stderr, "FAIL: producer %u seq %u popped twice\n", it->producer, it->seq);
		return -1;
	}
	if (it->seq != c->expect[it->producer]) {
		fprintf(stderr, "FAIL: producer %u: got seq %u, expected %u\n", it->producer,
			it->seq, c->expect[it->producer]);
		return -1;
	}
	it->popped = 1;
	c->expect[it->producer]++;
	c->received++;
	atomic_store_explicit(&taken[it->producer], c->expect[it->producer], memory_order_release);
	return 0;
}

/* Block until a producer posts. Returns 0 when woken, 1 on a quiet timeout
 * that proves nothing, -1 on a lost wake-up. */
static int sleep_on_inbox(struct consumer *c)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);	/* sem_timedwait's clock */
	ts.tv_sec += LOST_WAKE_MS / 1000;
	while (sem_timedwait(&wake_sem, &ts) != 0) {
		if (errno == EINTR)
			continue;
		if (!smq_mpsc_empty(&inbox)) {
			fprintf(stderr, "FAIL: lost wake-up: asleep %d ms with items queued "
				"(%llu received)\n", LOST_WAKE_MS, (unsigned long long)c->received);
			return -1;
		}
		return 1;
	}
	return 0;
}

static int consume(struct consumer *c, uint64_t total)
{
	uint64_t deadline = now_ms() + DEADLINE_S * 1000;
	struct smq_mpsc_node *n;

	while (c->received < total) {
		while ((n = smq_mpsc_pop(&inbox)))
			if (check_item(c, (struct item *)n))
				return -1;
		if (now_ms() > deadline) {
			fprintf(stderr, "FAIL: %llu of %llu nodes after %d s\n",
				(unsigned long long)c->received, (unsigned long long)total,
				DEADLINE_S);
			return -1;
		}
		if (c->received == total)
			break;
		if (!smq_mpsc_empty(&inbox)) {
			c->in_flight_retries++;	/* a producer is mid-push */
			sched_yield();
			continue;
		}
		if (c->received % 8 == 0)
			sched_yield();	/* other loop work between drain and sleep */
		c->sleeps_announced++;
		if (!smq_mpsc_prepare_sleep(&inbox))
			continue;
		c->sleeps++;
		int r = sleep_on_inbox(c);
		smq_mpsc_woke(&inbox);
		if (r < 0)
			return -1;
		if (r == 0 && smq_mpsc_empty(&inbox))
			c->spurious++;
		if (r == 1 && atomic_load(&producers_done) == c->nprod && smq_mpsc_empty(&inbox)) {
			fprintf(stderr, "FAIL: producers done, queue empty, %llu of %llu nodes\n",
				(unsigned long long)c->received, (unsigned long long)total);
			return -1;
		}
	}
	return 0;
}

static unsigned long arg_or_env(int argc, char **argv, int i, const char *env, unsigned long def)
{
	const char *s = argc > i ? argv[i] : getenv(env);

	return s && *s ? strtoul(s, NULL, 10) : def;
}

static int verify_end(struct consumer *c, struct producer *prods, unsigned nprod)
{
	unsigned wakes = 0;

	for (unsigned i = 0; i < nprod; i++) {
		wakes += prods[i].wakes;
		if (c->expect[i] != c->n) {
			fprintf(stderr, "FAIL: producer %u: %u of %u nodes\n", i, c->expect[i],
				c->n);
			return -1;
		}
	}
	if (!smq_mpsc_empty(&inbox) || smq_mpsc_pop(&inbox)) {
		fprintf(stderr, "FAIL: queue not empty at the end\n");
		return -1;
	}
	if (wakes > c->sleeps_announced) {
		fprintf(stderr, "FAIL: %u wake-ups for %u announced sleeps\n", wakes,
			c->sleeps_announced);
		return -1;
	}
	printf("mpsc_stress: %u producers x %u nodes ok; %u sleeps (%u announced), %u wake-ups, "
	       "%u spurious, %u in-flight retries\n", nprod, c->n, c->sleeps,
	       c->sleeps_announced, wakes, c->spurious, c->in_flight_retries);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned long n = arg_or_env(argc, argv, 1, "SMQ_STRESS_N", DEFAULT_N);
	unsigned long np = arg_or_env(argc, argv, 2, "SMQ_STRESS_P", DEFAULT_P);
	struct producer prods[MAX_P];
	struct consumer c = { 0 };
	unsigned started = 0;
	int ret = 1;

	if (n < 1 || n > UINT32_MAX / 2 || np < 1 || np > MAX_P) {
		fprintf(stderr, "usage: mpsc_stress [N 1..2^31 [PRODUCERS 1..%d]]\n", MAX_P);
		return 1;
	}
	smq_mpsc_init(&inbox);
	if (sem_init(&wake_sem, 0, 0))
		return 77;
	c.nprod = (unsigned)np;
	c.n = (uint32_t)n;
	c.expect = calloc(np, sizeof(*c.expect));
	if (!c.expect)
		goto out_sem;
	for (unsigned i = 0; i < np; i++) {
		prods[i] = (struct producer){ .id = i, .n = (uint32_t)n };
		prods[i].rng = 0x9e3779b97f4a7c15ull * (i + 1);
		prods[i].items = calloc(n, sizeof(struct item));
		if (!prods[i].items)
			goto out_join;
		if (pthread_create(&prods[i].thread, NULL, producer_main, &prods[i])) {
			free(prods[i].items);
			ret = 77;
			goto out_join;
		}
		started++;
	}
	ret = consume(&c, (uint64_t)n * np) || verify_end(&c, prods, (unsigned)np) ? 1 : 0;
	if (ret)
		exit(1);	/* producers may be stuck on a broken queue: don't join */
out_join:
	for (unsigned i = 0; i < started; i++) {
		pthread_join(prods[i].thread, NULL);
		free(prods[i].items);
	}
	free(c.expect);
out_sem:
	sem_destroy(&wake_sem);
	return ret;
}
