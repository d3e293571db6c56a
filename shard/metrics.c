/* metrics.c - the Prometheus endpoint: what an HTTP connection on the
 * metrics listener is answered, and the exposition text (format 0.0.4).
 *
 * Where it runs: on the shard that owns the metrics listener (shard 0), in
 * its io_uring loop like any connection (conn.c's HTTP kind), never on a
 * thread of its own. A scrape reads every shard's counters racily through
 * smq_sys_shard_read(), the same copy $SYS makes: the publish path of the
 * other shards never notices (no lock, no atomic, no shared cache line
 * written). A value may be a turn stale, which a scrape every few seconds
 * cannot tell from exact.
 *
 * Names follow Prometheus conventions: the shardmq_ prefix, _total on
 * counters, base units (_bytes, _seconds), one family per meaning with
 * labels for the parts: shard="N" on everything a shard counts, kind="..."
 * on shardmq_messages_dropped_total. Every counter of struct
 * smq_engine_stats and the loop counters of struct smq_shard are exported
 * (the table below), the loop turn durations as a histogram.
 *
 * A connection's buffers: @in holds bytes received and not yet answered
 * (the request being read, then pipelined ones); @out the answers not yet
 * sent. Answers stop while SMQ_METRICS_OUT_HIGH bytes wait (a client that
 * pipelines without reading gets no more than that queued), and a client
 * that also overfills @in meanwhile is closed. The output buffer is kept
 * between scrapes (a scraper comes back every interval with a response of
 * the same size) unless it grew past OUT_KEEP.
 */
#include "shard/metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/engine.h"
#include "core/retain.h"
#include "core/version.h"
#include "net/http.h"
#include "shard/shard.h"
#include "shard/sys.h"

#define IN_CAP (4u * SMQ_HTTP_HEAD_MAX)	/* a head, and pipelined requests behind it */
#define OUT_KEEP (256u * 1024u)		/* an idle connection's buffer, at most */

/* A growing text buffer. */
struct obuf {
	char *p;
	size_t len, cap, sent;
	bool oom;			/* an append failed: the text is cut */
};

struct smq_http_conn {
	struct smq_http_req req;	/* the request being read */
	uint64_t deadline_ms;		/* a head must be complete by then */
	bool done;			/* the last response is queued */
	struct obuf out;
	size_t in_len;
	uint8_t in[IN_CAP];
};

/* ---- text ---------------------------------------------------------------- */

static bool reserve(struct obuf *o, size_t more)
{
	size_t cap = o->cap ? o->cap : 4096;
	char *p;

	if (o->oom)
		return false;
	if (o->len + more < o->cap)
		return true;
	while (cap <= o->len + more)
		cap *= 2;
	p = realloc(o->p, cap);
	if (!p) {
		o->oom = true;
		return false;
	}
	o->p = p;
	o->cap = cap;
	return true;
}

static void putf(struct obuf *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void putf(struct obuf *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!reserve(o, 256))
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= o->cap - o->len) {
		if (!reserve(o, (size_t)n + 1))
			return;
		va_start(ap, fmt);
		vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
	}
	o->len += (size_t)n;
}

/* ---- the exposition ------------------------------------------------------ */

/* One per-shard series: a uint64_t in struct smq_shard_view. */
struct series {
	const char *name, *type, *help;
	size_t off;
};

