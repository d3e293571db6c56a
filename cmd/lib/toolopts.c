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
#include "core/version.h"

static const char *prog = "shardmq-tool";
static const struct smq_clientio *conn_h;	/* smq_tool_connect()'s, for the TLS words */

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

/* The TLS options: 0, -1 (not one of them) or an exit status. */
static int tls_opt(struct smq_tool_conn *c, int o, const char *arg)
{
	struct smq_tls_opts *t = &c->tls_opts;

	switch (o) {
	case SMQ_TOOL_OPT_CAFILE:
		t->cafile = arg;
		c->tls = true;
		return 0;
	case SMQ_TOOL_OPT_CAPATH:
		t->capath = arg;
		c->tls = true;
		return 0;
	case SMQ_TOOL_OPT_TLS_OS_CERTS:
		t->use_os_certs = true;
		c->tls = true;
		return 0;
	case SMQ_TOOL_OPT_CERT:
		t->certfile = arg;
		return 0;
	case SMQ_TOOL_OPT_KEY:
		t->keyfile = arg;
		return 0;
	case SMQ_TOOL_OPT_INSECURE:
		t->insecure = true;
		return 0;
	case SMQ_TOOL_OPT_TLS_VERSION:
		if (strcmp(arg, "tlsv1.2") && strcmp(arg, "tlsv1.3"))
			return smq_tool_bad("unsupported TLS version '%s' (tlsv1.2 or tlsv1.3)", arg);
		t->tls_version = arg;
		return 0;
	}
	return -1;
}

/* The shared options: 0, -1 (not one of them) or an exit status. */
static int conn_opt(struct smq_tool_conn *c, int o, const char *arg)
{
	unsigned long v;

	switch (o) {
	case SMQ_TOOL_OPT_VERSION:
		printf("%s version %s\n", prog, SMQ_VERSION);
		exit(0);
	case 'h':
		c->host = arg;
		return 0;
	case 'p':
		if (!smq_tool_parse_uint(arg, 65535, &v) || !v)
			return smq_tool_bad("invalid port '%s'", arg);
		c->port = (unsigned)v;
		c->port_set = true;
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
	return o >= SMQ_TOOL_OPT_CAFILE ? tls_opt(c, o, arg) : will_opt(c, o, arg);
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

/* TLS needs a CA to turn it on; the client certificate needs its key. */
static int check_tls(struct smq_tool_conn *c)
{
	const struct smq_tls_opts *t = &c->tls_opts;

	if (!c->tls && (t->certfile || t->keyfile || t->insecure || t->tls_version))
		return smq_tool_bad("--cert, --key, --insecure and --tls-version need --cafile, "
				    "--capath or --tls-use-os-certs");
	if (!t->certfile != !t->keyfile)
		return smq_tool_bad("both --cert and --key are needed for a client certificate");
	if (c->tls && !c->port_set)
		c->port = 8883;	/* as mosquitto: the MQTT-over-TLS port */
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
	if (!ret)
		ret = check_tls(c);
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
	const char *tls = conn_h ? smq_clientio_tls_error(conn_h) : NULL;

	if (tls && (err == -EPROTO || err == -ECONNRESET))
		fprintf(stderr, "%s: %s: TLS: %s\n", prog, what, tls);
	else
		fprintf(stderr, "%s: %s: %s\n", prog, what, smq_client_strerror(err));
	if (err == -EINVAL)
		return SMQ_TOOL_EXIT_USAGE;
	if (err <= -0x80 || err == -EMSGSIZE)
		return SMQ_TOOL_EXIT_PROTO;
	return SMQ_TOOL_EXIT_CONN;
}

/* The TLS ctx for @c, or NULL after saying why (*@status set). */
static struct smq_tls_ctx *make_tls(const struct smq_tool_conn *c, int *status)
{
	struct smq_tls_opts o = c->tls_opts;
	struct smq_tls_ctx *ctx;
	char err[512];

	o.server_name = c->host;
	ctx = smq_tls_ctx_new(SMQ_TLS_CLIENT, &o, err, sizeof(err));
	if (!ctx) {
		fprintf(stderr, "%s: TLS: %s\n", prog, err);
		*status = errno == EINVAL ? SMQ_TOOL_EXIT_USAGE : SMQ_TOOL_EXIT_CONN;
	}
	return ctx;
}

int smq_tool_connect(const struct smq_tool_conn *c, struct smq_clientio **out)
{
	struct smq_tls_ctx *ctx = NULL;
	struct smq_clientio *h;
	int ret;

	if (c->tls && !(ctx = make_tls(c, &ret)))
		return ret;
	h = smq_clientio_new(c->host, (uint16_t)c->port, &c->opts);
	if (!h) {
		ret = smq_tool_fail("client", -errno);
		goto out_unref;
	}
	smq_clientio_set_tls(h, ctx);	/* NULL: plain TCP */
	conn_h = h;
	ret = smq_clientio_connect(h, 10000);
	if (ret) {
		ret = smq_tool_fail("connect", ret);
		goto out_free;
	}
	smq_tls_ctx_unref(ctx);		/* the handle holds its own reference */
	*out = h;
	return 0;
out_free:
	conn_h = NULL;
	smq_clientio_free(h);
out_unref:
	smq_tls_ctx_unref(ctx);
	return ret;
}
