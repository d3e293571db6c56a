/* xform.h - a per-connection byte-stream transform, so that transports stack.
 *
 * A transform sits between a byte stream below (the socket, or another
 * transform) and a consumer above (the MQTT engine, or another transform):
 *
 *        above:  plaintext      write() v      ^ read()
 *                            +-------------------------+
 *                            |   struct smq_xform      |  e.g. TLS, WebSocket
 *                            +-------------------------+
 *        below:  wire bytes    out_iov()/out_done() v      ^ feed()
 *
 * It is sans-I/O: it never touches a descriptor, a clock or a thread. The
 * owner of the connection moves bytes: what arrives from below goes to
 * feed(), then read() until it returns 0; plaintext to send goes to write(),
 * then out_iov() and out_done() after each (possibly short) send.
 *
 * Ownership: the connection owns its transforms; free() releases one and
 * everything it holds (never the layer below or above). Bytes passed to
 * feed() and write() are copied or consumed before the call returns; the
 * iovecs of out_iov() point into the transform and stay valid until the next
 * call on it.
 *
 * Threads: a transform is used by one thread at a time, and may move to
 * another thread between calls (a connection handed off from one shard to
 * another carries its transforms along); it has no thread-local state.
 */
#ifndef SMQ_XFORM_H
#define SMQ_XFORM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct smq_xform;

struct smq_xform_ops {
	/* Bytes from below. All @n are taken (copied); 0 or -errno, fatal
	 * (the connection is over; out_pending() may still hold a last
	 * message for the peer, such as a TLS alert, worth sending). */
	int (*feed)(struct smq_xform *x, const uint8_t *p, size_t n);
	/* Plaintext for above: >0 bytes copied into @buf, 0 none now (feed
	 * more), <0 -errno, fatal. Call until it returns 0 after each feed(). */
	ssize_t (*read)(struct smq_xform *x, uint8_t *buf, size_t cap);
	/* Plaintext from above: the bytes consumed from the front of @iov (may
	 * be short, even 0: the caller keeps the rest and retries after
	 * sending out_iov()), or -errno, fatal. */
	ssize_t (*write)(struct smq_xform *x, const struct iovec *iov, int n);
	/* Up to @max iovecs of the bytes waiting to go below; their count. */
	int (*out_iov)(struct smq_xform *x, struct iovec *iov, int max);
	/* @n bytes from the front of out_iov() were sent. */
	void (*out_done)(struct smq_xform *x, size_t n);
	/* How many bytes wait to go below. */
	size_t (*out_pending)(const struct smq_xform *x);
	/* Release the transform. */
	void (*free)(struct smq_xform *x);
};

/* The generic face, embedded in each transform's own struct. */
struct smq_xform {
	const struct smq_xform_ops *ops;
};

static inline int smq_xform_feed(struct smq_xform *x, const uint8_t *p, size_t n)
{
	return x->ops->feed(x, p, n);
}

static inline ssize_t smq_xform_read(struct smq_xform *x, uint8_t *buf, size_t cap)
{
	return x->ops->read(x, buf, cap);
}

static inline ssize_t smq_xform_write(struct smq_xform *x, const struct iovec *iov, int n)
{
	return x->ops->write(x, iov, n);
}

static inline int smq_xform_out_iov(struct smq_xform *x, struct iovec *iov, int max)
{
	return x->ops->out_iov(x, iov, max);
}

static inline void smq_xform_out_done(struct smq_xform *x, size_t n)
{
	x->ops->out_done(x, n);
}

static inline size_t smq_xform_out_pending(const struct smq_xform *x)
{
	return x->ops->out_pending(x);
}

/* NULL allowed. */
static inline void smq_xform_free(struct smq_xform *x)
{
	if (x)
		x->ops->free(x);
}

#endif
