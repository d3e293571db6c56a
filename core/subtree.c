/* subtree.c - the subscription trie.
 *
 * Shape. One node per filter level. A node's literal children live in a
 * small open-addressing table keyed by (hash, bytes) of the level; its '+'
 * and '#' children are direct pointers, so a match step costs one table
 * probe plus two pointer tests whatever the fan-out. Each node holds the
 * ordinary subscribers of the filter that ends there (a "subset": dense
 * array, plus a hash index on the subscriber key once it is large) and the
 * shared groups of that filter (each with its own subset; past GROUP_SCAN
 * groups, a hash index by group name, so "$share/g1/f" .. "$share/gN/f" from
 * one client costs O(N), not O(N^2)).
 *
 * Every hash of a level or group name is the process-keyed SipHash of
 * core/hash.h: clients choose those bytes, and with a guessable function
 * could make them all collide into one probe run (children_chosen_to_collide
 * in tests/unit/test_subtree.c took 7 s with the keyed-but-weak function
 * used before, 0.04 s now).
 *
 *	root --"sport"--> n1 --"tennis"--> n2 --(plus)--> n3   "sport/tennis/+"
 *	                   \--(hash)--> n4                     "sport/#"
 *
 * Matching is bound by memory latency once the trie outgrows the cache
 * (each level is a dependent load), so the common shapes avoid loads: a
 * node with one literal child points at it directly (no table), a table
 * slot carries the child's hash (probing does not touch other children),
 * and a filter's first subscriber is stored inline in its node. That takes
 * an exact 4-level match from 7 dependent cache misses to 5; figures in
 * perf/RESULTS.md ("Topic trie"), measured by perf/bench_trie.c.
 *
 * Invariants:
 *  - every node except the root has a subscriber, a group or a child;
 *    a remove that empties a node frees it and then its emptied ancestors,
 *    so memory follows the live subscriptions under any churn;
 *  - a group has at least one member (an emptied group is freed);
 *  - t->count is the sum of all subset sizes, t->nodes the node count.
 *
 * Matching walks the topic's levels with an explicit stack (topics may have
 * 32k levels), and reduces ordinary hits to one entry per subscriber with a
 * generation-stamped hash set inside struct smq_match: O(1) per hit, no
 * clearing between matches. The '$' rule [MQTT-4.7.2-1] is applied at the
 * root only, where it belongs: it concerns the first level.
 *
 * Left to others: what a subscriber is (never dereferenced), QoS downgrade,
 * picking a shared-group member, retained messages.
 */
#include "core/subtree.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"

#include "core/topic.h"

/* Subsets up to this size are scanned; larger ones get a hash index. */
#define SUBSET_SCAN 8u

struct subset {
	struct smq_match_member *v;
	uint32_t n;
	uint32_t cap;
	uint32_t *idx;		/* NULL, or idx_cap slots of (position + 1), 0 = empty */
	uint32_t idx_cap;	/* power of two, load <= 1/2 */
	struct smq_match_member one;	/* v == &one while cap == 1 */
};

struct group {
	struct subset members;
	uint64_t h;		/* hash of the name, for the node's gindex */
	uint32_t cursor;	/* the caller's round-robin state */
	uint32_t name_len;
	uint32_t filter_len;
	uint8_t bytes[];	/* name, then the inner filter */
};

/* A node's groups by name, once it has more than GROUP_SCAN of them (one
 * client may send "$share/g1/f" .. "$share/g100000/f"): cap slots of
 * (position in node->groups + 1), 0 = empty, load <= 1/2. */
struct gindex {
	uint32_t cap;		/* a power of two */
	uint32_t slot[];
};

#define GROUP_SCAN 8u

/* A literal child: its label hash is kept in the slot so that probing past
 * other children does not touch their (cold) nodes. */
struct kid {
	uint64_t h;
	struct node *n;		/* NULL = empty slot */
};

/* Fields in walk order: what a match step reads first comes first. */
struct node {
	uint64_t h;		/* hash of label */
	uint32_t len;		/* label length */
	uint32_t nkids;
	union {
		struct node *kid1;	/* kcap == 0: the only child, or NULL */
		struct kid *kids;	/* kcap > 0: open addressing, nkids >= 2 */
	};
	uint32_t kcap;		/* 0 or a power of two, load <= 3/4 */
	uint32_t ngroups;
	struct node *plus;
	struct node *hash;
	struct subset subs;
	struct group **groups;
	struct gindex *gidx;	/* NULL while ngroups <= GROUP_SCAN (or on ENOMEM) */
	struct node *parent;
	uint8_t label[];
};

struct smq_subtree {
	struct node *root;
	size_t count;
	size_t nodes;
	uint64_t gen;		/* bumped by every add and remove: match caches */
};

/* Private parts of struct smq_match. */

struct smq_match_frame {
	const struct node *n;
	uint32_t depth;
};

struct smq_match_idpair {
	uint32_t entry;
	uint32_t id;
};

struct smq_match_slot {
	const void *key;
	uint32_t gen;		/* slot is live iff gen == m->gen */
	uint32_t entry;
};

/* ---- hashing ---------------------------------------------------------- */

/* Level hash: filters and topics are chosen by clients, so the keyed
 * SipHash of core/hash.h (a fixed function would let one client pile
 * colliding levels into one node's table). */
