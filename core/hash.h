/* hash.h - small integer hashing shared by the in-memory tables.
 *
 * smq_mix64() is the 64-bit finalizer of MurmurHash3: every input bit
 * affects every output bit, so a table may take the low bits of the result
 * as its bucket index. Keyed hashing of client-chosen bytes (core/subtree.c)
 * and the ACL's fixed tables (core/acl.c) both end in it.
 */
#ifndef SMQ_HASH_H
#define SMQ_HASH_H

#include <stdint.h>

static inline uint64_t smq_mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

#endif
