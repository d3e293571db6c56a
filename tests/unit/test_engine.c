/* test_engine.c - the broker engine driven through a fake I/O layer.
 *
 * A "world" holds 1 to 4 engines wired together like shards: forwards
 * (plain and shared) and interest broadcasts go into one FIFO that settle()
 * applies, in order, to the destination engines (as the shard inboxes
 * would). Clients are test
 * objects that encode packets into smq_engine_conn_input() and decode what
 * the engine queued for them from smq_econn_out_iov(). Time is fake.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/codec.h"
#include "core/config.h"
#include "core/engine.h"
#include "core/engine_int.h"
#include "core/log.h"
#include "core/msg.h"
#include "core/retain.h"

#define MAXSH 4
#define MAXCL 16

struct world;

struct client {
	struct world *w;
	unsigned shard;
	struct smq_econn *c;
	uint8_t version;
	bool close_req;		/* want_close seen */
	bool closed;		/* conn_closed done */
	int sends;		/* want_send calls */
	uint8_t *in;		/* bytes pulled from the engine, not yet decoded */
	size_t in_len, in_off;
	void *keep[256];	/* packets handed to the test, freed at the end */
	int nkeep;
};

struct event {
	int kind;		/* 0 forward, 1 interest, 2 shared forward */
	unsigned from, to;
	struct smq_msg *msg;
	char filter[128];	/* interest: the filter; shared forward: the share */
	bool present;
};

struct world {
	unsigned n;
	struct smq_config cfg;
	struct smq_retain *ret;
	struct smq_engine *e[MAXSH];
	unsigned idx[MAXSH];
	struct event ev[512];
	int nev;
	int forwards, shared_forwards, interests_on, interests_off;
	uint64_t now;
	struct client cl[MAXCL];
	int ncl;
	/* persistence: a fake store per shard (sorted records) and tickets */
	bool persist;
	struct rec { uint8_t *k, *v; uint32_t kl, vl; } *recs[MAXSH];
	int nrecs[MAXSH];
	uint64_t ticket[MAXSH];
	bool hold;		/* tickets for acks (else acks go out at once) */
	bool gates;		/* SUBACKs wait for interest tickets */
	uint64_t iticket;	/* the ticket io_interest_ticket() gives */
	int64_t wall_off;
};

static struct world W;

/* ---- fake I/O ---------------------------------------------------------- */

static void io_want_send(void *ctx, struct smq_econn *c)
{
	struct client *cl = smq_econn_io(c);

	(void)ctx;
	cr_assert_gt(smq_econn_out_pending(c), 0, "want_send with nothing queued");
	cl->sends++;
}

static void io_want_close(void *ctx, struct smq_econn *c)
{
	struct client *cl = smq_econn_io(c);

	(void)ctx;
	cr_assert_not(cl->close_req, "want_close twice");
	cl->close_req = true;
}

static void io_forward(void *ctx, unsigned to, struct smq_msg *msg)
{
	unsigned from = *(unsigned *)ctx;

	cr_assert_neq(to, from, "forward to self");
	cr_assert_lt(W.nev, 512);
	W.ev[W.nev++] = (struct event){ .kind = 0, .from = from, .to = to, .msg = msg };
	W.forwards++;
}

static void io_forward_shared(void *ctx, unsigned to, struct smq_msg *msg, struct smq_str share)
{
	unsigned from = *(unsigned *)ctx;
	struct event *ev;

	cr_assert_neq(to, from, "shared forward to self");
	cr_assert_lt(W.nev, 512);
	cr_assert_lt(share.len, 128);
	ev = &W.ev[W.nev++];
	*ev = (struct event){ .kind = 2, .from = from, .to = to, .msg = msg };
	memcpy(ev->filter, share.p, share.len);
	W.shared_forwards++;
}

static void io_interest(void *ctx, struct smq_str filter, bool present)
{
	unsigned from = *(unsigned *)ctx;
	struct event *ev = &W.ev[W.nev++];

	*ev = (struct event){ .kind = 1, .from = from, .present = present };
	memcpy(ev->filter, filter.p, filter.len < 127 ? filter.len : 127);
	if (present)
		W.interests_on++;
	else
		W.interests_off++;
}

static uint64_t io_interest_ticket(void *ctx)
{
	(void)ctx;
	return W.iticket;
}

/* Apply queued cross-shard events, then finish requested closes. */
static void settle(void);
static struct smq_str S(const char *s);

static void world_init(unsigned n)
{
	memset(&W, 0, sizeof(W));
	smq_log_set_level(SMQ_LOG_ERROR);
	W.n = n;
	smq_config_defaults(&W.cfg);
	W.ret = smq_retain_new(0);
	W.now = 1000000;
}

static void io_store(void *ctx, const struct smq_store_rec *r);
static uint64_t io_hold(void *ctx);

static void world_start(void)
{
	for (unsigned i = 0; i < W.n; i++) {
		struct smq_engine_io io = {
			.ctx = &W.idx[i],
			.want_send = io_want_send,
			.want_close = io_want_close,
			.forward = io_forward,
			.forward_shared = io_forward_shared,
			.interest = io_interest,
		};

		if (W.persist) {
			io.store = io_store;
			io.hold = io_hold;
		}
		if (W.gates)
			io.interest_ticket = io_interest_ticket;
		W.idx[i] = i;
		W.e[i] = smq_engine_new(i, W.n, &W.cfg, W.ret, &io);
		cr_assert(W.e[i]);
		if (W.persist)
			smq_engine_set_persist(W.e[i], W.wall_off, 42 + i);
	}
}

/* Idempotent: tests that must free something after the engines (an auth
 * bundle) call it themselves, and the suite's .fini calls it again. */
static void world_fini(void)
{
	if (!W.ret)
		return;
	settle();
	for (int i = 0; i < W.ncl; i++) {
		struct client *cl = &W.cl[i];

		for (int k = 0; k < cl->nkeep; k++)
			free(cl->keep[k]);
		free(cl->in);
	}
	for (unsigned i = 0; i < W.n; i++)
		smq_engine_free(W.e[i]);
	for (int i = 0; i < W.nev; i++)
		if (W.ev[i].kind != 1)
			smq_msg_unref(W.ev[i].msg);
	smq_retain_free(W.ret);
	W.ret = NULL;
	for (unsigned i = 0; i < MAXSH; i++) {
		for (int k = 0; k < W.nrecs[i]; k++) {
			free(W.recs[i][k].k);
			free(W.recs[i][k].v);
		}
		free(W.recs[i]);
		W.recs[i] = NULL;
		W.nrecs[i] = 0;
	}
	W.n = 0;
	W.ncl = 0;
	W.nev = 0;
}

static void start1(void)
{
	world_init(1);
	world_start();
}

/* ---- clients ------------------------------------------------------------ */

/* Pull everything the engine queued for cl into cl->in. */
static void drain(struct client *cl)
{
	struct iovec iov[8];
	int n;

	if (cl->closed)
		return;
	while ((n = smq_econn_out_iov(cl->c, iov, 8)) > 0) {
		size_t total = 0;

		for (int i = 0; i < n; i++) {
			cl->in = realloc(cl->in, cl->in_len + iov[i].iov_len);
			memcpy(cl->in + cl->in_len, iov[i].iov_base, iov[i].iov_len);
			cl->in_len += iov[i].iov_len;
			total += iov[i].iov_len;
		}
		smq_econn_out_done(W.e[cl->shard], cl->c, total, W.now);
	}
	if (!W.gates)	/* else some may wait behind a SUBACK's gate */
		cr_assert_eq(smq_econn_out_pending(cl->c), 0);
}

static void settle(void)
{
	for (int i = 0; i < W.nev; i++) {
		struct event *ev = &W.ev[i];

		if (ev->kind == 0) {
			smq_engine_deliver(W.e[ev->to], ev->msg, W.now);
			continue;
		}
		if (ev->kind == 2) {
			smq_engine_deliver_shared(W.e[ev->to], ev->msg, S(ev->filter), W.now);
			continue;
		}
		for (unsigned s = 0; s < W.n; s++)
			if (s != ev->from)
				smq_engine_interest_apply(W.e[s],
							  (struct smq_str){ (uint8_t *)ev->filter,
									    (uint32_t)strlen(ev->filter) },
							  ev->from, ev->present);
	}
	W.nev = 0;
	for (int i = 0; i < W.ncl; i++) {
		struct client *cl = &W.cl[i];

		if (cl->close_req && !cl->closed) {
			drain(cl);
			smq_engine_conn_closed(W.e[cl->shard], cl->c, 0);
			cl->closed = true;
		}
	}
	/* closing may publish wills: route them too */
	if (W.nev)
		settle();
}

static struct client *cl_new(unsigned shard)
{
	struct client *cl = &W.cl[W.ncl++];

	cl->w = &W;
	cl->shard = shard;
	cl->c = smq_engine_conn_new(W.e[shard], cl, "127.0.0.1:5555", W.now);
	cr_assert(cl->c);
	return cl;
}

/* Feed raw bytes; follow a hand-off to the home shard like the I/O layer. */
static void cl_bytes(struct client *cl, const uint8_t *b, size_t n)
{
	int ret;

	cr_assert_not(cl->closed);
	ret = smq_engine_conn_input(W.e[cl->shard], cl->c, b, n, W.now);
	if (ret == SMQ_ENGINE_HANDOFF) {
		uint8_t *bytes;
		size_t len;
		unsigned home;

		cr_assert_eq(smq_engine_conn_detach(W.e[cl->shard], cl->c, &bytes, &len, &home), 0);
		cr_assert_neq(home, cl->shard);
		cl->shard = home;
		cl->c = smq_engine_conn_new(W.e[home], cl, "127.0.0.1:5555", W.now);
		ret = smq_engine_conn_input(W.e[home], cl->c, bytes, len, W.now);
		free(bytes);
		cr_assert_eq(ret, 0, "home shard handed off again");
	}
}

static void cl_send(struct client *cl, struct smq_packet *pkt)
{
	uint8_t buf[70000];
	long n;

	if (!pkt->version)
		pkt->version = cl->version;
	n = smq_encode(pkt, buf, sizeof(buf));
	cr_assert_gt(n, 0, "test encode failed: %ld", n);
	cl_bytes(cl, buf, (size_t)n);
}

/* The next packet the engine sent to cl, or NULL. Views stay valid until
 * the end of the test. */
static struct smq_packet *cl_recv(struct client *cl)
{
	uint32_t hl, rem;
	struct smq_packet *pkt;
	uint8_t *copy;
	int ret;

	drain(cl);
	if (cl->in_off == cl->in_len)
		return NULL;
	ret = smq_frame(cl->in + cl->in_off, cl->in_len - cl->in_off, 0, &hl, &rem);
	cr_assert_eq(ret, 0, "engine sent a partial or bad frame");
	cr_assert_leq(cl->in_off + hl + rem, cl->in_len);
	cr_assert_lt(cl->nkeep, 254);
	copy = malloc(hl + rem + 1);
	memcpy(copy, cl->in + cl->in_off, hl + rem);
	pkt = calloc(1, sizeof(*pkt));
	cl->keep[cl->nkeep++] = copy;
	cl->keep[cl->nkeep++] = pkt;
	cl->in_off += hl + rem;
	ret = smq_decode(copy, hl + rem, cl->version, pkt);
	cr_assert_eq(ret, 0, "engine sent an undecodable packet (%d)", ret);
	return pkt;
}

static struct smq_packet *cl_expect(struct client *cl, uint8_t type)
{
	struct smq_packet *p = cl_recv(cl);

	cr_assert(p, "expected %s, got nothing", smq_ptype_name(type));
	cr_assert_eq(p->type, type, "expected %s, got %s", smq_ptype_name(type),
		     smq_ptype_name(p->type));
	return p;
}

static void cl_expect_none(struct client *cl)
{
	struct smq_packet *p = cl_recv(cl);

	cr_assert_null(p, "unexpected %s", p ? smq_ptype_name(p->type) : "");
}

static struct smq_str S(const char *s)
{
	return (struct smq_str){ (const uint8_t *)s, (uint32_t)strlen(s) };
}

static bool str_is(struct smq_str a, const char *s)
{
	return a.len == strlen(s) && !memcmp(a.p, s, a.len);
}

struct will {
	const char *topic, *payload;
	uint8_t qos;
	bool retain;
	uint32_t delay;
};

struct copts {
	uint8_t version;	/* default 4 */
	bool clean;
	uint16_t keepalive;
	const struct will *will;
	const char *user;
	const char *pass;
	uint32_t session_expiry;
	uint16_t receive_max;
	uint32_t max_packet;
	uint16_t alias_max;	/* 5.0 Topic Alias Maximum the client accepts */
};

static void send_connect(struct client *cl, const char *id, const struct copts *o)
{
	struct smq_packet p = { .type = SMQ_CONNECT };

	cl->version = o->version ? o->version : SMQ_V311;
	p.version = cl->version;
	p.connect.proto_name = cl->version == SMQ_V31 ? S("MQIsdp") : S("MQTT");
	p.connect.level = cl->version;
	p.connect.clean = o->clean;
	p.connect.keepalive = o->keepalive;
	p.connect.client_id = S(id);
	if (o->will) {
		p.connect.will = true;
		p.connect.will_topic = S(o->will->topic);
		p.connect.will_payload = S(o->will->payload);
		p.connect.will_qos = o->will->qos;
		p.connect.will_retain = o->will->retain;
		if (o->will->delay) {
			SMQ_SET(&p.connect.will_props, SMQ_PROP_WILL_DELAY);
			p.connect.will_props.will_delay = o->will->delay;
		}
	}
	if (o->user) {
		p.connect.has_username = true;
		p.connect.username = S(o->user);
	}
	if (o->pass) {
		p.connect.has_password = true;
		p.connect.password = S(o->pass);
	}
	if (o->session_expiry) {
		SMQ_SET(&p.props, SMQ_PROP_SESSION_EXPIRY);
		p.props.session_expiry = o->session_expiry;
	}
	if (o->receive_max) {
		SMQ_SET(&p.props, SMQ_PROP_RECEIVE_MAX);
		p.props.receive_max = o->receive_max;
	}
	if (o->max_packet) {
		SMQ_SET(&p.props, SMQ_PROP_MAX_PACKET_SIZE);
		p.props.max_packet_size = o->max_packet;
	}
	if (o->alias_max) {
		SMQ_SET(&p.props, SMQ_PROP_TOPIC_ALIAS_MAX);
		p.props.topic_alias_max = o->alias_max;
	}
	cl_send(cl, &p);
}

/* Connect (clean session unless told) on @shard and return the client
 * after checking CONNACK's code and session-present flag. */
static struct client *connect_ex(unsigned shard, const char *id, const struct copts *o,
				 uint8_t rc, bool present)
{
	struct client *cl = cl_new(shard);
	struct smq_packet *ack;

	send_connect(cl, id, o);
	ack = cl_expect(cl, SMQ_CONNACK);
	cr_assert_eq(ack->reason, rc, "CONNACK code %u, expected %u", ack->reason, rc);
	cr_assert_eq(ack->connack.session_present, present, "session present %d",
		     ack->connack.session_present);
	return cl;
}

static struct client *connect_clean(unsigned shard, const char *id)
{
	struct copts o = { .clean = true };

	return connect_ex(shard, id, &o, 0, false);
}

static void subscribe(struct client *cl, const char *filter, uint8_t opts, uint8_t granted)
{
	struct smq_sub_entry en = { S(filter), opts };
	struct smq_packet p = { .type = SMQ_SUBSCRIBE, .flags = 2, .packet_id = 77 };
	struct smq_packet *ack;

	p.list.entries = &en;
	p.list.count = 1;
	cl_send(cl, &p);
	settle();
	ack = cl_expect(cl, SMQ_SUBACK);
	cr_assert_eq(ack->packet_id, 77);
	cr_assert_eq(ack->list.count, 1);
	cr_assert_eq(ack->list.raw.p[0], granted, "granted 0x%x", ack->list.raw.p[0]);
}

static void publish_ex(struct client *cl, const char *topic, const char *payload, uint8_t qos,
		       bool retain, uint16_t pid)
{
	struct smq_packet p = { .type = SMQ_PUBLISH };

	p.flags = (uint8_t)(qos << 1 | (retain ? 1 : 0));
	p.publish.qos = qos;
	p.publish.retain = retain;
	p.publish.topic = S(topic);
	p.publish.payload = S(payload);
	p.packet_id = pid;
	cl_send(cl, &p);
}

/* Publish and consume the publisher's ack. */
static void publish(struct client *cl, const char *topic, const char *payload, uint8_t qos,
		    bool retain)
{
	publish_ex(cl, topic, payload, qos, retain, qos ? 10 : 0);
	if (qos == 1)
		cr_assert_eq(cl_expect(cl, SMQ_PUBACK)->packet_id, 10);
	if (qos == 2) {
		struct smq_packet rel = { .type = SMQ_PUBREL, .flags = 2, .packet_id = 10 };

		cr_assert_eq(cl_expect(cl, SMQ_PUBREC)->packet_id, 10);
		cl_send(cl, &rel);
		cr_assert_eq(cl_expect(cl, SMQ_PUBCOMP)->packet_id, 10);
	}
	settle();
}

static struct smq_packet *expect_pub(struct client *cl, const char *topic, const char *payload,
				     uint8_t qos, bool retain)
{
	struct smq_packet *p = cl_expect(cl, SMQ_PUBLISH);

	cr_assert(str_is(p->publish.topic, topic), "topic %.*s", (int)p->publish.topic.len,
		  p->publish.topic.p);
	cr_assert(str_is(p->publish.payload, payload), "payload %.*s",
		  (int)p->publish.payload.len, p->publish.payload.p);
	cr_assert_eq(p->publish.qos, qos, "qos %u expected %u", p->publish.qos, qos);
	cr_assert_eq(p->publish.retain, retain, "retain flag %d", p->publish.retain);
	return p;
}

static void send_ack(struct client *cl, uint8_t type, uint16_t pid)
{
	struct smq_packet p = { .type = type, .flags = type == SMQ_PUBREL ? 2 : 0,
				.packet_id = pid };

	cl_send(cl, &p);
}

static void disconnect(struct client *cl)
{
	struct smq_packet p = { .type = SMQ_DISCONNECT };

	cl_send(cl, &p);
	cr_assert(cl->close_req);
	settle();
}

/* The network dropped cl (no DISCONNECT). */
static void lose(struct client *cl)
{
	cr_assert_not(cl->closed);
	smq_engine_conn_closed(W.e[cl->shard], cl->c, -ECONNRESET);
	cl->closed = true;
	settle();
}

static const struct smq_engine_stats *stats(unsigned shard)
{
	return smq_engine_stats(W.e[shard]);
}

static void advance(uint64_t ms)
{
	W.now += ms;
	for (unsigned i = 0; i < W.n; i++)
		smq_engine_tick(W.e[i], W.now);
	settle();
}

/* ---- CONNECT ------------------------------------------------------------ */

TestSuite(core_engine, .fini = world_fini);

Test(core_engine, connect_is_accepted_with_code_0, .init = start1)
{
	struct client *cl = connect_clean(0, "a");

	cl_expect_none(cl);
	cr_assert_eq(stats(0)->connections, 1);
	cr_assert_str_eq(smq_econn_client_id(cl->c), "a");
}

Test(core_engine, mqtt31_connect_is_accepted, .init = start1)
{
	struct copts o = { .version = SMQ_V31, .clean = true };

	connect_ex(0, "old", &o, 0, false);
}

Test(core_engine, unacceptable_protocol_version_gets_code_1_MQTT_3_1_2_2, .init = start1)
{
	/* CONNECT "MQTT" level 9 */
	static const uint8_t bad[] = { 0x10, 13, 0, 4, 'M', 'Q', 'T', 'T', 9, 2, 0, 60, 0, 1, 'x' };
	struct client *cl = cl_new(0);
	struct smq_packet *ack;

	cl->version = SMQ_V311;
	cl_bytes(cl, bad, sizeof(bad));
	ack = cl_expect(cl, SMQ_CONNACK);
	cr_assert_eq(ack->reason, SMQ_CONNACK_BAD_VERSION);
	cr_assert(cl->close_req);
	cr_assert_eq(stats(0)->connects_refused, 1);
}

Test(core_engine, zero_length_id_with_clean_session_gets_an_id, .init = start1)
{
	struct client *cl = connect_clean(0, "");

	cr_assert_gt(strlen(smq_econn_client_id(cl->c)), 0);
}

Test(core_engine, zero_length_id_without_clean_session_refused_MQTT_3_1_3_8, .init = start1)
{
	struct copts o = { .clean = false };
	struct client *cl = connect_ex(0, "", &o, SMQ_CONNACK_ID_REJECTED, false);

	cr_assert(cl->close_req);
}

Test(core_engine, zero_length_id_refused_in_mqtt31, .init = start1)
{
	struct copts o = { .version = SMQ_V31, .clean = true };

	connect_ex(0, "", &o, SMQ_CONNACK_ID_REJECTED, false);
}

Test(core_engine, zero_length_id_refused_when_configured)
{
	struct copts o = { .clean = true };

	world_init(1);
	W.cfg.allow_zero_length_clientid = false;
	world_start();
	connect_ex(0, "", &o, SMQ_CONNACK_ID_REJECTED, false);
}

/* Fail closed: without a password file nothing can vouch for a user name
 * either, so allow_anonymous false refuses every CONNECT. */
Test(core_engine, anonymous_and_unverifiable_users_refused_when_not_allowed)
{
	struct copts o = { .clean = true };

	world_init(1);
	W.cfg.allow_anonymous = false;
	world_start();
	connect_ex(0, "a", &o, SMQ_CONNACK_NOT_AUTHORIZED, false);
	o.user = "bob";
	connect_ex(0, "b", &o, SMQ_CONNACK_NOT_AUTHORIZED, false);
}

