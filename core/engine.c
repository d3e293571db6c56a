/* engine.c - the per-shard broker engine: connections, the MQTT protocol
 * state machine of each, sessions and their life, keepalive and expiry
 * timers, subscriptions and the interest index.
 *
 * Invariants:
 *  - a connection is CS_NEW until its CONNECT is accepted (CS_LIVE) and
 *    CS_CLOSING from the moment want_close was called (exactly once); a
 *    CLOSING connection reads nothing and gets no new deliveries; between
 *    NEW and LIVE it may wait in CS_AUTH (password checked off the loop,
 *    input held) or CS_EXCHANGE (5.0 enhanced authentication: AUTH packets
 *    both ways, core/authmethod.h), its CONNECT parked in connect_copy
 *    either way, no session touched yet;
 *  - per-connection notices (refusals, protocol errors, timeouts) are
 *    rate-limited per engine and kind by elog(): a client reconnecting
 *    in a loop costs one line a second, not one per attempt;
 *  - a session is attached to at most one connection (s->conn, c->s point
 *    at each other), and lives in the session table until it ends;
 *  - every (filter, session) in the local trie is also in the session's
 *    list, and the shard's own interest replica says "present" for exactly
 *    the filters the local trie holds;
 *  - bytes from the network are never trusted: every failure of the codec
 *    or of a protocol rule ends that one connection with a log line naming
 *    the client id, the peer and the reason.
 *
 * Left to deliver.c: routing, delivery, output queues, PUBLISH encoding.
 * Left to the I/O layer: sockets, hand-off, batching, other threads.
 */
#include "core/engine.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/acl.h"
#include "core/auth.h"
#include "core/authmethod.h"
#include "core/config.h"
#include "core/engine_int.h"
#include "core/log.h"
#include "core/msg.h"
#include "core/retain.h"
#include "core/topic.h"

static void ka_fire(struct smq_timer *t, void *arg);
static void expiry_fire(struct smq_timer *t, void *arg);
static void will_fire(struct smq_timer *t, void *arg);

/* ---- session table ---------------------------------------------------- */

/* Chained, at most TAB_LOAD sessions per bucket on average: a lookup (a
 * CONNECT, a restore) follows about two links, comparing the hash first,
 * and the table costs 4 to 8 bytes a session instead of 8 to 16 at load 1
 * (measured: 6.5 B fewer per idle connection at 10,000). */
#define TAB_LOAD 2u

static struct smq_session *tab_find(const struct smq_engine *e, struct smq_str id)
{
	uint32_t h = smq_session_hash(id);

	if (!e->tab_cap)
		return NULL;
	for (struct smq_session *s = e->tab[h & (e->tab_cap - 1)]; s; s = s->hnext)
		if (s->hash == h && s->id_len == id.len && !memcmp(s->client_id, id.p, id.len))
			return s;
	return NULL;
}

static int tab_grow(struct smq_engine *e)
{
	uint32_t cap = e->tab_cap ? e->tab_cap * 2 : 64;
	struct smq_session **t = calloc(cap, sizeof(*t));

	if (!t)
		return -ENOMEM;
	for (uint32_t i = 0; i < e->tab_cap; i++) {
		struct smq_session *s = e->tab[i], *next;

		for (; s; s = next) {
			next = s->hnext;
			s->hnext = t[s->hash & (cap - 1)];
			t[s->hash & (cap - 1)] = s;
		}
	}
	free(e->tab);
	e->tab = t;
	e->tab_cap = cap;
	return 0;
}

static int tab_add(struct smq_engine *e, struct smq_session *s)
{
	if (e->stats.sessions >= (uint64_t)e->tab_cap * TAB_LOAD && tab_grow(e))
		return -ENOMEM;
	s->hnext = e->tab[s->hash & (e->tab_cap - 1)];
	e->tab[s->hash & (e->tab_cap - 1)] = s;
	e->stats.sessions++;
	return 0;
}

static void tab_del(struct smq_engine *e, struct smq_session *s)
{
	struct smq_session **pp = &e->tab[s->hash & (e->tab_cap - 1)];

	while (*pp && *pp != s)
		pp = &(*pp)->hnext;
	if (*pp) {
		*pp = s->hnext;
		e->stats.sessions--;
	}
}

/* ---- interest --------------------------------------------------------- */

/* The local count of @filter went 0->1 or 1->0: update our own replica at
 * once, then let the I/O layer tell the other shards. */
static void interest_changed(struct smq_engine *e, struct smq_str filter, bool present)
{
	if (smq_interest_set(e->interest, filter, e->shard, present))
		smq_err("shard %u: interest index update failed (out of memory)", e->shard);
	if (e->io.interest && e->nshards > 1) {
		e->io.interest(e->io.ctx, filter, present);
		e->int_new = true;
	}
}

static void unsubscribe_all(struct smq_engine *e, struct smq_session *s)
{
	for (uint32_t i = 0; i < s->nsubs; i++) {
		struct smq_str f = { (const uint8_t *)s->subs[i].filter, s->subs[i].len };
		unsigned flags = 0;

		if (!smq_subtree_remove(e->subs, f, s, &flags) && (flags & SMQ_SUBTREE_LAST))
			interest_changed(e, f, false);
	}
	e->stats.subscriptions = smq_subtree_count(e->subs);
}

/* ---- retained --------------------------------------------------------- */

/* Make @m its topic's retained message (or clear it), and store that. */
static int retain_set(struct smq_engine *e, struct smq_msg *m)
{
	uint64_t seq = 0;
	int ret = smq_retain_set_seq(e->retained, m, &seq);

	if (!ret) {
		e->stats.retained_set++;
		smq_eng_store_retained(e, m, seq);
	}
	return ret;
}

/* ---- will and session end --------------------------------------------- */

/* Publish a will now (its expiry counted from now). Takes @will. */
static void publish_will(struct smq_engine *e, struct smq_msg *will, const char *id)
{
	struct smq_msg *m = will;

	if (will->has_expiry) {
		struct smq_msg_spec sp = {
			.topic = smq_msg_topic(will), .payload = smq_msg_payload(will),
			.props = smq_msg_props(will), .qos = will->qos, .retain = will->retain,
			.has_expiry = true, .expiry_s = will->expiry_s, .created_ms = e->now,
			.created_ns = e->now_ns,
		};

		m = smq_msg_new(&sp);
		if (!m)
			m = will;
		else
			smq_msg_unref(will);
	}
	smq_info("shard %u: publishing the will of client '%s'", e->shard, id);
	e->stats.wills_published++;
	if (m->retain)
		retain_set(e, m);
	smq_eng_route(e, m, NULL);
	smq_msg_unref(m);
}

/* End a session: unsubscribe, publish a will still waiting for its delay
 * [MQTT-3.1.3-9], forget it. The session must be offline. */
static void session_end(struct smq_engine *e, struct smq_session *s)
{
	struct smq_session_rare *r = s->rare;

	if (r) {
		smq_timer_cancel(&r->expiry_timer);
		smq_timer_cancel(&r->will_timer);
	}
	smq_eng_store_forget(e, s);
	unsubscribe_all(e, s);
	tab_del(e, s);
	if (r && r->will) {
		publish_will(e, r->will, s->client_id);
		r->will = NULL;
	}
	smq_session_free(s);
}

static struct smq_session *session_new(struct smq_engine *e, struct smq_str id)
{
	struct smq_session *s = smq_session_new(id);

	if (!s)
		return NULL;
	if (tab_add(e, s)) {
		smq_session_free(s);
		return NULL;
	}
	s->serial = ++e->serial;
	return s;
}

/* s's rare part (struct smq_session_rare) with the engine's timer
 * callbacks, allocated on first use; NULL on ENOMEM. */
static struct smq_session_rare *sx_get(struct smq_session *s)
{
	struct smq_session_rare *r = s->rare;

	if (r)
		return r;
	r = smq_session_rare(s);
	if (r) {
		r->expiry_timer.fn = expiry_fire;
		r->will_timer.fn = will_fire;
	}
	return r;
}

/* ---- engine ----------------------------------------------------------- */

struct smq_engine *smq_engine_new(unsigned shard, unsigned nshards, const struct smq_config *cfg,
				  struct smq_retain *retained, const struct smq_engine_io *io)
{
	struct smq_engine *e;

	if (!nshards || nshards > SMQ_INTEREST_MAX_SHARDS || shard >= nshards || !cfg || !retained)
		return NULL;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->shard = shard;
	e->nshards = nshards;
	e->cfg = cfg;
	e->retained = retained;
	if (io)
		e->io = *io;
	e->subs = smq_subtree_new();
	e->interest = smq_interest_new();
	e->auth_cache = smq_auth_cache_new();
	if (!e->subs || !e->interest || !e->auth_cache)
		goto out_free;
	smq_match_init(&e->match);
	smq_match_cache_on(&e->match);	/* -ENOMEM only costs speed */
	smq_interest_groups_init(&e->groups);
	smq_timers_init(&e->timers, 0);
	e->split = smq_split_cache_new();	/* NULL only costs speed */
	return e;
out_free:
	smq_subtree_free(e->subs);
	smq_interest_free(e->interest);
	smq_auth_cache_free(e->auth_cache);
	free(e);
	return NULL;
}

/* ---- connect-time state (struct econn_rare) ---------------------------- */

/* What rare_of() shows while a connection has no struct econn_rare: no
 * bytes, no verdict yet, no method. Never written (const). */
static const struct econn_rare no_rare = { .verdict = -1 };

static const struct econn_rare *rare_of(const struct smq_econn *c)
{
	return c->rare ? c->rare : &no_rare;
}

/* c's connect-time state for writing, allocated on first use; NULL on
 * ENOMEM. */
static struct econn_rare *rare_mut(struct smq_econn *c)
{
	if (!c->rare) {
		c->rare = calloc(1, sizeof(*c->rare));
		if (c->rare)
			c->rare->verdict = -1;
	}
	return c->rare;
}

static void rare_free(struct smq_econn *c)
{
	struct econn_rare *r = c->rare;

	if (!r)
		return;
	free(r->pre);
	free(r->held);
	free(r->connect_copy);
	free(r->cert_user);
	if (r->am && r->am->free)
		r->am->free(r->am_state);
	free(r);
	c->rare = NULL;
}

/* A LIVE connection drops its connect-time state, which would otherwise
 * stay with every idle client, unless it keeps a method for
 * re-authentication. Called where the engine hands control back to the
 * I/O layer, never while a caller still reads r->pre or r->held. */
static void rare_trim(struct smq_econn *c)
{
	const struct econn_rare *r = c->rare;

	if (r && c->state == CS_LIVE && !r->am && !r->pre && !r->held && !r->connect_copy)
		rare_free(c);
}

/* The log name of a connection before its CONNECT names it (see struct
 * smq_econn): static, never freed. */
static char no_id[1] = "";

/* Does c's log name borrow its session's client id (share_log_id())? */
static bool log_id_shared(const struct smq_econn *c)
{
	return c->s && c->id == c->s->client_id;
}

static void free_log_id(struct smq_econn *c)
{
	if (c->id != no_id && !log_id_shared(c))
		free(c->id);
}

/* ---- rare features (struct econn_more) --------------------------------- */

/* An idle LIVE connection costs this, its session and the I/O layer's
 * struct: keep it in jemalloc's 192-byte class (the next is 224). */
_Static_assert(sizeof(struct smq_econn) <= 192, "struct smq_econn grew");
_Static_assert(SMQ_INTEREST_MAX_SHARDS <= 256, "struct econn_rare's home is a uint8_t");

/* What smq_eng_more() shows while a connection has no struct econn_more. */
const struct econn_more smq_eng_no_more;

struct econn_more *smq_eng_more_mut(struct smq_econn *c)
{
	if (!c->more)
		c->more = calloc(1, sizeof(*c->more));
	return c->more;
}

static void more_free(struct smq_econn *c)
{
	struct econn_more *m = c->more;

	if (!m)
		return;
	smq_msg_unref(m->will);
	for (unsigned i = 0; m->alias_in && i < c->alias_in_max; i++)
		free(m->alias_in[i].topic);
	free(m->alias_in);
	for (unsigned i = 0; i < m->alias_out_n; i++)
		free(m->alias_out[i].topic);
	free(m->alias_out);
	free(m);
	c->more = NULL;
}

