/* fuzz_client.c - libFuzzer target: the client protocol core (core/client.h)
 * talking to a hostile server.
 *
 * Input: 3 header bytes pick the client options (see make_client()); the
 * client connects, then a list of operations follows, each an op byte and
 * its arguments:
 *
 *	op & 7	what (arg = op >> 3, 0..31)
 *	0	server bytes: 1 length byte, then that many bytes, fed at once
 *	1	the same with a 2-byte big-endian length
 *	2	the socket takes bytes: 1 byte count (255: everything)
 *	3	time passes: 1 byte times 10^(arg & 7) ms, then tick
 *	4	events: arg & 1: take them all; else take one whose type is in
 *		the mask of 1 byte (<< 1), for packet id arg >> 1 (0: any)
 *	5	publish: QoS arg & 3 (3: refused), RETAIN arg & 4, 5.0 properties
 *		arg & 8; 1 byte topic choice (bit 7: with a Topic Alias, which
 *		must be refused), 1 byte payload length
 *	6	subscribe (arg & 1: unsubscribe) 1 + (arg >> 1 & 3) filters;
 *		1 byte options
 *	7	connection: arg & 3 = 0 disconnect (1 byte reason choice), 1 reset and
 *		reconnect, 2 connect (refused unless idle), 3 reset only
 *
 * At the end everything is freed; libFuzzer's leak check sees what the
 * client forgets.
 *
 * What aborts (besides the sanitizers):
 *  - a byte stream from the client that smq_reader (core/codec.h) rejects,
 *    read as a server would (version from the CONNECT); a first packet other
 *    than CONNECT, a second CONNECT, a packet type only a server may send,
 *    anything after DISCONNECT [MQTT-3.14.4-1];
 *  - the client.h contract: output queued after CLOSED beyond the
 *    DISCONNECT that closed it; a PUBLISH_DONE for a message not accepted
 *    or reported twice; a count of unfinished publishes that disagrees
 *    with smq_client_inflight(); a failing feed that leaves the connection
 *    open; feeding while idle or closed not answered with -ENOTCONN.
 * Every byte an event view points to is read, both at once and again after
 * calls that must leave the views alone, so a dangling view shows.
 *
 * Run it: make fuzz  (all targets), or only this one:
 *	clang -std=c11 -D_GNU_SOURCE -O1 -g -I. -fsanitize=fuzzer,address,undefined \
 *		-o /tmp/fuzz_client tests/fuzz/fuzz_client.c core/[a-z]*.c
 *	/tmp/fuzz_client -max_total_time=120 tests/fuzz/corpus/fuzz_client
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/client.h"
#include "core/codec.h"
#include "tests/fuzz/fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The unread rest of the fuzz input. Reading past the end gives zeros. */
/* The client and what the test knows about it. */
struct run {
	struct smq_client *c;
	uint8_t version;
	uint64_t now;
	/* the server's view of the client's output since the last connect */
	struct smq_reader rd;
	uint64_t written;	/* bytes taken with smq_client_out_consumed() */
	uint32_t npackets;
	bool saw_disconnect;
	/* once CLOSED is seen, written + pending may not grow */
	bool closed;
	uint64_t closed_total;
	/* publishes accepted and not yet reported done */
	uint8_t open_ids[65536 / 8];
	uint32_t open_count;
	uint64_t open_qos0;
	/* the latest event, while its views are valid */
	struct smq_client_event last;
	bool last_valid;
	volatile uint8_t sink;
};

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_client: %s\n", what);
	abort();
}

/* ---- the client's output, as the server reads it ---------------------- */

static bool client_may_send(uint8_t type)
{
	switch (type) {
	case SMQ_CONNECT: case SMQ_PUBLISH: case SMQ_PUBACK: case SMQ_PUBREC: case SMQ_PUBREL:
	case SMQ_PUBCOMP: case SMQ_SUBSCRIBE: case SMQ_UNSUBSCRIBE: case SMQ_PINGREQ:
	case SMQ_DISCONNECT:
		return true;
	default:
		return false;
	}
}

