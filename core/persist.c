/* persist.c - what the engine stores so that acknowledged messages and
 * persistent sessions survive a restart, how it reads them back, and the
 * acknowledgements it holds until they are durable.
 *
 * Emission is incremental: every change to a stored session or retained
 * topic becomes one record at the point it happens (a queued message is
 * one put, its PUBACK one delete), never a rewrite of the whole session, so
 * the cost follows the message rate and not the session size. A session
 * is written whole once, when it becomes persistent; it is deleted with
 * one prefix deletion when it ends.
 *
 * Values (integers big-endian):
 *
 *   message   u8 qos | u8 flags (1 retain, 2 has expiry) | u32 expiry_s |
 *             u64 created (wall ms) | u64 uid | u16 topic_len | u32 props_len |
 *             u32 payload_len | topic | props | payload
 *   meta      u8 protocol level | u8 flags (1 clean, 2 online, 4 user,
 *             8 will) | u32 expiry_s | u64 offline since (wall ms) |
 *             u32 will delay | u16 id_len | u16 user_len | client id |
 *             user | [will: message]
 *   sub       u8 options | u32 subscription id
 *   inbound   (empty: its routes are durable) or u8 0 | message (not known
 *             yet: after a crash, the publisher's re-send routes it again,
 *             skipping sessions that already hold its uid)
 *   qmsg      u8 state | u8 qos | u8 retain | u16 pid | u64 uid | u16 nids |
 *             nids x u32 | [message, unless RELEASED]
 *   done      u64 until (wall ms), keyed by the message's uid: a QoS 2
 *             message the session completed in the last DONE_KEEP_MS
 *   retained  u64 seq | u8 tombstone | [message, unless a tombstone]
 *
 * Restoring rebuilds what the records say on the session's home shard,
 * with times rebased: the engine's clock restarts with the process, so
 * what was stored as wall time becomes "this much left from now" (time
 * spent stopped counts against session and message expiry).
 *
 * Held packets: with persistence on, a PUBACK/PUBREC/PUBCOMP of a client's
 * flow waits behind a ticket from io->hold until the shard has made every
 * record it depends on durable (its own, and those of shards the message
 * was forwarded to). So do the broker's PUBREL and its first send of a
 * QoS 2 PUBLISH to a stored session: the receiver keeps state on the packet
 * id (exactly once), so the id must survive a crash before the receiver
 * sees it. They leave in ticket order, which is the order they were due
 * in, so each connection's acks stay ordered [MQTT-4.6.0-2].
 */
#include "core/persist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine_int.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/ring.h"
#include "core/msg.h"
#include "core/retain.h"
#include "core/session.h"
#include "core/subtree.h"
#include "core/topic.h"

#define MSG_HDR 32u
#define META_HDR 22u
#define Q_HDR 15u

/* ---- byte order --------------------------------------------------------- */

static uint8_t *put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
	return p + 2;
}

static uint8_t *put32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--)
		*p++ = (uint8_t)(v >> (8 * i));
	return p;
}

static uint8_t *put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--)
		*p++ = (uint8_t)(v >> (8 * i));
	return p;
}

