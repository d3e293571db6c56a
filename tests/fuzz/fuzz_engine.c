/* fuzz_engine.c - libFuzzer target: the broker engine (core/engine.h) as two
 * shards wired together, driven by up to four hostile clients.
 *
 * A fake I/O layer plays both the shard threads and the clients. Engines 0
 * and 1 are shards 0 and 1 of 2; their forward / forward_shared / interest
 * callbacks put messages on one FIFO that is drained into the other engine
 * (smq_engine_deliver / _deliver_shared / _interest_apply) after every
 * step, so routing, shared subscriptions, the interest index and hand-off
 * across shards are fuzzed too.
 *
 * Input: 3 header bytes pick the configuration (see apply_config()), then
 * a list of operations, each an op byte and its arguments:
 *
 *	op & 7	what				op >> 3 & 3: slot, op >> 5: arg
 *	0	bytes to the slot: 1 length byte, then that many bytes (a new
 *		connection on shard arg & 1 when the slot is empty)
 *	1	the same with a 2-byte big-endian length
 *	2	send: 1 byte budget (255: everything), at most arg + 1 iovecs
 *	3	time passes: 1 byte times 10^arg ms; both engines tick
 *	4	close the slot's socket (arg & 1: flush output first; arg & 2:
 *		as a network error)
 *	5	the broker publishes on shard op >> 3 & 1: topic byte, payload
 *		length byte, payload; QoS arg & 3 (3: refused), RETAIN arg & 4
 *	6	smq_engine_close_all() on shard op >> 3 & 1, 1 byte reason choice
 *	7	drain the cross-shard FIFO (it is drained after every step
 *		anyway unless header byte 2 bit 0 is set)
 *
 * At the end every connection is flushed and closed (or, with header byte
 * 2 bit 1, the engines are freed with connections still open) and
 * everything is freed: libFuzzer's leak check sees any reference or buffer
 * the engine forgets.
 *
 * What aborts (besides the sanitizers):
 *  - a byte stream from the broker that smq_reader (core/codec.h) rejects,
 *    decoded with the protocol version of the client's CONNECT; a packet a
 *    server must not send; a first packet other than CONNACK; anything
 *    after a refusing CONNACK [MQTT-3.2.2-5]; a PUBLISH with an invalid
 *    topic name or larger than the client's Maximum Packet Size
 *    [MQTT-3.1.2-24];
 *  - the engine.h contract: want_close twice, output queued after
 *    want_close, want_send while output was already pending, a hand-off
 *    that detach refuses or that bounces, a socket gauge that disagrees
 *    with the connections the I/O layer holds.
 *
 * Run it: make fuzz  (all targets), or only this one:
 *	clang -std=c11 -D_GNU_SOURCE -O1 -g -I. -fsanitize=fuzzer,address,undefined \
 *		-o /tmp/fuzz_engine tests/fuzz/fuzz_engine.c core/[a-z]*.c
 *	/tmp/fuzz_engine -max_total_time=120 tests/fuzz/corpus/fuzz_engine
 * Set FUZZ_LOG=1 to see the engine's log lines (they are formatted either
 * way, and written to /dev/null by default).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "core/codec.h"
#include "core/config.h"
#include "core/engine.h"
#include "core/log.h"
#include "core/msg.h"
#include "core/retain.h"
#include "core/topic.h"
#include "tests/fuzz/fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NSHARDS 2
#define NSLOTS 4
#define IOV_MAX_PULL 8

/* The unread rest of the fuzz input. Reading past the end gives zeros. */
/* One client connection: the I/O layer's record of it and the client's
 * view of the bytes the broker sent. */
