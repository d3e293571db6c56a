/* relay.c - a minimal MQTT relay: the speed ceiling perf/bench.sh holds brokers to.
 *
 *	relay -p PORT
 *
 * Try it: build/perf/relay -p 1884 & build/perf/loadgen --port 1884 --preset fanout
 *
 * Not a broker. It speaks just enough MQTT 3.1.1 and 5.0 for perf/loadgen and
 * does the least work any broker must do for a message: read the PUBLISH,
 * find who subscribed to its topic, copy the bytes, unchanged, into each
 * subscriber's output, and write each connection's output once per event-loop
 * turn (thousands of messages per send()). There is no auth, no retained
 * message, no session, no will, no topic alias, no validation beyond framing,
 * and no per-message state: what it costs is close to the cost of the
 * syscalls and the copies, which is why a broker's rate divided by the
 * relay's says how much of the machine the broker's own work takes.
 *
 * Packets:
 *   CONNECT      -> CONNACK (accepted, no session present); the protocol level
 *                   picks the 3.1.1 or 5.0 wire form of the replies
 *   SUBSCRIBE    -> SUBACK granting the QoS asked for
 *   UNSUBSCRIBE  -> UNSUBACK;  PINGREQ -> PINGRESP;  DISCONNECT: close
 *   PUBLISH      -> forwarded as is to every connection whose filter matches
 *                   ('+' and '#' work: loadgen's fanin subscribes to ".../+");
 *                   QoS 1: PUBACK to the publisher; QoS 2: PUBREC, and PUBREL
 *                   -> PUBCOMP
 *   PUBACK, PUBREC, PUBCOMP from a subscriber: read and ignored
 * The subscriber gets the publisher's QoS and packet id, whatever QoS it was
 * granted (loadgen uses one QoS for both). A connection whose filters overlap
 * gets one copy per matching filter. Publishers and subscribers must speak
 * the same protocol version (a 5.0 PUBLISH carries properties a 3.1.1 client
 * cannot read); loadgen uses one version for all its clients.
 *
 * QoS 2 shortcut: a forwarded QoS 2 PUBLISH is followed at once by its
 * PUBREL, without waiting for the subscriber's PUBREC. Ids from different
 * publishers collide at a subscriber (fanin, mesh), and a client that still
 * holds id X unreleased takes the next PUBLISH X for a re-send and drops it;
 * releasing at once keeps the subscriber's set of held ids empty, so the ids
 * can stay the publishers' and the relay keeps no state per message. The
 * subscriber still does all of its QoS 2 work (PUBREC out, PUBREL in, PUBCOMP
 * out); only the relay skips waiting, which a ceiling may.
 *
 * Flow control instead of unbounded queues: before a PUBLISH is routed, every
 * subscriber it goes to is checked; if one has more than OUT_HWM bytes waiting
 * in the relay, the PUBLISH stays unparsed in the publisher's input and the
 * relay stops reading that publisher (EPOLLIN off) until that subscriber is
 * down to OUT_LWM. The publisher's socket then fills and loadgen's publisher
 * waits for writability, as TCP would pace it end to end. A broker queueing
 * what it cannot deliver spends CPU on messages that show up only as backlog;
 * on a machine the load generator shares, a ceiling should not. Memory per
 * connection is bounded: output beyond OUT_MAX (64 MiB, reached only by acks
 * to a publisher that never reads, since routing stops at OUT_HWM) closes the
 * connection, and a packet longer than PKT_MAX (64 MiB) is refused. Idle
 * connections hold no buffers: reads go to one shared buffer and only a
 * partial packet is kept, in a buffer from a small pool (10,000 idle
 * clients: about 100 bytes each). Measured on 2 vCPUs, mesh, 16 B, QoS 0:
 * 13.6-15.5 M deliveries/s and 46 MiB peak RSS with this flow control;
 * 10.4-13.2 M/s and 1.3 GiB with OUT_HWM at 1 GiB.
 *
 * One thread, one epoll loop, level-triggered. Why not two on a 2-vCPU
 * machine: the load generator runs on the same cores and is the busier side
 * (its clients parse, track and timestamp every message; the relay only
 * copies). With loadgen --threads 2, QoS 0, 16 and 64 B payloads, the relay
 * used 20-65% of one core in every preset while loadgen used 120-150%
 * (1to1 about 5 M msgs/s, fanin 4.6-6 M, fanout 12.5-15 M deliveries/s,
 * mesh 12-15 M): the relay is not what limits the rate, and a second relay
 * thread would have no idle core to run on. It would take CPU from loadgen
 * and add cross-thread handoff (shared routes, locked output queues,
 * wake-ups) to every message; one thread also keeps per-subscriber order
 * trivially and makes the relay easy to trust. Where it is no ceiling: a
 * QoS 1/2 run with a single publisher (1to1, fanout) is bound by that
 * publisher's in-flight window and the round trip of its acks, not by CPU,
 * and a broker that acks on one core while it writes to the subscribers on
 * the other can beat the relay there (seen: shardmq 1.2-2x the relay in
 * 1to1 QoS 1 and fanout QoS 1 on some runs, below it on others).
 *
 * Invariants: a connection is in g.dirty at most once per turn (c->dirty),
 * and g.dirty is empty after flush(); a connection is in g.paused while
 * c->paused. A dead connection leaves epoll at once but stays in its routes
 * (deliveries skip it) and in memory until reap() at the end of the turn, so
 * that no route changes under a delivery loop and the turn's event pointers
 * stay valid.
 *
 * Left to others: everything a broker does beyond this (see cmd/shardmq.c);
 * the load and the measurements (perf/loadgen.c, perf/bench.sh).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define RBUF_LEN (64u << 10)		/* one read() */
