/* ws.c - MQTT over WebSocket as a sans-I/O transform (see ws.h, net/xform.h).
 *
 * Two phases. Before the upgrade, bytes collect in @req until the request's
 * blank line (or the headers_max bound, 431); smq_ws_parse_upgrade() checks
 * every rule of RFC 6455 4.2.1 and the answer (101, or an error response
 * and the failed state) goes to @out. Bytes after the blank line are the
 * first frames. After the upgrade, framing is wslay's, over memory only:
 *
 *   feed(p,n) --recv_cb--> wslay event ctx --chunk_cb--> plain --read()--> MQTT
 *                                      | pong, close (send_cb)
 *                                      v
 *   write(iov) --> wslay frame ctx (binary frame header + payload) --> out --out_iov()-->
 *
 * Input: the event API runs with buffering off, so a message's payload
 * streams into @plain as its chunks arrive and never sits whole in wslay's
 * memory: an MQTT packet may span frames and frames may split anywhere
 * between reads. wslay refuses unmasked client frames, reserved bits,
 * unknown opcodes and broken continuations (close 1002) and frames over
 * frame_max (1009); this file adds text frames (1003: MQTT needs binary
 * frames [MQTT-6.0.0-1]) and messages over msg_max (1009). wslay answers a
 * ping with a pong and a close with a close by itself.
 *
 * Output: the event API would copy each message into its own queue and then
 * again into @out; our data frames go through wslay's frame API instead,
 * straight from the caller's iovecs into @out (one copy, as for plain TCP
 * into the kernel). Both write whole frames into @out and control frames are
 * flushed right after input is taken or data written, so a pong never lands
 * inside a data frame.
 *
 * Endings: a failure after the upgrade does not stop read(): the MQTT bytes
 * that came before the bad frame or the client's close (a DISCONNECT, say)
 * are still read, and only then does read() return the ending (@end):
 * -ECONNRESET after the client's close, -EPROTO after a refusal. The close
 * frame we owe waits in @out. Invariant: once @err is set every call
 * returns it, but out_iov() still gives what waits to be sent.
 *
 * Buffers: each queue is freed as soon as it empties, and input is not
 * copied before wslay takes it (feed() lends it the caller's bytes). An
 * idle connection holds this struct and wslay's two contexts: about 12 KiB,
 * three 4 KiB buffers inside them (wslay 1.1's frame input buffer, twice,
 * and the event context's output buffer).
 *
 * Left to others: the socket and timers (the engine's CONNECT timeout also
 * bounds a client that never finishes its upgrade request), TLS below us
 * (net/xstack.c), what the MQTT bytes mean.
 */
#include "net/ws.h"

#include "net/bytequeue.h"

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/sha.h>
#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/coding.h>
#include <wslay/wslay.h>

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#define ERR_LEN 160
#define GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"	/* RFC 6455 1.3 */

enum phase {
	PH_UPGRADE,	/* server: reading the HTTP request; client: its answer */
	PH_OPEN,	/* frames */
};

struct smq_ws {				/* one connection; one thread at a time */
	struct smq_xform xf;		/* the generic face (ops) */
	struct smq_ws_opts o;		/* limits, defaults filled in */
	enum phase phase;
	struct smq_bq req;		/* the upgrade request so far */
	struct smq_bq in;		/* frame bytes that came with the handshake */
	const uint8_t *src;		/* during feed(): the caller's bytes, taken by
					 * wslay straight from there (no copy) */
	size_t srclen;
	struct smq_bq plain;		/* payload bytes not yet read */
	struct smq_bq out;		/* bytes for below */
	wslay_event_context_ptr ev;	/* input, and control frames out */
	wslay_frame_context_ptr fout;	/* our binary frames out */
	const char *proto;		/* the agreed subprotocol, or NULL */
	uint8_t frame_op;		/* opcode of the frame being received */
	bool client;			/* we mask what we send and expect a 101 */
	char accept[29];		/* client: the Sec-WebSocket-Accept we expect */
	uint8_t masks[256];		/* client: random bytes for masking keys */
	size_t nmasks;			/* how many of them are left (from the end) */
	bool drop;			/* input refused: payload is dropped */
	uint64_t msg_len;		/* declared payload of the message so far */
	int end;			/* 0, or what read() returns once @plain is empty */
	int err;			/* 0, or the -errno every call returns now */
	char why[ERR_LEN];		/* set with end or err */
};

