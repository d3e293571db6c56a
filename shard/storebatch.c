/* storebatch.c - the open batch: the records a shard gathers between two
 * hand-offs to its writer thread (shard/store.c), on the shard's thread.
 *
 * Most records of a busy broker are short-lived: a QoS 1/2 message stored
 * for a connected persistent subscriber is deleted again when the
 * subscriber acknowledges it, usually well under a millisecond later.
 * Writing and flushing such a pair only to delete it costs a flush per
 * round trip and, worse, makes every publisher wait for the disk although
 * its message already reached everyone it had to. So the open batch stays
 * open while the writer is busy, and a DEL that meets its PUT there cancels
 * it: when the PUT was the key's first (SMQ_STORE_F_NEW), neither is ever
 * written. A publish is then acknowledged because it was delivered and
 * acknowledged everywhere, which is as safe as a flushed copy.
 *
 * Epochs. Every loop turn that added records or has something waiting
 * closes an epoch. An epoch is done (smq_store_poll) once each of its
 * records is either committed or cancelled, and every earlier epoch is
 * done. The batch counts live records per epoch (a ring of the epochs
 * that still have some), so the epochs whose records all cancelled finish
 * on the loop without the writer, while the writer is idle.
 *
 * When the batch goes to the writer. At once, while the writer is idle,
 * when it holds a record that must not wait (anything not flagged
 * SMQ_STORE_F_LAZY: a message for an offline session, a session, a
 * subscription, an inbound QoS 2 id); otherwise when its oldest live
 * record has waited PAIR_WAIT_MS for its partner. That bounds what the
 * pairing adds to an acknowledgement whose subscriber is slow.
 *
 * Framing, shared with the writer (store_int.h): op u8 | flags u8 |
 * klen u32 | vlen u32 | key | value; a cancelled record keeps its bytes
 * with op 0 until the batch is compacted or handed over.
 */
#include "shard/store.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/engine.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/ring.h"
#include "shard/store_int.h"

/* How long a lazy record may wait for the record that cancels it. A
 * subscriber on loopback or a LAN acknowledges within this; the
 * millisecond clock makes it 1-2 ms in practice. */
#define PAIR_WAIT_MS 10u

/* Compact the open batch when this many bytes are cancelled and they are
 * most of it (a steady stream of pairs never lets the batch empty). */
#define COMPACT_MIN (64u << 10)

#define SLOT_FREE 0u
#define SLOT_GONE UINT32_MAX

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static size_t rec_len(const uint8_t *p)
{
	return REC_HDR + (size_t)smq_store_get32(p + 2) + smq_store_get32(p + 6);
}

/* ---- live records per epoch -------------------------------------------------- */

static struct ep_live *ep_at(const struct smq_store *st, size_t i)
{
	return &st->ep[(st->ep_h + i) % st->ep_cap];
}

static int ep_count(struct smq_store *st, uint64_t epoch)
{
	struct ep_live *e;

	if (st->ep_n && (e = ep_at(st, st->ep_n - 1))->epoch == epoch) {
		e->live++;
		return 0;
	}
	if (st->ep_n == st->ep_cap &&
	    smq_ring_grow((void **)&st->ep, &st->ep_h, st->ep_n, &st->ep_cap, sizeof(*st->ep), 64))
		return -1;
	*ep_at(st, st->ep_n++) = (struct ep_live){ epoch, 0, 1 };	/* t: at its turn end */
	return 0;
}

/* A record of @epoch was cancelled. Epochs in the ring are sorted. */
static void ep_uncount(struct smq_store *st, uint64_t epoch)
{
	size_t lo = 0, hi = st->ep_n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ep_at(st, mid)->epoch < epoch)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < st->ep_n && ep_at(st, lo)->epoch == epoch)
		ep_at(st, lo)->live--;
}

/* ---- the index of pairable PUTs ------------------------------------------------ */

static bool slot_is(const struct smq_store *st, const struct pair_slot *sl, uint32_t hash,
		    const uint8_t *key, uint32_t klen)
{
	const uint8_t *p;

	if (sl->off == SLOT_GONE || sl->hash != hash)
		return false;
	p = st->open->buf + sl->off - 1;
	return smq_store_get32(p + 2) == klen && !memcmp(p + REC_HDR, key, klen);
}

static struct pair_slot *slot_find(struct smq_store *st, uint32_t hash, const uint8_t *key,
				   uint32_t klen)
{
	size_t mask = st->nslot - 1;

	if (!st->nslot)
		return NULL;
	for (size_t i = hash & mask;; i = (i + 1) & mask) {
		struct pair_slot *sl = &st->slot[i];

		if (sl->off == SLOT_FREE)
			return NULL;
		if (slot_is(st, sl, hash, key, klen))
			return sl;
	}
}

static void slot_put(struct pair_slot *tab, size_t n, const struct pair_slot *v)
{
	for (size_t i = v->hash & (n - 1);; i = (i + 1) & (n - 1))
		if (tab[i].off == SLOT_FREE) {
			tab[i] = *v;
			return;
		}
}

