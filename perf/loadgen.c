/* loadgen.c - MQTT load generator: throughput, latency and delivery checks.
 *
 *	loadgen --preset 1to1|fanin|fanout|mesh|connections|churn [--qos 0|1|2]
 *		[--host 127.0.0.1] [--port 1883] [--size 64] [--duration 5]
 *		[--warmup 1] [--drain 5] [--clients N] [--inflight 64]
 *		[--rate MSGS/S] [--threads N] [--mqtt 4|5] [--broker-pid PID]
 *		[--persistent] [--json] [--progress]
 *		[--cafile CA.pem [--insecure] [--cert C.pem --key K.pem]
 *		 [--tls-version tlsv1.3|tlsv1.2] [--ciphers-tls13 SUITES]]
 *		[--ws [--ws-path /mqtt]]
 *
 * Try it: mosquitto -p 1883 & build/perf/loadgen --preset fanout --qos 1
 *
 * Presets (N = --clients, which overrides the default count):
 *   1to1         N pairs (default 1): publisher i -> topic i -> subscriber i
 *   fanin        N publishers (default 20), each on its own topic, -> one
 *                subscriber on a "+" wildcard
 *   fanout       one publisher -> N subscribers (default 20) of one topic
 *   mesh         N clients (default 20) that all publish to and subscribe
 *                to one shared topic (N * N deliveries per round)
 *   connections  N idle clients (default 10000) with keepalive 60: connect
 *                rate and, with --broker-pid, broker memory per connection
 *   churn        N clients (default 32 per thread) that connect, get
 *                CONNACK, send DISCONNECT, wait for the broker to close and
 *                start again, for the whole run: connects/s of complete
 *                cycles and the connect latency (connect() to CONNACK)
 *
 * --persistent: every client has a persistent session (3.1.1 clean session
 * 0; 5.0 clean start 0 and session expiry 1 hour), so that a broker with
 * persistence stores what it queues and holds for them, as it would for
 * real subscribers that must not miss a message. Client ids carry
 * loadgen's pid, so each run makes new sessions; they stay in the broker.
 *
 * TLS: --cafile makes every connection TLS (net/tls.h, the same transform
 * the broker and the client library use), verified against that CA; the
 * host name checked and sent as SNI is --host (IP literals get no SNI),
 * unless --insecure. The transform sits between the socket and the client
 * core: ciphertext read is fed to it and the plaintext to the core; the
 * core's output is sealed into records (small packets share a 16 KiB
 * record) and the ciphertext leaves in one sendmsg() per connection per
 * turn, as plaintext does. Without --cafile no TLS code runs. The suite
 * negotiated first is reported ("tls" in --json).
 *
 * WebSocket: --ws speaks MQTT over WebSocket (net/ws.h's client side: the
 * upgrade request with subprotocol mqtt, then masked binary frames, one per
 * write), over TLS too with --cafile (a net/xstack.h stack, as the broker's
 * wss). The port is then the broker's websockets listener.
 *
 * Every payload starts with a 16-byte stamp, then zero padding to --size:
 *
 *	0        8          12        16
 *	| send ns | publisher | seq      | padding ...
 *	 CLOCK_MONOTONIC, host order (sender and receiver share the process)
 *
 * Each subscriber keeps, per publisher it should hear, a growable bitmap of
 * the sequence numbers seen and the highest one so far: a set bit seen
 * again is a duplicate, a number below the highest is a reordering, and
 * after the drain every number the publisher sent but the bitmap lacks is
 * missing. Latency is receive time minus the stamp, in a log-linear histogram
 * (32 sub-buckets per power of two, about 3% resolution).
 *
 * Why the tool is not the bottleneck: one thread per core (--threads),
 * each driving many clients through its own epoll loop. A loop turn reads
 * up to 4 x 64 KiB per ready socket and feeds it to the sans-I/O client
 * core (core/client.h), handles every event, lets publishers fill their
 * output up to 64 KiB, and then writes each connection's output in ONE
 * write(): thousands of small messages per syscall. QoS 0 publishers are
 * paced only by socket writability (or --rate); QoS 1/2 publishers by
 * their in-flight window (--inflight), refilled once half of it is
 * acknowledged. The process CPU time over the measured window is printed
 * next to every result, with the broker's (--broker-pid).
 *
 * Invariants: a publisher's seq is the number of publishes the client core
 * accepted, so each of its subscribers must see exactly 0 .. seq-1; a
 * connection sits in its worker's dirty list at most once per turn.
 *
 * Run phases: connect (and subscribe) everyone -> warm-up -> measured
 * window -> drain -> DISCONNECT. In the drain publishers stop, and we wait
 * until every expected delivery arrived, or nothing arrived for 1 s (QoS
 * 0; 3 s at QoS 1/2), or --drain seconds passed. What is missing then is
 * "lost" if the broker had gone quiet, else "backlog": accepted, still on
 * its way (an open-loop flood can queue more in a broker than it delivers
 * in seconds). Rates, latency and CPU count what happened inside the
 * window; lost, duplicated and reordered count the whole run.
 *
 * Threads: main only coordinates. Each worker owns its connections and its
 * statistics outright; main reads a handful of relaxed atomics while the
 * run goes and everything else after pthread_join().
 *
 * Left to others: the MQTT protocol (core/client.c); starting brokers and
 * tabulating results (perf/bench.sh).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/client.h"
#include "net/tls.h"
#include "net/ws.h"
#include "net/xstack.h"

#define STAMP_LEN 16u
#define RBUF_LEN (64u << 10)		/* one read */
#define READ_ROUNDS 4			/* reads per socket per loop turn */
#define OUT_BATCH (64u << 10)		/* a publisher stops filling here */
#define MAX_EVENTS 512
#define HANDSHAKES_PER_THREAD 32	/* stay below the broker's listen backlog */
#define IDLE_WAIT_NS 20000000ull	/* loop wake-up when nothing is due */
#define QUIET_NS 1000000000ull		/* drain: QoS 0 gives up after 1 s of silence, */
#define QUIET_QOS_NS 3000000000ull	/* QoS 1/2 after 3 s (brokers do pause) */
#define NSEC 1000000000ull

/* ---- options ------------------------------------------------------------ */

enum preset { P_1TO1, P_FANIN, P_FANOUT, P_MESH, P_CONNECTIONS, P_CHURN };

static const char *const preset_names[] = { "1to1", "fanin", "fanout", "mesh", "connections",
					    "churn" };

struct options {
	const char *host;
	const char *port;
	enum preset preset;
	int qos;
	uint32_t size;
	double duration, warmup;
	double drain;			/* seconds to wait for stragglers at most */
	long clients;			/* -1: the preset's default */
	uint32_t inflight;
	double rate;			/* published msgs/s over all publishers, 0 = max */
	int threads;
	int mqtt;			/* SMQ_V311 or SMQ_V5 */
	long broker_pid;		/* 0: unknown */
	bool persistent;		/* clean = false, 5.0 session expiry 1 h */
	bool json;
	bool progress;			/* a line per second on stderr */
	bool tls;			/* --cafile given: every connection is TLS */
	struct smq_tls_opts tls_opts;	/* client options for smq_tls_ctx_new() */
	bool ws;			/* --ws: MQTT over WebSocket */
	const char *ws_path;		/* --ws-path, default "/mqtt" */
};

/* Who is who: client i publishes as pub(i) and/or subscribes as sub(i). */
struct layout {
	uint32_t nclients, npubs, nsubs;
	uint32_t fan;			/* subscribers that hear each publisher */
	uint32_t ntracks;		/* publishers each subscriber hears */
};

/* ---- clock and histogram ------------------------------------------------ */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC + (uint64_t)ts.tv_nsec;
}

#define HIST_SUB 32u
#define HIST_LINEAR 64u
#define HIST_N (HIST_LINEAR + 58u * HIST_SUB)

/* Values below 64 ns have a bucket each; above, each power of two
 * [2^e, 2^(e+1)) is split into 32 equal buckets. */
struct hist {
	uint64_t n;
	uint64_t max;
	uint64_t b[HIST_N];
};

static unsigned hist_index(uint64_t v)
{
	unsigned e;

	if (v < HIST_LINEAR)
		return (unsigned)v;
	e = 63u - (unsigned)__builtin_clzll(v);
	return HIST_LINEAR + (e - 6u) * HIST_SUB + (unsigned)((v >> (e - 5u)) & (HIST_SUB - 1u));
}

/* The middle of bucket @i. */
static uint64_t hist_value(unsigned i)
{
	unsigned e, m;

	if (i < HIST_LINEAR)
		return i;
	e = (i - HIST_LINEAR) / HIST_SUB + 6u;
	m = (i - HIST_LINEAR) % HIST_SUB;
	return ((uint64_t)(HIST_SUB + m) << (e - 5u)) + (1ull << (e - 5u)) / 2u;
}

