/* subtree.h - the subscription trie: topic filter -> subscribers, and the
 * reverse question, topic -> matching subscribers.
 *
 * One trie per shard (and one per interest replica). Single-threaded: every
 * call on a trie, and on a struct smq_match filled from it, must come from
 * the one thread that owns the trie. No locks, no atomics.
 *
 * A subscriber is an opaque non-NULL key (void *): the broker passes its
 * session pointer, the interest index a small integer cast to a pointer.
 * The trie never dereferences it. A subscription is the pair (filter, sub);
 * adding the same pair again replaces its options.
 *
 * Shared subscriptions: a filter "$share/{g}/{f}" is stored at f, inside
 * group g, apart from the ordinary subscribers of f. The pair (g, f) is one
 * shared subscription with a member list; a match reports the group and its
 * members so the caller can pick one. "$share/..." is always taken as
 * shared; the broker decides earlier whether that is allowed for the
 * client's protocol version (and refuses it if not).
 *
 * Cost: add / remove are O(levels of the filter) plus O(1) expected for the
 * subscriber set of the node and for finding its shared group. "Expected"
 * holds against clients that choose their filters to collide: every table
 * keyed by their bytes uses the process-keyed hash of core/hash.h.
 * Matching costs O(levels of the topic x the wildcard branches that exist)
 * plus O(1) per matching subscription; it never scans subscriptions that do
 * not match.
 */
#ifndef SMQ_SUBTREE_H
#define SMQ_SUBTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/codec.h"

struct smq_subtree;

/* Bits of *flags_out from smq_subtree_add() / smq_subtree_remove(). */
#define SMQ_SUBTREE_FIRST 0x1u		/* the filter went from 0 to 1 subscriber */
#define SMQ_SUBTREE_LAST 0x2u		/* the filter went from 1 to 0 subscribers */
#define SMQ_SUBTREE_REPLACED 0x4u	/* (filter, sub) existed; opts/sub_id replaced */

/* FIRST/LAST count per *full* filter string: for "$share/g/f" they refer to
 * the members of group g on f, not to the ordinary subscribers of f (and
 * vice versa). This is what the broker reports to the interest index. */

/* One subscription as stored: also the member record of a shared group,
 * which smq_match hands out by pointer. */
struct smq_match_member {
	void *sub;
	uint32_t sub_id;	/* 5.0 Subscription Identifier, 0 = none */
	uint8_t opts;		/* SUBSCRIBE options byte (see codec.h SMQ_SUBOPT_*) */
};

/* One subscriber that must get a copy (ordinary subscriptions only). */
struct smq_match_entry {
	void *sub;
	/* The options of the matching subscription with the highest QoS;
	 * the first found wins a tie (the walk order is unspecified). */
	uint8_t opts;
	/* Every non-zero sub_id of this subscriber's matching subscriptions,
	 * as m->ids[ids_off .. ids_off + ids_n), unordered, duplicates kept
	 * [MQTT-3.3.4-3]. ids_n == 0 when none had one. */
	uint32_t ids_off;
	uint32_t ids_n;
};

/* One shared subscription (group, filter) whose filter matched. Exactly one
 * per matching (group, filter) pair; a group name with two matching filters
 * appears twice, as the spec treats them as two shared subscriptions. */
struct smq_match_group {
	struct smq_str group;			/* view into the trie */
	struct smq_str filter;			/* inner filter, view into the trie */
	const struct smq_match_member *members;	/* view into the trie, >= 1 */
	uint32_t nmembers;
	/* Round-robin cursor stored with the group in the trie, free for the
	 * caller to read and write (the trie only zeroes it at creation). */
	uint32_t *cursor;
};

/* Caller-owned scratch and result of a match. Reusable across matches and
 * across tries of the same thread: arrays only grow, so after warm-up a
 * match allocates nothing. The results, and every view in them, stay valid
 * until the next match with this struct or the next add/remove on the trie
 * it came from, whichever is first. */
/* A topic level as a message carries it (core/msg.h): its place in the
 * topic and its smq_hash_bytes(), so that the interest index, the local
 * trie and every shard the message reaches match it without splitting and
 * hashing it again. */
struct smq_topic_level {
	uint32_t off, len;
	uint64_t h;
};

struct smq_match {
	/* results (read-only for the caller) */
	struct smq_match_entry *subs;	/* m->n entries, one per subscriber */
	uint32_t n;
	uint32_t *ids;			/* subscription ids, see smq_match_entry */
	uint32_t nids;
	struct smq_match_group *shared;	/* m->nshared shared subscriptions */
	uint32_t nshared;

