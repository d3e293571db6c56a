/* test_ws.c - the WebSocket transform (net/ws.c) and the transform stack
 * (net/xstack.c), driven in memory as the shard drives them: bytes in
 * through feed(), MQTT bytes out of read(), MQTT bytes in through write(),
 * wire bytes out of out_iov()/out_done().
 *
 * The client side is written here by hand on purpose: frames are encoded
 * by frame() below (masked or not, any opcode, any fragmentation), and the
 * server's frames are decoded by unframe(), so the transform is checked
 * against RFC 6455 rather than against wslay itself. The wss case stacks
 * the server transform on a real TLS one and talks to it through a TLS
 * client transform, with a certificate made by openssl at start.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/tls.h"
#include "net/ws.h"
#include "net/xstack.h"

#define BIG (1u << 21)

static const char REQ[] =
	"GET /mqtt HTTP/1.1\r\n"
	"Host: broker.example:8080\r\n"
	"Upgrade: websocket\r\n"
	"Connection: Upgrade\r\n"
	"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
	"Sec-WebSocket-Protocol: mqtt\r\n"
	"Sec-WebSocket-Version: 13\r\n"
	"\r\n";

/* RFC 6455 1.3's example key gives this accept value. */
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/* An MQTT 3.1.1 CONNECT (client id "ws"), the bytes the engine would see. */
static const uint8_t CONNECT[] = { 0x10, 0x0e, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02,
				   0x00, 0x3c, 0x00, 0x02, 'w', 's' };

/* ---- helpers ----------------------------------------------------------- */

/* A client frame: FIN @fin, opcode @op, masked when @mask. Returns its size. */
static size_t frame(uint8_t *out, bool fin, uint8_t op, bool mask, const void *payload,
		    size_t n)
{
	static const uint8_t key[4] = { 0x37, 0xfa, 0x21, 0x3d };
	const uint8_t *p = payload;
	uint8_t m = mask ? 0x80 : 0;
	size_t h = 0;

	out[h++] = (uint8_t)((fin ? 0x80 : 0) | op);
	if (n < 126) {
		out[h++] = (uint8_t)(m | n);
	} else if (n < 65536) {
		out[h++] = m | 126;
		out[h++] = (uint8_t)(n >> 8);
		out[h++] = (uint8_t)n;
	} else {
		out[h++] = m | 127;
		for (int i = 7; i >= 0; i--)
			out[h++] = (uint8_t)((uint64_t)n >> (8 * i));
	}
	if (mask) {
		memcpy(out + h, key, 4);
		h += 4;
	}
	for (size_t i = 0; i < n; i++)
		out[h + i] = p[i] ^ (mask ? key[i % 4] : 0);
	return h + n;
}

struct sframe {
	bool fin;
	uint8_t op;
	const uint8_t *p;
	size_t len;
};

/* One server frame at @p: its size, or 0 if incomplete. Server frames are
 * never masked (RFC 6455 5.1). */
static size_t unframe(const uint8_t *p, size_t n, struct sframe *f)
{
	size_t h = 2, len;

	if (n < 2)
		return 0;
	cr_assert_eq(p[1] & 0x80, 0, "a server frame is masked");
	cr_assert_eq(p[0] & 0x70, 0, "reserved bits set");
	len = p[1] & 0x7f;
	if (len == 126) {
		if (n < 4)
			return 0;
		len = (size_t)p[2] << 8 | p[3];
		h = 4;
	} else if (len == 127) {
		if (n < 10)
			return 0;
		len = 0;
		for (int i = 0; i < 8; i++)
			len = len << 8 | p[2 + i];
		h = 10;
	}
	if (n < h + len)
		return 0;
	*f = (struct sframe){ .fin = p[0] & 0x80, .op = p[0] & 0x0f, .p = p + h, .len = len };
	return h + len;
}

/* One server end and what it sent. */
struct end {
	struct smq_ws *w;
	struct smq_xform *x;
	uint8_t *out;
	size_t outlen;
	uint8_t *plain;		/* what read() gave */
	size_t plainlen;
	int rerr;		/* read()'s last non-positive answer */
};

static struct end *end_new(const struct smq_ws_opts *o)
{
	struct end *e = calloc(1, sizeof(*e));

	cr_assert(e);
	e->w = smq_ws_new(o);
	cr_assert(e->w);
	e->x = smq_ws_xform(e->w);
	e->out = malloc(BIG);
	e->plain = malloc(BIG);
	cr_assert(e->out && e->plain);
	return e;
}

static void end_free(struct end *e)
{
	smq_xform_free(e->x);
	free(e->out);
	free(e->plain);
	free(e);
}

/* Collect what the server would send. */
static void take_out(struct end *e)
{
	struct iovec iov[4];
	int n;

	while ((n = smq_xform_out_iov(e->x, iov, 4)) > 0) {
		for (int i = 0; i < n; i++) {
			cr_assert_leq(e->outlen + iov[i].iov_len, BIG);
			memcpy(e->out + e->outlen, iov[i].iov_base, iov[i].iov_len);
			e->outlen += iov[i].iov_len;
			smq_xform_out_done(e->x, iov[i].iov_len);
		}
	}
}