static uint64_t hash_bytes(const uint8_t *p, uint32_t len)
{
	return smq_hash_bytes(p, len);
}

static uint64_t hash_ptr(const void *p)
{
	return smq_mix64((uint64_t)(uintptr_t)p);
}

static void *grow(void *arr, uint32_t *cap, uint32_t need, size_t size)
{
	uint32_t c = *cap ? *cap : 4;
	void *v;

	while (c < need)
		c *= 2;
	v = realloc(arr, (size_t)c * size);
	if (v)
		*cap = c;
	return v;
}

/* ---- subsets: the subscribers of one filter ---------------------------- */

static uint32_t idx_slot(const struct subset *s, const void *sub)
{
	uint32_t mask = s->idx_cap - 1;
	uint32_t i = (uint32_t)hash_ptr(sub) & mask;

	while (s->idx[i] && s->v[s->idx[i] - 1].sub != sub)
		i = (i + 1) & mask;
	return i;
}

/* Position of @sub in @s, or -1. */
static int64_t subset_find(const struct subset *s, const void *sub)
{
	uint32_t i;

	if (s->idx) {
		i = idx_slot(s, sub);
		return s->idx[i] ? (int64_t)s->idx[i] - 1 : -1;
	}
	for (i = 0; i < s->n; i++)
		if (s->v[i].sub == sub)
			return i;
	return -1;
}

/* (Re)build the index for s->n entries at capacity @cap. */
static int idx_build(struct subset *s, uint32_t cap)
{
	uint32_t *idx = calloc(cap, sizeof(*idx));
	uint32_t k;

	if (!idx)
		return -ENOMEM;
	free(s->idx);
	s->idx = idx;
	s->idx_cap = cap;
	for (k = 0; k < s->n; k++)
		s->idx[idx_slot(s, s->v[k].sub)] = k + 1;
	return 0;
}

/* Remove index slot @i, shifting the following run back (no tombstones). */
static void idx_erase(struct subset *s, uint32_t i)
{
	uint32_t mask = s->idx_cap - 1, j = i, home;

	for (;;) {
		s->idx[i] = 0;
		for (;;) {
			j = (j + 1) & mask;
			if (!s->idx[j])
				return;
			home = (uint32_t)hash_ptr(s->v[s->idx[j] - 1].sub) & mask;
			/* move j back to i unless its home lies in (i, j] */
			if (i <= j ? (home <= i || home > j) : (home <= i && home > j))
				break;
		}
		s->idx[i] = s->idx[j];
		i = j;
	}
}

/* Room for one more entry. The first one lives inline: most filters have a
 * single subscriber, which then costs no allocation and no extra cache miss
 * when matched. (Subsets live in nodes and groups, which never move.) */
static int subset_grow(struct subset *s)
{
	struct smq_match_member *v;
	uint32_t cap = s->cap * 2;

	if (s->n < s->cap)
		return 0;
	if (!s->cap) {
		s->v = &s->one;
		s->cap = 1;
		return 0;
	}
	if (s->v == &s->one) {
		v = malloc((size_t)cap * sizeof(*v));
		if (v)
			v[0] = s->one;
	} else {
		v = realloc(s->v, (size_t)cap * sizeof(*v));
	}
	if (!v)
		return -ENOMEM;
	s->v = v;
	s->cap = cap;
	return 0;
}

static void subset_fini(struct subset *s)
{
	if (s->v != &s->one)
		free(s->v);
	free(s->idx);
	*s = (struct subset){ 0 };
}

/* Add or replace @sub in @s. Sets *replaced. 0 or -ENOMEM (s unchanged). */
static int subset_put(struct subset *s, void *sub, uint8_t opts, uint32_t sub_id,
		      bool *replaced)
{
	int64_t pos = subset_find(s, sub);

	*replaced = pos >= 0;
	if (pos >= 0) {
		s->v[pos].opts = opts;
		s->v[pos].sub_id = sub_id;
		return 0;
	}
	if (subset_grow(s))
		return -ENOMEM;
	if (s->n + 1 > SUBSET_SCAN && (s->n + 1) * 2 > s->idx_cap &&
	    idx_build(s, s->idx_cap ? s->idx_cap * 2 : 4 * SUBSET_SCAN))
		return -ENOMEM;
	s->v[s->n] = (struct smq_match_member){ .sub = sub, .sub_id = sub_id, .opts = opts };
	s->n++;
	if (s->idx)
		s->idx[idx_slot(s, sub)] = s->n;
	return 0;
}

static void subset_shrink(struct subset *s)
{
	void *v;

	if (s->n == 0) {
		subset_fini(s);
		return;
	}
	if (s->idx && s->n <= SUBSET_SCAN / 2) {
		free(s->idx);
		s->idx = NULL;
		s->idx_cap = 0;
	}
	if (s->cap >= 16 && s->n < s->cap / 4) {
		v = realloc(s->v, (size_t)(s->cap / 2) * sizeof(*s->v));
		if (v) {
			s->v = v;
			s->cap /= 2;
		}
	}
	/* the index may now be far too large for n: rebuild it smaller; on
	 * ENOMEM the old one stays valid */
	if (s->idx && s->idx_cap >= 8 * SUBSET_SCAN && s->n * 8 < s->idx_cap)
		idx_build(s, s->idx_cap / 2);
}