static void conn_free(struct smq_engine *e, struct smq_econn *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else if (e->conns == c)
		e->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	smq_timer_cancel(&c->ka);
	smq_eng_flow_forget(e, c);
	if (smq_eng_more(c)->nheld)
		smq_eng_held_forget(e, c);
	if (e->gates_n)
		smq_eng_gate_drop(e, c, true);
	smq_reader_fini(&c->rd);
	smq_eng_out_free(c);
	more_free(c);
	rare_free(c);
	free_log_id(c);
	e->stats.sockets--;
	free(c);
}

void smq_engine_free(struct smq_engine *e)
{
	if (!e)
		return;
	while (e->conns) {
		struct smq_econn *c = e->conns;

		if (c->s)
			c->s->conn = NULL;
		conn_free(e, c);
	}
	for (uint32_t i = 0; i < e->tab_cap; i++) {
		struct smq_session *s = e->tab[i], *next;

		for (; s; s = next) {
			next = s->hnext;
			smq_session_free(s);
		}
	}
	free(e->tab);
	free(e->held);
	free(e->gates);
	free(e->pkey);
	free(e->pval);
	smq_timers_fini(&e->timers);
	smq_match_fini(&e->match);
	smq_interest_groups_fini(&e->groups);
	free(e->share_buf);
	smq_split_cache_free(e->split);
	smq_subtree_free(e->subs);
	smq_interest_free(e->interest);
	smq_auth_cache_free(e->auth_cache);
	free(e);
}

unsigned smq_engine_home_shard(struct smq_str id, unsigned nshards)
{
	uint64_t h = 14695981039346656037ull;

	if (nshards <= 1)
		return 0;
	for (uint32_t i = 0; i < id.len; i++)
		h = (h ^ id.p[i]) * 1099511628211ull;
	return (unsigned)(h % nshards);
}

const struct smq_engine_stats *smq_engine_stats(const struct smq_engine *e)
{
	return &e->stats;
}

void smq_engine_interest_apply(struct smq_engine *e, struct smq_str filter, unsigned shard,
			       bool present)
{
	if (shard == e->shard)
		return;		/* our own replica entry is kept exact locally */
	if (smq_interest_set(e->interest, filter, shard, present))
		smq_err("shard %u: interest index update from shard %u failed", e->shard, shard);
}

void smq_engine_deliver(struct smq_engine *e, struct smq_msg *msg, uint64_t now_ms)
{
	if (now_ms > e->now)
		e->now = now_ms;
	e->stats.msgs_delivered++;
	smq_eng_deliver_local(e, msg, NULL);
	smq_msg_unref(msg);
}

void smq_engine_deliver_shared(struct smq_engine *e, struct smq_msg *msg, struct smq_str share,
			       uint64_t now_ms)
{
	struct smq_str group, inner;

	if (now_ms > e->now)
		e->now = now_ms;
	e->stats.msgs_delivered++;
	if (smq_topic_parse_shared(share, &group, &inner) == 0 &&
	    smq_eng_deliver_shared(e, msg, group, inner) == -ENOENT)
		smq_debug("shard %u: no member of '%.*s' left for a message", e->shard,
			  (int)share.len, (const char *)share.p);
	smq_msg_unref(msg);
}

int smq_engine_publish(struct smq_engine *e, struct smq_str topic, struct smq_str payload,
		       uint8_t qos, bool retain, uint64_t now_ms)
{
	struct smq_msg_spec sp = {
		.topic = topic, .payload = payload, .qos = qos, .retain = retain,
		.created_ms = now_ms, .created_ns = e->now_ns,
	};
	struct smq_msg *m;

	if (now_ms > e->now)
		e->now = now_ms;
	/* client topics were UTF-8-checked by the codec; this one was not */
	if (!smq_topic_name_valid(topic) || !smq_utf8_valid(topic.p, topic.len) || qos > 2)
		return -EINVAL;
	m = smq_msg_new(&sp);
	if (!m)
		return -ENOMEM;
	if (retain)
		retain_set(e, m);
	smq_eng_route(e, m, NULL);
	smq_msg_unref(m);
	return 0;
}

int64_t smq_engine_tick(struct smq_engine *e, uint64_t now_ms)
{
	int64_t next;

	if (now_ms > e->now)
		e->now = now_ms;
	smq_timers_run(&e->timers, now_ms, e);
	if (e->flow_list)
		smq_eng_flow_tick(e);
	next = smq_timers_next(&e->timers, now_ms);
	/* a backlogged subscriber that stalls must be noticed without traffic */
	if (e->flow_backlogged && (next < 0 || next > 500))
		next = 500;
	return next;
}

/* ---- connection state ------------------------------------------------- */

struct smq_econn *smq_engine_conn_new(struct smq_engine *e, void *io_handle, const char *peer,
				      uint64_t now_ms)
{
	struct smq_econn *c = calloc(1, sizeof(*c));
	uint64_t maxp = e->cfg->max_packet_size;

	if (!c)
		return NULL;
	if (now_ms > e->now)
		e->now = now_ms;
	c->io = io_handle;
	c->id = no_id;
	c->peer = peer ? peer : "?";
	smq_reader_init(&c->rd, maxp && maxp < SMQ_MAX_PACKET ? (uint32_t)maxp : 0, 0);
	c->last_in_ms = e->now;
	c->recv_max = 65535;
	smq_timer_init(&c->ka, ka_fire);
	smq_timer_arm(&e->timers, &c->ka, e->now + SMQ_CONNECT_TIMEOUT_MS);
	c->next = e->conns;
	if (e->conns)
		e->conns->prev = c;
	e->conns = c;
	e->stats.sockets++;
	return c;
}

void smq_engine_set_auth(struct smq_engine *e, const struct smq_auth *auth)
{
	e->auth = auth;
}

int smq_econn_set_cert_user(struct smq_econn *c, const char *cn)
{
	char *u = strdup(cn ? cn : "");
	struct econn_rare *r;

	if (!u || !(r = rare_mut(c))) {
		free(u);
		return -ENOMEM;
	}
	free(r->cert_user);
	r->cert_user = u;
	return 0;
}

void *smq_econn_io(const struct smq_econn *c)
{
	return c->io;
}

const char *smq_econn_client_id(const struct smq_econn *c)
{
	return c->id;
}

const char *smq_econn_peer(const struct smq_econn *c)
{
	return c->peer;
}

/* An exact-size copy rather than a fixed buffer in every connection: most
 * client ids are far shorter than SMQ_LOG_ID_MAX. Out of memory, the log
 * lines keep the previous name. */
static void set_log_id(struct smq_econn *c, struct smq_str id)
{
	size_t n = id.len < SMQ_LOG_ID_MAX ? id.len : SMQ_LOG_ID_MAX;
	char *p = malloc(n + 1);

	if (!p)
		return;
	memcpy(p, id.p, n);
	p[n] = 0;
	for (size_t i = 0; i < n; i++)	/* keep log lines printable */
		if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
			p[i] = '?';
	free_log_id(c);
	c->id = p;
}

/* Once c is LIVE its log name usually equals the session's client id (a
 * printable id of at most SMQ_LOG_ID_MAX bytes): borrow that instead of
 * keeping a copy for the connection's life. */
static void share_log_id(struct smq_econn *c)
{
	const struct smq_session *s = c->s;

	if (c->id == no_id || log_id_shared(c) || strcmp(c->id, s->client_id))
		return;
	free(c->id);
	c->id = c->s->client_id;
}

/* c leaves its session (which may be freed before c is): a borrowed log
 * name becomes c's own copy again ("" when out of memory). */
static void unshare_log_id(struct smq_econn *c)
{
	const struct smq_session *s = c->s;

	if (!log_id_shared(c))
		return;
	c->id = no_id;
	set_log_id(c, (struct smq_str){ (const uint8_t *)s->client_id, s->id_len });
}

/* A per-connection notice of kind @k. A client that reconnects in a loop
 * with a bad CONNECT, or a fleet with a broken firmware, would otherwise
 * write a line per attempt (thousands a second, filling the disk): at most
 * one line per second per kind per engine is written, and it says how many
 * were left out since the previous one. */
