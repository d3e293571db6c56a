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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/engine.h"
#include "shard/shard.h"

struct smq_sys;

/* What another shard may read of shard @sh: struct smq_engine_stats and the
 * loop counters of struct smq_shard, copied racily (each 64-bit word is
 * whole; a gauge may be a turn stale). Shared by $SYS and the metrics
 * endpoint (shard/metrics.c). */
struct smq_shard_view {
	bool running;			/* the shard has an engine (else all 0) */
	uint64_t turns, waits, enobufs, sends, send_bytes, recvs, recv_bytes, tls_failures;
	uint64_t turn_hist[SMQ_SHARD_TURN_BUCKETS], turn_ns;
	uint64_t inbox_depth;		/* messages waiting in its inbox */
	uint64_t recv_buffers;		/* receive buffers given to the kernel */
	uint64_t store_stalls;		/* times the store made it stop reading */
	uint64_t input_deferred;	/* times a client's input waited for the next turn */
	uint64_t flow_pauses;		/* times a publisher was held back */
	uint64_t store_commits;		/* the store writer's transactions */
	uint64_t store_cancelled;	/* records cancelled by their partner, never written */
	struct smq_engine_stats st;
};

/* Fill @v from shard @sh, from any thread. */
void smq_sys_shard_read(struct smq_shard *sh, struct smq_shard_view *v);

/* The engine's kinds of dropped message: a name and the counter's offset in
 * struct smq_engine_stats, in the order $SYS lists them. */
struct smq_drop_kind {
	const char *name;
	size_t off;
};

#define SMQ_SYS_DROP_KINDS 8
extern const struct smq_drop_kind smq_sys_drop_kinds[SMQ_SYS_DROP_KINDS];

/* Counter @kind (an index into smq_sys_drop_kinds) of @st. */
uint64_t smq_sys_dropped(const struct smq_engine_stats *st, unsigned kind);

/* jemalloc's bytes allocated now, after refreshing its stats; false
 * without jemalloc (sanitizer builds). */
bool smq_sys_heap(uint64_t *out);

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