static int slot_add(struct smq_store *st, const struct pair_slot *v)
{
	if ((st->slot_used + 1) * 4 > st->nslot * 3) {
		size_t n = st->nslot ? st->nslot : 256;
		struct pair_slot *tab;

		while ((st->slot_live + 1) * 2 > n)
			n *= 2;
		tab = calloc(n, sizeof(*tab));
		if (!tab)
			return -1;
		for (size_t i = 0; i < st->nslot; i++)
			if (st->slot[i].off != SLOT_FREE && st->slot[i].off != SLOT_GONE)
				slot_put(tab, n, &st->slot[i]);
		free(st->slot);
		st->slot = tab;
		st->nslot = n;
		st->slot_used = st->slot_live;
	}
	slot_put(st->slot, st->nslot, v);
	st->slot_used++;
	st->slot_live++;
	return 0;
}

static void slots_clear(struct smq_store *st)
{
	if (st->slot_used)
		memset(st->slot, 0, st->nslot * sizeof(*st->slot));
	st->slot_used = st->slot_live = 0;
}

/* ---- adding ----------------------------------------------------------------------- */

static void lost(struct smq_store *st)
{
	/* The store now misses a change; a restart would show the old state
	 * of one record. Loud, because it should never happen, but at most
	 * once a second. */
	st->oom_lost++;
	if (smq_log_due(&st->oom_log_ms, mono_ms(), 1000))
		smq_err("shard %u: out of memory batching store records; the store misses %llu "
			"changes so far", st->idx, (unsigned long long)st->oom_lost);
}

/* The live record a slot points to is superseded or deleted. */
static void cancel(struct smq_store *st, struct pair_slot *sl)
{
	uint8_t *p = st->open->buf + sl->off - 1;

	p[0] = 0;
	st->dead += rec_len(p);
	ep_uncount(st, sl->epoch);
	if (!(sl->flags & SMQ_STORE_F_LAZY))
		st->urgent--;
	st->cancelled++;
}

static int append(struct smq_store *st, const struct smq_store_rec *r, uint8_t flags, size_t *off)
{
	struct batch *b = st->open;
	size_t vlen = 0, need;
	uint8_t *p;

	for (unsigned i = 0; i < r->nval; i++)
		vlen += r->val[i].len;
	need = b->len + REC_HDR + r->key.len + vlen;
	if (need > UINT32_MAX - 1)
		return -1;	/* offsets in the index are 32-bit */
	if (need > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;

		while (cap < need)
			cap *= 2;
		p = realloc(b->buf, cap);
		if (!p)
			return -1;
		b->buf = p;
		b->cap = cap;
	}
	if (ep_count(st, st->open_epoch))
		return -1;
	*off = b->len;
	p = b->buf + b->len;
	*p++ = r->op;
	*p++ = flags;
	p = smq_store_put32(p, r->key.len);
	p = smq_store_put32(p, (uint32_t)vlen);
	memcpy(p, r->key.p, r->key.len);
	p += r->key.len;
	for (unsigned i = 0; i < r->nval; i++) {
		memcpy(p, r->val[i].p, r->val[i].len);
		p += r->val[i].len;
	}
	b->len = need;
	if (!(flags & SMQ_STORE_F_LAZY))
		st->urgent++;
	return 0;
}

void smq_store_add(struct smq_store *st, const struct smq_store_rec *r)
{
	uint8_t flags = r->flags;
	struct pair_slot *sl = NULL;
	uint32_t hash = 0;
	size_t off;

	st->open_used = true;
	if (!st->open && !(st->open = calloc(1, sizeof(*st->open))))
		goto out_nomem;
	if (flags & SMQ_STORE_F_PAIR) {
		hash = (uint32_t)smq_hash_bytes(r->key.p, r->key.len);
		sl = slot_find(st, hash, r->key.p, r->key.len);
	}
	if (sl) {
		bool was_new = sl->flags & SMQ_STORE_F_NEW;

		cancel(st, sl);
		if (r->op == SMQ_STORE_DEL) {
			sl->off = SLOT_GONE;
			st->slot_live--;
			if (was_new)
				return;	/* never written: nothing to delete */
		} else if (was_new) {
			flags |= SMQ_STORE_F_NEW;	/* still unknown to the store */
		}
	}
	if (append(st, r, flags, &off))
		goto out_nomem;
	if (r->op != SMQ_STORE_PUT || !(flags & SMQ_STORE_F_PAIR))
		return;
	if (sl && sl->off != SLOT_GONE) {
		sl->off = (uint32_t)off + 1;
		sl->flags = flags;
		sl->epoch = st->open_epoch;
		return;
	}
	/* out of memory for the index: unindexed, the PUT is simply written,
	 * and so will its DEL be */
	(void)slot_add(st, &(struct pair_slot){ (uint32_t)off + 1, hash, flags, st->open_epoch });
	return;
out_nomem:
	lost(st);
}

