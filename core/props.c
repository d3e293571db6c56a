/* props.c - MQTT 5 properties: the table, decoding, encoding, comparing.
 *
 * What it implements: smq_props_read/size/write/equal (props.h) for
 * codec.c, and the public iterators and smq_props_put_* (codec.h).
 * prop_tab[] is 5.0 table 2-4: per identifier, the wire type, the field in
 * struct smq_props and the contexts (packets, or the will) it may appear in.
 *
 * Invariant: a property list smq_props_read() accepts has only known
 * identifiers valid in its context, each once except User Property (and
 * Subscription Identifier in PUBLISH), with values in range; the raw views
 * of the repeatable ones span first to last occurrence (codec.h says why
 * they may hold other properties in between).
 *
 * Left to others: the packet around the list (codec.c), and every rule that
 * needs state: Topic Alias above the maximum, Subscription Identifier in a
 * client's PUBLISH, Session Expiry changes in DISCONNECT, and the like.
 */
#include "core/props.h"

_Static_assert(sizeof(struct smq_props) < 256, "prop_tab stores field offsets in a byte");
_Static_assert(SMQ_PCTX_WILL < 32, "context masks are 32 bits");

enum pkind { PK_NONE, PK_BYTE, PK_U16, PK_U32, PK_VARINT, PK_UTF8, PK_BIN, PK_PAIR };

struct prop_info {
	uint8_t kind;		/* enum pkind */
	uint8_t off;		/* offsetof the field in struct smq_props */
	uint32_t ctx;		/* bit (1 << enum smq_prop_ctx) per place it may appear */
};

#define CTX(c) (1u << SMQ_PCTX_##c)
#define OFF(f) ((uint8_t)offsetof(struct smq_props, f))
#define PUB_WILL (CTX(PUBLISH) | CTX(WILL))
#define REASON_CTX (CTX(CONNACK) | CTX(PUBACK) | CTX(SUBACK) | CTX(UNSUBACK) | \
		    CTX(DISCONNECT) | CTX(AUTH))
#define ALL_CTX (REASON_CTX | CTX(CONNECT) | PUB_WILL | CTX(SUBSCRIBE) | CTX(UNSUBSCRIBE))
#define NPROPS (SMQ_PROP_SHARED_SUB_AVAILABLE + 1)

