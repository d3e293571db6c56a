/* fuzz_tls.c - libFuzzer target: a TLS server transform (net/tls.h) fed a
 * hostile byte stream.
 *
 * Input: the first byte picks how the rest is cut into feed() calls (1 +
 * the byte, 1..256 bytes each, so record and handshake-message boundaries
 * land anywhere); after each feed the transform is read until it returns 0,
 * and its output is taken in two pieces, as a short send would. Once a
 * feed or read fails, the error must be sticky and described, and the
 * transform must refuse more plaintext.
 *
 * The server's certificate is made at start-up: a throwaway P-256 key and
 * a self-signed certificate generated in memory with wolfCrypt (written to
 * a temporary directory only because smq_tls_ctx_new() takes file names,
 * and removed at once). No key is stored anywhere.
 *
 * What aborts (besides the sanitizers): an error without a description, an
 * error that is not sticky, a write accepted after an error, out_iov()
 * disagreeing with out_pending().
 *
 * Run it: make fuzz  (all targets), or only this one:
 *	clang -std=c11 -D_GNU_SOURCE -O1 -g -I. -fsanitize=fuzzer,address,undefined \
 *		-o build-fuzz/fuzz_tls tests/fuzz/fuzz_tls.c net/tls.c -lwolfssl
 *	./build-fuzz/fuzz_tls tests/fuzz/corpus/fuzz_tls
 */
#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/asn_public.h>
#include <wolfssl/wolfcrypt/ecc.h>
#include <wolfssl/wolfcrypt/random.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/tls.h"
#include "tests/fuzz/fuzz_input.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct smq_tls_ctx *ctx;

static void die(const char *what)
{
	fprintf(stderr, "fuzz_tls: %s\n", what);
	abort();
}

/* Write @der as PEM of @type to @path. */
static void write_pem(const char *path, const uint8_t *der, int len, int type)
{
	uint8_t pem[4096];
	int n = wc_DerToPem(der, (word32)len, pem, sizeof(pem), type);
	FILE *f = fopen(path, "w");

	if (n <= 0 || !f || fwrite(pem, 1, (size_t)n, f) != (size_t)n || fclose(f))
		die("cannot write the throwaway certificate");
}

/* A fresh P-256 key and a self-signed certificate for it, as files. */
static void make_identity(const char *cert_path, const char *key_path)
{
	uint8_t der[4096];
	Cert cert;
	ecc_key key;
	WC_RNG rng;
	int n;

	if (wc_InitRng(&rng) || wc_ecc_init(&key) || wc_ecc_make_key(&rng, 32, &key))
		die("cannot make a key");
	n = wc_EccKeyToDer(&key, der, sizeof(der));
	if (n <= 0)
		die("cannot encode the key");
	write_pem(key_path, der, n, ECC_PRIVATEKEY_TYPE);
	wc_InitCert(&cert);
	strcpy(cert.subject.commonName, "fuzz.invalid");
	cert.sigType = CTC_SHA256wECDSA;
	cert.daysValid = 2;
	if (wc_MakeCert(&cert, der, sizeof(der), NULL, &key, &rng) < 0)
		die("cannot make the certificate");
	n = wc_SignCert(cert.bodySz, cert.sigType, der, sizeof(der), NULL, &key, &rng);
	if (n <= 0)
		die("cannot sign the certificate");
	write_pem(cert_path, der, n, CERT_TYPE);
	wc_ecc_free(&key);
	wc_FreeRng(&rng);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[] = "/tmp/fuzz_tls_XXXXXX", cert[64], key[64], err[256];
	struct smq_tls_opts o = { 0 };

	(void)argc;
	(void)argv;
	if (!mkdtemp(dir))
		die("mkdtemp");
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	make_identity(cert, key);
	o.certfile = cert;
	o.keyfile = key;
	ctx = smq_tls_ctx_new(SMQ_TLS_SERVER, &o, err, sizeof(err));
	unlink(cert);
	unlink(key);
	rmdir(dir);
	if (!ctx)
		die(err);
	return 0;
}

/* Take what the transform has for the peer, in two sends. */
static void drain_out(struct smq_xform *x)
{
	struct iovec iov[4];
	size_t total = 0;
	int i, n = smq_xform_out_iov(x, iov, 4);

	for (i = 0; i < n; i++)
		total += iov[i].iov_len;
	if (total != smq_xform_out_pending(x))
		die("out_iov() and out_pending() disagree");
	if (total > 1) {
		smq_xform_out_done(x, total / 2);
		total -= total / 2;
	}
	smq_xform_out_done(x, total);
}

static void check_failed(struct smq_tls *t, int err)
{
	struct smq_xform *x = smq_tls_xform(t);
	struct iovec iov = { "x", 1 };
	uint8_t b[16];

	if (err == -ENOBUFS)
		return;	/* not fatal, by contract */
	if (!smq_tls_error(t))
		die("an error without a description");
	if (smq_xform_read(x, b, sizeof(b)) != err || smq_xform_feed(x, b, 1) != err)
		die("an error that is not sticky");
	if (smq_xform_write(x, &iov, 1) != err)
		die("a write accepted after an error");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct input in = { data, size };
	struct smq_tls *t = smq_tls_new(ctx, NULL);
	struct smq_xform *x;
	size_t step = (size_t)take(&in) + 1, n;
	const uint8_t *p;
	uint8_t plain[4096];
	ssize_t r = 0;
	int ret = 0;

	if (!t)
		return 0;
	x = smq_tls_xform(t);
	while (!ret && r >= 0 && (n = take_bytes(&in, step, &p))) {
		ret = smq_xform_feed(x, p, n);
		while (!ret && (r = smq_xform_read(x, plain, sizeof(plain))) > 0)
			;
		drain_out(x);
	}
	if (ret)
		check_failed(t, ret);
	else if (r < 0)
		check_failed(t, (int)r);
	smq_tls_free(t);
	return 0;
}