	/* private scratch: touch only through the functions below */
	uint32_t subs_cap, ids_cap, shared_cap;
	struct smq_topic_level *levels;	/* the topic split into levels */
	uint32_t levels_cap;
	struct smq_match_frame *stack;	/* walk stack */
	uint32_t stack_cap;
	struct smq_match_idpair *pairs;	/* (entry, id) before grouping */
	uint32_t npairs, pairs_cap;
	struct smq_match_slot *set;	/* sub -> entry, stamped with gen */
	uint32_t set_cap;
	uint32_t gen;
	struct smq_match_cache *cache;	/* recent results, or NULL */
};

void smq_match_init(struct smq_match *m);
void smq_match_fini(struct smq_match *m);

/* Keep recent results in @m (about 250 KB, touched as used): a topic that
 * arrives split (smq_subtree_match_split with levels) and matched again on
 * the same trie, for the same publisher, with no add or remove since, is
 * answered from it instead of walking the trie. Meant for the struct that
 * serves a trie's publish path: publishers mostly repeat their topics.
 * Results with shared subscriptions, more than 32 subscribers or ids, or
 * topics over 48 bytes are not kept. 0 or -ENOMEM (then it stays off). */
int smq_match_cache_on(struct smq_match *m);

/* A new empty trie, or NULL. */
struct smq_subtree *smq_subtree_new(void);
/* Free the trie and all of its nodes. Subscribers are not touched. */
void smq_subtree_free(struct smq_subtree *t);

/* Subscribe @sub to @filter (which may be "$share/g/f") with options @opts
 * and subscription id @sub_id (0 = none). Copies what it needs from
 * @filter. If (filter, sub) already exists, its opts and sub_id are replaced
 * and SMQ_SUBTREE_REPLACED is set. SMQ_SUBTREE_FIRST is set when the filter
 * had no subscriber before. @flags_out may be NULL.
 * Returns 0, -EINVAL (invalid filter or shared filter, or sub == NULL) or
 * -ENOMEM (the trie is unchanged). */
int smq_subtree_add(struct smq_subtree *t, struct smq_str filter, void *sub,
		    uint8_t opts, uint32_t sub_id, unsigned *flags_out);

/* Unsubscribe @sub from @filter. Returns 0, -ENOENT if that subscription
 * does not exist, -EINVAL for an invalid filter. SMQ_SUBTREE_LAST is set in
 * *flags_out (may be NULL) when the filter has no subscriber left. Nodes left
 * empty are freed at once, so memory does not grow under churn. */
int smq_subtree_remove(struct smq_subtree *t, struct smq_str filter, void *sub,
		       unsigned *flags_out);

/* Is (filter, sub) subscribed? On true, *opts / *sub_id (each may be NULL)
 * get the stored values. */
bool smq_subtree_find(const struct smq_subtree *t, struct smq_str filter,
		      const void *sub, uint8_t *opts, uint32_t *sub_id);

/* The levels of @topic (1 + its '/' count), and the split itself into
 * @lv (room for that many). smq_topic_split_max() splits into @lv of room
 * @max in one pass: the level count, or 0 (@lv partly written) when @topic
 * has more than @max levels. */
uint32_t smq_topic_nlevels(struct smq_str topic);
void smq_topic_split(struct smq_str topic, struct smq_topic_level *lv);
uint32_t smq_topic_split_max(struct smq_str topic, struct smq_topic_level *lv, uint32_t max);

/* Find everything that @topic (a topic name, any bytes accepted) matches,
 * into @m (previous results are discarded). Ordinary subscribers are
 * reduced to one entry each: highest QoS, all subscription ids.
 * @publisher: a subscription of @publisher with No Local set is skipped
 * [MQTT-3.8.3-3]; pass NULL when the publishing session is not in this
 * trie. Shared members are never filtered this way (No Local on a shared
 * subscription is a protocol error [MQTT-3.8.3-4], refused earlier).
 * Returns 0 or -ENOMEM (then m holds a partial result; do not deliver). */
int smq_subtree_match(const struct smq_subtree *t, struct smq_str topic,
		      const void *publisher, struct smq_match *m);

/* smq_subtree_match() with @topic already split into @lv (@nlev levels, as
 * smq_topic_split() made them); @lv NULL: split it here. */
int smq_subtree_match_split(const struct smq_subtree *t, struct smq_str topic,
			    const struct smq_topic_level *lv, uint32_t nlev,
			    const void *publisher, struct smq_match *m);

/* Number of subscriptions: ordinary ones plus every shared-group member. */
size_t smq_subtree_count(const struct smq_subtree *t);
/* Number of trie nodes, root excluded: 0 for an empty trie. */
size_t smq_subtree_nodes(const struct smq_subtree *t);

#endif
