/* pub.c - shardmq-pub: publish one message, a file, or stdin line by line.
 *
 * The flags follow mosquitto_pub, so scripts move over unchanged; the exit
 * status says what went wrong (see usage()). Every message is published
 * and waited for (QoS 0: written; 1: PUBACK; 2: PUBCOMP) before the next,
 * and the connection ends with DISCONNECT, so the will is never sent by a
 * normal run.
 *
 * Left to others: the protocol and the socket (net/clientio.c). The option
 * parsing shared with shardmq-sub is repeated in cmd/sub.c: the Makefile
 * links one source file per tool.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/topic.h"
#include "net/clientio.h"

enum {
	EXIT_USAGE = 1,		/* bad arguments */
	EXIT_CONN = 2,		/* could not connect, or the connection broke */
	EXIT_PROTO = 3,		/* the broker refused (CONNACK, PUBACK...) or broke the protocol */
};

enum mode { MODE_NONE, MODE_MSG, MODE_FILE, MODE_LINES, MODE_NULL, MODE_STDIN };

struct conf {
	const char *host;
	unsigned port;
	struct smq_client_opts opts;
	struct smq_client_will will;
	struct smq_str password;
	char id_buf[32];
	const char *topic;
	enum mode mode;
	const char *arg;	/* -m message or -f path */
	uint8_t qos;
	bool retain;
};

static const char *prog = "shardmq-pub";

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: %s [-h host] [-p port] [-V 31|311|5] [-i id] [-u user] [-P password]\n"
		"                   [-k keepalive] [-c] [-x session-expiry] [-q qos] [-r]\n"
		"                   [--will-topic t [--will-payload p] [--will-qos q] [--will-retain]]\n"
		"                   -t topic {-m message | -f file | -l | -n | -s}\n"
		"\n"
		" -h, --host       broker host (localhost)       -p, --port     port (1883)\n"
		" -V, --protocol-version 31, 311 or 5 (311)      -i, --id       client id\n"
		" -u, --username   user name                     -P, --pw       password\n"
		" -k, --keepalive  seconds, 0 = off (60)         -c, --disable-clean-session\n"
		" -x               session expiry, seconds (5.0; -1 = never, the default with -c)\n"
		" -t, --topic      topic to publish to           -q, --qos      0, 1 or 2 (0)\n"
		" -r, --retain     retain the message\n"
		" -m, --message    the payload                   -f, --file     payload from a file\n"
		" -l, --stdin-line one message per line of stdin -s, --stdin-file  all of stdin\n"
		" -n, --null-message  an empty payload\n"
		"     --will-topic, --will-payload, --will-qos, --will-retain: the will message\n"
		"     --help       this text\n"
		"\n"
		"Exit status: 0 success; 1 bad arguments; 2 connection failed or lost;\n"
		"3 the broker refused the connection or a message, or broke the protocol.\n",
		prog);
}

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Report a usage error; returns the exit status for it. */
static int bad(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nUse '%s --help' to see usage.\n", prog);
	return EXIT_USAGE;
}

static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
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

static int set_mode(struct conf *cf, enum mode m, const char *arg)
{
	if (cf->mode != MODE_NONE)
		return bad("only one of -m, -f, -l, -n, -s may be given");
	cf->mode = m;
	cf->arg = arg;
	return 0;
}

enum { OPT_HELP = 256, OPT_WT, OPT_WP, OPT_WQ, OPT_WR };

static const struct option longopts[] = {
	{ "host", required_argument, NULL, 'h' },
	{ "port", required_argument, NULL, 'p' },
	{ "protocol-version", required_argument, NULL, 'V' },
	{ "id", required_argument, NULL, 'i' },
	{ "username", required_argument, NULL, 'u' },
	{ "pw", required_argument, NULL, 'P' },
	{ "keepalive", required_argument, NULL, 'k' },
	{ "disable-clean-session", no_argument, NULL, 'c' },
	{ "topic", required_argument, NULL, 't' },
	{ "qos", required_argument, NULL, 'q' },
	{ "retain", no_argument, NULL, 'r' },
	{ "message", required_argument, NULL, 'm' },
	{ "file", required_argument, NULL, 'f' },
	{ "stdin-line", no_argument, NULL, 'l' },
	{ "stdin-file", no_argument, NULL, 's' },
	{ "null-message", no_argument, NULL, 'n' },
	{ "will-topic", required_argument, NULL, OPT_WT },
	{ "will-payload", required_argument, NULL, OPT_WP },
	{ "will-qos", required_argument, NULL, OPT_WQ },
	{ "will-retain", no_argument, NULL, OPT_WR },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 },
};