static void check_packet(struct run *r, const struct smq_packet *pkt)
{
	if (!client_may_send(pkt->type))
		fail("the client sent a packet type only a server may send");
	if (r->saw_disconnect)
		fail("a packet after DISCONNECT [MQTT-3.14.4-1]");
	if ((r->npackets++ == 0) != (pkt->type == SMQ_CONNECT))
		fail("CONNECT is not exactly the first packet [MQTT-3.1.0-1] [MQTT-3.1.0-2]");
	if (pkt->type == SMQ_CONNECT && pkt->version != r->version)
		fail("CONNECT of another protocol version than configured");
	if (pkt->type == SMQ_DISCONNECT)
		r->saw_disconnect = true;
}

static void check_stream(struct run *r, const uint8_t *p, size_t n)
{
	struct smq_packet pkt;
	int ret;

	if (!n)
		return;
	while ((ret = smq_reader_next(&r->rd, &p, &n, &pkt)) == 1)
		check_packet(r, &pkt);
	if (ret < 0) {
		fprintf(stderr, "fuzz_client: decoding the client's output: %s\n",
			smq_rc_name((uint8_t)-ret));
		fail("the client sent a packet our codec rejects");
	}
}

/* A new connection: a new byte stream. */
static void stream_restart(struct run *r)
{
	smq_reader_fini(&r->rd);
	smq_reader_init(&r->rd, 0, 0);
	r->npackets = 0;
	r->saw_disconnect = false;
	r->closed = false;
}

/* The socket takes up to @budget bytes. */
static void op_send(struct run *r, size_t budget)
{
	const uint8_t *p;
	size_t n;

	smq_client_out(r->c, &p, &n);
	if (n && !p)
		fail("smq_client_out() gave a length without bytes");
	if (n > budget)
		n = budget;
	check_stream(r, p, n);
	smq_client_out_consumed(r->c, n);
	r->written += n;
}

/* ---- events ----------------------------------------------------------- */

static void touch(struct run *r, struct smq_str v)
{
	for (uint32_t i = 0; i < v.len; i++)
		r->sink ^= v.p[i];
}

/* Read every byte of the views that are meaningful for the event's type. */
static void touch_event(struct run *r, const struct smq_client_event *ev)
{
	static const uint8_t ids[] = {
		SMQ_PROP_CONTENT_TYPE, SMQ_PROP_RESPONSE_TOPIC, SMQ_PROP_CORRELATION_DATA,
		SMQ_PROP_ASSIGNED_CLIENT_ID, SMQ_PROP_REASON_STRING, SMQ_PROP_SERVER_REFERENCE,
		SMQ_PROP_RESPONSE_INFO, SMQ_PROP_USER, SMQ_PROP_SUBSCRIPTION_ID,
	};
	const struct smq_props *p = &ev->props;
	const struct smq_str views[] = {
		p->content_type, p->response_topic, p->correlation_data, p->assigned_client_id,
		p->reason_string, p->server_reference, p->response_info, p->user, p->sub_ids,
	};

	if (ev->type == SMQ_CLIENT_EV_MESSAGE) {
		touch(r, ev->msg.topic);
		touch(r, ev->msg.payload);
	}
	if (ev->type == SMQ_CLIENT_EV_SUBACK || ev->type == SMQ_CLIENT_EV_UNSUBACK)
		touch(r, ev->codes);
	for (size_t i = 0; i < sizeof(ids); i++)
		if (SMQ_HAS(p, ids[i]))
			touch(r, views[i]);
}

