/* test_session.c - session QoS state: packet ids, the in-flight window,
 * queue bounds, QoS 1/2 acknowledgement flows, inbound QoS 2 de-duplication,
 * the subscriptions list and its index (against a reference model, at scale,
 * in linear time), and the keyed session-table hash. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/msg.h"
#include "core/session.h"

static struct smq_msg *mk(const char *payload)
{
	struct smq_msg_spec sp = {
		.topic = SMQ_STR("t"),
		.payload = { (const uint8_t *)payload, (uint32_t)strlen(payload) },
		.qos = 2,
	};
	struct smq_msg *m = smq_msg_new(&sp);

	cr_assert(m);
	return m;
}

static const struct smq_session_limits big = { .max_queued = 1000, .max_queued_bytes = 0 };

Test(core_session, new_session_copies_client_id)
{
	char id[] = "client-1";
	struct smq_session *s = smq_session_new((struct smq_str){ (uint8_t *)id, 8 });

	id[0] = 'X';
	cr_assert_str_eq(s->client_id, "client-1");
	cr_assert_eq(s->id_len, 8);
	cr_assert_eq(s->hash, smq_session_hash(SMQ_STR("client-1")));
	smq_session_free(s);
}

Test(core_session, new_session_allocates_nothing_more)
{
	struct smq_session *s = smq_session_new(SMQ_STR("c"));

	/* an idle connection's session: packet id maps and the rare part come
	 * on first use, the id lives in the session's own allocation */
	cr_assert_null(s->out);
	cr_assert_null(s->in);
	cr_assert_null(s->rare);
	cr_assert_eq(smq_session_in_count(s), 0);
	cr_assert_null(smq_session_inflight(s, 1));
	cr_assert_eq(smq_session_in_release(s, 1), -ENOENT);
	smq_session_free(s);
}

Test(core_session, rare_part_is_made_once_and_freed_with_the_session)
{
	struct smq_session *s = smq_session_new(SMQ_STR("c"));
	struct smq_session_rare *r = smq_session_rare(s);

	cr_assert(r && r->s == s && s->rare == r);
	cr_assert_eq(smq_session_rare(s), r);
	cr_assert_not(smq_timer_armed(&r->expiry_timer));
	r->will = mk("w");	/* the session's reference: freed with it */
	smq_session_free(s);
}

Test(core_session, queue_then_take_respects_window_and_order)
{
	struct smq_session *s = smq_session_new(SMQ_STR("c"));
	struct smq_msg *m[4];
	struct smq_qmsg *q;

	for (int i = 0; i < 4; i++) {
		char p[2] = { (char)('a' + i), 0 };

		m[i] = mk(p);
		cr_assert_eq(smq_session_push(s, m[i], 1, false, NULL, 0, &big), 0);
	}
	cr_assert_eq(s->nqueued, 4);
	q = smq_session_take(s, 2);
	cr_assert(q && q->msg == m[0] && q->pid != 0 && q->state == SMQ_QS_PUBLISHED);
	q = smq_session_take(s, 2);
	cr_assert(q && q->msg == m[1]);
	cr_assert_null(smq_session_take(s, 2), "window of 2 is full");
	cr_assert_eq(smq_session_puback(s, s->fl_head->pid), 0);
	q = smq_session_take(s, 2);
	cr_assert(q && q->msg == m[2], "FIFO order kept");
	for (int i = 0; i < 4; i++)
		smq_msg_unref(m[i]);
	smq_session_free(s);
}

Test(core_session, packet_ids_unique_among_inflight_MQTT_2_3_1_2)
{
	struct smq_session *s = smq_session_new(SMQ_STR("c"));
	struct smq_msg *m = mk("x");
	uint16_t first;

	s->next_pid = 65534;
	first = smq_session_fly(s, m, 1, false, NULL, 0)->pid;
	cr_assert_eq(first, 65534);
	cr_assert_eq(smq_session_fly(s, m, 1, false, NULL, 0)->pid, 65535);
	cr_assert_eq(smq_session_fly(s, m, 1, false, NULL, 0)->pid, 1, "wraps, skips 0");
	s->next_pid = 65534;	/* force a collision: ids in flight are skipped */
	cr_assert_eq(smq_session_fly(s, m, 1, false, NULL, 0)->pid, 2);
	smq_msg_unref(m);
	smq_session_free(s);
}

