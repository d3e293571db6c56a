/* conn.c - a connection's life on its shard: recv into provided buffers,
 * input to the engine, output gathered into one sendmsg in flight, close.
 *
 * Invariant: a conn is freed only by smq_conn_reap() when no SQE names it
 * (@ops == 0), so a late CQE never points at freed memory.
 * Left to others: accepting (accept.c), moving a conn to another shard
 * (handoff.c), what the bytes mean (the engine).
 */
#include "shard/conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/engine.h"
#include "core/log.h"
#include "net/tls.h"
#include "net/ws.h"
#include "net/xform.h"
#include "net/xstack.h"
#include "shard/authwork.h"
#include "shard/handoff.h"
#include "shard/metrics.h"
#include "shard/shard.h"
#include "shard/slice.h"
#include "shard/flow.h"

void smq_conn_queue_send(struct smq_shard *s, struct conn *c)
{
	if (c->in_send_list)
		return;
	c->in_send_list = true;
	c->next_send = s->send_list;
	s->send_list = c;
}

void smq_conn_queue_reap(struct smq_shard *s, struct conn *c)
{
	if (c->in_reap_list)
		return;
	c->in_reap_list = true;
	c->next_reap = s->reap_list;
	s->reap_list = c;
}

void smq_conn_cancel_recv(struct smq_shard *s, struct conn *c)
{
	struct io_uring_sqe *sqe;

	if (!c->recv_armed)
		return;
	sqe = smq_shard_sqe(s);
	io_uring_prep_cancel64(sqe, UD(c, UD_RECV), 0);
	io_uring_sqe_set_data64(sqe, UD(NULL, UD_IGNORE));
}

/* Begin closing @c: no more input is processed; the conn is freed once
 * its SQEs have ended. */
void smq_conn_close(struct smq_shard *s, struct conn *c, int err)
{
	if (c->state == CONN_CLOSING)
		return;
	c->state = CONN_CLOSING;
	c->err = err;
	/* shutdown() ends a pending send or recv at once, whatever the peer does. */
	shutdown(c->fd, SHUT_RDWR);
	smq_conn_cancel_recv(s, c);
	if (c->linger_armed) {
		struct io_uring_sqe *sqe = smq_shard_sqe(s);

		io_uring_prep_timeout_remove(sqe, UD(c, UD_LINGER), 0);
		io_uring_sqe_set_data64(sqe, UD(NULL, UD_IGNORE));
	}
	if (c->http_timer_armed) {
		struct io_uring_sqe *sqe = smq_shard_sqe(s);

		io_uring_prep_timeout_remove(sqe, UD(c, UD_HTTP_TIMER), 0);
		io_uring_sqe_set_data64(sqe, UD(NULL, UD_IGNORE));
	}
	smq_conn_queue_reap(s, c);
}

/* The engine's last words (a CONNACK or DISCONNECT with a reason) are out:
 * shut the write side and read on, discarding, until the client closes or
 * SMQ_ENGINE_LINGER_MS pass. Closing at once would make the kernel answer
 * the client's pipelined packets with a reset, which can destroy the
 * reason before the client reads it. Not at shutdown: stopping waits for
 * nobody. */
static void linger(struct smq_shard *s, struct conn *c)
{
	struct io_uring_sqe *sqe;
	struct conn_rare *r;

	if (s->stopping || c->xfailed || c->err || !(r = smq_conn_rare(c))) {
		smq_conn_close(s, c, c->err);
		return;
	}
	c->lingering = true;
	shutdown(c->fd, SHUT_WR);
	r->linger_ts.tv_sec = SMQ_ENGINE_LINGER_MS / 1000;
	r->linger_ts.tv_nsec = (SMQ_ENGINE_LINGER_MS % 1000) * 1000000L;
	sqe = smq_shard_sqe(s);
	io_uring_prep_timeout(sqe, &r->linger_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, UD(c, UD_LINGER));
	c->linger_armed = true;
	c->ops++;
	if (c->paused) {
		c->paused = false;
		smq_conn_queue_rearm(s, c);
	}
}

