/* passwd.c - mosquitto password files: the loader, the table, the check.
 *
 * The loader reads the file once, line by line, and keeps for each user the
 * decoded salt (12 bytes), hash (64 bytes) and iteration count (0 for the
 * old "$6$" SHA-512 format). User names live back to back in one arena;
 * an open-addressing table of entry indexes (linear probing, load <= 1/2,
 * FNV-1a) finds a user in O(1), so a file of 100k users costs one probe
 * sequence per CONNECT, not a scan. Nothing is hashed at load time: a
 * 100k-user file loads in ~100 ms.
 *
 * Invariant: once smq_passwd_load() returns, nothing in a struct smq_passwd
 * changes; smq_passwd_check() only reads, so every shard thread may call it
 * on the same table without a lock.
 *
 * Timing: the expensive part of a check is the digest (PBKDF2 or SHA-512).
 * An unknown user runs the same digest against a dummy entry that has the
 * format and iteration count most entries have, and the final comparison is
 * constant-time and always done, so an unknown user and a wrong password
 * take the same time up to the hash-table probe (~100 ns against ~140 us).
 * (In a file mixing formats, users of the rarer one stay distinguishable
 * from unknown users: no choice of dummy can hide both.)
 *
 * The digests follow mosquitto's pw__digest(): "$6$" is SHA-512 over the
 * password then the salt; "$7$" is PBKDF2-HMAC-SHA512 with a 64-byte
 * output. Salts are fresh getrandom() bytes.
 *
 * Left to others: reading a new file on SIGHUP (load a new table, swap the
 * pointer, free the old one once no shard uses it), and deciding where the
 * ~140 us check runs (see the numbers in passwd.h).
 */
#include "core/passwd.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/pwdbased.h>
#include <wolfssl/wolfcrypt/sha512.h>

#include "core/log.h"

#define SALT_LEN 12
#define HASH_LEN 64
#define USER_MAX 65535		/* an MQTT user name is a u16-prefixed string */
#define WHY_LEN 256
#define B64_LEN(n) (((n) + 2) / 3 * 4)

_Static_assert(B64_LEN(SALT_LEN) == 16 && B64_LEN(HASH_LEN) == 88, "mosquitto field widths");
_Static_assert(SMQ_PASSWD_HASH_MAX >= 3 + 10 + 1 + 16 + 1 + 88 + 1, "room for a $7$ hash");

struct entry {
	size_t user_off;	/* into smq_passwd.names */
	uint32_t user_len;
	uint32_t iterations;	/* 0: "$6$" SHA-512; else "$7$" PBKDF2 rounds */
	unsigned line;		/* where it was read, for the duplicate message */
	uint8_t salt[SALT_LEN];
	uint8_t hash[HASH_LEN];
};

/* Read-only after smq_passwd_load(). */
struct smq_passwd {
	size_t count;		/* entries[0..count) are in use */
	size_t cap;		/* entries allocated */
	struct entry *entries;
	uint32_t *slots;	/* entry index + 1; 0 = empty; mask + 1 of them */
	size_t mask;
	char *names;		/* every user name, back to back, no NULs added */
	size_t names_len, names_cap;
	struct entry dummy;	/* what an unknown user is checked against */
};

/* ---- base64, standard alphabet, '=' padding (what mosquitto writes) ---- */

static const char b64_chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Write the base64 of @n bytes of @in and a NUL to @out (B64_LEN(n) + 1). */
static void b64_encode(char *out, const uint8_t *in, size_t n)
{
	size_t i;

	for (i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;

		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		*out++ = b64_chars[v >> 18];
		*out++ = b64_chars[(v >> 12) & 63];
		*out++ = i + 1 < n ? b64_chars[(v >> 6) & 63] : '=';
		*out++ = i + 2 < n ? b64_chars[v & 63] : '=';
	}
	*out = '\0';
}

/* Decode @n characters of @s into exactly @want bytes at @out. Returns 0,
 * or -EINVAL with @why saying what is wrong with the field named @what. */
