/* pub.c - shardmq-pub: publish one message, a file, or stdin line by line.
 *
 * The flags follow mosquitto_pub, so scripts move over unchanged; the exit
 * status says what went wrong (see usage()). Every message is published
 * and waited for (QoS 0: written; 1: PUBACK; 2: PUBCOMP) before the next,
 * and the connection ends with DISCONNECT, so the will is never sent by a
 * normal run. --repeat N publishes the same payload N times on the one
 * connection, --repeat-delay seconds apart (the wait keeps the connection
 * served: keepalive and acknowledgements go on meanwhile).
 *
 * -M sets the QoS 1/2 window of the client library; since each message is
 * waited for, more than one is in flight only while a reconnect re-sends.
 *
 * Left to others: the protocol and the socket (net/clientio.c); the options,
 * messages and connection setup shared with shardmq-sub (cmd/lib/toolopts.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/lib/toolopts.h"
#include "core/topic.h"

enum mode { MODE_NONE, MODE_MSG, MODE_FILE, MODE_LINES, MODE_NULL, MODE_STDIN };

struct conf {
	struct smq_tool_conn conn;
	const char *topic;
	enum mode mode;
	const char *arg;	/* -m message or -f path */
	uint8_t qos;
	bool retain;
	unsigned long repeat;	/* --repeat, >= 1 */
	uint64_t repeat_delay_ms;	/* --repeat-delay */
	const struct smq_props *props;	/* -D publish, or NULL */
};

enum {
	OPT_REPEAT = SMQ_TOOL_OPT_TOOL,
	OPT_REPEAT_DELAY,
};

static const char *prog = "shardmq-pub";

static void usage(FILE *f)
{
	fprintf(f,
		SMQ_TOOL_USAGE_CONN "\n"
		"                   [-q qos] [-r] [--repeat N] [--repeat-delay seconds] [-M inflight]\n"
		SMQ_TOOL_USAGE_WILL
		SMQ_TOOL_USAGE_TLS
		"                   -t topic {-m message | -f file | -l | -n | -s}\n"
		"\n"
		SMQ_TOOL_HELP_CONN
		" -t, --topic      topic to publish to           -q, --qos      0, 1 or 2 (0)\n"
		" -r, --retain     retain the message\n"
		" -m, --message    the payload                   -f, --file     payload from a file\n"
		" -l, --stdin-line one message per line of stdin -s, --stdin-file  all of stdin\n"
		" -n, --null-message  an empty payload\n"
		"     --repeat     publish the message N times (not with -l)\n"
		"     --repeat-delay  seconds between repeats (a decimal number, 0)\n"
		" -M               QoS 1/2 messages in flight at most (20)\n"
		SMQ_TOOL_HELP_TLS
		SMQ_TOOL_HELP_WILL
		"\n"
		"Exit status: 0 success; 1 bad arguments; 2 connection failed or lost;\n"
		"3 the broker refused the connection or a message, or broke the protocol.\n",
		prog);
}

static int set_mode(struct conf *cf, enum mode m, const char *arg)
{
	if (cf->mode != MODE_NONE)
		return smq_tool_bad("only one of -m, -f, -l, -n, -s may be given");
	cf->mode = m;
	cf->arg = arg;
	return 0;
}

static const struct option longopts[] = {
	SMQ_TOOL_LONGOPTS,
	{ "topic", required_argument, NULL, 't' },
	{ "qos", required_argument, NULL, 'q' },
	{ "retain", no_argument, NULL, 'r' },
	{ "message", required_argument, NULL, 'm' },
	{ "file", required_argument, NULL, 'f' },
	{ "stdin-line", no_argument, NULL, 'l' },
	{ "stdin-file", no_argument, NULL, 's' },
	{ "null-message", no_argument, NULL, 'n' },
	{ "repeat", required_argument, NULL, OPT_REPEAT },
	{ "repeat-delay", required_argument, NULL, OPT_REPEAT_DELAY },
	{ NULL, 0, NULL, 0 },
};

