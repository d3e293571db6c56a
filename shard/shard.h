/* shard.h - one shard: a thread with its own io_uring ring, listeners,
 * connections and broker engine. Internal to shard/: the contract between
 * the files that make up a shard, one job each:
 *
 *   shard.c    the thread: setup, the loop, completion dispatch
 *   conn.c     a connection's life: recv, send, close, the engine callbacks
 *   accept.c   the listeners: multishot accept, max_connections
 *   handoff.c  moving a connection to its session's home shard
 *   inbox.c    the inbox protocol: forwards, interest updates, batching
 *   stats.c    what a shard reports about itself
 *
 * A shard's state splits in two (the FlashMQ layout):
 *  - the private part, touched only by the shard's own thread;
 *  - the inbox, which any thread may push to (struct smq_mpsc), plus fields
 *    that are read-only once the thread runs (ring_fd, idx).
 */
#ifndef SMQ_SHARD_H
#define SMQ_SHARD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/config.h"
#include "net/bufring.h"
#include "shard/mpsc.h"

struct smq_auth;
struct smq_authwork;
struct smq_broker;
struct smq_tls_ctx;
struct smq_xform;

/* What a reload hands each shard: one reference to each object, which the
 * shard takes over (dropping its references to the old ones). */
struct smq_reload {
	struct smq_auth *auth;
	struct smq_tls_ctx *tls[SMQ_CONFIG_MAX_LISTENERS];	/* NULL: plain listener */
};
struct smq_config;
struct smq_engine;
struct smq_retain;
struct smq_sys;
struct smq_store;
struct smq_durable;
struct conn;
struct fwd_block;
struct imsg;

/* user_data of every SQE is a pointer with an operation tag in its low 3
 * bits (struct conn and struct smq_shard are 8-byte aligned):
 *
 *	 63                                   3 2   0
 *	+---------------------------------------+-----+
 *	|        struct conn * / smq_shard *    | tag |
 *	+---------------------------------------+-----+
 */
enum ud_tag {
	UD_ACCEPT = 1,
	UD_RECV = 2,
	UD_SEND = 3,
	UD_WAKE = 4,		/* a MSG_RING from another shard (NULL pointer), or
				 * the store's eventfd read (pointer: the shard) */
	UD_IGNORE = 5,		/* cancels, link timeouts */
	UD_LINGER = 6,		/* the end of a conn's drain-before-close */
	UD_HTTP_TIMER = 7,	/* an HTTP conn's idle / request deadline (conn.c) */
};

#define UD(p, tag) ((uint64_t)(uintptr_t)(p) | (tag))
#define UD_TAG(ud) ((unsigned)((ud) & 7u))
#define UD_PTR(ud) ((void *)(uintptr_t)((ud) & ~(uint64_t)7u))

/* A listener as the broker runs it: shared by every shard, read-only once
 * started except the counters. */
struct smq_listener {
	struct smq_listener_cfg cfg;	/* a copy, with the resolved port */
	bool tls;			/* certfile + keyfile configured */
	unsigned idx;
	char name[300];			/* "127.0.0.1:1883" / "[::]:8883", for logs */
	atomic_long conns;		/* for cfg.max_connections */
	bool http;			/* the metrics listener (shard 0 only): HTTP conns */
};

/* One shard's socket on one listener. 8-byte aligned: accept SQEs carry
 * a pointer to it in user_data. */
struct shard_lst {
	struct smq_listener *l;
	int fd;				/* -1: not open */
	bool armed;			/* a multishot accept is in flight */
	uint64_t retry_ms;		/* accept failed for lack of fds: wait until */
	uint64_t fails, fail_logged_ms;	/* accept failures; rate limit of their log */
};

#define SMQ_SHARD_TURN_BUCKETS 17
#define SMQ_SHARD_TURN_MIN_LOG2 12	/* the first bucket's bound: 2^12 ns */

#define SMQ_SHARD_BGID 0
#define SMQ_SHARD_PLAIN 16384	/* the provided-buffer group of every recv */

struct smq_shard {
	/* any thread */
	struct smq_mpsc inbox;
	_Atomic uint64_t fwd_pushed;	/* forwarded messages other shards pushed here */

	/* read-only once running */
	unsigned idx;
	unsigned ring_sq, ring_cq;	/* ring size, chosen by the broker to fit memlock */
	int ring_fd;			/* target of MSG_RING wake-ups */
	struct smq_broker *broker;
	const struct smq_config *cfg;
	pthread_t thread;