#define READ_ROUNDS 4			/* reads per ready socket per turn */
#define POOL_CAP (64u << 10)		/* buffers of this size are recycled */
#define POOL_MAX 1024u
#define OUT_HWM (1u << 20)		/* a subscriber above this stops its publishers */
#define OUT_LWM (256u << 10)		/* ... until it is down to this */
#define OUT_MAX (64u << 20)		/* output beyond this closes the connection */
#define PKT_MAX (64u << 20)		/* longest packet accepted */
#define MAX_EVENTS 512
#define ACCEPTS_PER_TURN 64

enum {
	CONNECT = 1, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK,
	UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT
};

/* Bytes [head, head + len) of p[0, cap) are live; p is NULL when cap is 0. */
struct buf {
	uint8_t *p;
	size_t head, len, cap;
};

struct route;

struct conn {
	int fd;
	uint8_t version;		/* 4 (3.1.1, also for 3.1) or 5; 0 before CONNECT */
	uint32_t events;		/* what epoll watches now */
	bool dirty;			/* in g.dirty: output to write this turn */
	bool blocked;			/* the last write was short: EPOLLOUT wanted */
	bool paused;			/* in g.paused: input neither read nor parsed */
	bool dead;			/* in g.dead: freed at the end of the turn */
	struct buf in;			/* a partial packet, or what pausing left unparsed */
	struct buf out;			/* gathered output, written once per turn */
	struct conn *waits_for;		/* paused: whose backlog stopped us (NULL: retry) */
	struct route **subs;		/* routes this connection is in */
	uint32_t nsubs, subs_cap;
};

/* One filter and the connections subscribed to it. Exact filters live in
 * g.tab by hash; filters with wildcards in the list g.wild. */
struct route {
	struct route *next;		/* hash chain, or the wildcard list */
	struct conn **conns;
	uint32_t n, cap;
	uint32_t hash;
	uint16_t flen;
	bool wild;
	char filter[];
};

/* A growable array of connections. */
struct clist {
	struct conn **v;
	uint32_t n, cap;
};

static struct {
	int ep, lfd;
	uint8_t *rbuf;			/* shared by every read */
	struct route **tab;		/* exact filters; tab_mask + 1 chains */
	uint32_t tab_mask, tab_count;
	struct route *wild;
	struct clist dirty, paused, dead, ready;
	uint8_t *pool[POOL_MAX];	/* free POOL_CAP buffers */
	uint32_t npool;
} g;

/* ---- buffers -------------------------------------------------------------- */

static void buf_release(struct buf *b)
{
	if (b->cap == POOL_CAP && g.npool < POOL_MAX)
		g.pool[g.npool++] = b->p;
	else
		free(b->p);
	*b = (struct buf){ 0 };
}

