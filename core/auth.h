/* auth.h - who may connect, publish and read: the password file, the ACL
 * file and allow_anonymous, loaded together into one immutable bundle.
 *
 * The control thread builds a bundle at start and at every reload (SIGHUP);
 * each shard holds a reference to the one it uses, and swaps it between two
 * loop turns when told of a new one. So checks run on the session's home
 * shard with no lock, and a bad new file never replaces a good bundle: the
 * load fails and the old one stays in force.
 *
 * Decisions (mosquitto 2 semantics):
 *  - a client with a user name and a password file: the password must match
 *    (else CONNACK 5 / 0x86);
 *  - a client without a user name, or with one but no password file: only
 *    with allow_anonymous (else CONNACK 5 / 0x87);
 *  - a listener with use_identity_as_username: the certificate's CN is the
 *    user name and no password is checked (the TLS layer verified it).
 *  - no acl_file: every topic may be published and read, except that
 *    clients never publish to $SYS (the engine refuses that on its own).
 */
#ifndef SMQ_AUTH_H
#define SMQ_AUTH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct smq_acl;
struct smq_config;
struct smq_passwd;

struct smq_auth {
	atomic_uint refs;		/* any thread; the last unref frees */
	uint64_t gen;			/* 1, 2, ... one per successful load */
	bool anonymous;			/* allow_anonymous as in force */
	struct smq_passwd *pw;		/* NULL: no password_file */
	struct smq_acl *acl;		/* NULL: no acl_file */
};

/* Load the password file and ACL file named in @cfg. On 0, *@out holds one
 * reference. On failure -errno with "PATH: ..." / "PATH:LINE: ..." in @err
 * and *@out untouched. */
int smq_auth_load(const struct smq_config *cfg, uint64_t gen, struct smq_auth **out, char *err,
		  size_t errlen);

/* Any thread. unref(NULL) is a no-op. */
void smq_auth_ref(struct smq_auth *a);
void smq_auth_unref(struct smq_auth *a);

enum smq_auth_result {
	SMQ_AUTH_OK,
	SMQ_AUTH_BAD_PASSWORD,		/* unknown user or wrong password */
	SMQ_AUTH_NOT_AUTHORIZED,	/* anonymous, and anonymous is refused */
};

/* A shard's memory of logins it verified, so that a client reconnecting
 * with the same password costs one SHA-512 (~1 us) instead of the password
 * file's PBKDF2 (~140 us at mosquitto's 101 iterations, measured in
 * tests/unit/test_passwd.c), which would stall every other client of the
 * shard meanwhile. An entry holds SHA-512(per-cache random key || user ||
 * 0 || password), never the password; it is valid only for the bundle
 * generation it was made with, so a reload (a changed or removed password)
 * invalidates it. A first login, and a wrong password, still pay the full
 * check on the shard loop. Owner thread only. */
#define SMQ_AUTH_CACHE_SLOTS 1024u

struct smq_auth_cache {
	uint8_t key[32];
	uint64_t hits, misses;
	struct smq_auth_cached {
		uint64_t gen;			/* 0: empty */
		uint8_t digest[64];
	} slot[SMQ_AUTH_CACHE_SLOTS];
};

/* A new cache with a random key, or NULL on ENOMEM. */
struct smq_auth_cache *smq_auth_cache_new(void);
void smq_auth_cache_free(struct smq_auth_cache *c);

/* True when @cache remembers @user logging in with @pass under @a's
 * generation (~1 us). */
bool smq_auth_cache_hit(struct smq_auth_cache *cache, const struct smq_auth *a, const char *user,
			size_t ulen, const uint8_t *pass, size_t plen);

/* Remember that @user / @pass passed @a's password file. */
void smq_auth_cache_store(struct smq_auth_cache *cache, const struct smq_auth *a,
			  const char *user, size_t ulen, const uint8_t *pass, size_t plen);

/* The CONNECT decision. @user may be NULL (no user name). @cache may be
 * NULL; otherwise it is consulted and filled (owner thread of @cache). */
enum smq_auth_result smq_auth_login(const struct smq_auth *a, struct smq_auth_cache *cache,
				    const char *user, size_t ulen, const uint8_t *pass, size_t plen,
				    bool has_pass);

#endif
