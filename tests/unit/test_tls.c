/* test_tls.c - the TLS transform: a client and a server smq_tls driven
 * against each other in memory, with certificates made at start by the
 * openssl command (no key is committed).
 *
 * The PRE_ALL hook makes, in a mkdtemp directory named by $SMQ_TLS_TEST_DIR
 * (inherited by every test process): a CA, a server certificate for
 * "localhost", a client certificate (CN alice), an expired client
 * certificate, a certificate for another host name, and a second CA with a
 * client certificate (CN mallory) from it. POST_ALL removes the directory.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "net/tls.h"

static char dir[64];

/* ---- certificates ------------------------------------------------------ */

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

#define NEWKEY "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"

/* A leaf @name.pem/@name.key with subject CN @cn, signed by CA @ca, valid
 * for @days (negative: expired), with subjectAltName @san (or none). */
static int leaf(const char *name, const char *cn, const char *ca, int days, const char *san)
{
	int ret;

	ret = sh("cd %s && openssl req -new " NEWKEY " -keyout %s.key -out %s.csr -subj '/CN=%s' "
		 "2>/dev/null", dir, name, name, cn);
	if (ret)
		return ret;
	sh("cd %s && printf 'subjectAltName=%s\\n' > %s.ext", dir, san ? san : "DNS:none.invalid",
	   name);
	return sh("cd %s && openssl x509 -req -in %s.csr -CA %s.pem -CAkey %s.key "
		  "-CAcreateserial -out %s.pem -days %d -extfile %s.ext 2>/dev/null",
		  dir, name, ca, ca, name, days, name);
}

static int make_certs(void)
{
	int ret = 0;

	ret |= sh("cd %s && openssl req -x509 " NEWKEY " -keyout ca.key -out ca.pem -days 2 "
		  "-subj '/CN=smq test CA' 2>/dev/null", dir);
	ret |= sh("cd %s && openssl req -x509 " NEWKEY " -keyout other.key -out other.pem -days 2 "
		  "-subj '/CN=smq other CA' 2>/dev/null", dir);
	ret |= leaf("server", "localhost", "ca", 2, "DNS:localhost,IP:127.0.0.1");
	ret |= leaf("client", "alice", "ca", 2, NULL);
	ret |= leaf("expired", "old", "ca", -1, NULL);
	ret |= leaf("wrongname", "otherhost", "ca", 2, "DNS:otherhost");
	ret |= leaf("mallory", "mallory", "other", 2, NULL);
	ret |= sh("cd %s && printf 'not a certificate\\n' > junk.pem", dir);
	return ret;
}

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	(void)set;
	strcpy(dir, "/tmp/smq_tls_XXXXXX");
	if (!mkdtemp(dir) || make_certs()) {
		fprintf(stderr, "test_tls: cannot make certificates with openssl in %s\n", dir);
		return;
	}
	setenv("SMQ_TLS_TEST_DIR", dir, 1);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
	(void)stats;
	if (dir[0])
		sh("rm -rf %s", dir);
}

/* The path of @name in the certificate directory (a static buffer each). */
static const char *F(const char *name)
{
	static char bufs[8][160];
	static int next;
	char *b = bufs[next++ % 8];

	snprintf(b, sizeof(bufs[0]), "%s/%s", getenv("SMQ_TLS_TEST_DIR"), name);
	return b;
}

static void setup(void)
{
	cr_assert(getenv("SMQ_TLS_TEST_DIR"), "no certificates (is openssl installed?)");
}

TestSuite(net_tls, .init = setup);

/* ---- a client and a server in memory ----------------------------------- */

struct end {
	struct smq_tls *t;
	uint8_t *got;		/* plaintext read */
	size_t ngot;
	int err;		/* the first error feed() or read() returned */
};

#define GOT_MAX (4u << 20)

static struct smq_tls_ctx *ctx_or_die(enum smq_tls_role role, const struct smq_tls_opts *o)
{
	char err[256];
	struct smq_tls_ctx *c = smq_tls_ctx_new(role, o, err, sizeof(err));

	cr_assert(c, "ctx: %s", err);
	return c;
}

static struct smq_tls_opts server_opts(void)
{
	return (struct smq_tls_opts){ .certfile = F("server.pem"), .keyfile = F("server.key"),
				      .cafile = F("ca.pem") };
}

static struct smq_tls_opts client_opts(void)
{
	return (struct smq_tls_opts){ .cafile = F("ca.pem"), .server_name = "localhost" };
}

/* One connection of each, from fresh contexts (dropped at once: the
 * connections keep them alive). */
static void pair(struct end *c, struct end *s, const struct smq_tls_opts *co,
		 const struct smq_tls_opts *so)
{
	struct smq_tls_ctx *cc = ctx_or_die(SMQ_TLS_CLIENT, co);
	struct smq_tls_ctx *sc = ctx_or_die(SMQ_TLS_SERVER, so);

	*c = (struct end){ .t = smq_tls_new(cc, NULL), .got = malloc(GOT_MAX) };
	*s = (struct end){ .t = smq_tls_new(sc, NULL), .got = malloc(GOT_MAX) };
	cr_assert(c->t && s->t && c->got && s->got);
	smq_tls_ctx_unref(cc);
	smq_tls_ctx_unref(sc);
}

