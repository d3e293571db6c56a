/* test_topic.c - topic name / filter validation, "$share/" parsing and the
 * reference matcher, against the examples of MQTT 3.1.1 and 5.0 section 4.7
 * (and 4.8.2 for shared subscriptions). */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <errno.h>
#include <string.h>

#include "core/topic.h"

static struct smq_str S(const char *s)
{
	return (struct smq_str){ (const uint8_t *)s, (uint32_t)strlen(s) };
}

/* Criterion re-executes the binary for each test, so parameters must not
 * hold pointers: strings live inside the structs. */
struct match_case {
	char filter[40];
	char topic[40];
	bool match;
};

/* Every example of 4.7.1.2, 4.7.1.3, 4.7.2 and 4.7.3 (same text in 3.1.1
 * and 5.0), plus the edges the spec implies. */
ParameterizedTestParameters(core_topic, match_follows_spec_examples)
{
	static struct match_case cases[] = {
		/* 4.7.1.2 multi-level wildcard */
		{ "sport/tennis/player1/#", "sport/tennis/player1", true },
		{ "sport/tennis/player1/#", "sport/tennis/player1/ranking", true },
		{ "sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true },
		{ "sport/#", "sport", true },
		{ "#", "sport/tennis/player1", true },
		{ "#", "/", true },
		{ "sport/tennis/#", "sport/tennis/player2", true },
		{ "sport/tennis/#", "sport/tennisx", false },
		{ "sport/tennis/player1/#", "sport/tennis", false },
		/* 4.7.1.3 single-level wildcard */
		{ "sport/tennis/+", "sport/tennis/player1", true },
		{ "sport/tennis/+", "sport/tennis/player2", true },
		{ "sport/tennis/+", "sport/tennis/player1/ranking", false },
		{ "sport/+", "sport", false },
		{ "sport/+", "sport/", true },
		{ "+", "sport", true },
		{ "+/tennis/#", "sport/tennis/player1", true },
		{ "+/tennis/#", "sport/tennis", true },
		{ "sport/+/player1", "sport/tennis/player1", true },
		{ "sport/+/player1", "sport/tennis/player2", false },
		{ "+/+", "/finance", true },
		{ "/+", "/finance", true },
		{ "+", "/finance", false },
		/* 4.7.2 topics beginning with $ [MQTT-4.7.2-1] */
		{ "#", "$SYS/broker/clients", false },
		{ "+/monitor/Clients", "$SYS/monitor/Clients", false },
		{ "$SYS/#", "$SYS/monitor/Clients", true },
		{ "$SYS/#", "$SYS", true },
		{ "$SYS/monitor/+", "$SYS/monitor/Clients", true },
		{ "+", "$SYS", false },
		{ "#", "$", false },
		{ "a/#", "a/$b", true },		/* only the first level counts */
		{ "a/+", "a/$b", true },
		/* 4.7.3 topic semantics: byte-exact, empty levels */
		{ "ACCOUNTS", "Accounts", false },
		{ "Accounts payable", "Accounts payable", true },
		{ "/finance", "finance", false },
		{ "finance", "/finance", false },
		{ "/", "/", true },
		{ "+/+", "/", true },
		{ "+", "/", false },
		{ "a//b", "a//b", true },
		{ "a/+/b", "a//b", true },
		{ "a/b", "a//b", false },
		{ "a/+", "a", false },
		{ "a/+/#", "a/b", true },
		{ "a/+/#", "a", false },
		{ "a/b/c", "a/b", false },
		{ "a/b", "a/b/c", false },
		{ "a/b/", "a/b", false },
		{ "a/b", "a/b/", false },
		{ "a/b/#", "a/b/", true },
		{ "caf\xc3\xa9", "caf\xc3\xa9", true },
		{ "caf\xc3\xa9", "cafe\xcc\x81", false },	/* no normalisation */
	};

	return cr_make_param_array(struct match_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct match_case *c, core_topic, match_follows_spec_examples)
{
	cr_assert(smq_topic_filter_valid(S(c->filter)), "filter %s", c->filter);
	cr_assert(smq_topic_name_valid(S(c->topic)), "topic %s", c->topic);
	cr_expect_eq(smq_topic_match(S(c->filter), S(c->topic)), c->match,
		     "filter '%s' topic '%s' expected %d", c->filter, c->topic, c->match);
}

struct valid_case {
	char s[40];
	bool valid;
};

ParameterizedTestParameters(core_topic, filter_validity_follows_4_7_1)
{
	static struct valid_case cases[] = {
		{ "#", true },
		{ "sport/tennis/#", true },
		{ "sport/tennis#", false },		/* [MQTT-4.7.1-2] */
		{ "sport/tennis/#/ranking", false },
		{ "#/", false },
		{ "##", false },
		{ "+", true },
		{ "+/tennis/#", true },
		{ "sport+", false },			/* [MQTT-4.7.1-3] */
		{ "sport/+/player1", true },
		{ "+a", false },
		{ "a/+b/c", false },
		{ "++", false },
		{ "+/+", true },
		{ "/", true },
		{ "//", true },
		{ "/+/", true },
		{ "a//b", true },
		{ "$SYS/#", true },
		{ "$share/g/a/+", true },
		{ "", false },				/* [MQTT-4.7.3-1] */
	};

	return cr_make_param_array(struct valid_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct valid_case *c, core_topic, filter_validity_follows_4_7_1)
{
	cr_expect_eq(smq_topic_filter_valid(S(c->s)), c->valid, "filter '%s'", c->s);
}

ParameterizedTestParameters(core_topic, name_validity_follows_4_7_3)
{
	static struct valid_case cases[] = {
		{ "sport/tennis/player1", true },
		{ "/", true },
		{ "//", true },
		{ "a//b", true },
		{ "$SYS/x", true },
		{ "Accounts payable", true },
		{ "", false },			/* [MQTT-4.7.3-1] */
		{ "sport/+", false },		/* [MQTT-3.3.2-2] */
		{ "sport/#", false },
		{ "a+b", false },		/* wildcard chars anywhere in a name */
		{ "a#", false },
	};

	return cr_make_param_array(struct valid_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct valid_case *c, core_topic, name_validity_follows_4_7_3)
{
	cr_expect_eq(smq_topic_name_valid(S(c->s)), c->valid, "name '%s'", c->s);
}

Test(core_topic, nul_byte_rejected_in_names_and_filters)
{
	static const uint8_t name[] = { 'a', '/', 0, 'b' };
	struct smq_str s = { name, sizeof(name) };

	cr_expect_not(smq_topic_name_valid(s));
	cr_expect_not(smq_topic_filter_valid(s));
}

Test(core_topic, length_limit_is_65535_bytes)
{
	static uint8_t buf[65536];
	struct smq_str s = { buf, 65535 };

	memset(buf, 'a', sizeof(buf));
	cr_expect(smq_topic_name_valid(s));
	cr_expect(smq_topic_filter_valid(s));
	s.len = 65536;
	cr_expect_not(smq_topic_name_valid(s));
	cr_expect_not(smq_topic_filter_valid(s));
}

Test(core_topic, is_wild_detects_wildcard_levels)
{
	cr_expect(smq_topic_is_wild(S("a/+/b")));
	cr_expect(smq_topic_is_wild(S("#")));
	cr_expect_not(smq_topic_is_wild(S("a/b")));
	cr_expect_not(smq_topic_is_wild(S("$share/g/a")));
}

struct shared_case {
	char filter[40];
	int ret;
	char group[16];
	char inner[24];
};

ParameterizedTestParameters(core_topic, parse_shared_follows_4_8_2)
{
	static struct shared_case cases[] = {
		{ "$share/consumer1/sport/tennis/+", 0, "consumer1", "sport/tennis/+" },
		{ "$share/consumer2/sport/tennis/+", 0, "consumer2", "sport/tennis/+" },
		{ "$share/consumer1//finance", 0, "consumer1", "/finance" },
		{ "$share/g/#", 0, "g", "#" },
		{ "$share/g/$SYS/#", 0, "g", "$SYS/#" },
		{ "$share/g//", 0, "g", "/" },
		{ "$share//a", -EINVAL, "", "" },		/* [MQTT-4.8.2-1] */
		{ "$share/g+/a", -EINVAL, "", "" },		/* [MQTT-4.8.2-2] */
		{ "$share/g#/a", -EINVAL, "", "" },
		{ "$share/+/a", -EINVAL, "", "" },
		{ "$share/g", -EINVAL, "", "" },		/* no filter */
		{ "$share/g/", -EINVAL, "", "" },		/* empty filter */
		{ "$share/", -EINVAL, "", "" },
		{ "$share/g/a#", -EINVAL, "", "" },		/* inner invalid */
		{ "$share", 1, "", "" },			/* ordinary filters */
		{ "$shared/g/a", 1, "", "" },
		{ "$SHARE/g/a", 1, "", "" },
		{ "a/$share/g/a", 1, "", "" },
		{ "sport/#", 1, "", "" },
	};

	return cr_make_param_array(struct shared_case, cases, sizeof(cases) / sizeof(cases[0]));
}

ParameterizedTest(struct shared_case *c, core_topic, parse_shared_follows_4_8_2)
{
	struct smq_str g = { NULL, 0 }, in = { NULL, 0 };
	int ret = smq_topic_parse_shared(S(c->filter), &g, &in);

	cr_assert_eq(ret, c->ret, "'%s': got %d want %d", c->filter, ret, c->ret);
	if (ret != 0)
		return;
	cr_expect_eq(g.len, strlen(c->group));
	cr_expect_arr_eq(g.p, c->group, g.len);
	cr_expect_eq(in.len, strlen(c->inner));
	cr_expect_arr_eq(in.p, c->inner, in.len);
}

Test(core_topic, match_is_false_for_empty_inputs)
{
	struct smq_str empty = { NULL, 0 };

	cr_expect_not(smq_topic_match(empty, S("a")));
	cr_expect_not(smq_topic_match(S("#"), empty));
}

/* A wildcard or U+0000 is found wherever it sits: in the words checked
 * eight bytes at a time and in the tail. */
Test(core_topic, forbidden_bytes_found_at_every_position)
{
	static const uint8_t bad[] = { '+', '#', 0 };
	uint8_t buf[21];

	for (unsigned b = 0; b < sizeof(bad); b++) {
		for (unsigned pos = 0; pos < sizeof(buf); pos++) {
			memset(buf, 'a', sizeof(buf));
			buf[pos] = bad[b];
			cr_expect_not(smq_topic_name_valid((struct smq_str){ buf, sizeof(buf) }),
				      "byte %#x at %u", bad[b], pos);
		}
	}
	memset(buf, 0x7f, sizeof(buf));	/* neighbours of the bytes looked for */
	buf[3] = '*';
	buf[10] = '$';
	buf[17] = 0x80;
	cr_expect(smq_topic_name_valid((struct smq_str){ buf, sizeof(buf) }));
}
