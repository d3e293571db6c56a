/* interest_stress.c - cross-shard interest propagation, as the broker does it,
 * on core/interest over shard/mpsc.
 *
 * S threads stand in for shards. Each owns one interest replica and one
 * inbox, and keeps a local subscriber count per filter (a fixed alphabet of
 * about 50 filters with '+', '#', "$SYS" and "$share/g/" forms). It makes
 * random subscribe / unsubscribe steps on its own counts; on a 0 -> 1 or
 * 1 -> 0 transition it updates its own replica at once and sends an interest
 * message (a malloc'd copy of the filter, its shard id, the present flag) to
 * every other shard, batched per destination per loop turn and pushed with
 * one exchange, then wakes a sleeping destination (a futex whose word is only
 * touched with relaxed atomics, so that, like MSG_RING, the wake-up itself
 * gives ThreadSanitizer no happens-before edge: the inbox must carry it).
 * Between turns a shard drains its inbox and applies what it pops, and now
 * and then naps with the inbox's sleep protocol. "Blip" filters are only
 * ever subscribed and at once unsubscribed (sometimes across a flush), so
 * their present/absent pair must arrive in order for them to end absent.
 *
 * Checked:
 *  - per-producer FIFO: every message carries a per (source, destination)
 *    sequence number, and arrives exactly once and in order;
 *  - FIFO is what makes replicas converge: now and then a shard sends a probe
 *    carrying its whole local set; when the probe is popped, the receiver's
 *    replica must show exactly that set for the sender (everything sent
 *    before it has been applied, nothing sent after it has);
 *  - the end: each shard's last message is DONE with its final set; after
 *    the run every inbox is empty, every replica holds exactly the pairs
 *    (filter, shard) of the final local sets (hence they are identical, and
 *    every blip filter is absent), and for a few thousand random topics
 *    smq_interest_match() and the shared groups of smq_interest_match_ex()
 *    on every replica equal the naive answer from smq_topic_match();
 *  - no lost wake-up (a shard asleep for LOST_WAKE_MS with mail is a
 *    failure), at most one wake-up per announced sleep, no hang (deadline).
 * Run it under ThreadSanitizer (make tsan) to check the memory ordering.
 *
 * Usage: interest_stress [OPS_PER_SHARD [SHARDS [SEED]]]; or set SMQ_STRESS_N /
 * SMQ_STRESS_S / SMQ_STRESS_SEED. Defaults: 4 shards, 100000 operations each
 * (10000 under TSan), about a second either way.
 * Exit: 0 pass, 1 fail, 77 skip (threads could not be created).
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "core/codec.h"
#include "core/subtree.h"
#include "core/topic.h"
#include "core/interest.h"
#include "shard/mpsc.h"

#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UNDER_TSAN 1
#endif
#endif

#ifdef UNDER_TSAN
#define DEFAULT_N 10000
#else
#define DEFAULT_N 100000
#endif
#define DEFAULT_S 4
#define MAX_S 16
#define MAX_COUNT 3		/* local subscribers per filter at most */
#define MAX_TURN_OPS 8		/* operations per loop turn: 1..this */
#define NTOPICS 3000		/* random topics in the final check */
#define MIN_HITS_OPS 1000	/* from this many ops on, >= 10% of the topics must
				 * be wanted by some shards but not all */
#define DEADLINE_S 60		/* the whole run; a hang is a failure */
#define LOST_WAKE_MS 2000	/* asleep this long with mail queued = lost */
#define NAP_NS 100000		/* a nap in the middle of the run (a timer) */

/* The alphabet. The last NBLIP are the blip-only filters. At most 64, so
 * that a shard's local set is one uint64_t. */
