/* fuzz_topic.c - libFuzzer target: topic validation, "$share/" parsing, and
 * the trie matcher against the reference matcher.
 *
 * Input: filter bytes, one NUL, topic bytes (no NUL: the whole input is the
 * filter and the topic is empty). Each part goes through the validators;
 * when the filter is valid, a one-subscription trie must agree with
 * smq_topic_match(), and removing the subscription must leave no node.
 *
 *	clang -std=c11 -D_GNU_SOURCE -O1 -g -I. -fsanitize=fuzzer,address,undefined \
 *		-o build-fuzz/fuzz_topic tests/fuzz/fuzz_topic.c core/topic.c core/subtree.c
 *	./build-fuzz/fuzz_topic -max_total_time=60 tests/fuzz/corpus/fuzz_topic
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/subtree.h"
#include "core/topic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define KEY ((void *)(uintptr_t)0x10)

static void check_trie(struct smq_str filter, struct smq_str inner, bool shared,
		       struct smq_str topic)
{
	static struct smq_match m;	/* reused across runs, as the broker does */
	struct smq_subtree *t = smq_subtree_new();
	unsigned fl;
	bool want, got;

	if (!t)
		abort();
	if (smq_subtree_add(t, filter, KEY, 1, 5, &fl) || fl != SMQ_SUBTREE_FIRST)
		abort();
	if (smq_subtree_match(t, topic, NULL, &m))
		abort();
	want = smq_topic_match(inner, topic);
	got = shared ? m.nshared == 1 : m.n == 1;
	if (want != got || m.n + m.nshared > 1)
		abort();
	if (got && !shared && (m.subs[0].ids_n != 1 || m.ids[m.subs[0].ids_off] != 5))
		abort();
	if (smq_subtree_remove(t, filter, KEY, &fl) || fl != SMQ_SUBTREE_LAST)
		abort();
	if (smq_subtree_nodes(t) != 0 || smq_subtree_count(t) != 0)
		abort();
	smq_subtree_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	struct smq_str filter, topic, group, inner;
	bool fvalid, tvalid;
	int shared;

	if (size > 70000)
		return 0;
	filter.p = data;
	filter.len = nul ? (uint32_t)(nul - data) : (uint32_t)size;
	topic.p = nul ? nul + 1 : data + size;
	topic.len = nul ? (uint32_t)(size - filter.len - 1) : 0;

	fvalid = smq_topic_filter_valid(filter);
	tvalid = smq_topic_name_valid(topic);
	(void)smq_topic_name_valid(filter);
	(void)smq_topic_filter_valid(topic);
	(void)smq_topic_is_wild(filter);
	(void)smq_topic_match(filter, topic);	/* defined for any bytes */
	shared = smq_topic_parse_shared(filter, &group, &inner);
	if (shared == 0 && (!group.len || !smq_topic_filter_valid(inner)))
		abort();
	if (shared == 1)
		inner = filter;
	if (shared == 0 && !fvalid)	/* a valid shared filter is a valid filter */
		abort();
	/* The two matchers must agree on valid topics; they also agree on
	 * invalid ones (a valid filter has no literal '+' or '#' level to
	 * confuse), so every topic is checked, which fuzzes more. */
	(void)tvalid;
	if (shared >= 0 && fvalid)
		check_trie(filter, inner, shared == 0, topic);
	return 0;
}