/* Room for @n more bytes after the live ones: 0 or -ENOMEM. */
static int buf_reserve(struct buf *b, size_t n)
{
	size_t cap = b->cap ? b->cap : POOL_CAP;
	uint8_t *p;

	if (b->head + b->len + n <= b->cap)
		return 0;
	if (b->head) {			/* slide the live bytes to the front first */
		memmove(b->p, b->p + b->head, b->len);
		b->head = 0;
		if (b->len + n <= b->cap)
			return 0;
	}
	while (cap < b->len + n)
		cap *= 2;
	if (!b->p && cap == POOL_CAP && g.npool) {
		b->p = g.pool[--g.npool];
	} else {
		p = realloc(b->p, cap);
		if (!p)
			return -ENOMEM;
		b->p = p;
	}
	b->cap = cap;
	return 0;
}

static int buf_append(struct buf *b, const void *data, size_t n)
{
	int ret = buf_reserve(b, n);

	if (ret)
		return ret;
	memcpy(b->p + b->head + b->len, data, n);
	b->len += n;
	return 0;
}

/* Drop @n bytes from the front; an empty buffer goes back to the pool, so
 * that idle connections hold none. */
static void buf_consume(struct buf *b, size_t n)
{
	b->head += n;
	b->len -= n;
	if (!b->len)
		buf_release(b);
}