void smq_conn_on_linger(struct smq_shard *s, struct conn *c)
{
	c->linger_armed = false;
	c->ops--;
	if (c->state == CONN_OPEN)
		smq_conn_close(s, c, 0);
	else
		smq_conn_queue_reap(s, c);
}

void smq_conn_io_want_send(void *ctx, struct smq_econn *ec)
{
	smq_conn_queue_send(ctx, smq_econn_io(ec));
}

static bool ws_goodbye(struct conn *c);

void smq_conn_io_want_close(void *ctx, struct smq_econn *ec)
{
	struct smq_shard *s = ctx;
	struct conn *c = smq_econn_io(ec);

	if (c->state != CONN_OPEN)
		return;
	c->close_after_flush = true;
	if (c->send_busy || smq_econn_out_pending(ec) || (c->x && smq_xform_out_pending(c->x)) ||
	    ws_goodbye(c))
		smq_conn_queue_send(s, c);	/* closes when the last byte is out */
	else
		smq_conn_close(s, c, 0);
}

/* The engine parked a CONNECT whose password needs PBKDF2: send the check
 * to the workers. The job holds the conn (an op) until the answer is
 * back, so the conn outlives a close meanwhile. */
void smq_conn_io_auth_check(void *ctx, struct smq_econn *ec, const struct smq_auth *auth,
			    struct smq_str user, struct smq_str pass)
{
	struct smq_shard *s = ctx;
	struct conn *c = smq_econn_io(ec);
	struct smq_auth_job *j = smq_auth_job_new(s, c, (struct smq_auth *)auth, user.p, user.len,
						  pass.p, pass.len);

	c->ops++;
	if (!j || smq_authwork_submit(smq_broker_authwork(s->broker), j)) {
		struct conn_rare *r = smq_conn_rare(c);

		smq_auth_job_free(j);
		smq_warn("shard %u: cannot check the password of %s; refusing it", s->idx, c->peer);
		if (!r) {	/* not even that: it goes without its CONNACK */
			c->ops--;
			smq_conn_close(s, c, -ENOMEM);
			return;
		}
		/* Not smq_engine_auth_done() here: we are inside the engine's
		 * call for this connection. The loop answers it next. */
		r->next_refused = s->refused_list;
		s->refused_list = c;
	}
}

void smq_conn_refuse_unchecked(struct smq_shard *s)
{
	while (s->refused_list) {
		struct conn *c = s->refused_list;

		s->refused_list = c->rare->next_refused;	/* rare: set by _auth_check() */
		c->ops--;
		if (c->state == CONN_OPEN)
			smq_engine_auth_done(s->eng, c->ec, false, s->now_ms);
		else
			smq_conn_queue_reap(s, c);
	}
}

void smq_conn_auth_answer(struct smq_shard *s, struct smq_auth_job *j)
{
	struct conn *c = j->conn;

	c->ops--;
	if (c->state == CONN_OPEN)
		smq_engine_auth_done(s->eng, c->ec, j->ok, s->now_ms);
	else
		smq_conn_queue_reap(s, c);
	smq_auth_job_free(j);
}

void smq_conn_arm_recv(struct smq_shard *s, struct conn *c)
{
	struct io_uring_sqe *sqe = smq_shard_sqe(s);

	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = SMQ_SHARD_BGID;
	io_uring_sqe_set_data64(sqe, UD(c, UD_RECV));
	c->recv_armed = true;
	c->ops++;
}

void smq_conn_queue_rearm(struct smq_shard *s, struct conn *c)
{
	if (c->in_rearm_list)
		return;
	c->in_rearm_list = true;
	c->next_rearm = s->rearm_list;
	s->rearm_list = c;
}

/* An idle connection costs this, the engine's struct econn and its
 * session: keep it in jemalloc's 128-byte class (the next is 160). */
_Static_assert(sizeof(struct conn) <= 128, "struct conn grew");

