/* codec.h - MQTT 3.1 / 3.1.1 / 5.0 control packet codec: the contract.
 *
 * Decoding is zero-copy: every string and binary field of a decoded packet is
 * a view (struct smq_str) into the bytes handed to the decoder. Views stay
 * valid as long as those bytes do; the caller decides how long that is.
 *
 * Errors: codec functions return 0 (or a positive count) on success and the
 * NEGATED MQTT 5 reason code on failure, e.g. -SMQ_RC_MALFORMED (-0x81). Every
 * reason code is >= 0x80, so a codec error is always <= -128 and never looks
 * like a length. These are not errno values; the broker sends the code (5.0)
 * or just closes (3.1/3.1.1).
 *
 * Nothing here allocates except struct smq_reader's reassembly buffer.
 * No threads, no I/O: every function is safe to call from any thread on
 * objects that thread owns.
 */
#ifndef SMQ_CODEC_H
#define SMQ_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Fixed-header packet types (byte 0 >> 4). */
enum smq_ptype {
	SMQ_CONNECT = 1,
	SMQ_CONNACK = 2,
	SMQ_PUBLISH = 3,
	SMQ_PUBACK = 4,
	SMQ_PUBREC = 5,
	SMQ_PUBREL = 6,
	SMQ_PUBCOMP = 7,
	SMQ_SUBSCRIBE = 8,
	SMQ_SUBACK = 9,
	SMQ_UNSUBSCRIBE = 10,
	SMQ_UNSUBACK = 11,
	SMQ_PINGREQ = 12,
	SMQ_PINGRESP = 13,
	SMQ_DISCONNECT = 14,
	SMQ_AUTH = 15,		/* 5.0 only */
};

/* Protocol levels as they appear in CONNECT. */
enum smq_version {
	SMQ_V31 = 3,		/* protocol name "MQIsdp" */
	SMQ_V311 = 4,		/* "MQTT" */
	SMQ_V5 = 5,		/* "MQTT" */
};

/* MQTT 5 reason codes (the subset with a name here is what the codec and
 * broker produce; the full table lives in reason.h). */
enum smq_rc {
	SMQ_RC_SUCCESS = 0x00,
	SMQ_RC_GRANTED_QOS1 = 0x01,
	SMQ_RC_GRANTED_QOS2 = 0x02,
	SMQ_RC_DISCONNECT_WITH_WILL = 0x04,
	SMQ_RC_NO_MATCHING_SUBSCRIBERS = 0x10,
	SMQ_RC_NO_SUBSCRIPTION_EXISTED = 0x11,
	SMQ_RC_CONTINUE_AUTH = 0x18,
	SMQ_RC_REAUTHENTICATE = 0x19,
	SMQ_RC_UNSPECIFIED = 0x80,
	SMQ_RC_MALFORMED = 0x81,
	SMQ_RC_PROTOCOL_ERROR = 0x82,
	SMQ_RC_IMPL_SPECIFIC = 0x83,
	SMQ_RC_UNSUPPORTED_VERSION = 0x84,
	SMQ_RC_CLIENT_ID_INVALID = 0x85,
	SMQ_RC_BAD_USER_OR_PASSWORD = 0x86,
	SMQ_RC_NOT_AUTHORIZED = 0x87,
	SMQ_RC_SERVER_UNAVAILABLE = 0x88,
	SMQ_RC_SERVER_BUSY = 0x89,
	SMQ_RC_BANNED = 0x8A,
	SMQ_RC_SERVER_SHUTTING_DOWN = 0x8B,
	SMQ_RC_BAD_AUTH_METHOD = 0x8C,
	SMQ_RC_KEEPALIVE_TIMEOUT = 0x8D,
	SMQ_RC_SESSION_TAKEN_OVER = 0x8E,
	SMQ_RC_TOPIC_FILTER_INVALID = 0x8F,
	SMQ_RC_TOPIC_NAME_INVALID = 0x90,
	SMQ_RC_PACKET_ID_IN_USE = 0x91,
	SMQ_RC_PACKET_ID_NOT_FOUND = 0x92,
	SMQ_RC_RECEIVE_MAX_EXCEEDED = 0x93,
	SMQ_RC_TOPIC_ALIAS_INVALID = 0x94,
	SMQ_RC_PACKET_TOO_LARGE = 0x95,
	SMQ_RC_MESSAGE_RATE_TOO_HIGH = 0x96,
	SMQ_RC_QUOTA_EXCEEDED = 0x97,
	SMQ_RC_ADMIN_ACTION = 0x98,
	SMQ_RC_PAYLOAD_FORMAT_INVALID = 0x99,
	SMQ_RC_RETAIN_NOT_SUPPORTED = 0x9A,
	SMQ_RC_QOS_NOT_SUPPORTED = 0x9B,
	SMQ_RC_USE_ANOTHER_SERVER = 0x9C,
	SMQ_RC_SERVER_MOVED = 0x9D,
	SMQ_RC_SHARED_SUB_NOT_SUPPORTED = 0x9E,
	SMQ_RC_CONNECTION_RATE_EXCEEDED = 0x9F,
	SMQ_RC_MAX_CONNECT_TIME = 0xA0,
	SMQ_RC_SUB_IDS_NOT_SUPPORTED = 0xA1,
	SMQ_RC_WILDCARD_SUBS_NOT_SUPPORTED = 0xA2,
};