static const char *const filter_text[] = {
	"#", "+", "+/+", "+/#", "/#", "/+", "+/", "a", "a/", "a/#", "a/+", "a/b",
	"a/b/#", "a/b/c", "a/+/c", "a/b/+", "a/+/+", "a//b", "a/+/#", "+/b", "+/b/#",
	"+/+/c", "+/+/+", "+/+/+/#", "b", "b/#", "b/+", "b/+/c", "b/c/d", "c/+",
	"c/c/c", "c/#", "d/+/+/+", "a/b/c/d", "+/b/+/d", "$SYS/#", "$SYS/+",
	"$SYS/a/+", "$SYS/a/b", "$share/g1/a/#", "$share/g1/+/b", "$share/g2/a/#",
	"$share/g2/#", "$share/g3/a/b", "$share/g3/+/+/c",
	/* blip-only */
	"z/#", "+/z", "a/z", "$share/gz/z/+",
};
#define NFILTERS (sizeof(filter_text) / sizeof(filter_text[0]))
#define NBLIP 4u
#define NREG (NFILTERS - NBLIP)
_Static_assert(NFILTERS <= 64, "a local set is one uint64_t");

/* Topic levels for the final check ("$SYS" only ever first). */
static const char *const level_text[] = { "a", "b", "c", "d", "z", "" };
#define NLEVELS (sizeof(level_text) / sizeof(level_text[0]))

struct filter {
	struct smq_str s;	/* the full filter */
	bool shared;
	struct smq_str group;	/* shared only */
	struct smq_str inner;	/* what topics are matched against */
};

static struct filter filters[NFILTERS];

enum { M_INTEREST, M_PROBE, M_DONE };

struct imsg {
	struct smq_mpsc_node node;	/* first: a node is a message */
	uint8_t kind;
	bool present;		/* M_INTEREST */
	uint16_t src;
	uint32_t seq;		/* per (src, destination), from 0 */
	uint32_t len;		/* M_INTEREST: the filter copy */
	uint8_t *filter;
	uint64_t set;		/* M_PROBE, M_DONE: the sender's local set */
};

struct shard {
	struct smq_mpsc inbox;
	atomic_uint futex;		/* wake-up word, relaxed only */
	atomic_uint wakes_in;		/* wake-ups others sent to this shard */
	pthread_t thread;
	unsigned id;
	uint64_t rng;
	uint32_t nops;
	struct smq_interest *ix;
	struct smq_mpsc_batch out[MAX_S];
	uint32_t sent_seq[MAX_S];	/* next sequence number per destination */
	uint32_t recv_seq[MAX_S];	/* next expected per source */
	uint8_t count[NFILTERS];	/* local subscribers per filter */
	uint64_t local;			/* bit f set iff count[f] > 0 */
	unsigned done_from;		/* DONE messages popped */
	/* statistics */
	uint64_t transitions, popped, probes, blips;
	unsigned sleeps_announced, sleeps, naps, in_flight;
};

static struct shard shards[MAX_S];
static unsigned nshards;
static atomic_int failed;
static uint64_t deadline_ms;
static unsigned topic_hits;	/* final check: topics some shards wanted */

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

static long futex(atomic_uint *word, int op, unsigned val, const struct timespec *ts)
{
	return syscall(SYS_futex, (unsigned *)word, op, val, ts, NULL, 0);
}

static void wake_shard(struct shard *to)
{
	atomic_fetch_add_explicit(&to->futex, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&to->wakes_in, 1, memory_order_relaxed);
	futex(&to->futex, FUTEX_WAKE_PRIVATE, 1, NULL);
}

/* Make every shard thread leave its loop soon. */
static void stop_all(void)
{
	atomic_store(&failed, 1);
	for (unsigned i = 0; i < nshards; i++) {
		atomic_fetch_add_explicit(&shards[i].futex, 1, memory_order_relaxed);
		futex(&shards[i].futex, FUTEX_WAKE_PRIVATE, 1, NULL);
	}
}

/* Report a failure (the first one only: the others are mostly echoes of
 * it) and stop the run. */
