/* test_hash.c - the keyed hash of client-chosen bytes (core/hash.h): SipHash
 * against published values, the process key, and the property it is there
 * for: strings an attacker made collide under the old unkeyed functions
 * spread over the buckets under the keyed one. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"

/* The SipHash paper's key: bytes 00 01 .. 0f, little-endian words. */
#define K0 0x0706050403020100ull
#define K1 0x0f0e0d0c0b0a0908ull

Test(core_hash, siphash24_gives_the_papers_test_vectors)
{
	uint8_t msg[64];

	for (int i = 0; i < 64; i++)
		msg[i] = (uint8_t)i;
	/* Aumasson & Bernstein, "SipHash: a fast short-input PRF", appendix A
	 * (15 bytes) and the reference implementation's vectors.h (0 bytes) */
	cr_assert_eq(smq_siphash(K0, K1, msg, 15, 2, 4), 0xa129ca6149be45e5ull);
	cr_assert_eq(smq_siphash(K0, K1, msg, 0, 2, 4), 0x726fdb47dd0e0e31ull);
}

Test(core_hash, siphash13_agrees_with_cpython)
{
	/* PYTHONHASHSEED=0 python3 -c 'print(hex(hash(b"abc") & (2**64-1)))':
	 * CPython >= 3.11 hashes bytes with SipHash-1-3 under an all-zero key
	 * when randomization is off. Lengths below, at and above one word. */
	cr_assert_eq(smq_siphash(0, 0, "abc", 3, 1, 3), 0xc03bc3a0042630f2ull);
	cr_assert_eq(smq_siphash(0, 0, "hello world, sip", 16, 1, 3), 0x7fc0b9d0d55312c4ull);
	cr_assert_eq(smq_siphash(0, 0, "\0\1\2\3\4\5\6\7\10\11\12\13\14\15\16", 15, 1, 3),
		     0xf30eb725bb91c9eaull);
}

Test(core_hash, process_key_is_random_and_used)
{
	cr_assert(smq_hash_key[0] || smq_hash_key[1], "the key was drawn before main()");
	cr_assert_eq(smq_hash_bytes("topic", 5),
		     smq_siphash(smq_hash_key[0], smq_hash_key[1], "topic", 5, 1, 3));
	cr_assert_neq(smq_hash_bytes("topic", 5), smq_siphash(0, 0, "topic", 5, 1, 3));
}

/* The trie's level hash before this change: keyed by a seed, but the
 * multiply carries nothing out of bit 63, so flipping bit 63 of one word
 * changes the state by bits 63 and 34 (after the xorshift), whatever the
 * seed, and the next word can flip them back. */
static uint64_t old_trie_hash(uint64_t seed, const uint8_t *p, uint32_t len)
{
	uint64_t h = seed ^ len, w;

	for (; len >= 8; p += 8, len -= 8) {
		memcpy(&w, p, 8);
		h = (h ^ w) * 0x100000001b3ull;
		h ^= h >> 29;
	}
	for (w = 0; len; len--)
		w = (w << 8) | p[len - 1];
	return smq_mix64(h ^ w);
}

#define WORDS 13			/* 12 choices: 4096 levels */
#define NLEV (1u << (WORDS - 1))

/* Level @i of the family: choice bit j flips byte 7 of word j (bit 63) and
 * bytes 7 and 4 of word j + 1 (bits 63 and 34). No byte becomes '/', '+',
 * '#' or NUL, so each is a valid filter level too. */
static void make_level(uint32_t i, uint8_t *out)
{
	memset(out, 'a', WORDS * 8);
	for (int j = 0; j < WORDS - 1; j++) {
		if (!(i >> j & 1))
			continue;
		out[j * 8 + 7] ^= 0x80;
		out[(j + 1) * 8 + 7] ^= 0x80;
		out[(j + 1) * 8 + 4] ^= 0x04;
	}
}

Test(core_hash, levels_colliding_for_every_seed_of_the_old_hash_spread)
{
	static uint16_t bucket[4096];
	uint8_t lev[WORDS * 8];
	uint32_t used = 0, most = 0;
	uint64_t h0, h1;

	make_level(0, lev);
	h0 = old_trie_hash(0x1234, lev, sizeof(lev));
	h1 = old_trie_hash(0x9876543210ull, lev, sizeof(lev));

	memset(bucket, 0, sizeof(bucket));
	for (uint32_t i = 0; i < NLEV; i++) {
		uint32_t b;

		make_level(i, lev);
		/* the attack works: one 64-bit value, under two unrelated seeds */
		cr_assert_eq(old_trie_hash(0x1234, lev, sizeof(lev)), h0, "level %u", i);
		cr_assert_eq(old_trie_hash(0x9876543210ull, lev, sizeof(lev)), h1);
		b = (uint32_t)smq_hash_bytes(lev, sizeof(lev)) & 4095u;
		used += !bucket[b];
		if (++bucket[b] > most)
			most = bucket[b];
	}
	/* 4096 keys in 4096 buckets at random: ~63% used, the fullest holds
	 * about 7; the attacker wanted one bucket holding all of them */
	cr_assert_gt(used, 2000, "%u buckets used", used);
	cr_assert_lt(most, 32, "fullest bucket holds %u", most);
}
