/* bench_acl.c - ns per ACL check: compiled tries vs a mosquitto-style scan.
 *
 * Scenarios (all read checks on topics that some rule grants, plus misses):
 *   one user:   user "big" with 10,000 rules "devices/<i>/sensors/+"; topics
 *               "devices/<i>/sensors/temp" for random i (hits) and
 *               "devices/<i + 10000>/sensors/temp" (misses), half each
 *   10k users:  10,000 users with 3 rules each ("users/<i>/#", "shared/+/status"
 *               write-only "cmd/<i>"); a random user reads "users/<i>/inbox/7";
 *               the user handle is resolved beforehand, as at CONNECT (its
 *               cost is the "user lookup" row)
 *   patterns:   100 patterns "p<k>/%u/#" and "dev/%c/out<k>" (50 each), plus a
 *               deny pattern; topics hit a random pattern
 * The "scan" column is what mosquitto 2.0 does: walk the client's rule list
 * and, for patterns, build the substituted filter (here with snprintf into a
 * stack buffer, not malloc) and match it (smq_topic_match). It stops at the
 * first grant, as mosquitto does.
 *
 * Usage: bench_acl [rounds]   (default 3; best round reported)
 * Times are the thread's CPU time (CLOCK_THREAD_CPUTIME_ID). Single thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/acl.h"
#include "core/topic.h"

#define NTOPICS 4096u
#define CHECKS 2000000u

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static unsigned long long rng = 88172645463325252ull;

static unsigned rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

struct text {
	char *p;
	size_t n, cap;
};

static void put(struct text *t, const char *fmt, int a, int b)
{
	int n;

	if (t->cap - t->n < 256) {
		t->cap = t->cap ? t->cap * 2 : 1 << 20;
		t->p = realloc(t->p, t->cap);
		if (!t->p)
			exit(1);
	}
	n = snprintf(t->p + t->n, t->cap - t->n, fmt, a, b);
	t->n += (size_t)n;
}

struct client {
	char user[32], id[32];
	struct smq_acl_who who;
	const struct smq_acl_user *u;
};

struct scenario {
	const char *name;
	struct smq_acl *acl;
	char (*topics)[64];
	struct client *clients;	/* one per topic */
	/* the scan: per client, its rules (filters), patterns last */
	char (*rules)[48];
	size_t nrules;
	size_t (*rules_of)(const struct client *c, size_t *first);
	bool patterns;
};

static bool scan_one(const char *filter, const struct client *c, const char *topic, bool pattern)
{
	char buf[256];
	size_t n = 0;

	if (pattern) {
		for (const char *f = filter; *f && n < sizeof(buf) - 64; f++) {
			if (f[0] == '%' && (f[1] == 'u' || f[1] == 'c')) {
				n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s",
						      f[1] == 'u' ? c->user : c->id);
				f++;
			} else {
				buf[n++] = *f;
			}
		}
		buf[n] = '\0';
		filter = buf;
	}
	return smq_topic_match((struct smq_str){ (const uint8_t *)filter, (uint32_t)strlen(filter) },
			       (struct smq_str){ (const uint8_t *)topic, (uint32_t)strlen(topic) });
}

static double time_trie(const struct scenario *s, unsigned checks, unsigned *granted)
{
	double t0 = now();
	unsigned g = 0;

	for (unsigned i = 0; i < checks; i++) {
		unsigned k = i & (NTOPICS - 1);
		const struct client *c = &s->clients[k];

		g += smq_acl_can_read(s->acl, c->u, &c->who, s->topics[k], strlen(s->topics[k]));
	}
	*granted = g;
	return (now() - t0) * 1e9 / checks;
}

static double time_scan(const struct scenario *s, unsigned checks, unsigned *granted)
{
	double t0 = now();
	unsigned g = 0;

	for (unsigned i = 0; i < checks; i++) {
		unsigned k = i & (NTOPICS - 1);
		const struct client *c = &s->clients[k];
		size_t first, n = s->rules_of(c, &first);

		for (size_t r = first; r < first + n; r++) {
			if (scan_one(s->rules[r], c, s->topics[k], s->patterns)) {
				g++;
				break;
			}
		}
	}
	*granted = g;
	return (now() - t0) * 1e9 / checks;
}

static size_t all_rules(const struct client *c, size_t *first)
{
	(void)c;
	*first = 0;
	return 10000;
}

static size_t user_rules(const struct client *c, size_t *first)
{
	*first = (size_t)atoi(c->user + 1) * 3;
	return 3;
}

static size_t pattern_rules(const struct client *c, size_t *first)
{
	(void)c;
	*first = 0;
	return 100;
}

static void client_set(struct scenario *s, struct client *c, const char *user, const char *id)
{
	snprintf(c->user, sizeof(c->user), "%s", user);
	snprintf(c->id, sizeof(c->id), "%s", id);
	c->who = (struct smq_acl_who){ c->user, strlen(c->user), true, c->id, strlen(c->id) };
	c->u = smq_acl_user(s->acl, &c->who);
}

