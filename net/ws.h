/* ws.h - MQTT over WebSocket (RFC 6455, MQTT 3.1.1 section 6 / MQTT 5.0
 * section 6) as a sans-I/O byte-stream transform (struct smq_xform).
 *
 * Below it: the bytes of a TCP connection (or of a TLS transform, for wss:
 * see net/xstack.h). Above it: MQTT bytes only. It does, in order:
 *  1. the opening handshake: a bounded, strict parse of the client's HTTP
 *     upgrade request (smq_ws_parse_upgrade() below), answered with
 *     "101 Switching Protocols" and the negotiated subprotocol, or with a
 *     400 / 426 / 431 response after which the transform has failed;
 *  2. the framing, through wslay: masked binary frames in, their payloads
 *     out to read() as one byte stream (an MQTT packet may span frames and
 *     a frame may hold several packets [MQTT-6.0.0-2]); what write() takes
 *     goes out as unmasked binary frames; pings are answered with pongs;
 *  3. the closing handshake: a close frame from the client is answered in
 *     kind, then read() reports -ECONNRESET (a goodbye, not a failure),
 *     once the MQTT bytes before it have been read; smq_ws_close() sends
 *     ours (the shard does, code 1000, when the engine ends a connection).
 *
 * Errors of the transform: -EPROTO for anything refused (a bad upgrade
 * request, an unmasked or text frame, a frame or message over its limit,
 * a broken frame; smq_ws_error() says which in words, and out_pending()
 * holds the HTTP error response or the close frame worth sending first),
 * -ECONNRESET after the peer's close frame, -ENOMEM, -ENOBUFS when feed()
 * is given more while too much input is unread (not fatal).
 *
 * Threads: like every transform (net/xform.h), one thread at a time, and it
 * may move between threads between calls; it holds no thread-local state.
 */
#ifndef SMQ_WS_H
#define SMQ_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/xform.h"

/* The upgrade request's size bound when none is given (mosquitto's
 * websockets_headers_size is 1024 by default, libwebsockets' buffer; a
 * browser request with a few cookies passes that, so ours is larger). */
#define SMQ_WS_HEADERS_DEFAULT 4096u
/* write() stops taking bytes while this much waits to be sent. */
#define SMQ_WS_OUT_MAX (256u * 1024)
/* feed() refuses (-ENOBUFS) while this much input waits to be read. */
#define SMQ_WS_IN_MAX (1024u * 1024)

/* The limits of one connection. 0 means the default. */
struct smq_ws_opts {
	size_t headers_max;	/* bytes of the whole upgrade request, from "GET" to the
				 * blank line: past it the answer is 431 and a close.
				 * Default SMQ_WS_HEADERS_DEFAULT */
	uint64_t frame_max;	/* payload of one frame: past it, close 1009 (message
				 * too big). Default: no limit below 2^63 */
	uint64_t msg_max;	/* payload of one message (a frame and its continuation
				 * frames): past it, close 1009. Default: no limit */
};

struct smq_ws;

/* A server-side WebSocket connection waiting for its upgrade request.
 * NULL with errno ENOMEM. */
struct smq_ws *smq_ws_new(const struct smq_ws_opts *o);

/* A client-side connection to @host (the Host header) at @path: its
 * upgrade request (subprotocol mqtt) is queued at once (out_pending() > 0);
 * feed() takes the server's 101 (checked: status and accept value), then
 * frames. What write() takes goes out in masked frames (RFC 6455 5.3).
 * For tools and tests (perf/loadgen.c --ws). NULL with errno ENOMEM. */
struct smq_ws *smq_ws_client_new(const struct smq_ws_opts *o, const char *host,
				  const char *path);

/* Free it (same as smq_xform_free() on its face). NULL allowed. */
void smq_ws_free(struct smq_ws *w);

/* The transform face of @w, and back (NULL if @x is not a WebSocket). */
struct smq_xform *smq_ws_xform(struct smq_ws *w);
struct smq_ws *smq_ws_from_xform(struct smq_xform *x);

/* The upgrade was accepted: frames flow. */
bool smq_ws_open(const struct smq_ws *w);

/* The subprotocol agreed ("mqtt", "mqttv3.1"), or NULL: none asked for,
 * or the upgrade is not done. A static string. */
const char *smq_ws_subprotocol(const struct smq_ws *w);

/* Why the connection failed or ended, in words for the log ("upgrade
 * request: no Sec-WebSocket-Key", "frame of 2000000 bytes over the limit
 * of 1048576"), or NULL if it has not. */
const char *smq_ws_error(const struct smq_ws *w);

/* Queue a close frame with @code (RFC 6455 7.4) for the peer: after it,
 * write() takes nothing. 0, or -errno: -ENOTCONN before the upgrade,
 * -EALREADY once a close was queued or the peer's close came. */
int smq_ws_close(struct smq_ws *w, uint16_t code);

/* ---- the upgrade request, on its own (for tests and tools) ------------- */

/* What smq_ws_parse_upgrade() found. */
struct smq_ws_upgrade {
	int status;		/* 0 (accepted) or the HTTP status to answer: 400, 426, 431 */
	const char *why;	/* with a status: what is wrong, a static string */
	const char *protocol;	/* accepted: "mqtt", "mqttv3.1" or NULL (none offered) */
	char key[25];		/* accepted: Sec-WebSocket-Key as sent (24 characters) */
};

/* Parse the request at @p (@n bytes so far) under RFC 6455 4.2.1: "GET
 * target HTTP/1.1", CRLF line ends, Host (once), Upgrade with "websocket",
 * Connection with "Upgrade", Sec-WebSocket-Key (once; base64 of 16 bytes),
 * Sec-WebSocket-Version 13 (426 otherwise), no request body; header names
 * case-insensitive. A Sec-WebSocket-Protocol list must offer "mqtt" or
 * "mqttv3.1" ("mqtt" wins); without one, none is agreed.
 * Returns the length of the request (through its blank line) when it is
 * complete, whether accepted or not (see @u->status); 0 when more bytes are
 * needed and fewer than @max have come; -EMSGSIZE (@u->status 431) when
 * @max bytes hold no complete request. */
long smq_ws_parse_upgrade(const uint8_t *p, size_t n, size_t max, struct smq_ws_upgrade *u);

/* Sec-WebSocket-Accept for @key (RFC 6455 4.2.2: base64 of the SHA-1 of
 * the key and the GUID) into @out, NUL-terminated (29 bytes). 0 or -EIO. */
int smq_ws_accept_key(const char *key, char out[29]);

#endif
