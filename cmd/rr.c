/* rr.c - shardmq-rr: send one MQTT 5 request and print its response.
 *
 * As mosquitto_rr: subscribe to the response topic (-e), publish the
 * request (-m, -f, -n or -s) to -t carrying the Response Topic property and
 * Correlation Data, wait for the first response (-W bounds the wait, status
 * 27 as mosquitto_rr), print it as shardmq-sub would (payload, -v, -F,
 * -N) and end with DISCONNECT, status 0.
 *
 * The correlation data is "shardmq-rr-PID-TIME" unless -D publish
 * correlation-data gives one. A message on the response topic that carries
 * another correlation data is someone else's response and is skipped; one
 * without any is taken (a responder need not echo it, and mosquitto_rr
 * takes it too). The subscription is acknowledged before the request goes
 * out, so a fast responder cannot answer before we listen.
 *
 * MQTT 5 only: request/response is a 5.0 feature (section 4.10); -V 31 or
 * 311 is a usage error.
 *
 * Left to others: the protocol and the socket (net/clientio.c); the options,
 * messages, -F and the connection setup (cmd/lib/).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd/lib/format.h"
#include "cmd/lib/toolopts.h"
#include "core/topic.h"

enum {
	EXIT_TIMEOUT = 27,	/* -W elapsed, as mosquitto_rr */
};

enum {
	OPT_PRETTY = SMQ_TOOL_OPT_TOOL,
};

enum mode { MODE_NONE, MODE_MSG, MODE_FILE, MODE_NULL, MODE_STDIN };

struct conf {
	struct smq_tool_conn conn;
	const char *topic;		/* -t: where the request goes */
	const char *resp_topic;		/* -e */
	enum mode mode;
	const char *arg;		/* -m message or -f path */
	uint8_t qos;
	bool verbose, no_newline, pretty, no_retained;
	const char *format;		/* -F */
	unsigned long timeout;		/* -W seconds, 0 = none */
	struct smq_props props;		/* the request's: -D publish + ours */
	char corr[64];			/* our correlation data, unless -D gives one */
};

static const char *prog = "shardmq-rr";
static volatile sig_atomic_t stop;

static void usage(FILE *f)
{
	fprintf(f,
		SMQ_TOOL_USAGE_CONN "\n"
		"                   [-q qos] [-v] [-N] [-R] [-F format [--pretty]] [-W seconds]\n"
		SMQ_TOOL_USAGE_WILL
		SMQ_TOOL_USAGE_TLS
		"                   -t topic -e response-topic {-m message | -f file | -n | -s}\n"
		"\n"
		SMQ_TOOL_HELP_CONN
		" -t, --topic      topic the request is published to\n"
		" -e               response topic: subscribed to, and sent with the request\n"
		" -m, --message    the request payload           -f, --file  payload from a file\n"
		" -n, --null-message  an empty request           -s, --stdin-file  all of stdin\n"
		" -q, --qos        QoS of the request and the subscription (0)\n"
		" -v, --verbose    print \"topic payload\"       -N          no newline after it\n"
		" -R               skip retained messages on the response topic\n"
		" -F               output format, as shardmq-sub's  --pretty  indented JSON\n"
		" -W, --timeout    give up after this many seconds (status 27)\n"
		SMQ_TOOL_HELP_TLS
		SMQ_TOOL_HELP_WILL
		"\n"
		"MQTT 5 only (-V 5 is the default).\n"
		"Exit status: 0 a response arrived (or interrupted); 1 bad arguments;\n"
		"2 connection failed or lost; 3 the broker refused the connection, the\n"
		"subscription or the request, or broke the protocol; 27 -W elapsed.\n",
		prog);
}

static const struct option longopts[] = {
	SMQ_TOOL_LONGOPTS,
	{ "topic", required_argument, NULL, 't' },
	{ "qos", required_argument, NULL, 'q' },
	{ "message", required_argument, NULL, 'm' },
	{ "file", required_argument, NULL, 'f' },
	{ "stdin-file", no_argument, NULL, 's' },
	{ "null-message", no_argument, NULL, 'n' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "timeout", required_argument, NULL, 'W' },
	{ "pretty", no_argument, NULL, OPT_PRETTY },
	{ NULL, 0, NULL, 0 },
};

static int set_mode(struct conf *cf, enum mode m, const char *arg)
{
	if (cf->mode != MODE_NONE)
		return smq_tool_bad("only one of -m, -f, -n, -s may be given");
	cf->mode = m;
	cf->arg = arg;
	return 0;
}

