/* test_subtree.c - the subscription trie: add / replace / remove semantics,
 * FIRST / LAST transitions, per-subscriber reduction of overlapping
 * subscriptions, shared groups, the '$' rule, node reclamation under churn,
 * hash-flood resistance, and a seeded randomized comparison against
 * smq_topic_match(). */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/hash.h"
#include "core/subtree.h"
#include "core/topic.h"

static struct smq_str S(const char *s)
{
	return (struct smq_str){ (const uint8_t *)s, (uint32_t)strlen(s) };
}

/* Subscriber keys: never dereferenced by the trie. */
#define SUB(i) ((void *)(uintptr_t)(0x1000 + (i)))
#define SUB_INDEX(p) ((unsigned)((uintptr_t)(p) - 0x1000))

static struct smq_subtree *t;
static struct smq_match m;

static void setup(void)
{
	t = smq_subtree_new();
	cr_assert_not_null(t);
	smq_match_init(&m);
}

static void teardown(void)
{
	smq_match_fini(&m);
	smq_subtree_free(t);
}

static const struct smq_match_entry *entry_of(const struct smq_match *mm, void *sub)
{
	uint32_t i;

	for (i = 0; i < mm->n; i++)
		if (mm->subs[i].sub == sub)
			return &mm->subs[i];
	return NULL;
}

static int add(const char *f, void *sub, uint8_t opts, uint32_t id, unsigned *flags)
{
	return smq_subtree_add(t, S(f), sub, opts, id, flags);
}

TestSuite(core_subtree, .init = setup, .fini = teardown);

Test(core_subtree, add_reports_first_then_replaced)
{
	unsigned fl;
	uint8_t opts = 0xff;
	uint32_t id = 0;

	cr_assert_eq(add("a/b", SUB(1), 1, 7, &fl), 0);
	cr_expect_eq(fl, SMQ_SUBTREE_FIRST);
	cr_assert_eq(add("a/b", SUB(2), 0, 0, &fl), 0);
	cr_expect_eq(fl, 0u);
	cr_assert_eq(add("a/b", SUB(1), 2, 9, &fl), 0);
	cr_expect_eq(fl, SMQ_SUBTREE_REPLACED);
	cr_expect_eq(smq_subtree_count(t), 2);
	cr_assert(smq_subtree_find(t, S("a/b"), SUB(1), &opts, &id));
	cr_expect_eq(opts, 2);
	cr_expect_eq(id, 9u);
	cr_expect_not(smq_subtree_find(t, S("a/b"), SUB(3), NULL, NULL));
	cr_expect_not(smq_subtree_find(t, S("a"), SUB(1), NULL, NULL));
}

Test(core_subtree, remove_reports_last_and_enoent)
{
	unsigned fl = 0xff;

	cr_assert_eq(add("a/+", SUB(1), 0, 0, NULL), 0);
	cr_assert_eq(add("a/+", SUB(2), 0, 0, NULL), 0);
	cr_expect_eq(smq_subtree_remove(t, S("a/+"), SUB(3), &fl), -ENOENT);
	cr_expect_eq(smq_subtree_remove(t, S("a/b"), SUB(1), &fl), -ENOENT);
	cr_expect_eq(smq_subtree_remove(t, S("a"), SUB(1), &fl), -ENOENT);
	cr_expect_eq(smq_subtree_remove(t, S("a/+"), SUB(1), &fl), 0);
	cr_expect_eq(fl, 0u);
	cr_expect_eq(smq_subtree_remove(t, S("a/+"), SUB(1), &fl), -ENOENT);
	cr_expect_eq(smq_subtree_remove(t, S("a/+"), SUB(2), &fl), 0);
	cr_expect_eq(fl, SMQ_SUBTREE_LAST);
	cr_expect_eq(smq_subtree_count(t), 0);
	cr_expect_eq(smq_subtree_nodes(t), 0);
}

Test(core_subtree, invalid_filters_and_null_sub_refused)
{
	cr_expect_eq(add("a/b#", SUB(1), 0, 0, NULL), -EINVAL);
	cr_expect_eq(add("a+/b", SUB(1), 0, 0, NULL), -EINVAL);
	cr_expect_eq(add("", SUB(1), 0, 0, NULL), -EINVAL);
	cr_expect_eq(add("$share//a", SUB(1), 0, 0, NULL), -EINVAL);
	cr_expect_eq(add("$share/g", SUB(1), 0, 0, NULL), -EINVAL);
	cr_expect_eq(add("a", NULL, 0, 0, NULL), -EINVAL);
	cr_expect_eq(smq_subtree_remove(t, S("#/a"), SUB(1), NULL), -EINVAL);
	cr_expect_eq(smq_subtree_count(t), 0);
	cr_expect_eq(smq_subtree_nodes(t), 0);
}