static void hist_add(struct hist *h, uint64_t v)
{
	h->b[hist_index(v)]++;
	h->n++;
	if (v > h->max)
		h->max = v;
}

static void hist_merge(struct hist *to, const struct hist *from)
{
	unsigned i;

	for (i = 0; i < HIST_N; i++)
		to->b[i] += from->b[i];
	to->n += from->n;
	if (from->max > to->max)
		to->max = from->max;
}

/* The value at quantile @q (0..1), 0 for an empty histogram. */
static uint64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t rank = (uint64_t)ceil(q * (double)h->n), seen = 0;
	unsigned i;

	if (!h->n)
		return 0;
	if (rank < 1)
		rank = 1;
	for (i = 0; i < HIST_N; i++) {
		seen += h->b[i];
		if (seen >= rank)
			return hist_value(i) < h->max ? hist_value(i) : h->max;
	}
	return h->max;
}

/* ---- delivery tracking -------------------------------------------------- */

/* What one subscriber heard from one publisher. */
struct track {
	uint64_t *bits;			/* bit s set: sequence number s arrived */
	uint32_t words;
	uint32_t next;			/* highest sequence number seen + 1 */
	uint64_t distinct;
};

struct wstats {
	uint64_t sent_win;		/* publishes accepted inside the window */
	uint64_t deliv_win;		/* messages received inside the window */
	uint64_t deliv_all;
	uint64_t dup, reord, unexpected;
	uint64_t pub_failed;		/* PUBLISH_DONE with a failure reason */
	uint64_t conn_errors;
	uint64_t reads, writes;
	uint64_t connects_win;		/* churn: CONNACKs inside the window */
	struct hist lat;		/* delivery latency; churn: connect latency */
};

/* Record @seq; false if it cannot grow the bitmap. */
static bool track_add(struct track *t, uint32_t seq, struct wstats *st)
{
	uint32_t w = seq / 64u, n;
	uint64_t *p, bit = 1ull << (seq % 64u);

	if (w >= t->words) {
		n = t->words ? t->words : 1024u;
		while (n <= w)
			n *= 2u;
		p = realloc(t->bits, (size_t)n * sizeof(*p));
		if (!p)
			return false;
		memset(p + t->words, 0, (size_t)(n - t->words) * sizeof(*p));
		t->bits = p;
		t->words = n;
	}
	if (t->bits[w] & bit) {
		st->dup++;
		return true;
	}
	t->bits[w] |= bit;
	t->distinct++;
	if (seq + 1u < t->next)
		st->reord++;		/* arrived after a later one */
	else
		t->next = seq + 1u;
	return true;
}

/* ---- connections and workers ------------------------------------------- */

enum cstate { CS_IDLE, CS_TCP, CS_CONNACK, CS_SUBACK, CS_READY, CS_BYE, CS_DEAD };

struct worker;

struct conn {
	struct smq_client *cl;
	struct worker *w;
	int fd;
	enum cstate state;
	bool dirty;			/* in w->dirty: has output to write */
	bool pollout;			/* EPOLLOUT armed */
	bool blocked;			/* last write was short: wait for EPOLLOUT */
	bool failed;			/* it ended in an error (churn: not reopened) */
	uint32_t id;
	struct smq_tls *tls;		/* with --cafile, while fd >= 0; else NULL */
	struct smq_xform *x;		/* the transport (owns tls): TLS, WebSocket,
					 * both stacked, or NULL */
	uint64_t t_open;		/* churn: when connect() was called */
	int32_t pub, sub;		/* publisher / subscriber index, or -1 */
	char topic[64];			/* publishers */
	char filter[64];		/* subscribers */
	uint32_t seq;			/* publishers: messages accepted so far */
	uint8_t *payload;		/* publishers: --size bytes */
	struct track *tracks;		/* subscribers: layout.ntracks */
};

struct worker {
	pthread_t th;
	int idx;
	int ep;
	struct conn *conns;
	uint32_t n;
	uint32_t next_open;		/* connections opened so far */
	uint32_t handshaking;
	struct conn **dirty;
	uint32_t ndirty;
	uint8_t *rbuf;
	uint8_t *pbuf;			/* TLS: plaintext out of the transform */
	uint64_t next_tick;		/* keepalive ticks, once a second */
	uint64_t next_due;		/* rate pacing: earliest next publish */
	bool hungry;			/* a publisher could send right now */
	struct wstats st;
	/* read by main while the run goes (relaxed; approximate is fine) */
	atomic_uint ready, dead;
	atomic_uint_fast64_t published, expected, received, pending;
};

enum phase { PH_CONNECT, PH_RUN, PH_STOP };

/* Written by main before the phase moves to PH_RUN, read-only after. */
static struct {
	struct options o;
	struct layout lay;
	struct addrinfo *addr;
	uint64_t run_start, meas_start, meas_end;
	double rate_per_pub;
	atomic_int phase;
	pid_t pid;
	struct smq_tls_ctx *tls_ctx;	/* NULL: plain TCP */
	atomic_bool tls_named;		/* the first handshake's names are in: */
	const char *tls_version;	/* static strings of net/tls.c, read by */
	const char *tls_cipher;		/* main after pthread_join() */
} g;

static int phase_now(void)
{
	return atomic_load_explicit(&g.phase, memory_order_acquire);
}

/* Which of the subscriber's tracks follows publisher @pub, or -1. */
static int track_slot(int32_t sub, uint32_t pub)
{
	switch (g.o.preset) {
	case P_1TO1:
		return (uint32_t)sub == pub ? 0 : -1;
	case P_FANOUT:
		return pub == 0 ? 0 : -1;
	case P_FANIN:
	case P_MESH:
		return pub < g.lay.npubs ? (int)pub : -1;
	default:
		return -1;
	}
}

static void mark_dirty(struct conn *c)
{
	if (c->dirty)
		return;
	c->dirty = true;
	c->w->dirty[c->w->ndirty++] = c;
}

static void set_pollout(struct conn *c, bool on)
{
	struct epoll_event ev = { .events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c };

	if (c->pollout == on)
		return;
	c->pollout = on;
	epoll_ctl(c->w->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* A connection whose handshake ended, for better or worse. */
static void handshake_over(struct conn *c, bool ok)
{
	c->w->handshaking--;
	if (ok)
		atomic_fetch_add_explicit(&c->w->ready, 1, memory_order_relaxed);
	else
		atomic_fetch_add_explicit(&c->w->dead, 1, memory_order_relaxed);
}

/* Close @c for good. @why is printed for the first few failures. */
static void conn_dead(struct conn *c, const char *why)
{
	static atomic_int printed;

	if (c->state == CS_DEAD)
		return;
	if (c->state != CS_BYE) {
		c->failed = true;
		c->w->st.conn_errors++;
		if (atomic_fetch_add(&printed, 1) < 5)
			fprintf(stderr, "loadgen: client %u: %s\n", c->id, why);
	}
	if (c->state >= CS_TCP && c->state < CS_READY)
		handshake_over(c, false);
	close(c->fd);
	c->fd = -1;
	c->state = CS_DEAD;
	if (c->x)
		smq_xform_free(c->x);
	else
		smq_tls_free(c->tls);
	c->x = NULL;
	c->tls = NULL;
}

/* The transform failed with @err: say why in its words. */
static void tls_dead(struct conn *c, int err)
{
	struct smq_xform *up = smq_xstack_upper(c->x);
	struct smq_ws *w = smq_ws_from_xform(up ? up : c->x);
	const char *why = c->tls ? smq_tls_error(c->tls) : NULL;
	const char *layer = "TLS";
	char buf[160];

	if (!why && w && smq_ws_error(w)) {
		why = smq_ws_error(w);
		layer = "WebSocket";
	}
	snprintf(buf, sizeof(buf), "%s: %s", layer, why ? why : strerror(-err));
	conn_dead(c, buf);
}

/* c->x: TLS, WebSocket (--ws), WebSocket over TLS, or nothing. 0, or -1
 * with @c dead. */
static int set_transport(struct conn *c)
{
	struct smq_xform *tls = c->tls ? smq_tls_xform(c->tls) : NULL, *ws = NULL;
	struct smq_ws *w;
	char host[300];

	c->x = tls;
	if (!g.o.ws)
		return 0;
	snprintf(host, sizeof(host), "%s:%s", g.o.host, g.o.port);
	w = smq_ws_client_new(NULL, host, g.o.ws_path);
	ws = w ? smq_ws_xform(w) : NULL;
	c->x = ws && tls ? smq_xstack_new(tls, ws) : ws;
	if (!c->x) {
		smq_xform_free(ws);
		conn_dead(c, "WebSocket: out of memory");
		return -1;
	}
	return 0;
}

static int open_socket(struct conn *c)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT, .data.ptr = c };
	int one = 1, ret;

	c->fd = socket(g.addr->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(c->fd, g.addr->ai_addr, g.addr->ai_addrlen) && errno != EINPROGRESS)
		goto out_close;
	c->pollout = true;	/* EPOLLOUT says the connect finished */
	if (epoll_ctl(c->w->ep, EPOLL_CTL_ADD, c->fd, &ev))
		goto out_close;
	return 0;
out_close:
	ret = -errno;
	close(c->fd);
	c->fd = -1;
	return ret;
}

