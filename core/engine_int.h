/* engine_int.h - internals shared by engine.c (connections, protocol) and
 * deliver.c (routing, delivery, output queues). Not for other modules.
 *
 * Everything here belongs to one engine and is touched by its owner thread
 * only.
 */
#ifndef SMQ_ENGINE_INT_H
#define SMQ_ENGINE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/codec.h"
#include "core/engine.h"
#include "core/session.h"
#include "core/subtree.h"
#include "core/timer.h"
#include "core/interest.h"

struct smq_msg;
struct smq_auth;
struct smq_auth_cache;
struct smq_authmethod;

/* Per-connection notices rate-limited per engine (engine.c elog()): at
 * most one line per second of each kind; the next line of a kind says how
 * many were left out. */
enum smq_elog_kind {
	SMQ_ELOG_FAIL = 0,	/* protocol errors, malformed packets (conn_fail) */
	SMQ_ELOG_REFUSE,	/* CONNACK refusals (refuse) */
	SMQ_ELOG_TIMEOUT,	/* no CONNECT in time, keepalive timeouts */
	SMQ_ELOG_TAKEOVER,	/* a newer connection took the client id */
	SMQ_ELOG_KINDS
};

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Packets whose shared tail (payload, 5.0 properties) is at most this many
 * bytes are copied whole into the output chunk; larger tails are referenced
 * (measured: a copy beats a refcount and an extra iovec below ~512 B). */
#define SMQ_COPY_MAX 512u
#define SMQ_CHUNK_SIZE 4096u	/* first output chunk of an idle connection */
#define SMQ_CHUNK_BIG 65536u	/* later chunks, once output is backing up */
/* The largest first packet buffered before it is known to be a CONNECT for
 * this shard: client id, will topic, user name, password (64 KiB each), will
 * payload (64 KiB) and properties fit with room to spare. */
#define SMQ_CONNECT_MAX (512u * 1024u)
/* A client must send CONNECT within this long of connecting. */
#define SMQ_CONNECT_TIMEOUT_MS 20000u
/* Topic aliases (5.0 section 3.3.2.3.4). Inbound: the Topic Alias Maximum
 * the broker announces in CONNACK is the max_topic_alias setting (default
 * 10, mosquitto's too). Outbound: at most this many of the aliases a client
 * allows are used; each costs a copy of its topic for the connection's
 * life. */
#define SMQ_ALIAS_OUT_MAX 32u
/* Client ids in log lines are cut to this many bytes. */
#define SMQ_LOG_ID_MAX 95u

/* One topic alias of a connection: the topic it stands for (owned). */
struct smq_alias {
	uint8_t *topic;
	uint16_t len;
	uint32_t hash;		/* outbound: of topic, to compare cheaply */
};

/* A connection's output (outq.c): chunks, each a table of spans to send
 * in order and the buffer their own bytes live in. */
struct oseg {
	const uint8_t *p;	/* first byte; NULL: a gate, nothing goes past it */
	struct smq_msg *msg;	/* a message's bytes: one reference; NULL: the chunk's */
	uint32_t len;
};

struct ochunk {
	struct ochunk *next;
	uint32_t used, cap;	/* bytes of the buffer written, and its size */
	uint16_t first, nseg, segcap;	/* seg[first..nseg) are still to send */
	struct oseg seg[];	/* segcap of them, then the buffer */
};

enum cstate {
	CS_NEW = 0,	/* no CONNECT yet: bytes collect in pre for a hand-off */
	CS_AUTH,	/* CONNECT checked but its password, which is being verified
			 * off the loop: input is held in c->held */
	CS_EXCHANGE,	/* CONNECT checked, 5.0 enhanced authentication under way:
			 * the CONNECT waits in c->connect_copy, only AUTH and
			 * DISCONNECT are read [MQTT-3.1.2-30] */
	CS_LIVE,	/* CONNACK sent, session attached */
	CS_CLOSING,	/* want_close called; input ignored */
};

