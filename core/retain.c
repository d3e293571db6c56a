/* retain.c - the retained store: a topic-level trie behind one rwlock.
 *
 * Why a lock here, in core/ which otherwise has none: the store must answer
 * a SUBSCRIBE on any shard, and retained publishes are rare next to ordinary
 * publishes, which never touch it. A reader-writer lock keeps the code small
 * and lets concurrent subscribes proceed together.
 *
 * Invariants (under the write lock): every node except the root has a parent
 * and either holds a message or has at least one child - empty nodes are
 * pruned at once, so memory follows the number of retained topics. Each node
 * holds one reference to its message. Children live in a per-node chained
 * hash table keyed by the keyed SipHash of the level (core/hash.h: publishers
 * choose the levels, and must not be able to pick ones that share a chain),
 * grown at load factor 1.
 *
 * Walks use an explicit stack, never recursion: a topic may have ~32k levels.
 *
 * Left to others: deciding whether a PUBLISH is retained (engine), how many
 * matches a client may receive (engine, via @max), the per-client RETAIN
 * flag on delivery (engine).
 */
#include "core/retain.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/msg.h"

struct rnode {
	struct rnode *parent;
	struct rnode *next;	/* bucket chain in parent's table */
	struct rnode **buckets;
	uint32_t nbuckets;	/* 0 or a power of two */
	uint32_t nchildren;
	uint32_t hash;
	uint32_t len;
	struct smq_msg *msg;	/* one reference, or NULL */
	uint8_t level[];
};

struct smq_retain {
	pthread_rwlock_t lock;
	struct rnode *root;	/* level "" unused; never holds a message */
	size_t count;
	size_t max;
	uint64_t seq;		/* under lock: the last update's sequence number */
};

struct level {
	const uint8_t *p;
	uint32_t len;
};

/* One step of a walk: the node and the filter level to match next;
 * SUBTREE means "collect this node and everything below". */
struct frame {
	struct rnode *n;
	uint32_t i;
};

#define SUBTREE UINT32_MAX

static uint32_t level_hash(const uint8_t *p, uint32_t len)
{
	return (uint32_t)smq_hash_bytes(p, len);
}

struct smq_retain *smq_retain_new(size_t max_messages)
{
	struct smq_retain *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->root = calloc(1, sizeof(*r->root));
	if (!r->root || pthread_rwlock_init(&r->lock, NULL)) {
		free(r->root);
		free(r);
		return NULL;
	}
	r->max = max_messages;
	return r;
}

static struct rnode *child_find(const struct rnode *n, const uint8_t *p, uint32_t len, uint32_t h)
{
	if (!n->nbuckets)
		return NULL;
	for (struct rnode *c = n->buckets[h & (n->nbuckets - 1)]; c; c = c->next)
		if (c->hash == h && c->len == len && !memcmp(c->level, p, len))
			return c;
	return NULL;
}

static int grow(struct rnode *n)
{
	uint32_t nb = n->nbuckets ? n->nbuckets * 2 : 4;
	struct rnode **b = calloc(nb, sizeof(*b));

	if (!b)
		return -ENOMEM;
	for (uint32_t i = 0; i < n->nbuckets; i++) {
		struct rnode *c = n->buckets[i], *next;

		for (; c; c = next) {
			next = c->next;
			c->next = b[c->hash & (nb - 1)];
			b[c->hash & (nb - 1)] = c;
		}
	}
	free(n->buckets);
	n->buckets = b;
	n->nbuckets = nb;
	return 0;
}

static struct rnode *child_add(struct rnode *n, const uint8_t *p, uint32_t len, uint32_t h)
{
	struct rnode *c;

	if (n->nchildren >= n->nbuckets && grow(n))
		return NULL;
	c = calloc(1, sizeof(*c) + len);
	if (!c)
		return NULL;
	c->parent = n;
	c->hash = h;
	c->len = len;
	if (len)
		memcpy(c->level, p, len);
	c->next = n->buckets[h & (n->nbuckets - 1)];
	n->buckets[h & (n->nbuckets - 1)] = c;
	n->nchildren++;
	return c;
}

static void child_unlink(struct rnode *n, struct rnode *c)
{
	struct rnode **pp = &n->buckets[c->hash & (n->nbuckets - 1)];

	while (*pp != c)
		pp = &(*pp)->next;
	*pp = c->next;
	n->nchildren--;
}

