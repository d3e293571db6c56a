/* client.c - the MQTT client protocol core: connection state, QoS flows,
 * keepalive, events; bytes in, bytes out, no I/O.
 *
 * Buffers and their lifecycles:
 *
 *   in   every byte fed is appended here, then each complete packet is
 *        framed (smq_frame), decoded (smq_decode) and handled at once. A
 *        packet that makes an event stays in @in: the event record keeps its
 *        offset, and next_event() decodes it again so that the views it
 *        returns point into @in. @in is compacted only at the start of
 *        feed(), keeping the oldest byte a queued event still needs; that is
 *        why event views live until the next feed().
 *
 *        [ consumed | bytes of queued events ... | unparsed tail ]
 *        0          keep                         in_rd         in.len
 *
 *   out  encoded packets waiting for the socket; out.off advances with
 *        smq_client_out_consumed(). out_queued / out_written count bytes
 *        ever queued / written, so a QoS 0 PUBLISH remembers the position
 *        of its last byte (a "mark") and completes when it is written.
 *
 * (smq_reader is not used: its views die at its next call, and events must
 * outlive the feed() that produced them; owning the input buffer does that
 * with the same single copy.)
 *
 * Outgoing QoS 1/2 messages are struct outmsg, found by packet id through an
 * open-addressing map and linked in the order they must be re-sent
 * [MQTT-4.6.0-1]: a QoS 2 message moves to the tail when its PUBREC
 * arrives, so PUBRELs are re-sent in PUBREC order [MQTT-4.6.0-3].
 * SUBSCRIBE/UNSUBSCRIBE waiting for their ack sit in the same map (ids are
 * one space) but in no list; they do not survive reset_connection().
 *
 * Invariants: a packet id is in @ids iff it is in use by us; every
 * publish accepted gets exactly one PUBLISH_DONE; nothing is queued for
 * output after the client reached CLOSED except the DISCONNECT that closed
 * it; bytes from the network never reach an assert().
 *
 * Left to others: sockets, clocks and waiting (net/clientio.c); the wire
 * format (core/codec.c); topic syntax (core/topic.c).
 */
#include "core/client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/topic.h"

/* ---- a growable byte buffer ------------------------------------------ */

struct bytes {
	uint8_t *p;
	size_t off;		/* out: first unwritten byte */
	size_t len;
	size_t cap;
};