/* 3.1 / 3.1.1 CONNACK return codes. */
enum smq_connack_v3 {
	SMQ_CONNACK_ACCEPTED = 0,
	SMQ_CONNACK_BAD_VERSION = 1,
	SMQ_CONNACK_ID_REJECTED = 2,
	SMQ_CONNACK_UNAVAILABLE = 3,
	SMQ_CONNACK_BAD_CREDENTIALS = 4,
	SMQ_CONNACK_NOT_AUTHORIZED = 5,
};

/* MQTT 5 property identifiers. */
enum smq_prop_id {
	SMQ_PROP_PAYLOAD_FORMAT = 0x01,
	SMQ_PROP_MESSAGE_EXPIRY = 0x02,
	SMQ_PROP_CONTENT_TYPE = 0x03,
	SMQ_PROP_RESPONSE_TOPIC = 0x08,
	SMQ_PROP_CORRELATION_DATA = 0x09,
	SMQ_PROP_SUBSCRIPTION_ID = 0x0B,
	SMQ_PROP_SESSION_EXPIRY = 0x11,
	SMQ_PROP_ASSIGNED_CLIENT_ID = 0x12,
	SMQ_PROP_SERVER_KEEP_ALIVE = 0x13,
	SMQ_PROP_AUTH_METHOD = 0x15,
	SMQ_PROP_AUTH_DATA = 0x16,
	SMQ_PROP_REQUEST_PROBLEM_INFO = 0x17,
	SMQ_PROP_WILL_DELAY = 0x18,
	SMQ_PROP_REQUEST_RESPONSE_INFO = 0x19,
	SMQ_PROP_RESPONSE_INFO = 0x1A,
	SMQ_PROP_SERVER_REFERENCE = 0x1C,
	SMQ_PROP_REASON_STRING = 0x1F,
	SMQ_PROP_RECEIVE_MAX = 0x21,
	SMQ_PROP_TOPIC_ALIAS_MAX = 0x22,
	SMQ_PROP_TOPIC_ALIAS = 0x23,
	SMQ_PROP_MAX_QOS = 0x24,
	SMQ_PROP_RETAIN_AVAILABLE = 0x25,
	SMQ_PROP_USER = 0x26,
	SMQ_PROP_MAX_PACKET_SIZE = 0x27,
	SMQ_PROP_WILDCARD_SUB_AVAILABLE = 0x28,
	SMQ_PROP_SUB_ID_AVAILABLE = 0x29,
	SMQ_PROP_SHARED_SUB_AVAILABLE = 0x2A,
};

