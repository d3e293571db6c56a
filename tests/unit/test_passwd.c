/* test_passwd.c - mosquitto password files: known vectors from mosquitto_passwd,
 * files written by the real mosquitto_passwd at run time, every malformed-line
 * message with its line number, duplicates, empty and missing files, the
 * smq_passwd_hash() round trip, 100k users, concurrent checks, and the timing
 * of an unknown user against a wrong password.
 *
 * Try it: make build/tests/unit/test_passwd && build/tests/unit/test_passwd --verbose
 * (--verbose prints the measured cost of one check per hash type). */
#include <criterion/criterion.h>
#include <grp.h>
#include <criterion/logging.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/passwd.h"

/* Written by Debian 12's mosquitto_passwd 2.0.11. */
#define U_PW "u:$7$101$Ri8hONtqXlfujxvW$BryIId94S/mvuwcMm+fdzJVQB1VXXo+8buR2GPHfdIvCLzRa22pScUNeZ263f2rXV1TBztvmfAIUZXuyc65/0g=="
#define SALT7 "Ri8hONtqXlfujxvW"
#define HASH7 "BryIId94S/mvuwcMm+fdzJVQB1VXXo+8buR2GPHfdIvCLzRa22pScUNeZ263f2rXV1TBztvmfAIUZXuyc65/0g=="
/* mosquitto_passwd -H sha512: password "pw6". */
#define S6_PW6 "s6:$6$KaMyiYxylIfiCR6Z$Oe0jf94hva44OIpxI+vg7V1btyJfM0E6kN2XA1fOQCGtsCwqPbBdpAi3Tg7nJJ9NquvWzVfoX4zUsa+40D0WNQ=="
/* mosquitto_passwd -I 5: password "x". */
#define W_X "w:$7$5$/c/YPMNAJT9ixRjE$n0e4RwjASTcGSwQgBz3TycygWzQTqUENVWlRUoenLG+qMI+5a/MHGqxiXQUZQmOcDfHu655DF7zcH4K4LFGjZw=="

static char dir[64];
static char path[128];
static char err[1024];
static struct smq_passwd *pw;

static void setup(void)
{
	strcpy(dir, "/tmp/smq_passwd_XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/passwd", dir);
	err[0] = '\0';
	pw = NULL;
}

static void teardown(void)
{
	char cmd[128];

	smq_passwd_free(pw);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(core_passwd, .init = setup, .fini = teardown);

static void write_file(const char *text, size_t len)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	cr_assert_eq(fwrite(text, 1, len, f), len);
	cr_assert_eq(fclose(f), 0);
}

static int load(const char *text)
{
	write_file(text, strlen(text));
	return smq_passwd_load(path, &pw, err, sizeof(err));
}

static bool check(const char *user, const char *pass)
{
	return smq_passwd_check(pw, user, strlen(user), (const uint8_t *)pass, strlen(pass));
}

static double clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

/* ---- hash types, known vectors ---- */

Test(core_passwd, pbkdf2_line_from_mosquitto_passwd_accepts_its_password)
{
	cr_assert_eq(load(U_PW "\n"), 0, "%s", err);
	cr_assert_eq(smq_passwd_count(pw), 1);
	cr_assert(check("u", "pw"));
}

Test(core_passwd, pbkdf2_with_other_iterations)
{
	cr_assert_eq(load(W_X "\n"), 0, "%s", err);
	cr_assert(check("w", "x"));
	cr_assert_not(check("w", "y"));
}

Test(core_passwd, sha512_line_from_mosquitto_1_6_accepts_its_password)
{
	cr_assert_eq(load(S6_PW6 "\n"), 0, "%s", err);
	cr_assert(check("s6", "pw6"));
	cr_assert_not(check("s6", "pw"));
}

Test(core_passwd, wrong_password_is_refused)
{
	cr_assert_eq(load(U_PW "\n" S6_PW6 "\n"), 0, "%s", err);
	cr_assert_not(check("u", "pW"));
	cr_assert_not(check("u", "pw "));
	cr_assert_not(check("u", "p"));
	cr_assert_not(check("u", ""));
	cr_assert_not(check("s6", "pw66"));
	/* Another user's password does not open this one. */
	cr_assert_not(check("u", "pw6"));
	cr_assert_not(check("s6", "pw"));
}