Test(core_session, all_ids_in_use_refuses)
{
	struct smq_session *s = smq_session_new(SMQ_STR("c"));
	struct smq_msg *m = mk("x");

	for (int i = 0; i < 65535; i++)
		cr_assert(smq_session_fly(s, m, 1, false, NULL, 0));
	cr_assert_null(smq_session_fly(s, m, 1, false, NULL, 0));
	cr_assert_eq(smq_session_puback(s, 777), 0);
	cr_assert_eq(smq_session_fly(s, m, 1, false, NULL, 0)->pid, 777);
	smq_msg_unref(m);
	smq_session_free(s);
}

Test(core_session, queue_limits_by_count_and_bytes)
{
	struct smq_session *s = smq_session_new(SMQ_STR("c"));
	struct smq_msg *m = mk("0123456789");	/* 11 bytes with topic */
	struct smq_session_limits lim = { .max_queued = 3, .max_queued_bytes = 0 };

	for (int i = 0; i < 3; i++)
		cr_assert_eq(smq_session_push(s, m, 1, false, NULL, 0, &lim), 0);
	cr_assert_eq(smq_session_push(s, m, 1, false, NULL, 0, &lim), -ENOSPC);
	smq_session_reset(s);
	lim = (struct smq_session_limits){ .max_queued = 100, .max_queued_bytes = 25 };
	cr_assert_eq(smq_session_push(s, m, 1, false, NULL, 0, &lim), 0);
	cr_assert_eq(smq_session_push(s, m, 1, false, NULL, 0, &lim), 0);
	cr_assert_eq(smq_session_push(s, m, 1, false, NULL, 0, &lim), -ENOSPC);
	cr_assert_eq(s->queued_bytes, 22);
	lim.max_queued = 0;
	smq_session_reset(s);
	cr_assert_eq(smq_session_push(s, m, 1, false, NULL, 0, &lim), -ENOSPC,
		     "max_queued 0 queues nothing");
	smq_msg_unref(m);
	smq_session_free(s);
}

Test(core_session, qos2_outbound_flow)
{
	struct smq_session *s = smq_session_new(SMQ_STR("c"));
	struct smq_msg *m = mk("x");
	struct smq_qmsg *q = smq_session_fly(s, m, 2, false, NULL, 0);
	uint16_t pid = q->pid;

	cr_assert_eq(smq_msg_refs(m), 2);
	cr_assert_eq(smq_session_puback(s, pid), -EPROTO);
	cr_assert_eq(smq_session_pubcomp(s, pid), -EPROTO, "PUBCOMP before PUBREC");
	cr_assert_eq(smq_session_pubrec(s, pid), 0);
	cr_assert_eq(q->state, SMQ_QS_RELEASED);
	cr_assert_eq(smq_msg_refs(m), 1, "message released after PUBREC");
	cr_assert_eq(smq_session_pubrec(s, pid), 0, "duplicate PUBREC tolerated");
	cr_assert_eq(smq_session_pubcomp(s, pid), 0);
	cr_assert_eq(s->ninflight, 0);
	cr_assert_eq(smq_session_pubcomp(s, pid), -ENOENT);
	smq_msg_unref(m);
	smq_session_free(s);
}

Test(core_session, qos1_ack_of_unknown_id_is_enoent)
{
	struct smq_session *s = smq_session_new(SMQ_STR("c"));

	cr_assert_eq(smq_session_puback(s, 5), -ENOENT);
	cr_assert_eq(smq_session_pubrec(s, 5), -ENOENT);
	smq_session_free(s);
}

