/* test_retain.c - the shared retained store: set, replace, delete, wildcard
 * lookups, the '$' rule, limits, and concurrent use from several threads. */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/msg.h"
#include "core/retain.h"

static struct smq_msg *mk(const char *topic, const char *payload)
{
	struct smq_msg_spec s = {
		.topic = { (const uint8_t *)topic, (uint32_t)strlen(topic) },
		.payload = { (const uint8_t *)payload, (uint32_t)strlen(payload) },
		.qos = 1,
		.retain = true,
	};
	struct smq_msg *m = smq_msg_new(&s);

	cr_assert(m);
	return m;
}

static void put(struct smq_retain *r, const char *topic, const char *payload)
{
	struct smq_msg *m = mk(topic, payload);

	cr_assert_eq(smq_retain_set(r, m), 0);
	smq_msg_unref(m);
}

static int cmpstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Match @filter and return the sorted "topic=payload" list joined by ','. */
static char *lookup(struct smq_retain *r, const char *filter)
{
	struct smq_msg **v;
	long n = smq_retain_match(r, (struct smq_str){ (const uint8_t *)filter,
						       (uint32_t)strlen(filter) },
				  0, &v);
	char **items;
	static char buf[4096];

	cr_assert_geq(n, 0);
	items = calloc((size_t)n + 1, sizeof(*items));
	for (long i = 0; i < n; i++) {
		struct smq_str t = smq_msg_topic(v[i]), p = smq_msg_payload(v[i]);

		items[i] = malloc(t.len + p.len + 2);
		memcpy(items[i], t.p, t.len);
		items[i][t.len] = '=';
		memcpy(items[i] + t.len + 1, p.p, p.len);
		items[i][t.len + 1 + p.len] = 0;
		smq_msg_unref(v[i]);
	}
	free(v);
	qsort(items, (size_t)n, sizeof(*items), cmpstr);
	buf[0] = 0;
	for (long i = 0; i < n; i++) {
		if (i)
			strcat(buf, ",");
		strcat(buf, items[i]);
		free(items[i]);
	}
	free(items);
	return buf;
}

Test(core_retain, exact_topic_is_found_and_replaced)
{
	struct smq_retain *r = smq_retain_new(0);

	put(r, "a/b", "1");
	cr_assert_str_eq(lookup(r, "a/b"), "a/b=1");
	put(r, "a/b", "2");
	cr_assert_str_eq(lookup(r, "a/b"), "a/b=2");
	cr_assert_eq(smq_retain_count(r), 1);
	cr_assert_str_eq(lookup(r, "a"), "");
	cr_assert_str_eq(lookup(r, "a/b/c"), "");
	smq_retain_free(r);
}

Test(core_retain, empty_payload_deletes_MQTT_3_3_1_10)
{
	struct smq_retain *r = smq_retain_new(0);

	put(r, "a/b", "1");
	put(r, "a/c", "2");
	put(r, "a/b", "");
	cr_assert_str_eq(lookup(r, "a/#"), "a/c=2");
	cr_assert_eq(smq_retain_count(r), 1);
	put(r, "x/never", "");		/* deleting nothing is fine */
	cr_assert_eq(smq_retain_count(r), 1);
	smq_retain_free(r);
}

Test(core_retain, wildcards_match_levels)
{
	struct smq_retain *r = smq_retain_new(0);

	put(r, "a", "0");
	put(r, "a/b", "1");
	put(r, "a/c", "2");
	put(r, "a/b/c", "3");
	put(r, "a//c", "4");
	put(r, "b/b", "5");
	cr_assert_str_eq(lookup(r, "a/+"), "a/b=1,a/c=2");
	cr_assert_str_eq(lookup(r, "a/#"), "a//c=4,a/b/c=3,a/b=1,a/c=2,a=0");
	cr_assert_str_eq(lookup(r, "+/b"), "a/b=1,b/b=5");
	cr_assert_str_eq(lookup(r, "a/+/c"), "a//c=4,a/b/c=3");
	cr_assert_str_eq(lookup(r, "#"), "a//c=4,a/b/c=3,a/b=1,a/c=2,a=0,b/b=5");
	cr_assert_str_eq(lookup(r, "+/+/+"), "a//c=4,a/b/c=3");
	smq_retain_free(r);
}

Test(core_retain, dollar_topics_not_matched_by_leading_wildcard_MQTT_4_7_2_1)
{
	struct smq_retain *r = smq_retain_new(0);

	put(r, "$SYS/x", "1");
	put(r, "y", "2");
	cr_assert_str_eq(lookup(r, "#"), "y=2");
	cr_assert_str_eq(lookup(r, "+/x"), "");
	cr_assert_str_eq(lookup(r, "$SYS/#"), "$SYS/x=1");
	cr_assert_str_eq(lookup(r, "$SYS/+"), "$SYS/x=1");
	smq_retain_free(r);
}

Test(core_retain, limit_refuses_new_topics_but_allows_replace)
{
	struct smq_retain *r = smq_retain_new(2);
	struct smq_msg *m = mk("c", "3");

	put(r, "a", "1");
	put(r, "b", "2");
	cr_assert_eq(smq_retain_set(r, m), -ENOSPC);
	smq_msg_unref(m);
	put(r, "a", "9");
	cr_assert_str_eq(lookup(r, "#"), "a=9,b=2");
	put(r, "b", "");
	put(r, "c", "3");
	cr_assert_str_eq(lookup(r, "#"), "a=9,c=3");
	smq_retain_free(r);
}

