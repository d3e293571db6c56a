/* engine.h - the per-shard MQTT broker engine: every protocol decision the
 * broker makes, with no threads and no I/O.
 *
 * One struct smq_engine per shard. It owns that shard's connections
 * (struct smq_econn), sessions, local subscription trie, replica of the
 * interest index and timers. The shard thread that created it is the only
 * thread that may call any function here (the "owner thread"), except
 * smq_engine_stats(), whose counters may be read racily from anywhere.
 *
 * The I/O layer feeds the engine bytes, socket closes, time and messages
 * from other shards; the engine answers through struct smq_engine_io
 * callbacks (want_send / want_close / forward / forward_shared / interest),
 * always called
 * synchronously from inside an smq_engine_* call on the owner thread.
 *
 * Callbacks must not call back into the engine for the same connection
 * (e.g. want_close must not call smq_engine_conn_closed() directly; it
 * marks the connection and does it later in the loop). Every other entry
 * point is re-entrancy free.
 *
 * Lifecycle of a connection, as the I/O layer sees it:
 *
 *	accept -> smq_engine_conn_new()
 *	recv   -> smq_engine_conn_input()   ... may return SMQ_ENGINE_HANDOFF
 *	          -> smq_engine_conn_detach() -> (other shard) conn_new + input
 *	want_send(c) -> smq_econn_out_iov() -> send -> smq_econn_out_done()
 *	want_close(c) -> flush (bounded) -> shutdown(SHUT_WR) -> drain input
 *	                 (discarded, up to SMQ_ENGINE_LINGER_MS or EOF) -> close(fd)
 *	                 -> smq_engine_conn_closed()
 *	EOF / error   ->                    close(fd) -> smq_engine_conn_closed()
 *
 * Time. The engine's clock is the latest @now_ms any call gave it; calls
 * without one (smq_engine_conn_closed, smq_engine_close_all) use that. So
 * the I/O layer calls smq_engine_tick() first thing after every wake-up,
 * before it handles completions: otherwise a connection lost after a long
 * idle sleep would arm its session expiry and will delay from a stale
 * clock (they would fire early), and due timers would fire after the input
 * that should have seen them fired. It then sleeps at most what the last
 * smq_engine_tick() of the turn returned, computed after every close of the
 * turn (closing arms timers). Input that finds an offline session whose
 * expiry or will delay is due but not yet fired (a reconnect or hand-off
 * handled before the tick) fires them first: a session is never resumed
 * past its deadline.
 *
 * MQTT 5.0 enhanced authentication (section 4.12) runs inside the engine,
 * with the methods of core/authmethod.h (none enabled by default: every
 * Authentication Method then gets CONNACK 0x8C). The exchange is inline
 * on the owner thread, so a method must be cheap or answer CONTINUE.
 */
#ifndef SMQ_ENGINE_H
#define SMQ_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "core/codec.h"

struct smq_config;
struct smq_retain;
struct smq_msg;
struct smq_auth;
struct smq_store_rec;

struct smq_engine; /* one per shard, owner thread only */
struct smq_econn;  /* one client connection inside an engine */

/* Callbacks into the shard's I/O layer. Called on the owner thread only,
 * from inside engine calls. @ctx is passed back unchanged. */
