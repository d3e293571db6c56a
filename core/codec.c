/* codec.c - MQTT 3.1 / 3.1.1 / 5.0 control packet codec (contract: codec.h).
 *
 * What it implements: fixed-header framing (smq_frame), a strict zero-copy
 * decoder (smq_decode), an incremental reader that copies only a packet split
 * across inputs (smq_reader_*), and an encoder that always writes the
 * shortest form (smq_encode), plus smq_packet_equal() and names for logs.
 * MQTT 5 property lists are props.c's job; UTF-8 validation is utf8.c's.
 *
 * Invariant: smq_decode() returns 0 only for a packet that satisfies every
 * rule of the spec that needs no connection state, and for every such packet
 * decode(encode(decode(bytes))) equals decode(bytes) (smq_packet_equal).
 * Bytes from the network are bounds-checked, never asserted; nothing in the
 * decoder allocates.
 *
 * Left to others: whatever needs state or policy - packet order, a second
 * CONNECT, client id rules (3.1's 23 bytes included), topic name and filter
 * syntax beyond UTF-8 (core/topic.c), topic alias mapping, Receive Maximum,
 * the peer's Maximum Packet Size, payload format checks, authentication.
 *
 * Reason codes where the spec leaves the choice to us:
 *  - 0x81 Malformed: what cannot be parsed - lengths, reserved bits, UTF-8,
 *    a missing field, trailing bytes; a property identifier that is unknown
 *    or not valid for the packet, as 5.0 section 2.2.2.2 says ("is a
 *    Malformed Packet"); a zero packet identifier; QoS 3 in 3.1.1 SUBSCRIBE
 *    options [MQTT-3.8.3-4].
 *  - 0x82 Protocol Error: what parses but the spec calls a Protocol Error -
 *    a property repeated where it may appear once, Receive Maximum 0,
 *    Maximum Packet Size 0, byte-valued properties other than 0/1 (Maximum
 *    QoS, the "available" flags, Request * Information, Payload Format
 *    Indicator), Subscription Identifier 0, Authentication Data without a
 *    Method, QoS 3 or Retain Handling 3 in 5.0 subscription options, an empty
 *    SUBSCRIBE [MQTT-3.8.3-2] / UNSUBSCRIBE [MQTT-3.10.3-2] / SUBACK /
 *    UNSUBACK, a reason code the packet type does not define, Session Present
 *    with a refusing CONNACK. 3.x closes without a code, so the same codes
 *    are used there.
 *  - 0x94 Topic Alias invalid: Topic Alias 0; 5.0 section 3.3.2.3.4 names
 *    this code for it rather than the generic 0x82.
 *  - 0x84 Unsupported Protocol Version: a CONNECT whose protocol name is
 *    "MQTT" or "MQIsdp" but whose level is not ("MQIsdp", 3), ("MQTT", 4)
 *    or ("MQTT", 5): the server answers CONNACK 0x01 [MQTT-3.1.2-2].
 *    Any other protocol name (empty, short, over-long) is 0x82: the
 *    connection closes without a CONNACK [MQTT-3.1.2-1].
 *  - Control characters U+0001..U+001F and U+007F..U+009F in a topic name,
 *    topic filter, client id, user name or will topic, and a zero-length
 *    topic filter [MQTT-4.7.3-1]: 0x81 Malformed ([MQTT-1.5.4-3] allows
 *    refusing them; they are a log-injection hazard).
 *  - Non-minimal variable byte integers (e.g. 0x80 0x00 for 0) are accepted
 *    on decode; 5.0 [MQTT-1.5.5-1] binds only the sender and 3.1.1 has no such
 *    rule. More than four bytes is always Malformed. A property identifier
 *    must be one byte (no identifier is >= 128; a longer one is "unknown").
 *  - 3.1 tolerances kept for old clients: the DUP bit on PUBREL, SUBSCRIBE and
 *    UNSUBSCRIBE (3.1 retries set it), CONNACK byte 1 ignored (reserved in
 *    3.1), and a user name / password flag with the field missing at the end
 *    of the CONNECT (read as empty).
 */
#include "core/codec.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/props.h"

/* ---- variable byte integers --------------------------------------------- */

int smq_varint_get(const uint8_t *buf, size_t len, uint32_t *v)
{
	uint32_t val = 0;
	size_t i;

	for (i = 0; i < 4; i++) {
		if (i >= len)
			return 0;
		val |= (uint32_t)(buf[i] & 0x7f) << (7 * i);
		if (!(buf[i] & 0x80)) {
			*v = val;
			return (int)i + 1;
		}
	}
	return -SMQ_RC_MALFORMED;	/* a fifth byte would be needed */
}

/* ---- decoding: reason codes ---------------------------------------------- */

struct rc_set {
	const uint8_t *codes;
	uint8_t n;
};

static const uint8_t rc_connack[] = { 0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
				      0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A,
				      0x9B, 0x9C, 0x9D, 0x9F };
static const uint8_t rc_puback[] = { 0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99 };
static const uint8_t rc_pubrel[] = { 0x00, 0x92 };
static const uint8_t rc_suback[] = { 0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91,
				     0x97, 0x9E, 0xA1, 0xA2 };
static const uint8_t rc_unsuback[] = { 0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91 };
static const uint8_t rc_disconnect[] = { 0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89,
					 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
					 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D,
					 0x9E, 0x9F, 0xA0, 0xA1, 0xA2 };
static const uint8_t rc_auth[] = { 0x00, 0x18, 0x19 };
static const uint8_t rc_suback_v3[] = { 0x00, 0x01, 0x02, 0x80 };	/* [MQTT-3.9.3-2] */

#define RC_SET(a) { a, (uint8_t)sizeof(a) }

/* 5.0: the reason codes each packet type may carry (section 2.4 table 2-6). */
static const struct rc_set rc_sets[16] = {
	[SMQ_CONNACK] = RC_SET(rc_connack),
	[SMQ_PUBACK] = RC_SET(rc_puback),
	[SMQ_PUBREC] = RC_SET(rc_puback),
	[SMQ_PUBREL] = RC_SET(rc_pubrel),
	[SMQ_PUBCOMP] = RC_SET(rc_pubrel),
	[SMQ_SUBACK] = RC_SET(rc_suback),
	[SMQ_UNSUBACK] = RC_SET(rc_unsuback),
	[SMQ_DISCONNECT] = RC_SET(rc_disconnect),
	[SMQ_AUTH] = RC_SET(rc_auth),
};

