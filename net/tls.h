/* tls.h - TLS as a sans-I/O byte-stream transform (struct smq_xform) over
 * wolfSSL, for the broker's listeners and the client library.
 *
 * Two objects:
 *  - struct smq_tls_ctx: certificates, keys, CAs, versions and ciphers of
 *    one listener (or one client configuration). Immutable once made, shared
 *    by every shard thread, reference counted: a reload makes a new one and
 *    drops its reference to the old, which lives on until the last
 *    connection made from it is freed.
 *  - struct smq_tls: one connection, made from a ctx. Its smq_xform face
 *    (smq_tls_xform()) is what the transport drives; ciphertext comes in
 *    through feed() and goes out through out_iov()/out_done(), never through
 *    a socket call. Used by one thread at a time; may move between threads
 *    between calls (see net/xform.h).
 *
 * Errors of the transform: -EPROTO for anything TLS refused (bad record,
 * failed verification, alert from the peer; smq_tls_error() says which in
 * words for the log), -ECONNRESET once the peer sent close_notify, -ENOMEM,
 * -ENOBUFS when feed() is given more while too much input is unread.
 *
 * The option names and meanings are mosquitto's (listener options, and the
 * mosquitto_pub/sub flags for clients).
 */
#ifndef SMQ_TLS_H
#define SMQ_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include "net/xform.h"

/* Plaintext write() stops taking bytes while this much ciphertext waits
 * to be sent (it returns a short count; the caller keeps the rest). */
#define SMQ_TLS_OUT_MAX (256u * 1024)
/* feed() refuses (-ENOBUFS) while this much input waits to be read. */
#define SMQ_TLS_IN_MAX (1024u * 1024)
/* Room smq_tls_peer_cn() needs at most (X.520 ub-common-name 64, + NUL). */
#define SMQ_TLS_CN_MAX 65

enum smq_tls_role {
	SMQ_TLS_SERVER,
	SMQ_TLS_CLIENT,
};

/* All strings are read during smq_tls_ctx_new() only (not kept, except
 * server_name, which is copied). NULL or false = not set. */
struct smq_tls_opts {
	const char *certfile;		/* PEM chain: ours (server: required) */
	const char *keyfile;		/* PEM private key for certfile */
	const char *cafile;		/* PEM CAs to verify the peer with */
	const char *capath;		/* directory of PEM CAs */
	bool require_certificate;	/* server: the client must present a valid cert */
	const char *tls_version;	/* the lowest version: "tlsv1.3" or "tlsv1.2"
					 * (as mosquitto); NULL: 1.2. 1.3 is preferred */
	bool tls12_only;		/* speak TLS 1.2 and nothing newer (like
					 * openssl -tls1_2; for tests of 1.2 peers) */
	const char *ciphers;		/* TLS 1.2 cipher list (OpenSSL names) */
	const char *ciphers_tls13;	/* TLS 1.3 suites, e.g. "TLS_AES_128_GCM_SHA256".
					 * Either, when given, is used as given; a server
					 * without them prefers ChaCha20-Poly1305 unless AES
					 * is in hardware (smq_tls_aes_accelerated()) */
	/* clients only */
	bool insecure;			/* no host name check (the chain is still verified) */
	bool use_os_certs;		/* trust the system CAs (/etc/ssl/certs) too */
	const char *server_name;	/* SNI and host name to verify; smq_tls_new() may
					 * override it per connection */
};

struct smq_tls_ctx;
struct smq_tls;

/* Make a ctx for @role from @o. Returns NULL with errno (EINVAL: a bad
 * option or file, ENOMEM) and a message in @err naming the option, the file
 * and what is wrong ("certfile /x.pem: cannot read: No such file or
 * directory", "keyfile /k.pem does not match certfile /c.pem", "unknown
 * tls_version 'tlsv9'..."). The caller holds the one reference. */
struct smq_tls_ctx *smq_tls_ctx_new(enum smq_tls_role role, const struct smq_tls_opts *o,
				    char *err, size_t errlen);

/* Take or drop a reference; any thread. The last unref frees. NULL allowed
 * for unref. */
void smq_tls_ctx_ref(struct smq_tls_ctx *ctx);
void smq_tls_ctx_unref(struct smq_tls_ctx *ctx);

/* A connection from @ctx (which it references until freed). A client
 * verifies and sends as SNI @server_name, or the ctx's if NULL (no SNI for
 * an IP address); its ClientHello is queued at once (out_pending() > 0).
 * Returns NULL with errno ENOMEM. */
struct smq_tls *smq_tls_new(struct smq_tls_ctx *ctx, const char *server_name);

/* Free the connection (same as smq_xform_free() on its face). NULL allowed. */
void smq_tls_free(struct smq_tls *t);

/* The transform face of @t, and back (NULL if @x is not a TLS transform). */
struct smq_xform *smq_tls_xform(struct smq_tls *t);
struct smq_tls *smq_tls_from_xform(struct smq_xform *x);

/* The handshake completed: application data flows. */
bool smq_tls_handshake_done(const struct smq_tls *t);

/* The handshake is under way and has not failed: the caller's handshake
 * timer applies. */
bool smq_tls_handshaking(const struct smq_tls *t);

/* Why the connection failed, in words for the log ("plaintext MQTT on a
 * TLS port", "certificate verify failed: ..."), or NULL if it has not. */
const char *smq_tls_error(const struct smq_tls *t);

/* Copy the common name of the peer's verified certificate into @buf
 * (SMQ_TLS_CN_MAX is always enough). 0, -ENOENT (no certificate or no CN),
 * -ENAMETOOLONG (@len too small). */
int smq_tls_peer_cn(const struct smq_tls *t, char *buf, size_t len);

/* Negotiated protocol ("TLSv1.3") and cipher suite names, or "none" before
 * the handshake is done. Static strings. */
const char *smq_tls_version(const struct smq_tls *t);
const char *smq_tls_cipher(const struct smq_tls *t);

/* The key exchange group of the handshake ("X25519", "SECP256R1", ...),
 * or "none" before it is done. Both roles prefer X25519, then P-256. */
const char *smq_tls_group(const struct smq_tls *t);

/* Queue close_notify for the peer (send out_iov() then close). 0 or
 * -errno. */
int smq_tls_shutdown(struct smq_tls *t);

/* Whether records can be handed to kernel TLS (kTLS) after the handshake.
 * False with this wolfSSL build: see tls.c for exactly why. The broker
 * logs "userspace TLS" per listener when it is false. */
bool smq_tls_ktls_available(void);

/* Whether this wolfSSL encrypts AES with CPU instructions (AES-NI). When
 * it does not (Debian 12's build), a server without ciphers /
 * ciphers_tls1.3 options prefers ChaCha20-Poly1305, about twice as fast in
 * software; otherwise AES-GCM. Options set by the user are kept as given. */
bool smq_tls_aes_accelerated(void);

/* Free what wolfSSL keeps per thread (its ECC point cache). Call at the end
 * of every thread that made or used TLS objects. */
void smq_tls_thread_exit(void);

#endif
