/* durable.c - tickets for held acknowledgements, and the markers that
 * tell a shard when what it forwarded is durable elsewhere. See durable.h
 * for the protocol.
 *
 * Tickets are coalesced: consecutive tickets that wait for the same epoch
 * and marker generation form one range with the union of their shard
 * masks, so a burst of publishes in one turn costs one entry. A range
 * leaves when its epoch is committed here and every shard in its mask has
 * answered its generation; ranges leave in order.
 */
#include "shard/durable.h"

#include <stdlib.h>
#include <string.h>

#include "core/engine.h"
#include "core/log.h"
#include "core/ring.h"
#include "shard/conn.h"
#include "shard/inbox.h"
#include "shard/shard.h"
#include "shard/store.h"

struct range {
	uint64_t hi;		/* last ticket of the range */
	uint64_t epoch;		/* our store's epoch to wait for */
	uint64_t gen;		/* marker generation the masked shards must answer */
	uint64_t mask;		/* shards forwarded to */
};

/* A marker received, answered once @epoch is committed here. */
struct pend {
	uint64_t epoch;
	uint64_t gen;
	unsigned from;
};

struct smq_durable {
	struct smq_store *st;
	uint64_t ticket;		/* last given */
	struct range *r;		/* ring of ranges */
	size_t rh, rn, rcap;
	struct pend *p;			/* FIFO of markers to answer */
	size_t ph, pn, pcap;
	uint64_t fwd_mask;		/* shards forwarded to since the last flush */
	uint64_t gen;			/* generations of markers sent */
	uint64_t synced[64], unsynced[64];	/* answered gens: durable / failed */
	uint64_t done, failed;		/* our store's epochs */
	bool full;
};

struct smq_durable *smq_durable_new(struct smq_store *st)
{
	struct smq_durable *d = calloc(1, sizeof(*d));

	if (d)
		d->st = st;
	return d;
}

void smq_durable_free(struct smq_durable *d)
{
	if (!d)
		return;
	free(d->r);
	free(d->p);
	free(d);
}

uint64_t smq_durable_hold(void *ctx)
{
	struct smq_shard *s = ctx;
	struct smq_durable *d = s->dur;
	uint64_t epoch = smq_store_epoch(d->st), gen = d->fwd_mask ? d->gen + 1 : 0;
	struct range *t = d->rn ? &d->r[(d->rh + d->rn - 1) % d->rcap] : NULL;

	smq_store_need(d->st);
	if (t && t->epoch == epoch && (t->gen == gen || !d->fwd_mask)) {
		t->hi = ++d->ticket;	/* same wait: join the last range */
		t->mask |= d->fwd_mask;
		return t->hi;
	}
	if (d->rn == d->rcap && smq_ring_grow((void **)&d->r, &d->rh, d->rn, &d->rcap, sizeof(*d->r), 64))
		return 0;	/* out of memory: answer now, as without persistence */
	d->r[(d->rh + d->rn++) % d->rcap] = (struct range){ ++d->ticket, epoch, gen, d->fwd_mask };
	return d->ticket;
}

void smq_durable_forwarded(struct smq_durable *d, unsigned to)
{
	d->fwd_mask |= 1ull << to;
}

void smq_durable_markers(struct smq_shard *s)
{
	struct smq_durable *d = s->dur;

	if (!d || !d->fwd_mask)
		return;
	d->gen++;
	for (unsigned i = 0; i < 64; i++) {
		if (d->fwd_mask & (1ull << i))	/* without it, acks would wait for ever */
			smq_inbox_note(s, i, IMSG_SYNC, d->gen, "sending a durability marker");
	}
	d->fwd_mask = 0;
}

void smq_durable_on_sync(struct smq_shard *s, unsigned from, uint64_t gen)
{
	struct smq_durable *d = s->dur;

	if (d->pn == d->pcap && smq_ring_grow((void **)&d->p, &d->ph, d->pn, &d->pcap, sizeof(*d->p), 64)) {
		smq_err("shard %u: out of memory answering a durability marker", s->idx);
		abort();
	}
	d->p[(d->ph + d->pn++) % d->pcap] = (struct pend){ smq_store_epoch(d->st), gen, from };
	smq_store_need(d->st);
}

void smq_durable_on_synced(struct smq_shard *s, unsigned from, uint64_t gen, bool ok)
{
	struct smq_durable *d = s->dur;

	if (ok && gen > d->synced[from])
		d->synced[from] = gen;
	if (!ok && gen > d->unsynced[from])
		d->unsynced[from] = gen;
	smq_durable_progress(s);
}

/* Answer the markers whose epoch is settled. */
static void answer_markers(struct smq_shard *s, struct smq_durable *d)
{
	while (d->pn) {
		struct pend *p = &d->p[d->ph];
		bool ok = p->epoch <= d->done;

		if (!ok && p->epoch > d->failed)
			break;
		smq_inbox_note(s, p->from, IMSG_SYNCED, p->gen, "answering a durability marker")
			->present = ok;
		d->ph = (d->ph + 1) % d->pcap;
		d->pn--;
	}
}

/* 1: the range may leave, ok; -1: it leaves refused; 0: it waits. */
static int settled(const struct smq_durable *d, const struct range *r)
{
	int verdict = 1;

	if (r->epoch > d->done) {
		if (r->epoch > d->failed)
			return 0;
		verdict = -1;
	}
	for (unsigned i = 0; r->mask >> i; i++) {
		if (!(r->mask & (1ull << i)))
			continue;
		if (d->synced[i] >= r->gen)
			continue;
		if (d->unsynced[i] < r->gen)
			return 0;
		verdict = -1;
	}
	return verdict;
}

/* Stop reading clients above the high mark of uncommitted record bytes,
 * start again below the low one: the store's memory stays bounded however
 * fast clients send (QoS 0 retained floods are not paced by held acks). */
#define BACKLOG_HIGH (64u << 20)
#define BACKLOG_LOW (16u << 20)

static void watch_backlog(struct smq_shard *s)
{
	size_t n = smq_store_backlog(s->dur->st);

	if (!s->store_stalled && n > BACKLOG_HIGH) {
		s->store_stalled = true;
		s->store_stalls++;
		if (smq_log_due(&s->store_stall_log_ms, s->now_ms, 10000))
			smq_notice("shard %u: the store is %zu MB behind; not reading clients until "
				   "it catches up (%llu times so far)", s->idx, n >> 20,
				   (unsigned long long)s->store_stalls);
	} else if (s->store_stalled && n < BACKLOG_LOW) {
		s->store_stalled = false;
		smq_conn_store_resume(s);
	}
}

void smq_durable_progress(struct smq_shard *s)
{
	struct smq_durable *d = s->dur;
	bool full = d->full;

	smq_store_poll(d->st, &d->done, &d->failed, &d->full);
	if (full != d->full)
		smq_engine_set_store_full(s->eng, d->full);
	answer_markers(s, d);
	watch_backlog(s);
	while (d->rn) {
		struct range *r = &d->r[d->rh];
		int v = settled(d, r);

		if (!v)
			break;
		smq_engine_release(s->eng, r->hi, v > 0, s->now_ms);
		d->rh = (d->rh + 1) % d->rcap;
		d->rn--;
	}
}

void smq_durable_turn_end(struct smq_shard *s)
{
	if (smq_store_turn_end(s->dur->st, s->now_ms, &s->store_wait_ms))
		smq_durable_progress(s);
	s->store_cancelled = smq_store_cancelled(s->dur->st);
	s->store_commits = smq_store_commits(s->dur->st);
	watch_backlog(s);
}
