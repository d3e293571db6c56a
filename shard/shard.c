/* shard.c - the shard thread: one io_uring loop driving one broker engine.
 *
 * Each loop turn (RESEARCH.md section 4):
 *   1. drain the inbox (forwards, interest updates, hand-offs, stop),
 *   2. fire engine timers,
 *   3. arm sends for every connection that gained output, re-arm recvs,
 *   4. push the per-destination batches to other shards' inboxes and queue
 *      one MSG_RING wake-up per sleeping destination,
 *   5. submit everything and wait (only if the inbox is still empty),
 *   6. handle completions.
 *
 * user_data of every SQE is a pointer with an operation tag in its low 3
 * bits (struct conn and struct smq_shard are 8-byte aligned):
 *
 *	 63                                   3 2   0
 *	+---------------------------------------+-----+
 *	|        struct conn * / smq_shard *    | tag |
 *	+---------------------------------------+-----+
 *
 * Connection life here: accept -> recv (multishot, provided buffers) ->
 * engine -> output gathered into one sendmsg in flight -> close. A conn is
 * freed only when no SQE refers to it any more (@ops == 0): closing first
 * cancels the recv and waits for its last CQE and for any send in flight.
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
#include "net/uring.h"

enum ud_tag {
	UD_ACCEPT = 1,
	UD_RECV = 2,
	UD_SEND = 3,
	UD_WAKE = 4,		/* a MSG_RING from another shard */
	UD_IGNORE = 5,		/* cancels, link timeouts */
};

#define UD(p, tag) ((uint64_t)(uintptr_t)(p) | (tag))
#define UD_TAG(ud) ((unsigned)((ud) & 7u))
#define UD_PTR(ud) ((void *)(uintptr_t)((ud) & ~(uint64_t)7u))

#define SEND_IOV 16		/* x 64 KiB output chunks: up to 1 MiB per sendmsg */
#define BUF_COUNT 1024
#define BUF_SIZE 8192
#define BGID 0
#define CLOSE_FLUSH_MS 2000
#define CQE_SLICE 64		/* completions handled between send flushes */
#define CQE_TURN_MAX 4096	/* completions per loop turn, at most */

enum conn_state {
	CONN_OPEN,
	CONN_HANDOFF,		/* waiting for the recv to end, then moved */
	CONN_CLOSING,		/* waiting for SQEs to end, then freed */
};

struct conn {
	int fd;
	uint8_t state;
	bool recv_armed;
	bool send_busy;
	bool in_send_list;
	bool in_rearm_list;
	bool in_reap_list;
	bool close_after_flush;
	bool counted;		/* holds a max_connections slot */
	bool paused;		/* recv stopped: the client is not reading */
	int ops;		/* SQEs in flight that name this conn */
	int err;		/* reported to the engine at close */
	unsigned home;		/* hand-off destination */
	struct smq_econn *ec;
	struct conn *prev, *next;	/* shard->all */
	struct conn *next_send, *next_rearm, *next_reap;
	uint8_t *hbytes;	/* hand-off: bytes received so far */
	size_t hlen;
	struct msghdr mh;
	struct iovec iov[SEND_IOV];
	struct __kernel_timespec flush_ts;
	char peer[64];
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* An SQE, submitting first if the SQ is full. Never NULL: after a submit
 * the SQ has room (SUBMIT_ALL). */
static struct io_uring_sqe *get_sqe(struct smq_shard *s)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&s->ring);

	while (!sqe) {
		io_uring_submit(&s->ring);
		sqe = io_uring_get_sqe(&s->ring);
	}
	return sqe;
}

/* ---- inbox messages ---------------------------------------------------- */

/* What m->ptr of an IMSG_FORWARD_SHARED owns: a message reference and the
 * copied "$share/{group}/{filter}" (m->len bytes). */
struct fwd_shared {
	struct smq_msg *msg;
	uint8_t share[];
};

/* IMSG_FORWARD: up to FWD_BLOCK routed messages for one shard in one inbox
 * node, so a stream of publishes costs one allocation and one queue link per
 * block rather than per message. The block is filled by the sender until the
 * batch is pushed (then it belongs to the receiver) or until another kind of
 * message is batched after it (a later forward then starts a new block, so
 * per-sender order is kept). */
#define FWD_BLOCK 64

