/* fuzz_ws.c - libFuzzer target: a WebSocket server transform (net/ws.h)
 * fed a hostile byte stream, alone or on a transform stack (net/xstack.h).
 *
 * Input: byte 0 picks how the rest is cut into feed() calls (1 + the byte,
 * 1..256 bytes each, so request lines, frame headers and payloads split
 * anywhere); byte 1 holds flags: bit 0 puts a valid upgrade request in
 * front of the rest (so that most runs reach the framing), bit 1 sets small
 * limits (headers 256 bytes, frames 300, messages 1000), bit 2 wraps the
 * transform in a stack over a pass-through lower layer. After each feed the
 * transform is read until it returns 0 or fails; what it gave is written
 * back (the engine's answers, in effect), and its output is taken in two
 * pieces, as a short send would.
 *
 * What aborts (besides the sanitizers): read() giving more bytes than were
 * fed, an error without a description, an error that is not sticky, a
 * write accepted after an error, out_iov() disagreeing with out_pending(),
 * a 101 that does not start the output, output before any input.
 *
 * Run it: make fuzz (all targets), or only this one:
 *	clang -std=c11 -D_GNU_SOURCE -O1 -g -I. -fsanitize=fuzzer,address,undefined \
 *		-o build-fuzz/fuzz_ws tests/fuzz/fuzz_ws.c net/ws.c net/xstack.c -lwslay -lwolfssl
 *	./build-fuzz/fuzz_ws tests/fuzz/corpus/fuzz_ws
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/ws.h"
#include "net/xstack.h"
#include "tests/fuzz/fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char REQ[] = "GET /mqtt HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
			  "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
			  "Sec-WebSocket-Protocol: mqtt\r\nSec-WebSocket-Version: 13\r\n\r\n";

static void die(const char *what)
{
	fprintf(stderr, "fuzz_ws: %s\n", what);
	abort();
}

/* ---- a pass-through lower layer, for the stack ------------------------- */

struct pass {
	struct smq_xform xf;
	uint8_t *in, *out;
	size_t inlen, outlen;
};

static int pass_feed(struct smq_xform *x, const uint8_t *p, size_t n)
{
	struct pass *t = (struct pass *)x;
	uint8_t *q = realloc(t->in, t->inlen + n);

	if (!q)
		die("out of memory");
	memcpy(q + t->inlen, p, n);
	t->in = q;
	t->inlen += n;
	return 0;
}

static ssize_t pass_read(struct smq_xform *x, uint8_t *buf, size_t cap)
{
	struct pass *t = (struct pass *)x;
	size_t n = t->inlen < cap ? t->inlen : cap;

	memcpy(buf, t->in, n);
	memmove(t->in, t->in + n, t->inlen - n);
	t->inlen -= n;
	return (ssize_t)n;
}

static ssize_t pass_write(struct smq_xform *x, const struct iovec *iov, int n)
{
	struct pass *t = (struct pass *)x;
	size_t took = 0;

	for (int i = 0; i < n; i++) {
		uint8_t *q = realloc(t->out, t->outlen + iov[i].iov_len);

		if (!q)
			die("out of memory");
		memcpy(q + t->outlen, iov[i].iov_base, iov[i].iov_len);
		t->out = q;
		t->outlen += iov[i].iov_len;
		took += iov[i].iov_len;
	}
	return (ssize_t)took;
}

static int pass_out_iov(struct smq_xform *x, struct iovec *iov, int max)
{
	struct pass *t = (struct pass *)x;

	if (!t->outlen || max < 1)
		return 0;
	iov[0] = (struct iovec){ t->out, t->outlen };
	return 1;
}

static void pass_out_done(struct smq_xform *x, size_t n)
{
	struct pass *t = (struct pass *)x;

	memmove(t->out, t->out + n, t->outlen - n);
	t->outlen -= n;
}

static size_t pass_out_pending(const struct smq_xform *x)
{
	return ((const struct pass *)x)->outlen;
}