struct smq_engine_io {
	void *ctx;
	/* c's output went from empty to non-empty, or output waiting behind
	 * a SUBACK may go now (io->interest_ticket): schedule a send. The I/O
	 * layer batches these per loop turn and then pulls iovecs with
	 * smq_econn_out_iov(). Otherwise not called again until the output
	 * drained (smq_econn_out_pending() == 0) and became non-empty once
	 * more. */
	void (*want_send)(void *ctx, struct smq_econn *c);
	/* The engine wants c closed: the I/O layer flushes queued output
	 * (best effort, bounded time), shuts the socket down for writing,
	 * drains input for up to SMQ_ENGINE_LINGER_MS (so the client reads
	 * the reason instead of a reset), closes it and then calls
	 * smq_engine_conn_closed(). Called at most once per connection. After
	 * it, the engine ignores further input on c and queues no new output
	 * (a final CONNACK / DISCONNECT is already queued when it is called). */
	void (*want_close)(void *ctx, struct smq_econn *c);
	/* Forward msg to shard @to (!= this shard). One reference is
	 * transferred: the engine did smq_msg_ref() for this call. The
	 * receiving shard hands it to smq_engine_deliver(). */
	void (*forward)(void *ctx, unsigned to, struct smq_msg *msg);
	/* Forward msg to shard @to (!= this shard) for exactly ONE member of
	 * the shared subscription @share ("$share/{group}/{filter}", valid only
	 * during the call: copy it) that shard holds, and for nobody else. One
	 * reference is transferred as for forward. The receiving shard hands
	 * msg and share to smq_engine_deliver_shared(). May be NULL: then a
	 * shared subscription is served only by members on the publishing
	 * shard. */
	void (*forward_shared)(void *ctx, unsigned to, struct smq_msg *msg, struct smq_str share);
	/* This shard's interest in @filter went 0->1 (present) or 1->0: tell
	 * all other shards (they call smq_engine_interest_apply()). @filter
	 * is only valid during the call. The engine already updated its own
	 * replica. Shared subscriptions arrive as the full "$share/g/f". */
	void (*interest)(void *ctx, struct smq_str filter, bool present);
	/* A SUBSCRIBE made interest updates (io->interest): returns a ticket
	 * (> 0, never smaller than an earlier one) that the I/O layer passes
	 * to smq_engine_interest_synced() once every other shard has applied
	 * every update made so far. Until then the client's SUBACK and what
	 * follows it wait, so that no publish sent after the SUBACK, on any
	 * shard, can miss the subscription. May be NULL: the SUBACK goes at
	 * once (one shard, or an I/O layer without inboxes). */
	uint64_t (*interest_ticket)(void *ctx);
	/* Verify @user / @pass against @auth's password file off the shard
	 * loop (a PBKDF2 check costs ~100 us; doing it inline would stall every
	 * other client of the shard). The I/O layer answers later, on the
	 * owner thread, with smq_engine_auth_done(); until then @c holds its
	 * input, and the I/O layer must not call smq_engine_conn_closed() on
	 * it. @user, @pass are valid only during the call; take a reference to
	 * @auth if it is kept. May be NULL: then the engine checks inline. */
	void (*auth_check)(void *ctx, struct smq_econn *c, const struct smq_auth *auth,
			   struct smq_str user, struct smq_str pass);
	/* Persistence (only after smq_engine_set_persist()): a record to
	 * store (core/persist.h has the layout). The I/O layer copies it; the
	 * views are valid only during the call. Records are applied in call
	 * order. */
	void (*store)(void *ctx, const struct smq_store_rec *r);
	/* Persistence: an acknowledgement (PUBACK, PUBREC, PUBCOMP) is due
	 * whose meaning depends on records emitted so far, here and on the
	 * shards messages were forwarded to. Returns a ticket (> 0, growing)
	 * that the I/O layer later releases with smq_engine_release() once
	 * every such record is durable, or 0: answer now. */
	uint64_t (*hold)(void *ctx);
};

/* A record for io->store. */
enum smq_store_op {
	SMQ_STORE_PUT = 1,	/* key = value (val[0..nval) concatenated) */
	SMQ_STORE_DEL,		/* delete key (absent is fine) */
	SMQ_STORE_DEL_PREFIX,	/* delete every key that starts with key */
};

/* Hints for the store about a record's life (smq_store_rec.flags). A
 * queued message's record is usually deleted moments after it is written
 * (the subscriber acknowledges it): the store may then drop the pair
 * without ever writing it, which keeps an acknowledged publish as safe as
 * a written one (it has reached everyone it had to). */
enum smq_store_flag {
	SMQ_STORE_F_PAIR = 1,	/* a PUT and a later DEL of this key may cancel out */
	SMQ_STORE_F_NEW = 2,	/* PUT of a key never stored before */
	SMQ_STORE_F_LAZY = 4,	/* may wait a moment for its partner (sent to a live client) */
};