static bool rc_in(const struct rc_set *s, uint8_t rc)
{
	return memchr(s->codes, rc, s->n) != NULL;
}

bool smq_rc_valid(uint8_t type, uint8_t rc)
{
	return type < 16 && rc_sets[type].n && rc_in(&rc_sets[type], rc);
}

/* The packet's reason code must be one its type defines ([MQTT-3.4.2-1] and
 * the like for each type): Protocol Error otherwise. */
static inline int rc_check(uint8_t type, uint8_t rc)
{
	return rc_in(&rc_sets[type], rc) ? 0 : -SMQ_RC_PROTOCOL_ERROR;
}

/* ---- decoding: packets --------------------------------------------------- */

static uint8_t connect_level(const struct smq_str *name, uint8_t level)
{
	if (name->len == 4 && !memcmp(name->p, "MQTT", 4) &&
	    (level == SMQ_V311 || level == SMQ_V5))
		return level;
	if (name->len == 6 && !memcmp(name->p, "MQIsdp", 6) && level == SMQ_V31)
		return level;
	return 0;
}

/* "MQTT" or "MQIsdp", whatever the level. */
static bool known_name(const struct smq_str *name)
{
	return (name->len == 4 && !memcmp(name->p, "MQTT", 4)) ||
	       (name->len == 6 && !memcmp(name->p, "MQIsdp", 6));
}

static int connect_flags(struct smq_packet *pkt, uint8_t fl)
{
	__typeof__(pkt->connect) *c = &pkt->connect;

	if (fl & 0x01)
		return -SMQ_RC_MALFORMED;	/* reserved bit [MQTT-3.1.2-3] */
	c->clean = fl & 0x02;
	c->will = fl & 0x04;
	c->will_qos = (fl >> 3) & 3;
	c->will_retain = fl & 0x20;
	c->has_password = fl & 0x40;
	c->has_username = fl & 0x80;
	if (c->will_qos == 3)
		return -SMQ_RC_MALFORMED;	/* [MQTT-3.1.2-14] */
	if (!c->will && (c->will_qos || c->will_retain))
		return -SMQ_RC_MALFORMED;	/* [MQTT-3.1.2-13] [MQTT-3.1.2-15] */
	if (pkt->version < SMQ_V5 && c->has_password && !c->has_username)
		return -SMQ_RC_MALFORMED;	/* [MQTT-3.1.2-22]; 5.0 allows it */
	return 0;
}

/* A 3.1 CONNECT may announce a user name or password and then end. */
static inline int rd_login(struct smq_rd *r, uint8_t version, bool utf8, struct smq_str *s)
{
	if (version == SMQ_V31 && r->p == r->end) {
		s->p = r->p;
		s->len = 0;
		return 0;
	}
	return utf8 ? smq_rd_name(r, s) : smq_rd_bin(r, s);
}

static int dec_connect_payload(struct smq_rd *r, struct smq_packet *pkt)
{
	__typeof__(pkt->connect) *c = &pkt->connect;
	int ret;

	ret = smq_rd_name(r, &c->client_id);	/* [MQTT-3.1.3-4] [MQTT-1.5.4-3] */
	if (!ret && c->will) {
		if (pkt->version == SMQ_V5)
			ret = smq_props_read(r, SMQ_PCTX_WILL, &c->will_props);
		if (!ret)
			ret = smq_rd_name(r, &c->will_topic);
		if (!ret)
			ret = smq_rd_bin(r, &c->will_payload);
	}
	if (!ret && c->has_username)
		ret = rd_login(r, pkt->version, true, &c->username);
	if (!ret && c->has_password)
		ret = rd_login(r, pkt->version, false, &c->password);
	return ret ? ret : smq_rd_end(r);
}

static int dec_connect(struct smq_rd *r, struct smq_packet *pkt)
{
	__typeof__(pkt->connect) *c = &pkt->connect;
	uint8_t fl;
	int ret;

	memset(c, 0, sizeof(*c));
	ret = smq_rd_bin(r, &c->proto_name);
	if (!ret)
		ret = smq_rd_u8(r, &c->level);
	if (ret)
		return ret;
	pkt->version = connect_level(&c->proto_name, c->level);
	if (!pkt->version && !known_name(&c->proto_name))
		return -SMQ_RC_PROTOCOL_ERROR;	/* not MQTT at all: no CONNACK [MQTT-3.1.2-1] */
	if (!pkt->version)
		return -SMQ_RC_UNSUPPORTED_VERSION;	/* CONNACK 0x01 [MQTT-3.1.2-2] */
	ret = smq_rd_u8(r, &fl);
	if (!ret)
		ret = connect_flags(pkt, fl);
	if (!ret)
		ret = smq_rd_u16(r, &c->keepalive);
	if (!ret && pkt->version == SMQ_V5) {
		ret = smq_props_read(r, SMQ_PCTX_CONNECT, &pkt->props);
		/* 5.0 3.1.2.11.10: Authentication Data without a Method */
		if (!ret && SMQ_HAS(&pkt->props, SMQ_PROP_AUTH_DATA) &&
		    !SMQ_HAS(&pkt->props, SMQ_PROP_AUTH_METHOD))
			ret = -SMQ_RC_PROTOCOL_ERROR;
	}
	return ret ? ret : dec_connect_payload(r, pkt);
}

static int dec_connack(struct smq_rd *r, struct smq_packet *pkt)
{
	uint8_t fl;
	int ret;

	ret = smq_rd_u8(r, &fl);
	if (!ret)
		ret = smq_rd_u8(r, &pkt->reason);
	if (ret)
		return ret;
	pkt->connack.session_present = false;
	if (pkt->version != SMQ_V31) {	/* 3.1: byte 1 is reserved, unused */
		if (fl & 0xfe)
			return -SMQ_RC_MALFORMED;	/* [MQTT-3.2.2-1] */
		pkt->connack.session_present = fl & 1;
	}
	if (pkt->version == SMQ_V5)
		ret = rc_check(SMQ_CONNACK, pkt->reason);
	else if (pkt->reason > SMQ_CONNACK_NOT_AUTHORIZED)
		ret = -SMQ_RC_PROTOCOL_ERROR;	/* 3.1.1 table 3.1: 6-255 reserved */
	if (!ret && pkt->connack.session_present && pkt->reason)
		ret = -SMQ_RC_PROTOCOL_ERROR;	/* [MQTT-3.2.2-6] (3.1.1 [MQTT-3.2.2-4]) */
	if (!ret && pkt->version == SMQ_V5)
		ret = smq_props_read(r, SMQ_PCTX_CONNACK, &pkt->props);
	return ret ? ret : smq_rd_end(r);
}