/* What a connection needs only while it connects, or when it authenticates
 * in a rare way: the bytes before its CONNECT, a CONNECT parked for a
 * password check or an enhanced authentication exchange, the input held
 * meanwhile, a certificate's CN, the authentication method. Allocated on
 * first use (engine.c rare_mut()); freed once the connection is LIVE and
 * keeps no method for re-authentication (engine.c rare_trim()). */
struct econn_rare {
	uint8_t *pre;			/* CS_NEW: every byte received so far */
	uint32_t pre_len, pre_cap;	/* at most about SMQ_CONNECT_MAX */
	uint8_t *held;			/* CS_AUTH: input that arrived after the CONNECT */
	uint32_t held_len, held_cap;	/* at most SMQ_CONNECT_MAX */
	uint8_t *connect_copy;		/* CS_AUTH: the CONNECT, re-encoded */
	uint32_t connect_len;
	int8_t verdict;			/* password verified off the loop: -1 not yet, 0 bad, 1 good */
	uint8_t home;			/* CS_NEW: home shard when handing off (fits:
					 * SMQ_INTEREST_MAX_SHARDS is 64) */
	/* 5.0 enhanced authentication (core/authmethod.h): the method of the
	 * CONNECT (kept while LIVE for re-authentication), its per-exchange
	 * state and last reply (bytes the method owns). am_ok: the method
	 * said SUCCESS for the parked CONNECT; am_reauth: an AUTH 0x19
	 * exchange is under way on a LIVE connection. */
	bool am_ok, am_reauth;
	uint64_t auth_gen;		/* the bundle generation the verdict is for */
	const struct smq_authmethod *am;
	void *am_state;
	struct smq_str am_reply;
	char *cert_user;		/* use_identity_as_username: the certificate's
					 * CN ("" when it had none); NULL otherwise */
};

/* What a LIVE connection needs only for features few idle clients use: a
 * will, topic aliases in either direction, push-back bookkeeping while it
 * is a backlogged subscriber (flow.c), packets held for durability
 * (persist.c). Allocated by smq_eng_more_mut() on first use and kept until
 * the connection is freed; read through smq_eng_more(), which shows zeros
 * while there is none. */
struct econn_more {
	struct smq_msg *will;		/* will of this connection, or NULL */
	uint32_t will_delay_s;
	uint16_t alias_out_n;		/* aliases assigned in alias_out */
	/* topic aliases (5.0): in[a - 1] is what the client set alias a to;
	 * out[a - 1] is the topic the broker sent with alias a. Allocated on
	 * first use; out grows to c->alias_out_max (min of the client's Topic
	 * Alias Maximum and SMQ_ALIAS_OUT_MAX), assigned on first use of a
	 * topic and never reassigned (a simple policy that pays off for
	 * repeated topics and needs no eviction bookkeeping). */
	struct smq_alias *alias_in;	/* c->alias_in_max entries */
	struct smq_alias *alias_out;
	/* push-back (flow.c): last progress while backlogged, e->flow_list */
	uint64_t flow_ms;
	struct smq_econn *flow_next, *flow_prev;
	uint32_t nheld;			/* packets held in e->held for c */
	uint32_t nheld_pub;		/* of which PUBLISHes (first sends of QoS 2) */
};

/* Every connection holds one of these for its whole life, so it is kept
 * small: strings are exact-size allocations rather than fixed buffers,
 * rare state lives in struct econn_rare (connecting) and struct econn_more
 * (rare features), and fields are ordered so that the struct has no holes
 * (an idle connection costs this, struct smq_session and the I/O layer's
 * struct). It fits jemalloc's 192-byte class (_Static_assert in engine.c). */
struct smq_econn {
	struct smq_econn *next, *prev;	/* e->conns */
	/* push-back (flow.c): the shards the connection's publishes went to
	 * since the I/O layer last asked */
	uint64_t pub_mask;
	void *io;
	struct smq_session *s;		/* attached session (LIVE, or CLOSING after LIVE) */
	struct econn_more *more;	/* NULL until first needed, then kept */
	uint64_t last_in_ms;
	struct smq_timer ka;		/* keepalive / connect timeout */
	struct smq_reader rd;