/* Feed @n bytes, read everything there is, collect the output; feed()'s result. */
static int feed(struct end *e, const void *p, size_t n)
{
	int ret = smq_xform_feed(e->x, p, n);
	uint8_t buf[3000];	/* smaller than some messages: read() is called again */
	ssize_t got;

	while ((got = smq_xform_read(e->x, buf, sizeof(buf))) > 0) {
		cr_assert_leq(e->plainlen + (size_t)got, BIG);
		memcpy(e->plain + e->plainlen, buf, (size_t)got);
		e->plainlen += (size_t)got;
	}
	e->rerr = (int)got;
	take_out(e);
	return ret;
}

static int feed_str(struct end *e, const char *s)
{
	return feed(e, s, strlen(s));
}

/* A server end past a good upgrade, its 101 taken away. */
static struct end *opened(const struct smq_ws_opts *o)
{
	struct end *e = end_new(o);

	cr_assert_eq(feed_str(e, REQ), 0);
	cr_assert(smq_ws_open(e->w));
	cr_assert(e->outlen > 12 && !memcmp(e->out, "HTTP/1.1 101", 12), "%.*s", (int)e->outlen,
		  e->out);
	e->outlen = 0;
	return e;
}

/* The @i-th frame the server sent (0-based); fails if there is none. */
static struct sframe nth_frame(const struct end *e, int i)
{
	struct sframe f = { 0 };
	size_t at = 0, used;

	for (int k = 0; k <= i; k++) {
		used = unframe(e->out + at, e->outlen - at, &f);
		cr_assert(used, "no frame %d in %zu bytes of output", k, e->outlen);
		at += used;
	}
	return f;
}

static int close_code(const struct sframe *f)
{
	cr_assert_eq(f->op, 0x8, "opcode %u, want a close frame", f->op);
	cr_assert_geq(f->len, 2, "a close frame without a status code");
	return f->p[0] << 8 | f->p[1];
}

static long parse(const char *req, struct smq_ws_upgrade *u)
{
	return smq_ws_parse_upgrade((const uint8_t *)req, strlen(req), 4096, u);
}

/* REQ with @from replaced by @to. */
static char *req_with(const char *from, const char *to)
{
	static char buf[2048];
	const char *at = strstr(REQ, from);

	cr_assert(at, "'%s' not in the request", from);
	snprintf(buf, sizeof(buf), "%.*s%s%s", (int)(at - REQ), REQ, to, at + strlen(from));
	return buf;
}

/* ---- the upgrade request ----------------------------------------------- */

TestSuite(net_ws);

