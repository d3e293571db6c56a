/* msg.c - refcounted immutable messages.
 *
 * Invariant: a message's bytes never change after smq_msg_new() returns, so
 * any number of shards and output queues may point into them at once; the
 * atomic count is the only shared mutable state. The increment is relaxed
 * (taking a reference needs one already held); the decrement is release and
 * the final one acquires, so the freeing thread sees every reader done.
 *
 * Left to others: routing (engine), queue bounds (session), encoding of the
 * per-subscriber PUBLISH header (engine).
 */
#include "core/msg.h"

#include <stdlib.h>
#include <string.h>

/* The split cache: direct-mapped on a cheap unkeyed index. Colliding
 * topics only evict each other, and a miss costs just the split it would
 * have saved, so chosen collisions cannot make it slower than no cache.
 * Short topics of few levels only: those are the ones that repeat, and
 * the slots stay small (184 B; 47 KB a cache, touched as used). */
#define SPLIT_SLOTS 256u
#define SPLIT_TOPIC_MAX 48u
#define SPLIT_LEVELS_MAX 8u

struct split_slot {
	uint16_t len;		/* 0: empty (topics are never empty here) */
	uint8_t nlev;
	uint8_t topic[SPLIT_TOPIC_MAX];
	struct smq_topic_level lv[SPLIT_LEVELS_MAX];
};

struct smq_split_cache {
	struct split_slot slot[SPLIT_SLOTS];
};

struct smq_split_cache *smq_split_cache_new(void)
{
	return calloc(1, sizeof(struct smq_split_cache));
}

void smq_split_cache_free(struct smq_split_cache *c)
{
	free(c);
}

/* First and last 8 bytes and the length: topics that differ anywhere but
 * deep in the middle of a long one land apart. */
static uint32_t split_index(const uint8_t *p, uint32_t len)
{
	uint64_t a = 0, b = 0;

	if (len >= 8) {
		memcpy(&a, p, 8);
		memcpy(&b, p + len - 8, 8);
	} else {
		for (uint32_t i = 0; i < len; i++)
			a = a << 8 | p[i];
	}
	a = (a * 0x9e3779b97f4a7c15ull) ^ ((b + len) * 0xc2b2ae3d27d4eb4full);
	return (uint32_t)(a >> 56) % SPLIT_SLOTS;
}

/* @t split into @lv (room for SMQ_MSG_LEVELS_MAX): from @c when it has it,
 * else split here and remembered. The level count, 0 when more. */
static uint32_t split_cached(struct smq_split_cache *c, struct smq_str t,
			     struct smq_topic_level *lv)
{
	struct split_slot *sl;
	uint32_t n;

	if (!c || t.len > SPLIT_TOPIC_MAX)
		return smq_topic_split_max(t, lv, SMQ_MSG_LEVELS_MAX);
	sl = &c->slot[split_index(t.p, t.len)];
	if (sl->len == t.len && smq_bytes_eq(sl->topic, t.p, t.len)) {
		for (uint32_t i = 0; i < sl->nlev; i++)
			lv[i] = sl->lv[i];
		return sl->nlev;
	}
	n = smq_topic_split_max(t, lv, SMQ_MSG_LEVELS_MAX);
	if (n && n <= SPLIT_LEVELS_MAX) {
		sl->len = (uint16_t)t.len;
		sl->nlev = (uint8_t)n;
		memcpy(sl->topic, t.p, t.len);
		for (uint32_t i = 0; i < n; i++)
			sl->lv[i] = lv[i];
	}
	return n;
}

struct smq_msg *smq_msg_new(const struct smq_msg_spec *spec)
{
	size_t total = (size_t)spec->topic.len + spec->props.len + spec->payload.len;
	struct smq_topic_level lv[SMQ_MSG_LEVELS_MAX];
	uint32_t nlev;
	struct smq_msg *m;
	uint8_t *p;

	if (spec->topic.len > 65535u || spec->qos > 2)
		return NULL;
	/* split on the way in; offsets are the same in the copy below */
	nlev = spec->topic.len ? split_cached(spec->split, spec->topic, lv) : 0;
	m = malloc(sizeof(*m) + total + (nlev ? 7 + nlev * sizeof(struct smq_topic_level) : 0));
	if (!m)
		return NULL;
	atomic_init(&m->refs, 1);
	m->qos = spec->qos;
	m->retain = spec->retain;
	m->has_expiry = spec->has_expiry;
	m->topic_len = (uint16_t)spec->topic.len;
	m->props_len = spec->props.len;
	m->payload_len = spec->payload.len;
	m->expiry_s = spec->has_expiry ? spec->expiry_s : 0;
	m->created_ms = spec->created_ms;
	m->created_ns = spec->created_ns;
	m->uid = spec->uid;
	m->redo = spec->redo;
	p = m->data;
	if (spec->topic.len)
		memcpy(p, spec->topic.p, spec->topic.len);
	p += spec->topic.len;
	if (spec->props.len)
		memcpy(p, spec->props.p, spec->props.len);
	p += spec->props.len;
	if (spec->payload.len)
		memcpy(p, spec->payload.p, spec->payload.len);
	m->nlev = (uint8_t)nlev;
	if (nlev)	/* they point into the topic copy by offset */
		memcpy((void *)smq_msg_levels(m), lv, nlev * sizeof(*lv));
	return m;
}

