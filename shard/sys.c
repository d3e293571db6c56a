/* sys.c - the $SYS topics: mosquitto's $SYS/broker/... names, gathered over
 * every shard, plus shardmq's own $SYS/broker/shards/N/....
 *
 * Why shard 0 and not a thread of its own: publishing means a retained
 * store update and routing, which an engine does; shard 0's engine does it
 * like any publish (smq_engine_publish), and other shards receive the
 * messages through their inboxes as usual. The round is a deadline folded
 * into shard 0's sleep, like the accept back-off, so an idle broker wakes
 * once an interval and no more.
 *
 * Why the publish path does not notice: each shard already counts into its
 * own struct smq_engine_stats and struct smq_shard, plain 64-bit fields
 * only its thread writes. Shard 0 reads them racily once a round (a value
 * may be a turn stale; 64-bit loads do not tear on the targets we build
 * for) and sums. No atomics, no locks, no cache line shared on the hot path.
 *
 * What a topic means (mosquitto's meaning where it has one):
 *   version                      "shardmq version X" (once)
 *   uptime                       "N seconds"
 *   clients/connected, active    clients with a CONNACK sent
 *   clients/total                sessions, online or not
 *   clients/disconnected, inactive  total - connected (offline sessions)
 *   clients/maximum              the most connected seen at a round
 *   clients/expired              offline sessions dropped by expiry
 *   messages/received, sent      PUBLISH packets (mosquitto counts every
 *                                packet; shardmq counts PUBLISH only)
 *   publish/messages/received, sent, dropped   PUBLISH in, out, dropped at a
 *                                limit (all kinds of drop summed)
 *   bytes/received, sent         bytes read from / written to clients
 *   retained messages/count      the retained store's size
 *   store/messages/count         the same: shardmq's only message store
 *                                is the retained set (queued session
 *                                messages are not counted)
 *   subscriptions/count          subscriptions, shared ones included
 *   heap/current, heap/maximum   jemalloc's stats.allocated, and the most
 *                                seen (absent without jemalloc)
 *   load/X/1min, 5min, 15min     per-minute rates of X (messages/received,
 *                                messages/sent, publish/received, publish/sent,
 *                                publish/dropped, bytes/received, bytes/sent,
 *                                connections), decayed exponentially as
 *                                mosquitto (and Unix load averages) do
 *   shards/N/...                 one shard: loop turns and sleeps, clients,
 *                                messages in, out, forwarded to and delivered
 *                                from other shards, recv out of buffers, and
 *                                drops by kind
 *
 * Only a topic whose payload changed is published again: subscribers to
 * $SYS/# get a message per change, and the retained store keeps the latest.
 * Publishes come in the same order every round, so "the k-th publish of a
 * round" names one topic, and its last payload sits in slot k: no lookup.
 */
#include "shard/sys.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/engine.h"
#include "core/log.h"
#include "core/retain.h"
#include "core/version.h"
#include "shard/shard.h"

/* jemalloc's control interface: linked in the broker, absent from sanitizer
 * builds (they bring their own allocator). Weak, so its absence is NULL. */
extern int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
	__attribute__((weak));

#define FIRST_ROUND_MS 1000u	/* at most: the other shards start meanwhile */
#define PAYLOAD_MAX 32

/* A rate averaged over 1, 5 and 15 minutes. */
enum { LOAD_MSGS_IN, LOAD_MSGS_OUT, LOAD_DROPPED, LOAD_BYTES_IN, LOAD_BYTES_OUT, LOAD_CONNECTS,
       LOAD_N };

static const double load_window_s[3] = { 60.0, 300.0, 900.0 };

struct load {
	uint64_t last;		/* the counter at the previous round */
	double avg[3];		/* per minute, over load_window_s[] */
};

/* The last payload published on a topic (the slot-th publish of a round). */
struct slot {
	uint8_t len;
	char payload[PAYLOAD_MAX];
};

/* Owner thread of shard 0 only. */
struct smq_sys {
	struct smq_shard *s;
	uint64_t interval_ms;
	uint64_t start_ms, next_ms, last_ms;	/* last_ms: the previous round, 0 none */
	uint64_t clients_max, heap_max;
	struct load load[LOAD_N];
	struct slot *slots;
	unsigned nslots, slot;			/* slot: the next publish of this round */
	bool failed;				/* slot array ENOMEM this round: republish */
};

/* The totals of one round, summed over shards. */
struct totals {
	uint64_t connected, sessions, expired, subs, msgs_in, msgs_out, bytes_in, bytes_out,
		 dropped, connects;
};

struct smq_sys *smq_sys_new(struct smq_shard *s, unsigned interval_s, uint64_t now_ms)
{
	struct smq_sys *y = calloc(1, sizeof(*y));
	uint64_t first;

