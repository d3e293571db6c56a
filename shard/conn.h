/* conn.h - one client connection as the shard loop sees it: a socket, the
 * SQEs in flight on it, and the engine connection it feeds. Internal to
 * shard/; every function here runs on the owning shard's thread.
 *
 * Life: accept (accept.c) or hand-off (handoff.c) -> smq_conn_new() ->
 * recv (multishot, provided buffers) -> engine -> output gathered into one
 * sendmsg in flight -> smq_conn_close() -> freed by smq_conn_reap() once no
 * SQE refers to it any more (@ops == 0): closing first cancels the recv and
 * waits for its last CQE and for any send in flight.
 */
#ifndef SMQ_SHARD_CONN_H
#define SMQ_SHARD_CONN_H

#include <linux/time_types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "core/codec.h"

struct io_uring_cqe;
struct smq_auth;
struct smq_econn;
struct smq_http_conn;
struct smq_listener;
struct smq_shard;

#define SEND_IOV 64		/* iovecs per sendmsg: a by-reference PUBLISH takes two, and
				 * 16 let one send carry only eight 1 KiB messages */
#define CLOSE_FLUSH_MS 2000
#define LINGER_MAX_BYTES (1u << 20)	/* input discarded while lingering, at most */

enum conn_state {
	CONN_OPEN,
	CONN_HANDOFF,		/* waiting for the recv to end, then moved */
	CONN_CLOSING,		/* waiting for SQEs to end, then freed */
};

/* The state of one sendmsg in flight: the kernel may read @mh and @iov
 * until the send's CQE, and @flush_ts until the SQEs are submitted. Most
 * connections are idle most of the time, so this is allocated when a send
 * starts and freed when it ends, not held by every conn. */
struct conn_send {
	struct msghdr mh;
	struct iovec iov[SEND_IOV];
	struct __kernel_timespec flush_ts;
};

/* What few connections ever need: a linger or HTTP deadline, input kept
 * for a hand-off or for a later turn, the HTTP side of a metrics
 * connection, the lists only such connections are on. Allocated by
 * smq_conn_rare() on first use and kept until the conn is freed. */
struct conn_rare {
	struct __kernel_timespec linger_ts;	/* read by the linger timeout SQE */
	struct __kernel_timespec http_ts;	/* read by the HTTP deadline SQE */
	uint32_t linger_bytes;	/* input discarded while lingering */
	unsigned home;		/* hand-off destination */
	uint8_t *hbytes;	/* hand-off: bytes received so far */
	size_t hlen;
	uint8_t *defer;		/* slice.c: input read beyond the turn's share */
	size_t defer_len, defer_cap;
	struct conn *next_defer;	/* s->defer_list (slice.c) */
	struct conn *next_refused;	/* s->refused_list: a password check that
					 * could not start */
	struct smq_http_conn *http;	/* the metrics listener's kind (metrics.h), or NULL */
};

/* One per connection, held for its whole life: kept within jemalloc's
 * 128-byte class (_Static_assert in conn.c) by the layout below (flags as
 * bits, small counters first, so that they pack), by holding the send
 * state only during a send and rare state apart. */
struct conn {
	int fd;
	int err;		/* reported to the engine at close */
	/* input fairness (slice.c): this turn's share, kept to 32 bits (the
	 * turn's low bits, bytes saturated, the clock's low bits: a share is
	 * timed within one turn, far below 4 s); what was read beyond it
	 * waits in rare->defer (and the conn on s->defer_list) */
	uint32_t slice_turn, slice_bytes, slice_t0;
	uint8_t state;
	uint8_t ops;		/* SQEs in flight that name this conn (at most five:
				 * recv, send, linger, HTTP deadline, password check) */
	bool recv_armed : 1;
	bool send_busy : 1;	/* @snd is in flight */
	bool in_send_list : 1;
	bool in_rearm_list : 1;
	bool in_reap_list : 1;
	bool close_after_flush : 1;
	bool counted : 1;	/* holds a max_connections slot */
	bool paused : 1;	/* recv stopped: the client is not reading, or the
				 * store is behind (store_paused) */
	bool store_paused : 1;
	bool flow_paused : 1;	/* push-back: it publishes to backlogged shards */
	bool identity_set : 1;	/* use_identity_as_username: CN given to the engine */
	bool lingering : 1;	/* write side shut: draining input until EOF or timeout */
	bool linger_armed : 1;	/* its timeout SQE is in flight (rare->linger_ts) */
	bool xfailed : 1;	/* the transport failed: send its last words (a TLS
				 * alert), then close; the engine gets nothing more */
	bool http_timer_armed : 1;	/* its deadline SQE is in flight (rare->http_ts) */
	bool in_defer_list : 1;	/* rare->next_defer */
	uint64_t flow_mask;	/* push-back: the shards it publishes to (flow.c) */
	struct conn *next_flow;	/* s->flow_list */
	struct smq_listener *lst;	/* the listener it came in on */
	struct smq_xform *x;	/* transport below the engine (TLS), or NULL: the
				 * socket carries MQTT bytes as they are */
	struct smq_econn *ec;		/* NULL for an HTTP conn */
	struct conn *prev, *next;	/* shard->all */
	struct conn *next_send, *next_rearm, *next_reap;
	struct conn_rare *rare;	/* NULL until first needed, then kept */
	struct conn_send *snd;	/* while send_busy (and while one is prepared) */
	/* "1.2.3.4:5678" for logs, owned: the only copy (the engine
	 * connection borrows it, see smq_engine_conn_new()) */
	char *peer;
};

