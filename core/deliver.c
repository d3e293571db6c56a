/* deliver.c - the engine's publish side: routing a message to shards and
 * subscribers, shared subscriptions, per-session delivery under QoS, window
 * and queue bounds, and the PUBLISH encoder (the output queue is outq.c).
 *
 * Invariants:
 *  - a message is never copied to reach another shard: one reference per
 *    destination shard (io->forward, plus io->forward_shared per shared
 *    subscription served there), one per by-reference span of an output
 *    queue (outq.c), one per session queue entry;
 *  - a message goes to exactly one member of each matching shared
 *    subscription (group, filter) in the whole broker: the publishing shard
 *    picks one shard holding members (round-robin), that shard one member
 *    (round-robin, online members first); ordinary subscribers each get
 *    their copy whatever the groups do;
 *  - a 5.0 PUBLISH uses an outbound topic alias only after the same
 *    connection's output carried the PUBLISH that set it (aliases are
 *    committed once that packet is queued, and never reassigned); no packet
 *    of any kind exceeds the client's Maximum Packet Size;
 *  - nothing grows without a bound: QoS 0 stops once client_max_write_buffer
 *    bytes wait (so by at most one message more than it; output memory
 *    stays near those bytes: a by-reference payload is shared, its head
 *    takes a few bytes of a chunk shared with the next deliveries),
 *    QoS 1/2 at the in-flight window and then at the session queue limits;
 *    everything refused is counted (and logged, rate limited).
 *
 * Left to engine.c: parsing and protocol state, sessions' life, timers.
 */
#include "core/engine_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "core/msg.h"
#include "core/retain.h"

/* ---- encoding --------------------------------------------------------- */

/* Never send more than the client's Maximum Packet Size [MQTT-3.1.2-24]:
 * drop the Reason String and User Properties first, as the spec allows
 * for every packet that carries them (e.g. [MQTT-3.2.2-19], [MQTT-3.14.2-3]);
 * a packet still too large is not sent at all, and counted. */
int smq_eng_write(struct smq_engine *e, struct smq_econn *c, const struct smq_packet *pkt)
{
	long size = smq_encoded_size(pkt);
	struct smq_packet lean;
	uint8_t *p;

	if (size < 0)
		return -EINVAL;
	if (c->max_out && (uint64_t)size > c->max_out) {
		lean = *pkt;
		lean.props.present &= ~(1ull << SMQ_PROP_REASON_STRING | 1ull << SMQ_PROP_USER);
		pkt = &lean;
		size = smq_encoded_size(pkt);
		if (size < 0 || (uint64_t)size > c->max_out) {
			e->stats.dropped_too_large++;
			return -EMSGSIZE;
		}
	}
	p = smq_eng_out_reserve(e, c, (size_t)size, 0);
	if (!p)
		return -ENOMEM;
	if (smq_encode(pkt, p, (size_t)size) != size)
		return -EINVAL;
	smq_eng_out_commit(e, c, (size_t)size);
	return 0;
}

/* Acknowledgements carry no properties here: the packet id, and in 5.0 a
 * reason code unless it is Success [MQTT-3.4.2-1]. Written directly: one
 * goes out for every QoS 1/2 message, and building a struct smq_packet to
 * encode would zero half a kilobyte for four bytes. */
int smq_eng_write_ack(struct smq_engine *e, struct smq_econn *c, uint8_t type, uint16_t pid,
		      uint8_t reason)
{
	size_t n = c->version == SMQ_V5 && reason ? 5 : 4;
	uint8_t *p;

	if (c->version < SMQ_V31 || c->version > SMQ_V5)
		return -EINVAL;
	if (c->max_out && n > c->max_out) {
		e->stats.dropped_too_large++;
		return -EMSGSIZE;
	}
	p = smq_eng_out_reserve(e, c, n, 0);
	if (!p)
		return -ENOMEM;
	p[0] = (uint8_t)(type << 4 | (type == SMQ_PUBREL ? 2u : 0u));	/* [MQTT-3.6.1-1] */
	p[1] = (uint8_t)(n - 2);
	p[2] = (uint8_t)(pid >> 8);
	p[3] = (uint8_t)pid;
	if (n == 5)
		p[4] = reason;
	smq_eng_out_commit(e, c, n);
	return 0;
}