struct slot {
	struct smq_econn *c;		/* NULL: no connection in this slot */
	unsigned shard;			/* the engine c belongs to */
	bool closing;			/* want_close was called */
	bool send_armed;		/* want_send called, output not yet drained */
	uint64_t sent;			/* bytes reported with smq_econn_out_done() */
	uint64_t close_total;		/* sent + pending when want_close came */
	/* what the client sent, until its first packet is decoded */
	struct smq_reader mirror;
	bool mirror_done;
	uint8_t version;		/* of the CONNECT; 0 = none decoded */
	uint32_t max_packet;		/* the client's Maximum Packet Size, 0 = none */
	uint16_t alias_max;		/* the client's Topic Alias Maximum */
	uint8_t alias_set[8192];	/* bit a: the broker has set topic alias a */
	/* what the broker sent */
	struct smq_reader out;
	bool out_ready;
	uint64_t out_pos;		/* bytes given to out */
	uint64_t pkt_start;		/* stream offset of the next packet */
	uint32_t npackets;
	bool refused;			/* a CONNACK with a failure code came */
};

/* A message between shards, as the MPSC inboxes would carry it. */
enum xkind { X_FORWARD, X_SHARED, X_INTEREST };

struct xmsg {
	enum xkind kind;
	unsigned to, from;
	struct smq_msg *msg;		/* X_FORWARD, X_SHARED: one reference */
	uint8_t *filter;		/* X_SHARED, X_INTEREST: owned copy */
	uint32_t len;
	bool present;			/* X_INTEREST */
};

struct world;

struct shard {
	struct world *w;
	unsigned idx;
};

struct world {
	struct smq_config cfg;
	struct smq_retain *retained;
	struct smq_engine *eng[NSHARDS];
	struct shard sh[NSHARDS];
	struct slot slot[NSLOTS];
	struct xmsg *q;			/* FIFO: q[qhead .. qlen) */
	size_t qhead, qlen, qcap;
	bool hold;			/* drain only on op 7 */
	uint64_t now;
};

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_engine: %s\n", what);
	abort();
}

/* ---- the cross-shard FIFO --------------------------------------------- */

static void q_push(struct world *w, const struct xmsg *m)
{
	if (w->qlen == w->qcap) {
		size_t cap = w->qcap ? w->qcap * 2 : 16;
		struct xmsg *q = realloc(w->q, cap * sizeof(*q));

		if (!q)
			fail("out of memory in the test itself");
		w->q = q;
		w->qcap = cap;
	}
	w->q[w->qlen++] = *m;
}

static void q_drain(struct world *w)
{
	while (w->qhead < w->qlen) {
		struct xmsg m = w->q[w->qhead++];
		struct smq_str f = { m.filter, m.len };

		if (m.kind == X_FORWARD)
			smq_engine_deliver(w->eng[m.to], m.msg, w->now);
		else if (m.kind == X_SHARED)
			smq_engine_deliver_shared(w->eng[m.to], m.msg, f, w->now);
		else
			smq_engine_interest_apply(w->eng[m.to], f, m.from, m.present);
		free(m.filter);
	}
	w->qhead = w->qlen = 0;
}

/* After the engines are gone: drop what is still in flight. */
static void q_free(struct world *w)
{
	for (size_t i = w->qhead; i < w->qlen; i++) {
		smq_msg_unref(w->q[i].msg);
		free(w->q[i].filter);
	}
	free(w->q);
}

/* ---- engine callbacks ------------------------------------------------- */

static void io_want_send(void *ctx, struct smq_econn *c)
{
	struct slot *s = smq_econn_io(c);

	(void)ctx;
	if (s->send_armed)
		fail("want_send again before the output drained");
	if (!smq_econn_out_pending(c))
		fail("want_send with nothing queued");
	s->send_armed = true;
}

static void io_want_close(void *ctx, struct smq_econn *c)
{
	struct slot *s = smq_econn_io(c);

	(void)ctx;
	if (s->closing)
		fail("want_close called twice for one connection");
	s->closing = true;
	s->close_total = s->sent + smq_econn_out_pending(c);
}

static uint8_t *copy_str(struct smq_str s)
{
	uint8_t *p = malloc(s.len ? s.len : 1);

	if (!p)
		fail("out of memory in the test itself");
	memcpy(p, s.p, s.len);
	return p;
}

static void io_forward(void *ctx, unsigned to, struct smq_msg *msg)
{
	struct shard *sh = ctx;
	struct xmsg m = { .kind = X_FORWARD, .to = to, .from = sh->idx, .msg = msg };

	if (to >= NSHARDS || to == sh->idx)
		fail("forward to a bad shard");
	q_push(sh->w, &m);
}