struct smq_store_rec {
	uint8_t op;		/* enum smq_store_op */
	uint8_t flags;		/* enum smq_store_flag */
	uint8_t nval;
	struct smq_str key;
	struct smq_str val[4];
};

/* Counters for logs, $SYS and metrics. Written by the owner thread only,
 * plain (non-atomic) 64-bit fields: other threads may read them racily and
 * see slightly stale values, which is all a gauge needs. */
struct smq_engine_stats {
	uint64_t connections;	   /* gauge: connected (CONNACK sent) clients */
	uint64_t sockets;	   /* gauge: connections incl. pre-CONNECT */
	uint64_t sessions;	   /* gauge: sessions incl. offline ones */
	uint64_t subscriptions;	   /* gauge: local subscriptions */
	uint64_t connects;	   /* accepted CONNECTs */
	uint64_t connects_refused; /* CONNACK with a failure code */
	uint64_t disconnects;	   /* connections ended after CONNECT */
	uint64_t takeovers;	   /* a newer connection took the client id */
	uint64_t msgs_in;	   /* PUBLISH received from clients */
	uint64_t msgs_out;	   /* PUBLISH sent to clients */
	uint64_t bytes_in;	   /* bytes handed to smq_engine_conn_input() */
	uint64_t bytes_out;	   /* bytes reported by smq_econn_out_done() */
	uint64_t msgs_forwarded;   /* references passed to io->forward(_shared) */
	uint64_t msgs_delivered;   /* smq_engine_deliver(_shared)() calls */
	uint64_t dropped_qos0;	   /* QoS 0 beyond client_max_write_buffer */
	uint64_t dropped_queue_full; /* QoS>0 beyond max_queued_messages/bytes */
	uint64_t dropped_too_large;  /* larger than the client's max packet */
	uint64_t dropped_bad_payload; /* 5.0 Payload Format 1, not UTF-8 (0x99) */
	uint64_t dropped_expired;    /* message expiry passed while queued */
	uint64_t dropped_sys;	   /* client PUBLISH to $SYS/... accepted, dropped */
	uint64_t denied_publish;   /* PUBLISH refused by the ACL */
	uint64_t denied_read;	   /* deliveries withheld by the ACL */
	uint64_t denied_subscribe; /* subscriptions refused by the ACL */
	uint64_t auth_failures;	   /* CONNECTs with a bad user name or password */
	uint64_t protocol_errors;  /* connections closed for a bad packet */
	uint64_t keepalive_timeouts;
	uint64_t wills_published;
	uint64_t sessions_expired; /* offline sessions dropped by expiry */
	uint64_t retained_set;	   /* retained store updates from this shard */
	/* a shared-subscription message found no member of its group left
	 * here (the group emptied while the message was on its way) */
	uint64_t dropped_no_member;
	/* messages lost to a failed allocation (inbound: refused, not
	 * acknowledged; a delivery: that subscriber misses it) */
	uint64_t dropped_nomem;
	/* QoS 1/2 publishes refused because the store could not take them
	 * (disk full): 5.0 clients got 0x97, 3.x clients were disconnected */
	uint64_t store_refused;
	/* publish-to-send latency: from the PUBLISH's arrival (its loop turn)
	 * to its first copy queued for a subscriber's socket; bucket i <
	 * SMQ_ENGINE_LAT_BUCKETS - 1 counts latencies up to 2^(12 + i) ns, the
	 * last one the rest. Retained replays and re-sends are not counted. */
#define SMQ_ENGINE_LAT_BUCKETS 17
	uint64_t publish_latency[SMQ_ENGINE_LAT_BUCKETS];
	uint64_t publish_latency_ns;	/* their sum */
};

/* smq_engine_conn_input() return: the connection belongs to another shard. */
#define SMQ_ENGINE_HANDOFF 1

