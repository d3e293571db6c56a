/* hash.h - hashing shared by the in-memory tables.
 *
 * Two kinds, for two kinds of key:
 *
 *  - smq_mix64(): the 64-bit finalizer of MurmurHash3, for keys the broker
 *    chose itself (pointers, small integers, the ACL's fixed tables): every
 *    input bit affects every output bit, so a table may take the low bits.
 *
 *  - smq_hash_bytes(): SipHash-1-3 under one process-wide 128-bit key drawn
 *    with getrandom() when the process starts, for every table keyed by
 *    bytes a client chose (client ids, topic and filter levels). An attacker
 *    who does not know the key cannot tell which strings share a bucket, so
 *    cannot pile thousands of them into one chain or probe run: with an
 *    unkeyed function (the FNV-1a the session table and the retained store
 *    used before) a moment of brute force finds thousands of client ids with
 *    equal low bits, and every lookup in that bucket then scans them all.
 *    SipHash because it is a PRF with a security argument (Rust and CPython
 *    use the same 1-3 variant for the same reason); the keyed multiply-xorshift
 *    it replaced in the trie had seed-independent collisions (flip bit 63 of
 *    the first word: the multiply carries nothing, so the difference survives
 *    to be cancelled by the second word). Cost: none measurable in
 *    perf/bench_trie (N = 100,000, best of 5 alternating runs on a shared
 *    2-vCPU VM: exact match 690 ns against 779 before, wildcard 1404 / 1418):
 *    a match is bound by cache misses, not by hashing 5-byte levels.
 *
 * The key differs per process, so these hashes must never be stored, sent or
 * compared across processes; anything that must agree between processes or
 * stay stable across restarts (smq_engine_home_shard) uses its own function.
 */
#ifndef SMQ_HASH_H
#define SMQ_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t smq_mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

/* The process key: set from getrandom() before main() runs (core/hash.c),
 * read-only after, so any thread may read it without a lock. */
extern uint64_t smq_hash_key[2];

#define SMQ_ROTL64(x, b) (((x) << (b)) | ((x) >> (64 - (b))))

static inline void smq_sipround(uint64_t *v0, uint64_t *v1, uint64_t *v2, uint64_t *v3)
{
	*v0 += *v1;
	*v1 = SMQ_ROTL64(*v1, 13);
	*v1 ^= *v0;
	*v0 = SMQ_ROTL64(*v0, 32);
	*v2 += *v3;
	*v3 = SMQ_ROTL64(*v3, 16);
	*v3 ^= *v2;
	*v0 += *v3;
	*v3 = SMQ_ROTL64(*v3, 21);
	*v3 ^= *v0;
	*v2 += *v1;
	*v1 = SMQ_ROTL64(*v1, 17);
	*v1 ^= *v2;
	*v2 = SMQ_ROTL64(*v2, 32);
}

/* SipHash-c-d of @len bytes at @p under key (k0, k1), as specified by
 * Aumasson and Bernstein (words little-endian). With constant @c and @d the
 * loops unroll; smq_hash_bytes() is the 1-3 instance, tests check the 2-4
 * instance against the paper's vectors. */
static inline uint64_t smq_siphash(uint64_t k0, uint64_t k1, const void *p, size_t len,
				   int c, int d)
{
	uint64_t v0 = 0x736f6d6570736575ull ^ k0, v1 = 0x646f72616e646f6dull ^ k1;
	uint64_t v2 = 0x6c7967656e657261ull ^ k0, v3 = 0x7465646279746573ull ^ k1;
	uint64_t m, b = (uint64_t)len << 56;
	const uint8_t *s = p;
	int i;

	for (; len >= 8; s += 8, len -= 8) {
		memcpy(&m, s, 8);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
		m = __builtin_bswap64(m);
#endif
		v3 ^= m;
		for (i = 0; i < c; i++)
			smq_sipround(&v0, &v1, &v2, &v3);
		v0 ^= m;
	}
	/* The tail by hand: a variable-length memcpy is a libc call, and most
	 * topic levels are shorter than 8 bytes, so this is the common path. */
	for (m = 0; len; len--)
		m = (m << 8) | s[len - 1];
	b |= m;
	v3 ^= b;
	for (i = 0; i < c; i++)
		smq_sipround(&v0, &v1, &v2, &v3);
	v0 ^= b;
	v2 ^= 0xff;
	for (i = 0; i < d; i++)
		smq_sipround(&v0, &v1, &v2, &v3);
	return v0 ^ v1 ^ v2 ^ v3;
}

/* Keyed hash of client-chosen bytes: SipHash-1-3 under the process key.
 * Every bit is usable; tables take the low bits. */
static inline uint64_t smq_hash_bytes(const void *p, size_t len)
{
	return smq_siphash(smq_hash_key[0], smq_hash_key[1], p, len, 1, 3);
}

#endif
