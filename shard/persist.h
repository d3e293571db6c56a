/* persist.h - a shard's persistence glue (persist.c): restore at start,
 * the store's completions in the ring, the final flush. Shard thread only.
 */
#ifndef SMQ_SHARD_PERSIST_H
#define SMQ_SHARD_PERSIST_H

struct smq_shard;
struct smq_store_rec;

/* io->store (ctx: the shard). */
void smq_persist_io_store(void *ctx, const struct smq_store_rec *r);

/* After the engine exists, before any connection: turn persistence on,
 * read the store back (the message goes to s->start_err), start the
 * writer and arm the eventfd read. 0 or -errno. */
int smq_persist_setup(struct smq_shard *s);

/* The eventfd read completed with @res. */
void smq_persist_on_cqe(struct smq_shard *s, int res);

/* After the loop: write what is left, stop the writer. */
void smq_persist_stop(struct smq_shard *s);

#endif
