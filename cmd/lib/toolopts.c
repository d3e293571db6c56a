/* toolopts.c - the connection options, usage errors, -d packet log and
 * connection setup shared by shardmq-pub, -sub and -rr (see toolopts.h).
 *
 * Invariant: every usage error goes through smq_tool_bad() and every
 * connection error through smq_tool_fail(), so the tools word their
 * messages and pick their exit statuses one way; --quiet silences the
 * second kind only (a usage error is the caller's own mistake, and a
 * script that passes --quiet still wants to know its arguments are wrong).
 *
 * -d prints what mosquitto's clients print with -d ("Client ID sending
 * PUBLISH (d0, q1, r0, m1, 'topic', ... (5 bytes))"), from the client
 * core's trace hook, one line per packet, on stderr so that stdout stays
 * the messages (mosquitto prints them on stdout).
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
static bool quiet;				/* --quiet */
static bool debug;				/* -d */
static const char *conn_host;			/* for "Unknown host" */

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

void smq_tool_fini(struct smq_tool_conn *c)
{
	free(c->url_buf);
	c->url_buf = NULL;
	smq_tool_props_fini(&c->props);
}

void smq_tool_error(const char *fmt, ...)
{
	va_list ap;

	if (quiet)
		return;
	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static const char *client_name(const struct smq_clientio *h)
{
	const char *id = smq_client_id(smq_clientio_client((struct smq_clientio *)h));

	return *id ? id : "(null)";
}

void smq_tool_debug(const struct smq_clientio *h, const char *fmt, ...)
{
	va_list ap;

	if (!debug)
		return;
	if (h)
		fprintf(stderr, "Client %s ", client_name(h));
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
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

/* -L mqtt(s)://[user[:password]@]host[:port]/topic, as mosquitto reads it:
 * no percent-decoding; an IPv6 host goes in brackets. */
static int parse_url(struct smq_tool_conn *c, const char *url)
{
	char *p, *at, *slash, *colon, *host;
	unsigned long v;

	free(c->url_buf);
	c->url_buf = p = strdup(url);
	if (!p)
		return smq_tool_bad("out of memory");
	if (!strncmp(p, "mqtt://", 7)) {
		p += 7;
		c->url_tls = false;
	} else if (!strncmp(p, "mqtts://", 8)) {
		p += 8;
		c->url_tls = true;
	} else {
		return smq_tool_bad("unsupported URL '%s' (mqtt:// or mqtts://)", url);
	}
	slash = strchr(p, '/');
	if (!slash || !slash[1])
		return smq_tool_bad("URL '%s' has no topic (mqtt://host/topic)", url);
	*slash = '\0';
	c->url_topic = slash + 1;
	at = strrchr(p, '@');
	host = p;
	if (at) {
		*at = '\0';
		host = at + 1;
		colon = strchr(p, ':');
		if (colon) {
			*colon = '\0';
			c->password = str(colon + 1);
			c->opts.password = &c->password;
		}
		c->opts.username = p;
	}
	colon = host[0] == '[' ? strstr(host, "]:") : strrchr(host, ':');
	if (host[0] == '[' && colon)
		colon++;
	if (colon) {
		*colon = '\0';
		if (!smq_tool_parse_uint(colon + 1, 65535, &v) || !v)
			return smq_tool_bad("invalid port in URL '%s'", url);
		c->port = (unsigned)v;
		c->port_set = true;
	}
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		host[strlen(host) - 1] = '\0';
		host++;
	}
	if (!*host)
		return smq_tool_bad("URL '%s' has no host", url);
	c->host = host;
	return 0;
}

/* -A, -d, --quiet, --unix, --nodelay: 0, -1 (not one of them). */
static int net_opt(struct smq_tool_conn *c, int o, const char *arg)
{
	switch (o) {
	case SMQ_TOOL_OPT_QUIET:
		quiet = true;
		return 0;
	case SMQ_TOOL_OPT_UNIX:
		c->unix_path = arg;
		return 0;
	case SMQ_TOOL_OPT_NODELAY:
		return 0;	/* net/clientio.c always sets TCP_NODELAY */
	}
	return -1;
}

/* -D PACKET NAME VALUE [VALUE2]: the arguments after optarg are taken from
 * argv, past optind (parsing stops at non-options, so nothing moved). */
static int property_opt(struct smq_tool_conn *c, int argc, char **argv, const char *cmd)
{
	const char *name, *value, *value2 = NULL;

	if (optind + 1 >= argc)
		return smq_tool_bad("-D needs a packet, a property name and a value");
	name = argv[optind];
	value = argv[optind + 1];
	optind += 2;
	if (!strcmp(name, "user-property")) {
		if (optind >= argc)
			return smq_tool_bad("-D %s user-property needs a key and a value", cmd);
		value2 = argv[optind++];
	}
	return smq_tool_props_add(&c->props, cmd, name, value, value2);
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
	case 'I':
		c->id_prefix = arg;
		return 0;
	case 'A':
		c->bind_addr = arg;
		return 0;
	case 'd':
		c->debug = debug = true;
		return 0;
	case 'L':
		return parse_url(c, arg);
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
	if (o >= SMQ_TOOL_OPT_QUIET)
		return net_opt(c, o, arg);
	return o >= SMQ_TOOL_OPT_CAFILE ? tls_opt(c, o, arg) : will_opt(c, o, arg);
}

int smq_tool_parse(struct smq_tool_conn *c, int argc, char **argv, const char *shortopts,
		   const struct option *longopts, smq_tool_opt_fn tool_opt, void *ctx)
{
	char opts[128];
	int o, ret;

	/* "+": stop at the first non-option, so that -D may read past optind */
	snprintf(opts, sizeof(opts), "+%s", shortopts);
	while ((o = getopt_long(argc, argv, opts, longopts, NULL)) != -1) {
		if (o == 'D') {
			ret = property_opt(c, argc, argv, optarg);
			if (ret)
				return ret;
			continue;
		}
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

	if (c->url_tls && !c->tls) {
		c->tls_opts.use_os_certs = true;	/* mqtts:// without a CA: the system's */
		c->tls = true;
	}
	if (!c->tls && (t->certfile || t->keyfile || t->insecure || t->tls_version))
		return smq_tool_bad("--cert, --key, --insecure and --tls-version need --cafile, "
				    "--capath or --tls-use-os-certs");
	if (!t->certfile != !t->keyfile)
		return smq_tool_bad("both --cert and --key are needed for a client certificate");
	if (c->tls && !c->port_set)
		c->port = 8883;	/* as mosquitto: the MQTT-over-TLS port */
	return 0;
}

/* -D properties go to the client library's options; before 5.0 they are
 * dropped, as mosquitto's clients drop them, but said so. */
static int check_props(struct smq_tool_conn *c)
{
	const struct smq_props *p;

	if (!c->props.any)
		return 0;
	if (c->opts.version != SMQ_V5) {
		smq_tool_error("warning: -D properties are ignored before MQTT 5 (-V 5)");
		memset(c->props.p, 0, sizeof(c->props.p));
		return 0;
	}
	p = smq_tool_props_get(&c->props, SMQ_TOOL_P_CONNECT);
	if (p && SMQ_HAS(p, SMQ_PROP_SESSION_EXPIRY) && !c->expiry_set)
		c->opts.session_expiry = p->session_expiry;	/* as -x */
	if (p && SMQ_HAS(p, SMQ_PROP_RECEIVE_MAX))
		c->opts.receive_max = p->receive_max;
	if (p && SMQ_HAS(p, SMQ_PROP_MAX_PACKET_SIZE))
		c->opts.max_packet_size = p->max_packet_size;
	c->opts.connect_props = p;
	if (c->will.topic)
		c->will.props = smq_tool_props_get(&c->props, SMQ_TOOL_P_WILL);
	else if (smq_tool_props_get(&c->props, SMQ_TOOL_P_WILL))
		return smq_tool_bad("-D will needs --will-topic");
	return 0;
}

int smq_tool_check(struct smq_tool_conn *c)
{
	int ret;

	if (c->opts.client_id && c->id_prefix)
		return smq_tool_bad("-i and -I cannot be used together");
	if (!c->opts.clean && !c->opts.client_id)
		return smq_tool_bad("-c needs a client id (-i)");
	if (c->unix_path && c->bind_addr)
		return smq_tool_bad("-A and --unix cannot be used together");
	if (c->unix_path && strlen(c->unix_path) >= 108)
		return smq_tool_bad("--unix path '%s' is too long", c->unix_path);
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
		if (c->id_prefix)	/* as mosquitto: the pid right after the prefix */
			snprintf(c->id_buf, sizeof(c->id_buf), "%.40s%ld", c->id_prefix,
				 (long)getpid());
		else
			snprintf(c->id_buf, sizeof(c->id_buf), "%s-%ld", prog, (long)getpid());
		c->opts.client_id = c->id_buf;
	}
	ret = check_props(c);
	if (ret)
		return ret;
	if (c->opts.version == SMQ_V31 && strlen(c->opts.client_id) > 23)
		return smq_tool_bad("client id '%s' is longer than MQTT 3.1 allows (23)",
				    c->opts.client_id);
	return 0;
}

int smq_tool_fail(const char *what, int err)
{
	const char *tls = conn_h ? smq_clientio_tls_error(conn_h) : NULL;
	const char *gai = conn_h ? smq_clientio_resolve_error(conn_h) : NULL;

	if (quiet)
		goto out_status;
	if (tls && (err == -EPROTO || err == -ECONNRESET))
		fprintf(stderr, "%s: %s: TLS: %s\n", prog, what, tls);
	else if (gai && err == -ENXIO)
		fprintf(stderr, "%s: %s: Unknown host %s: %s\n", prog, what, conn_host, gai);
	else
		fprintf(stderr, "%s: %s: %s\n", prog, what, smq_client_strerror(err));
out_status:
	if (err == -EINVAL)
		return SMQ_TOOL_EXIT_USAGE;
	if (err <= -0x80 || err == -EMSGSIZE)
		return SMQ_TOOL_EXIT_PROTO;
	return SMQ_TOOL_EXIT_CONN;
}

int smq_tool_slurp(int fd, uint8_t **out, size_t *len)
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

/* ---- -d ---------------------------------------------------------------- */

static void trace_list(const struct smq_clientio *h, const struct smq_packet *pkt)
{
	struct smq_sub_entry e;
	struct smq_str f;
	uint32_t pos = 0;

	if (pkt->type == SMQ_SUBSCRIBE && pkt->list.entries) {
		for (pos = 0; pos < pkt->list.count; pos++) {
			e = pkt->list.entries[pos];
			smq_tool_debug(h, "sending SUBSCRIBE (Mid: %u, Topic: %.*s, QoS: %u, "
				       "Options: 0x%02x)", pkt->packet_id, (int)e.filter.len,
				       e.filter.p, SMQ_SUBOPT_QOS(e.opts), e.opts & 0xFCu);
		}
	} else if (pkt->type == SMQ_UNSUBSCRIBE && pkt->list.filters) {
		for (pos = 0; pos < pkt->list.count; pos++) {
			f = pkt->list.filters[pos];
			smq_tool_debug(h, "sending UNSUBSCRIBE (Mid: %u, Topic: %.*s)",
				       pkt->packet_id, (int)f.len, f.p);
		}
	} else if (pkt->type == SMQ_SUBSCRIBE) {	/* decoded: walk the list */
		while (smq_list_next_sub(pkt, &pos, &e))
			smq_tool_debug(h, "sending SUBSCRIBE (Mid: %u, Topic: %.*s)",
				       pkt->packet_id, (int)e.filter.len, e.filter.p);
	}
}

/* The core's trace hook: one line per packet, mosquitto's words. */
static void trace(void *arg, bool sent, const struct smq_packet *pkt)
{
	const struct smq_clientio *h = arg;
	const char *dir = sent ? "sending" : "received";
	const char *name = smq_ptype_name(pkt->type);

	switch (pkt->type) {
	case SMQ_CONNACK:
		smq_tool_debug(h, "received CONNACK (%u)", pkt->reason);
		return;
	case SMQ_PUBLISH:
		smq_tool_debug(h, "%s PUBLISH (d%d, q%u, r%d, m%u, '%.*s', ... (%u bytes))", dir,
			       pkt->publish.dup, pkt->publish.qos, pkt->publish.retain,
			       pkt->packet_id, (int)pkt->publish.topic.len, pkt->publish.topic.p,
			       pkt->publish.payload.len);
		return;
	case SMQ_PUBACK:
	case SMQ_PUBREC:
	case SMQ_PUBREL:
	case SMQ_PUBCOMP:
		if (sent && (pkt->type == SMQ_PUBACK || pkt->type == SMQ_PUBREC))
			smq_tool_debug(h, "sending %s (m%u, rc%u)", name, pkt->packet_id,
				       pkt->reason);
		else if (sent)
			smq_tool_debug(h, "sending %s (m%u)", name, pkt->packet_id);
		else if (pkt->type == SMQ_PUBACK || pkt->type == SMQ_PUBCOMP)
			smq_tool_debug(h, "received %s (Mid: %u, RC:%u)", name, pkt->packet_id,
				       pkt->reason);
		else
			smq_tool_debug(h, "received %s (Mid: %u)", name, pkt->packet_id);
		return;
	case SMQ_SUBSCRIBE:
	case SMQ_UNSUBSCRIBE:
		trace_list(h, pkt);
		return;
	case SMQ_DISCONNECT:
		if (!sent && pkt->version == SMQ_V5)
			smq_tool_debug(h, "received DISCONNECT (%u)", pkt->reason);
		else
			smq_tool_debug(h, "%s DISCONNECT", dir);
		return;
	}
	smq_tool_debug(h, "%s %s", dir, name);
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

/* -A, --unix, -d on a new handle: 0 or the exit status. */
static int set_net(const struct smq_tool_conn *c, struct smq_clientio *h)
{
	int ret = smq_clientio_set_bind(h, c->bind_addr);

	if (!ret)
		ret = smq_clientio_set_unix(h, c->unix_path);
	if (ret)
		return smq_tool_fail("client", ret);
	if (c->debug)
		smq_client_set_trace(smq_clientio_client(h), trace, h);
	return 0;
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
	conn_host = c->host;
	ret = set_net(c, h);
	if (ret)
		goto out_free;
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

int smq_tool_reconnect(struct smq_clientio *h)
{
	int ret = smq_clientio_connect(h, 10000);

	if (ret)
		smq_tool_fail("reconnect", ret);
	return ret;
}

int smq_tool_disconnect(const struct smq_tool_conn *c, struct smq_clientio *h)
{
	const struct smq_props *p = smq_tool_props_get(&c->props, SMQ_TOOL_P_DISCONNECT);
	int ret = smq_clientio_disconnect_props(h, 0, p, 10000);

	return ret ? smq_tool_fail("disconnect", ret) : 0;
}