static int b64_decode(const char *s, size_t n, uint8_t *out, size_t want, const char *what,
		      char *why, size_t whylen)
{
	size_t i, pad = 0, len;
	uint32_t v = 0;

	if (n >= 1 && s[n - 1] == '=')
		pad++;
	if (n >= 2 && s[n - 2] == '=')
		pad++;
	for (i = 0; i < n - pad; i++) {
		if (b64_value(s[i]) < 0) {
			smq_errbuf(why, whylen, "%s is not valid base64 (character %zu, '%c')", what,
			    i + 1, s[i] >= 0x21 && s[i] < 0x7f ? s[i] : '?');
			return -EINVAL;
		}
	}
	if (n % 4) {
		smq_errbuf(why, whylen, "%s is not valid base64 (%zu characters, not a multiple of 4)",
		    what, n);
		return -EINVAL;
	}
	len = n / 4 * 3 - pad;
	if (len != want) {
		smq_errbuf(why, whylen, "%s is %zu bytes, expected %zu", what, len, want);
		return -EINVAL;
	}
	for (i = 0; i < n; i++) {
		v = v << 6 | (uint32_t)(s[i] == '=' ? 0 : b64_value(s[i]));
		if (i % 4 == 3) {
			size_t o = i / 4 * 3;

			out[o] = (uint8_t)(v >> 16);
			if (o + 1 < want)
				out[o + 1] = (uint8_t)(v >> 8);
			if (o + 2 < want)
				out[o + 2] = (uint8_t)v;
			v = 0;
		}
	}
	return 0;
}

/* ---- digests ---- */

/* The stored form of @pass under @e's salt and format into @out. */
static int digest(const struct entry *e, const uint8_t *pass, size_t plen, uint8_t out[HASH_LEN])
{
	static const uint8_t empty[1];
	wc_Sha512 sha;
	int ret;

	if (plen > INT32_MAX)
		return -EINVAL;
	if (!pass)
		pass = empty;
	if (e->iterations)
		return wc_PBKDF2(out, pass, (int)plen, e->salt, SALT_LEN, (int)e->iterations,
				 HASH_LEN, WC_SHA512) ? -EIO : 0;
	if (wc_InitSha512(&sha))
		return -EIO;
	ret = wc_Sha512Update(&sha, pass, (word32)plen);
	if (!ret)
		ret = wc_Sha512Update(&sha, e->salt, SALT_LEN);
	if (!ret)
		ret = wc_Sha512Final(&sha, out);
	wc_Sha512Free(&sha);
	return ret ? -EIO : 0;
}

/* Every byte is looked at whatever the contents: no early exit. */
static bool equal_ct(const uint8_t *a, const uint8_t *b, size_t n)
{
	volatile uint8_t diff = 0;
	size_t i;

	for (i = 0; i < n; i++)
		diff |= a[i] ^ b[i];
	return diff == 0;
}

/* ---- lines ---- */

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == '\v' || ch == '\f';
}

static void trim(const char **s, size_t *n)
{
	while (*n && is_blank(**s)) {
		(*s)++;
		(*n)--;
	}
	while (*n && is_blank((*s)[*n - 1]))
		(*n)--;
}

/* @n bytes of @u, quoted for a message: bytes outside printable ASCII,
 * quotes and backslashes as \xHH, cut at 64 bytes with "...". */
static const char *quote(char *buf, size_t cap, const char *u, size_t n)
{
	size_t i, o = 0;

	for (i = 0; i < n && o + 8 < cap; i++) {
		unsigned char c = (unsigned char)u[i];

		if (i == 64) {
			o += (size_t)snprintf(buf + o, cap - o, "...");
			break;
		}
		if (c < 0x20 || c >= 0x7f || c == '\'' || c == '\\')
			o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
		else
			buf[o++] = (char)c;
	}
	buf[o] = '\0';
	return buf;
}