struct conn_rare *smq_conn_rare(struct conn *c)
{
	if (!c->rare)
		c->rare = calloc(1, sizeof(*c->rare));
	return c->rare;
}

struct conn *smq_conn_new(struct smq_shard *s, int fd, const char *peer,
			  struct smq_listener *l)
{
	struct conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (!c)
		return NULL;
	c->fd = fd;
	c->lst = l;
	c->peer = strdup(peer ? peer : "?");
	if (!c->peer)
		goto out_free_conn;
	c->ec = smq_engine_conn_new(s->eng, c, c->peer, s->now_ms);
	if (!c->ec)
		goto out_free_peer;
	if (s->cfg->set_tcp_nodelay)	/* mosquitto's set_tcp_nodelay; shardmq's default: true */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->next = s->all;
	if (s->all)
		s->all->prev = c;
	s->all = c;
	s->nconns++;
	return c;
out_free_peer:
	free(c->peer);
out_free_conn:
	free(c);
	return NULL;
}

void smq_conn_unlink_free(struct smq_shard *s, struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		s->all = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nconns--;
	smq_slice_forget(s, c);
	smq_flow_forget(s, c);
	if (c->x)
		smq_xform_free(c->x);
	if (c->rare) {
		smq_metrics_conn_free(c->rare->http);
		free(c->rare->hbytes);
	}
	free(c->rare);
	free(c->snd);		/* NULL: a send's CQE frees it */
	free(c->peer);
	free(c);
}

void smq_conn_reap(struct smq_shard *s, struct conn *c)
{
	c->in_reap_list = false;
	if (c->ops)
		return;		/* the last CQE will queue it again */
	if (c->state == CONN_HANDOFF) {
		smq_handoff_finish(s, c);
		return;
	}
	close(c->fd);
	if (c->ec)
		smq_engine_conn_closed(s->eng, c->ec, c->err);
	if (c->counted)
		smq_broker_conn_put(s->broker, c->lst);
	if (smq_conn_http(c))
		atomic_fetch_sub_explicit(&c->lst->conns, 1, memory_order_relaxed);
	smq_conn_unlink_free(s, c);
}

static void transport_failed(struct smq_shard *s, struct conn *c, int err);

/* Fill @iov (SEND_IOV entries) with what goes to the socket next: the
 * engine's bytes as they are, or encrypted by the transport first (it takes
 * plaintext until its own buffer is full). 0: nothing to send; -1: c is
 * closing. */
static int out_iov(struct smq_shard *s, struct conn *c, struct iovec *iov)
{
	if (smq_conn_http(c))
		return smq_metrics_conn_out_iov(c->rare->http, iov, SEND_IOV);
	if (!c->x)
		return smq_econn_out_iov(c->ec, iov, SEND_IOV);
	while (!c->xfailed && smq_econn_out_pending(c->ec)) {
		int n = smq_econn_out_iov(c->ec, iov, SEND_IOV);
		ssize_t took;

		if (!n)
			break;	/* the rest waits behind a SUBACK's gate */
		took = smq_xform_write(c->x, iov, n);
		if (took < 0) {
			transport_failed(s, c, (int)took);
			return -1;
		}
		if (!took)
			break;
		smq_econn_out_done(s->eng, c->ec, (size_t)took, s->now_ms);
		if (c->state != CONN_OPEN)
			return -1;
	}
	return smq_xform_out_iov(c->x, iov, SEND_IOV);
}

/* The engine closes a WebSocket connection and its last bytes are out:
 * say goodbye with a close frame (1000) rather than a bare TCP close, which
 * a browser reports as an abnormal closure (1006). True if one is queued. */
static bool ws_goodbye(struct conn *c)
{
	struct smq_xform *u = smq_xstack_upper(c->x);
	struct smq_ws *w = smq_ws_from_xform(u ? u : c->x);

	return w && !c->xfailed && smq_ws_open(w) && smq_ws_close(w, 1000) == 0 &&
	       smq_xform_out_pending(c->x);
}