static void elog(struct smq_engine *e, enum smq_elog_kind k, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void elog(struct smq_engine *e, enum smq_elog_kind k, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if (!smq_log_enabled(SMQ_LOG_NOTICE))
		return;
	if (!smq_log_due(&e->elog_ms[k], e->now, 1000)) {
		e->elog_quiet[k]++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (e->elog_quiet[k])
		smq_notice("%s (%llu more like this since the last report)", line,
			   (unsigned long long)e->elog_quiet[k]);
	else
		smq_notice("%s", line);
	e->elog_quiet[k] = 0;
}

/* Ask the I/O layer to close c (once). Queued output is still flushed. */
static void conn_close(struct smq_engine *e, struct smq_econn *c)
{
	if (c->state == CS_CLOSING)
		return;
	c->state = CS_CLOSING;
	smq_timer_cancel(&c->ka);
	if (e->gates_n)
		smq_eng_gate_drop(e, c, false);	/* its last words go out */
	if (e->io.want_close)
		e->io.want_close(e->io.ctx, c);
}

/* 5.0: tell the client why before closing [MQTT-4.13.1-1]. */
static void send_disconnect(struct smq_engine *e, struct smq_econn *c, uint8_t rc)
{
	struct smq_packet pkt = { .type = SMQ_DISCONNECT, .version = SMQ_V5, .reason = rc };

	/* e.g. 0x84 from a second CONNECT with a bad protocol name is a
	 * CONNACK-only code: a second CONNECT is a Protocol Error [MQTT-3.1.0-2] */
	if (!smq_rc_valid(SMQ_DISCONNECT, rc))
		pkt.reason = SMQ_RC_PROTOCOL_ERROR;
	if (c->version == SMQ_V5 && c->state == CS_LIVE)
		smq_eng_write(e, c, &pkt);
}

/* A protocol violation or malformed packet: log, count, close. The will
 * stays due: it is published when the socket is gone. */
static void conn_fail(struct smq_engine *e, struct smq_econn *c, uint8_t rc, const char *why)
{
	if (c->state == CS_CLOSING)
		return;
	elog(e, SMQ_ELOG_FAIL, "client '%s' from %s: %s (%s); closing the connection", c->id,
	     c->peer, why, smq_rc_name(rc));
	e->stats.protocol_errors++;
	send_disconnect(e, c, rc);
	conn_close(e, c);
}

/* c is no longer s's connection (it closed, or a newer one took over):
 * handle the will, then keep the session offline or end it. */
static void detach(struct smq_engine *e, struct smq_econn *c, bool takeover)
{
	struct smq_session *s = c->s;
	struct smq_msg *will = smq_eng_more(c)->will;
	uint32_t delay = smq_eng_more(c)->will_delay_s;
	struct smq_session_rare *r = NULL;
	bool ends;

	if (will)
		c->more->will = NULL;
	unshare_log_id(c);
	c->s = NULL;
	if (c->counted) {
		c->counted = false;
		e->stats.connections--;
		e->stats.disconnects++;
	}
	if (!s) {
		smq_msg_unref(will);
		return;
	}
	s->conn = NULL;
	ends = !takeover && s->expiry_s == 0;
	if (will && c->will_off) {
		smq_msg_unref(will);	/* [MQTT-3.1.2-10] discarded after DISCONNECT */
	} else if (will && (delay == 0 || ends)) {
		publish_will(e, will, s->client_id);
	} else if (will && takeover) {
		smq_msg_unref(will);	/* delayed, and the session goes on [MQTT-3.1.3-9] */
	} else if (will && !(r = sx_get(s))) {
		smq_err("shard %u: out of memory delaying the will of client '%s': published now",
			e->shard, s->client_id);
		publish_will(e, will, s->client_id);
	} else if (will) {
		r->will = will;		/* published at the delay or the session end */
		r->will_delay_s = delay;	/* and stored with it */
		if (delay < s->expiry_s)
			smq_timer_arm(&e->timers, &r->will_timer, e->now + (uint64_t)delay * 1000u);
	}
	if (takeover)
		return;
	/* an expiring session got its rare part at CONNECT (on_connect()) */
	if (!ends && !(r = sx_get(s))) {
		smq_err("shard %u: out of memory keeping session '%s' offline: it ends now",
			e->shard, s->client_id);
		ends = true;
	}
	if (ends) {
		session_end(e, s);
		return;
	}
	r->offline_since_ms = e->now;
	if (s->expiry_s != UINT32_MAX)
		smq_timer_arm(&e->timers, &r->expiry_timer, e->now + (uint64_t)s->expiry_s * 1000u);
	if (smq_eng_stores(e, s))
		smq_eng_store_meta(e, s);	/* offline now, and the will it keeps */
}

void smq_engine_conn_closed(struct smq_engine *e, struct smq_econn *c, int err)
{
	if (c->s) {
		if (err && e->cfg->connection_messages)
			smq_notice("client '%s' from %s: connection lost (%s)", c->id, c->peer,
				   strerror(-err));
		else if (e->cfg->connection_messages)
			smq_info("client '%s' from %s disconnected", c->id, c->peer);
		detach(e, c, false);
	}
	conn_free(e, c);
}

void smq_engine_close_all(struct smq_engine *e, uint8_t reason)
{
	for (struct smq_econn *c = e->conns; c; c = c->next) {
		if (c->state == CS_CLOSING)
			continue;
		send_disconnect(e, c, reason);
		c->will_off = true;
		conn_close(e, c);
	}
}

/* ---- timers ----------------------------------------------------------- */

/* Keepalive: a client silent for 1.5 x its keepalive is disconnected and
 * its will published [MQTT-3.1.2-24]. Before CONNECT the same timer is the
 * connect timeout. Input does not re-arm the timer; the timer re-arms
 * itself for the deadline that the latest input implies. */
static void ka_fire(struct smq_timer *t, void *arg)
{
	struct smq_econn *c = container_of(t, struct smq_econn, ka);
	struct smq_engine *e = arg;
	uint64_t deadline;

	if (c->state == CS_NEW) {
		elog(e, SMQ_ELOG_TIMEOUT, "client from %s sent no CONNECT in time; closing",
		     c->peer);
		conn_close(e, c);
		return;
	}
	if (c->state == CS_EXCHANGE) {	/* no CONNACK can be due any more */
		elog(e, SMQ_ELOG_TIMEOUT, "client '%s' from %s did not finish authentication "
		     "in time; closing", c->id, c->peer);
		conn_close(e, c);
		return;
	}
	if (c->state != CS_LIVE || !c->keepalive)
		return;
	deadline = c->last_in_ms + (uint64_t)c->keepalive * 1500u;
	if (e->now < deadline) {
		smq_timer_arm(&e->timers, t, deadline);
		return;
	}
	elog(e, SMQ_ELOG_TIMEOUT, "client '%s' from %s: keepalive timeout (%u s); closing", c->id,
	     c->peer, c->keepalive);
	e->stats.keepalive_timeouts++;
	send_disconnect(e, c, SMQ_RC_KEEPALIVE_TIMEOUT);
	conn_close(e, c);
}

static void expiry_fire(struct smq_timer *t, void *arg)
{
	struct smq_session *s = container_of(t, struct smq_session_rare, expiry_timer)->s;
	struct smq_engine *e = arg;

	if (s->conn)
		return;
	smq_info("shard %u: session '%s' expired", e->shard, s->client_id);
	e->stats.sessions_expired++;
	session_end(e, s);
}

static void will_fire(struct smq_timer *t, void *arg)
{
	struct smq_session_rare *r = container_of(t, struct smq_session_rare, will_timer);
	struct smq_session *s = r->s;
	struct smq_engine *e = arg;
	struct smq_msg *will = r->will;

	r->will = NULL;
	if (will) {
		publish_will(e, will, s->client_id);
		if (smq_eng_stores(e, s))
			smq_eng_store_meta(e, s);
	}
}

/* ---- CONNECT ---------------------------------------------------------- */

/* A CONNACK refusing the connection, then close (no will: none is set). */
static void refuse(struct smq_engine *e, struct smq_econn *c, uint8_t rc, const char *why)
{
	struct smq_packet pkt = { .type = SMQ_CONNACK, .version = c->version, .reason = rc };

	elog(e, SMQ_ELOG_REFUSE, "client '%s' from %s refused: %s", c->id, c->peer, why);
	e->stats.connects_refused++;
	smq_eng_write(e, c, &pkt);
	conn_close(e, c);
}

/* An id for a zero-length client id [MQTT-3.1.3-6]: unique on this shard
 * and hashing to it, so the session never needs a hand-off. */
static void assign_id(struct smq_engine *e, char *buf, size_t cap)
{
	for (;;) {
		int n = snprintf(buf, cap, "%s%llx-%u-%llx", e->cfg->auto_id_prefix,
				 (unsigned long long)e->now, e->shard,
				 (unsigned long long)++e->serial);
		struct smq_str id = { (const uint8_t *)buf, (uint32_t)n };

		if (smq_engine_home_shard(id, e->nshards) == e->shard && !tab_find(e, id))
			return;
	}
}

/* The codes a refusal sends, per protocol generation. */
struct refusal {
	uint8_t v3, v5;
};

static const struct refusal R_ID = { SMQ_CONNACK_ID_REJECTED, SMQ_RC_CLIENT_ID_INVALID };
static const struct refusal R_AUTH = { SMQ_CONNACK_NOT_AUTHORIZED, SMQ_RC_NOT_AUTHORIZED };
static const struct refusal R_BUSY = { SMQ_CONNACK_UNAVAILABLE, SMQ_RC_SERVER_UNAVAILABLE };
/* mosquitto answers a wrong password with 5 in 3.1.1, not 4. */
static const struct refusal R_PASSWORD = { SMQ_CONNACK_NOT_AUTHORIZED,
					   SMQ_RC_BAD_USER_OR_PASSWORD };

static uint8_t refusal_code(const struct smq_econn *c, struct refusal r)
{
	return c->version == SMQ_V5 ? r.v5 : r.v3;
}

/* connect_check(): everything else passed, but the password must be
 * verified off the loop first. */
#define AUTH_PENDING 0xfe

/* Who the CONNECT says it is: the certificate's CN on a
 * use_identity_as_username listener, else the user name field. */
static struct smq_str connect_user(const struct smq_econn *c, const __typeof__(((struct smq_packet *)0)->connect) *cn,
				   bool *has)
{
	const char *cu = rare_of(c)->cert_user;

	if (cu) {
		*has = true;
		return (struct smq_str){ (const uint8_t *)cu, (uint32_t)strlen(cu) };
	}
	*has = cn->has_username;
	return cn->username;
}

/* Authentication: 0 or a CONNACK code. Fails closed: no bundle and
 * allow_anonymous false refuses a client without a user name, and a
 * client with one too (nothing could check its password). */
static uint8_t auth_check(struct smq_engine *e, struct smq_econn *c,
			  const __typeof__(((struct smq_packet *)0)->connect) *cn, const char **why)
{
	const struct econn_rare *cr = rare_of(c);
	enum smq_auth_result r;

	if (cr->cert_user) {
		*why = "the client certificate has no common name to use as user name";
		return cr->cert_user[0] ? 0 : refusal_code(c, R_AUTH);
	}
	*why = "anonymous access is not allowed";
	if (!e->auth)
		return e->cfg->allow_anonymous ? 0 : refusal_code(c, R_AUTH);
	if (cr->verdict >= 0) {		/* the answer of an off-loop check */
		r = cr->verdict ? SMQ_AUTH_OK : SMQ_AUTH_BAD_PASSWORD;
	} else if (cn->has_username && e->auth->pw && e->io.auth_check &&
		   !smq_auth_cache_hit(e->auth_cache, e->auth, (const char *)cn->username.p,
				       cn->username.len, cn->password.p,
				       cn->has_password ? cn->password.len : 0)) {
		return AUTH_PENDING;
	} else {
		r = smq_auth_login(e->auth, e->auth_cache, cn->has_username ? (const char *)cn->username.p : NULL,
			   cn->username.len, cn->password.p, cn->password.len, cn->has_password);
	}
	if (r == SMQ_AUTH_OK)
		return 0;
	if (r == SMQ_AUTH_BAD_PASSWORD) {
		*why = "bad user name or password";
		e->stats.auth_failures++;
		return refusal_code(c, R_PASSWORD);
	}
	*why = cn->has_username ? "no password_file to check the user name against, and "
				  "allow_anonymous is false"
				: "anonymous access is not allowed";
	return refusal_code(c, R_AUTH);
}

/* The will topic must be one the client could publish to itself. */
static bool will_allowed(struct smq_engine *e, struct smq_econn *c,
			 const __typeof__(((struct smq_packet *)0)->connect) *cn)
{
	const struct smq_acl_user *u;
	struct smq_acl_who who;
	bool has;
	struct smq_str user;

	if (!e->auth || !e->auth->acl)
		return true;
	user = connect_user(c, cn, &has);
	who = (struct smq_acl_who){ (const char *)user.p, user.len, has,
				    (const char *)cn->client_id.p, cn->client_id.len };
	u = smq_acl_user(e->auth->acl, &who);
	return smq_acl_can_publish(e->auth->acl, u, &who, (const char *)cn->will_topic.p,
				   cn->will_topic.len);
}

/* clientid_prefixes: @id (or, when empty, the id the broker would assign)
 * starts with the prefix. */
static bool id_prefix_ok(const struct smq_engine *e, struct smq_str id)
{
	const char *pre = e->cfg->clientid_prefixes;
	size_t n = strlen(pre);

	if (!n)
		return true;
	if (!id.len)
		return !strncmp(e->cfg->auto_id_prefix, pre, n);
	return id.len >= n && !memcmp(id.p, pre, n);
}

/* message_size_limit: a payload the broker does not accept. */
static bool too_big(const struct smq_engine *e, struct smq_str payload)
{
	return e->cfg->message_size_limit && payload.len > e->cfg->message_size_limit;
}

/* The rules a CONNECT must pass before a session is touched. Returns 0 or
 * a CONNACK code; *why says which rule failed. */
static uint8_t connect_check(struct smq_engine *e, struct smq_econn *c,
			     const struct smq_packet *pkt, const char **why)
{
	const __typeof__(pkt->connect) *cn = &pkt->connect;
	bool v5 = c->version == SMQ_V5;
	uint8_t rc, pending;

	*why = "client identifier rejected";
	if (!cn->client_id.len && (c->version == SMQ_V31 || !e->cfg->allow_zero_length_clientid))
		return refusal_code(c, R_ID);
	if (!cn->client_id.len && c->version == SMQ_V311 && !cn->clean)
		return refusal_code(c, R_ID);	/* [MQTT-3.1.3-8] */
	/* clientid_prefixes: mosquitto answers "not authorized"; an id the
	 * broker assigns starts with auto_id_prefix */
	*why = "client id lacks the clientid_prefixes prefix";
	if (!id_prefix_ok(e, cn->client_id))
		return refusal_code(c, R_AUTH);
	/* The password is checked last, so that a CONNECT refused for any
	 * other reason never costs a PBKDF2. */
	rc = auth_check(e, c, cn, why);
	if (rc && rc != AUTH_PENDING)
		return rc;
	pending = rc;
	*why = "unsupported authentication method";
	if (v5 && SMQ_HAS(&pkt->props, SMQ_PROP_AUTH_METHOD) &&
	    !smq_authmethod_find(pkt->props.auth_method))
		return SMQ_RC_BAD_AUTH_METHOD;	/* [MQTT-4.12.0-1] */
	if (!cn->will)
		return pending;
	*why = "will payload larger than message_size_limit";
	if (too_big(e, cn->will_payload))
		return v5 ? SMQ_RC_PACKET_TOO_LARGE : 0xff;
	*why = "invalid will topic";
	if (!smq_topic_name_valid(cn->will_topic))
		return v5 ? SMQ_RC_TOPIC_NAME_INVALID : 0xff;
	*why = "the ACL does not allow publishing to the will topic";
	if (!will_allowed(e, c, cn))
		return refusal_code(c, R_AUTH);
	*why = "will QoS above the maximum";
	if (v5 && cn->will_qos > e->cfg->max_qos)
		return SMQ_RC_QOS_NOT_SUPPORTED;	/* [MQTT-3.2.2-12] */
	*why = "retained will but retain is not available";
	if (v5 && cn->will_retain && !e->cfg->retain_available)
		return SMQ_RC_RETAIN_NOT_SUPPORTED;	/* [MQTT-3.2.2-13] */
	return pending;
}

/* Build a struct smq_msg from a topic, payload and 5.0 properties. */
static struct smq_msg *msg_build(struct smq_engine *e, struct smq_econn *c, struct smq_str topic,
				 struct smq_str payload, const struct smq_props *props, uint8_t qos,
				 bool retain)
{
	uint8_t stack[512], *buf = stack;
	long plen = c->version == SMQ_V5 ? smq_msg_props_encode(props, NULL, 0) : 0;
	struct smq_msg_spec sp = {
		.topic = topic, .payload = payload, .qos = qos, .retain = retain,
		.created_ms = e->now, .created_ns = e->now_ns, .split = e->split,
	};
	struct smq_msg *m;

	if (plen > (long)sizeof(stack) && !(buf = malloc((size_t)plen)))
		return NULL;
	if (plen > 0) {
		smq_msg_props_encode(props, buf, (size_t)plen);
		sp.props = (struct smq_str){ buf, (uint32_t)plen };
	}
	if (c->version == SMQ_V5 && SMQ_HAS(props, SMQ_PROP_MESSAGE_EXPIRY)) {
		sp.has_expiry = true;
		sp.expiry_s = props->message_expiry;
	}
	m = smq_msg_new(&sp);
	if (buf != stack)
		free(buf);
	return m;
}

static int make_will(struct smq_engine *e, struct smq_econn *c, const struct smq_packet *pkt)
{
	const __typeof__(pkt->connect) *cn = &pkt->connect;
	uint8_t qos = cn->will_qos;
	struct econn_more *m;

	if (!cn->will)
		return 0;
	m = smq_eng_more_mut(c);
	if (!m)
		return -ENOMEM;
	if (qos > e->cfg->max_qos)
		qos = (uint8_t)e->cfg->max_qos;	/* 3.x cannot say so: downgrade */
	m->will = msg_build(e, c, cn->will_topic, cn->will_payload, &cn->will_props, qos,
			    cn->will_retain && e->cfg->retain_available);
	if (!m->will)
		return -ENOMEM;
	if (c->version == SMQ_V5 && SMQ_HAS(&cn->will_props, SMQ_PROP_WILL_DELAY))
		m->will_delay_s = cn->will_props.will_delay;
	return 0;
}

/* A second connection for a live session's client id: the old one goes
 * [MQTT-3.1.4-2], its will is published (5.0: unless delayed). */
static void takeover(struct smq_engine *e, struct smq_econn *old)
{
	e->stats.takeovers++;
	elog(e, SMQ_ELOG_TAKEOVER, "client '%s' from %s: taken over by a new connection; "
	     "closing the old one", old->id, old->peer);
	send_disconnect(e, old, SMQ_RC_SESSION_TAKEN_OVER);
	detach(e, old, true);
	conn_close(e, old);
}

/* Timers fire from smq_engine_tick(), but input (a reconnect on this
 * shard, a hand-off from another) may be processed before the tick that
 * would have fired a due one. An offline session must never be resumed
 * past its deadline: fire what is due now, as the tick would have. Returns
 * @s, or NULL when it expired. */
static struct smq_session *overdue(struct smq_engine *e, struct smq_session *s)
{
	struct smq_session_rare *r = s->rare;

	if (s->conn || !r)
		return s;	/* no rare part: no timer either */
	if (smq_timer_armed(&r->will_timer) && r->will_timer.expire_ms <= e->now) {
		smq_timer_cancel(&r->will_timer);
		will_fire(&r->will_timer, e);
	}
	if (smq_timer_armed(&r->expiry_timer) && r->expiry_timer.expire_ms <= e->now) {
		smq_timer_cancel(&r->expiry_timer);
		expiry_fire(&r->expiry_timer, e);	/* publishes a will still waiting */
		return NULL;
	}
	return s;
}

/* Find or create the session for @id, honouring clean session / clean
 * start. Sets *present. NULL on ENOMEM. */
static struct smq_session *session_for(struct smq_engine *e, struct smq_str id, bool clean,
				       bool *present)
{
	struct smq_session *s = tab_find(e, id);

	if (s)
		s = overdue(e, s);
	if (s && s->conn)
		takeover(e, s->conn);
	if (s && s->rare) {
		/* a reconnect before the will delay ran out: no will [MQTT-3.1.3-9] */
		smq_timer_cancel(&s->rare->will_timer);
		smq_msg_unref(s->rare->will);
		s->rare->will = NULL;
		smq_timer_cancel(&s->rare->expiry_timer);
	}
	if (s && clean) {
		session_end(e, s);	/* [MQTT-3.1.2-6] */
		s = NULL;
	}
	*present = s != NULL;
	return s ? s : session_new(e, id);
}

static uint16_t keepalive_for(const struct smq_engine *e, const struct smq_econn *c, uint16_t ka,
			      bool *announce)
{
	uint16_t max = (uint16_t)e->cfg->max_keepalive;

	*announce = false;
	if (!max)
		return ka;
	/* 3.1.1 cannot tell the client: a keepalive above the maximum is
	 * accepted and the maximum enforced. 5.0 says so in CONNACK. */
	if (ka > max || (c->version == SMQ_V5 && !ka)) {
		*announce = c->version == SMQ_V5;
		return max;
	}
	return ka;
}

static int connack(struct smq_engine *e, struct smq_econn *c, bool present, bool assigned,
		    bool announce_ka)
{
	struct smq_packet pkt = { .type = SMQ_CONNACK, .version = c->version };
	struct smq_props *p = &pkt.props;
	const struct smq_config *cfg = e->cfg;

	pkt.connack.session_present = present;	/* [MQTT-3.2.2-1] [MQTT-3.2.2-2] */
	if (c->version == SMQ_V5) {
		if (assigned) {
			SMQ_SET(p, SMQ_PROP_ASSIGNED_CLIENT_ID);
			p->assigned_client_id = (struct smq_str){
				(const uint8_t *)c->s->client_id, c->s->id_len };
		}
		if (announce_ka) {
			SMQ_SET(p, SMQ_PROP_SERVER_KEEP_ALIVE);
			p->server_keep_alive = c->keepalive;
		}
		if (cfg->max_inflight_messages < 65535) {
			SMQ_SET(p, SMQ_PROP_RECEIVE_MAX);
			p->receive_max = (uint16_t)cfg->max_inflight_messages;
		}
		if (cfg->max_qos < 2) {
			SMQ_SET(p, SMQ_PROP_MAX_QOS);
			p->max_qos = (uint8_t)cfg->max_qos;
		}
		if (!cfg->retain_available) {
			SMQ_SET(p, SMQ_PROP_RETAIN_AVAILABLE);
			p->retain_available = 0;
		}
		if (cfg->max_packet_size && cfg->max_packet_size < SMQ_MAX_PACKET) {
			SMQ_SET(p, SMQ_PROP_MAX_PACKET_SIZE);
			p->max_packet_size = (uint32_t)cfg->max_packet_size;
		}
		/* the client may alias topics up to this [MQTT-3.2.2-17];
		 * absent means 0, none (3.2.2.3.8) */
		if (c->alias_in_max) {
			SMQ_SET(p, SMQ_PROP_TOPIC_ALIAS_MAX);
			p->topic_alias_max = c->alias_in_max;
		}
		/* Shared Subscription Available: left out, which means 1 (5.0 3.2.2.3) */
		/* the CONNECT's method, and only then [MQTT-4.12.0-5] [MQTT-4.12.0-6] */
		if (rare_of(c)->am) {
			const struct econn_rare *r = c->rare;

			SMQ_SET(p, SMQ_PROP_AUTH_METHOD);
			p->auth_method = (struct smq_str){ (const uint8_t *)r->am->name,
							   (uint32_t)strlen(r->am->name) };
			if (r->am_reply.len) {
				SMQ_SET(p, SMQ_PROP_AUTH_DATA);
				p->auth_data = r->am_reply;
			}
		}
	}
	return smq_eng_write(e, c, &pkt);
}

/* Session Expiry: 3.x clean=0 keeps the session persistent_client_expiration
 * seconds (0 = forever); 5.0 uses the client's interval. */
static uint32_t expiry_for(const struct smq_engine *e, const struct smq_econn *c,
			   const struct smq_packet *pkt)
{
	uint64_t pce = e->cfg->persistent_client_expiration;

	if (c->version == SMQ_V5) {
		uint32_t v = SMQ_HAS(&pkt->props, SMQ_PROP_SESSION_EXPIRY) ?
				     pkt->props.session_expiry : 0;

		return v;	/* 0xFFFFFFFF == UINT32_MAX: never expires */
	}
	if (pkt->connect.clean)
		return 0;
	return pce && pce < UINT32_MAX ? (uint32_t)pce : UINT32_MAX;
}

/* Tie c and s together and apply the CONNECT's session and flow settings;
 * c becomes LIVE. */
static void attach(struct smq_engine *e, struct smq_econn *c, struct smq_session *s,
		   const struct smq_packet *pkt)
{
	s->conn = c;
	c->s = s;
	share_log_id(c);
	s->version = c->version;
	s->clean = pkt->connect.clean;
	s->expiry_s = expiry_for(e, c, pkt);
	if (c->version == SMQ_V5) {
		if (SMQ_HAS(&pkt->props, SMQ_PROP_RECEIVE_MAX))
			c->recv_max = pkt->props.receive_max;
		if (SMQ_HAS(&pkt->props, SMQ_PROP_MAX_PACKET_SIZE))
			c->max_out = pkt->props.max_packet_size;
		if (SMQ_HAS(&pkt->props, SMQ_PROP_TOPIC_ALIAS_MAX))
			c->alias_out_max = pkt->props.topic_alias_max < SMQ_ALIAS_OUT_MAX ?
						   pkt->props.topic_alias_max : SMQ_ALIAS_OUT_MAX;
	}
	c->state = CS_LIVE;
	c->counted = true;
	e->stats.connections++;
	e->stats.connects++;
	smq_timer_cancel(&c->ka);	/* the connect timeout */
	if (c->keepalive)
		smq_timer_arm(&e->timers, &c->ka, e->now + (uint64_t)c->keepalive * 1500u);
}

/* Keep the CONNECT, re-encoded, in c->rare->connect_copy while the
 * connection waits (a password checked off the loop, an enhanced
 * authentication exchange). 0 or -ENOMEM. */
static int keep_connect(struct smq_econn *c, const struct smq_packet *pkt)
{
	struct econn_rare *r = rare_mut(c);
	long n = smq_encoded_size(pkt);

	if (!r)
		return -ENOMEM;
	r->connect_copy = n > 0 ? malloc((size_t)n) : NULL;
	if (!r->connect_copy || smq_encode(pkt, r->connect_copy, (size_t)n) != n) {
		free(r->connect_copy);
		r->connect_copy = NULL;
		return -ENOMEM;
	}
	r->connect_len = (uint32_t)n;
	return 0;
}

/* Hand the password to the I/O layer's checker and hold the connection
 * (its CONNECT re-encoded, later input in c->rare->held) until the verdict. */
static void park_connect(struct smq_engine *e, struct smq_econn *c, const struct smq_packet *pkt)
{
	if (keep_connect(c, pkt)) {
		refuse(e, c, refusal_code(c, R_BUSY), "out of memory");
		return;
	}
	c->state = CS_AUTH;
	c->rare->auth_gen = e->auth->gen;	/* set: keep_connect() succeeded */
	e->io.auth_check(e->io.ctx, c, e->auth, pkt->connect.username,
			 pkt->connect.has_password ? pkt->connect.password : (struct smq_str){ 0 });
}

/* ---- 5.0 enhanced authentication (section 4.12) ------------------------ */

static bool name_is(struct smq_str a, const char *name)
{
	return a.len == strlen(name) && !memcmp(a.p, name, a.len);
}

static void am_release(struct smq_econn *c)
{
	struct econn_rare *r = c->rare;

	if (!r)
		return;		/* no method, nothing to release */
	if (r->am && r->am->free)
		r->am->free(r->am_state);
	r->am_state = NULL;
	r->am_reply = (struct smq_str){ 0 };
}

/* AUTH with @rc, the connection's method and the method's last reply:
 * every AUTH carries the CONNECT's method [MQTT-4.12.0-5]. */
static void send_auth(struct smq_engine *e, struct smq_econn *c, uint8_t rc)
{
	struct smq_packet pkt = { .type = SMQ_AUTH, .version = SMQ_V5, .reason = rc };
	const struct econn_rare *r = c->rare;	/* set: c has a method */

	SMQ_SET(&pkt.props, SMQ_PROP_AUTH_METHOD);
	pkt.props.auth_method = (struct smq_str){ (const uint8_t *)r->am->name,
						  (uint32_t)strlen(r->am->name) };
	if (r->am_reply.len) {
		SMQ_SET(&pkt.props, SMQ_PROP_AUTH_DATA);
		pkt.props.auth_data = r->am_reply;
	}
	if (smq_eng_write(e, c, &pkt))
		conn_fail(e, c, SMQ_RC_UNSPECIFIED, "AUTH could not be sent");
}

/* The CONNECT named a method: run it on the CONNECT's Authentication Data.
 * Returns true when the CONNECT goes on now (no method was named, or the
 * method said SUCCESS at once), false when it waits for the client's AUTH
 * (CS_EXCHANGE) or was refused. */
static bool exchange_start(struct smq_engine *e, struct smq_econn *c, const struct smq_packet *pkt)
{
	const struct smq_props *p = &pkt->props;
	struct smq_authm_who who = { .client_id = pkt->connect.client_id };
	enum smq_authm_verdict v;
	struct econn_rare *r;

	if (c->version != SMQ_V5 || !SMQ_HAS(p, SMQ_PROP_AUTH_METHOD) || rare_of(c)->am_ok)
		return true;
	r = rare_mut(c);
	if (!r) {
		refuse(e, c, SMQ_RC_SERVER_UNAVAILABLE, "out of memory");
		return false;
	}
	r->am = smq_authmethod_find(p->auth_method);	/* connect_check() found it */
	if (!r->am) {
		refuse(e, c, SMQ_RC_BAD_AUTH_METHOD, "unsupported authentication method");
		return false;
	}
	who.user = connect_user(c, &pkt->connect, &who.has_user);
	am_release(c);
	v = r->am->start(&r->am_state, &who,
			 SMQ_HAS(p, SMQ_PROP_AUTH_DATA) ? p->auth_data : (struct smq_str){ 0 },
			 &r->am_reply);
	if (v == SMQ_AUTHM_SUCCESS) {
		r->am_ok = true;
		return true;
	}
	if (v != SMQ_AUTHM_CONTINUE) {
		e->stats.auth_failures++;
		refuse(e, c, SMQ_RC_NOT_AUTHORIZED, "enhanced authentication failed");
		return false;	/* [MQTT-4.12.0-4] */
	}
	if (keep_connect(c, pkt)) {
		refuse(e, c, SMQ_RC_SERVER_UNAVAILABLE, "out of memory");
		return false;
	}
	c->state = CS_EXCHANGE;
	send_auth(e, c, SMQ_RC_CONTINUE_AUTH);	/* [MQTT-4.12.0-2] */
	return false;
}

static void on_connect(struct smq_engine *e, struct smq_econn *c, const struct smq_packet *pkt);

/* The method accepted the client: the parked CONNECT goes on as if it had
 * just arrived (every check again: the session table may have changed). */
static void exchange_done(struct smq_engine *e, struct smq_econn *c)
{
	struct econn_rare *r = c->rare;	/* set: CS_EXCHANGE parked the CONNECT there */
	uint8_t *copy = r->connect_copy;
	struct smq_packet pkt;

	r->connect_copy = NULL;
	c->state = CS_NEW;
	r->am_ok = true;
	if (smq_decode(copy, r->connect_len, 0, &pkt) || pkt.type != SMQ_CONNECT)
		conn_fail(e, c, SMQ_RC_UNSPECIFIED, "internal error: the held CONNECT");
	else
		on_connect(e, c, &pkt);
	free(copy);
}

/* A broken rule of the exchange. Before CONNACK no DISCONNECT may be sent
 * [MQTT-3.14.0-1]: a CONNACK 0x82 says it. */
static void exchange_error(struct smq_engine *e, struct smq_econn *c, const char *why)
{
	if (c->state != CS_EXCHANGE) {
		conn_fail(e, c, SMQ_RC_PROTOCOL_ERROR, why);
		return;
	}
	e->stats.protocol_errors++;
	refuse(e, c, SMQ_RC_PROTOCOL_ERROR, why);
}

/* A re-authentication ended badly: DISCONNECT with @rc, then close
 * [MQTT-4.12.1-2]. */
static void reauth_refused(struct smq_engine *e, struct smq_econn *c, uint8_t rc, const char *why)
{
	elog(e, SMQ_ELOG_REFUSE, "client '%s' from %s: %s; closing the connection", c->id,
	     c->peer, why);
	e->stats.auth_failures++;
	send_disconnect(e, c, rc);
	conn_close(e, c);
}

/* Which rule of section 4.12 an AUTH breaks, or NULL. */
static const char *auth_violation(const struct smq_econn *c, const struct smq_packet *pkt)
{
	const struct econn_rare *r = rare_of(c);
	bool under_way = c->state == CS_EXCHANGE || r->am_reauth;

	if (!r->am)
		return "AUTH without an authentication method in CONNECT";	/* [MQTT-4.12.0-7] */
	if (!SMQ_HAS(&pkt->props, SMQ_PROP_AUTH_METHOD) ||
	    !name_is(pkt->props.auth_method, r->am->name))
		return "AUTH with another authentication method than the CONNECT's";
	if (pkt->reason == SMQ_RC_REAUTHENTICATE && under_way)
		return "re-authentication while an authentication is under way";
	if (pkt->reason == SMQ_RC_CONTINUE_AUTH && !under_way)
		return "AUTH to continue when no authentication is under way";
	if (pkt->reason != SMQ_RC_CONTINUE_AUTH && pkt->reason != SMQ_RC_REAUTHENTICATE)
		return "AUTH with reason Success from a client";	/* [MQTT-4.12.0-3] */
	return NULL;
}

/* AUTH from the client: the next step of the CONNECT's exchange
 * (CS_EXCHANGE), or a re-authentication of a LIVE connection. */
static void on_auth(struct smq_engine *e, struct smq_econn *c, const struct smq_packet *pkt)
{
	const struct smq_props *p = &pkt->props;
	struct smq_str data = SMQ_HAS(p, SMQ_PROP_AUTH_DATA) ? p->auth_data : (struct smq_str){ 0 };
	const char *why = auth_violation(c, pkt);
	struct econn_rare *r = c->rare;	/* set when why is NULL: c has a method */
	enum smq_authm_verdict v;

	if (why) {
		exchange_error(e, c, why);
		return;
	}
	if (pkt->reason == SMQ_RC_REAUTHENTICATE) {
		struct smq_authm_who who = {
			.client_id = { (const uint8_t *)c->s->client_id, c->s->id_len },
			.user = { (const uint8_t *)c->s->user, c->s->user_len },
			.has_user = c->s->user != NULL, .reauth = true,
		};

		if (!r->am->reauth) {
			reauth_refused(e, c, SMQ_RC_NOT_AUTHORIZED,
				       "re-authentication, which its method does not support");
			return;
		}
		am_release(c);
		r->am_reauth = true;
		v = r->am->start(&r->am_state, &who, data, &r->am_reply);
	} else {
		v = r->am->step(r->am_state, data, &r->am_reply);
	}
	if (v == SMQ_AUTHM_CONTINUE) {
		send_auth(e, c, SMQ_RC_CONTINUE_AUTH);
	} else if (c->state == CS_EXCHANGE && v == SMQ_AUTHM_SUCCESS) {
		exchange_done(e, c);
	} else if (c->state == CS_EXCHANGE) {
		e->stats.auth_failures++;
		refuse(e, c, SMQ_RC_NOT_AUTHORIZED, "enhanced authentication failed");
	} else if (v == SMQ_AUTHM_SUCCESS) {
		send_auth(e, c, SMQ_RC_SUCCESS);
		r->am_reauth = false;
		am_release(c);
	} else {
		reauth_refused(e, c, SMQ_RC_NOT_AUTHORIZED, "re-authentication failed");
	}
}

static void on_connect(struct smq_engine *e, struct smq_econn *c, const struct smq_packet *pkt)
{
	const __typeof__(pkt->connect) *cn = &pkt->connect;
	struct smq_str id = cn->client_id;
	char idbuf[SMQ_CONFIG_ID_MAX + 64];
	bool present, announce_ka, assigned = !id.len, has_user;
	struct smq_str user;
	const char *why;
	uint8_t rc;
	struct smq_session *s;

	if (c->state != CS_NEW) {
		conn_fail(e, c, SMQ_RC_PROTOCOL_ERROR, "second CONNECT");	/* [MQTT-3.1.0-2] */
		return;
	}
	c->version = pkt->version;
	set_log_id(c, id);
	rc = connect_check(e, c, pkt, &why);
	if (rc == AUTH_PENDING) {
		park_connect(e, c, pkt);
		return;
	}
	if (rc == 0xff) {
		conn_fail(e, c, SMQ_RC_MALFORMED, why);
		return;
	}
	if (rc) {
		refuse(e, c, rc, why);
		return;
	}
	if (!exchange_start(e, c, pkt))
		return;
	if (assigned) {
		assign_id(e, idbuf, sizeof(idbuf));
		id = (struct smq_str){ (const uint8_t *)idbuf, (uint32_t)strlen(idbuf) };
		set_log_id(c, id);
	}
	if (make_will(e, c, pkt) || !(s = session_for(e, id, cn->clean, &present))) {
		refuse(e, c, refusal_code(c, R_BUSY), "out of memory");
		return;
	}
	/* a session that may outlive c, or is stored, needs its rare part:
	 * get it now, when a refusal is still possible */
	if ((e->persist || expiry_for(e, c, pkt)) && !sx_get(s)) {
		refuse(e, c, refusal_code(c, R_BUSY), "out of memory");
		return;
	}
	user = connect_user(c, cn, &has_user);
	if (smq_eng_set_user(s, user, has_user)) {
		refuse(e, c, refusal_code(c, R_BUSY), "out of memory");
		return;
	}
	c->keepalive = keepalive_for(e, c, cn->keepalive, &announce_ka);
	c->alias_in_max = (uint16_t)e->cfg->max_topic_alias;
	attach(e, c, s, pkt);
	if (connack(e, c, present, assigned && c->version == SMQ_V5, announce_ka) == -EMSGSIZE) {
		/* Nothing else may come first [MQTT-3.2.0-1] and no DISCONNECT
		 * before a CONNACK [MQTT-3.14.0-1]: the client cannot be served. */
		smq_notice("client '%s' from %s: its Maximum Packet Size (%u) is smaller than the "
			   "CONNACK; closing", c->id, c->peer, c->max_out);
		c->will_off = true;
		conn_close(e, c);
		return;
	}
	am_release(c);	/* the method's state served the CONNACK; c->rare->am stays */
	smq_eng_store_session(e, s);
	if (e->cfg->connection_messages)
		smq_notice("client '%s' connected from %s (MQTT %s, clean %d, keepalive %u%s)",
			   c->id, c->peer,
			   c->version == SMQ_V5 ? "5.0" : c->version == SMQ_V311 ? "3.1.1" : "3.1",
			   cn->clean, c->keepalive, present ? ", session resumed" : "");
	if (present)
		smq_eng_resend(e, c);	/* [MQTT-4.4.0-1] */
}

/* ---- PUBLISH and acknowledgements ------------------------------------- */

static bool is_sys(struct smq_str topic)
{
	return topic.len >= 4 && !memcmp(topic.p, "$SYS", 4) && (topic.len == 4 || topic.p[4] == '/');
}

bool smq_eng_is_sys(struct smq_str topic)
{
	return is_sys(topic);
}

/* The checks of an inbound PUBLISH; returns 0 or a reason code, *why set. */
static uint8_t publish_check(struct smq_engine *e, struct smq_econn *c,
			     const struct smq_packet *pkt, const char **why)
{
	const struct smq_props *p = &pkt->props;
	bool v5 = c->version == SMQ_V5;

	*why = "subscription identifier in PUBLISH";
	if (v5 && SMQ_HAS(p, SMQ_PROP_SUBSCRIPTION_ID))
		return SMQ_RC_PROTOCOL_ERROR;
	*why = "invalid topic name in PUBLISH";
	if (!smq_topic_name_valid(pkt->publish.topic))	/* [MQTT-3.3.2-2] */
		return v5 ? SMQ_RC_TOPIC_NAME_INVALID : SMQ_RC_MALFORMED;
	*why = "PUBLISH QoS above the maximum";
	if (pkt->publish.qos > e->cfg->max_qos)
		return SMQ_RC_QOS_NOT_SUPPORTED;	/* [MQTT-3.2.2-11] */
	*why = "retained PUBLISH but retain is not available";
	if (pkt->publish.retain && !e->cfg->retain_available)
		return SMQ_RC_RETAIN_NOT_SUPPORTED;	/* [MQTT-3.2.2-14] */
	return 0;
}

/* Route one accepted PUBLISH (and store it if retained). Returns the
 * reason code for the PUBACK/PUBREC: 0, or 0x87 when the topic is $SYS or
 * the ACL refuses it (the message is dropped either way; a 3.x client
 * cannot be told and gets a plain acknowledgement, as mosquitto does). */
static uint8_t publish_in(struct smq_engine *e, struct smq_econn *c,
			  const struct smq_packet *pkt)
{
	const __typeof__(pkt->publish) *pb = &pkt->publish;
	struct smq_msg *m;

	e->stats.msgs_in++;
	if (is_sys(pb->topic)) {
		e->stats.dropped_sys++;
		smq_info("client '%s' from %s: PUBLISH to $SYS topic dropped", c->id, c->peer);
		return SMQ_RC_NOT_AUTHORIZED;
	}
	if (!smq_eng_may_publish(e, c->s, pb->topic)) {
		e->stats.denied_publish++;
		if (smq_log_due(&e->deny_log_ms, e->now, 1000))
			smq_notice("client '%s' from %s: PUBLISH to '%.*s' denied by the ACL "
				   "(logged at most once a second)", c->id, c->peer,
				   (int)(pb->topic.len > 200 ? 200 : pb->topic.len), pb->topic.p);
		return SMQ_RC_NOT_AUTHORIZED;
	}
	m = msg_build(e, c, pb->topic, pb->payload, &pkt->props, pb->qos, pb->retain);
	if (!m) {
		/* refused, not acknowledged: on_publish tells the client */
		e->stats.dropped_nomem++;
		smq_eng_log_drop(e, c->s, "out of memory for an inbound message");
		return SMQ_RC_UNSPECIFIED;
	}
	if (pb->qos == 2 && smq_eng_stores(e, c->s)) {
		/* Before it is shared. A re-send (DUP) that finds no stored id
		 * may still have copies from before a crash that lost the id on
		 * this shard but not theirs elsewhere: same uid, and sessions
		 * that hold it skip it. */
		m->uid = smq_eng_inbound_uid(c->s, pkt->packet_id, pb->topic, pb->payload);
		m->redo = pb->dup;
		smq_eng_store_inbound_msg(e, c->s, pkt->packet_id, m);
	}
	if (pb->retain) {
		int ret = retain_set(e, m);	/* [MQTT-3.3.1-5] */

		if (ret)
			smq_eng_log_drop(e, c->s, ret == -ENOSPC ? "retained store full"
								  : "out of memory retaining");
	}
	smq_eng_route(e, m, c->s);
	smq_msg_unref(m);
	return 0;
}

/* 5.0 Topic Alias from the client (section 3.3.2.3.4): a PUBLISH with a
 * topic and an alias sets the alias, one with an empty topic uses it.
 * Returns 0 with *topic the topic to publish to, or a reason code. */
static uint8_t alias_in(struct smq_econn *c, const struct smq_packet *pkt, struct smq_str *topic,
			const char **why)
{
	uint16_t a = pkt->props.topic_alias;
	struct econn_more *m;
	struct smq_alias *al;

	*topic = pkt->publish.topic;
	if (c->version != SMQ_V5 || !SMQ_HAS(&pkt->props, SMQ_PROP_TOPIC_ALIAS))
		return 0;
	*why = "topic alias 0 or above the maximum announced in CONNACK";
	if (!a || a > c->alias_in_max)
		return SMQ_RC_TOPIC_ALIAS_INVALID;	/* [MQTT-3.2.2-17] [MQTT-3.3.2-9] */
	m = smq_eng_more_mut(c);
	if (m && !m->alias_in)
		m->alias_in = calloc(c->alias_in_max, sizeof(*m->alias_in));
	if (!m || !m->alias_in) {
		*why = "out of memory";
		return SMQ_RC_UNSPECIFIED;
	}
	al = &m->alias_in[a - 1];
	if (!topic->len) {
		*why = "topic alias not set before its use";
		if (!al->topic)
			return SMQ_RC_TOPIC_ALIAS_INVALID;	/* a Protocol Error by 3.3.2.3.4 */
		*topic = (struct smq_str){ al->topic, al->len };
		return 0;
	}
	/* invalid topics are refused by publish_check(); storing one first is
	 * harmless since the connection closes */
	if (al->len != topic->len || !al->topic || memcmp(al->topic, topic->p, topic->len)) {
		uint8_t *p = malloc(topic->len);

		if (!p) {
			*why = "out of memory";
			return SMQ_RC_UNSPECIFIED;
		}
		memcpy(p, topic->p, topic->len);
		free(al->topic);
		al->topic = p;
		al->len = (uint16_t)topic->len;
	}
	return 0;
}

/* Payload Format Indicator 1 says UTF-8: check it (5.0 3.3.2.3.2). */
static bool payload_format_ok(const struct smq_econn *c, const struct smq_props *p,
			      struct smq_str payload)
{
	return c->version != SMQ_V5 || !SMQ_HAS(p, SMQ_PROP_PAYLOAD_FORMAT) ||
	       !p->payload_format || smq_utf8_valid(payload.p, payload.len);
}

/* The store is full: a QoS 1/2 message would be acknowledged without
 * being kept. 5.0 says so (0x97); 3.x can only close, and its client
 * publishes again after reconnecting. */
static void store_refuse(struct smq_engine *e, struct smq_econn *c, const struct smq_packet *pkt)
{
	e->stats.store_refused++;
	if (c->version != SMQ_V5) {
		elog(e, SMQ_ELOG_FAIL, "client '%s' from %s: QoS %u PUBLISH while the store is "
		     "full; closing", c->id, c->peer, pkt->publish.qos);
		conn_close(e, c);
		return;
	}
	smq_eng_ack(e, c, pkt->publish.qos == 1 ? SMQ_PUBACK : SMQ_PUBREC, pkt->packet_id,
		    SMQ_RC_QUOTA_EXCEEDED);
}

/* The session's restored message for inbound id @pid, unlinked, or NULL.
 * Only for a session with restored messages (s->rare->in_pend). */
static struct smq_msg *pending_take(struct smq_session *s, uint16_t pid)
{
	for (struct smq_inpend **pp = &s->rare->in_pend; *pp; pp = &(*pp)->next) {
		struct smq_inpend *p = *pp;
		struct smq_msg *m;

		if (p->pid != pid)
			continue;
		*pp = p->next;
		m = p->msg;
		free(p);
		return m;
	}
	return NULL;
}

/* The publisher re-sent a QoS 2 PUBLISH whose routes were not known to be
 * durable when the broker stopped: route the stored copy again; sessions
 * that kept it skip it (its uid), so each gets it once. */
static void reroute(struct smq_engine *e, struct smq_econn *c, uint16_t pid)
{
	struct smq_msg *m = pending_take(c->s, pid);

	if (!m)
		return;
	smq_info("client '%s': re-routing QoS 2 message %u, stored before a restart", c->id,
		 pid);
	smq_eng_route(e, m, c->s);
	smq_msg_unref(m);
}

static void on_publish(struct smq_engine *e, struct smq_econn *c, const struct smq_packet *in)
{
	const char *why;
	struct smq_packet aliased;
	const struct smq_packet *pkt = in;
	struct smq_str topic;
	uint8_t rc = alias_in(c, in, &topic, &why);
	uint16_t pid = in->packet_id;
	uint8_t ack = 0;
	int fresh = 1;

	if (!rc && topic.p != in->publish.topic.p) {
		aliased = *in;
		aliased.publish.topic = topic;
		pkt = &aliased;
	}
	if (!rc)
		rc = publish_check(e, c, pkt, &why);
	if (rc) {
		conn_fail(e, c, rc, why);
		return;
	}
	if (pkt->publish.qos && e->store_full) {
		store_refuse(e, c, pkt);
		return;
	}
	if (pkt->publish.qos == 2) {
		if (c->version == SMQ_V5 && !smq_session_in_has(c->s, pid) &&
		    smq_session_in_count(c->s) >= (uint32_t)e->cfg->max_inflight_messages) {
			conn_fail(e, c, SMQ_RC_RECEIVE_MAX_EXCEEDED, "receive maximum exceeded");
			return;	/* [MQTT-3.3.4-9] */
		}
		fresh = smq_session_in_publish(c->s, pid);
		if (fresh < 0) {
			conn_fail(e, c, SMQ_RC_UNSPECIFIED, "out of memory");
			return;
		}
		if (fresh && smq_eng_stores(e, c->s))
			smq_eng_store_inbound(e, c->s, pid, true);
	}
	/* a QoS 2 re-send before PUBREL is acknowledged, not delivered
	 * again [MQTT-4.3.3-2] */
	if (fresh && !payload_format_ok(c, &pkt->props, pkt->publish.payload)) {
		/* 5.0 section 3.3.2.3.2: the receiver may refuse it with 0x99 */
		e->stats.msgs_in++;
		e->stats.dropped_bad_payload++;
		smq_info("client '%s' from %s: PUBLISH with Payload Format Indicator 1 is not "
			 "UTF-8; refused", c->id, c->peer);
		ack = SMQ_RC_PAYLOAD_FORMAT_INVALID;
	} else if (fresh && too_big(e, pkt->publish.payload)) {
		/* mosquitto: not delivered, the QoS flow completes, a 5.0
		 * client is told 0x83 */
		e->stats.msgs_in++;
		if (smq_log_due(&e->big_log_ms, e->now, 1000))
			smq_notice("client '%s' from %s: PUBLISH of %u bytes is larger than "
				   "message_size_limit; dropped (logged at most once a second)",
				   c->id, c->peer, pkt->publish.payload.len);
		ack = SMQ_RC_IMPL_SPECIFIC;
	} else if (fresh) {
		ack = publish_in(e, c, pkt);
		if (ack == SMQ_RC_UNSPECIFIED && pkt->publish.qos) {
			/* out of memory: never acknowledge what was not taken. The
			 * id is free again, so the re-send counts as new. */
			if (pkt->publish.qos == 2)
				smq_session_in_release(c->s, pid);
			if (c->version != SMQ_V5) {
				conn_close(e, c);	/* a 3.x client can only re-send */
				return;
			}
		}
	} else if (c->s->rare && c->s->rare->in_pend) {
		reroute(e, c, pid);
	}
	if (c->version != SMQ_V5)
		ack = 0;
	/* A PUBREC with a failure code ends the QoS 2 exchange: no PUBREL
	 * follows, so the id is not kept (4.3.3). */
	if (ack && pkt->publish.qos == 2 && smq_session_in_release(c->s, pid) == 0 &&
	    smq_eng_stores(e, c->s))
		smq_eng_store_inbound(e, c->s, pid, false);
	/* with persistence, held until what the message became is durable */
	if (pkt->publish.qos == 1)
		smq_eng_ack(e, c, SMQ_PUBACK, pid, ack);	/* [MQTT-4.3.2-2] */
	else if (pkt->publish.qos == 2)
		smq_eng_ack(e, c, SMQ_PUBREC, pid, ack);	/* [MQTT-4.3.3-2] */
}

static void on_puback(struct smq_engine *e, struct smq_econn *c, const struct smq_packet *pkt)
{
	struct smq_qmsg *q = smq_session_inflight(c->s, pkt->packet_id);
	int ret;

	if (q && q->qos == 1 && smq_eng_stores(e, c->s))
		smq_eng_store_q_del(e, c->s, q);
	ret = smq_session_puback(c->s, pkt->packet_id);

	if (ret == -EPROTO) {
		conn_fail(e, c, SMQ_RC_PROTOCOL_ERROR, "PUBACK for a QoS 2 message");
		return;
	}
	if (ret)
		smq_debug("client '%s': PUBACK for unknown packet id %u", c->id, pkt->packet_id);
	smq_eng_pump(e, c);
}

static void on_pubrec(struct smq_engine *e, struct smq_econn *c, const struct smq_packet *pkt)
{
	uint16_t pid = pkt->packet_id;
	struct smq_qmsg *q = smq_session_inflight(c->s, pid);
	int ret;

	if (q && c->version == SMQ_V5 && pkt->reason >= 0x80) {
		if (smq_eng_stores(e, c->s))
			smq_eng_store_q_del(e, c->s, q);
		smq_session_drop(c->s, q);	/* the receiver refused: the flow ends */
		smq_eng_pump(e, c);
		return;
	}
	ret = smq_session_pubrec(c->s, pid);
	if (ret == -EPROTO) {
		conn_fail(e, c, SMQ_RC_PROTOCOL_ERROR, "PUBREC for a QoS 1 message");
		return;
	}
	if (!ret && smq_eng_stores(e, c->s))
		smq_eng_store_q(e, c->s, q);	/* RELEASED: resumes with PUBREL */
	/* answer PUBREL [MQTT-4.3.3-3]; 5.0 says so when the id is unknown.
	 * With persistence only once the RELEASED state is stored: a PUBREL
	 * lets the receiver forget the id, and a crash that lost the state
	 * would bring the PUBLISH back as a new message. */
	smq_eng_ack(e, c, SMQ_PUBREL, pid,
		    ret && c->version == SMQ_V5 ? SMQ_RC_PACKET_ID_NOT_FOUND : 0);
}

static void on_pubrel(struct smq_engine *e, struct smq_econn *c, const struct smq_packet *pkt)
{
	int ret = smq_session_in_release(c->s, pkt->packet_id);

	/* PUBREC went out before the restart: the routes were durable */
	if (c->s->rare && c->s->rare->in_pend)
		smq_msg_unref(pending_take(c->s, pkt->packet_id));
	if (!ret && smq_eng_stores(e, c->s))
		smq_eng_store_inbound(e, c->s, pkt->packet_id, false);
	smq_eng_ack(e, c, SMQ_PUBCOMP, pkt->packet_id,
		    ret && c->version == SMQ_V5 ? SMQ_RC_PACKET_ID_NOT_FOUND : 0);
}

static void on_pubcomp(struct smq_engine *e, struct smq_econn *c, const struct smq_packet *pkt)
{
	struct smq_qmsg *q = smq_session_inflight(c->s, pkt->packet_id);
	int ret;

	if (q && q->state == SMQ_QS_RELEASED && smq_eng_stores(e, c->s)) {
		smq_eng_store_done(e, c->s, q->uid);	/* before its copy goes */
		smq_eng_store_q_del(e, c->s, q);
	}
	ret = smq_session_pubcomp(c->s, pkt->packet_id);

	/* PUBCOMP for a QoS 1 message, or for a QoS 2 one before PUBREC */
	if (ret == -EPROTO) {
		conn_fail(e, c, SMQ_RC_PROTOCOL_ERROR, "PUBCOMP for a message not released");
		return;
	}
	if (ret)
		smq_debug("client '%s': PUBCOMP for unknown packet id %u", c->id, pkt->packet_id);
	smq_eng_pump(e, c);
}

/* ---- SUBSCRIBE / UNSUBSCRIBE ------------------------------------------ */

/* Refusal code for one filter (3.x has only 0x80). */
static uint8_t sub_refuse(const struct smq_econn *c, uint8_t rc5)
{
	return c->version == SMQ_V5 ? rc5 : 0x80;
}

/* Subscribe c's session to one filter; returns the SUBACK code and sets
 * *send_retained per Retain Handling (5.0 section 3.8.3.1). A shared
 * filter "$share/g/f" (accepted from every protocol version, as mosquitto
 * and EMQX do) makes the session a member of group g on f. */
static uint8_t sub_one(struct smq_engine *e, struct smq_econn *c, const struct smq_sub_entry *en,
		       uint32_t sub_id, bool *send_retained)
{
	struct smq_session *s = c->s;
	struct smq_str group, inner;
	uint8_t qos = SMQ_SUBOPT_QOS(en->opts), opts;
	unsigned flags = 0;
	bool existed;
	int shared;

	*send_retained = false;
	if (!smq_topic_filter_valid(en->filter))
		return sub_refuse(c, SMQ_RC_TOPIC_FILTER_INVALID);
	shared = smq_topic_parse_shared(en->filter, &group, &inner);
	if (shared < 0)
		return sub_refuse(c, SMQ_RC_TOPIC_FILTER_INVALID);
	if (!smq_eng_may_subscribe(e, s, shared ? en->filter : inner)) {
		e->stats.denied_subscribe++;
		if (smq_log_due(&e->deny_log_ms, e->now, 1000))
			smq_notice("client '%s' from %s: SUBSCRIBE to '%.*s' denied by the ACL "
				   "(logged at most once a second)", c->id, c->peer,
				   (int)(en->filter.len > 200 ? 200 : en->filter.len), en->filter.p);
		return sub_refuse(c, SMQ_RC_NOT_AUTHORIZED);
	}
	if (qos > e->cfg->max_qos)
		qos = (uint8_t)e->cfg->max_qos;	/* the server may grant less (3.8.4) */
	opts = (uint8_t)((en->opts & ~3u) | qos);
	if (c->version != SMQ_V5)
		opts = qos;
	existed = smq_subtree_find(e->subs, en->filter, s, NULL, NULL);
	if (smq_session_sub_put(s, en->filter, opts, sub_id))
		return sub_refuse(c, SMQ_RC_UNSPECIFIED);
	if (smq_subtree_add(e->subs, en->filter, s, opts, sub_id, &flags)) {
		if (!existed)
			smq_session_sub_del(s, en->filter);
		return sub_refuse(c, SMQ_RC_UNSPECIFIED);
	}
	if (flags & SMQ_SUBTREE_FIRST)
		interest_changed(e, en->filter, true);
	if (smq_eng_stores(e, s))
		smq_eng_store_sub(e, s, en->filter, opts, sub_id);
	/* retained messages: always in 3.x, also on a replaced subscription
	 * [MQTT-3.8.4-3]; 5.0 Retain Handling 0 always, 1 if new, 2 never;
	 * never to a shared subscription (5.0 3.3.1.3: only a new Non-shared
	 * Subscription gets them; 3.1.1 has no shared ones to say otherwise) */
	if (shared == 0)
		return qos;
	switch (c->version == SMQ_V5 ? SMQ_SUBOPT_RH(en->opts) : 0) {
	case 0:
		*send_retained = true;
		break;
	case 1:
		*send_retained = !existed;
		break;
	}
	return qos;
}

/* 5.0: No Local on a shared subscription is a Protocol Error
 * [MQTT-3.8.3-4]. True if some entry of the SUBSCRIBE does that. */
static bool shared_no_local(const struct smq_econn *c, const struct smq_packet *pkt)
{
	struct smq_sub_entry en;
	struct smq_str group, inner;
	uint32_t pos = 0, i = 0;

	if (c->version != SMQ_V5)
		return false;	/* 3.x has no No Local bit (reserved: the codec refuses it) */
	while (i++ < pkt->list.count && smq_list_next_sub(pkt, &pos, &en))
		if ((en.opts & SMQ_SUBOPT_NO_LOCAL) &&
		    smq_topic_parse_shared(en.filter, &group, &inner) == 0)
			return true;
	return false;
}

static void on_subscribe(struct smq_engine *e, struct smq_econn *c, const struct smq_packet *pkt)
{
	struct smq_packet ack = { .type = SMQ_SUBACK, .version = c->version,
				  .packet_id = pkt->packet_id };
	uint32_t sub_id = SMQ_HAS(&pkt->props, SMQ_PROP_SUBSCRIPTION_ID) ? pkt->props.sub_id : 0;
	uint8_t *codes = malloc(pkt->list.count ? pkt->list.count : 1);
	bool *retained = malloc(pkt->list.count ? pkt->list.count : 1);
	struct smq_sub_entry en;
	uint32_t pos = 0, i = 0;

	if (!codes || !retained) {
		conn_fail(e, c, SMQ_RC_UNSPECIFIED, "out of memory");
		goto out_free;
	}
	if (shared_no_local(c, pkt)) {
		conn_fail(e, c, SMQ_RC_PROTOCOL_ERROR, "No Local on a shared subscription");
		goto out_free;	/* [MQTT-3.8.3-4]: nothing of the packet is applied */
	}
	e->int_new = false;
	while (i < pkt->list.count && smq_list_next_sub(pkt, &pos, &en)) {
		codes[i] = sub_one(e, c, &en, sub_id, &retained[i]);
		if (smq_log_enabled(SMQ_LOG_SUBSCRIBE))	/* mosquitto's log_type subscribe */
			smq_log(SMQ_LOG_SUBSCRIBE, "client '%s' subscribed to '%.*s': %s %u", c->id,
				(int)(en.filter.len > 200 ? 200 : en.filter.len), en.filter.p,
				codes[i] < 0x80 ? "QoS" : "refused, code", codes[i]);
		i++;
	}
	e->stats.subscriptions = smq_subtree_count(e->subs);
	ack.list.raw = (struct smq_str){ codes, i };
	ack.list.count = i;
	if (e->int_new && e->io.interest_ticket)
		smq_eng_gate_subscribe(e, c);	/* other shards learn of it first */
	smq_eng_write(e, c, &ack);	/* [MQTT-3.8.4-1] the SUBACK first */
	pos = i = 0;
	while (i < pkt->list.count && smq_list_next_sub(pkt, &pos, &en)) {
		if (codes[i] < 0x80 && retained[i])
			smq_eng_send_retained(e, c, en.filter, codes[i], sub_id);
		i++;
	}
out_free:
	free(codes);
	free(retained);
}

static void on_unsubscribe(struct smq_engine *e, struct smq_econn *c,
			   const struct smq_packet *pkt)
{
	struct smq_packet ack = { .type = SMQ_UNSUBACK, .version = c->version,
				  .packet_id = pkt->packet_id };
	uint8_t *codes = malloc(pkt->list.count ? pkt->list.count : 1);
	struct smq_str f;
	uint32_t pos = 0, i = 0;

	if (!codes) {
		conn_fail(e, c, SMQ_RC_UNSPECIFIED, "out of memory");
		return;
	}
	while (i < pkt->list.count && smq_list_next_filter(pkt, &pos, &f)) {
		unsigned flags = 0;
		int ret = smq_subtree_remove(e->subs, f, c->s, &flags);

		codes[i++] = ret ? SMQ_RC_NO_SUBSCRIPTION_EXISTED : SMQ_RC_SUCCESS;
		if (smq_log_enabled(SMQ_LOG_UNSUBSCRIBE))
			smq_log(SMQ_LOG_UNSUBSCRIBE, "client '%s' unsubscribed from '%.*s'%s", c->id,
				(int)(f.len > 200 ? 200 : f.len), f.p,
				ret ? " (no such subscription)" : "");
		if (!ret)
			smq_session_sub_del(c->s, f);
		if (!ret && smq_eng_stores(e, c->s))
			smq_eng_store_unsub(e, c->s, f);
		if (!ret && (flags & SMQ_SUBTREE_LAST))
			interest_changed(e, f, false);
	}
	e->stats.subscriptions = smq_subtree_count(e->subs);
	if (c->version == SMQ_V5) {
		ack.list.raw = (struct smq_str){ codes, i };
		ack.list.count = i;
	}
	smq_eng_write(e, c, &ack);	/* [MQTT-3.10.4-4] even if nothing matched */
	free(codes);
}

/* ---- the rest --------------------------------------------------------- */

static void on_disconnect(struct smq_engine *e, struct smq_econn *c,
			  const struct smq_packet *pkt)
{
	struct smq_session *s = c->s;

	if (c->version == SMQ_V5 && SMQ_HAS(&pkt->props, SMQ_PROP_SESSION_EXPIRY)) {
		if (s->expiry_s == 0 && pkt->props.session_expiry) {
			conn_fail(e, c, SMQ_RC_PROTOCOL_ERROR,
				  "session expiry set in DISCONNECT after 0 in CONNECT");
			return;	/* [MQTT-3.14.2-2] */
		}
		s->expiry_s = pkt->props.session_expiry;
	}
	/* the will is discarded on a normal DISCONNECT [MQTT-3.14.4-3]; a 5.0
	 * reason other than 0x00 (0x04 "with will", or an error) keeps it
	 * [MQTT-3.1.2-10] */
	c->will_off = !(c->version == SMQ_V5 && pkt->reason != SMQ_RC_SUCCESS);
	if (e->cfg->connection_messages)
		smq_info("client '%s' from %s sent DISCONNECT", c->id, c->peer);
	conn_close(e, c);
}

static void handle(struct smq_engine *e, struct smq_econn *c, const struct smq_packet *pkt)
{
	if (c->state == CS_EXCHANGE) {
		if (pkt->type == SMQ_AUTH) {
			on_auth(e, c, pkt);
		} else if (pkt->type == SMQ_DISCONNECT) {
			smq_info("client '%s' from %s sent DISCONNECT during authentication",
				 c->id, c->peer);
			conn_close(e, c);
		} else {
			exchange_error(e, c, "a packet other than AUTH or DISCONNECT before "
					     "CONNACK");	/* [MQTT-3.1.2-30] */
		}
		return;
	}
	if (pkt->type != SMQ_CONNECT && c->state != CS_LIVE)
		return;	/* CS_NEW cannot happen: the codec wants CONNECT first */
	switch (pkt->type) {
	case SMQ_CONNECT:
		on_connect(e, c, pkt);
		break;
	case SMQ_PUBLISH:
		on_publish(e, c, pkt);
		break;
	case SMQ_PUBACK:
		on_puback(e, c, pkt);
		break;
	case SMQ_PUBREC:
		on_pubrec(e, c, pkt);
		break;
	case SMQ_PUBREL:
		on_pubrel(e, c, pkt);
		break;
	case SMQ_PUBCOMP:
		on_pubcomp(e, c, pkt);
		break;
	case SMQ_SUBSCRIBE:
		on_subscribe(e, c, pkt);
		break;
	case SMQ_UNSUBSCRIBE:
		on_unsubscribe(e, c, pkt);
		break;
	case SMQ_PINGREQ: {
		/* built here, not at the top: zeroing a packet costs more
		 * than handling a small PUBLISH */
		struct smq_packet pong = { .type = SMQ_PINGRESP, .version = c->version };

		smq_eng_write(e, c, &pong);	/* [MQTT-3.12.4-1] */
		break;
	}
	case SMQ_DISCONNECT:
		on_disconnect(e, c, pkt);
		break;
	case SMQ_AUTH:
		on_auth(e, c, pkt);
		break;
	default:
		conn_fail(e, c, SMQ_RC_PROTOCOL_ERROR, "packet type a client must not send");
		break;
	}
}

/* The codec refused the byte stream. */
static void decode_failed(struct smq_engine *e, struct smq_econn *c, uint8_t rc)
{
	if (c->state == CS_NEW && rc == SMQ_RC_UNSUPPORTED_VERSION) {
		/* [MQTT-3.1.2-2] return code 0x01, then close; a 3.1.1 CONNACK
		 * is what every client generation can read */
		c->version = SMQ_V311;
		refuse(e, c, SMQ_CONNACK_BAD_VERSION, "unacceptable protocol version");
		return;
	}
	conn_fail(e, c, rc, c->state == CS_NEW ? "invalid first packet (CONNECT expected)"
					       : "malformed or invalid packet");
}

/* CS_AUTH: keep input until the verdict (a client may send SUBSCRIBE and
 * PUBLISH right behind its CONNECT). Bounded like a first packet. */
static void hold(struct smq_engine *e, struct smq_econn *c, const uint8_t *in, size_t n)
{
	struct econn_rare *r = c->rare;	/* set: CS_AUTH parked the CONNECT there */

	if (r->held_len + n > SMQ_CONNECT_MAX) {
		conn_fail(e, c, SMQ_RC_QUOTA_EXCEEDED, "too much input before CONNACK");
		return;
	}
	if (r->held_len + n > r->held_cap) {
		uint32_t cap = (uint32_t)(r->held_len + n) * 2u;	/* bounded just above */
		uint8_t *p = realloc(r->held, cap);

		if (!p) {
			conn_fail(e, c, SMQ_RC_UNSPECIFIED, "out of memory");
			return;
		}
		r->held = p;
		r->held_cap = cap;
	}
	memcpy(r->held + r->held_len, in, n);
	r->held_len += (uint32_t)n;
}

static void feed(struct smq_engine *e, struct smq_econn *c, const uint8_t *in, size_t n)
{
	struct smq_packet pkt;
	int ret = 0;

	while (c->state != CS_CLOSING && c->state != CS_AUTH &&
	       (ret = smq_reader_next(&c->rd, &in, &n, &pkt)) == 1)
		handle(e, c, &pkt);
	if (c->state == CS_AUTH && n)
		hold(e, c, in, n);
	else if (ret < 0 && c->state != CS_CLOSING)
		decode_failed(e, c, (uint8_t)-ret);
}

void smq_engine_auth_done(struct smq_engine *e, struct smq_econn *c, bool ok, uint64_t now_ms)
{
	struct smq_packet pkt;
	struct econn_rare *r;
	uint8_t *held, *copy;
	size_t len;

	if (now_ms > e->now)
		e->now = now_ms;
	if (c->state != CS_AUTH)
		return;
	r = c->rare;		/* set: CS_AUTH parked the CONNECT there */
	c->state = CS_NEW;
	r->verdict = ok;
	/* ours now: on_connect() may park the CONNECT again (CS_EXCHANGE) */
	copy = r->connect_copy;
	r->connect_copy = NULL;
	if (smq_decode(copy, r->connect_len, 0, &pkt) || pkt.type != SMQ_CONNECT) {
		free(copy);
		conn_fail(e, c, SMQ_RC_UNSPECIFIED, "internal error: the held CONNECT");
		return;
	}
	/* Remember a good password only if the bundle it was checked
	 * against is still the one in force. */
	if (ok && e->auth && e->auth->gen == r->auth_gen)
		smq_auth_cache_store(e->auth_cache, e->auth, (const char *)pkt.connect.username.p,
				     pkt.connect.username.len, pkt.connect.password.p,
				     pkt.connect.has_password ? pkt.connect.password.len : 0);
	on_connect(e, c, &pkt);	/* r stays: only rare_trim() frees it */
	free(copy);
	held = r->held;
	len = r->held_len;
	r->held = NULL;
	r->held_len = r->held_cap = 0;
	if (len && (c->state == CS_LIVE || c->state == CS_EXCHANGE))
		feed(e, c, held, len);
	free(held);
	rare_trim(c);
}

/* Before CONNECT: keep every byte, and once the first packet is complete
 * decide whether the session lives on another shard. Returns PRE_WAIT (wait
 * for more), SMQ_ENGINE_HANDOFF, 0 (ours: process c->rare->pre), -EPROTO (the
 * first byte is not a CONNECT's), -EMSGSIZE or -ENOMEM. */
#define PRE_WAIT (SMQ_ENGINE_HANDOFF + 1)

static int pre_input(struct smq_engine *e, struct smq_econn *c, const uint8_t *in, size_t n)
{
	struct econn_rare *r = rare_mut(c);
	uint32_t hl, rem;
	struct smq_packet pkt;
	int ret;

	if (!r)
		return -ENOMEM;
	if (r->pre_len + n > r->pre_cap) {
		/* pre_len stays below SMQ_CONNECT_MAX plus one read (checked
		 * below), far from overflowing 32 bits */
		size_t cap = r->pre_len + n < 256 ? 256 : (r->pre_len + n) * 2;
		uint8_t *p = realloc(r->pre, cap);

		if (!p)
			return -ENOMEM;
		r->pre = p;
		r->pre_cap = (uint32_t)cap;
	}
	memcpy(r->pre + r->pre_len, in, n);
	r->pre_len += (uint32_t)n;
	/* Only a CONNECT can come first [MQTT-3.1.0-1]: do not wait for the
	 * rest of a "packet" that is garbage from its first byte. */
	if (r->pre[0] != 0x10)
		return -EPROTO;
	ret = smq_frame(r->pre, r->pre_len, c->rd.max_packet, &hl, &rem);
	if (ret == 0 && (size_t)hl + rem > SMQ_CONNECT_MAX)
		return -EMSGSIZE;	/* no CONNECT is this big: do not buffer it */
	if (ret == 1 || (ret == 0 && r->pre_len < (size_t)hl + rem))
		return PRE_WAIT;
	if (ret == 0 && !smq_decode(r->pre, (size_t)hl + rem, 0, &pkt) &&
	    pkt.type == SMQ_CONNECT && pkt.connect.client_id.len) {
		unsigned home = smq_engine_home_shard(pkt.connect.client_id, e->nshards);

		if (home != e->shard) {
			r->home = (uint8_t)home;
			return SMQ_ENGINE_HANDOFF;
		}
	}
	return 0;
}

int smq_engine_conn_input(struct smq_engine *e, struct smq_econn *c, const uint8_t *bytes, size_t n,
			  uint64_t now_ms)
{
	int ret;

	if (now_ms > e->now)
		e->now = now_ms;
	e->stats.bytes_in += n;
	if (c->state == CS_CLOSING || !n)
		return 0;
	c->last_in_ms = e->now;	/* any bytes count as activity */
	if (c->state == CS_AUTH) {
		hold(e, c, bytes, n);
		return 0;
	}
	if (c->here) {
		feed(e, c, bytes, n);
		if (c->rare)	/* an AUTH exchange may have ended in CONNACK */
			rare_trim(c);
		return 0;
	}
	ret = pre_input(e, c, bytes, n);
	if (ret == SMQ_ENGINE_HANDOFF)
		return ret;
	if (ret == -EPROTO) {
		conn_fail(e, c, SMQ_RC_PROTOCOL_ERROR, "first byte is not a CONNECT's");
		return 0;
	}
	if (ret < 0) {
		conn_fail(e, c, ret == -EMSGSIZE ? SMQ_RC_PACKET_TOO_LARGE : SMQ_RC_UNSPECIFIED,
			  ret == -EMSGSIZE ? "first packet too large for a CONNECT" : "out of memory");
		return 0;
	}
	if (ret == 0) {
		struct econn_rare *r = c->rare;	/* set: pre_input() filled r->pre */

		c->here = true;
		feed(e, c, r->pre, r->pre_len);	/* r stays: only rare_trim() frees it */
		free(r->pre);
		r->pre = NULL;
		r->pre_len = r->pre_cap = 0;
		rare_trim(c);
	}
	return 0;
}

int smq_engine_conn_detach(struct smq_engine *e, struct smq_econn *c, uint8_t **bytes, size_t *len,
			   unsigned *home)
{
	struct econn_rare *r = c->rare;

	if (c->here || c->state != CS_NEW || !r || !r->pre_len)
		return -EINVAL;
	*bytes = r->pre;
	*len = r->pre_len;
	*home = r->home;
	r->pre = NULL;
	r->pre_len = r->pre_cap = 0;
	conn_free(e, c);
	return 0;
}

void smq_engine_set_now_ns(struct smq_engine *e, uint64_t now_ns)
{
	e->now_ns = now_ns;
}

/* ---- for persist.c ------------------------------------------------------ */

void smq_eng_conn_close(struct smq_engine *e, struct smq_econn *c)
{
	conn_close(e, c);
}

struct smq_session *smq_eng_session_find(const struct smq_engine *e, struct smq_str id)
{
	return tab_find(e, id);
}

struct smq_session *smq_eng_session_new(struct smq_engine *e, struct smq_str id)
{
	return session_new(e, id);
}

struct smq_session_rare *smq_eng_session_rare(struct smq_session *s)
{
	return sx_get(s);
}

void smq_eng_interest_changed(struct smq_engine *e, struct smq_str filter, bool present)
{
	interest_changed(e, filter, present);
}

void smq_eng_arm_offline(struct smq_engine *e, struct smq_session *s, uint64_t expiry_ms,
			 uint64_t will_ms)
{
	struct smq_session_rare *r = s->rare;	/* set by the restore */

	if (expiry_ms != UINT64_MAX)
		smq_timer_arm(&e->timers, &r->expiry_timer, expiry_ms);
	if (will_ms != UINT64_MAX)
		smq_timer_arm(&e->timers, &r->will_timer, will_ms);
}