uint32_t smq_eng_window(const struct smq_engine *e, const struct smq_econn *c)
{
	uint32_t w = (uint32_t)e->cfg->max_inflight_messages;

	if (c && c->version == SMQ_V5 && c->recv_max && c->recv_max < w)
		w = c->recv_max;
	return w;
}

static uint8_t *put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return p + 2;
}

/* The per-subscriber 5.0 properties: Message Expiry (time left) and the
 * Subscription Identifiers [MQTT-3.3.4-3]. Returns their size; writes them
 * when @out is non-NULL. */
static uint32_t sub_props(const struct smq_msg *m, uint64_t now, const uint32_t *ids,
			  uint16_t nids, uint8_t *out)
{
	uint32_t n = 0;

	if (m->has_expiry) {
		if (out) {
			uint32_t left = smq_msg_expiry_left(m, now);

			out[0] = SMQ_PROP_MESSAGE_EXPIRY;
			out[1] = (uint8_t)(left >> 24);
			out[2] = (uint8_t)(left >> 16);
			out[3] = (uint8_t)(left >> 8);
			out[4] = (uint8_t)left;
		}
		n += 5;
	}
	for (uint16_t i = 0; i < nids; i++) {
		if (out) {
			out[n] = SMQ_PROP_SUBSCRIPTION_ID;
			smq_varint_put(out + n + 1, ids[i]);
		}
		n += 1u + (uint32_t)smq_varint_size(ids[i]);
	}
	return n;
}

/* One PUBLISH as it goes to one subscriber. */
/* One publish-to-send latency into the histogram of engine.h: the bucket
 * from the bit length, no search. */
static void count_latency(struct smq_engine_stats *st, uint64_t ns)
{
	unsigned b = 0;

	if (ns > 4096u)
		b = 64u - (unsigned)__builtin_clzll(ns - 1) - 12u;
	if (b >= SMQ_ENGINE_LAT_BUCKETS)
		b = SMQ_ENGINE_LAT_BUCKETS - 1;
	st->publish_latency[b]++;
	st->publish_latency_ns += ns;
}

struct pubout {
	const struct smq_msg *m;
	uint8_t qos;
	bool retain, dup;
	uint16_t pid;
	const uint32_t *ids;
	uint16_t nids;
	uint16_t alias;		/* 5.0 Topic Alias to send, 0: none */
	bool alias_only;	/* the alias is known to the client: empty topic */
};

/* ---- outbound topic aliases ------------------------------------------- */