/* Remove @sub from @s: false if absent. The last entry moves into the hole. */
static bool subset_del(struct subset *s, const void *sub)
{
	int64_t pos = subset_find(s, sub);
	uint32_t last;

	if (pos < 0)
		return false;
	last = s->n - 1;
	if (s->idx) {
		idx_erase(s, idx_slot(s, sub));
		if ((uint32_t)pos != last)
			s->idx[idx_slot(s, s->v[last].sub)] = (uint32_t)pos + 1;
	}
	s->v[pos] = s->v[last];
	s->n--;
	subset_shrink(s);
	return true;
}

/* ---- nodes ------------------------------------------------------------- */

static struct node *node_new(struct node *parent, const uint8_t *label, uint32_t len,
			     uint64_t h)
{
	struct node *n = calloc(1, sizeof(*n) + len);

	if (!n)
		return NULL;
	n->parent = parent;
	n->len = len;
	n->h = h;
	if (len)
		memcpy(n->label, label, len);
	return n;
}

static bool node_empty(const struct node *n)
{
	return !n->subs.n && !n->ngroups && !n->nkids && !n->plus && !n->hash;
}

static bool kid_is(const struct node *k, const uint8_t *p, uint32_t len, uint64_t h)
{
	return k->h == h && k->len == len && smq_bytes_eq(k->label, p, len);
}

/* Table slot holding (p, len), or the empty slot where it would go. */
static uint32_t kid_slot(const struct node *n, const uint8_t *p, uint32_t len, uint64_t h)
{
	uint32_t mask = n->kcap - 1, i = (uint32_t)h & mask;
	const struct kid *e;

	/* the hash is in the slot: only a probable hit touches the child */
	while ((e = &n->kids[i])->n && !(e->h == h && kid_is(e->n, p, len, h)))
		i = (i + 1) & mask;
	return i;
}

static struct node *kid_find(const struct node *n, const uint8_t *p, uint32_t len, uint64_t h)
{
	if (!n->kcap)	/* zero or one child, held inline */
		return n->kid1 && kid_is(n->kid1, p, len, h) ? n->kid1 : NULL;
	return n->kids[kid_slot(n, p, len, h)].n;
}

/* Move the children into a table of @cap slots (from a table or inline). */
static int kids_rehash(struct node *n, uint32_t cap)
{
	struct kid *kids = calloc(cap, sizeof(*kids)), *old = n->kcap ? n->kids : NULL;
	struct node *one = n->kcap ? NULL : n->kid1, *k;
	uint32_t i, oldcap = n->kcap;

	if (!kids)
		return -ENOMEM;
	n->kids = kids;
	n->kcap = cap;
	for (i = 0; i < oldcap; i++)
		if ((k = old[i].n))
			kids[kid_slot(n, k->label, k->len, k->h)] = old[i];
	if (one)
		kids[kid_slot(n, one->label, one->len, one->h)] = (struct kid){ one->h, one };
	free(old);
	return 0;
}

static int kid_insert(struct node *n, struct node *k)
{
	if (!n->nkids) {
		n->kid1 = k;
		n->nkids = 1;
		return 0;
	}
	if ((n->nkids + 1) * 4 > n->kcap * 3 && kids_rehash(n, n->kcap ? n->kcap * 2 : 4))
		return -ENOMEM;
	n->kids[kid_slot(n, k->label, k->len, k->h)] = (struct kid){ k->h, k };
	n->nkids++;
	return 0;
}

/* Back to the inline form once a single child is left. */
static void kids_inline(struct node *n)
{
	struct kid *kids = n->kids;
	uint32_t i = 0;

	while (!kids[i].n)
		i++;
	n->kid1 = kids[i].n;
	n->kcap = 0;
	free(kids);
}

static void kid_erase(struct node *n, const struct node *k)
{
	uint32_t mask = n->kcap - 1, i, j, home;

	if (!n->kcap) {
		n->kid1 = NULL;
		n->nkids = 0;
		return;
	}
	i = j = kid_slot(n, k->label, k->len, k->h);
	for (;;) {
		n->kids[i] = (struct kid){ 0, NULL };
		for (;;) {
			j = (j + 1) & mask;
			if (!n->kids[j].n)
				goto out;
			home = (uint32_t)n->kids[j].h & mask;
			/* move j back to i unless its home lies in (i, j] */
			if (i <= j ? (home <= i || home > j) : (home <= i && home > j))
				break;
		}
		n->kids[i] = n->kids[j];
		i = j;
	}
out:
	if (--n->nkids == 1)
		kids_inline(n);
	else if (n->kcap > 16 && n->nkids * 8 < n->kcap)
		kids_rehash(n, n->kcap / 2);	/* on ENOMEM the old table stays */
}

/* Free @n and then each ancestor the freeing leaves empty (not the root). */
static void prune(struct smq_subtree *t, struct node *n)
{
	struct node *p;

	while (n != t->root && node_empty(n)) {
		p = n->parent;
		if (p->plus == n)
			p->plus = NULL;
		else if (p->hash == n)
			p->hash = NULL;
		else
			kid_erase(p, n);
		free(n->groups);
		free(n);
		t->nodes--;
		n = p;
	}
}

static bool is_wild(const uint8_t *p, uint32_t len, uint8_t c)
{
	return len == 1 && p[0] == c;
}

/* The child of @n for level (p, len), created when @create. NULL if absent
 * or out of memory (*err = -ENOMEM). */