static int dec_publish(struct smq_rd *r, struct smq_packet *pkt)
{
	uint8_t qos = (pkt->flags >> 1) & 3;
	int ret;

	pkt->publish.qos = qos;
	pkt->publish.dup = pkt->flags & 8;
	pkt->publish.retain = pkt->flags & 1;
	if (qos == 3)
		return -SMQ_RC_MALFORMED;	/* [MQTT-3.3.1-4] */
	if (pkt->publish.dup && !qos)
		return -SMQ_RC_MALFORMED;	/* [MQTT-3.3.1-2] */
	ret = smq_rd_name(r, &pkt->publish.topic);	/* [MQTT-3.3.2-1] [MQTT-1.5.4-3] */
	if (!ret && qos)
		ret = smq_rd_pid(r, &pkt->packet_id);
	if (!ret && pkt->version == SMQ_V5)
		ret = smq_props_read(r, SMQ_PCTX_PUBLISH, &pkt->props);
	pkt->publish.payload.p = r->p;
	pkt->publish.payload.len = (uint32_t)smq_rd_left(r);
	return ret;
}

/* 5.0 tail of PUBACK..PUBCOMP, DISCONNECT and AUTH: the reason code and the
 * property length may be left out when they would be 0 (sections 3.4.2.1,
 * 3.14.2.1, 3.15.2.1), so the packet may end before either. */
static int dec_reason_tail(struct smq_rd *r, struct smq_packet *pkt, uint8_t ctx)
{
	int ret;

	if (r->p == r->end)
		return 0;
	pkt->reason = *r->p++;
	ret = rc_check(pkt->type, pkt->reason);
	if (ret || r->p == r->end)
		return ret;
	ret = smq_props_read(r, ctx, &pkt->props);
	return ret ? ret : smq_rd_end(r);
}

/* PUBACK, PUBREC, PUBREL, PUBCOMP: 3.x are exactly the packet id. */
static int dec_ack(struct smq_rd *r, struct smq_packet *pkt)
{
	int ret = smq_rd_pid(r, &pkt->packet_id);

	if (ret)
		return ret;
	if (pkt->version < SMQ_V5)
		return smq_rd_end(r);
	return dec_reason_tail(r, pkt, SMQ_PCTX_PUBACK);
}

/* Subscription options byte: 3.x allows QoS 0-2 and nothing else
 * [MQTT-3.8.3-4]; 5.0 has reserved bits 6-7 [MQTT-3.8.3-5] and calls QoS 3
 * and Retain Handling 3 Protocol Errors (section 3.8.3.1). */
static int sub_opts_check(uint8_t o, uint8_t version)
{
	if (version < SMQ_V5)
		return (o & 0xfc) || SMQ_SUBOPT_QOS(o) == 3 ? -SMQ_RC_MALFORMED : 0;
	if (o & 0xc0)
		return -SMQ_RC_MALFORMED;
	if (SMQ_SUBOPT_QOS(o) == 3 || SMQ_SUBOPT_RH(o) == 3)
		return -SMQ_RC_PROTOCOL_ERROR;
	return 0;
}

/* Packet id, 5.0 properties, then the list payload view of SUBSCRIBE,
 * UNSUBSCRIBE, SUBACK and UNSUBACK. */
static int dec_list_head(struct smq_rd *r, struct smq_packet *pkt, uint8_t ctx)
{
	int ret = smq_rd_pid(r, &pkt->packet_id);

	if (!ret && pkt->version == SMQ_V5)
		ret = smq_props_read(r, ctx, &pkt->props);
	pkt->list.raw.p = r->p;
	pkt->list.raw.len = (uint32_t)smq_rd_left(r);
	pkt->list.count = 0;
	pkt->list.entries = NULL;
	pkt->list.filters = NULL;
	return ret;
}

static int dec_subscribe(struct smq_rd *r, struct smq_packet *pkt)
{
	struct smq_str f;
	uint8_t o;
	int ret = dec_list_head(r, pkt, SMQ_PCTX_SUBSCRIBE);

	while (!ret && r->p < r->end) {
		ret = smq_rd_name(r, &f);	/* [MQTT-3.8.3-1] */
		if (!ret && !f.len)
			ret = -SMQ_RC_MALFORMED;	/* [MQTT-4.7.3-1] */
		if (!ret)
			ret = smq_rd_u8(r, &o);
		if (!ret)
			ret = sub_opts_check(o, pkt->version);
		pkt->list.count++;
	}
	if (!ret && !pkt->list.count)
		ret = -SMQ_RC_PROTOCOL_ERROR;	/* [MQTT-3.8.3-2] (3.1.1 [MQTT-3.8.3-3]) */
	return ret;
}

static int dec_unsubscribe(struct smq_rd *r, struct smq_packet *pkt)
{
	struct smq_str f;
	int ret = dec_list_head(r, pkt, SMQ_PCTX_UNSUBSCRIBE);

	while (!ret && r->p < r->end) {
		ret = smq_rd_name(r, &f);	/* [MQTT-3.10.3-1] */
		if (!ret && !f.len)
			ret = -SMQ_RC_MALFORMED;	/* [MQTT-4.7.3-1] */
		pkt->list.count++;
	}
	if (!ret && !pkt->list.count)
		ret = -SMQ_RC_PROTOCOL_ERROR;	/* [MQTT-3.10.3-2] */
	return ret;
}

/* SUBACK and 5.0 UNSUBACK: one or more reason codes, each defined for the
 * type [MQTT-3.9.3-2] (5.0 [MQTT-3.9.3-2], [MQTT-3.11.3-2]). */
