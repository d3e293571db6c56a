/* xstack.c - two transforms as one (see xstack.h).
 *
 * Invariant, after every call that returns: the lower layer has no
 * plaintext left that it could have given the upper one (feed() reads it
 * dry), and the upper layer's output has been offered to the lower one.
 * The one exception is back-pressure: when the lower layer's output is
 * full, the upper layer keeps its bytes until out_done() makes room.
 *
 * Left to the layers: everything they do; the stack adds no buffer of its
 * own beyond a stack array to move plaintext through.
 */
#include "net/xstack.h"

#include <errno.h>
#include <stdlib.h>

#define MOVE_CHUNK 16384	/* one TLS record of plaintext */

struct xstack {
	struct smq_xform xf;		/* the generic face (ops) */
	struct smq_xform *lower;	/* owned */
	struct smq_xform *upper;	/* owned */
	int lower_err;			/* the lower layer failed (say, the peer's
					 * close_notify): read() returns it once the
					 * upper layer has given all it holds */
};

static struct xstack *of(struct smq_xform *x)
{
	return (struct xstack *)x;	/* xf is the first member */
}

/* Offer the upper layer's output to the lower one: 0 or -errno. */
static int push_down(struct xstack *s)
{
	struct iovec iov[8];
	ssize_t took;
	int n;

	while ((n = smq_xform_out_iov(s->upper, iov, 8)) > 0) {
		took = smq_xform_write(s->lower, iov, n);
		if (took < 0)
			return (int)took;
		if (!took)
			return 0;	/* the lower layer is full, or not ready yet */
		smq_xform_out_done(s->upper, (size_t)took);
	}
	return 0;
}

/* Move the lower layer's plaintext into the upper one: 0 or the upper
 * layer's -errno (the lower layer's goes to @lower_err). */
static int pull_up(struct xstack *s)
{
	uint8_t buf[MOVE_CHUNK];
	ssize_t got;
	int ret;

	while (!s->lower_err && (got = smq_xform_read(s->lower, buf, sizeof(buf))) != 0) {
		if (got < 0) {
			s->lower_err = (int)got;
			break;
		}
		ret = smq_xform_feed(s->upper, buf, (size_t)got);
		if (ret)
			return ret;
	}
	return 0;
}

static int xs_feed(struct smq_xform *x, const uint8_t *p, size_t n)
{
	struct xstack *s = of(x);
	int ret = smq_xform_feed(s->lower, p, n), ret2;

	if (ret)
		return ret;
	ret = pull_up(s);
	/* the upper layer's answer (a 101, a pong, a close) goes down even
	 * when it has failed: it may be its last words */
	ret2 = push_down(s);
	return ret ? ret : ret2;
}

static ssize_t xs_read(struct smq_xform *x, uint8_t *buf, size_t cap)
{
	struct xstack *s = of(x);
	ssize_t got = smq_xform_read(s->upper, buf, cap);

	return got ? got : s->lower_err;
}

static ssize_t xs_write(struct smq_xform *x, const struct iovec *iov, int n)
{
	struct xstack *s = of(x);
	ssize_t took;
	int ret;

	ret = push_down(s);	/* older bytes first */
	if (ret)
		return ret;
	took = smq_xform_write(s->upper, iov, n);
	if (took < 0)
		return took;
	ret = push_down(s);
	return ret ? ret : took;
}

static int xs_out_iov(struct smq_xform *x, struct iovec *iov, int max)
{
	struct xstack *s = of(x);

	push_down(s);	/* an error shows up at the next feed/read/write */
	return smq_xform_out_iov(s->lower, iov, max);
}

static void xs_out_done(struct smq_xform *x, size_t n)
{
	struct xstack *s = of(x);

	smq_xform_out_done(s->lower, n);
	push_down(s);	/* an error shows up at the next feed/read/write */
}

static size_t xs_out_pending(const struct smq_xform *x)
{
	const struct xstack *s = (const struct xstack *)x;

	return smq_xform_out_pending(s->lower) + smq_xform_out_pending(s->upper);
}

static void xs_free(struct smq_xform *x)
{
	struct xstack *s = of(x);

	smq_xform_free(s->upper);
	smq_xform_free(s->lower);
	free(s);
}

static const struct smq_xform_ops xstack_ops = {
	.feed = xs_feed,
	.read = xs_read,
	.write = xs_write,
	.out_iov = xs_out_iov,
	.out_done = xs_out_done,
	.out_pending = xs_out_pending,
	.free = xs_free,
};

struct smq_xform *smq_xstack_new(struct smq_xform *lower, struct smq_xform *upper)
{
	struct xstack *s = calloc(1, sizeof(*s));

	if (!s) {
		errno = ENOMEM;
		return NULL;
	}
	s->xf.ops = &xstack_ops;
	s->lower = lower;
	s->upper = upper;
	return &s->xf;
}

struct smq_xform *smq_xstack_lower(struct smq_xform *x)
{
	return x && x->ops == &xstack_ops ? of(x)->lower : NULL;
}

struct smq_xform *smq_xstack_upper(struct smq_xform *x)
{
	return x && x->ops == &xstack_ops ? of(x)->upper : NULL;
}
