/* test_interest.c - the interest index: transitions in, shard masks out,
 * shared groups as per-group shard masks, round-robin picking. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/topic.h"
#include "core/interest.h"

static struct smq_str S(const char *s)
{
	return (struct smq_str){ (const uint8_t *)s, (uint32_t)strlen(s) };
}

static struct smq_interest *ix;
static struct smq_match m;
static struct smq_interest_groups gs;

static void setup(void)
{
	ix = smq_interest_new();
	cr_assert_not_null(ix);
	smq_match_init(&m);
	smq_interest_groups_init(&gs);
}

static void teardown(void)
{
	smq_interest_groups_fini(&gs);
	smq_match_fini(&m);
	smq_interest_free(ix);
}

TestSuite(core_interest, .init = setup, .fini = teardown);

static uint64_t match(const char *topic)
{
	return smq_interest_match(ix, S(topic), &m);
}

Test(core_interest, match_ors_the_shards_of_every_matching_filter)
{
	cr_assert_eq(smq_interest_set(ix, S("a/+"), 0, true), 0);
	cr_assert_eq(smq_interest_set(ix, S("a/b"), 3, true), 0);
	cr_assert_eq(smq_interest_set(ix, S("#"), 63, true), 0);
	cr_assert_eq(smq_interest_set(ix, S("a/#"), 3, true), 0);
	cr_expect_eq(match("a/b"), (1ull << 0) | (1ull << 3) | (1ull << 63));
	cr_expect_eq(match("a/c"), (1ull << 0) | (1ull << 3) | (1ull << 63));
	cr_expect_eq(match("a"), (1ull << 3) | (1ull << 63));
	cr_expect_eq(match("b"), 1ull << 63);
	cr_expect_eq(match("$SYS/x"), 0, "[MQTT-4.7.2-1]");
}

Test(core_interest, set_is_idempotent_and_removal_clears_bits)
{
	cr_assert_eq(smq_interest_set(ix, S("x/y"), 5, true), 0);
	cr_assert_eq(smq_interest_set(ix, S("x/y"), 5, true), 0);
	cr_assert_eq(smq_interest_set(ix, S("x/y"), 6, true), 0);
	cr_expect_eq(smq_interest_count(ix), 2);
	cr_expect(smq_interest_has(ix, S("x/y"), 5));
	cr_expect_eq(match("x/y"), (1ull << 5) | (1ull << 6));
	cr_assert_eq(smq_interest_set(ix, S("x/y"), 5, false), 0);
	cr_assert_eq(smq_interest_set(ix, S("x/y"), 5, false), 0);
	cr_assert_eq(smq_interest_set(ix, S("x/z"), 5, false), 0);
	cr_expect_not(smq_interest_has(ix, S("x/y"), 5));
	cr_expect_eq(match("x/y"), 1ull << 6);
	cr_assert_eq(smq_interest_set(ix, S("x/y"), 6, false), 0);
	cr_expect_eq(match("x/y"), 0);
	cr_expect_eq(smq_interest_count(ix), 0);
}

Test(core_interest, bad_shard_or_filter_refused)
{
	cr_expect_eq(smq_interest_set(ix, S("a"), 64, true), -EINVAL);
	cr_expect_eq(smq_interest_set(ix, S("a#"), 1, true), -EINVAL);
	cr_expect_eq(smq_interest_set(ix, S("$share//a"), 1, true), -EINVAL);
	cr_expect_not(smq_interest_has(ix, S("a"), 64));
	cr_expect_eq(smq_interest_count(ix), 0);
}

Test(core_interest, shared_groups_come_out_as_shard_masks)
{
	uint64_t mask;
	uint32_t i;
	bool seen_g = false, seen_h = false;

	cr_assert_eq(smq_interest_set(ix, S("$share/g/s/+"), 1, true), 0);
	cr_assert_eq(smq_interest_set(ix, S("$share/g/s/+"), 4, true), 0);
	cr_assert_eq(smq_interest_set(ix, S("$share/h/s/#"), 2, true), 0);
	cr_assert_eq(smq_interest_set(ix, S("s/+"), 7, true), 0);
	cr_expect_eq(match("s/x"), 1ull << 7, "shared groups are not in the plain mask");
	cr_assert_eq(smq_interest_match_ex(ix, S("s/x"), NULL, 0, &m, &mask, &gs), 0);
	cr_expect_eq(mask, 1ull << 7);
	cr_assert_eq(gs.n, 2);
	for (i = 0; i < gs.n; i++) {
		if (gs.v[i].group.len == 1 && gs.v[i].group.p[0] == 'g') {
			seen_g = true;
			cr_expect_eq(gs.v[i].shards, (1ull << 1) | (1ull << 4));
			cr_expect_eq(gs.v[i].filter.len, 3);
		} else {
			seen_h = true;
			cr_expect_eq(gs.v[i].shards, 1ull << 2);
		}
	}
	cr_expect(seen_g && seen_h);
	cr_assert_eq(smq_interest_set(ix, S("$share/g/s/+"), 1, false), 0);
	cr_assert_eq(smq_interest_set(ix, S("$share/h/s/#"), 2, false), 0);
	cr_assert_eq(smq_interest_match_ex(ix, S("s/x"), NULL, 0, &m, &mask, &gs), 0);
	cr_assert_eq(gs.n, 1);
	cr_expect_eq(gs.v[0].shards, 1ull << 4);
}

Test(core_interest, pick_rotates_over_eligible_shards)
{
	uint64_t mask;
	int i, got[6];

	cr_assert_eq(smq_interest_set(ix, S("$share/g/q"), 2, true), 0);
	cr_assert_eq(smq_interest_set(ix, S("$share/g/q"), 5, true), 0);
	cr_assert_eq(smq_interest_set(ix, S("$share/g/q"), 9, true), 0);
	for (i = 0; i < 6; i++) {
		/* a fresh match each time: the cursor lives in the index */
		cr_assert_eq(smq_interest_match_ex(ix, S("q"), NULL, 0, &m, &mask, &gs), 0);
		cr_assert_eq(gs.n, 1);
		got[i] = smq_interest_pick(&gs.v[0], ~0ull);
	}
	cr_expect_eq(got[0], 2);
	cr_expect_eq(got[1], 5);
	cr_expect_eq(got[2], 9);
	cr_expect_eq(got[3], 2);
	cr_expect_eq(got[4], 5);
	cr_expect_eq(got[5], 9);
	/* shard 5 offline: skipped */
	cr_expect_eq(smq_interest_pick(&gs.v[0], ~(1ull << 5)), 2);
	cr_expect_eq(smq_interest_pick(&gs.v[0], ~(1ull << 5)), 9);
	cr_expect_eq(smq_interest_pick(&gs.v[0], ~(1ull << 5)), 2);
	cr_expect_eq(smq_interest_pick(&gs.v[0], 1ull << 1), -ENOENT);
}