/* Account for one PUBLISH_DONE: exactly one per accepted publish. */
static void publish_done(struct run *r, uint16_t id)
{
	if (!id) {
		if (!r->open_qos0--)
			fail("PUBLISH_DONE for a QoS 0 message never published");
		return;
	}
	if (!(r->open_ids[id >> 3] & (1u << (id & 7))))
		fail("PUBLISH_DONE for a packet id not in use, or twice");
	r->open_ids[id >> 3] &= (uint8_t)~(1u << (id & 7));
	r->open_count--;
}

static void on_event(struct run *r, const struct smq_client_event *ev)
{
	touch_event(r, ev);
	if (!ev->text && ev->type == SMQ_CLIENT_EV_ERROR)
		fail("an ERROR event without text");
	if (ev->type == SMQ_CLIENT_EV_ERROR && !ev->error)
		fail("an ERROR event with error 0");
	if (ev->type == SMQ_CLIENT_EV_PUBLISH_DONE)
		publish_done(r, ev->packet_id);
	r->last = *ev;
	r->last_valid = true;
}

static void drain_events(struct run *r)
{
	struct smq_client_event ev;

	r->last_valid = false;
	while (smq_client_next_event(r->c, &ev))
		on_event(r, &ev);
	if (smq_client_inflight(r->c) != r->open_count)
		fail("smq_client_inflight() disagrees with the PUBLISH_DONE events");
}

static void op_events(struct run *r, struct input *in, unsigned arg)
{
	uint32_t mask = (uint32_t)take(in) << 1;
	struct smq_client_event ev;

	if (arg & 1) {
		drain_events(r);
		return;
	}
	r->last_valid = false;
	if (smq_client_take_event(r->c, mask, arg >> 1 ? (int)(arg >> 1) : -1, &ev)) {
		if (!(mask & SMQ_CLIENT_EVMASK(ev.type)))
			fail("smq_client_take_event() returned a type outside the mask");
		on_event(r, &ev);
	}
}

/* ---- actions ---------------------------------------------------------- */

static const char *const topics[8] = {
	"a", "a/b", "t/x/y", "$SYS/x", "a/+", "", "#", "very/long/topic/name/for/the/fuzzer",
};

static const struct smq_str filters[8] = {
	SMQ_STR("a/#"), SMQ_STR("+"), SMQ_STR("a/b"), SMQ_STR("$share/g/a"), SMQ_STR("#/a"),
	SMQ_STR(""), SMQ_STR("t/+/y"), SMQ_STR("$SYS/#"),
};

/* Publish properties (5.0): user property, expiry, content type; the
 * topic-alias variant must be refused. */
static void publish_props(struct smq_props *p, uint8_t *raw, size_t cap, bool alias)
{
	long n = smq_props_put_user(raw, cap, SMQ_STR("k"), SMQ_STR("v"));

	memset(p, 0, sizeof(*p));
	if (n > 0) {
		SMQ_SET(p, SMQ_PROP_USER);
		p->user = (struct smq_str){ raw, (uint32_t)n };
	}
	SMQ_SET(p, SMQ_PROP_MESSAGE_EXPIRY);
	p->message_expiry = 10;
	SMQ_SET(p, SMQ_PROP_CONTENT_TYPE);
	p->content_type = SMQ_STR("text/plain");
	if (alias) {
		SMQ_SET(p, SMQ_PROP_TOPIC_ALIAS);
		p->topic_alias = 1;
	}
}

static void op_publish(struct run *r, struct input *in, unsigned arg)
{
	static const uint8_t zeros[255];
	uint8_t t = take(in), raw[32], qos = (uint8_t)(arg & 3);
	struct smq_str payload = { zeros, take(in) };
	struct smq_props props;
	int ret;

	publish_props(&props, raw, sizeof(raw), t & 0x80);
	ret = smq_client_publish(r->c, topics[t & 7], payload, qos, arg & 4,
				 arg & 8 ? &props : NULL);
	if (ret < 0)
		return;
	if (qos == 0) {
		if (ret)
			fail("smq_client_publish() returned a packet id for QoS 0");
		r->open_qos0++;
		return;
	}
	if (ret == 0 || ret > 65535 || (r->open_ids[ret >> 3] & (1u << (ret & 7))))
		fail("smq_client_publish() returned a bad or busy packet id");
	r->open_ids[ret >> 3] |= (uint8_t)(1u << (ret & 7));
	r->open_count++;
}