static void unpair(struct end *c, struct end *s)
{
	smq_tls_free(c->t);
	smq_tls_free(s->t);
	free(c->got);
	free(s->got);
}

static void drain(struct end *e)
{
	struct smq_xform *x = smq_tls_xform(e->t);
	ssize_t r;

	while (!e->err && (r = smq_xform_read(x, e->got + e->ngot, GOT_MAX - e->ngot)) != 0) {
		if (r < 0)
			e->err = (int)r;
		else
			e->ngot += (size_t)r;
		cr_assert_lt(e->ngot, GOT_MAX);
	}
}

/* Move at most @max bytes (0: all) of what @from has queued into @to. */
static bool move(struct end *from, struct end *to, size_t max)
{
	struct smq_xform *x = smq_tls_xform(from->t);
	struct iovec iov[4];
	int n = smq_xform_out_iov(x, iov, 4), ret;
	size_t len;

	if (!n)
		return false;
	len = max && iov[0].iov_len > max ? max : iov[0].iov_len;
	ret = smq_xform_feed(smq_tls_xform(to->t), iov[0].iov_base, len);
	smq_xform_out_done(x, len);
	if (ret && !to->err)
		to->err = ret;
	return true;
}

/* Shuttle bytes both ways (@step at a time, 0 = all) until neither side
 * has anything to say; read what arrives. */
static void pump(struct end *c, struct end *s, size_t step)
{
	bool moved;

	do {
		moved = move(c, s, step);
		moved |= move(s, c, step);
		drain(c);
		drain(s);
	} while (moved);
}

/* Write all of @p through @e, pumping whenever the transform pushes back. */
static void send_all(struct end *e, struct end *peer, const uint8_t *p, size_t n, size_t step)
{
	struct smq_xform *x = smq_tls_xform(e->t);
	struct iovec iov;
	ssize_t r;

	while (n) {
		iov = (struct iovec){ (void *)p, n };
		r = smq_xform_write(x, &iov, 1);
		cr_assert_geq(r, 0, "write: %zd", r);
		cr_assert_leq(smq_xform_out_pending(x), SMQ_TLS_OUT_MAX + 16384 + 64,
			      "the output queue stays bounded");
		p += r;
		n -= (size_t)r;
		pump(e, peer, step);	/* symmetric: either may be the client */
	}
}

static bool handshake(struct end *c, struct end *s, size_t step)
{
	pump(c, s, step);
	return smq_tls_handshake_done(c->t) && smq_tls_handshake_done(s->t);
}

static void assert_error(const struct end *e, const char *needle)
{
	const char *why = smq_tls_error(e->t);

	cr_assert(why, "expected an error containing '%s', got none", needle);
	cr_assert(strstr(why, needle), "expected '%s' in the error, got '%s'", needle, why);
}

/* ---- handshakes -------------------------------------------------------- */

Test(net_tls, handshake_negotiates_tls13_by_default)
{
	struct smq_tls_opts co = client_opts(), so = server_opts();
	struct end c, s;

	pair(&c, &s, &co, &so);
	cr_assert(smq_tls_handshaking(c.t) && smq_tls_handshaking(s.t));
	cr_assert_gt(smq_xform_out_pending(smq_tls_xform(c.t)), 0, "ClientHello queued by new");
	cr_assert(handshake(&c, &s, 0), "c: %s s: %s", smq_tls_error(c.t), smq_tls_error(s.t));
	cr_assert_not(smq_tls_handshaking(c.t));
	cr_assert_str_eq(smq_tls_version(c.t), "TLSv1.3");
	cr_assert_str_eq(smq_tls_version(s.t), "TLSv1.3");
	cr_assert_str_eq(smq_tls_cipher(c.t), smq_tls_cipher(s.t));
	cr_assert_str_neq(smq_tls_cipher(c.t), "none");
	cr_assert_null(smq_tls_error(c.t));
	unpair(&c, &s);
}

Test(net_tls, handshake_tls12_with_a_peer_that_speaks_only_12)
{
	struct smq_tls_opts co = client_opts(), so = server_opts();
	struct end c, s;

	co.tls12_only = true;
	pair(&c, &s, &co, &so);
	cr_assert(handshake(&c, &s, 0), "c: %s s: %s", smq_tls_error(c.t), smq_tls_error(s.t));
	cr_assert_str_eq(smq_tls_version(c.t), "TLSv1.2");
	cr_assert_str_eq(smq_tls_version(s.t), "TLSv1.2");
	unpair(&c, &s);
}