static struct node *child(struct smq_subtree *t, struct node *n, const uint8_t *p,
			  uint32_t len, bool create, int *err)
{
	struct node **wild = is_wild(p, len, '+') ? &n->plus :
			     is_wild(p, len, '#') ? &n->hash : NULL;
	uint64_t h = 0;
	struct node *k;

	if (wild && (*wild || !create))
		return *wild;
	if (!wild) {
		h = hash_bytes(p, len);
		k = kid_find(n, p, len, h);
		if (k || !create)
			return k;
	}
	k = node_new(n, p, len, h);
	if (!k || (!wild && kid_insert(n, k))) {
		free(k);
		*err = -ENOMEM;
		return NULL;
	}
	if (wild)
		*wild = k;
	t->nodes++;
	return k;
}

/* The node of @filter (a valid inner filter). With @create, missing nodes
 * are made; on ENOMEM returns NULL with the partial path pruned. */
static struct node *walk(struct smq_subtree *t, struct smq_str filter, bool create, int *err)
{
	struct node *n = t->root, *k;
	uint32_t i = 0, len;
	const uint8_t *s;

	for (;;) {
		s = memchr(filter.p + i, '/', filter.len - i);
		len = s ? (uint32_t)(s - filter.p) - i : filter.len - i;
		k = child(t, n, filter.p + i, len, create, err);
		if (!k) {
			if (create)
				prune(t, n);
			return NULL;
		}
		n = k;
		if (!s)
			return n;
		i += len + 1;
	}
}

/* ---- groups ------------------------------------------------------------ */

static bool group_is(const struct group *g, struct smq_str name, uint64_t h)
{
	return g->h == h && g->name_len == name.len && !memcmp(g->bytes, name.p, name.len);
}

/* The gindex slot holding @name, or the empty slot ending its probe run. */
static uint32_t gidx_slot(const struct node *n, struct smq_str name, uint64_t h)
{
	const struct gindex *x = n->gidx;
	uint32_t mask = x->cap - 1, i = (uint32_t)h & mask;

	while (x->slot[i] && !group_is(n->groups[x->slot[i] - 1], name, h))
		i = (i + 1) & mask;
	return i;
}

static void gidx_insert(struct node *n, uint32_t pos)
{
	struct gindex *x = n->gidx;
	uint32_t mask = x->cap - 1, i = (uint32_t)n->groups[pos]->h & mask;

	while (x->slot[i])
		i = (i + 1) & mask;
	x->slot[i] = pos + 1;
}

/* Index all of n's groups at @cap slots. On ENOMEM the node is left with no
 * index: lookups fall back to the scan, slower but right. */
static void gidx_build(struct node *n, uint32_t cap)
{
	free(n->gidx);
	n->gidx = calloc(1, sizeof(*n->gidx) + (size_t)cap * sizeof(uint32_t));
	if (!n->gidx)
		return;
	n->gidx->cap = cap;
	for (uint32_t k = 0; k < n->ngroups; k++)
		gidx_insert(n, k);
}

/* Empty slot @i, shifting the rest of its run back (no tombstones). */
static void gidx_erase(struct node *n, uint32_t i)
{
	struct gindex *x = n->gidx;
	uint32_t mask = x->cap - 1, j = i, home;

	for (;;) {
		x->slot[i] = 0;
		for (;;) {
			j = (j + 1) & mask;
			if (!x->slot[j])
				return;
			home = (uint32_t)n->groups[x->slot[j] - 1]->h & mask;
			/* move j back to i unless its home lies in (i, j] */
			if (i <= j ? (home <= i || home > j) : (home <= i && home > j))
				break;
		}
		x->slot[i] = x->slot[j];
		i = j;
	}
}

/* Group @name (hash @h) of @n and its position, or NULL. */
static struct group *group_find(const struct node *n, struct smq_str name, uint64_t h,
				uint32_t *pos)
{
	uint32_t i;

	if (n->gidx) {
		i = n->gidx->slot[gidx_slot(n, name, h)];
		if (i && pos)
			*pos = i - 1;
		return i ? n->groups[i - 1] : NULL;
	}
	for (i = 0; i < n->ngroups; i++) {
		if (group_is(n->groups[i], name, h)) {
			if (pos)
				*pos = i;
			return n->groups[i];
		}
	}
	return NULL;
}

static struct group *group_add(struct node *n, struct smq_str name, uint64_t h,
			       struct smq_str inner)
{
	struct group *g = calloc(1, sizeof(*g) + name.len + inner.len);
	struct group **v;

	if (!g)
		return NULL;
	/* The array's capacity is the power of two at or above ngroups, so it
	 * is implied, not stored; growing by one each time would copy O(N^2)
	 * bytes under an allocator that cannot grow in place. */
	if (!(n->ngroups & (n->ngroups - 1))) {
		v = realloc(n->groups, (n->ngroups ? 2 * n->ngroups : 1) * sizeof(*v));
		if (!v) {
			free(g);
			return NULL;
		}
		n->groups = v;
	}
	g->h = h;
	g->name_len = name.len;
	g->filter_len = inner.len;
	memcpy(g->bytes, name.p, name.len);
	memcpy(g->bytes + name.len, inner.p, inner.len);
	n->groups[n->ngroups++] = g;
	if (n->ngroups > GROUP_SCAN && (!n->gidx || n->ngroups * 2 > n->gidx->cap))
		gidx_build(n, n->gidx ? n->gidx->cap * 2 : 4 * GROUP_SCAN);
	else if (n->gidx)
		gidx_insert(n, n->ngroups - 1);
	return g;
}