static int clist_push(struct clist *l, struct conn *c)
{
	uint32_t cap = l->cap ? l->cap * 2 : 256;
	struct conn **v;

	if (l->n == l->cap) {
		v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = c;
	return 0;
}

/* ---- connections ---------------------------------------------------------- */

/* Make epoll watch what @c needs now: input unless paused or dead, output
 * while a write was short. */
static void update_events(struct conn *c)
{
	uint32_t want = (c->paused ? 0 : EPOLLIN) | (c->blocked ? EPOLLOUT : 0);
	struct epoll_event ev = { .events = want, .data.ptr = c };

	if (c->dead || want == c->events)
		return;
	c->events = want;
	epoll_ctl(g.ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Close @c: out of epoll now; reap() takes it out of its routes and frees
 * it at the end of the turn, so that no route changes under a delivery. */
static void kill_conn(struct conn *c)
{
	if (c->dead)
		return;
	epoll_ctl(g.ep, EPOLL_CTL_DEL, c->fd, NULL);
	c->dead = true;
	if (clist_push(&g.dead, c))
		abort();	/* cannot track it: no safe way on */
}

static void mark_dirty(struct conn *c)
{
	if (c->dirty)
		return;
	if (clist_push(&g.dirty, c)) {
		kill_conn(c);
		return;
	}
	c->dirty = true;
}

/* Queue @n bytes for @c; a connection that cannot take them is closed. */
static void send_bytes(struct conn *c, const void *p, size_t n)
{
	if (c->dead)
		return;
	if (c->out.len + n > OUT_MAX || buf_append(&c->out, p, n)) {
		fprintf(stderr, "relay: fd %d: output over %u MiB (or out of memory), closing it\n",
			c->fd, OUT_MAX >> 20);
		kill_conn(c);
		return;
	}
	mark_dirty(c);
}

/* A two-byte-body ack: PUBACK, PUBREC, PUBREL, PUBCOMP (3.1.1 and 5.0 alike:
 * a 5.0 reason code 0 may be left out). */
static void send_ack(struct conn *c, uint8_t first, uint16_t id)
{
	uint8_t a[4] = { first, 2, (uint8_t)(id >> 8), (uint8_t)id };

	send_bytes(c, a, sizeof(a));
}

static void pause_conn(struct conn *c, struct conn *waits_for)
{
	c->waits_for = waits_for;
	if (c->paused)
		return;
	if (clist_push(&g.paused, c)) {
		kill_conn(c);
		return;
	}
	c->paused = true;
	update_events(c);
}

/* ---- routes --------------------------------------------------------------- */

static uint32_t hash_bytes(const void *p, size_t n)
{
	const uint8_t *s = p;
	uint32_t h = 2166136261u;	/* FNV-1a */

	while (n--)
		h = (h ^ *s++) * 16777619u;
	return h;
}

/* MQTT matching: '+' takes one level, '#' the rest and the parent ("a/#"
 * matches "a"); wildcards do not match a first level starting with '$'
 * [MQTT-4.7.2-1]. */
static bool topic_match(const char *f, size_t flen, const uint8_t *t, size_t tlen)
{
	size_t i = 0, j = 0;

	if (tlen && t[0] == '$' && flen && (f[0] == '+' || f[0] == '#'))
		return false;
	while (i < flen) {
		if (f[i] == '#')
			return true;
		if (f[i] == '+') {
			while (j < tlen && t[j] != '/')
				j++;
			i++;
			continue;
		}
		if (j == tlen)
			return flen - i == 2 && f[i] == '/' && f[i + 1] == '#';
		if (f[i] != t[j])
			return false;
		i++;
		j++;
	}
	return j == tlen;
}

static struct route **chain_of(uint32_t hash)
{
	return &g.tab[hash & g.tab_mask];
}

/* The exact route for @topic, or NULL. */
static struct route *route_exact(const uint8_t *topic, size_t len, uint32_t hash)
{
	struct route *r;

	if (!g.tab)
		return NULL;
	for (r = *chain_of(hash); r; r = r->next)
		if (r->hash == hash && r->flen == len && !memcmp(r->filter, topic, len))
			return r;
	return NULL;
}

/* Twice the chains once there are more routes than chains. */
static int tab_grow(void)
{
	uint32_t n = g.tab ? (g.tab_mask + 1) * 2 : 1024, i;
	struct route **old = g.tab, *r, *next;
	uint32_t old_n = g.tab ? g.tab_mask + 1 : 0;

	g.tab = calloc(n, sizeof(*g.tab));
	if (!g.tab) {
		g.tab = old;
		return -ENOMEM;
	}
	g.tab_mask = n - 1;
	for (i = 0; i < old_n; i++)
		for (r = old[i]; r; r = next) {
			next = r->next;
			r->next = *chain_of(r->hash);
			*chain_of(r->hash) = r;
		}
	free(old);
	return 0;
}

/* The route of @filter, exact or wildcard, or NULL. */
static struct route *route_find(const char *filter, uint16_t len, uint32_t hash, bool wild)
{
	struct route *r;

	if (!wild)
		return route_exact((const uint8_t *)filter, len, hash);
	for (r = g.wild; r; r = r->next)
		if (r->flen == len && !memcmp(r->filter, filter, len))
			return r;
	return NULL;
}

/* The route of @filter, made if new; NULL when out of memory. */
static struct route *route_get(const char *filter, uint16_t len)
{
	bool wild = memchr(filter, '+', len) || memchr(filter, '#', len);
	uint32_t hash = hash_bytes(filter, len);
	struct route *r = route_find(filter, len, hash, wild);

	if (r)
		return r;
	if (!wild && g.tab_count >= (g.tab ? g.tab_mask + 1 : 0) && tab_grow())
		return NULL;
	r = calloc(1, sizeof(*r) + len + 1u);
	if (!r)
		return NULL;
	memcpy(r->filter, filter, len);
	r->flen = len;
	r->hash = hash;
	r->wild = wild;
	if (wild) {
		r->next = g.wild;
		g.wild = r;
	} else {
		r->next = *chain_of(hash);
		*chain_of(hash) = r;
		g.tab_count++;
	}
	return r;
}

static void route_free(struct route *r)
{
	struct route **pp = r->wild ? &g.wild : chain_of(r->hash);

	while (*pp != r)
		pp = &(*pp)->next;
	*pp = r->next;
	if (!r->wild)
		g.tab_count--;
	free(r->conns);
	free(r);
}

/* Subscribe @c to @r (once): 0 or -ENOMEM. */
static int route_join(struct route *r, struct conn *c)
{
	uint32_t i;
	void *p;

	for (i = 0; i < c->nsubs; i++)
		if (c->subs[i] == r)
			return 0;
	if (r->n == r->cap) {
		p = realloc(r->conns, (r->cap ? r->cap * 2 : 4) * sizeof(*r->conns));
		if (!p)
			return -ENOMEM;
		r->conns = p;
		r->cap = r->cap ? r->cap * 2 : 4;
	}
	if (c->nsubs == c->subs_cap) {
		p = realloc(c->subs, (c->subs_cap ? c->subs_cap * 2 : 2) * sizeof(*c->subs));
		if (!p)
			return -ENOMEM;
		c->subs = p;
		c->subs_cap = c->subs_cap ? c->subs_cap * 2 : 2;
	}
	r->conns[r->n++] = c;
	c->subs[c->nsubs++] = r;
	return 0;
}

/* Unsubscribe @c from @r; an empty route is freed. Order does not matter in
 * either array, so the last entry fills the hole. */
static void route_leave(struct route *r, struct conn *c)
{
	uint32_t i;

	for (i = 0; i < r->n; i++)
		if (r->conns[i] == c) {
			r->conns[i] = r->conns[--r->n];
			break;
		}
	for (i = 0; i < c->nsubs; i++)
		if (c->subs[i] == r) {
			c->subs[i] = c->subs[--c->nsubs];
			break;
		}
	if (!r->n)
		route_free(r);
}

/* A subscriber of @r with too much output waiting, or NULL. */
static struct conn *congested(const struct route *r)
{
	uint32_t i;

	for (i = 0; r && i < r->n; i++)
		if (r->conns[i]->out.len > OUT_HWM && !r->conns[i]->dead)
			return r->conns[i];
	return NULL;
}

static void deliver(const struct route *r, const uint8_t *pkt, size_t len, const uint8_t *rel)
{
	uint32_t i;

	for (i = 0; r && i < r->n; i++) {
		send_bytes(r->conns[i], pkt, len);
		if (rel)
			send_bytes(r->conns[i], rel, 4);
	}
}

/* Copy the PUBLISH @pkt to every matching subscriber (with @rel, a PUBREL,
 * after it at QoS 2); -EAGAIN, copying nothing, if one of them is backed up:
 * then @src pauses. */
static int route_publish(struct conn *src, const uint8_t *pkt, size_t len, const uint8_t *topic,
			 size_t tlen, const uint8_t *rel)
{
	struct route *exact = route_exact(topic, tlen, hash_bytes(topic, tlen)), *w;
	struct conn *full = congested(exact);

	for (w = g.wild; w && !full; w = w->next)
		if (topic_match(w->filter, w->flen, topic, tlen))
			full = congested(w);
	if (full) {
		pause_conn(src, full);
		return -EAGAIN;
	}
	deliver(exact, pkt, len, rel);
	for (w = g.wild; w; w = w->next)
		if (topic_match(w->filter, w->flen, topic, tlen))
			deliver(w, pkt, len, rel);
	return 0;
}

/* ---- packets ---------------------------------------------------------------- */

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/* MQTT's variable byte integer at @p (at most 4 bytes, @n available):
 * its length, 0 if incomplete, -1 if malformed. */
static int rd_varint(const uint8_t *p, size_t n, uint32_t *v)
{
	int i;

	*v = 0;
	for (i = 0; i < 4; i++) {
		if ((size_t)i >= n)
			return 0;
		*v |= (uint32_t)(p[i] & 0x7f) << (7 * i);
		if (!(p[i] & 0x80))
			return i + 1;
	}
	return -1;
}

static size_t put_varint(uint8_t *p, uint32_t v)
{
	size_t n = 0;

	do {
		p[n] = (uint8_t)(v & 0x7f);
		v >>= 7;
		if (v)
			p[n] |= 0x80;
		n++;
	} while (v);
	return n;
}

/* Skip a 5.0 property list at @v + *off (of @len): 0 or -EPROTO. */
static int skip_props(const uint8_t *v, size_t len, size_t *off)
{
	uint32_t plen;
	int n = rd_varint(v + *off, len - *off, &plen);

	if (n <= 0 || plen > len - *off - (size_t)n)
		return -EPROTO;
	*off += (size_t)n + plen;
	return 0;
}

static int on_connect(struct conn *c, const uint8_t *v, size_t len)
{
	static const uint8_t ack4[] = { CONNACK << 4, 2, 0, 0 };
	static const uint8_t ack5[] = { CONNACK << 4, 3, 0, 0, 0 };	/* no properties */
	uint16_t nlen;

	if (c->version || len < 2 || (nlen = rd16(v)) + 2u >= len)
		return -EPROTO;
	c->version = v[2 + nlen] == 5 ? 5 : 4;
	if (c->version == 5)
		send_bytes(c, ack5, sizeof(ack5));
	else
		send_bytes(c, ack4, sizeof(ack4));
	return 0;
}

static int on_publish(struct conn *c, const uint8_t *pkt, size_t hdr, size_t len)
{
	const uint8_t *v = pkt + hdr;
	uint8_t qos = (pkt[0] >> 1) & 3, rel[4] = { PUBREL << 4 | 2, 2 };
	uint16_t tlen, id = 0;
	int ret;

	if (qos == 3 || len < 2 || (tlen = rd16(v)) + 2u + (qos ? 2u : 0u) > len)
		return -EPROTO;
	if (qos) {
		id = rd16(v + 2 + tlen);
		rel[2] = (uint8_t)(id >> 8);
		rel[3] = (uint8_t)id;
	}
	ret = route_publish(c, pkt, hdr + len, v + 2, tlen, qos == 2 ? rel : NULL);
	if (ret)
		return ret;
	if (qos)
		send_ack(c, (qos == 1 ? PUBACK : PUBREC) << 4, id);
	return 0;
}

typedef uint8_t (*filter_fn)(struct conn *c, const char *filter, uint16_t len, uint8_t opts);

/* The filters of a SUBSCRIBE or UNSUBSCRIBE at @v + @off: @fn (if any) is
 * called with each filter and, for SUBSCRIBE (@opts), its options byte; with
 * @codes, what it returns is queued to @c. Returns how many filters there
 * are, or -EPROTO for a malformed list. */
static int each_filter(struct conn *c, const uint8_t *v, size_t len, size_t off, bool opts,
		       filter_fn fn, bool codes)
{
	int n = 0;
	uint16_t flen;
	uint8_t code;

	while (off < len) {
		if (len - off < 2 || (flen = rd16(v + off)) == 0 ||
		    len - off - 2 < flen + (opts ? 1u : 0u))
			return -EPROTO;
		if (fn) {
			code = fn(c, (const char *)v + off + 2, flen, opts ? v[off + 2 + flen] : 0);
			if (codes)
				send_bytes(c, &code, 1);
		}
		off += 2u + flen + (opts ? 1u : 0u);
		n++;
	}
	return n ? n : -EPROTO;		/* [MQTT-3.8.3-3], [MQTT-3.10.3-2] */
}

static uint8_t subscribe_one(struct conn *c, const char *f, uint16_t flen, uint8_t opts)
{
	struct route *r = route_get(f, flen);

	if (!r || route_join(r, c)) {
		if (r && !r->n)
			route_free(r);
		return 0x80;		/* failure */
	}
	return (opts & 3) == 3 ? 0x80 : opts & 3;
}

static uint8_t unsubscribe_one(struct conn *c, const char *f, uint16_t flen, uint8_t opts)
{
	uint32_t i;

	(void)opts;
	for (i = 0; i < c->nsubs; i++)
		if (c->subs[i]->flen == flen && !memcmp(c->subs[i]->filter, f, flen)) {
			route_leave(c->subs[i], c);
			return 0;
		}
	return 0x11;			/* 5.0: no subscription existed */
}

/* SUBSCRIBE or UNSUBSCRIBE: the ack's header first (it needs the count),
 * then one code per filter; a 3.1.1 UNSUBACK has no codes. */
static int on_sub_unsub(struct conn *c, const uint8_t *v, size_t len, bool sub)
{
	bool codes = sub || c->version == 5;
	uint8_t hdr[12];
	size_t off = 2, h = 0;
	int n;

	if (len < 2 || (c->version == 5 && skip_props(v, len, &off)))
		return -EPROTO;
	n = each_filter(c, v, len, off, sub, NULL, false);
	if (n < 0)
		return n;
	hdr[h++] = (sub ? SUBACK : UNSUBACK) << 4;
	h += put_varint(hdr + h, 2u + (c->version == 5) + (codes ? (uint32_t)n : 0u));
	hdr[h++] = v[0];
	hdr[h++] = v[1];
	if (c->version == 5)
		hdr[h++] = 0;		/* no properties */
	send_bytes(c, hdr, h);
	each_filter(c, v, len, off, sub, sub ? subscribe_one : unsubscribe_one, codes);
	return 0;
}

/* One whole packet: 0, -EAGAIN (not taken: the connection paused), or
 * -EPROTO / -ECONNRESET to close it. */
static int handle(struct conn *c, const uint8_t *pkt, size_t hdr, size_t len)
{
	static const uint8_t pingresp[] = { PINGRESP << 4, 0 };
	const uint8_t *v = pkt + hdr;
	uint8_t type = pkt[0] >> 4;

	if (!c->version && type != CONNECT)
		return -EPROTO;
	switch (type) {
	case CONNECT:
		return on_connect(c, v, len);
	case PUBLISH:
		return on_publish(c, pkt, hdr, len);
	case PUBACK:
	case PUBREC:			/* its PUBREL went out with the PUBLISH */
	case PUBCOMP:
		return 0;
	case PUBREL:
		if (len < 2)
			return -EPROTO;
		send_ack(c, PUBCOMP << 4, rd16(v));
		return 0;
	case SUBSCRIBE:
	case UNSUBSCRIBE:
		return on_sub_unsub(c, v, len, type == SUBSCRIBE);
	case PINGREQ:
		send_bytes(c, pingresp, sizeof(pingresp));
		return 0;
	case DISCONNECT:
		return -ECONNRESET;
	default:			/* AUTH, or what a client must not send */
		return -EPROTO;
	}
}

/* Handle the whole packets at the front of @p: how many bytes were taken.
 * Stops at a partial packet, when @c pauses, or when it dies. */
static size_t parse(struct conn *c, const uint8_t *p, size_t n)
{
	size_t off = 0;
	uint32_t rl;
	int hl, ret;

	while (!c->paused && !c->dead && n - off >= 2) {
		hl = rd_varint(p + off + 1, n - off - 1, &rl);
		if (hl < 0 || rl > PKT_MAX) {
			kill_conn(c);
			break;
		}
		if (!hl || n - off - 1 - (size_t)hl < rl)
			break;
		ret = handle(c, p + off, 1u + (size_t)hl, rl);
		if (ret == -EAGAIN)
			break;
		if (ret) {
			kill_conn(c);
			break;
		}
		off += 1u + (size_t)hl + rl;
	}
	return off;
}

/* ---- the loop ----------------------------------------------------------------- */

/* One read into @c's own buffer (it holds a partial packet), then parse. */
static ssize_t read_own(struct conn *c)
{
	ssize_t n;

	if (buf_reserve(&c->in, RBUF_LEN))
		return -1;
	n = read(c->fd, c->in.p + c->in.head + c->in.len, c->in.cap - c->in.head - c->in.len);
	if (n > 0) {
		c->in.len += (size_t)n;
		buf_consume(&c->in, parse(c, c->in.p + c->in.head, c->in.len));
	}
	return n;
}

/* One read into the shared buffer; what is not parsed is kept in @c's. */
static ssize_t read_shared(struct conn *c)
{
	ssize_t n = read(c->fd, g.rbuf, RBUF_LEN);
	size_t used;

	if (n > 0) {
		used = parse(c, g.rbuf, (size_t)n);
		if (used < (size_t)n && !c->dead && buf_append(&c->in, g.rbuf + used, (size_t)n - used))
			kill_conn(c);
	}
	return n;
}

static void on_readable(struct conn *c)
{
	ssize_t n;
	int i;

	for (i = 0; i < READ_ROUNDS && !c->paused && !c->dead; i++) {
		n = c->in.len ? read_own(c) : read_shared(c);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n <= 0) {
			kill_conn(c);
			break;
		}
		if ((size_t)n < RBUF_LEN)
			break;		/* drained for now: level-triggered epoll says if not */
	}
}

/* Write every dirty connection's output: one send() each. */
static void flush(void)
{
	struct conn *c;
	ssize_t n;
	uint32_t i;

	for (i = 0; i < g.dirty.n; i++) {
		c = g.dirty.v[i];
		c->dirty = false;
		if (c->dead)
			continue;
		n = c->out.len ? send(c->fd, c->out.p + c->out.head, c->out.len,
				      MSG_NOSIGNAL | MSG_DONTWAIT) : 0;
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			kill_conn(c);
			continue;
		}
		if (n > 0)
			buf_consume(&c->out, (size_t)n);
		c->blocked = c->out.len > 0;
		update_events(c);
	}
	g.dirty.n = 0;
}

/* A paused publisher may go on: its subscriber caught up or went away. */
static bool resumable(const struct conn *c)
{
	return !c->waits_for || c->waits_for->out.len <= OUT_LWM;
}

static bool any_resumable(void)
{
	uint32_t i;

	for (i = 0; i < g.paused.n; i++)
		if (resumable(g.paused.v[i]))
			return true;
	return false;
}

/* Paused publishers whose subscriber caught up read again, starting with
 * what they left unparsed (which may pause them once more). Runs before
 * flush(): output shrinks only there, so the previous turn's flush decided. */
static void resume(void)
{
	struct conn *c;
	uint32_t i, keep = 0;

	g.ready.n = 0;
	for (i = 0; i < g.paused.n; i++) {
		c = g.paused.v[i];
		if (c->dead)
			continue;	/* reap() frees it */
		if (!resumable(c))
			g.paused.v[keep++] = c;
		else if (clist_push(&g.ready, c))
			g.paused.v[keep++] = c;		/* try again next turn */
	}
	g.paused.n = keep;
	for (i = 0; i < g.ready.n; i++) {
		c = g.ready.v[i];
		c->paused = false;
		c->waits_for = NULL;
		if (c->in.len)
			buf_consume(&c->in, parse(c, c->in.p + c->in.head, c->in.len));
		update_events(c);
	}
}

/* Free what died this turn (after flush(): g.dirty is empty). Paused
 * connections that died leave g.paused; those waiting for one that died
 * retry. */
static void reap(void)
{
	struct conn *c;
	uint32_t i, keep = 0;

	if (!g.dead.n)
		return;
	for (i = 0; i < g.paused.n; i++) {
		c = g.paused.v[i];
		if (c->dead)
			continue;
		if (c->waits_for && c->waits_for->dead)
			c->waits_for = NULL;
		g.paused.v[keep++] = c;
	}
	g.paused.n = keep;
	for (i = 0; i < g.dead.n; i++) {
		c = g.dead.v[i];
		while (c->nsubs)
			route_leave(c->subs[c->nsubs - 1], c);
		close(c->fd);
		buf_release(&c->in);
		buf_release(&c->out);
		free(c->subs);
		free(c);
	}
	g.dead.n = 0;
}

static void on_accept(void)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct conn *c;
	int fd, i, one = 1;

	for (i = 0; i < ACCEPTS_PER_TURN; i++) {
		fd = accept4(g.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = calloc(1, sizeof(*c));
		ev.data.ptr = c;
		if (!c || epoll_ctl(g.ep, EPOLL_CTL_ADD, fd, &ev)) {
			free(c);
			close(fd);
			continue;
		}
		c->fd = fd;
		c->events = EPOLLIN;
	}
}

static void on_event(struct conn *c, uint32_t ev)
{
	if (c->dead)
		return;
	if (ev & EPOLLOUT)
		mark_dirty(c);
	if (c->paused && (ev & (EPOLLHUP | EPOLLERR)))
		kill_conn(c);		/* not reading: nothing else would notice */
	else if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR))
		on_readable(c);
}