Test(core_subtree, overlapping_filters_give_one_entry_max_qos_all_ids)
{
	const struct smq_match_entry *e;
	uint32_t a, b;

	cr_assert_eq(add("a/+", SUB(1), 0, 11, NULL), 0);
	cr_assert_eq(add("a/#", SUB(1), 2 | SMQ_SUBOPT_RAP, 22, NULL), 0);
	cr_assert_eq(add("a/b", SUB(1), 1, 0, NULL), 0);
	cr_assert_eq(add("#", SUB(1), 1, 0, NULL), 0);
	cr_assert_eq(add("a/b", SUB(2), 1, 33, NULL), 0);
	cr_assert_eq(smq_subtree_match(t, S("a/b"), NULL, &m), 0);
	cr_assert_eq(m.n, 2);
	e = entry_of(&m, SUB(1));
	cr_assert_not_null(e);
	cr_expect_eq(e->opts, 2 | SMQ_SUBOPT_RAP, "opts of the QoS 2 subscription");
	cr_assert_eq(e->ids_n, 2);
	a = m.ids[e->ids_off];
	b = m.ids[e->ids_off + 1];
	cr_expect((a == 11 && b == 22) || (a == 22 && b == 11));
	e = entry_of(&m, SUB(2));
	cr_assert_not_null(e);
	cr_expect_eq(e->opts, 1);
	cr_assert_eq(e->ids_n, 1);
	cr_expect_eq(m.ids[e->ids_off], 33u);
	cr_expect_eq(m.nshared, 0);
}

Test(core_subtree, no_local_skips_only_the_publishers_own_subscription)
{
	cr_assert_eq(add("a/+", SUB(1), 1 | SMQ_SUBOPT_NO_LOCAL, 0, NULL), 0);
	cr_assert_eq(add("a/+", SUB(2), 1 | SMQ_SUBOPT_NO_LOCAL, 0, NULL), 0);
	cr_assert_eq(smq_subtree_match(t, S("a/x"), SUB(1), &m), 0);
	cr_expect_eq(m.n, 1);
	cr_expect_not_null(entry_of(&m, SUB(2)));
	/* another filter of the publisher without No Local still delivers */
	cr_assert_eq(add("a/#", SUB(1), 0, 5, NULL), 0);
	cr_assert_eq(smq_subtree_match(t, S("a/x"), SUB(1), &m), 0);
	cr_assert_eq(m.n, 2);
	cr_expect_eq(entry_of(&m, SUB(1))->opts, 0);
	cr_expect_eq(entry_of(&m, SUB(1))->ids_n, 1);
	cr_assert_eq(smq_subtree_match(t, S("a/x"), NULL, &m), 0);
	cr_expect_eq(m.n, 2);
	cr_expect_eq(SMQ_SUBOPT_QOS(entry_of(&m, SUB(1))->opts), 1);
}

static const struct smq_match_group *group_of(const char *g, const char *f)
{
	uint32_t i;

	for (i = 0; i < m.nshared; i++)
		if (m.shared[i].group.len == strlen(g) && m.shared[i].filter.len == strlen(f) &&
		    !memcmp(m.shared[i].group.p, g, strlen(g)) &&
		    !memcmp(m.shared[i].filter.p, f, strlen(f)))
			return &m.shared[i];
	return NULL;
}

Test(core_subtree, shared_groups_kept_apart_from_ordinary_subscribers)
{
	const struct smq_match_group *g;
	unsigned fl;

	cr_assert_eq(add("$share/g/a/+", SUB(1), 1, 4, &fl), 0);
	cr_expect_eq(fl, SMQ_SUBTREE_FIRST);
	cr_assert_eq(add("$share/g/a/+", SUB(2), 0, 0, &fl), 0);
	cr_expect_eq(fl, 0u);
	cr_assert_eq(add("$share/g/a/+", SUB(2), 2, 0, &fl), 0);
	cr_expect_eq(fl, SMQ_SUBTREE_REPLACED);
	cr_assert_eq(add("a/+", SUB(1), 0, 0, &fl), 0);
	cr_expect_eq(fl, SMQ_SUBTREE_FIRST, "ordinary filter counts apart from the group");
	cr_assert_eq(add("$share/h/a/+", SUB(3), 0, 0, &fl), 0);
	cr_expect_eq(fl, SMQ_SUBTREE_FIRST);
	cr_assert_eq(add("$share/g/a/#", SUB(1), 0, 0, &fl), 0);
	cr_expect_eq(fl, SMQ_SUBTREE_FIRST);
	cr_expect_eq(smq_subtree_count(t), 5);

	cr_assert_eq(smq_subtree_match(t, S("a/b"), NULL, &m), 0);
	cr_expect_eq(m.n, 1, "only the ordinary subscription is an entry");
	cr_assert_eq(m.nshared, 3);
	g = group_of("g", "a/+");
	cr_assert_not_null(g);
	cr_assert_eq(g->nmembers, 2);
	cr_expect(g->members[0].sub == SUB(1) || g->members[1].sub == SUB(1));
	cr_expect(g->members[0].sub == SUB(2) || g->members[1].sub == SUB(2));
	cr_expect_not_null(group_of("h", "a/+"));
	cr_expect_not_null(group_of("g", "a/#"));

	cr_assert_eq(smq_subtree_remove(t, S("$share/g/a/+"), SUB(3), &fl), -ENOENT);
	cr_assert_eq(smq_subtree_remove(t, S("$share/x/a/+"), SUB(1), &fl), -ENOENT);
	cr_assert_eq(smq_subtree_remove(t, S("$share/g/a/+"), SUB(1), &fl), 0);
	cr_expect_eq(fl, 0u);
	cr_assert_eq(smq_subtree_remove(t, S("$share/g/a/+"), SUB(2), &fl), 0);
	cr_expect_eq(fl, SMQ_SUBTREE_LAST);
	cr_assert_eq(smq_subtree_match(t, S("a/b"), NULL, &m), 0);
	cr_expect_eq(m.nshared, 2);
	cr_expect_null(group_of("g", "a/+"));
}

