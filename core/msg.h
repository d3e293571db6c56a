/* msg.h - the published message: created once, immutable, refcounted,
 * shared by every shard and every subscriber it is delivered to.
 *
 * One allocation holds the header and the bytes: topic, the forwarded MQTT 5
 * properties (raw, as on the wire, without their length prefix) and the
 * payload, in that order and contiguous, so "properties + payload" is one
 * span an outbound PUBLISH can point an iovec at.
 *
 * Threads: the reference count is atomic (the only atomics in core/ besides
 * the log level): any thread holding a reference may take another
 * (smq_msg_ref) or drop its own (smq_msg_unref); the last drop frees. Every
 * other field is written by smq_msg_new() only and read-only afterwards, so
 * any thread holding a reference may read it without synchronisation (the
 * hand-over of the reference - an MPSC push - publishes the contents).
 */
#ifndef SMQ_MSG_H
#define SMQ_MSG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/codec.h"
#include "core/subtree.h"

struct smq_msg {
	atomic_uint refs;	/* any thread; the last smq_msg_unref() frees */
	uint8_t qos;		/* as published: 0, 1 or 2 */
	bool retain;		/* as published (the RETAIN flag) */
	bool has_expiry;	/* 5.0 Message Expiry Interval present */
	uint16_t topic_len;
	uint32_t props_len;	/* forwarded 5.0 properties, raw */
	uint32_t payload_len;
	uint32_t expiry_s;	/* Message Expiry Interval, seconds (has_expiry) */
	uint64_t created_ms;	/* broker clock when published (for expiry) */
	uint64_t created_ns;	/* the same in ns, for latency; 0: unknown */
	/* persistence: an inbound QoS 2 message's id, unique across runs (0:
	 * none), stored with every copy; redo: this is a re-route after a
	 * restart, and sessions that already hold the uid skip it */
	uint64_t uid;
	bool redo;
	/* the topic's levels, split and hashed once for every match of the
	 * message on any shard (smq_msg_levels); 0: more than
	 * SMQ_MSG_LEVELS_MAX, each match splits it */
	uint8_t nlev;
	uint8_t data[];		/* topic | props | payload | levels; immutable */
};

/* Topics with more levels are split at each match: carrying their levels
 * would let a topic of 65,535 slashes make a message 8 times its size. */
#define SMQ_MSG_LEVELS_MAX 16u

/* What a message is made of; the views are copied by smq_msg_new(). */
struct smq_msg_spec {
	struct smq_str topic;	/* 1..65535 bytes (not validated here) */
	struct smq_str payload;
	struct smq_str props;	/* raw forwarded properties or empty */
	uint8_t qos;
	bool retain;
	bool has_expiry;
	uint32_t expiry_s;
	uint64_t created_ms;
	uint64_t created_ns;
	uint64_t uid;
	bool redo;
	struct smq_split_cache *split;	/* recent topics' splits, or NULL */
};

/* Recent topics' splits for smq_msg_new(): publishers mostly repeat their
 * topics, and a hit copies the levels and their keyed hashes instead of
 * computing them again. One per thread that builds messages (an engine);
 * not shared. NULL from new on ENOMEM (then messages split every time). */
struct smq_split_cache *smq_split_cache_new(void);
void smq_split_cache_free(struct smq_split_cache *c);

/* A new message with one reference (the caller's), or NULL on ENOMEM or a
 * topic longer than 65535 bytes. */
struct smq_msg *smq_msg_new(const struct smq_msg_spec *spec);

/* Take another reference; returns @m for chaining. Any thread. */
struct smq_msg *smq_msg_ref(struct smq_msg *m);

/* Drop one reference; frees on the last. NULL is ignored. Any thread. */
void smq_msg_unref(struct smq_msg *m);

/* A batch of references for a loop that hands @m to many receivers: one
 * atomic add of @n now, after which each smq_msg_ref(@m) on this thread
 * spends one of them instead of an atomic add of its own, until
 * smq_msg_batch_end(@m) gives back what was not spent (one atomic sub).
 * The caller holds a reference throughout, so the give-back is never the
 * last. One batch per thread: a begin while another message's batch is
 * open (or with @n < 2) does nothing, and its end does nothing either. */
void smq_msg_batch_begin(struct smq_msg *m, unsigned n);
void smq_msg_batch_end(struct smq_msg *m);

/* Current count (for tests and assertions; racy by nature). */
unsigned smq_msg_refs(const struct smq_msg *m);

static inline struct smq_str smq_msg_topic(const struct smq_msg *m)
{
	return (struct smq_str){ m->data, m->topic_len };
}

static inline struct smq_str smq_msg_props(const struct smq_msg *m)
{
	return (struct smq_str){ m->data + m->topic_len, m->props_len };
}

static inline struct smq_str smq_msg_payload(const struct smq_msg *m)
{
	return (struct smq_str){ m->data + m->topic_len + m->props_len, m->payload_len };
}

/* The topic's levels (m->nlev of them), or NULL when it has too many. */
static inline const struct smq_topic_level *smq_msg_levels(const struct smq_msg *m)
{
	uintptr_t end = (uintptr_t)(m->data + m->topic_len + m->props_len + m->payload_len);

	return m->nlev ? (const struct smq_topic_level *)((end + 7) & ~(uintptr_t)7) : NULL;
}

/* Props followed by payload: the shared tail of every 5.0 PUBLISH of m. */
static inline struct smq_str smq_msg_tail(const struct smq_msg *m)
{
	return (struct smq_str){ m->data + m->topic_len, m->props_len + m->payload_len };
}

/* Bytes the message accounts for in queue limits (topic + props + payload). */
static inline size_t smq_msg_size(const struct smq_msg *m)
{
	return (size_t)m->topic_len + m->props_len + m->payload_len;
}

/* Has m expired at @now_ms? Never without a Message Expiry Interval. */
bool smq_msg_expired(const struct smq_msg *m, uint64_t now_ms);

/* Seconds left of m's Message Expiry Interval at @now_ms, rounded up, at
 * least 1 while not expired; 0 once expired. Meaningful only if has_expiry.
 * A forwarded message carries this instead of the original interval. */
uint32_t smq_msg_expiry_left(const struct smq_msg *m, uint64_t now_ms);

/* Encode the properties of an inbound 5.0 PUBLISH (or will) that are
 * forwarded to subscribers unchanged [MQTT-3.3.2-15..20]: Payload Format
 * Indicator, Content Type, Response Topic, Correlation Data and User
 * Properties (in their original order). Not forwarded: Topic Alias,
 * Subscription Identifier (per subscriber), Message Expiry (kept in
 * struct smq_msg, re-encoded per delivery).
 * With @out == NULL returns the size needed; otherwise writes at most @cap
 * bytes and returns the size or -SMQ_RC_PACKET_TOO_LARGE. */
long smq_msg_props_encode(const struct smq_props *props, uint8_t *out, size_t cap);

#endif
