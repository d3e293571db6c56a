/* toolopts.c - the connection options, usage errors and connection setup
 * shared by shardmq-pub and shardmq-sub (see toolopts.h).
 *
 * Invariant: every usage error goes through smq_tool_bad() and every
 * connection error through smq_tool_fail(), so the tools word their
 * messages and pick their exit statuses one way.
 *
 * Left to the tools: their own options, their --help text around the shared
 * pieces, and what they do once connected. Left to net/clientio.c: the
 * protocol and the socket.
 */
#include "cmd/lib/toolopts.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/topic.h"

static const char *prog = "shardmq-tool";

void smq_tool_init(struct smq_tool_conn *c, const char *name)
{
	prog = name;
	memset(c, 0, sizeof(*c));
	c->host = "localhost";
	c->port = 1883;
	c->opts.version = SMQ_V311;
	c->opts.clean = true;
	c->opts.keepalive = 60;
}

int smq_tool_bad(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nUse '%s --help' to see usage.\n", prog);
	return SMQ_TOOL_EXIT_USAGE;
}

bool smq_tool_parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(s, &end, 10);
	return *s && !*end && !errno && *out <= max && s[0] != '-';
}

static bool parse_version(const char *s, uint8_t *v)
{
	if (!strcmp(s, "31") || !strcmp(s, "mqttv31"))
		*v = SMQ_V31;
	else if (!strcmp(s, "311") || !strcmp(s, "mqttv311"))
		*v = SMQ_V311;
	else if (!strcmp(s, "5") || !strcmp(s, "mqttv5"))
		*v = SMQ_V5;
	else
		return false;
	return true;
}

static struct smq_str str(const char *s)
{
	return (struct smq_str){ (const uint8_t *)s, (uint32_t)strlen(s) };
}

/* -x: seconds, or -1 / "∞" for never (as mosquitto). */
static int set_expiry(struct smq_tool_conn *c, const char *arg)
{
	unsigned long v;

	c->expiry_set = true;
	if (!strcmp(arg, "-1") || !strcmp(arg, "∞"))
		v = 0xFFFFFFFFul;
	else if (!smq_tool_parse_uint(arg, 0xFFFFFFFFul, &v))
		return smq_tool_bad("invalid session expiry '%s'", arg);
	c->opts.session_expiry = (uint32_t)v;
	return 0;
}

/* The --will-* options: 0, -1 (not one of them) or an exit status. */
static int will_opt(struct smq_tool_conn *c, int o, const char *arg)
{
	unsigned long v;

	switch (o) {
	case SMQ_TOOL_OPT_WILL_TOPIC:
		c->will.topic = arg;
		c->opts.will = &c->will;
		return 0;
	case SMQ_TOOL_OPT_WILL_PAYLOAD:
		c->will.payload = str(arg);
		return 0;
	case SMQ_TOOL_OPT_WILL_QOS:
		if (!smq_tool_parse_uint(arg, 2, &v))
			return smq_tool_bad("invalid will QoS '%s'", arg);
		c->will.qos = (uint8_t)v;
		return 0;
	case SMQ_TOOL_OPT_WILL_RETAIN:
		c->will.retain = true;
		return 0;
	}
	return -1;
}

/* The shared options: 0, -1 (not one of them) or an exit status. */
static int conn_opt(struct smq_tool_conn *c, int o, const char *arg)
{
	unsigned long v;

	switch (o) {
	case 'h':
		c->host = arg;
		return 0;
	case 'p':
		if (!smq_tool_parse_uint(arg, 65535, &v) || !v)
			return smq_tool_bad("invalid port '%s'", arg);
		c->port = (unsigned)v;
		return 0;
	case 'V':
		return parse_version(arg, &c->opts.version) ? 0
			: smq_tool_bad("unknown protocol version '%s' (31, 311 or 5)", arg);
	case 'i':
		c->opts.client_id = arg;
		return 0;
	case 'u':
		c->opts.username = arg;
		return 0;
	case 'P':
		c->password = str(arg);
		c->opts.password = &c->password;
		return 0;
	case 'k':
		if (!smq_tool_parse_uint(arg, 65535, &v))
			return smq_tool_bad("invalid keepalive '%s'", arg);
		c->opts.keepalive = (uint16_t)v;
		return 0;
	case 'c':
		c->opts.clean = false;
		return 0;
	case 'x':
		return set_expiry(c, arg);
	}
	return will_opt(c, o, arg);
}

int smq_tool_parse(struct smq_tool_conn *c, int argc, char **argv, const char *shortopts,
		   const struct option *longopts, smq_tool_opt_fn tool_opt, void *ctx)
{
	int o, ret;

	while ((o = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
		ret = conn_opt(c, o, optarg);
		if (ret < 0)
			ret = tool_opt(ctx, o, optarg);
		if (ret < 0)
			return smq_tool_bad("unknown option");
		if (ret)
			return ret;
	}
	if (optind < argc)
		return smq_tool_bad("unexpected argument '%s'", argv[optind]);
	return 0;
}

/* The will needs its topic, and the topic must be one a PUBLISH could use. */
static int check_will(const struct smq_tool_conn *c)
{
	if ((c->will.payload.len || c->will.qos || c->will.retain) && !c->will.topic)
		return smq_tool_bad("--will-payload/qos/retain need --will-topic");
	if (c->will.topic && !smq_topic_name_valid(str(c->will.topic)))
		return smq_tool_bad("invalid will topic '%s'", c->will.topic);
	return 0;
}

int smq_tool_check(struct smq_tool_conn *c)
{
	int ret;

	if (!c->opts.clean && !c->opts.client_id)
		return smq_tool_bad("-c needs a client id (-i)");
	if (!c->opts.clean && !c->expiry_set)
		c->opts.session_expiry = 0xFFFFFFFFu;	/* as mosquitto: -c keeps it for ever */
	if (c->opts.version != SMQ_V5)
		c->opts.session_expiry = 0;
	ret = check_will(c);
	if (ret)
		return ret;
	if (c->opts.password && !c->opts.username && c->opts.version != SMQ_V5)
		return smq_tool_bad("-P needs -u before MQTT 5");
	if (!c->opts.client_id) {
		snprintf(c->id_buf, sizeof(c->id_buf), "%s-%ld", prog, (long)getpid());
		c->opts.client_id = c->id_buf;
	}
	if (c->opts.version == SMQ_V31 && strlen(c->opts.client_id) > 23)
		return smq_tool_bad("client id '%s' is longer than MQTT 3.1 allows (23)",
				    c->opts.client_id);
	return 0;
}

int smq_tool_fail(const char *what, int err)
{
	fprintf(stderr, "%s: %s: %s\n", prog, what, smq_client_strerror(err));
	if (err == -EINVAL)
		return SMQ_TOOL_EXIT_USAGE;
	if (err <= -0x80 || err == -EMSGSIZE)
		return SMQ_TOOL_EXIT_PROTO;
	return SMQ_TOOL_EXIT_CONN;
}

int smq_tool_connect(const struct smq_tool_conn *c, struct smq_clientio **out)
{
	struct smq_clientio *h;
	int ret;

	h = smq_clientio_new(c->host, (uint16_t)c->port, &c->opts);
	if (!h)
		return smq_tool_fail("client", -errno);
	ret = smq_clientio_connect(h, 10000);
	if (ret) {
		ret = smq_tool_fail("connect", ret);
		goto out_free;
	}
	*out = h;
	return 0;
out_free:
	smq_clientio_free(h);
	return ret;
}