/* mosquitto's tls_version is the lowest version allowed: 1.3 still wins. */
Test(net_tls, tls_version_12_is_a_minimum_not_a_maximum)
{
	struct smq_tls_opts co = client_opts(), so = server_opts();
	struct end c, s;

	so.tls_version = "tlsv1.2";
	co.tls_version = "tlsv1.2";
	pair(&c, &s, &co, &so);
	cr_assert(handshake(&c, &s, 0), "c: %s s: %s", smq_tls_error(c.t), smq_tls_error(s.t));
	cr_assert_str_eq(smq_tls_version(s.t), "TLSv1.3");
	unpair(&c, &s);
}

Test(net_tls, tls13_listener_refuses_a_12_only_peer_on_both_sides)
{
	struct smq_tls_opts co = client_opts(), so = server_opts();
	struct end c, s;

	so.tls_version = "tlsv1.3";
	co.tls12_only = true;
	pair(&c, &s, &co, &so);
	cr_assert_not(handshake(&c, &s, 0));
	cr_assert_eq(s.err, -EPROTO);
	cr_assert_eq(c.err, -EPROTO);
	assert_error(&s, "version");
	assert_error(&c, "version");
	unpair(&c, &s);
}

Test(net_tls, handshake_fed_one_byte_at_a_time)
{
	struct smq_tls_opts co = client_opts(), so = server_opts();
	struct end c, s;

	pair(&c, &s, &co, &so);
	cr_assert(handshake(&c, &s, 1), "c: %s s: %s", smq_tls_error(c.t), smq_tls_error(s.t));
	send_all(&c, &s, (const uint8_t *)"one byte at a time", 18, 1);
	cr_assert_eq(s.ngot, 18);
	cr_assert_arr_eq(s.got, "one byte at a time", 18);
	unpair(&c, &s);
}

Test(net_tls, ciphers_options_choose_the_suite)
{
	struct smq_tls_opts co = client_opts(), so = server_opts();
	struct end c, s;

	so.ciphers_tls13 = "TLS13-CHACHA20-POLY1305-SHA256";
	pair(&c, &s, &co, &so);
	cr_assert(handshake(&c, &s, 0), "c: %s s: %s", smq_tls_error(c.t), smq_tls_error(s.t));
	cr_assert(strstr(smq_tls_cipher(s.t), "CHACHA20"), "got %s", smq_tls_cipher(s.t));
	unpair(&c, &s);

	so = server_opts();
	so.tls12_only = true;
	so.ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256";
	pair(&c, &s, &co, &so);
	cr_assert(handshake(&c, &s, 0), "c: %s s: %s", smq_tls_error(c.t), smq_tls_error(s.t));
	cr_assert_str_eq(smq_tls_cipher(s.t), "ECDHE-ECDSA-AES128-GCM-SHA256");
	unpair(&c, &s);
}

/* Without AES hardware (Debian's wolfSSL has no AES-NI code) a server
 * without cipher options picks ChaCha20-Poly1305 over the AES-GCM the
 * client lists first; with it, AES-GCM. */
Test(net_tls, default_suite_follows_the_aes_hardware)
{
	struct smq_tls_opts co = client_opts(), so = server_opts();
	const char *want = smq_tls_aes_accelerated() ? "AES" : "CHACHA20";
	struct end c, s;

	pair(&c, &s, &co, &so);
	cr_assert(handshake(&c, &s, 0), "c: %s s: %s", smq_tls_error(c.t), smq_tls_error(s.t));
	cr_assert(strstr(smq_tls_cipher(s.t), want), "want %s, got %s", want, smq_tls_cipher(s.t));
	cr_assert(strstr(smq_tls_cipher(s.t), "TLS13"), "got %s", smq_tls_cipher(s.t));
	unpair(&c, &s);

	/* the TLS 1.2 default list follows the same rule */
	co.tls12_only = true;
	pair(&c, &s, &co, &so);
	cr_assert(handshake(&c, &s, 0), "c: %s s: %s", smq_tls_error(c.t), smq_tls_error(s.t));
	cr_assert(strstr(smq_tls_cipher(s.t), want), "want %s, got %s", want, smq_tls_cipher(s.t));
	cr_assert(strstr(smq_tls_cipher(s.t), "ECDHE-ECDSA"), "got %s", smq_tls_cipher(s.t));
	unpair(&c, &s);
}

/* mosquitto's semantics: a ciphers_tls1.3 the user gives is used as given,
 * in its order, whatever the hardware. */
Test(net_tls, ciphers_tls13_given_keeps_its_order)
{
	struct smq_tls_opts co = client_opts(), so = server_opts();
	struct end c, s;

	so.ciphers_tls13 = "TLS13-AES128-GCM-SHA256:TLS13-CHACHA20-POLY1305-SHA256";
	pair(&c, &s, &co, &so);
	cr_assert(handshake(&c, &s, 0), "c: %s s: %s", smq_tls_error(c.t), smq_tls_error(s.t));
	cr_assert_str_eq(smq_tls_cipher(s.t), "TLS13-AES128-GCM-SHA256");
	unpair(&c, &s);
}

/* wolfSSL's own default list has NULL (no encryption), RC4 and 3DES
 * suites; a default listener must refuse a client that offers only those. */
