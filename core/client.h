/* client.h - MQTT 3.1 / 3.1.1 / 5.0 client protocol core, without I/O.
 *
 * A struct smq_client is one client's protocol state: connection state,
 * outgoing QoS 1/2 window, incoming QoS 2 ids, keepalive timer. It does no
 * I/O and reads no clock. The caller moves bytes and time in and out:
 *
 *	c = smq_client_new(&opts);
 *	smq_client_connect(c, now);                  // queues CONNECT
 *	loop:
 *		smq_client_out(c, &p, &n);           // bytes to write
 *		n = write(fd, p, n); smq_client_out_consumed(c, n);
 *		n = read(fd, buf, sizeof buf);
 *		smq_client_feed(c, buf, n, now);     // acks are queued here
 *		while (smq_client_next_event(c, &ev)) handle(&ev);
 *		smq_client_tick(c, now);             // PINGREQ when due
 *		sleep until input, or smq_client_next_deadline(c)
 *
 * net/clientio.h is a small poll() driver built on this.
 *
 * Errors: actions return 0 (or a packet id) on success, a negative errno for
 * local conditions (-EINVAL, -ENOMEM, -EAGAIN, -ENOTCONN, -ETIMEDOUT...) and
 * a negated MQTT 5 reason code (<= -128, see core/codec.h) for protocol
 * failures, whatever the protocol version. Whatever ends a connection moves
 * the client to SMQ_CLIENT_CLOSED, is remembered (smq_client_error()) and
 * queues one last event: DISCONNECT when the server sent one (5.0), ERROR
 * otherwise (a refused CONNACK gives its CONNACK event, then ERROR). Our own
 * smq_client_disconnect() queues no event and leaves the error at 0.
 *
 * Memory: events, and the input bytes they point into, are kept until they
 * are taken; a caller must drain them. Everything else is bounded by the
 * options (window, output bound, maximum packet size).
 *
 * Threads: none. A client belongs to one thread at a time.
 */
#ifndef SMQ_CLIENT_H
#define SMQ_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/codec.h"

/* Defaults used when the matching option is 0. */
#define SMQ_CLIENT_DEFAULT_INFLIGHT 20u		/* outgoing QoS 1/2 window */
#define SMQ_CLIENT_DEFAULT_OUT_MAX (4u << 20)	/* output buffer bound, bytes */

struct smq_client;

/* The will message. All pointers are copied by smq_client_new(). */
struct smq_client_will {
	const char *topic;		/* NUL-terminated, valid topic name */
	struct smq_str payload;
	uint8_t qos;
	bool retain;
	const struct smq_props *props;	/* 5.0 will properties or NULL; the
					 * user and binary views are copied */
};

/* Connection options. Everything is copied by smq_client_new(); the caller
 * may free its copies afterwards. Zero-initialise and set what you need. */
struct smq_client_opts {
	uint8_t version;		/* SMQ_V31, SMQ_V311 or SMQ_V5 (0 = SMQ_V311) */
	const char *client_id;		/* NULL or "" = empty (server assigns) */
	bool clean;			/* clean session (3.x) / clean start (5.0) */
	uint16_t keepalive;		/* seconds, 0 = no keepalive */
	const char *username;		/* NULL = none */
	const struct smq_str *password;	/* NULL = none (binary allowed) */
	const struct smq_client_will *will;	/* NULL = no will */
	uint32_t session_expiry;	/* 5.0: seconds, 0xFFFFFFFF = never */
	uint16_t receive_max;		/* 5.0: announced to the server, 0 = 65535 */
	uint32_t max_packet_size;	/* largest packet we accept, 0 = protocol max
					 * (announced in 5.0 CONNECT) */
	uint16_t max_inflight;		/* our QoS 1/2 window, 0 = default; 5.0 also
					 * caps it at the server's Receive Maximum */
	uint32_t max_out_bytes;		/* publish gets -EAGAIN while more than this
					 * waits in the output buffer, 0 = default */
	const struct smq_props *connect_props;	/* 5.0 CONNECT properties or NULL
					 * (ignored before 5.0; views copied); the
					 * fields above win over the same ones here */
};

/* A packet just queued for output (@sent) or just decoded from input, for
 * debug logs. @pkt and its views are valid during the call only. */
typedef void (*smq_client_trace_fn)(void *arg, bool sent, const struct smq_packet *pkt);

enum smq_client_state {
	SMQ_CLIENT_IDLE = 0,		/* no connection: new, or after reset */
	SMQ_CLIENT_CONNECTING,		/* CONNECT queued, waiting for CONNACK */
	SMQ_CLIENT_CONNECTED,		/* CONNACK accepted */
	SMQ_CLIENT_CLOSED,		/* DISCONNECT sent or received, refused, or
					 * failed: flush output, close the socket,
					 * then smq_client_reset_connection() */
};

