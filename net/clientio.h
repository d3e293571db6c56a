/* clientio.h - a small blocking/poll() driver for the client core.
 *
 * One TCP connection (or Unix socket: smq_clientio_set_unix(); from a
 * chosen local address: smq_clientio_set_bind()), one struct smq_client
 * (core/client.h), one poll() loop step at a time, plus blocking helpers
 * for the common cases: connect and wait for CONNACK, publish and wait for
 * completion, subscribe and wait for SUBACK, wait for the next message.
 * The tools in cmd/ and the integration tests use this; anything that
 * needs many connections uses the core with its own I/O instead.
 *
 * Timeouts are in milliseconds; a negative timeout waits for ever (the
 * keepalive still notices a dead server). Errors: negative errno for
 * network and local failures (-ECONNREFUSED, -ETIMEDOUT, -ECONNRESET,
 * -ENXIO when the host name does not resolve, ...), a negated MQTT 5 reason
 * code (<= -128) when the server refused or broke the protocol; 3.x CONNACK
 * codes are mapped as smq_client_connack_error() does. smq_client_strerror()
 * describes both.
 *
 * Events: the helpers take the events they wait for and leave the others
 * queued in the core, in order, for smq_client_next_event() on
 * smq_clientio_client(). PINGRESP events are consumed here. Views in an
 * event stay valid until the next call on the same handle.
 *
 * TLS: with a client ctx from net/tls.h set (smq_clientio_set_tls()), each
 * connection runs TLS through the transform before CONNECT goes out; the
 * host name is the one verified and sent as SNI. A TLS failure ends the
 * connection with -EPROTO (or -ECONNRESET when the server hung up during
 * the handshake) and smq_clientio_tls_error() says what went wrong.
 *
 * Threads: a handle belongs to one thread at a time. SIGPIPE is never
 * raised (MSG_NOSIGNAL).
 */
#ifndef SMQ_CLIENTIO_H
#define SMQ_CLIENTIO_H

#include <stdbool.h>
#include <stdint.h>

#include "core/client.h"

struct smq_clientio;
struct smq_tls_ctx;

/* Create a handle for @host:@port (copied) with a client made from @opts.
 * No connection yet. Returns NULL with errno EINVAL (see smq_client_new())
 * or ENOMEM. */
struct smq_clientio *smq_clientio_new(const char *host, uint16_t port,
				      const struct smq_client_opts *opts);

/* Close the socket at once, without DISCONNECT (the server sees a network
 * failure and publishes the will), and free everything. NULL allowed. */
void smq_clientio_free(struct smq_clientio *h);

/* Open the TCP connection, send CONNECT and wait for CONNACK, all within
 * @timeout_ms. On a handle that was connected before, the old socket is
 * closed first and the session state carries over (see
 * smq_client_reset_connection()). Returns 0, -errno (-ECONNREFUSED,
 * -ETIMEDOUT, -ENXIO...), or the negated reason code of a refusal. */
int smq_clientio_connect(struct smq_clientio *h, int timeout_ms);

/* Speak TLS from @ctx (a SMQ_TLS_CLIENT ctx, referenced until replaced or
 * the handle is freed) on the next connections; NULL: plain TCP again. */
void smq_clientio_set_tls(struct smq_clientio *h, struct smq_tls_ctx *ctx);

/* Bind the next connections' sockets to local @address (a name or an IP
 * address, resolved at connect time; NULL: any). A name that does not
 * resolve fails the connect with -ENXIO, an address not ours with
 * -EADDRNOTAVAIL. Returns 0 or -ENOMEM. */
int smq_clientio_set_bind(struct smq_clientio *h, const char *address);

/* Connect the next connections to the Unix socket at @path instead of
 * host:port (NULL: TCP again). TLS still works, verifying the host name.
 * Returns 0, -ENAMETOOLONG (longer than sun_path) or -ENOMEM. */
int smq_clientio_set_unix(struct smq_clientio *h, const char *path);

/* Why the last name lookup failed (gai_strerror(): "Name or service not
 * known"), when a connect returned -ENXIO; NULL otherwise. */