static void io_forward_shared(void *ctx, unsigned to, struct smq_msg *msg, struct smq_str share)
{
	struct shard *sh = ctx;
	struct xmsg m = { .kind = X_SHARED, .to = to, .from = sh->idx, .msg = msg,
			  .filter = copy_str(share), .len = share.len };

	if (to >= NSHARDS || to == sh->idx)
		fail("shared forward to a bad shard");
	q_push(sh->w, &m);
}

static void io_interest(void *ctx, struct smq_str filter, bool present)
{
	struct shard *sh = ctx;
	struct xmsg m = { .kind = X_INTEREST, .to = 1 - sh->idx, .from = sh->idx,
			  .filter = copy_str(filter), .len = filter.len, .present = present };

	q_push(sh->w, &m);
}

/* ---- what the broker sends -------------------------------------------- */

static bool server_may_send(uint8_t type)
{
	switch (type) {
	case SMQ_CONNACK: case SMQ_PUBLISH: case SMQ_PUBACK: case SMQ_PUBREC: case SMQ_PUBREL:
	case SMQ_PUBCOMP: case SMQ_SUBACK: case SMQ_UNSUBACK: case SMQ_PINGRESP:
	case SMQ_DISCONNECT:
		return true;
	default:
		return false;
	}
}

/* One packet of @size bytes the broker sent to the client of @s. */
static void check_packet(struct slot *s, const struct smq_packet *pkt, uint64_t size)
{
	if (!server_may_send(pkt->type))
		fail("the broker sent a packet type only a client may send");
	if (s->refused)
		fail("a packet after a refusing CONNACK [MQTT-3.2.2-5]");
	if ((s->npackets++ == 0) != (pkt->type == SMQ_CONNACK))
		fail("CONNACK is not exactly the first packet [MQTT-3.2.0-1]");
	if (pkt->type == SMQ_CONNACK && pkt->reason) {
		s->refused = true;
		if (!s->closing)
			fail("a refusing CONNACK without want_close");
	}
	if (s->max_packet && size > s->max_packet)
		fail("a packet larger than the client's Maximum Packet Size [MQTT-3.1.2-24]");
	if (pkt->type != SMQ_PUBLISH)
		return;
	if (SMQ_HAS(&pkt->props, SMQ_PROP_TOPIC_ALIAS)) {
		uint16_t a = pkt->props.topic_alias;

		if (!a || a > s->alias_max)
			fail("a topic alias the client did not allow [MQTT-3.3.2-10]");
		if (pkt->publish.topic.len)
			s->alias_set[a >> 3] |= (uint8_t)(1u << (a & 7));
		else if (!(s->alias_set[a >> 3] & (1u << (a & 7))))
			fail("an empty topic with an alias never set");
		else
			return;
	}
	if (!smq_topic_name_valid(pkt->publish.topic))
		fail("the broker sent a PUBLISH with an invalid topic name");
}

/* The client of @s received @n more bytes: decode them all. */
static void check_stream(struct slot *s, const uint8_t *p, size_t n)
{
	struct smq_packet pkt;
	uint64_t base = s->out_pos;
	size_t n0 = n;
	int ret;

	if (!n)
		return;
	if (!s->out_ready) {
		if (!s->version)
			fail("the broker sent bytes before a CONNECT was decoded");
		smq_reader_init(&s->out, 0, s->version);
		s->out_ready = true;
	}
	/* a packet handed out always ends exactly where the reader stopped */
	while ((ret = smq_reader_next(&s->out, &p, &n, &pkt)) == 1) {
		uint64_t end = base + (n0 - n);

		check_packet(s, &pkt, end - s->pkt_start);
		s->pkt_start = end;
	}
	s->out_pos = base + n0;
	if (ret < 0) {
		fprintf(stderr, "fuzz_engine: decoding the broker's output (MQTT level %u): %s\n",
			s->version, smq_rc_name((uint8_t)-ret));
		fail("the broker sent a packet our codec rejects");
	}
}

/* ---- the client's side of the stream --------------------------------- */

/* Learn the protocol version (and Maximum Packet Size) from the client's
 * first packet, the way the engine does. */