/* "Where a property sits": the packet (or the will inside CONNECT) a
 * property list belongs to, for the allowed-property table. */
enum smq_prop_ctx {
	SMQ_PCTX_CONNECT = SMQ_CONNECT,
	SMQ_PCTX_CONNACK = SMQ_CONNACK,
	SMQ_PCTX_PUBLISH = SMQ_PUBLISH,
	SMQ_PCTX_PUBACK = SMQ_PUBACK,	/* also PUBREC, PUBREL, PUBCOMP */
	SMQ_PCTX_SUBSCRIBE = SMQ_SUBSCRIBE,
	SMQ_PCTX_SUBACK = SMQ_SUBACK,
	SMQ_PCTX_UNSUBSCRIBE = SMQ_UNSUBSCRIBE,
	SMQ_PCTX_UNSUBACK = SMQ_UNSUBACK,
	SMQ_PCTX_DISCONNECT = SMQ_DISCONNECT,
	SMQ_PCTX_AUTH = SMQ_AUTH,
	SMQ_PCTX_WILL = 16,
};

/* A view of bytes owned by someone else. Used for UTF-8 strings and binary
 * data alike; never NUL-terminated. len fits u16 for wire strings, u32 for
 * payloads and raw lists. p may be NULL only when len == 0. */
struct smq_str {
	const uint8_t *p;
	uint32_t len;
};

#define SMQ_STR(lit) ((struct smq_str){ (const uint8_t *)(lit), sizeof(lit) - 1 })

/* Are @len bytes at @a and @b equal? Inline, a word at a time: for the
 * short topics and levels of the publish path a memcmp call costs more
 * than the compare. */
static inline bool smq_bytes_eq(const uint8_t *a, const uint8_t *b, size_t len)
{
	uint64_t x, y;

	for (; len >= 8; a += 8, b += 8, len -= 8) {
		memcpy(&x, a, 8);
		memcpy(&y, b, 8);
		if (x != y)
			return false;
	}
	for (; len; len--)
		if (*a++ != *b++)
			return false;
	return true;
}

/* Bit index of a property in smq_props.present: 1ull << id. */
#define SMQ_HAS(props, id) (((props)->present >> (id)) & 1u)
#define SMQ_SET(props, id) ((props)->present |= 1ull << (id))

/* Decoded (or to-be-encoded) MQTT 5 properties. A field is meaningful only
 * when its bit is set in @present. User properties and subscription
 * identifiers may repeat, so they are kept as their raw encoded bytes
 * (exactly as on the wire, id byte included) and walked with the iterators
 * below; to encode them, build the raw bytes with smq_props_put_user() /
 * smq_props_put_sub_id() into your own buffer. */
struct smq_props {
	uint64_t present;
	uint8_t payload_format;
	uint8_t request_problem_info;
	uint8_t request_response_info;
	uint8_t max_qos;
	uint8_t retain_available;
	uint8_t wildcard_sub_available;
	uint8_t sub_id_available;
	uint8_t shared_sub_available;
	uint16_t server_keep_alive;
	uint16_t receive_max;
	uint16_t topic_alias_max;
	uint16_t topic_alias;
	uint32_t message_expiry;
	uint32_t session_expiry;
	uint32_t will_delay;
	uint32_t max_packet_size;
	uint32_t sub_id;	/* first subscription id; all of them are in sub_ids */
	struct smq_str content_type;
	struct smq_str response_topic;
	struct smq_str correlation_data;
	struct smq_str assigned_client_id;
	struct smq_str auth_method;
	struct smq_str auth_data;
	struct smq_str response_info;
	struct smq_str server_reference;
	struct smq_str reason_string;
	struct smq_str user;	/* raw: (0x26 key value)* */
	struct smq_str sub_ids;	/* raw: (0x0B varint)* ; present bit is SUBSCRIPTION_ID */
};