static void run(void)
{
	struct epoll_event evs[MAX_EVENTS];
	int n, i;

	for (;;) {
		n = epoll_wait(g.ep, evs, MAX_EVENTS, any_resumable() ? 0 : -1);
		for (i = 0; i < n; i++) {
			if (!evs[i].data.ptr)
				on_accept();
			else
				on_event(evs[i].data.ptr, evs[i].events);
		}
		resume();
		flush();
		reap();
	}
}

/* ---- setup ---------------------------------------------------------------- */

static int listen_on(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	int one = 1;

	g.lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (g.lfd < 0)
		return -errno;
	setsockopt(g.lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(g.lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(g.lfd, 4096) ||
	    epoll_ctl(g.ep, EPOLL_CTL_ADD, g.lfd, &ev))
		return -errno;
	return 0;
}

/* 10,000 clients need 10,000 descriptors: take what the hard limit allows. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	long port = 0;
	char *end = NULL;
	int opt, ret;

	while ((opt = getopt(argc, argv, "p:h")) != -1) {
		if (opt != 'p')
			goto usage;
		port = strtol(optarg, &end, 10);
	}
	if (optind != argc || !end || *end || port < 1 || port > 65535)
		goto usage;
	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	g.ep = epoll_create1(EPOLL_CLOEXEC);
	g.rbuf = malloc(RBUF_LEN);
	if (g.ep < 0 || !g.rbuf) {
		fprintf(stderr, "relay: %s\n", strerror(errno));
		return 1;
	}
	ret = listen_on((int)port);
	if (ret) {
		fprintf(stderr, "relay: 127.0.0.1:%ld: %s\n", port, strerror(-ret));
		return 1;
	}
	run();
	return 0;
usage:
	fprintf(stderr, "usage: relay -p PORT   (listens on 127.0.0.1:PORT)\n");
	return 2;
}
