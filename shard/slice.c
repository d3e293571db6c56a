/* slice.c - input fairness: one connection's share of a loop turn. See
 * slice.h.
 *
 * Cost on the common path: a compare per recv completion; the clock is read
 * only for a connection already past INPUT_FREE bytes in this turn (a
 * vDSO call, ~80 ns, against the ~1 us per packet that follow it).
 */
#include "shard/slice.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/log.h"
#include "shard/conn.h"
#include "shard/handoff.h"
#include "shard/shard.h"

/* Bytes a connection may bring in one turn without being timed: a few
 * recv buffers, so ordinary clients never pay for a clock read. */
#define INPUT_FREE (16u << 10)
/* Time its input may take in one turn beyond that. Clients that connect
 * meanwhile wait about this long (plus the turn's own work) for a CONNACK;
 * a bursting client loses nothing but a copy of the bytes it sent ahead. */
#define INPUT_SLICE_NS 1000000u
/* Kept input is fed in pieces of this size, the clock read between them. */
#define INPUT_PIECE 8192u

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Count @n more bytes for @c in this turn: true once it is over its share.
 * The conn keeps 32 bits of each (conn.h): the turn's low bits, the bytes
 * saturated, the clock's low bits, whose difference is exact for the
 * milliseconds a share lasts (t0 == 0, one time in 2^32, just starts the
 * timing again). */
static bool over_share(struct smq_shard *s, struct conn *c, size_t n)
{
	if (c->slice_turn != (uint32_t)s->turns) {
		c->slice_turn = (uint32_t)s->turns;
		c->slice_bytes = 0;
		c->slice_t0 = 0;
	}
	c->slice_bytes = n < UINT32_MAX - c->slice_bytes ? c->slice_bytes + (uint32_t)n
							 : UINT32_MAX;
	if (c->slice_bytes <= INPUT_FREE)
		return false;
	if (!c->slice_t0) {
		c->slice_t0 = (uint32_t)mono_ns();
		return false;
	}
	return (uint32_t)mono_ns() - c->slice_t0 >= INPUT_SLICE_NS;
}

/* c has kept input, so c->rare is set. */
static void list_add(struct smq_shard *s, struct conn *c)
{
	if (c->in_defer_list)
		return;
	c->in_defer_list = true;
	c->rare->next_defer = s->defer_list;
	s->defer_list = c;
}

bool smq_slice_defer(struct smq_shard *s, struct conn *c, const uint8_t *p, size_t n)
{
	struct conn_rare *r;

	if (!smq_conn_deferred(c) && !over_share(s, c, n))
		return false;
	r = smq_conn_rare(c);	/* kept input is rare: it lives there */
	if (!r) {
		smq_conn_close(s, c, -ENOMEM);
		return true;
	}
	if (r->defer_len + n > r->defer_cap) {
		size_t cap = r->defer_cap ? r->defer_cap : 4 * INPUT_PIECE;
		uint8_t *nb;

		while (cap < r->defer_len + n)
			cap *= 2;
		nb = realloc(r->defer, cap);
		if (!nb) {
			smq_conn_close(s, c, -ENOMEM);
			return true;
		}
		r->defer = nb;
		r->defer_cap = cap;
	}
	memcpy(r->defer + r->defer_len, p, n);
	if (!r->defer_len) {
		s->input_deferred++;
		list_add(s, c);
		if (c->recv_armed)
			smq_conn_cancel_recv(s, c);	/* completions in flight still come here */
	}
	r->defer_len += n;
	return true;
}

/* Feed @c's kept input up to its share; true when some is left. */
static bool feed_kept(struct smq_shard *s, struct conn *c)
{
	struct conn_rare *r = c->rare;	/* set, and kept until c is freed */
	size_t off = 0;

	if (!r)
		return false;
	while (off < r->defer_len && c->state == CONN_OPEN && !c->paused) {
		size_t k = r->defer_len - off < INPUT_PIECE ? r->defer_len - off : INPUT_PIECE;

		if (off && over_share(s, c, k))
			break;
		smq_conn_feed(s, c, r->defer + off, k);
		off += k;
	}
	if (c->state == CONN_HANDOFF && off < r->defer_len) {
		/* its CONNECT belongs to another shard: the rest goes along */
		smq_handoff_append(c, r->defer + off, r->defer_len - off);
		off = r->defer_len;
	}
	if (c->state != CONN_OPEN)
		off = r->defer_len;	/* closing: nobody reads it */
	memmove(r->defer, r->defer + off, r->defer_len - off);
	r->defer_len -= off;
	if (!r->defer_len) {
		free(r->defer);
		r->defer = NULL;
		r->defer_cap = 0;
	}
	return r->defer_len != 0;
}

void smq_slice_run(struct smq_shard *s)
{
	struct conn *list = s->defer_list;

	s->defer_list = NULL;
	while (list) {
		struct conn *c = list;

		list = c->rare->next_defer;
		c->in_defer_list = false;
		if (feed_kept(s, c)) {
			/* a pause (the client does not read, the store is
			 * behind) waits for its resume, which comes back here
			 * through smq_slice_resume() */
			if (!c->paused)
				list_add(s, c);
		} else if (c->state == CONN_OPEN && !c->paused) {
			smq_conn_queue_rearm(s, c);	/* caught up: read the socket again */
		}
	}
}

void smq_slice_resume(struct smq_shard *s, struct conn *c)
{
	list_add(s, c);
}

void smq_slice_forget(struct smq_shard *s, struct conn *c)
{
	if (c->in_defer_list) {
		struct conn **pp = &s->defer_list;

		while (*pp && *pp != c)
			pp = &(*pp)->rare->next_defer;
		if (*pp)
			*pp = c->rare->next_defer;
	}
	if (c->rare) {
		free(c->rare->defer);
		c->rare->defer = NULL;
		c->rare->defer_len = c->rare->defer_cap = 0;
	}
}
