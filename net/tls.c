/* tls.c - TLS over wolfSSL as a sans-I/O transform (see tls.h, net/xform.h).
 *
 * wolfSSL never sees a socket: the ctx installs I/O callbacks that read
 * ciphertext from the connection's input queue (filled by feed()) and
 * append ciphertext to its output queue (drained by out_iov()/out_done()).
 * The send callback always accepts, so wolfSSL never reports WANT_WRITE and
 * never holds half a record; back-pressure is applied one level up, in
 * write(), which stops encrypting while SMQ_TLS_OUT_MAX bytes wait.
 *
 *   feed(p,n) --> in: [off .. len) --recv_cb--> wolfSSL --read()--> plaintext
 *   write(iov) --> wolfSSL --send_cb--> out: [off .. len) --out_iov()--> socket
 *
 * Buffer lifecycle: a queue is freed as soon as it empties, so an idle
 * connection holds no queue memory, only the WOLFSSL object itself
 * (measured in tests/unit/test_tls.c). Data is compacted to the front of a
 * queue before it grows, so a queue never exceeds twice what waits in it.
 *
 * Invariant: once t->err is set (a negative errno), every operation returns
 * it; a fatal alert wolfSSL queued for the peer stays in the output queue.
 *
 * The server refuses anything whose first byte is not a TLS handshake
 * record (0x16) before wolfSSL sees it, to name the usual mistake: a
 * plaintext MQTT client (CONNECT is 0x10) on a TLS port.
 *
 * Sessions: the server keeps no session cache and sends no tickets: every
 * shard would share wolfSSL's one global, locked cache, and MQTT
 * connections are long-lived, so resumption buys little.
 *
 * Handshake cost (server, P-256 certificate, this build's C math): about
 * 1.1 ms of CPU when the client's key share is P-256 (the ECDH with a new
 * peer point is 660 us of it: FP_ECC caches only fixed points such as the
 * generator, which keeps key generation and the ECDSA signature near
 * 100 us), about 0.5 ms when it is X25519 (70 us per X25519 operation).
 * The key share is the client's choice, so both roles list X25519 first:
 * our client sends an X25519 share (as OpenSSL clients do) and the server
 * takes X25519 when a client sent shares for both. A client that sent only
 * P-256 is still served without a HelloRetryRequest: the extra round trip
 * would cost a real network more than the ECDH. Per connection, the
 * certificate chain and key are parsed once per ctx (wolfSSL_new() takes
 * about 20 us); the key/certificate check in load_identity() runs once per
 * ctx too. Measured in perf/RESULTS.md (TLS, 2026-12-03 handshake cost).
 *
 * Left to others: the socket and its timers (a stalled handshake is the
 * caller's, see smq_tls_handshaking()), what a peer certificate's CN means
 * (use_identity_as_username is the broker's).
 */
#include "net/tls.h"

#include "net/bytequeue.h"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>
#include <wolfssl/openssl/evp.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/error-crypt.h>

#include <arpa/inet.h>
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 16384		/* plaintext per wolfSSL_write(): one full record */
#define ERR_LEN 128

/* The default suites, strongest first; ChaCha20-Poly1305 moves to the front
 * when AES has no hardware help (see cipher_defaults()). wolfSSL's own
 * default list is not used: this build's includes NULL, RC4 and 3DES
 * suites (a client asking for ECDHE-ECDSA-NULL-SHA got a plaintext
 * session). */
#define TLS13_AES "TLS13-AES256-GCM-SHA384:TLS13-AES128-GCM-SHA256"
#define TLS13_CHACHA "TLS13-CHACHA20-POLY1305-SHA256"
#define TLS12_AES "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:" \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
#define TLS12_CHACHA "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS12_TAIL "DHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256"

struct smq_tls_ctx {
	atomic_uint refs;		/* any thread; the last unref frees */
	enum smq_tls_role role;		/* read-only after smq_tls_ctx_new() */
	bool verify_host;		/* client: check the host name */
	char *server_name;		/* client: default SNI / host name, or NULL */
	WOLFSSL_CTX *wctx;		/* read-only after smq_tls_ctx_new() */
};

struct smq_tls {			/* one connection; its owner thread only */
	struct smq_xform xf;		/* the generic face (ops) */
	struct smq_tls_ctx *ctx;	/* referenced */
	WOLFSSL *ssl;
	struct smq_bq in;		/* ciphertext fed, not yet taken by wolfSSL */
	struct smq_bq out;		/* ciphertext made, not yet sent */
	int err;			/* 0, or the -errno every call returns now */
	bool done;			/* handshake complete */
	bool seen_input;		/* feed() had bytes before */
	char why[ERR_LEN];		/* set with err */
};

