/* flow.h - push-back: the shard's side. While some shard's connected
 * subscribers hold more than they take (core/flow.c), the clients that
 * publish to that shard are not read; they are read again once it caught
 * up. QoS 1/2 publishers are then acknowledged at the pace of their
 * subscribers, and with the default queue limits nothing acknowledged is
 * dropped under a steady overload.
 *
 * Each shard publishes its own state as one bit of the broker's pressure
 * mask; a shard that clears its bit wakes the others, whose held-back
 * publishers may then go on. A client that also receives deliveries is
 * never held back: its acknowledgements are what drains a backlog.
 *
 * Threads: the owning shard's thread only.
 */
#ifndef SMQ_FLOW_H
#define SMQ_FLOW_H

struct conn;
struct smq_shard;

/* After @c's input was handled: hold it back if it published to a shard
 * under pressure. */
void smq_flow_after_input(struct smq_shard *s, struct conn *c);

/* Once a turn: publish this shard's state, and let held-back publishers go
 * on when what they publish to is no longer under pressure. */
void smq_flow_turn(struct smq_shard *s);

/* @c is being freed. */
void smq_flow_forget(struct smq_shard *s, struct conn *c);

#endif