Test(net_ws, accept_key_is_rfc6455s_example)
{
	char out[29];

	cr_assert_eq(smq_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
	cr_assert_str_eq(out, ACCEPT);
}

Test(net_ws, good_request_is_answered_101_with_accept_and_mqtt)
{
	struct end *e = end_new(NULL);

	cr_assert_eq(feed_str(e, REQ), 0);
	e->out[e->outlen] = '\0';
	cr_assert_str_eq((char *)e->out, "HTTP/1.1 101 Switching Protocols\r\n"
			 "Upgrade: websocket\r\nConnection: Upgrade\r\n"
			 "Sec-WebSocket-Accept: " ACCEPT "\r\n"
			 "Sec-WebSocket-Protocol: mqtt\r\n\r\n");
	cr_assert_str_eq(smq_ws_subprotocol(e->w), "mqtt");
	cr_assert_null(smq_ws_error(e->w));
	end_free(e);
}

Test(net_ws, header_names_and_tokens_are_case_insensitive_any_path)
{
	struct smq_ws_upgrade u;
	const char *req = "GET /any/path?x=1 HTTP/1.1\r\nhOsT: h\r\nUPGRADE: WebSocket\r\n"
			  "connection: keep-alive, upgrade\r\nsec-websocket-key: "
			  "dGhlIHNhbXBsZSBub25jZQ==\r\nSEC-WEBSOCKET-VERSION: 13\r\n"
			  "sec-websocket-protocol: mqtt\r\n\r\n";

	cr_assert_eq(parse(req, &u), (long)strlen(req));
	cr_assert_eq(u.status, 0, "%d %s", u.status, u.why);
	cr_assert_str_eq(u.protocol, "mqtt");
	cr_assert_str_eq(u.key, "dGhlIHNhbXBsZSBub25jZQ==");
}

Test(net_ws, subprotocol_mqtt_wins_mqttv31_is_taken_none_is_none)
{
	struct smq_ws_upgrade u;

	parse(req_with("mqtt\r\n", "mqttv3.1, mqtt\r\n"), &u);
	cr_assert_str_eq(u.protocol, "mqtt");
	parse(req_with("mqtt\r\n", "mqttv3.1\r\n"), &u);
	cr_assert_str_eq(u.protocol, "mqttv3.1");
	parse(req_with("Sec-WebSocket-Protocol: mqtt\r\n", ""), &u);
	cr_assert_eq(u.status, 0);
	cr_assert_null(u.protocol);
}

Test(net_ws, no_subprotocol_means_no_protocol_header_in_the_101)
{
	struct end *e = end_new(NULL);

	feed_str(e, req_with("Sec-WebSocket-Protocol: mqtt\r\n", ""));
	e->out[e->outlen] = '\0';
	cr_assert(strstr((char *)e->out, "HTTP/1.1 101"));
	cr_assert_null(strstr((char *)e->out, "Sec-WebSocket-Protocol"));
	end_free(e);
}

struct bad_req {
	char from[64];
	char to[96];
	int status;
	char why[48];
};

ParameterizedTestParameters(net_ws, bad_request_gets_its_status)
{
	static struct bad_req t[] = {
		{ "GET ", "POST ", 400, "GET" },
		{ "GET /mqtt ", "GET  ", 400, "target" },
		{ "HTTP/1.1", "HTTP/1.0", 400, "HTTP/1.1" },
		{ "Host: broker.example:8080\r\n", "", 400, "Host" },
		{ "Host: broker.example:8080\r\n", "Host: a\r\nHost: b\r\n", 400, "Host" },
		{ "Upgrade: websocket\r\n", "", 400, "Upgrade" },
		{ "Upgrade: websocket\r\n", "Upgrade: h2c\r\n", 400, "Upgrade" },
		{ "Connection: Upgrade\r\n", "", 400, "Connection" },
		{ "Connection: Upgrade\r\n", "Connection: keep-alive\r\n", 400, "Connection" },
		{ "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "", 400, "Key" },
		{ "dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ", 400, "16 bytes" },
		{ "dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ=x", 400, "16 bytes" },
		{ "dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBs*SBub25jZQ==", 400, "16 bytes" },
		{ "dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ==AAAA", 400, "16 bytes" },
		{ "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
		  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Key: "
		  "dGhlIHNhbXBsZSBub25jZQ==\r\n", 400, "twice" },
		{ "Sec-WebSocket-Version: 13\r\n", "", 400, "Version" },
		{ "Sec-WebSocket-Version: 13\r\n", "Sec-WebSocket-Version: 8\r\n", 426, "13" },
		{ "Sec-WebSocket-Protocol: mqtt\r\n", "Sec-WebSocket-Protocol: chat\r\n", 400,
		  "mqtt" },
		{ "\r\n\r\n", "\r\nContent-Length: 5\r\n\r\n", 400, "body" },
		{ "\r\n\r\n", "\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "body" },
		{ "Upgrade: websocket\r\n", "Upgrade: websocket\r\n folded\r\n", 400, "fold" },
		{ "Upgrade: websocket\r\n", "Upgrade: websocket\nX: y\r\n", 400, "bare" },
		{ "Upgrade: websocket\r\n", "Upgrade websocket\r\n", 400, "colon" },
		{ "Upgrade: websocket\r\n", "Upgrade : websocket\r\n", 400, "name" },
		{ "Upgrade: websocket\r\n", "Upgrade: web\001socket\r\n", 400, "control" },
	};

	return cr_make_param_array(struct bad_req, t, sizeof(t) / sizeof(t[0]));
}

ParameterizedTest(struct bad_req *t, net_ws, bad_request_gets_its_status)
{
	struct smq_ws_upgrade u;
	const char *req = req_with(t->from, t->to);
	struct end *e;
	char line[32];

	cr_assert_gt(parse(req, &u), 0, "%s", req);
	cr_assert_eq(u.status, t->status, "status %d (%s), want %d for\n%s", u.status, u.why,
		     t->status, req);
	cr_assert(strstr(u.why, t->why), "why '%s' lacks '%s'", u.why, t->why);
	/* the transform answers with that status, then is over */
	e = end_new(NULL);
	cr_assert_eq(feed_str(e, req), -EPROTO);
	snprintf(line, sizeof(line), "HTTP/1.1 %d ", t->status);
	cr_assert(e->outlen > strlen(line) && !memcmp(e->out, line, strlen(line)), "%.*s",
		  (int)e->outlen, e->out);
	cr_assert(smq_ws_error(e->w) && strstr(smq_ws_error(e->w), t->why));
	cr_assert_eq(smq_xform_write(e->x, &(struct iovec){ (void *)CONNECT, 2 }, 1), -EPROTO);
	end_free(e);
}

Test(net_ws, version_426_names_the_version_we_speak)
{
	struct end *e = end_new(NULL);

	feed_str(e, req_with("Version: 13", "Version: 8"));
	e->out[e->outlen] = '\0';
	cr_assert(strstr((char *)e->out, "426 Upgrade Required\r\n"));
	cr_assert(strstr((char *)e->out, "\r\nSec-WebSocket-Version: 13\r\n"));
	end_free(e);
}

Test(net_ws, mqtt_on_a_websocket_port_is_refused_at_its_first_byte)
{
	struct end *e = end_new(NULL);

	cr_assert_eq(feed(e, CONNECT, 1), -EPROTO);
	cr_assert(e->outlen && !memcmp(e->out, "HTTP/1.1 400 ", 13));
	end_free(e);
}

Test(net_ws, request_split_at_every_byte_gives_the_same_answer)
{
	uint8_t wire[1024];
	size_t reqlen = strlen(REQ), n;

	memcpy(wire, REQ, reqlen);
	n = reqlen + frame(wire + reqlen, true, 0x2, true, CONNECT, sizeof(CONNECT));
	for (size_t k = 1; k < n; k++) {
		struct end *e = end_new(NULL);

		cr_assert_eq(feed(e, wire, k), 0, "split at %zu", k);
		cr_assert_eq(smq_ws_open(e->w), k >= reqlen, "split at %zu", k);
		cr_assert_eq(feed(e, wire + k, n - k), 0, "split at %zu", k);
		cr_assert(e->outlen > 12 && !memcmp(e->out, "HTTP/1.1 101", 12), "split at %zu", k);
		cr_assert_eq(e->plainlen, sizeof(CONNECT), "split at %zu", k);
		cr_assert_arr_eq(e->plain, CONNECT, sizeof(CONNECT));
		end_free(e);
	}
}

Test(net_ws, request_one_byte_at_a_time)
{
	struct end *e = end_new(NULL);

	for (size_t i = 0; REQ[i]; i++)
		cr_assert_eq(feed(e, REQ + i, 1), 0);
	cr_assert(smq_ws_open(e->w));
	end_free(e);
}

Test(net_ws, headers_over_the_bound_get_431)
{
	struct smq_ws_opts o = { .headers_max = 256 };
	char big[600];
	struct end *e = end_new(&o);
	struct smq_ws_upgrade u;

	snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nCookie: %0300d\r\n", 0);
	cr_assert_eq(smq_ws_parse_upgrade((const uint8_t *)big, strlen(big), 256, &u), -EMSGSIZE);
	cr_assert_eq(u.status, 431);
	/* fed in pieces, the bound is found without a blank line ever coming */
	cr_assert_eq(feed(e, big, 100), 0);
	cr_assert_eq(feed(e, big + 100, strlen(big) - 100), -EPROTO);
	cr_assert(!memcmp(e->out, "HTTP/1.1 431 ", 13), "%.*s", (int)e->outlen, e->out);
	end_free(e);
}

Test(net_ws, a_request_exactly_at_the_bound_is_taken)
{
	struct smq_ws_opts o = { .headers_max = strlen(REQ) };
	struct end *e = end_new(&o);

	cr_assert_eq(feed_str(e, REQ), 0);
	cr_assert(smq_ws_open(e->w));
	end_free(e);
	o.headers_max = strlen(REQ) - 1;
	e = end_new(&o);
	cr_assert_eq(feed_str(e, REQ), -EPROTO);
	cr_assert(!memcmp(e->out, "HTTP/1.1 431 ", 13));
	end_free(e);
}

Test(net_ws, nothing_is_written_before_the_upgrade)
{
	struct end *e = end_new(NULL);

	feed(e, REQ, 10);
	cr_assert_eq(smq_xform_write(e->x, &(struct iovec){ (void *)CONNECT, 4 }, 1), 0);
	cr_assert_eq(smq_xform_out_pending(e->x), 0);
	end_free(e);
}

/* ---- frames ------------------------------------------------------------- */

Test(net_ws, binary_frame_payload_is_read_as_mqtt_bytes)
{
	struct end *e = opened(NULL);
	uint8_t wire[64];

	cr_assert_eq(feed(e, wire, frame(wire, true, 0x2, true, CONNECT, sizeof(CONNECT))), 0);
	cr_assert_eq(e->plainlen, sizeof(CONNECT));
	cr_assert_arr_eq(e->plain, CONNECT, sizeof(CONNECT));
	cr_assert_eq(e->rerr, 0);
	cr_assert_eq(e->outlen, 0, "nothing to answer");
	end_free(e);
}

Test(net_ws, frames_right_after_the_request_in_one_read_are_taken)
{
	struct end *e = end_new(NULL);
	uint8_t wire[1024];
	size_t n = strlen(REQ);

	memcpy(wire, REQ, n);
	n += frame(wire + n, true, 0x2, true, CONNECT, sizeof(CONNECT));
	cr_assert_eq(feed(e, wire, n), 0);
	cr_assert_eq(e->plainlen, sizeof(CONNECT));
	end_free(e);
}

/* A message in three fragments with a ping between them, then two packets in one frame. */
static size_t fragmented_stream(uint8_t *wire, uint8_t *expect, size_t *elen)
{
	size_t n = 0;

	n += frame(wire + n, false, 0x2, true, CONNECT, 5);
	n += frame(wire + n, false, 0x0, true, CONNECT + 5, 6);
	n += frame(wire + n, true, 0x9, true, "are you there", 13);
	n += frame(wire + n, true, 0x0, true, CONNECT + 11, sizeof(CONNECT) - 11);
	memcpy(expect, CONNECT, sizeof(CONNECT));
	memcpy(expect + sizeof(CONNECT), "\xc0\x00\xc0\x00", 4);	/* two PINGREQs */
	n += frame(wire + n, true, 0x2, true, "\xc0\x00\xc0\x00", 4);
	*elen = sizeof(CONNECT) + 4;
	return n;
}

Test(net_ws, fragmented_message_with_a_ping_inside_reads_whole_and_pongs)
{
	struct end *e = opened(NULL);
	uint8_t wire[256], expect[64];
	size_t elen, n = fragmented_stream(wire, expect, &elen);
	struct sframe f;

	cr_assert_eq(feed(e, wire, n), 0);
	cr_assert_eq(e->plainlen, elen);
	cr_assert_arr_eq(e->plain, expect, elen);
	f = nth_frame(e, 0);
	cr_assert_eq(f.op, 0xa, "a pong answers the ping");
	cr_assert_eq(f.len, 13);
	cr_assert_arr_eq(f.p, "are you there", 13, "the pong echoes the ping's payload");
	end_free(e);
}

Test(net_ws, frames_split_at_every_byte_read_the_same)
{
	uint8_t wire[256], expect[64];
	size_t elen, n = fragmented_stream(wire, expect, &elen);

	for (size_t k = 1; k < n; k++) {
		struct end *e = opened(NULL);

		cr_assert_eq(feed(e, wire, k), 0, "split at %zu", k);
		cr_assert_eq(feed(e, wire + k, n - k), 0, "split at %zu", k);
		cr_assert_eq(e->plainlen, elen, "split at %zu", k);
		cr_assert_arr_eq(e->plain, expect, elen, "split at %zu", k);
		cr_assert_eq(nth_frame(e, 0).op, 0xa, "split at %zu", k);
		end_free(e);
	}
}

Test(net_ws, big_message_in_many_frames_arrives_whole)
{
	struct end *e = opened(NULL);
	size_t total = 300000, chunk = 7000, at, n;
	uint8_t *msg = malloc(total), *wire = malloc(total + 4096);

	for (size_t i = 0; i < total; i++)
		msg[i] = (uint8_t)(i * 7);
	for (at = 0, n = 0; at < total; at += chunk)
		n += frame(wire + n, at + chunk >= total, at ? 0x0 : 0x2, true, msg + at,
			   at + chunk > total ? total - at : chunk);
	for (at = 0; at < n; at += 1500)	/* TCP-sized reads */
		cr_assert_eq(feed(e, wire + at, at + 1500 > n ? n - at : 1500), 0);
	cr_assert_eq(e->plainlen, total);
	cr_assert_arr_eq(e->plain, msg, total);
	free(msg);
	free(wire);
	end_free(e);
}

Test(net_ws, write_sends_one_unmasked_binary_frame_of_every_iovec)
{
	struct end *e = opened(NULL);
	struct iovec iov[3] = { { (void *)CONNECT, 3 }, { (void *)(CONNECT + 3), 0 },
				{ (void *)(CONNECT + 3), sizeof(CONNECT) - 3 } };
	struct sframe f;

	cr_assert_eq(smq_xform_write(e->x, iov, 3), (ssize_t)sizeof(CONNECT));
	take_out(e);
	f = nth_frame(e, 0);
	cr_assert(f.fin);
	cr_assert_eq(f.op, 0x2);
	cr_assert_eq(f.len, sizeof(CONNECT));
	cr_assert_arr_eq(f.p, CONNECT, sizeof(CONNECT));
	cr_assert_eq(e->outlen, 2 + sizeof(CONNECT), "one frame, nothing else");
	end_free(e);
}

Test(net_ws, big_write_is_bounded_and_arrives_whole)
{
	struct end *e = opened(NULL);
	size_t total = 1000000, got = 0, at = 0, fat = 0, used;
	uint8_t *msg = malloc(total), *back = malloc(total);
	struct sframe f;
	ssize_t took;

	for (size_t i = 0; i < total; i++)
		msg[i] = (uint8_t)(i * 13 + 1);
	while (at < total) {
		took = smq_xform_write(e->x, &(struct iovec){ msg + at, total - at }, 1);
		cr_assert_gt(took, 0);
		cr_assert_leq(smq_xform_out_pending(e->x), SMQ_WS_OUT_MAX + 16,
			      "output grows past its bound");
		at += (size_t)took;
		take_out(e);
		while ((used = unframe(e->out + fat, e->outlen - fat, &f))) {
			cr_assert_eq(f.op, 0x2);
			memcpy(back + got, f.p, f.len);
			got += f.len;
			fat += used;
		}
	}
	cr_assert_eq(got, total);
	cr_assert_arr_eq(back, msg, total);
	free(msg);
	free(back);
	end_free(e);
}

Test(net_ws, close_handshake_answers_close_then_read_ends_after_the_data)
{
	struct end *e = opened(NULL);
	uint8_t wire[64];
	size_t n = frame(wire, true, 0x2, true, "\xe0\x00", 2);	/* DISCONNECT */
	struct sframe f;

	n += frame(wire + n, true, 0x8, true, "\x03\xe8" "bye", 5);
	cr_assert_eq(feed(e, wire, n), 0);
	cr_assert_eq(e->plainlen, 2, "the DISCONNECT before the close is read");
	cr_assert_eq(e->rerr, -ECONNRESET);
	f = nth_frame(e, 0);
	cr_assert_eq(close_code(&f), 1000, "the close is answered with the same code");
	cr_assert(strstr(smq_ws_error(e->w), "closed"), "%s", smq_ws_error(e->w));
	cr_assert_lt(smq_xform_write(e->x, &(struct iovec){ (void *)CONNECT, 2 }, 1), 0,
		     "nothing is written after the close");
	end_free(e);
}

static void refused_with(const struct smq_ws_opts *o, const uint8_t *wire, size_t n, int code,
			 const char *why)
{
	struct end *e = opened(o);
	struct sframe f;
	size_t had;

	cr_assert_eq(feed(e, wire, n), 0);
	cr_assert_eq(e->rerr, -EPROTO);
	f = nth_frame(e, 0);
	cr_assert_eq(close_code(&f), code);
	cr_assert(strstr(smq_ws_error(e->w), why), "'%s' lacks '%s'", smq_ws_error(e->w), why);
	/* the transform is over: what comes after is not read */
	had = e->plainlen;
	cr_assert_eq(feed(e, wire, n), -EPROTO);
	cr_assert_eq(e->plainlen, had);
	end_free(e);
}

Test(net_ws, unmasked_client_frame_is_refused_with_1002)
{
	uint8_t wire[64];

	refused_with(NULL, wire, frame(wire, true, 0x2, false, CONNECT, sizeof(CONNECT)), 1002,
		     "unmasked");
}

Test(net_ws, reserved_bits_and_unknown_opcodes_are_refused_with_1002)
{
	uint8_t wire[64];
	size_t n = frame(wire, true, 0x2, true, CONNECT, 4);

	wire[0] |= 0x40;	/* RSV1, as permessage-deflate would: not agreed */
	refused_with(NULL, wire, n, 1002, "reserved");
	refused_with(NULL, wire, frame(wire, true, 0x3, true, CONNECT, 4), 1002, "opcode");
	/* a continuation with no message begun */
	refused_with(NULL, wire, frame(wire, true, 0x0, true, CONNECT, 4), 1002, "continuation");
}

Test(net_ws, text_frame_is_refused_with_1003)
{
	uint8_t wire[64];

	refused_with(NULL, wire, frame(wire, true, 0x1, true, "hello", 5), 1003, "binary");
}

Test(net_ws, frame_over_the_limit_is_refused_with_1009)
{
	struct smq_ws_opts o = { .frame_max = 1000 };
	uint8_t *wire = calloc(1, 4096);
	size_t ok = frame(wire, true, 0x2, true, wire + 2048, 1000);
	struct end *e = opened(&o);

	cr_assert_eq(feed(e, wire, ok), 0);
	cr_assert_eq(e->plainlen, 1000, "a frame at the limit is taken");
	end_free(e);
	refused_with(&o, wire, frame(wire, true, 0x2, true, wire + 2048, 1001), 1009, "limit");
	free(wire);
}

Test(net_ws, message_over_the_limit_across_fragments_is_refused_with_1009)
{
	struct smq_ws_opts o = { .msg_max = 100 };
	uint8_t wire[512], zero[64] = { 0 };
	size_t n = frame(wire, false, 0x2, true, zero, 60);

	n += frame(wire + n, true, 0x0, true, zero, 41);
	refused_with(&o, wire, n, 1009, "message");
}

Test(net_ws, control_frame_over_125_bytes_is_refused)
{
	uint8_t wire[512], zero[200] = { 0 };
	struct end *e = opened(NULL);

	cr_assert_eq(feed(e, wire, frame(wire, true, 0x9, true, zero, 200)), 0);
	cr_assert_eq(e->rerr, -EPROTO);
	cr_assert_eq(nth_frame(e, 0).op, 0x8, "a close frame is sent");
	end_free(e);
}

Test(net_ws, server_close_queues_a_close_frame_and_stops_writes)
{
	struct end *e = opened(NULL);
	struct sframe f;

	cr_assert_eq(smq_ws_close(e->w, 1001), 0);
	take_out(e);
	f = nth_frame(e, 0);
	cr_assert_eq(close_code(&f), 1001);
	cr_assert_lt(smq_xform_write(e->x, &(struct iovec){ (void *)CONNECT, 2 }, 1), 0);
	end_free(e);
}

Test(net_ws, unread_input_is_bounded)
{
	struct end *e = opened(NULL);
	uint8_t *wire = calloc(1, 70000);
	size_t n = frame(wire, true, 0x2, true, wire + 0, 65000);
	int ret = 0;

	for (int i = 0; i < 100 && !ret; i++)
		ret = smq_xform_feed(e->x, wire, n);	/* never read */
	cr_assert_eq(ret, -ENOBUFS);
	free(wire);
	end_free(e);
}

/* ---- the stack --------------------------------------------------------- */

/* A transform that passes bytes through, to test the stack alone; @fail
 * makes its read() fail once its bytes are given. */
struct pass {
	struct smq_xform xf;
	uint8_t buf[65536];
	size_t len;
	uint8_t out[65536];
	size_t olen;
	int fail;
};

static int pass_feed(struct smq_xform *x, const uint8_t *p, size_t n)
{
	struct pass *t = (struct pass *)x;

	memcpy(t->buf + t->len, p, n);
	t->len += n;
	return 0;
}

static ssize_t pass_read(struct smq_xform *x, uint8_t *buf, size_t cap)
{
	struct pass *t = (struct pass *)x;
	size_t n = t->len < cap ? t->len : cap;

	if (!n)
		return t->fail;
	memcpy(buf, t->buf, n);
	memmove(t->buf, t->buf + n, t->len - n);
	t->len -= n;
	return (ssize_t)n;
}

static ssize_t pass_write(struct smq_xform *x, const struct iovec *iov, int n)
{
	struct pass *t = (struct pass *)x;
	size_t took = 0;

	for (int i = 0; i < n; i++) {
		memcpy(t->out + t->olen, iov[i].iov_base, iov[i].iov_len);
		t->olen += iov[i].iov_len;
		took += iov[i].iov_len;
	}
	return (ssize_t)took;
}

static int pass_out_iov(struct smq_xform *x, struct iovec *iov, int max)
{
	struct pass *t = (struct pass *)x;

	if (!t->olen || max < 1)
		return 0;
	iov[0] = (struct iovec){ t->out, t->olen };
	return 1;
}

static void pass_out_done(struct smq_xform *x, size_t n)
{
	struct pass *t = (struct pass *)x;

	memmove(t->out, t->out + n, t->olen - n);
	t->olen -= n;
}

static size_t pass_out_pending(const struct smq_xform *x)
{
	return ((const struct pass *)x)->olen;
}

static void pass_free(struct smq_xform *x)
{
	free(x);
}

static const struct smq_xform_ops pass_ops = {
	pass_feed, pass_read, pass_write, pass_out_iov, pass_out_done, pass_out_pending,
	pass_free,
};

Test(net_ws, stack_moves_bytes_both_ways_and_reports_the_lower_error_last)
{
	struct pass *lower = calloc(1, sizeof(*lower));
	struct smq_ws *w = smq_ws_new(NULL);
	struct smq_xform *x;
	struct end e = { 0 };
	uint8_t wire[128];

	lower->xf.ops = &pass_ops;
	x = smq_xstack_new(&lower->xf, smq_ws_xform(w));
	cr_assert(x);
	cr_assert_eq(smq_xstack_lower(x), &lower->xf);
	cr_assert_eq(smq_xstack_upper(x), smq_ws_xform(w));
	cr_assert_null(smq_xstack_lower(smq_ws_xform(w)), "a WS alone is not a stack");
	e.x = x;
	e.out = malloc(BIG);
	e.plain = malloc(BIG);
	feed_str(&e, REQ);
	cr_assert(e.outlen > 12 && !memcmp(e.out, "HTTP/1.1 101", 12));
	e.outlen = 0;
	lower->fail = -ECONNRESET;	/* the lower layer ends after these bytes */
	cr_assert_eq(feed(&e, wire, frame(wire, true, 0x2, true, CONNECT, sizeof(CONNECT))), 0);
	cr_assert_eq(e.plainlen, sizeof(CONNECT), "the upper layer's bytes come first");
	cr_assert_eq(e.rerr, -ECONNRESET, "then the lower layer's ending");
	cr_assert_eq(smq_xform_write(x, &(struct iovec){ (void *)CONNECT, 4 }, 1), 4);
	take_out(&e);
	cr_assert_eq(nth_frame(&e, 0).len, 4);
	smq_xform_free(x);
	free(e.out);
	free(e.plain);
}

/* wss: WebSocket over a real TLS server transform, against a TLS client. */
static char certdir[64];

static void make_cert(void)
{
	char cmd[512];

	snprintf(certdir, sizeof(certdir), "/tmp/smq-test-ws-XXXXXX");
	cr_assert(mkdtemp(certdir));
	snprintf(cmd, sizeof(cmd), "cd %s && openssl req -x509 -newkey ec -pkeyopt "
		 "ec_paramgen_curve:P-256 -nodes -keyout k.pem -out c.pem -days 2 -subj "
		 "/CN=localhost -addext subjectAltName=DNS:localhost 2>/dev/null", certdir);
	cr_assert_eq(system(cmd), 0, "openssl failed");
}

static void rm_cert(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", certdir);
	if (system(cmd))
		fprintf(stderr, "cannot remove %s\n", certdir);
}

/* Move what @from wants to send into @to; true if anything moved. */
static bool hop(struct smq_xform *from, struct smq_xform *to)
{
	struct iovec iov[4];
	bool moved = false;
	int n;

	while ((n = smq_xform_out_iov(from, iov, 4)) > 0) {
		cr_assert_eq(smq_xform_feed(to, iov[0].iov_base, iov[0].iov_len), 0);
		smq_xform_out_done(from, iov[0].iov_len);
		moved = true;
	}
	return moved;
}

static size_t read_into(struct smq_xform *x, uint8_t *buf, size_t cap)
{
	size_t have = 0;
	ssize_t got;

	while ((got = smq_xform_read(x, buf + have, cap - have)) > 0)
		have += (size_t)got;
	cr_assert_geq(got, 0);
	return have;
}

Test(net_ws, wss_is_websocket_over_tls_in_one_stack, .init = make_cert, .fini = rm_cert)
{
	char cpath[128], kpath[128];
	struct smq_tls_opts so = { 0 }, co = { 0 };
	struct smq_tls_ctx *sctx, *cctx;
	struct smq_xform *srv, *cli;
	uint8_t buf[4096], wire[128], *body;
	struct sframe f;
	size_t n;
	char err[256];

	snprintf(cpath, sizeof(cpath), "%s/c.pem", certdir);
	snprintf(kpath, sizeof(kpath), "%s/k.pem", certdir);
	so.certfile = cpath;
	so.keyfile = kpath;
	co.cafile = cpath;
	sctx = smq_tls_ctx_new(SMQ_TLS_SERVER, &so, err, sizeof(err));
	cctx = smq_tls_ctx_new(SMQ_TLS_CLIENT, &co, err, sizeof(err));
	cr_assert(sctx && cctx, "%s", err);
	srv = smq_xstack_new(smq_tls_xform(smq_tls_new(sctx, NULL)),
			     smq_ws_xform(smq_ws_new(NULL)));
	cli = smq_tls_xform(smq_tls_new(cctx, "localhost"));
	for (int i = 0; i < 10 && (hop(cli, srv) | hop(srv, cli)); i++)
		;
	cr_assert(smq_tls_handshake_done(smq_tls_from_xform(cli)));
	/* the upgrade and a frame, encrypted by the client */
	cr_assert_eq(smq_xform_write(cli, &(struct iovec){ (void *)REQ, strlen(REQ) }, 1),
		     (ssize_t)strlen(REQ));
	n = frame(wire, true, 0x2, true, CONNECT, sizeof(CONNECT));
	cr_assert_eq(smq_xform_write(cli, &(struct iovec){ wire, n }, 1), (ssize_t)n);
	hop(cli, srv);
	cr_assert_eq(read_into(srv, buf, sizeof(buf)), sizeof(CONNECT));
	cr_assert_arr_eq(buf, CONNECT, sizeof(CONNECT));
	/* the 101 and a reply frame come back through TLS */
	cr_assert_eq(smq_xform_write(srv, &(struct iovec){ (void *)"\x20\x02\x00\x00", 4 }, 1), 4);
	hop(srv, cli);
	n = read_into(cli, buf, sizeof(buf));
	cr_assert(n > 12 && !memcmp(buf, "HTTP/1.1 101", 12));
	buf[n] = '\0';
	body = (uint8_t *)strstr((char *)buf, "\r\n\r\n") + 4;
	cr_assert(unframe(body, n - (size_t)(body - buf), &f), "no frame after the 101");
	cr_assert_eq(f.len, 4);
	cr_assert_arr_eq(f.p, "\x20\x02\x00\x00", 4, "a CONNACK in a binary frame");
	smq_xform_free(srv);
	smq_xform_free(cli);
	smq_tls_ctx_unref(sctx);
	smq_tls_ctx_unref(cctx);
	smq_tls_thread_exit();
}

/* ---- the client side (perf/loadgen.c --ws) ------------------------------ */

Test(net_ws, client_and_server_ends_talk_with_masked_frames_up)
{
	struct smq_ws *cw = smq_ws_client_new(NULL, "127.0.0.1:8080", "/mqtt");
	struct smq_xform *cli = smq_ws_xform(cw);
	struct end *srv = end_new(NULL);
	uint8_t buf[256];
	struct iovec iov[2];
	int n;

	cr_assert(cw);
	n = smq_xform_out_iov(cli, iov, 2);
	cr_assert_eq(n, 1, "the request is queued at once");
	cr_assert(!memcmp(iov[0].iov_base, "GET /mqtt HTTP/1.1\r\n", 20));
	cr_assert_eq(feed(srv, iov[0].iov_base, iov[0].iov_len), 0);
	smq_xform_out_done(cli, iov[0].iov_len);
	cr_assert_eq(smq_xform_write(cli, &(struct iovec){ (void *)CONNECT, 4 }, 1), 0,
		     "nothing is written before the 101");
	cr_assert_eq(smq_xform_feed(cli, srv->out, srv->outlen), 0);
	cr_assert(smq_ws_open(cw));
	srv->outlen = 0;
	/* up: masked (the server end refuses unmasked frames with 1002) */
	cr_assert_eq(smq_xform_write(cli, &(struct iovec){ (void *)CONNECT, sizeof(CONNECT) }, 1),
		     (ssize_t)sizeof(CONNECT));
	n = smq_xform_out_iov(cli, iov, 2);
	cr_assert_eq(((uint8_t *)iov[0].iov_base)[1] & 0x80, 0x80, "the client masks");
	cr_assert_eq(feed(srv, iov[0].iov_base, iov[0].iov_len), 0);
	smq_xform_out_done(cli, iov[0].iov_len);
	cr_assert_eq(srv->plainlen, sizeof(CONNECT));
	cr_assert_arr_eq(srv->plain, CONNECT, sizeof(CONNECT));
	/* down */
	cr_assert_eq(smq_xform_write(srv->x, &(struct iovec){ (void *)"\x20\x02\x00\x00", 4 }, 1),
		     4);
	take_out(srv);
	cr_assert_eq(smq_xform_feed(cli, srv->out, srv->outlen), 0);
	cr_assert_eq(smq_xform_read(cli, buf, sizeof(buf)), 4);
	cr_assert_arr_eq(buf, "\x20\x02\x00\x00", 4);
	smq_xform_free(cli);
	end_free(srv);
}

Test(net_ws, client_refuses_a_wrong_accept_or_a_non_101)
{
	struct smq_ws *cw = smq_ws_client_new(NULL, "h", "/");
	const char *bad = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
			  "Connection: Upgrade\r\nSec-WebSocket-Accept: " ACCEPT "\r\n\r\n";

	cr_assert_eq(smq_xform_feed(smq_ws_xform(cw), (const uint8_t *)bad, strlen(bad)), -EPROTO,
		     "an accept value for another key");
	cr_assert(strstr(smq_ws_error(cw), "Accept"));
	smq_ws_free(cw);
	cw = smq_ws_client_new(NULL, "h", "/");
	bad = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
	cr_assert_eq(smq_xform_feed(smq_ws_xform(cw), (const uint8_t *)bad, strlen(bad)), -EPROTO);
	cr_assert(strstr(smq_ws_error(cw), "400 Bad Request"), "%s", smq_ws_error(cw));
	smq_ws_free(cw);
}