static int dec_codes(struct smq_rd *r, struct smq_packet *pkt, uint8_t ctx)
{
	const struct rc_set v3 = RC_SET(rc_suback_v3);
	const struct rc_set *set = pkt->version == SMQ_V5 ? &rc_sets[pkt->type] : &v3;
	int ret = dec_list_head(r, pkt, ctx);
	uint32_t i;

	if (ret)
		return ret;
	pkt->list.count = pkt->list.raw.len;
	if (!pkt->list.count)
		return -SMQ_RC_PROTOCOL_ERROR;	/* one code per filter, and there is one */
	for (i = 0; i < pkt->list.count; i++)
		if (!rc_in(set, pkt->list.raw.p[i]))
			return -SMQ_RC_PROTOCOL_ERROR;
	return 0;
}

static int dec_unsuback(struct smq_rd *r, struct smq_packet *pkt)
{
	int ret;

	if (pkt->version == SMQ_V5)
		return dec_codes(r, pkt, SMQ_PCTX_UNSUBACK);
	ret = dec_list_head(r, pkt, SMQ_PCTX_UNSUBACK);
	return ret ? ret : smq_rd_end(r);
}

/* Fixed-header flags: PUBREL, SUBSCRIBE, UNSUBSCRIBE carry 0010, the others
 * (but PUBLISH) 0000 [MQTT-2.1.3-1] (3.1.1 [MQTT-2.2.2-1] [MQTT-2.2.2-2]);
 * 3.1 sets DUP on retried PUBREL / SUBSCRIBE / UNSUBSCRIBE. */
static bool flags_ok(uint8_t type, uint8_t flags, uint8_t version)
{
	switch (type) {
	case SMQ_PUBLISH:
		return true;
	case SMQ_PUBREL:
	case SMQ_SUBSCRIBE:
	case SMQ_UNSUBSCRIBE:
		return flags == 2 || (version == SMQ_V31 && flags == 0xa);
	default:
		return flags == 0;
	}
}

static int dec_body(struct smq_rd *r, struct smq_packet *pkt)
{
	switch (pkt->type) {
	case SMQ_CONNECT:
		return dec_connect(r, pkt);
	case SMQ_CONNACK:
		return dec_connack(r, pkt);
	case SMQ_PUBLISH:
		return dec_publish(r, pkt);
	case SMQ_PUBACK:
	case SMQ_PUBREC:
	case SMQ_PUBREL:
	case SMQ_PUBCOMP:
		return dec_ack(r, pkt);
	case SMQ_SUBSCRIBE:
		return dec_subscribe(r, pkt);
	case SMQ_SUBACK:
		return dec_codes(r, pkt, SMQ_PCTX_SUBACK);
	case SMQ_UNSUBSCRIBE:
		return dec_unsubscribe(r, pkt);
	case SMQ_UNSUBACK:
		return dec_unsuback(r, pkt);
	case SMQ_DISCONNECT:
		if (pkt->version == SMQ_V5)
			return dec_reason_tail(r, pkt, SMQ_PCTX_DISCONNECT);
		return smq_rd_end(r);
	case SMQ_AUTH:
		if (pkt->version != SMQ_V5)
			return -SMQ_RC_MALFORMED;	/* reserved type before 5.0 */
		return dec_reason_tail(r, pkt, SMQ_PCTX_AUTH);
	default:	/* PINGREQ, PINGRESP: no body [MQTT-3.12.1] [MQTT-3.13.1] */
		return smq_rd_end(r);
	}
}

/* Decode a packet whose fixed header (@hl bytes) was already framed and
 * whose length @len matches it. */
static int decode_framed(const uint8_t *buf, uint32_t hl, size_t len, uint8_t version,
			 struct smq_packet *pkt)
{
	struct smq_rd r;

	pkt->type = buf[0] >> 4;
	pkt->flags = buf[0] & 0x0f;
	pkt->version = version;
	pkt->reason = 0;
	pkt->packet_id = 0;
	pkt->props.present = 0;
	if (!pkt->type)
		return -SMQ_RC_MALFORMED;	/* type 0 is reserved */
	if (pkt->type != SMQ_CONNECT && !version)
		return -SMQ_RC_PROTOCOL_ERROR;	/* first packet must be CONNECT */
	if (pkt->type != SMQ_CONNECT && (version < SMQ_V31 || version > SMQ_V5))
		return -SMQ_RC_UNSUPPORTED_VERSION;
	if (!flags_ok(pkt->type, pkt->flags, version))
		return -SMQ_RC_MALFORMED;
	r.p = buf + hl;
	r.end = buf + len;
	return dec_body(&r, pkt);
}

int smq_decode(const uint8_t *buf, size_t len, uint8_t version, struct smq_packet *pkt)
{
	uint32_t hl = 0, rem = 0;
	int ret;

	ret = smq_frame(buf, len, 0, &hl, &rem);
	if (ret)
		return ret < 0 ? ret : -SMQ_RC_MALFORMED;
	if ((size_t)hl + rem != len)
		return -SMQ_RC_MALFORMED;
	return decode_framed(buf, hl, len, version, pkt);
}

/* ---- framing --------------------------------------------------------------- */

int smq_frame(const uint8_t *buf, size_t len, uint32_t max_packet, uint32_t *hdr_len,
	      uint32_t *remaining)
{
	uint32_t rem;
	int n;

	if (len < 2)
		return 1;
	if (!(buf[1] & 0x80)) {	/* the common one-byte length */
		rem = buf[1];
		n = 1;
	} else {
		n = smq_varint_get(buf + 1, len - 1, &rem);
	}
	if (n <= 0)
		return n ? n : 1;
	if (!max_packet)
		max_packet = SMQ_MAX_PACKET;
	if (1u + (uint64_t)n + rem > max_packet)
		return -SMQ_RC_PACKET_TOO_LARGE;
	*hdr_len = 1u + (uint32_t)n;
	*remaining = rem;
	return 0;
}

/* ---- incremental reader ------------------------------------------------------ */

/* The reassembly buffer starts small and grows to the size of the packet
 * being reassembled; one larger than this is freed once its packet's views
 * have expired (at the next call), so a single huge packet does not pin
 * memory for the life of the connection. */
#define READER_MIN_CAP 256u
#define READER_KEEP_CAP 65536u

void smq_reader_init(struct smq_reader *r, uint32_t max_packet, uint8_t version)
{
	memset(r, 0, sizeof(*r));
	r->max_packet = max_packet;
	r->version = version;
}

void smq_reader_fini(struct smq_reader *r)
{
	free(r->buf);
	r->buf = NULL;
	r->len = r->cap = r->need = 0;
}

