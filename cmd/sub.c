/* sub.c - shardmq-sub: subscribe and print the messages that arrive.
 *
 * The flags follow mosquitto_sub, so scripts move over unchanged; the exit
 * status says what went wrong (see usage()), 27 for a -W timeout as
 * mosquitto_sub does. Each message is printed and flushed as it arrives:
 * the payload, or "topic payload" with -v, then a newline unless -N.
 * SIGINT/SIGTERM end the run with DISCONNECT and status 0.
 *
 * Not done: reconnecting after a lost connection (status 2 instead), the
 * -F output formats, -R/-T/-U filters, TLS.
 *
 * Left to others: the protocol and the socket (net/clientio.c). The option
 * parsing shared with shardmq-pub is repeated from cmd/pub.c: the Makefile
 * links one source file per tool.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
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
	EXIT_PROTO = 3,		/* the broker refused (CONNACK, SUBACK...) or broke the protocol */
	EXIT_TIMEOUT = 27,	/* -W elapsed (mosquitto_sub's MOSQ_ERR_TIMEOUT) */
};

#define MAX_TOPICS 64

struct conf {
	const char *host;
	unsigned port;
	struct smq_client_opts opts;
	struct smq_client_will will;
	struct smq_str password;
	char id_buf[32];
	struct smq_sub_entry subs[MAX_TOPICS];
	size_t nsubs;
	uint8_t qos;
	bool verbose;
	bool no_newline;
	unsigned long count;	/* -C, 0 = no limit */
	unsigned long timeout;	/* -W seconds, 0 = none */
};

static const char *prog = "shardmq-sub";
static volatile sig_atomic_t stop;

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: %s [-h host] [-p port] [-V 31|311|5] [-i id] [-u user] [-P password]\n"
		"                   [-k keepalive] [-c] [-x session-expiry] [-q qos] [-v] [-N]\n"
		"                   [-C count] [-W seconds]\n"
		"                   [--will-topic t [--will-payload p] [--will-qos q] [--will-retain]]\n"
		"                   -t filter [-t filter ...]\n"
		"\n"
		" -h, --host       broker host (localhost)       -p, --port     port (1883)\n"
		" -V, --protocol-version 31, 311 or 5 (311)      -i, --id       client id\n"
		" -u, --username   user name                     -P, --pw       password\n"
		" -k, --keepalive  seconds, 0 = off (60)         -c, --disable-clean-session\n"
		" -x               session expiry, seconds (5.0; -1 = never, the default with -c)\n"
		" -t, --topic      filter to subscribe to (repeatable)\n"
		" -q, --qos        subscription QoS, 0, 1 or 2 (0)\n"
		" -v, --verbose    print \"topic payload\"       -N             no newline after each\n"
		" -C, --count      exit after this many messages\n"
		" -W, --timeout    exit after this many seconds (status 27)\n"
		"     --will-topic, --will-payload, --will-qos, --will-retain: the will message\n"
		"     --help       this text\n"
		"\n"
		"Exit status: 0 success (-C reached, or interrupted); 1 bad arguments;\n"
		"2 connection failed or lost; 3 the broker refused the connection or a\n"
		"subscription, or broke the protocol; 27 the -W timeout elapsed.\n",
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
	{ "verbose", no_argument, NULL, 'v' },
	{ "count", required_argument, NULL, 'C' },
	{ "timeout", required_argument, NULL, 'W' },
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
		snprintf(cf->id_buf, sizeof(cf->id_buf), "shardmq-sub-%ld", (long)getpid());
		cf->opts.client_id = cf->id_buf;
	}
	if (cf->opts.version == SMQ_V31 && strlen(cf->opts.client_id) > 23)
		return bad("client id '%s' is longer than MQTT 3.1 allows (23)", cf->opts.client_id);
	return 0;
}

static int add_topic(struct conf *cf, const char *f)
{
	struct smq_str s = { (const uint8_t *)f, (uint32_t)strlen(f) };

	if (!smq_topic_filter_valid(s))
		return bad("invalid subscription filter '%s'", f);
	if (cf->nsubs == MAX_TOPICS)
		return bad("more than %d topics", MAX_TOPICS);
	cf->subs[cf->nsubs++].filter = s;
	return 0;
}