/* A connection for @fd (owned from now on) with an engine connection;
 * linked into s->all. NULL on ENOMEM (fd untouched). */
struct conn *smq_conn_new(struct smq_shard *s, int fd, const char *peer,
			  struct smq_listener *l);

/* c's rare state, allocated (zeroed) on first use; NULL on ENOMEM. */
struct conn_rare *smq_conn_rare(struct conn *c);

/* c's HTTP side when it is a metrics connection, else NULL. */
static inline struct smq_http_conn *smq_conn_http(const struct conn *c)
{
	return c->rare ? c->rare->http : NULL;
}

/* Bytes of input c read beyond its share and keeps for a later turn. */
static inline size_t smq_conn_deferred(const struct conn *c)
{
	return c->rare ? c->rare->defer_len : 0;
}

/* Unlink and free @c without closing anything (its fd moved or closed). */
void smq_conn_unlink_free(struct smq_shard *s, struct conn *c);

/* Begin closing @c: no more input is processed; the conn is freed once
 * its SQEs have ended. @err goes to the engine (0: clean). */
void smq_conn_close(struct smq_shard *s, struct conn *c, int err);

/* Bytes for @c's engine (through its transport, if any). */
void smq_conn_feed(struct smq_shard *s, struct conn *c, const uint8_t *p, size_t n);

void smq_conn_arm_recv(struct smq_shard *s, struct conn *c);
void smq_conn_cancel_recv(struct smq_shard *s, struct conn *c);

/* The store caught up: read again every connection paused for it. */
void smq_conn_store_resume(struct smq_shard *s);
void smq_conn_queue_send(struct smq_shard *s, struct conn *c);
void smq_conn_queue_rearm(struct smq_shard *s, struct conn *c);
void smq_conn_queue_reap(struct smq_shard *s, struct conn *c);

/* Before the ring waits: start queued sends, re-arm recvs, free what can
 * be freed. */
void smq_conn_start_send(struct smq_shard *s, struct conn *c);
void smq_conn_reap(struct smq_shard *s, struct conn *c);

/* Completions of c's recv and send SQEs. */
void smq_conn_on_recv(struct smq_shard *s, struct conn *c, struct io_uring_cqe *cqe);
void smq_conn_on_send(struct smq_shard *s, struct conn *c, struct io_uring_cqe *cqe);
void smq_conn_on_linger(struct smq_shard *s, struct conn *c);

/* Put the listener's transport (TLS) under @c. 0 or -errno. */
int smq_conn_attach_transport(struct smq_shard *s, struct conn *c);

/* MQTT bytes for c's engine connection (after the transport, if any). */
void smq_conn_input_plain(struct smq_shard *s, struct conn *c, const uint8_t *p, size_t n);

/* Plaintext from c's transport that is already decrypted but not yet
 * given to the engine (after a hand-off): feed it now. */
void smq_conn_drain_transport(struct smq_shard *s, struct conn *c);

/* The verdict of a password check for one of s's conns; frees @j. */
struct smq_auth_job;
void smq_conn_auth_answer(struct smq_shard *s, struct smq_auth_job *j);
/* Answer "refused" to every check that could not be handed to the workers
 * (out of memory); from the loop, outside any engine call. */
void smq_conn_refuse_unchecked(struct smq_shard *s);

/* The metrics listener's connections: HTTP requests answered by
 * shard/metrics.c instead of an engine connection; the same recv, send,
 * linger and reap as MQTT, plus a deadline timer (UD_HTTP_TIMER). */
struct conn *smq_conn_new_http(struct smq_shard *s, int fd, const char *peer,
			       struct smq_listener *l);
void smq_conn_on_http_timer(struct smq_shard *s, struct conn *c);
/* At stop: close every HTTP conn (the engine closes the MQTT ones). */
void smq_conn_close_http_all(struct smq_shard *s);

/* Engine callbacks (struct smq_engine_io); @ctx is the shard. */
void smq_conn_io_want_send(void *ctx, struct smq_econn *ec);
void smq_conn_io_want_close(void *ctx, struct smq_econn *ec);
void smq_conn_io_auth_check(void *ctx, struct smq_econn *ec, const struct smq_auth *auth,
			    struct smq_str user, struct smq_str pass);

#endif