Test(core_engine, connect_split_across_inputs, .init = start1)
{
	struct smq_packet p = { .type = SMQ_CONNECT, .version = SMQ_V311 };
	uint8_t buf[64];
	long n;
	struct client *cl = cl_new(0);

	p.connect.proto_name = S("MQTT");
	p.connect.level = 4;
	p.connect.clean = true;
	p.connect.client_id = S("split");
	n = smq_encode(&p, buf, sizeof(buf));
	cl->version = SMQ_V311;
	for (long i = 0; i < n; i++)
		cl_bytes(cl, buf + i, 1);
	cr_assert_eq(cl_expect(cl, SMQ_CONNACK)->reason, 0);
}

Test(core_engine, no_connect_in_time_closes, .init = start1)
{
	struct client *cl = cl_new(0);

	advance(19000);
	cr_assert_not(cl->close_req);
	advance(2000);
	cr_assert(cl->closed);
}

/* ---- protocol errors ---------------------------------------------------- */

static struct client *watcher(unsigned shard, const char *filter)
{
	struct client *w = connect_clean(shard, "watcher");

	subscribe(w, filter, 1, 1);
	return w;
}

static struct client *with_will(unsigned shard, const char *id)
{
	static const struct will will = { "will/t", "gone", 1, false, 0 };
	struct copts o = { .clean = true, .will = &will };

	return connect_ex(shard, id, &o, 0, false);
}

Test(core_engine, second_connect_closes_and_publishes_will_MQTT_3_1_0_2, .init = start1)
{
	struct client *w = watcher(0, "will/#");
	struct client *cl = with_will(0, "twice");
	struct copts o = { .clean = true };

	send_connect(cl, "twice", &o);
	cr_assert(cl->close_req);
	cl_expect_none(cl);
	settle();
	expect_pub(w, "will/t", "gone", 1, false);
	cr_assert_eq(stats(0)->protocol_errors, 1);
	cr_assert_eq(stats(0)->wills_published, 1);
}

Test(core_engine, publish_before_connect_closes, .init = start1)
{
	struct client *cl = cl_new(0);

	cl->version = SMQ_V311;
	publish_ex(cl, "a", "x", 0, false, 0);
	cr_assert(cl->close_req);
	cl_expect_none(cl);
}

Test(core_engine, garbage_first_packet_closes, .init = start1)
{
	static const uint8_t junk[] = { 0x00, 0x00 };
	struct client *cl = cl_new(0);

	cl->version = SMQ_V311;
	cl_bytes(cl, junk, sizeof(junk));
	cr_assert(cl->close_req);
}

Test(core_engine, suback_from_client_closes_and_publishes_will, .init = start1)
{
	struct client *w = watcher(0, "will/t");
	struct client *cl = with_will(0, "bad");
	static const uint8_t suback[] = { 0x90, 3, 0, 1, 0 };

	cl_bytes(cl, suback, sizeof(suback));
	cr_assert(cl->close_req);
	settle();
	expect_pub(w, "will/t", "gone", 1, false);
}

Test(core_engine, wildcard_in_publish_topic_closes_MQTT_3_3_2_2, .init = start1)
{
	struct client *w = watcher(0, "#");
	struct client *cl = with_will(0, "bad");

	publish_ex(cl, "a/+", "x", 0, false, 0);
	cr_assert(cl->close_req);
	settle();
	expect_pub(w, "will/t", "gone", 1, false);	/* and not the bad publish */
	cl_expect_none(w);
}

Test(core_engine, reserved_flags_close_the_connection, .init = start1)
{
	struct client *cl = connect_clean(0, "a");
	static const uint8_t ping_bad_flags[] = { 0xC1, 0 };

	cl_bytes(cl, ping_bad_flags, sizeof(ping_bad_flags));
	cr_assert(cl->close_req);
}

Test(core_engine, oversize_packet_closes)
{
	struct client *cl;
	char big[300];

	world_init(1);
	W.cfg.max_packet_size = 256;
	world_start();
	cl = connect_clean(0, "a");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	publish_ex(cl, "t", big, 0, false, 0);
	cr_assert(cl->close_req);
}

Test(core_engine, packets_after_disconnect_are_ignored, .init = start1)
{
	struct client *sub = connect_clean(0, "sub");
	struct client *pub = connect_clean(0, "pub");
	struct smq_packet d = { .type = SMQ_DISCONNECT, .version = SMQ_V311 };
	struct smq_packet p = { .type = SMQ_PUBLISH, .version = SMQ_V311 };
	uint8_t buf[64];
	long n;

	subscribe(sub, "t", 0, 0);
	p.publish.topic = S("t");
	p.publish.payload = S("late");
	n = smq_encode(&d, buf, sizeof(buf));
	n += smq_encode(&p, buf + n, sizeof(buf) - (size_t)n);
	cl_bytes(pub, buf, (size_t)n);	/* one read: DISCONNECT, then a PUBLISH */
	cr_assert(pub->close_req);
	settle();
	cl_expect_none(sub);
	cr_assert_eq(stats(0)->msgs_in, 0);
}

Test(core_engine, idle_connection_holds_no_output_buffer, .init = start1)
{
	struct client *cl = connect_clean(0, "a");
	struct iovec iov[2];

	drain(cl);
	cr_assert_eq(smq_econn_out_iov(cl->c, iov, 2), 0);
	cr_assert_eq(smq_econn_out_pending(cl->c), 0);
	cr_assert_eq(cl->sends, 1, "one want_send for the CONNACK");
}

Test(core_engine, idle_connection_holds_no_rare_state, .init = start1)
{
	struct client *cl = connect_clean(0, "a");

	drain(cl);
	cr_assert_null(cl->c->rare, "connect-time state is dropped once LIVE");
	cr_assert_null(cl->c->more, "no will, alias, backlog or held packet");
	cr_assert_null(cl->c->s->rare, "a clean session needs no rare part");
	cr_assert_eq(smq_econn_client_id(cl->c), cl->c->s->client_id,
		     "the log name borrows the session's client id");
}

Test(core_engine, expiring_session_gets_its_rare_part_at_connect, .init = start1)
{
	struct copts o = { .clean = false };
	struct client *cl = connect_ex(0, "p", &o, 0, false);

	cr_assert_not_null(cl->c->s->rare);
}

Test(core_engine, taken_over_connection_keeps_its_log_name, .init = start1)
{
	struct client *first = connect_clean(0, "dup");
	struct client *second = connect_clean(0, "dup");

	/* clean start: the first session ended (freed) with the takeover */
	cr_assert(first->close_req);
	cr_assert_str_eq(smq_econn_client_id(first->c), "dup");
	cr_assert_neq(smq_econn_client_id(first->c), second->c->s->client_id);
	settle();
}

/* ---- publish / subscribe ------------------------------------------------ */

Test(core_engine, ping_gets_pingresp, .init = start1)
{
	struct client *cl = connect_clean(0, "a");
	struct smq_packet p = { .type = SMQ_PINGREQ };

	cl_send(cl, &p);
	cl_expect(cl, SMQ_PINGRESP);
}

Test(core_engine, qos0_roundtrip, .init = start1)
{
	struct client *sub = connect_clean(0, "sub");
	struct client *pub = connect_clean(0, "pub");

	subscribe(sub, "a/b", 0, 0);
	publish(pub, "a/b", "hello", 0, false);
	expect_pub(sub, "a/b", "hello", 0, false);
	cl_expect_none(pub);
	cr_assert_eq(stats(0)->msgs_in, 1);
	cr_assert_eq(stats(0)->msgs_out, 1);
}

Test(core_engine, outbound_qos_is_min_of_published_and_granted, .init = start1)
{
	struct client *s0 = connect_clean(0, "s0");
	struct client *s1 = connect_clean(0, "s1");
	struct client *s2 = connect_clean(0, "s2");
	struct client *pub = connect_clean(0, "pub");

	subscribe(s0, "t", 0, 0);
	subscribe(s1, "t", 1, 1);
	subscribe(s2, "t", 2, 2);
	publish(pub, "t", "p2", 2, false);
	expect_pub(s0, "t", "p2", 0, false);
	expect_pub(s1, "t", "p2", 1, false);
	expect_pub(s2, "t", "p2", 2, false);
	publish(pub, "t", "p1", 1, false);
	expect_pub(s0, "t", "p1", 0, false);
	expect_pub(s1, "t", "p1", 1, false);
	expect_pub(s2, "t", "p1", 1, false);
}

Test(core_engine, granted_qos_capped_by_max_qos)
{
	struct client *cl;

	world_init(1);
	W.cfg.max_qos = 1;
	world_start();
	cl = connect_clean(0, "a");
	subscribe(cl, "t", 2, 1);
}

Test(core_engine, qos1_outbound_needs_puback, .init = start1)
{
	struct client *sub = connect_clean(0, "sub");
	struct client *pub = connect_clean(0, "pub");
	struct smq_packet *p;

	subscribe(sub, "t", 1, 1);
	publish(pub, "t", "x", 1, false);
	p = expect_pub(sub, "t", "x", 1, false);
	cr_assert_neq(p->packet_id, 0);
	cr_assert_not(p->publish.dup);
	send_ack(sub, SMQ_PUBACK, p->packet_id);
	cl_expect_none(sub);
}

Test(core_engine, qos2_outbound_full_flow, .init = start1)
{
	struct client *sub = connect_clean(0, "sub");
	struct client *pub = connect_clean(0, "pub");
	struct smq_packet *p;
	uint16_t pid;

	subscribe(sub, "t", 2, 2);
	publish(pub, "t", "x", 2, false);
	p = expect_pub(sub, "t", "x", 2, false);
	pid = p->packet_id;
	send_ack(sub, SMQ_PUBREC, pid);
	cr_assert_eq(cl_expect(sub, SMQ_PUBREL)->packet_id, pid);
	send_ack(sub, SMQ_PUBREC, pid);	/* duplicate PUBREC: PUBREL again */
	cr_assert_eq(cl_expect(sub, SMQ_PUBREL)->packet_id, pid);
	send_ack(sub, SMQ_PUBCOMP, pid);
	cl_expect_none(sub);
	cr_assert_not(sub->close_req);
}

Test(core_engine, qos2_inbound_resend_before_pubrel_delivered_once_MQTT_4_3_3_2, .init = start1)
{
	struct client *sub = connect_clean(0, "sub");
	struct client *pub = connect_clean(0, "pub");
	struct smq_packet p = { .type = SMQ_PUBLISH, .flags = 4 | 8, .packet_id = 5 };

	subscribe(sub, "t", 0, 0);
	publish_ex(pub, "t", "once", 2, false, 5);
	cr_assert_eq(cl_expect(pub, SMQ_PUBREC)->packet_id, 5);
	p.publish.qos = 2;
	p.publish.dup = true;
	p.publish.topic = S("t");
	p.publish.payload = S("once");
	cl_send(pub, &p);
	cr_assert_eq(cl_expect(pub, SMQ_PUBREC)->packet_id, 5);
	send_ack(pub, SMQ_PUBREL, 5);
	cr_assert_eq(cl_expect(pub, SMQ_PUBCOMP)->packet_id, 5);
	settle();
	expect_pub(sub, "t", "once", 0, false);
	cl_expect_none(sub);
	/* after PUBREL the id is free: the same id is a new message */
	publish_ex(pub, "t", "twice", 2, false, 5);
	cl_expect(pub, SMQ_PUBREC);
	settle();
	expect_pub(sub, "t", "twice", 0, false);
}

Test(core_engine, unknown_acks_do_not_break_the_connection, .init = start1)
{
	struct client *cl = connect_clean(0, "a");

	send_ack(cl, SMQ_PUBACK, 99);
	send_ack(cl, SMQ_PUBCOMP, 98);
	send_ack(cl, SMQ_PUBREL, 97);
	cr_assert_eq(cl_expect(cl, SMQ_PUBCOMP)->packet_id, 97);
	send_ack(cl, SMQ_PUBREC, 96);
	cr_assert_eq(cl_expect(cl, SMQ_PUBREL)->packet_id, 96);
	cr_assert_not(cl->close_req);
}

Test(core_engine, order_is_kept_per_publisher, .init = start1)
{
	struct client *sub = connect_clean(0, "sub");
	struct client *pub = connect_clean(0, "pub");
	char b[16];

	subscribe(sub, "t", 1, 1);
	for (int i = 0; i < 10; i++) {
		snprintf(b, sizeof(b), "%d", i);
		publish(pub, "t", b, (uint8_t)(i % 3), false);
	}
	for (int i = 0; i < 10; i++) {
		struct smq_packet *p;

		snprintf(b, sizeof(b), "%d", i);
		p = expect_pub(sub, "t", b, i % 3 ? 1 : 0, false);
		if (p->publish.qos)
			send_ack(sub, SMQ_PUBACK, p->packet_id);
	}
}

Test(core_engine, overlapping_subscriptions_deliver_one_copy_at_max_qos, .init = start1)
{
	struct client *sub = connect_clean(0, "sub");
	struct client *pub = connect_clean(0, "pub");

	subscribe(sub, "a/#", 0, 0);
	subscribe(sub, "a/+", 2, 2);
	subscribe(sub, "a/b", 1, 1);
	publish(pub, "a/b", "x", 2, false);
	expect_pub(sub, "a/b", "x", 2, false);
	cl_expect_none(sub);
}

Test(core_engine, resubscribe_replaces_the_subscription, .init = start1)
{
	struct client *sub = connect_clean(0, "sub");
	struct client *pub = connect_clean(0, "pub");

	subscribe(sub, "t", 2, 2);
	subscribe(sub, "t", 0, 0);
	publish(pub, "t", "x", 2, false);
	expect_pub(sub, "t", "x", 0, false);
	cl_expect_none(sub);
	cr_assert_eq(stats(0)->subscriptions, 1);
}

Test(core_engine, unsubscribe_stops_delivery, .init = start1)
{
	struct client *sub = connect_clean(0, "sub");
	struct client *pub = connect_clean(0, "pub");
	struct smq_str f = S("t");
	struct smq_packet u = { .type = SMQ_UNSUBSCRIBE, .flags = 2, .packet_id = 3 };

	subscribe(sub, "t", 0, 0);
	u.list.filters = &f;
	u.list.count = 1;
	cl_send(sub, &u);
	cr_assert_eq(cl_expect(sub, SMQ_UNSUBACK)->packet_id, 3);
	/* unsubscribing from nothing is still acknowledged [MQTT-3.10.4-4] */
	u.packet_id = 4;
	cl_send(sub, &u);
	cr_assert_eq(cl_expect(sub, SMQ_UNSUBACK)->packet_id, 4);
	publish(pub, "t", "x", 0, false);
	cl_expect_none(sub);
	cr_assert_eq(stats(0)->subscriptions, 0);
}

Test(core_engine, several_filters_in_one_subscribe, .init = start1)
{
	struct client *sub = connect_clean(0, "sub");
	struct smq_sub_entry en[3] = { { S("a"), 1 }, { S("b/#/c"), 1 }, { S("$share/g/x"), 1 } };
	struct smq_packet p = { .type = SMQ_SUBSCRIBE, .flags = 2, .packet_id = 8 };
	struct smq_packet *ack;

	p.list.entries = en;
	p.list.count = 3;
	cl_send(sub, &p);
	ack = cl_expect(sub, SMQ_SUBACK);
	cr_assert_eq(ack->list.count, 3);
	cr_assert_eq(ack->list.raw.p[0], 1);
	cr_assert_eq(ack->list.raw.p[1], 0x80, "invalid filter refused");
	cr_assert_eq(ack->list.raw.p[2], 1, "shared subscriptions are granted too");
}

Test(core_engine, dollar_topics_not_matched_by_leading_wildcards_MQTT_4_7_2_1, .init = start1)
{
	struct client *all = connect_clean(0, "all");
	struct client *sys = connect_clean(0, "sys");

	subscribe(all, "#", 0, 0);
	subscribe(sys, "$SYS/#", 0, 0);
	cr_assert_eq(smq_engine_publish(W.e[0], S("$SYS/broker/uptime"), S("5"), 0, false, W.now),
		     0);
	settle();
	expect_pub(sys, "$SYS/broker/uptime", "5", 0, false);
	cl_expect_none(all);
}

Test(core_engine, client_publish_to_sys_is_acked_and_dropped, .init = start1)
{
	struct client *sys = connect_clean(0, "sys");
	struct client *pub = connect_clean(0, "pub");

	subscribe(sys, "$SYS/#", 0, 0);
	publish(pub, "$SYS/fake", "x", 1, false);
	cl_expect_none(sys);
	cr_assert_eq(stats(0)->dropped_sys, 1);
	cr_assert_not(pub->close_req);
}

/* ---- retained ----------------------------------------------------------- */

Test(core_engine, retained_sent_to_new_subscriber_with_retain_1, .init = start1)
{
	struct client *pub = connect_clean(0, "pub");
	struct client *old = connect_clean(0, "old");
	struct client *sub;

	subscribe(old, "r/#", 1, 1);
	publish(pub, "r/1", "v1", 1, true);
	/* existing subscribers get RETAIN=0 [MQTT-3.3.1-9] */
	send_ack(old, SMQ_PUBACK, expect_pub(old, "r/1", "v1", 1, false)->packet_id);
	sub = connect_clean(0, "sub");
	subscribe(sub, "r/+", 2, 2);
	expect_pub(sub, "r/1", "v1", 1, true);	/* [MQTT-3.3.1-8] */
	cl_expect_none(sub);
}

Test(core_engine, retained_replaced_and_deleted_by_empty_payload, .init = start1)
{
	struct client *pub = connect_clean(0, "pub");
	struct client *a = connect_clean(0, "a");
	struct client *b;

	publish(pub, "r", "v1", 0, true);
	publish(pub, "r", "v2", 0, true);
	subscribe(a, "r", 0, 0);
	expect_pub(a, "r", "v2", 0, true);
	cl_expect_none(a);
	publish(pub, "r", "", 0, true);
	/* the deleting publish still reaches current subscribers */
	expect_pub(a, "r", "", 0, false);
	b = connect_clean(0, "b");
	subscribe(b, "#", 0, 0);
	cl_expect_none(b);
	cr_assert_eq(smq_retain_count(W.ret), 0);
}

Test(core_engine, resubscribe_resends_retained_MQTT_3_8_4_3, .init = start1)
{
	struct client *pub = connect_clean(0, "pub");
	struct client *a = connect_clean(0, "a");

	publish(pub, "r/x", "v", 0, true);
	subscribe(a, "r/#", 0, 0);
	expect_pub(a, "r/x", "v", 0, true);
	subscribe(a, "r/#", 0, 0);
	expect_pub(a, "r/x", "v", 0, true);
}

Test(core_engine, retained_qos_is_min_of_stored_and_granted, .init = start1)
{
	struct client *pub = connect_clean(0, "pub");
	struct client *a = connect_clean(0, "a");

	publish(pub, "r", "v", 2, true);
	subscribe(a, "r", 1, 1);
	expect_pub(a, "r", "v", 1, true);
}

Test(core_engine, retain_unavailable_closes_a_retained_publish)
{
	struct client *pub;

	world_init(1);
	W.cfg.retain_available = false;
	world_start();
	pub = connect_clean(0, "pub");
	publish_ex(pub, "r", "v", 0, true, 0);
	cr_assert(pub->close_req);
	cr_assert_eq(smq_retain_count(W.ret), 0);
}

/* ---- wills -------------------------------------------------------------- */

Test(core_engine, will_discarded_on_disconnect, .init = start1)
{
	struct client *w = watcher(0, "will/#");
	struct client *cl = with_will(0, "polite");

	disconnect(cl);
	cl_expect_none(w);
	cr_assert_eq(stats(0)->wills_published, 0);
}

Test(core_engine, will_published_on_connection_loss, .init = start1)
{
	struct client *w = watcher(0, "will/#");
	struct client *cl = with_will(0, "rude");

	lose(cl);
	expect_pub(w, "will/t", "gone", 1, false);
}

Test(core_engine, retained_will_is_stored, .init = start1)
{
	static const struct will will = { "will/r", "bye", 0, true, 0 };
	struct copts o = { .clean = true, .will = &will };
	struct client *cl = connect_ex(0, "r", &o, 0, false);
	struct client *late;

	lose(cl);
	late = connect_clean(0, "late");
	subscribe(late, "will/#", 0, 0);
	expect_pub(late, "will/r", "bye", 0, true);
}

/* ---- keepalive ---------------------------------------------------------- */

Test(core_engine, keepalive_timeout_at_one_and_a_half_times, .init = start1)
{
	static const struct will will = { "will/t", "ka", 0, false, 0 };
	struct copts o = { .clean = true, .keepalive = 10, .will = &will };
	struct client *w = watcher(0, "will/#");
	struct client *cl = connect_ex(0, "sleepy", &o, 0, false);
	struct smq_packet ping = { .type = SMQ_PINGREQ };

	advance(14000);
	cl_send(cl, &ping);	/* activity resets the clock */
	cl_expect(cl, SMQ_PINGRESP);
	advance(14000);
	cr_assert_not(cl->close_req);
	advance(1001);
	cr_assert(cl->closed, "silent for 15 s with keepalive 10");
	expect_pub(w, "will/t", "ka", 0, false);
	cr_assert_eq(stats(0)->keepalive_timeouts, 1);
}

Test(core_engine, keepalive_above_max_is_enforced_at_max)
{
	struct copts o = { .clean = true, .keepalive = 600 };
	struct client *cl;

	world_init(1);
	W.cfg.max_keepalive = 10;
	world_start();
	cl = connect_ex(0, "k", &o, 0, false);
	advance(15001);
	cr_assert(cl->closed);
}

Test(core_engine, keepalive_zero_never_times_out, .init = start1)
{
	struct client *cl = connect_clean(0, "k");

	advance(3600 * 1000);
	cr_assert_not(cl->close_req);
}