/* --repeat-delay: seconds as a decimal number, at most a day. */
static int set_delay(struct conf *cf, const char *arg)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(arg, &end);
	if (!*arg || *end || errno || !(d >= 0 && d <= 86400))
		return smq_tool_bad("invalid --repeat-delay '%s' (seconds, 0 to 86400)", arg);
	cf->repeat_delay_ms = (uint64_t)(d * 1000 + 0.5);
	return 0;
}

/* Options of this tool only (smq_tool_opt_fn on struct conf). */
static int pub_opt(void *ctx, int o, const char *arg)
{
	struct conf *cf = ctx;
	unsigned long v;

	switch (o) {
	case 't':
		cf->topic = arg;
		return 0;
	case 'q':
		if (!smq_tool_parse_uint(arg, 2, &v))
			return smq_tool_bad("invalid QoS '%s' (0, 1 or 2)", arg);
		cf->qos = (uint8_t)v;
		return 0;
	case 'r':
		cf->retain = true;
		return 0;
	case 'm':
		return set_mode(cf, MODE_MSG, arg);
	case 'f':
		return set_mode(cf, MODE_FILE, arg);
	case 'l':
		return set_mode(cf, MODE_LINES, arg);
	case 'n':
		return set_mode(cf, MODE_NULL, arg);
	case 's':
		return set_mode(cf, MODE_STDIN, arg);
	case 'M':
		if (!smq_tool_parse_uint(arg, 65535, &v) || !v)
			return smq_tool_bad("invalid max inflight '%s' (1 to 65535)", arg);
		cf->conn.opts.max_inflight = (uint16_t)v;
		return 0;
	case OPT_REPEAT:
		if (!smq_tool_parse_uint(arg, 0xFFFFFFFFul, &v) || !v)
			return smq_tool_bad("invalid --repeat '%s'", arg);
		cf->repeat = v;
		return 0;
	case OPT_REPEAT_DELAY:
		return set_delay(cf, arg);
	case SMQ_TOOL_OPT_HELP:
		usage(stdout);
		exit(0);
	}
	return -1;
}

static int parse(struct conf *cf, int argc, char **argv)
{
	struct smq_str topic;
	int ret;

	ret = smq_tool_parse(&cf->conn, argc, argv, SMQ_TOOL_SHORTOPTS "t:q:rm:f:lsnM:", longopts,
			     pub_opt, cf);
	if (ret)
		return ret;
	if (cf->topic && cf->conn.url_topic)
		return smq_tool_bad("give the topic once: -t or -L");
	if (!cf->topic)
		cf->topic = cf->conn.url_topic;
	if (!cf->topic)
		return smq_tool_bad("a topic (-t) is required");
	topic = (struct smq_str){ (const uint8_t *)cf->topic, (uint32_t)strlen(cf->topic) };
	if (!smq_topic_name_valid(topic))
		return smq_tool_bad("invalid publish topic '%s' (no '+' or '#')", cf->topic);
	if (cf->mode == MODE_NONE)
		return smq_tool_bad("a message is required: -m, -f, -l, -n or -s");
	if (cf->mode == MODE_LINES && (cf->repeat > 1 || cf->repeat_delay_ms))
		return smq_tool_bad("--repeat and --repeat-delay do not apply to -l");
	ret = smq_tool_check(&cf->conn);
	cf->props = smq_tool_props_get(&cf->conn.props, SMQ_TOOL_P_PUBLISH);
	return ret;
}

/* ---- running ----------------------------------------------------------- */

static int publish(struct smq_clientio *h, const struct conf *cf, const uint8_t *p, size_t n)
{
	int ret = smq_clientio_publish(h, cf->topic, (struct smq_str){ p, (uint32_t)n }, cf->qos,
				       cf->retain, cf->props, -1);

	return ret ? smq_tool_fail("publish", ret) : 0;
}