/* The send state lives only while a send does (struct conn_send): taken
 * here, given back by on_send. jemalloc's thread cache makes the pair a
 * few nanoseconds, next to a sendmsg's microseconds. */
static struct conn_send *send_get(struct conn *c)
{
	if (!c->snd)
		c->snd = malloc(sizeof(*c->snd));
	return c->snd;
}

static void send_put(struct conn *c)
{
	free(c->snd);
	c->snd = NULL;
}

void smq_conn_start_send(struct smq_shard *s, struct conn *c)
{
	struct io_uring_sqe *sqe;
	struct conn_send *snd;
	int n;

	if (c->state != CONN_OPEN || c->send_busy)
		return;
	snd = send_get(c);
	if (!snd) {
		smq_conn_close(s, c, -ENOMEM);
		return;
	}
	n = out_iov(s, c, snd->iov);
	if (n < 0)
		return;		/* closing: unlink_free frees snd */
	if (n == 0 && c->close_after_flush && !c->lingering && ws_goodbye(c))
		n = smq_xform_out_iov(c->x, snd->iov, SEND_IOV);
	if (n == 0) {
		send_put(c);
		if (c->close_after_flush && !c->lingering)
			linger(s, c);
		return;
	}
	memset(&snd->mh, 0, sizeof(snd->mh));
	snd->mh.msg_iov = snd->iov;
	snd->mh.msg_iovlen = (size_t)n;
	sqe = smq_shard_sqe(s);
	io_uring_prep_sendmsg(sqe, c->fd, &snd->mh, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, UD(c, UD_SEND));
	c->send_busy = true;
	c->ops++;
	if (c->close_after_flush) {
		/* A peer that never reads must not hold the close forever. */
		sqe->flags |= IOSQE_IO_LINK;
		snd->flush_ts.tv_sec = CLOSE_FLUSH_MS / 1000;
		snd->flush_ts.tv_nsec = 0;
		sqe = smq_shard_sqe(s);
		io_uring_prep_link_timeout(sqe, &snd->flush_ts, 0);
		io_uring_sqe_set_data64(sqe, UD(NULL, UD_IGNORE));
	}
}

/* ---- transports ---------------------------------------------------------- */

/* A WebSocket layer for @c, its limits from the config: the upgrade request
 * is bounded by websockets_headers_size; a frame or message larger than
 * max_packet_size is refused (close 1009), as clients send an MQTT packet
 * per message and a larger one could carry no packet the engine takes. */
static struct smq_xform *ws_layer(struct smq_shard *s)
{
	struct smq_ws_opts o = {
		.headers_max = (size_t)s->cfg->websockets_headers_size,
		.frame_max = s->cfg->max_packet_size,
		.msg_max = s->cfg->max_packet_size,
	};
	struct smq_ws *w = smq_ws_new(&o);

	return w ? smq_ws_xform(w) : NULL;
}

int smq_conn_attach_transport(struct smq_shard *s, struct conn *c)
{
	struct smq_tls_ctx *ctx = s->tls[c->lst->idx];
	struct smq_xform *tls = NULL, *ws = NULL;
	struct smq_tls *t;

	if (c->lst->tls) {
		if (!ctx)
			return -EINVAL;
		t = smq_tls_new(ctx, NULL);
		if (!t)
			return -ENOMEM;
		tls = smq_tls_xform(t);
	}
	if (c->lst->cfg.protocol == SMQ_PROTO_WEBSOCKETS) {
		ws = ws_layer(s);
		if (!ws)
			goto out_nomem;
	}
	c->x = tls && ws ? smq_xstack_new(tls, ws) : tls ? tls : ws;	/* wss: WS over TLS */
	if (tls && ws && !c->x)
		goto out_nomem;
	return 0;
out_nomem:
	smq_xform_free(ws);
	smq_xform_free(tls);
	return -ENOMEM;
}

/* The TLS and WebSocket layers of c's transport, or NULL. */
static struct smq_tls *conn_tls(struct conn *c)
{
	struct smq_xform *l = smq_xstack_lower(c->x);

	return smq_tls_from_xform(l ? l : c->x);
}