Test(core_subtree, group_cursor_persists_between_matches)
{
	cr_assert_eq(add("$share/g/x", SUB(1), 0, 0, NULL), 0);
	cr_assert_eq(smq_subtree_match(t, S("x"), NULL, &m), 0);
	cr_assert_eq(m.nshared, 1);
	cr_expect_eq(*m.shared[0].cursor, 0u);
	*m.shared[0].cursor = 41;
	cr_assert_eq(smq_subtree_match(t, S("x"), NULL, &m), 0);
	cr_expect_eq(*m.shared[0].cursor, 41u);
}

Test(core_subtree, dollar_topics_skip_root_wildcards)
{
	cr_assert_eq(add("#", SUB(1), 0, 0, NULL), 0);
	cr_assert_eq(add("+/monitor/Clients", SUB(2), 0, 0, NULL), 0);
	cr_assert_eq(add("$SYS/#", SUB(3), 0, 0, NULL), 0);
	cr_assert_eq(add("$SYS/monitor/+", SUB(4), 0, 0, NULL), 0);
	cr_assert_eq(add("$share/g/#", SUB(5), 0, 0, NULL), 0);
	cr_assert_eq(smq_subtree_match(t, S("$SYS/monitor/Clients"), NULL, &m), 0);
	cr_expect_eq(m.n, 2);
	cr_expect_not_null(entry_of(&m, SUB(3)));
	cr_expect_not_null(entry_of(&m, SUB(4)));
	cr_expect_eq(m.nshared, 0);
	cr_assert_eq(smq_subtree_match(t, S("x/monitor/Clients"), NULL, &m), 0);
	cr_expect_eq(m.n, 2);
	cr_expect_not_null(entry_of(&m, SUB(1)));
	cr_expect_not_null(entry_of(&m, SUB(2)));
	cr_expect_eq(m.nshared, 1);
}

Test(core_subtree, hash_matches_parent_level)
{
	cr_assert_eq(add("sport/#", SUB(1), 0, 0, NULL), 0);
	cr_assert_eq(add("sport/+", SUB(2), 0, 0, NULL), 0);
	cr_assert_eq(smq_subtree_match(t, S("sport"), NULL, &m), 0);
	cr_expect_eq(m.n, 1);
	cr_expect_not_null(entry_of(&m, SUB(1)));
	cr_assert_eq(smq_subtree_match(t, S("sport/"), NULL, &m), 0);
	cr_expect_eq(m.n, 2);
}

Test(core_subtree, large_subscriber_sets_add_and_remove_exactly)
{
	enum { N = 3000 };
	static bool live[N];
	unsigned fl, i, k, left = N;

	for (i = 0; i < N; i++) {
		cr_assert_eq(add("big/topic", SUB(i), (uint8_t)(i % 3), 0, &fl), 0);
		cr_assert_eq(fl, i ? 0u : SMQ_SUBTREE_FIRST);
		live[i] = true;
	}
	srand(7);
	for (k = 0; k < N - 3; k++) {
		i = (unsigned)rand() % N;
		if (!live[i]) {
			cr_assert_eq(smq_subtree_remove(t, S("big/topic"), SUB(i), NULL), -ENOENT);
			continue;
		}
		cr_assert_eq(smq_subtree_remove(t, S("big/topic"), SUB(i), &fl), 0);
		live[i] = false;
		left--;
	}
	cr_assert_eq(smq_subtree_count(t), left);
	cr_assert_eq(smq_subtree_match(t, S("big/topic"), NULL, &m), 0);
	cr_assert_eq(m.n, left);
	for (i = 0; i < m.n; i++) {
		k = SUB_INDEX(m.subs[i].sub);
		cr_assert(k < N && live[k], "sub %u should be gone", k);
		cr_expect_eq(m.subs[i].opts, k % 3);
	}
	for (i = 0; i < N; i++)
		cr_assert_eq(smq_subtree_find(t, S("big/topic"), SUB(i), NULL, NULL), live[i]);
}