static void mirror_input(struct slot *s, const uint8_t *p, size_t n)
{
	struct smq_packet pkt;
	int ret;

	if (s->mirror_done)
		return;
	ret = smq_reader_next(&s->mirror, &p, &n, &pkt);
	if (ret == 0)
		return;
	if (ret == 1 && pkt.version == SMQ_V5 && SMQ_HAS(&pkt.props, SMQ_PROP_MAX_PACKET_SIZE))
		s->max_packet = pkt.props.max_packet_size;
	if (ret == 1 && pkt.version == SMQ_V5 && SMQ_HAS(&pkt.props, SMQ_PROP_TOPIC_ALIAS_MAX))
		s->alias_max = pkt.props.topic_alias_max;
	if (ret == 1)
		s->version = pkt.version;
	else if (ret == -SMQ_RC_UNSUPPORTED_VERSION)
		s->version = SMQ_V311;	/* the engine refuses with a 3.1.1 CONNACK */
	s->mirror_done = true;
	smq_reader_fini(&s->mirror);
}

/* ---- connections ------------------------------------------------------ */

static uint32_t reader_max(const struct smq_config *cfg)
{
	return cfg->max_packet_size && cfg->max_packet_size < SMQ_MAX_PACKET
		       ? (uint32_t)cfg->max_packet_size : 0;
}

static void slot_open(struct world *w, struct slot *s, unsigned shard)
{
	memset(s, 0, sizeof(*s));
	s->mirror_done = true;
	s->c = smq_engine_conn_new(w->eng[shard], s, "fuzz", w->now);
	if (!s->c)
		return;
	s->shard = shard;
	s->mirror_done = false;
	smq_reader_init(&s->mirror, reader_max(&w->cfg), 0);
}

/* Forget the slot's client (its econn is already gone). */
static void slot_clear(struct slot *s)
{
	if (!s->mirror_done)
		smq_reader_fini(&s->mirror);
	if (s->out_ready)
		smq_reader_fini(&s->out);
	memset(s, 0, sizeof(*s));
}

/* SMQ_ENGINE_HANDOFF: move the connection and its bytes to its home shard. */
static void hand_off(struct world *w, struct slot *s)
{
	uint8_t *bytes;
	size_t len;
	unsigned home;

	if (smq_engine_conn_detach(w->eng[s->shard], s->c, &bytes, &len, &home))
		fail("SMQ_ENGINE_HANDOFF, but smq_engine_conn_detach() refused");
	if (home >= NSHARDS || home == s->shard || !len)
		fail("hand-off to a bad shard, or without bytes");
	s->shard = home;
	s->c = smq_engine_conn_new(w->eng[home], s, "fuzz-handoff", w->now);
	if (s->c && smq_engine_conn_input(w->eng[home], s->c, bytes, len, w->now) ==
			    SMQ_ENGINE_HANDOFF)
		fail("a connection was handed off twice");
	free(bytes);
	if (!s->c)
		slot_clear(s);
}

static void slot_input(struct world *w, struct slot *s, const uint8_t *p, size_t n)
{
	mirror_input(s, p, n);
	if (smq_engine_conn_input(w->eng[s->shard], s->c, p, n, w->now) == SMQ_ENGINE_HANDOFF)
		hand_off(w, s);
}

/* The socket takes up to @budget bytes from at most @maxiov iovecs. */
static void slot_send(struct world *w, struct slot *s, size_t budget, int maxiov)
{
	struct iovec iov[IOV_MAX_PULL];
	int n = smq_econn_out_iov(s->c, iov, maxiov);
	size_t done = 0;

	if (n < 0 || n > maxiov)
		fail("smq_econn_out_iov() returned a bad count");
	for (int i = 0; i < n && done < budget; i++) {
		size_t k = iov[i].iov_len < budget - done ? iov[i].iov_len : budget - done;

		if (!k)
			fail("smq_econn_out_iov() returned an empty iovec");
		check_stream(s, iov[i].iov_base, k);
		done += k;
	}
	if (done > smq_econn_out_pending(s->c))
		fail("smq_econn_out_iov() handed out more than is pending");
	smq_econn_out_done(w->eng[s->shard], s->c, done, w->now);
	s->sent += done;
	if (!smq_econn_out_pending(s->c))
		s->send_armed = false;
}

