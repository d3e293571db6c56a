/* sys.h - the broker's $SYS topics, mosquitto's names and meanings.
 * Internal to shard/; run by shard 0 only, on its own thread.
 *
 * Every sys_interval seconds shard 0 sums every shard's counters (struct
 * smq_engine_stats and the loop counters of struct smq_shard, read racily:
 * a gauge may be a turn stale) and publishes, retained at QoS 0 through its
 * own engine, each $SYS/broker/... topic whose value changed since the last
 * round. The publish path never sees any of it: shards only bump their own
 * counters, as they always did.
 */
#ifndef SMQ_SHARD_SYS_H
#define SMQ_SHARD_SYS_H

#include <stdint.h>

struct smq_shard;
struct smq_sys;

/* The $SYS publisher of shard @s (shard 0), every @interval_s (> 0)
 * seconds from @now_ms on. The first round comes after a second at most
 * (once the other shards have started), then one every interval. NULL on
 * ENOMEM. Owner thread of @s from now on. */
struct smq_sys *smq_sys_new(struct smq_shard *s, unsigned interval_s, uint64_t now_ms);

/* NULL is fine. */
void smq_sys_free(struct smq_sys *y);

/* Publish a round if one is due at @now_ms. Returns ms until the next
 * round (>= 0): the loop sleeps no longer than that. */
int64_t smq_sys_tick(struct smq_sys *y, uint64_t now_ms);

#endif