enum smq_client_event_type {
	SMQ_CLIENT_EV_CONNACK = 1,	/* reason, session_present, props */
	SMQ_CLIENT_EV_MESSAGE,		/* msg, packet_id (QoS > 0), props */
	SMQ_CLIENT_EV_PUBLISH_DONE,	/* packet_id (0 for QoS 0), reason */
	SMQ_CLIENT_EV_SUBACK,		/* packet_id, codes, props */
	SMQ_CLIENT_EV_UNSUBACK,		/* packet_id, codes (5.0), props */
	SMQ_CLIENT_EV_PINGRESP,
	SMQ_CLIENT_EV_DISCONNECT,	/* from the server (5.0): reason, props */
	SMQ_CLIENT_EV_ERROR,		/* error, text: the connection is over */
};

/* For smq_client_take_event(): a set of event types. */
#define SMQ_CLIENT_EVMASK(type) (1u << (type))
#define SMQ_CLIENT_EVMASK_ALL 0xFFFFFFFFu

/* An event. Only the fields listed for its type are meaningful.
 *
 * Views (msg.topic, msg.payload, codes, every view inside props) point into
 * the client's own buffers and stay valid until the next call of
 * smq_client_feed(), smq_client_next_event(), smq_client_take_event(),
 * smq_client_reset_connection() or smq_client_free() on the same client. */
struct smq_client_event {
	enum smq_client_event_type type;
	/* CONNACK: 5.0 reason code, or the 3.x return code as received (0 is
	 * success for both).
	 * PUBLISH_DONE: < 0x80 (0, or 0x10 no matching subscribers) when the
	 * message got as far as its QoS promises; >= 0x80 when the server
	 * refused it in PUBACK or PUBREC (5.0); 0x80 (unspecified) when it was
	 * lost: the session was discarded, or a QoS 0 message was never
	 * written. A QoS 2 message belongs to the server once PUBREC accepted
	 * it, so PUBCOMP's code (0x92 after a reconnect) is not reported here.
	 * DISCONNECT: the server's reason. */
	uint8_t reason;
	bool session_present;		/* CONNACK, as received; 3.1 has no such flag,
					 * and then a client with clean = false
					 * re-sends as if the session was kept */
	uint16_t packet_id;
	struct {
		struct smq_str topic;
		struct smq_str payload;
		uint8_t qos;
		bool retain;
		bool dup;
	} msg;				/* MESSAGE */
	struct smq_str codes;		/* SUBACK / UNSUBACK: one code per filter */
	struct smq_props props;		/* 5.0 properties of the packet, else empty */
	int error;			/* ERROR: same value as smq_client_error() */
	const char *text;		/* ERROR: static description, never NULL */
};

/* ---- life -------------------------------------------------------------- */

/* Create a client in SMQ_CLIENT_IDLE. Copies @opts and everything it points
 * to. Returns NULL with errno EINVAL for options the protocol forbids
 * (unknown version, will QoS > 2, invalid will topic or client id; 3.1 with
 * an empty or over-23-byte client id (3.1 spec 3.1); 3.1.1 with an empty id
 * and clean = false [MQTT-3.1.3-7]; 3.x password without username
 * [MQTT-3.1.2-22]) or ENOMEM. */
struct smq_client *smq_client_new(const struct smq_client_opts *opts);

/* Free the client and all its state. NULL is allowed. */
void smq_client_free(struct smq_client *c);

/* Forget the current connection (call after closing its socket): drop
 * unwritten output and a partial input packet, and forget unacknowledged
 * SUBSCRIBE/UNSUBSCRIBE (re-issue them). QoS 0 messages not yet written end
 * with PUBLISH_DONE reason 0x80. Events already queued stay queued.
 * Outgoing QoS 1/2 messages and incoming QoS 2 ids are kept for the next
 * connection, which re-sends them if the server still has the session.
 * State becomes IDLE and the error is cleared. */
void smq_client_reset_connection(struct smq_client *c);

enum smq_client_state smq_client_state(const struct smq_client *c);

/* The error that ended the connection (0 if none): as returned by the call
 * that detected it. Cleared by smq_client_reset_connection(). */
int smq_client_error(const struct smq_client *c);

/* Call @fn for every packet queued or received from now on (NULL: stop).
 * A re-sent PUBLISH is shown again, with DUP set. */
void smq_client_set_trace(struct smq_client *c, smq_client_trace_fn fn, void *arg);

/* The client id in use: the configured one, or the server's Assigned Client
 * Identifier (5.0) once received. Never NULL; "" if empty. */
const char *smq_client_id(const struct smq_client *c);

/* Number of outgoing QoS 1/2 messages not yet completed. */
uint32_t smq_client_inflight(const struct smq_client *c);

/* ---- bytes and time ---------------------------------------------------- */

/* Queue CONNECT (state IDLE -> CONNECTING). With clean = true this first
 * discards the session state: outgoing QoS 1/2 messages end with
 * PUBLISH_DONE reason 0x80 [MQTT-3.1.2-6]. Returns 0, -EISCONN if not IDLE,
 * -ENOMEM. @now_ms is any monotonic clock, the same for every call. */
int smq_client_connect(struct smq_client *c, uint64_t now_ms);