/* MQTT 5.0 section 2.2.2.2, table 2-4. */
static const struct prop_info prop_tab[NPROPS] = {
	[SMQ_PROP_PAYLOAD_FORMAT] = { PK_BYTE, OFF(payload_format), PUB_WILL },
	[SMQ_PROP_MESSAGE_EXPIRY] = { PK_U32, OFF(message_expiry), PUB_WILL },
	[SMQ_PROP_CONTENT_TYPE] = { PK_UTF8, OFF(content_type), PUB_WILL },
	[SMQ_PROP_RESPONSE_TOPIC] = { PK_UTF8, OFF(response_topic), PUB_WILL },
	[SMQ_PROP_CORRELATION_DATA] = { PK_BIN, OFF(correlation_data), PUB_WILL },
	[SMQ_PROP_SUBSCRIPTION_ID] = { PK_VARINT, OFF(sub_id), CTX(PUBLISH) | CTX(SUBSCRIBE) },
	[SMQ_PROP_SESSION_EXPIRY] = { PK_U32, OFF(session_expiry),
				      CTX(CONNECT) | CTX(CONNACK) | CTX(DISCONNECT) },
	[SMQ_PROP_ASSIGNED_CLIENT_ID] = { PK_UTF8, OFF(assigned_client_id), CTX(CONNACK) },
	[SMQ_PROP_SERVER_KEEP_ALIVE] = { PK_U16, OFF(server_keep_alive), CTX(CONNACK) },
	[SMQ_PROP_AUTH_METHOD] = { PK_UTF8, OFF(auth_method),
				   CTX(CONNECT) | CTX(CONNACK) | CTX(AUTH) },
	[SMQ_PROP_AUTH_DATA] = { PK_BIN, OFF(auth_data), CTX(CONNECT) | CTX(CONNACK) | CTX(AUTH) },
	[SMQ_PROP_REQUEST_PROBLEM_INFO] = { PK_BYTE, OFF(request_problem_info), CTX(CONNECT) },
	[SMQ_PROP_WILL_DELAY] = { PK_U32, OFF(will_delay), CTX(WILL) },
	[SMQ_PROP_REQUEST_RESPONSE_INFO] = { PK_BYTE, OFF(request_response_info), CTX(CONNECT) },
	[SMQ_PROP_RESPONSE_INFO] = { PK_UTF8, OFF(response_info), CTX(CONNACK) },
	[SMQ_PROP_SERVER_REFERENCE] = { PK_UTF8, OFF(server_reference),
					CTX(CONNACK) | CTX(DISCONNECT) },
	[SMQ_PROP_REASON_STRING] = { PK_UTF8, OFF(reason_string), REASON_CTX },
	[SMQ_PROP_RECEIVE_MAX] = { PK_U16, OFF(receive_max), CTX(CONNECT) | CTX(CONNACK) },
	[SMQ_PROP_TOPIC_ALIAS_MAX] = { PK_U16, OFF(topic_alias_max), CTX(CONNECT) | CTX(CONNACK) },
	[SMQ_PROP_TOPIC_ALIAS] = { PK_U16, OFF(topic_alias), CTX(PUBLISH) },
	[SMQ_PROP_MAX_QOS] = { PK_BYTE, OFF(max_qos), CTX(CONNACK) },
	[SMQ_PROP_RETAIN_AVAILABLE] = { PK_BYTE, OFF(retain_available), CTX(CONNACK) },
	[SMQ_PROP_USER] = { PK_PAIR, OFF(user), ALL_CTX },
	[SMQ_PROP_MAX_PACKET_SIZE] = { PK_U32, OFF(max_packet_size), CTX(CONNECT) | CTX(CONNACK) },
	[SMQ_PROP_WILDCARD_SUB_AVAILABLE] = { PK_BYTE, OFF(wildcard_sub_available), CTX(CONNACK) },
	[SMQ_PROP_SUB_ID_AVAILABLE] = { PK_BYTE, OFF(sub_id_available), CTX(CONNACK) },
	[SMQ_PROP_SHARED_SUB_AVAILABLE] = { PK_BYTE, OFF(shared_sub_available), CTX(CONNACK) },
};

static inline const struct prop_info *prop_get(uint32_t id)
{
	return id < NPROPS && prop_tab[id].kind != PK_NONE ? &prop_tab[id] : NULL;
}

/* Field pointers into struct smq_props, typed by the table's kind. */
#define FIELD(pr, pi, T) ((T *)(void *)((char *)(pr) + (pi)->off))
#define CFIELD(pr, pi, T) ((const T *)(const void *)((const char *)(pr) + (pi)->off))

/* Size (id byte included) of the well-formed property at p, or 0 if it does
 * not fit before @end or its identifier is unknown. */
static uint32_t prop_len(const uint8_t *p, const uint8_t *end)
{
	const struct prop_info *pi;
	size_t left, n, m;
	uint32_t v;
	int k;

	if (p >= end || !(pi = prop_get(*p)))
		return 0;
	left = (size_t)(end - p) - 1;
	p++;
	switch (pi->kind) {
	case PK_BYTE:
		n = 1;
		break;
	case PK_U16:
		n = 2;
		break;
	case PK_U32:
		n = 4;
		break;
	case PK_VARINT:
		k = smq_varint_get(p, left, &v);
		n = k > 0 ? (size_t)k : left + 1;
		break;
	case PK_PAIR:
		if (left < 2)
			return 0;
		m = 2u + smq_be16(p);
		if (left < m + 2)
			return 0;
		n = m + 2u + smq_be16(p + m);
		break;
	default:	/* PK_UTF8, PK_BIN */
		n = left < 2 ? left + 1 : 2u + smq_be16(p);
		break;
	}
	return n <= left ? (uint32_t)(n + 1) : 0;
}

/* Walk the raw property bytes @raw, keeping those with identifier @id:
 * copy them to @out unless it is NULL, return their total size, or
 * -SMQ_RC_MALFORMED if @raw does not parse. A decoded raw view may hold
 * other properties between the repeated ones (see codec.h). */
static long raw_filter(struct smq_str raw, uint8_t id, uint8_t *out)
{
	const uint8_t *p = raw.p, *end = raw.p + raw.len;
	long total = 0;
	uint32_t n;

	while (p < end) {
		n = prop_len(p, end);
		if (!n)
			return -SMQ_RC_MALFORMED;
		if (*p == id) {
			if (out)
				memcpy(out + total, p, n);
			total += n;
		}
		p += n;
	}
	return total;
}