Test(net_tls, default_listener_refuses_null_rc4_and_3des_suites)
{
	static const char *const weak[] = { "ECDHE-ECDSA-NULL-SHA", "ECDHE-ECDSA-RC4-SHA",
					    "ECDHE-ECDSA-DES-CBC3-SHA" };
	struct smq_tls_opts co = client_opts(), so = server_opts();
	struct end c, s;
	size_t i;

	co.tls12_only = true;
	for (i = 0; i < sizeof(weak) / sizeof(weak[0]); i++) {
		co.ciphers = weak[i];
		pair(&c, &s, &co, &so);
		cr_assert_not(handshake(&c, &s, 0), "%s was accepted", weak[i]);
		cr_assert_eq(s.err, -EPROTO, "%s: server err %d", weak[i], s.err);
		assert_error(&s, "no cipher suite in common");
		unpair(&c, &s);
	}
}

/* ---- key exchange groups ----------------------------------------------- */

Test(net_tls, key_exchange_is_x25519_between_our_ends)
{
	struct smq_tls_opts co = client_opts(), so = server_opts();
	struct end c, s;

	pair(&c, &s, &co, &so);
	cr_assert_str_eq(smq_tls_group(s.t), "none", "before the handshake");
	cr_assert(handshake(&c, &s, 0), "c: %s s: %s", smq_tls_error(c.t), smq_tls_error(s.t));
	cr_assert_str_eq(smq_tls_group(c.t), "X25519");
	cr_assert_str_eq(smq_tls_group(s.t), "X25519");
	unpair(&c, &s);
}

/* A bare wolfSSL client with the key shares @shares (0-terminated),
 * driven against our server in memory. */
struct raw {
	WOLFSSL_CTX *ctx;
	WOLFSSL *ssl;
	uint8_t in[16384];
	size_t nin;
	uint8_t out[16384];
	size_t nout;
};

static int raw_recv(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
	struct raw *r = arg;
	size_t n = r->nin < (size_t)sz ? r->nin : (size_t)sz;

	(void)ssl;
	if (!n)
		return WOLFSSL_CBIO_ERR_WANT_READ;
	memcpy(buf, r->in, n);
	memmove(r->in, r->in + n, r->nin - n);
	r->nin -= n;
	return (int)n;
}

static int raw_send(WOLFSSL *ssl, char *buf, int sz, void *arg)
{
	struct raw *r = arg;

	(void)ssl;
	cr_assert_leq(r->nout + (size_t)sz, sizeof(r->out));
	memcpy(r->out + r->nout, buf, (size_t)sz);
	r->nout += (size_t)sz;
	return sz;
}

/* Handshake @r against a server from @so; return the number of flights
 * the client sent (2 without a HelloRetryRequest, 3 with one) and the
 * server's group in @group. */
static int raw_handshake(struct raw *r, const word16 *shares, const struct smq_tls_opts *so,
			 char *group, size_t glen)
{
	struct smq_tls_ctx *sc = ctx_or_die(SMQ_TLS_SERVER, so);
	struct smq_tls *s = smq_tls_new(sc, NULL);
	struct smq_xform *x = smq_tls_xform(s);
	struct iovec iov;
	int flights = 0, i, ret;

	r->ctx = wolfSSL_CTX_new(wolfTLSv1_3_client_method());
	cr_assert(r->ctx && s);
	cr_assert_eq(wolfSSL_CTX_load_verify_locations(r->ctx, F("ca.pem"), NULL),
		     WOLFSSL_SUCCESS);
	wolfSSL_CTX_SetIORecv(r->ctx, raw_recv);
	wolfSSL_CTX_SetIOSend(r->ctx, raw_send);
	r->ssl = wolfSSL_new(r->ctx);
	cr_assert(r->ssl);
	wolfSSL_SetIOReadCtx(r->ssl, r);
	wolfSSL_SetIOWriteCtx(r->ssl, r);
	cr_assert_eq(wolfSSL_NoKeyShares(r->ssl), WOLFSSL_SUCCESS);
	for (; *shares; shares++)
		cr_assert_eq(wolfSSL_UseKeyShare(r->ssl, *shares), WOLFSSL_SUCCESS);
	for (i = 0; i < 10 && !smq_tls_handshake_done(s); i++) {
		ret = wolfSSL_connect(r->ssl);
		cr_assert(ret == WOLFSSL_SUCCESS ||
			  wolfSSL_get_error(r->ssl, ret) == WOLFSSL_ERROR_WANT_READ,
			  "client error %d", wolfSSL_get_error(r->ssl, ret));
		if (r->nout) {
			flights++;
			cr_assert_eq(smq_xform_feed(x, r->out, r->nout), 0, "%s", smq_tls_error(s));
			r->nout = 0;
		}
		while (smq_xform_out_iov(x, &iov, 1)) {
			cr_assert_leq(r->nin + iov.iov_len, sizeof(r->in));
			memcpy(r->in + r->nin, iov.iov_base, iov.iov_len);
			r->nin += iov.iov_len;
			smq_xform_out_done(x, iov.iov_len);
		}
	}
	cr_assert(smq_tls_handshake_done(s), "server: %s", smq_tls_error(s));
	snprintf(group, glen, "%s", smq_tls_group(s));
	smq_tls_free(s);
	smq_tls_ctx_unref(sc);
	wolfSSL_free(r->ssl);
	wolfSSL_CTX_free(r->ctx);
	return flights;
}

