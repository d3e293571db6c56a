/* shard.c - the shard thread: one io_uring loop driving one broker engine.
 *
 * Each loop turn:
 *   1. drain the inbox (forwards, interest updates, hand-offs, stop),
 *   2. fire engine timers,
 *   3. arm sends for every connection that gained output, re-arm recvs,
 *   4. push the per-destination batches to other shards' inboxes and queue
 *      one MSG_RING wake-up per sleeping destination,
 *   5. submit everything and wait (only if the inbox is still empty),
 *   6. handle completions.
 *
 * The user_data layout is drawn in shard.h; a connection's life is in
 * conn.c, accepting in accept.c, hand-off in handoff.c, the inbox protocol
 * in inbox.c.
 */
#include "shard/shard.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/engine.h"
#include "core/log.h"
#include "core/msg.h"
#include "net/listen.h"
#include "core/auth.h"
#include "net/tls.h"
#include "net/uring.h"
#include "shard/conn.h"
#include "shard/handoff.h"
#include "shard/durable.h"
#include "shard/inbox.h"
#include "shard/persist.h"
#include "shard/slice.h"
#include "shard/flow.h"
#include "shard/sys.h"

#define BUF_COUNT 1024
#define BUF_SIZE 8192
/* Buffers the kernel gets at first; it gets more (up to BUF_COUNT) when a
 * recv finds none left. Each one it was given ends up resident, so a
 * quiet broker keeps 512 KiB a shard here rather than 8 MiB. */
#define BUF_INITIAL 64
#define CQE_SLICE 64		/* completions handled between send flushes */
#define CQE_TURN_MAX 4096	/* completions per loop turn, at most */

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t mono_ms(void)
{
	return mono_ns() / 1000000u;
}

/* A turn of @ns into the histogram of shard.h: bucket i holds turns of at
 * most 2^(12+i) ns, found from the bit length, no search. */
static void turn_count(struct smq_shard *s, uint64_t ns)
{
	unsigned b = 0;

	if (ns > (1ull << SMQ_SHARD_TURN_MIN_LOG2))
		b = 64u - (unsigned)__builtin_clzll(ns - 1) - SMQ_SHARD_TURN_MIN_LOG2;
	if (b >= SMQ_SHARD_TURN_BUCKETS)
		b = SMQ_SHARD_TURN_BUCKETS - 1;
	s->turn_hist[b]++;
	s->turn_ns += ns;
}

/* An SQE, submitting first if the SQ is full. Never NULL: after a submit
 * the SQ has room (SUBMIT_ALL). */
struct io_uring_sqe *smq_shard_sqe(struct smq_shard *s)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);

	while (!sqe) {
		io_uring_submit(&s->ring);
		sqe = io_uring_get_sqe(&s->ring);
	}
	return sqe;
}

static void handle_cqe(struct smq_shard *s, struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);

	switch (UD_TAG(ud)) {
	case UD_ACCEPT:
		smq_accept_on_cqe(s, UD_PTR(ud), cqe);
		break;
	case UD_RECV:
		smq_conn_on_recv(s, UD_PTR(ud), cqe);
		break;
	case UD_SEND:
		smq_conn_on_send(s, UD_PTR(ud), cqe);
		break;
	case UD_LINGER:
		smq_conn_on_linger(s, UD_PTR(ud));
		break;
	case UD_HTTP_TIMER:
		smq_conn_on_http_timer(s, UD_PTR(ud));
		break;
	case UD_WAKE:
		if (UD_PTR(ud))		/* the store's eventfd */
			smq_persist_on_cqe(s, cqe->res);
		break;
	default:		/* wake-ups and cancels carry nothing */
		break;
	}
}

void smq_shard_start_stop(struct smq_shard *s)
{
	if (s->stopping)
		return;
	s->stopping = true;
	smq_accept_cancel(s);
	smq_engine_close_all(s->eng, SMQ_RC_SERVER_SHUTTING_DOWN);
	smq_conn_close_http_all(s);
}