static uint32_t topic_hash(const uint8_t *p, uint32_t n)
{
	uint32_t h = 2166136261u;

	for (uint32_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

/* The alias for @m's topic on c: an existing one (alias_only), else the
 * next free one (assigned by alias_commit() once the PUBLISH is queued, so
 * a dropped packet never leaves the client without the mapping), else 0.
 * Topics of 2 bytes or less gain nothing from a 3-byte property. */
static void alias_pick(const struct smq_econn *c, struct pubout *po, uint32_t *hash)
{
	const struct smq_msg *m = po->m;
	const struct econn_more *mo = smq_eng_more(c);

	po->alias = 0;
	po->alias_only = false;
	if (!c->alias_out_max || m->topic_len <= 2)
		return;
	*hash = topic_hash(m->data, m->topic_len);
	for (uint16_t i = 0; i < mo->alias_out_n; i++) {
		const struct smq_alias *a = &mo->alias_out[i];

		if (a->hash == *hash && a->len == m->topic_len &&
		    !memcmp(a->topic, m->data, m->topic_len)) {
			po->alias = (uint16_t)(i + 1);
			po->alias_only = true;
			return;
		}
	}
	if (mo->alias_out_n < c->alias_out_max)
		po->alias = (uint16_t)(mo->alias_out_n + 1);
}

/* Remember a newly sent alias. On ENOMEM the alias is simply not kept:
 * the client's mapping for it is never used again. */
static void alias_commit(struct smq_econn *c, const struct pubout *po, uint32_t hash)
{
	struct econn_more *mo;
	struct smq_alias *a;
	uint8_t *t;

	if (!po->alias || po->alias_only || !(mo = smq_eng_more_mut(c)))
		return;
	if (!mo->alias_out && !(mo->alias_out = calloc(c->alias_out_max, sizeof(*mo->alias_out))))
		return;
	t = malloc(po->m->topic_len);
	if (!t)
		return;
	memcpy(t, po->m->data, po->m->topic_len);
	a = &mo->alias_out[mo->alias_out_n++];
	*a = (struct smq_alias){ t, po->m->topic_len, hash };
}

/* Total encoded size of @po for c, or 0 if it cannot be sent to c (larger
 * than the client's Maximum Packet Size [MQTT-3.1.2-25] or than MQTT can
 * carry). Sets *rem (the remaining length), *head (bytes before the shared
 * tail) and *tail. */
static size_t publish_size(const struct smq_engine *e, const struct smq_econn *c,
			   const struct pubout *po, uint32_t *rem, uint32_t *head,
			   struct smq_str *tail)
{
	const struct smq_msg *m = po->m;
	uint64_t r = 2u + (po->alias_only ? 0u : m->topic_len) + (po->qos ? 2u : 0u);

	if (c->version == SMQ_V5) {
		uint32_t sp = sub_props(m, e->now, po->ids, po->nids, NULL) + (po->alias ? 3u : 0u);

		r += (uint64_t)smq_varint_size(sp + m->props_len) + sp;
		*tail = smq_msg_tail(m);
	} else {
		*tail = smq_msg_payload(m);
	}
	r += tail->len;
	if (r > SMQ_MAX_REMAINING)
		return 0;
	*rem = (uint32_t)r;
	*head = 1u + (uint32_t)smq_varint_size(*rem) + *rem - tail->len;
	if (c->max_out && (uint64_t)*head + tail->len > c->max_out)
		return 0;
	return (size_t)*head + tail->len;
}

/* Write everything of the PUBLISH before its shared tail: fixed header,
 * topic, packet id and (5.0) the property length and per-subscriber
 * properties; the message's own properties start the tail. */
static void publish_head(const struct smq_engine *e, const struct smq_econn *c,
			 const struct pubout *po, uint32_t rem, uint8_t *p)
{
	const struct smq_msg *m = po->m;

	/* DUP is 0 for QoS 0 [MQTT-3.3.1-2] */
	*p++ = (uint8_t)(0x30u | (po->dup && po->qos ? 8u : 0u) | (unsigned)(po->qos << 1) |
			 (po->retain ? 1u : 0u));
	p += smq_varint_put(p, rem);
	if (po->alias_only) {
		p = put_u16(p, 0);	/* the alias stands for the topic */
	} else {
		p = put_u16(p, m->topic_len);
		memcpy(p, m->data, m->topic_len);
		p += m->topic_len;
	}
	if (po->qos)
		p = put_u16(p, po->pid);
	if (c->version == SMQ_V5) {
		uint32_t sp = sub_props(m, e->now, po->ids, po->nids, NULL);

		p += smq_varint_put(p, sp + (po->alias ? 3u : 0u) + m->props_len);
		p += sub_props(m, e->now, po->ids, po->nids, p);
		if (po->alias) {
			*p++ = SMQ_PROP_TOPIC_ALIAS;
			put_u16(p, po->alias);
		}
	}
}

/* Queue one PUBLISH for c. Returns 0, -EMSGSIZE (too large for the client:
 * dropped [MQTT-3.1.2-25]), -ENOBUFS (QoS 0 over the write buffer) or
 * -ENOMEM. @qos0_check applies the client_max_write_buffer rule. */
static int write_publish(struct smq_engine *e, struct smq_econn *c, const struct pubout *in,
			 bool qos0_check)
{
	struct pubout alias_po = *in;
	const struct pubout *po = &alias_po;
	struct smq_str tail;
	uint32_t rem, head, hash = 0;
	size_t total;
	bool copy;
	uint8_t *p;

	if (c->version == SMQ_V5)
		alias_pick(c, &alias_po, &hash);
	total = publish_size(e, c, po, &rem, &head, &tail);
	copy = tail.len <= SMQ_COPY_MAX;
	if (!total) {
		e->stats.dropped_too_large++;
		return -EMSGSIZE;
	}
	/* The limit applies to what is already queued: a message larger than
	 * it still reaches a subscriber that keeps up. */
	if (qos0_check && c->opend >= e->cfg->client_max_write_buffer) {
		e->stats.dropped_qos0++;
		return -ENOBUFS;
	}
	/* room for the head and the tail's span first: a head queued
	 * without its tail would break the byte stream */
	p = smq_eng_out_reserve(e, c, copy ? total : head, copy ? 0 : 1);
	if (!p)
		return -ENOMEM;
	publish_head(e, c, po, rem, p);
	if (copy && tail.len)
		memcpy(p + head, tail.p, tail.len);
	smq_eng_out_commit(e, c, copy ? total : head);
	if (!copy)
		smq_eng_out_ref(e, c, (struct smq_msg *)po->m, tail);
	alias_commit(c, po, hash);
	e->stats.msgs_out++;
	if (!po->dup && !po->retain && po->m->created_ns && e->now_ns >= po->m->created_ns)
		count_latency(&e->stats, e->now_ns - po->m->created_ns);
	return 0;
}

/* Send an in-flight or detached entry. */
static int write_qmsg(struct smq_engine *e, struct smq_econn *c, struct smq_qmsg *q)
{
	struct pubout po = {
		.m = q->msg, .qos = q->qos, .retain = q->retain, .dup = q->sent,
		.pid = q->pid, .ids = q->ids, .nids = q->nids,
	};
	int ret = write_publish(e, c, &po, false);

	if (!ret)
		q->sent = true;
	return ret;
}

/* With persistence, the first send of a QoS 2 message to a stored session
 * waits until its record (state PUBLISHED, this packet id) is durable: the
 * receiver keeps the id until PUBREL, and a crash that forgot it would give
 * the id to another message, which the receiver would take for a re-send
 * and drop. The record goes into the store now; the PUBLISH when the ticket
 * is released (smq_eng_send_held). A QoS 1 message waits only behind a
 * PUBLISH already held for c, so that c's messages keep their order.
 * True when it was held. */
static bool held_first_send(struct smq_engine *e, struct smq_session *s, struct smq_econn *c,
			    struct smq_qmsg *q)
{
	if (!q->qos || q->sent || !smq_eng_stores(e, s) ||
	    (q->qos == 1 && !smq_eng_more(c)->nheld_pub))
		return false;
	smq_eng_store_q(e, s, q);
	smq_eng_ack(e, c, SMQ_PUBLISH, q->pid, 0);
	return true;
}

void smq_eng_send_held(struct smq_engine *e, struct smq_econn *c, uint16_t pid)
{
	struct smq_qmsg *q = c->s ? smq_session_inflight(c->s, pid) : NULL;

	if (!q || q->sent || q->state != SMQ_QS_PUBLISHED || !q->msg)
		return;		/* acknowledged, dropped or re-sent meanwhile */
	if (write_qmsg(e, c, q) == -EMSGSIZE) {
		smq_eng_store_q_del(e, c->s, q);
		smq_session_drop(c->s, q);
	}
}

/* ---- delivery --------------------------------------------------------- */

/* Does @s hold a copy of the message with @uid (queued or in flight)? A
 * walk: only re-routes after a restart ask. */
static bool holds_uid(const struct smq_session *s, uint64_t uid)
{
	for (const struct smq_qmsg *q = s->fl_head; q; q = q->next)
		if (q->uid == uid)
			return true;	/* RELEASED ones too: they keep the uid */
	for (const struct smq_qmsg *q = s->q_head; q; q = q->next)
		if (q->uid == uid)
			return true;
	return smq_eng_done_uid(s, uid);	/* completed lately */
}

void smq_eng_log_drop(struct smq_engine *e, const struct smq_session *s, const char *why)
{
	if (e->now < e->drop_log_ms + 1000u) {
		e->drops_unlogged++;
		return;
	}
	smq_notice("shard %u: dropped a message for client '%s' (%s); %llu more dropped since "
		   "the last report", e->shard, s->client_id, why,
		   (unsigned long long)e->drops_unlogged);
	e->drop_log_ms = e->now;
	e->drops_unlogged = 0;
}

static bool online(const struct smq_session *s)
{
	const struct smq_econn *c = s->conn;

	return c && c->state == CS_LIVE;
}

static void queue_msg(struct smq_engine *e, struct smq_session *s, struct smq_msg *m,
		      uint8_t qos, bool retain, const uint32_t *ids, uint16_t nids)
{
	/* max_queued_messages 0 is "no maximum" (mosquitto's meaning) */
	struct smq_session_limits lim = {
		.max_queued = e->cfg->max_queued_messages ? (uint32_t)e->cfg->max_queued_messages
							  : UINT32_MAX,
		.max_queued_bytes = e->cfg->max_queued_bytes,
	};
	int ret = smq_session_push(s, m, qos, retain, ids, nids, &lim);

	if (!ret && smq_eng_stores(e, s))
		smq_eng_store_q(e, s, s->q_tail);
	if (ret == -ENOSPC) {
		e->stats.dropped_queue_full++;
		smq_eng_log_drop(e, s, "session queue full");
	} else if (ret) {
		e->stats.dropped_nomem++;
		smq_eng_log_drop(e, s, "out of memory");
	}
}

/* Deliver to @s's live connection @c: now, or queued behind its window. */
static void deliver_live(struct smq_engine *e, struct smq_session *s, struct smq_econn *c,
			 struct smq_msg *m, uint8_t qos, bool retain, const uint32_t *ids,
			 uint16_t nids)
{
	struct pubout po = { .m = m, .retain = retain, .ids = ids, .nids = nids };
	struct smq_qmsg *q;
	int ret;

	if (!qos) {
		ret = write_publish(e, c, &po, true);
		if (ret == -ENOBUFS) {
			smq_eng_log_drop(e, s, "QoS 0 over client_max_write_buffer");
		} else if (ret == -ENOMEM) {
			e->stats.dropped_nomem++;
			smq_eng_log_drop(e, s, "out of memory");
		}
		return;
	}
	if (s->q_head || !smq_session_window_open(s, smq_eng_window(e, c))) {
		queue_msg(e, s, m, qos, retain, ids, nids);
		return;
	}
	q = smq_session_fly(s, m, qos, retain, ids, nids);
	if (!q) {
		queue_msg(e, s, m, qos, retain, ids, nids);
		return;
	}
	if (held_first_send(e, s, c, q))
		return;
	if (write_qmsg(e, c, q) == -EMSGSIZE)
		smq_session_drop(s, q);	/* as if delivered [MQTT-3.1.2-25] */
	else if (smq_eng_stores(e, s))
		smq_eng_store_q(e, s, q);
}

void smq_eng_deliver_session(struct smq_engine *e, struct smq_session *s, struct smq_msg *m,
			     uint8_t qos, bool retain, const uint32_t *ids, uint16_t nids)
{
	if (smq_msg_expired(m, e->now)) {
		e->stats.dropped_expired++;
		return;
	}
	if (m->redo && holds_uid(s, m->uid))
		return;		/* a re-route after a restart: this one has it */
	/* Read access is checked per delivery (retained messages and wills
	 * included): subscribing may have been allowed for a filter that
	 * matches topics this client may not read. */
	if (!smq_eng_may_read(e, s, smq_msg_topic(m))) {
		e->stats.denied_read++;
		return;
	}
	if (!online(s)) {
		/* offline (or closing): QoS 0 only if configured to */
		if (qos || e->cfg->queue_qos0_messages)
			queue_msg(e, s, m, qos, retain, ids, nids);
		return;
	}
	deliver_live(e, s, s->conn, m, qos, retain, ids, nids);
	/* push-back: does it hold too much now? (QoS 0 never queues) */
	if (qos)
		smq_eng_flow_watch(e, s->conn);
}

void smq_eng_pump(struct smq_engine *e, struct smq_econn *c)
{
	struct smq_session *s = c->s;
	uint32_t window = smq_eng_window(e, c);
	struct smq_qmsg *q;

	if (!s || c->state != CS_LIVE)
		return;
	if (c->flow_bl)
		smq_eng_flow_progress(e, c);	/* an acknowledgement made room */
	while ((q = smq_session_take(s, window))) {
		bool expired = smq_msg_expired(q->msg, e->now);
		int ret;

		if (!expired && held_first_send(e, s, c, q))
			continue;
		ret = expired ? -ETIME : write_qmsg(e, c, q);

		if (expired)
			e->stats.dropped_expired++;
		if (smq_eng_stores(e, s)) {
			if (!q->qos || ret == -EMSGSIZE || expired)
				smq_eng_store_q_del(e, s, q);
			else
				smq_eng_store_q(e, s, q);	/* in flight, with its id */
		}
		if (!q->qos)
			smq_qmsg_free(q);
		else if (ret == -EMSGSIZE || expired)
			smq_session_drop(s, q);
	}
}

void smq_eng_resend(struct smq_engine *e, struct smq_econn *c)
{
	struct smq_session *s = c->s;
	struct smq_qmsg *q, *next;

	for (q = s->fl_head; q; q = next) {
		next = q->next;
		if (q->state == SMQ_QS_RELEASED) {
			smq_eng_write_ack(e, c, SMQ_PUBREL, q->pid, 0);
			continue;
		}
		if (held_first_send(e, s, c, q))
			continue;	/* never sent yet: still waiting for its record */
		q->sent = true;		/* DUP=1 on every re-send [MQTT-3.3.1-1] */
		if (write_qmsg(e, c, q) != -EMSGSIZE)
			continue;
		if (smq_eng_stores(e, s))
			smq_eng_store_q_del(e, s, q);
		smq_session_drop(s, q);
	}
	smq_eng_pump(e, c);
}

uint8_t smq_eng_out_qos(const struct smq_engine *e, uint8_t msg_qos, uint8_t sub_qos)
{
	/* upgrade_outgoing_qos: the subscription's QoS even above the
	 * message's (non-standard, as in mosquitto; MQTT says the lower) */
	if (e->cfg->upgrade_outgoing_qos || msg_qos > sub_qos)
		return sub_qos;
	return msg_qos;
}

/* References a delivery of @m takes, at most: one for a session entry
 * (QoS 1/2) and one for a by-reference payload in the output queue. */
static unsigned refs_per_delivery(const struct smq_msg *m)
{
	return (m->qos ? 1u : 0u) + (m->props_len + m->payload_len > SMQ_COPY_MAX ? 1u : 0u);
}

/* Every ordinary subscriber of the match gets a copy. */
static void deliver_subs(struct smq_engine *e, struct smq_msg *m, const struct smq_match *mt)
{
	smq_msg_batch_begin(m, mt->n * refs_per_delivery(m));
	for (uint32_t i = 0; i < mt->n; i++) {
		const struct smq_match_entry *en = &mt->subs[i];
		uint8_t qos = SMQ_SUBOPT_QOS(en->opts);
		/* RETAIN is 0 to established subscriptions [MQTT-3.3.1-9],
		 * unless Retain As Published [MQTT-3.3.1-12] */
		bool retain = (en->opts & SMQ_SUBOPT_RAP) && m->retain;
		uint16_t nids = en->ids_n > 65535u ? 65535u : (uint16_t)en->ids_n;

		qos = smq_eng_out_qos(e, m->qos, qos);
		/* (NULL + 0 is undefined: no ids, no pointer) */
		smq_eng_deliver_session(e, en->sub, m, qos, retain,
					nids ? mt->ids + en->ids_off : NULL, nids);
	}
	smq_msg_batch_end(m);
}

/* The member of @g to deliver to: the first online one at or after the
 * group's cursor (wrapping), else the first offline persistent one (it
 * queues the message), else NULL (every member is a clean session on its
 * way out). Advances the cursor past the pick. */
static const struct smq_match_member *pick_member(const struct smq_match_group *g)
{
	uint32_t n = g->nmembers, start = *g->cursor % n, spare = n;

	for (uint32_t k = 0; k < n; k++) {
		uint32_t i = (start + k) % n;
		const struct smq_session *s = g->members[i].sub;

		if (online(s)) {
			spare = i;
			break;
		}
		if (spare == n && s->expiry_s)
			spare = i;
	}
	if (spare == n)
		return NULL;
	*g->cursor = (spare + 1) % n;
	return &g->members[spare];
}

/* One member of the shared subscription @g gets @m. -ENOENT if none can. */
static int deliver_group(struct smq_engine *e, struct smq_msg *m, const struct smq_match_group *g)
{
	const struct smq_match_member *mb = pick_member(g);
	uint8_t qos;

	if (!mb) {
		e->stats.dropped_no_member++;
		return -ENOENT;
	}
	qos = smq_eng_out_qos(e, m->qos, SMQ_SUBOPT_QOS(mb->opts));
	smq_eng_deliver_session(e, mb->sub, m, qos, (mb->opts & SMQ_SUBOPT_RAP) && m->retain,
				&mb->sub_id, mb->sub_id ? 1 : 0);
	return 0;
}

static bool str_eq(struct smq_str a, struct smq_str b)
{
	return a.len == b.len && !memcmp(a.p, b.p, a.len);
}

/* Did the route pick this shard for the shared subscription @g? (route
 * leaves in e->groups, for each group, shards = the picked shard's bit.) */
static bool picked_here(const struct smq_engine *e, const struct smq_match_group *g)
{
	for (uint32_t k = 0; k < e->groups.n; k++) {
		const struct smq_interest_group *ig = &e->groups.v[k];

		if (ig->shards == 1ull << e->shard && str_eq(ig->group, g->group) &&
		    str_eq(ig->filter, g->filter))
			return true;
	}
	return false;
}

/* One local trie walk for a message published here: ordinary subscribers
 * when @normal, and the @local shared subscriptions picked for this shard. */
static void deliver_here(struct smq_engine *e, struct smq_msg *m, struct smq_session *publisher,
			 bool normal, uint32_t local)
{
	struct smq_match *mt = &e->match;

	if (smq_subtree_match_split(e->subs, smq_msg_topic(m), smq_msg_levels(m), m->nlev,
				    publisher, mt))
		return;
	if (normal)
		deliver_subs(e, m, mt);
	for (uint32_t i = 0; i < mt->nshared && local; i++) {
		if (!picked_here(e, &mt->shared[i]))
			continue;
		deliver_group(e, m, &mt->shared[i]);
		local--;
	}
}

void smq_eng_deliver_local(struct smq_engine *e, struct smq_msg *m, struct smq_session *publisher)
{
	if (!smq_subtree_match_split(e->subs, smq_msg_topic(m), smq_msg_levels(m), m->nlev,
				     publisher, &e->match))
		deliver_subs(e, m, &e->match);
}

int smq_eng_deliver_shared(struct smq_engine *e, struct smq_msg *m, struct smq_str group,
			   struct smq_str filter)
{
	struct smq_match *mt = &e->match;

	if (smq_subtree_match_split(e->subs, smq_msg_topic(m), smq_msg_levels(m), m->nlev, NULL,
				    mt))
		return -ENOMEM;
	for (uint32_t i = 0; i < mt->nshared; i++)
		if (str_eq(mt->shared[i].group, group) && str_eq(mt->shared[i].filter, filter))
			return deliver_group(e, m, &mt->shared[i]);
	e->stats.dropped_no_member++;
	return -ENOENT;
}

/* "$share/{group}/{filter}" of @g in e->share_buf. -ENOMEM. */
static int share_name(struct smq_engine *e, const struct smq_interest_group *g,
		      struct smq_str *out)
{
	size_t n = 7u + g->group.len + 1u + g->filter.len;

	if (n > e->share_cap) {
		char *p = realloc(e->share_buf, n);

		if (!p)
			return -ENOMEM;
		e->share_buf = p;
		e->share_cap = n;
	}
	memcpy(e->share_buf, "$share/", 7);
	memcpy(e->share_buf + 7, g->group.p, g->group.len);
	e->share_buf[7 + g->group.len] = '/';
	memcpy(e->share_buf + 8 + g->group.len, g->filter.p, g->filter.len);
	*out = (struct smq_str){ (const uint8_t *)e->share_buf, (uint32_t)n };
	return 0;
}

/* Pick one shard per matching shared subscription and forward to it, or
 * mark it local: each group's shards becomes the picked shard's bit (0 if
 * none). Returns how many were picked here. Without forward_shared only
 * this shard can serve a group. */
static uint32_t route_groups(struct smq_engine *e, struct smq_msg *m)
{
	uint64_t here = 1ull << e->shard, eligible = e->io.forward_shared ? ~0ull : here;
	uint32_t local = 0;
	struct smq_str share;

	for (uint32_t k = 0; k < e->groups.n; k++) {
		struct smq_interest_group *g = &e->groups.v[k];
		int to = smq_interest_pick(g, eligible);

		g->shards = to < 0 ? 0 : 1ull << to;
		if (to == (int)e->shard) {
			local++;
		} else if (to >= 0 && !share_name(e, g, &share)) {
			e->io.forward_shared(e->io.ctx, (unsigned)to, smq_msg_ref(m), share);
			e->stats.msgs_forwarded++;
		}
	}
	return local;
}

void smq_eng_route(struct smq_engine *e, struct smq_msg *m, struct smq_session *publisher)
{
	uint64_t mask, others;
	uint32_t local;

	if (smq_interest_match_ex(e->interest, smq_msg_topic(m), smq_msg_levels(m), m->nlev,
				  &e->match, &mask, &e->groups)) {
		e->stats.dropped_nomem++;	/* nothing is routed */
		if (smq_log_due(&e->nomem_log_ms, e->now, 1000))
			smq_err("shard %u: out of memory routing a message to '%.*s'; dropped "
				"(%llu so far)", e->shard, (int)smq_msg_topic(m).len,
				smq_msg_topic(m).p, (unsigned long long)e->stats.dropped_nomem);
		return;
	}
	others = mask & ~(1ull << e->shard);
	if (e->io.forward && (others & (others - 1)))	/* two or more */
		smq_msg_batch_begin(m, (unsigned)__builtin_popcountll(others));
	for (unsigned i = 0; i < e->nshards; i++) {
		if (i == e->shard || !(mask >> i & 1u))
			continue;
		if (e->io.forward) {
			e->io.forward(e->io.ctx, i, smq_msg_ref(m));
			e->stats.msgs_forwarded++;
		}
	}
	smq_msg_batch_end(m);
	local = e->groups.n ? route_groups(e, m) : 0;
	if (publisher && publisher->conn) {
		struct smq_econn *pc = publisher->conn;

		pc->pub_mask |= mask;
		for (uint32_t k = 0; k < e->groups.n; k++)
			pc->pub_mask |= e->groups.v[k].shards;
	}
	if ((mask >> e->shard & 1u) || local)
		deliver_here(e, m, publisher, mask >> e->shard & 1u, local);
}

void smq_eng_send_retained(struct smq_engine *e, struct smq_econn *c, struct smq_str filter,
			   uint8_t granted, uint32_t sub_id)
{
	struct smq_session *s = c->s;
	/* no more than the session could take; 0: no limit */
	size_t max = e->cfg->max_queued_messages
			     ? (size_t)smq_eng_window(e, c) + (size_t)e->cfg->max_queued_messages
			     : 0;
	struct smq_msg **v;
	long n = smq_retain_match(e->retained, filter, max, &v);

	if (n < 0) {
		e->stats.dropped_nomem++;
		smq_eng_log_drop(e, s, "out of memory reading retained messages");
		return;
	}
	for (long i = 0; i < n; i++) {
		uint8_t qos = smq_eng_out_qos(e, v[i]->qos, granted);

		/* RETAIN=1 for a new subscription [MQTT-3.3.1-8] */
		smq_eng_deliver_session(e, s, v[i], qos, true, &sub_id, sub_id ? 1 : 0);
		smq_msg_unref(v[i]);
	}
	free(v);
}