Test(core_subtree, churn_frees_every_node)
{
	char f[64];
	unsigned i, round;
	size_t base;

	cr_assert_eq(add("keep/this", SUB(0), 0, 0, NULL), 0);
	base = smq_subtree_nodes(t);
	cr_expect_eq(base, 2);
	for (round = 0; round < 3; round++) {
		for (i = 0; i < 2000; i++) {
			snprintf(f, sizeof(f), "dev/%u/s/%u", i, i % 7);
			cr_assert_eq(add(f, SUB(i), 0, 0, NULL), 0);
			snprintf(f, sizeof(f), "keep/%u/+/#", i);
			cr_assert_eq(add(f, SUB(i), 0, 0, NULL), 0);
		}
		cr_expect_gt(smq_subtree_nodes(t), 4000);
		for (i = 0; i < 2000; i++) {
			snprintf(f, sizeof(f), "dev/%u/s/%u", i, i % 7);
			cr_assert_eq(smq_subtree_remove(t, S(f), SUB(i), NULL), 0);
			snprintf(f, sizeof(f), "keep/%u/+/#", i);
			cr_assert_eq(smq_subtree_remove(t, S(f), SUB(i), NULL), 0);
		}
		cr_assert_eq(smq_subtree_nodes(t), base, "round %u", round);
		cr_assert_eq(smq_subtree_count(t), 1);
	}
	cr_assert_eq(smq_subtree_match(t, S("keep/this"), NULL, &m), 0);
	cr_expect_eq(m.n, 1);
}

Test(core_subtree, deep_topics_and_filters_do_not_recurse)
{
	enum { LEVELS = 30000 };
	char *s = malloc(2 * LEVELS);
	struct smq_str deep;
	unsigned i;

	cr_assert_not_null(s);
	for (i = 0; i < LEVELS; i++) {
		s[2 * i] = 'a';
		s[2 * i + 1] = '/';
	}
	deep = (struct smq_str){ (const uint8_t *)s, 2 * LEVELS - 1 };
	cr_assert_eq(smq_subtree_add(t, deep, SUB(1), 0, 0, NULL), 0);
	cr_assert_eq(add("a/+/#", SUB(2), 0, 0, NULL), 0);
	cr_expect_eq(smq_subtree_nodes(t), LEVELS + 2);
	cr_assert_eq(smq_subtree_match(t, deep, NULL, &m), 0);
	cr_expect_eq(m.n, 2);
	/* teardown frees the deep path */
	free(s);
}

Test(core_subtree, scratch_reused_across_tries)
{
	struct smq_subtree *t2 = smq_subtree_new();

	cr_assert_not_null(t2);
	cr_assert_eq(add("x", SUB(1), 0, 9, NULL), 0);
	cr_assert_eq(smq_subtree_add(t2, S("x"), SUB(2), 1, 0, NULL), 0);
	cr_assert_eq(smq_subtree_match(t, S("x"), NULL, &m), 0);
	cr_assert_eq(m.n, 1);
	cr_assert_eq(m.nids, 1);
	cr_assert_eq(smq_subtree_match(t2, S("x"), NULL, &m), 0);
	cr_assert_eq(m.n, 1);
	cr_expect_eq(m.subs[0].sub, SUB(2));
	cr_expect_eq(m.subs[0].ids_n, 0);
	cr_expect_eq(m.nids, 0);
	cr_assert_eq(smq_subtree_match(t2, S("y"), NULL, &m), 0);
	cr_expect_eq(m.n, 0);
	smq_subtree_free(t2);
}

/* ---- randomized comparison with the reference matcher ------------------ */

#define NSUB 24
#define NREC 4096

struct rec {
	char filter[64];	/* full filter, "$share/..." included */
	char inner[40];
	char group[8];		/* "" = ordinary */
	unsigned sub;
	uint8_t opts;
	uint32_t id;
	bool live;
};

static struct rec recs[NREC];
static unsigned nrecs;
static uint64_t rng;

static unsigned rnd(unsigned n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (unsigned)(rng % n);
}

/* Few, short levels so that overlaps and matches are frequent. */
static void random_filter(char *out, size_t cap)
{
	static const char *const lv[] = { "a", "b", "", "+", "a", "$s" };
	unsigned n = 1 + rnd(4), i;
	size_t len = 0;

	out[0] = 0;
	for (i = 0; i < n; i++) {
		const char *l = lv[rnd(i == 0 ? 6 : 5)];

		if (i + 1 == n && rnd(4) == 0)
			l = "#";
		len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? "/" : "", l);
	}
	if (!len)	/* a lone empty level is the empty string: not a filter */
		snprintf(out, cap, "/");
}

