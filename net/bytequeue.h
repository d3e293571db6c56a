/* bytequeue.h - a growable FIFO of bytes, the buffer the byte-stream
 * transforms (TLS, WebSocket) keep their input and output in.
 *
 * Bytes [off, len) of p[0, cap) wait. Pushing appends (moving what waits to
 * the front first when that makes room); popping from the front of a queue
 * that empties gives its memory back, so an idle connection holds none.
 * Not thread-safe: one owner at a time, like the transforms.
 */
#ifndef SMQ_BYTEQUEUE_H
#define SMQ_BYTEQUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct smq_bq {
	uint8_t *p;		/* NULL when nothing waits */
	size_t off, len, cap;
};

/* Bytes waiting. */
static inline size_t smq_bq_used(const struct smq_bq *q)
{
	return q->len - q->off;
}

/* The first waiting byte (valid while smq_bq_used() > 0). */
static inline uint8_t *smq_bq_head(const struct smq_bq *q)
{
	return q->p + q->off;
}

/* What waits, as at most one iovec (a transform's out_iov()): the count. */
static inline int smq_bq_iov(const struct smq_bq *q, struct iovec *iov, int max)
{
	if (max < 1 || !smq_bq_used(q))
		return 0;
	iov[0].iov_base = smq_bq_head(q);
	iov[0].iov_len = smq_bq_used(q);
	return 1;
}

/* Append @n bytes of @src. 0 or -ENOMEM (nothing appended). */
int smq_bq_push(struct smq_bq *q, const void *src, size_t n);

/* Drop @n <= smq_bq_used() bytes from the front. */
void smq_bq_pop(struct smq_bq *q, size_t n);

/* Free the memory; the queue is empty after. */
void smq_bq_fini(struct smq_bq *q);

#endif