struct fwd_block {
	struct imsg m;		/* first: freeing the imsg frees the block */
	uint32_t n;
	struct smq_msg *msgs[FWD_BLOCK];
};

void smq_imsg_free(struct imsg *m)
{
	switch (m->type) {
	case IMSG_FORWARD: {
		struct fwd_block *b = (struct fwd_block *)m;

		for (uint32_t i = 0; i < b->n; i++)
			smq_msg_unref(b->msgs[i]);
		break;
	}
	case IMSG_FORWARD_SHARED:
		smq_msg_unref(((struct fwd_shared *)m->ptr)->msg);
		free(m->ptr);
		break;
	case IMSG_HANDOFF:
		close(m->fd);
		free(m->ptr);
		break;
	default:
		free(m->ptr);
		break;
	}
	free(m);
}

static void wake(struct io_uring *from, struct smq_shard *to)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(from);

	if (!sqe) {
		io_uring_submit(from);
		sqe = io_uring_get_sqe(from);
	}
	/* Don't set MSG_RING_CQE_SKIP: the CQE on the target is the wake-up. */
	io_uring_prep_msg_ring(sqe, to->ring_fd, 0, UD(NULL, UD_WAKE), 0);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
}

void smq_shard_post(struct smq_shard *to, struct imsg *m)
{
	struct io_uring ring;

	smq_mpsc_push(&to->inbox, &m->node);
	if (!smq_mpsc_need_wake(&to->inbox))
		return;
	/* Control thread path (rare): a throwaway ring just to send the wake. */
	if (io_uring_queue_init(4, &ring, 0))
		return;
	wake(&ring, to);
	io_uring_submit_and_wait(&ring, 0);
	io_uring_queue_exit(&ring);
}

static void batch_add(struct smq_shard *s, unsigned to, struct imsg *m)
{
	smq_mpsc_batch_add(&s->out[to], &m->node);
	s->open_fwd[to] = NULL;		/* later forwards go after m */
	s->batched = true;
}

/* One push per destination per turn; one wake per sleeping destination. */
static void flush_batches(struct smq_shard *s)
{
	unsigned n = smq_broker_nshards_(s->broker);

	if (!s->batched)
		return;
	s->batched = false;
	for (unsigned i = 0; i < n; i++) {
		struct smq_shard *to;

		if (!s->out[i].first)
			continue;
		to = smq_broker_shard(s->broker, i);
		s->open_fwd[i] = NULL;	/* pushed: the receiver owns it now */
		smq_mpsc_batch_push(&to->inbox, &s->out[i]);
		if (smq_mpsc_need_wake(&to->inbox))
			wake(&s->ring, to);
	}
}

/* ---- engine callbacks --------------------------------------------------- */

static void queue_send(struct smq_shard *s, struct conn *c)
{
	if (c->in_send_list)
		return;
	c->in_send_list = true;
	c->next_send = s->send_list;
	s->send_list = c;
}

static void queue_reap(struct smq_shard *s, struct conn *c)
{
	if (c->in_reap_list)
		return;
	c->in_reap_list = true;
	c->next_reap = s->reap_list;
	s->reap_list = c;
}

static void cancel_recv(struct smq_shard *s, struct conn *c)
{
	struct io_uring_sqe *sqe;

	if (!c->recv_armed)
		return;
	sqe = get_sqe(s);
	io_uring_prep_cancel64(sqe, UD(c, UD_RECV), 0);
	io_uring_sqe_set_data64(sqe, UD(NULL, UD_IGNORE));
}

/* Begin closing @c: no more input is processed; the conn is freed once
 * its SQEs have ended. */
static void conn_close(struct smq_shard *s, struct conn *c, int err)
{
	if (c->state == CONN_CLOSING)
		return;
	c->state = CONN_CLOSING;
	c->err = err;
	/* shutdown() ends a pending send or recv at once, whatever the peer does. */
	shutdown(c->fd, SHUT_RDWR);
	cancel_recv(s, c);
	queue_reap(s, c);
}

static void io_want_send(void *ctx, struct smq_econn *ec)
{
	queue_send(ctx, smq_econn_io(ec));
}

static void io_want_close(void *ctx, struct smq_econn *ec)
{
	struct smq_shard *s = ctx;
	struct conn *c = smq_econn_io(ec);

	if (c->state != CONN_OPEN)
		return;
	c->close_after_flush = true;
	if (c->send_busy || smq_econn_out_pending(ec))
		queue_send(s, c);	/* closes when the last byte is out */
	else
		conn_close(s, c, 0);
}