static void fail(const char *fmt, ...)
{
	static atomic_int reported;
	char buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (!atomic_exchange(&reported, 1))
		fprintf(stderr, "FAIL: %s\n", buf);
	stop_all();
}

static bool stopped(void)
{
	return atomic_load_explicit(&failed, memory_order_relaxed) != 0;
}

/* ---- sending ------------------------------------------------------------ */

static void send_to(struct shard *s, unsigned to, struct imsg *m)
{
	m->src = (uint16_t)s->id;
	m->seq = s->sent_seq[to]++;
	smq_mpsc_batch_add(&s->out[to], &m->node);
}

/* One interest message per other shard, each with its own filter copy (the
 * broker's io_interest() does the same). */
static void broadcast_interest(struct shard *s, unsigned f, bool present)
{
	for (unsigned to = 0; to < nshards; to++) {
		struct imsg *m;

		if (to == s->id)
			continue;
		m = calloc(1, sizeof(*m));
		if (!m || !(m->filter = malloc(filters[f].s.len))) {
			fprintf(stderr, "interest_stress: out of memory\n");
			exit(1);
		}
		memcpy(m->filter, filters[f].s.p, filters[f].s.len);
		m->len = filters[f].s.len;
		m->kind = M_INTEREST;
		m->present = present;
		send_to(s, to, m);
	}
}

/* A probe or DONE, with the current local set, to every other shard. */
static void broadcast_set(struct shard *s, uint8_t kind)
{
	for (unsigned to = 0; to < nshards; to++) {
		struct imsg *m;

		if (to == s->id)
			continue;
		m = calloc(1, sizeof(*m));
		if (!m) {
			fprintf(stderr, "interest_stress: out of memory\n");
			exit(1);
		}
		m->kind = kind;
		m->set = s->local;
		send_to(s, to, m);
	}
}

/* End of a loop turn: one push per destination, one wake-up per sleeper. */
static void flush(struct shard *s)
{
	for (unsigned to = 0; to < nshards; to++) {
		struct smq_mpsc *q = &shards[to].inbox;

		if (smq_mpsc_batch_push(q, &s->out[to]) && smq_mpsc_need_wake(q))
			wake_shard(&shards[to]);
	}
}

/* ---- local subscriptions ------------------------------------------------ */

static void transition(struct shard *s, unsigned f, bool present)
{
	int ret = smq_interest_set(s->ix, filters[f].s, s->id, present);

	if (ret)
		fail("shard %u: own update of \"%s\" returned %d", s->id, filter_text[f], ret);
	if (present)
		s->local |= 1ull << f;
	else
		s->local &= ~(1ull << f);
	s->transitions++;
	broadcast_interest(s, f, present);
}

static void subscribe(struct shard *s, unsigned f)
{
	if (s->count[f]++ == 0)
		transition(s, f, true);
}

static void unsubscribe(struct shard *s, unsigned f)
{
	if (--s->count[f] == 0)
		transition(s, f, false);
}

/* A random step on a random filter. The walk leans towards fewer
 * subscribers (about a third of the filters held at any time), so that the
 * final sets, and the masks of the final check, differ between shards. */
static void random_op(struct shard *s)
{
	unsigned f = rnd(&s->rng) % NREG, r = rnd(&s->rng) % 4;

	if (s->count[f] == 0) {
		if (r == 0)
			subscribe(s, f);
	} else if (s->count[f] == MAX_COUNT || r != 0) {
		unsubscribe(s, f);
	} else {
		subscribe(s, f);
	}
}

/* After the last turn: drop every subscriber of about 3 in 4 ordinary
 * filters held, a burst of 1 -> 0 transitions right before DONE. Shared
 * filters stay, so that the final check sees groups that the ordinary
 * filters of the same shard do not cover. */
static void thin_out(struct shard *s)
{
	for (unsigned f = 0; f < NREG; f++)
		if (s->count[f] && !filters[f].shared && rnd(&s->rng) % 4 != 0)
			while (s->count[f])
				unsubscribe(s, f);
}