static void op_subscribe(struct run *r, struct input *in, unsigned arg)
{
	struct smq_sub_entry en[4];
	struct smq_str fl[4];
	uint8_t opts = take(in);
	size_t n = 1 + (arg >> 1 & 3);

	for (size_t i = 0; i < n; i++) {
		fl[i] = filters[(opts + i * 3) & 7];
		en[i] = (struct smq_sub_entry){ fl[i], (uint8_t)(opts >> 3) };
	}
	if (arg & 1)
		smq_client_unsubscribe(r->c, fl, n, NULL);
	else
		smq_client_subscribe(r->c, en, n, NULL);
}

static void reconnect(struct run *r, bool connect)
{
	smq_client_reset_connection(r->c);
	r->last_valid = false;
	stream_restart(r);
	if (smq_client_state(r->c) != SMQ_CLIENT_IDLE)
		fail("not IDLE after smq_client_reset_connection()");
	if (connect && smq_client_connect(r->c, r->now))
		fail("smq_client_connect() failed while IDLE");
}

/* Reasons a client may send in DISCONNECT: the caller's choice, trusted. */
static const uint8_t disconnect_reasons[8] = { 0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x93, 0x95 };

static void op_conn(struct run *r, struct input *in, unsigned arg)
{
	bool idle = smq_client_state(r->c) == SMQ_CLIENT_IDLE;

	switch (arg & 3) {
	case 0:
		smq_client_disconnect(r->c, disconnect_reasons[take(in) & 7], NULL);
		break;
	case 1:
		reconnect(r, true);
		break;
	case 2:
		if ((smq_client_connect(r->c, r->now) == 0) != idle)
			fail("smq_client_connect() must succeed when IDLE, and only then");
		break;
	case 3:
		reconnect(r, false);
		break;
	}
}

/* ---- server bytes and time -------------------------------------------- */

static void op_feed(struct run *r, struct input *in, bool wide)
{
	enum smq_client_state before = smq_client_state(r->c);
	size_t want = take(in);
	const uint8_t *p;
	size_t n;
	int ret;

	if (wide)
		want = want << 8 | take(in);
	n = take_bytes(in, want, &p);
	ret = smq_client_feed(r->c, p, n, r->now);
	r->last_valid = false;
	if ((before == SMQ_CLIENT_IDLE || before == SMQ_CLIENT_CLOSED) != (ret == -ENOTCONN))
		fail("smq_client_feed() without a connection must be -ENOTCONN, and only then");
	if (ret && ret != -ENOTCONN && smq_client_state(r->c) != SMQ_CLIENT_CLOSED)
		fail("smq_client_feed() failed but the connection is still on");
}

static void op_tick(struct run *r, struct input *in, unsigned arg)
{
	uint64_t dt = take(in);
	int ret;

	for (unsigned i = 0; i < (arg & 7); i++)
		dt *= 10;
	r->now += dt;
	ret = smq_client_tick(r->c, r->now);
	if (ret && (ret != -ETIMEDOUT || smq_client_state(r->c) != SMQ_CLIENT_CLOSED))
		fail("smq_client_tick() failed other than by closing on a timeout");
}

/* ---- the run ---------------------------------------------------------- */

static void step(struct run *r, struct input *in)
{
	uint8_t op = take(in);
	unsigned arg = op >> 3;
	uint8_t b;

	switch (op & 7) {
	case 0:
	case 1:
		op_feed(r, in, op & 1);
		break;
	case 2:
		b = take(in);
		op_send(r, b == 255 ? SIZE_MAX : b);
		break;
	case 3:
		op_tick(r, in, arg);
		break;
	case 4:
		op_events(r, in, arg);
		break;
	case 5:
		op_publish(r, in, arg);
		break;
	case 6:
		op_subscribe(r, in, arg);
		break;
	case 7:
		op_conn(r, in, arg);
		break;
	}
}