	if (!y)
		return NULL;
	y->s = s;
	y->interval_ms = (uint64_t)interval_s * 1000u;
	first = y->interval_ms < FIRST_ROUND_MS ? y->interval_ms : FIRST_ROUND_MS;
	y->start_ms = now_ms;
	y->next_ms = now_ms + first;
	return y;
}

void smq_sys_free(struct smq_sys *y)
{
	if (!y)
		return;
	free(y->slots);
	free(y);
}

/* Publish @payload on @topic unless this topic's slot already holds it. */
static void put(struct smq_sys *y, const char *topic, const char *payload, uint64_t now_ms)
{
	size_t len = strlen(payload);
	unsigned k = y->slot++;
	struct slot *sl;
	int ret;

	if (len > PAYLOAD_MAX)
		len = PAYLOAD_MAX;
	if (k >= y->nslots) {
		unsigned n = y->nslots ? y->nslots * 2 : 64;
		struct slot *ns = realloc(y->slots, n * sizeof(*ns));

		if (!ns) {
			y->failed = true;
			return;
		}
		memset(ns + y->nslots, 0xff, (n - y->nslots) * sizeof(*ns));	/* len 255: none */
		y->slots = ns;
		y->nslots = n;
	}
	sl = &y->slots[k];
	if (sl->len == len && !memcmp(sl->payload, payload, len))
		return;
	ret = smq_engine_publish(y->s->eng, (struct smq_str){ .p = (const uint8_t *)topic,
			.len = (uint32_t)strlen(topic) }, (struct smq_str){ .p = (const uint8_t *)payload,
			.len = (uint32_t)len }, 0, true, now_ms);
	if (ret) {
		y->failed = true;
		return;
	}
	sl->len = (uint8_t)len;
	memcpy(sl->payload, payload, len);
}

static void put_u64(struct smq_sys *y, const char *topic, uint64_t v, uint64_t now_ms)
{
	char p[24];

	snprintf(p, sizeof(p), "%llu", (unsigned long long)v);
	put(y, topic, p, now_ms);
}

#define DROP(name, field) { name, offsetof(struct smq_engine_stats, field) }
const struct smq_drop_kind smq_sys_drop_kinds[SMQ_SYS_DROP_KINDS] = {
	DROP("qos0", dropped_qos0), DROP("queue_full", dropped_queue_full),
	DROP("too_large", dropped_too_large), DROP("bad_payload", dropped_bad_payload),
	DROP("expired", dropped_expired), DROP("sys", dropped_sys),
	DROP("no_member", dropped_no_member), DROP("nomem", dropped_nomem),
};
#undef DROP

uint64_t smq_sys_dropped(const struct smq_engine_stats *st, unsigned kind)
{
	return *(const uint64_t *)((const char *)st + smq_sys_drop_kinds[kind].off);
}

_Static_assert(sizeof(struct smq_engine_stats) % sizeof(uint64_t) == 0,
	       "the stats are read as 64-bit words");

/* Copy shard @sh's counters while its thread writes them: the racy read
 * core/engine.h allows, word by word. ThreadSanitizer is told not to watch
 * these loads (the writes stay plain on the shard's own thread). */
__attribute__((no_sanitize("thread")))
void smq_sys_shard_read(struct smq_shard *sh, struct smq_shard_view *v)
{
#define LOAD(field) (*(const volatile uint64_t *)&(field))
	const volatile uint64_t *src;
	uint64_t *dst = (uint64_t *)&v->st;
	struct smq_engine *e = *(struct smq_engine *const volatile *)&sh->eng;

	v->running = e != NULL;
	if (!e)
		return;
	v->turns = LOAD(sh->turns);
	v->waits = LOAD(sh->waits);
	v->enobufs = LOAD(sh->enobufs);
	v->sends = LOAD(sh->sends);
	v->send_bytes = LOAD(sh->send_bytes);
	v->recvs = LOAD(sh->recvs);
	v->recv_bytes = LOAD(sh->recv_bytes);
	v->tls_failures = LOAD(sh->tls_failures);
	for (unsigned i = 0; i < SMQ_SHARD_TURN_BUCKETS; i++)
		v->turn_hist[i] = LOAD(sh->turn_hist[i]);
	v->turn_ns = LOAD(sh->turn_ns);
	v->store_stalls = LOAD(sh->store_stalls);
	v->store_commits = LOAD(sh->store_commits);
	v->input_deferred = LOAD(sh->input_deferred);
	v->flow_pauses = LOAD(sh->flow_pauses);
	v->store_cancelled = LOAD(sh->store_cancelled);
	v->recv_buffers = LOAD(sh->recv_buffers);
#undef LOAD
	v->inbox_depth = smq_mpsc_depth(&sh->inbox);
	src = (const volatile uint64_t *)smq_engine_stats(e);
	for (size_t i = 0; i < sizeof(v->st) / sizeof(uint64_t); i++)
		dst[i] = src[i];
}

