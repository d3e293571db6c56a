/* test_auth.c - the auth bundle: CONNECT decisions (mosquitto 2 rules) and
 * the per-shard cache of verified logins. Password files are written with
 * shardmq's own hasher (core/passwd.h). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/auth.h"
#include "core/config.h"
#include "core/passwd.h"

static struct smq_config cfg;
static char dir[64], pwpath[128];
static struct smq_auth *a;
static char err[512];

static void write_pw(const char *user, const char *pass)
{
	char hash[SMQ_PASSWD_HASH_MAX];
	FILE *f = fopen(pwpath, "w");

	cr_assert(f);
	cr_assert_eq(smq_passwd_hash(hash, sizeof(hash), (const uint8_t *)pass, strlen(pass),
				     SMQ_PASSWD_ITERATIONS), 0);
	fprintf(f, "%s:%s\n", user, hash);
	fclose(f);
}

static void setup(void)
{
	strcpy(dir, "/tmp/smq_auth_XXXXXX");
	cr_assert(mkdtemp(dir));
	snprintf(pwpath, sizeof(pwpath), "%s/pw", dir);
	smq_config_defaults(&cfg);
	a = NULL;
}

static void teardown(void)
{
	smq_auth_unref(a);
	unlink(pwpath);
	rmdir(dir);
}

TestSuite(core_auth, .init = setup, .fini = teardown);

static enum smq_auth_result login(struct smq_auth_cache *c, const char *user, const char *pass)
{
	return smq_auth_login(a, c, user, user ? strlen(user) : 0, (const uint8_t *)pass,
			      pass ? strlen(pass) : 0, pass != NULL);
}

Test(core_auth, password_file_decides_users_and_anonymous_follows_the_setting)
{
	write_pw("alice", "secret");
	strcpy(cfg.password_file, pwpath);
	cr_assert_eq(smq_auth_load(&cfg, 1, &a, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(login(NULL, "alice", "secret"), SMQ_AUTH_OK);
	cr_assert_eq(login(NULL, "alice", "wrong"), SMQ_AUTH_BAD_PASSWORD);
	cr_assert_eq(login(NULL, "alice", NULL), SMQ_AUTH_BAD_PASSWORD);
	cr_assert_eq(login(NULL, "mallory", "secret"), SMQ_AUTH_BAD_PASSWORD);
	cr_assert_eq(login(NULL, NULL, NULL), SMQ_AUTH_OK, "no listener: anonymous allowed");
}

Test(core_auth, listener_lines_turn_anonymous_off_and_fail_closed)
{
	cr_assert_eq(smq_config_set(&cfg, "listener", "1883", err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(smq_auth_load(&cfg, 1, &a, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(login(NULL, NULL, NULL), SMQ_AUTH_NOT_AUTHORIZED);
	cr_assert_eq(login(NULL, "bob", "x"), SMQ_AUTH_NOT_AUTHORIZED,
		     "no password file: a user name cannot be checked, so it is refused");
}

Test(core_auth, missing_files_name_their_path)
{
	snprintf(cfg.password_file, sizeof(cfg.password_file), "%s/nope", dir);
	cr_assert_lt(smq_auth_load(&cfg, 1, &a, err, sizeof(err)), 0);
	cr_assert(strstr(err, "/nope"), "%s", err);
	cfg.password_file[0] = '\0';
	snprintf(cfg.acl_file, sizeof(cfg.acl_file), "%s/noacl", dir);
	cr_assert_lt(smq_auth_load(&cfg, 1, &a, err, sizeof(err)), 0);
	cr_assert(strstr(err, "/noacl"), "%s", err);
}

Test(core_auth, cache_skips_the_hash_for_a_verified_password_only)
{
	struct smq_auth_cache *c = smq_auth_cache_new();

	cr_assert(c);
	write_pw("alice", "secret");
	strcpy(cfg.password_file, pwpath);
	cr_assert_eq(smq_auth_load(&cfg, 1, &a, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(login(c, "alice", "secret"), SMQ_AUTH_OK);
	cr_assert_eq(c->hits, 0);
	cr_assert_eq(login(c, "alice", "secret"), SMQ_AUTH_OK);
	cr_assert_eq(c->hits, 1, "the second login is answered from the cache");
	cr_assert_eq(login(c, "alice", "wrong"), SMQ_AUTH_BAD_PASSWORD);
	cr_assert_eq(c->hits, 1);
	smq_auth_cache_free(c);
}

Test(core_auth, cache_entries_die_with_a_reload)
{
	struct smq_auth_cache *c = smq_auth_cache_new();

	write_pw("alice", "secret");
	strcpy(cfg.password_file, pwpath);
	cr_assert_eq(smq_auth_load(&cfg, 1, &a, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(login(c, "alice", "secret"), SMQ_AUTH_OK);
	/* The password changes; the reloaded bundle must not accept the old
	 * one from the cache. */
	write_pw("alice", "new");
	smq_auth_unref(a);
	cr_assert_eq(smq_auth_load(&cfg, 2, &a, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(login(c, "alice", "secret"), SMQ_AUTH_BAD_PASSWORD);
	cr_assert_eq(login(c, "alice", "new"), SMQ_AUTH_OK);
	smq_auth_cache_free(c);
}