static void before_wait(struct smq_shard *s)
{
	smq_flow_turn(s);
	/* first: an epoch that completes at once releases acks to send now */
	if (s->dur)
		smq_durable_turn_end(s);
	smq_conn_refuse_unchecked(s);
	while (s->send_list) {
		struct conn *c = s->send_list;

		s->send_list = c->next_send;
		c->in_send_list = false;
		smq_conn_start_send(s, c);
	}
	while (s->rearm_list) {
		struct conn *c = s->rearm_list;

		s->rearm_list = c->next_rearm;
		c->in_rearm_list = false;
		if (c->state != CONN_OPEN || c->recv_armed || c->paused)
			continue;
		if (smq_conn_deferred(c))
			smq_slice_resume(s, c);	/* what it read first, then the socket */
		else
			smq_conn_arm_recv(s, c);
	}
	while (s->reap_list) {
		struct conn *c = s->reap_list;

		s->reap_list = c->next_reap;
		smq_conn_reap(s, c);
	}
	s->accept_wait_ms = smq_accept_arm(s);
	smq_inbox_flush(s);
}

static bool loop_done(struct smq_shard *s)
{
	return s->stopping && !s->nconns && !smq_accept_armed(s) && !s->reap_list;
}

/* Handle the completions that are ready, in slices: after each slice the
 * sends it produced are submitted at once, so a turn that reads megabytes
 * from publishers keeps their subscribers' sockets busy meanwhile instead
 * of sending only at the end. A turn stops after CQE_TURN_MAX completions
 * so the inbox and timers are never starved. */
static void handle_completions(struct smq_shard *s)
{
	struct io_uring_cqe *cqes[CQE_SLICE];
	unsigned n, total = 0;

	smq_slice_run(s);	/* input put off from the last turn goes first */
	while (total < CQE_TURN_MAX &&
	       (n = io_uring_peek_batch_cqe(&s->ring, cqes, CQE_SLICE)) > 0) {
		for (unsigned i = 0; i < n; i++)
			handle_cqe(s, cqes[i]);
		io_uring_cq_advance(&s->ring, n);
		total += n;
		/* Messages from other shards wait no longer than a slice,
		 * however busy this shard's own sockets keep it. */
		if (!smq_mpsc_empty(&s->inbox) || s->int_later)
			smq_inbox_drain(s);
		if (s->send_list || s->batched) {
			before_wait(s);
			io_uring_submit(&s->ring);
		}
	}
}

/* A turn is timed from the wake-up to the next wait (the completions, the
 * inbox, timers, sends): one more clock read per turn than the loop needs
 * for its own clock (a vDSO call: 80 ns measured on the 2-vCPU test VM,
 * against turns of 10 us and more under load). */
static void loop(struct smq_shard *s)
{
	uint64_t woke_ns = mono_ns();

	while (!loop_done(s)) {
		int64_t next, sys_wait;
		uint64_t top_ns = mono_ns();

		s->now_ms = top_ns / 1000000u;
		smq_engine_set_now_ns(s->eng, top_ns);
		s->turns++;
		smq_inbox_drain(s);
		smq_engine_tick(s->eng, s->now_ms);
		sys_wait = s->sys && !s->stopping ? smq_sys_tick(s->sys, s->now_ms) : -1;
		before_wait(s);
		if (loop_done(s))
			break;
		/* Closing connections in before_wait may have armed timers (a
		 * will delay, a session expiry): the sleep is computed after it,
		 * or an idle shard would oversleep them. */
		next = smq_engine_tick(s->eng, s->now_ms);
		if (s->accept_wait_ms >= 0 && (next < 0 || s->accept_wait_ms < next))
			next = s->accept_wait_ms;
		if (sys_wait >= 0 && (next < 0 || sys_wait < next))
			next = sys_wait;
		if (s->dur && s->store_wait_ms >= 0 && (next < 0 || s->store_wait_ms < next))
			next = s->store_wait_ms;
		turn_count(s, mono_ns() - woke_ns);
		if (s->send_list || s->reap_list || s->defer_list || s->int_later ||
		    io_uring_cq_ready(&s->ring) || !smq_mpsc_prepare_sleep(&s->inbox)) {
			io_uring_submit_and_get_events(&s->ring);
		} else {
			struct __kernel_timespec ts = {
				.tv_sec = next / 1000, .tv_nsec = (next % 1000) * 1000000
			};
			struct io_uring_cqe *cqe;

			s->waits++;
			io_uring_submit_and_wait_timeout(&s->ring, &cqe, 1, next >= 0 ? &ts : NULL,
							 NULL);
			smq_mpsc_woke(&s->inbox);
		}
		woke_ns = mono_ns();
		s->now_ms = woke_ns / 1000000u;
		smq_engine_set_now_ns(s->eng, woke_ns);
		/* The engine's clock must be now before completions close
		 * connections: conn_closed arms will delays and expiries from it. */
		smq_engine_tick(s->eng, s->now_ms);
		handle_completions(s);
	}
}