static void pass_free(struct smq_xform *x)
{
	struct pass *t = (struct pass *)x;

	free(t->in);
	free(t->out);
	free(t);
}

static const struct smq_xform_ops pass_ops = {
	pass_feed, pass_read, pass_write, pass_out_iov, pass_out_done, pass_out_pending,
	pass_free,
};

/* ---- the run ------------------------------------------------------------- */

struct run {
	struct smq_ws *w;
	struct smq_xform *x;
	size_t fed, got;	/* bytes given to feed(), bytes read() gave back */
	int err;		/* the first error seen */
	bool upgraded_seen;	/* the output began with the 101 */
	bool any_out;
};

static void note_error(struct run *r, int err)
{
	if (!r->err)
		r->err = err;
	else if (err != r->err && err != -ENOBUFS)
		die("the error changed: not sticky");
	if (err != -ENOBUFS && err != -ENOMEM && !smq_ws_error(r->w))
		die("an error without a description");
}

/* Take the output in two pieces and check it against out_pending(). */
static void take_out(struct run *r)
{
	struct iovec iov[8];
	size_t total = 0, pending = smq_xform_out_pending(r->x);
	int n = smq_xform_out_iov(r->x, iov, 8);

	for (int i = 0; i < n; i++)
		total += iov[i].iov_len;
	if (total > pending)
		die("out_iov() gives more than out_pending()");
	if (!n)
		return;
	if (!r->any_out) {
		r->any_out = true;
		r->upgraded_seen = iov[0].iov_len >= 12 && !memcmp(iov[0].iov_base, "HTTP/1.1 101", 12);
	}
	smq_xform_out_done(r->x, iov[0].iov_len / 2);
	n = smq_xform_out_iov(r->x, iov, 8);
	for (int i = 0; i < n; i++)
		smq_xform_out_done(r->x, iov[i].iov_len);
}

static void drive(struct run *r, const uint8_t *p, size_t n)
{
	uint8_t buf[700];
	ssize_t got;
	int ret;

	if (!r->fed && smq_xform_out_pending(r->x))
		die("output before any input");
	ret = smq_xform_feed(r->x, p, n);
	r->fed += n;
	if (ret)
		note_error(r, ret);
	while ((got = smq_xform_read(r->x, buf, sizeof(buf))) > 0) {
		r->got += (size_t)got;
		if (r->got > r->fed)
			die("read() gave more bytes than were fed");
		/* the engine answers: write what came back */
		got = smq_xform_write(r->x, &(struct iovec){ buf, (size_t)got }, 1);
		if (got < 0)
			note_error(r, (int)got);
		else if (r->err && r->err != -ENOBUFS && got > 0)
			die("a write accepted after an error");
	}
	if (got < 0)
		note_error(r, (int)got);
	take_out(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	size_t step = 1 + take(&in), n;
	uint8_t flags = take(&in);
	struct smq_ws_opts small = { .headers_max = 256, .frame_max = 300, .msg_max = 1000 };
	struct run r = { 0 };
	const uint8_t *p;

	r.w = smq_ws_new(flags & 2 ? &small : NULL);
	if (!r.w)
		return 0;
	r.x = smq_ws_xform(r.w);
	if (flags & 4) {
		struct pass *lower = calloc(1, sizeof(*lower));
		struct smq_xform *s;

		if (!lower)
			die("out of memory");
		lower->xf.ops = &pass_ops;
		s = smq_xstack_new(&lower->xf, r.x);
		if (!s)
			die("out of memory");
		r.x = s;
	}
	if (flags & 1) {
		drive(&r, (const uint8_t *)REQ, strlen(REQ));
		if (!(flags & 2) && (!r.upgraded_seen || !smq_ws_open(r.w)))
			die("a good request was not upgraded");
	}
	while ((n = take_bytes(&in, step, &p)))
		drive(&r, p, n);
	if (r.err && smq_xform_write(r.x, &(struct iovec){ (void *)"x", 1 }, 1) > 0 &&
	    r.err != -ENOBUFS)
		die("a write accepted after an error");
	smq_xform_free(r.x);
	return 0;
}