#define ST(f) offsetof(struct smq_shard_view, st.f)
#define LP(f) offsetof(struct smq_shard_view, f)
static const struct series shard_series[] = {
	{ "shardmq_connections", "gauge", "Connected MQTT clients (CONNACK sent).",
	  ST(connections) },
	{ "shardmq_sockets", "gauge", "MQTT connections, including those before CONNECT.",
	  ST(sockets) },
	{ "shardmq_sessions", "gauge", "Sessions, online or offline.", ST(sessions) },
	{ "shardmq_subscriptions", "gauge", "Subscriptions, shared ones included.",
	  ST(subscriptions) },
	{ "shardmq_connects_total", "counter", "CONNECTs accepted.", ST(connects) },
	{ "shardmq_connects_refused_total", "counter", "CONNACKs with a failure reason.",
	  ST(connects_refused) },
	{ "shardmq_disconnects_total", "counter", "Connections ended after a CONNECT.",
	  ST(disconnects) },
	{ "shardmq_session_takeovers_total", "counter",
	  "Connections closed because a newer one took their client id.", ST(takeovers) },
	{ "shardmq_messages_received_total", "counter", "PUBLISH packets received from clients.",
	  ST(msgs_in) },
	{ "shardmq_messages_sent_total", "counter", "PUBLISH packets sent to clients.",
	  ST(msgs_out) },
	{ "shardmq_received_bytes_total", "counter", "MQTT bytes received from clients.",
	  ST(bytes_in) },
	{ "shardmq_sent_bytes_total", "counter", "MQTT bytes sent to clients.", ST(bytes_out) },
	{ "shardmq_messages_forwarded_total", "counter",
	  "Messages passed to other shards for their subscribers.", ST(msgs_forwarded) },
	{ "shardmq_messages_delivered_total", "counter",
	  "Messages other shards passed to this one.", ST(msgs_delivered) },
	{ "shardmq_subscribe_denied_total", "counter", "Subscriptions refused by the ACL.",
	  ST(denied_subscribe) },
	{ "shardmq_auth_failures_total", "counter", "CONNECTs with a bad user name or password.",
	  ST(auth_failures) },
	{ "shardmq_protocol_errors_total", "counter", "Connections closed for a bad packet.",
	  ST(protocol_errors) },
	{ "shardmq_keepalive_timeouts_total", "counter",
	  "Connections closed for silence past their keep alive.", ST(keepalive_timeouts) },
	{ "shardmq_wills_published_total", "counter", "Will messages published.",
	  ST(wills_published) },
	{ "shardmq_sessions_expired_total", "counter", "Offline sessions dropped by expiry.",
	  ST(sessions_expired) },
	{ "shardmq_retained_updates_total", "counter", "Retained store updates.",
	  ST(retained_set) },
	{ "shardmq_loop_turns_total", "counter", "Turns of the shard's io_uring loop.",
	  LP(turns) },
	{ "shardmq_inbox_depth", "gauge", "Messages from other shards waiting in the inbox.",
	  LP(inbox_depth) },
	{ "shardmq_store_stalls_total", "counter",
	  "Times the store fell 64 MB behind and the shard stopped reading clients.",
	  LP(store_stalls) },
	{ "shardmq_publishers_held_back_total", "counter",
	  "Times a client was not read because subscribers of its messages did not keep up.",
	  LP(flow_pauses) },
	{ "shardmq_input_deferred_total", "counter",
	  "Times a client's input was put off to the next loop turn (it had its share of one).",
	  LP(input_deferred) },
	{ "shardmq_store_commits_total", "counter", "Transactions the store's writer committed.",
	  LP(store_commits) },
	{ "shardmq_store_records_cancelled_total", "counter",
	  "Store records never written: a message acknowledged by its subscriber before its "
	  "record had to be.", LP(store_cancelled) },
	{ "shardmq_loop_sleeps_total", "counter", "Loop turns that waited for completions.",
	  LP(waits) },
	{ "shardmq_socket_sends_total", "counter", "sendmsg completions.", LP(sends) },
	{ "shardmq_socket_sent_bytes_total", "counter", "Bytes written to sockets.",
	  LP(send_bytes) },
	{ "shardmq_socket_recvs_total", "counter", "recv completions with data.", LP(recvs) },
	{ "shardmq_socket_received_bytes_total", "counter", "Bytes read from sockets.",
	  LP(recv_bytes) },
	{ "shardmq_recv_out_of_buffers_total", "counter",
	  "Times a recv found no provided buffer left.", LP(enobufs) },
	{ "shardmq_recv_buffers", "gauge",
	  "Receive buffers given to the kernel (more are given when a recv finds none).",
	  LP(recv_buffers) },
	{ "shardmq_tls_failures_total", "counter", "TLS connections that failed.",
	  LP(tls_failures) },
};

/* shardmq_messages_dropped_total{kind}: the engine's kinds ($SYS's too),
 * then these. */