static void free_owned(struct smq_shard *s);

static int shard_setup(struct smq_shard *s)
{
	struct smq_engine_io io = {
		.ctx = s,
		.want_send = smq_conn_io_want_send,
		.want_close = smq_conn_io_want_close,
		.forward = smq_inbox_io_forward,
		.forward_shared = smq_inbox_io_forward_shared,
		.interest = smq_inbox_io_interest,
		.interest_ticket = smq_inbox_io_interest_ticket,
		.auth_check = smq_conn_io_auth_check,
	};
	unsigned n = smq_broker_nshards_(s->broker);
	struct smq_reload *r = NULL;
	int ret;

	s->store = smq_broker_store(s->broker, s->idx);
	s->store_efd = -1;
	s->store_wait_ms = -1;
	if (s->store) {
		io.store = smq_persist_io_store;
		io.hold = smq_durable_hold;
	}
	ret = smq_uring_init(&s->ring, s->ring_sq, s->ring_cq, s->start_err, sizeof(s->start_err));
	if (ret)
		return ret;
	ret = smq_bufring_init(&s->bufs, &s->ring, SMQ_SHARD_BGID, BUF_COUNT, BUF_SIZE,
			       BUF_INITIAL);
	if (ret) {
		snprintf(s->start_err, sizeof(s->start_err),
			 "cannot register io_uring provided buffers: %s (Linux 5.19 or later needed; "
			 "raise ulimit -l)", strerror(-ret));
		goto out_ring;
	}
	s->recv_buffers = s->bufs.provided;
	s->ring_fd = s->ring.ring_fd;
	s->out = calloc(n, sizeof(*s->out));
	s->open_fwd = calloc(n, sizeof(*s->open_fwd));
	s->fwd_count = calloc(n, sizeof(*s->fwd_count));
	s->open_int = calloc(n, sizeof(*s->open_int));
	s->int_peer = calloc(n, sizeof(*s->int_peer));
	s->eng = smq_engine_new(s->idx, n, s->cfg, smq_broker_retain(s->broker), &io);
	s->plain = malloc(SMQ_SHARD_PLAIN);
	r = smq_broker_reload_get(s->broker);
	if (!s->out || !s->open_fwd || !s->fwd_count || !s->open_int || !s->int_peer || !s->eng || !s->plain ||
	    !r) {
		smq_reload_free(r);
		ret = -ENOMEM;
		snprintf(s->start_err, sizeof(s->start_err), "out of memory starting shard %u",
			 s->idx);
		goto out_free;
	}
	smq_shard_apply_reload(s, r);
	s->start_ms = mono_ms();
	if (s->idx == 0 && s->cfg->sys_interval > 0) {
		s->sys = smq_sys_new(s, (unsigned)s->cfg->sys_interval, mono_ms());
		if (!s->sys) {
			ret = -ENOMEM;
			snprintf(s->start_err, sizeof(s->start_err), "out of memory starting $SYS");
			goto out_free;
		}
	}
	if (s->store && (ret = smq_persist_setup(s)))
		goto out_free;
	/* restored subscriptions told the other shards: before they start */
	smq_inbox_flush(s);
	ret = smq_accept_open(s);
	if (ret)
		goto out_free;
	smq_accept_arm(s);
	return 0;
out_free:
	smq_persist_stop(s);
	if (s->eng)
		smq_engine_free(s->eng);
	s->eng = NULL;
	free_owned(s);
	free(s->out);
	s->out = NULL;
	free(s->open_fwd);
	s->open_fwd = NULL;
	free(s->fwd_count);
	s->fwd_count = NULL;
	free(s->open_int);
	s->open_int = NULL;
	free(s->int_peer);
	s->int_peer = NULL;
	smq_bufring_fini(&s->bufs, &s->ring);
out_ring:
	io_uring_queue_exit(&s->ring);
	return ret;
}

