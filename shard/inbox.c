/* inbox.c - the messages shards send each other: routed publishes (in
 * blocks), shared-subscription deliveries, interest transitions, hand-offs
 * and the stop request; how they are batched, pushed, woken and drained.
 *
 * Memory: every inbox message is malloc'd by the sender and freed by the
 * receiver (smq_imsg_free() for whatever it still owns).
 */
#include "shard/inbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/engine.h"
#include "core/log.h"
#include "core/msg.h"
#include "net/xform.h"
#include "shard/authwork.h"
#include "shard/conn.h"
#include "shard/durable.h"
#include "shard/handoff.h"
#include "shard/shard.h"

#define INBOX_SLICE 64		/* inbox nodes (forward blocks: up to 64 msgs each) per drain */

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
		if (m->xf)
			smq_xform_free(m->xf);
		break;
	case IMSG_RELOAD:
		smq_reload_free(m->ptr);
		break;
	case IMSG_AUTH:
		smq_auth_job_free(m->ptr);
		break;
	case IMSG_INTEREST:
		break;		/* its entries live inside the block */
	default:
		free(m->ptr);
		break;
	}
	free(m);
}

void smq_shard_wake(struct io_uring *from, struct smq_shard *to)
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

void smq_shard_post_on(struct io_uring *ring, struct smq_shard *to, struct imsg *m)
{
	if (!ring) {
		smq_shard_post(to, m);
		return;
	}
	smq_mpsc_push(&to->inbox, &m->node);
	if (!smq_mpsc_need_wake(&to->inbox))
		return;
	smq_shard_wake(ring, to);
	io_uring_submit(ring);
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
	smq_shard_wake(&ring, to);
	io_uring_submit_and_wait(&ring, 0);
	io_uring_queue_exit(&ring);
}

void smq_inbox_batch_add(struct smq_shard *s, unsigned to, struct imsg *m)
{
	smq_mpsc_batch_add(&s->out[to], &m->node);
	s->open_fwd[to] = NULL;		/* later forwards go after m */
	s->open_int[to] = NULL;		/* and later interest updates too */
	s->batched = true;
}

struct imsg *smq_inbox_note(struct smq_shard *s, unsigned to, uint8_t type, uint64_t u64,
			    const char *doing)
{
	struct imsg *m = calloc(1, sizeof(*m));

	if (!m) {
		smq_err("shard %u: out of memory %s", s->idx, doing);
		abort();
	}
	m->type = type;
	m->shard = (uint16_t)s->idx;
	m->u64 = u64;
	smq_inbox_batch_add(s, to, m);
	return m;
}

/* Tell each shard whose interest blocks were applied here since the last
 * flush the latest generation applied. */
static void int_answer(struct smq_shard *s)
{
	unsigned n = smq_broker_nshards_(s->broker);

	s->int_answer = false;
	for (unsigned i = 0; i < n; i++) {
		if (!s->int_peer[i].due)
			continue;
		/* without it, that shard's SUBACKs would wait for ever */
		smq_inbox_note(s, i, IMSG_INTEREST_APPLIED, s->int_peer[i].due,
			       "answering an interest update");
		s->int_peer[i].due = 0;
	}
}

/* Shard @from applied our interest generation @gen: once every shard has
 * applied a generation, the SUBACKs waiting for it go. */
static void int_applied(struct smq_shard *s, unsigned from, uint64_t gen)
{
	unsigned n = smq_broker_nshards_(s->broker);
	uint64_t all = UINT64_MAX;

	if (gen > s->int_peer[from].applied)
		s->int_peer[from].applied = gen;
	for (unsigned i = 0; i < n; i++)
		if (i != s->idx && s->int_peer[i].applied < all)
			all = s->int_peer[i].applied;
	if (all > s->int_synced) {
		s->int_synced = all;
		smq_engine_interest_synced(s->eng, all);
	}
}