static struct smq_ws *conn_ws(struct conn *c)
{
	struct smq_xform *u = smq_xstack_upper(c->x);

	return smq_ws_from_xform(u ? u : c->x);
}

/* A transport failed: log why (rate-limited: a scanner can cause this at
 * line rate) and close. */
static void transport_failed(struct smq_shard *s, struct conn *c, int err)
{
	struct smq_tls *t = conn_tls(c);
	struct smq_ws *w = conn_ws(c);
	const char *why = t ? smq_tls_error(t) : NULL;
	bool is_ws = !why && w && smq_ws_error(w);

	if (is_ws)
		why = smq_ws_error(w);
	/* close_notify or a WebSocket close: the peer said goodbye (our
	 * close frame in answer still goes out) */
	if (err == -ECONNRESET && !smq_xform_out_pending(c->x)) {
		smq_conn_close(s, c, 0);
		return;
	}
	if (err != -ECONNRESET) {
		s->tls_failures++;	/* TLS and WebSocket failures alike */
		if (smq_log_due(&s->tls_log_ms, s->now_ms, 1000))
			smq_notice("%s from %s on %s failed: %s (%llu failures so far; logged at "
				   "most once a second)", is_ws ? "WebSocket" : "TLS", c->peer,
				   c->lst->name, why ? why : strerror(-err),
				   (unsigned long long)s->tls_failures);
	}
	if (!c->xfailed && smq_xform_out_pending(c->x)) {
		/* The alert or close frame tells the peer why (e.g. "unknown
		 * CA", 1009); the flush is bounded by CLOSE_FLUSH_MS like any
		 * close. */
		c->xfailed = true;
		c->err = err == -ECONNRESET ? 0 : err;
		c->close_after_flush = true;
		smq_conn_queue_send(s, c);
		return;
	}
	smq_conn_close(s, c, err == -ECONNRESET ? 0 : err);
}

/* use_identity_as_username: once the handshake is done, the engine learns
 * the certificate's CN before it sees the CONNECT. */
static int give_identity(struct conn *c)
{
	struct smq_tls *t = conn_tls(c);
	char cn[SMQ_TLS_CN_MAX];

	if (c->identity_set || !t || !c->lst->cfg.use_identity_as_username)
		return 0;
	if (smq_tls_peer_cn(t, cn, sizeof(cn)))
		cn[0] = '\0';
	c->identity_set = true;
	return smq_econn_set_cert_user(c->ec, cn);
}


/* Bytes from the socket through the transport; plaintext to the engine. */
static void transport_input(struct smq_shard *s, struct conn *c, const uint8_t *p, size_t n)
{
	int ret = smq_xform_feed(c->x, p, n);

	if (smq_xform_out_pending(c->x))
		smq_conn_queue_send(s, c);	/* handshake records, alerts */
	if (ret) {
		transport_failed(s, c, ret);
		return;
	}
	smq_conn_drain_transport(s, c);
}

void smq_conn_drain_transport(struct smq_shard *s, struct conn *c)
{
	uint8_t *buf = s->plain;
	ssize_t got;

	if (!c->x)
		return;
	while (c->state == CONN_OPEN && (got = smq_xform_read(c->x, buf, SMQ_SHARD_PLAIN)) != 0) {
		if (got < 0) {
			transport_failed(s, c, (int)got);
			return;
		}
		smq_conn_input_plain(s, c, buf, (size_t)got);
	}
	if (smq_xform_out_pending(c->x))
		smq_conn_queue_send(s, c);
}

/* ---- HTTP (the metrics listener) ---------------------------------------- */

/* c->rare is set (smq_conn_new_http() made sure). */
static void http_timer_arm(struct smq_shard *s, struct conn *c, int64_t ms)
{
	struct io_uring_sqe *sqe = smq_shard_sqe(s);
	struct __kernel_timespec *ts = &c->rare->http_ts;

	ts->tv_sec = ms / 1000;
	ts->tv_nsec = (ms % 1000) * 1000000L;
	io_uring_prep_timeout(sqe, ts, 0, 0);
	io_uring_sqe_set_data64(sqe, UD(c, UD_HTTP_TIMER));
	c->http_timer_armed = true;
	c->ops++;
}