/* ---- errors ------------------------------------------------------------ */

static void say(struct smq_ws *w, const char *fmt, va_list ap)
{
	vsnprintf(w->why, sizeof(w->why), fmt, ap);
}

/* Fatal now: every call returns @err. */
static int fail(struct smq_ws *w, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct smq_ws *w, int err, const char *fmt, ...)
{
	va_list ap;

	if (w->err)
		return w->err;
	if (!w->end) {
		va_start(ap, fmt);
		say(w, fmt, ap);
		va_end(ap);
	}
	w->err = err;
	return err;
}

/* The connection ends once the bytes before this point are read. */
static void ending(struct smq_ws *w, int end, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void ending(struct smq_ws *w, int end, const char *fmt, ...)
{
	va_list ap;

	if (w->end || w->err)
		return;
	va_start(ap, fmt);
	say(w, fmt, ap);
	va_end(ap);
	w->end = end;
}

/* ---- the upgrade request ------------------------------------------------ */

static bool is_tchar(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_b64(int c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       c == '+' || c == '/';
}

/* Does the comma-separated list @v (@n bytes) hold @token (any case)? */
static bool list_has(const char *v, size_t n, const char *token)
{
	size_t tl = strlen(token), i = 0, s, e;

	while (i < n) {
		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < n && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (e - s == tl && !strncasecmp(v + s, token, tl))
			return true;
	}
	return false;
}

/* What the headers said, as the parser goes. */
struct seen {
	int host, key, version, upgrade, connection;
	bool version_ok, proto_offered, mqtt, mqtt31;
	const char *bad;	/* the first fault found */
	int status;
};

static void fault(struct seen *s, int status, const char *why)
{
	if (!s->bad) {
		s->bad = why;
		s->status = status;
	}
}

static bool name_is(const char *name, size_t nl, const char *want)
{
	return nl == strlen(want) && !strncasecmp(name, want, nl);
}

/* One "name: value" line, without its CRLF. */
static void header(struct seen *s, const char *l, size_t n, struct smq_ws_upgrade *u)
{
	const char *colon = memchr(l, ':', n), *v;
	size_t nl, vl, i;

	if (n && (l[0] == ' ' || l[0] == '\t'))
		return fault(s, 400, "folded header line (obs-fold)");
	if (!colon || colon == l)
		return fault(s, 400, "header line without a name and a colon");
	nl = (size_t)(colon - l);
	for (i = 0; i < nl; i++)
		if (!is_tchar((unsigned char)l[i]))
			return fault(s, 400, "bad character in a header name");
	v = colon + 1;
	vl = n - nl - 1;
	while (vl && (*v == ' ' || *v == '\t'))
		v++, vl--;
	while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
		vl--;
	for (i = 0; i < vl; i++)
		if (((unsigned char)v[i] < 0x20 && v[i] != '\t') || v[i] == 0x7f)
			return fault(s, 400, "control character in a header value");
	if (name_is(l, nl, "Host")) {
		s->host++;
	} else if (name_is(l, nl, "Upgrade")) {
		s->upgrade += list_has(v, vl, "websocket");
	} else if (name_is(l, nl, "Connection")) {
		s->connection += list_has(v, vl, "Upgrade");
	} else if (name_is(l, nl, "Sec-WebSocket-Key")) {
		if (s->key++)
			return fault(s, 400, "Sec-WebSocket-Key given twice");
		/* 16 bytes in base64: 22 characters and "==" (RFC 6455 4.2.1 item 5) */
		for (i = 0; i < 22 && vl == 24; i++)
			if (!is_b64((unsigned char)v[i]))
				break;
		if (vl != 24 || i != 22 || v[22] != '=' || v[23] != '=')
			return fault(s, 400, "Sec-WebSocket-Key is not 16 bytes in base64");
		memcpy(u->key, v, 24);
		u->key[24] = '\0';
	} else if (name_is(l, nl, "Sec-WebSocket-Version")) {
		if (s->version++)
			return fault(s, 400, "Sec-WebSocket-Version given twice");
		s->version_ok = vl == 2 && !memcmp(v, "13", 2);
	} else if (name_is(l, nl, "Sec-WebSocket-Protocol")) {
		s->proto_offered = true;
		s->mqtt |= list_has(v, vl, "mqtt");
		s->mqtt31 |= list_has(v, vl, "mqttv3.1");
	} else if (name_is(l, nl, "Content-Length")) {
		if (vl != 1 || v[0] != '0')
			return fault(s, 400, "an upgrade request has no body (Content-Length)");
	} else if (name_is(l, nl, "Transfer-Encoding")) {
		return fault(s, 400, "an upgrade request has no body (Transfer-Encoding)");
	}
}

/* "GET target HTTP/1.1", without its CRLF. */
static void request_line(struct seen *s, const char *l, size_t n)
{
	const char *t = l + 4, *sp;
	size_t i;

	if (n < 4 || memcmp(l, "GET ", 4))
		return fault(s, 400, "not a GET request");
	sp = memchr(t, ' ', n - 4);
	if (!sp || sp == t)
		return fault(s, 400, "no request target");
	for (i = 0; t + i < sp; i++)
		if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
			return fault(s, 400, "bad character in the request target");
	if ((size_t)(l + n - (sp + 1)) != 8 || memcmp(sp + 1, "HTTP/1.1", 8))
		return fault(s, 400, "not HTTP/1.1");
}

/* The request is complete at @p[0, n): check it all. */
static void check_request(const char *p, size_t n, struct smq_ws_upgrade *u)
{
	struct seen s = { 0 };
	const char *l = p, *e, *end = p + n - 2;	/* the final CRLF ends no line */
	bool first = true;

	while (l < end) {
		e = memmem(l, (size_t)(end - l), "\r\n", 2);
		assert(e);	/* the request ends in CRLF CRLF */
		if (memchr(l, '\r', (size_t)(e - l)) || memchr(l, '\n', (size_t)(e - l)))
			fault(&s, 400, "bare CR or LF in the request");
		else if (first)
			request_line(&s, l, (size_t)(e - l));
		else
			header(&s, l, (size_t)(e - l), u);
		first = false;
		l = e + 2;
	}
	if (!s.host)
		fault(&s, 400, "no Host header");
	if (s.host > 1)
		fault(&s, 400, "Host given twice");
	if (!s.upgrade)
		fault(&s, 400, "no \"Upgrade: websocket\"");
	if (!s.connection)
		fault(&s, 400, "no \"Connection: Upgrade\"");
	if (!s.key)
		fault(&s, 400, "no Sec-WebSocket-Key");
	if (!s.version)
		fault(&s, 400, "no Sec-WebSocket-Version");
	if (s.version && !s.version_ok)
		fault(&s, 426, "Sec-WebSocket-Version is not 13");
	if (s.proto_offered && !s.mqtt && !s.mqtt31)
		fault(&s, 400, "Sec-WebSocket-Protocol offers neither mqtt nor mqttv3.1");
	if (s.bad) {
		u->status = s.status;
		u->why = s.bad;
		return;
	}
	u->protocol = s.mqtt ? "mqtt" : s.mqtt31 ? "mqttv3.1" : NULL;
}

long smq_ws_parse_upgrade(const uint8_t *p, size_t n, size_t max, struct smq_ws_upgrade *u)
{
	size_t k = n < 4 ? n : 4, look = n < max ? n : max;
	const uint8_t *e;

	*u = (struct smq_ws_upgrade){ 0 };
	/* Say no at once to what cannot become a GET (MQTT on a WebSocket
	 * port, TLS on a plain one) rather than wait for the bound. */
	if (memcmp(p, "GET ", k)) {
		u->status = 400;
		u->why = "not an HTTP GET request";
		return (long)n;
	}
	e = memmem(p, look, "\r\n\r\n", 4);
	if (!e) {
		if (n < max)
			return 0;
		u->status = 431;
		u->why = "request headers over the size limit";
		return -EMSGSIZE;
	}
	check_request((const char *)p, (size_t)(e - p) + 4, u);
	return (long)(e - p) + 4;
}

int smq_ws_accept_key(const char *key, char out[29])
{
	char buf[24 + sizeof(GUID)];
	byte sha[WC_SHA_DIGEST_SIZE];
	word32 len = 29;

	if (strlen(key) != 24)
		return -EIO;
	memcpy(buf, key, 24);
	memcpy(buf + 24, GUID, sizeof(GUID) - 1);
	if (wc_ShaHash((const byte *)buf, (word32)(24 + sizeof(GUID) - 1), sha) ||
	    Base64_Encode_NoNl(sha, sizeof(sha), (byte *)out, &len) || len != 28)
		return -EIO;
	out[28] = '\0';
	return 0;
}

/* ---- wslay callbacks ---------------------------------------------------- */

static ssize_t ev_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
		       void *arg)
{
	struct smq_ws *w = arg;
	size_t n = smq_bq_used(&w->in);

	(void)flags;
	if (n) {
		if (n > len)
			n = len;
		memcpy(buf, w->in.p + w->in.off, n);
		smq_bq_pop(&w->in, n);
		return (ssize_t)n;
	}
	if (!w->srclen) {
		wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
		return -1;
	}
	n = w->srclen < len ? w->srclen : len;
	memcpy(buf, w->src, n);
	w->src += n;
	w->srclen -= n;
	return (ssize_t)n;
}

/* Frames for the peer always fit: @out grows; write() applies the bound. */
static ssize_t ev_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
		       void *arg)
{
	struct smq_ws *w = arg;

	(void)flags;
	if (smq_bq_push(&w->out, data, len)) {
		wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
		return -1;
	}
	return (ssize_t)len;
}