static void group_del(struct node *n, uint32_t pos)
{
	uint32_t last = n->ngroups - 1;
	struct group *g = n->groups[pos];

	if (n->gidx) {
		struct smq_str name = { g->bytes, g->name_len };

		gidx_erase(n, gidx_slot(n, name, g->h));
		if (pos != last) {	/* the last group fills the hole */
			struct group *l = n->groups[last];
			struct smq_str lname = { l->bytes, l->name_len };

			n->gidx->slot[gidx_slot(n, lname, l->h)] = pos + 1;
		}
	}
	free(g);
	n->groups[pos] = n->groups[last];
	if (!--n->ngroups) {
		free(n->groups);
		free(n->gidx);
		n->groups = NULL;
		n->gidx = NULL;
	}
}

/* ---- public: lifetime, add, remove, find ------------------------------- */

struct smq_subtree *smq_subtree_new(void)
{
	struct smq_subtree *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->root = node_new(NULL, NULL, 0, 0);
	if (!t->root) {
		free(t);
		return NULL;
	}
	return t;
}

/* Detach and return one child of @n, for teardown only (consumes kcap). */
static struct node *take_child(struct node *n)
{
	struct node *k;

	if ((k = n->plus)) {
		n->plus = NULL;
		return k;
	}
	if ((k = n->hash)) {
		n->hash = NULL;
		return k;
	}
	if (!n->kcap) {
		k = n->kid1;
		n->kid1 = NULL;
		return k;
	}
	/* consume the table from the end; kcap doubles as the cursor */
	while (n->kcap > 1)
		if ((k = n->kids[--n->kcap].n))
			return k;
	k = n->kids[0].n;
	free(n->kids);
	n->kid1 = NULL;
	n->kcap = 0;
	return k;
}

static void node_release(struct node *n)
{
	uint32_t i;

	for (i = 0; i < n->ngroups; i++) {
		subset_fini(&n->groups[i]->members);
		free(n->groups[i]);
	}
	free(n->groups);
	free(n->gidx);
	subset_fini(&n->subs);
	free(n);
}

void smq_subtree_free(struct smq_subtree *t)
{
	struct node *n, *k, *p;

	if (!t)
		return;
	/* iterative: a filter may have 32k levels, too deep to recurse */
	n = t->root;
	while (n) {
		k = take_child(n);
		if (k) {
			n = k;
			continue;
		}
		p = n->parent;
		node_release(n);
		n = p;
	}
	free(t);
}

/* Split @filter into (group or none, inner filter); -EINVAL if invalid. */
static int split(struct smq_str filter, struct smq_str *group, struct smq_str *inner)
{
	int ret = smq_topic_parse_shared(filter, group, inner);

	if (ret < 0)
		return ret;
	if (ret == 1) {
		if (!smq_topic_filter_valid(filter))
			return -EINVAL;
		group->p = NULL;
		group->len = 0;
		*inner = filter;
	}
	return 0;
}

/* Put @sub into group @name of node @n; on failure leaves no empty group. */
static int add_shared(struct node *n, struct smq_str name, struct smq_str inner, void *sub,
		      uint8_t opts, uint32_t sub_id, bool *first, bool *replaced)
{
	uint64_t h = hash_bytes(name.p, name.len);
	struct group *g = group_find(n, name, h, NULL);
	int ret;

	*first = !g;
	if (!g) {
		g = group_add(n, name, h, inner);
		if (!g)
			return -ENOMEM;
	}
	ret = subset_put(&g->members, sub, opts, sub_id, replaced);
	if (ret && *first)
		group_del(n, n->ngroups - 1);
	return ret;
}

int smq_subtree_add(struct smq_subtree *t, struct smq_str filter, void *sub,
		    uint8_t opts, uint32_t sub_id, unsigned *flags_out)
{
	struct smq_str group, inner;
	struct node *n;
	bool first, replaced;
	int ret = split(filter, &group, &inner);

	if (flags_out)
		*flags_out = 0;
	if (ret || !sub)
		return -EINVAL;
	t->gen++;
	n = walk(t, inner, true, &ret);
	if (!n)
		return ret;
	if (group.p) {
		ret = add_shared(n, group, inner, sub, opts, sub_id, &first, &replaced);
	} else {
		first = n->subs.n == 0;
		ret = subset_put(&n->subs, sub, opts, sub_id, &replaced);
	}
	if (ret) {
		prune(t, n);
		return ret;
	}
	if (!replaced)
		t->count++;
	if (flags_out)
		*flags_out = (first ? SMQ_SUBTREE_FIRST : 0) |
			     (replaced ? SMQ_SUBTREE_REPLACED : 0);
	return 0;
}

