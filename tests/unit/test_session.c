/* test_session.c - session QoS state: packet ids, the in-flight window,
 * queue bounds, QoS 1/2 acknowledgement flows, inbound QoS 2 de-duplication,
 * subscriptions list. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

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