static uint64_t get_be(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;

	for (unsigned i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* A bounds-checked reader over a stored value. */
struct rd {
	const uint8_t *p;
	size_t left;
	bool bad;
};

static uint64_t rd_int(struct rd *r, unsigned n)
{
	uint64_t v;

	if (r->bad || r->left < n) {
		r->bad = true;
		return 0;
	}
	v = get_be(r->p, n);
	r->p += n;
	r->left -= n;
	return v;
}

static const uint8_t *rd_bytes(struct rd *r, size_t n)
{
	const uint8_t *p = r->p;

	if (r->bad || r->left < n) {
		r->bad = true;
		return NULL;
	}
	r->p += n;
	r->left -= n;
	return p;
}

/* ---- keys --------------------------------------------------------------- */

int smq_persist_key_kind(struct smq_str key)
{
	if (!key.len)
		return 0;
	switch (key.p[0]) {
	case SMQ_PK_VERSION:
	case SMQ_PK_SESSION:
	case SMQ_PK_RETAINED:
		return key.p[0];
	}
	return 0;
}

bool smq_persist_key_is_meta(struct smq_str key)
{
	return key.len == SMQ_PERSIST_SESSION_PREFIX + 1 && key.p[0] == SMQ_PK_SESSION &&
	       key.p[SMQ_PERSIST_SESSION_PREFIX] == SMQ_PS_META;
}

int smq_persist_meta_client(struct smq_str val, struct smq_str *id)
{
	uint32_t len;

	if (val.len < META_HDR)
		return -EINVAL;
	len = (uint32_t)get_be(val.p + 18, 2);
	if (!len || val.len < META_HDR + len)
		return -EINVAL;
	*id = (struct smq_str){ val.p + META_HDR, len };
	return 0;
}

struct smq_str smq_persist_version_key(void)
{
	static const uint8_t k[1] = { SMQ_PK_VERSION };

	return (struct smq_str){ k, 1 };
}

void smq_persist_version_value(uint8_t out[8])
{
	memcpy(out, "SMQS", 4);
	put32(out + 4, SMQ_PERSIST_FORMAT);
}

int smq_persist_version_check(struct smq_str val)
{
	if (val.len != 8 || memcmp(val.p, "SMQS", 4))
		return -EINVAL;
	if (get_be(val.p + 4, 4) > SMQ_PERSIST_FORMAT)
		return -EPROTONOSUPPORT;
	return 0;
}

int smq_persist_retained_seq(struct smq_str val, uint64_t *seq, bool *tomb)
{
	if (val.len < 9)
		return -EINVAL;
	*seq = get_be(val.p, 8);
	*tomb = val.p[8] != 0;
	return 0;
}

/* The session prefix 'C' | uid, then @type, into e->pkey. */
static size_t key_session(struct smq_engine *e, const struct smq_session *s, uint8_t type)
{
	uint8_t *p = e->pkey;

	*p++ = SMQ_PK_SESSION;
	p = put64(p, s->rare->suid);	/* a stored session has its rare part */
	if (type)
		*p++ = type;
	return (size_t)(p - e->pkey);
}

/* ---- emission ----------------------------------------------------------- */

static void emit_flags(struct smq_engine *e, uint8_t op, uint8_t flags, size_t klen,
		       const struct smq_str *val, unsigned nval)
{
	struct smq_store_rec r = { .op = op, .flags = flags, .key = { e->pkey, (uint32_t)klen } };

	if (!e->io.store)
		return;
	for (unsigned i = 0; i < nval; i++)
		if (val[i].len)
			r.val[r.nval++] = val[i];
	e->io.store(e->io.ctx, &r);
}

static void emit(struct smq_engine *e, uint8_t op, size_t klen, const struct smq_str *val,
		 unsigned nval)
{
	emit_flags(e, op, 0, klen, val, nval);
}

static uint8_t *msg_hdr(const struct smq_engine *e, const struct smq_msg *m, uint8_t *p)
{
	*p++ = m->qos;
	*p++ = (uint8_t)((m->retain ? 1 : 0) | (m->has_expiry ? 2 : 0));
	p = put32(p, m->expiry_s);
	p = put64(p, (uint64_t)((int64_t)m->created_ms + e->wall_off));
	p = put64(p, m->uid);
	p = put16(p, m->topic_len);
	p = put32(p, m->props_len);
	return put32(p, m->payload_len);
}

static struct smq_str msg_body(const struct smq_msg *m)
{
	return (struct smq_str){ m->data, (uint32_t)smq_msg_size(m) };
}

static uint8_t *scratch(struct smq_engine *e, size_t n)
{
	if (n > e->pval_cap) {
		uint8_t *p = realloc(e->pval, n);

		if (!p)
			return NULL;
		e->pval = p;
		e->pval_cap = n;
	}
	return e->pval;
}

/* The will a session has now: its connection's while online. */
static const struct smq_msg *session_will(const struct smq_session *s, uint32_t *delay)
{
	const struct smq_econn *c = s->conn;

	if (c) {
		*delay = smq_eng_more(c)->will_delay_s;
		return c->will_off ? NULL : smq_eng_more(c)->will;
	}
	if (!s->rare)
		return NULL;
	*delay = s->rare->will_delay_s;
	return s->rare->will;
}

void smq_eng_store_meta(struct smq_engine *e, struct smq_session *s)
{
	uint8_t hdr[META_HDR], *p = hdr;
	uint32_t delay = 0;
	const struct smq_msg *will = session_will(s, &delay);
	struct smq_str v[4] = { { hdr, META_HDR },
				{ (const uint8_t *)s->client_id, s->id_len } };
	uint8_t *tail = NULL;

	*p++ = s->version;
	*p++ = (uint8_t)((s->clean ? 1 : 0) | (s->conn ? 2 : 0) | (s->user ? 4 : 0) |
			 (will ? 8 : 0));
	p = put32(p, s->expiry_s);
	p = put64(p, (uint64_t)((int64_t)(s->rare ? s->rare->offline_since_ms : 0) + e->wall_off));
	p = put32(p, delay);
	p = put16(p, s->id_len);
	put16(p, s->user ? s->user_len : 0);
	/* user and will header in one piece: a record has at most 4 */
	if (s->user || will) {
		size_t ul = s->user ? s->user_len : 0;

		tail = scratch(e, ul + MSG_HDR);
		if (!tail) {
			smq_err("shard %u: out of memory storing session '%s'", e->shard,
				s->client_id);
			return;
		}
		memcpy(tail, s->user ? s->user : "", ul);
		v[2] = (struct smq_str){ tail, (uint32_t)ul };
		if (will) {
			msg_hdr(e, will, tail + ul);
			v[2].len += MSG_HDR;
			v[3] = msg_body(will);
		}
	}
	emit(e, SMQ_STORE_PUT, key_session(e, s, SMQ_PS_META), v, 4);
}

void smq_eng_store_forget(struct smq_engine *e, struct smq_session *s)
{
	if (!smq_eng_stores(e, s))
		return;
	emit(e, SMQ_STORE_DEL_PREFIX, key_session(e, s, 0), NULL, 0);
	s->rare->stored = false;	/* stored: it has its rare part */
	if (s->rare->done)
		s->rare->done->n = 0;	/* their records went with the prefix */
	for (struct smq_qmsg *q = s->fl_head; q; q = q->next)
		q->sseq = 0;
	for (struct smq_qmsg *q = s->q_head; q; q = q->next)
		q->sseq = 0;
}

void smq_eng_store_sub(struct smq_engine *e, struct smq_session *s, struct smq_str filter,
		       uint8_t opts, uint32_t sub_id)
{
	size_t k = key_session(e, s, SMQ_PS_SUB);
	uint8_t v[5];
	struct smq_str val = { v, 5 };

	memcpy(e->pkey + k, filter.p, filter.len);
	v[0] = opts;
	put32(v + 1, sub_id);
	emit(e, SMQ_STORE_PUT, k + filter.len, &val, 1);
}

void smq_eng_store_unsub(struct smq_engine *e, struct smq_session *s, struct smq_str filter)
{
	size_t k = key_session(e, s, SMQ_PS_SUB);

	memcpy(e->pkey + k, filter.p, filter.len);
	emit(e, SMQ_STORE_DEL, k + filter.len, NULL, 0);
}

void smq_eng_store_inbound(struct smq_engine *e, struct smq_session *s, uint16_t pid, bool add)
{
	size_t k = key_session(e, s, SMQ_PS_INBOUND);

	put16(e->pkey + k, pid);
	emit(e, add ? SMQ_STORE_PUT : SMQ_STORE_DEL, k + 2, NULL, 0);
}

void smq_eng_store_inbound_msg(struct smq_engine *e, struct smq_session *s, uint16_t pid,
			       const struct smq_msg *m)
{
	size_t k = key_session(e, s, SMQ_PS_INBOUND);
	uint8_t h[1 + MSG_HDR] = { 0 };
	struct smq_str v[2] = { { h, sizeof(h) }, msg_body(m) };

	put16(e->pkey + k, pid);
	msg_hdr(e, m, h + 1);
	emit(e, SMQ_STORE_PUT, k + 2, v, 2);
}

uint64_t smq_eng_inbound_uid(const struct smq_session *s, uint16_t pid, struct smq_str topic,
			     struct smq_str payload)
{
	/* SipHash under a key of the session and the packet id, not the
	 * process key: it must be the same after a restart. Only the
	 * publisher's own messages can collide, and only a DUP re-send is
	 * ever skipped for it. */
	uint64_t h = smq_siphash(s->rare->suid, pid, topic.p, topic.len, 1, 3);	/* stored */

	h = smq_siphash(h, payload.len, payload.p, payload.len, 1, 3);
	return h ? h : 1;
}

void smq_eng_store_q(struct smq_engine *e, struct smq_session *s, struct smq_qmsg *q)
{
	size_t k, hlen = Q_HDR + (size_t)q->nids * 4u + MSG_HDR;
	uint8_t *h = scratch(e, hlen), *p = h;
	struct smq_str v[2];
	uint8_t flags = SMQ_STORE_F_PAIR;

	if (!h) {
		smq_err("shard %u: out of memory storing a message for '%s'", e->shard,
			s->client_id);
		return;
	}
	if (!q->sseq) {
		q->sseq = ++e->sseq;
		flags |= SMQ_STORE_F_NEW;
	}
	/* For a live client (sent, or queued behind its in-flight window),
	 * its acknowledgement usually deletes the record before the store
	 * had to write it. Not what a held packet waits for: a QoS 2
	 * message's first send and its PUBREL leave only once this record
	 * is durable (deliver.c), so it must not wait for a partner. */
	if (s->conn && ((const struct smq_econn *)s->conn)->state == CS_LIVE &&
	    (q->qos < 2 || (q->sent && q->state == SMQ_QS_PUBLISHED)))
		flags |= SMQ_STORE_F_LAZY;
	k = key_session(e, s, SMQ_PS_QMSG);
	put64(e->pkey + k, q->sseq);
	*p++ = q->state;
	*p++ = q->qos;
	*p++ = q->retain;
	p = put16(p, q->pid);
	p = put64(p, q->uid);
	p = put16(p, q->nids);
	for (uint16_t i = 0; i < q->nids; i++)
		p = put32(p, q->ids[i]);
	v[1] = (struct smq_str){ NULL, 0 };
	if (q->msg) {
		p = msg_hdr(e, q->msg, p);
		v[1] = msg_body(q->msg);
	}
	v[0] = (struct smq_str){ h, (uint32_t)(p - h) };
	emit_flags(e, SMQ_STORE_PUT, flags, k + 8, v, 2);
}

void smq_eng_store_q_del(struct smq_engine *e, struct smq_session *s, struct smq_qmsg *q)
{
	size_t k;

	if (!q->sseq)
		return;
	k = key_session(e, s, SMQ_PS_QMSG);
	put64(e->pkey + k, q->sseq);
	emit_flags(e, SMQ_STORE_DEL, SMQ_STORE_F_PAIR | SMQ_STORE_F_LAZY, k + 8, NULL, 0);
}

/* A QoS 2 message a stored session completed (PUBCOMP) is remembered for
 * this long: its publisher may not have its PUBREC yet (that waits for the
 * publisher's own shard), and after a crash it sends the message again,
 * which routes it again (see inbound above); the session's copy is gone by
 * then, so this is what tells it that it already had it. Counted again
 * from a restart, to give publishers time to come back. */
#define DONE_KEEP_MS 60000u

static void done_del(struct smq_engine *e, struct smq_session *s, uint64_t uid)
{
	size_t k = key_session(e, s, SMQ_PS_DONE);

	put64(e->pkey + k, uid);
	emit(e, SMQ_STORE_DEL, k + 8, NULL, 0);
}

/* Forget the expired ones (their records too). */
static void done_prune(struct smq_engine *e, struct smq_session *s)
{
	struct smq_done_ring *d = s->rare->done;	/* called for stored sessions */

	while (d && d->n && d->v[d->h].until_ms <= e->now) {
		if (s->rare->stored)
			done_del(e, s, d->v[d->h].uid);
		d->h = (d->h + 1) % d->cap;
		d->n--;
	}
}

static int done_push(struct smq_session *s, uint64_t uid, uint64_t until)
{
	struct smq_done_ring *d = s->rare->done;	/* called for stored sessions */

	if (!d && !(d = s->rare->done = calloc(1, sizeof(*d))))
		return -ENOMEM;
	if (d->n == d->cap && smq_ring_grow((void **)&d->v, &d->h, d->n, &d->cap, sizeof(*d->v), 16))
		return -ENOMEM;
	d->v[(d->h + d->n++) % d->cap] = (struct smq_done_uid){ uid, until };
	return 0;
}

void smq_eng_store_done(struct smq_engine *e, struct smq_session *s, uint64_t uid)
{
	uint64_t until = e->now + DONE_KEEP_MS;
	uint8_t v[8];
	size_t k;

	if (!uid || !smq_eng_stores(e, s))
		return;
	done_prune(e, s);
	if (done_push(s, uid, until)) {
		smq_err("shard %u: out of memory remembering a completed message for '%s'",
			e->shard, s->client_id);
		return;
	}
	k = key_session(e, s, SMQ_PS_DONE);
	put64(e->pkey + k, uid);
	put64(v, (uint64_t)((int64_t)until + e->wall_off));
	emit(e, SMQ_STORE_PUT, k + 8, &(struct smq_str){ v, 8 }, 1);
}

bool smq_eng_done_uid(const struct smq_session *s, uint64_t uid)
{
	const struct smq_done_ring *d = s->rare ? s->rare->done : NULL;

	for (size_t i = 0; d && i < d->n; i++)
		if (d->v[(d->h + i) % d->cap].uid == uid)
			return true;
	return false;
}

/* Everything @s holds, the first time it is stored. */
static void store_whole(struct smq_engine *e, struct smq_session *s)
{
	uint16_t ids[256];
	uint32_t n;

	smq_eng_store_meta(e, s);
	for (uint32_t i = 0; i < s->nsubs; i++)
		smq_eng_store_sub(e, s, (struct smq_str){ (const uint8_t *)s->subs[i].filter,
							  s->subs[i].len },
				  s->subs[i].opts, s->subs[i].sub_id);
	/* at most max_inflight_messages ids: a few hundred in practice */
	n = smq_session_in_list(s, ids, 256);
	for (uint32_t i = 0; i < n; i++)
		smq_eng_store_inbound(e, s, ids[i], true);
	for (struct smq_qmsg *q = s->fl_head; q; q = q->next)
		smq_eng_store_q(e, s, q);
	for (struct smq_qmsg *q = s->q_head; q; q = q->next)
		smq_eng_store_q(e, s, q);
}

void smq_eng_store_session(struct smq_engine *e, struct smq_session *s)
{
	struct smq_session_rare *r;

	if (!e->persist)
		return;
	if (!s->expiry_s) {
		smq_eng_store_forget(e, s);
		return;
	}
	r = smq_eng_session_rare(s);	/* allocated at CONNECT already */
	if (!r) {
		smq_err("shard %u: out of memory storing session '%s'", e->shard, s->client_id);
		return;
	}
	if (r->stored) {
		smq_eng_store_meta(e, s);
		return;
	}
	r->stored = true;
	/* random per process and counted within it: unique across the shards
	 * and runs whose stores may be merged */
	r->suid = smq_mix64(e->suid_seed ^ ++e->suid_n);
	store_whole(e, s);
}

void smq_eng_store_retained(struct smq_engine *e, const struct smq_msg *m, uint64_t seq)
{
	struct smq_str topic = smq_msg_topic(m);
	uint8_t h[9 + MSG_HDR];
	struct smq_str v[2] = { { h, 9 } };
	bool tomb = m->payload_len == 0;

	if (!e->persist || smq_eng_is_sys(topic))
		return;		/* $SYS is rebuilt by the broker, never stored */
	e->pkey[0] = SMQ_PK_RETAINED;
	memcpy(e->pkey + 1, topic.p, topic.len);
	if (tomb && e->nshards == 1) {
		/* one store: nothing elsewhere can hold an older copy */
		emit(e, SMQ_STORE_DEL, 1 + topic.len, NULL, 0);
		return;
	}
	put64(h, seq);
	h[8] = tomb;
	if (!tomb) {
		msg_hdr(e, m, h + 9);
		v[0].len = 9 + MSG_HDR;
		v[1] = msg_body(m);
	}
	emit(e, SMQ_STORE_PUT, 1 + topic.len, v, 2);
}

/* ---- held acknowledgements --------------------------------------------- */

/* An acknowledgement goes out; a PUBREC also says every route of its
 * message is durable, so the stored copy can go. */
static void ack_out(struct smq_engine *e, struct smq_econn *c, uint8_t type, uint16_t pid,
		    uint8_t reason)
{
	if (type == SMQ_PUBREC && !reason && smq_eng_stores(e, c->s) &&
	    smq_session_in_has(c->s, pid))
		smq_eng_store_inbound(e, c->s, pid, true);
	smq_eng_write_ack(e, c, type, pid, reason);
}

/* The held entry @i places after the oldest. */
static struct held_ack *held_at(struct smq_engine *e, size_t i)
{
	return &e->held[(e->held_head + i) & (e->held_cap - 1)];
}

/* Room for one more held entry: the ring doubles, kept in order. */
static int held_grow(struct smq_engine *e)
{
	return smq_ring_grow((void **)&e->held, &e->held_head, e->held_n, &e->held_cap,
			     sizeof(*e->held), 256) ? -ENOMEM : 0;
}

void smq_eng_ack(struct smq_engine *e, struct smq_econn *c, uint8_t type, uint16_t pid,
		 uint8_t reason)
{
	uint64_t ticket = e->persist && e->io.hold ? e->io.hold(e->io.ctx) : 0;
	struct econn_more *m;

	if (!ticket && !smq_eng_more(c)->nheld) {
		if (type == SMQ_PUBLISH)
			smq_eng_send_held(e, c, pid);
		else
			ack_out(e, c, type, pid, reason);
		return;
	}
	m = smq_eng_more_mut(c);
	if (!m || (e->held_n == e->held_cap && held_grow(e))) {
		/* Neither early (not durable yet) nor never (the client would
		 * wait forever): it reconnects and sends again, and a held
		 * PUBLISH is still in its session for the re-send. */
		smq_err("shard %u: out of memory holding a packet for '%s'; closing it", e->shard,
			c->id);
		smq_eng_conn_close(e, c);
		return;
	}
	/* ticket 0 behind held ones: ready as soon as they are */
	if (!ticket && e->held_n)
		ticket = held_at(e, e->held_n - 1)->ticket;
	*held_at(e, e->held_n++) = (struct held_ack){ .c = c, .ticket = ticket, .pid = pid,
						    .type = type, .reason = reason };
	m->nheld++;
	m->nheld_pub += type == SMQ_PUBLISH;
}

void smq_eng_held_forget(struct smq_engine *e, struct smq_econn *c)
{
	struct econn_more *m = c->more;	/* set: c holds packets */

	for (size_t i = 0; i < e->held_n && m->nheld; i++) {
		struct held_ack *h = held_at(e, i);

		if (h->c == c) {
			h->c = NULL;
			m->nheld--;
		}
	}
	m->nheld_pub = 0;
}

static void release_one(struct smq_engine *e, const struct held_ack *h, bool ok)
{
	struct smq_econn *c = h->c;

	if (!c)
		return;
	c->more->nheld--;	/* set: c holds h */
	c->more->nheld_pub -= h->type == SMQ_PUBLISH;
	if (c->state != CS_LIVE)
		return;
	if (h->type == SMQ_PUBLISH) {
		smq_eng_send_held(e, c, h->pid);
		return;
	}
	/* our side of a flow (PUBREL, PUBCOMP) goes out either way: its
	 * record is retried until it is written */
	if (ok || h->type == SMQ_PUBCOMP || h->type == SMQ_PUBREL) {
		ack_out(e, c, h->type, h->pid, h->reason);
		return;
	}
	e->stats.store_refused++;
	if (c->version == SMQ_V5) {
		/* the flow ends (4.3.3) */
		if (h->type == SMQ_PUBREC && smq_session_in_release(c->s, h->pid) == 0 &&
		    smq_eng_stores(e, c->s))
			smq_eng_store_inbound(e, c->s, h->pid, false);
		smq_eng_write_ack(e, c, h->type, h->pid, SMQ_RC_QUOTA_EXCEEDED);
		return;
	}
	smq_eng_conn_close(e, c);	/* 3.x cannot say no: it sends again */
}

void smq_engine_release(struct smq_engine *e, uint64_t ticket, bool ok, uint64_t now_ms)
{
	if (now_ms > e->now)
		e->now = now_ms;
	while (e->held_n && held_at(e, 0)->ticket <= ticket) {
		struct held_ack h = *held_at(e, 0);

		/* pop first: releasing may hold new packets (a pump) */
		e->held_head = (e->held_head + 1) & (e->held_cap - 1);
		e->held_n--;
		release_one(e, &h, ok);
	}
}

void smq_engine_set_store_full(struct smq_engine *e, bool full)
{
	e->store_full = full;
}

void smq_engine_set_persist(struct smq_engine *e, int64_t wall_offset_ms, uint64_t seed)
{
	e->suid_seed = seed;
	if (!e->pkey)
		e->pkey = malloc(SMQ_PERSIST_KEY_MAX);
	e->persist = e->pkey != NULL && e->io.store != NULL;
	e->wall_off = wall_offset_ms;
}

/* ---- restore ------------------------------------------------------------- */

static int bad(char *err, size_t cap, const char *what)
{
	snprintf(err, cap, "%s", what);
	return -EINVAL;
}

/* A stored message, rebased: its expiry counts from its creation, stopped
 * time included. *expired when that has passed (NULL returned, no error). */
static struct smq_msg *read_msg(struct smq_engine *e, struct rd *r, uint64_t now, bool *expired)
{
	struct smq_msg_spec sp = { 0 };
	uint8_t flags;
	uint64_t created, wall_now = (uint64_t)((int64_t)now + e->wall_off);
	uint32_t tl, pl, yl;

	*expired = false;
	sp.qos = (uint8_t)rd_int(r, 1);
	flags = (uint8_t)rd_int(r, 1);
	sp.expiry_s = (uint32_t)rd_int(r, 4);
	created = rd_int(r, 8);
	sp.uid = rd_int(r, 8);
	tl = (uint32_t)rd_int(r, 2);
	pl = (uint32_t)rd_int(r, 4);
	yl = (uint32_t)rd_int(r, 4);
	sp.topic = (struct smq_str){ rd_bytes(r, tl), tl };
	sp.props = (struct smq_str){ rd_bytes(r, pl), pl };
	sp.payload = (struct smq_str){ rd_bytes(r, yl), yl };
	if (r->bad || sp.qos > 2 || !tl)
		return NULL;
	sp.retain = flags & 1;
	sp.has_expiry = flags & 2;
	sp.created_ms = now;
	if (sp.has_expiry) {
		uint64_t age = wall_now > created ? wall_now - created : 0;

		if (age >= (uint64_t)sp.expiry_s * 1000u) {
			*expired = true;
			return NULL;
		}
		sp.expiry_s -= (uint32_t)(age / 1000u);
	}
	return smq_msg_new(&sp);
}

static int restore_retained(struct smq_engine *e, struct smq_str key, struct smq_str val,
			    uint64_t now, char *err, size_t cap)
{
	struct rd r = { val.p, val.len, false };
	uint64_t seq = rd_int(&r, 8);
	bool tomb = rd_int(&r, 1) != 0, expired;
	struct smq_msg *m;
	int ret;

	if (r.bad)
		return bad(err, cap, "a retained message record is truncated");
	smq_retain_seq_floor(e->retained, seq);
	if (tomb)
		return 0;
	m = read_msg(e, &r, now, &expired);
	if (expired) {
		memcpy(e->pkey, key.p, key.len);
		emit(e, SMQ_STORE_DEL, key.len, NULL, 0);
		return 0;
	}
	if (!m)
		return r.bad ? bad(err, cap, "a retained message record is damaged") : -ENOMEM;
	if (m->topic_len != key.len - 1 || memcmp(m->data, key.p + 1, key.len - 1)) {
		smq_msg_unref(m);
		return bad(err, cap, "a retained message is stored under another topic");
	}
	ret = smq_retain_restore(e->retained, m, seq);
	smq_msg_unref(m);
	if (ret == -ENOSPC)
		smq_warn("retained message beyond retained_messages_max dropped at start");
	return ret == -ENOSPC ? 0 : ret;
}

/* The metadata record: a new session, or none when it expired while the
 * broker was stopped and has no will left to publish. */
static int restore_meta(struct smq_engine *e, struct smq_str key, struct smq_str val,
			uint64_t now, char *err, size_t cap)
{
	struct rd r = { val.p, val.len, false };
	uint64_t wall_now = (uint64_t)((int64_t)now + e->wall_off), since, gone;
	uint8_t version = (uint8_t)rd_int(&r, 1), flags = (uint8_t)rd_int(&r, 1);
	uint32_t expiry = (uint32_t)rd_int(&r, 4), delay, ulen, idlen;
	const uint8_t *user;
	struct smq_str id;
	struct smq_msg *will = NULL;
	struct smq_session *s;
	struct smq_session_rare *sr;
	bool expired = false;
	uint64_t expiry_ms = UINT64_MAX, will_ms = UINT64_MAX;

	since = rd_int(&r, 8);
	delay = (uint32_t)rd_int(&r, 4);
	idlen = (uint32_t)rd_int(&r, 2);
	ulen = (uint32_t)rd_int(&r, 2);
	id = (struct smq_str){ rd_bytes(&r, idlen), idlen };
	user = rd_bytes(&r, ulen);
	if (flags & 8)
		will = read_msg(e, &r, now, &expired);
	if (r.bad || !expiry || !idlen || (flags & 8 && !will && !expired))
		return r.bad || !expiry ? bad(err, cap, "a session record is damaged") : -ENOMEM;
	if (smq_eng_session_find(e, id)) {
		smq_msg_unref(will);
		return bad(err, cap, "a session is stored twice");
	}
	/* Connected when the broker stopped: the connection was lost now. */
	gone = flags & 2 ? 0 : (wall_now > since ? wall_now - since : 0);
	if (expiry != UINT32_MAX) {
		if (gone >= (uint64_t)expiry * 1000u && !will) {
			/* expired: its records go (rs stays NULL: they are skipped) */
			memcpy(e->pkey, key.p, SMQ_PERSIST_SESSION_PREFIX);
			emit(e, SMQ_STORE_DEL_PREFIX, SMQ_PERSIST_SESSION_PREFIX, NULL, 0);
			e->stats.sessions_expired++;
			return 0;
		}
		expiry_ms = gone >= (uint64_t)expiry * 1000u ? now
							     : now + (uint64_t)expiry * 1000u - gone;
	}
	if (will && delay < expiry)
		will_ms = gone >= (uint64_t)delay * 1000u ? now : now + (uint64_t)delay * 1000u - gone;
	s = smq_eng_session_new(e, id);
	if (!s || smq_eng_set_user(s, (struct smq_str){ user, ulen }, flags & 4) ||
	    !(sr = smq_eng_session_rare(s))) {
		smq_msg_unref(will);
		return -ENOMEM;
	}
	s->version = version;
	s->clean = flags & 1;
	s->expiry_s = expiry;
	sr->stored = true;
	sr->suid = get_be(key.p + 1, 8);
	sr->offline_since_ms = now;
	sr->will = will;
	sr->will_delay_s = delay;
	smq_eng_arm_offline(e, s, expiry_ms, will_ms);
	e->rs = s;
	e->restored++;
	return 0;
}

static int restore_sub(struct smq_engine *e, struct smq_session *s, struct smq_str filter,
		       struct smq_str val, char *err, size_t cap)
{
	struct rd r = { val.p, val.len, false };
	uint8_t opts = (uint8_t)rd_int(&r, 1);
	uint32_t sub_id = (uint32_t)rd_int(&r, 4);
	unsigned flags = 0;

	if (r.bad || !smq_topic_filter_valid(filter))
		return bad(err, cap, "a subscription record is damaged");
	if (smq_session_sub_put(s, filter, opts, sub_id))
		return -ENOMEM;
	if (smq_subtree_add(e->subs, filter, s, opts, sub_id, &flags))
		return -ENOMEM;
	if (flags & SMQ_SUBTREE_FIRST)
		smq_eng_interest_changed(e, filter, true);
	return 0;
}

static int restore_q(struct smq_engine *e, struct smq_session *s, struct smq_str key,
		     struct smq_str val, uint64_t now, char *err, size_t cap)
{
	static const struct smq_session_limits unlimited = { .max_queued = UINT32_MAX };
	struct rd r = { val.p, val.len, false };
	uint8_t state = (uint8_t)rd_int(&r, 1), qos = (uint8_t)rd_int(&r, 1);
	bool retain = rd_int(&r, 1) != 0, expired = false;
	uint16_t pid = (uint16_t)rd_int(&r, 2);
	uint64_t uid = rd_int(&r, 8);
	uint16_t nids = (uint16_t)rd_int(&r, 2);
	uint32_t ids[64], *v = nids > 64 ? malloc((size_t)nids * 4u) : ids;
	struct smq_msg *m = NULL;
	struct smq_qmsg *q = NULL;
	int ret = 0;

	if (!v)
		return -ENOMEM;
	for (uint16_t i = 0; i < nids; i++)
		v[i] = (uint32_t)rd_int(&r, 4);
	if (state != SMQ_QS_RELEASED)
		m = read_msg(e, &r, now, &expired);
	if (r.bad || state > SMQ_QS_RELEASED || qos > 2 || (!m && !expired && state != SMQ_QS_RELEASED)) {
		ret = r.bad || state > SMQ_QS_RELEASED || qos > 2
			      ? bad(err, cap, "a queued message record is damaged") : -ENOMEM;
		goto out;
	}
	if (expired) {		/* it expired while stored */
		memcpy(e->pkey, key.p, key.len);
		emit(e, SMQ_STORE_DEL, key.len, NULL, 0);
		e->stats.dropped_expired++;
		goto out;
	}
	if (state == SMQ_QS_QUEUED) {
		ret = smq_session_push(s, m, qos, retain, v, nids, &unlimited);
		q = ret ? NULL : s->q_tail;
	} else {
		q = smq_session_restore_flight(s, m, qos, retain, v, nids, pid, state);
		if (!q)
			ret = pid ? -ENOMEM : bad(err, cap, "an in-flight message has no packet id");
	}
	if (q) {
		q->uid = uid;
		q->sseq = get_be(key.p + key.len - 8, 8);
		if (q->sseq > e->sseq)
			e->sseq = q->sseq;
	}
out:
	smq_msg_unref(m);
	if (v != ids)
		free(v);
	return ret;
}

/* An inbound QoS 2 id, and the message when its routes were not known to
 * be durable: kept for the publisher's re-send (engine.c re-routes it). */
static int restore_inbound(struct smq_engine *e, struct smq_session *s, uint16_t pid,
			   struct smq_str val, uint64_t now, char *err, size_t cap)
{
	struct rd r = { val.p, val.len, false };
	struct smq_inpend *p;
	bool expired;

	if (smq_session_in_publish(s, pid) < 0)
		return -ENOMEM;
	if (!val.len)
		return 0;
	if (rd_int(&r, 1) != 0)
		return bad(err, cap, "an inbound packet id record is damaged");
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->msg = read_msg(e, &r, now, &expired);
	if (!p->msg) {
		free(p);
		if (expired)
			return 0;
		return r.bad ? bad(err, cap, "an inbound message record is damaged") : -ENOMEM;
	}
	p->msg->redo = true;	/* not shared yet */
	p->pid = pid;
	p->next = s->rare->in_pend;	/* a restored session has its rare part */
	s->rare->in_pend = p;
	return 0;
}

static int restore_done(struct smq_engine *e, struct smq_session *s, struct smq_str key,
			struct smq_str val, uint64_t now, char *err, size_t cap)
{
	uint64_t uid = get_be(key.p + key.len - 8, 8);
	uint64_t wall_now = (uint64_t)((int64_t)now + e->wall_off);

	if (val.len != 8)
		return bad(err, cap, "a completed message record is damaged");
	if (get_be(val.p, 8) <= wall_now) {
		memcpy(e->pkey, key.p, key.len);
		emit(e, SMQ_STORE_DEL, key.len, NULL, 0);
		return 0;
	}
	if (done_push(s, uid, now + DONE_KEEP_MS))
		return -ENOMEM;
	return 0;
}

static int restore_session_rec(struct smq_engine *e, struct smq_str key, struct smq_str val,
			       uint64_t now, char *err, size_t cap)
{
	struct smq_session *s = e->rs;
	const uint8_t *rest = key.p + SMQ_PERSIST_SESSION_PREFIX + 1;
	uint32_t rlen;
	uint64_t uid;

	if (key.len <= SMQ_PERSIST_SESSION_PREFIX)
		return bad(err, cap, "a session key is damaged");
	rlen = key.len - SMQ_PERSIST_SESSION_PREFIX - 1;
	uid = get_be(key.p + 1, 8);
	if (key.p[SMQ_PERSIST_SESSION_PREFIX] == SMQ_PS_META) {
		e->rs = NULL;
		e->rs_uid = uid;
		return rlen ? bad(err, cap, "a session key is damaged")
			    : restore_meta(e, key, val, now, err, cap);
	}
	if (uid != e->rs_uid)
		return bad(err, cap, "a session record has no session metadata");
	if (!s)
		return 0;	/* a record of a session dropped as expired */
	switch (key.p[SMQ_PERSIST_SESSION_PREFIX]) {
	case SMQ_PS_SUB:
		return restore_sub(e, s, (struct smq_str){ rest, rlen }, val, err, cap);
	case SMQ_PS_INBOUND:
		if (rlen != 2)
			return bad(err, cap, "an inbound packet id record is damaged");
		return restore_inbound(e, s, (uint16_t)get_be(rest, 2), val, now, err, cap);
	case SMQ_PS_QMSG:
		if (rlen != 8)
			return bad(err, cap, "a queued message key is damaged");
		return restore_q(e, s, key, val, now, err, cap);
	case SMQ_PS_DONE:
		if (rlen != 8)
			return bad(err, cap, "a completed message key is damaged");
		return restore_done(e, s, key, val, now, err, cap);
	}
	return bad(err, cap, "a session record has an unknown type");
}

int smq_engine_restore(struct smq_engine *e, struct smq_str key, struct smq_str val,
		       uint64_t now_ms, char *err, size_t cap)
{
	if (now_ms > e->now)
		e->now = now_ms;
	if (!e->pkey && !(e->pkey = malloc(SMQ_PERSIST_KEY_MAX)))
		return -ENOMEM;
	switch (smq_persist_key_kind(key)) {
	case SMQ_PK_VERSION:
		return 0;
	case SMQ_PK_RETAINED:
		if (key.len < 2)
			return bad(err, cap, "a retained message key is empty");
		return restore_retained(e, key, val, e->now, err, cap);
	case SMQ_PK_SESSION:
		return restore_session_rec(e, key, val, e->now, err, cap);
	}
	return bad(err, cap, "a record of an unknown kind");
}

size_t smq_engine_restore_done(struct smq_engine *e, uint64_t now_ms)
{
	if (now_ms > e->now)
		e->now = now_ms;
	e->rs = NULL;
	e->stats.subscriptions = smq_subtree_count(e->subs);
	return e->restored;
}