/* Start the TCP connect of client @c. */
static void open_conn(struct conn *c)
{
	int ret;

	c->state = CS_TCP;
	c->t_open = now_ns();
	c->w->handshaking++;
	ret = open_socket(c);
	if (ret) {
		c->w->st.conn_errors++;
		fprintf(stderr, "loadgen: connect: %s\n", strerror(-ret));
		c->failed = true;
		c->state = CS_DEAD;
		handshake_over(c, false);
	}
}

/* Start the TCP connect of the next client of @w. */
static void open_next(struct worker *w)
{
	open_conn(&w->conns[w->next_open++]);
}

/* The TCP connection is up (or failed): send CONNECT. */
static void on_tcp_up(struct conn *c, uint64_t now)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) || err) {
		conn_dead(c, err ? strerror(err) : "connect failed");
		return;
	}
	set_pollout(c, false);
	if (g.tls_ctx) {
		/* queues the ClientHello; CONNECT waits in the core until the
		 * handshake is done (the transform takes no plaintext before) */
		c->tls = smq_tls_new(g.tls_ctx, g.o.host);
		if (!c->tls) {
			conn_dead(c, "TLS: out of memory");
			return;
		}
	}
	if (set_transport(c))
		return;
	if (smq_client_connect(c->cl, now / 1000000u)) {
		conn_dead(c, "cannot queue CONNECT");
		return;
	}
	c->state = CS_CONNACK;
	mark_dirty(c);
}

/* churn: a CONNACK arrived at @now; say goodbye at once. The broker closes
 * after DISCONNECT, and the slot starts over when it has (see churn()). */
static void churn_connack(struct conn *c, uint64_t now)
{
	struct wstats *st = &c->w->st;

	handshake_over(c, true);
	if (now >= g.meas_start && now < g.meas_end) {
		st->connects_win++;
		hist_add(&st->lat, now - c->t_open);
	}
	if (smq_client_disconnect(c->cl, 0, NULL)) {
		conn_dead(c, "cannot queue DISCONNECT");
		return;
	}
	c->state = CS_BYE;
	mark_dirty(c);
}

static void on_connack(struct conn *c, const struct smq_client_event *ev)
{
	struct smq_sub_entry e;

	if (ev->reason) {
		conn_dead(c, "CONNACK refused the connection");
		return;
	}
	if (g.o.preset == P_CHURN) {
		churn_connack(c, now_ns());
		return;
	}
	if (c->sub < 0) {
		c->state = CS_READY;
		handshake_over(c, true);
		return;
	}
	e.filter = (struct smq_str){ (const uint8_t *)c->filter, (uint32_t)strlen(c->filter) };
	e.opts = (uint8_t)g.o.qos;
	if (smq_client_subscribe(c->cl, &e, 1, NULL) < 0) {
		conn_dead(c, "cannot queue SUBSCRIBE");
		return;
	}
	c->state = CS_SUBACK;
	mark_dirty(c);
}

static void on_suback(struct conn *c, const struct smq_client_event *ev)
{
	if (!ev->codes.len || ev->codes.p[0] >= 0x80) {
		conn_dead(c, "SUBACK refused the subscription");
		return;
	}
	if (ev->codes.p[0] != g.o.qos)
		fprintf(stderr, "loadgen: client %u: granted QoS %u, asked %d\n", c->id,
			ev->codes.p[0], g.o.qos);
	c->state = CS_READY;
	handshake_over(c, true);
}

/* A PUBLISH arrived at subscriber @c at time @now. */
static void on_message(struct conn *c, struct smq_str pl, uint64_t now)
{
	struct wstats *st = &c->w->st;
	uint64_t ts;
	uint32_t pub, seq;
	int slot;

	if (pl.len < STAMP_LEN || c->sub < 0) {
		st->unexpected++;
		return;
	}
	memcpy(&ts, pl.p, 8);
	memcpy(&pub, pl.p + 8, 4);
	memcpy(&seq, pl.p + 12, 4);
	slot = track_slot(c->sub, pub);
	if (slot < 0 || !track_add(&c->tracks[slot], seq, st)) {
		st->unexpected++;
		return;
	}
	st->deliv_all++;
	if (now >= g.meas_start && now < g.meas_end) {
		st->deliv_win++;
		hist_add(&st->lat, now > ts ? now - ts : 0);
	}
}

static void on_event(struct conn *c, const struct smq_client_event *ev, uint64_t now)
{
	switch (ev->type) {
	case SMQ_CLIENT_EV_CONNACK:
		on_connack(c, ev);
		break;
	case SMQ_CLIENT_EV_SUBACK:
		on_suback(c, ev);
		break;
	case SMQ_CLIENT_EV_MESSAGE:
		on_message(c, ev->msg.payload, now);
		break;
	case SMQ_CLIENT_EV_PUBLISH_DONE:
		if (ev->reason >= 0x80)
			c->w->st.pub_failed++;
		break;
	case SMQ_CLIENT_EV_DISCONNECT:
		conn_dead(c, "the broker sent DISCONNECT");
		break;
	case SMQ_CLIENT_EV_ERROR:
		conn_dead(c, ev->text);
		break;
	default:
		break;
	}
}

static void drain_events(struct conn *c, uint64_t now)
{
	struct smq_client_event ev;

	while (c->state != CS_DEAD && smq_client_next_event(c->cl, &ev))
		on_event(c, &ev, now);
}

/* Note the first completed handshake's protocol and suite. */
static void name_tls(const struct smq_tls *t)
{
	if (atomic_load_explicit(&g.tls_named, memory_order_relaxed) ||
	    !smq_tls_handshake_done(t) || atomic_exchange(&g.tls_named, true))
		return;
	g.tls_version = smq_tls_version(t);
	g.tls_cipher = smq_tls_cipher(t);
}

/* TLS: @n bytes of ciphertext in; the plaintext they complete goes to the
 * core. The transform may have output even when the core has none (the
 * handshake's next flight), so the connection is always marked dirty. */
static void feed_tls(struct conn *c, const uint8_t *p, size_t n)
{
	struct smq_xform *x = c->x;
	ssize_t r;
	int ret = smq_xform_feed(x, p, n);

	if (ret) {
		tls_dead(c, ret);
		return;
	}
	mark_dirty(c);
	if (c->tls)
		name_tls(c->tls);
	while ((r = smq_xform_read(x, c->w->pbuf, RBUF_LEN)) > 0) {
		smq_client_feed(c->cl, c->w->pbuf, (size_t)r, now_ns() / 1000000u);
		drain_events(c, now_ns());
		if (c->state == CS_DEAD || c->state == CS_BYE)
			return;
	}
	if (r < 0)
		tls_dead(c, (int)r);
}

/* Read what the socket has (bounded per turn: level-triggered epoll
 * brings us back) and feed it to the client core. */
static void do_read(struct conn *c)
{
	struct worker *w = c->w;
	ssize_t n;
	int i;

	for (i = 0; i < READ_ROUNDS && c->state != CS_DEAD; i++) {
		n = read(c->fd, w->rbuf, RBUF_LEN);
		w->st.reads++;
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		if (n <= 0) {
			conn_dead(c, n ? strerror(errno) : "the broker closed the connection");
			return;
		}
		if (c->state == CS_BYE)
			continue;
		if (c->x) {
			feed_tls(c, w->rbuf, (size_t)n);
		} else {
			if (smq_client_feed(c->cl, w->rbuf, (size_t)n, now_ns() / 1000000u) == 0)
				mark_dirty(c);	/* acks may be queued */
			drain_events(c, now_ns());
		}
		if ((size_t)n < RBUF_LEN)
			return;
	}
}

static void on_ready_fd(struct conn *c, uint32_t events, uint64_t now)
{
	if (c->state == CS_DEAD)
		return;
	if (c->state == CS_TCP) {
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			on_tcp_up(c, now);
		return;
	}
	if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
		do_read(c);
	if (c->state != CS_DEAD && (events & EPOLLOUT)) {
		c->blocked = false;
		mark_dirty(c);
	}
}