int smq_passwd_split(const char *line, size_t len, const char **user, size_t *ulen,
		     const char **secret, size_t *slen, char *why, size_t whylen)
{
	const char *colon, *u = line, *s;
	size_t un, sn, i;

	if (len && line[len - 1] == '\n')
		len--;
	for (i = 0; i < len && is_blank(line[i]); i++)
		;
	if (i == len || line[0] == '#')
		return 1;	/* mosquitto skips these: blank, or '#' in the first column */
	colon = memchr(line, ':', len);
	if (!colon) {
		smq_errbuf(why, whylen, "missing ':' between the user name and the password%s",
		    line[i] == '#' ? " (a comment needs '#' in the first column)" : "");
		return -EINVAL;
	}
	un = (size_t)(colon - line);
	trim(&u, &un);
	if (!un) {
		smq_errbuf(why, whylen, "empty user name before ':'");
		return -EINVAL;
	}
	s = colon + 1;
	sn = (size_t)(line + len - s);
	trim(&s, &sn);
	if (!sn) {
		char q[WHY_LEN];

		smq_errbuf(why, whylen, "user '%s': nothing after ':'", quote(q, sizeof(q), u, un));
		return -EINVAL;
	}
	*user = u;
	*ulen = un;
	*secret = s;
	*slen = sn;
	return 0;
}

/* Cut the next '$'-separated field of [*p, end); *p moves past its '$'. */
static bool next_field(const char **p, const char *end, const char **f, size_t *n)
{
	const char *d;

	if (*p > end)
		return false;
	d = memchr(*p, '$', (size_t)(end - *p));
	*f = *p;
	*n = (size_t)((d ? d : end) - *p);
	*p = d ? d + 1 : end + 1;
	return true;
}