int smq_subtree_remove(struct smq_subtree *t, struct smq_str filter, void *sub,
		       unsigned *flags_out)
{
	struct smq_str group, inner;
	struct node *n;
	struct group *g;
	uint32_t pos;
	bool last;
	int ret = split(filter, &group, &inner);

	if (flags_out)
		*flags_out = 0;
	if (ret)
		return -EINVAL;
	t->gen++;
	n = walk(t, inner, false, &ret);
	if (!n)
		return -ENOENT;
	if (group.p) {
		g = group_find(n, group, hash_bytes(group.p, group.len), &pos);
		if (!g || !subset_del(&g->members, sub))
			return -ENOENT;
		last = g->members.n == 0;
		if (last)
			group_del(n, pos);
	} else {
		if (!subset_del(&n->subs, sub))
			return -ENOENT;
		last = n->subs.n == 0;
	}
	t->count--;
	prune(t, n);
	if (flags_out && last)
		*flags_out = SMQ_SUBTREE_LAST;
	return 0;
}

bool smq_subtree_find(const struct smq_subtree *t, struct smq_str filter,
		      const void *sub, uint8_t *opts, uint32_t *sub_id)
{
	struct smq_str group, inner;
	const struct subset *s;
	struct node *n;
	struct group *g;
	int64_t pos;
	int err = 0;

	if (split(filter, &group, &inner))
		return false;
	/* walk() does not modify the trie without @create */
	n = walk((struct smq_subtree *)t, inner, false, &err);
	if (!n)
		return false;
	if (group.p) {
		g = group_find(n, group, hash_bytes(group.p, group.len), NULL);
		if (!g)
			return false;
		s = &g->members;
	} else {
		s = &n->subs;
	}
	pos = subset_find(s, sub);
	if (pos < 0)
		return false;
	if (opts)
		*opts = s->v[pos].opts;
	if (sub_id)
		*sub_id = s->v[pos].sub_id;
	return true;
}

size_t smq_subtree_count(const struct smq_subtree *t)
{
	return t->count;
}

size_t smq_subtree_nodes(const struct smq_subtree *t)
{
	return t->nodes;
}

/* ---- matching ---------------------------------------------------------- */

void smq_match_init(struct smq_match *m)
{
	memset(m, 0, sizeof(*m));
}

void smq_match_fini(struct smq_match *m)
{
	free(m->cache);
	free(m->subs);
	free(m->ids);
	free(m->shared);
	free(m->levels);
	free(m->stack);
	free(m->pairs);
	free(m->set);
	memset(m, 0, sizeof(*m));
}

/* Make room for the dedup set to take one more entry at load <= 1/2. */
static int set_reserve(struct smq_match *m)
{
	struct smq_match_slot *set;
	uint32_t cap, mask, i, k;

	if ((m->n + 1) * 2 <= m->set_cap)
		return 0;
	cap = m->set_cap ? m->set_cap * 2 : 64;
	set = calloc(cap, sizeof(*set));
	if (!set)
		return -ENOMEM;
	free(m->set);
	m->set = set;
	m->set_cap = cap;
	mask = cap - 1;
	for (k = 0; k < m->n; k++) {
		i = (uint32_t)hash_ptr(m->subs[k].sub) & mask;
		while (set[i].gen == m->gen)
			i = (i + 1) & mask;
		set[i] = (struct smq_match_slot){ m->subs[k].sub, m->gen, k };
	}
	return 0;
}

/* Entry index for @sub, created (with @opts) if new this match; -ENOMEM. */
static int64_t entry_for(struct smq_match *m, void *sub, uint8_t opts)
{
	struct smq_match_slot *sl;
	uint32_t mask, i;
	void *v;

	if (set_reserve(m))
		return -ENOMEM;
	mask = m->set_cap - 1;
	i = (uint32_t)hash_ptr(sub) & mask;
	while (m->set[i].gen == m->gen && m->set[i].key != sub)
		i = (i + 1) & mask;
	sl = &m->set[i];
	if (sl->gen == m->gen) {
		struct smq_match_entry *e = &m->subs[sl->entry];

		if (SMQ_SUBOPT_QOS(opts) > SMQ_SUBOPT_QOS(e->opts))
			e->opts = opts;
		return sl->entry;
	}
	if (m->n == m->subs_cap) {
		v = grow(m->subs, &m->subs_cap, m->n + 1, sizeof(*m->subs));
		if (!v)
			return -ENOMEM;
		m->subs = v;
	}
	m->subs[m->n] = (struct smq_match_entry){ .sub = sub, .opts = opts };
	*sl = (struct smq_match_slot){ sub, m->gen, m->n };
	return m->n++;
}

static int add_pair(struct smq_match *m, uint32_t entry, uint32_t id)
{
	void *v;

	if (m->npairs == m->pairs_cap) {
		v = grow(m->pairs, &m->pairs_cap, m->npairs + 1, sizeof(*m->pairs));
		if (!v)
			return -ENOMEM;
		m->pairs = v;
	}
	m->pairs[m->npairs++] = (struct smq_match_idpair){ entry, id };
	return 0;
}

static int collect_subs(struct smq_match *m, const struct subset *s, const void *publisher)
{
	uint32_t i;
	int64_t e;

	for (i = 0; i < s->n; i++) {
		const struct smq_match_member *mb = &s->v[i];

		if (mb->sub == publisher && (mb->opts & SMQ_SUBOPT_NO_LOCAL))
			continue;	/* [MQTT-3.8.3-3] */
		e = entry_for(m, mb->sub, mb->opts);
		if (e < 0)
			return -ENOMEM;
		if (mb->sub_id && add_pair(m, (uint32_t)e, mb->sub_id))
			return -ENOMEM;
	}
	return 0;
}