static ssize_t frame_send(const uint8_t *data, size_t len, int flags, void *arg)
{
	struct smq_ws *w = arg;

	(void)flags;
	return smq_bq_push(&w->out, data, len) ? 0 : (ssize_t)len;
}

/* Masking keys (client only): RFC 6455 5.3 wants them unpredictable; a
 * pool from getrandom() keeps that at one system call per 64 frames. */
static int fill_mask(struct smq_ws *w, uint8_t *buf, size_t len)
{
	if (w->nmasks < len) {
		if (getrandom(w->masks, sizeof(w->masks), 0) != (ssize_t)sizeof(w->masks))
			return -1;
		w->nmasks = sizeof(w->masks);
	}
	w->nmasks -= len;
	memcpy(buf, w->masks + w->nmasks, len);
	return 0;
}

static int ev_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *arg)
{
	(void)ctx;
	return fill_mask(arg, buf, len);
}

static int frame_genmask(uint8_t *buf, size_t len, void *arg)
{
	return fill_mask(arg, buf, len);
}

/* Refuse what came (ending() said why): close with @code, read no further. */
static void refuse(struct smq_ws *w, uint16_t code)
{
	w->drop = true;
	wslay_event_queue_close(w->ev, code, NULL, 0);
	wslay_event_shutdown_read(w->ev);
}