Test(core_session, inbound_qos2_delivered_once_MQTT_4_3_3_2)
{
	struct smq_session *s = smq_session_new(SMQ_STR("c"));

	cr_assert_eq(smq_session_in_publish(s, 9), 1);
	cr_assert_eq(smq_session_in_publish(s, 9), 0, "re-sent before PUBREL: not new");
	cr_assert_eq(smq_session_in_count(s), 1);
	cr_assert_eq(smq_session_in_release(s, 9), 0);
	cr_assert_eq(smq_session_in_release(s, 9), -ENOENT);
	cr_assert_eq(smq_session_in_publish(s, 9), 1, "after PUBREL the id is new again");
	for (int i = 1; i < 2000; i++)
		smq_session_in_publish(s, (uint16_t)i);
	cr_assert_eq(smq_session_in_count(s), 1999);
	for (int i = 1; i < 2000; i++)
		cr_assert_eq(smq_session_in_release(s, (uint16_t)i), 0);
	cr_assert_eq(smq_session_in_count(s), 0);
	smq_session_free(s);
}

Test(core_session, qos0_entries_bypass_window)
{
	struct smq_session *s = smq_session_new(SMQ_STR("c"));
	struct smq_msg *m = mk("x");
	struct smq_qmsg *q;

	cr_assert(smq_session_fly(s, m, 1, false, NULL, 0));
	cr_assert_eq(smq_session_push(s, m, 0, false, NULL, 0, &big), 0);
	q = smq_session_take(s, 1);
	cr_assert(q && q->qos == 0 && q->pid == 0, "QoS 0 taken though window full");
	smq_qmsg_free(q);
	cr_assert_eq(s->ninflight, 1);
	smq_msg_unref(m);
	smq_session_free(s);
}

Test(core_session, subscription_ids_are_kept)
{
	struct smq_session *s = smq_session_new(SMQ_STR("c"));
	struct smq_msg *m = mk("x");
	uint32_t ids[] = { 7, 9 };
	struct smq_qmsg *q;

	cr_assert_eq(smq_session_push(s, m, 1, true, ids, 2, &big), 0);
	q = smq_session_take(s, 0);
	cr_assert(q->retain);
	cr_assert_eq(q->nids, 2);
	cr_assert_eq(q->ids[1], 9);
	smq_msg_unref(m);
	smq_session_free(s);
}

Test(core_session, subscriptions_replace_and_delete)
{
	struct smq_session *s = smq_session_new(SMQ_STR("c"));

	cr_assert_eq(smq_session_sub_put(s, SMQ_STR("a/#"), 1, 0), 0);
	cr_assert_eq(smq_session_sub_put(s, SMQ_STR("b"), 0, 0), 0);
	cr_assert_eq(smq_session_sub_put(s, SMQ_STR("a/#"), 2, 5), 0);
	cr_assert_eq(s->nsubs, 2);
	cr_assert_eq(smq_session_sub_find(s, SMQ_STR("a/#"))->opts, 2);
	cr_assert_eq(smq_session_sub_del(s, SMQ_STR("a/#")), 0);
	cr_assert_eq(smq_session_sub_del(s, SMQ_STR("a/#")), -ENOENT);
	cr_assert_not_null(smq_session_sub_find(s, SMQ_STR("b")));
	smq_session_free(s);
}

Test(core_session, reset_drops_everything_but_identity)
{
	struct smq_session *s = smq_session_new(SMQ_STR("c"));
	struct smq_msg *m = mk("x");

	smq_session_fly(s, m, 1, false, NULL, 0);
	smq_session_push(s, m, 1, false, NULL, 0, &big);
	smq_session_in_publish(s, 3);
	smq_session_sub_put(s, SMQ_STR("f"), 1, 0);
	smq_session_reset(s);
	cr_assert_eq(s->ninflight + s->nqueued + smq_session_in_count(s) + s->nsubs, 0);
	cr_assert_eq(smq_msg_refs(m), 1);
	cr_assert_str_eq(s->client_id, "c");
	smq_msg_unref(m);
	smq_session_free(s);
}

Test(core_session, drop_releases_id_and_reference)
{
	struct smq_session *s = smq_session_new(SMQ_STR("c"));
	struct smq_msg *m = mk("x");
	struct smq_qmsg *q = smq_session_fly(s, m, 1, false, NULL, 0);
	uint16_t pid = q->pid;

	smq_session_drop(s, q);
	cr_assert_null(smq_session_inflight(s, pid));
	cr_assert_eq(smq_msg_refs(m), 1);
	smq_msg_unref(m);
	smq_session_free(s);
}