/* Options every MQTT tool shares. Returns 0, -1 (not one of them), or an
 * exit status for a bad value. */
static int common_opt(struct conf *cf, int o, const char *arg, bool *expiry_set)
{
	unsigned long v;

	switch (o) {
	case 'h':
		cf->host = arg;
		return 0;
	case 'p':
		if (!parse_uint(arg, 65535, &v) || !v)
			return bad("invalid port '%s'", arg);
		cf->port = (unsigned)v;
		return 0;
	case 'V':
		return parse_version(arg, &cf->opts.version) ? 0
			: bad("unknown protocol version '%s' (31, 311 or 5)", arg);
	case 'i':
		cf->opts.client_id = arg;
		return 0;
	case 'u':
		cf->opts.username = arg;
		return 0;
	case 'P':
		cf->password = (struct smq_str){ (const uint8_t *)arg, (uint32_t)strlen(arg) };
		cf->opts.password = &cf->password;
		return 0;
	case 'k':
		if (!parse_uint(arg, 65535, &v))
			return bad("invalid keepalive '%s'", arg);
		cf->opts.keepalive = (uint16_t)v;
		return 0;
	case 'c':
		cf->opts.clean = false;
		return 0;
	case 'x':
		*expiry_set = true;
		if (!strcmp(arg, "-1") || !strcmp(arg, "∞"))
			v = 0xFFFFFFFFul;
		else if (!parse_uint(arg, 0xFFFFFFFFul, &v))
			return bad("invalid session expiry '%s'", arg);
		cf->opts.session_expiry = (uint32_t)v;
		return 0;
	case OPT_WT:
		cf->will.topic = arg;
		cf->opts.will = &cf->will;
		return 0;
	case OPT_WP:
		cf->will.payload = (struct smq_str){ (const uint8_t *)arg, (uint32_t)strlen(arg) };
		return 0;
	case OPT_WQ:
		if (!parse_uint(arg, 2, &v))
			return bad("invalid will QoS '%s'", arg);
		cf->will.qos = (uint8_t)v;
		return 0;
	case OPT_WR:
		cf->will.retain = true;
		return 0;
	}
	return -1;
}

/* Cross-checks of the shared options, once all are read. */
static int common_check(struct conf *cf, bool expiry_set)
{
	struct smq_str wt;

	if (!cf->opts.clean && !cf->opts.client_id)
		return bad("-c needs a client id (-i)");
	if (!cf->opts.clean && !expiry_set)
		cf->opts.session_expiry = 0xFFFFFFFFu;	/* as mosquitto: -c keeps it for ever */
	if (cf->opts.version != SMQ_V5)
		cf->opts.session_expiry = 0;
	if ((cf->will.payload.len || cf->will.qos || cf->will.retain) && !cf->will.topic)
		return bad("--will-payload/qos/retain need --will-topic");
	if (cf->will.topic) {
		wt = (struct smq_str){ (const uint8_t *)cf->will.topic,
				       (uint32_t)strlen(cf->will.topic) };
		if (!smq_topic_name_valid(wt))
			return bad("invalid will topic '%s'", cf->will.topic);
	}
	if (cf->opts.password && !cf->opts.username && cf->opts.version != SMQ_V5)
		return bad("-P needs -u before MQTT 5");
	if (!cf->opts.client_id) {
		snprintf(cf->id_buf, sizeof(cf->id_buf), "shardmq-pub-%ld", (long)getpid());
		cf->opts.client_id = cf->id_buf;
	}
	if (cf->opts.version == SMQ_V31 && strlen(cf->opts.client_id) > 23)
		return bad("client id '%s' is longer than MQTT 3.1 allows (23)", cf->opts.client_id);
	return 0;
}