static void random_topic(char *out, size_t cap)
{
	static const char *const lv[] = { "a", "b", "", "c", "$s" };
	unsigned n = 1 + rnd(5), i;
	size_t len = 0;

	for (i = 0; i < n; i++)
		len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? "/" : "",
					lv[rnd(i == 0 ? 5 : 4)]);
}

static struct rec *rec_find(const char *filter, unsigned sub)
{
	unsigned i;

	for (i = 0; i < nrecs; i++)
		if (recs[i].live && recs[i].sub == sub && !strcmp(recs[i].filter, filter))
			return &recs[i];
	return NULL;
}

static unsigned rec_count(const char *filter)
{
	unsigned i, n = 0;

	for (i = 0; i < nrecs; i++)
		n += recs[i].live && !strcmp(recs[i].filter, filter);
	return n;
}

static void random_add(void)
{
	struct rec r = { .live = true };
	struct rec *old;
	unsigned fl, before;

	random_filter(r.inner, sizeof(r.inner));
	if (rnd(5) == 0)
		snprintf(r.group, sizeof(r.group), "g%u", rnd(2));
	snprintf(r.filter, sizeof(r.filter), "%s%s%s%s", r.group[0] ? "$share/" : "",
		 r.group, r.group[0] ? "/" : "", r.inner);
	r.sub = rnd(NSUB);
	r.opts = (uint8_t)(rnd(3) | (rnd(3) == 0 ? SMQ_SUBOPT_NO_LOCAL : 0) |
			   (rnd(2) ? SMQ_SUBOPT_RAP : 0));
	r.id = rnd(3) ? 0 : 1 + rnd(1000);
	before = rec_count(r.filter);
	old = rec_find(r.filter, r.sub);
	cr_assert_eq(add(r.filter, SUB(r.sub), r.opts, r.id, &fl), 0, "%s", r.filter);
	cr_assert_eq(fl, (before == 0 ? SMQ_SUBTREE_FIRST : 0) | (old ? SMQ_SUBTREE_REPLACED : 0),
		     "%s", r.filter);
	if (old) {
		old->opts = r.opts;
		old->id = r.id;
	} else {
		cr_assert_lt(nrecs, NREC);
		recs[nrecs++] = r;
	}
}