/* Every shard's counters, summed; views[] gets each shard's. A shard not
 * yet running (no engine) counts nothing. */
static void sum(struct smq_sys *y, struct totals *t, struct smq_shard_view *views)
{
	unsigned n = smq_broker_nshards_(y->s->broker);

	memset(t, 0, sizeof(*t));
	for (unsigned i = 0; i < n; i++) {
		const struct smq_engine_stats *st = &views[i].st;

		smq_sys_shard_read(smq_broker_shard(y->s->broker, i), &views[i]);
		if (!views[i].running)
			continue;
		t->connected += st->connections;
		t->sessions += st->sessions;
		t->expired += st->sessions_expired;
		t->subs += st->subscriptions;
		t->msgs_in += st->msgs_in;
		t->msgs_out += st->msgs_out;
		t->bytes_in += st->bytes_in;
		t->bytes_out += st->bytes_out;
		for (unsigned k = 0; k < SMQ_SYS_DROP_KINDS; k++)
			t->dropped += smq_sys_dropped(st, k);
		t->connects += st->connects;
	}
}

/* Fold the counter @v into load @l over the @dt_s seconds since the last
 * round: rate r per minute; avg = avg * e^(-dt/W) + r * (1 - e^(-dt/W)). */
static void load_update(struct load *l, uint64_t v, double dt_s)
{
	double rate = (double)(v - l->last) * 60.0 / dt_s;

	for (int i = 0; i < 3; i++) {
		double k = exp(-dt_s / load_window_s[i]);

		l->avg[i] = l->avg[i] * k + rate * (1.0 - k);
	}
	l->last = v;
}

static void put_load(struct smq_sys *y, const char *name, const struct load *l, uint64_t now_ms)
{
	static const char *const win[3] = { "1min", "5min", "15min" };
	char topic[96], p[PAYLOAD_MAX];

	for (int i = 0; i < 3; i++) {
		snprintf(topic, sizeof(topic), "$SYS/broker/load/%s/%s", name, win[i]);
		snprintf(p, sizeof(p), "%.2f", l->avg[i]);
		put(y, topic, p, now_ms);
	}
}

static void put_loads(struct smq_sys *y, const struct totals *t, uint64_t now_ms)
{
	const uint64_t v[LOAD_N] = {
		[LOAD_MSGS_IN] = t->msgs_in, [LOAD_MSGS_OUT] = t->msgs_out,
		[LOAD_DROPPED] = t->dropped, [LOAD_BYTES_IN] = t->bytes_in,
		[LOAD_BYTES_OUT] = t->bytes_out, [LOAD_CONNECTS] = t->connects,
	};

	for (int i = 0; i < LOAD_N; i++) {
		if (y->last_ms)
			load_update(&y->load[i], v[i], (double)(now_ms - y->last_ms) / 1000.0);
		else
			y->load[i].last = v[i];	/* the first round: no interval yet */
	}
	put_load(y, "messages/received", &y->load[LOAD_MSGS_IN], now_ms);
	put_load(y, "messages/sent", &y->load[LOAD_MSGS_OUT], now_ms);
	put_load(y, "publish/received", &y->load[LOAD_MSGS_IN], now_ms);
	put_load(y, "publish/sent", &y->load[LOAD_MSGS_OUT], now_ms);
	put_load(y, "publish/dropped", &y->load[LOAD_DROPPED], now_ms);
	put_load(y, "bytes/received", &y->load[LOAD_BYTES_IN], now_ms);
	put_load(y, "bytes/sent", &y->load[LOAD_BYTES_OUT], now_ms);
	put_load(y, "connections", &y->load[LOAD_CONNECTS], now_ms);
}

bool smq_sys_heap(uint64_t *out)
{
	uint64_t epoch = 1;
	size_t v, len = sizeof(v), elen = sizeof(epoch);

	if (!mallctl)
		return false;
	mallctl("epoch", &epoch, &elen, &epoch, sizeof(epoch));
	if (mallctl("stats.allocated", &v, &len, NULL, 0))
		return false;
	*out = v;
	return true;
}