/* ---- sessions ----------------------------------------------------------- */

Test(core_engine, takeover_closes_first_connection_and_publishes_its_will, .init = start1)
{
	struct client *w = watcher(0, "will/#");
	struct client *first = with_will(0, "dup");
	struct client *second = connect_clean(0, "dup");

	cr_assert(first->close_req);
	cr_assert_not(second->close_req);
	settle();
	expect_pub(w, "will/t", "gone", 1, false);
	cr_assert_eq(stats(0)->takeovers, 1);
	cr_assert_eq(stats(0)->connections, 2);
}

Test(core_engine, takeover_keeps_persistent_session, .init = start1)
{
	struct copts o = { .clean = false };
	struct client *a = connect_ex(0, "p", &o, 0, false);
	struct client *b, *pub = connect_clean(0, "pub");

	subscribe(a, "t", 1, 1);
	b = connect_ex(0, "p", &o, 0, true);
	settle();
	publish(pub, "t", "x", 1, false);
	expect_pub(b, "t", "x", 1, false);
	cl_expect_none(a);
}

Test(core_engine, persistent_session_queues_offline_and_resends_with_dup, .init = start1)
{
	struct copts o = { .clean = false };
	struct client *a = connect_ex(0, "p", &o, 0, false);
	struct client *pub = connect_clean(0, "pub");
	struct smq_packet *p;
	uint16_t pid;

	subscribe(a, "t", 2, 2);
	publish(pub, "t", "inflight", 1, false);
	p = expect_pub(a, "t", "inflight", 1, false);
	pid = p->packet_id;
	lose(a);	/* never acknowledged */
	publish(pub, "t", "q0", 0, false);	/* QoS 0 is not queued offline */
	publish(pub, "t", "q1", 1, false);
	publish(pub, "t", "q2", 2, false);
	a = connect_ex(0, "p", &o, 0, true);
	p = expect_pub(a, "t", "inflight", 1, false);
	cr_assert(p->publish.dup, "re-sent with DUP [MQTT-4.4.0-1]");
	cr_assert_eq(p->packet_id, pid, "same packet id");
	p = expect_pub(a, "t", "q1", 1, false);
	cr_assert_not(p->publish.dup);
	expect_pub(a, "t", "q2", 2, false);
	cl_expect_none(a);
}

Test(core_engine, pubrel_resent_on_reconnect, .init = start1)
{
	struct copts o = { .clean = false };
	struct client *a = connect_ex(0, "p", &o, 0, false);
	struct client *pub = connect_clean(0, "pub");
	uint16_t pid;

	subscribe(a, "t", 2, 2);
	publish(pub, "t", "x", 2, false);
	pid = expect_pub(a, "t", "x", 2, false)->packet_id;
	send_ack(a, SMQ_PUBREC, pid);
	cl_expect(a, SMQ_PUBREL);
	lose(a);
	a = connect_ex(0, "p", &o, 0, true);
	cr_assert_eq(cl_expect(a, SMQ_PUBREL)->packet_id, pid);
	send_ack(a, SMQ_PUBCOMP, pid);
	cl_expect_none(a);
}

Test(core_engine, clean_session_starts_and_ends_empty, .init = start1)
{
	struct copts persistent = { .clean = false };
	struct client *a = connect_ex(0, "c", &persistent, 0, false);
	struct client *pub = connect_clean(0, "pub");
	struct client *b;

	subscribe(a, "t", 1, 1);
	lose(a);
	publish(pub, "t", "x", 1, false);
	b = connect_clean(0, "c");	/* discards the stored session */
	cl_expect_none(b);
	publish(pub, "t", "y", 1, false);
	cl_expect_none(b);
	lose(b);
	cr_assert_eq(stats(0)->sessions, 1, "only pub's session is left");
	connect_ex(0, "c", &persistent, 0, false);
}

Test(core_engine, persistent_session_survives_clean_disconnect, .init = start1)
{
	struct copts o = { .clean = false };
	struct client *a = connect_ex(0, "p", &o, 0, false);
	struct client *pub = connect_clean(0, "pub");

	subscribe(a, "t", 1, 1);
	disconnect(a);
	publish(pub, "t", "x", 1, false);
	a = connect_ex(0, "p", &o, 0, true);
	expect_pub(a, "t", "x", 1, false);
}

Test(core_engine, persistent_client_expiration_drops_old_sessions)
{
	struct copts o = { .clean = false };
	struct client *a;

	world_init(1);
	W.cfg.persistent_client_expiration = 60;
	world_start();
	a = connect_ex(0, "p", &o, 0, false);
	subscribe(a, "t", 1, 1);
	lose(a);
	advance(59000);
	cr_assert_eq(stats(0)->sessions, 1);
	advance(1001);
	cr_assert_eq(stats(0)->sessions, 0);
	cr_assert_eq(stats(0)->subscriptions, 0);
	connect_ex(0, "p", &o, 0, false);
}

Test(core_engine, qos0_queued_offline_only_when_configured)
{
	struct copts o = { .clean = false };
	struct client *a, *pub;

	world_init(1);
	W.cfg.queue_qos0_messages = true;
	world_start();
	a = connect_ex(0, "p", &o, 0, false);
	pub = connect_clean(0, "pub");
	subscribe(a, "t", 0, 0);
	lose(a);
	publish(pub, "t", "x", 0, false);
	a = connect_ex(0, "p", &o, 0, true);
	expect_pub(a, "t", "x", 0, false);
}

/* ---- limits ------------------------------------------------------------- */

Test(core_engine, inflight_window_holds_back_until_ack)
{
	struct client *sub, *pub;
	struct smq_packet *p;

	world_init(1);
	W.cfg.max_inflight_messages = 2;
	world_start();
	sub = connect_clean(0, "sub");
	pub = connect_clean(0, "pub");
	subscribe(sub, "t", 1, 1);
	publish(pub, "t", "1", 1, false);
	publish(pub, "t", "2", 1, false);
	publish(pub, "t", "3", 1, false);
	p = expect_pub(sub, "t", "1", 1, false);
	expect_pub(sub, "t", "2", 1, false);
	cl_expect_none(sub);
	send_ack(sub, SMQ_PUBACK, p->packet_id);
	expect_pub(sub, "t", "3", 1, false);
}

Test(core_engine, queue_full_drops_and_counts)
{
	struct copts o = { .clean = false };
	struct client *a, *pub;

	world_init(1);
	W.cfg.max_queued_messages = 2;
	world_start();
	a = connect_ex(0, "p", &o, 0, false);
	pub = connect_clean(0, "pub");
	subscribe(a, "t", 1, 1);
	lose(a);
	publish(pub, "t", "1", 1, false);
	publish(pub, "t", "2", 1, false);
	publish(pub, "t", "3", 1, false);
	cr_assert_eq(stats(0)->dropped_queue_full, 1);
	a = connect_ex(0, "p", &o, 0, true);
	expect_pub(a, "t", "1", 1, false);
	expect_pub(a, "t", "2", 1, false);
	cl_expect_none(a);
}

Test(core_engine, queue_bytes_limit_drops)
{
	struct copts o = { .clean = false };
	struct client *a, *pub;

	world_init(1);
	W.cfg.max_queued_bytes = 10;
	world_start();
	a = connect_ex(0, "p", &o, 0, false);
	pub = connect_clean(0, "pub");
	subscribe(a, "t", 1, 1);
	lose(a);
	publish(pub, "t", "12345678", 1, false);	/* 9 bytes with topic */
	publish(pub, "t", "12", 1, false);
	cr_assert_eq(stats(0)->dropped_queue_full, 1);
}

Test(core_engine, qos0_dropped_beyond_write_buffer)
{
	struct client *sub, *pub;
	char big[200];
	int got = 0;

	world_init(1);
	W.cfg.client_max_write_buffer = 1000;
	world_start();
	sub = connect_clean(0, "sub");
	pub = connect_clean(0, "pub");
	subscribe(sub, "t", 0, 0);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	/* sub never reads: its output grows to the limit (plus the message
	 * that crossed it), then QoS 0 drops */
	for (int i = 0; i < 10; i++)
		publish(pub, "t", big, 0, false);
	cr_assert_leq(smq_econn_out_pending(sub->c), 1000 + 210);
	cr_assert_geq(smq_econn_out_pending(sub->c), 1000);
	cr_assert_gt(stats(0)->dropped_qos0, 0);
	while (cl_recv(sub))
		got++;
	cr_assert_eq(got + (int)stats(0)->dropped_qos0, 10);
	/* once drained, delivery resumes */
	publish(pub, "t", "again", 0, false);
	expect_pub(sub, "t", "again", 0, false);
}

Test(core_engine, qos0_larger_than_the_write_buffer_reaches_an_idle_subscriber)
{
	struct client *sub, *pub;
	static char big[3000];

	world_init(1);
	W.cfg.client_max_write_buffer = 1000;
	world_start();
	sub = connect_clean(0, "sub");
	pub = connect_clean(0, "pub");
	subscribe(sub, "big", 0, 0);
	memset(big, 'b', sizeof(big) - 1);
	publish(pub, "big", big, 0, false);
	publish(pub, "big", big, 0, false);	/* the first still waits: dropped */
	expect_pub(sub, "big", big, 0, false);
	cl_expect_none(sub);
	cr_assert_eq(stats(0)->dropped_qos0, 1);
	publish(pub, "big", big, 0, false);	/* drained: delivered again */
	expect_pub(sub, "big", big, 0, false);
}

Test(core_engine, backlogged_when_output_reaches_write_buffer)
{
	struct client *cl;
	struct smq_packet ping = { .type = SMQ_PINGREQ };

	world_init(1);
	W.cfg.client_max_write_buffer = 64;
	world_start();
	cl = connect_clean(0, "slow");
	cr_assert_not(smq_econn_backlogged(cl->c, W.e[0]));
	for (int i = 0; i < 40; i++)
		cl_send(cl, &ping);
	cr_assert(smq_econn_backlogged(cl->c, W.e[0]));
	drain(cl);
	cr_assert_not(smq_econn_backlogged(cl->c, W.e[0]));
}

Test(core_engine, large_payload_is_referenced_not_copied, .init = start1)
{
	struct client *sub = connect_clean(0, "sub");
	struct client *sub2 = connect_clean(0, "sub2");
	struct client *pub = connect_clean(0, "pub");
	static char big[5000];
	struct iovec iov[8];
	int n;

	memset(big, 'y', sizeof(big) - 1);
	subscribe(sub, "t", 0, 0);
	subscribe(sub2, "t", 0, 0);
	publish(pub, "t", big, 0, false);
	n = smq_econn_out_iov(sub->c, iov, 8);
	cr_assert_eq(n, 2, "header chunk + shared payload");
	cr_assert_eq(iov[1].iov_len, sizeof(big) - 1);
	cr_assert_eq(smq_econn_out_iov(sub2->c, iov + 2, 6), 2);
	cr_assert_eq(iov[1].iov_base, iov[3].iov_base, "both point at one message body");
	/* a short send resumes where it stopped */
	smq_econn_out_done(W.e[0], sub->c, 3, W.now);
	n = smq_econn_out_iov(sub->c, iov, 8);
	cr_assert_eq(n, 2);
	expect_pub(sub2, "t", big, 0, false);
}

Test(core_engine, short_sends_deliver_every_byte_once, .init = start1)
{
	struct client *sub = connect_clean(0, "sub");
	struct client *pub = connect_clean(0, "pub");
	static char big[3000];
	struct iovec iov[8];
	uint8_t *got = NULL;
	size_t len = 0;
	struct smq_packet pkt;

	memset(big, 'z', sizeof(big) - 1);
	subscribe(sub, "t", 0, 0);
	publish(pub, "t", "small", 0, false);
	publish(pub, "t", big, 0, false);
	publish(pub, "t", "tail", 0, false);
	while (smq_econn_out_iov(sub->c, iov, 8) > 0) {
		size_t take = iov[0].iov_len < 7 ? iov[0].iov_len : 7;

		got = realloc(got, len + take);
		memcpy(got + len, iov[0].iov_base, take);
		len += take;
		smq_econn_out_done(W.e[0], sub->c, take, W.now);
	}
	{
		const uint8_t *in = got;
		size_t left = len;
		struct smq_reader r;
		int k = 0;

		smq_reader_init(&r, 0, SMQ_V311);
		while (smq_reader_next(&r, &in, &left, &pkt) == 1)
			k++;
		cr_assert_eq(k, 3);
		cr_assert_eq(left, 0);
		smq_reader_fini(&r);
	}
	free(got);
}

/* ---- shards ------------------------------------------------------------- */

/* A fresh client id whose home is @shard of W.n (never the same twice). */
static const char *id_on(unsigned shard, const char *prefix)
{
	static char ids[16][32];
	static int k, next;
	char *b = ids[k++ % 16];

	for (;;) {
		snprintf(b, 32, "%s%d", prefix, next++);
		if (smq_engine_home_shard(S(b), W.n) == shard)
			return b;
	}
}

Test(core_engine, home_shard_is_stable_and_spread)
{
	int hits[4] = { 0 };
	char b[24];

	for (int i = 0; i < 400; i++) {
		snprintf(b, sizeof(b), "c%d", i);
		hits[smq_engine_home_shard(S(b), 4)]++;
	}
	for (int i = 0; i < 4; i++)
		cr_assert_gt(hits[i], 50);
	cr_assert_eq(smq_engine_home_shard(S("x"), 1), 0);
	cr_assert_eq(smq_engine_home_shard(S("abc"), 3), smq_engine_home_shard(S("abc"), 3));
}

Test(core_engine, connect_on_wrong_shard_is_handed_off)
{
	const char *id;
	struct client *cl;

	world_init(3);
	world_start();
	id = id_on(2, "h");
	cl = connect_clean(0, id);	/* cl_bytes follows the hand-off */
	cr_assert_eq(cl->shard, 2);
	cr_assert_eq(stats(2)->connections, 1);
	cr_assert_eq(stats(0)->connections, 0);
	cr_assert_eq(stats(0)->sockets, 0, "the detached conn is freed");
}

Test(core_engine, handoff_carries_bytes_after_connect)
{
	struct client *cl;
	struct smq_packet c = { .type = SMQ_CONNECT, .version = SMQ_V311 };
	struct smq_packet ping = { .type = SMQ_PINGREQ, .version = SMQ_V311 };
	uint8_t buf[128];
	long n;

	world_init(2);
	world_start();
	c.connect.proto_name = S("MQTT");
	c.connect.level = 4;
	c.connect.clean = true;
	c.connect.client_id = S(id_on(1, "x"));
	n = smq_encode(&c, buf, sizeof(buf));
	n += smq_encode(&ping, buf + n, sizeof(buf) - (size_t)n);
	cl = cl_new(0);
	cl->version = SMQ_V311;
	cl_bytes(cl, buf, (size_t)n);
	cr_assert_eq(cl->shard, 1);
	cl_expect(cl, SMQ_CONNACK);
	cl_expect(cl, SMQ_PINGRESP);
}

Test(core_engine, zero_length_id_stays_on_accepting_shard)
{
	struct client *cl;

	world_init(4);
	world_start();
	cl = connect_clean(3, "");
	cr_assert_eq(cl->shard, 3);
	cr_assert_eq(smq_engine_home_shard(S(smq_econn_client_id(cl->c)), 4), 3);
}

Test(core_engine, publish_reaches_subscribers_on_other_shards)
{
	struct client *s1, *s2, *s3, *pub;

	world_init(4);
	world_start();
	s1 = connect_clean(1, id_on(1, "s"));
	s2 = connect_clean(2, id_on(2, "s"));
	s3 = connect_clean(3, id_on(3, "s"));
	pub = connect_clean(0, id_on(0, "p"));
	subscribe(s1, "a/+", 1, 1);
	subscribe(s2, "a/#", 0, 0);
	subscribe(s3, "b", 0, 0);
	publish(pub, "a/x", "hi", 1, false);
	expect_pub(s1, "a/x", "hi", 1, false);
	expect_pub(s2, "a/x", "hi", 0, false);
	cl_expect_none(s3);
	cr_assert_eq(W.forwards, 2, "one forward per interested shard");
	cr_assert_eq(stats(0)->msgs_forwarded, 2);
	cr_assert_eq(stats(1)->msgs_delivered, 1);
}

Test(core_engine, fan_out_costs_one_forward_per_shard)
{
	struct client *pub;

	world_init(2);
	world_start();
	for (int i = 0; i < 5; i++)
		subscribe(connect_clean(1, id_on(1, "f")), "t", 0, 0);
	pub = connect_clean(0, id_on(0, "p"));
	W.forwards = 0;
	publish(pub, "t", "x", 0, false);
	cr_assert_eq(W.forwards, 1);
	cr_assert_eq(stats(1)->msgs_out, 5);
}

Test(core_engine, interest_broadcast_only_on_first_and_last)
{
	struct client *a, *b;
	struct smq_str f = S("t");
	struct smq_packet u = { .type = SMQ_UNSUBSCRIBE, .flags = 2, .packet_id = 3 };

	world_init(2);
	world_start();
	a = connect_clean(1, id_on(1, "a"));
	b = connect_clean(1, id_on(1, "b"));
	subscribe(a, "t", 0, 0);
	subscribe(b, "t", 0, 0);
	cr_assert_eq(W.interests_on, 1);
	u.list.filters = &f;
	u.list.count = 1;
	cl_send(a, &u);
	cr_assert_eq(W.interests_off, 0);
	lose(b);	/* a clean session ending removes its subscriptions */
	cr_assert_eq(W.interests_off, 1);
	settle();
	W.forwards = 0;
	publish(connect_clean(0, id_on(0, "p")), "t", "x", 0, false);
	cr_assert_eq(W.forwards, 0, "no shard is interested any more");
}

Test(core_engine, takeover_works_across_accepting_shards)
{
	const char *id;
	struct client *a, *b;

	world_init(2);
	world_start();
	id = id_on(1, "t");
	a = connect_clean(0, id);
	b = connect_clean(0, id);
	cr_assert_eq(a->shard, 1);
	cr_assert_eq(b->shard, 1);
	cr_assert(a->close_req);
	cr_assert_not(b->close_req);
}

Test(core_engine, will_routes_to_other_shards)
{
	struct client *w, *cl;

	world_init(2);
	world_start();
	w = connect_clean(0, id_on(0, "w"));
	subscribe(w, "will/#", 1, 1);
	cl = with_will(1, id_on(1, "d"));
	lose(cl);
	expect_pub(w, "will/t", "gone", 1, false);
}

/* ---- the output queue ------------------------------------------------------ */

static int out_chunks(const struct smq_econn *c)
{
	int n = 0;

	for (const struct ochunk *k = c->oh; k; k = k->next)
		n++;
	return n;
}

/* Small and large PUBLISHes (copied whole, or a head plus the payload by
 * reference) queue without an allocation per delivery, and come out byte
 * for byte right however the kernel splits the sends. */
Test(core_engine, output_queue_mixed_sizes_partial_sends, .init = start1)
{
	static const size_t sizes[] = { 5, 600, 2000, 40, 513, 512, 9000 };
	enum { N = 120 };	/* the test client keeps at most 127 packets */
	struct client *sub = connect_clean(0, "sub");
	struct client *pub = connect_clean(0, "pub");
	static char payload[N][9001];
	struct iovec iov[3];

	subscribe(sub, "o/#", 0, 0);
	for (int i = 0; i < N; i++) {
		size_t len = sizes[i % 7];

		memset(payload[i], 'a' + i % 26, len);
		payload[i][len] = 0;
		publish(pub, "o/t", payload[i], 0, false);
	}
	/* 69 of them by reference: two spans each, 128 spans a chunk */
	cr_assert_leq(out_chunks(sub->c), 10, "%d chunks for %d deliveries", out_chunks(sub->c), N);
	srand(7);
	while (smq_econn_out_pending(sub->c)) {
		int n = smq_econn_out_iov(sub->c, iov, 3);
		size_t want = (size_t)(rand() % 700) + 1, took = 0;

		cr_assert_gt(n, 0);
		for (int i = 0; i < n && took < want; i++) {
			size_t k = iov[i].iov_len < want - took ? iov[i].iov_len : want - took;

			sub->in = realloc(sub->in, sub->in_len + k);
			memcpy(sub->in + sub->in_len, iov[i].iov_base, k);
			sub->in_len += k;
			took += k;
		}
		smq_econn_out_done(W.e[0], sub->c, took, W.now);
	}
	cr_assert_null(sub->c->oh, "an idle connection keeps no chunk");
	for (int i = 0; i < N; i++)
		expect_pub(sub, "o/t", payload[i], 0, false);
	cl_expect_none(sub);
}

/* A SUBSCRIBE that makes a filter new to its shard: the SUBACK, and what
 * follows it, wait until every other shard has applied the news. */
static void subscribe_gated(struct client *cl, const char *filter)
{
	struct smq_sub_entry en = { S(filter), 0 };
	struct smq_packet p = { .type = SMQ_SUBSCRIBE, .flags = 2, .packet_id = 9 };

	p.list.entries = &en;
	p.list.count = 1;
	cl_send(cl, &p);
	settle();
	cl_expect_none(cl);
	cr_assert_gt(smq_econn_out_pending(cl->c), 0, "the SUBACK is queued");
}