/* Options of this tool only: 0, -1 (unknown) or an exit status. */
static int sub_opt(struct conf *cf, int o, const char *arg)
{
	unsigned long v;

	switch (o) {
	case 't':
		return add_topic(cf, arg);
	case 'q':
		if (!parse_uint(arg, 2, &v))
			return bad("invalid QoS '%s' (0, 1 or 2)", arg);
		cf->qos = (uint8_t)v;
		return 0;
	case 'v':
		cf->verbose = true;
		return 0;
	case 'N':
		cf->no_newline = true;
		return 0;
	case 'C':
		if (!parse_uint(arg, 0xFFFFFFFFul, &v) || !v)
			return bad("invalid count '%s'", arg);
		cf->count = v;
		return 0;
	case 'W':
		if (!parse_uint(arg, 86400ul * 365, &v) || !v)
			return bad("invalid timeout '%s'", arg);
		cf->timeout = v;
		return 0;
	case OPT_HELP:
		usage(stdout);
		exit(0);
	}
	return -1;
}

static int parse(struct conf *cf, int argc, char **argv)
{
	bool expiry_set = false;
	size_t i;
	int o, ret;

	while ((o = getopt_long(argc, argv, "h:p:V:i:u:P:k:cx:t:q:vNC:W:", longopts, NULL)) != -1) {
		ret = common_opt(cf, o, optarg, &expiry_set);
		if (ret < 0)
			ret = sub_opt(cf, o, optarg);
		if (ret < 0)
			return bad("unknown option");
		if (ret)
			return ret;
	}
	if (optind < argc)
		return bad("unexpected argument '%s'", argv[optind]);
	if (!cf->nsubs)
		return bad("at least one topic (-t) is required");
	for (i = 0; i < cf->nsubs; i++)
		cf->subs[i].opts = cf->qos;
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

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int subscribe(struct smq_clientio *h, const struct conf *cf)
{
	uint8_t codes[MAX_TOPICS];
	size_t i;
	int ret;

	ret = smq_clientio_subscribe(h, cf->subs, cf->nsubs, NULL, codes, 10000);
	if (ret)
		return fail("subscribe", ret);
	for (i = 0; i < cf->nsubs; i++) {
		if (codes[i] < 0x80)
			continue;
		fprintf(stderr, "%s: subscription to '%.*s' refused: %s\n", prog,
			(int)cf->subs[i].filter.len, cf->subs[i].filter.p,
			cf->opts.version == SMQ_V5 ? smq_rc_name(codes[i]) : "failure");
		return EXIT_PROTO;
	}
	return 0;
}

static void print(const struct conf *cf, const struct smq_client_event *ev)
{
	if (cf->verbose) {
		fwrite(ev->msg.topic.p, 1, ev->msg.topic.len, stdout);
		putchar(' ');
	}
	fwrite(ev->msg.payload.p, 1, ev->msg.payload.len, stdout);
	if (!cf->no_newline)
		putchar('\n');
	fflush(stdout);
}

/* Print messages until -C, @deadline (-W, 0 = none), a signal or the end
 * of the connection. */
static int receive(struct smq_clientio *h, const struct conf *cf, uint64_t deadline)
{
	struct smq_client *c = smq_clientio_client(h);
	struct smq_client_event ev;
	unsigned long n = 0;
	uint64_t now;
	int ret = 0, wait;

	for (;;) {
		/* what arrived before a close is printed before the close is reported */
		while (smq_client_take_event(c, SMQ_CLIENT_EVMASK(SMQ_CLIENT_EV_MESSAGE), -1, &ev)) {
			print(cf, &ev);
			if (cf->count && ++n >= cf->count)
				return 0;
		}
		if (ret)
			return fail("connection", ret);
		if (stop)
			return 0;
		wait = -1;
		if (deadline) {
			now = smq_clientio_now_ms();
			if (now >= deadline) {
				fprintf(stderr, "Timed out\n");
				return EXIT_TIMEOUT;
			}
			wait = (int)(deadline - now);
		}
		ret = smq_clientio_run(h, wait);	/* a signal cuts the wait short */
	}
}

int main(int argc, char **argv)
{
	struct conf cf = { .host = "localhost", .port = 1883,
			   .opts = { .version = SMQ_V311, .clean = true, .keepalive = 60 } };
	struct sigaction sa = { .sa_handler = on_signal };	/* no SA_RESTART */
	struct smq_clientio *h;
	uint64_t deadline;
	int ret;

	ret = parse(&cf, argc, argv);
	if (ret)
		return ret;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	h = smq_clientio_new(cf.host, (uint16_t)cf.port, &cf.opts);
	if (!h)
		return fail("client", -errno);
	ret = smq_clientio_connect(h, 10000);
	if (ret) {
		ret = fail("connect", ret);
		goto out_free;
	}
	/* as mosquitto_sub, -W counts from the connection */
	deadline = cf.timeout ? smq_clientio_now_ms() + cf.timeout * 1000 : 0;
	ret = subscribe(h, &cf);
	if (!ret)
		ret = receive(h, &cf, deadline);
	if (smq_clientio_fd(h) >= 0)
		smq_clientio_disconnect(h, 0, 2000);
out_free:
	smq_clientio_free(h);
	return ret;
}
