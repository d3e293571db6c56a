/* bytequeue.c - the transforms' byte FIFO (see bytequeue.h). */
#include "net/bytequeue.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BQ_MIN 4096u	/* first allocation */

int smq_bq_push(struct smq_bq *q, const void *src, size_t n)
{
	size_t need, cap;
	uint8_t *p;

	if (!n)
		return 0;
	if (q->off && q->cap - q->len < n) {
		memmove(q->p, q->p + q->off, q->len - q->off);
		q->len -= q->off;
		q->off = 0;
	}
	need = q->len + n;
	if (need > q->cap) {
		cap = q->cap ? q->cap : BQ_MIN;
		while (cap < need)
			cap *= 2;
		p = realloc(q->p, cap);
		if (!p)
			return -ENOMEM;
		q->p = p;
		q->cap = cap;
	}
	memcpy(q->p + q->len, src, n);
	q->len += n;
	return 0;
}

void smq_bq_pop(struct smq_bq *q, size_t n)
{
	assert(n <= smq_bq_used(q));
	q->off += n;
	if (q->off == q->len)
		smq_bq_fini(q);
}

void smq_bq_fini(struct smq_bq *q)
{
	free(q->p);
	*q = (struct smq_bq){ 0 };
}