static int reader_reserve(struct smq_reader *r, uint32_t n)
{
	uint8_t *p;

	if (n <= r->cap)
		return 0;
	if (n < READER_MIN_CAP)
		n = READER_MIN_CAP;
	p = realloc(r->buf, n);
	if (!p)
		return -SMQ_RC_UNSPECIFIED;	/* out of memory: nothing better to say */
	r->buf = p;
	r->cap = n;
	return 0;
}

/* Length of a fixed header smq_frame() has accepted. */
static uint32_t frame_header_len(const uint8_t *p)
{
	uint32_t n = 2;

	while (p[n - 1] & 0x80)
		n++;
	return n;
}

/* Decode the framed packet p[0..n) (header @hl bytes) for the reader. */
static int reader_decode(struct smq_reader *r, const uint8_t *p, uint32_t hl, size_t n,
			 struct smq_packet *pkt)
{
	int ret = decode_framed(p, hl, n, r->version, pkt);

	if (ret)
		return ret;
	if (pkt->type == SMQ_CONNECT)
		r->version = pkt->version;
	return 1;
}

/* Move header bytes one at a time until the packet's size is known: the
 * header is 2 to 5 bytes, and taking more could eat the next packet. */
static int reader_header(struct smq_reader *r, const uint8_t **in, size_t *inlen)
{
	uint32_t hl, rem;
	int ret = 1;

	while (ret == 1 && *inlen) {
		r->buf[r->len++] = *(*in)++;
		(*inlen)--;
		ret = smq_frame(r->buf, r->len, r->max_packet, &hl, &rem);
	}
	if (ret == 0)
		r->need = hl + rem;
	return ret;
}

/* Continue the packet in r->buf with bytes from *in. */
static int reader_fill(struct smq_reader *r, const uint8_t **in, size_t *inlen,
		       struct smq_packet *pkt)
{
	size_t take;
	int ret;

	if (!r->need) {
		ret = reader_header(r, in, inlen);
		if (ret)
			return ret < 0 ? ret : 0;
	}
	take = r->need - r->len;
	if (take > *inlen)
		take = *inlen;
	/* Grow with the bytes that actually arrive (doubling, capped at the
	 * packet size) rather than trusting the declared length up front: a
	 * 5-byte header must not buy a 256 MB allocation. */
	if (r->len + take > r->cap) {
		uint64_t want = (uint64_t)r->cap * 2;

		if (want < r->len + take)
			want = r->len + take;
		ret = reader_reserve(r, want < r->need ? (uint32_t)want : r->need);
		if (ret)
			return ret;
	}
	memcpy(r->buf + r->len, *in, take);
	r->len += (uint32_t)take;
	*in += take;
	*inlen -= take;
	if (r->len < r->need)
		return 0;
	take = r->need;
	r->len = 0;
	r->need = 0;
	return reader_decode(r, r->buf, frame_header_len(r->buf), take, pkt);
}

int smq_reader_next(struct smq_reader *r, const uint8_t **in, size_t *inlen,
		    struct smq_packet *pkt)
{
	uint32_t hl = 0, rem = 0;
	int ret;

	if (!r->len) {
		if (r->cap > READER_KEEP_CAP) {	/* the last packet's views have expired */
			free(r->buf);
			r->buf = NULL;
			r->cap = 0;
		}
		if (!*inlen)
			return 0;
		ret = smq_frame(*in, *inlen, r->max_packet, &hl, &rem);
		if (ret < 0)
			return ret;
		if (!ret && (size_t)hl + rem <= *inlen) {	/* whole: zero-copy */
			*in += hl + rem;
			*inlen -= hl + rem;
			return reader_decode(r, *in - hl - rem, hl, (size_t)hl + rem, pkt);
		}
		r->need = ret ? 0 : hl + rem;
		ret = reader_reserve(r, READER_MIN_CAP);	/* reader_fill() grows it */
		if (ret)
			return ret;
	}
	return reader_fill(r, in, inlen, pkt);
}

/* ---- list walkers ------------------------------------------------------------ */

bool smq_list_next_sub(const struct smq_packet *pkt, uint32_t *pos, struct smq_sub_entry *e)
{
	const struct smq_str *raw = &pkt->list.raw;
	uint32_t n;

	if (pkt->list.entries) {
		if (*pos >= pkt->list.count)
			return false;
		*e = pkt->list.entries[(*pos)++];
		return true;
	}
	if (*pos >= raw->len || raw->len - *pos < 3)
		return false;
	n = smq_be16(raw->p + *pos);
	if (raw->len - *pos - 3 < n)
		return false;
	e->filter.p = raw->p + *pos + 2;
	e->filter.len = n;
	e->opts = raw->p[*pos + 2 + n];
	*pos += 3 + n;
	return true;
}

bool smq_list_next_filter(const struct smq_packet *pkt, uint32_t *pos, struct smq_str *filter)
{
	const struct smq_str *raw = &pkt->list.raw;
	uint32_t n;

	if (pkt->list.filters) {
		if (*pos >= pkt->list.count)
			return false;
		*filter = pkt->list.filters[(*pos)++];
		return true;
	}
	if (*pos >= raw->len || raw->len - *pos < 2)
		return false;
	n = smq_be16(raw->p + *pos);
	if (raw->len - *pos - 2 < n)
		return false;
	filter->p = raw->p + *pos + 2;
	filter->len = n;
	*pos += 2 + n;
	return true;
}

/* ---- encoding: sizes ----------------------------------------------------------- */

/* What the encoder decided before writing: every length is known up front,
 * so the writers never check space. */
struct plan {
	uint64_t rem;		/* remaining length */
	uint32_t plen;		/* 5.0: property length of the packet */
	uint32_t wplen;		/* 5.0: property length of the will */
	uint8_t tail;		/* 5.0 acks, DISCONNECT, AUTH: enum tail */
};

enum tail { TAIL_NONE, TAIL_REASON, TAIL_PROPS };
static int plan_str(struct plan *pl, struct smq_str s)
{
	if (s.len > 0xffff)
		return -SMQ_RC_MALFORMED;
	pl->rem += 2u + s.len;
	return 0;
}