/* Subscribe and unsubscribe at once; sometimes the two land in different
 * pushes (a loop turn ends in between). */
static void blip(struct shard *s)
{
	unsigned f = NREG + rnd(&s->rng) % NBLIP;

	subscribe(s, f);
	if (rnd(&s->rng) % 4 == 0)
		flush(s);
	unsubscribe(s, f);
	s->blips++;
}

/* ---- receiving ---------------------------------------------------------- */

/* Does @s's replica show exactly @set for shard @src? */
static bool view_is(struct shard *s, unsigned src, uint64_t set, const char *when)
{
	for (unsigned f = 0; f < NFILTERS; f++) {
		bool want = (set >> f) & 1, got = smq_interest_has(s->ix, filters[f].s, src);

		if (got != want) {
			fail("shard %u, %s: replica has (\"%s\", shard %u) %s, shard %u had "
			     "it %s%s", s->id, when, filter_text[f], src,
			     got ? "present" : "absent", src, want ? "present" : "absent",
			     f >= NREG ? " (a blip filter)" : "");
			return false;
		}
	}
	return true;
}

static void handle(struct shard *s, struct imsg *m)
{
	int ret;

	if (m->src >= nshards || m->src == s->id || m->seq != s->recv_seq[m->src]) {
		fail("shard %u: message from shard %u seq %u, expected seq %u (lost, duplicated "
		     "or reordered)", s->id, m->src, m->seq,
		     m->src < nshards ? s->recv_seq[m->src] : 0);
		return;
	}
	s->recv_seq[m->src]++;
	s->popped++;
	if (m->kind == M_INTEREST) {
		ret = smq_interest_set(s->ix, (struct smq_str){ m->filter, m->len }, m->src,
				       m->present);
		if (ret)
			fail("shard %u: applying an update from shard %u returned %d", s->id,
			     m->src, ret);
	} else {
		view_is(s, m->src, m->set, m->kind == M_PROBE ? "at a probe" : "at DONE");
		s->probes += m->kind == M_PROBE;
		s->done_from += m->kind == M_DONE;
	}
}

static void drain(struct shard *s)
{
	struct smq_mpsc_node *n;

	while (!stopped() && (n = smq_mpsc_pop(&s->inbox))) {
		struct imsg *m = (struct imsg *)n;

		handle(s, m);
		free(m->filter);
		free(m);
	}
}

/* Sleep with the inbox protocol for at most @ns. @strict: nothing else will
 * wake us, so a timeout with mail queued is a lost wake-up. */
static void sleep_on_inbox(struct shard *s, long ns, bool strict)
{
	unsigned seen = atomic_load_explicit(&s->futex, memory_order_relaxed);
	struct timespec ts = { ns / 1000000000, ns % 1000000000 };
	long r;
	int err = 0;

	s->sleeps_announced++;
	if (!smq_mpsc_prepare_sleep(&s->inbox))
		return;
	s->sleeps++;
	do {
		r = futex(&s->futex, FUTEX_WAIT_PRIVATE, seen, &ts);
		err = r < 0 ? errno : 0;
	} while (err == EINTR);
	smq_mpsc_woke(&s->inbox);
	if (strict && err == ETIMEDOUT && !smq_mpsc_empty(&s->inbox) && !stopped())
		fail("shard %u: lost wake-up: asleep %d ms with mail queued", s->id,
		     LOST_WAKE_MS);
}

/* ---- the shard loop ----------------------------------------------------- */

static void turn(struct shard *s, uint32_t nops)
{
	drain(s);
	for (uint32_t i = 0; i < nops; i++) {
		if (rnd(&s->rng) % 16 == 0)
			blip(s);
		else
			random_op(s);
	}
	if (rnd(&s->rng) % 8 == 0) {
		view_is(s, s->id, s->local, "own entries");
		broadcast_set(s, M_PROBE);
	}
	flush(s);
	if (rnd(&s->rng) % 32 == 0 && smq_mpsc_empty(&s->inbox)) {
		s->naps++;
		sleep_on_inbox(s, NAP_NS, false);
	} else if (rnd(&s->rng) % 8 == 0) {
		sched_yield();
	}
}