/* TLS: seal the core's output and send the ciphertext, usually in one
 * sendmsg() (the transform takes up to SMQ_TLS_OUT_MAX, the core holds at
 * most 4 x OUT_BATCH); again only while the socket takes it all. */
static void flush_tls(struct conn *c)
{
	struct smq_xform *x = c->x;
	struct iovec iov[4];
	struct msghdr msg = { .msg_iov = iov };
	const uint8_t *p;
	size_t n, want;
	ssize_t r;
	int k;

	for (;;) {
		smq_client_out(c->cl, &p, &n);
		if (n) {
			iov[0] = (struct iovec){ (void *)p, n };
			r = smq_xform_write(x, iov, 1);
			if (r < 0) {
				tls_dead(c, (int)r);
				return;
			}
			if (r > 0) {
				smq_client_out_consumed(c->cl, (size_t)r);
				drain_events(c, 0);	/* QoS 0 PUBLISH_DONE */
				if (c->state == CS_DEAD)
					return;
			}
		}
		msg.msg_iovlen = (size_t)smq_xform_out_iov(x, iov, 4);
		if (!msg.msg_iovlen) {
			c->blocked = false;
			set_pollout(c, false);
			return;
		}
		for (want = 0, k = 0; k < (int)msg.msg_iovlen; k++)
			want += iov[k].iov_len;
		r = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
		c->w->st.writes++;
		if (r < 0 && errno != EAGAIN && errno != EINTR) {
			conn_dead(c, strerror(errno));
			return;
		}
		if (r > 0)
			smq_xform_out_done(x, (size_t)r);
		c->blocked = r < (ssize_t)want;
		if (c->blocked) {
			set_pollout(c, true);
			return;
		}
	}
}

/* Write @c's output in one write(). */
static void flush(struct conn *c)
{
	const uint8_t *p;
	size_t n;
	ssize_t r;

	c->dirty = false;
	if (c->state == CS_DEAD || c->state == CS_TCP || c->blocked)
		return;
	if (c->x) {
		flush_tls(c);
		return;
	}
	smq_client_out(c->cl, &p, &n);
	if (!n) {
		set_pollout(c, false);
		return;
	}
	r = send(c->fd, p, n, MSG_NOSIGNAL);
	c->w->st.writes++;
	if (r < 0 && errno != EAGAIN && errno != EINTR) {
		conn_dead(c, strerror(errno));
		return;
	}
	if (r > 0) {
		smq_client_out_consumed(c->cl, (size_t)r);
		drain_events(c, 0);	/* QoS 0 PUBLISH_DONE */
	}
	c->blocked = r < (ssize_t)n;
	set_pollout(c, c->blocked);
}

static void flush_dirty(struct worker *w)
{
	uint32_t i;

	for (i = 0; i < w->ndirty; i++)
		flush(w->dirty[i]);
	w->ndirty = 0;
}

/* ---- publishing -------------------------------------------------------- */

/* When publisher @c may send its message number @seq (rate pacing). */
static uint64_t due_at(uint32_t seq)
{
	return g.run_start + (uint64_t)((double)seq * 1e9 / g.rate_per_pub);
}

/* QoS 1/2: refill the window only once half of it is acknowledged, so that
 * a write carries many publishes instead of one per returning ack (else a
 * full window settles into one PUBACK in, one PUBLISH out per wake-up). */
static bool window_full(const struct conn *c)
{
	return g.o.qos && smq_client_inflight(c->cl) > g.o.inflight - (g.o.inflight + 1u) / 2u;
}

/* Queue as many publishes as @c may send now, up to OUT_BATCH bytes of
 * output. All share one timestamp: they leave in the same write(). */
static void pump(struct conn *c, uint64_t now)
{
	struct smq_str pl = { c->payload, g.o.size };
	const uint8_t *p;
	size_t n;
	int ret;

	smq_client_out(c->cl, &p, &n);
	memcpy(c->payload, &now, 8);
	while (n < OUT_BATCH) {
		if (g.rate_per_pub > 0 && due_at(c->seq) > now)
			break;
		memcpy(c->payload + 12, &c->seq, 4);
		ret = smq_client_publish(c->cl, c->topic, pl, (uint8_t)g.o.qos, false, NULL);
		if (ret == -EAGAIN)
			break;
		if (ret < 0) {
			conn_dead(c, smq_client_strerror(ret));
			return;
		}
		c->seq++;
		if (now >= g.meas_start && now < g.meas_end)
			c->w->st.sent_win++;
		smq_client_out(c->cl, &p, &n);
	}
	mark_dirty(c);
}

/* After the turn's writes: could @c publish again without waiting? */
static bool can_send(struct worker *w, const struct conn *c, uint64_t now)
{
	uint64_t due;

	if (c->state != CS_READY || c->blocked || window_full(c))
		return false;
	if (g.rate_per_pub <= 0)
		return true;
	due = due_at(c->seq);
	if (due <= now)
		return true;
	if (due < w->next_due)
		w->next_due = due;
	return false;
}

static void pump_all(struct worker *w, uint64_t now, bool running)
{
	uint32_t i;

	for (i = 0; running && i < w->n; i++) {
		struct conn *c = &w->conns[i];

		if (c->pub >= 0 && c->state == CS_READY && !c->blocked && !window_full(c))
			pump(c, now);
	}
}

/* ---- the worker loop --------------------------------------------------- */

/* Counters main watches; and whether any publisher is hungry. */
static void publish_live(struct worker *w, uint64_t now)
{
	uint64_t published = 0, expected = 0, received = 0, pending = 0;
	const uint8_t *p;
	size_t n;
	uint32_t i, k;

	w->hungry = false;
	w->next_due = UINT64_MAX;
	if (!g.lay.npubs)
		return;		/* connections: nothing to watch */
	for (i = 0; i < w->n; i++) {
		struct conn *c = &w->conns[i];

		if (c->state == CS_DEAD || c->state == CS_IDLE)
			continue;
		if (c->pub >= 0) {
			published += c->seq;
			expected += (uint64_t)c->seq * g.lay.fan;
			smq_client_out(c->cl, &p, &n);
			pending += smq_client_inflight(c->cl) + (n > 0);
			if (can_send(w, c, now))
				w->hungry = true;
		}
		for (k = 0; c->sub >= 0 && k < g.lay.ntracks; k++)
			received += c->tracks[k].distinct;
	}
	atomic_store_explicit(&w->published, published, memory_order_relaxed);
	atomic_store_explicit(&w->expected, expected, memory_order_relaxed);
	atomic_store_explicit(&w->received, received, memory_order_relaxed);
	atomic_store_explicit(&w->pending, pending, memory_order_relaxed);
}

static void tick_all(struct worker *w, uint64_t now)
{
	uint32_t i;

	if (now < w->next_tick)
		return;
	w->next_tick = now + NSEC;
	for (i = 0; i < w->n; i++) {
		struct conn *c = &w->conns[i];

		if (c->state == CS_READY && smq_client_tick(c->cl, now / 1000000u) == 0)
			mark_dirty(c);
		drain_events(c, now);
	}
}

/* How long epoll may sleep. */
static struct timespec loop_timeout(const struct worker *w, int ph, uint64_t now)
{
	uint64_t wait = IDLE_WAIT_NS;

	if (ph == PH_RUN && now < g.meas_end) {
		if (w->hungry)
			wait = 0;
		else if (w->next_due != UINT64_MAX)
			wait = w->next_due > now ? w->next_due - now : 0;
		if (wait > IDLE_WAIT_NS)
			wait = IDLE_WAIT_NS;
	}
	return (struct timespec){ .tv_sec = (time_t)(wait / NSEC), .tv_nsec = (long)(wait % NSEC) };
}

/* churn: start over every slot whose last connection is over, until the
 * window closes. */
static void churn(struct worker *w, uint64_t now)
{
	uint32_t i;

	for (i = 0; now < g.meas_end && i < w->next_open; i++) {
		struct conn *c = &w->conns[i];

		if (c->state != CS_DEAD || c->failed)
			continue;
		smq_client_reset_connection(c->cl);
		open_conn(c);
	}
}

static void loop_turn(struct worker *w, int ph)
{
	struct epoll_event evs[MAX_EVENTS];
	uint64_t now = now_ns();
	struct timespec ts = loop_timeout(w, ph, now);
	int n, i;

	n = epoll_pwait2(w->ep, evs, MAX_EVENTS, &ts, NULL);
	now = now_ns();
	for (i = 0; i < n; i++)
		on_ready_fd(evs[i].data.ptr, evs[i].events, now);
	while (ph != PH_STOP && w->next_open < w->n && w->handshaking < HANDSHAKES_PER_THREAD)
		open_next(w);
	if (g.o.preset == P_CHURN && ph == PH_RUN)
		churn(w, now);
	pump_all(w, now, ph == PH_RUN && now < g.meas_end);
	tick_all(w, now);
	flush_dirty(w);
	publish_live(w, now_ns());
}

