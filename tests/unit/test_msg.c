/* test_msg.c - refcounted immutable messages: layout, references across
 * threads, expiry arithmetic, forwarded 5.0 properties. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/codec.h"
#include "core/msg.h"

static struct smq_str S(const char *s)
{
	return (struct smq_str){ (const uint8_t *)s, (uint32_t)strlen(s) };
}

static bool eq(struct smq_str a, const char *s)
{
	return a.len == strlen(s) && !memcmp(a.p, s, a.len);
}

Test(core_msg, new_copies_topic_props_payload_contiguously)
{
	char topic[] = "a/b", payload[] = "hello";
	struct smq_msg_spec sp = { .topic = S(topic), .payload = S(payload),
				   .props = S("\x01\x01"), .qos = 2, .retain = true };
	struct smq_msg *m = smq_msg_new(&sp);

	topic[0] = 'X';
	payload[0] = 'X';
	cr_assert(eq(smq_msg_topic(m), "a/b"));
	cr_assert(eq(smq_msg_payload(m), "hello"));
	cr_assert_eq(smq_msg_props(m).len, 2);
	cr_assert_eq(smq_msg_tail(m).len, 7);
	cr_assert_eq(smq_msg_tail(m).p, smq_msg_props(m).p);
	cr_assert_eq(smq_msg_props(m).p + 2, smq_msg_payload(m).p);
	cr_assert_eq(m->qos, 2);
	cr_assert(m->retain);
	cr_assert_eq(smq_msg_size(m), 10);
	smq_msg_unref(m);
}

Test(core_msg, empty_payload_and_bad_specs)
{
	struct smq_msg_spec sp = { .topic = S("t") };
	struct smq_msg *m = smq_msg_new(&sp);

	cr_assert_eq(smq_msg_payload(m).len, 0);
	smq_msg_unref(m);
	sp.qos = 3;
	cr_assert_null(smq_msg_new(&sp));
	smq_msg_unref(NULL);
}

Test(core_msg, references_count_up_and_down)
{
	struct smq_msg_spec sp = { .topic = S("t"), .payload = S("x") };
	struct smq_msg *m = smq_msg_new(&sp);

	cr_assert_eq(smq_msg_refs(m), 1);
	cr_assert_eq(smq_msg_ref(m), m);
	smq_msg_ref(m);
	cr_assert_eq(smq_msg_refs(m), 3);
	smq_msg_unref(m);
	smq_msg_unref(m);
	cr_assert_eq(smq_msg_refs(m), 1);
	smq_msg_unref(m);
}

static void *churn(void *arg)
{
	struct smq_msg *m = arg;

	for (int i = 0; i < 100000; i++) {
		smq_msg_ref(m);
		smq_msg_unref(m);
	}
	smq_msg_unref(m);	/* the reference the spawner gave this thread */
	return NULL;
}