	/* owner thread only */
	struct smq_auth *auth;		/* one reference; swapped by IMSG_RELOAD */
	struct smq_tls_ctx *tls[SMQ_CONFIG_MAX_LISTENERS];	/* references, per listener */
	struct io_uring ring;
	struct smq_bufring bufs;
	struct smq_engine *eng;
	struct shard_lst lst[SMQ_CONFIG_MAX_LISTENERS];
	unsigned nlst;
	struct shard_lst http_lst;	/* the metrics listener; fd -1 but on shard 0 */
	bool stopping;
	int64_t accept_wait_ms;		/* a listener rests after EMFILE: -1 none */
	struct smq_sys *sys;		/* shard 0 with sys_interval > 0: $SYS (sys.c) */
	struct smq_store *store;	/* persistence: this shard's store, or NULL */
	struct smq_durable *dur;	/* persistence: held acks (durable.c) */
	int store_efd;			/* the store's eventfd, -1 without */
	int64_t store_wait_ms;		/* the store wants a turn within this, or -1 */
	bool store_stalled;		/* its backlog is high: clients are not read */
	uint64_t store_stall_log_ms;
	uint64_t store_stalls;		/* times that happened */
	uint64_t store_commits;		/* the writer's transactions */
	uint64_t store_cancelled;	/* records cancelled before a write */
	uint64_t store_ev;		/* its read buffer */
	unsigned nconns;
	uint64_t now_ms;
	struct conn *all;		/* every live conn, for shutdown */
	struct conn *send_list;		/* conns that want a send this turn */
	struct conn *rearm_list;	/* conns whose recv needs re-arming */
	struct conn *defer_list;	/* conns with input put off to the next turn */
	bool pressing;			/* our bit in the broker's pressure mask */
	uint64_t flow_seen;		/* the mask when paused publishers were last checked */
	unsigned nflow_paused;		/* publishers held back (flow.c) */
	struct conn *flow_list;		/* ... them */
	uint64_t flow_pauses;		/* times one was */
	uint64_t input_deferred;	/* times that happened */
	struct conn *reap_list;		/* conns to finish closing */
	struct conn *refused_list;	/* password checks that could not start */
	struct smq_mpsc_batch *out;	/* [nshards]: pushed once per slice of CQEs */
	bool batched;			/* something is waiting in out[] */
	struct fwd_block **open_fwd;	/* [nshards]: forward block still being filled */
	uint32_t *fwd_count;		/* [nshards]: messages forwarded since the last push */
	uint64_t fwd_taken;		/* forwarded messages this shard has handled */
	bool inbox_deep;		/* fwd_pushed - fwd_taken is past the high mark (flow.c) */
	uint64_t inbox_deep_log_ms;
	struct imsg **open_int;		/* [nshards]: interest block still being filled */
	/* Interest sync (inbox.c): this shard's updates go out in generations,
	 * one per flush that carried any; every block says its generation and
	 * its receiver answers with the latest it applied, so a SUBACK can wait
	 * until all shards know its filters (core/subgate.c). */
	uint64_t int_gen;		/* generations pushed */
	bool int_dirty;			/* updates batched for generation int_gen + 1 */
	bool int_answer;		/* some int_peer[].due to send */
	uint64_t int_synced;		/* the generation every other shard applied */
	struct int_peer {
		uint64_t applied;	/* of our generations, what this shard applied */
		uint64_t due;		/* of its generations, what we applied and have
					 * not yet told it (0: nothing) */
	} *int_peer;			/* [nshards] */
	struct imsg *int_later, *int_later_tail;	/* interest blocks not yet applied
							 * (inbox.c: past a drain's budget) */
	uint64_t refuse_logged_ms;	/* rate limit of max_connections refusals */
	uint64_t tls_failures, tls_log_ms;	/* failed TLS connections; log rate limit */
	uint8_t *plain;			/* [SMQ_SHARD_PLAIN]: decrypted input, one read at a time */
	uint64_t enobufs;		/* recv ran out of provided buffers */
	uint64_t recv_buffers;		/* of them, how many the kernel has been given */
	uint64_t turns, waits;		/* loop turns; turns that slept */
	uint64_t sends, send_bytes;	/* sendmsg completions and bytes sent */
	uint64_t recvs, recv_bytes;	/* recv completions with data */
	uint64_t start_ms;		/* when the shard started (uptime) */
	/* Loop turns by duration, wake-up to the next wait: bucket i < 16
	 * counts turns of at most 2^(12+i) ns (4.1 us .. 134 ms), the last the
	 * rest. Read racily by the metrics endpoint (shard/metrics.c). */
	uint64_t turn_hist[SMQ_SHARD_TURN_BUCKETS];
	uint64_t turn_ns;		/* the sum of those turns' durations */

	/* start-up handshake with the control thread */
	int start_ret;
	char start_err[512];
};

/* Kinds of inbox message. */
enum imsg_type {
	IMSG_FORWARD,		/* routed PUBLISHes: a struct fwd_block (shard.c) */
	IMSG_FORWARD_SHARED,	/* a PUBLISH for one member of a shared subscription:
				 * ptr = owned struct fwd_shared (shard.c), len = share length */
	IMSG_INTEREST,		/* 0<->1 interest transitions of shard `shard`: ptr holds
				 * len bytes of entries u8 present | u32 length | filter */
	IMSG_HANDOFF,		/* a connection whose session lives here: fd, bytes */
	IMSG_STOP,		/* shut down */
	IMSG_RELOAD,		/* ptr = struct smq_reload: new auth and TLS settings */
	IMSG_AUTH,		/* ptr = struct smq_auth_job: a password verdict */
	IMSG_SYNC,		/* durability marker from shard: u64 = its generation */
	IMSG_SYNCED,		/* its answer: u64 = generation, present = written */
	IMSG_INTEREST_APPLIED,	/* u64 = the receiver's interest generation that
				 * shard `shard` has applied (answers IMSG_INTEREST) */
};