/* ---- wolfSSL I/O callbacks --------------------------------------------- */

static int recv_cb(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
	struct smq_tls *t = arg;
	size_t n = smq_bq_used(&t->in);

	(void)ssl;
	if (!n)
		return WOLFSSL_CBIO_ERR_WANT_READ;
	if (n > (size_t)sz)
		n = (size_t)sz;
	memcpy(buf, t->in.p + t->in.off, n);
	smq_bq_pop(&t->in, n);
	return (int)n;
}

static int send_cb(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
	struct smq_tls *t = arg;

	(void)ssl;
	if (smq_bq_push(&t->out, buf, (size_t)sz))
		return WOLFSSL_CBIO_ERR_GENERAL;
	return sz;
}

/* ---- errors ------------------------------------------------------------ */

static int fail(struct smq_tls *t, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct smq_tls *t, int err, const char *fmt, ...)
{
	va_list ap;

	if (t->err)
		return t->err;
	va_start(ap, fmt);
	vsnprintf(t->why, sizeof(t->why), fmt, ap);
	va_end(ap);
	t->err = err;
	return err;
}

/* RFC 8446 6 and RFC 5246 7.2: wolfSSL's own table lacks the TLS 1.3 ones
 * (certificate_required is what a TLS 1.3 server sends a client without
 * a certificate). */
static const struct {
	int code;
	const char *name;
} alerts[] = {
	{ 0, "close notify" },		{ 10, "unexpected message" },
	{ 20, "bad record MAC" },	{ 22, "record overflow" },
	{ 40, "handshake failure" },	{ 42, "bad certificate" },
	{ 43, "unsupported certificate" }, { 44, "certificate revoked" },
	{ 45, "certificate expired" },	{ 46, "certificate unknown" },
	{ 47, "illegal parameter" },	{ 48, "unknown CA" },
	{ 49, "access denied" },	{ 50, "decode error" },
	{ 51, "decrypt error" },	{ 70, "protocol version" },
	{ 71, "insufficient security" }, { 80, "internal error" },
	{ 86, "inappropriate fallback" }, { 90, "user canceled" },
	{ 109, "missing extension" },	{ 110, "unsupported extension" },
	{ 112, "unrecognized name" },	{ 116, "certificate required" },
	{ 120, "no application protocol" },
};

static const char *alert_name(int code)
{
	size_t i;

	for (i = 0; i < sizeof(alerts) / sizeof(alerts[0]); i++)
		if (alerts[i].code == code)
			return alerts[i].name;
	return "unknown alert";
}

/* Word the wolfSSL error @e of @t the way a log reader needs it. */
static int fail_wolf(struct smq_tls *t, int e)
{
	WOLFSSL_ALERT_HISTORY h;
	char buf[WOLFSSL_MAX_ERROR_SZ];

	switch (e) {
	case VERSION_ERROR:
		return fail(t, -EPROTO, "unsupported protocol version");
	case ASN_NO_SIGNER_E:
		return fail(t, -EPROTO, "certificate verify failed: unknown issuer (wrong CA?)");
	case ASN_AFTER_DATE_E:
		return fail(t, -EPROTO, "certificate verify failed: certificate has expired");
	case ASN_BEFORE_DATE_E:
		return fail(t, -EPROTO, "certificate verify failed: certificate is not yet valid");
	case ASN_SIG_CONFIRM_E:
		return fail(t, -EPROTO, "certificate verify failed: bad signature");
	case DOMAIN_NAME_MISMATCH:
		return fail(t, -EPROTO, "certificate verify failed: host name mismatch");
	case NO_PEER_CERT:
		return fail(t, -EPROTO, "peer sent no certificate (one is required)");
	case MATCH_SUITE_ERROR:
		return fail(t, -EPROTO, "no cipher suite in common");
	case FATAL_ERROR:
		if (wolfSSL_get_alert_history(t->ssl, &h) == WOLFSSL_SUCCESS && h.last_rx.code >= 0)
			return fail(t, -EPROTO, "peer sent alert: %s (%d)",
				    alert_name(h.last_rx.code), h.last_rx.code);
		break;
	case MEMORY_E:
		return fail(t, -ENOMEM, "out of memory");
	}
	wolfSSL_ERR_error_string_n((unsigned long)(e < 0 ? -e : e), buf, sizeof(buf));
	return fail(t, -EPROTO, "TLS error %d: %s", e, buf);
}