static void slot_flush(struct world *w, struct slot *s)
{
	while (s->c && smq_econn_out_pending(s->c))
		slot_send(w, s, SIZE_MAX, IOV_MAX_PULL);
}

static void slot_close(struct world *w, struct slot *s, bool flush, bool neterr)
{
	if (flush)
		slot_flush(w, s);
	smq_engine_conn_closed(w->eng[s->shard], s->c, neterr ? -ECONNRESET : 0);
	slot_clear(s);
}

/* ---- operations ------------------------------------------------------- */

static void op_input(struct world *w, struct input *in, struct slot *s, unsigned shard,
		     bool wide)
{
	size_t want = take(in);
	const uint8_t *p;
	size_t n;

	if (wide)
		want = want << 8 | take(in);
	n = take_bytes(in, want, &p);
	if (!s->c)
		slot_open(w, s, shard);
	if (s->c && n)
		slot_input(w, s, p, n);
}

static void op_send(struct world *w, struct input *in, struct slot *s, unsigned arg)
{
	uint8_t b = take(in);
	size_t budget = b == 255 ? SIZE_MAX : b < 128 ? b : (size_t)(b - 127) * 64;

	if (s->c)
		slot_send(w, s, budget, (int)arg + 1);
}

static void op_tick(struct world *w, struct input *in, unsigned arg)
{
	uint64_t dt = take(in);

	for (unsigned i = 0; i < arg; i++)
		dt *= 10;
	w->now += dt;
	for (unsigned i = 0; i < NSHARDS; i++)
		smq_engine_tick(w->eng[i], w->now);
}

static void op_publish(struct world *w, struct input *in, unsigned shard, unsigned arg)
{
	static const char *const topics[8] = {
		"a", "a/b", "a/b/c", "$SYS/broker/x", "b", "x/y", "", "a/+",
	};
	uint8_t t = take(in);
	struct smq_str topic = { (const uint8_t *)topics[t & 7], (uint32_t)strlen(topics[t & 7]) };
	struct smq_str payload;
	const uint8_t *p;

	if (t & 0x80) {		/* the topic from the input: maybe invalid */
		topic.len = (uint32_t)take_bytes(in, t & 0x1f, &p);
		topic.p = p;
	}
	payload.len = (uint32_t)take_bytes(in, take(in), &p);
	payload.p = p;
	smq_engine_publish(w->eng[shard], topic, payload, (uint8_t)(arg & 3), arg & 4, w->now);
}

/* Reasons a server may send in DISCONNECT: the I/O layer's choice, trusted. */
static const uint8_t close_reasons[8] = { 0x00, 0x80, 0x89, 0x8B, 0x98, 0x9C, 0x9D, 0xA0 };

static void step(struct world *w, struct input *in)
{
	uint8_t op = take(in);
	struct slot *s = &w->slot[(op >> 3) & 3];
	unsigned arg = op >> 5, shard = (op >> 3) & 1;

	switch (op & 7) {
	case 0:
	case 1:
		op_input(w, in, s, arg & 1, op & 1);
		break;
	case 2:
		op_send(w, in, s, arg);
		break;
	case 3:
		op_tick(w, in, arg);
		break;
	case 4:
		if (s->c)
			slot_close(w, s, arg & 1, arg & 2);
		break;
	case 5:
		op_publish(w, in, shard, arg);
		break;
	case 6:
		smq_engine_close_all(w->eng[shard], close_reasons[take(in) & 7]);
		break;
	case 7:
		q_drain(w);
		break;
	}
}

/* After every step: the engine.h promises that involve the I/O layer. */
static void check_world(struct world *w)
{
	uint64_t sockets[NSHARDS] = { 0 };

	for (unsigned i = 0; i < NSLOTS; i++) {
		struct slot *s = &w->slot[i];

		if (!s->c)
			continue;
		sockets[s->shard]++;
		if (s->closing && s->sent + smq_econn_out_pending(s->c) > s->close_total)
			fail("output queued after want_close");
	}
	for (unsigned i = 0; i < NSHARDS; i++)
		if (smq_engine_stats(w->eng[i])->sockets != sockets[i])
			fail("the socket gauge disagrees with the open connections");
}