static void io_forward(void *ctx, unsigned to, struct smq_msg *msg)
{
	struct smq_shard *s = ctx;
	struct fwd_block *b = s->open_fwd[to];

	if (!b || b->n == FWD_BLOCK) {
		b = malloc(sizeof(*b));
		if (!b) {
			smq_msg_unref(msg);
			smq_warn("shard %u: out of memory forwarding a message to shard %u", s->idx,
				 to);
			return;
		}
		memset(&b->m, 0, sizeof(b->m));
		b->m.type = IMSG_FORWARD;
		b->n = 0;
		batch_add(s, to, &b->m);
		s->open_fwd[to] = b;
	}
	b->msgs[b->n++] = msg;
}

static void io_forward_shared(void *ctx, unsigned to, struct smq_msg *msg, struct smq_str share)
{
	struct smq_shard *s = ctx;
	struct imsg *m = calloc(1, sizeof(*m));
	struct fwd_shared *f = m ? malloc(sizeof(*f) + share.len) : NULL;

	if (!f) {
		free(m);
		smq_msg_unref(msg);
		smq_warn("shard %u: out of memory forwarding a message to shard %u", s->idx, to);
		return;
	}
	f->msg = msg;
	memcpy(f->share, share.p, share.len);
	m->type = IMSG_FORWARD_SHARED;
	m->ptr = f;
	m->len = share.len;
	batch_add(s, to, m);
}

static void io_interest(void *ctx, struct smq_str filter, bool present)
{
	struct smq_shard *s = ctx;
	unsigned n = smq_broker_nshards_(s->broker);

	for (unsigned i = 0; i < n; i++) {
		struct imsg *m;

		if (i == s->idx)
			continue;
		m = calloc(1, sizeof(*m));
		if (m)
			m->ptr = malloc(filter.len ? filter.len : 1);
		if (!m || !m->ptr) {
			/* Losing an interest update would silently lose messages. */
			smq_err("shard %u: out of memory sending an interest update", s->idx);
			abort();
		}
		memcpy(m->ptr, filter.p, filter.len);
		m->type = IMSG_INTEREST;
		m->len = filter.len;
		m->shard = (uint16_t)s->idx;
		m->present = present;
		batch_add(s, i, m);
	}
}

/* ---- connections -------------------------------------------------------- */

static void arm_recv(struct smq_shard *s, struct conn *c)
{
	struct io_uring_sqe *sqe = get_sqe(s);

	io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = BGID;
	io_uring_sqe_set_data64(sqe, UD(c, UD_RECV));
	c->recv_armed = true;
	c->ops++;
}

static void queue_rearm(struct smq_shard *s, struct conn *c)
{
	if (c->in_rearm_list)
		return;
	c->in_rearm_list = true;
	c->next_rearm = s->rearm_list;
	s->rearm_list = c;
}

static struct conn *conn_new(struct smq_shard *s, int fd, const char *peer)
{
	struct conn *c = calloc(1, sizeof(*c));
	int one = 1;