static bool past_deadline(struct shard *s)
{
	if (now_ms() < deadline_ms)
		return false;
	fail("shard %u: still running after %d s (%u of %u DONE)", s->id, DEADLINE_S,
	     s->done_from, nshards - 1);
	return true;
}

/* After its last DONE: drain until every other shard's DONE is in, sleeping
 * whenever the inbox is empty. */
static void finish(struct shard *s)
{
	while (!stopped() && s->done_from < nshards - 1 && !past_deadline(s)) {
		drain(s);
		if (s->done_from == nshards - 1)
			break;
		if (!smq_mpsc_empty(&s->inbox)) {
			s->in_flight++;		/* a producer is mid-push */
			sched_yield();
			continue;
		}
		sleep_on_inbox(s, LOST_WAKE_MS * 1000000l, true);
	}
}

static void *shard_main(void *arg)
{
	struct shard *s = arg;
	uint32_t done = 0;

	while (done < s->nops && !stopped() && !past_deadline(s)) {
		uint32_t n = 1 + rnd(&s->rng) % MAX_TURN_OPS;

		if (n > s->nops - done)
			n = s->nops - done;
		turn(s, n);
		done += n;
	}
	thin_out(s);
	broadcast_set(s, M_DONE);
	flush(s);
	finish(s);
	return NULL;
}

/* ---- the final check ---------------------------------------------------- */

static bool replicas_exact(void)
{
	size_t pairs = 0;

	for (unsigned o = 0; o < nshards; o++)
		pairs += (size_t)__builtin_popcountll(shards[o].local);
	for (unsigned r = 0; r < nshards; r++) {
		struct shard *s = &shards[r];

		if (!smq_mpsc_empty(&s->inbox) || smq_mpsc_pop(&s->inbox)) {
			fail("shard %u: inbox not empty after the run", r);
			return false;
		}
		for (unsigned o = 0; o < nshards; o++)
			if (!view_is(s, o, shards[o].local, "after the run"))
				return false;
		if (smq_interest_count(s->ix) != pairs) {
			fail("shard %u: replica holds %zu pairs, the shards %zu", r,
			     smq_interest_count(s->ix), pairs);
			return false;
		}
	}
	return true;
}

static size_t random_topic(uint64_t *rng, char *buf)
{
	size_t len = 0;
	unsigned nlev = 1 + rnd(rng) % 5;

	if (rnd(rng) % 8 == 0)
		len += (size_t)sprintf(buf, "$SYS/");
	for (unsigned i = 0; i < nlev; i++) {
		const char *l = level_text[rnd(rng) % NLEVELS];

		len += (size_t)sprintf(buf + len, i ? "/%s" : "%s", l);
	}
	if (len == 0)		/* a topic name is at least one byte */
		len = (size_t)sprintf(buf, "a");
	return len;
}

/* The naive answer: ordinary shard mask, and per shared filter the mask of
 * shards holding it (0 if the inner filter does not match @topic). */
static uint64_t naive(struct smq_str topic, uint64_t *shared_mask)
{
	uint64_t mask = 0;

	for (unsigned f = 0; f < NFILTERS; f++) {
		uint64_t holders = 0;

		for (unsigned o = 0; o < nshards; o++)
			holders |= ((shards[o].local >> f) & 1) << o;
		if (!smq_topic_match(filters[f].inner, topic))
			holders = 0;
		shared_mask[f] = filters[f].shared ? holders : 0;
		if (!filters[f].shared)
			mask |= holders;
	}
	return mask;
}

