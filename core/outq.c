/* outq.c - a connection's output queue: what the engine wrote for one
 * client and the I/O layer has not yet reported sent.
 *
 * The queue is a list of chunks. A chunk owns a byte buffer, written only at
 * its end, and a table of spans in send order; each span is one iovec for
 * the I/O layer and is either a run of the chunk's own bytes (packets
 * copied whole, and the heads of large PUBLISHes) or a part of a message's
 * immutable bytes, holding one reference (a large PUBLISH's payload, sent by
 * reference). So a stream of large PUBLISHes costs no allocation per
 * delivery: each writes its head into the current chunk and adds two spans,
 * and a new chunk comes every few dozen messages.
 *
 *   c->oh -> [spans: own | ref | own | ref ... ; bytes] -> [...] <- c->ot
 *             ^ seg[first] is the next to send, c->ooff bytes of it sent
 *
 * Rules: bytes handed out by smq_econn_out_iov() never move or change until
 * smq_econn_out_done() reports them sent (a buffer never grows in place, a
 * span is only ever extended at its end); a write reserves its room and its
 * spans before it writes anything, so a packet is queued whole or not at
 * all; an idle connection keeps no chunk. A gate (core/subgate.c) is a span
 * that nothing is sent past until it opens.
 */
#include "core/engine_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/msg.h"

/* Spans per chunk: few in the first chunk of an idle connection (a CONNACK,
 * a PINGRESP, small PUBLISHes merge into one span), many once output
 * streams or large PUBLISHes come (two spans each). */
#define SEGS_FEW 8u
#define SEGS_MANY 128u

/* The first byte of chunk @k's buffer (after its span table). */
static uint8_t *chunk_buf(struct ochunk *k)
{
	return (uint8_t *)&k->seg[k->segcap];
}

static bool is_gate(const struct oseg *s)
{
	return !s->p;
}

/* A span of an opened gate: sent as nothing, never extended. */
static const uint8_t opened[1];

static void want_send_if(struct smq_engine *e, struct smq_econn *c, bool was_empty)
{
	if (was_empty && c->opend && e->io.want_send)
		e->io.want_send(e->io.ctx, c);
}

uint8_t *smq_eng_out_reserve(struct smq_engine *e, struct smq_econn *c, size_t n, unsigned refs)
{
	struct ochunk *k = c->ot;
	unsigned segs = 1 + refs;
	size_t cap, segcap;

	(void)e;
	if (k && k->cap - k->used >= n && (unsigned)(k->segcap - k->nseg) >= segs)
		return chunk_buf(k) + k->used;
	if (n > UINT32_MAX / 2)
		return NULL;
	/* A connection with output already waiting is receiving a stream:
	 * bigger chunks mean fewer of them. Large PUBLISHes put only their
	 * heads here, so their chunks need spans more than bytes. */
	cap = refs ? SMQ_CHUNK_SIZE : c->opend ? SMQ_CHUNK_BIG : SMQ_CHUNK_SIZE;
	if (cap < n)
		cap = n;
	segcap = refs || c->opend ? SEGS_MANY : SEGS_FEW;
	k = malloc(sizeof(*k) + segcap * sizeof(k->seg[0]) + cap);
	if (!k)
		return NULL;
	k->next = NULL;
	k->used = 0;
	k->cap = (uint32_t)cap;
	k->first = k->nseg = 0;
	k->segcap = (uint16_t)segcap;
	if (c->ot)
		c->ot->next = k;
	else
		c->oh = k;
	c->ot = k;
	return chunk_buf(k);
}

void smq_eng_out_commit(struct smq_engine *e, struct smq_econn *c, size_t n)
{
	struct ochunk *k = c->ot;
	uint8_t *at = chunk_buf(k) + k->used;
	struct oseg *last = k->nseg > k->first ? &k->seg[k->nseg - 1] : NULL;
	bool was_empty = c->opend == 0;

	if (!n)
		return;
	if (last && !last->msg && last->p + last->len == at)
		last->len += (uint32_t)n;	/* the same run of bytes, longer */
	else
		k->seg[k->nseg++] = (struct oseg){ .p = at, .len = (uint32_t)n };
	k->used += (uint32_t)n;
	c->opend += n;
	want_send_if(e, c, was_empty);
}