	if (!c)
		return NULL;
	c->fd = fd;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
	c->ec = smq_engine_conn_new(s->eng, c, c->peer, s->now_ms);
	if (!c->ec) {
		free(c);
		return NULL;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->next = s->all;
	if (s->all)
		s->all->prev = c;
	s->all = c;
	s->nconns++;
	return c;
}

static void conn_unlink_free(struct smq_shard *s, struct conn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		s->all = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->nconns--;
	free(c->hbytes);
	free(c);
}

/* The recv ended on a conn being handed off: move fd and bytes home. */
static void handoff_finish(struct smq_shard *s, struct conn *c)
{
	struct imsg *m = calloc(1, sizeof(*m));

	if (!m) {
		smq_warn("shard %u: out of memory handing off %s; closing it", s->idx, c->peer);
		close(c->fd);
		if (c->counted)
			smq_broker_conn_put(s->broker);
		conn_unlink_free(s, c);
		return;
	}
	m->type = IMSG_HANDOFF;
	m->fd = c->fd;
	m->ptr = c->hbytes;
	m->len = (uint32_t)c->hlen;
	snprintf(m->peer, sizeof(m->peer), "%s", c->peer);
	c->hbytes = NULL;
	batch_add(s, c->home, m);
	/* The max_connections slot travels with the socket. */
	conn_unlink_free(s, c);
}

static void handoff_start(struct smq_shard *s, struct conn *c)
{
	size_t len;
	int ret;

	ret = smq_engine_conn_detach(s->eng, c->ec, &c->hbytes, &len, &c->home);
	if (ret) {
		conn_close(s, c, ret);
		return;
	}
	c->hlen = len;
	c->ec = NULL;
	c->state = CONN_HANDOFF;
	smq_debug("shard %u: handing %s off to shard %u", s->idx, c->peer, c->home);
	if (c->recv_armed)
		cancel_recv(s, c);
	else
		queue_reap(s, c);
}

static void handoff_append(struct conn *c, const uint8_t *p, size_t n)
{
	uint8_t *nb = realloc(c->hbytes, c->hlen + n);

	if (!nb)
		return;		/* the CONNECT is already in; the client will time out */
	memcpy(nb + c->hlen, p, n);
	c->hbytes = nb;
	c->hlen += n;
}

/* Called from the loop for conns on the reap list: finish what can be. */
static void reap(struct smq_shard *s, struct conn *c)
{
	c->in_reap_list = false;
	if (c->ops)
		return;		/* the last CQE will queue it again */
	if (c->state == CONN_HANDOFF) {
		handoff_finish(s, c);
		return;
	}
	close(c->fd);
	if (c->ec)
		smq_engine_conn_closed(s->eng, c->ec, c->err);
	if (c->counted)
		smq_broker_conn_put(s->broker);
	conn_unlink_free(s, c);
}

static void start_send(struct smq_shard *s, struct conn *c)
{
	struct io_uring_sqe *sqe;
	int n;

	if (c->state != CONN_OPEN || c->send_busy)
		return;
	n = smq_econn_out_iov(c->ec, c->iov, SEND_IOV);
	if (n <= 0) {
		if (c->close_after_flush)
			conn_close(s, c, 0);
		return;
	}
	memset(&c->mh, 0, sizeof(c->mh));
	c->mh.msg_iov = c->iov;
	c->mh.msg_iovlen = (size_t)n;
	sqe = get_sqe(s);
	io_uring_prep_sendmsg(sqe, c->fd, &c->mh, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, UD(c, UD_SEND));
	c->send_busy = true;
	c->ops++;
	if (c->close_after_flush) {
		/* A peer that never reads must not hold the close forever. */
		sqe->flags |= IOSQE_IO_LINK;
		c->flush_ts.tv_sec = CLOSE_FLUSH_MS / 1000;
		c->flush_ts.tv_nsec = 0;
		sqe = get_sqe(s);
		io_uring_prep_link_timeout(sqe, &c->flush_ts, 0);
		io_uring_sqe_set_data64(sqe, UD(NULL, UD_IGNORE));
	}
}

/* ---- completions -------------------------------------------------------- */

static void on_accept(struct smq_shard *s, struct io_uring_cqe *cqe)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char peer[64] = "?";
	struct conn *c;
	int fd = cqe->res;

	if (!(cqe->flags & IORING_CQE_F_MORE))
		s->accept_armed = false;
	if (fd < 0) {
		if (fd != -ECANCELED && fd != -EBADF)
			smq_warn("shard %u: accept failed: %s", s->idx, strerror(-fd));
		return;
	}
	if (!getpeername(fd, (struct sockaddr *)&ss, &sl))
		smq_addr_format((struct sockaddr *)&ss, sl, peer, sizeof(peer));
	if (s->stopping) {
		close(fd);
		return;
	}
	if (!smq_broker_conn_get(s->broker)) {
		smq_notice("refusing connection from %s: max_connections (%ld) reached", peer,
			   (long)s->cfg->max_connections);
		close(fd);
		return;
	}
	c = conn_new(s, fd, peer);
	if (!c) {
		smq_warn("shard %u: out of memory accepting %s", s->idx, peer);
		smq_broker_conn_put(s->broker);
		close(fd);
		return;
	}
	c->counted = true;
	smq_debug("shard %u: accepted %s", s->idx, peer);
	arm_recv(s, c);
}