/* One SUBSCRIBE entry. opts = the subscription options byte:
 * bits 0-1 max QoS, bit 2 no local, bit 3 retain as published,
 * bits 4-5 retain handling (5.0). 3.1/3.1.1 use only bits 0-1. */
struct smq_sub_entry {
	struct smq_str filter;
	uint8_t opts;
};

#define SMQ_SUBOPT_QOS(o) ((o) & 3u)
#define SMQ_SUBOPT_NO_LOCAL 0x04u
#define SMQ_SUBOPT_RAP 0x08u
#define SMQ_SUBOPT_RH(o) (((o) >> 4) & 3u)

/* A control packet. Only the member of the union for @type is meaningful.
 *
 * Lists (SUBSCRIBE entries, UNSUBSCRIBE filters, SUBACK/UNSUBACK reason codes):
 *  - after decode, @raw views the packet's payload and @count is the number
 *    of entries; walk with smq_list_next_sub() / smq_list_next_filter();
 *    for SUBACK/UNSUBACK raw.p[i] is the i-th code.
 *  - to encode, either set @entries/@filters (count entries) or set @raw to
 *    an already-encoded payload. entries/filters win when non-NULL.
 */
struct smq_packet {
	uint8_t type;		/* enum smq_ptype */
	uint8_t flags;		/* low nibble of byte 0 */
	uint8_t version;	/* protocol level the packet was coded for */
	uint8_t reason;		/* 5.0 reason code of acks, DISCONNECT, AUTH;
				 * CONNACK: 5.0 reason or 3.x return code */
	uint16_t packet_id;
	struct smq_props props;
	union {
		struct {
			struct smq_str proto_name;
			uint8_t level;		/* 3, 4 or 5 as sent */
			bool clean;		/* clean session / clean start */
			bool will;
			uint8_t will_qos;
			bool will_retain;
			bool has_username;
			bool has_password;
			uint16_t keepalive;
			struct smq_str client_id;
			struct smq_props will_props;
			struct smq_str will_topic;
			struct smq_str will_payload;
			struct smq_str username;
			struct smq_str password;
		} connect;
		struct {
			bool session_present;
		} connack;
		struct {
			uint8_t qos;
			bool dup;
			bool retain;
			struct smq_str topic;
			struct smq_str payload;
		} publish;
		struct {
			struct smq_str raw;
			uint32_t count;
			const struct smq_sub_entry *entries;	/* SUBSCRIBE encode */
			const struct smq_str *filters;		/* UNSUBSCRIBE encode */
		} list;		/* SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK */
	};
};

/* ---- fixed header ----------------------------------------------------- */

/* Look at the start of a byte stream. On a complete fixed header returns 0
 * and sets *hdr_len (2..5) and *remaining. Returns 1 if more bytes are needed
 * to know. Fails with -SMQ_RC_MALFORMED for a remaining length longer than 4
 * bytes and -SMQ_RC_PACKET_TOO_LARGE when hdr_len + remaining > max_packet
 * (0 = the protocol maximum), so an oversize packet is refused before its
 * body arrives. Does not check flags or types. */
int smq_frame(const uint8_t *buf, size_t len, uint32_t max_packet,
	      uint32_t *hdr_len, uint32_t *remaining);

/* ---- decode ----------------------------------------------------------- */

/* Decode one complete packet (fixed header included) of exactly @len bytes,
 * as framed by smq_frame(). @version is the connection's protocol level;
 * 0 means "not yet known": then only CONNECT is accepted and it sets
 * pkt->version. Every validation rule of the spec for the direction-free
 * packet format is applied (flags, lengths, UTF-8, properties, packet ids,
 * QoS). Returns 0 or a negated reason code. Views point into @buf. */
int smq_decode(const uint8_t *buf, size_t len, uint8_t version,
	       struct smq_packet *pkt);