static void on_frame_start(wslay_event_context_ptr ctx,
			   const struct wslay_event_on_frame_recv_start_arg *a, void *arg)
{
	struct smq_ws *w = arg;

	(void)ctx;
	w->frame_op = a->opcode;
	if (wslay_is_ctrl_frame(a->opcode))
		return;
	if (w->drop)
		return;
	if (a->opcode == WSLAY_TEXT_FRAME) {
		ending(w, -EPROTO, "text frame: MQTT needs binary frames [MQTT-6.0.0-1]");
		refuse(w, WSLAY_CODE_UNSUPPORTED_DATA);
		return;
	}
	if (a->opcode == WSLAY_BINARY_FRAME)
		w->msg_len = 0;
	w->msg_len += a->payload_length;
	if (w->msg_len > w->o.msg_max) {
		ending(w, -EPROTO, "message of %llu bytes or more over the limit of %llu",
		       (unsigned long long)w->msg_len, (unsigned long long)w->o.msg_max);
		refuse(w, WSLAY_CODE_MESSAGE_TOO_BIG);
	}
}

static void on_frame_chunk(wslay_event_context_ptr ctx,
			   const struct wslay_event_on_frame_recv_chunk_arg *a, void *arg)
{
	struct smq_ws *w = arg;

	if (w->drop || wslay_is_ctrl_frame(w->frame_op) || !a->data_length)
		return;
	if (smq_bq_push(&w->plain, a->data, a->data_length)) {
		fail(w, -ENOMEM, "out of memory");
		wslay_event_shutdown_read(ctx);
	}
}