static void on_recv_data(struct smq_shard *s, struct conn *c, const uint8_t *p, size_t n)
{
	if (c->state == CONN_HANDOFF) {
		handoff_append(c, p, n);
		return;
	}
	if (c->state != CONN_OPEN)
		return;
	if (smq_engine_conn_input(s->eng, c->ec, p, n, s->now_ms) == SMQ_ENGINE_HANDOFF) {
		handoff_start(s, c);
		return;
	}
	/* A client that sends but does not read would make its acks pile up
	 * without bound: stop reading until its output drains (on_send). */
	if (c->state == CONN_OPEN && !c->paused && smq_econn_backlogged(c->ec, s->eng)) {
		c->paused = true;
		cancel_recv(s, c);
	}
}

static void on_recv(struct smq_shard *s, struct conn *c, struct io_uring_cqe *cqe)
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
		queue_reap(s, c);
	} else if (res == 0) {
		conn_close(s, c, 0);		/* orderly EOF */
	} else if (c->paused) {
		/* Cancelled for backpressure: on_send re-arms once output drains. */
	} else if (res > 0 || res == -ENOBUFS || res == -ECANCELED) {
		/* Multishot ended (buffers ran out, the kernel chose to, or a
		 * backpressure pause was lifted before its cancel landed):
		 * re-arm after this turn's buffers have been recycled. */
		if (res == -ENOBUFS)
			s->enobufs++;
		queue_rearm(s, c);
	} else {
		conn_close(s, c, res);
	}
}

static void on_send(struct smq_shard *s, struct conn *c, struct io_uring_cqe *cqe)
{
	c->send_busy = false;
	c->ops--;
	if (c->state != CONN_OPEN) {
		queue_reap(s, c);
		return;
	}
	if (cqe->res < 0) {
		conn_close(s, c, cqe->res);
		return;
	}
	s->sends++;
	s->send_bytes += (uint64_t)cqe->res;
	smq_econn_out_done(s->eng, c->ec, (size_t)cqe->res, s->now_ms);
	if (c->state != CONN_OPEN)
		return;
	if (c->paused && !smq_econn_backlogged(c->ec, s->eng)) {
		c->paused = false;
		queue_rearm(s, c);
	}
	if (smq_econn_out_pending(c->ec) || c->close_after_flush)
		queue_send(s, c);
}

static void handle_cqe(struct smq_shard *s, struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);

	switch (UD_TAG(ud)) {
	case UD_ACCEPT:
		on_accept(s, cqe);
		break;
	case UD_RECV:
		on_recv(s, UD_PTR(ud), cqe);
		break;
	case UD_SEND:
		on_send(s, UD_PTR(ud), cqe);
		break;
	default:		/* wake-ups and cancels carry nothing */
		break;
	}
}

/* ---- inbox -------------------------------------------------------------- */

static void adopt_handoff(struct smq_shard *s, struct imsg *m)
{
	struct conn *c;

	if (s->stopping) {
		smq_broker_conn_put(s->broker);
		smq_imsg_free(m);
		return;
	}
	c = conn_new(s, m->fd, m->peer);
	if (!c) {
		smq_warn("shard %u: out of memory adopting %s", s->idx, m->peer);
		smq_broker_conn_put(s->broker);
		smq_imsg_free(m);
		return;
	}
	c->counted = true;
	m->fd = -1;
	arm_recv(s, c);
	if (smq_engine_conn_input(s->eng, c->ec, m->ptr, m->len, s->now_ms) ==
	    SMQ_ENGINE_HANDOFF) {
		/* Cannot happen with a stable hash; refuse rather than loop. */
		smq_err("shard %u: connection %s handed off twice; closing", s->idx, c->peer);
		conn_close(s, c, -EPROTO);
	}
	free(m->ptr);
	free(m);
}

static void start_stop(struct smq_shard *s)
{
	struct io_uring_sqe *sqe;

	if (s->stopping)
		return;
	s->stopping = true;
	if (s->listen_fd >= 0) {
		sqe = get_sqe(s);
		io_uring_prep_cancel64(sqe, UD(s, UD_ACCEPT), 0);
		io_uring_sqe_set_data64(sqe, UD(NULL, UD_IGNORE));
	}
	smq_engine_close_all(s->eng, SMQ_RC_SERVER_SHUTTING_DOWN);
}

