/* flow.c - push-back: which connected subscribers hold more deliveries than
 * they take, so that the I/O layer can stop reading the clients that
 * publish into them (shard/flow.c).
 *
 * Without it a publisher is acknowledged as fast as the broker reads, not
 * as fast as subscribers take messages: the difference piles up in the
 * subscribers' queues until max_queued_messages drops acknowledged QoS 1/2
 * messages. So a live subscriber whose queue passes half of its limit
 * (count or bytes) is "backlogged" until it is back under a quarter; while
 * any is, the engine reports itself backlogged and its shard holds back
 * whoever publishes to it.
 *
 * A subscriber that takes nothing at all (no acknowledgement, not a byte
 * written to its socket) for FLOW_STALL_MS stops counting: one dead client
 * must not stop every publisher of its shard for longer than that. Its queue then fills and
 * drops, counted, as before; it counts again once it moves.
 *
 * Cost on the delivery path: a few compares per delivery to a live client.
 */
#include "core/engine_int.h"

#include "core/config.h"
#include "core/log.h"

#define FLOW_STALL_MS 1000u
/* the byte high-water mark when max_queued_bytes sets none */
#define FLOW_QUEUE_BYTES (64u << 20)

/* Does @c's session queue hold at least 1/@div of a limit? Only QoS 1/2
 * count: they queue behind the in-flight window, and what the queue limit
 * drops was acknowledged. QoS 0 keeps mosquitto's contract (dropped, and
 * counted, at client_max_write_buffer): a QoS 0 flood is not paced to its
 * slowest reader. */
static bool holds(const struct smq_engine *e, const struct smq_econn *c, unsigned div)
{
	const struct smq_session *s = c->s;
	uint64_t maxq = (uint64_t)e->cfg->max_queued_messages;
	uint64_t maxb = e->cfg->max_queued_bytes ? e->cfg->max_queued_bytes : FLOW_QUEUE_BYTES;

	if (maxq && s->nqueued >= (maxq + div - 1) / div)
		return true;
	return s->queued_bytes >= maxb / div;
}

static void count(struct smq_engine *e, struct smq_econn *c, bool on)
{
	if (c->flow_counted == on)
		return;
	c->flow_counted = on;
	if (on)
		e->flow_backlogged++;
	else
		e->flow_backlogged--;
}

/* c->more is set while c->flow_bl (watch() allocated it). */
static void unlist(struct smq_engine *e, struct smq_econn *c)
{
	struct econn_more *m = c->more;

	count(e, c, false);
	c->flow_bl = false;
	if (m->flow_prev)
		m->flow_prev->more->flow_next = m->flow_next;
	else
		e->flow_list = m->flow_next;
	if (m->flow_next)
		m->flow_next->more->flow_prev = m->flow_prev;
	m->flow_prev = m->flow_next = NULL;
}

void smq_eng_flow_watch(struct smq_engine *e, struct smq_econn *c)
{
	struct econn_more *m;

	if (!c->s || c->state != CS_LIVE)
		return;
	if (!c->flow_bl) {
		/* out of memory it is not held back for: its queue drops,
		 * counted, as without push-back */
		if (!holds(e, c, 2) || !(m = smq_eng_more_mut(c)))
			return;
		c->flow_bl = true;
		m->flow_ms = e->now;	/* stalled only after a while of nothing */
		m->flow_prev = NULL;
		m->flow_next = e->flow_list;
		if (e->flow_list)
			e->flow_list->more->flow_prev = c;
		e->flow_list = c;
		count(e, c, true);
	} else if (!holds(e, c, 4)) {
		unlist(e, c);
	}
}

void smq_eng_flow_progress(struct smq_engine *e, struct smq_econn *c)
{
	if (!c->flow_bl)
		return;
	c->more->flow_ms = e->now;
	count(e, c, true);
	smq_eng_flow_watch(e, c);
}

void smq_eng_flow_forget(struct smq_engine *e, struct smq_econn *c)
{
	if (c->flow_bl)
		unlist(e, c);
}

void smq_eng_flow_tick(struct smq_engine *e)
{
	for (struct smq_econn *c = e->flow_list, *next; c; c = next) {
		next = c->more->flow_next;
		if (c->state != CS_LIVE) {
			unlist(e, c);
			continue;
		}
		if (!c->flow_counted || e->now - c->more->flow_ms < FLOW_STALL_MS)
			continue;
		count(e, c, false);
		e->flow_stalls++;
		if (smq_log_due(&e->flow_log_ms, e->now, 10000))
			smq_notice("shard %u: client '%s' took nothing for %u ms: its publishers "
				   "are no longer held back for it (%llu such stalls so far)", e->shard,
				   c->id, FLOW_STALL_MS, (unsigned long long)e->flow_stalls);
	}
}

bool smq_engine_backlogged(const struct smq_engine *e)
{
	return e->flow_backlogged != 0;
}

uint64_t smq_econn_take_pub_mask(struct smq_econn *c)
{
	uint64_t m = c->pub_mask;

	c->pub_mask = 0;
	return m;
}

bool smq_econn_consumer(const struct smq_econn *c)
{
	/* backlogged itself: its acknowledgements are what drains that */
	return c->flow_bl;
}
