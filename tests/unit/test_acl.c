/* test_acl.c - ACL files: sections, access words, deny, wildcards and '$',
 * patterns (whole level, inside a level, injection through ids), SUBSCRIBE
 * decisions, parse errors with line numbers, and a randomized comparison of
 * the compiled tries with a naive per-rule reference built on
 * smq_topic_match() and brute force over a finite topic universe. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/acl.h"
#include "core/topic.h"

static struct smq_acl *acl;
static char err[512];
static char path[64];

static void setup(void)
{
	acl = NULL;
	memset(err, 0, sizeof(err));
	path[0] = '\0';
}

static void teardown(void)
{
	smq_acl_free(acl);
	if (path[0])
		unlink(path);
}

TestSuite(core_acl, .init = setup, .fini = teardown);

static void load(const char *text)
{
	smq_acl_free(acl);
	acl = NULL;
	cr_assert_eq(smq_acl_parse(text, strlen(text), "acl", &acl, err, sizeof(err)), 0,
		     "parse failed: %s", err);
}

/* @user NULL: a client without user name. */
static struct smq_acl_who who_of(const char *user, const char *id)
{
	return (struct smq_acl_who){ user, user ? strlen(user) : 0, user != NULL, id, strlen(id) };
}

static bool can_read(const char *user, const char *id, const char *topic)
{
	struct smq_acl_who w = who_of(user, id);

	return smq_acl_can_read(acl, smq_acl_user(acl, &w), &w, topic, strlen(topic));
}

static bool can_pub(const char *user, const char *id, const char *topic)
{
	struct smq_acl_who w = who_of(user, id);

	return smq_acl_can_publish(acl, smq_acl_user(acl, &w), &w, topic, strlen(topic));
}

static enum smq_acl_sub sub(const char *user, const char *id, const char *filter)
{
	struct smq_acl_who w = who_of(user, id);

	return smq_acl_subscribe(acl, smq_acl_user(acl, &w), &w, filter, strlen(filter));
}

/* ---- sections ------------------------------------------------------------ */

Test(core_acl, anonymous_section_applies_only_without_user_name)
{
	load("topic read public/#\n"
	     "user alice\n"
	     "topic read alice/#\n");
	cr_assert(can_read(NULL, "c", "public/news"));
	cr_assert_not(can_read("alice", "c", "public/news"));
	cr_assert_not(can_read("bob", "c", "public/news"));
	cr_assert_not(can_read(NULL, "c", "alice/x"));
}

Test(core_acl, user_section_applies_only_to_that_user)
{
	load("user alice\n"
	     "topic alice/#\n"
	     "user bob\n"
	     "topic bob/#\n"
	     "user alice\n"	/* a second section for alice adds to the first */
	     "topic shared/x\n");
	cr_assert(can_read("alice", "c", "alice/a"));
	cr_assert(can_pub("alice", "c", "alice/a"));
	cr_assert(can_read("alice", "c", "shared/x"));
	cr_assert_not(can_read("alice", "c", "bob/a"));
	cr_assert(can_read("bob", "c", "bob/a"));
	cr_assert_not(can_read("bob", "c", "shared/x"));
	cr_assert_not(can_read("carol", "c", "alice/a"));
	cr_assert_not(can_read("", "c", "alice/a"));
	cr_assert_not(can_read(NULL, "c", "alice/a"));
	cr_assert_eq(smq_acl_rule_count(acl), 3);
}

Test(core_acl, user_names_are_matched_exactly_and_may_hold_spaces)
{
	load("user   Mr Smith  \n"
	     "topic read smith\n");
	cr_assert(can_read("Mr Smith", "c", "smith"));
	cr_assert_not(can_read("Mr  Smith", "c", "smith"));
	cr_assert_not(can_read("mr smith", "c", "smith"));
}

/* Parameters are inline arrays: Criterion copies them into the test process. */
struct access_case {
	char word[16];
	bool read, write;
};