static void drain_inbox(struct smq_shard *s)
{
	struct smq_mpsc_node *n;

	while ((n = smq_mpsc_pop(&s->inbox))) {
		struct imsg *m = (struct imsg *)n;

		switch (m->type) {
		case IMSG_FORWARD: {
			struct fwd_block *b = (struct fwd_block *)m;

			for (uint32_t i = 0; i < b->n; i++)
				smq_engine_deliver(s->eng, b->msgs[i], s->now_ms);
			free(b);
			break;
		}
		case IMSG_FORWARD_SHARED: {
			struct fwd_shared *f = m->ptr;
			struct smq_str share = { f->share, m->len };

			smq_engine_deliver_shared(s->eng, f->msg, share, s->now_ms);
			free(f);
			free(m);
			break;
		}
		case IMSG_INTEREST:
			smq_engine_interest_apply(s->eng, (struct smq_str){ m->ptr, m->len },
						  m->shard, m->present);
			smq_imsg_free(m);
			break;
		case IMSG_HANDOFF:
			adopt_handoff(s, m);
			break;
		case IMSG_STOP:
			free(m);
			start_stop(s);
			break;
		}
	}
}

/* ---- the loop ----------------------------------------------------------- */

static void arm_accept(struct smq_shard *s)
{
	struct io_uring_sqe *sqe = get_sqe(s);

	io_uring_prep_multishot_accept(sqe, s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, UD(s, UD_ACCEPT));
	s->accept_armed = true;
}

static void before_wait(struct smq_shard *s)
{
	while (s->send_list) {
		struct conn *c = s->send_list;

		s->send_list = c->next_send;
		c->in_send_list = false;
		start_send(s, c);
	}
	while (s->rearm_list) {
		struct conn *c = s->rearm_list;

		s->rearm_list = c->next_rearm;
		c->in_rearm_list = false;
		if (c->state == CONN_OPEN && !c->recv_armed && !c->paused)
			arm_recv(s, c);
	}
	while (s->reap_list) {
		struct conn *c = s->reap_list;

		s->reap_list = c->next_reap;
		reap(s, c);
	}
	if (!s->stopping && !s->accept_armed && s->listen_fd >= 0)
		arm_accept(s);
	flush_batches(s);
}

static bool loop_done(struct smq_shard *s)
{
	return s->stopping && !s->nconns && !s->accept_armed && !s->reap_list;
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

	while (total < CQE_TURN_MAX &&
	       (n = io_uring_peek_batch_cqe(&s->ring, cqes, CQE_SLICE)) > 0) {
		for (unsigned i = 0; i < n; i++)
			handle_cqe(s, cqes[i]);
		io_uring_cq_advance(&s->ring, n);
		total += n;
		/* Messages from other shards wait no longer than a slice,
		 * however busy this shard's own sockets keep it. */
		if (!smq_mpsc_empty(&s->inbox))
			drain_inbox(s);
		if (s->send_list || s->batched) {
			before_wait(s);
			io_uring_submit(&s->ring);
		}
	}
}