static int rr_flag(struct conf *cf, int o)
{
	switch (o) {
	case 'v': cf->verbose = true; return 0;
	case 'N': cf->no_newline = true; return 0;
	case 'R': cf->no_retained = true; return 0;
	case OPT_PRETTY: cf->pretty = true; return 0;
	case 'n': return set_mode(cf, MODE_NULL, NULL);
	case 's': return set_mode(cf, MODE_STDIN, NULL);
	case SMQ_TOOL_OPT_HELP:
		usage(stdout);
		exit(0);
	}
	return -1;
}

/* Options of this tool only (smq_tool_opt_fn on struct conf). */
static int rr_opt(void *ctx, int o, const char *arg)
{
	struct conf *cf = ctx;
	unsigned long v;

	switch (o) {
	case 't':
		cf->topic = arg;
		return 0;
	case 'e':
		cf->resp_topic = arg;
		return 0;
	case 'm':
		return set_mode(cf, MODE_MSG, arg);
	case 'f':
		return set_mode(cf, MODE_FILE, arg);
	case 'F':
		cf->format = arg;
		return smq_tool_format_check(arg);
	case 'q':
		if (!smq_tool_parse_uint(arg, 2, &v))
			return smq_tool_bad("invalid QoS '%s' (0, 1 or 2)", arg);
		cf->qos = (uint8_t)v;
		return 0;
	case 'W':
		if (!smq_tool_parse_uint(arg, 86400ul * 365, &v) || !v)
			return smq_tool_bad("invalid timeout '%s'", arg);
		cf->timeout = v;
		return 0;
	}
	return rr_flag(cf, o);
}

static bool topic_ok(const char *t)
{
	return smq_topic_name_valid((struct smq_str){ (const uint8_t *)t, (uint32_t)strlen(t) });
}

/* The request's properties: -D publish's, the response topic, and our
 * correlation data unless -D gave one. */
static void request_props(struct conf *cf)
{
	const struct smq_props *p = smq_tool_props_get(&cf->conn.props, SMQ_TOOL_P_PUBLISH);
	struct timespec ts;

	if (p)
		cf->props = *p;
	cf->props.response_topic = (struct smq_str){ (const uint8_t *)cf->resp_topic,
						     (uint32_t)strlen(cf->resp_topic) };
	SMQ_SET(&cf->props, SMQ_PROP_RESPONSE_TOPIC);
	if (SMQ_HAS(&cf->props, SMQ_PROP_CORRELATION_DATA))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(cf->corr, sizeof(cf->corr), "%s-%ld-%lld.%09ld", prog, (long)getpid(),
		 (long long)ts.tv_sec, ts.tv_nsec);
	cf->props.correlation_data = (struct smq_str){ (const uint8_t *)cf->corr,
						       (uint32_t)strlen(cf->corr) };
	SMQ_SET(&cf->props, SMQ_PROP_CORRELATION_DATA);
}

static int parse(struct conf *cf, int argc, char **argv)
{
	int ret;

	ret = smq_tool_parse(&cf->conn, argc, argv, SMQ_TOOL_SHORTOPTS "t:e:m:f:nsq:vNRF:W:",
			     longopts, rr_opt, cf);
	if (ret)
		return ret;
	if (cf->topic && cf->conn.url_topic)
		return smq_tool_bad("give the topic once: -t or -L");
	if (!cf->topic)
		cf->topic = cf->conn.url_topic;
	if (!cf->topic || !cf->resp_topic)
		return smq_tool_bad("a topic (-t) and a response topic (-e) are required");
	if (!topic_ok(cf->topic))
		return smq_tool_bad("invalid request topic '%s' (no '+' or '#')", cf->topic);
	if (!topic_ok(cf->resp_topic))
		return smq_tool_bad("invalid response topic '%s' (no '+' or '#')", cf->resp_topic);
	if (cf->mode == MODE_NONE)
		return smq_tool_bad("a request is required: -m, -f, -n or -s");
	if (cf->conn.opts.version != SMQ_V5)
		return smq_tool_bad("request/response needs MQTT 5 (-V 5)");
	ret = smq_tool_check(&cf->conn);
	if (!ret)
		request_props(cf);
	return ret;
}