static const struct wslay_event_callbacks ev_callbacks = {
	.recv_callback = ev_recv,
	.send_callback = ev_send,
	.genmask_callback = ev_genmask,
	.on_frame_recv_start_callback = on_frame_start,
	.on_frame_recv_chunk_callback = on_frame_chunk,
};

static const struct wslay_frame_callbacks frame_callbacks = {
	.send_callback = frame_send,
	.genmask_callback = frame_genmask,
};

/* ---- frames ------------------------------------------------------------- */

/* Why wslay stopped reading, from the close code it sent. */
static void note_wslay_refusal(struct smq_ws *w)
{
	uint16_t code = wslay_event_get_status_code_sent(w->ev);

	if (code == WSLAY_CODE_MESSAGE_TOO_BIG)
		ending(w, -EPROTO, "frame over the limit of %llu bytes",
		       (unsigned long long)w->o.frame_max);
	else if (code == WSLAY_CODE_PROTOCOL_ERROR)
		ending(w, -EPROTO, "protocol error: an unmasked frame, reserved bits, an unknown "
		       "opcode or a broken continuation (RFC 6455 5)");
	else if (code == WSLAY_CODE_INVALID_FRAME_PAYLOAD_DATA)
		ending(w, -EPROTO, "invalid UTF-8 in a close frame");
	else
		ending(w, -EPROTO, "malformed frame (close %u)", code);
}

/* Run the bytes feed() lent (and @in) through wslay; flush its control frames. */
static int pump(struct smq_ws *w)
{
	int r = wslay_event_recv(w->ev);

	if (w->err)
		return w->err;
	if (r == WSLAY_ERR_NOMEM)
		return fail(w, -ENOMEM, "out of memory");
	if (r == WSLAY_ERR_CALLBACK_FAILURE)	/* a frame header wslay cannot parse */
		ending(w, -EPROTO, "malformed frame header (RFC 6455 5.2)");
	if (wslay_event_send(w->ev))
		return fail(w, -ENOMEM, "out of memory");
	if (wslay_event_get_close_received(w->ev))
		ending(w, -ECONNRESET, "the client closed the WebSocket (status %u)",
		       wslay_event_get_status_code_received(w->ev));
	else if (!wslay_event_get_read_enabled(w->ev))
		note_wslay_refusal(w);
	return 0;
}

/* ---- the handshake ------------------------------------------------------- */

static int answer_error(struct smq_ws *w, const struct smq_ws_upgrade *u)
{
	char buf[512];
	const char *reason = u->status == 431 ? "Request Header Fields Too Large" :
			     u->status == 426 ? "Upgrade Required" : "Bad Request";
	int n = snprintf(buf, sizeof(buf), "HTTP/1.1 %d %s\r\nConnection: close\r\n"
			 "Content-Type: text/plain\r\nContent-Length: %zu\r\n%s\r\n%s\n",
			 u->status, reason, strlen(u->why) + 1,
			 u->status == 426 ? "Sec-WebSocket-Version: 13\r\n" : "", u->why);

	if (smq_bq_push(&w->out, buf, (size_t)n))
		return fail(w, -ENOMEM, "out of memory");
	return fail(w, -EPROTO, "upgrade request refused (%d): %s", u->status, u->why);
}

