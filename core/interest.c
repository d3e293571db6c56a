/* interest.c - the interest index: which shards want a topic.
 *
 * A thin layer over the subscription trie (core/subtree.c): shard i is the
 * subscriber key (void *)(i + 1) (never NULL), so "shard i has a subscriber
 * on f" is the subscription (f, i + 1), and a match reduces to OR-ing bits.
 * Shared filters "$share/g/f" land in group g of f like in a local trie, and
 * a group's member keys become that group's shard mask.
 *
 * Invariant: (f, i + 1) is in the trie iff the last transition applied for
 * (f, shard i) was present = true. Re-applying a transition is a no-op.
 *
 * Left to others: producing and carrying the transitions (the shard inbox),
 * the order they arrive in, and choosing what to do with the mask.
 */
#include "core/interest.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct smq_interest {
	struct smq_subtree *t;
};

_Static_assert(SMQ_INTEREST_MAX_SHARDS == 64, "a shard set is one uint64_t");

static void *shard_key(unsigned shard)
{
	return (void *)(uintptr_t)(shard + 1u);
}

static unsigned key_shard(const void *key)
{
	return (unsigned)((uintptr_t)key - 1u);
}

void smq_interest_groups_init(struct smq_interest_groups *g)
{
	memset(g, 0, sizeof(*g));
}

void smq_interest_groups_fini(struct smq_interest_groups *g)
{
	free(g->v);
	memset(g, 0, sizeof(*g));
}

struct smq_interest *smq_interest_new(void)
{
	struct smq_interest *ix = calloc(1, sizeof(*ix));

	if (!ix)
		return NULL;
	ix->t = smq_subtree_new();
	if (!ix->t) {
		free(ix);
		return NULL;
	}
	return ix;
}

void smq_interest_free(struct smq_interest *ix)
{
	if (!ix)
		return;
	smq_subtree_free(ix->t);
	free(ix);
}

int smq_interest_set(struct smq_interest *ix, struct smq_str filter, unsigned shard,
		     bool present)
{
	int ret;

	if (shard >= SMQ_INTEREST_MAX_SHARDS)
		return -EINVAL;
	if (present)	/* an existing pair is "replaced" by itself: idempotent */
		return smq_subtree_add(ix->t, filter, shard_key(shard), 0, 0, NULL);
	ret = smq_subtree_remove(ix->t, filter, shard_key(shard), NULL);
	return ret == -ENOENT ? 0 : ret;
}

bool smq_interest_has(const struct smq_interest *ix, struct smq_str filter, unsigned shard)
{
	return shard < SMQ_INTEREST_MAX_SHARDS &&
	       smq_subtree_find(ix->t, filter, shard_key(shard), NULL, NULL);
}

static uint64_t subs_mask(const struct smq_match *m)
{
	uint64_t mask = 0;
	uint32_t i;

	for (i = 0; i < m->n; i++)
		mask |= 1ull << key_shard(m->subs[i].sub);
	return mask;
}

uint64_t smq_interest_match(const struct smq_interest *ix, struct smq_str topic,
			    struct smq_match *scratch)
{
	if (smq_subtree_match(ix->t, topic, NULL, scratch))
		return 0;
	return subs_mask(scratch);
}

static int groups_reserve(struct smq_interest_groups *g, uint32_t n)
{
	struct smq_interest_group *v;
	uint32_t cap = g->cap ? g->cap : 4;

	if (n <= g->cap)
		return 0;
	while (cap < n)
		cap *= 2;
	v = realloc(g->v, (size_t)cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	g->v = v;
	g->cap = cap;
	return 0;
}

int smq_interest_match_ex(const struct smq_interest *ix, struct smq_str topic,
			  const struct smq_topic_level *lv, uint32_t nlev,
			  struct smq_match *scratch, uint64_t *mask,
			  struct smq_interest_groups *groups)
{
	uint32_t i, k;
	int ret;

	*mask = 0;
	groups->n = 0;
	ret = smq_subtree_match_split(ix->t, topic, lv, nlev, NULL, scratch);
	if (ret)
		return ret;
	if (groups_reserve(groups, scratch->nshared))
		return -ENOMEM;
	*mask = subs_mask(scratch);
	for (i = 0; i < scratch->nshared; i++) {
		const struct smq_match_group *mg = &scratch->shared[i];
		struct smq_interest_group *g = &groups->v[i];

		g->group = mg->group;
		g->filter = mg->filter;
		g->cursor = mg->cursor;
		g->shards = 0;
		for (k = 0; k < mg->nmembers; k++)
			g->shards |= 1ull << key_shard(mg->members[k].sub);
	}
	groups->n = scratch->nshared;
	return 0;
}

/* The cursor holds the shard to consider first next time: the first
 * eligible shard at or after it (wrapping) is taken, so each eligible shard
 * gets its turn however the set changes between calls. */
int smq_interest_pick(const struct smq_interest_group *g, uint64_t eligible)
{
	uint64_t m = g->shards & eligible, hi;
	unsigned start = *g->cursor % SMQ_INTEREST_MAX_SHARDS, pick;

	if (!m)
		return -ENOENT;
	hi = m & (~0ull << start);
	pick = (unsigned)__builtin_ctzll(hi ? hi : m);
	*g->cursor = (pick + 1) % SMQ_INTEREST_MAX_SHARDS;
	return (int)pick;
}

size_t smq_interest_count(const struct smq_interest *ix)
{
	return smq_subtree_count(ix->t);
}
