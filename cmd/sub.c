/* sub.c - shardmq-sub: subscribe and print the messages that arrive.
 *
 * The flags follow mosquitto_sub, so scripts move over unchanged; the exit
 * status says what went wrong (see usage()), 27 for a -W timeout as
 * mosquitto_sub does. Each message is printed and flushed as it arrives:
 * the payload, or "topic payload" with -v, then a newline unless -N.
 * SIGINT/SIGTERM end the run with DISCONNECT and status 0.
 *
 * Not done: reconnecting after a lost connection (status 2 instead), the
 * -F output formats, -R/-T/-U filters, TLS-PSK and ALPN.
 *
 * Left to others: the protocol and the socket (net/clientio.c); the options,
 * messages and connection setup shared with shardmq-pub (cmd/lib/toolopts.c).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/lib/toolopts.h"
#include "core/topic.h"

enum {
	EXIT_TIMEOUT = 27,	/* -W elapsed (mosquitto_sub's MOSQ_ERR_TIMEOUT) */
};

#define MAX_TOPICS 64

struct conf {
	struct smq_tool_conn conn;
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
		SMQ_TOOL_USAGE_CONN " [-q qos] [-v] [-N]\n"
		"                   [-C count] [-W seconds]\n"
		SMQ_TOOL_USAGE_WILL
		SMQ_TOOL_USAGE_TLS
		"                   -t filter [-t filter ...]\n"
		"\n"
		SMQ_TOOL_HELP_CONN
		" -t, --topic      filter to subscribe to (repeatable)\n"
		" -q, --qos        subscription QoS, 0, 1 or 2 (0)\n"
		" -v, --verbose    print \"topic payload\"       -N             no newline after each\n"
		" -C, --count      exit after this many messages\n"
		" -W, --timeout    exit after this many seconds (status 27)\n"
		SMQ_TOOL_HELP_TLS
		SMQ_TOOL_HELP_WILL
		"\n"
		"Exit status: 0 success (-C reached, or interrupted); 1 bad arguments;\n"
		"2 connection failed or lost; 3 the broker refused the connection or a\n"
		"subscription, or broke the protocol; 27 the -W timeout elapsed.\n",
		prog);
}

static const struct option longopts[] = {
	SMQ_TOOL_LONGOPTS,
	{ "topic", required_argument, NULL, 't' },
	{ "qos", required_argument, NULL, 'q' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "count", required_argument, NULL, 'C' },
	{ "timeout", required_argument, NULL, 'W' },
	{ NULL, 0, NULL, 0 },
};

static int add_topic(struct conf *cf, const char *f)
{
	struct smq_str s = { (const uint8_t *)f, (uint32_t)strlen(f) };

	if (!smq_topic_filter_valid(s))
		return smq_tool_bad("invalid subscription filter '%s'", f);
	if (cf->nsubs == MAX_TOPICS)
		return smq_tool_bad("more than %d topics", MAX_TOPICS);
	cf->subs[cf->nsubs++].filter = s;
	return 0;
}

/* Options of this tool only (smq_tool_opt_fn on struct conf). */
static int sub_opt(void *ctx, int o, const char *arg)
{
	struct conf *cf = ctx;
	unsigned long v;

	switch (o) {
	case 't':
		return add_topic(cf, arg);
	case 'q':
		if (!smq_tool_parse_uint(arg, 2, &v))
			return smq_tool_bad("invalid QoS '%s' (0, 1 or 2)", arg);
		cf->qos = (uint8_t)v;
		return 0;
	case 'v':
		cf->verbose = true;
		return 0;
	case 'N':
		cf->no_newline = true;
		return 0;
	case 'C':
		if (!smq_tool_parse_uint(arg, 0xFFFFFFFFul, &v) || !v)
			return smq_tool_bad("invalid count '%s'", arg);
		cf->count = v;
		return 0;
	case 'W':
		if (!smq_tool_parse_uint(arg, 86400ul * 365, &v) || !v)
			return smq_tool_bad("invalid timeout '%s'", arg);
		cf->timeout = v;
		return 0;
	case SMQ_TOOL_OPT_HELP:
		usage(stdout);
		exit(0);
	}
	return -1;
}

static int parse(struct conf *cf, int argc, char **argv)
{
	size_t i;
	int ret;

	ret = smq_tool_parse(&cf->conn, argc, argv, SMQ_TOOL_SHORTOPTS "t:q:vNC:W:", longopts,
			     sub_opt, cf);
	if (ret)
		return ret;
	if (!cf->nsubs)
		return smq_tool_bad("at least one topic (-t) is required");
	for (i = 0; i < cf->nsubs; i++)
		cf->subs[i].opts = cf->qos;
	return smq_tool_check(&cf->conn);
}

/* ---- running ----------------------------------------------------------- */

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
		return smq_tool_fail("subscribe", ret);
	for (i = 0; i < cf->nsubs; i++) {
		if (codes[i] < 0x80)
			continue;
		fprintf(stderr, "%s: subscription to '%.*s' refused: %s\n", prog,
			(int)cf->subs[i].filter.len, cf->subs[i].filter.p,
			cf->conn.opts.version == SMQ_V5 ? smq_rc_name(codes[i]) : "failure");
		return SMQ_TOOL_EXIT_PROTO;
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
			return smq_tool_fail("connection", ret);
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
	struct conf cf = { .nsubs = 0 };
	struct sigaction sa = { .sa_handler = on_signal };	/* no SA_RESTART */
	struct smq_clientio *h;
	uint64_t deadline;
	int ret;

	smq_tool_init(&cf.conn, prog);
	ret = parse(&cf, argc, argv);
	if (ret)
		return ret;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	ret = smq_tool_connect(&cf.conn, &h);
	if (ret)
		return ret;
	/* as mosquitto_sub, -W counts from the connection */
	deadline = cf.timeout ? smq_clientio_now_ms() + cf.timeout * 1000 : 0;
	ret = subscribe(h, &cf);
	if (!ret)
		ret = receive(h, &cf, deadline);
	if (smq_clientio_fd(h) >= 0)
		smq_clientio_disconnect(h, 0, 2000);
	smq_clientio_free(h);
	return ret;
}