const char *smq_clientio_resolve_error(const struct smq_clientio *h);

/* Why TLS failed on the last connection, in words ("certificate verify
 * failed: unknown issuer (wrong CA?)"), or NULL if it did not. */
const char *smq_clientio_tls_error(const struct smq_clientio *h);

/* Session Present of the last accepted CONNACK. */
bool smq_clientio_session_present(const struct smq_clientio *h);

/* The core, for actions and events the helpers do not cover. */
struct smq_client *smq_clientio_client(struct smq_clientio *h);

/* The socket, or -1 when not connected. */
int smq_clientio_fd(const struct smq_clientio *h);

/* One loop step: wait up to @timeout_ms (less if the keepalive is due) for
 * the socket or, if @extra_fd >= 0, for @extra_fd to become readable; then
 * write what is queued, read and feed what arrived, and run the keepalive.
 * Returns 1 if @extra_fd is readable, 0 otherwise, or the error that ended
 * the connection (the socket is then closed, and the same error is
 * returned until the next smq_clientio_connect()). */
int smq_clientio_wait(struct smq_clientio *h, int extra_fd, int timeout_ms);

/* smq_clientio_wait() without an extra descriptor: 0 or an error. */
int smq_clientio_run(struct smq_clientio *h, int timeout_ms);

/* Run until everything queued is written: 0, -ETIMEDOUT or an error. */
int smq_clientio_flush(struct smq_clientio *h, int timeout_ms);

/* Publish and wait until the message is complete for its QoS: written to
 * the socket (QoS 0), PUBACK (1) or PUBCOMP (2). Waits for room in the
 * window if it is full. Returns 0; the server's refusal as a negated
 * reason code (5.0); -ETIMEDOUT; any error of smq_client_publish() other
 * than -EAGAIN; or the error that ended the connection (a QoS 1/2 message
 * then stays in the session and is re-sent by the next connect if the
 * server kept the session). */
int smq_clientio_publish(struct smq_clientio *h, const char *topic, struct smq_str payload,
			 uint8_t qos, bool retain, const struct smq_props *props, int timeout_ms);

/* Subscribe and wait for SUBACK; copies its @n codes into @codes (may be
 * NULL). Returns 0 even when the server refused some filters: check the
 * codes (>= 0x80 is a failure). Errors as smq_client_subscribe(), or
 * -ETIMEDOUT, or the error that ended the connection. */
int smq_clientio_subscribe(struct smq_clientio *h, const struct smq_sub_entry *entries,
			   size_t n, const struct smq_props *props, uint8_t *codes,
			   int timeout_ms);

/* Unsubscribe and wait for UNSUBACK. Errors as smq_clientio_subscribe(). */
int smq_clientio_unsubscribe(struct smq_clientio *h, const struct smq_str *filters, size_t n,
			     const struct smq_props *props, int timeout_ms);

/* Wait for the next incoming message. Returns 0 with *ev filled (views
 * valid until the next call on @h), -ETIMEDOUT, or the error that ended the
 * connection. */
int smq_clientio_next_message(struct smq_clientio *h, struct smq_client_event *ev,
			      int timeout_ms);

/* Send DISCONNECT (5.0: with @reason), write it out and close the socket.
 * Returns 0, -ENOTCONN, or an error writing. The handle may connect again. */
int smq_clientio_disconnect(struct smq_clientio *h, uint8_t reason, int timeout_ms);

/* smq_clientio_disconnect() with 5.0 DISCONNECT properties (@props may be
 * NULL; ignored before 5.0). */
int smq_clientio_disconnect_props(struct smq_clientio *h, uint8_t reason,
				  const struct smq_props *props, int timeout_ms);

/* Close the socket without DISCONNECT, as a network failure would; the
 * session state stays for the next smq_clientio_connect(). */
void smq_clientio_close(struct smq_clientio *h);

/* Milliseconds of CLOCK_MONOTONIC: the clock this driver gives the core. */
uint64_t smq_clientio_now_ms(void);

#endif