/* Free empty nodes from @n upwards (never the root). */
static void prune(struct smq_retain *r, struct rnode *n)
{
	while (n != r->root && !n->msg && !n->nchildren) {
		struct rnode *parent = n->parent;

		child_unlink(parent, n);
		free(n->buckets);
		free(n);
		n = parent;
	}
}

/* Find (or with @create, make) the node of @topic. On a failed create the
 * nodes made so far are pruned again. */
static struct rnode *node_at(struct smq_retain *r, struct smq_str topic, bool create)
{
	struct rnode *n = r->root;
	uint32_t start = 0;

	for (;;) {
		const uint8_t *p = topic.p + start;
		const uint8_t *slash = memchr(p, '/', topic.len - start);
		uint32_t len = slash ? (uint32_t)(slash - p) : topic.len - start;
		uint32_t h = level_hash(p, len);
		struct rnode *c = child_find(n, p, len, h);

		if (!c && create)
			c = child_add(n, p, len, h);
		if (!c) {
			if (create)
				prune(r, n);
			return NULL;
		}
		n = c;
		if (!slash)
			return n;
		start += len + 1;
	}
}

int smq_retain_set(struct smq_retain *r, struct smq_msg *msg)
{
	return smq_retain_set_seq(r, msg, NULL);
}

int smq_retain_restore(struct smq_retain *r, struct smq_msg *msg, uint64_t seq)
{
	smq_retain_seq_floor(r, seq);
	return smq_retain_set_seq(r, msg, NULL);
}

void smq_retain_seq_floor(struct smq_retain *r, uint64_t seq)
{
	pthread_rwlock_wrlock(&r->lock);
	if (seq > r->seq)
		r->seq = seq;
	pthread_rwlock_unlock(&r->lock);
}

int smq_retain_set_seq(struct smq_retain *r, struct smq_msg *msg, uint64_t *seq)
{
	bool del = msg->payload_len == 0;
	struct rnode *n;
	int ret = 0;

	pthread_rwlock_wrlock(&r->lock);
	if (seq)
		*seq = ++r->seq;	/* the order the updates took effect in */
	n = node_at(r, smq_msg_topic(msg), !del);
	if (del) {
		if (n && n->msg) {
			smq_msg_unref(n->msg);
			n->msg = NULL;
			r->count--;
			prune(r, n);
		}
		goto out_unlock;
	}
	if (!n) {
		ret = -ENOMEM;
		goto out_unlock;
	}
	if (!n->msg && r->max && r->count >= r->max) {
		prune(r, n);
		ret = -ENOSPC;
		goto out_unlock;
	}
	if (n->msg)
		smq_msg_unref(n->msg);
	else
		r->count++;
	n->msg = smq_msg_ref(msg);
out_unlock:
	pthread_rwlock_unlock(&r->lock);
	return ret;
}

/* Growable arrays used by the walk. */
struct vec {
	void *v;
	size_t n, cap, size;
};

static void *vec_push(struct vec *a)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 16;
		void *v = realloc(a->v, cap * a->size);

		if (!v)
			return NULL;
		a->v = v;
		a->cap = cap;
	}
	return (char *)a->v + a->size * a->n++;
}

static int split_levels(struct smq_str f, struct vec *lv)
{
	uint32_t start = 0;

	for (;;) {
		const uint8_t *p = f.p + start;
		const uint8_t *slash = memchr(p, '/', f.len - start);
		struct level *l = vec_push(lv);

		if (!l)
			return -ENOMEM;
		l->p = p;
		l->len = slash ? (uint32_t)(slash - p) : f.len - start;
		if (!slash)
			return 0;
		start += l->len + 1;
	}
}

struct walk {
	struct vec lv;		/* struct level */
	struct vec st;		/* struct frame */
	struct vec out;		/* struct smq_msg * */
	size_t max;
	bool full;
};

static int push(struct walk *w, struct rnode *n, uint32_t i)
{
	struct frame *f = vec_push(&w->st);

	if (!f)
		return -ENOMEM;
	f->n = n;
	f->i = i;
	return 0;
}

static int collect(struct walk *w, struct rnode *n)
{
	struct smq_msg **slot;

	if (!n->msg || w->full)
		return 0;
	slot = vec_push(&w->out);
	if (!slot)
		return -ENOMEM;
	*slot = smq_msg_ref(n->msg);
	if (w->max && w->out.n >= w->max)
		w->full = true;
	return 0;
}