/* A client that sends only a P-256 key share (wolfSSL's default, many
 * embedded clients) is served in one round trip, without a retry. */
Test(net_tls, a_p256_key_share_is_taken_without_a_retry)
{
	static const word16 p256[] = { WOLFSSL_ECC_SECP256R1, 0 };
	struct smq_tls_opts so = server_opts();
	static struct raw r;
	char group[32];

	cr_assert_eq(raw_handshake(&r, p256, &so, group, sizeof(group)), 2);
	cr_assert_str_eq(group, "SECP256R1");
}

/* Offered both, the server takes the cheaper X25519 whatever the order. */
Test(net_tls, of_two_key_shares_the_server_takes_x25519)
{
	static const word16 both[] = { WOLFSSL_ECC_SECP256R1, WOLFSSL_ECC_X25519, 0 };
	struct smq_tls_opts so = server_opts();
	static struct raw r;
	char group[32];

	cr_assert_eq(raw_handshake(&r, both, &so, group, sizeof(group)), 2);
	cr_assert_str_eq(group, "X25519");
}

/* ---- data -------------------------------------------------------------- */

Test(net_tls, data_flows_both_ways)
{
	struct smq_tls_opts co = client_opts(), so = server_opts();
	struct end c, s;

	pair(&c, &s, &co, &so);
	cr_assert(handshake(&c, &s, 0));
	send_all(&c, &s, (const uint8_t *)"\x10\x0c ping", 7, 0);
	send_all(&s, &c, (const uint8_t *)"pong", 4, 0);
	cr_assert_eq(s.ngot, 7);
	cr_assert_arr_eq(s.got, "\x10\x0c ping", 7);
	cr_assert_eq(c.ngot, 4);
	cr_assert_arr_eq(c.got, "pong", 4);
	cr_assert_eq(smq_xform_out_pending(smq_tls_xform(c.t)), 0);
	unpair(&c, &s);
}

Test(net_tls, write_before_the_handshake_takes_nothing)
{
	struct smq_tls_opts co = client_opts(), so = server_opts();
	struct iovec iov = { "early", 5 };
	struct end c, s;

	pair(&c, &s, &co, &so);
	cr_assert_eq(smq_xform_write(smq_tls_xform(c.t), &iov, 1), 0);
	cr_assert(handshake(&c, &s, 0));
	cr_assert_eq(smq_xform_write(smq_tls_xform(c.t), &iov, 1), 5);
	pump(&c, &s, 0);
	cr_assert_eq(s.ngot, 5);
	unpair(&c, &s);
}

Test(net_tls, large_write_is_bounded_split_into_records_and_arrives_whole)
{
	struct smq_tls_opts co = client_opts(), so = server_opts();
	size_t n = 3u << 20, i;
	uint8_t *big = malloc(n);
	struct iovec iov;
	ssize_t r;
	struct end c, s;

	for (i = 0; i < n; i++)
		big[i] = (uint8_t)(i * 7 + i / 251);
	pair(&c, &s, &co, &so);
	cr_assert(handshake(&c, &s, 0));
	iov = (struct iovec){ big, n };
	r = smq_xform_write(smq_tls_xform(c.t), &iov, 1);
	cr_assert(r > 0 && (size_t)r < n, "a 3 MiB write is cut short (took %zd)", r);
	cr_assert_geq(smq_xform_out_pending(smq_tls_xform(c.t)), SMQ_TLS_OUT_MAX);
	/* one record per 16 KiB: a header and a tag each */
	cr_assert_gt(smq_xform_out_pending(smq_tls_xform(c.t)), (size_t)r + (size_t)r / 16384 * 5);
	pump(&c, &s, 0);
	send_all(&c, &s, big + r, n - (size_t)r, 0);
	cr_assert_eq(s.ngot, n);
	cr_assert_arr_eq(s.got, big, n);
	free(big);
	unpair(&c, &s);
}

Test(net_tls, small_iovecs_share_one_record)
{
	struct smq_tls_opts co = client_opts(), so = server_opts();
	struct iovec iov[100];
	uint8_t data[100][10];
	struct end c, s;
	int i;

	for (i = 0; i < 100; i++) {
		memset(data[i], 'a' + i % 26, 10);
		iov[i] = (struct iovec){ data[i], 10 };
	}
	pair(&c, &s, &co, &so);
	cr_assert(handshake(&c, &s, 0));
	cr_assert_eq(smq_xform_write(smq_tls_xform(c.t), iov, 100), 1000);
	cr_assert_lt(smq_xform_out_pending(smq_tls_xform(c.t)), 1100, "one record, not 100");
	pump(&c, &s, 0);
	cr_assert_eq(s.ngot, 1000);
	cr_assert_arr_eq(s.got, data, 1000);
	unpair(&c, &s);
}