Test(core_engine, suback_waits_until_every_shard_knows_the_filter)
{
	struct client *a, *b, *p;
	int sends;

	world_init(2);
	W.gates = true;
	world_start();
	a = connect_clean(0, id_on(0, "a"));
	b = connect_clean(0, id_on(0, "b"));
	p = connect_clean(1, id_on(1, "p"));
	W.iticket = 1;
	subscribe_gated(a, "g/t");
	/* shard 1 knows now (settle applied it): its publish reaches a, behind the gate */
	publish(p, "g/t", "x", 0, false);
	cl_expect_none(a);
	smq_engine_interest_synced(W.e[0], 0);
	cl_expect_none(a);
	sends = a->sends;
	smq_engine_interest_synced(W.e[0], 1);
	cr_assert_gt(a->sends, sends, "the I/O layer is asked to send");
	cr_assert_eq(cl_expect(a, SMQ_SUBACK)->packet_id, 9);
	expect_pub(a, "g/t", "x", 0, false);
	/* a filter the shard already has is no news: answered at once */
	W.iticket = 2;
	subscribe(b, "g/t", 0, 0);
	/* a ticket every shard has already applied: no wait either */
	W.iticket = 1;
	subscribe(b, "g/new", 0, 0);
}

Test(core_engine, a_closing_connection_sends_its_held_suback)
{
	struct client *a;
	struct copts o = { .clean = true };

	world_init(2);
	W.gates = true;
	world_start();
	a = connect_clean(0, id_on(0, "a"));
	W.iticket = 1;
	subscribe_gated(a, "g/t");
	send_connect(a, "again", &o);	/* a second CONNECT: closed [MQTT-3.1.0-2] */
	cr_assert(a->close_req);
	cr_assert_eq(cl_expect(a, SMQ_SUBACK)->packet_id, 9, "its last words go out");
	settle();
	smq_engine_interest_synced(W.e[0], 1);	/* about a connection gone: ignored */
}

/* ---- shutdown and accounting -------------------------------------------- */

Test(core_engine, close_all_asks_every_connection_to_close_without_wills, .init = start1)
{
	struct client *a = with_will(0, "a");
	struct client *b = connect_clean(0, "b");

	smq_engine_close_all(W.e[0], SMQ_RC_SERVER_SHUTTING_DOWN);
	cr_assert(a->close_req && b->close_req);
	settle();
	cr_assert_eq(stats(0)->wills_published, 0);
	cr_assert_eq(stats(0)->connections, 0);
	cr_assert_eq(stats(0)->sockets, 0);
}

Test(core_engine, message_references_are_released, .init = start1)
{
	struct client *sub = connect_clean(0, "sub");
	struct client *pub = connect_clean(0, "pub");
	static char big[2000];
	struct smq_msg **v;
	struct iovec iov[4];

	memset(big, 'q', sizeof(big) - 1);
	subscribe(sub, "t", 1, 1);
	publish(pub, "t", big, 1, true);
	cr_assert_eq(smq_retain_match(W.ret, S("t"), 0, &v), 1);
	/* the store, ours, the in-flight entry, the output chunk */
	cr_assert_eq(smq_msg_refs(v[0]), 4);
	cr_assert_eq(smq_econn_out_iov(sub->c, iov, 4), 2);
	drain(sub);
	cr_assert_eq(smq_msg_refs(v[0]), 3, "sent: the output chunk let go");
	lose(sub);
	cr_assert_eq(smq_msg_refs(v[0]), 2, "session ended: in-flight entry let go");
	smq_msg_unref(v[0]);
	free(v);
}

/* A fan-out takes its references in one batch and gives back what it did
 * not spend: a QoS 0 subscriber takes no session entry. */
Test(core_engine, fan_out_references_balance, .init = start1)
{
	struct client *s1 = connect_clean(0, "s1"), *s2 = connect_clean(0, "s2");
	struct client *s0 = connect_clean(0, "s0"), *pub = connect_clean(0, "pub");
	static char big[2000];
	struct smq_msg **v;

	memset(big, 'q', sizeof(big) - 1);
	subscribe(s1, "t", 1, 1);
	subscribe(s2, "t", 1, 1);
	subscribe(s0, "t", 0, 0);
	publish(pub, "t", big, 1, true);
	cr_assert_eq(smq_retain_match(W.ret, S("t"), 0, &v), 1);
	/* the store, ours, two in-flight entries, three output chunks */
	cr_assert_eq(smq_msg_refs(v[0]), 7);
	drain(s1);
	drain(s2);
	drain(s0);
	cr_assert_eq(smq_msg_refs(v[0]), 4, "sent: the output chunks let go");
	lose(s1);
	lose(s2);
	cr_assert_eq(smq_msg_refs(v[0]), 2, "sessions ended: in-flight entries let go");
	smq_msg_unref(v[0]);
	free(v);
}

/* ---- MQTT 5.0 ----------------------------------------------------------- */

static struct client *connect5(unsigned shard, const char *id, struct copts o, bool present)
{
	o.version = SMQ_V5;
	return connect_ex(shard, id, &o, 0, present);
}

/* Acknowledgements are written without the encoder: byte for byte what
 * it would have made, for every version, type and reason. */
Test(core_engine, acks_written_directly_equal_encoded_ones, .init = start1)
{
	static const uint8_t versions[] = { SMQ_V31, SMQ_V311, SMQ_V5 };
	static const uint8_t reasons[] = { 0, 0x10, 0x80, 0x92 };

	for (unsigned v = 0; v < 3; v++) {
		struct copts o = { .clean = true, .version = versions[v] };
		char id[16];
		struct client *cl;

		snprintf(id, sizeof(id), "ack%u", v);
		cl = connect_ex(0, id, &o, 0, false);
		drain(cl);
		for (uint8_t type = SMQ_PUBACK; type <= SMQ_PUBCOMP; type++) {
			for (unsigned r = 0; r < sizeof(reasons); r++) {
				struct smq_packet want = {
					.type = type, .flags = type == SMQ_PUBREL ? 2 : 0,
					.version = versions[v], .packet_id = 0x1234,
					.reason = versions[v] == SMQ_V5 ? reasons[r] : 0,
				};
				uint8_t enc[16];
				long n = smq_encode(&want, enc, sizeof(enc));
				struct iovec iov[2];

				cr_assert_eq(smq_eng_write_ack(W.e[0], cl->c, type, 0x1234,
							       want.reason), 0);
				cr_assert_eq(smq_econn_out_iov(cl->c, iov, 2), 1);
				cr_assert_eq((long)iov[0].iov_len, n, "v%u type %u reason %#x",
					     versions[v], type, want.reason);
				cr_assert_eq(memcmp(iov[0].iov_base, enc, (size_t)n), 0);
				smq_econn_out_done(W.e[0], cl->c, iov[0].iov_len, 0);
			}
		}
	}
}

static void subscribe5(struct client *cl, const char *filter, uint8_t opts, uint32_t sub_id,
		       uint8_t code)
{
	struct smq_sub_entry en = { S(filter), opts };
	struct smq_packet p = { .type = SMQ_SUBSCRIBE, .flags = 2, .packet_id = 78 };
	struct smq_packet *ack;

	p.list.entries = &en;
	p.list.count = 1;
	if (sub_id) {
		SMQ_SET(&p.props, SMQ_PROP_SUBSCRIPTION_ID);
		p.props.sub_id = sub_id;
	}
	cl_send(cl, &p);
	settle();
	ack = cl_expect(cl, SMQ_SUBACK);
	cr_assert_eq(ack->list.raw.p[0], code, "SUBACK code 0x%x", ack->list.raw.p[0]);
}

Test(core_engine, v5_connack_carries_server_limits, .init = start1)
{
	struct client *cl = cl_new(0);
	struct copts o = { .version = SMQ_V5, .clean = true };
	struct smq_packet *ack;

	send_connect(cl, "five", &o);
	ack = cl_expect(cl, SMQ_CONNACK);
	cr_assert_eq(ack->version, SMQ_V5);
	cr_assert_eq(ack->reason, 0);
	cr_assert(SMQ_HAS(&ack->props, SMQ_PROP_RECEIVE_MAX));
	cr_assert_eq(ack->props.receive_max, 20);
	cr_assert(!SMQ_HAS(&ack->props, SMQ_PROP_SHARED_SUB_AVAILABLE) ||
		  ack->props.shared_sub_available == 1, "absent means available");
	cr_assert(SMQ_HAS(&ack->props, SMQ_PROP_MAX_PACKET_SIZE));
	cr_assert_not(SMQ_HAS(&ack->props, SMQ_PROP_ASSIGNED_CLIENT_ID));
}

Test(core_engine, v5_zero_length_id_gets_assigned_client_identifier)
{
	struct client *cl;
	struct copts o = { .version = SMQ_V5, .clean = false, .session_expiry = 60 };
	struct smq_packet *ack;

	world_init(2);
	world_start();
	cl = cl_new(1);
	send_connect(cl, "", &o);
	ack = cl_expect(cl, SMQ_CONNACK);
	cr_assert_eq(ack->reason, 0);
	cr_assert(SMQ_HAS(&ack->props, SMQ_PROP_ASSIGNED_CLIENT_ID));
	cr_assert(str_is(ack->props.assigned_client_id, smq_econn_client_id(cl->c)));
	cr_assert_eq(smq_engine_home_shard(ack->props.assigned_client_id, 2), 1);
}

Test(core_engine, v5_server_keep_alive_when_capped)
{
	struct client *cl;
	struct copts o = { .version = SMQ_V5, .clean = true, .keepalive = 0 };
	struct smq_packet *ack;

	world_init(1);
	W.cfg.max_keepalive = 30;
	world_start();
	cl = cl_new(0);
	send_connect(cl, "k", &o);
	ack = cl_expect(cl, SMQ_CONNACK);
	cr_assert(SMQ_HAS(&ack->props, SMQ_PROP_SERVER_KEEP_ALIVE));
	cr_assert_eq(ack->props.server_keep_alive, 30);
	advance(45001);
	cr_assert(cl->closed);
}

Test(core_engine, v5_protocol_error_sends_disconnect_with_reason_first, .init = start1)
{
	struct client *cl = connect5(0, "bad", (struct copts){ .clean = true }, false);
	struct smq_packet *d;

	publish_ex(cl, "a/#", "x", 0, false, 0);
	cr_assert(cl->close_req);
	d = cl_expect(cl, SMQ_DISCONNECT);
	cr_assert_eq(d->reason, SMQ_RC_TOPIC_NAME_INVALID);
}

/* Found by fuzz_engine: the codec's 0x84 (bad protocol name) is a
 * CONNACK-only code; in a DISCONNECT it made the broker's packet malformed. */
Test(core_engine, v5_second_connect_with_bad_protocol_name_disconnects_0x82, .init = start1)
{
	static const uint8_t bad[] = { 0x10, 13, 0, 4, 'M', 'Q', 'T', 'X', 5, 2, 0, 60, 0, 0, 0 };
	struct client *cl = connect5(0, "again", (struct copts){ .clean = true }, false);

	cl_bytes(cl, bad, sizeof(bad));
	cr_assert(cl->close_req);
	cr_assert_eq(cl_expect(cl, SMQ_DISCONNECT)->reason, SMQ_RC_PROTOCOL_ERROR);
}

/* Found by fuzz_engine: a broker-made PUBLISH must not carry a topic that
 * is not UTF-8 (engine.h promises -EINVAL). */
Test(core_engine, broker_publish_refuses_non_utf8_topic, .init = start1)
{
	struct smq_str t = { (const uint8_t *)"\xff", 1 };

	cr_assert_eq(smq_engine_publish(W.e[0], t, S("x"), 0, false, 1000), -EINVAL);
}

/* A 5.0 PUBLISH with a topic alias (@topic "" uses the alias). */
static void publish_alias(struct client *cl, const char *topic, const char *payload,
			  uint16_t alias)
{
	struct smq_packet p = { .type = SMQ_PUBLISH };

	p.publish.topic = S(topic);
	p.publish.payload = S(payload);
	SMQ_SET(&p.props, SMQ_PROP_TOPIC_ALIAS);
	p.props.topic_alias = alias;
	cl_send(cl, &p);
	settle();
}

Test(core_engine, v5_topic_alias_above_the_maximum_is_0x94_MQTT_3_3_2_9, .init = start1)
{
	struct client *cl = connect5(0, "alias", (struct copts){ .clean = true }, false);

	publish_alias(cl, "t", "x", 11);	/* CONNACK said 10 */
	cr_assert_eq(cl_expect(cl, SMQ_DISCONNECT)->reason, SMQ_RC_TOPIC_ALIAS_INVALID);
	cr_assert(cl->close_req);
}

Test(core_engine, v5_unknown_topic_alias_is_0x94, .init = start1)
{
	struct client *cl = connect5(0, "alias", (struct copts){ .clean = true }, false);

	publish_alias(cl, "", "x", 3);
	cr_assert_eq(cl_expect(cl, SMQ_DISCONNECT)->reason, SMQ_RC_TOPIC_ALIAS_INVALID);
}

Test(core_engine, v5_inbound_topic_alias_set_used_and_replaced, .init = start1)
{
	struct client *w = watcher(0, "a/#");
	struct client *cl = connect5(0, "alias", (struct copts){ .clean = true }, false);

	publish_alias(cl, "a/long/topic", "1", 10);
	publish_alias(cl, "", "2", 10);
	publish_alias(cl, "a/other", "3", 10);	/* the same alias, a new topic */
	publish_alias(cl, "", "4", 10);
	expect_pub(w, "a/long/topic", "1", 0, false);
	expect_pub(w, "a/long/topic", "2", 0, false);
	expect_pub(w, "a/other", "3", 0, false);
	expect_pub(w, "a/other", "4", 0, false);
	cr_assert_not(cl->close_req);
}

Test(core_engine, v5_connack_announces_topic_alias_maximum_MQTT_3_2_2_17, .init = start1)
{
	struct client *cl = cl_new(0);
	struct copts o = { .version = SMQ_V5, .clean = true };
	struct smq_packet *ack;

	send_connect(cl, "five", &o);
	ack = cl_expect(cl, SMQ_CONNACK);
	cr_assert(SMQ_HAS(&ack->props, SMQ_PROP_TOPIC_ALIAS_MAX));
	cr_assert_eq(ack->props.topic_alias_max, 10);
}

Test(core_engine, v5_outbound_topic_aliases_when_the_client_allows, .init = start1)
{
	struct client *sub = connect5(0, "sub", (struct copts){ .clean = true, .alias_max = 2 },
				      false);
	struct client *pub = connect_clean(0, "pub");
	struct smq_packet *p;

	subscribe5(sub, "al/#", 0, 0, 0);
	publish(pub, "al/first", "1", 0, false);
	publish(pub, "al/first", "2", 0, false);
	publish(pub, "al/second", "3", 0, false);
	publish(pub, "al/third", "4", 0, false);	/* no alias left: the full topic */
	publish(pub, "al/second", "5", 0, false);
	p = expect_pub(sub, "al/first", "1", 0, false);	/* sets alias 1 */
	cr_assert(SMQ_HAS(&p->props, SMQ_PROP_TOPIC_ALIAS));
	cr_assert_eq(p->props.topic_alias, 1);
	p = expect_pub(sub, "", "2", 0, false);		/* uses it */
	cr_assert_eq(p->props.topic_alias, 1);
	p = expect_pub(sub, "al/second", "3", 0, false);
	cr_assert_eq(p->props.topic_alias, 2);
	p = expect_pub(sub, "al/third", "4", 0, false);
	cr_assert_not(SMQ_HAS(&p->props, SMQ_PROP_TOPIC_ALIAS));
	p = expect_pub(sub, "", "5", 0, false);
	cr_assert_eq(p->props.topic_alias, 2);
}

Test(core_engine, v5_no_outbound_aliases_without_the_clients_maximum_MQTT_3_3_2_10,
     .init = start1)
{
	struct client *sub = connect5(0, "sub", (struct copts){ .clean = true }, false);
	struct client *pub = connect_clean(0, "pub");

	subscribe5(sub, "al/#", 0, 0, 0);
	publish(pub, "al/first", "1", 0, false);
	publish(pub, "al/first", "2", 0, false);
	cr_assert_not(SMQ_HAS(&expect_pub(sub, "al/first", "1", 0, false)->props,
			      SMQ_PROP_TOPIC_ALIAS));
	cr_assert_not(SMQ_HAS(&expect_pub(sub, "al/first", "2", 0, false)->props,
			      SMQ_PROP_TOPIC_ALIAS));
}

Test(core_engine, v5_subscription_identifiers_are_delivered, .init = start1)
{
	struct client *sub = connect5(0, "sub", (struct copts){ .clean = true }, false);
	struct client *pub = connect_clean(0, "pub");
	struct smq_packet *p;
	uint32_t pos = 0, id, ids[4], n = 0;

	subscribe5(sub, "a/+", 1, 7, 1);
	subscribe5(sub, "a/#", 0, 9, 0);
	publish(pub, "a/b", "x", 1, false);
	p = expect_pub(sub, "a/b", "x", 1, false);
	while (smq_props_next_sub_id(&p->props, &pos, &id) && n < 4)
		ids[n++] = id;
	cr_assert_eq(n, 2, "one copy carrying both ids");
	cr_assert(ids[0] + ids[1] == 16);
	cl_expect_none(sub);
}

Test(core_engine, v5_no_local_skips_own_messages, .init = start1)
{
	struct client *a = connect5(0, "a", (struct copts){ .clean = true }, false);
	struct client *b = connect5(0, "b", (struct copts){ .clean = true }, false);

	subscribe5(a, "t", SMQ_SUBOPT_NO_LOCAL, 0, 0);
	subscribe5(b, "t", SMQ_SUBOPT_NO_LOCAL, 0, 0);
	publish(a, "t", "x", 0, false);
	cl_expect_none(a);
	expect_pub(b, "t", "x", 0, false);
}

Test(core_engine, v5_retain_as_published_keeps_the_flag, .init = start1)
{
	struct client *rap = connect5(0, "rap", (struct copts){ .clean = true }, false);
	struct client *plain = connect5(0, "plain", (struct copts){ .clean = true }, false);
	struct client *pub = connect_clean(0, "pub");

	subscribe5(rap, "t", SMQ_SUBOPT_RAP, 0, 0);
	subscribe5(plain, "t", 0, 0, 0);
	publish(pub, "t", "x", 0, true);
	expect_pub(rap, "t", "x", 0, true);
	expect_pub(plain, "t", "x", 0, false);
}

Test(core_engine, v5_retain_handling_1_and_2, .init = start1)
{
	struct client *pub = connect_clean(0, "pub");
	struct client *a = connect5(0, "a", (struct copts){ .clean = true }, false);

	publish(pub, "r", "v", 0, true);
	subscribe5(a, "r", 2 << 4, 0, 0);	/* 2: never */
	cl_expect_none(a);
	subscribe5(a, "q/#", 1 << 4, 0, 0);	/* 1: only if new */
	publish(pub, "q/1", "w", 0, true);
	expect_pub(a, "q/1", "w", 0, false);
	subscribe5(a, "q/#", 1 << 4, 0, 0);
	cl_expect_none(a);
	subscribe5(a, "q/#", 0, 0, 0);		/* 0: always */
	expect_pub(a, "q/1", "w", 0, true);
}

Test(core_engine, v5_properties_are_forwarded, .init = start1)
{
	struct client *sub = connect5(0, "sub", (struct copts){ .clean = true }, false);
	struct client *pub = connect5(0, "pub", (struct copts){ .clean = true }, false);
	struct smq_packet p = { .type = SMQ_PUBLISH }, *got;
	uint8_t user[64];
	long un = smq_props_put_user(user, sizeof(user), S("k"), S("v"));
	struct smq_str k, v;
	uint32_t pos = 0;

	subscribe5(sub, "t", 0, 0, 0);
	p.publish.topic = S("t");
	p.publish.payload = S("x");
	SMQ_SET(&p.props, SMQ_PROP_CONTENT_TYPE);
	p.props.content_type = S("text/plain");
	SMQ_SET(&p.props, SMQ_PROP_RESPONSE_TOPIC);
	p.props.response_topic = S("reply/here");
	SMQ_SET(&p.props, SMQ_PROP_USER);
	p.props.user = (struct smq_str){ user, (uint32_t)un };
	cl_send(pub, &p);
	settle();
	got = expect_pub(sub, "t", "x", 0, false);
	cr_assert(str_is(got->props.content_type, "text/plain"));
	cr_assert(str_is(got->props.response_topic, "reply/here"));
	cr_assert(smq_props_next_user(&got->props, &pos, &k, &v));
	cr_assert(str_is(k, "k") && str_is(v, "v"));
}

Test(core_engine, v5_expired_messages_are_not_delivered, .init = start1)
{
	struct copts o = { .clean = false, .session_expiry = 1000 };
	struct client *sub = connect5(0, "sub", o, false);
	struct client *pub = connect5(0, "pub", (struct copts){ .clean = true }, false);
	struct smq_packet p = { .type = SMQ_PUBLISH, .flags = 2, .packet_id = 4 }, *got;

	subscribe5(sub, "t", 1, 0, 1);
	lose(sub);
	p.publish.qos = 1;
	p.publish.topic = S("t");
	p.publish.payload = S("short");
	SMQ_SET(&p.props, SMQ_PROP_MESSAGE_EXPIRY);
	p.props.message_expiry = 10;
	cl_send(pub, &p);
	p.publish.payload = S("long");
	p.props.message_expiry = 100;
	cl_send(pub, &p);
	settle();
	advance(20000);
	sub = connect5(0, "sub", o, true);
	got = expect_pub(sub, "t", "long", 1, false);
	cr_assert_eq(got->props.message_expiry, 80, "the interval left is forwarded");
	cl_expect_none(sub);
	cr_assert_eq(stats(0)->dropped_expired, 1);
}

Test(core_engine, v5_client_receive_maximum_limits_inflight, .init = start1)
{
	struct client *sub = connect5(0, "sub", (struct copts){ .clean = true, .receive_max = 1 },
				      false);
	struct client *pub = connect_clean(0, "pub");
	struct smq_packet *p;

	subscribe5(sub, "t", 1, 0, 1);
	publish(pub, "t", "1", 1, false);
	publish(pub, "t", "2", 1, false);
	p = expect_pub(sub, "t", "1", 1, false);
	cl_expect_none(sub);
	send_ack(sub, SMQ_PUBACK, p->packet_id);
	expect_pub(sub, "t", "2", 1, false);
}