struct imsg {
	struct smq_mpsc_node node;	/* first: the inbox links through it */
	uint8_t type;
	bool present;
	uint16_t shard;
	uint16_t listener;		/* IMSG_HANDOFF: the listener index */
	int fd;
	uint32_t len;
	void *ptr;			/* msg, or owned filter / handoff bytes */
	struct smq_xform *xf;		/* IMSG_HANDOFF: the transport (TLS), owned */
	uint64_t u64;			/* IMSG_SYNC / IMSG_SYNCED, interest generations */
	struct imsg *later;		/* IMSG_INTEREST waiting in s->int_later */
	char peer[64];
};

/* An SQE, submitting first if the SQ is full. Never NULL. */
struct io_uring_sqe *smq_shard_sqe(struct smq_shard *s);

/* Queue a MSG_RING wake-up of @to on ring @from. */
void smq_shard_wake(struct io_uring *from, struct smq_shard *to);

/* IMSG_STOP: stop accepting and ask the engine to close everything. */
void smq_shard_start_stop(struct smq_shard *s);

/* accept.c: open this shard's socket on every listener (0, or -errno with
 * s->start_err set); close them. */
int smq_accept_open(struct smq_shard *s);
void smq_accept_close(struct smq_shard *s);
/* Arm the multishot accept of every listener that needs it (not while
 * stopping; not before a back-off after EMFILE/ENFILE ends). Returns ms
 * until a back-off ends, or -1. */
int64_t smq_accept_arm(struct smq_shard *s);
/* Cancel every accept (at stop). */
void smq_accept_cancel(struct smq_shard *s);
/* Any accept still in flight. */
bool smq_accept_armed(const struct smq_shard *s);
void smq_accept_on_cqe(struct smq_shard *s, struct shard_lst *sl, struct io_uring_cqe *cqe);

/* stats.c: log the engine's life totals (at shutdown). */
void smq_shard_log_totals(struct smq_shard *s);

/* The shard thread's body (arg: struct smq_shard *). */
void *smq_shard_main(void *arg);

/* Push one inbox message to @to and wake it if it sleeps; for threads that
 * are not shards (the control thread at shutdown). */
void smq_shard_post(struct smq_shard *to, struct imsg *m);
/* The same with the caller's own ring for the wake-up (NULL: as above). */
void smq_shard_post_on(struct io_uring *ring, struct smq_shard *to, struct imsg *m);

/* Called by the control thread once every shard thread has exited: drop
 * what is left in the inbox, free the engine and the ring. */
void smq_shard_fini(struct smq_shard *s);

/* Free an inbox message and what it owns (drops a msg reference, closes a
 * handed-off fd). */
void smq_imsg_free(struct imsg *m);

/* Shared by the shards: from broker.c. */
struct smq_shard *smq_broker_shard(struct smq_broker *b, unsigned i);
unsigned smq_broker_nshards_(const struct smq_broker *b);
/* Push-back (flow.c): the shards whose subscribers are backlogged (bit i:
 * shard i), and shard @shard setting or clearing its bit. Any thread. */
uint64_t smq_broker_pressure(struct smq_broker *b);
void smq_broker_press(struct smq_broker *b, unsigned shard, bool on);
struct smq_retain *smq_broker_retain(struct smq_broker *b);
unsigned smq_broker_nlisteners(const struct smq_broker *b);
struct smq_listener *smq_broker_listener(struct smq_broker *b, unsigned i);
/* The metrics listener (metrics_listener in the config), or NULL. */
struct smq_listener *smq_broker_metrics(struct smq_broker *b);
/* Count a new connection on @l against max_connections (broker-wide and
 * the listener's); false = refuse it. */
bool smq_broker_conn_get(struct smq_broker *b, struct smq_listener *l);
void smq_broker_conn_put(struct smq_broker *b, struct smq_listener *l);
/* A new struct smq_reload with a reference to the broker's current auth
 * and TLS contexts (shard start-up), or NULL on ENOMEM. */
struct smq_reload *smq_broker_reload_get(struct smq_broker *b);
/* Take over @r's references (dropping the old ones) and free @r. */
void smq_shard_apply_reload(struct smq_shard *s, struct smq_reload *r);
/* Drop @r's references and free it. */
void smq_reload_free(struct smq_reload *r);
/* The store of shard @i, or NULL without persistence. */
struct smq_store *smq_broker_store(struct smq_broker *b, unsigned i);
/* Block until every shard has started (and restored its store), so that
 * none fires a restored timer before the others know their interests. */
void smq_broker_wait_go(struct smq_broker *b);

/* Where shards send password checks (shard/authwork.h). */
struct smq_authwork *smq_broker_authwork(struct smq_broker *b);
/* Report the shard's start-up result to the control thread. */
void smq_broker_started(struct smq_broker *b, struct smq_shard *s, int ret);

#endif