Test(net_tls, close_notify_ends_the_peer_read)
{
	struct smq_tls_opts co = client_opts(), so = server_opts();
	struct end c, s;

	pair(&c, &s, &co, &so);
	cr_assert(handshake(&c, &s, 0));
	cr_assert_eq(smq_tls_shutdown(c.t), 0);
	pump(&c, &s, 0);
	cr_assert_eq(s.err, -ECONNRESET);
	assert_error(&s, "close_notify");
	unpair(&c, &s);
}

Test(net_tls, idle_connection_holds_no_queue_memory)
{
	struct smq_tls_opts co = client_opts(), so = server_opts();
	struct smq_tls_ctx *cc = ctx_or_die(SMQ_TLS_CLIENT, &co);
	struct smq_tls_ctx *sc = ctx_or_die(SMQ_TLS_SERVER, &so);
	struct end c[64], s[64];
	struct mallinfo2 before, after, servers;
	int i;

	/* first fill wolfSSL's per-thread fixed-point ECC cache (FP_ECC: about
	 * 4 MB per thread, bounded, not per connection) */
	for (i = 0; i < 40; i++) {
		c[0] = (struct end){ .t = smq_tls_new(cc, NULL), .got = malloc(64) };
		s[0] = (struct end){ .t = smq_tls_new(sc, NULL), .got = malloc(64) };
		cr_assert(handshake(&c[0], &s[0], 0));
		unpair(&c[0], &s[0]);
	}
	before = mallinfo2();
	for (i = 0; i < 64; i++) {
		c[i] = (struct end){ .t = smq_tls_new(cc, NULL), .got = malloc(64) };
		s[i] = (struct end){ .t = smq_tls_new(sc, NULL), .got = malloc(64) };
		cr_assert(handshake(&c[i], &s[i], 0));
		cr_assert_eq(smq_xform_out_pending(smq_tls_xform(c[i].t)), 0);
		cr_assert_eq(smq_xform_out_pending(smq_tls_xform(s[i].t)), 0);
	}
	after = mallinfo2();
	for (i = 0; i < 64; i++) {
		smq_tls_free(c[i].t);
		c[i].t = NULL;
	}
	servers = mallinfo2();
	/* informative: the figures quoted in the report (0 under ASan's allocator) */
	if (after.uordblks > servers.uordblks && servers.uordblks > before.uordblks)
		cr_log_info("idle TLS connection after the handshake: server %zu bytes, "
			    "client %zu bytes\n", (servers.uordblks - before.uordblks) / 64,
			    (after.uordblks - servers.uordblks) / 64);
	for (i = 0; i < 64; i++)
		unpair(&c[i], &s[i]);
	smq_tls_ctx_unref(cc);
	smq_tls_ctx_unref(sc);
}

Test(net_tls, a_connection_keeps_its_ctx_after_the_last_unref)
{
	struct smq_tls_opts co = client_opts(), so = server_opts();
	struct end c, s;

	pair(&c, &s, &co, &so);	/* the contexts are already unreferenced */
	cr_assert(handshake(&c, &s, 0));
	send_all(&c, &s, (const uint8_t *)"still here", 10, 0);
	cr_assert_eq(s.ngot, 10);
	unpair(&c, &s);
}

Test(net_tls, xform_face_round_trips)
{
	struct smq_tls_opts co = client_opts(), so = server_opts();
	struct end c, s;

	pair(&c, &s, &co, &so);
	cr_assert_eq(smq_tls_from_xform(smq_tls_xform(c.t)), c.t);
	unpair(&c, &s);
}

Test(net_tls, ktls_is_reported_unavailable_with_this_wolfssl)
{
	cr_assert_not(smq_tls_ktls_available());
}

/* ---- client certificates ----------------------------------------------- */

static void client_cert_case(const char *cert, const char *server_err, bool ok)
{
	struct smq_tls_opts co = client_opts(), so = server_opts();
	char cn[SMQ_TLS_CN_MAX];
	char path[32];
	struct end c, s;

	so.require_certificate = true;
	if (cert) {
		snprintf(path, sizeof(path), "%s.pem", cert);
		co.certfile = F(path);
		snprintf(path, sizeof(path), "%s.key", cert);
		co.keyfile = F(path);
	}
	pair(&c, &s, &co, &so);
	handshake(&c, &s, 0);
	/* TLS 1.3: the client may be done before the server has checked it */
	if (smq_tls_handshake_done(c.t) && !c.err) {
		smq_xform_write(smq_tls_xform(c.t), &(struct iovec){ "x", 1 }, 1);
		pump(&c, &s, 0);
	}
	if (ok) {
		cr_assert(smq_tls_handshake_done(s.t), "s: %s", smq_tls_error(s.t));
		cr_assert_eq(smq_tls_peer_cn(s.t, cn, sizeof(cn)), 0);
		cr_assert_str_eq(cn, "alice");
		cr_assert_eq(smq_tls_peer_cn(s.t, cn, 3), -ENAMETOOLONG);
	} else {
		cr_assert_not(smq_tls_handshake_done(s.t));
		cr_assert_eq(s.err, -EPROTO);
		assert_error(&s, server_err);
		cr_assert_eq(c.err, -EPROTO, "the client hears an alert");
		assert_error(&c, "peer sent alert: ");
		cr_assert_null(strstr(smq_tls_error(c.t), "unknown alert"), "%s", smq_tls_error(c.t));
	}
	unpair(&c, &s);
}