static void loop(struct smq_shard *s)
{
	while (!loop_done(s)) {
		int64_t next;

		s->now_ms = mono_ms();
		s->turns++;
		drain_inbox(s);
		next = smq_engine_tick(s->eng, s->now_ms);
		before_wait(s);
		if (loop_done(s))
			break;
		if (s->send_list || s->reap_list || io_uring_cq_ready(&s->ring) ||
		    !smq_mpsc_prepare_sleep(&s->inbox)) {
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
		s->now_ms = mono_ms();
		handle_completions(s);
	}
}

static int shard_setup(struct smq_shard *s)
{
	struct smq_engine_io io = {
		.ctx = s,
		.want_send = io_want_send,
		.want_close = io_want_close,
		.forward = io_forward,
		.forward_shared = io_forward_shared,
		.interest = io_interest,
	};
	unsigned n = smq_broker_nshards_(s->broker);
	int ret, port;

	ret = smq_uring_init(&s->ring, 4096, 65536, s->start_err, sizeof(s->start_err));
	if (ret)
		return ret;
	ret = smq_bufring_init(&s->bufs, &s->ring, BGID, BUF_COUNT, BUF_SIZE);
	if (ret) {
		snprintf(s->start_err, sizeof(s->start_err),
			 "cannot register io_uring provided buffers: %s (Linux 5.19 or later needed; "
			 "raise ulimit -l)", strerror(-ret));
		goto out_ring;
	}
	s->ring_fd = s->ring.ring_fd;
	s->out = calloc(n, sizeof(*s->out));
	s->open_fwd = calloc(n, sizeof(*s->open_fwd));
	s->eng = smq_engine_new(s->idx, n, s->cfg, smq_broker_retain(s->broker), &io);
	if (!s->out || !s->open_fwd || !s->eng) {
		ret = -ENOMEM;
		snprintf(s->start_err, sizeof(s->start_err), "out of memory starting shard %u",
			 s->idx);
		goto out_free;
	}
	port = smq_broker_listen_port(s->broker);
	s->listen_fd = s->idx == 0 && port ? smq_listen_check_free(s->cfg->bind_address,
								   (uint16_t)port) : 0;
	if (!s->listen_fd)
		s->listen_fd = smq_listen_open(s->cfg->bind_address, (uint16_t)port, 4096);
	if (s->listen_fd < 0) {
		ret = s->listen_fd;
		snprintf(s->start_err, sizeof(s->start_err), "cannot listen on %.255s:%d: %s",
			 s->cfg->bind_address, port, strerror(-ret));
		goto out_free;
	}
	arm_accept(s);
	return 0;
out_free:
	if (s->eng)
		smq_engine_free(s->eng);
	s->eng = NULL;
	free(s->out);
	s->out = NULL;
	free(s->open_fwd);
	s->open_fwd = NULL;
	smq_bufring_fini(&s->bufs, &s->ring);
out_ring:
	io_uring_queue_exit(&s->ring);
	return ret;
}

/* What the shard's engine counted over its life: messages in and out, and
 * everything refused or dropped at a limit (a notice if anything was). */
static void log_engine_totals(struct smq_shard *s)
{
	const struct smq_engine_stats *st = smq_engine_stats(s->eng);
	uint64_t dropped = st->dropped_qos0 + st->dropped_queue_full + st->dropped_too_large +
			   st->dropped_expired + st->dropped_sys;

	smq_log(dropped || st->protocol_errors ? SMQ_LOG_NOTICE : SMQ_LOG_INFO,
		"shard %u totals: %llu connects (%llu refused), %llu messages in, %llu out; "
		"dropped: %llu QoS 0 over client_max_write_buffer, %llu over the session queue "
		"limits, %llu too large for the client, %llu expired, %llu to $SYS; %llu protocol "
		"errors, %llu keepalive timeouts", s->idx,
		(unsigned long long)st->connects, (unsigned long long)st->connects_refused,
		(unsigned long long)st->msgs_in, (unsigned long long)st->msgs_out,
		(unsigned long long)st->dropped_qos0, (unsigned long long)st->dropped_queue_full,
		(unsigned long long)st->dropped_too_large, (unsigned long long)st->dropped_expired,
		(unsigned long long)st->dropped_sys, (unsigned long long)st->protocol_errors,
		(unsigned long long)st->keepalive_timeouts);
}

void *smq_shard_main(void *arg)
{
	struct smq_shard *s = arg;
	int ret;

	s->listen_fd = -1;
	ret = shard_setup(s);
	smq_broker_started(s->broker, s, ret);
	if (ret)
		return NULL;
	smq_info("shard %u running", s->idx);
	loop(s);
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	smq_info("shard %u: %llu loop turns (%llu slept), %llu recvs (%llu bytes), %llu sends "
		 "(%llu bytes), recv out of buffers %llu times", s->idx,
		 (unsigned long long)s->turns, (unsigned long long)s->waits,
		 (unsigned long long)s->recvs, (unsigned long long)s->recv_bytes,
		 (unsigned long long)s->sends, (unsigned long long)s->send_bytes,
		 (unsigned long long)s->enobufs);
	log_engine_totals(s);
	/* Anything still batched for others goes out; they free it at exit. */
	flush_batches(s);
	io_uring_submit(&s->ring);
	return NULL;
}

void smq_shard_fini(struct smq_shard *s)
{
	struct smq_mpsc_node *n;

	while ((n = smq_mpsc_pop(&s->inbox)))
		smq_imsg_free((struct imsg *)n);
	if (s->eng) {
		smq_engine_free(s->eng);
		smq_bufring_fini(&s->bufs, &s->ring);
		io_uring_queue_exit(&s->ring);
	}
	s->eng = NULL;
	free(s->out);
	s->out = NULL;
	free(s->open_fwd);
	s->open_fwd = NULL;
}