static const struct {
	const char *kind;
	size_t off;
} more_drops[] = {
	{ "acl_publish", ST(denied_publish) },	/* a PUBLISH the ACL refused */
	{ "acl_read", ST(denied_read) },	/* a delivery the ACL withheld */
	{ "store_full", ST(store_refused) },	/* QoS 1/2 refused: the store was full */
};
#undef ST
#undef LP

static uint64_t at(const struct smq_shard_view *v, size_t off)
{
	return *(const uint64_t *)((const char *)v + off);
}

static void family(struct obuf *o, const char *name, const char *type, const char *help)
{
	putf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_drops(struct obuf *o, const struct smq_shard_view *v, unsigned n)
{
	family(o, "shardmq_messages_dropped_total", "counter",
	       "Messages dropped or withheld, by reason.");
	for (unsigned i = 0; i < n; i++) {
		if (!v[i].running)
			continue;
		for (unsigned k = 0; k < SMQ_SYS_DROP_KINDS; k++)
			putf(o, "shardmq_messages_dropped_total{shard=\"%u\",kind=\"%s\"} %llu\n", i,
			     smq_sys_drop_kinds[k].name,
			     (unsigned long long)smq_sys_dropped(&v[i].st, k));
		for (unsigned k = 0; k < sizeof(more_drops) / sizeof(more_drops[0]); k++)
			putf(o, "shardmq_messages_dropped_total{shard=\"%u\",kind=\"%s\"} %llu\n", i,
			     more_drops[k].kind, (unsigned long long)at(&v[i], more_drops[k].off));
	}
}

/* The bucket bounds of struct smq_shard's turn_hist, cumulative as
 * Prometheus wants them. */
static void put_turns(struct obuf *o, const struct smq_shard_view *v, unsigned n)
{
	family(o, "shardmq_loop_turn_seconds", "histogram",
	       "Loop turn durations, from a wake-up to the next wait.");
	for (unsigned i = 0; i < n; i++) {
		uint64_t cum = 0;

		if (!v[i].running)
			continue;
		for (unsigned b = 0; b < SMQ_SHARD_TURN_BUCKETS; b++) {
			cum += v[i].turn_hist[b];
			if (b + 1 < SMQ_SHARD_TURN_BUCKETS)
				putf(o, "shardmq_loop_turn_seconds_bucket{shard=\"%u\",le=\"%.9g\"} "
				     "%llu\n", i, (double)(1ull << (SMQ_SHARD_TURN_MIN_LOG2 + b)) / 1e9,
				     (unsigned long long)cum);
			else
				putf(o, "shardmq_loop_turn_seconds_bucket{shard=\"%u\",le=\"+Inf\"} "
				     "%llu\n", i, (unsigned long long)cum);
		}
		putf(o, "shardmq_loop_turn_seconds_sum{shard=\"%u\"} %.9f\n", i,
		     (double)v[i].turn_ns / 1e9);
		putf(o, "shardmq_loop_turn_seconds_count{shard=\"%u\"} %llu\n", i,
		     (unsigned long long)cum);
	}
}

/* The engine's publish-to-send histogram (struct smq_engine_stats). */
static void put_latency(struct obuf *o, const struct smq_shard_view *v, unsigned n)
{
	family(o, "shardmq_publish_latency_seconds", "histogram",
	       "From a PUBLISH's arrival to its copy queued for a subscriber's socket.");
	for (unsigned i = 0; i < n; i++) {
		uint64_t cum = 0;

		if (!v[i].running)
			continue;
		for (unsigned b = 0; b < SMQ_ENGINE_LAT_BUCKETS; b++) {
			cum += v[i].st.publish_latency[b];
			if (b + 1 < SMQ_ENGINE_LAT_BUCKETS)
				putf(o, "shardmq_publish_latency_seconds_bucket{shard=\"%u\",le=\"%.9g\"} "
				     "%llu\n", i, (double)(1ull << (12 + b)) / 1e9,
				     (unsigned long long)cum);
			else
				putf(o, "shardmq_publish_latency_seconds_bucket{shard=\"%u\",le=\"+Inf\"} "
				     "%llu\n", i, (unsigned long long)cum);
		}
		putf(o, "shardmq_publish_latency_seconds_sum{shard=\"%u\"} %.9f\n", i,
		     (double)v[i].st.publish_latency_ns / 1e9);
		putf(o, "shardmq_publish_latency_seconds_count{shard=\"%u\"} %llu\n", i,
		     (unsigned long long)cum);
	}
}

static void put_process(struct obuf *o, struct smq_shard *s, unsigned nshards)
{
	uint64_t heap;
	struct timespec now;
	double up = (double)(s->now_ms - s->start_ms) / 1000.0;

	clock_gettime(CLOCK_REALTIME, &now);
	family(o, "shardmq_build_info", "gauge", "The running version (always 1).");
	putf(o, "shardmq_build_info{version=\"%s\"} 1\n", SMQ_VERSION);
	family(o, "shardmq_uptime_seconds", "gauge", "Seconds since the broker started.");
	putf(o, "shardmq_uptime_seconds %.3f\n", up);
	family(o, "process_start_time_seconds", "gauge",
	       "Start time of the process since the Unix epoch in seconds.");
	putf(o, "process_start_time_seconds %.3f\n",
	     (double)now.tv_sec + (double)now.tv_nsec / 1e9 - up);
	family(o, "shardmq_shards", "gauge", "Shard threads.");
	putf(o, "shardmq_shards %u\n", nshards);
	family(o, "shardmq_retained_messages", "gauge", "Messages in the retained store.");
	putf(o, "shardmq_retained_messages %zu\n",
	     smq_retain_count(smq_broker_retain(s->broker)));
	if (smq_sys_heap(&heap)) {
		family(o, "shardmq_heap_allocated_bytes", "gauge",
		       "Bytes allocated through jemalloc (stats.allocated).");
		putf(o, "shardmq_heap_allocated_bytes %llu\n", (unsigned long long)heap);
	}
}

static void render(struct smq_shard *s, struct obuf *o)
{
	unsigned n = smq_broker_nshards_(s->broker);
	struct smq_shard_view *v = calloc(n, sizeof(*v));	/* ~600 bytes a shard */

	if (!v) {
		o->oom = true;
		return;
	}
	for (unsigned i = 0; i < n; i++)
		smq_sys_shard_read(smq_broker_shard(s->broker, i), &v[i]);
	put_process(o, s, n);
	for (size_t k = 0; k < sizeof(shard_series) / sizeof(shard_series[0]); k++) {
		const struct series *se = &shard_series[k];

		family(o, se->name, se->type, se->help);
		for (unsigned i = 0; i < n; i++)
			if (v[i].running)
				putf(o, "%s{shard=\"%u\"} %llu\n", se->name, i,
				     (unsigned long long)at(&v[i], se->off));
	}
	put_drops(o, v, n);
	put_turns(o, v, n);
	put_latency(o, v, n);
	free(v);
}

int smq_metrics_render(struct smq_shard *s, char **out, size_t *len)
{
	struct obuf o = { 0 };

	render(s, &o);
	if (o.oom || !reserve(&o, 1)) {
		free(o.p);
		return -ENOMEM;
	}
	o.p[o.len] = '\0';
	*out = o.p;
	*len = o.len;
	return 0;
}

/* ---- a connection -------------------------------------------------------- */

struct smq_http_conn *smq_metrics_conn_new(uint64_t now_ms)
{
	struct smq_http_conn *h = malloc(sizeof(*h));

	if (!h)
		return NULL;
	memset(h, 0, offsetof(struct smq_http_conn, in));
	smq_http_req_init(&h->req);
	h->deadline_ms = now_ms + SMQ_METRICS_IDLE_MS;
	return h;
}

void smq_metrics_conn_free(struct smq_http_conn *h)
{
	if (!h)
		return;
	free(h->out.p);
	free(h);
}

static bool path_is(const struct smq_http_conn *h, const char *path)
{
	size_t n = strlen(path);

	return h->req.path_len == n && !memcmp(h->in + h->req.path_off, path, n);
}

/* Queue one response: the body is written in place, then the head is
 * slid in before it once its Content-Length is known (one memmove of the
 * body: cheaper than a second buffer, and nothing is sent meanwhile).
 * @status 200 on "/metrics" is the exposition. */
static int respond(struct smq_shard *s, struct smq_http_conn *h, int status, bool metrics,
		   bool head_only, const char *connection)
{
	struct obuf *o = &h->out;
	size_t start = o->len, body;
	const char *ctype = "text/plain; charset=utf-8";
	char head[256];
	int hl;

	if (status == 200 && metrics) {
		render(s, o);
		ctype = SMQ_METRICS_CTYPE;
	} else if (status == 200) {
		putf(o, "shardmq %s\n\nPrometheus metrics: /metrics\n", SMQ_VERSION);
	} else {
		putf(o, "%d %s\n", status, smq_http_reason(status));
	}
	if (o->oom)
		return -ENOMEM;
	body = o->len - start;
	hl = smq_http_response_head(head, sizeof(head), status, ctype, body, connection);
	if (hl < 0)
		return hl;
	if (head_only)
		o->len = start;
	if (!reserve(o, (size_t)hl))
		return -ENOMEM;
	memmove(o->p + start + hl, o->p + start, o->len - start);
	memcpy(o->p + start, head, (size_t)hl);
	o->len += (size_t)hl;
	return 0;
}

/* The complete, valid request in h->req. */
static int answer(struct smq_shard *s, struct smq_http_conn *h)
{
	const struct smq_http_req *r = &h->req;
	bool last = !r->keep_alive || r->body;
	const char *connection = last ? "close" : r->minor == 0 ? "keep-alive" : NULL;
	bool metrics = path_is(h, "/metrics"), known = metrics || path_is(h, "/");
	int status = !known ? 404 : r->method == SMQ_HTTP_OTHER ? 405 : 200;

	if (last)
		h->done = true;
	return respond(s, h, status, metrics, r->method == SMQ_HTTP_HEAD, connection);
}

static int process(struct smq_shard *s, struct smq_http_conn *h)
{
	while (!h->done && smq_metrics_conn_out_pending(h) < SMQ_METRICS_OUT_HIGH) {
		int ret = smq_http_parse(&h->req, h->in, h->in_len);

		if (!ret)
			break;
		if (ret < 0) {
			/* Where the next request would start is unknown: the
			 * connection ends here, and only this one. */
			h->done = true;
			h->in_len = 0;
			return respond(s, h, smq_http_error_status(ret), false, false, "close");
		}
		if (answer(s, h))
			return -ENOMEM;
		h->in_len -= (size_t)ret;
		memmove(h->in, h->in + ret, h->in_len);
		h->deadline_ms = s->now_ms + SMQ_METRICS_IDLE_MS;
		smq_http_req_init(&h->req);
	}
	return 0;
}

int smq_metrics_conn_input(struct smq_shard *s, struct smq_http_conn *h, const uint8_t *p,
			   size_t n)
{
	if (h->done)
		return 0;
	if (n > IN_CAP - h->in_len)
		return -ENOBUFS;
	memcpy(h->in + h->in_len, p, n);
	h->in_len += n;
	return process(s, h);
}

int smq_metrics_conn_resume(struct smq_shard *s, struct smq_http_conn *h)
{
	return process(s, h);
}

int smq_metrics_conn_out_iov(struct smq_http_conn *h, struct iovec *iov, int max)
{
	if (max < 1 || h->out.sent == h->out.len)
		return 0;
	iov[0].iov_base = h->out.p + h->out.sent;
	iov[0].iov_len = h->out.len - h->out.sent;
	return 1;
}

void smq_metrics_conn_out_done(struct smq_http_conn *h, size_t n)
{
	struct obuf *o = &h->out;

	o->sent += n;
	if (o->sent < o->len)
		return;
	o->sent = o->len = 0;
	if (o->cap > OUT_KEEP) {
		free(o->p);
		o->p = NULL;
		o->cap = 0;
	}
}

size_t smq_metrics_conn_out_pending(const struct smq_http_conn *h)
{
	return h->out.len - h->out.sent;
}

bool smq_metrics_conn_done(const struct smq_http_conn *h)
{
	return h->done;
}

int64_t smq_metrics_conn_expire(struct smq_http_conn *h, uint64_t now_ms)
{
	if (now_ms < h->deadline_ms && !h->done)
		return (int64_t)(h->deadline_ms - now_ms);
	if (!h->done && h->in_len && !smq_metrics_conn_out_pending(h))
		respond(NULL, h, 408, false, false, "close");	/* best effort */
	h->done = true;
	return 0;
}