/* Incremental decoder over a byte stream: hand it bytes as they arrive,
 * take packets out. A packet that lies wholly inside the caller's input is
 * returned as views into that input (zero-copy); only a packet split across
 * inputs is copied, into the reader's own buffer.
 *
 * Usage:
 *	while ((ret = smq_reader_next(&r, &in, &inlen, &pkt)) == 1)
 *		handle(&pkt);      // views valid until the next call
 *	if (ret < 0) close_with(-ret);
 *	// ret == 0: all of in consumed, wait for more bytes
 */
struct smq_reader {
	uint8_t *buf;		/* partial packet, owned */
	uint32_t len;
	uint32_t cap;
	uint32_t need;		/* total size of the partial packet, 0 = unknown */
	uint32_t max_packet;	/* 0 = protocol maximum (268435460) */
	uint8_t version;	/* 0 until a CONNECT has been decoded */
};

void smq_reader_init(struct smq_reader *r, uint32_t max_packet, uint8_t version);
void smq_reader_fini(struct smq_reader *r);

/* Returns 1 and fills *pkt (advancing *in / *inlen past what it used),
 * 0 when the input is used up without completing a packet, or a negated
 * reason code (the stream is then unusable). A decoded CONNECT sets
 * r->version. */
int smq_reader_next(struct smq_reader *r, const uint8_t **in, size_t *inlen,
		    struct smq_packet *pkt);

/* Walk a decoded SUBSCRIBE list: *pos starts at 0. Returns true and fills
 * *e while entries remain. (For 3.x the opts byte holds just the QoS.) */
bool smq_list_next_sub(const struct smq_packet *pkt, uint32_t *pos,
		       struct smq_sub_entry *e);
/* Walk a decoded UNSUBSCRIBE list. */
bool smq_list_next_filter(const struct smq_packet *pkt, uint32_t *pos,
			  struct smq_str *filter);

/* Walk raw user properties: *pos starts at 0. */
bool smq_props_next_user(const struct smq_props *props, uint32_t *pos,
			 struct smq_str *key, struct smq_str *val);
/* Walk raw subscription identifiers. */
bool smq_props_next_sub_id(const struct smq_props *props, uint32_t *pos,
			   uint32_t *id);

/* ---- encode ----------------------------------------------------------- */

/* Exact encoded size of @pkt for pkt->version (fixed header included), or a
 * negated reason code if the packet cannot be encoded (e.g. a field too
 * long for its wire type). */
long smq_encoded_size(const struct smq_packet *pkt);

/* Encode @pkt into @out (capacity @cap). Returns the number of bytes written
 * (always the shortest remaining-length form), -SMQ_RC_PACKET_TOO_LARGE if
 * cap is too small, or another negated reason code for an unencodable
 * packet. The encoder trusts the caller for semantic rules; it only refuses
 * what cannot be represented. */
long smq_encode(const struct smq_packet *pkt, uint8_t *out, size_t cap);

/* Append one user property / subscription id in raw property form to a
 * caller buffer; returns bytes written or -SMQ_RC_PACKET_TOO_LARGE. */
long smq_props_put_user(uint8_t *out, size_t cap, struct smq_str key,
			struct smq_str val);
long smq_props_put_sub_id(uint8_t *out, size_t cap, uint32_t id);

/* ---- primitives shared with the broker's fast paths ------------------- */

/* Variable byte integer: encode returns bytes (1..4), decode returns bytes
 * used, 0 if more input is needed, or -SMQ_RC_MALFORMED. Size and encode
 * are inline (below): every outbound PUBLISH uses them. */
static inline int smq_varint_put(uint8_t *out, uint32_t v);
int smq_varint_get(const uint8_t *buf, size_t len, uint32_t *v);
static inline int smq_varint_size(uint32_t v);

/* Well-formed UTF-8 per [MQTT-1.5.4-1..3]: no surrogates, no U+0000,
 * no overlongs. Does not reject the discouraged control characters. */
bool smq_utf8_valid(const uint8_t *p, size_t len);