/* One push per destination per turn; one wake per sleeping destination. */
void smq_inbox_flush(struct smq_shard *s)
{
	unsigned n = smq_broker_nshards_(s->broker);

	smq_durable_markers(s);	/* behind this flush's forwards */
	if (s->int_answer)
		int_answer(s);
	if (s->int_dirty) {
		s->int_gen++;	/* its blocks are in the batches pushed now */
		s->int_dirty = false;
	}
	if (!s->batched)
		return;
	s->batched = false;
	for (unsigned i = 0; i < n; i++) {
		struct smq_shard *to;

		if (!s->out[i].first)
			continue;
		to = smq_broker_shard(s->broker, i);
		s->open_fwd[i] = NULL;	/* pushed: the receiver owns it now */
		s->open_int[i] = NULL;
		/* counted before the push: the receiver may take them at once,
		 * and its depth must never go below zero */
		if (s->fwd_count[i]) {
			atomic_fetch_add_explicit(&to->fwd_pushed, s->fwd_count[i],
						  memory_order_relaxed);
			s->fwd_count[i] = 0;
		}
		smq_mpsc_batch_push(&to->inbox, &s->out[i]);
		if (smq_mpsc_need_wake(&to->inbox))
			smq_shard_wake(&s->ring, to);
	}
}

/* ---- engine callbacks --------------------------------------------------- */
void smq_inbox_io_forward(void *ctx, unsigned to, struct smq_msg *msg)
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
		smq_inbox_batch_add(s, to, &b->m);
		s->open_fwd[to] = b;
	}
	b->msgs[b->n++] = msg;
	s->fwd_count[to]++;
	if (s->dur)
		smq_durable_forwarded(s->dur, to);
}

void smq_inbox_io_forward_shared(void *ctx, unsigned to, struct smq_msg *msg, struct smq_str share)
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
	smq_inbox_batch_add(s, to, m);
	if (s->dur)
		smq_durable_forwarded(s->dur, to);
}

/* Interest updates for one shard travel in blocks of up to INT_BLOCK bytes
 * of entries, one inbox node each, like forwards: a burst of 100,000 new
 * filters is ~100 nodes per shard, not 100,000 (each one an allocation, a
 * queue link and a drain step that a handed-off CONNECT waited behind). */
#define INT_BLOCK 16384u

struct int_block {
	struct imsg m;		/* first: freeing the imsg frees the block */
	uint32_t cap;
	uint8_t buf[];
};

/* The open interest block for @to with room for @need more bytes. */
static struct imsg *int_block_for(struct smq_shard *s, unsigned to, uint32_t need)
{
	struct imsg *m = s->open_int[to];
	struct int_block *b;
	uint32_t cap = need > INT_BLOCK ? need : INT_BLOCK;

	if (m && ((struct int_block *)m)->cap - m->len >= need)
		return m;
	b = calloc(1, sizeof(*b) + cap);
	if (!b)
		return NULL;
	b->cap = cap;
	b->m.type = IMSG_INTEREST;
	b->m.shard = (uint16_t)s->idx;
	b->m.u64 = s->int_gen + 1;	/* pushed with the next flush */
	b->m.ptr = b->buf;	/* inside the block: freed with it */
	smq_inbox_batch_add(s, to, &b->m);
	s->open_int[to] = &b->m;
	return &b->m;
}

void smq_inbox_io_interest(void *ctx, struct smq_str filter, bool present)
{
	struct smq_shard *s = ctx;
	unsigned n = smq_broker_nshards_(s->broker);
	uint32_t need = 5 + filter.len;

	for (unsigned i = 0; i < n; i++) {
		struct imsg *m;
		uint8_t *p;

		if (i == s->idx)
			continue;
		m = int_block_for(s, i, need);
		if (!m) {
			/* Losing an interest update would silently lose messages. */
			smq_err("shard %u: out of memory sending an interest update", s->idx);
			abort();
		}
		p = (uint8_t *)m->ptr + m->len;
		p[0] = present;
		memcpy(p + 1, &filter.len, 4);
		memcpy(p + 5, filter.p, filter.len);
		m->len += need;
	}
	s->int_dirty = true;
}

uint64_t smq_inbox_io_interest_ticket(void *ctx)
{
	struct smq_shard *s = ctx;

	/* the generation of the updates just made, or of the last ones */
	return s->int_gen + s->int_dirty;
}

/* Apply every update of an interest block; its sender hears of it at our
 * next flush. */