	struct ochunk *oh, *ot;		/* output queue */
	size_t opend;			/* queued, unsent bytes */
	/* connecting and authenticating (struct econn_rare), NULL when there
	 * is none: engine.c reads it through rare_of() */
	struct econn_rare *rare;
	/* for log lines, never NULL: the peer's address (the I/O layer's
	 * string, see smq_engine_conn_new()) and the client id, printable and
	 * truncated to SMQ_LOG_ID_MAX bytes (owned once a CONNECT named one;
	 * until then a static "") */
	const char *peer;
	char *id;
	uint32_t max_out;		/* client's Maximum Packet Size, 0 = none */
	uint32_t ooff;			/* bytes of oh->seg[oh->first] already sent */
	uint16_t keepalive;		/* enforced keepalive, seconds; 0 = none */
	uint16_t recv_max;		/* client's Receive Maximum (5.0) */
	uint16_t alias_in_max;		/* announced in CONNACK (max_topic_alias) */
	uint16_t alias_out_max;		/* see struct econn_more */
	uint8_t state;			/* enum cstate */
	uint8_t version;		/* protocol level, 0 before CONNECT */
	bool flow_bl, flow_counted;	/* push-back (flow.c), see econn_more */
	bool will_off;			/* DISCONNECT (or shutdown): no will */
	bool counted;			/* counted in stats.connections */
	bool here;			/* CS_NEW: hand-off checked, the session is ours */
};

struct smq_engine {
	unsigned shard, nshards;
	const struct smq_config *cfg;
	struct smq_retain *retained;
	struct smq_engine_io io;
	struct smq_subtree *subs;	/* local trie: sub = struct smq_session * */
	struct smq_interest *interest;	/* replica of every shard's interest */
	struct smq_match match;		/* scratch for trie walks */
	struct smq_interest_groups groups; /* scratch: shared subscriptions of a route */
	struct smq_split_cache *split;	/* recent topics' splits (msg.h), or NULL */
	char *share_buf;		/* scratch: "$share/g/f" for forward_shared */
	size_t share_cap;
	struct smq_timers timers;
	struct smq_session **tab;	/* sessions by client id */
	uint32_t tab_cap;		/* 0 or a power of two */
	struct smq_econn *conns;	/* every connection */
	struct smq_econn *flow_list;	/* backlogged subscribers (flow.c) */
	uint64_t flow_backlogged;	/* of them, those that count (not stalled) */
	uint64_t flow_stalls, flow_log_ms;
	uint64_t now;			/* time of the latest call */
	uint64_t now_ns;		/* the I/O layer's finer clock (smq_engine_set_now_ns) */
	uint64_t serial;		/* session serials, assigned ids */
	uint64_t drop_log_ms;		/* rate limit of drop log lines */
	uint64_t nomem_log_ms;		/* ... and of routing failures */
	uint64_t drops_unlogged;
	uint64_t deny_log_ms;		/* rate limit of ACL refusal log lines */
	uint64_t big_log_ms;		/* rate limit of message_size_limit lines */
	uint64_t elog_ms[SMQ_ELOG_KINDS];	/* last line of each kind */
	uint64_t elog_quiet[SMQ_ELOG_KINDS];	/* lines left out since then */
	const struct smq_auth *auth;	/* NULL: allow_anonymous only, no ACL */
	struct smq_auth_cache *auth_cache;	/* verified logins (core/auth.h); may be NULL */
	/* persistence (persist.c): on when persist is set */
	bool persist;
	bool store_full;		/* the store refuses records: no QoS>0 in */
	int64_t wall_off;		/* wall clock - engine clock, ms */
	uint64_t sseq;			/* last outbound message key given out */
	uint8_t *pkey;			/* scratch for keys, SMQ_PERSIST_KEY_MAX */
	uint8_t *pval;			/* scratch for values */
	size_t pval_cap;
	struct held_ack *held;		/* ring of packets waiting for durability, in */
	size_t held_head, held_n, held_cap;	/* order: no allocation per packet */
	struct sub_gate *gates;		/* ring of SUBACKs waiting for the other */
	size_t gates_head, gates_n, gates_cap;	/* shards (subgate.c), tickets rising */
	uint64_t int_synced;		/* the latest smq_engine_interest_synced() */
	bool int_new;			/* this SUBSCRIBE sent other shards news */
	uint64_t suid_seed, suid_n;	/* session uids: random per process, counted */
	struct smq_session *rs;		/* restore: the session being read */
	uint64_t rs_uid;		/* restore: its uid (0: none yet) */
	size_t restored;		/* restore: sessions rebuilt */
	struct smq_engine_stats stats;
};