/* ---- setup and teardown ----------------------------------------------- */

/* Header: byte 0 limits and QoS, byte 1 sizes and keepalive, byte 2 how
 * the run goes. All zero: close to the defaults. */
static void apply_config(struct world *w, const uint8_t h[3])
{
	static const int inflight[4] = { 20, 1, 2, 3 }, queued[4] = { 1000, 0, 1, 3 };
	static const int max_qos[4] = { 2, 1, 0, 2 }, keepalive[4] = { 65535, 0, 5, 60 };
	static const uint64_t maxp[4] = { 1048576, 128, 1024, 65536 };
	static const uint64_t wbuf[4] = { 1048576, 64, 512, 4096 };
	struct smq_config *c = &w->cfg;

	smq_config_defaults(c);
	c->max_inflight_messages = inflight[h[0] & 3];
	c->max_queued_messages = queued[h[0] >> 2 & 3];
	c->max_qos = max_qos[h[0] >> 4 & 3];
	c->retain_available = !(h[0] & 0x40);
	c->queue_qos0_messages = h[0] & 0x80;
	c->max_packet_size = maxp[h[1] & 3];
	c->client_max_write_buffer = wbuf[h[1] >> 2 & 3];
	c->max_keepalive = keepalive[h[1] >> 4 & 3];
	c->allow_zero_length_clientid = !(h[1] & 0x40);
	c->persistent_client_expiration = h[1] & 0x80 ? 30 : 0;
	c->max_queued_bytes = h[2] & 0x04 ? 200 : 0;
	c->allow_anonymous = !(h[2] & 0x08);
	w->hold = h[2] & 0x01;
}

static bool world_init(struct world *w, const uint8_t h[3])
{
	struct smq_engine_io io = {
		.want_send = io_want_send, .want_close = io_want_close,
		.forward = io_forward, .forward_shared = io_forward_shared, .interest = io_interest,
	};

	memset(w, 0, sizeof(*w));
	apply_config(w, h);
	w->now = 1000;
	w->retained = smq_retain_new(h[2] & 0x10 ? 2 : 0);
	if (!w->retained)
		return false;
	for (unsigned i = 0; i < NSHARDS; i++) {
		w->sh[i] = (struct shard){ w, i };
		io.ctx = &w->sh[i];
		w->eng[i] = smq_engine_new(i, NSHARDS, &w->cfg, w->retained, &io);
		if (!w->eng[i])
			fail("smq_engine_new() failed");
	}
	return true;
}

/* Close every connection the way the I/O layer does (flush, close), then
 * free it all. With !graceful the engines free open connections. */
static void world_fini(struct world *w, bool graceful)
{
	for (unsigned i = 0; graceful && i < NSLOTS; i++) {
		if (w->slot[i].c)
			slot_close(w, &w->slot[i], true, false);
		q_drain(w);
	}
	for (unsigned i = 0; i < NSHARDS; i++)
		smq_engine_free(w->eng[i]);
	for (unsigned i = 0; i < NSLOTS; i++)
		slot_clear(&w->slot[i]);
	q_free(w);
	smq_retain_free(w->retained);
	smq_config_fini(&w->cfg);
}

static void quiet_logs(void)
{
	static bool done;

	if (done)
		return;
	done = true;
	smq_log_set_level(SMQ_LOG_DEBUG);	/* format every line: bad arguments show */
	if (!getenv("FUZZ_LOG"))
		smq_log_set_fd(open("/dev/null", O_WRONLY | O_CLOEXEC));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct world w;	/* static: too big for a comfortable stack frame */
	struct input in;

	if (size < 3)
		return 0;
	in = (struct input){ data + 3, size - 3 };
	quiet_logs();
	if (!world_init(&w, data))
		return 0;
	while (in.n) {
		step(&w, &in);
		if (!w.hold)
			q_drain(&w);
		check_world(&w);
	}
	q_drain(&w);
	world_fini(&w, !(data[2] & 0x02));
	return 0;
}
