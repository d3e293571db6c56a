/* inbox.h - what shards send each other, and how it is batched. Internal
 * to shard/.
 *
 * Senders batch per destination during a loop turn (or a slice of
 * completions) and push each batch with one MPSC push, waking a sleeping
 * destination with one MSG_RING; the destination drains its inbox at the
 * start of every turn and between completion slices.
 */
#ifndef SMQ_SHARD_INBOX_H
#define SMQ_SHARD_INBOX_H

#include "core/codec.h"

struct imsg;
struct smq_msg;
struct smq_shard;

/* Add @m to the batch for shard @to (owner thread of @s). */
void smq_inbox_batch_add(struct smq_shard *s, unsigned to, struct imsg *m);

/* A small control message (@type, from @s, carrying @u64) into this turn's
 * batch for shard @to. Aborts on ENOMEM, logging what it was @doing: the
 * messages sent this way are ones whose loss would leave clients waiting
 * for ever. */
struct imsg *smq_inbox_note(struct smq_shard *s, unsigned to, uint8_t type, uint64_t u64,
			    const char *doing);

/* Push every pending batch; one wake per sleeping destination. */
void smq_inbox_flush(struct smq_shard *s);

/* Handle the messages waiting in s's inbox, at most a slice of them, and
 * interest updates for at most a millisecond (the rest wait in
 * s->int_later: the loop does not sleep while any do). */
void smq_inbox_drain(struct smq_shard *s);

/* Free the interest updates still waiting (shutdown). */
void smq_inbox_forget_later(struct smq_shard *s);

/* Engine callbacks (struct smq_engine_io); @ctx is the shard. */
void smq_inbox_io_forward(void *ctx, unsigned to, struct smq_msg *msg);
void smq_inbox_io_forward_shared(void *ctx, unsigned to, struct smq_msg *msg,
				 struct smq_str share);
void smq_inbox_io_interest(void *ctx, struct smq_str filter, bool present);
uint64_t smq_inbox_io_interest_ticket(void *ctx);

#endif