/* A connection's output waiting behind a gate until every other shard has
 * applied the interest updates up to @ticket. */
struct sub_gate {
	struct smq_econn *c;		/* NULL once c went away */
	uint64_t ticket;
};

/* An acknowledgement held until the records it vouches for are durable. */
struct held_ack {
	struct smq_econn *c;		/* NULL once c closed */
	uint64_t ticket;
	uint16_t pid;
	uint8_t type;			/* SMQ_PUBACK, PUBREC, PUBREL, PUBCOMP; PUBLISH:
					 * the first send of an outbound QoS 2 message */
	uint8_t reason;
};

/* ---- deliver.c -------------------------------------------------------- */

/* Route a message published on this shard (by a client, a will or the
 * broker): other shards via io->forward, local subscribers inline, and for
 * each matching shared subscription one shard picked round-robin among
 * those holding members (io->forward_shared, or inline when it is this
 * one). @publisher (may be NULL) is the publishing session, for No Local.
 * The caller keeps its reference. */
void smq_eng_route(struct smq_engine *e, struct smq_msg *m, struct smq_session *publisher);

/* Deliver to this shard's matching ordinary subscribers (not to shared
 * subscriptions). */
void smq_eng_deliver_local(struct smq_engine *e, struct smq_msg *m,
			   struct smq_session *publisher);

/* Deliver to one local member of the shared subscription (@group, @filter)
 * (filter without the "$share/g/" prefix). Returns 0, or -ENOENT when no
 * member is left to take it (nothing delivered). */
int smq_eng_deliver_shared(struct smq_engine *e, struct smq_msg *m, struct smq_str group,
			   struct smq_str filter);

/* Deliver @m to one session at QoS @qos with RETAIN @retain. */
void smq_eng_deliver_session(struct smq_engine *e, struct smq_session *s, struct smq_msg *m,
			     uint8_t qos, bool retain, const uint32_t *ids, uint16_t nids);

/* Send the retained messages matching @filter to c's session at most at
 * QoS @granted (RETAIN=1 [MQTT-3.3.1-8]). */
void smq_eng_send_retained(struct smq_engine *e, struct smq_econn *c, struct smq_str filter,
			   uint8_t granted, uint32_t sub_id);

/* Move queued messages into flight while the window allows. */
void smq_eng_pump(struct smq_engine *e, struct smq_econn *c);

/* After a reconnect: re-send every in-flight message (DUP=1) or PUBREL,
 * then pump. [MQTT-4.4.0-1] */
void smq_eng_resend(struct smq_engine *e, struct smq_econn *c);

/* The QoS to deliver a message of @msg_qos at to a subscription of
 * @sub_qos: the lower one, or @sub_qos with upgrade_outgoing_qos. */
uint8_t smq_eng_out_qos(const struct smq_engine *e, uint8_t msg_qos, uint8_t sub_qos);

/* The in-flight window for c: min(max_inflight_messages, Receive Maximum). */
uint32_t smq_eng_window(const struct smq_engine *e, const struct smq_econn *c);

