/* durable.h - when a held acknowledgement may leave: the shard's side of
 * "nothing acknowledged is lost".
 *
 * The engine asks for a ticket (io->hold) before each PUBACK, PUBREC and
 * PUBCOMP of a client's flow. The ticket waits for two things:
 *
 *  1. the shard's own store: the epoch that was open when the ticket was
 *     given (it holds every record the message made here) is committed;
 *  2. every shard the message was forwarded to has committed what it made
 *     of it. Forwards to shard Q are followed, in the same inbox flush, by a
 *     marker IMSG_SYNC carrying this shard's flush generation g; Q answers
 *     IMSG_SYNCED(g) once the epoch that was open when it read the marker
 *     (so after the forwarded messages) is committed. Inboxes are FIFO per
 *     sender, so the answer covers every forward sent before the marker.
 *
 * Tickets leave in order (the engine keeps per-connection order that way).
 * A ticket whose records could not be written leaves as a refusal.
 *
 * Threads: the owning shard's thread only.
 */
#ifndef SMQ_DURABLE_H
#define SMQ_DURABLE_H

#include <stdbool.h>
#include <stdint.h>

struct smq_shard;
struct smq_store;
struct smq_durable;

/* NULL on ENOMEM. @st is the shard's store (borrowed). */
struct smq_durable *smq_durable_new(struct smq_store *st);
void smq_durable_free(struct smq_durable *d);

/* io->hold (ctx: the shard). */
uint64_t smq_durable_hold(void *ctx);

/* A message was batched for shard @to. */
void smq_durable_forwarded(struct smq_durable *d, unsigned to);

/* Inbox flush: batch a marker behind the forwards to each shard that got
 * some since the last flush. */
void smq_durable_markers(struct smq_shard *s);

/* IMSG_SYNC from @from: answer once what came before it is durable here. */
void smq_durable_on_sync(struct smq_shard *s, unsigned from, uint64_t gen);

/* IMSG_SYNCED from @from: its records up to marker @gen are durable (@ok)
 * or could not be written. */
void smq_durable_on_synced(struct smq_shard *s, unsigned from, uint64_t gen, bool ok);

/* Turn end: submit the store's open batch; then (and after each store
 * eventfd completion) smq_durable_progress(). */
void smq_durable_turn_end(struct smq_shard *s);
void smq_durable_progress(struct smq_shard *s);

#endif