Test(core_interest, many_shards_and_filters_match_the_reference)
{
	char f[32], topic[32];
	unsigned s, i, k;
	uint64_t want;

	/* shard s subscribes to dev/<s % 10>/+ and, for even s, dev/# */
	for (s = 0; s < 64; s++) {
		snprintf(f, sizeof(f), "dev/%u/+", s % 10);
		cr_assert_eq(smq_interest_set(ix, S(f), s, true), 0);
		if (s % 2 == 0)
			cr_assert_eq(smq_interest_set(ix, S("dev/#"), s, true), 0);
	}
	for (i = 0; i < 12; i++) {
		snprintf(topic, sizeof(topic), "dev/%u/t", i);
		want = 0;
		for (k = 0; k < 64; k++) {
			snprintf(f, sizeof(f), "dev/%u/+", k % 10);
			if (smq_topic_match(S(f), S(topic)) || k % 2 == 0)
				want |= 1ull << k;
		}
		cr_expect_eq(match(topic), want, "topic %s", topic);
	}
}

/* A burst of transitions for thousands of shared groups of one filter, from
 * several shards (one client's "$share/g0/f" .. "$share/gN/f" on each): every
 * group keeps its own shard mask through the node's group index, also after
 * half the groups lose a shard and some lose their last one. */
Test(core_interest, thousands_of_groups_keep_their_shard_masks)
{
	enum { NG = 5000 };
	static uint64_t want[NG];
	uint64_t mask;
	char f[48];
	unsigned g;

	for (g = 0; g < NG; g++) {
		snprintf(f, sizeof(f), "$share/g%u/fleet/+", g);
		want[g] = (1ull << (g % 3)) | (1ull << 10);
		cr_assert_eq(smq_interest_set(ix, S(f), g % 3, true), 0);
		cr_assert_eq(smq_interest_set(ix, S(f), 10, true), 0);
	}
	for (g = 0; g < NG; g += 2) {
		snprintf(f, sizeof(f), "$share/g%u/fleet/+", g);
		cr_assert_eq(smq_interest_set(ix, S(f), 10, false), 0);
		want[g] &= ~(1ull << 10);
		if (g % 10 == 0) {	/* and its last shard: the group goes */
			cr_assert_eq(smq_interest_set(ix, S(f), g % 3, false), 0);
			want[g] = 0;
		}
	}
	cr_assert_eq(smq_interest_match_ex(ix, S("fleet/x"), NULL, 0, &m, &mask, &gs), 0);
	cr_assert_eq(mask, 0, "no ordinary subscriber");
	cr_assert_eq(gs.n, NG - NG / 10);
	for (uint32_t i = 0; i < gs.n; i++) {
		cr_assert(sscanf((const char *)gs.v[i].group.p, "g%u", &g) == 1 && g < NG);
		cr_assert_eq(gs.v[i].shards, want[g], "group g%u", g);
		want[g] = 0;	/* reported once */
	}
	for (g = 0; g < NG; g++)
		cr_assert_eq(want[g], 0, "group g%u missing", g);
}
