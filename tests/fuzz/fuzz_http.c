/* fuzz_http.c - libFuzzer target: the HTTP/1.1 request-head parser.
 *
 * Input: one byte choosing a split point, then the bytes a client sent.
 * The bytes are parsed as a connection would: head after head (pipelining),
 * each head fed whole and, again, in two parts at the chosen point and a
 * byte at a time; the three results must agree (split invariance), a
 * complete head must lie inside the input with its path inside the head,
 * and nothing may read past the input (ASan).
 *
 *	clang -std=c11 -D_GNU_SOURCE -O1 -g -I. -fsanitize=fuzzer,address,undefined \
 *		-o build-fuzz/fuzz_http tests/fuzz/fuzz_http.c net/http.c
 *	./build-fuzz/fuzz_http -max_total_time=60 tests/fuzz/corpus/fuzz_http
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The result of parsing @p[0..n) fed in pieces ending at @cuts (ascending,
 * the last one n). */
static int parse_cut(const uint8_t *p, const size_t *cuts, size_t ncuts,
		     struct smq_http_req *r)
{
	int got = 0;

	smq_http_req_init(r);
	for (size_t i = 0; i < ncuts && got == 0; i++)
		got = smq_http_parse(r, p, cuts[i]);
	return got;
}

static void check_head(const struct smq_http_req *r, int got, size_t n)
{
	char head[256];

	if (got <= 0)
		return;
	if ((size_t)got > n || (size_t)got > SMQ_HTTP_HEAD_MAX)
		abort();
	if (r->path_off + r->path_len > (uint32_t)got || !r->method || r->minor > 1)
		abort();
	if (smq_http_response_head(head, sizeof(head), 200, "text/plain", (size_t)got,
				   r->keep_alive ? NULL : "close") <= 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct smq_http_req whole, split, bytewise;
	size_t at, off = 0;

	if (size < 1)
		return 0;
	at = data[0];
	data++;
	size--;
	while (off < size) {
		const uint8_t *p = data + off;
		size_t n = size - off, cuts[2] = { at % (n + 1), n };
		size_t *bytes = malloc(n * sizeof(*bytes));
		int a, b, c;

		if (!bytes)
			return 0;
		for (size_t i = 0; i < n; i++)
			bytes[i] = i + 1;
		a = parse_cut(p, &cuts[1], 1, &whole);
		b = parse_cut(p, cuts, 2, &split);
		c = parse_cut(p, bytes, n, &bytewise);
		free(bytes);
		if (a != b || a != c)
			abort();
		check_head(&whole, a, n);
		if (a > 0 && (whole.keep_alive != split.keep_alive || whole.body != bytewise.body ||
			      whole.path_off != bytewise.path_off || whole.method != split.method))
			abort();
		if (a <= 0)
			break;
		smq_http_error_status(a);
		off += (size_t)a;	/* the next pipelined head */
	}
	return 0;
}