static int plan_props(struct plan *pl, const struct smq_props *pr, uint8_t ctx, uint32_t *plen)
{
	long n = smq_props_size(pr, ctx);

	if (n < 0)
		return (int)n;
	*plen = (uint32_t)n;
	pl->rem += (uint64_t)smq_varint_size(*plen) + *plen;
	return 0;
}

static int plan_connect(const struct smq_packet *pkt, struct plan *pl)
{
	const __typeof__(pkt->connect) *c = &pkt->connect;
	bool v5 = pkt->version == SMQ_V5;
	int ret = 0;

	/* protocol name with its length, level, flags, keep alive */
	pl->rem = (pkt->version == SMQ_V31 ? 8u : 6u) + 4u;
	if (v5)
		ret = plan_props(pl, &pkt->props, SMQ_PCTX_CONNECT, &pl->plen);
	if (!ret)
		ret = plan_str(pl, c->client_id);
	if (!ret && c->will) {
		if (v5)
			ret = plan_props(pl, &c->will_props, SMQ_PCTX_WILL, &pl->wplen);
		if (!ret)
			ret = plan_str(pl, c->will_topic);
		if (!ret)
			ret = plan_str(pl, c->will_payload);
	}
	if (!ret && c->has_username)
		ret = plan_str(pl, c->username);
	if (!ret && c->has_password)
		ret = plan_str(pl, c->password);
	return ret;
}

static int plan_publish(const struct smq_packet *pkt, struct plan *pl)
{
	int ret;

	if (pkt->publish.qos > 2)
		return -SMQ_RC_MALFORMED;
	ret = plan_str(pl, pkt->publish.topic);
	if (pkt->publish.qos)
		pl->rem += 2;
	if (!ret && pkt->version == SMQ_V5)
		ret = plan_props(pl, &pkt->props, SMQ_PCTX_PUBLISH, &pl->plen);
	pl->rem += pkt->publish.payload.len;
	return ret;
}

/* 5.0 acks, DISCONNECT, AUTH: the shortest form that says it all. AUTH
 * always keeps the property length after a reason code: only the
 * remaining-length-0 short form is spelled out for it (section 3.15.2.1). */
static int plan_tail(const struct smq_packet *pkt, struct plan *pl, uint8_t ctx)
{
	if (pkt->version != SMQ_V5)
		return 0;
	if (pkt->props.present || (pkt->type == SMQ_AUTH && pkt->reason)) {
		pl->tail = TAIL_PROPS;
		pl->rem += 1;
		return plan_props(pl, &pkt->props, ctx, &pl->plen);
	}
	if (pkt->reason) {
		pl->tail = TAIL_REASON;
		pl->rem += 1;
	}
	return 0;
}

/* Packet id, 5.0 properties and the payload of the four list packets. */
static int plan_list(const struct smq_packet *pkt, struct plan *pl)
{
	const __typeof__(pkt->list) *l = &pkt->list;
	uint32_t i;
	int ret = 0;

	pl->rem = 2;
	if (pkt->version == SMQ_V5)
		ret = plan_props(pl, &pkt->props, pkt->type, &pl->plen);
	else if (pkt->type == SMQ_UNSUBACK)
		return 0;	/* 3.x UNSUBACK: the packet id only */
	if (pkt->type == SMQ_SUBSCRIBE && l->entries) {
		for (i = 0; !ret && i < l->count; i++) {
			ret = plan_str(pl, l->entries[i].filter);
			pl->rem += 1;
		}
	} else if (pkt->type == SMQ_UNSUBSCRIBE && l->filters) {
		for (i = 0; !ret && i < l->count; i++)
			ret = plan_str(pl, l->filters[i]);
	} else {
		pl->rem += l->raw.len;
	}
	return ret;
}

static int plan_packet(const struct smq_packet *pkt, struct plan *pl)
{
	int ret = 0;

	memset(pl, 0, sizeof(*pl));
	if (pkt->version < SMQ_V31 || pkt->version > SMQ_V5)
		return -SMQ_RC_UNSUPPORTED_VERSION;
	switch (pkt->type) {
	case SMQ_CONNECT:
		ret = plan_connect(pkt, pl);
		break;
	case SMQ_CONNACK:
		pl->rem = 2;
		if (pkt->version == SMQ_V5)
			ret = plan_props(pl, &pkt->props, SMQ_PCTX_CONNACK, &pl->plen);
		break;
	case SMQ_PUBLISH:
		ret = plan_publish(pkt, pl);
		break;
	case SMQ_PUBACK:
	case SMQ_PUBREC:
	case SMQ_PUBREL:
	case SMQ_PUBCOMP:
		pl->rem = 2;
		ret = plan_tail(pkt, pl, SMQ_PCTX_PUBACK);
		break;
	case SMQ_SUBSCRIBE:
	case SMQ_SUBACK:
	case SMQ_UNSUBSCRIBE:
	case SMQ_UNSUBACK:
		ret = plan_list(pkt, pl);
		break;
	case SMQ_PINGREQ:
	case SMQ_PINGRESP:
		break;
	case SMQ_DISCONNECT:
		ret = plan_tail(pkt, pl, SMQ_PCTX_DISCONNECT);
		break;
	case SMQ_AUTH:
		ret = pkt->version == SMQ_V5 ? plan_tail(pkt, pl, SMQ_PCTX_AUTH)
					     : -SMQ_RC_MALFORMED;
		break;
	default:
		return -SMQ_RC_MALFORMED;
	}
	if (!ret && pl->rem > SMQ_MAX_REMAINING)
		ret = -SMQ_RC_MALFORMED;
	return ret;
}

long smq_encoded_size(const struct smq_packet *pkt)
{
	struct plan pl;
	int ret = plan_packet(pkt, &pl);

	if (ret)
		return ret;
	return 1L + smq_varint_size((uint32_t)pl.rem) + (long)pl.rem;
}

/* ---- encoding: writers (space was checked by the plan) -------------------- */