static int parse_iterations(const char *f, size_t n, uint32_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (!n || n > 10)
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (f[i] < '0' || f[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(f[i] - '0');
	}
	if (v < 1 || v > INT32_MAX)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* Decode the secret "$7$ITER$SALT$HASH" or "$6$SALT$HASH" into @e. */
static int parse_hash(const char *s, size_t n, struct entry *e, char *why, size_t whylen)
{
	const char *p = s + 1, *end = s + n, *f = "";
	size_t fn = 0;
	int ret;

	if (s[0] != '$') {
		smq_errbuf(why, whylen, "password is not hashed (expected $7$ or $6$; "
				 "shardmq-passwd -U hashes a plain-text file)");
		return -EINVAL;
	}
	if (memchr(s, ':', n)) {
		smq_errbuf(why, whylen, "unexpected ':' in the password hash");
		return -EINVAL;
	}
	next_field(&p, end, &f, &fn);
	if (fn != 1 || (f[0] != '6' && f[0] != '7')) {
		smq_errbuf(why, whylen, "unknown hash type '$%.*s$' (expected $7$ or $6$)",
		    (int)(fn > 16 ? 16 : fn), f);
		return -EINVAL;
	}
	e->iterations = 0;
	if (f[0] == '7') {
		if (!next_field(&p, end, &f, &fn) || parse_iterations(f, fn, &e->iterations)) {
			smq_errbuf(why, whylen, "bad iteration count '%.*s' (expected 1..%d)",
			    (int)(fn > 16 ? 16 : fn), f, INT32_MAX);
			return -EINVAL;
		}
	}
	if (!next_field(&p, end, &f, &fn) || !fn) {
		smq_errbuf(why, whylen, "missing salt");
		return -EINVAL;
	}
	ret = b64_decode(f, fn, e->salt, SALT_LEN, "salt", why, whylen);
	if (ret)
		return ret;
	if (!next_field(&p, end, &f, &fn) || !fn) {
		smq_errbuf(why, whylen, "missing hash after the salt");
		return -EINVAL;
	}
	ret = b64_decode(f, fn, e->hash, HASH_LEN, "hash", why, whylen);
	if (ret)
		return ret;
	if (p <= end) {
		smq_errbuf(why, whylen, "unexpected '$' after the hash");
		return -EINVAL;
	}
	return 0;
}

/* ---- the table ---- */

static uint64_t hash_user(const char *u, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ (unsigned char)u[i]) * 0x100000001b3ull;
	return h ^ h >> 29;
}

static const struct entry *find(const struct smq_passwd *pw, const char *u, size_t n,
				size_t *slot)
{
	size_t i = (size_t)hash_user(u, n) & pw->mask;

	for (; pw->slots[i]; i = (i + 1) & pw->mask) {
		const struct entry *e = &pw->entries[pw->slots[i] - 1];

		if (e->user_len == n && !memcmp(pw->names + e->user_off, u, n))
			break;
	}
	if (slot)
		*slot = i;
	return pw->slots[i] ? &pw->entries[pw->slots[i] - 1] : NULL;
}

static int grow_slots(struct smq_passwd *pw)
{
	size_t nslots = (pw->mask + 1) * 2, i, j;
	uint32_t *slots = calloc(nslots, sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	for (i = 0; i <= pw->mask; i++) {
		const struct entry *e;

		if (!pw->slots[i])
			continue;
		e = &pw->entries[pw->slots[i] - 1];
		j = (size_t)hash_user(pw->names + e->user_off, e->user_len) & (nslots - 1);
		while (slots[j])
			j = (j + 1) & (nslots - 1);
		slots[j] = pw->slots[i];
	}
	free(pw->slots);
	pw->slots = slots;
	pw->mask = nslots - 1;
	return 0;
}

/* Make room for @need elements of @size bytes in *@p (capacity *@cap). */
static void *reserve(void *p, size_t *cap, size_t need, size_t size)
{
	size_t ncap = *cap ? *cap : 64;

	if (need <= *cap)
		return p;
	while (ncap < need)
		ncap *= 2;
	p = realloc(p, ncap * size);
	if (p)
		*cap = ncap;
	return p;
}

/* Add user @u with @e's hash. -EEXIST with *@dup set if @u is listed. */
static int insert(struct smq_passwd *pw, const char *u, size_t n, const struct entry *e,
		  const struct entry **dup)
{
	struct entry *ne;
	char *names;
	size_t slot;

	if (pw->count >= UINT32_MAX - 1)
		return -E2BIG;
	if ((pw->count + 1) * 2 > pw->mask + 1 && grow_slots(pw))
		return -ENOMEM;
	*dup = find(pw, u, n, &slot);
	if (*dup)
		return -EEXIST;
	ne = reserve(pw->entries, &pw->cap, pw->count + 1, sizeof(*ne));
	if (!ne)
		return -ENOMEM;
	pw->entries = ne;
	names = reserve(pw->names, &pw->names_cap, pw->names_len + n, 1);
	if (!names)
		return -ENOMEM;
	pw->names = names;
	ne = &pw->entries[pw->count];
	*ne = *e;
	ne->user_off = pw->names_len;
	ne->user_len = (uint32_t)n;
	memcpy(pw->names + pw->names_len, u, n);
	pw->names_len += n;
	pw->slots[slot] = (uint32_t)++pw->count;
	return 0;
}

/* ---- loading ---- */

static int load_line(struct smq_passwd *pw, const char *line, size_t len, unsigned lineno,
		     char *why, size_t whylen)
{
	const char *u, *s;
	size_t un, sn;
	const struct entry *dup;
	struct entry e = { .line = lineno };
	char q[WHY_LEN], w[WHY_LEN];
	int ret;

	ret = smq_passwd_split(line, len, &u, &un, &s, &sn, why, whylen);
	if (ret)
		return ret > 0 ? 0 : ret;
	if (un > USER_MAX) {
		smq_errbuf(why, whylen, "user name of %zu bytes (MQTT allows %d)", un, USER_MAX);
		return -EINVAL;
	}
	ret = parse_hash(s, sn, &e, w, sizeof(w));
	if (ret) {
		smq_errbuf(why, whylen, "user '%s': %s", quote(q, sizeof(q), u, un), w);
		return ret;
	}
	ret = insert(pw, u, un, &e, &dup);
	if (ret == -EEXIST)
		smq_errbuf(why, whylen, "user '%s' is already listed on line %u",
		    quote(q, sizeof(q), u, un), dup->line);
	else if (ret == -E2BIG)
		smq_errbuf(why, whylen, "more than %u users", UINT32_MAX - 2);
	else if (ret)
		smq_errbuf(why, whylen, "%s", strerror(-ret));
	return ret == -EEXIST ? -EINVAL : ret;
}

/* The iteration count most entries use (0 for "$6$"). A file normally has
 * one or two; the first 16 distinct values are tallied, the rest ignored. */
static uint32_t common_iterations(const struct smq_passwd *pw)
{
	uint32_t val[16];
	size_t cnt[16], n = 0, i, j, best = 0;

	for (i = 0; i < pw->count; i++) {
		for (j = 0; j < n && val[j] != pw->entries[i].iterations; j++)
			;
		if (j == n && n == 16)
			continue;
		if (j == n) {
			val[n] = pw->entries[i].iterations;
			cnt[n++] = 0;
		}
		if (++cnt[j] > cnt[best])
			best = j;
	}
	return val[best];
}

static struct smq_passwd *table_new(void)
{
	struct smq_passwd *pw = calloc(1, sizeof(*pw));

	if (!pw)
		return NULL;
	pw->mask = 63;
	pw->slots = calloc(pw->mask + 1, sizeof(*pw->slots));
	if (!pw->slots) {
		free(pw);
		return NULL;
	}
	return pw;
}

int smq_passwd_load(const char *path, struct smq_passwd **out, char *err, size_t errlen)
{
	struct smq_passwd *pw;
	char *line = NULL, why[2 * WHY_LEN];
	size_t cap = 0;
	ssize_t n;
	unsigned lineno = 0;
	int ret = 0;
	FILE *f;

	if (err && errlen)
		err[0] = '\0';
	f = fopen(path, "r");
	if (!f) {
		ret = -errno;
		smq_errbuf(err, errlen, "%s: %s", path, strerror(-ret));
		return ret;
	}
	pw = table_new();
	if (!pw) {
		ret = -ENOMEM;
		smq_errbuf(err, errlen, "%s: %s", path, strerror(ENOMEM));
		goto out_close;
	}
	errno = 0;
	while ((n = getline(&line, &cap, f)) >= 0) {
		ret = load_line(pw, line, (size_t)n, ++lineno, why, sizeof(why));
		if (ret) {
			smq_errbuf(err, errlen, "%s:%u: %s", path, lineno, why);
			goto out_free_table;
		}
		errno = 0;
	}
	if (ferror(f) || errno) {
		ret = errno ? -errno : -EIO;
		smq_errbuf(err, errlen, "%s: %s", path, strerror(-ret));
		goto out_free_table;
	}
	/* The dummy costs what most entries cost; its contents never match
	 * because the check also requires the user to be found. */
	pw->dummy.iterations = pw->count ? common_iterations(pw) : SMQ_PASSWD_ITERATIONS;
	*out = pw;
	goto out_close;
out_free_table:
	smq_passwd_free(pw);
out_close:
	free(line);
	fclose(f);
	return ret;
}

void smq_passwd_free(struct smq_passwd *pw)
{
	if (!pw)
		return;
	free(pw->slots);
	free(pw->entries);
	free(pw->names);
	free(pw);
}

size_t smq_passwd_count(const struct smq_passwd *pw)
{
	return pw->count;
}

bool smq_passwd_check(const struct smq_passwd *pw, const char *user, size_t ulen,
		      const uint8_t *pass, size_t plen)
{
	const struct entry *e = user ? find(pw, user, ulen, NULL) : NULL;
	bool found = e != NULL;
	uint8_t out[HASH_LEN];

	if (!found)
		e = &pw->dummy;
	if (digest(e, pass, plen, out))
		return false;
	return equal_ct(out, e->hash, HASH_LEN) & found;
}

/* ---- hashing, for the tool ---- */

int smq_passwd_hash(char *out, size_t cap, const uint8_t *pass, size_t plen, unsigned iterations)
{
	struct entry e = { .iterations = iterations };
	char salt64[B64_LEN(SALT_LEN) + 1], hash64[B64_LEN(HASH_LEN) + 1];
	size_t got = 0;
	ssize_t r;
	int n;

	if (iterations > INT32_MAX || plen > INT32_MAX)
		return -EINVAL;
	while (got < SALT_LEN) {
		r = getrandom(e.salt + got, SALT_LEN - got, 0);
		if (r < 0 && errno != EINTR)
			return -EIO;
		if (r > 0)
			got += (size_t)r;
	}
	if (digest(&e, pass, plen, e.hash))
		return -EIO;
	b64_encode(salt64, e.salt, SALT_LEN);
	b64_encode(hash64, e.hash, HASH_LEN);
	if (iterations)
		n = snprintf(out, cap, "$7$%u$%s$%s", iterations, salt64, hash64);
	else
		n = snprintf(out, cap, "$6$%s$%s", salt64, hash64);
	return n < 0 || (size_t)n >= cap ? -ENOSPC : 0;
}
