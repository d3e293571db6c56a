/* sub.c - shardmq-sub: subscribe and print the messages that arrive.
 *
 * The flags follow mosquitto_sub, so scripts move over unchanged; the exit
 * status says what went wrong (see usage()), 27 for a -W timeout as
 * mosquitto_sub does. Each message is printed and flushed as it arrives:
 * the payload, "topic payload" with -v, or what -F says (cmd/lib/format.h),
 * then a newline unless -N. SIGINT/SIGTERM end the run with DISCONNECT and
 * status 0.
 *
 * A message goes through these steps, in mosquitto_sub's order:
 * --retained-only ends the run at the first message that is not retained;
 * -T drops the topics it matches; -R drops retained messages; what is left
 * is printed and counted for -C; --remove-retained clears each retained
 * message not dropped by -T (an empty retained QoS 1 publish to its topic,
 * waited for, so that the broker has cleared it when the tool exits).
 *
 * A lost connection is not the end: as mosquitto_sub, the tool says so on
 * stderr, tries again every second (each try bounded by 10 s) and
 * subscribes again once connected (with -c the broker kept the session, so
 * nothing published meanwhile is lost at QoS > 0). Only a broker's refusal
 * of the new connection (CONNACK), a signal or -W ends the retries.
 *
 * Not done: TLS-PSK, ALPN, --random-filter, --retain-as-published, -S.
 *
 * Left to others: the protocol and the socket (net/clientio.c); the options,
 * messages and connection setup shared with the other tools and -F
 * (cmd/lib/).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/lib/format.h"
#include "cmd/lib/toolopts.h"
#include "core/topic.h"

enum {
	EXIT_TIMEOUT = 27,	/* -W elapsed (mosquitto_sub's MOSQ_ERR_TIMEOUT) */
	DONE = -1000,		/* internal: the run is over, status 0 */
	RETRY_MS = 1000,	/* between reconnection attempts */
};

enum {
	OPT_PRETTY = SMQ_TOOL_OPT_TOOL,
	OPT_RETAINED_ONLY,
	OPT_REMOVE_RETAINED,
};

#define MAX_TOPICS 64

struct conf {
	struct smq_tool_conn conn;
	struct smq_sub_entry subs[MAX_TOPICS];	/* -t */
	size_t nsubs;
	struct smq_str unsubs[MAX_TOPICS];	/* -U */
	size_t nunsubs;
	struct smq_str outs[MAX_TOPICS];	/* -T */
	size_t nouts;
	uint8_t qos;
	bool verbose;
	bool no_newline;
	bool pretty;			/* --pretty */
	bool no_retained;		/* -R */
	bool exit_after_sub;		/* -E */
	bool retained_only;		/* --retained-only */
	bool remove_retained;		/* --remove-retained */
	const char *format;		/* -F, NULL: payload or -v */
	unsigned long count;		/* -C, 0 = no limit */
	unsigned long timeout;		/* -W seconds, 0 = none */
};

static const char *prog = "shardmq-sub";
static volatile sig_atomic_t stop;