/* The handshake is over: frames from now on. */
static int start_frames(struct smq_ws *w)
{
	int r = w->client ? wslay_event_context_client_init(&w->ev, &ev_callbacks, w)
			  : wslay_event_context_server_init(&w->ev, &ev_callbacks, w);

	if (r || wslay_frame_context_init(&w->fout, &frame_callbacks, w))
		return fail(w, -ENOMEM, "out of memory");
	wslay_event_config_set_no_buffering(w->ev, 1);
	wslay_event_config_set_max_recv_msg_length(w->ev, w->o.frame_max);
	w->phase = PH_OPEN;
	return 0;
}

static int answer_101(struct smq_ws *w, const struct smq_ws_upgrade *u)
{
	char accept[29], buf[256];
	int n;

	if (smq_ws_accept_key(u->key, accept))
		return fail(w, -EIO, "cannot compute Sec-WebSocket-Accept");
	n = snprintf(buf, sizeof(buf), "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
		     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s%s%s\r\n", accept,
		     u->protocol ? "Sec-WebSocket-Protocol: " : "",
		     u->protocol ? u->protocol : "", u->protocol ? "\r\n" : "");
	if (smq_bq_push(&w->out, buf, (size_t)n))
		return fail(w, -ENOMEM, "out of memory");
	w->proto = u->protocol;
	return start_frames(w);
}

/* Bytes after the handshake (in @req from @used on) are the first frames. */
static int first_frames(struct smq_ws *w, size_t used)
{
	smq_bq_pop(&w->req, used);
	if (smq_bq_used(&w->req) && smq_bq_push(&w->in, w->req.p + w->req.off, smq_bq_used(&w->req)))
		return fail(w, -ENOMEM, "out of memory");
	free(w->req.p);
	w->req = (struct smq_bq){ 0 };
	return smq_bq_used(&w->in) ? pump(w) : 0;
}

/* Client: the server's answer to our request. Only what a client must
 * check (RFC 6455 4.1): status 101 and the accept value. */
static int response_feed(struct smq_ws *w, const uint8_t *p, size_t n)
{
	const char *r, *e, *a;
	size_t len;

	if (smq_bq_push(&w->req, p, n))
		return fail(w, -ENOMEM, "out of memory");
	r = (const char *)w->req.p + w->req.off;
	len = smq_bq_used(&w->req) < w->o.headers_max ? smq_bq_used(&w->req) : w->o.headers_max;
	e = memmem(r, len, "\r\n\r\n", 4);
	if (!e)
		return len < w->o.headers_max ? 0 : fail(w, -EPROTO, "response headers too long");
	if (e - r < 13 || memcmp(r, "HTTP/1.1 101 ", 13))
		return fail(w, -EPROTO, "the server refused the upgrade: %.*s",
			    (int)strcspn(r, "\r"), r);
	for (a = r; a && a < e; a = memmem(a + 2, (size_t)(e - a), "\r\n", 2))
		if (!strncasecmp(a + 2, "Sec-WebSocket-Accept:", 21))
			break;
	if (!a || a >= e)
		return fail(w, -EPROTO, "no Sec-WebSocket-Accept in the 101");
	for (a += 23; a < e && (*a == ' ' || *a == '\t'); a++)
		;
	if (e - a < 28 || memcmp(a, w->accept, 28))
		return fail(w, -EPROTO, "wrong Sec-WebSocket-Accept in the 101");
	if (start_frames(w))
		return w->err;
	return first_frames(w, (size_t)(e - r) + 4);
}

