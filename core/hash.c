/* hash.c - the process key of smq_hash_bytes() (see hash.h).
 *
 * The key is drawn once, before main() runs and so before any thread or
 * table exists: after that it is read-only and shared by every shard without
 * a lock. getrandom() is asked not to block (a broker started early in boot
 * must not hang on the entropy pool); if it cannot answer, the key is mixed
 * from the clock, the pid and ASLR'd addresses instead, which is weaker but
 * still unknown to a remote client.
 */
#include "core/hash.h"

#include <sys/random.h>
#include <time.h>
#include <unistd.h>

uint64_t smq_hash_key[2];

__attribute__((constructor)) static void hash_key_init(void)
{
	struct timespec ts;
	uint64_t x;

	if (getrandom(smq_hash_key, sizeof(smq_hash_key), GRND_NONBLOCK) ==
	    (ssize_t)sizeof(smq_hash_key))
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)getpid();
	smq_hash_key[0] = smq_mix64(x ^ (uint64_t)(uintptr_t)&x);
	smq_hash_key[1] = smq_mix64(smq_hash_key[0] ^ (uint64_t)(uintptr_t)smq_hash_key);
}