static int bytes_reserve(struct bytes *b, size_t more)
{
	size_t cap;
	uint8_t *p;

	if (b->off && b->len + more > b->cap) {
		memmove(b->p, b->p + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	if (b->len + more <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 1024;
	while (cap < b->len + more)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

/* ---- packet id -> entry map (open addressing, linear probing) --------- */

struct idslot {
	uint16_t id;		/* 0 = empty */
	void *val;
};

struct idmap {
	struct idslot *slots;
	uint32_t cap;		/* power of two, or 0 */
	uint32_t count;
};

static void *idmap_get(const struct idmap *m, uint16_t id)
{
	uint32_t i;

	if (!m->cap)
		return NULL;
	/* ids are handed out in sequence, so id & mask spreads them perfectly */
	for (i = id & (m->cap - 1); m->slots[i].id; i = (i + 1) & (m->cap - 1))
		if (m->slots[i].id == id)
			return m->slots[i].val;
	return NULL;
}

static void idmap_place(struct idmap *m, uint16_t id, void *val)
{
	uint32_t i = id & (m->cap - 1);

	while (m->slots[i].id)
		i = (i + 1) & (m->cap - 1);
	m->slots[i].id = id;
	m->slots[i].val = val;
	m->count++;
}

/* Insert @id (not present). */
static int idmap_put(struct idmap *m, uint16_t id, void *val)
{
	struct idmap old = *m;
	uint32_t i;

	if ((m->count + 1) * 2 > m->cap) {
		m->cap = old.cap ? old.cap * 2 : 16;
		m->slots = calloc(m->cap, sizeof(*m->slots));
		if (!m->slots) {
			*m = old;
			return -ENOMEM;
		}
		m->count = 0;
		for (i = 0; i < old.cap; i++)
			if (old.slots[i].id)
				idmap_place(m, old.slots[i].id, old.slots[i].val);
		free(old.slots);
	}
	idmap_place(m, id, val);
	return 0;
}

/* Remove @id if present, shifting later entries of its probe run back so
 * that lookups need no tombstones. */
static void idmap_del(struct idmap *m, uint16_t id)
{
	uint32_t mask = m->cap - 1, i, j, home;

	if (!m->cap)
		return;
	for (i = id & mask; m->slots[i].id != id; i = (i + 1) & mask)
		if (!m->slots[i].id)
			return;
	for (j = (i + 1) & mask; m->slots[j].id; j = (j + 1) & mask) {
		home = m->slots[j].id & mask;
		/* move j into the hole at i unless its home lies in (i, j] */
		if (i <= j ? (home <= i || home > j) : (home <= i && home > j)) {
			m->slots[i] = m->slots[j];
			i = j;
		}
	}
	m->slots[i].id = 0;
	m->slots[i].val = NULL;
	m->count--;
}

static void idmap_clear(struct idmap *m)
{
	free(m->slots);
	memset(m, 0, sizeof(*m));
}

/* ---- the client -------------------------------------------------------- */

enum out_state {
	AWAIT_PUBACK = 1,
	AWAIT_PUBREC,
	AWAIT_PUBCOMP,
	AWAIT_SUBACK,
	AWAIT_UNSUBACK,
};

/* An outgoing packet waiting for its acknowledgement. */
struct outmsg {
	struct outmsg *prev, *next;	/* publishes only, in re-send order */
	uint16_t id;
	uint8_t state;			/* enum out_state */
	uint32_t count;			/* SUBSCRIBE/UNSUBSCRIBE: filters */
	uint32_t len;			/* PUBLISH: encoded bytes below */
	uint8_t bytes[];
};

/* A queued event; the packet behind it (if any) is in c->in. */
struct evrec {
	uint8_t type;
	uint8_t reason;
	bool session_present;
	uint16_t packet_id;
	int error;
	const char *text;
	size_t raw_off;
	uint32_t raw_len;	/* 0: no packet */
};

struct smq_client {
	/* configuration (owned copies) */
	uint8_t version;
	bool clean;
	uint16_t keepalive_cfg;
	char *client_id;
	char *username;
	uint8_t *password;
	uint32_t password_len;
	bool has_password;
	bool has_will;
	uint8_t will_qos;
	bool will_retain;
	char *will_topic;
	uint8_t *will_payload;
	uint32_t will_payload_len;
	struct smq_props will_props;
	uint8_t *will_props_blob;
	uint32_t session_expiry;
	uint16_t receive_max;
	uint32_t max_packet;
	uint16_t max_inflight;
	uint32_t max_out;
	struct smq_props connect_props;	/* 5.0 extra CONNECT properties, views in the blob */
	uint8_t *connect_props_blob;
	smq_client_trace_fn trace;	/* NULL: no tracing */
	void *trace_arg;

	/* connection */
	enum smq_client_state state;
	int err;
	uint16_t keepalive;		/* effective: server keep alive wins (5.0) */
	uint16_t server_recv_max;	/* 5.0 Receive Maximum, else 65535 */
	uint32_t server_max_packet;	/* 0 = no limit */
	uint8_t server_max_qos;
	bool server_retain;
	uint64_t now;
	uint64_t last_out;
	uint64_t last_in;
	uint64_t ping_sent;
	bool ping_outstanding;

	/* session */
	struct idmap ids;		/* our packet ids -> struct outmsg */
	struct outmsg *head, *tail;	/* publishes in re-send order */
	uint32_t inflight;
	uint16_t next_id;
	struct idmap in_qos2;		/* incoming QoS 2 ids not yet released */

	/* buffers */
	struct bytes in;
	size_t in_rd;
	struct bytes out;
	uint64_t out_queued;
	uint64_t out_written;
	uint64_t *marks;		/* QoS 0: out_queued after each one */
	size_t marks_head, marks_len, marks_cap;
	struct evrec *evs;
	size_t evs_head, evs_len, evs_cap;
};

/* ---- events ------------------------------------------------------------ */

/* Room for one more element at the end of the FIFO array @arr whose live
 * part is [*head, *head + *len): slides the live part to the front when the
 * array is full but has a hole there, else doubles it. *moved gets the
 * array's (possibly new) address. Returns the new slot (counted in *len),
 * or NULL on ENOMEM with the array unchanged. */
static void *fifo_push(void *arr, size_t *head, size_t *len, size_t *cap, size_t size,
		       void **moved)
{
	uint8_t *a = arr;

	*moved = arr;
	if (*head && *head + *len == *cap) {
		memmove(a, a + *head * size, *len * size);
		*head = 0;
	}
	if (*head + *len == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;

		a = realloc(a, ncap * size);
		if (!a)
			return NULL;
		*moved = a;
		*cap = ncap;
	}
	return a + (*head + (*len)++) * size;
}

static int push_ev(struct smq_client *c, const struct evrec *e)
{
	void *arr;
	struct evrec *slot = fifo_push(c->evs, &c->evs_head, &c->evs_len, &c->evs_cap,
				       sizeof(*c->evs), &arr);

	c->evs = arr;
	if (!slot)
		return -ENOMEM;
	*slot = *e;
	return 0;
}

/* An event made from the packet at c->in[off, off + len). */
static int push_pkt_ev(struct smq_client *c, uint8_t type, const struct smq_packet *pkt,
		       size_t off, size_t len)
{
	struct evrec e = {
		.type = type,
		.reason = pkt->reason,
		.packet_id = pkt->packet_id,
		.raw_off = off,
		.raw_len = (uint32_t)len,
	};

	if (type == SMQ_CLIENT_EV_CONNACK)
		e.session_present = pkt->connack.session_present;
	return push_ev(c, &e);
}

static int push_done(struct smq_client *c, uint16_t id, uint8_t reason)
{
	struct evrec e = { .type = SMQ_CLIENT_EV_PUBLISH_DONE, .packet_id = id, .reason = reason };

	return push_ev(c, &e);
}

/* ---- output ------------------------------------------------------------ */

static size_t out_pending(const struct smq_client *c)
{
	return c->out.len - c->out.off;
}

/* Show @pkt, just queued (@sent) or just decoded, to the trace hook. */
static void trace(const struct smq_client *c, bool sent, const struct smq_packet *pkt)
{
	if (c->trace)
		c->trace(c->trace_arg, sent, pkt);
}

/* Trace an already-encoded packet (a tracked PUBLISH, maybe re-sent). */
static void trace_raw(const struct smq_client *c, const uint8_t *p, size_t n)
{
	struct smq_packet pkt;

	if (c->trace && !smq_decode(p, n, c->version, &pkt))
		c->trace(c->trace_arg, true, &pkt);
}

static int queue_raw(struct smq_client *c, const uint8_t *p, size_t n)
{
	if (bytes_reserve(&c->out, n))
		return -ENOMEM;
	memcpy(c->out.p + c->out.len, p, n);
	c->out.len += n;
	c->out_queued += n;
	c->last_out = c->now;
	return 0;
}

/* Encode @pkt onto the output. -ENOMEM, or a negated reason code for a
 * packet the codec cannot represent. */
static int queue_pkt(struct smq_client *c, const struct smq_packet *pkt)
{
	long size = smq_encoded_size(pkt);
	long n;

	if (size < 0)
		return (int)size;
	if (bytes_reserve(&c->out, (size_t)size))
		return -ENOMEM;
	n = smq_encode(pkt, c->out.p + c->out.len, c->out.cap - c->out.len);
	if (n < 0)
		return (int)n;
	c->out.len += (size_t)n;
	c->out_queued += (uint64_t)n;
	c->last_out = c->now;
	trace(c, true, pkt);
	return 0;
}

static int queue_ack(struct smq_client *c, uint8_t type, uint16_t id, uint8_t reason)
{
	struct smq_packet pkt = {
		.type = type,
		.flags = type == SMQ_PUBREL ? 0x2 : 0,	/* [MQTT-3.6.1-1] */
		.version = c->version,
		.reason = reason,
		.packet_id = id,
	};

	return queue_pkt(c, &pkt);
}

static int push_mark(struct smq_client *c)
{
	void *arr;
	uint64_t *slot = fifo_push(c->marks, &c->marks_head, &c->marks_len, &c->marks_cap,
				   sizeof(*c->marks), &arr);

	c->marks = arr;
	if (!slot)
		return -ENOMEM;
	*slot = c->out_queued;
	return 0;
}

/* ---- connection end ---------------------------------------------------- */

/* End the connection because of @err; in 5.0 tell the server why when @err
 * is a reason code we may send [MQTT-4.13.1-1]. Returns @err. */
/* End the connection with @err. @tell: send a 5.0 DISCONNECT first (not
 * after a refusing CONNACK: the server closes anyway, and its CONNACK code
 * is no DISCONNECT code). */
static int fail_how(struct smq_client *c, int err, const char *text, bool tell)
{
	struct evrec e = { .type = SMQ_CLIENT_EV_ERROR, .error = err, .text = text };

	if (c->state == SMQ_CLIENT_CLOSED || c->state == SMQ_CLIENT_IDLE)
		return err;
	if (tell && c->version == SMQ_V5 && err <= -0x80 && err >= -0xFF) {
		uint8_t rc = (uint8_t)-err;

		queue_ack(c, SMQ_DISCONNECT, 0,
			  smq_rc_valid(SMQ_DISCONNECT, rc) ? rc : SMQ_RC_PROTOCOL_ERROR);
	}
	c->state = SMQ_CLIENT_CLOSED;
	c->err = err;
	if (push_ev(c, &e))
		return -ENOMEM;
	return err;
}

static int fail(struct smq_client *c, int err, const char *text)
{
	return fail_how(c, err, text, true);
}

static int protocol_error(struct smq_client *c, const char *text)
{
	return fail(c, -SMQ_RC_PROTOCOL_ERROR, text);
}

/* ---- session state ----------------------------------------------------- */

static void unlink_out(struct smq_client *c, struct outmsg *m)
{
	if (m->prev)
		m->prev->next = m->next;
	else
		c->head = m->next;
	if (m->next)
		m->next->prev = m->prev;
	else
		c->tail = m->prev;
	m->prev = m->next = NULL;
}

static void link_tail(struct smq_client *c, struct outmsg *m)
{
	m->prev = c->tail;
	m->next = NULL;
	if (c->tail)
		c->tail->next = m;
	else
		c->head = m;
	c->tail = m;
}

/* Finish an outgoing publish: forget it and report @reason. */
static int finish_publish(struct smq_client *c, struct outmsg *m, uint8_t reason)
{
	uint16_t id = m->id;

	unlink_out(c, m);
	idmap_del(&c->ids, id);
	c->inflight--;
	free(m);
	return push_done(c, id, reason);
}

/* Drop the session state [MQTT-3.1.2-6] (5.0 [MQTT-3.2.2-5]): every
 * outgoing QoS 1/2 message is lost and said so. */
static int discard_session(struct smq_client *c)
{
	int ret = 0;

	while (c->head)
		if (finish_publish(c, c->head, SMQ_RC_UNSPECIFIED))
			ret = -ENOMEM;
	idmap_clear(&c->in_qos2);
	return ret;
}

/* Re-send what the server has not acknowledged, in order, PUBLISH with DUP
 * set and its original id, PUBREL for what was PUBREC'd [MQTT-4.4.0-1]
 * [MQTT-3.3.1-1]. */
static int resend_session(struct smq_client *c)
{
	struct outmsg *m, *next;
	int ret;

	for (m = c->head; m; m = next) {
		next = m->next;
		if (m->state == AWAIT_PUBCOMP) {
			ret = queue_ack(c, SMQ_PUBREL, m->id, 0);
		} else if (c->server_max_packet && m->len > c->server_max_packet) {
			ret = finish_publish(c, m, SMQ_RC_PACKET_TOO_LARGE);
		} else {
			m->bytes[0] |= 0x08;
			ret = queue_raw(c, m->bytes, m->len);
			if (!ret)
				trace_raw(c, m->bytes, m->len);
		}
		if (ret)
			return ret;
	}
	return 0;
}

/* ---- incoming packets -------------------------------------------------- */

static void apply_connack_props(struct smq_client *c, const struct smq_props *p)
{
	char *id;

	if (SMQ_HAS(p, SMQ_PROP_RECEIVE_MAX))
		c->server_recv_max = p->receive_max;
	if (SMQ_HAS(p, SMQ_PROP_MAX_PACKET_SIZE))
		c->server_max_packet = p->max_packet_size;
	if (SMQ_HAS(p, SMQ_PROP_MAX_QOS))
		c->server_max_qos = p->max_qos;
	if (SMQ_HAS(p, SMQ_PROP_RETAIN_AVAILABLE))
		c->server_retain = p->retain_available;
	if (SMQ_HAS(p, SMQ_PROP_SERVER_KEEP_ALIVE))
		c->keepalive = p->server_keep_alive;	/* [MQTT-3.2.2-21] */
	if (SMQ_HAS(p, SMQ_PROP_ASSIGNED_CLIENT_ID)) {
		/* keep it so a reconnect resumes the same session */
		id = strndup((const char *)p->assigned_client_id.p, p->assigned_client_id.len);
		if (id) {
			free(c->client_id);
			c->client_id = id;
		}
	}
}

static int on_connack(struct smq_client *c, const struct smq_packet *pkt, size_t off,
		      size_t len)
{
	bool present = pkt->connack.session_present;
	int ret;

	if (c->state != SMQ_CLIENT_CONNECTING)
		return protocol_error(c, "second CONNACK");
	ret = push_pkt_ev(c, SMQ_CLIENT_EV_CONNACK, pkt, off, len);
	if (ret)
		return fail(c, ret, "out of memory");
	if (pkt->reason)
		return fail_how(c, smq_client_connack_error(c->version, pkt->reason),
				"connection refused by the server", false);
	if (present && c->clean)	/* [MQTT-3.2.2-1] (5.0 [MQTT-3.2.2-4]) */
		return protocol_error(c, "session present after a clean connect");
	/* 3.1 has no session present flag: trust our own clean flag */
	if (c->version == SMQ_V31)
		present = !c->clean;
	c->state = SMQ_CLIENT_CONNECTED;
	if (c->version == SMQ_V5)
		apply_connack_props(c, &pkt->props);
	ret = present ? resend_session(c) : discard_session(c);
	if (ret)
		return fail(c, ret, "out of memory");
	return 0;
}

static int on_publish(struct smq_client *c, const struct smq_packet *pkt, size_t off,
		      size_t len)
{
	uint16_t id = pkt->packet_id;
	uint8_t qos = pkt->publish.qos;
	int ret;

	/* we announce Topic Alias Maximum 0 [MQTT-3.1.2-26] */
	if (SMQ_HAS(&pkt->props, SMQ_PROP_TOPIC_ALIAS))
		return fail(c, -SMQ_RC_TOPIC_ALIAS_INVALID, "server used a topic alias");
	if (!pkt->publish.topic.len)
		return protocol_error(c, "PUBLISH without a topic");
	if (qos == 2 && idmap_get(&c->in_qos2, id))
		return queue_ack(c, SMQ_PUBREC, id, 0);	/* a re-send: deliver once */
	if (qos == 2 && c->version == SMQ_V5 &&
	    c->in_qos2.count >= (c->receive_max ? c->receive_max : 65535u))
		return fail(c, -SMQ_RC_RECEIVE_MAX_EXCEEDED, "server exceeded Receive Maximum");
	ret = push_pkt_ev(c, SMQ_CLIENT_EV_MESSAGE, pkt, off, len);
	if (!ret && qos == 2)
		ret = idmap_put(&c->in_qos2, id, c);
	if (ret)
		return ret;
	if (qos == 1)
		return queue_ack(c, SMQ_PUBACK, id, 0);
	if (qos == 2)
		return queue_ack(c, SMQ_PUBREC, id, 0);
	return 0;
}

/* PUBACK, PUBREC, PUBCOMP: the server's side of our publish flows. */
static int on_pub_ack(struct smq_client *c, const struct smq_packet *pkt, size_t off,
		      size_t len)
{
	struct outmsg *m = idmap_get(&c->ids, pkt->packet_id);
	uint8_t want = pkt->type == SMQ_PUBACK ? AWAIT_PUBACK
		     : pkt->type == SMQ_PUBREC ? AWAIT_PUBREC : AWAIT_PUBCOMP;
	uint16_t id = pkt->packet_id;
	int ret;

	if (!m && pkt->type == SMQ_PUBREC)	/* not ours: release it anyway */
		return queue_ack(c, SMQ_PUBREL, id,
				 c->version == SMQ_V5 ? SMQ_RC_PACKET_ID_NOT_FOUND : 0);
	if (!m)
		return 0;	/* a late duplicate: nothing to do */
	if (m->state == AWAIT_PUBCOMP && want == AWAIT_PUBREC)
		return queue_ack(c, SMQ_PUBREL, id, 0);	/* our PUBREL got lost */
	if (m->state != want)
		return protocol_error(c, "acknowledgement of the wrong kind");
	if (want == AWAIT_PUBREC && pkt->reason < 0x80) {
		m->state = AWAIT_PUBCOMP;
		unlink_out(c, m);
		link_tail(c, m);	/* PUBRELs go out in PUBREC order [MQTT-4.6.0-3] */
		return queue_ack(c, SMQ_PUBREL, id, 0);
	}
	/* done: PUBACK, PUBCOMP, or a PUBREC refusing the message */
	unlink_out(c, m);
	idmap_del(&c->ids, id);
	c->inflight--;
	free(m);
	ret = push_pkt_ev(c, SMQ_CLIENT_EV_PUBLISH_DONE, pkt, off, len);
	/* after a successful PUBREC the message is the server's; a PUBCOMP
	 * 0x92 (it forgot the id across a reconnect) does not undo that */
	if (!ret && want == AWAIT_PUBCOMP)
		c->evs[c->evs_head + c->evs_len - 1].reason = SMQ_RC_SUCCESS;
	return ret;
}

/* PUBREL: the server releases an incoming QoS 2 message. */
static int on_pubrel(struct smq_client *c, const struct smq_packet *pkt)
{
	uint8_t reason = 0;

	if (idmap_get(&c->in_qos2, pkt->packet_id))
		idmap_del(&c->in_qos2, pkt->packet_id);
	else if (c->version == SMQ_V5)
		reason = SMQ_RC_PACKET_ID_NOT_FOUND;
	return queue_ack(c, SMQ_PUBCOMP, pkt->packet_id, reason);
}

static int on_sub_ack(struct smq_client *c, const struct smq_packet *pkt, size_t off,
		      size_t len)
{
	struct outmsg *m = idmap_get(&c->ids, pkt->packet_id);
	bool sub = pkt->type == SMQ_SUBACK;

	if (!m || m->state != (sub ? AWAIT_SUBACK : AWAIT_UNSUBACK))
		return protocol_error(c, "acknowledgement for no request");
	/* one code per filter: [MQTT-3.8.4-6] (3.1.1 [MQTT-3.8.4-5]);
	 * a 3.x UNSUBACK has none */
	if ((sub || c->version == SMQ_V5) && pkt->list.raw.len != m->count)
		return protocol_error(c, "acknowledgement with the wrong number of codes");
	idmap_del(&c->ids, m->id);
	free(m);
	return push_pkt_ev(c, sub ? SMQ_CLIENT_EV_SUBACK : SMQ_CLIENT_EV_UNSUBACK, pkt, off, len);
}

static int on_disconnect(struct smq_client *c, const struct smq_packet *pkt, size_t off,
			 size_t len)
{
	int ret;

	if (c->version != SMQ_V5)
		return protocol_error(c, "DISCONNECT from a 3.x server");
	ret = push_pkt_ev(c, SMQ_CLIENT_EV_DISCONNECT, pkt, off, len);
	c->state = SMQ_CLIENT_CLOSED;
	c->err = pkt->reason ? -(int)pkt->reason : -ECONNRESET;
	return ret ? ret : c->err;
}

static int handle(struct smq_client *c, const struct smq_packet *pkt, size_t off, size_t len)
{
	if (c->state == SMQ_CLIENT_CONNECTING && pkt->type != SMQ_CONNACK)
		return protocol_error(c, "first packet is not CONNACK");	/* [MQTT-3.2.0-1] */
	switch (pkt->type) {
	case SMQ_CONNACK:
		return on_connack(c, pkt, off, len);
	case SMQ_PUBLISH:
		return on_publish(c, pkt, off, len);
	case SMQ_PUBACK:
	case SMQ_PUBREC:
	case SMQ_PUBCOMP:
		return on_pub_ack(c, pkt, off, len);
	case SMQ_PUBREL:
		return on_pubrel(c, pkt);
	case SMQ_SUBACK:
	case SMQ_UNSUBACK:
		return on_sub_ack(c, pkt, off, len);
	case SMQ_PINGRESP:
		c->ping_outstanding = false;
		return push_ev(c, &(struct evrec){ .type = SMQ_CLIENT_EV_PINGRESP });
	case SMQ_DISCONNECT:
		return on_disconnect(c, pkt, off, len);
	default:	/* CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, AUTH */
		return protocol_error(c, "packet a server must not send");
	}
}

/* Drop the bytes no queued event refers to from the front of @in. */
static void in_compact(struct smq_client *c)
{
	size_t keep = c->in_rd, i;

	for (i = 0; i < c->evs_len; i++) {
		struct evrec *e = &c->evs[c->evs_head + i];

		if (e->raw_len) {
			keep = e->raw_off;	/* raw offsets grow with queue order */
			break;
		}
	}
	if (!keep)
		return;
	memmove(c->in.p, c->in.p + keep, c->in.len - keep);
	c->in.len -= keep;
	c->in_rd -= keep;
	for (i = 0; i < c->evs_len; i++)
		if (c->evs[c->evs_head + i].raw_len)
			c->evs[c->evs_head + i].raw_off -= keep;
}

/* Frame and decode the next packet at in_rd: 1 (with *off, *len), 0 for
 * "need more bytes", or a negated reason code. */
static int next_packet(struct smq_client *c, struct smq_packet *pkt, size_t *off, size_t *len)
{
	const uint8_t *p = c->in.p ? c->in.p + c->in_rd : NULL;	/* NULL + 0 is UB */
	size_t avail = c->in.len - c->in_rd;
	uint32_t hdr, rem;
	int ret;

	if (!avail)
		return 0;
	ret = smq_frame(p, avail, c->max_packet, &hdr, &rem);
	if (ret)
		return ret > 0 ? 0 : ret;
	if (avail < (size_t)hdr + rem)
		return 0;
	ret = smq_decode(p, (size_t)hdr + rem, c->version, pkt);
	if (ret)
		return ret;
	*off = c->in_rd;
	*len = (size_t)hdr + rem;
	c->in_rd += *len;
	return 1;
}

int smq_client_feed(struct smq_client *c, const uint8_t *bytes, size_t n, uint64_t now_ms)
{
	struct smq_packet pkt;
	size_t off = 0, len = 0;
	int ret;

	if (c->state != SMQ_CLIENT_CONNECTING && c->state != SMQ_CLIENT_CONNECTED)
		return -ENOTCONN;
	c->now = now_ms;
	in_compact(c);
	if (bytes_reserve(&c->in, n))
		return fail(c, -ENOMEM, "out of memory");
	if (n)
		memcpy(c->in.p + c->in.len, bytes, n);
	c->in.len += n;
	while (c->state == SMQ_CLIENT_CONNECTING || c->state == SMQ_CLIENT_CONNECTED) {
		ret = next_packet(c, &pkt, &off, &len);
		if (ret == 0)
			return 0;
		if (ret < 0)
			return fail(c, ret, ret == -SMQ_RC_PACKET_TOO_LARGE
				    ? "packet larger than our maximum" : "malformed packet");
		c->last_in = now_ms;
		trace(c, false, &pkt);
		ret = handle(c, &pkt, off, len);
		if (ret)	/* no-op if the handler already closed */
			return fail(c, ret, ret == -ENOMEM ? "out of memory"
				    : "cannot encode a reply");
	}
	return c->err;
}

/* ---- output and time --------------------------------------------------- */

void smq_client_out(const struct smq_client *c, const uint8_t **p, size_t *n)
{
	*n = out_pending(c);
	*p = *n ? c->out.p + c->out.off : NULL;
}

void smq_client_out_consumed(struct smq_client *c, size_t n)
{
	if (n > out_pending(c))
		n = out_pending(c);
	c->out.off += n;
	c->out_written += n;
	if (c->out.off == c->out.len)
		c->out.off = c->out.len = 0;
	while (c->marks_len && c->marks[c->marks_head] <= c->out_written) {
		if (push_done(c, 0, 0))
			break;	/* retried at the next call */
		c->marks_head++;
		c->marks_len--;
	}
	if (!c->marks_len)
		c->marks_head = 0;
}

int smq_client_tick(struct smq_client *c, uint64_t now_ms)
{
	uint64_t period = c->keepalive * 1000ull;
	int ret;

	c->now = now_ms;
	if (c->state != SMQ_CLIENT_CONNECTED || !period)
		return 0;
	if (c->ping_outstanding) {
		if (now_ms >= c->ping_sent + period)
			return fail(c, -ETIMEDOUT, "no PINGRESP within the keepalive period");
		return 0;
	}
	/* [MQTT-3.1.2-23] asks only about what we sent; a silent server also
	 * earns a PINGREQ, so that a dead one is noticed while we publish */
	if (now_ms >= c->last_out + period || now_ms >= c->last_in + period) {
		ret = queue_ack(c, SMQ_PINGREQ, 0, 0);
		if (ret)
			return fail(c, ret, "out of memory");
		c->ping_outstanding = true;
		c->ping_sent = now_ms;
	}
	return 0;
}

uint64_t smq_client_next_deadline(const struct smq_client *c)
{
	uint64_t period = c->keepalive * 1000ull;
	uint64_t last = c->last_out < c->last_in ? c->last_out : c->last_in;

	if (c->state != SMQ_CLIENT_CONNECTED || !period)
		return UINT64_MAX;
	if (c->ping_outstanding)
		return c->ping_sent + period;
	return last + period;
}

/* ---- events out -------------------------------------------------------- */

/* Build the public event: decode the packet again, now in place in @in. It
 * decoded once already, so failing now would be our bug; be quiet about it
 * rather than trust an assert with network bytes. */
static void fill_event(const struct smq_client *c, const struct evrec *e,
		       struct smq_client_event *ev)
{
	struct smq_packet pkt;

	memset(ev, 0, sizeof(*ev));
	ev->type = e->type;
	ev->reason = e->reason;
	ev->session_present = e->session_present;
	ev->packet_id = e->packet_id;
	ev->error = e->error;
	ev->text = e->text ? e->text : "";
	if (!e->raw_len || smq_decode(c->in.p + e->raw_off, e->raw_len, c->version, &pkt))
		return;
	ev->props = pkt.props;
	if (e->type == SMQ_CLIENT_EV_MESSAGE) {
		ev->msg.topic = pkt.publish.topic;
		ev->msg.payload = pkt.publish.payload;
		ev->msg.qos = pkt.publish.qos;
		ev->msg.retain = pkt.publish.retain;
		ev->msg.dup = pkt.publish.dup;
	} else if (e->type == SMQ_CLIENT_EV_SUBACK || e->type == SMQ_CLIENT_EV_UNSUBACK) {
		ev->codes = pkt.list.raw;
	}
}

bool smq_client_take_event(struct smq_client *c, uint32_t mask, int packet_id,
			   struct smq_client_event *ev)
{
	struct evrec *e;
	size_t i;

	for (i = 0; i < c->evs_len; i++) {
		e = &c->evs[c->evs_head + i];
		if (!(mask & SMQ_CLIENT_EVMASK(e->type)))
			continue;
		if (packet_id >= 0 && e->packet_id != packet_id)
			continue;
		fill_event(c, e, ev);
		if (i == 0)
			c->evs_head++;
		else
			memmove(e, e + 1, (c->evs_len - i - 1) * sizeof(*e));
		if (!--c->evs_len)
			c->evs_head = 0;
		return true;
	}
	return false;
}

bool smq_client_next_event(struct smq_client *c, struct smq_client_event *ev)
{
	return smq_client_take_event(c, SMQ_CLIENT_EVMASK_ALL, -1, ev);
}

/* ---- life -------------------------------------------------------------- */

#define PROPS_NVIEWS 11

static void props_views(struct smq_props *p, struct smq_str *v[PROPS_NVIEWS])
{
	v[0] = &p->content_type;
	v[1] = &p->response_topic;
	v[2] = &p->correlation_data;
	v[3] = &p->assigned_client_id;
	v[4] = &p->auth_method;
	v[5] = &p->auth_data;
	v[6] = &p->response_info;
	v[7] = &p->server_reference;
	v[8] = &p->reason_string;
	v[9] = &p->user;
	v[10] = &p->sub_ids;
}

/* Deep copy of @src into *dst, every view re-pointed into one new *blob. */
static int props_dup(const struct smq_props *src, struct smq_props *dst, uint8_t **blob)
{
	struct smq_str *v[PROPS_NVIEWS];
	size_t total = 0, i;
	uint8_t *p;

	*dst = *src;
	props_views(dst, v);
	for (i = 0; i < PROPS_NVIEWS; i++)
		total += v[i]->len;
	p = malloc(total ? total : 1);
	if (!p)
		return -ENOMEM;
	*blob = p;
	for (i = 0; i < PROPS_NVIEWS; i++) {
		if (!v[i]->len)
			continue;
		memcpy(p, v[i]->p, v[i]->len);
		v[i]->p = p;
		p += v[i]->len;
	}
	return 0;
}

static uint8_t *memdup(const void *p, size_t n)
{
	uint8_t *q = malloc(n ? n : 1);

	if (q && n)
		memcpy(q, p, n);
	return q;
}

static bool str_ok(const char *s)
{
	size_t n = strlen(s);

	return n <= 65535 && smq_utf8_valid((const uint8_t *)s, n);
}

static bool opts_valid(const struct smq_client_opts *o, uint8_t version)
{
	const char *id = o->client_id ? o->client_id : "";
	const struct smq_client_will *w = o->will;

	if (version != SMQ_V31 && version != SMQ_V311 && version != SMQ_V5)
		return false;
	if (!str_ok(id) || (o->username && !str_ok(o->username)))
		return false;
	if (version == SMQ_V31 && (!*id || strlen(id) > 23))
		return false;
	if (version == SMQ_V311 && !*id && !o->clean)	/* [MQTT-3.1.3-7] */
		return false;
	if (version != SMQ_V5 && o->password && !o->username)	/* [MQTT-3.1.2-22] */
		return false;
	if (o->password && o->password->len > 65535)
		return false;
	if (w && (!w->topic || !str_ok(w->topic) || w->qos > 2 ||
		  !smq_topic_name_valid((struct smq_str){ (const uint8_t *)w->topic,
							  (uint32_t)strlen(w->topic) })))
		return false;
	return true;
}

static int copy_will(struct smq_client *c, const struct smq_client_will *w)
{
	c->has_will = true;
	c->will_qos = w->qos;
	c->will_retain = w->retain;
	c->will_topic = strdup(w->topic);
	c->will_payload = memdup(w->payload.p, w->payload.len);
	c->will_payload_len = w->payload.len;
	if (!c->will_topic || !c->will_payload)
		return -ENOMEM;
	if (w->props && c->version == SMQ_V5)
		return props_dup(w->props, &c->will_props, &c->will_props_blob);
	return 0;
}

static int copy_opts(struct smq_client *c, const struct smq_client_opts *o)
{
	c->clean = o->clean;
	c->keepalive_cfg = o->keepalive;
	c->session_expiry = o->session_expiry;
	c->receive_max = o->receive_max;
	c->max_packet = o->max_packet_size;
	c->max_inflight = o->max_inflight ? o->max_inflight : SMQ_CLIENT_DEFAULT_INFLIGHT;
	c->max_out = o->max_out_bytes ? o->max_out_bytes : SMQ_CLIENT_DEFAULT_OUT_MAX;
	c->client_id = strdup(o->client_id ? o->client_id : "");
	if (!c->client_id)
		return -ENOMEM;
	if (o->username && !(c->username = strdup(o->username)))
		return -ENOMEM;
	if (o->password) {
		c->has_password = true;
		c->password_len = o->password->len;
		c->password = memdup(o->password->p, o->password->len);
		if (!c->password)
			return -ENOMEM;
	}
	if (o->connect_props && c->version == SMQ_V5 &&
	    props_dup(o->connect_props, &c->connect_props, &c->connect_props_blob))
		return -ENOMEM;
	return o->will ? copy_will(c, o->will) : 0;
}

struct smq_client *smq_client_new(const struct smq_client_opts *opts)
{
	uint8_t version = opts->version ? opts->version : SMQ_V311;
	struct smq_client *c;

	if (!opts_valid(opts, version)) {
		errno = EINVAL;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->version = version;
	c->next_id = 1;
	if (copy_opts(c, opts)) {
		smq_client_free(c);
		errno = ENOMEM;
		return NULL;
	}
	return c;
}

void smq_client_free(struct smq_client *c)
{
	uint32_t i;

	if (!c)
		return;
	/* every outmsg, publish or request, is in the id map exactly once */
	for (i = 0; i < c->ids.cap; i++)
		if (c->ids.slots[i].id)
			free(c->ids.slots[i].val);
	idmap_clear(&c->ids);
	idmap_clear(&c->in_qos2);
	free(c->client_id);
	free(c->username);
	free(c->password);
	free(c->will_topic);
	free(c->will_payload);
	free(c->will_props_blob);
	free(c->connect_props_blob);
	free(c->in.p);
	free(c->out.p);
	free(c->marks);
	free(c->evs);
	free(c);
}

/* Forget SUBSCRIBE/UNSUBSCRIBE still waiting for their ack. */
static void drop_requests(struct smq_client *c)
{
	struct outmsg *m;
	uint32_t i = 0;

	while (i < c->ids.cap) {
		m = c->ids.slots[i].id ? c->ids.slots[i].val : NULL;
		if (m && m->state >= AWAIT_SUBACK) {
			/* deleting shifts a later entry into slot i: look again */
			idmap_del(&c->ids, m->id);
			free(m);
			continue;
		}
		i++;
	}
}

void smq_client_reset_connection(struct smq_client *c)
{
	drop_requests(c);
	for (; c->marks_len; c->marks_len--)	/* QoS 0 never written: lost */
		push_done(c, 0, SMQ_RC_UNSPECIFIED);
	c->marks_head = 0;
	c->out_written = c->out_queued;
	c->out.off = c->out.len = 0;
	c->in.len = c->in_rd;	/* a partial packet of the old stream */
	c->ping_outstanding = false;
	c->state = SMQ_CLIENT_IDLE;
	c->err = 0;
}

enum smq_client_state smq_client_state(const struct smq_client *c)
{
	return c->state;
}

int smq_client_error(const struct smq_client *c)
{
	return c->err;
}

void smq_client_set_trace(struct smq_client *c, smq_client_trace_fn fn, void *arg)
{
	c->trace = fn;
	c->trace_arg = arg;
}

const char *smq_client_id(const struct smq_client *c)
{
	return c->client_id;
}

uint32_t smq_client_inflight(const struct smq_client *c)
{
	return c->inflight;
}

/* ---- actions ----------------------------------------------------------- */

static struct smq_str cstr(const char *s)
{
	return (struct smq_str){ (const uint8_t *)s, s ? (uint32_t)strlen(s) : 0 };
}

static void build_connect(const struct smq_client *c, struct smq_packet *pkt)
{
	memset(pkt, 0, sizeof(*pkt));
	pkt->type = SMQ_CONNECT;
	pkt->version = c->version;
	pkt->connect.proto_name = c->version == SMQ_V31 ? SMQ_STR("MQIsdp") : SMQ_STR("MQTT");
	pkt->connect.level = c->version;
	pkt->connect.clean = c->clean;
	pkt->connect.keepalive = c->keepalive_cfg;
	pkt->connect.client_id = cstr(c->client_id);
	if (c->has_will) {
		pkt->connect.will = true;
		pkt->connect.will_qos = c->will_qos;
		pkt->connect.will_retain = c->will_retain;
		pkt->connect.will_topic = cstr(c->will_topic);
		pkt->connect.will_payload = (struct smq_str){ c->will_payload, c->will_payload_len };
		pkt->connect.will_props = c->will_props;
	}
	pkt->connect.has_username = c->username != NULL;
	pkt->connect.username = cstr(c->username);
	pkt->connect.has_password = c->has_password;
	pkt->connect.password = (struct smq_str){ c->password, c->password_len };
	if (c->version != SMQ_V5)
		return;
	pkt->props = c->connect_props;	/* the options below win over these */
	if (c->session_expiry) {
		SMQ_SET(&pkt->props, SMQ_PROP_SESSION_EXPIRY);
		pkt->props.session_expiry = c->session_expiry;
	}
	if (c->receive_max) {
		SMQ_SET(&pkt->props, SMQ_PROP_RECEIVE_MAX);
		pkt->props.receive_max = c->receive_max;
	}
	if (c->max_packet) {
		SMQ_SET(&pkt->props, SMQ_PROP_MAX_PACKET_SIZE);
		pkt->props.max_packet_size = c->max_packet;
	}
}

int smq_client_connect(struct smq_client *c, uint64_t now_ms)
{
	struct smq_packet pkt;
	int ret;

	if (c->state != SMQ_CLIENT_IDLE)
		return -EISCONN;
	c->now = now_ms;
	if (c->clean && discard_session(c))	/* [MQTT-3.1.2-6] */
		return -ENOMEM;
	c->keepalive = c->keepalive_cfg;
	c->server_recv_max = 65535;
	c->server_max_packet = 0;
	c->server_max_qos = 2;
	c->server_retain = true;
	build_connect(c, &pkt);
	ret = queue_pkt(c, &pkt);
	if (ret)
		return ret == -ENOMEM ? ret : -EINVAL;
	c->state = SMQ_CLIENT_CONNECTING;
	c->last_in = now_ms;
	return 0;
}

static int alloc_id(struct smq_client *c)
{
	uint32_t n;
	uint16_t id;

	for (n = 0; n < 65535; n++) {
		id = c->next_id;
		c->next_id = id == 65535 ? 1 : id + 1;
		if (!idmap_get(&c->ids, id))
			return id;
	}
	return -EAGAIN;
}

static uint32_t window(const struct smq_client *c)
{
	uint32_t w = c->max_inflight;

	if (c->version == SMQ_V5 && c->server_recv_max < w)
		w = c->server_recv_max;		/* [MQTT-3.3.4-7] */
	return w;
}

static int check_publish(const struct smq_client *c, struct smq_str topic, uint8_t qos,
			 bool retain, const struct smq_props *props)
{
	if (c->state != SMQ_CLIENT_CONNECTED)
		return -ENOTCONN;
	if (qos > 2 || !smq_topic_name_valid(topic) || !smq_utf8_valid(topic.p, topic.len))
		return -EINVAL;
	if (props && SMQ_HAS(props, SMQ_PROP_TOPIC_ALIAS))
		return -EINVAL;
	if (c->version == SMQ_V5 && qos > c->server_max_qos)	/* [MQTT-3.2.2-11] */
		return -SMQ_RC_QOS_NOT_SUPPORTED;
	if (c->version == SMQ_V5 && retain && !c->server_retain)	/* [MQTT-3.2.2-14] */
		return -SMQ_RC_RETAIN_NOT_SUPPORTED;
	if (out_pending(c) > c->max_out)
		return -EAGAIN;
	if (qos && c->inflight >= window(c))
		return -EAGAIN;
	return 0;
}

/* Track a QoS 1/2 PUBLISH of @size bytes and queue it. */
static int publish_tracked(struct smq_client *c, const struct smq_packet *pkt, long size)
{
	struct outmsg *m = malloc(sizeof(*m) + (size_t)size);
	int ret = -ENOMEM;

	if (!m)
		return -ENOMEM;
	memset(m, 0, sizeof(*m));
	m->id = pkt->packet_id;
	m->state = pkt->publish.qos == 1 ? AWAIT_PUBACK : AWAIT_PUBREC;
	if (smq_encode(pkt, m->bytes, (size_t)size) != size) {
		ret = -EINVAL;
		goto out_free;
	}
	m->len = (uint32_t)size;
	if (idmap_put(&c->ids, m->id, m))
		goto out_free;
	ret = queue_raw(c, m->bytes, m->len);
	if (ret)
		goto out_unmap;
	trace(c, true, pkt);
	link_tail(c, m);
	c->inflight++;
	return m->id;
out_unmap:
	idmap_del(&c->ids, m->id);
out_free:
	free(m);
	return ret;
}

int smq_client_publish(struct smq_client *c, const char *topic, struct smq_str payload,
		       uint8_t qos, bool retain, const struct smq_props *props)
{
	struct smq_packet pkt = { .type = SMQ_PUBLISH };
	long size;
	int ret;

	if (!topic)
		return -EINVAL;
	pkt.publish.topic = cstr(topic);
	ret = check_publish(c, pkt.publish.topic, qos, retain, props);
	if (ret)
		return ret;
	pkt.version = c->version;
	pkt.flags = (uint8_t)(qos << 1 | retain);
	pkt.publish.qos = qos;
	pkt.publish.retain = retain;
	pkt.publish.payload = payload;
	if (props && c->version == SMQ_V5)
		pkt.props = *props;
	if (qos) {
		ret = alloc_id(c);
		if (ret < 0)
			return ret;
		pkt.packet_id = (uint16_t)ret;
	}
	size = smq_encoded_size(&pkt);
	if (size < 0 || (c->server_max_packet && size > c->server_max_packet))
		return -EMSGSIZE;	/* [MQTT-3.2.2-15] */
	if (qos)
		return publish_tracked(c, &pkt, size);
	ret = queue_pkt(c, &pkt);
	if (!ret)
		ret = push_mark(c);
	return ret;
}

/* Queue SUBSCRIBE or UNSUBSCRIBE and remember it until its ack. */
static int queue_request(struct smq_client *c, struct smq_packet *pkt, uint8_t state,
			 uint32_t count)
{
	struct outmsg *m;
	long size;
	int ret;

	ret = alloc_id(c);
	if (ret < 0)
		return ret;
	pkt->packet_id = (uint16_t)ret;
	size = smq_encoded_size(pkt);
	if (size < 0 || (c->server_max_packet && size > c->server_max_packet))
		return -EMSGSIZE;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->id = pkt->packet_id;
	m->state = state;
	m->count = count;
	ret = idmap_put(&c->ids, m->id, m);
	if (ret)
		goto out_free;
	ret = queue_pkt(c, pkt);
	if (ret)
		goto out_unmap;
	return m->id;
out_unmap:
	idmap_del(&c->ids, m->id);
out_free:
	free(m);
	return ret;
}

static bool filter_ok(struct smq_str f)
{
	return smq_topic_filter_valid(f) && smq_utf8_valid(f.p, f.len);
}

static bool sub_entry_ok(const struct smq_client *c, const struct smq_sub_entry *e)
{
	struct smq_str group, inner;
	int shared;

	if (!filter_ok(e->filter) || SMQ_SUBOPT_QOS(e->opts) > 2)
		return false;
	if (c->version != SMQ_V5)
		return !(e->opts & ~3u);
	if ((e->opts & 0xC0) || SMQ_SUBOPT_RH(e->opts) > 2)	/* [MQTT-3.8.3-5] */
		return false;
	shared = smq_topic_parse_shared(e->filter, &group, &inner);
	if (shared < 0)
		return false;
	return !(shared == 0 && (e->opts & SMQ_SUBOPT_NO_LOCAL));	/* [MQTT-3.8.3-4] */
}

int smq_client_subscribe(struct smq_client *c, const struct smq_sub_entry *entries, size_t n,
			 const struct smq_props *props)
{
	struct smq_packet pkt = { .type = SMQ_SUBSCRIBE, .flags = 0x2 };	/* [MQTT-3.8.1-1] */
	size_t i;

	if (c->state != SMQ_CLIENT_CONNECTED)
		return -ENOTCONN;
	if (!n || n > 65535)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (!sub_entry_ok(c, &entries[i]))
			return -EINVAL;
	pkt.version = c->version;
	pkt.list.entries = entries;
	pkt.list.count = (uint32_t)n;
	if (props && c->version == SMQ_V5)
		pkt.props = *props;
	return queue_request(c, &pkt, AWAIT_SUBACK, (uint32_t)n);
}

int smq_client_unsubscribe(struct smq_client *c, const struct smq_str *filters, size_t n,
			   const struct smq_props *props)
{
	struct smq_packet pkt = { .type = SMQ_UNSUBSCRIBE, .flags = 0x2 };	/* [MQTT-3.10.1-1] */
	size_t i;

	if (c->state != SMQ_CLIENT_CONNECTED)
		return -ENOTCONN;
	if (!n || n > 65535)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (!filter_ok(filters[i]))
			return -EINVAL;
	pkt.version = c->version;
	pkt.list.filters = filters;
	pkt.list.count = (uint32_t)n;
	if (props && c->version == SMQ_V5)
		pkt.props = *props;
	return queue_request(c, &pkt, AWAIT_UNSUBACK, (uint32_t)n);
}

int smq_client_disconnect(struct smq_client *c, uint8_t reason, const struct smq_props *props)
{
	struct smq_packet pkt = { .type = SMQ_DISCONNECT };
	int ret;

	if (c->state != SMQ_CLIENT_CONNECTING && c->state != SMQ_CLIENT_CONNECTED)
		return -ENOTCONN;
	pkt.version = c->version;
	if (c->version == SMQ_V5) {
		pkt.reason = reason;
		if (props)
			pkt.props = *props;
	}
	ret = queue_pkt(c, &pkt);
	if (ret)
		return ret == -ENOMEM ? ret : -EINVAL;
	c->state = SMQ_CLIENT_CLOSED;	/* nothing may follow [MQTT-3.14.4-1] */
	return 0;
}

/* ---- helpers ----------------------------------------------------------- */

int smq_client_connack_error(uint8_t version, uint8_t code)
{
	if (!code)
		return 0;
	if (version == SMQ_V5)
		return -(int)code;
	switch (code) {
	case SMQ_CONNACK_BAD_VERSION:
		return -SMQ_RC_UNSUPPORTED_VERSION;
	case SMQ_CONNACK_ID_REJECTED:
		return -SMQ_RC_CLIENT_ID_INVALID;
	case SMQ_CONNACK_UNAVAILABLE:
		return -SMQ_RC_SERVER_UNAVAILABLE;
	case SMQ_CONNACK_BAD_CREDENTIALS:
		return -SMQ_RC_BAD_USER_OR_PASSWORD;
	case SMQ_CONNACK_NOT_AUTHORIZED:
		return -SMQ_RC_NOT_AUTHORIZED;
	default:
		return -SMQ_RC_UNSPECIFIED;
	}
}

const char *smq_client_event_name(enum smq_client_event_type type)
{
	static const char *const names[] = {
		[SMQ_CLIENT_EV_CONNACK] = "CONNACK",
		[SMQ_CLIENT_EV_MESSAGE] = "MESSAGE",
		[SMQ_CLIENT_EV_PUBLISH_DONE] = "PUBLISH_DONE",
		[SMQ_CLIENT_EV_SUBACK] = "SUBACK",
		[SMQ_CLIENT_EV_UNSUBACK] = "UNSUBACK",
		[SMQ_CLIENT_EV_PINGRESP] = "PINGRESP",
		[SMQ_CLIENT_EV_DISCONNECT] = "DISCONNECT",
		[SMQ_CLIENT_EV_ERROR] = "ERROR",
	};

	if ((unsigned)type < sizeof(names) / sizeof(names[0]) && names[type])
		return names[type];
	return "UNKNOWN";
}

const char *smq_client_strerror(int err)
{
	if (err <= -0x80 && err >= -0xFF)
		return smq_rc_name((uint8_t)-err);
	if (err < 0)
		return strerror(-err);
	return "success";
}