/* Hand the client @n bytes read from the socket. They are copied. Every
 * complete packet is processed at once: acknowledgements are queued for
 * output and events queued for smq_client_next_event(). Returns 0, or the
 * error that ended the connection: a negated reason code for a malformed
 * (-SMQ_RC_MALFORMED), oversize (-SMQ_RC_PACKET_TOO_LARGE) or
 * out-of-protocol (-SMQ_RC_PROTOCOL_ERROR...) packet, in 5.0 after queueing
 * a DISCONNECT with that reason [MQTT-4.13.1-1]; -ENOTCONN when there is no
 * connection to feed (IDLE or CLOSED); -ENOMEM. */
int smq_client_feed(struct smq_client *c, const uint8_t *bytes, size_t n, uint64_t now_ms);

/* The bytes waiting to be written: sets *p and *n (n may be 0). The view
 * is valid until the next call other than smq_client_out() /
 * smq_client_next_deadline() / the read-only getters. */
void smq_client_out(const struct smq_client *c, const uint8_t **p, size_t *n);

/* @n bytes of smq_client_out() were written. QoS 0 publishes whose last
 * byte is now written produce their PUBLISH_DONE here. */
void smq_client_out_consumed(struct smq_client *c, size_t n);

/* Keepalive. Queues PINGREQ when nothing was sent for a keepalive period
 * [MQTT-3.1.2-23]. Returns 0, or -ETIMEDOUT (connection over) when a
 * PINGREQ got no PINGRESP within one keepalive period. */
int smq_client_tick(struct smq_client *c, uint64_t now_ms);

/* When smq_client_tick() next has work: a time in now_ms units, or
 * UINT64_MAX for never (no keepalive, or not connected). */
uint64_t smq_client_next_deadline(const struct smq_client *c);

/* Pop the oldest event. Returns false when there is none. */
bool smq_client_next_event(struct smq_client *c, struct smq_client_event *ev);

/* Pop the oldest event whose type is in @mask and, if @packet_id >= 0,
 * whose packet id equals it; other events stay queued in order. For
 * drivers that wait for one thing without losing the rest. */
bool smq_client_take_event(struct smq_client *c, uint32_t mask, int packet_id,
			   struct smq_client_event *ev);

/* ---- actions (state CONNECTED) ----------------------------------------- */

/* Queue a PUBLISH. @topic must be a valid topic name; @props (5.0, may be
 * NULL) are encoded as given, except that a Topic Alias is refused. Returns
 * the packet id (1..65535) for QoS 1/2, 0 for QoS 0, or:
 *  -ENOTCONN   not connected;
 *  -EINVAL     invalid topic, QoS > 2, or a topic alias;
 *  -EAGAIN     the QoS 1/2 window is full (min of max_inflight and the
 *              server's Receive Maximum), or the output buffer holds more
 *              than max_out_bytes: retry after acks / writes;
 *  -EMSGSIZE   larger than the server's Maximum Packet Size (5.0);
 *  -SMQ_RC_QOS_NOT_SUPPORTED / -SMQ_RC_RETAIN_NOT_SUPPORTED  the server's
 *              CONNACK said so (5.0);
 *  -ENOMEM.
 * Every message accepted here ends with exactly one PUBLISH_DONE event. */
int smq_client_publish(struct smq_client *c, const char *topic, struct smq_str payload,
		       uint8_t qos, bool retain, const struct smq_props *props);

/* Queue a SUBSCRIBE for @n (>= 1) entries (opts as in codec.h; 3.x uses the
 * QoS bits only). Returns the packet id; SUBACK arrives as an event.
 * -ENOTCONN, -EINVAL (n == 0, invalid filter or options), -EMSGSIZE,
 * -EAGAIN (all 65535 packet ids in use), -ENOMEM. */
int smq_client_subscribe(struct smq_client *c, const struct smq_sub_entry *entries, size_t n,
			 const struct smq_props *props);

/* Queue an UNSUBSCRIBE. Returns the packet id, errors as subscribe. */
int smq_client_unsubscribe(struct smq_client *c, const struct smq_str *filters, size_t n,
			   const struct smq_props *props);

/* Queue DISCONNECT (5.0 with @reason and @props; 3.x ignores both) and move
 * to CLOSED: flush the output, then close. Reason 0x04 asks a 5.0 server to
 * publish the will anyway. Returns 0, -ENOTCONN (no connection), -ENOMEM.
 * Allowed while CONNECTING too. */
int smq_client_disconnect(struct smq_client *c, uint8_t reason, const struct smq_props *props);

/* ---- helpers ----------------------------------------------------------- */

/* Convert a CONNACK code of protocol @version to a negated MQTT 5 reason
 * code (3.x return codes 1..5 map to 0x84, 0x85, 0x88, 0x86, 0x87), or 0 for
 * success. */
int smq_client_connack_error(uint8_t version, uint8_t code);

/* Name of an event type, for logs. Never NULL. */
const char *smq_client_event_name(enum smq_client_event_type type);

/* Describe an error returned by this module (negative errno or negated
 * reason code). Never NULL; the string is static. */
const char *smq_client_strerror(int err);

#endif
