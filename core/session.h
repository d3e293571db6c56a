/* session.h - one MQTT session: identity, subscriptions it holds, and the
 * QoS state of both directions (outbound in-flight window and queue,
 * inbound QoS 2 packet ids awaiting PUBREL).
 *
 * A session lives on its client id's home shard and is touched only by that
 * shard's thread: no locks. It outlives connections when it is persistent
 * (clean session 0 / session expiry > 0); the engine attaches and detaches
 * connections and decides when a session ends.
 *
 * This module keeps state and enforces its bounds; it encodes nothing and
 * sends nothing (the engine does). Packet ids: outbound ids are allocated
 * here and unique among the session's outbound messages in flight
 * [MQTT-2.3.1-2]; inbound QoS 2 ids are remembered until PUBREL
 * [MQTT-4.3.3-2] so a re-sent PUBLISH is not delivered twice.
 *
 * Outbound message life (struct smq_qmsg):
 *
 *   push --> QUEUED --take--> PUBLISHED --PUBACK (QoS 1)--> freed
 *                                       \--PUBREC (QoS 2)--> RELEASED --PUBCOMP--> freed
 *   A QoS 0 message is only ever QUEUED (offline with queue_qos0_messages):
 *   take hands it back detached, without a packet id.
 */
#ifndef SMQ_SESSION_H
#define SMQ_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/codec.h"
#include "core/timer.h"

struct smq_msg;

enum smq_qstate {
	SMQ_QS_QUEUED = 0,	/* waiting for room in the in-flight window */
	SMQ_QS_PUBLISHED,	/* PUBLISH sent, PUBACK / PUBREC awaited */
	SMQ_QS_RELEASED,	/* PUBREL sent, PUBCOMP awaited (msg dropped) */
};

/* One outbound message of a session. */
struct smq_qmsg {
	struct smq_qmsg *next, *prev;	/* in the queue or the in-flight list */
	struct smq_msg *msg;		/* one reference; NULL once RELEASED */
	uint16_t pid;			/* 0 while QUEUED */
	uint8_t qos;			/* delivery QoS: min(published, granted) */
	uint8_t state;			/* enum smq_qstate */
	bool retain;			/* RETAIN flag to send */
	bool sent;			/* PUBLISH went out once: re-send with DUP */
	uint64_t sseq;			/* persistence: its key in the store, 0 = none */
	uint64_t uid;			/* its message's uid (kept once RELEASED) */
	uint16_t nids;			/* 5.0 subscription identifiers */
	uint32_t ids[];
};

/* One subscription the session holds (the trie holds the same; this list
 * lets the engine remove them all when the session ends and list them). */
struct smq_ssub {
	char *filter;			/* NUL-terminated copy */
	uint16_t len;
	uint8_t opts;
	uint32_t sub_id;
	uint32_t hash;			/* smq_hash_bytes(filter), private to session.c */
};

/* Packet id -> pointer, open addressing; private to session.c. */
struct smq_pidmap;

struct smq_session_limits {
	uint32_t max_queued;		/* messages beyond the window; 0 = none queued */
	uint64_t max_queued_bytes;	/* 0 = no byte bound */
};

struct smq_acl_user;

/* What a session needs only when it outlives its connection, keeps a will
 * for later, or is stored: allocated by the engine (engine.c sx_get()) at
 * CONNECT when the session has an expiry or persistence is on, or when a
 * will must wait; freed with the session. An idle clean session has none,
 * which keeps struct smq_session in a smaller size class. */
struct smq_session_rare {
	struct smq_session *s;		/* back: for the timer callbacks */
	uint64_t offline_since_ms;
	struct smq_timer expiry_timer;	/* armed while offline and expiring */
	struct smq_msg *will;		/* pending will (a reference) or NULL */
	struct smq_timer will_timer;	/* armed while a delayed will waits */
	uint64_t suid;			/* persistence: its key in the store */
	uint32_t will_delay_s;
	bool stored;			/* persistence: its records are in the store */
	/* persistence: restored inbound QoS 2 messages whose routes were not
	 * known to be durable (engine-maintained; freed with the session) */
	struct smq_inpend *in_pend;
	/* persistence: QoS 2 messages this session completed lately (a ring,
	 * oldest first), so that a publisher's re-send after a crash is not
	 * delivered again (engine-maintained; freed with the session) */
	struct smq_done_ring *done;		/* NULL until the first */
};

struct smq_session {
	/* Fields are ordered by size inside each group so that the struct has
	 * no holes: it is held by every connected client (an idle connection's
	 * memory is mostly this, struct smq_econn and struct conn). What only
	 * offline, delayed-will or stored sessions need is in struct
	 * smq_session_rare; the packet id maps are allocated on first use.
	 * With a short client id the whole session fits jemalloc's 192-byte
	 * class (_Static_assert in session.c). */