Test(core_retain, max_bounds_the_answer)
{
	struct smq_retain *r = smq_retain_new(0);
	struct smq_msg **v;
	char t[16];

	for (int i = 0; i < 50; i++) {
		snprintf(t, sizeof(t), "t/%d", i);
		put(r, t, "x");
	}
	cr_assert_eq(smq_retain_match(r, SMQ_STR("t/#"), 7, &v), 7);
	for (int i = 0; i < 7; i++)
		smq_msg_unref(v[i]);
	free(v);
	smq_retain_free(r);
}

Test(core_retain, store_holds_its_own_reference)
{
	struct smq_retain *r = smq_retain_new(0);
	struct smq_msg *m = mk("a", "1");

	cr_assert_eq(smq_retain_set(r, m), 0);
	cr_assert_eq(smq_msg_refs(m), 2);
	put(r, "a", "2");	/* replaced: the store dropped its reference */
	cr_assert_eq(smq_msg_refs(m), 1);
	smq_msg_unref(m);
	smq_retain_free(r);
}

Test(core_retain, deep_topics_do_not_recurse)
{
	struct smq_retain *r = smq_retain_new(0);
	size_t n = 60001;
	struct smq_msg **v;
	char *t = malloc(n + 1);

	for (size_t i = 0; i < n; i++)
		t[i] = (i % 2) ? '/' : 'x';
	t[n] = 0;
	put(r, t, "deep");
	cr_assert_eq(smq_retain_count(r), 1);
	cr_assert_eq(smq_retain_match(r, SMQ_STR("#"), 0, &v), 1);
	cr_assert_eq(smq_msg_topic(v[0]).len, n);
	smq_msg_unref(v[0]);
	free(v);
	cr_assert_eq(smq_retain_match(r, SMQ_STR("x/+/#"), 0, &v), 1);
	smq_msg_unref(v[0]);
	free(v);
	free(t);
	smq_retain_free(r);
}

static void *hammer(void *arg)
{
	struct smq_retain *r = arg;
	char t[32];

	for (int i = 0; i < 2000; i++) {
		struct smq_msg **v;
		long n;

		snprintf(t, sizeof(t), "h/%d", i % 37);
		put(r, t, (i % 5) ? "v" : "");
		n = smq_retain_match(r, SMQ_STR("h/#"), 0, &v);
		for (long k = 0; k < n; k++)
			smq_msg_unref(v[k]);
		free(v);
	}
	return NULL;
}

Test(core_retain, concurrent_set_and_match_are_safe)
{
	struct smq_retain *r = smq_retain_new(0);
	pthread_t th[4];

	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, hammer, r);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	cr_assert_leq(smq_retain_count(r), 37);
	smq_retain_free(r);
}

static uint32_t fnv1a(const char *p, size_t n)
{
	uint32_t h = 2166136261u;

	while (n--)
		h = (h ^ (uint8_t)*p++) * 16777619u;
	return h;
}

/* Sibling levels chosen offline to share the low 12 bits of FNV-1a, the
 * store's old level hash: then they all sat in one bucket chain of their
 * parent. Whatever the hash, every one must be stored, found exactly, matched
 * by '+' and deleted; with the keyed hash they no longer share a chain. */
Test(core_retain, sibling_levels_colliding_under_fnv1a_all_kept)
{
	enum { N = 2000 };
	struct smq_retain *r = smq_retain_new(0);
	struct smq_msg **v;
	char t[32] = "flood/";
	unsigned found = 0;

	for (uint32_t c = 0; found < N; c++) {
		for (int k = 0; k < 8; k++)
			t[6 + k] = "0123456789abcdef"[c >> (28 - 4 * k) & 15];
		t[14] = 0;
		if ((fnv1a(t + 6, 8) & 0xfff) != 0x123)
			continue;
		found++;
		put(r, t, t + 6);
	}
	cr_assert_eq(smq_retain_count(r), N);
	cr_assert_eq(smq_retain_match(r, SMQ_STR("flood/+"), 0, &v), N);
	for (int i = 0; i < N; i++) {
		struct smq_str topic = smq_msg_topic(v[i]), p = smq_msg_payload(v[i]);

		cr_assert(topic.len == 14 && p.len == 8 && !memcmp(topic.p + 6, p.p, 8));
		smq_msg_unref(v[i]);
	}
	free(v);
	cr_assert_str_eq(lookup(r, "flood/00000000"), "");
	found = 0;
	for (uint32_t c = 0; found < N; c++) {
		for (int k = 0; k < 8; k++)
			t[6 + k] = "0123456789abcdef"[c >> (28 - 4 * k) & 15];
		if ((fnv1a(t + 6, 8) & 0xfff) != 0x123)
			continue;
		found++;
		cr_assert_eq(smq_retain_match(r, (struct smq_str){ (const uint8_t *)t, 14 }, 0, &v),
			     1, "%s", t);
		smq_msg_unref(v[0]);
		free(v);
		put(r, t, "");		/* an empty payload deletes */
	}
	cr_assert_eq(smq_retain_count(r), 0);
	smq_retain_free(r);
}