/* ---- running ----------------------------------------------------------- */

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* The request's payload: 0 with *@data (the caller frees), or the status. */
static int payload(const struct conf *cf, uint8_t **data, size_t *len)
{
	int fd, ret;

	if (cf->mode == MODE_MSG || cf->mode == MODE_NULL) {
		*len = cf->arg ? strlen(cf->arg) : 0;
		*data = malloc(*len + 1);
		if (!*data)
			return smq_tool_fail("request", -ENOMEM);
		memcpy(*data, cf->arg ? cf->arg : "", *len);
		return 0;
	}
	fd = cf->mode == MODE_FILE ? open(cf->arg, O_RDONLY | O_CLOEXEC) : 0;
	if (fd < 0) {
		smq_tool_error("cannot open '%s': %s", cf->arg, strerror(errno));
		return SMQ_TOOL_EXIT_USAGE;
	}
	ret = smq_tool_slurp(fd, data, len);
	if (fd)
		close(fd);
	return ret ? smq_tool_fail("reading the request", ret) : 0;
}

/* Subscribe to the response topic, then publish the request. */
static int request(struct smq_clientio *h, const struct conf *cf, const uint8_t *p, size_t n)
{
	struct smq_sub_entry e = {
		{ (const uint8_t *)cf->resp_topic, (uint32_t)strlen(cf->resp_topic) }, cf->qos
	};
	uint8_t code;
	int ret;

	ret = smq_clientio_subscribe(h, &e, 1,
				     smq_tool_props_get(&cf->conn.props, SMQ_TOOL_P_SUBSCRIBE),
				     &code, 10000);
	if (ret)
		return smq_tool_fail("subscribe", ret);
	if (code >= 0x80) {
		smq_tool_error("subscription to '%s' refused: %s", cf->resp_topic,
			       smq_rc_name(code));
		return SMQ_TOOL_EXIT_PROTO;
	}
	ret = smq_clientio_publish(h, cf->topic, (struct smq_str){ p, (uint32_t)n }, cf->qos,
				   false, &cf->props, 10000);
	return ret ? smq_tool_fail("request", ret) : 0;
}

/* Is @ev the response to our request? */
static bool is_response(const struct conf *cf, const struct smq_client_event *ev)
{
	const struct smq_str *want = &cf->props.correlation_data;
	const struct smq_str *got = &ev->props.correlation_data;

	if (ev->msg.retain && cf->no_retained)
		return false;
	if (!SMQ_HAS(&ev->props, SMQ_PROP_CORRELATION_DATA))
		return true;
	return got->len == want->len && !memcmp(got->p, want->p, got->len);
}

static void print(const struct conf *cf, const struct smq_client_event *ev)
{
	if (cf->format)
		smq_tool_format_print(stdout, cf->format, ev, cf->pretty);
	else
		smq_tool_format_plain(stdout, ev, cf->verbose);
	if (!cf->no_newline)
		putchar('\n');
	fflush(stdout);
}

/* Wait for the response until @deadline (0: none) or a signal. */
static int response(struct smq_clientio *h, const struct conf *cf, uint64_t deadline)
{
	struct smq_client_event ev;
	uint64_t now;
	int ret, wait;

	for (;;) {
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
		ret = smq_clientio_next_message(h, &ev, wait);
		if (ret == -ETIMEDOUT)
			continue;	/* the deadline check says so */
		if (ret == -EINTR || (ret && stop))
			return 0;
		if (ret)
			return smq_tool_fail("connection", ret);
		if (is_response(cf, &ev)) {
			print(cf, &ev);
			return 0;
		}
	}
}

int main(int argc, char **argv)
{
	struct conf cf = { .mode = MODE_NONE };
	struct sigaction sa = { .sa_handler = on_signal };	/* no SA_RESTART */
	struct smq_clientio *h = NULL;
	uint8_t *data = NULL;
	uint64_t deadline;
	size_t len = 0;
	int ret;

	smq_tool_init(&cf.conn, prog);
	cf.conn.opts.version = SMQ_V5;	/* as mosquitto_rr */
	ret = parse(&cf, argc, argv);
	if (!ret)
		ret = payload(&cf, &data, &len);
	if (ret)
		goto out;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	ret = smq_tool_connect(&cf.conn, &h);
	if (ret)
		goto out;
	deadline = cf.timeout ? smq_clientio_now_ms() + cf.timeout * 1000 : 0;
	ret = request(h, &cf, data, len);
	if (!ret)
		ret = response(h, &cf, deadline);
	if (smq_clientio_fd(h) >= 0)
		smq_tool_disconnect(&cf.conn, h);
	smq_clientio_free(h);
out:
	free(data);
	smq_tool_fini(&cf.conn);
	return ret;
}