	/* identity: set by smq_session_new(), read-only after */
	uint32_t hash;			/* of client_id, for the session table */
	uint16_t id_len;

	/* who is behind it, for the ACL: the user name of the latest CONNECT
	 * (NULL: none) and the cached ACL section (core/access.c) */
	uint16_t user_len;
	char *user;			/* NUL-terminated, owned */
	const struct smq_acl_user *acl_u;
	uint64_t acl_gen;
	uint64_t serial;		/* set by the engine: unique on its shard */

	/* owner thread; maintained by the engine */
	struct smq_session *hnext;	/* session table chain */
	void *conn;			/* the attached connection, NULL offline */
	struct smq_session_rare *rare;	/* NULL until needed, then kept */
	uint32_t expiry_s;		/* kept this long offline; UINT32_MAX = forever */
	uint8_t version;		/* protocol level of the last CONNECT */
	bool clean;			/* clean session / clean start */

	/* outbound QoS state: private to session.c except for reading */
	uint16_t next_pid;
	uint32_t ninflight;
	uint32_t nqueued;
	struct smq_qmsg *fl_head, *fl_tail;	/* in flight, in send order */
	struct smq_qmsg *q_head, *q_tail;	/* queued, FIFO */
	uint64_t queued_bytes;
	struct smq_pidmap *out;			/* pid -> struct smq_qmsg *, or NULL */

	/* subscriptions: s->subs[0 .. nsubs) in no particular order (a delete
	 * moves the last entry into the hole), for the engine to iterate; found
	 * by filter through sub_idx, private to session.c: NULL while the
	 * session holds few, else sub_idx_cap slots of (position + 1), 0 = empty,
	 * load <= 1/2, keyed by the filter's smq_hash_bytes() */
	struct smq_ssub *subs;
	uint32_t *sub_idx;
	uint32_t nsubs, subs_cap;
	uint32_t sub_idx_cap;

	/* inbound QoS 2: ids received and not yet released; NULL: none yet */
	struct smq_pidmap *in;

	/* identity, NUL-terminated: in the same allocation, so that a short id
	 * costs no allocation of its own */
	char client_id[];
};

struct smq_done_uid {
	uint64_t uid;
	uint64_t until_ms;		/* the engine's clock */
};

struct smq_done_ring {
	struct smq_done_uid *v;		/* core/ring.h */
	size_t h, n, cap;
};

/* One restored inbound QoS 2 message awaiting the publisher's re-send. */
struct smq_inpend {
	struct smq_inpend *next;
	uint16_t pid;
	struct smq_msg *msg;		/* one reference */
};

/* A new, empty, offline session for @client_id (copied), or NULL. */
struct smq_session *smq_session_new(struct smq_str client_id);

/* @s's rare part, allocated (zeroed, timers prepared with no callback) on
 * first use; NULL on ENOMEM. */
struct smq_session_rare *smq_session_rare(struct smq_session *s);

/* Free the session: drops every message reference and the will, frees the
 * subscription list. Timers must already be cancelled by the owner (this
 * cancels them too, harmlessly). The caller removes it from the trie and
 * the session table first. */
void smq_session_free(struct smq_session *s);

/* The session table's hash of a client id (32 bit): keyed by the process
 * key (core/hash.h), so clients cannot choose ids that collide. Differs
 * between processes: never store it or send it to another process. */
uint32_t smq_session_hash(struct smq_str client_id);

/* ---- subscriptions ---------------------------------------------------- */

/* Lookups by filter cost O(filter length) expected, whatever the number of
 * subscriptions (a keyed hash index once there are more than a few), so a
 * client subscribing to 100,000 filters costs linear time, not quadratic.
 * Entry pointers from smq_session_sub_find() and positions in s->subs stay
 * valid until the next put or del. */

/* Remember (filter, opts, sub_id); replaces an existing entry for the same
 * filter. Returns 0, -EINVAL (filter longer than 65535 bytes) or -ENOMEM
 * (nothing changed). */
int smq_session_sub_put(struct smq_session *s, struct smq_str filter, uint8_t opts,
			uint32_t sub_id);
/* Forget @filter. Returns 0 or -ENOENT. */
int smq_session_sub_del(struct smq_session *s, struct smq_str filter);
/* The entry for @filter, or NULL. */
struct smq_ssub *smq_session_sub_find(struct smq_session *s, struct smq_str filter);

/* ---- outbound --------------------------------------------------------- */