/* After want_close and the flush of the final CONNACK / DISCONNECT: how
 * long the I/O layer keeps reading (and discarding) what the client still
 * sends, after shutdown(fd, SHUT_WR), before it closes the socket. Closing
 * with unread input makes the kernel send a RST, and a client that
 * pipelined packets (say, more PUBLISHes than the Receive Maximum) then
 * sees "connection reset" instead of reading the reason code. Stop early
 * at EOF; a bound on the bytes drained (e.g. 1 MiB) is also fine. */
#define SMQ_ENGINE_LINGER_MS 2000u

/* Create the engine of shard @shard of @nshards (1..64). @cfg and
 * @retained are borrowed and must outlive the engine (the retained store
 * is shared by all shards); @io is copied. Returns NULL on ENOMEM or bad
 * arguments. Owner thread: the caller's, from now on. */
struct smq_engine *smq_engine_new(unsigned shard, unsigned nshards, const struct smq_config *cfg,
				  struct smq_retain *retained, const struct smq_engine_io *io);

/* Free all state: connections (without callbacks: the I/O layer closes its
 * own sockets), sessions, queued output, timers. Wills are NOT published.
 * Message references held are dropped. */
void smq_engine_free(struct smq_engine *e);

/* The home shard of a client id: a stable hash (FNV-1a 64) mod @nshards.
 * The same on every shard and across restarts. */
unsigned smq_engine_home_shard(struct smq_str client_id, unsigned nshards);

/* A new socket. @peer is "1.2.3.4:5678" for logs (NULL ok); not copied:
 * the caller keeps it valid until smq_engine_conn_closed() or
 * smq_engine_conn_detach() (one copy per connection, the I/O layer's).
 * @io_handle is the I/O layer's pointer, returned by smq_econn_io().
 * The keepalive-before-CONNECT clock starts at @now_ms (a client that sends
 * no CONNECT within the connect timeout is closed). NULL on ENOMEM. */
struct smq_econn *smq_engine_conn_new(struct smq_engine *e, void *io_handle, const char *peer,
				      uint64_t now_ms);

void *smq_econn_io(const struct smq_econn *c);
/* For the I/O layer's logs: the client id ("" before CONNECT) and peer. */
const char *smq_econn_client_id(const struct smq_econn *c);
const char *smq_econn_peer(const struct smq_econn *c);

/* Push-back (core/flow.c): some connected subscriber of this shard holds
 * more than half of its QoS 1/2 queue limit (and is taking something);
 * the I/O layer should stop reading clients that publish to this shard. */
bool smq_engine_backlogged(const struct smq_engine *e);

/* Bit i set: c's publishes since the last call went to subscribers on
 * shard i. Clears it. */
uint64_t smq_econn_take_pub_mask(struct smq_econn *c);

/* c is a backlogged subscriber itself: its input carries the
 * acknowledgements that drain that backlog, so it is never held back. (A
 * client held back for others that then falls behind becomes one.) */
bool smq_econn_consumer(const struct smq_econn *c);

/* Bytes arrived on c. The engine copies what it must keep; @bytes are only
 * valid during the call.
 * Returns 0, or SMQ_ENGINE_HANDOFF when the first complete packet was a
 * CONNECT whose client id's home shard is another shard. Then nothing was
 * processed, and the I/O layer calls smq_engine_conn_detach() to get every
 * byte received so far (this call's included) and the home shard, and
 * passes fd + bytes to the home shard, which calls smq_engine_conn_new()
 * and smq_engine_conn_input() with those bytes.
 * Protocol errors are handled inside (want_close called, will published
 * when the connection closes); the return value stays 0 then. */
int smq_engine_conn_input(struct smq_engine *e, struct smq_econn *c, const uint8_t *bytes, size_t n,
			  uint64_t now_ms);

/* After SMQ_ENGINE_HANDOFF: take every byte received on c so far into
 * *bytes (malloc'd; the caller frees it with free()), its length into *len
 * and the home shard into *home, then free c (no callbacks, no
 * smq_engine_conn_closed()). Returns 0, or -EINVAL when c is not waiting
 * for a hand-off (then c is untouched and should be closed normally). */