static void usage(FILE *f)
{
	fprintf(f,
		SMQ_TOOL_USAGE_CONN "\n"
		"                   [-q qos] [-v] [-N] [-F format [--pretty]] [-C count] [-W seconds]\n"
		"                   [-R | --retained-only] [--remove-retained] [-E]\n"
		SMQ_TOOL_USAGE_WILL
		SMQ_TOOL_USAGE_TLS
		"                   -t filter [-t filter ...] [-T filter-out ...] [-U filter ...]\n"
		"\n"
		SMQ_TOOL_HELP_CONN
		" -t, --topic      filter to subscribe to (repeatable)\n"
		" -q, --qos        subscription QoS, 0, 1 or 2 (0)\n"
		" -v, --verbose    print \"topic payload\"       -N             no newline after each\n"
		" -F               output format: %%t topic, %%p payload, %%q, %%r, %%l, %%m, %%x, %%X,\n"
		"                  %%I %%U %%j %%J times and JSON, 5.0 %%A %%C %%D %%E %%F %%P %%R %%S,\n"
		"                  @H @M... strftime, \\n \\t... escapes (see shardmq-sub(1))\n"
		"     --pretty     indent the JSON of %%j and %%J\n"
		" -C, --count      exit after this many messages\n"
		" -W, --timeout    exit after this many seconds (status 27)\n"
		" -R               do not print retained (stale) messages\n"
		"     --retained-only  print retained messages only; exit at the first live one\n"
		"     --remove-retained  clear each retained message received (not those of -T)\n"
		" -T               do not print topics matching this filter (repeatable)\n"
		" -U               unsubscribe from this filter (repeatable)\n"
		" -E               exit once the subscriptions are acknowledged\n"
		SMQ_TOOL_HELP_TLS
		SMQ_TOOL_HELP_WILL
		"\n"
		"A lost connection is retried every second, subscribing again.\n"
		"Exit status: 0 success (-C reached, -E, or interrupted); 1 bad arguments;\n"
		"2 the first connection failed; 3 the broker refused a connection or a\n"
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
	{ "pretty", no_argument, NULL, OPT_PRETTY },
	{ "retained-only", no_argument, NULL, OPT_RETAINED_ONLY },
	{ "remove-retained", no_argument, NULL, OPT_REMOVE_RETAINED },
	{ NULL, 0, NULL, 0 },
};

/* Add filter @f (checked) to the list @list of *@n entries. */
static int add_filter(struct smq_str *list, size_t *n, const char *f, const char *opt)
{
	struct smq_str s = { (const uint8_t *)f, (uint32_t)strlen(f) };

	if (!smq_topic_filter_valid(s))
		return smq_tool_bad("invalid %s filter '%s'", opt, f);
	if (*n == MAX_TOPICS)
		return smq_tool_bad("more than %d %s filters", MAX_TOPICS, opt);
	list[(*n)++] = s;
	return 0;
}

static int add_topic(struct conf *cf, const char *f)
{
	struct smq_str s;
	size_t n = 0;
	int ret = add_filter(&s, &n, f, "subscription");

	if (ret)
		return ret;
	if (cf->nsubs == MAX_TOPICS)
		return smq_tool_bad("more than %d topics", MAX_TOPICS);
	cf->subs[cf->nsubs++].filter = s;
	return 0;
}

/* Flags of this tool only (smq_tool_opt_fn on struct conf). */
static int sub_flag(struct conf *cf, int o)
{
	switch (o) {
	case 'v': cf->verbose = true; return 0;
	case 'N': cf->no_newline = true; return 0;
	case 'R': cf->no_retained = true; return 0;
	case 'E': cf->exit_after_sub = true; return 0;
	case OPT_PRETTY: cf->pretty = true; return 0;
	case OPT_RETAINED_ONLY: cf->retained_only = true; return 0;
	case OPT_REMOVE_RETAINED: cf->remove_retained = true; return 0;
	case SMQ_TOOL_OPT_HELP:
		usage(stdout);
		exit(0);
	}
	return -1;
}

/* Options of this tool only (smq_tool_opt_fn on struct conf). */
static int sub_opt(void *ctx, int o, const char *arg)
{
	struct conf *cf = ctx;
	unsigned long v;

	switch (o) {
	case 't':
		return add_topic(cf, arg);
	case 'T':
		return add_filter(cf->outs, &cf->nouts, arg, "-T");
	case 'U':
		return add_filter(cf->unsubs, &cf->nunsubs, arg, "-U");
	case 'F':
		cf->format = arg;
		return smq_tool_format_check(arg);
	case 'q':
		if (!smq_tool_parse_uint(arg, 2, &v))
			return smq_tool_bad("invalid QoS '%s' (0, 1 or 2)", arg);
		cf->qos = (uint8_t)v;
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
	}
	return sub_flag(cf, o);
}

static int parse(struct conf *cf, int argc, char **argv)
{
	size_t i;
	int ret;

	ret = smq_tool_parse(&cf->conn, argc, argv, SMQ_TOOL_SHORTOPTS "t:q:vNC:W:F:RET:U:",
			     longopts, sub_opt, cf);
	if (!ret && cf->conn.url_topic)
		ret = add_topic(cf, cf->conn.url_topic);
	if (ret)
		return ret;
	if (!cf->nsubs && !cf->nunsubs)
		return smq_tool_bad("at least one topic (-t) is required (or -U)");
	if (cf->no_retained && cf->retained_only)
		return smq_tool_bad("-R and --retained-only cannot be used together");
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

/* -d: "Subscribed (mid: 3): 0, 1" as mosquitto_sub says it. */
static void debug_suback(uint16_t id, const uint8_t *codes, size_t n)
{
	char line[MAX_TOPICS * 6 + 32];
	size_t len, i;

	len = (size_t)snprintf(line, sizeof(line), "Subscribed (mid: %u): ", id);
	for (i = 0; i < n && len < sizeof(line); i++)
		len += (size_t)snprintf(line + len, sizeof(line) - len, "%s%u", i ? ", " : "",
					codes[i]);
	smq_tool_debug(NULL, "%s", line);
}

/* Wait (10 s at most) for the SUBACK of request @id; its codes to @codes. */
static int wait_suback(struct smq_clientio *h, int id, uint8_t *codes, size_t n)
{
	struct smq_client *c = smq_clientio_client(h);
	uint64_t end = smq_clientio_now_ms() + 10000, now;
	struct smq_client_event ev;
	int ret;

	while (!smq_client_take_event(c, SMQ_CLIENT_EVMASK(SMQ_CLIENT_EV_SUBACK), id, &ev)) {
		now = smq_clientio_now_ms();
		if (now >= end)
			return -ETIMEDOUT;
		ret = smq_clientio_run(h, (int)(end - now));
		if (ret)
			return ret;
	}
	memcpy(codes, ev.codes.p, ev.codes.len < n ? ev.codes.len : n);
	return 0;
}

/* Subscribe to -t and unsubscribe from -U in one go, as mosquitto_sub
 * does, then wait for the SUBACK (the UNSUBACK is dropped when it comes):
 * 0 or the exit status. */
static int subscribe(struct smq_clientio *h, const struct conf *cf)
{
	const struct smq_tool_props *tp = &cf->conn.props;
	struct smq_client *c = smq_clientio_client(h);
	uint8_t codes[MAX_TOPICS];
	int sid = 0, uid = 0, ret;
	size_t i;

	if (cf->nsubs)
		sid = smq_client_subscribe(c, cf->subs, cf->nsubs,
					   smq_tool_props_get(tp, SMQ_TOOL_P_SUBSCRIBE));
	if (sid >= 0 && cf->nunsubs)
		uid = smq_client_unsubscribe(c, cf->unsubs, cf->nunsubs,
					     smq_tool_props_get(tp, SMQ_TOOL_P_UNSUBSCRIBE));
	ret = sid < 0 ? sid : uid < 0 ? uid : 0;
	if (!ret && (ret = smq_clientio_flush(h, 10000)) == 0 && sid > 0)
		ret = wait_suback(h, sid, codes, cf->nsubs);
	if (ret)
		return smq_tool_fail("subscribe", ret);
	if (sid > 0)
		debug_suback((uint16_t)sid, codes, cf->nsubs);
	for (i = 0; sid > 0 && i < cf->nsubs; i++) {
		if (codes[i] < 0x80)
			continue;
		smq_tool_error("subscription to '%.*s' refused: %s", (int)cf->subs[i].filter.len,
			       cf->subs[i].filter.p,
			       cf->conn.opts.version == SMQ_V5 ? smq_rc_name(codes[i]) : "failure");
		return SMQ_TOOL_EXIT_PROTO;
	}
	return 0;
}

static bool filtered_out(const struct conf *cf, struct smq_str topic)
{
	size_t i;

	for (i = 0; i < cf->nouts; i++)
		if (smq_topic_match(cf->outs[i], topic))
			return true;
	return false;
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

/* --remove-retained: an empty retained message clears @topic's. */
static int remove_retained(struct smq_clientio *h, struct smq_str topic)
{
	char name[65536];
	int ret;

	memcpy(name, topic.p, topic.len);	/* the view dies with the next call on h */
	name[topic.len] = '\0';
	ret = smq_clientio_publish(h, name, (struct smq_str){ NULL, 0 }, 1, true, NULL, 10000);
	if (ret && ret > -0x80)
		return ret;	/* the connection broke: the caller reconnects */
	if (ret)
		smq_tool_error("removing the retained message of '%s': %s", name,
			       smq_client_strerror(ret));
	return 0;
}

/* One message: DONE when the run is over, 0, or a connection error. */
static int on_message(struct smq_clientio *h, const struct conf *cf,
		      const struct smq_client_event *ev, unsigned long *n)
{
	int ret;

	if (cf->retained_only && !ev->msg.retain)
		return DONE;
	if (filtered_out(cf, ev->msg.topic))
		return 0;
	if (ev->msg.retain && cf->no_retained) {
		/* -R with --remove-retained still clears it */
		return cf->remove_retained ? remove_retained(h, ev->msg.topic) : 0;
	}
	print(cf, ev);
	if (ev->msg.retain && cf->remove_retained) {
		ret = remove_retained(h, ev->msg.topic);	/* ev is dead after this */
		if (ret)
			return ret;
	}
	return cf->count && ++*n >= cf->count ? DONE : 0;
}

/* Sleep @ms or until a signal. */
static void nap(int ms)
{
	poll(NULL, 0, ms);	/* EINTR on a signal: fine */
}

static int timed_out(void)
{
	fprintf(stderr, "Timed out\n");
	return EXIT_TIMEOUT;
}

/* The connection broke with @err: connect again every second and subscribe
 * again. 0 when done, else the exit status (DONE: a signal). */
static int reconnect(struct smq_clientio *h, const struct conf *cf, uint64_t deadline, int err)
{
	uint64_t now;
	int ret, wait;

	smq_tool_error("connection lost: %s; reconnecting", smq_client_strerror(err));
	for (;;) {
		nap(RETRY_MS);
		if (stop)
			return DONE;
		now = smq_clientio_now_ms();
		if (deadline && now >= deadline)
			return timed_out();
		wait = deadline && deadline - now < 10000 ? (int)(deadline - now) : 10000;
		ret = smq_clientio_connect(h, wait);
		if (!ret)
			break;
		if (ret <= -0x80)
			return smq_tool_fail("reconnect", ret);	/* the broker said no */
	}
	smq_tool_error("reconnected");
	return subscribe(h, cf);
}

/* Print messages until -C, @deadline (-W, 0 = none), a signal, or a
 * refused reconnection; returns the exit status. */
static int receive(struct smq_clientio *h, const struct conf *cf, uint64_t deadline)
{
	struct smq_client *c = smq_clientio_client(h);
	struct smq_client_event ev;
	unsigned long n = 0;
	uint64_t now;
	int ret = 0, err = 0, wait;

	for (;;) {
		/* what arrived before a close is printed before the close is handled */
		/* the other events (UNSUBACK, ERROR...) are dropped: kept, they
		 * would pin the input they point into */
		while (!ret && smq_client_take_event(c, SMQ_CLIENT_EVMASK_ALL, -1, &ev))
			if (ev.type == SMQ_CLIENT_EV_MESSAGE)
				ret = on_message(h, cf, &ev, &n);
		if (ret == DONE || stop)
			return 0;
		if (ret || err) {
			ret = reconnect(h, cf, deadline, ret ? ret : err);
			if (ret)
				return ret == DONE ? 0 : ret;
		}
		wait = -1;
		if (deadline) {
			now = smq_clientio_now_ms();
			if (now >= deadline)
				return timed_out();
			wait = (int)(deadline - now);
		}
		err = smq_clientio_run(h, wait);	/* a signal cuts the wait short */
	}
}

static const struct smq_props *disconnect_props(const struct conf *cf)
{
	return smq_tool_props_get(&cf->conn.props, SMQ_TOOL_P_DISCONNECT);
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
		goto out;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	ret = smq_tool_connect(&cf.conn, &h);
	if (ret)
		goto out;
	/* as mosquitto_sub, -W counts from the connection */
	deadline = cf.timeout ? smq_clientio_now_ms() + cf.timeout * 1000 : 0;
	ret = subscribe(h, &cf);
	if (!ret && !cf.exit_after_sub)
		ret = receive(h, &cf, deadline);
	if (smq_clientio_fd(h) >= 0)	/* a failure here changes nothing: not reported */
		smq_clientio_disconnect_props(h, 0, disconnect_props(&cf), 2000);
	smq_clientio_free(h);
out:
	smq_tool_fini(&cf.conn);
	return ret;
}