void smq_shard_apply_reload(struct smq_shard *s, struct smq_reload *r)
{
	smq_auth_unref(s->auth);
	s->auth = r->auth;
	smq_engine_set_auth(s->eng, s->auth);
	for (unsigned i = 0; i < SMQ_CONFIG_MAX_LISTENERS; i++) {
		/* Connections keep a reference to the context they began with. */
		smq_tls_ctx_unref(s->tls[i]);
		s->tls[i] = r->tls[i];
	}
	free(r);
}

/* What the shard owns apart from the engine and the ring. */
static void free_owned(struct smq_shard *s)
{
	smq_auth_unref(s->auth);
	s->auth = NULL;
	smq_sys_free(s->sys);
	s->sys = NULL;
	for (unsigned i = 0; i < SMQ_CONFIG_MAX_LISTENERS; i++) {
		smq_tls_ctx_unref(s->tls[i]);
		s->tls[i] = NULL;
	}
	free(s->plain);
	s->plain = NULL;
}

void *smq_shard_main(void *arg)
{
	struct smq_shard *s = arg;
	int ret;

	ret = shard_setup(s);
	smq_broker_started(s->broker, s, ret);
	if (ret)
		return NULL;
	/* Every shard restored and announced its interests before any timer
	 * of a restored session (a will, an expiry) fires here. */
	smq_broker_wait_go(s->broker);
	/* The clock first: a hand-off adopted here starts its keepalive
	 * from it (a zero clock made the first tick time the client out). */
	s->now_ms = mono_ms();
	smq_engine_set_now_ns(s->eng, s->now_ms * 1000000u);
	while (!smq_mpsc_empty(&s->inbox) || s->int_later)
		smq_inbox_drain(s);
	smq_info("shard %u running", s->idx);
	loop(s);
	smq_accept_close(s);
	smq_persist_stop(s);
	smq_shard_log_totals(s);
	/* Anything still batched for others goes out; they free it at exit. */
	smq_inbox_flush(s);
	io_uring_submit(&s->ring);
	smq_tls_thread_exit();
	return NULL;
}

void smq_shard_fini(struct smq_shard *s)
{
	struct smq_mpsc_node *n;

	while ((n = smq_mpsc_pop(&s->inbox)))
		smq_imsg_free((struct imsg *)n);
	smq_inbox_forget_later(s);
	if (s->eng) {
		smq_engine_free(s->eng);
		smq_bufring_fini(&s->bufs, &s->ring);
		io_uring_queue_exit(&s->ring);
	}
	s->eng = NULL;
	free_owned(s);
	free(s->out);
	s->out = NULL;
	free(s->open_fwd);
	s->open_fwd = NULL;
	free(s->fwd_count);
	s->fwd_count = NULL;
	free(s->open_int);
	s->open_int = NULL;
	free(s->int_peer);
	s->int_peer = NULL;
}