static int parse(struct conf *cf, int argc, char **argv)
{
	bool expiry_set = false;
	unsigned long v;
	int o, ret;

	while ((o = getopt_long(argc, argv, "h:p:V:i:u:P:k:cx:t:q:rm:f:lsn", longopts, NULL)) != -1) {
		ret = common_opt(cf, o, optarg, &expiry_set);
		if (ret >= 0) {
			if (ret)
				return ret;
			continue;
		}
		switch (o) {
		case 't':
			cf->topic = optarg;
			break;
		case 'q':
			if (!parse_uint(optarg, 2, &v))
				return bad("invalid QoS '%s' (0, 1 or 2)", optarg);
			cf->qos = (uint8_t)v;
			break;
		case 'r':
			cf->retain = true;
			break;
		case 'm':
		case 'f':
		case 'l':
		case 'n':
		case 's':
			ret = set_mode(cf, o == 'm' ? MODE_MSG : o == 'f' ? MODE_FILE
					 : o == 'l' ? MODE_LINES : o == 'n' ? MODE_NULL : MODE_STDIN,
				       optarg);
			if (ret)
				return ret;
			break;
		case OPT_HELP:
			usage(stdout);
			exit(0);
		default:
			return bad("unknown option");
		}
	}
	if (optind < argc)
		return bad("unexpected argument '%s'", argv[optind]);
	if (!cf->topic)
		return bad("a topic (-t) is required");
	if (!smq_topic_name_valid((struct smq_str){ (const uint8_t *)cf->topic,
						    (uint32_t)strlen(cf->topic) }))
		return bad("invalid publish topic '%s' (no '+' or '#')", cf->topic);
	if (cf->mode == MODE_NONE)
		return bad("a message is required: -m, -f, -l, -n or -s");
	return common_check(cf, expiry_set);
}

/* ---- running ----------------------------------------------------------- */

static int fail(const char *what, int err)
{
	fprintf(stderr, "%s: %s: %s\n", prog, what, smq_client_strerror(err));
	if (err == -EINVAL)
		return EXIT_USAGE;
	if (err <= -0x80 || err == -EMSGSIZE)
		return EXIT_PROTO;
	return EXIT_CONN;
}

/* Read all of @fd into a new buffer; -errno on failure. */
static int slurp(int fd, uint8_t **out, size_t *len)
{
	size_t cap = 4096, n = 0;
	uint8_t *p = malloc(cap), *q;
	ssize_t r;

	while (p) {
		if (n == cap) {
			q = realloc(p, cap *= 2);
			if (!q)
				break;
			p = q;
		}
		r = read(fd, p + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(p);
			return -errno;
		}
		if (r == 0) {
			*out = p;
			*len = n;
			return 0;
		}
		n += (size_t)r;
	}
	free(p);
	return -ENOMEM;
}

static int publish(struct smq_clientio *h, const struct conf *cf, const uint8_t *p, size_t n)
{
	int ret = smq_clientio_publish(h, cf->topic, (struct smq_str){ p, (uint32_t)n }, cf->qos,
				       cf->retain, NULL, -1);

	return ret ? fail("publish", ret) : 0;
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
			return fail("connection", ret);
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
			return fail("stdin", -EMSGSIZE);
	}
}

static int run(struct smq_clientio *h, const struct conf *cf)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int fd, ret;

	switch (cf->mode) {
	case MODE_MSG:
		return publish(h, cf, (const uint8_t *)cf->arg, strlen(cf->arg));
	case MODE_NULL:
		return publish(h, cf, NULL, 0);
	case MODE_LINES:
		return run_lines(h, cf);
	default:
		break;
	}
	fd = cf->mode == MODE_FILE ? open(cf->arg, O_RDONLY | O_CLOEXEC) : 0;
	if (fd < 0) {
		fprintf(stderr, "%s: cannot open '%s': %s\n", prog, cf->arg, strerror(errno));
		return EXIT_USAGE;
	}
	ret = slurp(fd, &data, &len);
	if (fd)
		close(fd);
	if (ret)
		return fail("reading the message", ret);
	ret = publish(h, cf, data, len);
	free(data);
	return ret;
}

int main(int argc, char **argv)
{
	struct conf cf = { .host = "localhost", .port = 1883,
			   .opts = { .version = SMQ_V311, .clean = true, .keepalive = 60 } };
	struct smq_clientio *h;
	int ret;

	ret = parse(&cf, argc, argv);
	if (ret)
		return ret;
	h = smq_clientio_new(cf.host, (uint16_t)cf.port, &cf.opts);
	if (!h)
		return fail("client", -errno);
	ret = smq_clientio_connect(h, 10000);
	if (ret) {
		ret = fail("connect", ret);
		goto out_free;
	}
	ret = run(h, &cf);
	if (!ret) {
		ret = smq_clientio_disconnect(h, 0, 10000);
		if (ret)
			ret = fail("disconnect", ret);
	}
out_free:
	smq_clientio_free(h);
	return ret;
}