/* Advance *pos in @raw to just after the next property @id; set *at to it. */
static bool raw_next(struct smq_str raw, uint32_t *pos, uint8_t id, const uint8_t **at)
{
	const uint8_t *end = raw.p + raw.len;
	uint32_t n;

	while (*pos < raw.len) {
		n = prop_len(raw.p + *pos, end);
		if (!n)
			return false;
		*pos += n;
		if (raw.p[*pos - n] == id) {
			*at = raw.p + *pos - n;
			return true;
		}
	}
	return false;
}

bool smq_props_next_user(const struct smq_props *props, uint32_t *pos, struct smq_str *key,
			 struct smq_str *val)
{
	const uint8_t *at;

	if (!SMQ_HAS(props, SMQ_PROP_USER) || !raw_next(props->user, pos, SMQ_PROP_USER, &at))
		return false;
	key->len = smq_be16(at + 1);
	key->p = at + 3;
	val->len = smq_be16(at + 3 + key->len);
	val->p = at + 5 + key->len;
	return true;
}

bool smq_props_next_sub_id(const struct smq_props *props, uint32_t *pos, uint32_t *id)
{
	const uint8_t *at;

	if (!SMQ_HAS(props, SMQ_PROP_SUBSCRIPTION_ID))
		return false;
	if (!props->sub_ids.len) {	/* built for encode: just sub_id */
		if (*pos)
			return false;
		*pos = 1;
		*id = props->sub_id;
		return true;
	}
	if (!raw_next(props->sub_ids, pos, SMQ_PROP_SUBSCRIPTION_ID, &at))
		return false;
	return smq_varint_get(at + 1, (size_t)(props->sub_ids.p + *pos - at - 1), id) > 0;
}

long smq_props_put_user(uint8_t *out, size_t cap, struct smq_str key, struct smq_str val)
{
	size_t n = 5u + key.len + val.len;

	if (key.len > 0xffff || val.len > 0xffff)
		return -SMQ_RC_MALFORMED;
	if (n > cap)
		return -SMQ_RC_PACKET_TOO_LARGE;
	out[0] = SMQ_PROP_USER;
	out[1] = (uint8_t)(key.len >> 8);
	out[2] = (uint8_t)key.len;
	if (key.len)
		memcpy(out + 3, key.p, key.len);
	out[3 + key.len] = (uint8_t)(val.len >> 8);
	out[4 + key.len] = (uint8_t)val.len;
	if (val.len)
		memcpy(out + 5 + key.len, val.p, val.len);
	return (long)n;
}

long smq_props_put_sub_id(uint8_t *out, size_t cap, uint32_t id)
{
	int n = smq_varint_size(id);

	if (n < 0)
		return n;
	if ((size_t)n + 1 > cap)
		return -SMQ_RC_PACKET_TOO_LARGE;
	out[0] = SMQ_PROP_SUBSCRIPTION_ID;
	return 1 + smq_varint_put(out + 1, id);
}

long smq_props_put_raw(uint8_t *out, size_t cap, struct smq_str raw, uint8_t id)
{
	long n = raw_filter(raw, id, NULL);

	if (n < 0 || !out)
		return n;
	if ((size_t)n > cap)
		return -SMQ_RC_PACKET_TOO_LARGE;
	return raw_filter(raw, id, out);
}

/* ---- decoding ---------------------------------------------------------------- */

/* Range rules for numeric property values (5.0 section 3.x.2.x texts). */
static int prop_value_ok(uint8_t id, uint8_t kind, uint32_t v)
{
	if (kind == PK_BYTE)
		return v <= 1 ? 0 : -SMQ_RC_PROTOCOL_ERROR;	/* "other than 0 or 1" */
	switch (id) {
	case SMQ_PROP_RECEIVE_MAX:
	case SMQ_PROP_MAX_PACKET_SIZE:
	case SMQ_PROP_SUBSCRIPTION_ID:
		return v ? 0 : -SMQ_RC_PROTOCOL_ERROR;
	case SMQ_PROP_TOPIC_ALIAS:
		return v ? 0 : -SMQ_RC_TOPIC_ALIAS_INVALID;	/* [MQTT-3.3.2-8] */
	default:
		return 0;
	}
}

