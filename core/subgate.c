/* subgate.c - a SUBACK leaves only once every shard knows the subscription.
 *
 * A subscription lives on its session's shard. The other shards learn that
 * this shard wants a filter through their inboxes (io->interest), and route
 * their clients' publishes by what they have learnt so far. Were the SUBACK
 * sent at once, a client could read it, tell a publisher on another shard,
 * and that publish could be routed before the update arrived there: lost,
 * though the subscription was acknowledged.
 *
 * So a SUBSCRIBE that made news for the other shards puts a gate in its
 * client's output before the SUBACK: the SUBACK, the retained messages after
 * it and anything else for that client wait behind the gate until the I/O
 * layer reports (smq_engine_interest_synced) that every shard has applied the
 * updates up to the SUBSCRIBE's ticket. Tickets only grow, so the waiting
 * gates form a FIFO ring; the wait is one inbox round trip. A SUBSCRIBE that
 * changes nothing elsewhere (a filter the shard already had, one shard) is
 * answered at once.
 */
#include "core/engine_int.h"

#include <errno.h>

#include "core/log.h"
#include "core/ring.h"

static struct sub_gate *gate_at(struct smq_engine *e, size_t i)
{
	return &e->gates[(e->gates_head + i) & (e->gates_cap - 1)];
}

void smq_eng_gate_subscribe(struct smq_engine *e, struct smq_econn *c)
{
	uint64_t ticket = e->io.interest_ticket(e->io.ctx);

	if (ticket <= e->int_synced)
		return;		/* every shard has it already */
	if (e->gates_n == e->gates_cap &&
	    smq_ring_grow((void **)&e->gates, &e->gates_head, e->gates_n, &e->gates_cap,
			  sizeof(*e->gates), 16)) {
		/* Sent at once: only a publish that races it could miss it. */
		smq_err("shard %u: out of memory holding a SUBACK for '%s'; sent at once",
			e->shard, c->id);
		return;
	}
	if (smq_eng_out_gate(e, c)) {
		smq_err("shard %u: out of memory holding a SUBACK for '%s'; sent at once",
			e->shard, c->id);
		return;
	}
	*gate_at(e, e->gates_n++) = (struct sub_gate){ .c = c, .ticket = ticket };
}

void smq_engine_interest_synced(struct smq_engine *e, uint64_t ticket)
{
	e->int_synced = ticket;
	while (e->gates_n && e->gates[e->gates_head].ticket <= ticket) {
		struct smq_econn *c = e->gates[e->gates_head].c;

		e->gates_head = (e->gates_head + 1) & (e->gates_cap - 1);
		e->gates_n--;
		if (c)
			smq_eng_out_ungate(e, c);
	}
}

void smq_eng_gate_drop(struct smq_engine *e, struct smq_econn *c, bool freeing)
{
	for (size_t i = 0; i < e->gates_n; i++) {
		struct sub_gate *g = gate_at(e, i);

		if (g->c != c)
			continue;
		g->c = NULL;
		if (!freeing)
			smq_eng_out_ungate(e, c);
	}
}