/* The open batch of this thread (smq_msg_batch_begin): a fan-out to n
 * subscribers takes its n references in one locked add, not n. */
static _Thread_local struct {
	struct smq_msg *m;
	unsigned left;
} batch;

struct smq_msg *smq_msg_ref(struct smq_msg *m)
{
	if (m == batch.m && batch.left) {
		batch.left--;
		return m;
	}
	atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
	return m;
}

void smq_msg_batch_begin(struct smq_msg *m, unsigned n)
{
	if (batch.m || n < 2)
		return;
	atomic_fetch_add_explicit(&m->refs, n, memory_order_relaxed);
	batch.m = m;
	batch.left = n;
}

void smq_msg_batch_end(struct smq_msg *m)
{
	if (batch.m != m)
		return;
	/* relaxed: the caller's own reference keeps this from being the
	 * last, so nothing is released here */
	if (batch.left)
		atomic_fetch_sub_explicit(&m->refs, batch.left, memory_order_relaxed);
	batch.m = NULL;
	batch.left = 0;
}

void smq_msg_unref(struct smq_msg *m)
{
	if (!m)
		return;
	/* acq_rel rather than release + acquire fence: the same instruction
	 * on x86, and ThreadSanitizer does not model standalone fences. */
	if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
		return;
	free(m);
}

unsigned smq_msg_refs(const struct smq_msg *m)
{
	return atomic_load_explicit(&((struct smq_msg *)m)->refs, memory_order_relaxed);
}

bool smq_msg_expired(const struct smq_msg *m, uint64_t now_ms)
{
	if (!m->has_expiry)
		return false;
	return now_ms >= m->created_ms + (uint64_t)m->expiry_s * 1000u;
}

uint32_t smq_msg_expiry_left(const struct smq_msg *m, uint64_t now_ms)
{
	uint64_t end = m->created_ms + (uint64_t)m->expiry_s * 1000u;

	if (now_ms >= end)
		return 0;
	return (uint32_t)((end - now_ms + 999u) / 1000u);
}

/* Append id + u16-length-prefixed bytes; counts even when @out is NULL. */
static void put_lstr(uint8_t *out, size_t *pos, uint8_t id, struct smq_str s)
{
	if (out) {
		out[*pos] = id;
		out[*pos + 1] = (uint8_t)(s.len >> 8);
		out[*pos + 2] = (uint8_t)s.len;
		if (s.len)
			memcpy(out + *pos + 3, s.p, s.len);
	}
	*pos += 3u + s.len;
}

long smq_msg_props_encode(const struct smq_props *props, uint8_t *out, size_t cap)
{
	size_t need = 0, pos = 0;

	if (SMQ_HAS(props, SMQ_PROP_PAYLOAD_FORMAT))
		need += 2;
	if (SMQ_HAS(props, SMQ_PROP_CONTENT_TYPE))
		need += 3u + props->content_type.len;
	if (SMQ_HAS(props, SMQ_PROP_RESPONSE_TOPIC))
		need += 3u + props->response_topic.len;
	if (SMQ_HAS(props, SMQ_PROP_CORRELATION_DATA))
		need += 3u + props->correlation_data.len;
	/* The decoder's user view may span other properties sent in between
	 * user properties; smq_props_put_raw() copies only the user ones. */
	if (SMQ_HAS(props, SMQ_PROP_USER))
		need += (size_t)smq_props_put_raw(NULL, 0, props->user, SMQ_PROP_USER);
	if (!out)
		return (long)need;
	if (need > cap)
		return -SMQ_RC_PACKET_TOO_LARGE;
	if (SMQ_HAS(props, SMQ_PROP_PAYLOAD_FORMAT)) {
		out[pos++] = SMQ_PROP_PAYLOAD_FORMAT;
		out[pos++] = props->payload_format;
	}
	if (SMQ_HAS(props, SMQ_PROP_CONTENT_TYPE))
		put_lstr(out, &pos, SMQ_PROP_CONTENT_TYPE, props->content_type);
	if (SMQ_HAS(props, SMQ_PROP_RESPONSE_TOPIC))
		put_lstr(out, &pos, SMQ_PROP_RESPONSE_TOPIC, props->response_topic);
	if (SMQ_HAS(props, SMQ_PROP_CORRELATION_DATA))
		put_lstr(out, &pos, SMQ_PROP_CORRELATION_DATA, props->correlation_data);
	if (SMQ_HAS(props, SMQ_PROP_USER) && props->user.len)
		pos += (size_t)smq_props_put_raw(out + pos, cap - pos, props->user, SMQ_PROP_USER);
	return (long)pos;
}