/* Say goodbye: DISCONNECT everyone, let the broker close first (so the
 * TIME_WAIT sockets are its own, not our ephemeral ports), and after a
 * second reset whoever is left. */
static void close_all(struct worker *w)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	uint64_t until = now_ns() + NSEC;
	uint32_t i, open = 0;

	for (i = 0; i < w->n; i++) {
		struct conn *c = &w->conns[i];

		if (c->state == CS_DEAD || c->state == CS_IDLE)
			continue;
		if (c->state >= CS_CONNACK && smq_client_disconnect(c->cl, 0, NULL) == 0) {
			c->blocked = false;
			flush(c);
		}
		if (c->state != CS_DEAD)
			c->state = CS_BYE;
	}
	while (now_ns() < until) {
		loop_turn(w, PH_STOP);
		for (i = 0, open = 0; i < w->n; i++)
			open += w->conns[i].state == CS_BYE;
		if (!open)
			break;
	}
	for (i = 0; i < w->n; i++) {
		struct conn *c = &w->conns[i];

		if (c->state != CS_BYE)
			continue;
		setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		conn_dead(c, "");
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int ph;

	while ((ph = phase_now()) != PH_STOP)
		loop_turn(w, ph);
	close_all(w);
	if (g.tls_ctx)
		smq_tls_thread_exit();	/* wolfSSL's per-thread ECC cache */
	return NULL;
}

/* ---- setting up -------------------------------------------------------- */

static struct layout make_layout(const struct options *o)
{
	struct layout l = { 0 };
	uint32_t n = (uint32_t)o->clients;

	switch (o->preset) {
	case P_1TO1:
		n = o->clients < 0 ? 1 : n;
		l = (struct layout){ 2 * n, n, n, 1, 1 };
		break;
	case P_FANIN:
		n = o->clients < 0 ? 20 : n;
		l = (struct layout){ n + 1, n, 1, 1, n };
		break;
	case P_FANOUT:
		n = o->clients < 0 ? 20 : n;
		l = (struct layout){ n + 1, 1, n, n, 1 };
		break;
	case P_MESH:
		n = o->clients < 0 ? 20 : n;
		l = (struct layout){ n, n, n, n, n };
		break;
	case P_CONNECTIONS:
		n = o->clients < 0 ? 10000 : n;
		l = (struct layout){ n, 0, 0, 0, 0 };
		break;
	case P_CHURN:
		n = o->clients < 0 ? HANDSHAKES_PER_THREAD * (uint32_t)o->threads : n;
		l = (struct layout){ n, 0, 0, 0, 0 };
		break;
	}
	return l;
}

/* Client @i's roles, topic and filter. */
static void assign_roles(struct conn *c, uint32_t i)
{
	const uint32_t fanin_pubs = g.lay.npubs;
	int pid = (int)g.pid;

	c->pub = c->sub = -1;
	switch (g.o.preset) {
	case P_1TO1:
		if (i % 2 == 0)
			c->pub = (int32_t)(i / 2);
		else
			c->sub = (int32_t)(i / 2);
		snprintf(c->topic, sizeof(c->topic), "lg/%d/1to1/%u", pid, i / 2);
		snprintf(c->filter, sizeof(c->filter), "%s", c->topic);
		break;
	case P_FANIN:
		if (i < fanin_pubs)
			c->pub = (int32_t)i;
		else
			c->sub = 0;
		snprintf(c->topic, sizeof(c->topic), "lg/%d/in/%u", pid, i);
		snprintf(c->filter, sizeof(c->filter), "lg/%d/in/+", pid);
		break;
	case P_FANOUT:
		if (i == 0)
			c->pub = 0;
		else
			c->sub = (int32_t)(i - 1);
		snprintf(c->topic, sizeof(c->topic), "lg/%d/out", pid);
		snprintf(c->filter, sizeof(c->filter), "%s", c->topic);
		break;
	case P_MESH:
		c->pub = c->sub = (int32_t)i;
		snprintf(c->topic, sizeof(c->topic), "lg/%d/mesh", pid);
		snprintf(c->filter, sizeof(c->filter), "%s", c->topic);
		break;
	case P_CONNECTIONS:
	case P_CHURN:
		break;
	}
}

static int conn_init(struct conn *c, struct worker *w, uint32_t i)
{
	struct smq_client_opts co = { 0 };
	char id[48];

	c->w = w;
	c->id = i;
	c->fd = -1;
	assign_roles(c, i);
	snprintf(id, sizeof(id), "lg%d-%u", (int)g.pid, i);
	co.version = (uint8_t)g.o.mqtt;
	co.client_id = id;
	co.clean = !g.o.persistent;
	co.session_expiry = g.o.persistent ? 3600 : 0;
	co.keepalive = 60;
	co.max_inflight = (uint16_t)g.o.inflight;
	co.max_out_bytes = 4u * OUT_BATCH;
	c->cl = smq_client_new(&co);
	if (!c->cl)
		return -ENOMEM;
	if (c->pub >= 0) {
		c->payload = calloc(1, g.o.size);
		if (!c->payload)
			return -ENOMEM;
		memcpy(c->payload + 8, &c->pub, 4);
	}
	if (c->sub >= 0) {
		c->tracks = calloc(g.lay.ntracks, sizeof(*c->tracks));
		if (!c->tracks)
			return -ENOMEM;
	}
	return 0;
}

/* Client i goes to worker i % threads, so pairs split across threads. */
static int workers_init(struct worker *ws, int nw)
{
	uint32_t i, per;
	int k;

	for (k = 0; k < nw; k++) {
		struct worker *w = &ws[k];

		per = g.lay.nclients / (uint32_t)nw + ((uint32_t)k < g.lay.nclients % (uint32_t)nw);
		w->idx = k;
		w->ep = epoll_create1(EPOLL_CLOEXEC);
		w->conns = calloc(per ? per : 1, sizeof(*w->conns));
		w->dirty = calloc(per ? per : 1, sizeof(*w->dirty));
		w->rbuf = malloc(RBUF_LEN);
		w->pbuf = g.tls_ctx || g.o.ws ? malloc(RBUF_LEN) : NULL;
		if (w->ep < 0 || !w->conns || !w->dirty || !w->rbuf || (g.tls_ctx && !w->pbuf))
			return -ENOMEM;
	}
	for (i = 0; i < g.lay.nclients; i++) {
		struct worker *w = &ws[i % (uint32_t)nw];

		if (conn_init(&w->conns[w->n], w, i))
			return -ENOMEM;
		w->n++;
	}
	return 0;
}

static void workers_free(struct worker *ws, int nw)
{
	uint32_t i, k;
	int j;

	for (j = 0; j < nw; j++) {
		struct worker *w = &ws[j];

		for (i = 0; i < w->n; i++) {
			struct conn *c = &w->conns[i];

			for (k = 0; c->tracks && k < g.lay.ntracks; k++)
				free(c->tracks[k].bits);
			free(c->tracks);
			free(c->payload);
			if (c->x)
				smq_xform_free(c->x);
			else
				smq_tls_free(c->tls);
			smq_client_free(c->cl);
		}
		free(w->conns);
		free(w->dirty);
		free(w->rbuf);
		free(w->pbuf);
		if (w->ep >= 0)
			close(w->ep);
	}
	free(ws);
}

/* ---- measuring from the outside ----------------------------------------- */

static double cpu_self_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* utime + stime of process @pid in seconds, or -1. */
static double cpu_pid_s(long pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut, st;
	FILE *f;
	size_t n;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	p = strrchr(buf, ')');	/* the command name may hold spaces */
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
			 &ut, &st) != 2)
		return -1;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* VmRSS of @pid in KiB, or -1. */