/* ---- epochs and hand-over ----------------------------------------------------------- */

uint64_t smq_store_epoch(const struct smq_store *st)
{
	return st->open_epoch;
}

void smq_store_need(struct smq_store *st)
{
	st->needed = true;
}

/* Drop cancelled records from the open batch; the index follows. */
static void compact(struct smq_store *st)
{
	struct batch *b = st->open;
	size_t w = 0;

	for (size_t r = 0; r < b->len;) {
		uint8_t *p = b->buf + r;
		size_t n = rec_len(p);

		if (p[0]) {
			if (p[0] == SMQ_STORE_PUT && (p[1] & SMQ_STORE_F_PAIR)) {
				uint32_t klen = smq_store_get32(p + 2);
				uint32_t hash = (uint32_t)smq_hash_bytes(p + REC_HDR, klen);
				struct pair_slot *sl = slot_find(st, hash, p + REC_HDR, klen);

				if (sl && sl->off == r + 1)
					sl->off = (uint32_t)w + 1;
			}
			memmove(b->buf + w, p, n);
			w += n;
		}
		r += n;
	}
	b->len = w;
	st->dead = 0;
}

/* Forget the open batch's bookkeeping: it was handed over or is all
 * cancelled. */
static void open_reset(struct smq_store *st)
{
	slots_clear(st);
	st->ep_h = st->ep_n = 0;
	st->urgent = 0;
	st->dead = 0;
	if (st->open)
		st->open->len = 0;
}

void smq_store_submit(struct smq_store *st, bool empty_too)
{
	struct batch *b = st->open;

	if (!b && empty_too && !(b = st->open = calloc(1, sizeof(*b)))) {
		st->needed = true;	/* out of memory: try again next turn */
		return;
	}
	if (!b || (b->len == st->dead && !empty_too)) {
		open_reset(st);
		return;
	}
	if (st->dead)
		compact(st);
	b->epoch = st->open_epoch - 1;	/* every closed epoch */
	st->open = NULL;
	open_reset(st);
	smq_store_queue(st, b);
}

bool smq_store_turn_end(struct smq_store *st, uint64_t now_ms, int64_t *wait_ms)
{
	uint64_t done_to;
	bool completed = false;

	*wait_ms = -1;
	if (st->ep_n && ep_at(st, st->ep_n - 1)->epoch == st->open_epoch)
		ep_at(st, st->ep_n - 1)->t_ms = now_ms;
	if (st->open_used || st->needed) {
		st->open_epoch++;
		st->open_used = st->needed = false;
	}
	/* also while the writer is busy: pairs keep cancelling meanwhile, and
	 * the backlog mark counts only live bytes */
	if (st->dead >= COMPACT_MIN && st->dead * 2 > st->open->len)
		compact(st);
	if (st->seen_full) {
		/* commits fail: queue what closed behind the retries, to be
		 * refused or written with them */
		if (st->open_epoch - 1 > st->submitted)
			smq_store_submit(st, true);
		return false;
	}
	if (st->submitted > st->seen_done)
		return false;	/* the writer is busy: keep gathering (and pairing) */
	while (st->ep_n && !ep_at(st, 0)->live) {
		st->ep_h = (st->ep_h + 1) % st->ep_cap;
		st->ep_n--;
	}
	done_to = st->ep_n ? ep_at(st, 0)->epoch - 1 : st->open_epoch - 1;
	if (!st->ep_n)
		open_reset(st);	/* everything in it cancelled */
	if (done_to > st->seen_done) {
		/* the writer is idle, so the lock only orders this with poll */
		smq_store_lock(st);
		if (st->done < done_to)
			st->done = done_to;
		smq_store_unlock(st);
		st->submitted = done_to;
		completed = true;
	}
	if (!st->ep_n)
		return completed;
	if (st->urgent || now_ms >= ep_at(st, 0)->t_ms + PAIR_WAIT_MS) {
		smq_store_submit(st, false);
		return completed;
	}
	*wait_ms = (int64_t)(ep_at(st, 0)->t_ms + PAIR_WAIT_MS - now_ms);
	return completed;
}

size_t smq_store_backlog(struct smq_store *st)
{
	size_t n;

	smq_store_lock(st);
	n = st->q_bytes;
	smq_store_unlock(st);
	return n + (st->open ? st->open->len - st->dead : 0);
}

uint64_t smq_store_cancelled(const struct smq_store *st)
{
	return st->cancelled;
}

void smq_store_batch_free(struct smq_store *st)
{
	if (st->open)
		free(st->open->buf);
	free(st->open);
	st->open = NULL;
	free(st->slot);
	st->slot = NULL;
	st->nslot = st->slot_used = st->slot_live = 0;
	free(st->ep);
	st->ep = NULL;
	st->ep_h = st->ep_n = st->ep_cap = 0;
}
