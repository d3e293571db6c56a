/* fuzz_codec.c - libFuzzer target for the codec (core/codec.c, props.c, utf8.c).
 *
 * Input: byte 0 picks the connection (bits 0-1: version 0 / 3.1 / 3.1.1 /
 * 5.0; bits 2-4: the reader's maximum packet size; bits 5-7: a chunk size);
 * the rest is a byte stream. The stream goes through smq_reader three times:
 * whole, in chunks of the chosen size, and byte by byte. Every pass must
 * yield the same packets and end with the same result. Every packet must
 * re-encode to exactly smq_encoded_size() bytes, decode again to an equal
 * packet, and encode again to the same bytes. Any difference aborts.
 *
 * Try it: make fuzz  (or, with only the codec's files:
 *   clang -std=c11 -D_GNU_SOURCE -O1 -g -I. -fsanitize=fuzzer,address,undefined \
 *         -o /tmp/fuzz_codec tests/fuzz/fuzz_codec.c core/codec.c core/props.c core/utf8.c
 *   /tmp/fuzz_codec -max_total_time=60 tests/fuzz/corpus/fuzz_codec)
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t versions[4] = { 0, SMQ_V31, SMQ_V311, SMQ_V5 };
static const uint32_t max_packets[8] = { 0, 2, 16, 64, 128, 300, 4096, 65536 };
static const size_t chunks[8] = { 2, 3, 5, 7, 13, 64, 127, 1000 };

/* What one pass saw: how many packets, a hash of their re-encodings, how it ended. */
struct pass {
	uint64_t hash;
	size_t packets;
	int end;
};

struct scratch {
	uint8_t *a, *b;
	size_t cap;
};

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
	while (n--)
		h = (h ^ *p++) * 0x100000001b3ull;
	return h;
}

/* The round-trip property for one decoded packet; folds it into @ps. */
static void check_packet(const struct smq_packet *pkt, struct scratch *s, struct pass *ps)
{
	struct smq_packet back;
	long n = smq_encoded_size(pkt), m;

	if (n < 2 || (size_t)n > s->cap)
		abort();	/* a decoded packet must be encodable, and not grow much */
	m = smq_encode(pkt, s->a, s->cap);
	if (m != n)
		abort();
	if (smq_decode(s->a, (size_t)m, pkt->version, &back))
		abort();
	if (!smq_packet_equal(pkt, &back) || !smq_packet_equal(&back, pkt))
		abort();
	if (smq_encode(&back, s->b, s->cap) != m || memcmp(s->a, s->b, (size_t)m))
		abort();	/* encoding is canonical */
	ps->hash = fnv(ps->hash, s->a, (size_t)m);
	ps->packets++;
}

/* Feed @in to a fresh reader @chunk bytes at a time (0: all at once). */
static void run_pass(const uint8_t *in, size_t len, uint8_t version, uint32_t max,
		     size_t chunk, struct scratch *s, struct pass *ps)
{
	struct smq_reader r;
	struct smq_packet pkt;
	size_t off = 0;
	int ret = 0;

	memset(ps, 0, sizeof(*ps));
	ps->hash = 0xcbf29ce484222325ull;
	smq_reader_init(&r, max, version);
	while (off < len && ret >= 0) {
		size_t n = chunk && len - off > chunk ? chunk : len - off;
		const uint8_t *p = in + off;
		size_t left = n;

		while ((ret = smq_reader_next(&r, &p, &left, &pkt)) == 1)
			check_packet(&pkt, s, ps);
		if (ret == 0 && left)
			abort();	/* 0 means "all of it used" */
		off += n;
	}
	ps->end = ret;
	smq_reader_fini(&r);
}

static void same_or_abort(const struct pass *x, const struct pass *y)
{
	if (x->packets != y->packets || x->hash != y->hash || x->end != y->end)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct scratch s;
	struct pass whole, chunked, bytewise;
	struct smq_packet pkt;
	uint8_t version, sel;

	if (size < 1)
		return 0;
	sel = data[0];
	version = versions[sel & 3];
	data++;
	size--;
	s.cap = size + 64;	/* re-encoding adds at most a few bytes */
	s.a = malloc(s.cap);
	s.b = malloc(s.cap);
	if (!s.a || !s.b)
		abort();
	run_pass(data, size, version, max_packets[(sel >> 2) & 7], 0, &s, &whole);
	run_pass(data, size, version, max_packets[(sel >> 2) & 7], chunks[sel >> 5], &s,
		 &chunked);
	same_or_abort(&whole, &chunked);
	run_pass(data, size, version, max_packets[(sel >> 2) & 7], 1, &s, &bytewise);
	same_or_abort(&whole, &bytewise);
	/* smq_decode() on the raw rest, whatever its framing says */
	if (!smq_decode(data, size, version, &pkt))
		check_packet(&pkt, &s, &whole);
	free(s.a);
	free(s.b);
	return 0;
}