static void interest_apply(struct smq_shard *s, const struct imsg *m)
{
	const uint8_t *p = m->ptr, *end = p + m->len;

	s->int_peer[m->shard].due = m->u64;
	s->int_answer = true;

	while (p < end) {
		uint32_t len;

		memcpy(&len, p + 1, 4);
		smq_engine_interest_apply(s->eng, (struct smq_str){ p + 5, len }, m->shard, p[0]);
		p += 5 + len;
	}
}

/* ---- connections -------------------------------------------------------- */
/* Time one drain may spend applying interest updates (a 100,000-filter
 * burst on another shard arrives as blocks of thousands). Past it, blocks
 * wait in s->int_later, in order, for the next drains, and this drain goes
 * on with what came behind them: a handed-off CONNECT, a password verdict,
 * forwards do not wait for a burst of another client's filters. Nothing
 * else in the inbox depends on those updates, and the SUBACKs they stand
 * for wait until they are applied (core/subgate.c). */
#define INBOX_INTEREST_NS 1000000u

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Is there time left in this drain for interest updates? @t0: when it
 * first applied one (0: not yet, and now it starts). */
static bool interest_budget(uint64_t *t0)
{
	if (!*t0) {
		*t0 = mono_ns();
		return true;
	}
	return mono_ns() - *t0 < INBOX_INTEREST_NS;
}

/* An interest block from the inbox: applied now if the budget allows and
 * none is waiting before it, else queued behind those. */
static void interest_take(struct smq_shard *s, struct imsg *m, uint64_t *t0)
{
	if (!s->int_later && interest_budget(t0)) {
		interest_apply(s, m);
		smq_imsg_free(m);
		return;
	}
	m->later = NULL;
	if (s->int_later)
		s->int_later_tail->later = m;
	else
		s->int_later = m;
	s->int_later_tail = m;
}

/* The queued interest blocks, oldest first, while the budget lasts. */
static void interest_later(struct smq_shard *s, uint64_t *t0)
{
	while (s->int_later && interest_budget(t0)) {
		struct imsg *m = s->int_later;

		s->int_later = m->later;
		interest_apply(s, m);
		smq_imsg_free(m);
	}
}

void smq_inbox_forget_later(struct smq_shard *s)
{
	while (s->int_later) {
		struct imsg *m = s->int_later;

		s->int_later = m->later;
		smq_imsg_free(m);
	}
}

void smq_inbox_drain(struct smq_shard *s)
{
	struct smq_mpsc_node *n;
	unsigned taken = 0;
	uint64_t t0 = 0;

	interest_later(s, &t0);

	/* Bounded: a shard that forwards faster than this one can deliver
	 * must not keep it here forever, with the sends its deliveries made
	 * never submitted. What is left waits for the next slice or turn (the
	 * loop does not sleep on a non-empty inbox). */
	while (taken++ < INBOX_SLICE && (n = smq_mpsc_pop(&s->inbox))) {
		struct imsg *m = (struct imsg *)n;

		switch (m->type) {
		case IMSG_FORWARD: {
			struct fwd_block *b = (struct fwd_block *)m;

			for (uint32_t i = 0; i < b->n; i++)
				smq_engine_deliver(s->eng, b->msgs[i], s->now_ms);
			s->fwd_taken += b->n;
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
			interest_take(s, m, &t0);
			break;
		case IMSG_HANDOFF:
			smq_handoff_adopt(s, m);
			break;
		case IMSG_RELOAD:
			smq_shard_apply_reload(s, m->ptr);
			free(m);
			break;
		case IMSG_AUTH:
			smq_conn_auth_answer(s, m->ptr);
			free(m);
			break;
		case IMSG_STOP:
			free(m);
			smq_shard_start_stop(s);
			break;
		case IMSG_SYNC:
			if (s->dur)
				smq_durable_on_sync(s, m->shard, m->u64);
			free(m);
			break;
		case IMSG_INTEREST_APPLIED:
			int_applied(s, m->shard, m->u64);
			free(m);
			break;
		case IMSG_SYNCED:
			if (s->dur)
				smq_durable_on_synced(s, m->shard, m->u64, m->present);
			free(m);
			break;
		}
	}
}

/* ---- the loop ----------------------------------------------------------- */