int smq_engine_conn_detach(struct smq_engine *e, struct smq_econn *c, uint8_t **bytes, size_t *len,
			   unsigned *home);

/* The socket is gone (EOF, error, or after want_close). Exactly once per
 * connection; c is freed before return. @err is 0 when the engine asked
 * for the close or the peer closed cleanly, -errno for a network error.
 * The engine publishes the will if due (not after a DISCONNECT), keeps a
 * persistent session offline or drops a clean one. */
void smq_engine_conn_closed(struct smq_engine *e, struct smq_econn *c, int err);

/* Output: fill up to @max iovecs with queued bytes, in order, starting at
 * the first unsent byte. Small packets are copied into contiguous chunks;
 * large payloads point at the shared message body (kept alive by the
 * engine until sent). Returns the number of iovecs filled (0 = nothing
 * queued, or what is queued waits behind a SUBACK). The pointers stay valid until the next smq_econn_out_done() or
 * smq_engine_conn_closed() on c; the engine only appends meanwhile. */
int smq_econn_out_iov(struct smq_econn *c, struct iovec *iov, int max);

/* The kernel took @bytes (may be short) of what smq_econn_out_iov()
 * reported. Frees sent chunks, releases message references, and may move
 * queued QoS>0 messages into flight. */
void smq_econn_out_done(struct smq_engine *e, struct smq_econn *c, size_t bytes, uint64_t now_ms);

/* Bytes queued for c and not yet reported sent. After smq_econn_out_done()
 * the I/O layer sends again while this is non-zero (want_send is only the
 * empty -> non-empty edge). */
size_t smq_econn_out_pending(const struct smq_econn *c);

/* Backpressure hint: c's queued output reached client_max_write_buffer (the
 * client is not reading). The I/O layer should stop reading c's socket until
 * this turns false again after smq_econn_out_done(): otherwise a client that
 * publishes without reading makes the engine queue acknowledgements without
 * bound. (QoS 0 deliveries to c are already dropped at this point.) */
bool smq_econn_backlogged(const struct smq_econn *c, const struct smq_engine *e);

/* From the shard inbox: a message routed to this shard by another shard.
 * Takes the transferred reference. Delivers to the local ordinary
 * subscribers (shared subscriptions come through smq_engine_deliver_shared). */
void smq_engine_deliver(struct smq_engine *e, struct smq_msg *msg, uint64_t now_ms);

/* From the shard inbox: a message that another shard routed here for ONE
 * member of the shared subscription @share ("$share/{group}/{filter}",
 * copied if kept). Takes the transferred reference. The member is picked
 * round-robin among the local members, online ones first; if only offline
 * persistent sessions remain, one of them queues it. If no member is left,
 * the message is dropped and counted (dropped_no_member). */
void smq_engine_deliver_shared(struct smq_engine *e, struct smq_msg *msg, struct smq_str share,
			       uint64_t now_ms);

/* From the shard inbox: another shard's interest transition for @filter
 * (copied if kept). */
void smq_engine_interest_apply(struct smq_engine *e, struct smq_str filter, unsigned shard,
			       bool present);

/* Every other shard has applied this shard's interest updates up to
 * @ticket (see io->interest_ticket): the SUBACKs waiting for it go. */
void smq_engine_interest_synced(struct smq_engine *e, uint64_t ticket);

/* Publish from the broker itself (e.g. $SYS, bridges): routed exactly like
 * a client PUBLISH (retained store, other shards, local subscribers), with
 * no origin session. Returns 0 or -EINVAL (bad topic) / -ENOMEM. */
int smq_engine_publish(struct smq_engine *e, struct smq_str topic, struct smq_str payload,
		       uint8_t qos, bool retain, uint64_t now_ms);

/* The auth bundle to decide CONNECTs and ACL checks with (borrowed: the
 * caller keeps it alive until it sets another or frees the engine). NULL:
 * only allow_anonymous applies and every topic is allowed. Sessions notice
 * a new bundle by its generation at their next check. */
void smq_engine_set_auth(struct smq_engine *e, const struct smq_auth *auth);