/* After every step: a CLOSED client queues nothing more (client.c), and
 * the latest event's views live until a call that may end them. */
static void check_run(struct run *r)
{
	const uint8_t *p;
	size_t n;

	if (r->last_valid)
		touch_event(r, &r->last);
	smq_client_out(r->c, &p, &n);
	if (smq_client_state(r->c) != SMQ_CLIENT_CLOSED) {
		r->closed = false;
		return;
	}
	if (!r->closed) {
		r->closed = true;
		r->closed_total = r->written + n;
	} else if (r->written + n > r->closed_total) {
		fail("output queued after the client reached CLOSED");
	}
}

/* Header: byte 0 version, clean, keepalive, will, login, empty id; byte 1
 * windows and sizes; byte 2 session expiry and the will's QoS, RETAIN and
 * 5.0 properties. */
static struct smq_client *make_client(const uint8_t h[3], uint8_t *version)
{
	static const uint8_t versions[4] = { SMQ_V311, SMQ_V31, SMQ_V5, SMQ_V5 };
	static const uint16_t keepalive[4] = { 0, 1, 5, 60 }, recv_max[4] = { 0, 1, 2, 65535 };
	static const uint16_t inflight[4] = { 0, 1, 2, 3 };
	static const uint32_t max_packet[4] = { 0, 16, 64, 1024 }, out_max[4] = { 0, 16, 256, 0 };
	static const uint32_t expiry[4] = { 0, 10, 0xFFFFFFFF, 0 };
	struct smq_str password = SMQ_STR("secret");
	static const uint8_t user[] = "\x26\x00\x01k\x00\x01v";
	struct smq_props will_props = {
		.present = 1ull << SMQ_PROP_WILL_DELAY | 1ull << SMQ_PROP_USER,
		.will_delay = 5, .user = { user, sizeof(user) - 1 },
	};
	struct smq_client_will will = {
		.topic = "will/topic", .payload = SMQ_STR("bye"), .qos = (uint8_t)(h[2] >> 2 & 3),
		.retain = h[2] & 0x10, .props = h[2] & 0x20 ? &will_props : NULL,
	};
	struct smq_client_opts o = {
		.version = versions[h[0] & 3],
		.client_id = h[0] & 0x80 ? "" : "fuzz",
		.clean = h[0] & 4,
		.keepalive = keepalive[h[0] >> 3 & 3],
		.will = h[0] & 0x20 ? &will : NULL,
		.username = h[0] & 0x40 ? "user" : NULL,
		.password = h[0] & 0x40 ? &password : NULL,
		.max_inflight = inflight[h[1] & 3],
		.receive_max = recv_max[h[1] >> 2 & 3],
		.max_packet_size = max_packet[h[1] >> 4 & 3],
		.max_out_bytes = out_max[h[1] >> 6],
		.session_expiry = expiry[h[2] & 3],
	};

	*version = o.version;
	return smq_client_new(&o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct run r;	/* static: the packet id bitmap is 8 KiB */
	struct input in;

	if (size < 3)
		return 0;
	memset(&r, 0, sizeof(r));
	r.c = make_client(data, &r.version);
	if (!r.c)
		return 0;	/* options the protocol forbids: nothing to fuzz */
	in = (struct input){ data + 3, size - 3 };
	r.now = 1000;
	smq_reader_init(&r.rd, 0, 0);
	if (smq_client_connect(r.c, r.now))
		fail("smq_client_connect() failed on a new client");
	while (in.n) {
		step(&r, &in);
		check_run(&r);
	}
	drain_events(&r);
	op_send(&r, SIZE_MAX);
	smq_client_free(r.c);
	smq_reader_fini(&r.rd);
	return 0;
}