Test(core_engine, v5_server_receive_maximum_enforced_0x93)
{
	struct client *pub;

	world_init(1);
	W.cfg.max_inflight_messages = 2;
	world_start();
	pub = connect5(0, "pub", (struct copts){ .clean = true }, false);
	publish_ex(pub, "t", "1", 2, false, 1);
	publish_ex(pub, "t", "2", 2, false, 2);
	publish_ex(pub, "t", "2", 2, false, 2);	/* a re-send is fine */
	cr_assert_not(pub->close_req);
	publish_ex(pub, "t", "3", 2, false, 3);
	cr_assert(pub->close_req);
}

Test(core_engine, v5_client_maximum_packet_size_drops_larger, .init = start1)
{
	struct client *sub = connect5(0, "sub", (struct copts){ .clean = true, .max_packet = 40 },
				      false);
	struct client *pub = connect_clean(0, "pub");

	subscribe5(sub, "t", 1, 0, 1);
	publish(pub, "t", "this payload is far too long for forty bytes", 1, false);
	publish(pub, "t", "ok", 1, false);
	expect_pub(sub, "t", "ok", 1, false);
	cr_assert_eq(stats(0)->dropped_too_large, 1);
}

Test(core_engine, v5_session_expiry_ends_offline_session, .init = start1)
{
	struct copts o = { .clean = false, .session_expiry = 10 };
	struct client *a = connect5(0, "a", o, false);

	subscribe5(a, "t", 1, 0, 1);
	lose(a);
	advance(9000);
	a = connect5(0, "a", o, true);
	lose(a);
	advance(10001);
	cr_assert_eq(stats(0)->sessions, 0);
	connect5(0, "a", o, false);
}

Test(core_engine, v5_session_expiry_zero_ends_at_disconnect, .init = start1)
{
	struct copts o = { .clean = false };
	struct client *a = connect5(0, "a", o, false);

	disconnect(a);
	connect5(0, "a", o, false);
}

Test(core_engine, v5_disconnect_cannot_raise_expiry_from_zero_MQTT_3_14_2_2, .init = start1)
{
	struct client *a = connect5(0, "a", (struct copts){ .clean = true }, false);
	struct smq_packet d = { .type = SMQ_DISCONNECT };

	SMQ_SET(&d.props, SMQ_PROP_SESSION_EXPIRY);
	d.props.session_expiry = 100;
	cl_send(a, &d);
	cr_assert(a->close_req);
	cr_assert_eq(stats(0)->protocol_errors, 1);
}

Test(core_engine, v5_will_delay_waits_and_reconnect_cancels_MQTT_3_1_3_9, .init = start1)
{
	static const struct will will = { "will/t", "late", 0, false, 5 };
	struct copts o = { .clean = false, .session_expiry = 100, .will = &will };
	struct client *w = watcher(0, "will/#");
	struct client *a = connect5(0, "a", o, false);

	lose(a);
	advance(3000);
	cl_expect_none(w);
	a = connect5(0, "a", o, true);	/* back in time: no will */
	advance(10000);
	cl_expect_none(w);
	lose(a);
	advance(5001);
	expect_pub(w, "will/t", "late", 0, false);
}

Test(core_engine, v5_will_delay_capped_by_session_expiry, .init = start1)
{
	static const struct will will = { "will/t", "now", 0, false, 60 };
	struct copts o = { .clean = true, .will = &will };
	struct client *w = watcher(0, "will/#");
	struct client *a = connect5(0, "a", o, false);

	lose(a);	/* session expiry 0: the will goes out at once */
	expect_pub(w, "will/t", "now", 0, false);
}

Test(core_engine, v5_disconnect_with_will_reason_publishes_will, .init = start1)
{
	static const struct will will = { "will/t", "asked", 0, false, 0 };
	struct client *w = watcher(0, "will/#");
	struct client *a = connect5(0, "a", (struct copts){ .clean = true, .will = &will }, false);
	struct smq_packet d = { .type = SMQ_DISCONNECT, .reason = SMQ_RC_DISCONNECT_WITH_WILL };

	cl_send(a, &d);
	settle();
	expect_pub(w, "will/t", "asked", 0, false);
}

Test(core_engine, v5_takeover_sends_disconnect_0x8e, .init = start1)
{
	struct client *a = connect5(0, "a", (struct copts){ .clean = true }, false);

	connect5(0, "a", (struct copts){ .clean = true }, false);
	cr_assert_eq(cl_expect(a, SMQ_DISCONNECT)->reason, SMQ_RC_SESSION_TAKEN_OVER);
}

Test(core_engine, v5_unsuback_codes_and_pubrel_unknown_id, .init = start1)
{
	struct client *a = connect5(0, "a", (struct copts){ .clean = true }, false);
	struct smq_str f[2] = { S("t"), S("none") };
	struct smq_packet u = { .type = SMQ_UNSUBSCRIBE, .flags = 2, .packet_id = 3 }, *ack;

	subscribe5(a, "t", 0, 0, 0);
	u.list.filters = f;
	u.list.count = 2;
	cl_send(a, &u);
	ack = cl_expect(a, SMQ_UNSUBACK);
	cr_assert_eq(ack->list.raw.p[0], SMQ_RC_SUCCESS);
	cr_assert_eq(ack->list.raw.p[1], SMQ_RC_NO_SUBSCRIPTION_EXISTED);
	send_ack(a, SMQ_PUBREL, 9);
	cr_assert_eq(cl_expect(a, SMQ_PUBCOMP)->reason, SMQ_RC_PACKET_ID_NOT_FOUND);
}

Test(core_engine, v5_enhanced_auth_refused_0x8c, .init = start1)
{
	struct client *cl = cl_new(0);
	struct smq_packet p = { .type = SMQ_CONNECT, .version = SMQ_V5 };

	cl->version = SMQ_V5;
	p.connect.proto_name = S("MQTT");
	p.connect.level = 5;
	p.connect.clean = true;
	p.connect.client_id = S("x");
	SMQ_SET(&p.props, SMQ_PROP_AUTH_METHOD);
	p.props.auth_method = S("SCRAM-SHA-1");
	cl_send(cl, &p);
	cr_assert_eq(cl_expect(cl, SMQ_CONNACK)->reason, SMQ_RC_BAD_AUTH_METHOD);
	cr_assert(cl->close_req);
}

Test(core_engine, v5_will_qos_above_max_refused_0x9b)
{
	static const struct will will = { "w", "x", 2, false, 0 };
	struct copts o = { .version = SMQ_V5, .clean = true, .will = &will };

	world_init(1);
	W.cfg.max_qos = 1;
	world_start();
	connect_ex(0, "a", &o, SMQ_RC_QOS_NOT_SUPPORTED, false);
}

Test(core_engine, huge_first_packet_is_refused_before_it_arrives)
{
	/* a CONNECT header announcing 1 MiB, with no packet size limit set */
	static const uint8_t hdr[] = { 0x10, 0x80, 0x80, 0x40 };
	struct client *cl;

	world_init(1);
	W.cfg.max_packet_size = 0;
	world_start();
	cl = cl_new(0);
	cl->version = SMQ_V311;
	cl_bytes(cl, hdr, sizeof(hdr));
	cr_assert(cl->close_req);
}

Test(core_engine, v5_disconnect_with_error_reason_keeps_the_will, .init = start1)
{
	static const struct will will = { "will/t", "err", 0, false, 0 };
	struct client *w = watcher(0, "will/#");
	struct client *a = connect5(0, "a", (struct copts){ .clean = true, .will = &will }, false);
	struct smq_packet d = { .type = SMQ_DISCONNECT, .reason = SMQ_RC_UNSPECIFIED };

	cl_send(a, &d);
	settle();
	expect_pub(w, "will/t", "err", 0, false);
}

/* ---- shared subscriptions ----------------------------------------------- */

/* Publish messages "0" .. "n-1" on @topic at @qos (acks consumed, settled). */
static void publish_n(struct client *pub, const char *topic, int n, uint8_t qos)
{
	char b[16];

	for (int i = 0; i < n; i++) {
		snprintf(b, sizeof(b), "%d", i);
		publish(pub, topic, b, qos, false);
	}
}

/* Consume every PUBLISH waiting for cl (acknowledging QoS 1), counting each
 * payload (a message number below 64) in seen[]. Returns how many came. */
static int take_all(struct client *cl, int *seen)
{
	struct smq_packet *p;
	int n = 0;

	while ((p = cl_recv(cl))) {
		char b[8] = { 0 };

		cr_assert_eq(p->type, SMQ_PUBLISH, "got %s", smq_ptype_name(p->type));
		cr_assert_lt(p->publish.payload.len, sizeof(b));
		memcpy(b, p->publish.payload.p, p->publish.payload.len);
		cr_assert_lt(atoi(b), 64);
		seen[atoi(b)]++;
		if (p->publish.qos == 1)
			send_ack(cl, SMQ_PUBACK, p->packet_id);
		n++;
	}
	return n;
}

Test(core_engine, shared_group_across_shards_gets_each_message_once_round_robin)
{
	struct client *m[4], *pub;
	int seen[64] = { 0 };

	world_init(4);
	world_start();
	for (unsigned i = 0; i < 4; i++) {
		m[i] = connect_clean(i, id_on(i, "m"));
		subscribe(m[i], "$share/g/s/#", 1, 1);
	}
	pub = connect_clean(0, id_on(0, "p"));
	publish_n(pub, "s/x", 8, 1);
	for (unsigned i = 0; i < 4; i++)
		cr_assert_eq(take_all(m[i], seen), 2, "member on shard %u: round-robin", i);
	for (int k = 0; k < 8; k++)
		cr_assert_eq(seen[k], 1, "message %d delivered %d times in the group", k, seen[k]);
	cr_assert_eq(W.shared_forwards, 6, "one forward per message served on another shard");
	cr_assert_eq(W.forwards, 0, "no plain forwards: nobody subscribed normally");
	cr_assert_eq(stats(0)->msgs_forwarded, 6);
}