static void random_remove(void)
{
	struct rec *r;
	unsigned fl, i = rnd(nrecs ? nrecs : 1);

	if (!nrecs || !recs[i].live)
		return;
	r = &recs[i];
	cr_assert_eq(smq_subtree_remove(t, S(r->filter), SUB(r->sub), &fl), 0);
	r->live = false;
	cr_assert_eq(fl, rec_count(r->filter) ? 0u : SMQ_SUBTREE_LAST, "%s", r->filter);
	cr_assert_eq(smq_subtree_remove(t, S(r->filter), SUB(r->sub), &fl), -ENOENT);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

/* Ordinary subscribers: one entry each, max QoS, opts from a max-QoS match,
 * all ids. */
static void check_entries(const char *topic, int pub)
{
	uint32_t want[64], got[64];
	unsigned s, i, nw, seen = 0;

	for (s = 0; s < NSUB; s++) {
		const struct smq_match_entry *e = entry_of(&m, SUB(s));
		int maxq = -1;
		bool opts_ok = false;

		nw = 0;
		for (i = 0; i < nrecs; i++) {
			struct rec *r = &recs[i];

			if (!r->live || r->sub != s || r->group[0] ||
			    !smq_topic_match(S(r->inner), S(topic)))
				continue;
			if ((int)s == pub && (r->opts & SMQ_SUBOPT_NO_LOCAL))
				continue;
			if ((int)SMQ_SUBOPT_QOS(r->opts) > maxq)
				maxq = SMQ_SUBOPT_QOS(r->opts);
			if (r->id)
				want[nw++] = r->id;
		}
		if (maxq < 0) {
			cr_assert_null(e, "topic %s: sub %u must not match", topic, s);
			continue;
		}
		seen++;
		cr_assert_not_null(e, "topic %s: sub %u must match", topic, s);
		cr_assert_eq(SMQ_SUBOPT_QOS(e->opts), maxq, "topic %s sub %u", topic, s);
		for (i = 0; i < nrecs; i++)
			opts_ok |= recs[i].live && recs[i].sub == s && !recs[i].group[0] &&
				   recs[i].opts == e->opts &&
				   smq_topic_match(S(recs[i].inner), S(topic));
		cr_assert(opts_ok, "topic %s sub %u: opts not from a matching filter", topic, s);
		cr_assert_eq(e->ids_n, nw, "topic %s sub %u ids", topic, s);
		memcpy(got, m.ids + e->ids_off, nw * sizeof(*got));
		qsort(want, nw, sizeof(*want), cmp_u32);
		qsort(got, nw, sizeof(*got), cmp_u32);
		cr_assert_arr_eq(got, want, nw * sizeof(*got), "topic %s sub %u ids", topic, s);
	}
	cr_assert_eq(m.n, seen, "topic %s: duplicate entries", topic);
}

/* Shared: exactly the matching (group, filter) pairs, each with its members. */
static void check_groups(const char *topic)
{
	unsigned i, k, want_groups = 0, members;

	for (i = 0; i < nrecs; i++) {
		struct rec *r = &recs[i];
		const struct smq_match_group *g;

		if (!r->live || !r->group[0] || !smq_topic_match(S(r->inner), S(topic)))
			continue;
		if (rec_find(r->filter, r->sub) != r)
			continue;
		g = group_of(r->group, r->inner);
		cr_assert_not_null(g, "topic %s: group for %s missing", topic, r->filter);
		for (k = 0; k < g->nmembers; k++)
			if (g->members[k].sub == SUB(r->sub))
				break;
		cr_assert_lt(k, g->nmembers, "topic %s: %s member %u", topic, r->filter, r->sub);
		cr_assert_eq(g->members[k].opts, r->opts);
		cr_assert_eq(g->members[k].sub_id, r->id);
	}
	for (i = 0; i < m.nshared; i++) {
		char full[64];

		snprintf(full, sizeof(full), "$share/%.*s/%.*s", (int)m.shared[i].group.len,
			 m.shared[i].group.p, (int)m.shared[i].filter.len, m.shared[i].filter.p);
		members = rec_count(full);
		cr_assert_eq(m.shared[i].nmembers, members, "topic %s group %s", topic, full);
		cr_assert(smq_topic_match(m.shared[i].filter, S(topic)));
		want_groups++;
	}
	for (i = 0; i < m.nshared; i++)
		for (k = i + 1; k < m.nshared; k++)
			cr_assert(m.shared[i].group.p != m.shared[k].group.p ||
				  m.shared[i].filter.p != m.shared[k].filter.p,
				  "group reported twice");
	(void)want_groups;
}

static void check_random_topics(unsigned n)
{
	char topic[64];
	int pub;

	while (n--) {
		random_topic(topic, sizeof(topic));
		pub = rnd(3) ? (int)rnd(NSUB) : -1;
		cr_assert_eq(smq_subtree_match(t, S(topic), pub >= 0 ? SUB(pub) : NULL, &m), 0);
		check_entries(topic, pub);
		check_groups(topic);
	}
}

Test(core_subtree, random_ops_agree_with_reference_matcher)
{
	unsigned round, op, i, live;

	rng = 0x5eed5eed12345ull;
	nrecs = 0;
	for (round = 0; round < 30; round++) {
		for (op = 0; op < 100; op++) {
			if (rnd(3))
				random_add();
			else
				random_remove();
		}
		check_random_topics(60);
		for (live = 0, i = 0; i < nrecs; i++)
			live += recs[i].live;
		cr_assert_eq(smq_subtree_count(t), live);
	}
	for (i = 0; i < nrecs; i++)
		if (recs[i].live)
			cr_assert_eq(smq_subtree_remove(t, S(recs[i].filter), SUB(recs[i].sub),
							NULL), 0);
	cr_expect_eq(smq_subtree_count(t), 0);
	cr_expect_eq(smq_subtree_nodes(t), 0);
}

static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#define FLOOD_WORDS 16			/* 15 choices: 32768 levels of 128 bytes */
#define FLOOD_N (1u << (FLOOD_WORDS - 1))

/* Level @i of a family that had one 64-bit hash under the trie's previous
 * level hash whatever its seed (see test_hash.c): choice bit j flips bit 63
 * of word j and bits 63 and 34 of word j + 1. */
static void flood_level(uint32_t i, char *out)
{
	memset(out, 'a', FLOOD_WORDS * 8);
	out[FLOOD_WORDS * 8] = 0;
	for (int j = 0; j < FLOOD_WORDS - 1; j++) {
		if (!(i >> j & 1))
			continue;
		out[j * 8 + 7] ^= (char)0x80;
		out[(j + 1) * 8 + 7] ^= (char)0x80;
		out[(j + 1) * 8 + 4] ^= 0x04;
	}
}

/* With the old hash every one of these levels landed in one probe run of the
 * parent's child table, so the 32768 adds made ~5e8 full compares (seconds);
 * keyed, each add and match is O(1) expected (milliseconds). The bound is two
 * orders of magnitude from either, so a loaded machine does not flip it. */
Test(core_subtree, children_chosen_to_collide_stay_fast)
{
	char f[16 + FLOOD_WORDS * 8];
	double t0 = cpu_s(), spent;
	uint32_t i;

	memcpy(f, "flood/", 6);
	for (i = 0; i < FLOOD_N; i++) {
		flood_level(i, f + 6);
		cr_assert_eq(add(f, SUB(i), 0, 0, NULL), 0);
	}
	for (i = 0; i < FLOOD_N; i += 7) {
		flood_level(i, f + 6);
		cr_assert_eq(smq_subtree_match(t, S(f), NULL, &m), 0);
		cr_assert(m.n == 1 && m.subs[0].sub == SUB(i), "topic %u", i);
	}
	spent = cpu_s() - t0;
	cr_assert_eq(smq_subtree_count(t), FLOOD_N);
	cr_assert_lt(spent, 1.0, "%u colliding levels took %.2f s of CPU", FLOOD_N, spent);
}

/* One client joining 50,000 groups of one filter: each group is found by
 * name through the node's index (a scan made this ~1e9 compares, 8 s), and
 * removing them in another order keeps every remaining one findable. */
Test(core_subtree, many_shared_groups_on_one_filter)
{
	const unsigned n = 50000;
	double t0 = cpu_s(), spent;
	char f[64];
	unsigned flags, i;

	for (i = 0; i < n; i++) {
		snprintf(f, sizeof(f), "$share/g%u/sensors/+", i);
		cr_assert_eq(add(f, SUB(i % 7), 1, 0, &flags), 0);
		cr_assert_eq(flags, SMQ_SUBTREE_FIRST, "group %u is new", i);
	}
	snprintf(f, sizeof(f), "$share/g%u/sensors/+", 12345u);
	cr_assert_eq(add(f, SUB(12345 % 7), 2, 9, &flags), 0);
	cr_assert_eq(flags, SMQ_SUBTREE_REPLACED);
	cr_assert_eq(smq_subtree_match(t, S("sensors/x"), NULL, &m), 0);
	cr_assert_eq(m.nshared, n);
	for (i = 0; i < n; i += 2) {	/* every even group goes */
		snprintf(f, sizeof(f), "$share/g%u/sensors/+", i);
		cr_assert_eq(smq_subtree_remove(t, S(f), SUB(i % 7), &flags), 0);
		cr_assert_eq(flags, SMQ_SUBTREE_LAST);
	}
	for (i = 0; i < n; i++) {
		uint8_t opts = 0;

		snprintf(f, sizeof(f), "$share/g%u/sensors/+", i);
		cr_assert_eq(smq_subtree_find(t, S(f), SUB(i % 7), &opts, NULL), i % 2 == 1,
			     "group %u", i);
		cr_assert(i % 2 == 0 || opts == (i == 12345 ? 2 : 1));
	}
	spent = cpu_s() - t0;
	cr_assert_eq(smq_subtree_count(t), n / 2);
	cr_assert_lt(spent, 1.5, "took %.2f s of CPU", spent);
}

/* Matching with the levels a message carries finds exactly what matching
 * the topic string finds. */
Test(core_subtree, match_with_a_carried_split_equals_match_with_the_topic)
{
	const char *filters[] = { "a/b", "a/+", "a/#", "#", "+/b", "$SYS/#", "+/+/c", "a//c", "" };
	const char *topics[] = { "a/b", "a", "a/b/c", "$SYS/x", "x/b", "a//c", "/", "q/w/c" };
	struct smq_match m2;

	smq_match_init(&m2);
	for (unsigned i = 0; filters[i][0]; i++)
		cr_assert_eq(add(filters[i], SUB(i), 1, 0, NULL), 0);
	for (unsigned i = 0; i < sizeof(topics) / sizeof(*topics); i++) {
		struct smq_str tp = S(topics[i]);
		uint32_t n = smq_topic_nlevels(tp);
		struct smq_topic_level lv[8];

		smq_topic_split(tp, lv);
		cr_assert_eq(smq_subtree_match(t, tp, NULL, &m), 0);
		cr_assert_eq(smq_subtree_match_split(t, tp, lv, n, NULL, &m2), 0);
		cr_assert_eq(m.n, m2.n, "topic %s: %u vs %u", topics[i], m.n, m2.n);
		for (uint32_t k = 0; k < m.n; k++)
			cr_assert_not_null(entry_of(&m2, m.subs[k].sub), "topic %s", topics[i]);
	}
	smq_match_fini(&m2);
}

/* The one-pass split: offsets and lengths of every level, empty ones and
 * levels longer than the inline scan included, and the cap. */
Test(core_subtree, split_max_finds_every_level_or_reports_too_many)
{
	static const char long_level[] = "0123456789012345678901234567890123456789";
	char topic[128];
	struct smq_topic_level lv[16];
	struct smq_str tp;

	snprintf(topic, sizeof(topic), "/a//%s/b/", long_level);
	tp = S(topic);
	cr_assert_eq(smq_topic_split_max(tp, lv, 16), 6);
	cr_assert_eq(smq_topic_nlevels(tp), 6);
	cr_assert_eq(lv[0].off, 0);
	cr_assert_eq(lv[0].len, 0);
	cr_assert_eq(lv[1].off, 1);
	cr_assert_eq(lv[1].len, 1);
	cr_assert_eq(lv[2].len, 0);
	cr_assert_eq(lv[3].off, 4);
	cr_assert_eq(lv[3].len, sizeof(long_level) - 1);
	cr_assert_eq(lv[3].h, smq_hash_bytes(long_level, sizeof(long_level) - 1));
	cr_assert_eq(lv[4].len, 1);
	cr_assert_eq(topic[lv[4].off], 'b');
	cr_assert_eq(lv[5].off, tp.len);
	cr_assert_eq(lv[5].len, 0);
	cr_assert_eq(smq_topic_split_max(S("a/b/c"), lv, 3), 3);
	cr_assert_eq(smq_topic_split_max(S("a/b/c/d"), lv, 3), 0, "one level too many");
	cr_assert_eq(smq_topic_split_max(S(long_level), lv, 1), 1);
	cr_assert_eq(lv[0].len, sizeof(long_level) - 1);
}

/* Sorted ids of @e in @mm, as a comparable string. */
static void ids_of(const struct smq_match *mm, const struct smq_match_entry *e, char *out,
		   size_t cap)
{
	uint32_t v[16], n = e->ids_n < 16 ? e->ids_n : 16;
	size_t len = 0;

	memcpy(v, mm->ids + e->ids_off, n * sizeof(*v));
	for (uint32_t i = 1; i < n; i++)	/* insertion sort: a few ids */
		for (uint32_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
			uint32_t x = v[j];

			v[j] = v[j - 1];
			v[j - 1] = x;
		}
	out[0] = 0;
	for (uint32_t i = 0; i < n && len + 12 < cap; i++)
		len += (size_t)snprintf(out + len, cap - len, "%u,", v[i]);
}

/* The match cache answers exactly what a walk answers, through random
 * subscribes (No Local, ids, shared groups) and unsubscribes between the
 * matches, for every publisher. */
Test(core_subtree, the_match_cache_answers_what_a_walk_answers)
{
	static const char *filters[] = { "a/b", "a/+", "a/#", "#", "+/b", "a/b/c", "$share/g/a/b",
					 "x/y", "+/+", "a/+/c" };
	static const char *topics[] = { "a/b", "a", "a/b/c", "x/y", "q/b", "a/x/c", "$s/b" };
	struct smq_match cached, fresh;
	unsigned seed = 12345;
	char ia[256], ib[256];

	smq_match_init(&cached);
	smq_match_init(&fresh);
	cr_assert_eq(smq_match_cache_on(&cached), 0);
	for (int step = 0; step < 20000; step++) {
		unsigned r = (seed = seed * 1103515245u + 12345u) >> 8;
		const char *f = filters[r % 10];
		void *sub = SUB((r >> 4) % 6);

		if (r % 7 == 0) {
			uint8_t opts = (uint8_t)((r >> 8) % 3 | ((r >> 10) & 1 ? SMQ_SUBOPT_NO_LOCAL : 0));

			if (f[0] == '$')
				opts &= (uint8_t)~SMQ_SUBOPT_NO_LOCAL;
			add(f, sub, opts, (r >> 11) % 3, NULL);
		} else if (r % 7 == 1) {
			smq_subtree_remove(t, S(f), sub, NULL);
		} else {
			struct smq_str tp = S(topics[r % 7]);
			struct smq_topic_level lv[8];
			uint32_t n = smq_topic_split_max(tp, lv, 8);
			void *pub = (r >> 5) % 3 ? SUB((r >> 7) % 6) : NULL;

			cr_assert_eq(smq_subtree_match_split(t, tp, lv, n, pub, &cached), 0);
			cr_assert_eq(smq_subtree_match_split(t, tp, lv, n, pub, &fresh), 0);
			cr_assert_eq(cached.n, fresh.n, "step %d topic %s", step, topics[r % 7]);
			cr_assert_eq(cached.nids, fresh.nids, "step %d", step);
			cr_assert_eq(cached.nshared, fresh.nshared, "step %d", step);
			for (uint32_t k = 0; k < fresh.n; k++) {
				const struct smq_match_entry *a = &fresh.subs[k];
				const struct smq_match_entry *b = entry_of(&cached, a->sub);

				cr_assert_not_null(b, "step %d", step);
				cr_assert_eq(a->opts, b->opts, "step %d", step);
				ids_of(&fresh, a, ia, sizeof(ia));
				ids_of(&cached, b, ib, sizeof(ib));
				cr_assert_str_eq(ia, ib, "step %d", step);
			}
		}
	}
	smq_match_fini(&cached);
	smq_match_fini(&fresh);
}