Test(net_tls, require_certificate_accepts_a_good_cert_and_yields_the_cn)
{
	client_cert_case("client", NULL, true);
}

Test(net_tls, require_certificate_refuses_a_missing_cert)
{
	client_cert_case(NULL, "no certificate", false);
}

Test(net_tls, require_certificate_refuses_an_expired_cert)
{
	client_cert_case("expired", "expired", false);
}

Test(net_tls, require_certificate_refuses_a_cert_from_another_ca)
{
	client_cert_case("mallory", "unknown issuer", false);
}

Test(net_tls, no_peer_cn_without_require_certificate)
{
	struct smq_tls_opts co = client_opts(), so = server_opts();
	char cn[SMQ_TLS_CN_MAX];
	struct end c, s;

	co.certfile = F("client.pem");
	co.keyfile = F("client.key");
	pair(&c, &s, &co, &so);
	cr_assert(handshake(&c, &s, 0));
	cr_assert_eq(smq_tls_peer_cn(s.t, cn, sizeof(cn)), -ENOENT);
	cr_assert_eq(smq_tls_peer_cn(c.t, cn, sizeof(cn)), 0, "the client sees the server's");
	cr_assert_str_eq(cn, "localhost");
	unpair(&c, &s);
}

/* ---- the client verifies the server ------------------------------------ */

Test(net_tls, client_refuses_a_server_from_another_ca)
{
	struct smq_tls_opts co = client_opts(), so = server_opts();
	struct end c, s;

	co.cafile = F("other.pem");
	pair(&c, &s, &co, &so);
	cr_assert_not(handshake(&c, &s, 0));
	assert_error(&c, "unknown issuer");
	unpair(&c, &s);
}

Test(net_tls, client_checks_the_host_name_unless_insecure)
{
	struct smq_tls_opts co = client_opts(), so = server_opts();
	struct end c, s;

	so.certfile = F("wrongname.pem");
	so.keyfile = F("wrongname.key");
	pair(&c, &s, &co, &so);
	cr_assert_not(handshake(&c, &s, 0));
	assert_error(&c, "host name mismatch");
	unpair(&c, &s);

	co.insecure = true;
	pair(&c, &s, &co, &so);
	cr_assert(handshake(&c, &s, 0), "insecure: c: %s", smq_tls_error(c.t));
	unpair(&c, &s);
}

/* ---- not TLS ----------------------------------------------------------- */

Test(net_tls, plaintext_mqtt_connect_on_a_tls_port_is_named)
{
	static const uint8_t connect[] = { 0x10, 0x0c, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04,
					   0x02, 0x00, 0x3c, 0x00, 0x00 };
	struct smq_tls_opts so = server_opts();
	struct smq_tls_ctx *sc = ctx_or_die(SMQ_TLS_SERVER, &so);
	struct smq_tls *t = smq_tls_new(sc, NULL);
	uint8_t buf[64];

	cr_assert_eq(smq_xform_feed(smq_tls_xform(t), connect, sizeof(connect)), -EPROTO);
	cr_assert_str_eq(smq_tls_error(t), "plaintext MQTT on a TLS port (CONNECT without TLS)");
	cr_assert_eq(smq_xform_read(smq_tls_xform(t), buf, sizeof(buf)), -EPROTO, "sticky");
	cr_assert_not(smq_tls_handshaking(t));
	smq_tls_free(t);
	smq_tls_ctx_unref(sc);
}

Test(net_tls, garbage_after_a_handshake_byte_fails)
{
	static const uint8_t junk[] = "\x16\x03\x01\x00\x08garbage!and more garbage";
	struct smq_tls_opts so = server_opts();
	struct smq_tls_ctx *sc = ctx_or_die(SMQ_TLS_SERVER, &so);
	struct smq_tls *t = smq_tls_new(sc, NULL);
	uint8_t buf[64];
	int ret;

	ret = smq_xform_feed(smq_tls_xform(t), junk, sizeof(junk) - 1);
	if (!ret)
		ret = (int)smq_xform_read(smq_tls_xform(t), buf, sizeof(buf));
	cr_assert_eq(ret, -EPROTO);
	cr_assert(smq_tls_error(t));
	smq_tls_free(t);

	t = smq_tls_new(sc, NULL);
	cr_assert_eq(smq_xform_feed(smq_tls_xform(t), (const uint8_t *)"\x00\x01", 2), -EPROTO);
	assert_error(&(struct end){ .t = t }, "not TLS: first byte 0x00");
	smq_tls_free(t);
	smq_tls_ctx_unref(sc);
}