static long rss_kib(long pid)
{
	char path[64], line[256];
	long kib = -1;
	FILE *f;

	if (pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

static void sleep_until(uint64_t t)
{
	struct timespec ts = { .tv_sec = (time_t)(t / NSEC), .tv_nsec = (long)(t % NSEC) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

struct totals {
	uint32_t ready, dead;
	uint64_t published, expected, received, pending;
};

static struct totals sum_live(struct worker *ws, int nw)
{
	struct totals t = { 0 };
	int k;

	for (k = 0; k < nw; k++) {
		t.ready += atomic_load_explicit(&ws[k].ready, memory_order_relaxed);
		t.dead += atomic_load_explicit(&ws[k].dead, memory_order_relaxed);
		t.published += atomic_load_explicit(&ws[k].published, memory_order_relaxed);
		t.expected += atomic_load_explicit(&ws[k].expected, memory_order_relaxed);
		t.received += atomic_load_explicit(&ws[k].received, memory_order_relaxed);
		t.pending += atomic_load_explicit(&ws[k].pending, memory_order_relaxed);
	}
	return t;
}

/* Wait until every client is connected (and subscribed) or failed. */
static int wait_ready(struct worker *ws, int nw)
{
	uint64_t limit = now_ns() + (30ull + g.lay.nclients / 500u) * NSEC;
	struct totals t;

	for (;;) {
		t = sum_live(ws, nw);
		if (t.ready + t.dead >= g.lay.nclients)
			return t.dead ? -ECONNREFUSED : 0;
		if (now_ns() > limit)
			return -ETIMEDOUT;
		usleep(2000);
	}
}

/* After the window: wait until every expected delivery arrived and every
 * publisher is idle, or nothing moved for QUIET_NS. Returns false if
 * --drain seconds ran out while messages were still arriving: what is
 * missing then is a backlog, not (yet) a loss. */
static bool drain(struct worker *ws, int nw)
{
	uint64_t start = now_ns(), last_change = start, last_recv = UINT64_MAX;
	uint64_t quiet = g.o.qos ? QUIET_QOS_NS : QUIET_NS;
	struct totals t;

	for (;;) {
		usleep(5000);
		t = sum_live(ws, nw);
		if (t.pending == 0 && t.received >= t.expected)
			return true;
		if (t.received != last_recv) {
			last_recv = t.received;
			last_change = now_ns();
		}
		if (now_ns() - last_change > quiet)
			return true;
		if (now_ns() - start > g.o.drain * 1e9)
			return false;
	}
}

/* ---- results ----------------------------------------------------------- */

struct result {
	struct wstats st;		/* summed over workers */
	uint64_t published;
	uint64_t lost;			/* missing after the broker went quiet */
	uint64_t backlog;		/* missing when --drain ran out */
	bool drained;
	double cpu_self, cpu_broker;	/* percent of one core over the window */
	double window_s;
};

static void sum_results(struct worker *ws, int nw, struct result *r)
{
	uint64_t *sent = calloc(g.lay.npubs ? g.lay.npubs : 1, sizeof(*sent));
	uint32_t i, p;
	int k, slot;

	for (k = 0; k < nw; k++) {
		struct wstats *s = &ws[k].st;

		r->st.sent_win += s->sent_win;
		r->st.deliv_win += s->deliv_win;
		r->st.deliv_all += s->deliv_all;
		r->st.connects_win += s->connects_win;
		r->st.dup += s->dup;
		r->st.reord += s->reord;
		r->st.unexpected += s->unexpected;
		r->st.pub_failed += s->pub_failed;
		r->st.conn_errors += s->conn_errors;
		r->st.reads += s->reads;
		r->st.writes += s->writes;
		hist_merge(&r->st.lat, &s->lat);
		for (i = 0; sent && i < ws[k].n; i++)
			if (ws[k].conns[i].pub >= 0)
				sent[ws[k].conns[i].pub] = ws[k].conns[i].seq;
	}
	for (k = 0; sent && k < nw; k++) {
		for (i = 0; i < ws[k].n; i++) {
			struct conn *c = &ws[k].conns[i];

			for (p = 0; c->sub >= 0 && p < g.lay.npubs; p++) {
				slot = track_slot(c->sub, p);
				if (slot >= 0 && sent[p] > c->tracks[slot].distinct)
					r->backlog += sent[p] - c->tracks[slot].distinct;
			}
		}
	}
	for (p = 0; sent && p < g.lay.npubs; p++)
		r->published += sent[p];
	if (r->drained) {
		r->lost = r->backlog;
		r->backlog = 0;
	}
	free(sent);
}

/* ",\"tls\":\"TLSv1.3 TLS13-AES128-GCM-SHA256\"" with TLS, "" without. */
static const char *tls_json(void)
{
	static char buf[128];

	if (!g.tls_ctx)
		return "";
	snprintf(buf, sizeof(buf), ",\"tls\":\"%s %s\"", g.tls_version ? g.tls_version : "none",
		 g.tls_cipher ? g.tls_cipher : "none");
	return buf;
}

/* The text report's TLS line. */
static void print_tls(void)
{
	if (g.tls_ctx)
		printf("  tls        %s %s\n", g.tls_version ? g.tls_version : "no handshake",
		       g.tls_cipher ? g.tls_cipher : "completed");
}

static double us(uint64_t ns)
{
	return (double)ns / 1000.0;
}

static void print_json(const struct result *r)
{
	const struct hist *h = &r->st.lat;

	printf("{\"preset\":\"%s\",\"qos\":%d,\"size\":%u,\"clients\":%u,\"publishers\":%u,"
	       "\"subscribers\":%u,\"threads\":%d,\"duration\":%.3f,\"warmup\":%.3f,"
	       "\"rate\":%.0f,\"inflight\":%u,\"sent\":%" PRIu64 ",\"sent_rate\":%.0f,"
	       "\"delivered\":%" PRIu64 ",\"delivered_rate\":%.0f,\"lat_p50_us\":%.1f,"
	       "\"lat_p99_us\":%.1f,\"lat_p999_us\":%.1f,\"lat_max_us\":%.1f,"
	       "\"published_total\":%" PRIu64 ",\"lost\":%" PRIu64 ",\"backlog\":%" PRIu64
	       ",\"duplicated\":%" PRIu64
	       ",\"reordered\":%" PRIu64 ",\"unexpected\":%" PRIu64 ",\"publish_failed\":%" PRIu64
	       ",\"conn_errors\":%" PRIu64 ",\"writes\":%" PRIu64 ",\"reads\":%" PRIu64
	       ",\"cpu_loadgen_pct\":%.1f,\"cpu_broker_pct\":%.1f%s}\n",
	       preset_names[g.o.preset], g.o.qos, g.o.size, g.lay.nclients, g.lay.npubs,
	       g.lay.nsubs, g.o.threads, r->window_s, g.o.warmup, g.o.rate, g.o.inflight,
	       r->st.sent_win, (double)r->st.sent_win / r->window_s, r->st.deliv_win,
	       (double)r->st.deliv_win / r->window_s, us(hist_quantile(h, 0.5)),
	       us(hist_quantile(h, 0.99)), us(hist_quantile(h, 0.999)), us(h->max),
	       r->published, r->lost, r->backlog, r->st.dup, r->st.reord, r->st.unexpected,
	       r->st.pub_failed, r->st.conn_errors, r->st.writes, r->st.reads, r->cpu_self,
	       r->cpu_broker, tls_json());
}

static void print_text(const struct result *r)
{
	const struct hist *h = &r->st.lat;
	uint64_t msgs = r->st.deliv_all + r->published;

	printf("preset %s, QoS %d, %u-byte payload, %u clients (%u publishing, %u subscribing), "
	       "%d threads, %.1f s measured after %.1f s warm-up%s\n",
	       preset_names[g.o.preset], g.o.qos, g.o.size, g.lay.nclients, g.lay.npubs,
	       g.lay.nsubs, g.o.threads, r->window_s, g.o.warmup,
	       g.o.rate > 0 ? ", rate-limited" : "");
	printf("  sent       %12.0f msgs/s\n", (double)r->st.sent_win / r->window_s);
	printf("  delivered  %12.0f msgs/s\n", (double)r->st.deliv_win / r->window_s);
	printf("  latency    p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms\n",
	       us(hist_quantile(h, 0.5)) / 1e3, us(hist_quantile(h, 0.99)) / 1e3,
	       us(hist_quantile(h, 0.999)) / 1e3, us(h->max) / 1e3);
	printf("  lost %" PRIu64 "  duplicated %" PRIu64 "  reordered %" PRIu64
	       "  (of %" PRIu64 " published, %" PRIu64 " delivered in the whole run)\n",
	       r->lost, r->st.dup, r->st.reord, r->published, r->st.deliv_all);
	if (r->backlog)
		printf("  backlog    %" PRIu64 " deliveries still on their way when --drain (%.0f s) "
		       "ran out\n", r->backlog, g.o.drain);
	if (r->st.unexpected || r->st.pub_failed || r->st.conn_errors)
		printf("  unexpected %" PRIu64 "  failed publishes %" PRIu64
		       "  connection errors %" PRIu64 "\n",
		       r->st.unexpected, r->st.pub_failed, r->st.conn_errors);
	printf("  cpu        loadgen %.0f%%  broker %s%.0f%%  (of %ld%%)   "
	       "%.0f msgs per write, %.0f per read\n",
	       r->cpu_self, r->cpu_broker < 0 ? "n/a " : "",
	       r->cpu_broker < 0 ? 0 : r->cpu_broker, sysconf(_SC_NPROCESSORS_ONLN) * 100,
	       r->st.writes ? (double)msgs / (double)r->st.writes : 0,
	       r->st.reads ? (double)msgs / (double)r->st.reads : 0);
	print_tls();
}

/* churn: connects/s of complete cycles and how long each connect took. */
static void print_churn(const struct result *r)
{
	const struct hist *h = &r->st.lat;
	double rate = (double)r->st.connects_win / r->window_s;

	if (g.o.json) {
		printf("{\"preset\":\"churn\",\"clients\":%u,\"threads\":%d,\"duration\":%.3f,"
		       "\"warmup\":%.3f,\"connects\":%" PRIu64 ",\"connect_rate\":%.0f,"
		       "\"lat_p50_us\":%.1f,\"lat_p99_us\":%.1f,\"lat_p999_us\":%.1f,"
		       "\"lat_max_us\":%.1f,\"conn_errors\":%" PRIu64 ",\"cpu_loadgen_pct\":%.1f,"
		       "\"cpu_broker_pct\":%.1f%s}\n",
		       g.lay.nclients, g.o.threads, r->window_s, g.o.warmup, r->st.connects_win,
		       rate, us(hist_quantile(h, 0.5)), us(hist_quantile(h, 0.99)),
		       us(hist_quantile(h, 0.999)), us(h->max), r->st.conn_errors, r->cpu_self,
		       r->cpu_broker, tls_json());
		return;
	}
	printf("preset churn: %u clients connect, CONNACK, DISCONNECT, again; %d threads, "
	       "%.1f s measured after %.1f s warm-up\n", g.lay.nclients, g.o.threads,
	       r->window_s, g.o.warmup);
	printf("  connects   %12.0f /s (%" PRIu64 " complete in the window)\n", rate,
	       r->st.connects_win);
	printf("  connect    p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms\n",
	       us(hist_quantile(h, 0.5)) / 1e3, us(hist_quantile(h, 0.99)) / 1e3,
	       us(hist_quantile(h, 0.999)) / 1e3, us(h->max) / 1e3);
	if (r->st.conn_errors)
		printf("  connection errors %" PRIu64 "\n", r->st.conn_errors);
	printf("  cpu        loadgen %.0f%%  broker %s%.0f%%  (of %ld%%)\n", r->cpu_self,
	       r->cpu_broker < 0 ? "n/a " : "", r->cpu_broker < 0 ? 0 : r->cpu_broker,
	       sysconf(_SC_NPROCESSORS_ONLN) * 100);
	print_tls();
}

/* ---- the two kinds of run ------------------------------------------------ */

static void stop_workers(struct worker *ws, int nw)
{
	int k;

	atomic_store_explicit(&g.phase, PH_STOP, memory_order_release);
	for (k = 0; k < nw; k++)
		pthread_join(ws[k].th, NULL);
}

/* Sleep until @t; with --progress, print the counters every second. */
static void watch_until(struct worker *ws, int nw, uint64_t t)
{
	static uint64_t last_pub, last_recv;
	uint64_t next;
	struct totals s;

	if (!g.o.progress) {
		sleep_until(t);
		return;
	}
	for (next = now_ns() + NSEC; next < t; next += NSEC) {
		sleep_until(next);
		s = sum_live(ws, nw);
		fprintf(stderr, "loadgen: %+6.1f s  published %8" PRIu64 "/s  delivered %9" PRIu64
			"/s  on the way %" PRIu64 "\n", ((double)next - (double)g.meas_start) / 1e9,
			s.published - last_pub, s.received - last_recv, s.expected - s.received);
		last_pub = s.published;
		last_recv = s.received;
	}
	sleep_until(t);
}

/* Warm-up, measured window, drain. Returns 0 or -errno. */
static int run_traffic(struct worker *ws, int nw, struct result *r)
{
	double self0, self1, brk0, brk1;

	g.run_start = now_ns() + 1000000u;
	g.meas_start = g.run_start + (uint64_t)(g.o.warmup * 1e9);
	g.meas_end = g.meas_start + (uint64_t)(g.o.duration * 1e9);
	atomic_store_explicit(&g.phase, PH_RUN, memory_order_release);
	watch_until(ws, nw, g.meas_start);
	self0 = cpu_self_s();
	brk0 = cpu_pid_s(g.o.broker_pid);
	watch_until(ws, nw, g.meas_end);
	self1 = cpu_self_s();
	brk1 = cpu_pid_s(g.o.broker_pid);
	r->drained = drain(ws, nw);
	stop_workers(ws, nw);
	r->window_s = (double)(g.meas_end - g.meas_start) / 1e9;
	r->cpu_self = 100.0 * (self1 - self0) / r->window_s;
	r->cpu_broker = brk0 < 0 || brk1 < 0 ? -1 : 100.0 * (brk1 - brk0) / r->window_s;
	sum_results(ws, nw, r);
	if (g.o.preset == P_CHURN)
		print_churn(r);
	else if (g.o.json)
		print_json(r);
	else
		print_text(r);
	return 0;
}

/* The connections preset: everyone is connected already; let the broker
 * settle, then weigh it. */
static void report_connections(struct worker *ws, int nw, uint64_t t0, uint64_t t1,
			       long rss0, double cpu0)
{
	double secs = (double)(t1 - t0) / 1e9, cpu = cpu_self_s() - cpu0;
	long rss1, per;

	usleep(1000000);
	rss1 = rss_kib(g.o.broker_pid);
	per = rss0 >= 0 && rss1 >= 0 ? (rss1 - rss0) * 1024 / (long)g.lay.nclients : -1;
	stop_workers(ws, nw);
	if (g.o.json) {
		printf("{\"preset\":\"connections\",\"clients\":%u,\"threads\":%d,"
		       "\"connect_s\":%.3f,\"connect_rate\":%.0f,\"broker_rss_before_kib\":%ld,"
		       "\"broker_rss_after_kib\":%ld,\"bytes_per_conn\":%ld,"
		       "\"cpu_loadgen_pct\":%.1f%s}\n",
		       g.lay.nclients, g.o.threads, secs, g.lay.nclients / secs, rss0, rss1, per,
		       100.0 * cpu / secs, tls_json());
		return;
	}
	printf("preset connections: %u idle clients (keepalive 60), %d threads\n",
	       g.lay.nclients, g.o.threads);
	printf("  connected in %.3f s: %.0f connections/s (loadgen cpu %.0f%%)\n", secs,
	       g.lay.nclients / secs, 100.0 * cpu / secs);
	if (per >= 0)
		printf("  broker RSS %ld KiB -> %ld KiB: %ld bytes per connection\n", rss0, rss1,
		       per);
	else
		printf("  broker RSS: unknown (pass --broker-pid)\n");
	print_tls();
}

static int run(struct worker *ws, int nw)
{
	struct result *r = calloc(1, sizeof(*r));
	long rss0 = rss_kib(g.o.broker_pid);
	double cpu0 = cpu_self_s();
	uint64_t t0 = now_ns();
	int k, ret;

	if (!r)
		return -ENOMEM;
	for (k = 0; k < nw; k++)
		if (pthread_create(&ws[k].th, NULL, worker_main, &ws[k])) {
			nw = k;
			ret = -EAGAIN;
			goto out_stop;
		}
	/* churn connects all the time; the others connect everyone first */
	ret = g.o.preset == P_CHURN ? 0 : wait_ready(ws, nw);
	if (ret) {
		fprintf(stderr, "loadgen: %u of %u clients could not connect%s\n",
			g.lay.nclients - sum_live(ws, nw).ready, g.lay.nclients,
			ret == -ETIMEDOUT ? " in time" : "");
		goto out_stop;
	}
	if (g.o.preset == P_CONNECTIONS)
		report_connections(ws, nw, t0, now_ns(), rss0, cpu0);
	else
		ret = run_traffic(ws, nw, r);
	free(r);
	return ret;
out_stop:
	stop_workers(ws, nw);
	free(r);
	return ret;
}

/* ---- command line ------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: loadgen --preset NAME [options]\n"
		"  --preset P      1to1 | fanin | fanout | mesh | connections | churn\n"
		"  --host H        broker address (default 127.0.0.1)\n"
		"  --port N        broker port (default 1883)\n"
		"  --qos Q         0, 1 or 2 for publishes and subscriptions (default 0)\n"
		"  --size B        payload bytes, at least 16 (default 64)\n"
		"  --duration S    measured seconds (default 5)\n"
		"  --warmup S      unmeasured seconds before (default 1)\n"
		"  --drain S       after the window, wait at most S seconds for the last\n"
		"                  deliveries (default 5; what is missing when the broker\n"
		"                  went quiet is lost, when time ran out a backlog)\n"
		"  --clients N     pairs (1to1), publishers (fanin), subscribers (fanout),\n"
		"                  clients (mesh, connections, churn)\n"
		"  --inflight N    per-publisher window at QoS 1/2 (default 64)\n"
		"  --rate R        publish R msgs/s in total (default: as fast as possible)\n"
		"  --threads N     worker threads (default: online CPUs)\n"
		"  --mqtt V        protocol: 4 (3.1.1, default) or 5\n"
		"  --broker-pid P  report the broker's CPU (and RSS for connections)\n"
		"  --persistent    persistent sessions (3.1.1 clean 0, 5.0 expiry 1 h)\n"
		"  --json          print one JSON line\n"
		"  --progress      print the counters every second (stderr)\n"
		"TLS (every connection; mosquitto_pub's flags):\n"
		"  --cafile F      speak TLS, verify the broker against the CAs in F\n"
		"  --insecure      do not check the broker's host name (--host)\n"
		"  --cert F --key K  client certificate and key\n"
		"  --tls-version V tlsv1.3 or tlsv1.2 (default: either, 1.3 preferred)\n"
		"  --ciphers-tls13 L  TLS 1.3 suites to offer (wolfSSL names, ':'-separated)\n"
		"WebSocket (every connection; with --cafile, over TLS):\n"
		"  --ws            speak MQTT over WebSocket (the broker's websockets listener)\n"
		"  --ws-path P     the request path (default /mqtt)\n");
}

static bool parse_num(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi))
		return false;
	*out = v;
	return true;
}

static int parse_preset(const char *s)
{
	int i;

	for (i = 0; i <= P_CHURN; i++)
		if (!strcmp(s, preset_names[i]))
			return i;
	return -1;
}

/* One option; false for a bad value. */
static bool parse_opt(struct options *o, int c, const char *arg)
{
	double v = 0;
	int p;

	switch (c) {
	case 'H': o->host = arg; return true;
	case 'p': o->port = arg; return parse_num(arg, 1, 65535, &v);
	case 'P': p = parse_preset(arg); o->preset = (enum preset)p; return p >= 0;
	case 'q': if (!parse_num(arg, 0, 2, &v)) return false; o->qos = (int)v; break;
	case 's': if (!parse_num(arg, STAMP_LEN, 16 << 20, &v)) return false;
		o->size = (uint32_t)v; break;
	case 'd': return parse_num(arg, 0.1, 86400, &o->duration);
	case 'w': return parse_num(arg, 0, 3600, &o->warmup);
	case 'D': return parse_num(arg, 0, 3600, &o->drain);
	case 'c': if (!parse_num(arg, 1, 1000000, &v)) return false; o->clients = (long)v; break;
	case 'i': if (!parse_num(arg, 1, 65535, &v)) return false; o->inflight = (uint32_t)v;
		break;
	case 'r': return parse_num(arg, 0, 1e9, &o->rate);
	case 't': if (!parse_num(arg, 1, 256, &v)) return false; o->threads = (int)v; break;
	case 'm': if (!parse_num(arg, 4, 5, &v)) return false; o->mqtt = (int)v; break;
	case 'b': if (!parse_num(arg, 1, 4194304, &v)) return false; o->broker_pid = (long)v;
		break;
	case 'j': o->json = true; return true;
	case 'S': o->persistent = true; return true;
	case 'v': o->progress = true; return true;
	case 'A': o->tls_opts.cafile = arg; o->tls = true; return true;
	case 'W': o->ws = true; return true;
	case 'U': o->ws_path = arg; o->ws = true; return true;
	case 'I': o->tls_opts.insecure = true; return true;
	case 'C': o->tls_opts.certfile = arg; return true;
	case 'K': o->tls_opts.keyfile = arg; return true;
	case 'V': o->tls_opts.tls_version = arg; return true;
	case 'X': o->tls_opts.ciphers_tls13 = arg; return true;
	default: return false;
	}
	return v == floor(v);
}

static int parse_args(int argc, char **argv, struct options *o)
{
	static const struct option lo[] = {
		{ "host", required_argument, NULL, 'H' }, { "port", required_argument, NULL, 'p' },
		{ "preset", required_argument, NULL, 'P' }, { "qos", required_argument, NULL, 'q' },
		{ "size", required_argument, NULL, 's' },
		{ "duration", required_argument, NULL, 'd' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "drain", required_argument, NULL, 'D' },
		{ "clients", required_argument, NULL, 'c' },
		{ "inflight", required_argument, NULL, 'i' },
		{ "rate", required_argument, NULL, 'r' },
		{ "threads", required_argument, NULL, 't' },
		{ "mqtt", required_argument, NULL, 'm' },
		{ "broker-pid", required_argument, NULL, 'b' },
		{ "json", no_argument, NULL, 'j' },
		{ "persistent", no_argument, NULL, 'S' },
		{ "progress", no_argument, NULL, 'v' }, { "help", no_argument, NULL, 'h' },
		{ "cafile", required_argument, NULL, 'A' },
		{ "ws", no_argument, NULL, 'W' },
		{ "ws-path", required_argument, NULL, 'U' },
		{ "insecure", no_argument, NULL, 'I' },
		{ "cert", required_argument, NULL, 'C' },
		{ "key", required_argument, NULL, 'K' },
		{ "tls-version", required_argument, NULL, 'V' },
		{ "ciphers-tls13", required_argument, NULL, 'X' },
		{ NULL, 0, NULL, 0 },
	};
	bool have_preset = false;
	int c;

	*o = (struct options){ .host = "127.0.0.1", .port = "1883", .ws_path = "/mqtt",
			       .size = 64, .duration = 5,
			       .warmup = 1, .drain = 5, .clients = -1, .inflight = 64, .mqtt = SMQ_V311 };
	o->threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			exit(0);
		}
		if (c == '?' || !parse_opt(o, c, optarg)) {
			if (c != '?')
				fprintf(stderr, "loadgen: bad value '%s'\n", optarg);
			return -EINVAL;
		}
		have_preset |= c == 'P';
	}
	if (!have_preset || optind != argc) {
		fprintf(stderr, "loadgen: %s\n", have_preset ? "unexpected argument" :
			"--preset is required");
		return -EINVAL;
	}
	if (o->threads < 1)
		o->threads = 1;
	if (!o->tls && (o->tls_opts.insecure || o->tls_opts.certfile || o->tls_opts.keyfile ||
			o->tls_opts.tls_version || o->tls_opts.ciphers_tls13)) {
		fprintf(stderr, "loadgen: the TLS options need --cafile\n");
		return -EINVAL;
	}
	return 0;
}

/* With --cafile: the client ctx every connection is made from. */
static int make_tls(const struct options *o)
{
	char err[256];

	if (!o->tls)
		return 0;
	g.tls_ctx = smq_tls_ctx_new(SMQ_TLS_CLIENT, &o->tls_opts, err, sizeof(err));
	if (!g.tls_ctx) {
		fprintf(stderr, "loadgen: TLS: %s\n", err);
		return -EINVAL;
	}
	return 0;
}

/* 10,000 clients need 10,000 descriptors: take what the hard limit allows. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static int resolve(const struct options *o)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	int ret = getaddrinfo(o->host, o->port, &hints, &g.addr);

	if (ret) {
		fprintf(stderr, "loadgen: %s:%s: %s\n", o->host, o->port, gai_strerror(ret));
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct worker *ws;
	int nw, ret;

	if (parse_args(argc, argv, &g.o)) {
		fprintf(stderr, "loadgen: see loadgen --help\n");
		return 2;
	}
	if (resolve(&g.o) || make_tls(&g.o))
		return 2;
	raise_nofile();
	g.pid = getpid();
	g.lay = make_layout(&g.o);
	g.rate_per_pub = g.lay.npubs ? g.o.rate / g.lay.npubs : 0;
	if ((uint32_t)g.o.threads > g.lay.nclients)
		g.o.threads = (int)g.lay.nclients;
	nw = g.o.threads > 1 ? g.o.threads : 1;
	ws = calloc((size_t)nw, sizeof(*ws));
	if (!ws || workers_init(ws, nw)) {
		fprintf(stderr, "loadgen: out of memory\n");
		return 1;
	}
	ret = run(ws, nw);
	workers_free(ws, nw);
	smq_tls_ctx_unref(g.tls_ctx);
	smq_tls_thread_exit();
	freeaddrinfo(g.addr);
	return ret ? 1 : 0;
}