static uint8_t *put_connect(uint8_t *p, const struct smq_packet *pkt, const struct plan *pl)
{
	const __typeof__(pkt->connect) *c = &pkt->connect;
	bool v5 = pkt->version == SMQ_V5;
	uint8_t fl;

	p = smq_put_str(p, pkt->version == SMQ_V31 ? SMQ_STR("MQIsdp") : SMQ_STR("MQTT"));
	*p++ = pkt->version;
	fl = (uint8_t)(c->clean << 1 | c->has_password << 6 | c->has_username << 7);
	if (c->will)
		fl |= (uint8_t)(0x04 | (c->will_qos & 3) << 3 | c->will_retain << 5);
	*p++ = fl;
	p = smq_put_u16(p, c->keepalive);
	if (v5)
		p = smq_props_write(p, &pkt->props, pl->plen);
	p = smq_put_str(p, c->client_id);
	if (c->will) {
		if (v5)
			p = smq_props_write(p, &c->will_props, pl->wplen);
		p = smq_put_str(p, c->will_topic);
		p = smq_put_str(p, c->will_payload);
	}
	if (c->has_username)
		p = smq_put_str(p, c->username);
	if (c->has_password)
		p = smq_put_str(p, c->password);
	return p;
}

static uint8_t *put_publish(uint8_t *p, const struct smq_packet *pkt, const struct plan *pl)
{
	p = smq_put_str(p, pkt->publish.topic);
	if (pkt->publish.qos)
		p = smq_put_u16(p, pkt->packet_id);
	if (pkt->version == SMQ_V5)
		p = smq_props_write(p, &pkt->props, pl->plen);
	if (pkt->publish.payload.len)
		memcpy(p, pkt->publish.payload.p, pkt->publish.payload.len);
	return p + pkt->publish.payload.len;
}

static uint8_t *put_list(uint8_t *p, const struct smq_packet *pkt, const struct plan *pl)
{
	const __typeof__(pkt->list) *l = &pkt->list;
	uint32_t i;

	p = smq_put_u16(p, pkt->packet_id);
	if (pkt->version == SMQ_V5)
		p = smq_props_write(p, &pkt->props, pl->plen);
	else if (pkt->type == SMQ_UNSUBACK)
		return p;
	if (pkt->type == SMQ_SUBSCRIBE && l->entries) {
		for (i = 0; i < l->count; i++) {
			p = smq_put_str(p, l->entries[i].filter);
			*p++ = l->entries[i].opts;
		}
	} else if (pkt->type == SMQ_UNSUBSCRIBE && l->filters) {
		for (i = 0; i < l->count; i++)
			p = smq_put_str(p, l->filters[i]);
	} else if (l->raw.len) {
		memcpy(p, l->raw.p, l->raw.len);
		p += l->raw.len;
	}
	return p;
}

static uint8_t *put_tail(uint8_t *p, const struct smq_packet *pkt, const struct plan *pl)
{
	if (pl->tail != TAIL_NONE)
		*p++ = pkt->reason;
	if (pl->tail == TAIL_PROPS)
		p = smq_props_write(p, &pkt->props, pl->plen);
	return p;
}

static uint8_t *put_body(uint8_t *p, const struct smq_packet *pkt, const struct plan *pl)
{
	switch (pkt->type) {
	case SMQ_CONNECT:
		return put_connect(p, pkt, pl);
	case SMQ_CONNACK:
		*p++ = pkt->version == SMQ_V31 ? 0 : pkt->connack.session_present;
		*p++ = pkt->reason;
		return pkt->version == SMQ_V5 ? smq_props_write(p, &pkt->props, pl->plen) : p;
	case SMQ_PUBLISH:
		return put_publish(p, pkt, pl);
	case SMQ_PUBACK:
	case SMQ_PUBREC:
	case SMQ_PUBREL:
	case SMQ_PUBCOMP:
		return put_tail(smq_put_u16(p, pkt->packet_id), pkt, pl);
	case SMQ_SUBSCRIBE:
	case SMQ_SUBACK:
	case SMQ_UNSUBSCRIBE:
	case SMQ_UNSUBACK:
		return put_list(p, pkt, pl);
	case SMQ_DISCONNECT:
	case SMQ_AUTH:
		return put_tail(p, pkt, pl);
	default:	/* PINGREQ, PINGRESP */
		return p;
	}
}

/* Byte 0: type and the flags it must carry [MQTT-2.1.3-1]. */
static uint8_t byte0(const struct smq_packet *pkt)
{
	uint8_t t = (uint8_t)(pkt->type << 4);

	switch (pkt->type) {
	case SMQ_PUBLISH:
		return (uint8_t)(t | pkt->publish.dup << 3 | pkt->publish.qos << 1 |
				 pkt->publish.retain);
	case SMQ_PUBREL:
	case SMQ_SUBSCRIBE:
	case SMQ_UNSUBSCRIBE:
		/* keep a 3.1 retry's DUP bit */
		return t | 0x02 | (pkt->version == SMQ_V31 ? (pkt->flags & 0x08) : 0);
	default:
		return t;
	}
}

long smq_encode(const struct smq_packet *pkt, uint8_t *out, size_t cap)
{
	struct plan pl;
	uint8_t *p = out;
	size_t total;
	int ret = plan_packet(pkt, &pl);

	if (ret)
		return ret;
	total = 1u + (size_t)smq_varint_size((uint32_t)pl.rem) + pl.rem;
	if (total > cap)
		return -SMQ_RC_PACKET_TOO_LARGE;
	*p++ = byte0(pkt);
	p += smq_varint_put(p, (uint32_t)pl.rem);
	p = put_body(p, pkt, &pl);
	assert((size_t)(p - out) == total);
	return (long)total;
}

/* ---- equality --------------------------------------------------------------- */

static bool connect_eq(const struct smq_packet *a, const struct smq_packet *b)
{
	const __typeof__(a->connect) *x = &a->connect, *y = &b->connect;

	if (x->clean != y->clean || x->will != y->will || x->keepalive != y->keepalive ||
	    x->has_username != y->has_username || x->has_password != y->has_password ||
	    !smq_str_eq(x->client_id, y->client_id))
		return false;
	if (x->will && (x->will_qos != y->will_qos || x->will_retain != y->will_retain ||
			!smq_str_eq(x->will_topic, y->will_topic) ||
			!smq_str_eq(x->will_payload, y->will_payload) ||
			(a->version == SMQ_V5 && !smq_props_equal(&x->will_props, &y->will_props))))
		return false;
	if (x->has_username && !smq_str_eq(x->username, y->username))
		return false;
	return !x->has_password || smq_str_eq(x->password, y->password);
}

