/* auth.c - the bundle of password file, ACL and allow_anonymous (see
 * auth.h). Loading reads files; checks only read the loaded structures.
 */
#include "core/auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/sha512.h>

#include "core/acl.h"
#include "core/config.h"
#include "core/passwd.h"

int smq_auth_load(const struct smq_config *cfg, uint64_t gen, struct smq_auth **out, char *err,
		  size_t errlen)
{
	struct smq_auth *a = calloc(1, sizeof(*a));
	int ret;

	if (!a) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	atomic_init(&a->refs, 1);
	a->gen = gen;
	a->anonymous = smq_config_anonymous(cfg);
	if (cfg->password_file[0]) {
		ret = smq_passwd_load(cfg->password_file, &a->pw, err, errlen);
		if (ret)
			goto out_free;
	}
	if (cfg->acl_file[0]) {
		ret = smq_acl_load(cfg->acl_file, &a->acl, err, errlen);
		if (ret)
			goto out_free;
	}
	*out = a;
	return 0;
out_free:
	smq_passwd_free(a->pw);
	free(a);
	return ret;
}

void smq_auth_ref(struct smq_auth *a)
{
	atomic_fetch_add_explicit(&a->refs, 1, memory_order_relaxed);
}

void smq_auth_unref(struct smq_auth *a)
{
	if (!a || atomic_fetch_sub_explicit(&a->refs, 1, memory_order_acq_rel) != 1)
		return;
	smq_passwd_free(a->pw);
	smq_acl_free(a->acl);
	free(a);
}

struct smq_auth_cache *smq_auth_cache_new(void)
{
	struct smq_auth_cache *c = calloc(1, sizeof(*c));

	if (c && getrandom(c->key, sizeof(c->key), 0) != (ssize_t)sizeof(c->key)) {
		free(c);
		return NULL;
	}
	return c;
}

void smq_auth_cache_free(struct smq_auth_cache *c)
{
	free(c);
}

static int digest(const struct smq_auth_cache *c, const char *user, size_t ulen,
		  const uint8_t *pass, size_t plen, uint8_t out[64])
{
	static const uint8_t zero;
	wc_Sha512 sha;
	int ret = wc_InitSha512(&sha);

	if (ret)
		return ret;
	ret = wc_Sha512Update(&sha, c->key, sizeof(c->key));
	if (!ret)
		ret = wc_Sha512Update(&sha, (const uint8_t *)user, (word32)ulen);
	if (!ret)
		ret = wc_Sha512Update(&sha, &zero, 1);	/* "ab"+"c" != "a"+"bc" */
	if (!ret)
		ret = wc_Sha512Update(&sha, pass, (word32)plen);
	if (!ret)
		ret = wc_Sha512Final(&sha, out);
	wc_Sha512Free(&sha);
	return ret;
}

/* Constant time over the 64 bytes, like the password file's own check. */
static bool same(const uint8_t *a, const uint8_t *b)
{
	uint8_t d = 0;

	for (int i = 0; i < 64; i++)
		d |= a[i] ^ b[i];
	return d == 0;
}

static struct smq_auth_cached *slot_of(struct smq_auth_cache *c, const char *user, size_t ulen)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < ulen; i++)
		h = (h ^ (uint8_t)user[i]) * 1099511628211ull;
	return &c->slot[h % SMQ_AUTH_CACHE_SLOTS];
}

bool smq_auth_cache_hit(struct smq_auth_cache *c, const struct smq_auth *a, const char *user,
			size_t ulen, const uint8_t *pass, size_t plen)
{
	struct smq_auth_cached *slot;
	uint8_t d[64];

	if (!c || digest(c, user, ulen, pass, plen, d))
		return false;
	slot = slot_of(c, user, ulen);
	if (slot->gen == a->gen && same(slot->digest, d)) {
		c->hits++;
		return true;
	}
	c->misses++;
	return false;
}

void smq_auth_cache_store(struct smq_auth_cache *c, const struct smq_auth *a, const char *user,
			  size_t ulen, const uint8_t *pass, size_t plen)
{
	struct smq_auth_cached *slot;
	uint8_t d[64];

	if (!c || digest(c, user, ulen, pass, plen, d))
		return;
	slot = slot_of(c, user, ulen);
	slot->gen = a->gen;
	memcpy(slot->digest, d, sizeof(d));
}

static enum smq_auth_result check_password(const struct smq_auth *a,
					   struct smq_auth_cache *c, const char *user,
					   size_t ulen, const uint8_t *pass, size_t plen)
{
	if (smq_auth_cache_hit(c, a, user, ulen, pass, plen))
		return SMQ_AUTH_OK;
	if (!smq_passwd_check(a->pw, user, ulen, pass, plen))
		return SMQ_AUTH_BAD_PASSWORD;
	smq_auth_cache_store(c, a, user, ulen, pass, plen);
	return SMQ_AUTH_OK;
}

enum smq_auth_result smq_auth_login(const struct smq_auth *a, struct smq_auth_cache *cache,
				    const char *user, size_t ulen, const uint8_t *pass, size_t plen,
				    bool has_pass)
{
	/* No password is an empty one: it matches no hash of a real password,
	 * and costs the same as a wrong one. */
	if (user && a->pw)
		return check_password(a, cache, user, ulen, has_pass ? pass : (const uint8_t *)"",
				      has_pass ? plen : 0);
	return a->anonymous ? SMQ_AUTH_OK : SMQ_AUTH_NOT_AUTHORIZED;
}