/* ---- the handshake ----------------------------------------------------- */

/* Move the handshake on as far as the input allows: 0 or t->err. */
static int advance(struct smq_tls *t)
{
	int ret, e;

	if (t->err || t->done)
		return t->err;
	ret = wolfSSL_negotiate(t->ssl);
	if (ret == WOLFSSL_SUCCESS) {
		t->done = true;
		return 0;
	}
	e = wolfSSL_get_error(t->ssl, ret);
	if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE)
		return 0;
	return fail_wolf(t, e);
}

/* Name the mistake when the first bytes are plainly not TLS. A TLS peer
 * opens with a handshake record (0x16); a server may also answer with an
 * alert (0x15). */
static int check_first_byte(struct smq_tls *t, uint8_t b)
{
	bool server = t->ctx->role == SMQ_TLS_SERVER;

	if (b == 0x16 || (!server && b == 0x15))
		return 0;
	if (server && b == 0x10)
		return fail(t, -EPROTO, "plaintext MQTT on a TLS port (CONNECT without TLS)");
	if (!server && b == 0x20)
		return fail(t, -EPROTO, "the server answered in plaintext MQTT: not a TLS port");
	if (b == 'G' || b == 'P' || b == 'H')
		return fail(t, -EPROTO, "plaintext HTTP on a TLS connection");
	return fail(t, -EPROTO, "not TLS: first byte 0x%02x, a TLS handshake starts with 0x16",
		    b);
}

/* ---- the transform ----------------------------------------------------- */

static struct smq_tls *of(struct smq_xform *x)
{
	return (struct smq_tls *)x;	/* xf is the first member */
}

static int tls_feed(struct smq_xform *x, const uint8_t *p, size_t n)
{
	struct smq_tls *t = of(x);
	int ret;

	if (t->err || !n)
		return t->err;
	if (!t->seen_input) {
		t->seen_input = true;
		ret = check_first_byte(t, p[0]);
		if (ret)
			return ret;
	}
	if (smq_bq_used(&t->in) >= SMQ_TLS_IN_MAX)
		return -ENOBUFS;	/* not fatal: the caller did not read */
	if (smq_bq_push(&t->in, p, n))
		return fail(t, -ENOMEM, "out of memory");
	return advance(t);
}

static ssize_t tls_read(struct smq_xform *x, uint8_t *buf, size_t cap)
{
	struct smq_tls *t = of(x);
	int r, e;

	if (advance(t) || !t->done)
		return t->err;
	if (!cap)
		return 0;
	r = wolfSSL_read(t->ssl, buf, cap > INT_MAX ? INT_MAX : (int)cap);
	if (r > 0)
		return r;
	e = wolfSSL_get_error(t->ssl, r);
	if (e == WOLFSSL_ERROR_WANT_READ || e == WOLFSSL_ERROR_WANT_WRITE)
		return 0;
	if (e == WOLFSSL_ERROR_ZERO_RETURN)
		return fail(t, -ECONNRESET, "peer closed the TLS session (close_notify)");
	return fail_wolf(t, e);
}

/* Encrypt @n bytes at @p as one record: 0 or t->err. */
static int seal(struct smq_tls *t, const void *p, int n)
{
	int r = wolfSSL_write(t->ssl, p, n);

	if (r == n)
		return 0;
	return fail_wolf(t, wolfSSL_get_error(t->ssl, r));
}

static ssize_t tls_write(struct smq_xform *x, const struct iovec *iov, int n)
{
	struct smq_tls *t = of(x);
	uint8_t stage[CHUNK];
	size_t total = 0, at = 0, len, k;
	int i = 0, ret;

	if (advance(t) || !t->done)
		return t->err;	/* 0 while the handshake runs: nothing taken */
	while (i < n && smq_bq_used(&t->out) < SMQ_TLS_OUT_MAX) {
		if (at == iov[i].iov_len) {
			i++, at = 0;
			continue;
		}
		len = iov[i].iov_len - at;
		if (len >= CHUNK) {	/* a full record straight from the caller */
			ret = seal(t, (const uint8_t *)iov[i].iov_base + at, CHUNK);
			if (ret)
				return ret;
			at += CHUNK;
			total += CHUNK;
			continue;
		}
		/* gather small pieces, so that small packets share a record */
		for (len = 0; i < n && len < CHUNK; len += k) {
			k = iov[i].iov_len - at;
			if (k > CHUNK - len)
				k = CHUNK - len;
			memcpy(stage + len, (const uint8_t *)iov[i].iov_base + at, k);
			at += k;
			if (at == iov[i].iov_len)
				i++, at = 0;
		}
		ret = seal(t, stage, (int)len);
		if (ret)
			return ret;
		total += len;
	}
	return (ssize_t)total;
}