ParameterizedTestParameters(core_acl, access_words)
{
	static struct access_case cases[] = {
		{ "read", true, false },
		{ "write", false, true },
		{ "readwrite", true, true },
		{ "", true, true },	/* no word: readwrite */
		{ "deny", false, false },
	};

	return cr_make_param_array(struct access_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct access_case *c, core_acl, access_words)
{
	char text[128];

	snprintf(text, sizeof(text), "user u\ntopic %s a/b\n", c->word);
	load(text);
	cr_expect_eq(can_read("u", "c", "a/b"), c->read, "read for '%s'", c->word);
	cr_expect_eq(can_pub("u", "c", "a/b"), c->write, "write for '%s'", c->word);
	cr_expect_not(can_read("u", "c", "a/c"));
	cr_expect_not(can_pub("u", "c", "a/c"));
}

Test(core_acl, read_and_write_rules_on_one_filter_combine)
{
	load("user u\ntopic read a\ntopic write a\n");
	cr_assert(can_read("u", "c", "a"));
	cr_assert(can_pub("u", "c", "a"));
}

Test(core_acl, deny_wins_over_a_broader_grant)
{
	load("topic readwrite #\n"
	     "topic deny secret/#\n"
	     "user u\n"
	     "topic deny private/+\n"
	     "topic readwrite #\n"	/* the grant after the deny: order does not matter */
	     "pattern deny %c/locked\n");
	cr_assert(can_read(NULL, "c", "open"));
	cr_assert_not(can_read(NULL, "c", "secret"));
	cr_assert_not(can_pub(NULL, "c", "secret/x/y"));
	cr_assert(can_read(NULL, "c", "secretx"));
	cr_assert(can_read("u", "c", "secret/x"));	/* anonymous denies are not u's */
	cr_assert_not(can_pub("u", "c", "private/x"));
	cr_assert(can_pub("u", "c", "private/x/y"));
	cr_assert_not(can_pub("u", "me", "me/locked"));
	cr_assert(can_pub("u", "me", "you/locked"));
	cr_assert_not(can_read(NULL, "me", "me/locked"));	/* patterns deny for everyone */
}

Test(core_acl, deny_in_one_place_beats_a_grant_in_another)
{
	load("pattern read #\n"
	     "user u\n"
	     "topic deny x/#\n");
	cr_assert(can_read("u", "c", "y"));
	cr_assert_not(can_read("u", "c", "x/1"));
	cr_assert(can_read("v", "c", "x/1"));
}

Test(core_acl, wildcards_follow_mqtt_matching)
{
	load("user u\n"
	     "topic read a/+/c\n"
	     "topic read b/#\n"
	     "topic read +\n"
	     "topic read d//e\n");
	cr_assert(can_read("u", "c", "a/x/c"));
	cr_assert(can_read("u", "c", "a//c"));
	cr_assert_not(can_read("u", "c", "a/x/y/c"));
	cr_assert_not(can_read("u", "c", "a/x"));
	cr_assert(can_read("u", "c", "b"));	/* '#' includes the parent level */
	cr_assert(can_read("u", "c", "b/1/2/3"));
	cr_assert_not(can_read("u", "c", "bb/c"));
	cr_assert(can_read("u", "c", "single"));
	cr_assert_not(can_read("u", "c", "/"));	/* two empty levels: "+" matches one */
	cr_assert(can_read("u", "c", "d//e"));
	cr_assert_not(can_read("u", "c", "d/e"));
}

Test(core_acl, empty_topic_is_refused)
{
	struct smq_acl_who w = who_of(NULL, "c");

	load("topic readwrite #\n");
	cr_assert(smq_acl_can_read(acl, smq_acl_user(acl, &w), &w, "x", 1));
	cr_assert_not(smq_acl_can_read(acl, smq_acl_user(acl, &w), &w, "", 0));
	cr_assert_not(smq_acl_can_publish(acl, smq_acl_user(acl, &w), &w, "", 0));
}

Test(core_acl, dollar_topics_are_not_granted_by_leading_wildcards)
{
	load("user u\n"
	     "topic read #\n"
	     "topic read +/broker/uptime\n"
	     "user admin\n"
	     "topic read $SYS/#\n"
	     "user mon\n"
	     "topic read $SYS/+/load\n"
	     "pattern read +/%c\n");
	cr_assert(can_read("u", "c", "anything/else"));
	cr_assert_not(can_read("u", "c", "$SYS/broker/uptime"));
	cr_assert_not(can_read("u", "c", "$SYS"));
	cr_assert_not(can_read("u", "c", "$share/x"));
	cr_assert(can_read("admin", "c", "$SYS/broker/uptime"));
	cr_assert(can_read("admin", "c", "$SYS"));
	cr_assert(can_read("mon", "c", "$SYS/x/load"));
	cr_assert_not(can_read("mon", "me", "$x/me"));
	cr_assert(can_read("mon", "me", "x/me"));
	cr_assert_not(can_read("admin", "c", "SYS/x"));
}

/* ---- patterns ------------------------------------------------------------ */

Test(core_acl, pattern_substitutes_whole_levels)
{
	load("pattern write devices/%c/state\n"
	     "pattern read users/%u/#\n");
	cr_assert(can_pub(NULL, "dev1", "devices/dev1/state"));
	cr_assert_not(can_pub(NULL, "dev1", "devices/dev2/state"));
	cr_assert_not(can_read(NULL, "dev1", "devices/dev1/state"));
	cr_assert(can_read("alice", "c", "users/alice"));
	cr_assert(can_read("alice", "c", "users/alice/inbox/1"));
	cr_assert_not(can_read("alice", "c", "users/alicex/inbox"));
	cr_assert_not(can_read("alice", "c", "users/alic/inbox"));
	cr_assert_not(can_read("bob", "c", "users/alice/inbox"));
}

Test(core_acl, pattern_substitutes_inside_a_level_like_mosquitto_2_0)
{
	load("pattern read dev-%c/x\n"
	     "pattern read a/%u-%c.log\n"
	     "pattern read %u%u/y\n"
	     "pattern read p/100%\n"	/* '%' not before u or c is text */
	     "topic read t/%u\n");	/* topic lines are never substituted */
	cr_assert(can_read("al", "c1", "dev-c1/x"));
	cr_assert_not(can_read("al", "c1", "dev-c2/x"));
	cr_assert_not(can_read("al", "c1", "dev-/x"));
	cr_assert(can_read("al", "c1", "a/al-c1.log"));
	cr_assert_not(can_read("al", "c1", "a/al-c1.logx"));
	cr_assert_not(can_read("al", "c1", "a/c1-al.log"));
	cr_assert(can_read("al", "c1", "alal/y"));
	cr_assert_not(can_read("al", "c1", "al/y"));
	cr_assert(can_read("al", "c1", "p/100%"));
	cr_assert(can_read(NULL, "c1", "t/%u"));
	cr_assert_not(can_read(NULL, "c1", "t/al"));
}

Test(core_acl, pattern_with_user_never_matches_a_client_without_user_name)
{
	load("pattern readwrite %u/#\n"
	     "pattern readwrite id/%c/%u\n"
	     "pattern read open/%c\n");
	cr_assert(can_read("u", "c", "u/x"));
	cr_assert_not(can_read(NULL, "c", "u/x"));
	cr_assert_not(can_read(NULL, "c", "/x"));
	cr_assert_not(can_read(NULL, "c", "id/c/"));
	cr_assert(can_read(NULL, "c", "open/c"));
}

Test(core_acl, patterns_apply_wherever_they_stand)
{
	load("pattern read a/%c\n"
	     "user u\n"
	     "pattern read b/%c\n"
	     "topic read u-only\n"
	     "user v\n"
	     "pattern read c\n");
	for (int i = 0; i < 3; i++) {
		const char *user = i == 0 ? NULL : i == 1 ? "u" : "v";

		cr_assert(can_read(user, "k", "a/k"), "user %s", user ? user : "(none)");
		cr_assert(can_read(user, "k", "b/k"), "user %s", user ? user : "(none)");
		cr_assert(can_read(user, "k", "c"), "user %s", user ? user : "(none)");
	}
	cr_assert_not(can_read("v", "k", "u-only"));
}

struct inject_case {
	char user[8], id[8], topic[24];
};

/* A client choosing its user name or id must not reach other levels than
 * its own: every one of these is refused. */
ParameterizedTestParameters(core_acl, injected_ids_do_not_widen_patterns)
{
	static struct inject_case cases[] = {
		{ "a/b", "c", "home/a/b" },		/* '/' spans levels */
		{ "a/b", "c", "home/a/b/x" },
		{ "a/#", "c", "home/a/x" },
		{ "#", "c", "home/x" },
		{ "#", "c", "home/#" },		/* byte-equal, but not a topic */
		{ "+", "c", "home/x" },
		{ "+", "c", "home/+" },
		{ "", "c", "home/" },			/* empty value: refused */
		{ "u", "x/y", "dev/x/y" },
		{ "u", "+", "dev/+" },
		{ "u", "#", "dev/q" },
		{ "u", "", "dev/" },
		{ "u", "a+b", "dev/a+b" },
	};

	return cr_make_param_array(struct inject_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct inject_case *c, core_acl, injected_ids_do_not_widen_patterns)
{
	load("pattern readwrite home/%u\n"
	     "pattern readwrite home/%u/#\n"
	     "pattern readwrite dev/%c\n");
	cr_expect_not(can_read(c->user, c->id, c->topic), "user '%s' id '%s' read %s", c->user,
		      c->id, c->topic);
	cr_expect_not(can_pub(c->user, c->id, c->topic), "user '%s' id '%s' write %s", c->user,
		      c->id, c->topic);
	if (strcmp(c->user, "u")) {	/* a bad user name; the id is fine */
		cr_expect_eq(sub(c->user, c->id, "home/+"), SMQ_ACL_SUB_DENY, "user '%s'", c->user);
		cr_expect_eq(sub(c->user, c->id, "home/#"), SMQ_ACL_SUB_DENY, "user '%s'", c->user);
	} else {			/* a bad id */
		cr_expect_eq(sub(c->user, c->id, "dev/+"), SMQ_ACL_SUB_DENY, "id '%s'", c->id);
		cr_expect_eq(sub(c->user, c->id, "dev/#"), SMQ_ACL_SUB_DENY, "id '%s'", c->id);
	}
	/* and the normal case still works */
	cr_expect(can_read("ok", "ok", "home/ok/x"));
	cr_expect(can_read("ok", "ok", "dev/ok"));
}

Test(core_acl, deny_pattern_with_a_refused_value_refuses_everything)
{
	load("topic readwrite #\n"
	     "user u\n"
	     "topic readwrite #\n"
	     "pattern deny private/%c/#\n");
	cr_assert(can_read("u", "good", "private/other"));
	cr_assert_not(can_read("u", "good", "private/good/x"));
	/* "a/b" would otherwise escape the deny meant for private/a/b */
	cr_assert_not(can_read("u", "a/b", "private/a/b/x"));
	cr_assert_not(can_read("u", "a/b", "anything"));
	cr_assert_not(can_pub(NULL, "+", "anything"));
	cr_assert_eq(sub("u", "a/b", "anything"), SMQ_ACL_SUB_DENY);
	cr_assert(can_read(NULL, "fine", "anything"));
}

Test(core_acl, deny_pattern_with_user_ignores_clients_without_user_name)
{
	load("topic readwrite #\n"
	     "pattern deny %u/#\n");
	cr_assert(can_read(NULL, "c", "x/y"));		/* the deny does not apply */
	cr_assert_not(can_read("", "c", "x/y"));	/* present but empty: fail closed */
}

/* ---- subscribe ------------------------------------------------------------ */

struct sub_case {
	char filter[24];
	enum smq_acl_sub want;
};

static const char sub_acl[] =
	"user s\n"
	"topic read sensors/#\n"
	"topic deny sensors/secret/#\n"
	"topic write cmd/#\n"
	"topic read +/status\n"
	"topic deny +/status/private\n"
	"topic read $SYS/broker/+\n"
	"topic readwrite feed/+/data\n"
	"pattern read home/%u/#\n"
	"pattern deny home/%u/locked\n"
	"pattern read dev-%c/+\n";

#define DENY SMQ_ACL_SUB_DENY
#define EACH SMQ_ACL_SUB_CHECK_EACH
#define ALL SMQ_ACL_SUB_ALL_READABLE

ParameterizedTestParameters(core_acl, subscribe_decisions)
{
	static struct sub_case cases[] = {
		{ "sensors/temp", ALL },
		{ "sensors/#", EACH },		/* covered, but a deny intersects */
		{ "sensors/+", EACH },		/* sensors/secret is denied */
		{ "sensors/+/temp", EACH },
		{ "sensors/secret/#", DENY },	/* covered by a deny */
		{ "sensors/secret/x", DENY },
		{ "sensors/secret", DENY },	/* "P/#" covers P */
		{ "cmd/x", DENY },		/* write-only */
		{ "cmd/x/y", DENY },
		{ "cmd/#", EACH },		/* cmd/status is readable */
		{ "#", EACH },
		{ "+/+", EACH },
		{ "nothing/here", DENY },
		{ "x/status", ALL },
		{ "+/status", ALL },
		{ "+/status/#", EACH },
		{ "x/status/private", DENY },
		{ "$SYS/#", EACH },
		{ "$SYS/broker/load", ALL },
		{ "$SYS/+/load", EACH },
		{ "+/broker/load", EACH },	/* sensors/broker/load, never $SYS/... */
		{ "#/x", DENY },		/* invalid filters */
		{ "sensors+", DENY },
		{ "feed/+/data", ALL },
		{ "feed/#", EACH },
		{ "home/s/#", EACH },
		{ "home/s/kitchen", ALL },
		{ "home/s/locked", DENY },
		{ "home/other/x", DENY },
		{ "home/+/x", EACH },
		{ "home/+", EACH },		/* home/s is granted ("P/#" includes P) */
		{ "dev-cid/a", ALL },
		{ "dev-cid/#", EACH },
		{ "dev-cid", DENY },
		{ "dev-x/a", DENY },
		{ "+/a", EACH },
	};

	return cr_make_param_array(struct sub_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct sub_case *c, core_acl, subscribe_decisions)
{
	load(sub_acl);
	cr_expect_eq(sub("s", "cid", c->filter), c->want, "filter %s", c->filter);
}

Test(core_acl, subscribe_for_another_client_sees_its_own_rules)
{
	load(sub_acl);
	cr_assert_eq(sub("t", "cid", "sensors/temp"), DENY);
	cr_assert_eq(sub("t", "cid", "dev-cid/a"), ALL);
	cr_assert_eq(sub("t", "cid", "home/t/x"), ALL);
	cr_assert_eq(sub("t", "cid", "home/s/x"), DENY);
	cr_assert_eq(sub(NULL, "cid", "home/+/x"), DENY);
	cr_assert_eq(sub(NULL, "other", "dev-cid/a"), DENY);
}

Test(core_acl, subscribe_with_root_wildcards)
{
	load("user a\ntopic read #\n"
	     "user b\ntopic read #\ntopic deny #\n"
	     "user c\ntopic read #\ntopic deny $SYS/#\n"
	     "user d\ntopic read $SYS/#\n");
	cr_assert_eq(sub("a", "x", "#"), ALL);
	cr_assert_eq(sub("a", "x", "+/+/#"), ALL);
	cr_assert_eq(sub("a", "x", "$SYS/#"), DENY);	/* '#' does not grant $SYS */
	cr_assert_eq(sub("b", "x", "#"), DENY);
	cr_assert_eq(sub("b", "x", "a/b"), DENY);
	cr_assert_eq(sub("c", "x", "#"), ALL);		/* "#" never matches $SYS topics */
	cr_assert_eq(sub("d", "x", "#"), DENY);
	cr_assert_eq(sub("d", "x", "+/x"), DENY);
	cr_assert_eq(sub("d", "x", "$SYS/+"), ALL);
}

/* ---- errors and file handling ---------------------------------------------- */

struct err_case {
	char text[48];
	size_t len;		/* 0: strlen(text) */
	char msg[96];
};

ParameterizedTestParameters(core_acl, errors_name_file_and_line)
{
	static struct err_case cases[] = {
		{ "bogus a\n", 0, "acl:1: unknown keyword 'bogus' (expected user, topic or pattern)" },
		{ "\n# c\ntopic reed a/b\n", 0,
		  "acl:3: bad access word 'reed' (expected read, write, readwrite or deny)" },
		{ "topic read a/#/b\n", 0, "acl:1: invalid topic filter 'a/#/b'" },
		{ "topic a+\n", 0, "acl:1: invalid topic filter 'a+'" },
		{ "user a\npattern deny sport/te#\n", 0, "acl:2: invalid topic filter 'sport/te#'" },
		{ "user a\nuser   \n", 0, "acl:2: empty user name" },
		{ "user", 0, "acl:1: empty user name" },
		{ "topic\n", 0, "acl:1: missing topic filter" },
		{ "pattern   \t\n", 0, "acl:1: missing topic filter" },
		{ "topic a\r\ntopic b\r\nTopic c\r\n", 0,
		  "acl:3: unknown keyword 'Topic' (expected user, topic or pattern)" },
		{ "topic read a\0b\n", 15, "acl:1: invalid topic filter 'a'" },
	};

	return cr_make_param_array(struct err_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct err_case *c, core_acl, errors_name_file_and_line)
{
	size_t len = c->len ? c->len : strlen(c->text);

	cr_assert_eq(smq_acl_parse(c->text, len, "acl", &acl, err, sizeof(err)), -EINVAL);
	cr_assert_null(acl);
	cr_assert_str_eq(err, c->msg);
}

Test(core_acl, too_deep_filter_is_an_error)
{
	size_t n = 6 + 2 * (SMQ_ACL_MAX_LEVELS + 1);
	char *text = malloc(n + 1);

	strcpy(text, "topic ");
	for (size_t i = 0; i <= SMQ_ACL_MAX_LEVELS; i++)
		strcat(text, i ? "/a" : "a");
	cr_assert_eq(smq_acl_parse(text, strlen(text), "deep", &acl, err, sizeof(err)), -EINVAL);
	cr_assert_str_eq(err, "deep:1: topic filter has more than 1024 levels");
	text[strlen(text) - 2] = '\0';	/* exactly the limit is fine */
	cr_assert_eq(smq_acl_parse(text, strlen(text), "deep", &acl, err, sizeof(err)), 0, "%s",
		     err);
	free(text);
}

Test(core_acl, comments_blanks_whitespace_and_spaces_in_filters)
{
	load("# a comment\n"
	     "\n"
	     "   \t\n"
	     "   # an indented comment\n"
	     "  topic   write   x/y  \t\n"
	     "topic read a b/c  d\n"
	     "topic read\n");		/* one word: it is the filter, readwrite */
	cr_assert(can_pub(NULL, "c", "x/y"));
	cr_assert_not(can_read(NULL, "c", "x/y"));
	cr_assert(can_read(NULL, "c", "a b/c  d"));
	cr_assert(can_pub(NULL, "c", "read"));
	cr_assert_eq(smq_acl_rule_count(acl), 3);
}

Test(core_acl, load_reads_a_file_and_reports_missing_ones)
{
	int fd;
	const char text[] = "user u\ntopic read f/#\n";

	cr_assert_eq(smq_acl_load("/nonexistent/acl", &acl, err, sizeof(err)), -ENOENT);
	cr_assert_str_eq(err, "/nonexistent/acl: No such file or directory");
	cr_assert_null(acl);
	strcpy(path, "/tmp/smq_acl_XXXXXX");
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);
	cr_assert_eq(smq_acl_load(path, &acl, err, sizeof(err)), 0, "%s", err);
	cr_assert(can_read("u", "c", "f/1"));
	cr_assert_eq(smq_acl_rule_count(acl), 1);
}

Test(core_acl, load_error_names_the_path)
{
	int fd;
	const char text[] = "topic a\nwhat\n";
	char want[128];

	strcpy(path, "/tmp/smq_acl_XXXXXX");
	fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);
	cr_assert_eq(smq_acl_load(path, &acl, err, sizeof(err)), -EINVAL);
	snprintf(want, sizeof(want), "%s:2: unknown keyword 'what' (expected user, topic or pattern)",
		 path);
	cr_assert_str_eq(err, want);
}

Test(core_acl, many_users_and_many_rules)
{
	size_t cap = 1 << 20, n = 0;
	char *text = malloc(cap);
	char t[64];

	for (int u = 0; u < 2000; u++)
		n += (size_t)snprintf(text + n, cap - n, "user u%d\ntopic read u/%d/#\n"
				      "topic write w/%d\n", u, u, u);
	load(text);
	free(text);
	cr_assert_eq(smq_acl_rule_count(acl), 4000);
	for (int u = 0; u < 2000; u += 7) {
		char name[16];

		snprintf(name, sizeof(name), "u%d", u);
		snprintf(t, sizeof(t), "u/%d/x", u);
		cr_assert(can_read(name, "c", t));
		snprintf(t, sizeof(t), "u/%d/x", u + 1);
		cr_assert_not(can_read(name, "c", t));
		snprintf(t, sizeof(t), "w/%d", u);
		cr_assert(can_pub(name, "c", t));
		cr_assert_not(can_read(name, "c", t));
	}
}

/* ---- randomized comparison with a naive reference ---------------------- */

#define R_RULES 10
#define R_DEPTH 3
#define U_MAX 16		/* universe levels */
#define T_MAX 80000		/* universe topics */

struct rrule {
	char filter[48];
	unsigned acc;		/* 1 read, 2 write, 4 deny */
	int section;		/* 0 anonymous, 1 "u1", 2 "u2", 3 pattern */
};

static unsigned rnd(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return (*s >> 16) & 0x7fff;
}

static void rand_filter(unsigned *s, char *out, bool pattern, bool sub_filter)
{
	static const char *lv[] = { "a", "b", "$s", "", "+", "#" };
	static const char *pv[] = { "%u", "%c", "x%u", "%c-%u", "a" };
	static const char *fv[] = { "u1", "c1-u1", "z" };
	int depth = 1 + (int)(rnd(s) % R_DEPTH);

	out[0] = '\0';
	for (int i = 0; i < depth; i++) {
		const char *l = lv[rnd(s) % 6];

		if (pattern && rnd(s) % 3 == 0)
			l = pv[rnd(s) % 5];
		if (sub_filter && rnd(s) % 4 == 0)
			l = fv[rnd(s) % 3];
		if (!strcmp(l, "#") && i != depth - 1)
			l = "+";
		if (!*l && depth == 1)	/* "" is not a filter */
			l = "b";
		if (i)
			strcat(out, "/");
		strcat(out, l);
	}
}

static bool value_ok(const char *v)
{
	return v && *v && !strpbrk(v, "/+#");
}

/* mosquitto 2.0's textual substitution, or false if the rule does not
 * apply; *closed set if it is a deny whose value is refused. */
static bool subst(const struct rrule *r, const char *user, const char *id, char *out,
		  bool *closed)
{
	const char *f = r->filter;
	bool u = strstr(f, "%u") != NULL, c = strstr(f, "%c") != NULL;

	if (r->section != 3) {
		strcpy(out, f);
		return true;
	}
	if (u && !user)
		return false;
	if ((u && !value_ok(user)) || (c && !value_ok(id))) {
		if (r->acc & 4)
			*closed = true;
		return false;
	}
	for (*out = '\0'; *f; f++) {
		if (f[0] == '%' && (f[1] == 'u' || f[1] == 'c')) {
			strcat(out, f[1] == 'u' ? user : id);
			f++;
		} else {
			size_t n = strlen(out);

			out[n] = *f;
			out[n + 1] = '\0';
		}
	}
	return true;
}

struct universe {
	const char *lv[U_MAX];
	int nlv;
	char (*t)[64];
	int n;
};

static void universe_add(struct universe *u, const char *l)
{
	for (int i = 0; i < u->nlv; i++)
		if (!strcmp(u->lv[i], l))
			return;
	cr_assert_lt(u->nlv, U_MAX);
	u->lv[u->nlv++] = l;
}

/* Every topic of 1..R_DEPTH+1 levels over the universe's levels. The
 * caller puts the empty topic first: it is no topic name, but the trie treats
 * a lone empty level like any other level when it compares filters (so
 * "/#" and "+" intersect), erring towards CHECK_EACH. */
static void universe_fill(struct universe *u, char *prefix, int depth)
{
	size_t pl = strlen(prefix);

	for (int i = 0; i < u->nlv; i++) {
		snprintf(prefix + pl, 64 - pl, "%s%s", depth ? "/" : "", u->lv[i]);
		if (prefix[0] || depth) {	/* "" is added by the caller */
			cr_assert_lt(u->n, T_MAX);
			strcpy(u->t[u->n++], prefix);
		}
		if (depth < R_DEPTH)
			universe_fill(u, prefix, depth + 1);
		prefix[pl] = '\0';
	}
}

static bool tmatch(const char *f, const char *t)
{
	if (!*t)	/* one empty level: smq_topic_match() refuses it */
		return !strcmp(f, "#") || !strcmp(f, "+") || !strcmp(f, "+/#") || !strcmp(f, "/#");
	return smq_topic_match((struct smq_str){ (const uint8_t *)f, (uint32_t)strlen(f) },
			       (struct smq_str){ (const uint8_t *)t, (uint32_t)strlen(t) });
}

struct client {
	const char *user, *id;
};

static const char *acl_text;

static void check_client(const struct rrule *rules, int nr, const struct client *cl,
			 struct universe *u, unsigned *seed)
{
	char f[R_RULES][128], buf[64], sf[64];
	bool live[R_RULES] = { 0 }, closed = false;
	int sec = !cl->user ? 0 : !strcmp(cl->user, "u1") ? 1 : !strcmp(cl->user, "u2") ? 2 : -1;
	static bool hit[R_RULES][T_MAX], fh[T_MAX];
	struct smq_acl_who w = who_of(cl->user, cl->id);
	const struct smq_acl_user *h = smq_acl_user(acl, &w);

	for (int i = 0; i < nr; i++)
		if (rules[i].section == 3 || rules[i].section == sec)
			live[i] = subst(&rules[i], cl->user, cl->id, f[i], &closed);
	/* the universe: the rules' levels, the client's values, one fresh level */
	u->nlv = 0;
	universe_add(u, "a");
	universe_add(u, "b");
	universe_add(u, "$s");
	universe_add(u, "");
	universe_add(u, "z");
	universe_add(u, "u1");		/* the filters' literals */
	universe_add(u, "c1-u1");
	for (int i = 0; i < 4; i++) {	/* the patterns' levels, substituted */
		static char v[4][40];
		bool ok = i == 1 ? value_ok(cl->id) : value_ok(cl->user) && (i != 3 ||
									     value_ok(cl->id));

		if (!ok)
			continue;
		snprintf(v[i], sizeof(v[i]), "%s%s%s", i == 2 ? "x" : "", i == 1 || i == 3 ? cl->id :
			 cl->user, i == 3 ? "-" : "");
		if (i == 3)
			strncat(v[i], cl->user, sizeof(v[i]) - strlen(v[i]) - 1);
		universe_add(u, v[i]);
	}
	u->n = 1;
	u->t[0][0] = '\0';
	buf[0] = '\0';
	universe_fill(u, buf, 0);
	for (int i = 0; i < nr; i++)
		for (int t = 0; t < u->n; t++)
			hit[i][t] = live[i] && tmatch(f[i], u->t[t]);

	for (int t = 1; t < u->n; t++) {	/* not "": checks refuse it */
		unsigned acc = 0;

		for (int i = 0; i < nr; i++)
			acc |= hit[i][t] ? rules[i].acc : 0;
		bool rd = !closed && !(acc & 4) && (acc & 1), wr = !closed && !(acc & 4) && (acc & 2);

		cr_assert_eq(smq_acl_can_read(acl, h, &w, u->t[t], strlen(u->t[t])), rd,
			     "read '%s' user %s id %s\n%s", u->t[t], cl->user ? cl->user : "-", cl->id,
			     acl_text);
		cr_assert_eq(smq_acl_can_publish(acl, h, &w, u->t[t], strlen(u->t[t])), wr,
			     "write '%s' user %s id %s\n%s", u->t[t], cl->user ? cl->user : "-", cl->id,
			     acl_text);
	}

	for (int k = 0; k < 20; k++) {
		bool r_isect = false, r_cover = false, d_isect = false, d_cover = false;
		enum smq_acl_sub want;

		rand_filter(seed, sf, false, true);
		for (int t = 0; t < u->n; t++)
			fh[t] = tmatch(sf, u->t[t]);
		for (int i = 0; i < nr; i++) {
			bool is = false, co = true;

			for (int t = 0; t < u->n; t++) {
				is |= fh[t] && hit[i][t];
				co &= !fh[t] || hit[i][t];
			}
			if (rules[i].acc & 4) {
				d_isect |= is;
				d_cover |= co && live[i];
			} else if (rules[i].acc & 1) {
				r_isect |= is;
				r_cover |= co && live[i];
			}
		}
		if (closed || d_cover || !r_isect)
			want = SMQ_ACL_SUB_DENY;
		else if (r_cover && !d_isect)
			want = SMQ_ACL_SUB_ALL_READABLE;
		else
			want = SMQ_ACL_SUB_CHECK_EACH;
		cr_assert_eq(smq_acl_subscribe(acl, h, &w, sf, strlen(sf)), want,
			     "subscribe '%s' user %s id %s\n%s", sf, cl->user ? cl->user : "-", cl->id,
			     acl_text);
	}
}

Test(core_acl, random_rules_match_the_naive_reference, .timeout = 120)
{
	static const char *acc_words[] = { "read", "write", "readwrite", "deny" };
	static const unsigned acc_bits[] = { 1, 2, 3, 4 };
	static const struct client clients[] = {
		{ NULL, "c1" }, { "u1", "c1" }, { "u2", "c1" }, { "u1", "$s" },
		{ "u3", "c1" }, { "", "c1" }, { "a/b", "c1" }, { "u1", "+" },
		{ "#", "c2" }, { "u1", "" },
	};
	struct universe u = { .t = malloc(sizeof(*u.t) * T_MAX) };
	unsigned seed = 12345;

	for (int iter = 0; iter < 25; iter++) {
		struct rrule rules[R_RULES];
		char text[2048];
		size_t n = 0;
		int nr = 3 + (int)(rnd(&seed) % (R_RULES - 3));

		for (int i = 0; i < nr; i++) {
			int a = (int)(rnd(&seed) % 4);

			rules[i].section = (int)(rnd(&seed) % 4);
			rules[i].acc = acc_bits[a];
			rand_filter(&seed, rules[i].filter, rules[i].section == 3, false);
		}
		/* anonymous first, then u1, then u2; patterns interleaved */
		for (int s = 0; s < 3; s++) {
			if (s)
				n += (size_t)snprintf(text + n, sizeof(text) - n, "user u%d\n", s);
			for (int i = 0; i < nr; i++) {
				int a = rules[i].acc == 1 ? 0 : rules[i].acc == 2 ? 1 :
					rules[i].acc == 3 ? 2 : 3;

				if (rules[i].section == s || (rules[i].section == 3 && i % 3 == s))
					n += (size_t)snprintf(text + n, sizeof(text) - n, "%s %s %s\n",
							      rules[i].section == 3 ? "pattern" : "topic",
							      acc_words[a], rules[i].filter);
			}
		}
		load(text);
		acl_text = text;
		cr_assert_eq(smq_acl_rule_count(acl), (size_t)nr);
		for (size_t c = 0; c < sizeof(clients) / sizeof(clients[0]); c++)
			check_client(rules, nr, &clients[c], &u, &seed);
	}
	free(u.t);
}