Test(core_engine, shared_members_on_one_shard_take_turns, .init = start1)
{
	struct client *m[3], *pub = connect_clean(0, "pub");
	int seen[64] = { 0 };
	char id[16];

	for (int i = 0; i < 3; i++) {
		snprintf(id, sizeof(id), "m%d", i);
		m[i] = connect_clean(0, id);
		subscribe(m[i], "$share/workers/job/+", 0, 0);
	}
	publish_n(pub, "job/a", 6, 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(take_all(m[i], seen), 2, "member %d", i);
	for (int k = 0; k < 6; k++)
		cr_assert_eq(seen[k], 1, "message %d", k);
	cr_assert_eq(stats(0)->subscriptions, 3);
}

Test(core_engine, shared_group_and_normal_subscribers_are_served_independently)
{
	struct client *m0, *m1, *n, *pub;
	int seen_g[64] = { 0 }, seen_n[64] = { 0 };

	world_init(2);
	world_start();
	m0 = connect_clean(0, id_on(0, "m"));
	m1 = connect_clean(1, id_on(1, "m"));
	n = connect_clean(1, id_on(1, "n"));
	subscribe(m0, "$share/g/s/x", 1, 1);
	subscribe(m1, "$share/g/s/x", 1, 1);
	subscribe(m1, "s/x", 1, 1);	/* a different subscription of the same client */
	subscribe(n, "s/#", 1, 1);
	pub = connect_clean(0, id_on(0, "p"));
	publish_n(pub, "s/x", 4, 1);
	cr_assert_eq(take_all(n, seen_n), 4, "the normal subscriber gets everything");
	cr_assert_eq(take_all(m0, seen_g), 2);
	cr_assert_eq(take_all(m1, seen_g), 6, "m1: 4 as a normal subscriber + 2 as a member");
	for (int k = 0; k < 4; k++) {
		cr_assert_eq(seen_n[k], 1);
		cr_assert_eq(seen_g[k], 2, "message %d: once to the group, once to m1's own", k);
	}
}

Test(core_engine, shared_member_that_leaves_no_longer_shares)
{
	struct client *m0, *m1, *m2, *pub;
	struct smq_str f = S("$share/g/t");
	struct smq_packet u = { .type = SMQ_UNSUBSCRIBE, .flags = 2, .packet_id = 5 };
	int seen[64] = { 0 };

	world_init(2);
	world_start();
	m0 = connect_clean(0, id_on(0, "m"));
	m1 = connect_clean(1, id_on(1, "m"));
	m2 = connect_clean(1, id_on(1, "m"));
	subscribe(m0, "$share/g/t", 1, 1);
	subscribe(m1, "$share/g/t", 1, 1);
	subscribe(m2, "$share/g/t", 1, 1);
	cr_assert_eq(W.interests_on, 2, "one 0->1 per shard for the group");
	u.list.filters = &f;
	u.list.count = 1;
	cl_send(m1, &u);
	cr_assert_eq(cl_expect(m1, SMQ_UNSUBACK)->packet_id, 5);
	cr_assert_eq(W.interests_off, 0, "m2 is still a member on shard 1");
	lose(m2);	/* a clean session ending leaves its groups */
	cr_assert_eq(W.interests_off, 1);
	pub = connect_clean(0, id_on(0, "p"));
	publish_n(pub, "t", 4, 1);
	cr_assert_eq(take_all(m0, seen), 4, "the last member gets everything");
	cl_expect_none(m1);
	cr_assert_eq(W.shared_forwards, 0);
	cr_assert_eq(stats(1)->subscriptions, 0);
}

Test(core_engine, shared_takeover_of_a_clean_session_leaves_the_group, .init = start1)
{
	struct client *a = connect_clean(0, "a");
	struct client *b = connect_clean(0, "b");
	struct client *a2, *pub = connect_clean(0, "pub");
	int seen[64] = { 0 };

	subscribe(a, "$share/g/t", 0, 0);
	subscribe(b, "$share/g/t", 0, 0);
	a2 = connect_clean(0, "a");
	cr_assert(a->close_req);
	settle();
	publish_n(pub, "t", 4, 0);
	cr_assert_eq(take_all(b, seen), 4);
	cl_expect_none(a2);
}

Test(core_engine, shared_prefers_online_members_then_queues_to_an_offline_one,
     .init = start1)
{
	struct copts o = { .clean = false };
	struct client *a = connect_ex(0, "pa", &o, 0, false);
	struct client *b = connect_clean(0, "b");
	struct client *pub = connect_clean(0, "pub");
	int seen[64] = { 0 };

	subscribe(a, "$share/g/t", 1, 1);
	subscribe(b, "$share/g/t", 1, 1);
	lose(a);	/* persistent: stays a member while offline */
	publish_n(pub, "t", 3, 1);
	cr_assert_eq(take_all(b, seen), 3, "online members first");
	disconnect(b);
	publish_n(pub, "t", 2, 1);
	a = connect_ex(0, "pa", &o, 0, true);
	expect_pub(a, "t", "0", 1, false);
	expect_pub(a, "t", "1", 1, false);
	cl_expect_none(a);
}

Test(core_engine, shared_message_to_a_shard_whose_group_emptied_is_counted)
{
	struct client *m1, *pub;
	struct smq_str f = S("$share/g/t");
	struct smq_packet u = { .type = SMQ_UNSUBSCRIBE, .flags = 2, .packet_id = 5 };

	world_init(2);
	world_start();
	m1 = connect_clean(1, id_on(1, "m"));
	subscribe(m1, "$share/g/t", 0, 0);
	pub = connect_clean(0, id_on(0, "p"));
	u.list.filters = &f;
	u.list.count = 1;
	cl_send(m1, &u);	/* shard 0 has not heard yet ... */
	publish_ex(pub, "t", "x", 0, false, 0);	/* ... and still picks shard 1 */
	cr_assert_eq(W.shared_forwards, 1);
	settle();
	cr_assert_eq(stats(1)->dropped_no_member, 1);
	cl_expect(m1, SMQ_UNSUBACK);
	cl_expect_none(m1);
}

Test(core_engine, retained_messages_not_sent_to_a_new_shared_subscription, .init = start1)
{
	struct client *pub = connect_clean(0, "pub");
	struct client *m = connect_clean(0, "m");
	struct client *m5 = connect5(0, "m5", (struct copts){ .clean = true }, false);
	struct client *plain = connect_clean(0, "plain");

	publish(pub, "r/1", "v1", 1, true);
	subscribe(m, "$share/g/r/#", 1, 1);
	cl_expect_none(m);
	subscribe5(m5, "$share/h/r/#", 1, 0, 1);	/* Retain Handling 0 */
	cl_expect_none(m5);
	subscribe(plain, "r/#", 1, 1);
	expect_pub(plain, "r/1", "v1", 1, true);	/* the retained message is there */
}

Test(core_engine, invalid_shared_filters_are_refused, .init = start1)
{
	struct client *a = connect_clean(0, "a");
	struct client *a5 = connect5(0, "a5", (struct copts){ .clean = true }, false);

	subscribe(a, "$share//t", 1, 0x80);	/* [MQTT-4.8.2-1] */
	subscribe(a, "$share/g+/t", 1, 0x80);	/* [MQTT-4.8.2-2] */
	subscribe(a, "$share/g", 1, 0x80);
	subscribe5(a5, "$share/g/a/#/b", 1, 0, SMQ_RC_TOPIC_FILTER_INVALID);
	cr_assert_eq(stats(0)->subscriptions, 0);
	cr_assert_not(a->close_req);
}

Test(core_engine, v5_no_local_on_a_shared_subscription_is_a_protocol_error_MQTT_3_8_3_4,
     .init = start1)
{
	struct client *a = connect5(0, "a", (struct copts){ .clean = true }, false);
	struct smq_sub_entry en[2] = { { S("t"), 1 },
				       { S("$share/g/t"), SMQ_SUBOPT_NO_LOCAL | 1 } };
	struct smq_packet p = { .type = SMQ_SUBSCRIBE, .flags = 2, .packet_id = 8 };

	p.list.entries = en;
	p.list.count = 2;
	cl_send(a, &p);
	cr_assert(a->close_req);
	cr_assert_eq(cl_expect(a, SMQ_DISCONNECT)->reason, SMQ_RC_PROTOCOL_ERROR);
	cr_assert_eq(stats(0)->subscriptions, 0, "nothing of the SUBSCRIBE applied");
}

Test(core_engine, v5_shared_subscription_carries_its_identifier, .init = start1)
{
	struct client *m = connect5(0, "m", (struct copts){ .clean = true }, false);
	struct client *pub = connect_clean(0, "pub");
	struct smq_packet *p;
	uint32_t pos = 0, id = 0;

	subscribe5(m, "$share/g/t", 1, 42, 1);
	publish(pub, "t", "x", 1, false);
	p = expect_pub(m, "t", "x", 1, false);
	cr_assert(smq_props_next_sub_id(&p->props, &pos, &id));
	cr_assert_eq(id, 42);
}

/* ---- authentication and ACL --------------------------------------------- */

#include "core/auth.h"
#include "core/passwd.h"

/* Password checks the engine sent off the loop (io->auth_check). */
static struct {
	struct smq_econn *c[8];
	char pass[8][32];
	int n;
} AQ;

static void io_auth_check(void *ctx, struct smq_econn *c, const struct smq_auth *auth,
			  struct smq_str user, struct smq_str pass)
{
	(void)ctx;
	(void)auth;
	(void)user;
	cr_assert_lt(AQ.n, 8);
	AQ.c[AQ.n] = c;
	snprintf(AQ.pass[AQ.n], sizeof(AQ.pass[0]), "%.*s", (int)pass.len, pass.p);
	AQ.n++;
}

static struct smq_auth *auth_world(const char *acl, bool async)
{
	static char dir[64];
	char path[128], hash[SMQ_PASSWD_HASH_MAX], err[256];
	struct smq_auth *a;
	FILE *f;

	memset(&AQ, 0, sizeof(AQ));
	strcpy(dir, "/tmp/smq_eauth_XXXXXX");
	cr_assert(mkdtemp(dir));
	world_init(1);
	snprintf(path, sizeof(path), "%s/pw", dir);
	f = fopen(path, "w");
	cr_assert_eq(smq_passwd_hash(hash, sizeof(hash), (const uint8_t *)"secret", 6, 3), 0);
	fprintf(f, "alice:%s\nbob:%s\n", hash, hash);
	fclose(f);
	strcpy(W.cfg.password_file, path);
	if (acl) {
		snprintf(path, sizeof(path), "%s/acl", dir);
		f = fopen(path, "w");
		fputs(acl, f);
		fclose(f);
		strcpy(W.cfg.acl_file, path);
	}
	W.cfg.allow_anonymous = false;
	W.cfg.anonymous_set = true;
	cr_assert_eq(smq_auth_load(&W.cfg, 1, &a, err, sizeof(err)), 0, "%s", err);
	world_start();
	if (async) {
		/* world_start's engines use the inline path; give engine 0 the
		 * off-loop one by making a new engine with the callback. */
		struct smq_engine_io io = {
			.ctx = &W.idx[0], .want_send = io_want_send, .want_close = io_want_close,
			.forward = io_forward, .forward_shared = io_forward_shared,
			.interest = io_interest, .auth_check = io_auth_check,
		};

		smq_engine_free(W.e[0]);
		W.e[0] = smq_engine_new(0, W.n, &W.cfg, W.ret, &io);
	}
	smq_engine_set_auth(W.e[0], a);
	return a;
}

Test(core_engine, password_checked_off_the_loop_and_input_held_meanwhile)
{
	struct smq_auth *a = auth_world(NULL, true);
	struct copts o = { .clean = true, .user = "alice", .pass = "secret" };
	struct client *cl = cl_new(0);
	struct smq_sub_entry en = { S("t"), 0 };
	struct smq_packet sub = { .type = SMQ_SUBSCRIBE, .flags = 2, .packet_id = 5 };

	send_connect(cl, "c1", &o);
	sub.list.entries = &en;
	sub.list.count = 1;
	cl_send(cl, &sub);		/* pipelined behind the CONNECT */
	settle();
	cr_assert_eq(AQ.n, 1, "the PBKDF2 check goes to the I/O layer");
	cr_assert_str_eq(AQ.pass[0], "secret");
	cl_expect_none(cl);
	smq_engine_auth_done(W.e[0], AQ.c[0], true, W.now);
	settle();
	cr_assert_eq(cl_expect(cl, SMQ_CONNACK)->reason, 0);
	cr_assert_eq(cl_expect(cl, SMQ_SUBACK)->packet_id, 5, "held input is processed after");
	/* A reconnect with the same password is answered from the cache. */
	disconnect(cl);
	connect_ex(0, "c1", &o, 0, false);
	cr_assert_eq(AQ.n, 1, "no second off-loop check");
	world_fini();
	smq_auth_unref(a);
}

Test(core_engine, wrong_password_refused_with_5_or_0x86)
{
	struct smq_auth *a = auth_world(NULL, true);
	struct copts o = { .clean = true, .user = "alice", .pass = "nope" };
	struct client *cl = cl_new(0);

	send_connect(cl, "c1", &o);
	settle();
	cr_assert_eq(AQ.n, 1);
	smq_engine_auth_done(W.e[0], AQ.c[0], false, W.now);
	settle();
	cr_assert_eq(cl_expect(cl, SMQ_CONNACK)->reason, SMQ_CONNACK_NOT_AUTHORIZED);
	cr_assert(cl->close_req);
	o.version = SMQ_V5;
	cl = cl_new(0);
	send_connect(cl, "c2", &o);
	settle();
	smq_engine_auth_done(W.e[0], AQ.c[1], false, W.now);
	settle();
	cr_assert_eq(cl_expect(cl, SMQ_CONNACK)->reason, SMQ_RC_BAD_USER_OR_PASSWORD);
	cr_assert_eq(stats(0)->auth_failures, 2);
	world_fini();
	smq_auth_unref(a);
}

Test(core_engine, inline_check_and_anonymous_refused)
{
	struct smq_auth *a = auth_world(NULL, false);
	struct copts o = { .clean = true, .user = "alice", .pass = "secret" };
	struct copts anon = { .clean = true };

	connect_ex(0, "ok", &o, 0, false);
	o.pass = "bad";
	connect_ex(0, "bad", &o, SMQ_CONNACK_NOT_AUTHORIZED, false);
	connect_ex(0, "anon", &anon, SMQ_CONNACK_NOT_AUTHORIZED, false);
	anon.version = SMQ_V5;
	connect_ex(0, "anon5", &anon, SMQ_RC_NOT_AUTHORIZED, false);
	world_fini();
	smq_auth_unref(a);
}

static const char *ACL = "user alice\n"
			 "topic readwrite a/#\n"
			 "topic read r/#\n"
			 "topic deny a/secret\n"
			 "user bob\n"
			 "topic read a/#\n"
			 "pattern write own/%u/#\n";

Test(core_engine, acl_publish_refused_silently_in_311_and_0x87_in_5)
{
	struct smq_auth *a = auth_world(ACL, false);
	struct copts ob = { .clean = true, .user = "bob", .pass = "secret" };
	struct copts oa = { .clean = true, .user = "alice", .pass = "secret" };
	struct client *bob = connect_ex(0, "bob", &ob, 0, false);
	struct client *alice;

	subscribe(bob, "a/#", 1, 1);
	oa.version = SMQ_V5;
	alice = connect_ex(0, "alice", &oa, 0, false);
	publish_ex(alice, "r/x", "no", 1, false, 3);
	cr_assert_eq(cl_expect(alice, SMQ_PUBACK)->reason, SMQ_RC_NOT_AUTHORIZED);
	publish_ex(alice, "$SYS/x", "no", 1, false, 4);
	cr_assert_eq(cl_expect(alice, SMQ_PUBACK)->reason, SMQ_RC_NOT_AUTHORIZED);
	publish(alice, "a/ok", "yes", 1, false);
	expect_pub(bob, "a/ok", "yes", 1, false);
	/* 3.1.1 publisher: acknowledged, dropped. */
	publish(bob, "a/ok", "bob may only read", 1, false);
	cl_expect_none(bob);
	cr_assert_eq(stats(0)->denied_publish, 2);
	/* Patterns: %u is the user's own name only. */
	subscribe(bob, "own/#", 0, 0x80);
	world_fini();
	smq_auth_unref(a);
}

Test(core_engine, acl_subscribe_refused_and_each_delivery_checked)
{
	struct smq_auth *a = auth_world(ACL, false);
	struct copts oa = { .clean = true, .user = "alice", .pass = "secret" };
	struct client *alice = connect_ex(0, "alice", &oa, 0, false);

	subscribe(alice, "x/#", 0, 0x80);	/* no rule can match */
	subscribe(alice, "a/secret", 0, 0x80);	/* covered by deny */
	subscribe(alice, "a/#", 0, 0);		/* allowed; a/secret checked per message */
	/* The broker's own publishes pass no write check: only the read check
	 * at delivery stands between a/secret and alice. */
	cr_assert_eq(smq_engine_publish(W.e[0], S("a/secret"), S("hidden"), 0, false, W.now), 0);
	cr_assert_eq(smq_engine_publish(W.e[0], S("a/open"), S("seen"), 0, false, W.now), 0);
	settle();
	expect_pub(alice, "a/open", "seen", 0, false);
	cl_expect_none(alice);
	cr_assert_eq(stats(0)->denied_read, 1);
	cr_assert_geq(stats(0)->denied_subscribe, 2);
	world_fini();
	smq_auth_unref(a);
}

Test(core_engine, will_topic_must_be_writable)
{
	struct smq_auth *a = auth_world(ACL, false);
	struct will w = { .topic = "r/will", .payload = "x" };
	struct copts o = { .clean = true, .user = "alice", .pass = "secret", .will = &w };

	connect_ex(0, "w1", &o, SMQ_CONNACK_NOT_AUTHORIZED, false);
	w.topic = "a/will";
	connect_ex(0, "w2", &o, 0, false);
	world_fini();
	smq_auth_unref(a);
}

/* ---- QoS 2 across reconnects, timers that are due, strictness ---------- */

static void pubrel(struct client *cl, uint16_t pid, uint8_t want)
{
	struct smq_packet *comp;

	send_ack(cl, SMQ_PUBREL, pid);
	comp = cl_expect(cl, SMQ_PUBCOMP);
	cr_assert_eq(comp->packet_id, pid);
	cr_assert_eq(comp->reason, want, "PUBCOMP reason 0x%x", comp->reason);
}

Test(core_engine, v5_inbound_qos2_id_survives_a_reconnect_MQTT_4_3_3_2, .init = start1)
{
	struct copts o = { .clean = false, .session_expiry = 100 };
	struct client *w = watcher(0, "q2/#");
	struct client *a = connect5(0, "q2pub", o, false);

	publish_ex(a, "q2/t", "once", 2, false, 7);
	cr_assert_eq(cl_expect(a, SMQ_PUBREC)->packet_id, 7);
	lose(a);			/* before PUBREL */
	a = connect5(0, "q2pub", o, true);
	publish_ex(a, "q2/t", "once", 2, false, 7);	/* a re-send with DUP: no 2nd copy */
	cr_assert_eq(cl_expect(a, SMQ_PUBREC)->packet_id, 7);
	pubrel(a, 7, 0);		/* not 0x92: the id was kept */
	settle();
	expect_pub(w, "q2/t", "once", 1, false);
	cl_expect_none(w);
	pubrel(a, 7, SMQ_RC_PACKET_ID_NOT_FOUND);	/* released once only */
}

Test(core_engine, inbound_qos2_id_survives_a_takeover_MQTT_4_3_3_2, .init = start1)
{
	struct copts o = { .clean = false };
	struct client *a = connect_ex(0, "q2pub", &o, 0, false);
	struct client *b;

	publish_ex(a, "q2/t", "once", 2, false, 9);
	cr_assert_eq(cl_expect(a, SMQ_PUBREC)->packet_id, 9);
	b = connect_ex(0, "q2pub", &o, 0, true);	/* the old socket is not dead yet */
	settle();
	cr_assert(a->close_req);
	send_ack(b, SMQ_PUBREL, 9);
	cr_assert_eq(cl_expect(b, SMQ_PUBCOMP)->packet_id, 9);
	cr_assert_not(b->close_req);
}

/* Time passes with no tick (the shard slept, or input is handled before
 * the tick of its loop turn). */
static void advance_no_tick(uint64_t ms)
{
	W.now += ms;
}

Test(core_engine, v5_reconnect_after_session_expiry_due_but_not_fired_is_a_new_session,
     .init = start1)
{
	static const struct will will = { "will/t", "expired", 0, false, 50 };
	struct copts o = { .clean = false, .session_expiry = 2, .will = &will };
	struct client *w = watcher(0, "will/#");
	struct client *a = connect5(0, "late", o, false);

	subscribe5(a, "t", 1, 0, 1);
	lose(a);
	advance_no_tick(2000);
	a = connect5(0, "late", (struct copts){ .clean = false, .session_expiry = 2 }, false);
	settle();
	/* the session ended, and with it the will waiting for its delay [MQTT-3.1.3-9] */
	expect_pub(w, "will/t", "expired", 0, false);
	cr_assert_eq(stats(0)->sessions_expired, 1);
	cr_assert_eq(stats(0)->subscriptions, 1, "only the watcher's subscription is left");
}

Test(core_engine, v5_will_delay_due_but_not_fired_is_published_on_reconnect, .init = start1)
{
	static const struct will will = { "will/t", "due", 0, false, 2 };
	struct copts o = { .clean = false, .session_expiry = 100, .will = &will };
	struct client *w = watcher(0, "will/#");
	struct client *a = connect5(0, "late", o, false);

	lose(a);
	advance_no_tick(2001);
	connect5(0, "late", (struct copts){ .clean = false, .session_expiry = 100 }, true);
	settle();
	expect_pub(w, "will/t", "due", 0, false);
	cl_expect_none(w);
}

Test(core_engine, persistent_client_expiration_due_but_not_fired_is_not_resumed)
{
	struct copts o = { .clean = false };
	struct client *a;

	world_init(1);
	W.cfg.persistent_client_expiration = 2;
	world_start();
	a = connect_ex(0, "p", &o, 0, false);
	lose(a);
	advance_no_tick(1999);
	a = connect_ex(0, "p", &o, 0, true);	/* just in time */
	lose(a);
	advance_no_tick(2000);
	connect_ex(0, "p", &o, 0, false);	/* just too late */
}

Test(core_engine, v5_session_expiry_fires_at_its_deadline_on_an_idle_engine, .init = start1)
{
	struct copts o = { .clean = false, .session_expiry = 2 };
	struct client *a = connect5(0, "idle", o, false);
	int64_t next;

	lose(a);
	next = smq_engine_tick(W.e[0], W.now);
	cr_assert_eq(next, 2000, "the loop is told to wake in %lld ms", (long long)next);
	advance(1999);
	cr_assert_eq(stats(0)->sessions, 1);
	advance(1);
	cr_assert_eq(stats(0)->sessions, 0);
}

Test(core_engine, pubcomp_answering_a_qos1_publish_closes, .init = start1)
{
	struct client *sub = connect_clean(0, "sub");
	struct client *pub = connect_clean(0, "pub");
	struct smq_packet *m;

	subscribe(sub, "t", 1, 1);
	publish(pub, "t", "x", 1, false);
	m = expect_pub(sub, "t", "x", 1, false);
	send_ack(sub, SMQ_PUBCOMP, m->packet_id);
	cr_assert(sub->close_req);
}

Test(core_engine, v5_pubcomp_before_pubrec_is_a_protocol_error, .init = start1)
{
	struct client *sub = connect5(0, "sub", (struct copts){ .clean = true }, false);
	struct client *pub = connect_clean(0, "pub");
	struct smq_packet *m;

	subscribe5(sub, "t", 2, 0, 2);
	publish(pub, "t", "x", 2, false);
	m = expect_pub(sub, "t", "x", 2, false);
	send_ack(sub, SMQ_PUBCOMP, m->packet_id);
	cr_assert_eq(cl_expect(sub, SMQ_DISCONNECT)->reason, SMQ_RC_PROTOCOL_ERROR);
	cr_assert(sub->close_req);
}

Test(core_engine, v5_puback_answering_a_qos2_publish_is_a_protocol_error, .init = start1)
{
	struct client *sub = connect5(0, "sub", (struct copts){ .clean = true }, false);
	struct client *pub = connect_clean(0, "pub");
	struct smq_packet *m;

	subscribe5(sub, "t", 2, 0, 2);
	publish(pub, "t", "x", 2, false);
	m = expect_pub(sub, "t", "x", 2, false);
	send_ack(sub, SMQ_PUBACK, m->packet_id);
	cr_assert_eq(cl_expect(sub, SMQ_DISCONNECT)->reason, SMQ_RC_PROTOCOL_ERROR);
}

Test(core_engine, first_byte_that_is_not_connect_closes_at_once_MQTT_3_1_0_1, .init = start1)
{
	static const uint8_t junk[] = { 0x47, 0x45 };	/* "GE" of "GET / HTTP/1.1" */
	struct client *cl = cl_new(0);

	cl_bytes(cl, junk, 1);
	cr_assert(cl->close_req, "closed after one byte, not after a whole 'packet'");
	cl_expect_none(cl);
	(void)junk[1];
}

Test(core_engine, unknown_protocol_name_closes_without_connack_MQTT_3_1_2_1, .init = start1)
{
	static const uint8_t b[] = { 0x10, 12, 0, 4, 'M', 'Q', 'T', 'X', 4, 0x02, 0, 60, 0, 0 };
	struct client *cl = cl_new(0);

	cl_bytes(cl, b, sizeof(b));
	cr_assert(cl->close_req);
	cl_expect_none(cl);
	cr_assert_eq(stats(0)->connects_refused, 0);
}

Test(core_engine, mqtt31_one_character_client_id_is_accepted, .init = start1)
{
	struct copts o = { .version = SMQ_V31, .clean = true };

	connect_ex(0, "x", &o, 0, false);
}

Test(core_engine, control_character_in_client_id_closes_MQTT_1_5_4_3, .init = start1)
{
	struct copts o = { .clean = true };
	struct client *cl = cl_new(0);

	send_connect(cl, "evil\nid", &o);
	cr_assert(cl->close_req);
	cl_expect_none(cl);
}

Test(core_engine, zero_length_filter_later_in_a_subscribe_closes_MQTT_4_7_3_1, .init = start1)
{
	static const uint8_t sub[] = { 0x82, 9, 0, 1, 0, 1, 'a', 0, 0, 0, 0 };
	struct client *cl = connect_clean(0, "c");

	cl_bytes(cl, sub, sizeof(sub));
	cr_assert(cl->close_req);
	cl_expect_none(cl);		/* no SUBACK for any of it */
	cr_assert_eq(stats(0)->subscriptions, 0);
}

/* ---- 5.0: payload format, maximum packet size on every packet ---------- */

Test(core_engine, v5_payload_format_1_with_invalid_utf8_is_refused_0x99, .init = start1)
{
	struct client *w = watcher(0, "pf/#");
	struct client *cl = connect5(0, "pf", (struct copts){ .clean = true }, false);
	struct smq_packet p = { .type = SMQ_PUBLISH, .flags = 2 };
	struct smq_packet *ack;

	p.publish.qos = 1;
	p.publish.topic = S("pf/t");
	p.publish.payload = S("bad \xff utf-8");
	p.packet_id = 3;
	SMQ_SET(&p.props, SMQ_PROP_PAYLOAD_FORMAT);
	p.props.payload_format = 1;
	cl_send(cl, &p);
	ack = cl_expect(cl, SMQ_PUBACK);
	cr_assert_eq(ack->reason, SMQ_RC_PAYLOAD_FORMAT_INVALID);
	p.publish.payload = S("good \xc3\xa9");
	p.packet_id = 4;
	cl_send(cl, &p);
	cr_assert_eq(cl_expect(cl, SMQ_PUBACK)->reason, 0);
	settle();
	expect_pub(w, "pf/t", "good \xc3\xa9", 1, false);
	cl_expect_none(w);
	cr_assert_eq(stats(0)->dropped_bad_payload, 1);
}

Test(core_engine, v5_suback_larger_than_the_clients_maximum_is_not_sent_MQTT_3_1_2_24,
     .init = start1)
{
	/* 40 bytes: room for the CONNACK with its properties */
	struct client *cl = connect5(0, "small", (struct copts){ .clean = true, .max_packet = 40 },
				     false);
	static const char names[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN";
	struct smq_sub_entry en[40];
	struct smq_packet p = { .type = SMQ_SUBSCRIBE, .flags = 2, .packet_id = 5 };

	for (int i = 0; i < 40; i++)
		en[i] = (struct smq_sub_entry){ { (const uint8_t *)names + i, 1 }, 0 };
	p.list.entries = en;
	p.list.count = 40;	/* SUBACK: 2 + 2 + 1 + 40 = 45 bytes > 40 */
	cl_send(cl, &p);
	cl_expect_none(cl);
	cr_assert_eq(stats(0)->dropped_too_large, 1);
	p.list.count = 1;	/* 6 bytes: fits */
	p.packet_id = 6;
	cl_send(cl, &p);
	cr_assert_eq(cl_expect(cl, SMQ_SUBACK)->packet_id, 6);
}

Test(core_engine, v5_aliased_publish_fits_a_maximum_the_full_topic_would_not, .init = start1)
{
	struct client *sub = connect5(0, "sub", (struct copts){ .clean = true, .alias_max = 1,
								.max_packet = 4096 }, false);
	struct client *pub = connect_clean(0, "pub");

	subscribe5(sub, "x/#", 0, 0, 0);
	publish(pub, "x/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "1", 0, false);
	expect_pub(sub, "x/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "1", 0, false);
	publish(pub, "x/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "2", 0, false);
	cr_assert_eq(expect_pub(sub, "", "2", 0, false)->props.topic_alias, 1);
}

/* ---- mosquitto.conf settings ------------------------------------------ */

Test(core_engine, max_queued_messages_zero_queues_without_a_count_limit)
{
	struct copts o = { .clean = false };
	struct client *a, *pub;
	char n[16];

	world_init(1);
	W.cfg.max_queued_messages = 0;	/* mosquitto: no maximum */
	W.cfg.max_queued_bytes = 0;
	W.cfg.max_inflight_messages = 65535;
	world_start();
	a = connect_ex(0, "p", &o, 0, false);
	pub = connect_clean(0, "pub");
	subscribe(a, "t", 1, 1);
	lose(a);
	for (int i = 0; i < 120; i++) {
		snprintf(n, sizeof(n), "%d", i);
		publish(pub, "t", n, 1, false);
	}
	cr_assert_eq(stats(0)->dropped_queue_full, 0, "0 is no maximum, not \"queue nothing\"");
	a = connect_ex(0, "p", &o, 0, true);
	for (int i = 0; i < 120; i++) {
		snprintf(n, sizeof(n), "%d", i);
		expect_pub(a, "t", n, 1, false);
	}
}

Test(core_engine, message_size_limit_acks_but_does_not_deliver)
{
	struct client *w, *pub, *p5;

	world_init(1);
	W.cfg.message_size_limit = 4;
	world_start();
	w = watcher(0, "t");
	pub = connect_clean(0, "pub");
	publish(pub, "t", "12345", 1, false);	/* PUBACK (checked by publish()) */
	publish(pub, "t", "1234", 0, false);
	expect_pub(w, "t", "1234", 0, false);
	cl_expect_none(w);
	cr_assert_not(pub->close_req, "mosquitto keeps the client connected");
	p5 = connect5(0, "p5", (struct copts){ .clean = true }, false);
	publish_ex(p5, "t", "123456", 1, false, 10);
	cr_assert_eq(cl_expect(p5, SMQ_PUBACK)->reason, SMQ_RC_IMPL_SPECIFIC);
	cl_expect_none(w);
}

Test(core_engine, message_size_limit_refuses_a_larger_will)
{
	struct will wl = { .topic = "w", .payload = "toolong" };
	struct copts o = { .version = SMQ_V5, .clean = true, .will = &wl };

	world_init(1);
	W.cfg.message_size_limit = 3;
	world_start();
	connect_ex(0, "w5", &o, SMQ_RC_PACKET_TOO_LARGE, false);
}

Test(core_engine, clientid_prefixes_refuse_other_ids_as_not_authorized)
{
	struct copts o = { .clean = true };
	struct copts o5 = { .version = SMQ_V5, .clean = true };

	world_init(1);
	strcpy(W.cfg.clientid_prefixes, "secure-");
	world_start();
	connect_ex(0, "secure-client", &o, 0, false);
	connect_ex(0, "mqtt", &o, SMQ_CONNACK_NOT_AUTHORIZED, false);	/* as mosquitto */
	connect_ex(0, "secure", &o5, SMQ_RC_NOT_AUTHORIZED, false);
	connect_ex(0, "", &o, SMQ_CONNACK_NOT_AUTHORIZED, false);	/* auto- lacks it */
}

Test(core_engine, auto_id_prefix_starts_assigned_ids)
{
	struct client *cl;
	struct copts o = { .version = SMQ_V5, .clean = true };
	struct smq_packet *ack;

	world_init(1);
	strcpy(W.cfg.auto_id_prefix, "secure-gen-");
	strcpy(W.cfg.clientid_prefixes, "secure-");
	world_start();
	cl = cl_new(0);
	send_connect(cl, "", &o);
	ack = cl_expect(cl, SMQ_CONNACK);
	cr_assert_eq(ack->reason, 0);
	cr_assert(ack->props.assigned_client_id.len > 11 &&
		  !memcmp(ack->props.assigned_client_id.p, "secure-gen-", 11));
}

Test(core_engine, upgrade_outgoing_qos_delivers_at_the_subscription_qos)
{
	struct client *sub, *pub;

	world_init(1);
	W.cfg.upgrade_outgoing_qos = true;
	world_start();
	sub = connect_clean(0, "sub");
	pub = connect_clean(0, "pub");
	subscribe(sub, "t", 2, 2);
	publish(pub, "t", "x", 0, false);
	expect_pub(sub, "t", "x", 2, false);
}

Test(core_engine, without_upgrade_outgoing_qos_the_lower_qos_wins, .init = start1)
{
	struct client *sub = connect_clean(0, "sub");
	struct client *pub = connect_clean(0, "pub");

	subscribe(sub, "t", 2, 2);
	publish(pub, "t", "x", 0, false);
	expect_pub(sub, "t", "x", 0, false);
}

Test(core_engine, max_topic_alias_is_announced_and_enforced)
{
	struct client *cl;
	struct copts o = { .version = SMQ_V5, .clean = true };
	struct smq_packet *ack;

	world_init(1);
	W.cfg.max_topic_alias = 3;
	world_start();
	cl = cl_new(0);
	send_connect(cl, "a", &o);
	ack = cl_expect(cl, SMQ_CONNACK);
	cr_assert_eq(ack->props.topic_alias_max, 3);
	publish_alias(cl, "t", "x", 3);
	cr_assert_not(cl->close_req);
	publish_alias(cl, "t", "x", 4);
	cr_assert_eq(cl_expect(cl, SMQ_DISCONNECT)->reason, SMQ_RC_TOPIC_ALIAS_INVALID);
}

Test(core_engine, max_topic_alias_zero_announces_none_and_refuses_aliases)
{
	struct client *cl;
	struct copts o = { .version = SMQ_V5, .clean = true };

	world_init(1);
	W.cfg.max_topic_alias = 0;
	world_start();
	cl = cl_new(0);
	send_connect(cl, "a", &o);
	cr_assert_not(SMQ_HAS(&cl_expect(cl, SMQ_CONNACK)->props, SMQ_PROP_TOPIC_ALIAS_MAX));
	publish_alias(cl, "t", "x", 1);
	cr_assert_eq(cl_expect(cl, SMQ_DISCONNECT)->reason, SMQ_RC_TOPIC_ALIAS_INVALID);
}

/* ---- 5.0 enhanced authentication (section 4.12) -------------------------- */

#include "core/authmethod.h"

/* A test-only challenge/response method. CONNECT data "hello" -> AUTH 0x18
 * "challenge"; "quick" -> success at once ("welcome"); anything else
 * fails. Then AUTH data "response" -> success ("done"), "more" -> another
 * round ("again"), anything else fails. The state is heap memory, so ASan
 * sees a leak if the engine forgets to free it. */
struct chal_state {
	int rounds;
};

static int chal_live;	/* states not freed yet */

static enum smq_authm_verdict chal_start(void **state, const struct smq_authm_who *who,
					 struct smq_str data, struct smq_str *reply)
{
	struct chal_state *st = calloc(1, sizeof(*st));

	cr_assert(st);
	cr_assert_null(*state);
	(void)who;
	*state = st;
	chal_live++;
	if (str_is(data, "quick")) {
		*reply = S("welcome");
		return SMQ_AUTHM_SUCCESS;
	}
	if (!str_is(data, "hello"))
		return SMQ_AUTHM_FAIL;
	*reply = S("challenge");
	return SMQ_AUTHM_CONTINUE;
}

static enum smq_authm_verdict chal_step(void *state, struct smq_str data, struct smq_str *reply)
{
	struct chal_state *st = state;

	st->rounds++;
	if (str_is(data, "more")) {
		*reply = S("again");
		return SMQ_AUTHM_CONTINUE;
	}
	*reply = S("done");
	return str_is(data, "response") ? SMQ_AUTHM_SUCCESS : SMQ_AUTHM_FAIL;
}

static void chal_free(void *state)
{
	if (state)
		chal_live--;
	free(state);
}

static const struct smq_authmethod CHAL = { "TEST-CHAL", true, chal_start, chal_step, chal_free };
static const struct smq_authmethod NOREAUTH = { "TEST-NOREAUTH", false, chal_start, chal_step,
						chal_free };

static void am_init(void)
{
	start1();
	chal_live = 0;
	cr_assert_eq(smq_authmethod_register(&CHAL), 0);
	cr_assert_eq(smq_authmethod_register(&NOREAUTH), 0);
}

static void am_fini(void)
{
	world_fini();
	smq_authmethod_unregister("TEST-CHAL");
	smq_authmethod_unregister("TEST-NOREAUTH");
}

static void send_connect_am(struct client *cl, const char *id, const char *method,
			    const char *data)
{
	struct smq_packet p = { .type = SMQ_CONNECT, .version = SMQ_V5 };

	cl->version = SMQ_V5;
	p.connect.proto_name = S("MQTT");
	p.connect.level = 5;
	p.connect.clean = true;
	p.connect.client_id = S(id);
	SMQ_SET(&p.props, SMQ_PROP_AUTH_METHOD);
	p.props.auth_method = S(method);
	if (data) {
		SMQ_SET(&p.props, SMQ_PROP_AUTH_DATA);
		p.props.auth_data = S(data);
	}
	cl_send(cl, &p);
}

static void send_auth(struct client *cl, uint8_t rc, const char *method, const char *data)
{
	struct smq_packet p = { .type = SMQ_AUTH, .reason = rc };

	if (method) {
		SMQ_SET(&p.props, SMQ_PROP_AUTH_METHOD);
		p.props.auth_method = S(method);
	}
	if (data) {
		SMQ_SET(&p.props, SMQ_PROP_AUTH_DATA);
		p.props.auth_data = S(data);
	}
	cl_send(cl, &p);
}

/* Expect AUTH @rc carrying @method and @data. */
static void expect_auth(struct client *cl, uint8_t rc, const char *method, const char *data)
{
	struct smq_packet *p = cl_expect(cl, SMQ_AUTH);

	cr_assert_eq(p->reason, rc, "AUTH reason 0x%x", p->reason);
	cr_assert(SMQ_HAS(&p->props, SMQ_PROP_AUTH_METHOD), "AUTH without a method");
	cr_assert(str_is(p->props.auth_method, method));
	cr_assert(SMQ_HAS(&p->props, SMQ_PROP_AUTH_DATA));
	cr_assert(str_is(p->props.auth_data, data), "data %.*s", (int)p->props.auth_data.len,
		  p->props.auth_data.p);
}

/* Connect with TEST-CHAL in two rounds; returns the live client. */
static struct client *connect_chal(const char *id, const char *method)
{
	struct client *cl = cl_new(0);
	struct smq_packet *ack;

	send_connect_am(cl, id, method, "hello");
	expect_auth(cl, SMQ_RC_CONTINUE_AUTH, method, "challenge");
	send_auth(cl, SMQ_RC_CONTINUE_AUTH, method, "response");
	ack = cl_expect(cl, SMQ_CONNACK);
	cr_assert_eq(ack->reason, 0);
	return cl;
}

Test(core_engine_authm, registry_refuses_duplicates_and_bad_methods, .init = am_init,
     .fini = am_fini)
{
	static const struct smq_authmethod nostep = { "X", false, chal_start, NULL, NULL };

	cr_assert_eq(smq_authmethod_register(&CHAL), -EEXIST);
	cr_assert_eq(smq_authmethod_register(&nostep), -EINVAL);
	cr_assert_eq(smq_authmethod_find(S("TEST-CHAL")), &CHAL);
	cr_assert_null(smq_authmethod_find(S("TEST-CHA")));
	cr_assert_eq(smq_authmethod_unregister("TEST-CHAL"), 0);
	cr_assert_null(smq_authmethod_find(S("TEST-CHAL")));
	cr_assert_eq(smq_authmethod_unregister("TEST-CHAL"), -ENOENT);
}

Test(core_engine_authm, no_method_is_enabled_by_default)
{
	cr_assert_null(smq_authmethod_find(S("SCRAM-SHA-1")));
	cr_assert_null(smq_authmethod_find(S("SCRAM-SHA-256")));
	cr_assert_null(smq_authmethod_find(S("TEST-CHAL")));
}

Test(core_engine_authm, unknown_method_gets_0x8c_MQTT_4_12_0_1, .init = am_init, .fini = am_fini)
{
	struct client *cl = cl_new(0);
	struct smq_packet *ack;

	send_connect_am(cl, "x", "SCRAM-SHA-256", "n,,n=user");
	ack = cl_expect(cl, SMQ_CONNACK);
	cr_assert_eq(ack->reason, SMQ_RC_BAD_AUTH_METHOD);
	cr_assert_not(SMQ_HAS(&ack->props, SMQ_PROP_AUTH_METHOD));
	cr_assert(cl->close_req);
	cr_assert_eq(chal_live, 0);
}

Test(core_engine_authm, continue_then_connack_with_method_MQTT_4_12_0_2_MQTT_4_12_0_5,
     .init = am_init, .fini = am_fini)
{
	struct client *cl = cl_new(0);
	struct client *sub = connect_clean(0, "sub");
	struct smq_packet *ack;

	subscribe(sub, "t", 0, 0);
	send_connect_am(cl, "chal", "TEST-CHAL", "hello");
	expect_auth(cl, SMQ_RC_CONTINUE_AUTH, "TEST-CHAL", "challenge");
	cl_expect_none(cl);	/* no CONNACK while the exchange runs */
	cr_assert_eq(stats(0)->connections, 1);
	send_auth(cl, SMQ_RC_CONTINUE_AUTH, "TEST-CHAL", "more");
	expect_auth(cl, SMQ_RC_CONTINUE_AUTH, "TEST-CHAL", "again");
	send_auth(cl, SMQ_RC_CONTINUE_AUTH, "TEST-CHAL", "response");
	ack = cl_expect(cl, SMQ_CONNACK);
	cr_assert_eq(ack->reason, 0);
	cr_assert(SMQ_HAS(&ack->props, SMQ_PROP_AUTH_METHOD));
	cr_assert(str_is(ack->props.auth_method, "TEST-CHAL"));
	cr_assert(str_is(ack->props.auth_data, "done"));
	cr_assert_eq(stats(0)->connections, 2);
	cr_assert_eq(chal_live, 0, "the method's state outlived the CONNACK");
	publish(cl, "t", "hi", 0, false);
	expect_pub(sub, "t", "hi", 0, false);
}

Test(core_engine_authm, one_step_success_connacks_at_once, .init = am_init, .fini = am_fini)
{
	struct client *cl = cl_new(0);
	struct smq_packet *ack;

	send_connect_am(cl, "q", "TEST-CHAL", "quick");
	ack = cl_expect(cl, SMQ_CONNACK);
	cr_assert_eq(ack->reason, 0);
	cr_assert(str_is(ack->props.auth_method, "TEST-CHAL"));
	cr_assert(str_is(ack->props.auth_data, "welcome"));
	cl_expect_none(cl);
}

Test(core_engine_authm, no_method_no_auth_props_in_connack_MQTT_4_12_0_6, .init = am_init,
     .fini = am_fini)
{
	struct copts o = { .version = SMQ_V5, .clean = true };
	struct client *cl = connect_ex(0, "plain", &o, 0, false);

	(void)cl;
	cr_assert_not(SMQ_HAS(&((struct smq_packet *)cl->keep[1])->props, SMQ_PROP_AUTH_METHOD));
}

Test(core_engine_authm, rejected_exchange_gets_0x87_and_closes_MQTT_4_12_0_4, .init = am_init,
     .fini = am_fini)
{
	struct client *cl = cl_new(0);

	send_connect_am(cl, "bad", "TEST-CHAL", "hello");
	expect_auth(cl, SMQ_RC_CONTINUE_AUTH, "TEST-CHAL", "challenge");
	send_auth(cl, SMQ_RC_CONTINUE_AUTH, "TEST-CHAL", "wrong");
	cr_assert_eq(cl_expect(cl, SMQ_CONNACK)->reason, SMQ_RC_NOT_AUTHORIZED);
	cr_assert(cl->close_req);
	cr_assert_eq(stats(0)->auth_failures, 1);
	cr_assert_eq(stats(0)->connections, 0);
	/* refused at the first message too */
	cl = cl_new(0);
	send_connect_am(cl, "bad2", "TEST-CHAL", "nonsense");
	cr_assert_eq(cl_expect(cl, SMQ_CONNACK)->reason, SMQ_RC_NOT_AUTHORIZED);
	cr_assert(cl->close_req);
	settle();
	cr_assert_eq(chal_live, 0);
}

Test(core_engine_authm, other_packet_before_connack_is_protocol_error_MQTT_3_1_2_30,
     .init = am_init, .fini = am_fini)
{
	struct client *cl = cl_new(0);
	struct client *sub = connect_clean(0, "sub");

	subscribe(sub, "t", 0, 0);
	send_connect_am(cl, "early", "TEST-CHAL", "hello");
	expect_auth(cl, SMQ_RC_CONTINUE_AUTH, "TEST-CHAL", "challenge");
	publish_ex(cl, "t", "sneaky", 0, false, 0);
	cr_assert_eq(cl_expect(cl, SMQ_CONNACK)->reason, SMQ_RC_PROTOCOL_ERROR);
	cr_assert(cl->close_req);
	settle();
	cl_expect_none(sub);	/* nothing of it was published */
	cr_assert_eq(chal_live, 0);
}

Test(core_engine_authm, auth_with_another_method_is_protocol_error_MQTT_4_12_0_5,
     .init = am_init, .fini = am_fini)
{
	struct client *cl = cl_new(0);

	send_connect_am(cl, "m", "TEST-CHAL", "hello");
	expect_auth(cl, SMQ_RC_CONTINUE_AUTH, "TEST-CHAL", "challenge");
	send_auth(cl, SMQ_RC_CONTINUE_AUTH, "TEST-NOREAUTH", "response");
	cr_assert_eq(cl_expect(cl, SMQ_CONNACK)->reason, SMQ_RC_PROTOCOL_ERROR);
	cr_assert(cl->close_req);
	/* and without the method property at all (3.15.2.2.2) */
	cl = cl_new(0);
	send_connect_am(cl, "m2", "TEST-CHAL", "hello");
	expect_auth(cl, SMQ_RC_CONTINUE_AUTH, "TEST-CHAL", "challenge");
	send_auth(cl, SMQ_RC_CONTINUE_AUTH, NULL, "response");
	cr_assert_eq(cl_expect(cl, SMQ_CONNACK)->reason, SMQ_RC_PROTOCOL_ERROR);
}

Test(core_engine_authm, auth_without_method_in_connect_is_protocol_error_MQTT_4_12_0_7,
     .init = am_init, .fini = am_fini)
{
	struct copts o = { .version = SMQ_V5, .clean = true };
	struct client *cl = connect_ex(0, "plain", &o, 0, false);

	send_auth(cl, SMQ_RC_REAUTHENTICATE, "TEST-CHAL", "hello");
	cr_assert_eq(cl_expect(cl, SMQ_DISCONNECT)->reason, SMQ_RC_PROTOCOL_ERROR);
	cr_assert(cl->close_req);
	cr_assert_eq(stats(0)->protocol_errors, 1);
}

Test(core_engine_authm, continue_with_no_exchange_under_way_is_protocol_error_MQTT_4_12_0_3,
     .init = am_init, .fini = am_fini)
{
	struct client *cl = connect_chal("c", "TEST-CHAL");

	send_auth(cl, SMQ_RC_CONTINUE_AUTH, "TEST-CHAL", "response");
	cr_assert_eq(cl_expect(cl, SMQ_DISCONNECT)->reason, SMQ_RC_PROTOCOL_ERROR);
	cr_assert(cl->close_req);
}

Test(core_engine_authm, reauthentication_succeeds_with_auth_0x00_MQTT_4_12_1_1, .init = am_init,
     .fini = am_fini)
{
	struct client *cl = connect_chal("r", "TEST-CHAL");
	struct smq_packet ping = { .type = SMQ_PINGREQ };

	send_auth(cl, SMQ_RC_REAUTHENTICATE, "TEST-CHAL", "hello");
	expect_auth(cl, SMQ_RC_CONTINUE_AUTH, "TEST-CHAL", "challenge");
	cl_send(cl, &ping);	/* other packets go on during re-authentication */
	cl_expect(cl, SMQ_PINGRESP);
	send_auth(cl, SMQ_RC_CONTINUE_AUTH, "TEST-CHAL", "response");
	expect_auth(cl, SMQ_RC_SUCCESS, "TEST-CHAL", "done");
	cr_assert_not(cl->close_req);
	cr_assert_eq(chal_live, 0);
	/* and again, since the first one finished */
	send_auth(cl, SMQ_RC_REAUTHENTICATE, "TEST-CHAL", "quick");
	expect_auth(cl, SMQ_RC_SUCCESS, "TEST-CHAL", "welcome");
	cr_assert_not(cl->close_req);
}

Test(core_engine_authm, reauthentication_with_another_method_is_protocol_error_MQTT_4_12_1_1,
     .init = am_init, .fini = am_fini)
{
	struct client *cl = connect_chal("r", "TEST-CHAL");

	send_auth(cl, SMQ_RC_REAUTHENTICATE, "TEST-NOREAUTH", "hello");
	cr_assert_eq(cl_expect(cl, SMQ_DISCONNECT)->reason, SMQ_RC_PROTOCOL_ERROR);
	cr_assert(cl->close_req);
}

Test(core_engine_authm, failed_reauthentication_disconnects_MQTT_4_12_1_2, .init = am_init,
     .fini = am_fini)
{
	struct client *cl = connect_chal("r", "TEST-CHAL");

	send_auth(cl, SMQ_RC_REAUTHENTICATE, "TEST-CHAL", "hello");
	expect_auth(cl, SMQ_RC_CONTINUE_AUTH, "TEST-CHAL", "challenge");
	send_auth(cl, SMQ_RC_CONTINUE_AUTH, "TEST-CHAL", "wrong");
	cr_assert_eq(cl_expect(cl, SMQ_DISCONNECT)->reason, SMQ_RC_NOT_AUTHORIZED);
	cr_assert(cl->close_req);
	cr_assert_eq(stats(0)->auth_failures, 1);
	settle();
	cr_assert_eq(chal_live, 0);
}

Test(core_engine_authm, reauthentication_refused_when_the_method_lacks_it_MQTT_4_12_1_2,
     .init = am_init, .fini = am_fini)
{
	struct client *cl = connect_chal("n", "TEST-NOREAUTH");

	send_auth(cl, SMQ_RC_REAUTHENTICATE, "TEST-NOREAUTH", "hello");
	cr_assert_eq(cl_expect(cl, SMQ_DISCONNECT)->reason, SMQ_RC_NOT_AUTHORIZED);
	cr_assert(cl->close_req);
}

Test(core_engine_authm, unfinished_exchange_times_out, .init = am_init, .fini = am_fini)
{
	struct client *cl = cl_new(0);

	send_connect_am(cl, "slow", "TEST-CHAL", "hello");
	expect_auth(cl, SMQ_RC_CONTINUE_AUTH, "TEST-CHAL", "challenge");
	advance(19000);
	cr_assert_not(cl->close_req);
	advance(2000);
	cr_assert(cl->close_req, "a client that never answers AUTH holds its socket forever");
	cl_expect_none(cl);	/* no CONNACK: the client just loses the connection */
	cr_assert_eq(chal_live, 0);
}

Test(core_engine_authm, disconnect_during_exchange_closes_quietly, .init = am_init,
     .fini = am_fini)
{
	struct client *cl = cl_new(0);
	struct smq_packet d = { .type = SMQ_DISCONNECT };

	send_connect_am(cl, "bye", "TEST-CHAL", "hello");
	expect_auth(cl, SMQ_RC_CONTINUE_AUTH, "TEST-CHAL", "challenge");
	cl_send(cl, &d);
	cr_assert(cl->close_req);
	cl_expect_none(cl);
	cr_assert_eq(stats(0)->protocol_errors, 0);
	settle();
	cr_assert_eq(chal_live, 0);
}

Test(core_engine_authm, takeover_waits_until_the_exchange_succeeds, .init = am_init,
     .fini = am_fini)
{
	struct copts o = { .version = SMQ_V5, .clean = true };
	struct client *old = connect_ex(0, "same", &o, 0, false);
	struct client *cl = cl_new(0);

	send_connect_am(cl, "same", "TEST-CHAL", "hello");
	expect_auth(cl, SMQ_RC_CONTINUE_AUTH, "TEST-CHAL", "challenge");
	cr_assert_not(old->close_req, "an unauthenticated CONNECT took the session over");
	send_auth(cl, SMQ_RC_CONTINUE_AUTH, "TEST-CHAL", "response");
	cr_assert_eq(cl_expect(cl, SMQ_CONNACK)->reason, 0);
	cr_assert(old->close_req);
}

/* ---- rate-limited per-connection log lines ------------------------------ */

#include <unistd.h>

static int logfd = -1;

static void log_capture(void)
{
	char path[] = "/tmp/smq_elog_XXXXXX";

	start1();
	logfd = mkstemp(path);
	cr_assert_geq(logfd, 0);
	unlink(path);
	smq_log_set_fd(logfd);
	smq_log_set_level(SMQ_LOG_NOTICE);
}

static void log_release(void)
{
	world_fini();
	smq_log_set_fd(2);
	smq_log_set_level(SMQ_LOG_ERROR);
	close(logfd);
}

/* Everything logged so far, NUL-terminated (static buffer). */
static const char *log_text(void)
{
	static char buf[65536];
	ssize_t n = pread(logfd, buf, sizeof(buf) - 1, 0);

	cr_assert_geq(n, 0);
	buf[n] = 0;
	return buf;
}

static int count_lines(const char *text, const char *needle)
{
	int n = 0;

	for (const char *p = text; (p = strstr(p, needle)); p++)
		n++;
	return n;
}

/* Free the last client's slot (its connection is closed): thousands of
 * clients fit in MAXCL. */
static void cl_forget_last(void)
{
	struct client *cl = &W.cl[--W.ncl];

	for (int k = 0; k < cl->nkeep; k++)
		free(cl->keep[k]);
	free(cl->in);
	memset(cl, 0, sizeof(*cl));
}

/* A client opening connections with a garbage first packet. */
static void bad_connection(void)
{
	struct client *cl = cl_new(0);
	static const uint8_t junk[] = { 0x30, 0x02, 'x', 'y' };

	cl_bytes(cl, junk, sizeof(junk));
	cr_assert(cl->close_req);
	settle();
	cl_forget_last();
}

Test(core_engine_log, protocol_error_lines_limited_to_one_a_second_with_a_count,
     .init = log_capture, .fini = log_release)
{
	const char *t;

	for (int i = 0; i < 1000; i++)
		bad_connection();
	t = log_text();
	cr_assert_eq(count_lines(t, "closing the connection"), 1, "%s", t);
	cr_assert_eq(count_lines(t, "more like this"), 0, "%s", t);
	cr_assert_eq(stats(0)->protocol_errors, 1000, "the counter still sees every one");
	advance(999);
	bad_connection();
	cr_assert_eq(count_lines(log_text(), "closing the connection"), 1);
	advance(1);
	bad_connection();
	t = log_text();
	cr_assert_eq(count_lines(t, "closing the connection"), 2, "%s", t);
	cr_assert(strstr(t, "(1000 more like this since the last report)"), "%s", t);
	advance(1000);
	bad_connection();	/* the count starts again from 0 */
	t = log_text();
	cr_assert_eq(count_lines(t, "closing the connection"), 3, "%s", t);
	cr_assert_eq(count_lines(t, "more like this"), 1, "%s", t);
}

Test(core_engine_log, kinds_are_limited_separately, .init = log_capture, .fini = log_release)
{
	struct copts o = { .version = SMQ_V5, .clean = true };
	const char *t;

	W.cfg.allow_zero_length_clientid = false;
	for (int i = 0; i < 50; i++) {
		bad_connection();
		connect_ex(0, "", &o, SMQ_RC_CLIENT_ID_INVALID, false);
		settle();
		cl_forget_last();
	}
	t = log_text();
	cr_assert_eq(count_lines(t, "closing the connection"), 1, "%s", t);
	cr_assert_eq(count_lines(t, "refused: client identifier rejected"), 1, "%s", t);
	advance(1000);
	connect_ex(0, "", &o, SMQ_RC_CLIENT_ID_INVALID, false);
	t = log_text();
	cr_assert(strstr(t, "refused: client identifier rejected (49 more like this since the "
			    "last report)"), "%s", t);
}

/* ---- persistence ---------------------------------------------------------
 *
 * The engine's records go to a fake store per shard (a sorted array, the
 * order LMDB keeps); a "restart" frees the engines and the retained store
 * and rebuilds them from the records alone, as the shard does at start.
 */

static int rec_find(unsigned sh, const uint8_t *k, uint32_t kl, bool *found)
{
	int lo = 0, hi = W.nrecs[sh];

	while (lo < hi) {
		int mid = (lo + hi) / 2;
		struct rec *r = &W.recs[sh][mid];
		uint32_t n = r->kl < kl ? r->kl : kl;
		int c = memcmp(r->k, k, n);

		if (!c)
			c = (r->kl > kl) - (r->kl < kl);
		if (!c) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

static void rec_del_at(unsigned sh, int i)
{
	free(W.recs[sh][i].k);
	free(W.recs[sh][i].v);
	memmove(&W.recs[sh][i], &W.recs[sh][i + 1], (size_t)(W.nrecs[sh] - i - 1) * sizeof(struct rec));
	W.nrecs[sh]--;
}

static void io_store(void *ctx, const struct smq_store_rec *r)
{
	unsigned sh = *(unsigned *)ctx;
	bool found;
	int i = rec_find(sh, r->key.p, r->key.len, &found);
	struct rec nr;

	if (r->op == SMQ_STORE_DEL) {
		if (found)
			rec_del_at(sh, i);
		return;
	}
	if (r->op == SMQ_STORE_DEL_PREFIX) {
		while (i < W.nrecs[sh] && W.recs[sh][i].kl >= r->key.len &&
		       !memcmp(W.recs[sh][i].k, r->key.p, r->key.len))
			rec_del_at(sh, i);
		return;
	}
	nr.kl = r->key.len;
	nr.k = malloc(nr.kl);
	memcpy(nr.k, r->key.p, nr.kl);
	nr.vl = 0;
	for (unsigned j = 0; j < r->nval; j++)
		nr.vl += r->val[j].len;
	nr.v = malloc(nr.vl + 1);
	nr.vl = 0;
	for (unsigned j = 0; j < r->nval; j++) {
		memcpy(nr.v + nr.vl, r->val[j].p, r->val[j].len);
		nr.vl += r->val[j].len;
	}
	if (found) {
		free(W.recs[sh][i].k);
		free(W.recs[sh][i].v);
		W.recs[sh][i] = nr;
		return;
	}
	W.recs[sh] = realloc(W.recs[sh], (size_t)(W.nrecs[sh] + 1) * sizeof(struct rec));
	memmove(&W.recs[sh][i + 1], &W.recs[sh][i], (size_t)(W.nrecs[sh] - i) * sizeof(struct rec));
	W.recs[sh][i] = nr;
	W.nrecs[sh]++;
}

static uint64_t io_hold(void *ctx)
{
	return W.hold ? ++W.ticket[*(unsigned *)ctx] : 0;
}

/* Every held acknowledgement goes out (the store "committed"). */
static void commit(unsigned sh, bool ok)
{
	smq_engine_release(W.e[sh], W.ticket[sh], ok, W.now);
}

static void pstart(unsigned n)
{
	world_init(n);
	W.persist = true;
	W.wall_off = 1700000000000;
	world_start();
}

static void pstart1(void)
{
	pstart(1);
}

/* The broker dies (no will, no goodbye) and starts again @gone_ms later,
 * its clock restarted: only what was stored is left. */
static void restart(uint64_t gone_ms)
{
	for (int i = 0; i < W.ncl; i++)
		W.cl[i].closed = true;
	for (unsigned i = 0; i < W.n; i++)
		smq_engine_free(W.e[i]);
	W.nev = 0;
	smq_retain_free(W.ret);
	W.ret = smq_retain_new(0);
	W.wall_off += (int64_t)W.now + (int64_t)gone_ms - 5000;
	W.now = 5000;
	world_start();
	for (unsigned sh = 0; sh < W.n; sh++) {
		/* a copy: restoring may delete what expired */
		int n = W.nrecs[sh];
		struct rec *copy = malloc((size_t)n * sizeof(*copy) + 1);

		for (int i = 0; i < n; i++) {
			copy[i] = W.recs[sh][i];
			copy[i].k = malloc(copy[i].kl);
			memcpy(copy[i].k, W.recs[sh][i].k, copy[i].kl);
			copy[i].v = malloc(copy[i].vl + 1);
			memcpy(copy[i].v, W.recs[sh][i].v, copy[i].vl);
		}
		for (int i = 0; i < n; i++) {
			char err[256] = "";
			int ret = smq_engine_restore(W.e[sh], (struct smq_str){ copy[i].k, copy[i].kl },
						     (struct smq_str){ copy[i].v, copy[i].vl },
						     W.now, err, sizeof(err));

			cr_assert_eq(ret, 0, "record %d: %s", i, err);
		}
		smq_engine_restore_done(W.e[sh], W.now);
		for (int i = 0; i < n; i++) {
			free(copy[i].k);
			free(copy[i].v);
		}
		free(copy);
	}
	settle();
}

Test(core_engine, persist_queued_messages_and_subscriptions_survive_a_restart,
     .init = pstart1)
{
	struct copts o = { .clean = false };
	struct client *s = connect_ex(0, "sub", &o, 0, false), *p;

	subscribe(s, "p/#", 1, 1);
	disconnect(s);
	p = connect_clean(0, "pub");
	publish(p, "p/a", "one", 1, false);
	publish(p, "p/b", "two", 1, false);
	restart(1000);
	cr_assert_eq(stats(0)->sessions, 1, "the clean publisher left nothing");
	s = connect_ex(0, "sub", &o, 0, true);
	expect_pub(s, "p/a", "one", 1, false);
	expect_pub(s, "p/b", "two", 1, false);
	p = connect_clean(0, "pub");
	publish(p, "p/c", "three", 1, false);
	expect_pub(s, "p/c", "three", 1, false);	/* the subscription is back */
}

Test(core_engine, persist_in_flight_messages_resume_with_their_ids, .init = pstart1)
{
	struct copts o = { .clean = false };
	struct client *s = connect_ex(0, "sub", &o, 0, false), *p = connect_clean(0, "pub");
	struct smq_packet *a, *b;

	subscribe(s, "f/#", 2, 2);
	publish(p, "f/1", "m1", 2, false);
	publish(p, "f/2", "m2", 2, false);
	a = expect_pub(s, "f/1", "m1", 2, false);
	b = expect_pub(s, "f/2", "m2", 2, false);
	send_ack(s, SMQ_PUBREC, a->packet_id);	/* m1: released; m2: published */
	cr_assert_eq(cl_expect(s, SMQ_PUBREL)->packet_id, a->packet_id);
	restart(10);
	s = connect_ex(0, "sub", &o, 0, true);
	cr_assert_eq(cl_expect(s, SMQ_PUBREL)->packet_id, a->packet_id, "m1 resumes at PUBREL");
	b = expect_pub(s, "f/2", "m2", 2, false);
	cr_assert(b->flags & 8, "re-sent with DUP");
	send_ack(s, SMQ_PUBCOMP, a->packet_id);
	send_ack(s, SMQ_PUBREC, b->packet_id);
	cr_assert_eq(cl_expect(s, SMQ_PUBREL)->packet_id, b->packet_id);
	send_ack(s, SMQ_PUBCOMP, b->packet_id);
	restart(10);
	s = connect_ex(0, "sub", &o, 0, true);
	cl_expect_none(s);	/* both flows ended before the second restart */
}

Test(core_engine, persist_inbound_qos2_id_survives_so_no_second_delivery, .init = pstart1)
{
	struct copts o = { .clean = false };
	struct client *w = watcher(0, "q/#"), *a = connect_ex(0, "q2pub", &o, 0, false);

	(void)w;
	publish_ex(a, "q/t", "once", 2, false, 7);
	cr_assert_eq(cl_expect(a, SMQ_PUBREC)->packet_id, 7);
	restart(10);
	w = connect_clean(0, "w2");
	subscribe(w, "q/#", 2, 2);
	a = connect_ex(0, "q2pub", &o, 0, true);
	publish_ex(a, "q/t", "once", 2, false, 7);	/* re-sent with DUP */
	cr_assert_eq(cl_expect(a, SMQ_PUBREC)->packet_id, 7);
	send_ack(a, SMQ_PUBREL, 7);
	cr_assert_eq(cl_expect(a, SMQ_PUBCOMP)->packet_id, 7);
	settle();
	cl_expect_none(w);	/* delivered before the restart, not again */
}

Test(core_engine, persist_retained_set_and_cleared_survive, .init = pstart1)
{
	struct client *p = connect_clean(0, "pub"), *s;

	publish(p, "r/keep", "kept", 1, true);
	publish(p, "r/gone", "x", 1, true);
	publish(p, "r/gone", "", 1, true);
	restart(10);
	cr_assert_eq(smq_retain_count(W.ret), 1);
	s = connect_clean(0, "s");
	subscribe(s, "r/#", 1, 1);
	expect_pub(s, "r/keep", "kept", 1, true);
	cl_expect_none(s);
}

Test(core_engine, persist_message_expiry_counts_the_time_stopped, .init = pstart1)
{
	struct copts o = { .clean = false, .session_expiry = 3600 };
	struct client *s = connect5(0, "sub", o, false), *p = connect5(0, "pub", (struct copts){ 0 },
								       false);
	struct smq_packet pub = { .type = SMQ_PUBLISH, .flags = 2 };

	subscribe5(s, "e/#", 1, 0, 1);
	disconnect(s);
	pub.publish.qos = 1;
	pub.publish.topic = S("e/short");
	pub.publish.payload = S("10s");
	pub.packet_id = 1;
	SMQ_SET(&pub.props, SMQ_PROP_MESSAGE_EXPIRY);
	pub.props.message_expiry = 10;
	cl_send(p, &pub);
	pub.publish.topic = S("e/long");
	pub.publish.payload = S("100s");
	pub.packet_id = 2;
	pub.props.message_expiry = 100;
	cl_send(p, &pub);
	settle();
	restart(30000);		/* 30 s stopped: the 10 s one expired meanwhile */
	s = connect5(0, "sub", o, true);
	cr_assert_eq(expect_pub(s, "e/long", "100s", 1, false)->props.message_expiry, 70,
		     "the remaining time, stopped time counted");
	cl_expect_none(s);
}

Test(core_engine, persist_session_expiry_counts_the_time_stopped, .init = pstart1)
{
	struct copts o = { .clean = false, .session_expiry = 5 };
	struct client *s = connect5(0, "sub", o, false);

	subscribe5(s, "x/#", 1, 0, 1);
	disconnect(s);
	restart(6000);
	cr_assert_eq(stats(0)->sessions, 0, "expired while the broker was stopped");
	cr_assert_eq(W.nrecs[0], 0, "and its records are gone");
	connect5(0, "sub", o, false);
}

Test(core_engine, persist_will_of_a_session_lost_in_a_crash_fires_after_its_delay,
     .init = pstart1)
{
	static const struct will will = { "will/t", "bye", 1, false, 5 };
	struct copts o = { .clean = false, .session_expiry = 100, .will = &will };
	struct client *w;

	connect5(0, "dies", o, false);
	restart(10);
	w = watcher(0, "will/#");
	advance(4000);
	cl_expect_none(w);
	advance(1500);
	expect_pub(w, "will/t", "bye", 1, false);
}

Test(core_engine, persist_no_will_after_a_clean_stop, .init = pstart1)
{
	static const struct will will = { "will/t", "bye", 1, false, 0 };
	struct copts o = { .clean = false, .session_expiry = 100, .will = &will };
	struct client *w;

	connect5(0, "stops", o, false);
	smq_engine_close_all(W.e[0], SMQ_RC_SERVER_SHUTTING_DOWN);
	settle();
	restart(10);
	w = watcher(0, "will/#");
	advance(1000);
	cl_expect_none(w);
}

Test(core_engine, persist_clean_sessions_store_nothing, .init = pstart1)
{
	struct client *s = connect_clean(0, "c");

	subscribe(s, "c/#", 1, 1);
	publish(connect_clean(0, "p"), "c/x", "m", 1, false);
	cr_assert_eq(W.nrecs[0], 0);
}

Test(core_engine, persist_acks_wait_for_the_commit, .init = pstart1)
{
	struct copts o = { .clean = false, .version = SMQ_V5, .session_expiry = 60 };
	struct client *p = connect5(0, "p", o, false);

	W.hold = true;
	publish_ex(p, "h/t", "m", 1, false, 3);
	cl_expect_none(p);	/* not before the records are durable */
	commit(0, true);
	cr_assert_eq(cl_expect(p, SMQ_PUBACK)->packet_id, 3);
	publish_ex(p, "h/t", "m", 1, false, 4);
	commit(0, false);	/* the store is full: refused, the client may retry */
	cr_assert_eq(cl_expect(p, SMQ_PUBACK)->reason, SMQ_RC_QUOTA_EXCEEDED);
}

Test(core_engine, persist_store_full_refuses_qos1_keeps_qos0, .init = pstart1)
{
	struct client *p5 = connect5(0, "p5", (struct copts){ 0 }, false);
	struct client *p3 = connect_clean(0, "p3"), *w = watcher(0, "z/#");

	smq_engine_set_store_full(W.e[0], true);
	publish_ex(p5, "z/1", "q1", 1, false, 5);
	commit(0, true);
	cr_assert_eq(cl_expect(p5, SMQ_PUBACK)->reason, SMQ_RC_QUOTA_EXCEEDED);
	publish_ex(p3, "z/2", "q1", 1, false, 6);
	cr_assert(p3->close_req, "3.1.1 has no refusal code: closed");
	publish_ex(p5, "z/3", "q0", 0, false, 0);
	settle();
	expect_pub(w, "z/3", "q0", 0, false);
	cl_expect_none(w);
}

Test(core_engine, persist_damaged_records_are_refused, .init = pstart1)
{
	char err[256];
	static const uint8_t meta_key[10] = { 'C', 1, 2, 3, 4, 5, 6, 7, 8, 1 };
	static const uint8_t sub_key[11] = { 'C', 9, 9, 9, 9, 9, 9, 9, 9, 2, 'x' };

	cr_assert_eq(smq_engine_restore(W.e[0], (struct smq_str){ meta_key, 10 },
					(struct smq_str){ (const uint8_t *)"\4\0", 2 }, W.now,
					err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "damaged"), "%s", err);
	cr_assert_eq(smq_engine_restore(W.e[0], (struct smq_str){ sub_key, 11 },
					(struct smq_str){ (const uint8_t *)"\1\0\0\0\0", 5 },
					W.now, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "no session metadata"), "%s", err);
	cr_assert_eq(smq_engine_restore(W.e[0], S("Zzz"), S("v"), W.now, err, sizeof(err)),
		     -EINVAL);
}

Test(core_engine, persist_sessions_on_two_shards_and_forwarded_messages, .init = NULL)
{
	struct copts o = { .clean = false };
	struct client *s0, *s1, *p;
	const char *id0, *id1;

	pstart(2);
	id0 = id_on(0, "ps");
	id1 = id_on(1, "ps");
	s0 = connect_ex(0, id0, &o, 0, false);
	s1 = connect_ex(1, id1, &o, 0, false);
	subscribe(s0, "two/#", 1, 1);
	subscribe(s1, "two/#", 1, 1);
	disconnect(s0);
	disconnect(s1);
	p = connect_clean(0, "pub");
	publish(p, "two/x", "both", 1, false);
	restart(10);
	s0 = connect_ex(0, id0, &o, 0, true);
	s1 = connect_ex(1, id1, &o, 0, true);
	expect_pub(s0, "two/x", "both", 1, false);
	expect_pub(s1, "two/x", "both", 1, false);
}

Test(core_engine, persist_qos2_resent_after_a_restart_is_routed_once_more_to_who_lacks_it,
     .init = pstart1)
{
	struct copts o = { .clean = false };
	struct client *s = connect_ex(0, "keeps", &o, 0, false), *p, *late;

	subscribe(s, "rr/#", 2, 2);
	disconnect(s);
	p = connect_ex(0, "q2p", &o, 0, false);
	W.hold = true;		/* the PUBREC waits: the routes are not known durable */
	publish_ex(p, "rr/t", "m", 2, false, 9);
	cl_expect_none(p);
	restart(10);		/* held acks die with the broker */
	W.hold = false;
	late = connect_clean(0, "late");
	subscribe(late, "rr/#", 2, 2);
	p = connect_ex(0, "q2p", &o, 0, true);
	publish_ex(p, "rr/t", "m", 2, false, 9);	/* the publisher re-sends (DUP) */
	cr_assert_eq(cl_expect(p, SMQ_PUBREC)->packet_id, 9);
	settle();
	expect_pub(late, "rr/t", "m", 2, false);	/* it lacked it */
	s = connect_ex(0, "keeps", &o, 0, true);
	expect_pub(s, "rr/t", "m", 2, false);	/* its stored copy, once */
	cl_expect_none(s);
}

/* The window the done records close: the subscriber's shard made its copy
 * durable, delivered it and saw the whole QoS 2 flow complete (its copy is
 * deleted) while the publisher's PUBREC still waited for the publisher's
 * shard. A crash then makes the publisher re-send; the re-route must not
 * deliver it again. */
Test(core_engine, persist_qos2_completed_before_the_crash_is_not_delivered_again, .init = NULL)
{
	struct copts o = { .clean = false };
	struct client *s, *p;
	struct smq_packet *pk;
	const char *ids, *idp;
	uint16_t pid;

	pstart(2);
	ids = id_on(1, "done");
	idp = id_on(0, "pub");
	s = connect_ex(1, ids, &o, 0, false);
	subscribe(s, "d/#", 2, 2);
	p = connect_ex(0, idp, &o, 0, false);
	W.hold = true;
	publish_ex(p, "d/t", "once", 2, false, 7);
	settle();
	commit(1, true);	/* the subscriber's shard: its copy is durable */
	pk = expect_pub(s, "d/t", "once", 2, false);
	pid = pk->packet_id;
	send_ack(s, SMQ_PUBREC, pid);
	commit(1, true);
	cr_assert_eq(cl_expect(s, SMQ_PUBREL)->packet_id, pid);
	send_ack(s, SMQ_PUBCOMP, pid);
	commit(1, true);
	cl_expect_none(p);	/* the publisher's shard never committed */
	restart(10);
	W.hold = false;
	s = connect_ex(1, ids, &o, 0, true);
	p = connect_ex(0, idp, &o, 0, true);
	publish_ex(p, "d/t", "once", 2, false, 7);	/* the re-send */
	cr_assert_eq(cl_expect(p, SMQ_PUBREC)->packet_id, 7);
	settle();
	cl_expect_none(s);
	/* a minute later the memory is gone (and a new message is new) */
	W.now += 61000;
	publish_ex(p, "d/t", "two", 2, false, 8);
	settle();
	expect_pub(s, "d/t", "two", 2, false);
}