struct conn *smq_conn_new_http(struct smq_shard *s, int fd, const char *peer,
			       struct smq_listener *l)
{
	struct conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (!c)
		return NULL;
	c->fd = fd;
	c->lst = l;
	c->peer = strdup(peer ? peer : "?");
	if (!c->peer || !smq_conn_rare(c) || !(c->rare->http = smq_metrics_conn_new(s->now_ms))) {
		free(c->rare);
		free(c->peer);
		free(c);
		return NULL;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->next = s->all;
	if (s->all)
		s->all->prev = c;
	s->all = c;
	s->nconns++;
	http_timer_arm(s, c, SMQ_METRICS_IDLE_MS);
	return c;
}

/* After the HTTP side took input, output or a deadline: send what it
 * queued, and close after it once it answered for the last time. */
static void http_after(struct smq_shard *s, struct conn *c, int ret)
{
	if (ret) {
		smq_conn_close(s, c, ret);
		return;
	}
	if (smq_metrics_conn_done(c->rare->http))	/* rare: an HTTP conn has it */
		c->close_after_flush = true;
	if (smq_metrics_conn_out_pending(c->rare->http) || c->close_after_flush)
		smq_conn_queue_send(s, c);
}

/* One timer per conn, re-armed lazily: requests move the deadline without
 * touching the ring, and an expiry that finds it moved sleeps again. */
void smq_conn_on_http_timer(struct smq_shard *s, struct conn *c)
{
	int64_t left;

	c->http_timer_armed = false;
	c->ops--;
	if (c->state != CONN_OPEN) {
		smq_conn_queue_reap(s, c);
		return;
	}
	if (c->lingering)
		return;		/* its linger timeout ends it */
	left = smq_metrics_conn_expire(c->rare->http, s->now_ms);
	if (left > 0) {
		http_timer_arm(s, c, left);
		return;
	}
	http_after(s, c, 0);
}

void smq_conn_close_http_all(struct smq_shard *s)
{
	for (struct conn *c = s->all; c; c = c->next)
		if (smq_conn_http(c))
			smq_conn_close(s, c, 0);
}

/* ---- completions -------------------------------------------------------- */
static void on_recv_data(struct smq_shard *s, struct conn *c, const uint8_t *p, size_t n)
{
	if (c->state == CONN_HANDOFF) {
		smq_handoff_append(c, p, n);
		return;
	}
	if (c->state != CONN_OPEN || c->xfailed)
		return;
	if (c->lingering) {	/* rare is set: linger() made sure */
		c->rare->linger_bytes += (uint32_t)n;
		if (c->rare->linger_bytes > LINGER_MAX_BYTES)
			smq_conn_close(s, c, 0);
		return;
	}
	if (smq_conn_http(c)) {
		http_after(s, c, smq_metrics_conn_input(s, c->rare->http, p, n));
		return;
	}
	if (smq_slice_defer(s, c, p, n))
		return;		/* it had its share of this turn (slice.c) */
	smq_conn_feed(s, c, p, n);
}

void smq_conn_feed(struct smq_shard *s, struct conn *c, const uint8_t *p, size_t n)
{
	if (c->x)
		transport_input(s, c, p, n);
	else
		smq_conn_input_plain(s, c, p, n);
}

void smq_conn_input_plain(struct smq_shard *s, struct conn *c, const uint8_t *p, size_t n)
{
	if (c->state != CONN_OPEN)
		return;
	if (c->x && give_identity(c)) {
		smq_conn_close(s, c, -ENOMEM);
		return;
	}
	if (smq_engine_conn_input(s->eng, c->ec, p, n, s->now_ms) == SMQ_ENGINE_HANDOFF) {
		smq_handoff_start(s, c);
		return;
	}
	/* A client that sends but does not read would make its acks pile up
	 * without bound: stop reading until its output drains (on_send). */
	if (c->state == CONN_OPEN && !c->paused && smq_econn_backlogged(c->ec, s->eng)) {
		c->paused = true;
		smq_conn_cancel_recv(s, c);
	}
	/* The store is behind: what clients send becomes records faster than
	 * the disk takes them. Stop reading until it caught up (durable.c). */
	if (c->state == CONN_OPEN && !c->paused && s->store_stalled) {
		c->paused = true;
		c->store_paused = true;
		smq_conn_cancel_recv(s, c);
	}
	/* It publishes to subscribers that do not keep up: hold it back
	 * until they do (flow.c). */
	if (c->state == CONN_OPEN)
		smq_flow_after_input(s, c);
}

void smq_conn_on_recv(struct smq_shard *s, struct conn *c, struct io_uring_cqe *cqe)
{
	bool more = cqe->flags & IORING_CQE_F_MORE;
	int res = cqe->res;

	if (res > 0 && (cqe->flags & IORING_CQE_F_BUFFER)) {
		uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);

		s->recvs++;
		s->recv_bytes += (uint64_t)res;
		on_recv_data(s, c, smq_bufring_buf(&s->bufs, bid), (size_t)res);
		smq_bufring_recycle(&s->bufs, bid);
	}
	if (more)
		return;
	c->recv_armed = false;
	c->ops--;
	if (c->state != CONN_OPEN) {
		smq_conn_queue_reap(s, c);
	} else if (res == 0) {
		smq_conn_close(s, c, 0);		/* orderly EOF */
	} else if (c->paused) {
		/* Cancelled for backpressure: on_send re-arms once output drains. */
	} else if (res > 0 || res == -ENOBUFS || res == -ECANCELED) {
		/* Multishot ended (buffers ran out, the kernel chose to, or a
		 * backpressure pause was lifted before its cancel landed):
		 * re-arm after this turn's buffers have been recycled. */
		if (res == -ENOBUFS) {
			s->enobufs++;
			if (smq_bufring_grow(&s->bufs))
				s->recv_buffers = s->bufs.provided;
		}
		smq_conn_queue_rearm(s, c);
	} else {
		smq_conn_close(s, c, res);
	}
}