Test(core_passwd, password_bytes_after_a_nul_count)
{
	cr_assert_eq(load(U_PW "\n"), 0, "%s", err);
	cr_assert_not(smq_passwd_check(pw, "u", 1, (const uint8_t *)"pw\0x", 4));
	cr_assert(smq_passwd_check(pw, "u", 1, (const uint8_t *)"pw\0x", 2));
}

Test(core_passwd, unknown_user_is_refused)
{
	cr_assert_eq(load(U_PW "\n"), 0, "%s", err);
	cr_assert_not(check("U", "pw"));
	cr_assert_not(check("u ", "pw"));
	cr_assert_not(check("", "pw"));
	cr_assert_not(smq_passwd_check(pw, NULL, 0, (const uint8_t *)"pw", 2));
	cr_assert_not(check("uu", "pw"));
	/* The length ends the user name, not a NUL. */
	cr_assert(smq_passwd_check(pw, "uu", 1, (const uint8_t *)"pw", 2));
	cr_assert_not(smq_passwd_check(pw, "u\0", 2, (const uint8_t *)"pw", 2));
}

/* ---- the line rules ---- */

Test(core_passwd, comments_blank_lines_crlf_and_blanks_around_fields)
{
	const char *text = "# a comment: with a colon\n"
			   "\n"
			   "   \t \n"
			   "  " U_PW "  \r\n"
			   "#s6:$6$whatever\n"
			   S6_PW6; /* no final newline */

	cr_assert_eq(load(text), 0, "%s", err);
	cr_assert_eq(smq_passwd_count(pw), 2);
	cr_assert(check("u", "pw"));
	cr_assert(check("s6", "pw6"));
	cr_assert_not(check("#s6", "pw6"));
}

Test(core_passwd, user_names_keep_any_inner_byte)
{
	const char text[] = "an na \xc3\xa9 $x:$7$101$" SALT7 "$" HASH7 "\n"
			    "z\0z:$7$101$" SALT7 "$" HASH7 "\n";

	write_file(text, sizeof(text) - 1);
	cr_assert_eq(smq_passwd_load(path, &pw, err, sizeof(err)), 0, "%s", err);
	cr_assert(check("an na \xc3\xa9 $x", "pw"));
	cr_assert(smq_passwd_check(pw, "z\0z", 3, (const uint8_t *)"pw", 2));
	cr_assert_not(check("z", "pw"));
}

Test(core_passwd, indented_hash_is_not_a_comment)
{
	/* mosquitto reads " #x:..." as the user "#x" (only column 1 starts a comment). */
	cr_assert_eq(load(" #x:$7$101$" SALT7 "$" HASH7 "\n"), 0, "%s", err);
	cr_assert(check("#x", "pw"));
}

Test(core_passwd, split_classifies_lines)
{
	const char *u, *s;
	size_t ul, sl;
	char why[256];

	cr_assert_eq(smq_passwd_split("#x:y\n", 5, &u, &ul, &s, &sl, why, sizeof(why)), 1);
	cr_assert_eq(smq_passwd_split(" \r\n", 3, &u, &ul, &s, &sl, why, sizeof(why)), 1);
	cr_assert_eq(smq_passwd_split("", 0, &u, &ul, &s, &sl, why, sizeof(why)), 1);
	cr_assert_eq(smq_passwd_split(" a b : p:q \r\n", 13, &u, &ul, &s, &sl, why,
				      sizeof(why)), 0);
	cr_assert_eq(ul, 3);
	cr_assert_eq(memcmp(u, "a b", 3), 0);
	cr_assert_eq(sl, 3);
	cr_assert_eq(memcmp(s, "p:q", 3), 0);
	cr_assert_eq(smq_passwd_split("ab\n", 3, &u, &ul, &s, &sl, why, sizeof(why)), -EINVAL);
	cr_assert_str_eq(why, "missing ':' between the user name and the password");
}

/* ---- malformed lines: the message names file, line and problem ---- */

struct bad_case {
	char line[200];
	char want[160];
};