static int upgrade_feed(struct smq_ws *w, const uint8_t *p, size_t n)
{
	struct smq_ws_upgrade u;
	long used;
	int ret;

	if (smq_bq_push(&w->req, p, n))
		return fail(w, -ENOMEM, "out of memory");
	used = smq_ws_parse_upgrade(w->req.p + w->req.off, smq_bq_used(&w->req), w->o.headers_max,
				    &u);
	if (!used)
		return 0;
	if (u.status)
		return answer_error(w, &u);
	ret = answer_101(w, &u);
	if (ret)
		return ret;
	return first_frames(w, (size_t)used);
}

/* ---- the transform -------------------------------------------------------- */

static struct smq_ws *of(struct smq_xform *x)
{
	return (struct smq_ws *)x;	/* xf is the first member */
}

static int ws_feed(struct smq_xform *x, const uint8_t *p, size_t n)
{
	struct smq_ws *w = of(x);
	int ret;

	if (w->err || !n)
		return w->err;
	if (w->phase == PH_UPGRADE)
		return w->client ? response_feed(w, p, n) : upgrade_feed(w, p, n);
	if (w->end)
		return 0;	/* after a close: nothing more is read */
	if (smq_bq_used(&w->plain) >= SMQ_WS_IN_MAX)
		return -ENOBUFS;	/* not fatal: the caller did not read */
	/* wslay takes every byte before it returns (a partial frame header
	 * waits in its own buffer), unless it stopped reading: then the rest
	 * is after a close and is dropped */
	w->src = p;
	w->srclen = n;
	ret = pump(w);
	w->src = NULL;
	w->srclen = 0;
	return ret;
}

static ssize_t ws_read(struct smq_xform *x, uint8_t *buf, size_t cap)
{
	struct smq_ws *w = of(x);
	size_t n = smq_bq_used(&w->plain);

	if (w->err)
		return w->err;
	if (n) {
		if (n > cap)
			n = cap;
		memcpy(buf, w->plain.p + w->plain.off, n);
		smq_bq_pop(&w->plain, n);
		return (ssize_t)n;
	}
	if (w->end)
		w->err = w->end;
	return w->err;
}

/* One binary frame of @len bytes from the front of @iov (@i, @at: where). */
static int seal(struct smq_ws *w, const struct iovec *iov, int *i, size_t *at, size_t len)
{
	struct wslay_frame_iocb io = {
		.fin = 1, .opcode = WSLAY_BINARY_FRAME, .payload_length = len, .mask = w->client,
	};
	size_t k;
	ssize_t r;

	do {
		k = iov[*i].iov_len - *at;
		if (k > len)
			k = len;
		io.data = (const uint8_t *)iov[*i].iov_base + *at;
		io.data_length = k;
		r = wslay_frame_send(w->fout, &io);
		if (r < 0 || (size_t)r != k)
			return fail(w, -ENOMEM, "out of memory");
		len -= k;
		*at += k;
		if (*at == iov[*i].iov_len)
			(*i)++, *at = 0;
	} while (len);
	return 0;
}

static ssize_t ws_write(struct smq_xform *x, const struct iovec *iov, int n)
{
	struct smq_ws *w = of(x);
	size_t total = 0, room, len, at = 0;
	int i = 0, j, ret;

	if (w->err || w->end)
		return w->err ? w->err : w->end;
	if (w->phase != PH_OPEN)
		return 0;	/* nothing goes out before the upgrade */
	if (wslay_event_get_close_sent(w->ev))
		return fail(w, -EPIPE, "write after the close frame");
	while (i < n && smq_bq_used(&w->out) < SMQ_WS_OUT_MAX) {
		room = SMQ_WS_OUT_MAX - smq_bq_used(&w->out);
		for (len = 0, j = i; j < n && len < room; j++)
			len += iov[j].iov_len - (j == i ? at : 0);
		if (len > room)
			len = room;
		if (!len)
			break;
		ret = seal(w, iov, &i, &at, len);
		if (ret)
			return ret;
		total += len;
	}
	return (ssize_t)total;
}

static int ws_out_iov(struct smq_xform *x, struct iovec *iov, int max)
{
	return smq_bq_iov(&of(x)->out, iov, max);
}