Test(net_tls, client_names_a_plaintext_mqtt_server)
{
	struct smq_tls_opts co = client_opts();
	struct smq_tls_ctx *cc = ctx_or_die(SMQ_TLS_CLIENT, &co);
	struct smq_tls *t = smq_tls_new(cc, NULL);

	cr_assert_eq(smq_xform_feed(smq_tls_xform(t), (const uint8_t *)"\x20\x02\x00\x00", 4),
		     -EPROTO);
	assert_error(&(struct end){ .t = t }, "plaintext MQTT");
	smq_tls_free(t);
	smq_tls_ctx_unref(cc);
}

/* ---- bad options ------------------------------------------------------- */

/* Expect smq_tls_ctx_new(@role, @o) to fail with a message holding @needle. */
static void bad_ctx(enum smq_tls_role role, const struct smq_tls_opts *o, const char *needle)
{
	char err[256] = "";
	struct smq_tls_ctx *c = smq_tls_ctx_new(role, o, err, sizeof(err));

	cr_assert_null(c, "expected a failure with '%s'", needle);
	cr_assert_eq(errno, EINVAL);
	cr_assert(strstr(err, needle), "expected '%s' in '%s'", needle, err);
}

Test(net_tls, bad_server_options_are_named_precisely)
{
	struct smq_tls_opts o;
	char want[256];

	o = server_opts();
	o.certfile = "/nonexistent/x.pem";
	bad_ctx(SMQ_TLS_SERVER, &o, "certfile /nonexistent/x.pem: cannot read: No such file");
	o = server_opts();
	o.keyfile = F("client.key");
	snprintf(want, sizeof(want), "keyfile %s does not match certfile %s", F("client.key"),
		 F("server.pem"));
	bad_ctx(SMQ_TLS_SERVER, &o, want);
	o = server_opts();
	o.certfile = F("junk.pem");
	snprintf(want, sizeof(want), "certfile %s: no valid PEM certificate", F("junk.pem"));
	bad_ctx(SMQ_TLS_SERVER, &o, want);
	o = server_opts();
	o.keyfile = F("junk.pem");
	bad_ctx(SMQ_TLS_SERVER, &o, "no usable PEM private key");
	o = server_opts();
	o.cafile = F("junk.pem");
	snprintf(want, sizeof(want), "cafile %s: no valid PEM certificate", F("junk.pem"));
	bad_ctx(SMQ_TLS_SERVER, &o, want);
	o = server_opts();
	o.capath = F("ca.pem");
	bad_ctx(SMQ_TLS_SERVER, &o, "capath");
	o = server_opts();
	o.tls_version = "tlsv9";
	bad_ctx(SMQ_TLS_SERVER, &o, "unknown tls_version 'tlsv9'");
	o.tls_version = "tlsv1.1";
	bad_ctx(SMQ_TLS_SERVER, &o, "tls_version 'tlsv1.1' is not supported");
	o = server_opts();
	o.ciphers = "NO-SUCH-CIPHER";
	bad_ctx(SMQ_TLS_SERVER, &o, "ciphers 'NO-SUCH-CIPHER': no cipher suite in it is known");
	o = server_opts();
	o.certfile = NULL;
	bad_ctx(SMQ_TLS_SERVER, &o, "a TLS listener needs certfile and keyfile");
	o = server_opts();
	o.cafile = NULL;
	o.require_certificate = true;
	bad_ctx(SMQ_TLS_SERVER, &o, "require_certificate needs cafile or capath");
}

Test(net_tls, bad_client_options_are_named_precisely)
{
	struct smq_tls_opts o;

	o = client_opts();
	o.cafile = NULL;
	bad_ctx(SMQ_TLS_CLIENT, &o, "needs cafile, capath or use_os_certs");
	o = client_opts();
	o.certfile = F("client.pem");
	bad_ctx(SMQ_TLS_CLIENT, &o, "certfile is set but keyfile is not");
	o = client_opts();
	o.cafile = "/nonexistent/ca.pem";
	bad_ctx(SMQ_TLS_CLIENT, &o, "cafile /nonexistent/ca.pem: cannot read");
}

Test(net_tls, capath_and_os_certs_load)
{
	struct smq_tls_opts o = client_opts();
	char path[200];
	struct smq_tls_ctx *c;
	struct end cl, s;
	struct smq_tls_opts so = server_opts();

	snprintf(path, sizeof(path), "%s/capath", getenv("SMQ_TLS_TEST_DIR"));
	sh("mkdir -p %s && cp %s %s/", path, F("ca.pem"), path);
	o.cafile = NULL;
	o.capath = path;
	pair(&cl, &s, &o, &so);
	cr_assert(handshake(&cl, &s, 0), "capath: %s", smq_tls_error(cl.t));
	unpair(&cl, &s);
	if (access("/etc/ssl/certs", R_OK) == 0) {
		o = client_opts();
		o.cafile = NULL;
		o.use_os_certs = true;
		c = ctx_or_die(SMQ_TLS_CLIENT, &o);
		smq_tls_ctx_unref(c);
	}
}