/* Extend a raw view over a repeated property so that it ends at r->p. */
static inline void raw_extend(struct smq_str *raw, const uint8_t *start, const uint8_t *now,
			      bool first)
{
	if (first)
		raw->p = start;
	raw->len = (uint32_t)(now - raw->p);
}

/* Read the value of property @id (its identifier byte at @start, already
 * consumed) into @pr. */
static int rd_prop_value(struct smq_rd *r, const struct prop_info *pi, uint8_t id,
			 struct smq_props *pr, const uint8_t *start)
{
	bool first = !SMQ_HAS(pr, id);
	struct smq_str k, s;
	uint32_t v = 0;
	uint16_t v16 = 0;
	uint8_t v8 = 0;
	int ret;

	switch (pi->kind) {
	case PK_BYTE:
		ret = smq_rd_u8(r, &v8);
		v = v8;
		*FIELD(pr, pi, uint8_t) = v8;
		break;
	case PK_U16:
		ret = smq_rd_u16(r, &v16);
		v = v16;
		*FIELD(pr, pi, uint16_t) = v16;
		break;
	case PK_U32:
		ret = smq_rd_u32(r, &v);
		*FIELD(pr, pi, uint32_t) = v;
		break;
	case PK_VARINT:
		ret = smq_rd_varint(r, &v);
		if (first)
			pr->sub_id = v;
		raw_extend(&pr->sub_ids, start, r->p, first);
		break;
	case PK_UTF8:
		ret = smq_rd_utf8(r, FIELD(pr, pi, struct smq_str));
		break;
	case PK_BIN:
		ret = smq_rd_bin(r, FIELD(pr, pi, struct smq_str));
		break;
	default:	/* PK_PAIR */
		ret = smq_rd_utf8(r, &k);
		if (!ret)
			ret = smq_rd_utf8(r, &s);
		raw_extend(&pr->user, start, r->p, first);
		break;
	}
	return ret ? ret : prop_value_ok(id, pi->kind, v);
}

/* Property length, then the properties of context @ctx, into @pr. */
int smq_props_read(struct smq_rd *r, uint8_t ctx, struct smq_props *pr)
{
	struct smq_rd pr_r;
	uint32_t plen;
	int ret;

	pr->present = 0;
	ret = smq_rd_varint(r, &plen);
	if (ret)
		return ret;
	if (plen > smq_rd_left(r))
		return -SMQ_RC_MALFORMED;
	pr_r.p = r->p;
	pr_r.end = r->p + plen;
	r->p += plen;
	while (pr_r.p < pr_r.end) {
		const uint8_t *start = pr_r.p;
		uint8_t id = *pr_r.p++;
		const struct prop_info *pi = prop_get(id);

		/* unknown, or not valid for this packet: 5.0 section 2.2.2.2 */
		if (!pi || !(pi->ctx & (1u << ctx)))
			return -SMQ_RC_MALFORMED;
		/* only User Property, and Subscription Identifier in PUBLISH, repeat */
		if (SMQ_HAS(pr, id) && id != SMQ_PROP_USER &&
		    (id != SMQ_PROP_SUBSCRIPTION_ID || ctx != SMQ_PCTX_PUBLISH))
			return -SMQ_RC_PROTOCOL_ERROR;
		ret = rd_prop_value(&pr_r, pi, id, pr, start);
		if (ret)
			return ret;
		SMQ_SET(pr, id);
	}
	return 0;
}

/* ---- encoding ---------------------------------------------------------------- */

static long prop_size(const struct smq_props *pr, const struct prop_info *pi, uint8_t id)
{
	const struct smq_str *s;
	int n;

	switch (pi->kind) {
	case PK_BYTE:
		return 2;
	case PK_U16:
		return 3;
	case PK_U32:
		return 5;
	case PK_VARINT:
		if (pr->sub_ids.len)
			return raw_filter(pr->sub_ids, id, NULL);
		n = smq_varint_size(pr->sub_id);
		return n < 0 ? n : 1 + n;
	case PK_PAIR:
		return raw_filter(pr->user, id, NULL);
	default:
		s = CFIELD(pr, pi, struct smq_str);
		return s->len > 0xffff ? -SMQ_RC_MALFORMED : 3L + s->len;
	}
}

/* Size of the properties of @pr; a property not valid in @ctx cannot be
 * sent, so it is refused rather than written. */