static int collect_groups(struct smq_match *m, const struct node *n)
{
	uint32_t i;
	void *v;

	if (m->nshared + n->ngroups > m->shared_cap) {
		v = grow(m->shared, &m->shared_cap, m->nshared + n->ngroups, sizeof(*m->shared));
		if (!v)
			return -ENOMEM;
		m->shared = v;
	}
	for (i = 0; i < n->ngroups; i++) {
		struct group *g = n->groups[i];

		m->shared[m->nshared++] = (struct smq_match_group){
			.group = { g->bytes, g->name_len },
			.filter = { g->bytes + g->name_len, g->filter_len },
			.members = g->members.v,
			.nmembers = g->members.n,
			.cursor = &g->cursor,
		};
	}
	return 0;
}

/* Everything subscribed at node @n (the filter ending there matched). */
static int collect(struct smq_match *m, const struct node *n, const void *publisher)
{
	if (n->subs.n && collect_subs(m, &n->subs, publisher))
		return -ENOMEM;
	if (n->ngroups && collect_groups(m, n))
		return -ENOMEM;
	return 0;
}

/* Gather each entry's ids from m->pairs into m->ids, contiguous per entry. */
static int group_ids(struct smq_match *m)
{
	uint32_t i, off = 0;
	void *v;

	if (m->npairs > m->ids_cap) {
		v = grow(m->ids, &m->ids_cap, m->npairs, sizeof(*m->ids));
		if (!v)
			return -ENOMEM;
		m->ids = v;
	}
	for (i = 0; i < m->npairs; i++)
		m->subs[m->pairs[i].entry].ids_n++;
	for (i = 0; i < m->n; i++) {
		m->subs[i].ids_off = off;
		off += m->subs[i].ids_n;
		m->subs[i].ids_n = 0;
	}
	for (i = 0; i < m->npairs; i++) {
		struct smq_match_entry *e = &m->subs[m->pairs[i].entry];

		m->ids[e->ids_off + e->ids_n++] = m->pairs[i].id;
	}
	m->nids = m->npairs;
	return 0;
}

/* Reset results, bump the generation, size the stack for @nlev levels. */
static int match_begin(struct smq_match *m, uint32_t nlev)
{
	void *v;

	m->n = m->nids = m->nshared = m->npairs = 0;
	if (++m->gen == 0) {	/* wrapped: stale stamps could look live */
		if (m->set)
			memset(m->set, 0, (size_t)m->set_cap * sizeof(*m->set));
		m->gen = 1;
	}
	/* DFS keeps at most one pending sibling per level */
	if (nlev + 2 > m->stack_cap) {
		v = grow(m->stack, &m->stack_cap, nlev + 2, sizeof(*m->stack));
		if (!v)
			return -ENOMEM;
		m->stack = v;
	}
	return 0;
}

/* The next '/' in [p, end), or end. Topic levels are mostly a few bytes:
 * a plain loop finds their end sooner than a libc call could start, and a
 * level longer than 32 bytes goes on with memchr. */
static inline const uint8_t *slash_or_end(const uint8_t *p, const uint8_t *end)
{
	const uint8_t *stop = end - p > 32 ? p + 32 : end, *s;

	for (; p < stop; p++)
		if (*p == '/')
			return p;
	if (p == end)
		return end;
	s = memchr(p, '/', (size_t)(end - p));
	return s ? s : end;
}

uint32_t smq_topic_nlevels(struct smq_str topic)
{
	const uint8_t *p = topic.p, *end = topic.p + topic.len;
	uint32_t n = 1;

	while ((p = slash_or_end(p, end)) != end) {
		n++;
		p++;
	}
	return n;
}

uint32_t smq_topic_split_max(struct smq_str topic, struct smq_topic_level *lv, uint32_t max)
{
	const uint8_t *p = topic.p, *end = topic.p + topic.len, *s;
	uint32_t n = 0;

	for (;; p = s + 1) {
		if (n == max)
			return 0;
		s = slash_or_end(p, end);
		lv[n++] = (struct smq_topic_level){ (uint32_t)(p - topic.p), (uint32_t)(s - p),
						    hash_bytes(p, (size_t)(s - p)) };
		if (s == end)
			return n;
	}
}

void smq_topic_split(struct smq_str topic, struct smq_topic_level *lv)
{
	smq_topic_split_max(topic, lv, UINT32_MAX);
}

/* @topic's levels into m->levels: the caller's split when @lv, else split
 * and hashed here. The level count, 0 on ENOMEM. */
static uint32_t levels_of(struct smq_match *m, struct smq_str topic,
			  const struct smq_topic_level *lv, uint32_t nlev)
{
	if (!lv)
		nlev = smq_topic_nlevels(topic);
	if (nlev > m->levels_cap) {
		void *v = grow(m->levels, &m->levels_cap, nlev, sizeof(*m->levels));

		if (!v)
			return 0;
		m->levels = v;
	}
	if (lv)
		memcpy(m->levels, lv, nlev * sizeof(*lv));
	else
		smq_topic_split(topic, m->levels);
	return nlev;
}

/* ---- match cache ------------------------------------------------------- */

/* Recent results, direct-mapped on the topic's keyed level hashes and the
 * publisher (No Local makes the result depend on it). A slot is good while
 * its trie's generation is unchanged; shared subscriptions (their cursor
 * moves per message) and results too large for a slot are not kept. */
