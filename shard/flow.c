/* flow.c - push-back, the shard's side. See flow.h and core/flow.c. */
#include "shard/flow.h"

#include "core/engine.h"
#include "core/log.h"
#include "shard/conn.h"
#include "shard/inbox.h"
#include "shard/shard.h"

void smq_flow_after_input(struct smq_shard *s, struct conn *c)
{
	uint64_t to = smq_econn_take_pub_mask(c->ec);

	if (!to || c->flow_paused || !(to & smq_broker_pressure(s->broker)) ||
	    smq_econn_consumer(c->ec))
		return;
	c->flow_paused = true;
	c->flow_mask = to;
	c->next_flow = s->flow_list;
	s->flow_list = c;
	s->nflow_paused++;
	s->flow_pauses++;
	if (!c->paused) {
		c->paused = true;
		smq_conn_cancel_recv(s, c);
	}
}

/* Walk the held-back publishers (not every connection: a shard may have
 * 100,000 and the mask may change every turn). */
static void resume(struct smq_shard *s, uint64_t pressure)
{
	struct conn **pp = &s->flow_list;

	while (*pp) {
		struct conn *c = *pp;

		if (c->flow_mask & pressure) {
			pp = &c->next_flow;
			continue;
		}
		*pp = c->next_flow;
		c->flow_paused = false;
		s->nflow_paused--;
		if (c->state != CONN_OPEN || c->store_paused || smq_econn_backlogged(c->ec, s->eng))
			continue;	/* another pause: its own resume reads it again */
		c->paused = false;
		smq_conn_queue_rearm(s, c);
	}
}

void smq_flow_forget(struct smq_shard *s, struct conn *c)
{
	if (!c->flow_paused)
		return;
	for (struct conn **pp = &s->flow_list; *pp; pp = &(*pp)->next_flow)
		if (*pp == c) {
			*pp = c->next_flow;
			break;
		}
	c->flow_paused = false;
	s->nflow_paused--;
}

/* Forwarded messages waiting in this shard's inbox: past INBOX_HIGH the
 * shard presses like a backlogged subscriber until they are under
 * INBOX_LOW. Without it a shard that publishers on other shards outrun
 * (a fan-in to one subscriber here) holds an inbox that grows without
 * bound at QoS 0, which no queue limit sees; with it they are read at the
 * pace this shard takes their messages. 65,536 messages: a few tens of ms
 * of a busy shard's work, far above what a turn leaves behind. */
#define INBOX_HIGH 65536u
#define INBOX_LOW 16384u

static bool inbox_deep(struct smq_shard *s)
{
	uint64_t pushed = atomic_load_explicit(&s->fwd_pushed, memory_order_relaxed);
	uint64_t depth = pushed > s->fwd_taken ? pushed - s->fwd_taken : 0;

	if (s->inbox_deep) {
		s->inbox_deep = depth > INBOX_LOW;
	} else if (depth >= INBOX_HIGH) {
		s->inbox_deep = true;
		if (smq_log_due(&s->inbox_deep_log_ms, s->now_ms, 10000))
			smq_notice("shard %u: %llu forwarded messages waiting; publishers "
				   "that send here are held back until it catches up (logged "
				   "at most every 10 s)", s->idx, (unsigned long long)depth);
	}
	return s->inbox_deep;
}

void smq_flow_turn(struct smq_shard *s)
{
	bool over = inbox_deep(s) | smq_engine_backlogged(s->eng);
	uint64_t p;

	if (over != s->pressing) {
		s->pressing = over;
		smq_broker_press(s->broker, s->idx, over);
		if (!over) {
			/* caught up: shards asleep with publishers held back for
			 * us would not notice */
			for (unsigned i = 0; i < smq_broker_nshards_(s->broker); i++)
				if (i != s->idx)
					smq_shard_wake(&s->ring, smq_broker_shard(s->broker, i));
		}
	}
	if (!s->nflow_paused)
		return;
	p = smq_broker_pressure(s->broker);
	if (p != s->flow_seen)
		resume(s, p);
	s->flow_seen = p;
}