long smq_props_size(const struct smq_props *pr, uint8_t ctx)
{
	uint64_t bits = pr->present, total = 0;
	const struct prop_info *pi;
	uint8_t id;
	long n;

	while (bits) {
		id = (uint8_t)__builtin_ctzll(bits);
		bits &= bits - 1;
		pi = prop_get(id);
		if (!pi || !(pi->ctx & (1u << ctx)))
			return -SMQ_RC_MALFORMED;
		n = prop_size(pr, pi, id);
		if (n < 0)
			return n;
		total += (uint64_t)n;
	}
	return total <= SMQ_MAX_REMAINING ? (long)total : -SMQ_RC_MALFORMED;
}

static uint8_t *put_prop(uint8_t *p, const struct smq_props *pr, const struct prop_info *pi,
			 uint8_t id)
{
	if (pi->kind == PK_PAIR)
		return p + raw_filter(pr->user, id, p);
	if (pi->kind == PK_VARINT && pr->sub_ids.len)
		return p + raw_filter(pr->sub_ids, id, p);
	*p++ = id;
	switch (pi->kind) {
	case PK_BYTE:
		*p = *CFIELD(pr, pi, uint8_t);
		return p + 1;
	case PK_U16:
		return smq_put_u16(p, *CFIELD(pr, pi, uint16_t));
	case PK_U32:
		return smq_put_u32(p, *CFIELD(pr, pi, uint32_t));
	case PK_VARINT:
		return p + smq_varint_put(p, pr->sub_id);
	default:
		return smq_put_str(p, *CFIELD(pr, pi, struct smq_str));
	}
}

/* Properties in identifier order, after their length @plen. */
uint8_t *smq_props_write(uint8_t *p, const struct smq_props *pr, uint32_t plen)
{
	uint64_t bits = pr->present;
	uint8_t id;

	p += smq_varint_put(p, plen);
	while (bits) {
		id = (uint8_t)__builtin_ctzll(bits);
		bits &= bits - 1;
		p = put_prop(p, pr, prop_get(id), id);
	}
	return p;
}

/* ---- equality ---------------------------------------------------------------- */

static bool users_eq(const struct smq_props *a, const struct smq_props *b)
{
	struct smq_str ka, va, kb, vb;
	uint32_t pa = 0, pb = 0;
	bool ma, mb;

	for (;;) {
		ma = smq_props_next_user(a, &pa, &ka, &va);
		mb = smq_props_next_user(b, &pb, &kb, &vb);
		if (!ma || !mb)
			return ma == mb;
		if (!smq_str_eq(ka, kb) || !smq_str_eq(va, vb))
			return false;
	}
}

static bool sub_ids_eq(const struct smq_props *a, const struct smq_props *b)
{
	uint32_t pa = 0, pb = 0, ia, ib;
	bool ma, mb;

	for (;;) {
		ma = smq_props_next_sub_id(a, &pa, &ia);
		mb = smq_props_next_sub_id(b, &pb, &ib);
		if (!ma || !mb)
			return ma == mb;
		if (ia != ib)
			return false;
	}
}

static bool prop_eq(const struct smq_props *a, const struct smq_props *b,
		    const struct prop_info *pi)
{
	switch (pi->kind) {
	case PK_BYTE:
		return *CFIELD(a, pi, uint8_t) == *CFIELD(b, pi, uint8_t);
	case PK_U16:
		return *CFIELD(a, pi, uint16_t) == *CFIELD(b, pi, uint16_t);
	case PK_U32:
		return *CFIELD(a, pi, uint32_t) == *CFIELD(b, pi, uint32_t);
	case PK_VARINT:
		return sub_ids_eq(a, b);
	case PK_PAIR:
		return users_eq(a, b);
	default:
		return smq_str_eq(*CFIELD(a, pi, struct smq_str), *CFIELD(b, pi, struct smq_str));
	}
}

bool smq_props_equal(const struct smq_props *a, const struct smq_props *b)
{
	uint64_t bits = a->present;
	const struct prop_info *pi;
	uint8_t id;

	if (a->present != b->present)
		return false;
	while (bits) {
		id = (uint8_t)__builtin_ctzll(bits);
		bits &= bits - 1;
		pi = prop_get(id);
		if (!pi || !prop_eq(a, b, pi))
			return false;
	}
	return true;
}