/* Shard @idx's own topics. */
static void put_shard(struct smq_sys *y, unsigned idx, const struct smq_shard_view *v,
		      uint64_t now_ms)
{
	const struct smq_engine_stats *st = &v->st;
	char topic[96];

#define SHARD_PUT(name, val) do { \
		snprintf(topic, sizeof(topic), "$SYS/broker/shards/%u/%s", idx, name); \
		put_u64(y, topic, val, now_ms); \
	} while (0)
	if (!v->running)
		return;
	SHARD_PUT("loop/turns", v->turns);
	SHARD_PUT("loop/sleeps", v->waits);
	SHARD_PUT("clients/connected", st->connections);
	SHARD_PUT("sockets", st->sockets);
	SHARD_PUT("messages/received", st->msgs_in);
	SHARD_PUT("messages/sent", st->msgs_out);
	SHARD_PUT("messages/forwarded", st->msgs_forwarded);
	SHARD_PUT("messages/delivered", st->msgs_delivered);
	SHARD_PUT("recv/out_of_buffers", v->enobufs);
	SHARD_PUT("inbox/depth", v->inbox_depth);
	for (unsigned i = 0; i < SMQ_SYS_DROP_KINDS; i++) {
		char name[32];

		snprintf(name, sizeof(name), "dropped/%s", smq_sys_drop_kinds[i].name);
		SHARD_PUT(name, smq_sys_dropped(st, i));
	}
#undef SHARD_PUT
}

static void round_publish(struct smq_sys *y, uint64_t now_ms)
{
	unsigned n = smq_broker_nshards_(y->s->broker);
	struct smq_shard_view views[SMQ_CONFIG_MAX_SHARDS];
	struct totals t;
	uint64_t heap;
	char p[PAYLOAD_MAX];

	y->slot = 0;
	y->failed = false;
	sum(y, &t, views);
	if (t.connected > y->clients_max)
		y->clients_max = t.connected;
	if (t.sessions < t.connected)
		t.sessions = t.connected;	/* racy reads of two shards' gauges */
	put(y, "$SYS/broker/version", "shardmq version " SMQ_VERSION, now_ms);
	snprintf(p, sizeof(p), "%llu seconds",
		 (unsigned long long)((now_ms - y->start_ms) / 1000u));
	put(y, "$SYS/broker/uptime", p, now_ms);
	put_u64(y, "$SYS/broker/clients/connected", t.connected, now_ms);
	put_u64(y, "$SYS/broker/clients/active", t.connected, now_ms);
	put_u64(y, "$SYS/broker/clients/disconnected", t.sessions - t.connected, now_ms);
	put_u64(y, "$SYS/broker/clients/inactive", t.sessions - t.connected, now_ms);
	put_u64(y, "$SYS/broker/clients/total", t.sessions, now_ms);
	put_u64(y, "$SYS/broker/clients/maximum", y->clients_max, now_ms);
	put_u64(y, "$SYS/broker/clients/expired", t.expired, now_ms);
	put_u64(y, "$SYS/broker/messages/received", t.msgs_in, now_ms);
	put_u64(y, "$SYS/broker/messages/sent", t.msgs_out, now_ms);
	put_u64(y, "$SYS/broker/publish/messages/received", t.msgs_in, now_ms);
	put_u64(y, "$SYS/broker/publish/messages/sent", t.msgs_out, now_ms);
	put_u64(y, "$SYS/broker/publish/messages/dropped", t.dropped, now_ms);
	put_u64(y, "$SYS/broker/bytes/received", t.bytes_in, now_ms);
	put_u64(y, "$SYS/broker/bytes/sent", t.bytes_out, now_ms);
	put_u64(y, "$SYS/broker/subscriptions/count", t.subs, now_ms);
	/* Counted before this round's own publishes land: the previous
	 * round's $SYS messages are in it, as in mosquitto. */
	put_u64(y, "$SYS/broker/retained messages/count",
		smq_retain_count(smq_broker_retain(y->s->broker)), now_ms);
	put_u64(y, "$SYS/broker/store/messages/count",
		smq_retain_count(smq_broker_retain(y->s->broker)), now_ms);
	if (smq_sys_heap(&heap)) {
		if (heap > y->heap_max)
			y->heap_max = heap;
		put_u64(y, "$SYS/broker/heap/current", heap, now_ms);
		put_u64(y, "$SYS/broker/heap/maximum", y->heap_max, now_ms);
	}
	put_loads(y, &t, now_ms);
	for (unsigned i = 0; i < n; i++)
		put_shard(y, i, &views[i], now_ms);
	if (y->failed)
		smq_warn("$SYS: some topics could not be published (out of memory)");
	y->last_ms = now_ms;
}

int64_t smq_sys_tick(struct smq_sys *y, uint64_t now_ms)
{
	if (now_ms >= y->next_ms) {
		round_publish(y, now_ms);
		/* a round late (a long turn) does not bunch the next ones up */
		y->next_ms += y->interval_ms;
		if (y->next_ms <= now_ms)
			y->next_ms = now_ms + y->interval_ms;
	}
	return (int64_t)(y->next_ms - now_ms);
}