/* The connection came in on a listener with use_identity_as_username: its
 * user name is @cn, the verified client certificate's common name ("" or
 * NULL: the certificate had none, and the CONNECT is refused). Call before
 * the CONNECT is fed (again after a hand-off). 0 or -ENOMEM. */
int smq_econn_set_cert_user(struct smq_econn *c, const char *cn);

/* The verdict of an io->auth_check() request for @c: @ok when the password
 * matched. The CONNECT goes on (CONNACK, or a refusal) and input held
 * meanwhile is processed. Ignored if @c is no longer waiting. */
void smq_engine_auth_done(struct smq_engine *e, struct smq_econn *c, bool ok, uint64_t now_ms);

/* The I/O layer's clock in ns (the same clock as the ms ones), for the
 * publish latency histogram; call it where the loop reads its clock. */
void smq_engine_set_now_ns(struct smq_engine *e, uint64_t now_ns);

/* Fire due timers (keepalive, connect timeout, retry, session expiry, will
 * delay, message expiry). Returns ms until the next timer, or -1 if none. */
int64_t smq_engine_tick(struct smq_engine *e, uint64_t now_ms);

/* Shutdown: ask for every connection to be closed (want_close on each; a
 * 5.0 client first gets DISCONNECT with @reason, e.g. 0x8B). Wills are not
 * published for connections closed this way. */
void smq_engine_close_all(struct smq_engine *e, uint8_t reason);

/* ---- persistence ------------------------------------------------------
 *
 * With persistence on, the engine emits through io->store every change to
 * what must survive a restart: persistent sessions (metadata, will,
 * subscriptions, queued and in-flight messages, inbound QoS 2 ids) and
 * retained messages. It asks io->hold for a ticket before each PUBACK,
 * PUBREC and PUBCOMP of a client's publish flow and keeps the packet until
 * smq_engine_release() covers the ticket. Off (the default), nothing is
 * emitted and acknowledgements go out at once.
 */

/* Turn persistence on (before any connection). @wall_offset_ms is the wall
 * clock minus the engine's clock, in ms: stored times are wall clock.
 * @seed is random (it makes the keys of new sessions unique across runs). */
void smq_engine_set_persist(struct smq_engine *e, int64_t wall_offset_ms, uint64_t seed);

/* Every held acknowledgement with a ticket <= @ticket goes out, in order.
 * @ok false: the records could not be stored (disk full): a 5.0 client
 * gets PUBACK/PUBREC 0x97 (quota exceeded), a 3.x client is disconnected
 * (it publishes again after reconnecting). PUBCOMP goes out either way. */
void smq_engine_release(struct smq_engine *e, uint64_t ticket, bool ok, uint64_t now_ms);

/* The store cannot take records now (@full) or can again: while full, a
 * QoS 1/2 PUBLISH is refused (5.0: 0x97; 3.x: the connection closes)
 * instead of being routed. */
void smq_engine_set_store_full(struct smq_engine *e, bool full);

/* Start-up, before any connection: one stored record, in key order (a
 * session's records together, its metadata first). Sessions are rebuilt
 * on this engine (they must have their home here); retained messages go
 * into the shared store. Expired sessions and messages are dropped, and
 * so is what is stale: no emission happens while restoring, except
 * deletions of what was dropped. @now_ms is the engine's clock. Returns 0,
 * or -EINVAL with a reason in @err for a record that cannot be read. */
int smq_engine_restore(struct smq_engine *e, struct smq_str key, struct smq_str val,
		       uint64_t now_ms, char *err, size_t cap);

/* After the last record: arm the restored sessions' timers (session expiry,
 * will delay). Sessions that were connected when the broker stopped count
 * as disconnected now: their will is due after its delay unless the client
 * returns. Returns the number of sessions restored. */
size_t smq_engine_restore_done(struct smq_engine *e, uint64_t now_ms);

/* Counters; the pointer is stable for the engine's life. */
const struct smq_engine_stats *smq_engine_stats(const struct smq_engine *e);

#endif