/* ---- the subscription index -------------------------------------------- */

static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static struct smq_str fmt(char *buf, size_t cap, const char *f, unsigned i)
{
	int n = snprintf(buf, cap, f, i);

	return (struct smq_str){ (const uint8_t *)buf, (uint32_t)n };
}

Test(core_session, many_subscriptions_put_find_del)
{
	struct smq_session *s = smq_session_new(SMQ_STR("c"));
	const unsigned n = 20000;
	struct smq_ssub *e;
	char b[64];

	for (unsigned i = 0; i < n; i++)
		cr_assert_eq(smq_session_sub_put(s, fmt(b, sizeof(b), "dev/%u/+", i),
						 (uint8_t)(i % 3), i), 0);
	cr_assert_eq(s->nsubs, n);
	for (unsigned i = 0; i < n; i++) {
		e = smq_session_sub_find(s, fmt(b, sizeof(b), "dev/%u/+", i));
		cr_assert(e && e->opts == i % 3 && e->sub_id == i, "filter %u", i);
		cr_assert_str_eq(e->filter, b);
	}
	cr_assert_null(smq_session_sub_find(s, SMQ_STR("dev/20000/+")));
	cr_assert_null(smq_session_sub_find(s, SMQ_STR("dev/1/")), "a prefix is not a match");
	for (unsigned i = 1; i < n; i += 2)
		cr_assert_eq(smq_session_sub_del(s, fmt(b, sizeof(b), "dev/%u/+", i)), 0);
	cr_assert_eq(s->nsubs, n / 2);
	for (unsigned i = 0; i < n; i++) {
		e = smq_session_sub_find(s, fmt(b, sizeof(b), "dev/%u/+", i));
		cr_assert(i % 2 ? !e : e && e->sub_id == i, "filter %u after deletes", i);
	}
	cr_assert_eq(smq_session_sub_del(s, SMQ_STR("dev/1/+")), -ENOENT);
	smq_session_free(s);
}

Test(core_session, resubscribing_replaces_options_without_duplicates)
{
	struct smq_session *s = smq_session_new(SMQ_STR("c"));
	char b[64];

	for (int round = 0; round < 2; round++)
		for (unsigned i = 0; i < 1000; i++)
			cr_assert_eq(smq_session_sub_put(s, fmt(b, sizeof(b), "a/%u", i),
							 (uint8_t)round, round * 1000 + i), 0);
	cr_assert_eq(s->nsubs, 1000);
	for (unsigned i = 0; i < 1000; i++) {
		struct smq_ssub *e = smq_session_sub_find(s, fmt(b, sizeof(b), "a/%u", i));

		cr_assert(e && e->opts == 1 && e->sub_id == 1000 + i);
	}
	smq_session_free(s);
}

Test(core_session, filter_longer_than_65535_refused)
{
	struct smq_session *s = smq_session_new(SMQ_STR("c"));
	uint8_t *huge = malloc(65536);

	memset(huge, 'a', 65536);
	cr_assert_eq(smq_session_sub_put(s, (struct smq_str){ huge, 65536 }, 0, 0), -EINVAL);
	cr_assert_eq(s->nsubs, 0);
	cr_assert_eq(smq_session_sub_put(s, (struct smq_str){ huge, 65535 }, 1, 0), 0);
	cr_assert_not_null(smq_session_sub_find(s, (struct smq_str){ huge, 65535 }));
	free(huge);
	smq_session_free(s);
}

/* Random put / del / find against a plain array, crossing the size where the
 * index appears and growing and shrinking through it many times; the dense
 * list the engine iterates must hold exactly the live filters. */