static bool subs_eq(const struct smq_packet *a, const struct smq_packet *b)
{
	struct smq_sub_entry ea, eb;
	uint32_t pa = 0, pb = 0;
	bool ma, mb;

	for (;;) {
		ma = smq_list_next_sub(a, &pa, &ea);
		mb = smq_list_next_sub(b, &pb, &eb);
		if (!ma || !mb)
			return ma == mb;
		if (ea.opts != eb.opts || !smq_str_eq(ea.filter, eb.filter))
			return false;
	}
}

static bool filters_eq(const struct smq_packet *a, const struct smq_packet *b)
{
	struct smq_str fa, fb;
	uint32_t pa = 0, pb = 0;
	bool ma, mb;

	for (;;) {
		ma = smq_list_next_filter(a, &pa, &fa);
		mb = smq_list_next_filter(b, &pb, &fb);
		if (!ma || !mb)
			return ma == mb;
		if (!smq_str_eq(fa, fb))
			return false;
	}
}

/* Do the packet id and reason code of a packet of this type mean anything? */
static bool has_pid(const struct smq_packet *p)
{
	return (p->type >= SMQ_PUBACK && p->type <= SMQ_UNSUBACK) ||
	       (p->type == SMQ_PUBLISH && p->publish.qos);
}

static bool has_reason(const struct smq_packet *p)
{
	return p->type == SMQ_CONNACK ||
	       (p->version == SMQ_V5 && ((p->type >= SMQ_PUBACK && p->type <= SMQ_PUBCOMP) ||
					 p->type == SMQ_DISCONNECT || p->type == SMQ_AUTH));
}

static bool body_eq(const struct smq_packet *a, const struct smq_packet *b)
{
	switch (a->type) {
	case SMQ_CONNECT:
		return connect_eq(a, b);
	case SMQ_CONNACK:
		return a->connack.session_present == b->connack.session_present;
	case SMQ_PUBLISH:
		return a->publish.qos == b->publish.qos && a->publish.dup == b->publish.dup &&
		       a->publish.retain == b->publish.retain &&
		       smq_str_eq(a->publish.topic, b->publish.topic) &&
		       smq_str_eq(a->publish.payload, b->publish.payload);
	case SMQ_PUBREL:
		return a->version != SMQ_V31 || (a->flags & 8) == (b->flags & 8);
	case SMQ_SUBSCRIBE:
		return (a->version != SMQ_V31 || (a->flags & 8) == (b->flags & 8)) &&
		       subs_eq(a, b);
	case SMQ_UNSUBSCRIBE:
		return (a->version != SMQ_V31 || (a->flags & 8) == (b->flags & 8)) &&
		       filters_eq(a, b);
	case SMQ_SUBACK:
	case SMQ_UNSUBACK:
		return smq_str_eq(a->list.raw, b->list.raw);
	default:
		return true;
	}
}

bool smq_packet_equal(const struct smq_packet *a, const struct smq_packet *b)
{
	if (a->type != b->type || a->version != b->version)
		return false;
	if (has_pid(a) && a->packet_id != b->packet_id)
		return false;
	if (has_reason(a) && a->reason != b->reason)
		return false;
	if (a->version == SMQ_V5 && a->type != SMQ_PINGREQ && a->type != SMQ_PINGRESP &&
	    !smq_props_equal(&a->props, &b->props))
		return false;
	return body_eq(a, b);
}

/* ---- names for logs ------------------------------------------------------------ */

const char *smq_ptype_name(uint8_t type)
{
	static const char *const names[16] = {
		"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC",
		"PUBREL", "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK",
		"PINGREQ", "PINGRESP", "DISCONNECT", "AUTH",
	};

	return type < 16 ? names[type] : "UNKNOWN";
}

const char *smq_rc_name(uint8_t rc)
{
	static const char *const names[256] = {
		[0x00] = "SUCCESS", [0x01] = "GRANTED_QOS1", [0x02] = "GRANTED_QOS2",
		[0x04] = "DISCONNECT_WITH_WILL", [0x10] = "NO_MATCHING_SUBSCRIBERS",
		[0x11] = "NO_SUBSCRIPTION_EXISTED", [0x18] = "CONTINUE_AUTHENTICATION",
		[0x19] = "RE_AUTHENTICATE", [0x80] = "UNSPECIFIED_ERROR",
		[0x81] = "MALFORMED_PACKET", [0x82] = "PROTOCOL_ERROR",
		[0x83] = "IMPLEMENTATION_SPECIFIC_ERROR", [0x84] = "UNSUPPORTED_PROTOCOL_VERSION",
		[0x85] = "CLIENT_IDENTIFIER_NOT_VALID", [0x86] = "BAD_USER_NAME_OR_PASSWORD",
		[0x87] = "NOT_AUTHORIZED", [0x88] = "SERVER_UNAVAILABLE", [0x89] = "SERVER_BUSY",
		[0x8A] = "BANNED", [0x8B] = "SERVER_SHUTTING_DOWN",
		[0x8C] = "BAD_AUTHENTICATION_METHOD", [0x8D] = "KEEP_ALIVE_TIMEOUT",
		[0x8E] = "SESSION_TAKEN_OVER", [0x8F] = "TOPIC_FILTER_INVALID",
		[0x90] = "TOPIC_NAME_INVALID", [0x91] = "PACKET_IDENTIFIER_IN_USE",
		[0x92] = "PACKET_IDENTIFIER_NOT_FOUND", [0x93] = "RECEIVE_MAXIMUM_EXCEEDED",
		[0x94] = "TOPIC_ALIAS_INVALID", [0x95] = "PACKET_TOO_LARGE",
		[0x96] = "MESSAGE_RATE_TOO_HIGH", [0x97] = "QUOTA_EXCEEDED",
		[0x98] = "ADMINISTRATIVE_ACTION", [0x99] = "PAYLOAD_FORMAT_INVALID",
		[0x9A] = "RETAIN_NOT_SUPPORTED", [0x9B] = "QOS_NOT_SUPPORTED",
		[0x9C] = "USE_ANOTHER_SERVER", [0x9D] = "SERVER_MOVED",
		[0x9E] = "SHARED_SUBSCRIPTIONS_NOT_SUPPORTED",
		[0x9F] = "CONNECTION_RATE_EXCEEDED", [0xA0] = "MAXIMUM_CONNECT_TIME",
		[0xA1] = "SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED",
		[0xA2] = "WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED",
	};

	return names[rc] ? names[rc] : "UNKNOWN";
}
