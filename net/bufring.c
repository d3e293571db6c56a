/* bufring.c - provided-buffer ring setup for liburing 2.3.
 *
 * liburing 2.3 has no io_uring_setup_buf_ring(), so the ring memory is a
 * page-aligned anonymous mapping registered with io_uring_register_buf_ring
 * (Linux 5.19+). Fixed-size buffers, no incremental consumption:
 * every recv CQE owns its whole buffer until the shard recycles it, which
 * happens right after the bytes are parsed (the parser copies any partial
 * packet it must keep).
 */
#include "net/bufring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Hand buffers @from..@to-1 to the kernel. */
static void provide(struct smq_bufring *b, uint32_t from, uint32_t to)
{
	for (uint32_t i = from; i < to; i++)
		io_uring_buf_ring_add(b->br, smq_bufring_buf(b, (uint16_t)i), b->size, (uint16_t)i,
				      io_uring_buf_ring_mask(b->count), (int)(i - from));
	io_uring_buf_ring_advance(b->br, (int)(to - from));
	b->provided = to;
}

int smq_bufring_init(struct smq_bufring *b, struct io_uring *ring, uint16_t bgid,
		     uint32_t count, uint32_t size, uint32_t initial)
{
	struct io_uring_buf_reg reg;
	int ret;

	memset(b, 0, sizeof(*b));
	if (!count || (count & (count - 1)) || count > 32768 || !initial || initial > count)
		return -EINVAL;
	b->ring_bytes = count * sizeof(struct io_uring_buf);
	b->br = mmap(NULL, b->ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE,
		     -1, 0);
	if (b->br == MAP_FAILED) {
		b->br = NULL;
		return -ENOMEM;
	}
	b->bufs = malloc((size_t)count * size);
	if (!b->bufs) {
		ret = -ENOMEM;
		goto out_unmap;
	}
	b->count = count;
	b->size = size;
	b->bgid = bgid;
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (unsigned long)b->br;
	reg.ring_entries = count;
	reg.bgid = bgid;
	ret = io_uring_register_buf_ring(ring, &reg, 0);
	if (ret)
		goto out_free;
	io_uring_buf_ring_init(b->br);
	provide(b, 0, initial);
	return 0;
out_free:
	free(b->bufs);
	b->bufs = NULL;
out_unmap:
	munmap(b->br, b->ring_bytes);
	b->br = NULL;
	return ret;
}

void smq_bufring_fini(struct smq_bufring *b, struct io_uring *ring)
{
	if (!b->br)
		return;
	io_uring_unregister_buf_ring(ring, b->bgid);
	munmap(b->br, b->ring_bytes);
	free(b->bufs);
	memset(b, 0, sizeof(*b));
}

void smq_bufring_recycle(struct smq_bufring *b, uint16_t bid)
{
	io_uring_buf_ring_add(b->br, smq_bufring_buf(b, bid), b->size, bid,
			      io_uring_buf_ring_mask(b->count), 0);
	io_uring_buf_ring_advance(b->br, 1);
}

bool smq_bufring_grow(struct smq_bufring *b)
{
	uint32_t to = b->provided * 2 < b->count ? b->provided * 2 : b->count;

	if (to == b->provided)
		return false;
	/* room in the ring: it has count entries, and never holds more
	 * buffers than were ever provided */
	provide(b, b->provided, to);
	return true;
}