/* Queue a message for delivery at QoS @qos (0 only for offline queueing)
 * with RETAIN flag @retain and @nids subscription ids. The session takes a
 * new reference to @msg. Returns 0, -ENOSPC when the queue is at a limit
 * (nothing queued: the caller counts and logs the drop) or -ENOMEM. */
int smq_session_push(struct smq_session *s, struct smq_msg *msg, uint8_t qos, bool retain,
		     const uint32_t *ids, uint16_t nids, const struct smq_session_limits *lim);

/* Like push, but for a message that goes out at once: the entry enters the
 * in-flight list directly with a fresh packet id (qos 1 or 2), state
 * PUBLISHED. The caller checked the window. Returns the entry or NULL on
 * ENOMEM (or when all 65535 ids are in use). */
struct smq_qmsg *smq_session_fly(struct smq_session *s, struct smq_msg *msg, uint8_t qos,
				 bool retain, const uint32_t *ids, uint16_t nids);

/* Take the head of the queue if the window (@window messages in flight;
 * 0 = no bound) has room: a QoS 1/2 entry moves to the in-flight list with a
 * fresh packet id (state PUBLISHED) and is returned still owned by the
 * session; a QoS 0 entry is returned detached: the caller frees it with
 * smq_qmsg_free(). NULL when the queue is empty or the window is full. */
struct smq_qmsg *smq_session_take(struct smq_session *s, uint32_t window);

/* True when @window allows another message in flight now. */
bool smq_session_window_open(const struct smq_session *s, uint32_t window);

/* Free a detached entry (drops its message reference). */
void smq_qmsg_free(struct smq_qmsg *q);

/* Drop a queued or in-flight entry (e.g. an expired message, a packet too
 * large for the client): unlinks, releases its packet id, frees it. */
void smq_session_drop(struct smq_session *s, struct smq_qmsg *q);

/* The in-flight entry with packet id @pid, or NULL. */
struct smq_qmsg *smq_session_inflight(const struct smq_session *s, uint16_t pid);

/* PUBACK for @pid: frees a QoS 1 PUBLISHED entry. Returns 0, -ENOENT (no
 * such id) or -EPROTO (the id belongs to a QoS 2 flow). */
int smq_session_puback(struct smq_session *s, uint16_t pid);

/* PUBREC for @pid: a QoS 2 PUBLISHED entry becomes RELEASED (its message
 * reference is dropped); an entry already RELEASED stays so (a duplicate
 * PUBREC: answer PUBREL again). Returns 0, -ENOENT or -EPROTO (QoS 1 id). */
int smq_session_pubrec(struct smq_session *s, uint16_t pid);

/* PUBCOMP for @pid: frees a RELEASED entry. Returns 0, -ENOENT or -EPROTO. */
int smq_session_pubcomp(struct smq_session *s, uint16_t pid);

/* ---- inbound QoS 2 ---------------------------------------------------- */

/* A QoS 2 PUBLISH with @pid arrived. Returns 1 when the id is new (deliver
 * the message; the id is remembered), 0 when the id is already awaiting
 * PUBREL (a re-send: acknowledge, do not deliver again [MQTT-4.3.3-2]),
 * -ENOMEM. */
int smq_session_in_publish(struct smq_session *s, uint16_t pid);

/* PUBREL for @pid: forget it. Returns 0 or -ENOENT (unknown id). */
int smq_session_in_release(struct smq_session *s, uint16_t pid);

/* Is @pid an inbound QoS 2 id awaiting PUBREL? */
bool smq_session_in_has(const struct smq_session *s, uint16_t pid);

/* Number of inbound QoS 2 ids awaiting PUBREL. */
uint32_t smq_session_in_count(const struct smq_session *s);

/* Up to @max inbound QoS 2 ids awaiting PUBREL into @out (any order);
 * returns how many. */
uint32_t smq_session_in_list(const struct smq_session *s, uint16_t *out, uint32_t max);

/* Restore an in-flight entry as it was stored (a restart): state
 * SMQ_QS_PUBLISHED with @msg (a new reference is taken), or
 * SMQ_QS_RELEASED with @msg NULL, under packet id @pid, appended to the
 * in-flight list (call in the stored order). The entry counts as sent (a
 * re-send has DUP set). Returns it, or NULL on ENOMEM or when @pid is 0 or
 * already in use. */
struct smq_qmsg *smq_session_restore_flight(struct smq_session *s, struct smq_msg *msg,
					    uint8_t qos, bool retain, const uint32_t *ids,
					    uint16_t nids, uint16_t pid, uint8_t state);

/* ---- whole-session state ---------------------------------------------- */

/* Forget all QoS state and subscriptions (a clean start): queued and
 * in-flight messages, inbound ids. The will and identity stay. */
void smq_session_reset(struct smq_session *s);

#endif