/* Encode @pkt (pkt->version set) at the end of c's output. 0 or -errno. */
int smq_eng_write(struct smq_engine *e, struct smq_econn *c, const struct smq_packet *pkt);

/* Queue a PUBREL (or with @reason for 5.0) / any 2-byte-id ack. */
int smq_eng_write_ack(struct smq_engine *e, struct smq_econn *c, uint8_t type, uint16_t pid,
		      uint8_t reason);

/* ---- outq.c ------------------------------------------------------------ */

/* Room for @n bytes at the end of c's output, and for @refs spans of
 * message bytes to follow them (smq_eng_out_ref() cannot fail after this).
 * Write the bytes, then smq_eng_out_commit(). NULL on ENOMEM. */
uint8_t *smq_eng_out_reserve(struct smq_engine *e, struct smq_econn *c, size_t n, unsigned refs);
/* Queue the @n bytes written at the pointer the last reserve gave. */
void smq_eng_out_commit(struct smq_engine *e, struct smq_econn *c, size_t n);
/* Queue @span of @m's bytes by reference (one more reference to @m). */
void smq_eng_out_ref(struct smq_engine *e, struct smq_econn *c, struct smq_msg *m,
		     struct smq_str span);
/* Free every output chunk of c. */
void smq_eng_out_free(struct smq_econn *c);

/* A gate at the end of c's output: what is queued after it waits until
 * smq_eng_out_ungate() (subgate.c). 0 or -ENOMEM. */
int smq_eng_out_gate(struct smq_engine *e, struct smq_econn *c);
/* Open c's oldest gate (none left: nothing happens). */
void smq_eng_out_ungate(struct smq_engine *e, struct smq_econn *c);

/* ---- subgate.c --------------------------------------------------------- */

/* c's SUBSCRIBE made a filter new to this shard: its SUBACK (written next)
 * and everything after it wait until every other shard knows. */
void smq_eng_gate_subscribe(struct smq_engine *e, struct smq_econn *c);
/* c is closing or going away: its gates open (or are forgotten when
 * @freeing), so that its last words still go out. */
void smq_eng_gate_drop(struct smq_engine *e, struct smq_econn *c, bool freeing);

/* ---- struct econn_more (engine.c) -------------------------------------- */

extern const struct econn_more smq_eng_no_more;

/* c's rare features for reading: zeros while it has none. */
static inline const struct econn_more *smq_eng_more(const struct smq_econn *c)
{
	return c->more ? c->more : &smq_eng_no_more;
}

/* c's rare features for writing, allocated (zeroed) on first use; NULL on
 * ENOMEM. */
struct econn_more *smq_eng_more_mut(struct smq_econn *c);

/* ---- persist.c -------------------------------------------------------- */

/* Does @s keep its records in the store? (Checked before every emission,
 * so that an engine without persistence pays one test.) */
static inline bool smq_eng_stores(const struct smq_engine *e, const struct smq_session *s)
{
	return e->persist && s && s->rare && s->rare->stored;
}

/* After CONNACK: a persistent session's metadata (and, the first time,
 * everything it holds) goes to the store; a session that stopped being
 * persistent leaves it. */
void smq_eng_store_session(struct smq_engine *e, struct smq_session *s);
/* The metadata only (online state, will, expiry). */
void smq_eng_store_meta(struct smq_engine *e, struct smq_session *s);
/* Every record of @s goes (its session ends). */
void smq_eng_store_forget(struct smq_engine *e, struct smq_session *s);
void smq_eng_store_sub(struct smq_engine *e, struct smq_session *s, struct smq_str filter,
		       uint8_t opts, uint32_t sub_id);
void smq_eng_store_unsub(struct smq_engine *e, struct smq_session *s, struct smq_str filter);
void smq_eng_store_inbound(struct smq_engine *e, struct smq_session *s, uint16_t pid, bool add);
/* An inbound QoS 2 message about to be routed: kept with its id until the
 * PUBREC leaves (then every route is durable). */