ParameterizedTestParameters(core_passwd, malformed_line_is_refused_with_its_line_number)
{
	static struct bad_case cases[] = {
		{ "nocolon", "missing ':' between the user name and the password" },
		{ "  # indented comment", "missing ':' between the user name and the password "
					  "(a comment needs '#' in the first column)" },
		{ " :$7$101$" SALT7 "$" HASH7, "empty user name before ':'" },
		{ "u:", "user 'u': nothing after ':'" },
		{ "u:  \r", "user 'u': nothing after ':'" },
		{ "u:plain", "user 'u': password is not hashed (expected $7$ or $6$; "
			     "shardmq-passwd -U hashes a plain-text file)" },
		{ "u:$5$abc$def", "user 'u': unknown hash type '$5$' (expected $7$ or $6$)" },
		{ "u:$$abc", "user 'u': unknown hash type '$$' (expected $7$ or $6$)" },
		{ "u:$7$x1$" SALT7 "$" HASH7,
		  "user 'u': bad iteration count 'x1' (expected 1..2147483647)" },
		{ "u:$7$0$" SALT7 "$" HASH7,
		  "user 'u': bad iteration count '0' (expected 1..2147483647)" },
		{ "u:$7$2147483648$" SALT7 "$" HASH7,
		  "user 'u': bad iteration count '2147483648' (expected 1..2147483647)" },
		{ "u:$7$101", "user 'u': missing salt" },
		{ "u:$7$101$$" HASH7, "user 'u': missing salt" },
		{ "u:$7$101$Ri8hONtqXlfujxv!$" HASH7,
		  "user 'u': salt is not valid base64 (character 16, '!')" },
		{ "u:$7$101$Ri8hONtqXlfu=xvW$" HASH7,
		  "user 'u': salt is not valid base64 (character 13, '=')" },
		{ "u:$7$101$Ri8hONtqXlfujx$" HASH7,
		  "user 'u': salt is not valid base64 (14 characters, not a multiple of 4)" },
		{ "u:$7$101$Ri8hONtq$" HASH7, "user 'u': salt is 6 bytes, expected 12" },
		{ "u:$7$101$" SALT7, "user 'u': missing hash after the salt" },
		{ "u:$7$101$" SALT7 "$", "user 'u': missing hash after the salt" },
		{ "u:$7$101$" SALT7 "$BryIId94", "user 'u': hash is 6 bytes, expected 64" },
		{ "u:$7$101$" SALT7 "$" HASH7 "$", "user 'u': unexpected '$' after the hash" },
		{ "u:$7$101$" SALT7 "$" HASH7 ":x", "user 'u': unexpected ':' in the password hash" },
		{ "u:$6$" SALT7, "user 'u': missing hash after the salt" },
		{ "u:$6$101$" SALT7 "$" HASH7,
		  "user 'u': salt is not valid base64 (3 characters, not a multiple of 4)" },
		{ "a'b\tc:plain", "user 'a\\x27b\\x09c': password is not hashed (expected $7$ or "
				  "$6$; shardmq-passwd -U hashes a plain-text file)" },
	};

	return cr_make_param_array(struct bad_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct bad_case *c, core_passwd, malformed_line_is_refused_with_its_line_number)
{
	char text[512], want[512];

	/* Line 1 a comment, line 2 good, line 3 bad, line 4 never read. */
	snprintf(text, sizeof(text), "# users\n%s\n%s\nnever read\n", U_PW, c->line);
	snprintf(want, sizeof(want), "%s:3: %s", path, c->want);
	cr_assert_eq(load(text), -EINVAL, "line '%s' accepted", c->line);
	cr_assert_null(pw, "no table on failure");
	cr_assert_str_eq(err, want);
}

Test(core_passwd, first_bad_line_is_the_one_reported)
{
	cr_assert_eq(load("a:plain\nb\n"), -EINVAL);
	cr_assert(strstr(err, ":1: user 'a'"), "%s", err);
}

Test(core_passwd, duplicate_user_names_both_lines)
{
	char want[256];

	snprintf(want, sizeof(want), "%s:4: user 'u' is already listed on line 2", path);
	cr_assert_eq(load("# x\n" U_PW "\n" S6_PW6 "\n" U_PW "\n"), -EINVAL);
	cr_assert_null(pw);
	cr_assert_str_eq(err, want);
}

Test(core_passwd, duplicate_after_trimming_is_a_duplicate)
{
	cr_assert_eq(load(U_PW "\n u :$6$KaMyiYxylIfiCR6Z$" HASH7 "\n"), -EINVAL);
	cr_assert(strstr(err, ":2: user 'u' is already listed on line 1"), "%s", err);
}

/* ---- whole files ---- */

Test(core_passwd, empty_file_loads_with_no_users)
{
	cr_assert_eq(load(""), 0, "%s", err);
	cr_assert_eq(smq_passwd_count(pw), 0);
	cr_assert_not(check("u", "pw"));
	cr_assert_not(check("", ""));
}

Test(core_passwd, comments_only_file_has_no_users)
{
	cr_assert_eq(load("# nobody yet\n\n"), 0, "%s", err);
	cr_assert_eq(smq_passwd_count(pw), 0);
}

Test(core_passwd, missing_file_says_path_and_strerror)
{
	char want[256];

	snprintf(path, sizeof(path), "%s/nope", dir);
	snprintf(want, sizeof(want), "%s: No such file or directory", path);
	cr_assert_eq(smq_passwd_load(path, &pw, err, sizeof(err)), -ENOENT);
	cr_assert_null(pw);
	cr_assert_str_eq(err, want);
}

Test(core_passwd, directory_is_refused_with_strerror)
{
	char want[256];

	snprintf(want, sizeof(want), "%s: Is a directory", dir);
	cr_assert_eq(smq_passwd_load(dir, &pw, err, sizeof(err)), -EISDIR);
	cr_assert_str_eq(err, want);
}

Test(core_passwd, unreadable_file_says_permission_denied)
{
	write_file(U_PW "\n", strlen(U_PW) + 1);
	cr_assert_eq(chmod(path, 0), 0);
	/* Root reads any file: become nobody (each Criterion test runs in its
	 * own process, so the others keep their rights). */
	if (geteuid() == 0)
		cr_assert(!setgroups(0, NULL) && !setresgid(65534, 65534, 65534) &&
			  !setresuid(65534, 65534, 65534), "cannot drop root: %s", strerror(errno));
	cr_assert_eq(smq_passwd_load(path, &pw, err, sizeof(err)), -EACCES);
	cr_assert(strstr(err, ": Permission denied"), "%s", err);
}

Test(core_passwd, file_made_by_mosquitto_passwd)
{
	char cmd[1024];

	if (system("command -v mosquitto_passwd >/dev/null 2>&1"))
		cr_skip_test("mosquitto_passwd is not installed");
	snprintf(cmd, sizeof(cmd),
		 "mosquitto_passwd -c -b '%1$s' alice 'secret one' && "
		 "mosquitto_passwd -b '%1$s' 'bob the builder' 'p:w$x' && "
		 "mosquitto_passwd -H sha512 -b '%1$s' carol '' && "
		 "mosquitto_passwd -I 7 -b '%1$s' dave \xc3\xa9t\xc3\xa9",
		 path);
	cr_assert_eq(system(cmd), 0);
	cr_assert_eq(smq_passwd_load(path, &pw, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(smq_passwd_count(pw), 4);
	cr_assert(check("alice", "secret one"));
	cr_assert_not(check("alice", "secret two"));
	cr_assert(check("bob the builder", "p:w$x"));
	cr_assert_not(check("bob the builder", "p"));
	cr_assert(check("carol", ""));
	cr_assert_not(check("carol", "x"));
	cr_assert(check("dave", "\xc3\xa9t\xc3\xa9"));
	cr_assert_not(check("eve", "secret one"));
}

/* ---- smq_passwd_hash ---- */

static void hash_round_trip(unsigned iterations, const char *prefix)
{
	char h1[SMQ_PASSWD_HASH_MAX], h2[SMQ_PASSWD_HASH_MAX], text[512];
	const uint8_t pass[] = "p\0ss: w\xc3\xb6rd";

	cr_assert_eq(smq_passwd_hash(h1, sizeof(h1), pass, sizeof(pass) - 1, iterations), 0);
	cr_assert_eq(smq_passwd_hash(h2, sizeof(h2), pass, sizeof(pass) - 1, iterations), 0);
	cr_assert_eq(strncmp(h1, prefix, strlen(prefix)), 0, "%s", h1);
	cr_assert_eq(strlen(h1), strlen(prefix) + 16 + 1 + 88, "%s", h1);
	cr_assert_str_neq(h1, h2, "the salt is random");
	snprintf(text, sizeof(text), "a:%s\nb:%s\n", h1, h2);
	cr_assert_eq(load(text), 0, "%s", err);
	cr_assert(smq_passwd_check(pw, "a", 1, pass, sizeof(pass) - 1));
	cr_assert(smq_passwd_check(pw, "b", 1, pass, sizeof(pass) - 1));
	cr_assert_not(smq_passwd_check(pw, "a", 1, pass, 1));
	cr_assert_not(smq_passwd_check(pw, "a", 1, pass, sizeof(pass) - 2));
}

Test(core_passwd, hash_round_trip_pbkdf2_default)
{
	hash_round_trip(SMQ_PASSWD_ITERATIONS, "$7$101$");
}

Test(core_passwd, hash_round_trip_pbkdf2_one_iteration)
{
	hash_round_trip(1, "$7$1$");
}

Test(core_passwd, hash_round_trip_sha512)
{
	hash_round_trip(SMQ_PASSWD_SHA512, "$6$");
}

Test(core_passwd, hash_of_empty_password_round_trips)
{
	char h[SMQ_PASSWD_HASH_MAX], text[256];

	cr_assert_eq(smq_passwd_hash(h, sizeof(h), NULL, 0, 101), 0);
	snprintf(text, sizeof(text), "e:%s\n", h);
	cr_assert_eq(load(text), 0, "%s", err);
	cr_assert(check("e", ""));
	cr_assert_not(check("e", " "));
}

Test(core_passwd, hash_refuses_small_buffer_and_huge_iterations)
{
	char h[SMQ_PASSWD_HASH_MAX];

	cr_assert_eq(smq_passwd_hash(h, 100, (const uint8_t *)"x", 1, 101), -ENOSPC);
	cr_assert_eq(smq_passwd_hash(h, sizeof(h), (const uint8_t *)"x", 1, 2147483648u),
		     -EINVAL);
}

Test(core_passwd, hash_fields_have_mosquitto_widths)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char h[SMQ_PASSWD_HASH_MAX];

	/* mosquitto drops an entry whose salt is not 12 bytes or hash not 64:
	 * 16 base64 characters, then 86 and "==". */
	cr_assert_eq(smq_passwd_hash(h, sizeof(h), (const uint8_t *)"pw", 2, 101), 0);
	cr_assert_eq(strspn(h + 7, b64), 16, "%s", h);
	cr_assert_eq(h[7 + 16], '$', "%s", h);
	cr_assert_eq(strspn(h + 7 + 17, b64), 86, "%s", h);
	cr_assert_str_eq(h + 7 + 17 + 86, "==");
}

/* ---- scale, threads, timing ---- */

Test(core_passwd, hundred_thousand_users_load_and_look_up, .timeout = 60)
{
	const size_t n = 100000;
	FILE *f = fopen(path, "w");
	size_t i;
	double t0;

	cr_assert_not_null(f);
	for (i = 0; i < n; i++)	/* one $6$ hash for all: checks stay cheap */
		fprintf(f, "user%zu:%s\n", i, S6_PW6 + 3);
	cr_assert_eq(fclose(f), 0);
	t0 = now();
	cr_assert_eq(smq_passwd_load(path, &pw, err, sizeof(err)), 0, "%s", err);
	cr_log_info("loading %zu users took %.1f ms", n, (now() - t0) * 1e3);
	cr_assert_eq(smq_passwd_count(pw), n);
	for (i = 0; i < n; i += 997) {
		char u[32];

		snprintf(u, sizeof(u), "user%zu", i);
		cr_assert(check(u, "pw6"), "%s", u);
		cr_assert_not(check(u, "pw"), "%s", u);
	}
	cr_assert(check("user99999", "pw6"));
	cr_assert_not(check("user100000", "pw6"));
	cr_assert_not(check("user", "pw6"));
}

struct worker {
	const struct smq_passwd *pw;
	int wrong;
};

static void *check_many(void *arg)
{
	struct worker *w = arg;
	int i;

	for (i = 0; i < 200; i++) {
		if (!smq_passwd_check(w->pw, "s6", 2, (const uint8_t *)"pw6", 3))
			w->wrong++;
		if (smq_passwd_check(w->pw, "s6", 2, (const uint8_t *)"pw7", 3))
			w->wrong++;
		if (!smq_passwd_check(w->pw, "w", 1, (const uint8_t *)"x", 1))
			w->wrong++;
		if (smq_passwd_check(w->pw, "nobody", 6, (const uint8_t *)"x", 1))
			w->wrong++;
	}
	return NULL;
}

Test(core_passwd, checks_from_many_threads_agree)
{
	pthread_t t[4];
	struct worker w[4];
	int i;

	cr_assert_eq(load(W_X "\n" S6_PW6 "\n"), 0, "%s", err);
	for (i = 0; i < 4; i++) {
		w[i] = (struct worker){ .pw = pw };
		cr_assert_eq(pthread_create(&t[i], NULL, check_many, &w[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(w[i].wrong, 0, "thread %d: %d wrong answers", i, w[i].wrong);
	}
}

static double median9(double *t)
{
	double tmp;
	int i, j;

	for (i = 1; i < 9; i++)
		for (j = i; j > 0 && t[j - 1] > t[j]; j--) {
			tmp = t[j];
			t[j] = t[j - 1];
			t[j - 1] = tmp;
		}
	return t[4];
}

/* CPU time of one check of @user/@pass over @reps runs, in microseconds.
 * CPU time, not wall time: the work done is what must not depend on the
 * user, and it does not vary with the load of a shared 2-core machine. */
static double time_check(const char *user, const char *pass, int reps)
{
	double t0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
	int i;

	for (i = 0; i < reps; i++)
		check(user, pass);
	return (clock_s(CLOCK_THREAD_CPUTIME_ID) - t0) / reps * 1e6;
}

/* Median cost of a check of @user, in microseconds. */
static double check_cost(const char *user, const char *pass, int reps)
{
	double t[9];
	int k;

	for (k = 0; k < 9; k++)
		t[k] = time_check(user, pass, reps);
	return median9(t);
}

/* Median over 9 rounds of cost(@u1) / cost(@u2), the two timed back to
 * back in each round so that a busy machine slows both alike. */
static double cost_ratio(const char *u1, const char *u2, const char *pass, int reps)
{
	double r[9];
	int k;

	for (k = 0; k < 9; k++) {
		double t1 = time_check(u1, pass, reps);

		r[k] = t1 / time_check(u2, pass, reps);
	}
	return median9(r);
}

Test(core_passwd, unknown_user_costs_as_much_as_a_wrong_password, .timeout = 60)
{
	char h[SMQ_PASSWD_HASH_MAX], text[512];
	double ratio;

	/* 2000 iterations: a few ms per check, far above scheduling noise. */
	cr_assert_eq(smq_passwd_hash(h, sizeof(h), (const uint8_t *)"right", 5, 2000), 0);
	snprintf(text, sizeof(text), "known:%s\n", h);
	cr_assert_eq(load(text), 0, "%s", err);
	ratio = cost_ratio("unknown", "known", "wrong", 2);
	cr_log_info("2000 iterations: unknown user / wrong password = %.2f", ratio);
	cr_assert(ratio > 0.7 && ratio < 1.4, "unknown user / wrong password = %.2f", ratio);
}

Test(core_passwd, unknown_user_in_sha512_file_costs_a_digest_too)
{
	double ratio;

	/* The dummy follows the entries' format: here the cheap $6$. */
	cr_assert_eq(load(S6_PW6 "\n"), 0, "%s", err);
	ratio = cost_ratio("nobody", "s6", "wrong", 2000);
	cr_assert(ratio > 0.5 && ratio < 2, "unknown user / wrong password = %.2f", ratio);
}

Test(core_passwd, unknown_user_costs_what_most_entries_cost, .timeout = 60)
{
	char h[SMQ_PASSWD_HASH_MAX], text[2048];
	size_t off;
	double ratio;
	int i;

	/* A $6$ user first, then three 1000-iteration $7$ users. */
	off = (size_t)snprintf(text, sizeof(text), "%s\n", S6_PW6);
	for (i = 0; i < 3; i++) {
		cr_assert_eq(smq_passwd_hash(h, sizeof(h), (const uint8_t *)"pw", 2, 1000), 0);
		off += (size_t)snprintf(text + off, sizeof(text) - off, "k%d:%s\n", i, h);
	}
	cr_assert_eq(load(text), 0, "%s", err);
	ratio = cost_ratio("unknown", "k1", "wrong", 3);
	cr_assert(ratio > 0.7 && ratio < 1.4, "unknown user / wrong password = %.2f", ratio);
}

Test(core_passwd, cost_of_one_check_by_hash_type, .timeout = 60)
{
	double c7, c6;

	cr_assert_eq(load(U_PW "\n" S6_PW6 "\n"), 0, "%s", err);
	c7 = check_cost("u", "pw", 50);
	c6 = check_cost("s6", "pw6", 2000);
	cr_log_info("one check: $7$ 101 iterations %.1f us, $6$ %.2f us", c7, c6);
	/* PBKDF2 runs 2 x 101 HMAC-SHA512 rounds against one SHA-512. */
	cr_assert_gt(c7, c6 * 20, "$7$ %.1f us vs $6$ %.2f us", c7, c6);
}