static int tls_out_iov(struct smq_xform *x, struct iovec *iov, int max)
{
	return smq_bq_iov(&of(x)->out, iov, max);
}

static void tls_out_done(struct smq_xform *x, size_t n)
{
	smq_bq_pop(&of(x)->out, n);
}

static size_t tls_out_pending(const struct smq_xform *x)
{
	return smq_bq_used(&((const struct smq_tls *)x)->out);
}

static void tls_free(struct smq_xform *x)
{
	struct smq_tls *t = of(x);

	wolfSSL_free(t->ssl);
	free(t->in.p);
	free(t->out.p);
	smq_tls_ctx_unref(t->ctx);
	free(t);
}

static const struct smq_xform_ops tls_ops = {
	.feed = tls_feed,
	.read = tls_read,
	.write = tls_write,
	.out_iov = tls_out_iov,
	.out_done = tls_out_done,
	.out_pending = tls_out_pending,
	.free = tls_free,
};

/* ---- connections ------------------------------------------------------- */

static bool is_ip_literal(const char *s)
{
	unsigned char a[16];

	return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

/* Client: SNI and the host name check for @name. 0 or -ENOMEM. */
static int set_peer_name(struct smq_tls *t, const char *name)
{
	if (!name || !*name)
		return 0;
	/* RFC 6066 3: "Literal IPv4 and IPv6 addresses are not permitted" */
	if (!is_ip_literal(name) &&
	    wolfSSL_UseSNI(t->ssl, WOLFSSL_SNI_HOST_NAME, name, (unsigned short)strlen(name))
		    != WOLFSSL_SUCCESS)
		return -ENOMEM;
	if (t->ctx->verify_host && wolfSSL_check_domain_name(t->ssl, name) != WOLFSSL_SUCCESS)
		return -ENOMEM;
	return 0;
}

struct smq_tls *smq_tls_new(struct smq_tls_ctx *ctx, const char *server_name)
{
	struct smq_tls *t = calloc(1, sizeof(*t));

	if (!t)
		goto out_nomem;
	t->xf.ops = &tls_ops;
	t->ssl = wolfSSL_new(ctx->wctx);
	if (!t->ssl)
		goto out_free;
	smq_tls_ctx_ref(ctx);
	t->ctx = ctx;
	wolfSSL_SetIOReadCtx(t->ssl, t);
	wolfSSL_SetIOWriteCtx(t->ssl, t);
	if (ctx->role == SMQ_TLS_CLIENT) {
		if (set_peer_name(t, server_name ? server_name : ctx->server_name))
			goto out_free_ssl;
		advance(t);	/* queues the ClientHello */
		if (t->err == -ENOMEM)
			goto out_free_ssl;
	}
	return t;
out_free_ssl:
	tls_free(&t->xf);
	goto out_nomem;
out_free:
	free(t);
out_nomem:
	errno = ENOMEM;
	return NULL;
}

void smq_tls_free(struct smq_tls *t)
{
	if (t)
		tls_free(&t->xf);
}

struct smq_xform *smq_tls_xform(struct smq_tls *t)
{
	return &t->xf;
}

struct smq_tls *smq_tls_from_xform(struct smq_xform *x)
{
	return x && x->ops == &tls_ops ? of(x) : NULL;
}

bool smq_tls_handshake_done(const struct smq_tls *t)
{
	return t->done;
}

bool smq_tls_handshaking(const struct smq_tls *t)
{
	return !t->done && !t->err;
}

const char *smq_tls_error(const struct smq_tls *t)
{
	return t->err ? t->why : NULL;
}

int smq_tls_peer_cn(const struct smq_tls *t, char *buf, size_t len)
{
	WOLFSSL_X509 *x;
	int n;

	if (!t->done || len < 2)
		return len < 2 ? -ENAMETOOLONG : -ENOENT;
	x = wolfSSL_get_peer_certificate(t->ssl);
	if (!x)
		return -ENOENT;
	n = wolfSSL_X509_NAME_get_text_by_NID(wolfSSL_X509_get_subject_name(x), NID_commonName,
					      buf, len > INT_MAX ? INT_MAX : (int)len);
	wolfSSL_X509_free(x);
	if (n <= 0)
		return -ENOENT;
	/* a CN that filled @buf may have been cut: refuse rather than guess */
	return (size_t)n + 1 >= len ? -ENAMETOOLONG : 0;
}

const char *smq_tls_version(const struct smq_tls *t)
{
	return t->done ? wolfSSL_get_version(t->ssl) : "none";
}

const char *smq_tls_cipher(const struct smq_tls *t)
{
	const char *s = t->done ? wolfSSL_get_cipher_name(t->ssl) : NULL;

	return s ? s : "none";
}

const char *smq_tls_group(const struct smq_tls *t)
{
	const char *s = t->done ? wolfSSL_get_curve_name(t->ssl) : NULL;

	return s ? s : "none";
}

int smq_tls_shutdown(struct smq_tls *t)
{
	if (t->err)
		return t->err;
	if (!t->done)
		return -ENOTCONN;
	wolfSSL_shutdown(t->ssl);	/* queues close_notify; the answer is not awaited */
	return 0;
}

/* Kernel TLS needs, after the handshake, the traffic secrets (or key, IV,
 * salt and record sequence number of each direction) and, for TLS 1.3,
 * their successors after every KeyUpdate, plus a way to hand the records
 * the kernel will not decrypt (alerts, NewSessionTicket, KeyUpdate) back to
 * the TLS library. This wolfSSL (Debian 12, 5.5.4) is built without
 * WOLFSSL_KTLS and without HAVE_SECRET_CALLBACK (no
 * wolfSSL_set_tls13_secret_cb()), so a TLS 1.3 key schedule cannot be
 * followed; wolfSSL_get_keys() gives only the TLS 1.2 master secret, and the
 * ATOMIC_USER getters (wolfSSL_GetClientWriteKey(), ...Sequence Number())
 * give the current keys but no way to feed wolfSSL the control records the
 * kernel returns. Records are therefore encrypted in user space. */
bool smq_tls_ktls_available(void)
{
	return false;
}

/* ---- contexts ---------------------------------------------------------- */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_ret;

static void init_wolfssl(void)
{
	init_ret = wolfSSL_Init();
}

/* Fill @err and return -EINVAL. */
static int bad(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* A readable file (or with @dir, directory) at @path, said precisely. */
static int readable(const char *what, const char *path, bool dir, char *err, size_t errlen)
{
	FILE *f;
	DIR *d;

	if (dir) {
		d = opendir(path);
		if (!d)
			return bad(err, errlen, "%s %s: cannot read: %s", what, path, strerror(errno));
		closedir(d);
		return 0;
	}
	f = fopen(path, "r");
	if (!f)
		return bad(err, errlen, "%s %s: cannot read: %s", what, path, strerror(errno));
	fclose(f);
	return 0;
}

static WOLFSSL_METHOD *method_for(enum smq_tls_role role, const char *v, char *err,
				  size_t errlen)
{
	bool srv = role == SMQ_TLS_SERVER;

	if (!v)
		return srv ? wolfSSLv23_server_method() : wolfSSLv23_client_method();
	if (!strcmp(v, "tlsv1.3"))
		return srv ? wolfTLSv1_3_server_method() : wolfTLSv1_3_client_method();
	/* "tlsv1.2" is the lowest version accepted, as in mosquitto: 1.3 still
	 * wins when both sides have it (the minimum is set in ctx_new). */
	if (!strcmp(v, "tlsv1.2"))
		return srv ? wolfSSLv23_server_method() : wolfSSLv23_client_method();
	if (!strcmp(v, "tlsv1.1") || !strcmp(v, "tlsv1"))
		bad(err, errlen, "tls_version '%s' is not supported (it is insecure): "
			"use tlsv1.2 or tlsv1.3", v);
	else
		bad(err, errlen, "unknown tls_version '%s' (tlsv1.2 or tlsv1.3)", v);
	return NULL;
}

/* Does the private key of @w sign what the public key of its certificate
 * verifies? wolfSSL_CTX_check_private_key() of this wolfSSL only compares
 * the key types for ECC, so a wrong EC key would pass it; this proves the
 * pair. 1 yes, 0 no, -1 cannot tell (a key type EVP signing lacks). */
static int key_signs_for_cert(WOLFSSL_CTX *w)
{
	static const unsigned char msg[] = "shardmq key check";
	unsigned char sig[1024];
	size_t siglen = sizeof(sig);
	WOLFSSL_EVP_PKEY *priv = wolfSSL_CTX_get0_privatekey(w);
	WOLFSSL_X509 *x = wolfSSL_CTX_get0_certificate(w);
	WOLFSSL_EVP_PKEY *pub = x ? wolfSSL_X509_get_pubkey(x) : NULL;
	WOLFSSL_EVP_MD_CTX *md = wolfSSL_EVP_MD_CTX_new();
	int ret = -1;

	if (!priv || !pub || !md)
		goto out;
	if (wolfSSL_EVP_DigestSignInit(md, NULL, wolfSSL_EVP_sha256(), NULL, priv) != 1 ||
	    wolfSSL_EVP_DigestSignUpdate(md, msg, sizeof(msg)) != 1 ||
	    wolfSSL_EVP_DigestSignFinal(md, sig, &siglen) != 1)
		goto out;
	wolfSSL_EVP_MD_CTX_free(md);
	md = wolfSSL_EVP_MD_CTX_new();
	if (!md || wolfSSL_EVP_DigestVerifyInit(md, NULL, wolfSSL_EVP_sha256(), NULL, pub) != 1)
		goto out;
	ret = wolfSSL_EVP_DigestVerifyUpdate(md, msg, sizeof(msg)) == 1 &&
	      wolfSSL_EVP_DigestVerifyFinal(md, sig, siglen) == 1;
out:
	wolfSSL_EVP_MD_CTX_free(md);
	wolfSSL_EVP_PKEY_free(pub);
	return ret;
}

/* Our certificate chain and key. */
static int load_identity(WOLFSSL_CTX *w, const struct smq_tls_opts *o, char *err, size_t errlen)
{
	int ret;

	if (!o->certfile && !o->keyfile)
		return 0;
	if (!o->certfile || !o->keyfile)
		return bad(err, errlen, "%s is set but %s is not: both are needed",
			   o->certfile ? "certfile" : "keyfile",
			   o->certfile ? "keyfile" : "certfile");
	ret = readable("certfile", o->certfile, false, err, errlen);
	if (!ret)
		ret = readable("keyfile", o->keyfile, false, err, errlen);
	if (ret)
		return ret;
	if (wolfSSL_CTX_use_certificate_chain_file(w, o->certfile) != WOLFSSL_SUCCESS)
		return bad(err, errlen, "certfile %s: no valid PEM certificate in it", o->certfile);
	if (wolfSSL_CTX_use_PrivateKey_file(w, o->keyfile, WOLFSSL_FILETYPE_PEM)
	    != WOLFSSL_SUCCESS)
		return bad(err, errlen, "keyfile %s: no usable PEM private key in it "
			   "(encrypted keys are not supported)", o->keyfile);
	if (wolfSSL_CTX_check_private_key(w) != WOLFSSL_SUCCESS || !key_signs_for_cert(w))
		return bad(err, errlen, "keyfile %s does not match certfile %s", o->keyfile,
			   o->certfile);
	return 0;
}

/* The CAs to verify the peer with. */
static int load_cas(WOLFSSL_CTX *w, const struct smq_tls_opts *o, bool client, char *err,
		    size_t errlen)
{
	int ret;

	if (o->cafile) {
		ret = readable("cafile", o->cafile, false, err, errlen);
		if (ret)
			return ret;
		if (wolfSSL_CTX_load_verify_locations(w, o->cafile, NULL) != WOLFSSL_SUCCESS)
			return bad(err, errlen, "cafile %s: no valid PEM certificate in it",
				   o->cafile);
	}
	if (o->capath) {
		ret = readable("capath", o->capath, true, err, errlen);
		if (ret)
			return ret;
		/* a directory may hold other files (hash links, CRLs): skip those */
		if (wolfSSL_CTX_load_verify_locations_ex(w, NULL, o->capath,
							 WOLFSSL_LOAD_FLAG_IGNORE_ERR)
		    != WOLFSSL_SUCCESS)
			return bad(err, errlen, "capath %s: no valid PEM certificate in it",
				   o->capath);
	}
	if (client && o->use_os_certs && wolfSSL_CTX_load_system_CA_certs(w) != WOLFSSL_SUCCESS)
		return bad(err, errlen, "use_os_certs: no CA certificate found in the system store");
	return 0;
}

bool smq_tls_aes_accelerated(void)
{
#if defined(WOLFSSL_AESNI) && (defined(__x86_64__) || defined(__i386__))
	return __builtin_cpu_supports("aes");	/* wolfSSL checks the same at run time */
#elif defined(WOLFSSL_ARMASM)
	return true;
#else
	return false;	/* C AES (this Debian build), whatever the CPU has */
#endif
}

/* The default TLS 1.3 and TLS 1.2 lists. Without AES hardware,
 * ChaCha20-Poly1305 comes first: measured on this build, it seals 1 KiB
 * records about twice as fast as AES-GCM (perf/RESULTS.md, TLS). OpenSSL
 * makes the same choice (SSL_OP_PRIORITIZE_CHACHA). */
static void cipher_defaults(const char **c13, const char **c12)
{
	bool aes = smq_tls_aes_accelerated();

	*c13 = aes ? TLS13_AES ":" TLS13_CHACHA : TLS13_CHACHA ":" TLS13_AES;
	*c12 = aes ? TLS12_AES ":" TLS12_CHACHA ":" TLS12_TAIL
		   : TLS12_CHACHA ":" TLS12_AES ":" TLS12_TAIL;
}

/* One wolfSSL list for both: wolfSSL keeps TLS 1.2 and 1.3 suites in one,
 * and a wolfSSL server picks in its own order. A list the user gives is
 * taken as given (mosquitto's ciphers / ciphers_tls1.3); the other half,
 * and both halves for a server without either option, are ours. A client
 * without options offers wolfSSL's defaults: the server chooses. */
static int set_ciphers(WOLFSSL_CTX *w, bool client, const struct smq_tls_opts *o, char *err,
		       size_t errlen)
{
	const char *c13, *c12;
	char *list;
	size_t len;
	int ret = 0;

	if (client && !o->ciphers && !o->ciphers_tls13)
		return 0;
	cipher_defaults(&c13, &c12);
	if (o->ciphers_tls13)
		c13 = o->ciphers_tls13;
	if (o->ciphers)
		c12 = o->ciphers;
	/* each list alone must name something we know */
	if (o->ciphers && wolfSSL_CTX_set_cipher_list(w, o->ciphers) != WOLFSSL_SUCCESS)
		return bad(err, errlen, "ciphers '%s': no cipher suite in it is known", o->ciphers);
	if (o->ciphers_tls13 && wolfSSL_CTX_set_cipher_list(w, o->ciphers_tls13) != WOLFSSL_SUCCESS)
		return bad(err, errlen, "ciphers_tls13 '%s': no cipher suite in it is known",
			   o->ciphers_tls13);
	len = strlen(c13) + strlen(c12) + 2;
	list = malloc(len);
	if (!list)
		return -ENOMEM;
	snprintf(list, len, "%s:%s", c13, c12);
	if (wolfSSL_CTX_set_cipher_list(w, list) != WOLFSSL_SUCCESS)
		ret = bad(err, errlen, "ciphers: cannot set '%s'", list);
	free(list);
	return ret;
}

/* Key exchange groups, in preference order, for both roles. A client
 * sends one key share, for the first; a server takes the best of the
 * shares a client sent (a HelloRetryRequest only when none is here).
 * X25519 first: with this build's C math a P-256 ECDH with a new peer
 * key costs about 660 us against X25519's 70 us (the P-256 key generation
 * and signature are cheaper, about 100 us, because FP_ECC caches the base
 * point); the ECDH was two thirds of the server's CPU per handshake.
 * wolfSSL sets groups for TLS 1.3 contexts only: a TLS 1.2-only one keeps
 * wolfSSL's curves. */
static int set_groups(WOLFSSL_CTX *w, bool tls12_only, char *err, size_t errlen)
{
	int groups[] = {
		WOLFSSL_ECC_X25519, WOLFSSL_ECC_SECP256R1, WOLFSSL_ECC_SECP384R1,
		WOLFSSL_ECC_SECP521R1,
#ifdef HAVE_CURVE448
		WOLFSSL_ECC_X448,
#endif
#ifdef HAVE_FFDHE_2048
		WOLFSSL_FFDHE_2048,
#endif
#ifdef HAVE_FFDHE_3072
		WOLFSSL_FFDHE_3072,
#endif
	};

	if (tls12_only)
		return 0;
	if (wolfSSL_CTX_set_groups(w, groups, (int)(sizeof(groups) / sizeof(groups[0])))
	    != WOLFSSL_SUCCESS)
		return bad(err, errlen, "cannot set the key exchange groups");
	return 0;
}

static int check_opts(enum smq_tls_role role, const struct smq_tls_opts *o, char *err,
		      size_t errlen)
{
	if (role == SMQ_TLS_SERVER) {
		if (!o->certfile || !o->keyfile)
			return bad(err, errlen, "a TLS listener needs certfile and keyfile");
		if (o->require_certificate && !o->cafile && !o->capath)
			return bad(err, errlen, "require_certificate needs cafile or capath");
		return 0;
	}
	if (!o->cafile && !o->capath && !o->use_os_certs)
		return bad(err, errlen, "a TLS client needs cafile, capath or use_os_certs "
			   "to verify the server");
	return 0;
}

static int configure(struct smq_tls_ctx *c, const struct smq_tls_opts *o, char *err,
		     size_t errlen)
{
	WOLFSSL_CTX *w = c->wctx;
	bool client = c->role == SMQ_TLS_CLIENT;
	int mode, ret;

	if (!o->tls_version && wolfSSL_CTX_SetMinVersion(w, WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS)
		return bad(err, errlen, "cannot set the minimum TLS version to 1.2");
	ret = load_identity(w, o, err, errlen);
	if (!ret)
		ret = load_cas(w, o, client, err, errlen);
	if (!ret)
		ret = set_ciphers(w, client, o, err, errlen);
	if (!ret)
		ret = set_groups(w, o->tls12_only, err, errlen);
	if (ret)
		return ret;
	mode = WOLFSSL_VERIFY_NONE;
	if (client)
		mode = WOLFSSL_VERIFY_PEER;
	else if (o->require_certificate)
		mode = WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	wolfSSL_CTX_set_verify(w, mode, NULL);
	wolfSSL_CTX_set_session_cache_mode(w, WOLFSSL_SESS_CACHE_OFF);
	if (!client) {
		wolfSSL_CTX_no_ticket_TLSv13(w);
		wolfSSL_CTX_NoTicketTLSv12(w);
	}
	wolfSSL_CTX_SetIORecv(w, recv_cb);
	wolfSSL_CTX_SetIOSend(w, send_cb);
	c->verify_host = client && !o->insecure;
	if (client && o->server_name) {
		c->server_name = strdup(o->server_name);
		if (!c->server_name)
			return -ENOMEM;
	}
	return 0;
}

struct smq_tls_ctx *smq_tls_ctx_new(enum smq_tls_role role, const struct smq_tls_opts *o,
				    char *err, size_t errlen)
{
	struct smq_tls_ctx *c;
	WOLFSSL_METHOD *m;
	int ret;

	if (errlen)
		err[0] = '\0';
	pthread_once(&init_once, init_wolfssl);
	if (init_ret != WOLFSSL_SUCCESS) {
		bad(err, errlen, "wolfSSL_Init failed (%d)", init_ret);
		errno = ENOMEM;
		return NULL;
	}
	ret = check_opts(role, o, err, errlen);
	if (ret) {
		errno = -ret;
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		goto out_nomem;
	atomic_init(&c->refs, 1);
	c->role = role;
	m = o->tls12_only ? (role == SMQ_TLS_SERVER ? wolfTLSv1_2_server_method()
						      : wolfTLSv1_2_client_method())
			  : method_for(role, o->tls_version, err, errlen);
	if (!m) {
		free(c);
		if (errlen && err[0]) {	/* a bad tls_version, said */
			errno = EINVAL;
			return NULL;
		}
		goto out_nomem;
	}
	c->wctx = wolfSSL_CTX_new(m);	/* takes @m, even when it fails */
	if (!c->wctx)
		goto out_free;
	/* Never below TLS 1.2, whatever the build would allow. */
	if (wolfSSL_CTX_SetMinVersion(c->wctx, WOLFSSL_TLSV1_2) != WOLFSSL_SUCCESS) {
		bad(err, errlen, "cannot set the minimum TLS version to 1.2");
		goto out_free;
	}
	ret = configure(c, o, err, errlen);
	if (ret) {
		if (ret == -ENOMEM)
			bad(err, errlen, "out of memory");
		smq_tls_ctx_unref(c);
		errno = -ret;
		return NULL;
	}
	return c;
out_free:
	free(c);
out_nomem:
	bad(err, errlen, "out of memory");
	errno = ENOMEM;
	return NULL;
}

void smq_tls_ctx_ref(struct smq_tls_ctx *ctx)
{
	atomic_fetch_add_explicit(&ctx->refs, 1, memory_order_relaxed);
}

void smq_tls_ctx_unref(struct smq_tls_ctx *ctx)
{
	if (!ctx || atomic_fetch_sub_explicit(&ctx->refs, 1, memory_order_acq_rel) != 1)
		return;
	wolfSSL_CTX_free(ctx->wctx);
	free(ctx->server_name);
	free(ctx);
}

void smq_tls_thread_exit(void)
{
#ifdef FP_ECC
	/* This wolfSSL keeps a per-thread cache of ECC points (FP_ECC, about
	 * 800 KB once a thread did ECC); it is freed only on request. */
	wc_ecc_fp_free();
#endif
}