/* smq_utf8_valid() and free of the control characters U+0001..U+001F and
 * U+007F..U+009F, which [MQTT-1.5.4-3] (3.1.1 [MQTT-1.5.3-3]) lets a
 * receiver refuse. The codec applies it to the names that identify things
 * and end up in logs and tries: topic names, topic filters, client
 * identifiers, user names and will topics (not payloads or properties). */
bool smq_utf8_valid_name(const uint8_t *p, size_t len);

/* Does MQTT 5.0 define reason code @rc for packet @type (section 2.4)? A
 * codec error is not always a valid DISCONNECT code (0x84 is CONNACK-only),
 * so senders check before putting one in a DISCONNECT. */
bool smq_rc_valid(uint8_t type, uint8_t rc);

/* Human-readable names for logs. Never NULL. */
const char *smq_ptype_name(uint8_t type);
const char *smq_rc_name(uint8_t rc);

#define SMQ_MAX_REMAINING 268435455u
#define SMQ_MAX_PACKET (SMQ_MAX_REMAINING + 5u)

static inline int smq_varint_size(uint32_t v)
{
	if (v < 128u)
		return 1;
	if (v < 16384u)
		return 2;
	if (v < 2097152u)
		return 3;
	return v <= SMQ_MAX_REMAINING ? 4 : -SMQ_RC_MALFORMED;
}

static inline int smq_varint_put(uint8_t *out, uint32_t v)
{
	int n = 0;

	if (v > SMQ_MAX_REMAINING)
		return -SMQ_RC_MALFORMED;
	do {
		uint8_t b = v & 0x7f;

		v >>= 7;
		out[n++] = (uint8_t)(b | (v ? 0x80 : 0));
	} while (v);
	return n;
}

/* ---- additions (codec.c) ------------------------------------------------ */

/* Notes on the contract above, as implemented:
 *  - Raw repeated properties (smq_props.user, .sub_ids): the decoder's view
 *    spans from the first to the last occurrence, so when a sender put other
 *    properties in between (legal: order has no meaning), the view holds
 *    those too. Walk it with the iterators; copy it with smq_props_put_raw(),
 *    never with a plain memcpy of .len bytes. The encoder filters the same way.
 *  - smq_decode() on a CONNECT with an unknown protocol name or level returns
 *    -SMQ_RC_UNSUPPORTED_VERSION with pkt->type, connect.proto_name and
 *    connect.level filled in, so the broker can pick the CONNACK format.
 *  - The encoder writes the protocol name and level from pkt->version (not
 *    from connect.proto_name/level), byte 0's flags from the type (PUBLISH:
 *    from publish.dup/qos/retain; 3.1 PUBREL/SUBSCRIBE/UNSUBSCRIBE keep the
 *    DUP bit of pkt->flags), and in 5.0 the shortest ack/DISCONNECT/AUTH form.
 *    It returns -SMQ_RC_UNSUPPORTED_VERSION for a version other than 3, 4, 5
 *    and -SMQ_RC_MALFORMED for what cannot be represented: a string over
 *    65535 bytes, QoS 3, a remaining length over SMQ_MAX_REMAINING, a
 *    property not valid for the packet, AUTH before 5.0, unparsable raw
 *    properties.
 *  - A subscription id with an empty sub_ids view is encoded from sub_id. */

/* Append the properties with identifier @id found in the raw view @raw
 * (smq_props.user or .sub_ids) to @out; returns bytes written,
 * -SMQ_RC_PACKET_TOO_LARGE if @cap is too small, -SMQ_RC_MALFORMED if @raw
 * does not parse. With @out NULL just returns the size. */
long smq_props_put_raw(uint8_t *out, size_t cap, struct smq_str raw, uint8_t id);

/* Do @a and @b describe the same packet? Compares what is meaningful for the
 * type and version by content (views may point anywhere; a list given as
 * entries/filters equals the same list as raw bytes); ignores fields the
 * encoder derives (flags except 3.1's DUP, proto_name, level). */
bool smq_packet_equal(const struct smq_packet *a, const struct smq_packet *b);

#endif