/* Publish every complete line in buf[0, *len) and keep the rest. */
static int publish_lines(struct smq_clientio *h, const struct conf *cf, uint8_t *buf,
			 size_t *len)
{
	uint8_t *start = buf, *nl;
	int ret;

	while ((nl = memchr(start, '\n', *len - (size_t)(start - buf)))) {
		ret = publish(h, cf, start, (size_t)(nl - start));
		if (ret)
			return ret;
		start = nl + 1;
	}
	*len -= (size_t)(start - buf);
	memmove(buf, start, *len);
	return 0;
}

/* -l: one message per line, keeping the connection alive while stdin is
 * quiet; a last line without its newline is sent too. */
static int run_lines(struct smq_clientio *h, const struct conf *cf)
{
	static uint8_t buf[1 << 20];
	size_t len = 0;
	ssize_t r;
	int ret;

	for (;;) {
		ret = smq_clientio_wait(h, 0, -1);
		if (ret < 0)
			return smq_tool_fail("connection", ret);
		if (ret == 0)
			continue;
		r = read(0, buf + len, sizeof(buf) - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return len ? publish(h, cf, buf, len) : 0;
		len += (size_t)r;
		ret = publish_lines(h, cf, buf, &len);
		if (ret)
			return ret;
		if (len == sizeof(buf))
			return smq_tool_fail("stdin", -EMSGSIZE);
	}
}

/* Wait @ms while serving the connection (keepalive, late acks). */
static int pause_ms(struct smq_clientio *h, uint64_t ms)
{
	uint64_t end = smq_clientio_now_ms() + ms, now;
	int ret;

	while ((now = smq_clientio_now_ms()) < end) {
		ret = smq_clientio_run(h, (int)(end - now));
		if (ret)
			return smq_tool_fail("connection", ret);
	}
	return 0;
}

/* The message, --repeat times. */
static int publish_all(struct smq_clientio *h, const struct conf *cf, const uint8_t *p,
		       size_t n)
{
	unsigned long i;
	int ret = 0;

	for (i = 0; i < cf->repeat && !ret; i++) {
		if (i && cf->repeat_delay_ms)
			ret = pause_ms(h, cf->repeat_delay_ms);
		if (!ret)
			ret = publish(h, cf, p, n);
	}
	return ret;
}

/* The payload of -f or -s: 0 with *@data (the caller frees), or the exit
 * status. */
static int read_payload(const struct conf *cf, uint8_t **data, size_t *len)
{
	int fd = cf->mode == MODE_FILE ? open(cf->arg, O_RDONLY | O_CLOEXEC) : 0;
	int ret;

	if (fd < 0) {
		smq_tool_error("cannot open '%s': %s", cf->arg, strerror(errno));
		return SMQ_TOOL_EXIT_USAGE;
	}
	ret = smq_tool_slurp(fd, data, len);
	if (fd)
		close(fd);
	return ret ? smq_tool_fail("reading the message", ret) : 0;
}

static int run(struct smq_clientio *h, const struct conf *cf)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int ret;

	switch (cf->mode) {
	case MODE_MSG:
		return publish_all(h, cf, (const uint8_t *)cf->arg, strlen(cf->arg));
	case MODE_NULL:
		return publish_all(h, cf, NULL, 0);
	case MODE_LINES:
		return run_lines(h, cf);
	default:
		break;
	}
	ret = read_payload(cf, &data, &len);
	if (!ret)
		ret = publish_all(h, cf, data, len);
	free(data);
	return ret;
}

int main(int argc, char **argv)
{
	struct conf cf = { .mode = MODE_NONE, .repeat = 1 };
	struct smq_clientio *h;
	int ret;

	smq_tool_init(&cf.conn, prog);
	ret = parse(&cf, argc, argv);
	if (!ret)
		ret = smq_tool_connect(&cf.conn, &h);
	if (ret)
		goto out;
	ret = run(h, &cf);
	if (!ret)
		ret = smq_tool_disconnect(&cf.conn, h);
	smq_clientio_free(h);
out:
	smq_tool_fini(&cf.conn);
	return ret;
}