void smq_eng_out_ref(struct smq_engine *e, struct smq_econn *c, struct smq_msg *m,
		     struct smq_str span)
{
	struct ochunk *k = c->ot;
	bool was_empty = c->opend == 0;

	k->seg[k->nseg++] = (struct oseg){ .p = span.p, .msg = smq_msg_ref(m), .len = span.len };
	c->opend += span.len;
	want_send_if(e, c, was_empty);
}

int smq_eng_out_gate(struct smq_engine *e, struct smq_econn *c)
{
	struct ochunk *k;

	if (!smq_eng_out_reserve(e, c, 0, 0))
		return -ENOMEM;
	k = c->ot;
	k->seg[k->nseg++] = (struct oseg){ .p = NULL };
	return 0;
}

void smq_eng_out_ungate(struct smq_engine *e, struct smq_econn *c)
{
	for (struct ochunk *k = c->oh; k; k = k->next)
		for (unsigned i = k->first; i < k->nseg; i++) {
			if (!is_gate(&k->seg[i]))
				continue;
			k->seg[i].p = opened;
			if (c->opend && e->io.want_send)
				e->io.want_send(e->io.ctx, c);
			return;
		}
}

void smq_eng_out_free(struct smq_econn *c)
{
	struct ochunk *k = c->oh;

	while (k) {
		struct ochunk *next = k->next;

		for (unsigned i = k->first; i < k->nseg; i++)
			smq_msg_unref(k->seg[i].msg);
		free(k);
		k = next;
	}
	c->oh = c->ot = NULL;
	c->ooff = 0;
	c->opend = 0;
}

int smq_econn_out_iov(struct smq_econn *c, struct iovec *iov, int max)
{
	int n = 0;
	uint32_t off = c->ooff;

	for (struct ochunk *k = c->oh; k && n < max; k = k->next)
		for (unsigned i = k->first; i < k->nseg && n < max; i++, off = 0) {
			const struct oseg *s = &k->seg[i];

			if (is_gate(s))
				return n;
			if (s->len == off)
				continue;
			iov[n].iov_base = (void *)(s->p + off);
			iov[n].iov_len = s->len - off;
			n++;
		}
	return n;
}

void smq_econn_out_done(struct smq_engine *e, struct smq_econn *c, size_t bytes, uint64_t now_ms)
{
	struct ochunk *k;

	if (now_ms > e->now)
		e->now = now_ms;
	if (bytes > c->opend)
		bytes = c->opend;
	e->stats.bytes_out += bytes;
	c->opend -= bytes;
	if (c->flow_bl && bytes)
		smq_eng_flow_progress(e, c);
	if (!c->opend) {
		/* all sent: an idle connection keeps no buffer at all */
		smq_eng_out_free(c);
		return;
	}
	while ((k = c->oh)) {
		for (; k->first < k->nseg; k->first++) {
			struct oseg *s = &k->seg[k->first];
			uint32_t rest = s->len - c->ooff;

			if (is_gate(s))
				return;
			if (bytes < rest) {
				c->ooff += (uint32_t)bytes;
				return;
			}
			bytes -= rest;
			c->ooff = 0;
			smq_msg_unref(s->msg);
		}
		if (k == c->ot)
			return;		/* the tail: later writes go on in it */
		c->oh = k->next;
		free(k);
	}
}

bool smq_econn_backlogged(const struct smq_econn *c, const struct smq_engine *e)
{
	return c->opend >= e->cfg->client_max_write_buffer;
}

size_t smq_econn_out_pending(const struct smq_econn *c)
{
	return c->opend;
}
