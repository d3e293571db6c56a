/* bufring.h - a provided-buffer ring (one buffer group) for multishot recv.
 *
 * The kernel picks a buffer for each recv completion and reports its id in
 * the CQE; the owner hands it back with smq_bufring_recycle() once it has
 * consumed the bytes. Owner thread only (the shard that owns the ring).
 */
#ifndef SMQ_BUFRING_H
#define SMQ_BUFRING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/uring_compat.h"

struct smq_bufring {
	struct io_uring_buf_ring *br;	/* mmap'd ring shared with the kernel */
	uint8_t *bufs;			/* count * size bytes */
	uint32_t count;			/* power of two */
	uint32_t provided;		/* buffers 0..provided-1 are in use */
	uint32_t size;			/* bytes per buffer */
	uint16_t bgid;
	size_t ring_bytes;
};

/* Register a ring of @count buffers of @size bytes as group @bgid on
 * @ring, and give the kernel the first @initial of them (a power of two,
 * at most @count). Returns 0 or -errno (-ENOMEM, or the kernel's refusal).
 *
 * The kernel takes buffers in ring order, so every buffer it was given is
 * touched, and resident, once enough recvs have come: a broker with few
 * busy clients needs a fraction of the ring. The rest is handed over by
 * smq_bufring_grow() when a recv finds none left. */
int smq_bufring_init(struct smq_bufring *b, struct io_uring *ring, uint16_t bgid,
		     uint32_t count, uint32_t size, uint32_t initial);
void smq_bufring_fini(struct smq_bufring *b, struct io_uring *ring);

/* A recv found no buffer: give the kernel as many more as it has (doubling
 * what it holds, up to the ring's count). False when it has them all. */
bool smq_bufring_grow(struct smq_bufring *b);

static inline uint8_t *smq_bufring_buf(const struct smq_bufring *b, uint16_t bid)
{
	return b->bufs + (size_t)bid * b->size;
}

/* Give buffer @bid back to the kernel. */
void smq_bufring_recycle(struct smq_bufring *b, uint16_t bid);

#endif