Test(core_msg, references_from_many_threads_balance)
{
	struct smq_msg_spec sp = { .topic = S("t"), .payload = S("x") };
	struct smq_msg *m = smq_msg_new(&sp);
	pthread_t th[4];

	for (int i = 0; i < 4; i++) {
		smq_msg_ref(m);
		pthread_create(&th[i], NULL, churn, m);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	cr_assert_eq(smq_msg_refs(m), 1);
	smq_msg_unref(m);
}

Test(core_msg, expiry_counts_from_creation)
{
	struct smq_msg_spec sp = { .topic = S("t"), .has_expiry = true, .expiry_s = 10,
				   .created_ms = 5000 };
	struct smq_msg *m = smq_msg_new(&sp);

	cr_assert_not(smq_msg_expired(m, 5000));
	cr_assert_eq(smq_msg_expiry_left(m, 5000), 10);
	cr_assert_eq(smq_msg_expiry_left(m, 5001), 10, "rounded up");
	cr_assert_eq(smq_msg_expiry_left(m, 14001), 1);
	cr_assert_not(smq_msg_expired(m, 14999));
	cr_assert(smq_msg_expired(m, 15000));
	cr_assert_eq(smq_msg_expiry_left(m, 15000), 0);
	smq_msg_unref(m);
	sp.has_expiry = false;
	m = smq_msg_new(&sp);
	cr_assert_not(smq_msg_expired(m, UINT64_MAX));
	smq_msg_unref(m);
}

Test(core_msg, forwarded_properties_encode_and_decode_back)
{
	struct smq_props in = { 0 }, *out;
	uint8_t user[32], props[128], pkt[256];
	struct smq_packet dec;
	long ulen = smq_props_put_user(user, sizeof(user), S("k"), S("v"));
	long n, pos = 0;

	SMQ_SET(&in, SMQ_PROP_PAYLOAD_FORMAT);
	in.payload_format = 1;
	SMQ_SET(&in, SMQ_PROP_CONTENT_TYPE);
	in.content_type = S("json");
	SMQ_SET(&in, SMQ_PROP_CORRELATION_DATA);
	in.correlation_data = (struct smq_str){ (const uint8_t *)"\0\1", 2 };
	SMQ_SET(&in, SMQ_PROP_RESPONSE_TOPIC);
	in.response_topic = S("r");
	SMQ_SET(&in, SMQ_PROP_USER);
	in.user = (struct smq_str){ user, (uint32_t)ulen };
	SMQ_SET(&in, SMQ_PROP_TOPIC_ALIAS);	/* never forwarded */
	in.topic_alias = 3;
	SMQ_SET(&in, SMQ_PROP_MESSAGE_EXPIRY);	/* re-encoded per delivery */
	in.message_expiry = 3;
	n = smq_msg_props_encode(&in, NULL, 0);
	cr_assert_eq(smq_msg_props_encode(&in, props, sizeof(props)), n);
	cr_assert_eq(smq_msg_props_encode(&in, props, (size_t)n - 1), -SMQ_RC_PACKET_TOO_LARGE);
	/* wrap into a 5.0 PUBLISH QoS 0 "t" and let the codec read it */
	pkt[pos++] = 0x30;
	pkt[pos++] = (uint8_t)(3 + 1 + n + 2);
	pkt[pos++] = 0;
	pkt[pos++] = 1;
	pkt[pos++] = 't';
	pkt[pos++] = (uint8_t)n;
	memcpy(pkt + pos, props, (size_t)n);
	pos += n;
	pkt[pos++] = 'h';
	pkt[pos++] = 'i';
	cr_assert_eq(smq_decode(pkt, (size_t)pos, SMQ_V5, &dec), 0);
	out = &dec.props;
	cr_assert_eq(out->payload_format, 1);
	cr_assert(eq(out->content_type, "json"));
	cr_assert_eq(out->correlation_data.len, 2);
	cr_assert(eq(out->response_topic, "r"));
	cr_assert_eq(out->user.len, (uint32_t)ulen);
	cr_assert_not(SMQ_HAS(out, SMQ_PROP_TOPIC_ALIAS));
	cr_assert_not(SMQ_HAS(out, SMQ_PROP_MESSAGE_EXPIRY));
}

Test(core_msg, no_properties_encode_to_nothing)
{
	struct smq_props none = { 0 };

	cr_assert_eq(smq_msg_props_encode(&none, NULL, 0), 0);
}

/* A sender may put other properties between its user properties; the
 * decoder's user view then spans them, and forwarding must copy only the
 * user properties (a plain copy of the view sent content type twice). */
Test(core_msg, interleaved_user_properties_forwarded_once)
{
	static const uint8_t pkt[] = {
		0x30, 21, 0, 1, 't', 17,
		0x26, 0, 1, 'a', 0, 1, '1',	/* user a=1 */
		0x03, 0, 1, 'j',		/* content type "j" */
		0x26, 0, 1, 'b', 0, 0,		/* user b="" */
	};
	struct smq_packet dec, again;
	uint8_t props[64], wrapped[96];
	struct smq_str k, v;
	uint32_t it = 0;
	long n, pos = 0;
	int users = 0;

	cr_assert_eq(smq_decode(pkt, sizeof(pkt), SMQ_V5, &dec), 0);
	n = smq_msg_props_encode(&dec.props, NULL, 0);
	cr_assert_eq(n, 4 + 7 + 6, "content type + two user properties, each once");
	cr_assert_eq(smq_msg_props_encode(&dec.props, props, sizeof(props)), n);
	wrapped[pos++] = 0x30;
	wrapped[pos++] = (uint8_t)(3 + 1 + n);
	wrapped[pos++] = 0;
	wrapped[pos++] = 1;
	wrapped[pos++] = 't';
	wrapped[pos++] = (uint8_t)n;
	memcpy(wrapped + pos, props, (size_t)n);
	pos += n;
	cr_assert_eq(smq_decode(wrapped, (size_t)pos, SMQ_V5, &again), 0,
		     "a repeated content type would be a protocol error");
	while (smq_props_next_user(&again.props, &it, &k, &v))
		users++;
	cr_assert_eq(users, 2);
}

Test(core_msg, carries_its_topic_split_into_levels)
{
	struct smq_msg_spec sp = { .topic = S("a//bc/"), .payload = S("p") };
	struct smq_msg *m = smq_msg_new(&sp);
	const struct smq_topic_level *lv = smq_msg_levels(m);
	struct smq_topic_level want[4];
	char deep[64] = "";

	cr_assert_eq(m->nlev, 4);
	cr_assert_eq((uintptr_t)lv % 8, 0, "aligned");
	smq_topic_split(smq_msg_topic(m), want);
	cr_assert_eq(memcmp(lv, want, sizeof(want)), 0);
	cr_assert_eq(lv[2].off, 3);
	cr_assert_eq(lv[2].len, 2);
	cr_assert_eq(lv[3].len, 0);
	smq_msg_unref(m);
	/* more levels than carried: none, each match splits */
	for (int i = 0; i < 20; i++)
		strcat(deep, "x/");
	sp.topic = S(deep);
	m = smq_msg_new(&sp);
	cr_assert_eq(m->nlev, 0);
	cr_assert_null(smq_msg_levels(m));
	smq_msg_unref(m);
}

Test(core_msg, a_batch_takes_n_at_once_and_gives_back_the_rest)
{
	struct smq_msg_spec sp = { .topic = S("t"), .payload = S("x") };
	struct smq_msg *m = smq_msg_new(&sp);

	smq_msg_batch_begin(m, 5);
	cr_assert_eq(smq_msg_refs(m), 6, "the batch is taken up front");
	smq_msg_ref(m);
	smq_msg_ref(m);
	smq_msg_ref(m);
	cr_assert_eq(smq_msg_refs(m), 6, "refs inside the batch spend it");
	smq_msg_batch_end(m);
	cr_assert_eq(smq_msg_refs(m), 4, "the unspent two went back");
	for (int i = 0; i < 3; i++)
		smq_msg_unref(m);
	cr_assert_eq(smq_msg_refs(m), 1);
	smq_msg_unref(m);
}

Test(core_msg, a_batch_spent_past_its_size_falls_back_to_atomic_refs)
{
	struct smq_msg_spec sp = { .topic = S("t"), .payload = S("x") };
	struct smq_msg *m = smq_msg_new(&sp);

	smq_msg_batch_begin(m, 2);
	for (int i = 0; i < 4; i++)
		smq_msg_ref(m);
	smq_msg_batch_end(m);
	cr_assert_eq(smq_msg_refs(m), 5);
	for (int i = 0; i < 4; i++)
		smq_msg_unref(m);
	cr_assert_eq(smq_msg_refs(m), 1);
	smq_msg_unref(m);
}

Test(core_msg, a_second_batch_while_one_is_open_is_not_taken)
{
	struct smq_msg_spec sp = { .topic = S("t"), .payload = S("x") };
	struct smq_msg *a = smq_msg_new(&sp), *b = smq_msg_new(&sp);

	smq_msg_batch_begin(a, 3);
	smq_msg_batch_begin(b, 3);
	cr_assert_eq(smq_msg_refs(b), 1, "only one batch per thread");
	smq_msg_ref(b);
	cr_assert_eq(smq_msg_refs(b), 2, "b's refs are plain ones");
	smq_msg_batch_end(b);
	cr_assert_eq(smq_msg_refs(b), 2, "ending the batch never opened gives nothing back");
	smq_msg_ref(a);
	smq_msg_batch_end(a);
	cr_assert_eq(smq_msg_refs(a), 2);
	smq_msg_batch_begin(b, 1);
	cr_assert_eq(smq_msg_refs(b), 2, "a batch of one is a plain ref later");
	smq_msg_batch_end(b);
	smq_msg_unref(a);
	smq_msg_unref(a);
	smq_msg_unref(b);
	smq_msg_unref(b);
}

static void *ref_and_keep(void *arg)
{
	smq_msg_ref(arg);	/* another thread: never spends this thread's batch */
	return NULL;
}

Test(core_msg, a_batch_is_this_threads_only)
{
	struct smq_msg_spec sp = { .topic = S("t"), .payload = S("x") };
	struct smq_msg *m = smq_msg_new(&sp);
	pthread_t th;

	smq_msg_batch_begin(m, 4);
	pthread_create(&th, NULL, ref_and_keep, m);
	pthread_join(th, NULL);
	cr_assert_eq(smq_msg_refs(m), 6);
	smq_msg_batch_end(m);
	cr_assert_eq(smq_msg_refs(m), 2);
	smq_msg_unref(m);
	smq_msg_unref(m);
}

/* A message built through the split cache carries the same levels as one
 * split from scratch, for repeated, evicting, long and deep topics. */
Test(core_msg, the_split_cache_gives_what_a_fresh_split_gives)
{
	struct smq_split_cache *c = smq_split_cache_new();
	char topics[600][64];
	int n = 0;

	cr_assert_not_null(c);
	for (int i = 0; i < 500; i++)	/* more topics than slots: evictions */
		snprintf(topics[n++], sizeof(topics[0]), "dev/%d/temp", i);
	snprintf(topics[n++], sizeof(topics[0]), "a/b/c/d/e/f/g/h/i/j");	/* > 8 levels */
	snprintf(topics[n++], sizeof(topics[0]), "%s", "0123456789012345678901234567890123456789/x/yz");
	snprintf(topics[n++], sizeof(topics[0]), "/");
	snprintf(topics[n++], sizeof(topics[0]), "dev/1/tem");	/* a prefix of a cached one */
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < n; i++) {
			int k = round == 1 ? n - 1 - i : i;
			struct smq_msg_spec fresh = { .topic = S(topics[k]), .payload = S("p") };
			struct smq_msg_spec cached = fresh;
			struct smq_msg *a, *b;

			cached.split = c;
			a = smq_msg_new(&fresh);
			b = smq_msg_new(&cached);
			cr_assert_eq(a->nlev, b->nlev, "%s", topics[k]);
			cr_assert_gt(a->nlev, 0);
			cr_assert_eq(memcmp(smq_msg_levels(a), smq_msg_levels(b),
					    a->nlev * sizeof(struct smq_topic_level)), 0, "%s", topics[k]);
			smq_msg_unref(a);
			smq_msg_unref(b);
		}
	}
	smq_split_cache_free(c);
}