void smq_eng_store_inbound_msg(struct smq_engine *e, struct smq_session *s, uint16_t pid,
			       const struct smq_msg *m);
/* The uid of an inbound QoS 2 message (never 0): the same for a re-send
 * of it, also after a restart. */
uint64_t smq_eng_inbound_uid(const struct smq_session *s, uint16_t pid, struct smq_str topic,
			     struct smq_str payload);
/* An outbound entry was queued, flown or changed state (gets a key the
 * first time) / is gone (before it is freed). */
/* Push-back (flow.c): re-check @c after deliveries to it; it took
 * something (an acknowledgement, bytes written); it is going away; once a
 * turn, drop stalled subscribers from the count. */
void smq_eng_flow_watch(struct smq_engine *e, struct smq_econn *c);
void smq_eng_flow_progress(struct smq_engine *e, struct smq_econn *c);
void smq_eng_flow_forget(struct smq_engine *e, struct smq_econn *c);
void smq_eng_flow_tick(struct smq_engine *e);

void smq_eng_store_q(struct smq_engine *e, struct smq_session *s, struct smq_qmsg *q);
void smq_eng_store_q_del(struct smq_engine *e, struct smq_session *s, struct smq_qmsg *q);
/* @s completed QoS 2 message @uid: remember it a while (and store that). */
void smq_eng_store_done(struct smq_engine *e, struct smq_session *s, uint64_t uid);
/* Did @s complete @uid lately? */
bool smq_eng_done_uid(const struct smq_session *s, uint64_t uid);
/* A retained message set (or, empty, cleared) with store sequence @seq. */
void smq_eng_store_retained(struct smq_engine *e, const struct smq_msg *m, uint64_t seq);

/* Send @type for @pid now, or hold it behind a ticket (persistence). */
void smq_eng_ack(struct smq_engine *e, struct smq_econn *c, uint8_t type, uint16_t pid,
		 uint8_t reason);
/* A held QoS 2 PUBLISH (packet id @pid of c's session) may go now, if its
 * flow is still waiting for its first send. */
void smq_eng_send_held(struct smq_engine *e, struct smq_econn *c, uint16_t pid);

/* c is going away: its held acknowledgements are dropped. */
void smq_eng_held_forget(struct smq_engine *e, struct smq_econn *c);

/* engine.c, shared with persist.c */
void smq_eng_conn_close(struct smq_engine *e, struct smq_econn *c);
bool smq_eng_is_sys(struct smq_str topic);
struct smq_session *smq_eng_session_find(const struct smq_engine *e, struct smq_str id);
struct smq_session *smq_eng_session_new(struct smq_engine *e, struct smq_str id);
/* s's rare part with the engine's timer callbacks (allocated on first
 * use); NULL on ENOMEM. */
struct smq_session_rare *smq_eng_session_rare(struct smq_session *s);
void smq_eng_interest_changed(struct smq_engine *e, struct smq_str filter, bool present);
void smq_eng_arm_offline(struct smq_engine *e, struct smq_session *s, uint64_t expiry_ms,
			 uint64_t will_ms);

/* ---- access.c --------------------------------------------------------- */

/* ACL checks for session @s (true when there is no ACL). */
bool smq_eng_may_publish(const struct smq_engine *e, struct smq_session *s, struct smq_str topic);
bool smq_eng_may_read(const struct smq_engine *e, struct smq_session *s, struct smq_str topic);
bool smq_eng_may_subscribe(const struct smq_engine *e, struct smq_session *s,
			   struct smq_str filter);
/* Remember the CONNECT's user name on @s (copied). 0 or -ENOMEM. */
int smq_eng_set_user(struct smq_session *s, struct smq_str user, bool has_user);

/* Log a dropped message, at most one line per second per engine. */
void smq_eng_log_drop(struct smq_engine *e, const struct smq_session *s, const char *why);

#endif