/* Push every child of @n with level index @i; at the root, children whose
 * level starts with '$' are skipped: a wildcard never matches them
 * [MQTT-4.7.2-1]. */
static int push_children(struct walk *w, struct smq_retain *r, struct rnode *n, uint32_t i)
{
	for (uint32_t b = 0; b < n->nbuckets; b++)
		for (struct rnode *c = n->buckets[b]; c; c = c->next) {
			if (n == r->root && c->len && c->level[0] == '$')
				continue;
			if (push(w, c, i))
				return -ENOMEM;
		}
	return 0;
}

static int step(struct walk *w, struct smq_retain *r, struct frame f)
{
	const struct level *lv = w->lv.v;
	struct rnode *c;

	if (f.i == SUBTREE) {
		if (collect(w, f.n))
			return -ENOMEM;
		return push_children(w, r, f.n, SUBTREE);
	}
	if (f.i == w->lv.n)
		return collect(w, f.n);
	if (lv[f.i].len == 1 && lv[f.i].p[0] == '#') {
		/* "a/#" matches "a" itself too [MQTT-4.7.1-2] */
		if (f.n != r->root && collect(w, f.n))
			return -ENOMEM;
		return push_children(w, r, f.n, SUBTREE);
	}
	if (lv[f.i].len == 1 && lv[f.i].p[0] == '+')
		return push_children(w, r, f.n, f.i + 1);
	c = child_find(f.n, lv[f.i].p, lv[f.i].len, level_hash(lv[f.i].p, lv[f.i].len));
	return c ? push(w, c, f.i + 1) : 0;
}

long smq_retain_match(struct smq_retain *r, struct smq_str filter, size_t max,
		      struct smq_msg ***out)
{
	struct walk w = {
		.lv = { .size = sizeof(struct level) },
		.st = { .size = sizeof(struct frame) },
		.out = { .size = sizeof(struct smq_msg *) },
		.max = max,
	};
	long ret = 0;

	*out = NULL;
	if (!filter.len)
		return 0;
	if (split_levels(filter, &w.lv) || push(&w, NULL, 0))
		goto out_nomem;
	pthread_rwlock_rdlock(&r->lock);
	((struct frame *)w.st.v)[0].n = r->root;
	while (w.st.n && !w.full && !ret) {
		struct frame f = ((struct frame *)w.st.v)[--w.st.n];

		ret = step(&w, r, f);
	}
	pthread_rwlock_unlock(&r->lock);
	if (ret)
		goto out_nomem;
	free(w.lv.v);
	free(w.st.v);
	*out = w.out.v;
	return (long)w.out.n;
out_nomem:
	for (size_t i = 0; i < w.out.n; i++)
		smq_msg_unref(((struct smq_msg **)w.out.v)[i]);
	free(w.out.v);
	free(w.lv.v);
	free(w.st.v);
	return -ENOMEM;
}

size_t smq_retain_count(struct smq_retain *r)
{
	size_t n;

	pthread_rwlock_rdlock(&r->lock);
	n = r->count;
	pthread_rwlock_unlock(&r->lock);
	return n;
}

/* Move every child of @n onto the @todo list (linked through their bucket
 * chain pointers, which are not needed any more). */
static void doom_children(struct rnode *n, struct rnode **todo)
{
	for (uint32_t b = 0; b < n->nbuckets; b++) {
		struct rnode *c = n->buckets[b], *next;

		for (; c; c = next) {
			next = c->next;
			c->next = *todo;
			*todo = c;
		}
		n->buckets[b] = NULL;
	}
}

/* Free everything below @root, iteratively and in linear time: each node's
 * table is walked once. (Rescanning a parent's table after each child made
 * a store of 1,000,000 topics under one level take 13 s to free.) */
static void free_below(struct rnode *root)
{
	struct rnode *todo = NULL;

	doom_children(root, &todo);
	while (todo) {
		struct rnode *n = todo;

		todo = n->next;
		doom_children(n, &todo);
		smq_msg_unref(n->msg);
		free(n->buckets);
		free(n);
	}
}

void smq_retain_free(struct smq_retain *r)
{
	if (!r)
		return;
	free_below(r->root);
	free(r->root->buckets);
	free(r->root);
	pthread_rwlock_destroy(&r->lock);
	free(r);
}