void smq_conn_store_resume(struct smq_shard *s)
{
	for (struct conn *c = s->all; c; c = c->next) {
		if (!c->store_paused)
			continue;
		c->store_paused = false;
		if (c->state != CONN_OPEN || c->flow_paused || smq_econn_backlogged(c->ec, s->eng))
			continue;	/* on_send (flow.c) resumes it */
		c->paused = false;
		smq_conn_queue_rearm(s, c);
	}
}

void smq_conn_on_send(struct smq_shard *s, struct conn *c, struct io_uring_cqe *cqe)
{
	c->send_busy = false;
	c->ops--;
	send_put(c);
	if (c->state != CONN_OPEN) {
		smq_conn_queue_reap(s, c);
		return;
	}
	if (cqe->res < 0) {
		smq_conn_close(s, c, cqe->res);
		return;
	}
	s->sends++;
	s->send_bytes += (uint64_t)cqe->res;
	if (smq_conn_http(c)) {
		smq_metrics_conn_out_done(c->rare->http, (size_t)cqe->res);
		http_after(s, c, smq_metrics_conn_resume(s, c->rare->http));
		return;
	}
	if (c->x)
		smq_xform_out_done(c->x, (size_t)cqe->res);
	else
		smq_econn_out_done(s->eng, c->ec, (size_t)cqe->res, s->now_ms);
	if (c->state != CONN_OPEN)
		return;
	if (c->paused && !c->store_paused && !c->flow_paused &&
	    !smq_econn_backlogged(c->ec, s->eng)) {
		c->paused = false;
		smq_conn_queue_rearm(s, c);
	}
	if (smq_econn_out_pending(c->ec) || (c->x && smq_xform_out_pending(c->x)) ||
	    c->close_after_flush)
		smq_conn_queue_send(s, c);
}