static void build(struct scenario *s, struct text *t)
{
	char err[256];

	if (smq_acl_parse(t->p, t->n, s->name, &s->acl, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		exit(1);
	}
	t->n = 0;
	s->topics = calloc(NTOPICS, sizeof(*s->topics));
	s->clients = calloc(NTOPICS, sizeof(*s->clients));
}

static void one_user(struct scenario *s, struct text *t)
{
	s->name = "one user, 10,000 rules";
	s->rules = calloc(10000, sizeof(*s->rules));
	s->rules_of = all_rules;
	put(t, "user big\n", 0, 0);
	for (int i = 0; i < 10000; i++) {
		put(t, "topic read devices/%d/sensors/+\n", i, 0);
		snprintf(s->rules[i], sizeof(s->rules[i]), "devices/%d/sensors/+", i);
	}
	build(s, t);
	for (unsigned k = 0; k < NTOPICS; k++) {
		unsigned i = rnd(10000) + (k & 1) * 10000;

		snprintf(s->topics[k], sizeof(s->topics[k]), "devices/%u/sensors/temp", i);
		client_set(s, &s->clients[k], "big", "c");
	}
}

static void many_users(struct scenario *s, struct text *t)
{
	s->name = "10,000 users, 3 rules each";
	s->rules = calloc(30000, sizeof(*s->rules));
	s->rules_of = user_rules;
	for (int i = 0; i < 10000; i++) {
		put(t, "user u%d\ntopic readwrite users/%d/#\n", i, i);
		put(t, "topic read shared/+/status\ntopic write cmd/%d\n", i, 0);
		snprintf(s->rules[i * 3], sizeof(s->rules[0]), "users/%d/#", i);
		snprintf(s->rules[i * 3 + 1], sizeof(s->rules[0]), "shared/+/status");
		snprintf(s->rules[i * 3 + 2], sizeof(s->rules[0]), "cmd/%d", i);
	}
	build(s, t);
	for (unsigned k = 0; k < NTOPICS; k++) {
		unsigned i = rnd(10000);
		char user[16];

		snprintf(s->topics[k], sizeof(s->topics[k]), "users/%u/inbox/7", i);
		snprintf(user, sizeof(user), "u%u", i);
		client_set(s, &s->clients[k], user, "c");
	}
}

static void patterns(struct scenario *s, struct text *t)
{
	s->name = "100 patterns";
	s->rules = calloc(101, sizeof(*s->rules));
	s->rules_of = pattern_rules;
	s->patterns = true;
	for (int k = 0; k < 50; k++) {
		put(t, "pattern read p%d/%%u/#\npattern read dev/%%c/out%d\n", k, k);
		snprintf(s->rules[k * 2], sizeof(s->rules[0]), "p%d/%%u/#", k);
		snprintf(s->rules[k * 2 + 1], sizeof(s->rules[0]), "dev/%%c/out%d", k);
	}
	put(t, "pattern deny dev/%%c/secret\n", 0, 0);
	build(s, t);
	for (unsigned k = 0; k < NTOPICS; k++) {
		char user[16], id[16];
		unsigned p = rnd(50), who = rnd(1000);

		snprintf(user, sizeof(user), "user%u", who);
		snprintf(id, sizeof(id), "client-%u", who);
		if (k & 1)
			snprintf(s->topics[k], sizeof(s->topics[k]), "p%u/%s/x/y", p, user);
		else
			snprintf(s->topics[k], sizeof(s->topics[k]), "dev/%s/out%u", id, p);
		client_set(s, &s->clients[k], user, id);
	}
}

static double time_lookup(const struct scenario *s)
{
	double t0 = now();
	uintptr_t x = 0;

	for (unsigned i = 0; i < CHECKS; i++)
		x += (uintptr_t)smq_acl_user(s->acl, &s->clients[i & (NTOPICS - 1)].who);
	if (!x)
		puts("");
	return (now() - t0) * 1e9 / CHECKS;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 3;
	struct scenario sc[3] = { 0 };
	struct text t = { 0 };
	double lookup = 1e9;

	one_user(&sc[0], &t);
	many_users(&sc[1], &t);
	patterns(&sc[2], &t);
	printf("| scenario | rules | trie ns/check | scan ns/check | granted |\n");
	printf("|---|---:|---:|---:|---:|\n");
	for (int i = 0; i < 3; i++) {
		struct scenario *s = &sc[i];
		double best = 1e9, best_scan = 1e9, v;
		unsigned g = 0, gs = 0;
		unsigned scan_checks = i == 0 ? 20000 : 500000;

		for (int r = 0; r < rounds; r++) {
			v = time_trie(s, CHECKS, &g);
			best = v < best ? v : best;
			v = time_scan(s, scan_checks, &gs);
			best_scan = v < best_scan ? v : best_scan;
		}
		if ((double)g / CHECKS - (double)gs / scan_checks > 0.01 ||
		    (double)gs / scan_checks - (double)g / CHECKS > 0.01) {
			fprintf(stderr, "%s: trie and scan disagree (%u/%u vs %u/%u)\n", s->name,
				g, CHECKS, gs, scan_checks);
			return 1;
		}
		printf("| %s | %zu | %.1f | %.1f | %.0f%% |\n", s->name, smq_acl_rule_count(s->acl),
		       best, best_scan, 100.0 * g / CHECKS);
	}
	for (int r = 0; r < rounds; r++) {
		double v = time_lookup(&sc[1]);

		lookup = v < lookup ? v : lookup;
	}
	printf("| user lookup (smq_acl_user), 10,000 users | - | %.1f | - | - |\n", lookup);
	for (int i = 0; i < 3; i++) {
		smq_acl_free(sc[i].acl);
		free(sc[i].topics);
		free(sc[i].clients);
		free(sc[i].rules);
	}
	free(t.p);
	return 0;
}
