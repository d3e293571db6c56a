/* bench_trie.c - subscription trie throughput: add, match, remove.
 *
 * Topologies (N subscriptions, each with its own subscriber key; id = i / 10,
 * k = i % 10, topics are "devices/<id>/sensors/<k>" for existing ids):
 *   exact: "devices/<id>/sensors/<k>"                      1 match / topic
 *   wild:  i % 4 == 0 "devices/<id>/+/<k>"   1 "devices/<id>/#"
 *          i % 4 == 2 "+/<id>/sensors/<k>"   3 "devices/<id>/sensors/+"
 *          (about 5 matching subscriptions per topic, 3 wildcard branches
 *          per level walked)
 *
 * Usage: bench_trie [N ...]    (default: 100000 1000000)
 * Prints one line per (topology, N): best of 3 rounds per phase, and the
 * trie's heap bytes per subscription (jemalloc stats; -1 without jemalloc).
 * Single thread, like one shard.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/subtree.h"

#define NTOPICS 65536u
#define MATCHES 2000000u

struct strs {
	char *buf;
	uint32_t *off;
	uint32_t n;
};

/* The thread's CPU time, not wall time: the machine may be shared, and a
 * descheduled thread should not look slow. Cache misses still count. */
static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* jemalloc's statistics when it is the allocator (the normal build);
 * sanitizer builds link without it, then memory is not reported. */
int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
	__attribute__((weak));

static long allocated(void)
{
	uint64_t epoch = 1;
	size_t len = sizeof(epoch), bytes = 0, blen = sizeof(bytes);

	if (!mallctl || mallctl("epoch", &epoch, &len, &epoch, len) ||
	    mallctl("stats.allocated", &bytes, &blen, NULL, 0))
		return -1;
	return (long)bytes;
}

static struct smq_str get(const struct strs *s, uint32_t i)
{
	return (struct smq_str){ (const uint8_t *)s->buf + s->off[i],
				 s->off[i + 1] - s->off[i] };
}

/* Build the N filters of a topology into one buffer. */
static void make_filters(struct strs *s, uint32_t n, bool wild)
{
	uint32_t i, len = 0;
	size_t cap = (size_t)n * 40;

	s->buf = malloc(cap);
	s->off = malloc(((size_t)n + 1) * sizeof(*s->off));
	if (!s->buf || !s->off)
		abort();
	for (i = 0; i < n; i++) {
		uint32_t id = i / 10, k = i % 10;
		char *p = s->buf + len;
		size_t room = cap - len;

		s->off[i] = len;
		switch (wild ? i % 4 : 4) {
		case 0:
			len += (uint32_t)snprintf(p, room, "devices/%u/+/%u", id, k);
			break;
		case 1:
			len += (uint32_t)snprintf(p, room, "devices/%u/#", id);
			break;
		case 2:
			len += (uint32_t)snprintf(p, room, "+/%u/sensors/%u", id, k);
			break;
		case 3:
			len += (uint32_t)snprintf(p, room, "devices/%u/sensors/+", id);
			break;
		default:
			len += (uint32_t)snprintf(p, room, "devices/%u/sensors/%u", id, k);
		}
	}
	s->off[n] = len;
	s->n = n;
}

static void make_topics(struct strs *s, uint32_t nsubs)
{
	uint64_t x = 88172645463325252ull;
	uint32_t i, len = 0;
	size_t cap = (size_t)NTOPICS * 40;

	s->buf = malloc(cap);
	s->off = malloc((NTOPICS + 1) * sizeof(*s->off));
	if (!s->buf || !s->off)
		abort();
	for (i = 0; i < NTOPICS; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		s->off[i] = len;
		len += (uint32_t)snprintf(s->buf + len, cap - len, "devices/%u/sensors/%u",
					  (uint32_t)(x % (nsubs / 10)), (uint32_t)(x >> 32) % 10);
	}
	s->off[NTOPICS] = len;
	s->n = NTOPICS;
}

static void strs_free(struct strs *s)
{
	free(s->buf);
	free(s->off);
}

static double best(double a, double b)
{
	return a < b ? a : b;
}

/* Best of ROUNDS for each phase: the machine may be shared, and the best
 * run is the one least disturbed. */
#define ROUNDS 3

static void run(uint32_t n, bool wild)
{
	struct smq_subtree *t = smq_subtree_new();
	struct strs filters, topics;
	struct smq_match m;
	double t0, t_add = 1e9, t_match = 1e9, t_del = 1e9;
	uint64_t hits = 0;
	long mem0, mem = -1;
	size_t nodes = 0;
	uint32_t i, r;

	if (!t)
		abort();
	make_filters(&filters, n, wild);
	make_topics(&topics, n);
	smq_match_init(&m);
	mem0 = allocated();
	for (r = 0; r < ROUNDS; r++) {
		t0 = now();
		for (i = 0; i < n; i++)
			if (smq_subtree_add(t, get(&filters, i), (void *)(uintptr_t)(i + 1), 1, 0,
					    NULL))
				abort();
		t_add = best(t_add, now() - t0);
		nodes = smq_subtree_nodes(t);
		if (!r && mem0 >= 0)
			mem = allocated() - mem0;

		hits = 0;
		t0 = now();
		for (i = 0; i < MATCHES; i++) {
			if (smq_subtree_match(t, get(&topics, i % NTOPICS), NULL, &m))
				abort();
			hits += m.n;
		}
		t_match = best(t_match, now() - t0);

		t0 = now();
		for (i = 0; i < n; i++)
			if (smq_subtree_remove(t, get(&filters, i), (void *)(uintptr_t)(i + 1),
					       NULL))
				abort();
		t_del = best(t_del, now() - t0);
		if (smq_subtree_nodes(t) != 0)
			abort();
	}
	printf("%-5s N=%-8u add %5.2f M/s  match %5.2f M/s (%.1f subs/match, %4.0f ns)"
	       "  remove %5.2f M/s  nodes %zu  %ld B/sub\n",
	       wild ? "wild" : "exact", n, n / t_add / 1e6, MATCHES / t_match / 1e6,
	       (double)hits / MATCHES, t_match / MATCHES * 1e9, n / t_del / 1e6, nodes,
	       mem >= 0 ? mem / (long)n : -1L);
	fflush(stdout);
	smq_match_fini(&m);
	smq_subtree_free(t);
	strs_free(&filters);
	strs_free(&topics);
}

int main(int argc, char **argv)
{
	uint32_t sizes[8] = { 100000, 1000000 };
	int i, nsizes = 2;

	if (argc > 1) {
		nsizes = 0;
		for (i = 1; i < argc && nsizes < 8; i++)
			sizes[nsizes++] = (uint32_t)strtoul(argv[i], NULL, 10);
	}
	for (i = 0; i < nsizes; i++) {
		if (sizes[i] < 10)
			sizes[i] = 10;
		run(sizes[i], false);
		run(sizes[i], true);
	}
	return 0;
}