#define MCACHE_SLOTS 256u
#define MCACHE_TOPIC_MAX 48u
#define MCACHE_SUBS_MAX 32u
#define MCACHE_IDS_MAX 32u

struct mcache_slot {
	const struct smq_subtree *t;	/* NULL: empty */
	uint64_t gen;
	const void *publisher;
	uint16_t tlen;
	uint8_t n, nids;
	uint8_t topic[MCACHE_TOPIC_MAX];
	struct smq_match_entry subs[MCACHE_SUBS_MAX];
	uint32_t ids[MCACHE_IDS_MAX];
};

struct smq_match_cache {
	struct mcache_slot slot[MCACHE_SLOTS];
};

int smq_match_cache_on(struct smq_match *m)
{
	if (!m->cache && !(m->cache = calloc(1, sizeof(*m->cache))))
		return -ENOMEM;
	return 0;
}

static struct mcache_slot *mcache_slot(struct smq_match *m, const struct smq_topic_level *lv,
				       uint32_t nlev, const void *publisher)
{
	uint64_t h = (uint64_t)(uintptr_t)publisher;

	for (uint32_t i = 0; i < nlev; i++)
		h = (h ^ lv[i].h) * 0x9e3779b97f4a7c15ull;
	return &m->cache->slot[(h >> 56) % MCACHE_SLOTS];
}

static bool mcache_get(struct smq_match *m, const struct mcache_slot *sl,
		       const struct smq_subtree *t, struct smq_str topic, const void *publisher)
{
	if (sl->t != t || sl->gen != t->gen || sl->publisher != publisher ||
	    sl->tlen != topic.len || !smq_bytes_eq(sl->topic, topic.p, topic.len))
		return false;
	/* The arrays hold at least this much: the slot was filled from them.
	 * Element by element: a few entries, where memcpy's rep movs start-up
	 * cost more than the whole walk it saves. */
	for (uint32_t i = 0; i < sl->n; i++)
		m->subs[i] = sl->subs[i];
	for (uint32_t i = 0; i < sl->nids; i++)
		m->ids[i] = sl->ids[i];
	m->n = sl->n;
	m->nids = sl->nids;
	return true;
}

static void mcache_put(const struct smq_match *m, struct mcache_slot *sl,
		       const struct smq_subtree *t, struct smq_str topic, const void *publisher)
{
	if (topic.len > MCACHE_TOPIC_MAX || m->n > MCACHE_SUBS_MAX || m->nids > MCACHE_IDS_MAX ||
	    m->nshared)
		return;
	sl->t = t;
	sl->gen = t->gen;
	sl->publisher = publisher;
	sl->tlen = (uint16_t)topic.len;
	sl->n = (uint8_t)m->n;
	sl->nids = (uint8_t)m->nids;
	memcpy(sl->topic, topic.p, topic.len);
	for (uint32_t i = 0; i < m->n; i++)	/* (m->subs may be NULL when n is 0) */
		sl->subs[i] = m->subs[i];
	for (uint32_t i = 0; i < m->nids; i++)
		sl->ids[i] = m->ids[i];
}

/* ---- the walk ---------------------------------------------------------- */

int smq_subtree_match(const struct smq_subtree *t, struct smq_str topic,
		      const void *publisher, struct smq_match *m)
{
	return smq_subtree_match_split(t, topic, NULL, 0, publisher, m);
}

int smq_subtree_match_split(const struct smq_subtree *t, struct smq_str topic,
			    const struct smq_topic_level *lv, uint32_t nlev,
			    const void *publisher, struct smq_match *m)
{
	struct mcache_slot *sl = NULL;
	uint32_t sp = 0, d;
	const struct node *n, *k;
	bool dollar;
	int ret;

	m->n = m->nids = m->nshared = m->npairs = 0;
	if (!topic.len)
		return 0;	/* not a topic name: matches nothing */
	if (m->cache && lv) {
		sl = mcache_slot(m, lv, nlev, publisher);
		if (mcache_get(m, sl, t, topic, publisher))
			return 0;
	}
	nlev = levels_of(m, topic, lv, nlev);
	if (!nlev || match_begin(m, nlev))
		return -ENOMEM;
	dollar = topic.len && topic.p[0] == '$';
	m->stack[sp++] = (struct smq_match_frame){ t->root, 0 };
	while (sp) {
		n = m->stack[--sp].n;
		d = m->stack[sp].depth;
		if (d == nlev) {
			if (collect(m, n, publisher))
				return -ENOMEM;
			/* "sport/#" matches "sport" */
			if (n->hash && collect(m, n->hash, publisher))
				return -ENOMEM;
			continue;
		}
		/* [MQTT-4.7.2-1]: no wildcard first level for "$..." topics */
		if (d == 0 && dollar)
			goto literal;
		if (n->hash && collect(m, n->hash, publisher))
			return -ENOMEM;
		if (n->plus)
			m->stack[sp++] = (struct smq_match_frame){ n->plus, d + 1 };
literal:
		k = kid_find(n, topic.p + m->levels[d].off, m->levels[d].len, m->levels[d].h);
		if (k)
			m->stack[sp++] = (struct smq_match_frame){ k, d + 1 };
	}
	ret = m->npairs ? group_ids(m) : 0;
	if (!ret && sl)
		mcache_put(m, sl, t, topic, publisher);
	return ret;
}