static bool str_eq(struct smq_str a, struct smq_str b)
{
	return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

/* The shared groups of a match_ex answer against the naive masks. */
static bool groups_ok(const struct smq_interest_groups *gs, const uint64_t *want,
		      unsigned r, const char *topic)
{
	unsigned nwant = 0;

	for (unsigned f = 0; f < NFILTERS; f++)
		nwant += want[f] != 0;
	for (uint32_t i = 0; i < gs->n; i++) {
		unsigned f;

		for (f = 0; f < NFILTERS; f++)
			if (filters[f].shared && str_eq(filters[f].group, gs->v[i].group) &&
			    str_eq(filters[f].inner, gs->v[i].filter))
				break;
		if (f == NFILTERS || gs->v[i].shards != want[f]) {
			fail("shard %u: topic \"%s\": shared group %u has shards %#llx, want %#llx",
			     r, topic, i, (unsigned long long)gs->v[i].shards,
			     (unsigned long long)(f < NFILTERS ? want[f] : 0));
			return false;
		}
	}
	if (gs->n != nwant)
		fail("shard %u: topic \"%s\": %u shared groups, want %u", r, topic, gs->n, nwant);
	return gs->n == nwant;
}

static bool topic_ok(struct smq_str t, const char *text, struct smq_match *m,
		     struct smq_interest_groups *gs, unsigned *hits)
{
	uint64_t want_shared[NFILTERS], want = naive(t, want_shared), got, got_ex;

	/* a topic that some but not all shards want tells replicas apart */
	*hits += want != 0 && want != (~0ull >> (64 - nshards));
	for (unsigned r = 0; r < nshards; r++) {
		got = smq_interest_match(shards[r].ix, t, m);
		if (smq_interest_match_ex(shards[r].ix, t, NULL, 0, m, &got_ex, gs)) {
			fail("shard %u: match_ex out of memory", r);
			return false;
		}
		if (got != want || got_ex != want) {
			fail("shard %u: topic \"%s\": match %#llx / %#llx, want %#llx", r, text,
			     (unsigned long long)got, (unsigned long long)got_ex,
			     (unsigned long long)want);
			return false;
		}
		if (!groups_ok(gs, want_shared, r, text))
			return false;
	}
	return true;
}

static bool topics_ok(uint64_t seed, unsigned long nops)
{
	struct smq_match m;
	struct smq_interest_groups gs;
	uint64_t rng = seed ^ 0x5851f42d4c957f2dull;
	unsigned hits = 0, i;
	char buf[64];

	smq_match_init(&m);
	smq_interest_groups_init(&gs);
	for (i = 0; i < NTOPICS; i++) {
		size_t len = random_topic(&rng, buf);

		if (!topic_ok((struct smq_str){ (const uint8_t *)buf, (uint32_t)len }, buf, &m,
			      &gs, &hits))
			break;
	}
	smq_interest_groups_fini(&gs);
	smq_match_fini(&m);
	topic_hits = hits;
	if (i == NTOPICS && nops >= MIN_HITS_OPS && hits < NTOPICS / 10)
		fail("only %u of %u topics wanted by some but not all shards: the check "
		     "proves little", hits, NTOPICS);
	return !stopped();
}

static bool wakes_ok(void)
{
	for (unsigned i = 0; i < nshards; i++) {
		unsigned w = atomic_load(&shards[i].wakes_in);

		if (w > shards[i].sleeps_announced) {
			fail("shard %u: %u wake-ups for %u announced sleeps", i, w,
			     shards[i].sleeps_announced);
			return false;
		}
	}
	return true;
}

/* ---- setup -------------------------------------------------------------- */

static bool filters_init(void)
{
	for (unsigned f = 0; f < NFILTERS; f++) {
		struct filter *fl = &filters[f];
		int r;

		fl->s = (struct smq_str){ (const uint8_t *)filter_text[f],
					  (uint32_t)strlen(filter_text[f]) };
		fl->inner = fl->s;
		r = smq_topic_parse_shared(fl->s, &fl->group, &fl->inner);
		fl->shared = r == 0;
		if (r < 0 || !smq_topic_filter_valid(fl->s)) {
			fprintf(stderr, "interest_stress: bad filter \"%s\" in the alphabet\n",
				filter_text[f]);
			return false;
		}
	}
	return true;
}

static unsigned long arg_or_env(int argc, char **argv, int i, const char *env, unsigned long def)
{
	const char *s = argc > i ? argv[i] : getenv(env);

	return s && *s ? strtoul(s, NULL, 0) : def;
}

static void report(unsigned long n, uint64_t seed)
{
	uint64_t tr = 0, msgs = 0, probes = 0, blips = 0;
	unsigned sleeps = 0, ann = 0, naps = 0, wakes = 0, infl = 0;

	for (unsigned i = 0; i < nshards; i++) {
		struct shard *s = &shards[i];

		tr += s->transitions;
		msgs += s->popped;
		probes += s->probes;
		blips += s->blips;
		sleeps += s->sleeps;
		ann += s->sleeps_announced;
		naps += s->naps;
		infl += s->in_flight;
		wakes += atomic_load(&s->wakes_in);
	}
	printf("interest_stress: %u shards x %lu ops ok (seed %#llx): %llu transitions, "
	       "%llu messages, %llu probes, %llu blips; %u sleeps (%u announced, %u naps), "
	       "%u wake-ups, %u in-flight retries; %u of %u topics routed to some shards\n",
	       nshards, n, (unsigned long long)seed, (unsigned long long)tr,
	       (unsigned long long)msgs, (unsigned long long)probes, (unsigned long long)blips,
	       sleeps, ann, naps, wakes, infl, topic_hits, NTOPICS);
}

static bool shards_init(unsigned long n, uint64_t seed)
{
	for (unsigned i = 0; i < nshards; i++) {
		struct shard *s = &shards[i];

		smq_mpsc_init(&s->inbox);
		atomic_init(&s->futex, 0);
		atomic_init(&s->wakes_in, 0);
		s->id = i;
		s->nops = (uint32_t)n;
		s->rng = (seed + i + 1) * 0x9e3779b97f4a7c15ull;
		if (!s->rng)
			s->rng = 1;
		s->ix = smq_interest_new();
		if (!s->ix)
			return false;
	}
	return true;
}

int main(int argc, char **argv)
{
	unsigned long n = arg_or_env(argc, argv, 1, "SMQ_STRESS_N", DEFAULT_N);
	unsigned long ns = arg_or_env(argc, argv, 2, "SMQ_STRESS_S", DEFAULT_S);
	uint64_t seed = arg_or_env(argc, argv, 3, "SMQ_STRESS_SEED", 1);
	unsigned started = 0;
	int ret = 1;

	if (n < 1 || n > UINT32_MAX / 2 || ns < 2 || ns > MAX_S) {
		fprintf(stderr, "usage: interest_stress [OPS 1..2^31 [SHARDS 2..%d [SEED]]]\n",
			MAX_S);
		return 1;
	}
	nshards = (unsigned)ns;
	if (!filters_init())
		goto out;
	if (!shards_init(n, seed)) {
		fprintf(stderr, "interest_stress: out of memory\n");
		goto out;
	}
	deadline_ms = now_ms() + DEADLINE_S * 1000;
	for (; started < nshards; started++)
		if (pthread_create(&shards[started].thread, NULL, shard_main, &shards[started]))
			break;
	if (started < nshards) {
		fprintf(stderr, "interest_stress: could not create thread %u: skipped\n", started);
		stop_all();
		ret = 77;
	}
	for (unsigned i = 0; i < started; i++)
		pthread_join(shards[i].thread, NULL);
	if (ret == 1 && !stopped() && replicas_exact() && topics_ok(seed, n) && wakes_ok()) {
		report(n, seed);
		ret = 0;
	}
out:
	for (unsigned i = 0; i < nshards; i++)
		smq_interest_free(shards[i].ix);
	return ret;
}
