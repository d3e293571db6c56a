/* slice.h - input fairness: one connection's share of a loop turn.
 *
 * A client that writes faster than the shard handles its packets (a burst
 * of 100,000 SUBSCRIBEs, a publisher flood) would otherwise have its whole
 * backlog handled in one turn, while a client that just connected waits
 * behind it for its CONNACK. Once a connection has had INPUT_FREE bytes in
 * a turn, its input is timed; past INPUT_SLICE_NS the rest of what it sent
 * is kept (its recv stopped) and handled first in the next turn, a slice at
 * a time, before the socket is read again. Order is kept: nothing newer is
 * read while older bytes wait.
 *
 * Threads: the owning shard's thread only.
 */
#ifndef SMQ_SLICE_H
#define SMQ_SLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn;
struct smq_shard;

/* Input @p, @n for @c: true when it was kept for a later turn (over its
 * share, or older input still waits); false: feed it now. */
bool smq_slice_defer(struct smq_shard *s, struct conn *c, const uint8_t *p, size_t n);

/* Start of a turn's completions: feed each connection's kept input, up to
 * its share. */
void smq_slice_run(struct smq_shard *s);

/* @c may read again (no pause) but has kept input: feed that first. */
void smq_slice_resume(struct smq_shard *s, struct conn *c);

/* @c is being freed. */
void smq_slice_forget(struct smq_shard *s, struct conn *c);

#endif
