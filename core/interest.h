/* interest.h - the interest index: topic filter -> set of shards that have
 * at least one local subscriber on it.
 *
 * Every shard owns one replica and is its only user (no locks). A replica
 * changes only by applying transition messages that shards broadcast when
 * their local count for a filter goes 0 -> 1 (present = true) or 1 -> 0
 * (present = false), i.e. the SMQ_SUBTREE_FIRST / SMQ_SUBTREE_LAST flags of
 * their local trie, for the full filter string ("$share/g/f" included).
 * Ordering and delivery of those messages is the caller's business; applying
 * one twice is harmless (idempotent).
 *
 * Shards are numbered 0..SMQ_INTEREST_MAX_SHARDS-1 and a set of shards is a
 * uint64_t bit mask (bit i = shard i), so at most 64 shards.
 */
#ifndef SMQ_INTEREST_H
#define SMQ_INTEREST_H

#include <stdbool.h>
#include <stdint.h>

#include "core/codec.h"
#include "core/subtree.h"

#define SMQ_INTEREST_MAX_SHARDS 64u

struct smq_interest;

/* A shared subscription (group, filter) that matched, with the shards that
 * hold at least one member of it. The caller forwards to ONE of them. */
struct smq_interest_group {
	struct smq_str group;	/* views into the index: valid until the next */
	struct smq_str filter;	/* smq_interest_set() on it */
	uint64_t shards;	/* never 0 */
	uint32_t *cursor;	/* round-robin state kept in the index */
};

/* Caller-owned, grow-only output array for smq_interest_match_ex(). */
struct smq_interest_groups {
	struct smq_interest_group *v;
	uint32_t n;
	uint32_t cap;
};

void smq_interest_groups_init(struct smq_interest_groups *g);
void smq_interest_groups_fini(struct smq_interest_groups *g);

/* A new empty replica, or NULL. */
struct smq_interest *smq_interest_new(void);
void smq_interest_free(struct smq_interest *ix);

/* Record that @shard has (present) or no longer has (!present) a subscriber
 * on @filter. Idempotent: setting what is already so returns 0 and changes
 * nothing. Returns 0, -EINVAL (shard >= 64, invalid filter) or -ENOMEM. */
int smq_interest_set(struct smq_interest *ix, struct smq_str filter, unsigned shard,
		     bool present);

/* Does @shard hold @filter? (For tests and diagnostics.) */
bool smq_interest_has(const struct smq_interest *ix, struct smq_str filter, unsigned shard);

/* Shards with an ordinary subscription matching @topic, shared subscriptions
 * ignored. @scratch is the caller's reusable smq_match (contents replaced).
 * Returns the mask; 0 also on allocation failure (nothing is routed). */
uint64_t smq_interest_match(const struct smq_interest *ix, struct smq_str topic,
			    struct smq_match *scratch);

/* The full answer: *mask as smq_interest_match() and, in @groups (contents
 * replaced), one entry per matching shared subscription. @lv, @nlev: the
 * topic already split (smq_msg_levels), or NULL. Returns 0 or -ENOMEM. */
int smq_interest_match_ex(const struct smq_interest *ix, struct smq_str topic,
			  const struct smq_topic_level *lv, uint32_t nlev,
			  struct smq_match *scratch, uint64_t *mask,
			  struct smq_interest_groups *groups);

/* Pick one shard of @g round-robin among those also in @eligible (e.g. the
 * shards whose members are online; pass ~0 for all) and advance g->cursor.
 * Returns the shard number, or -ENOENT if no shard of g is eligible. */
int smq_interest_pick(const struct smq_interest_group *g, uint64_t eligible);

/* Number of (filter, shard) pairs held, shared ones included. */
size_t smq_interest_count(const struct smq_interest *ix);

#endif