Test(core_session, subscription_index_agrees_with_reference_model)
{
	enum { NF = 600, OPS = 200000 };
	struct smq_session *s = smq_session_new(SMQ_STR("c"));
	int ref[NF];
	unsigned live = 0, seen[NF];
	char b[64];

	srand(7);
	for (unsigned i = 0; i < NF; i++)
		ref[i] = -1;
	for (unsigned op = 0; op < OPS; op++) {
		/* phases bias towards adding or removing so nsubs sweeps 0..NF */
		unsigned i = (unsigned)rand() % (op / 20000 % 2 ? NF : NF / 30 + 1);
		bool add = (unsigned)rand() % 100 < (op / 5000 % 2 ? 70u : 30u);
		struct smq_str f = fmt(b, sizeof(b), i % 2 ? "x/%u/#" : "%u", i);
		struct smq_ssub *e = smq_session_sub_find(s, f);

		cr_assert_eq(e != NULL, ref[i] >= 0, "op %u filter %u", op, i);
		if (e)
			cr_assert_eq(e->sub_id, (uint32_t)ref[i]);
		if (add) {
			live += ref[i] < 0;
			ref[i] = (int)op;
			cr_assert_eq(smq_session_sub_put(s, f, 0, op), 0);
		} else {
			cr_assert_eq(smq_session_sub_del(s, f), ref[i] >= 0 ? 0 : -ENOENT);
			live -= ref[i] >= 0;
			ref[i] = -1;
		}
		cr_assert_eq(s->nsubs, live);
	}
	memset(seen, 0, sizeof(seen));
	for (unsigned k = 0; k < s->nsubs; k++) {
		unsigned i;

		cr_assert(sscanf(s->subs[k].filter, "x/%u", &i) == 1 ||
			  sscanf(s->subs[k].filter, "%u", &i) == 1);
		cr_assert(i < NF && ref[i] >= 0 && !seen[i]++, "list entry %s", s->subs[k].filter);
		cr_assert_eq(s->subs[k].sub_id, (uint32_t)ref[i]);
	}
	smq_session_free(s);
}

/* One client subscribing to 100,000 filters: the old linear search made it
 * ~5e9 compares (tens of seconds); indexed it is milliseconds. The bound sits
 * orders of magnitude from both. */
Test(core_session, hundred_thousand_subscriptions_in_linear_time)
{
	struct smq_session *s = smq_session_new(SMQ_STR("c"));
	double t0 = cpu_s(), spent;
	char b[64];

	for (unsigned i = 0; i < 100000; i++)
		cr_assert_eq(smq_session_sub_put(s, fmt(b, sizeof(b), "bench/%u/leaf", i), 1, 0),
			     0);
	for (unsigned i = 0; i < 100000; i += 2)
		cr_assert_eq(smq_session_sub_del(s, fmt(b, sizeof(b), "bench/%u/leaf", i)), 0);
	spent = cpu_s() - t0;
	cr_assert_eq(s->nsubs, 50000);
	cr_assert_lt(spent, 2.0, "took %.2f s of CPU", spent);
	smq_session_free(s);
}

/* ---- the session table's hash ------------------------------------------- */

static uint32_t fnv1a(const char *p, size_t n)
{
	uint32_t h = 2166136261u;

	while (n--)
		h = (h ^ (uint8_t)*p++) * 16777619u;
	return h;
}

/* The table used FNV-1a, unkeyed: anyone can search offline for client ids
 * that share the low bits, i.e. one chain of the engine's session table
 * (it indexes with hash & (cap - 1)). 1500 such ids must spread under the
 * keyed hash the table uses now. */
Test(core_session, client_ids_colliding_under_fnv1a_spread)
{
	enum { WANT = 1500, BITS = 11 };
	static uint16_t bucket[1u << BITS];
	const uint32_t mask = (1u << BITS) - 1;
	char id[12] = "dev-";
	unsigned found = 0, used = 0, most = 0;

	for (uint32_t c = 0; found < WANT; c++) {
		uint32_t b;

		for (int k = 0; k < 8; k++)
			id[4 + k] = "0123456789abcdef"[c >> (28 - 4 * k) & 15];
		if ((fnv1a(id, sizeof(id)) & mask) != 0x5a5)
			continue;
		found++;
		b = smq_session_hash((struct smq_str){ (const uint8_t *)id, sizeof(id) }) & mask;
		used += !bucket[b];
		if (++bucket[b] > most)
			most = bucket[b];
	}
	/* at random: ~1060 buckets used, the fullest holds ~6 */
	cr_assert_gt(used, 700, "%u buckets used", used);
	cr_assert_lt(most, 32, "fullest bucket holds %u of %u", most, WANT);
}