static void ws_out_done(struct smq_xform *x, size_t n)
{
	smq_bq_pop(&of(x)->out, n);
}

static size_t ws_out_pending(const struct smq_xform *x)
{
	return smq_bq_used(&((const struct smq_ws *)x)->out);
}

static void ws_free(struct smq_xform *x)
{
	struct smq_ws *w = of(x);

	wslay_event_context_free(w->ev);
	wslay_frame_context_free(w->fout);
	free(w->req.p);
	free(w->in.p);
	free(w->plain.p);
	free(w->out.p);
	free(w);
}

static const struct smq_xform_ops ws_ops = {
	.feed = ws_feed,
	.read = ws_read,
	.write = ws_write,
	.out_iov = ws_out_iov,
	.out_done = ws_out_done,
	.out_pending = ws_out_pending,
	.free = ws_free,
};

/* ---- the public face ------------------------------------------------------ */

struct smq_ws *smq_ws_client_new(const struct smq_ws_opts *o, const char *host,
				  const char *path)
{
	struct smq_ws *w = smq_ws_new(o);
	uint8_t nonce[16];
	char key[25], buf[1024];
	word32 len = sizeof(key);
	int n;

	if (!w)
		return NULL;
	w->client = true;
	if (getrandom(nonce, sizeof(nonce), 0) != (ssize_t)sizeof(nonce) ||
	    Base64_Encode_NoNl(nonce, sizeof(nonce), (byte *)key, &len) || len != 24)
		goto out_free;
	key[24] = '\0';
	if (smq_ws_accept_key(key, w->accept))
		goto out_free;
	n = snprintf(buf, sizeof(buf), "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
		     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
		     "Sec-WebSocket-Protocol: mqtt\r\nSec-WebSocket-Version: 13\r\n\r\n",
		     path, host, key);
	if (n < 0 || (size_t)n >= sizeof(buf) || smq_bq_push(&w->out, buf, (size_t)n))
		goto out_free;
	return w;
out_free:
	smq_ws_free(w);
	errno = ENOMEM;
	return NULL;
}

struct smq_ws *smq_ws_new(const struct smq_ws_opts *o)
{
	struct smq_ws *w = calloc(1, sizeof(*w));

	if (!w) {
		errno = ENOMEM;
		return NULL;
	}
	w->xf.ops = &ws_ops;
	if (o)
		w->o = *o;
	if (!w->o.headers_max)
		w->o.headers_max = SMQ_WS_HEADERS_DEFAULT;
	if (!w->o.frame_max || w->o.frame_max >= (1ull << 63))
		w->o.frame_max = (1ull << 63) - 1;	/* RFC 6455 5.2: the largest length */
	if (!w->o.msg_max)
		w->o.msg_max = UINT64_MAX;
	return w;
}

void smq_ws_free(struct smq_ws *w)
{
	if (w)
		ws_free(&w->xf);
}

struct smq_xform *smq_ws_xform(struct smq_ws *w)
{
	return &w->xf;
}

struct smq_ws *smq_ws_from_xform(struct smq_xform *x)
{
	return x && x->ops == &ws_ops ? of(x) : NULL;
}

bool smq_ws_open(const struct smq_ws *w)
{
	return w->phase == PH_OPEN && !w->err;
}

const char *smq_ws_subprotocol(const struct smq_ws *w)
{
	return w->phase == PH_OPEN ? w->proto : NULL;
}

const char *smq_ws_error(const struct smq_ws *w)
{
	return w->err || w->end ? w->why : NULL;
}

int smq_ws_close(struct smq_ws *w, uint16_t code)
{
	if (w->err)
		return w->err;
	if (w->phase != PH_OPEN)
		return -ENOTCONN;
	if (w->end || wslay_event_queue_close(w->ev, code, NULL, 0))
		return -EALREADY;	/* a close was queued already, or the peer's came */
	return wslay_event_send(w->ev) ? fail(w, -ENOMEM, "out of memory") : 0;
}
