/* clientio.c - drive one client core over one TCP (or Unix) socket with poll().
 *
 * The socket is non-blocking; every wait is a poll() bounded by the
 * caller's deadline and by the core's keepalive deadline, so a helper never
 * blocks past what it was given (name resolution excepted: getaddrinfo()
 * has no timeout).
 *
 * Invariant: h->fd >= 0 exactly while the core has a connection (state
 * CONNECTING, CONNECTED, or CLOSED with output to flush), and with TLS
 * configured h->tls lives exactly as long as h->fd. When a connection
 * ends, for whatever reason, end() closes the socket, resets the core for a
 * later reconnect and keeps the reason in h->err; queued events survive, so
 * a message that arrived just before the close is still delivered.
 *
 * With TLS the core's output goes through the transform (net/tls.h) and the
 * socket carries only its ciphertext; until the handshake is done the
 * transform takes no plaintext, so CONNECT waits in the core and the poll
 * asks for POLLOUT only when ciphertext waits (never a busy loop).
 *
 * Left to others: the protocol (core/client.c); many connections, batching
 * and io_uring (the load generator and the broker).
 */
#include "net/clientio.h"

#include "net/tls.h"

#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define NO_DEADLINE UINT64_MAX
#define LINGER_MS 1000		/* how long disconnect waits for the server's close */
#define TLS_ERR_LEN 160

struct smq_clientio {
	struct smq_client *c;
	char *host;
	uint16_t port;
	int fd;			/* -1 when not connected */
	int err;		/* why the last connection ended; 0 = it did not fail */
	bool session_present;
	struct smq_tls_ctx *tls_ctx;	/* referenced; NULL: plain TCP */
	struct smq_tls *tls;		/* this connection's, while fd >= 0 with tls_ctx */
	char tls_err[TLS_ERR_LEN];	/* why TLS failed last; "" if it did not */
	char *bind_addr;		/* local address to bind to, NULL: any */
	char *unix_path;		/* Unix socket instead of host:port, NULL: TCP */
	const char *resolve_err;	/* gai_strerror() of the last failed lookup */
};

uint64_t smq_clientio_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t deadline_of(int timeout_ms)
{
	return timeout_ms < 0 ? NO_DEADLINE : smq_clientio_now_ms() + (uint64_t)timeout_ms;
}

/* Milliseconds left until @deadline for poll(): -1 for none, 0 if past. */
static int remaining(uint64_t deadline)
{
	uint64_t now = smq_clientio_now_ms();

	if (deadline == NO_DEADLINE)
		return -1;
	if (deadline <= now)
		return 0;
	return deadline - now > INT_MAX ? INT_MAX : (int)(deadline - now);
}

struct smq_clientio *smq_clientio_new(const char *host, uint16_t port,
				      const struct smq_client_opts *opts)
{
	struct smq_clientio *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	h->fd = -1;
	h->port = port;
	h->host = strdup(host ? host : "localhost");
	if (!h->host)
		goto out_free;
	h->c = smq_client_new(opts);
	if (!h->c)
		goto out_free_host;
	return h;
out_free_host:
	free(h->host);
out_free:
	free(h);
	return NULL;
}

static void close_socket(struct smq_clientio *h)
{
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
	smq_tls_free(h->tls);
	h->tls = NULL;
	if (smq_client_state(h->c) != SMQ_CLIENT_IDLE)
		smq_client_reset_connection(h->c);
}

void smq_clientio_free(struct smq_clientio *h)
{
	if (!h)
		return;
	if (h->fd >= 0)
		close(h->fd);
	smq_tls_free(h->tls);
	smq_tls_ctx_unref(h->tls_ctx);
	smq_client_free(h->c);
	free(h->host);
	free(h->bind_addr);
	free(h->unix_path);
	free(h);
}

/* Replace the string *@slot by a copy of @s (NULL allowed). */
static int set_str(char **slot, const char *s)
{
	char *copy = NULL;

	if (s && !(copy = strdup(s)))
		return -ENOMEM;
	free(*slot);
	*slot = copy;
	return 0;
}

int smq_clientio_set_bind(struct smq_clientio *h, const char *address)
{
	return set_str(&h->bind_addr, address);
}

int smq_clientio_set_unix(struct smq_clientio *h, const char *path)
{
	if (path && strlen(path) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return -ENAMETOOLONG;
	return set_str(&h->unix_path, path);
}

const char *smq_clientio_resolve_error(const struct smq_clientio *h)
{
	return h->resolve_err;
}

void smq_clientio_close(struct smq_clientio *h)
{
	close_socket(h);
	h->err = 0;
}

void smq_clientio_set_tls(struct smq_clientio *h, struct smq_tls_ctx *ctx)
{
	if (ctx)
		smq_tls_ctx_ref(ctx);
	smq_tls_ctx_unref(h->tls_ctx);
	h->tls_ctx = ctx;
}

const char *smq_clientio_tls_error(const struct smq_clientio *h)
{
	return h->tls_err[0] ? h->tls_err : NULL;
}

bool smq_clientio_session_present(const struct smq_clientio *h)
{
	return h->session_present;
}

struct smq_client *smq_clientio_client(struct smq_clientio *h)
{
	return h->c;
}

int smq_clientio_fd(const struct smq_clientio *h)
{
	return h->fd;
}

/* ---- socket ------------------------------------------------------------ */

/* Wait for a non-blocking connect() on @fd: 0 or -errno. */
static int connect_wait(int fd, uint64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	socklen_t len = sizeof(int);
	int ret, soerr = 0;

	do
		ret = poll(&pfd, 1, remaining(deadline));
	while (ret < 0 && errno == EINTR);
	if (ret < 0)
		return -errno;
	if (ret == 0)
		return -ETIMEDOUT;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len))
		return -errno;
	return -soerr;
}

/* Bind @fd (of @family) to h->bind_addr: 0, -ENXIO (no such address, in
 * h->resolve_err) or -errno. */
static int bind_local(struct smq_clientio *h, int fd, int family)
{
	struct addrinfo hints = { .ai_family = family, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_PASSIVE };
	struct addrinfo *res;
	int ret;

	ret = getaddrinfo(h->bind_addr, NULL, &hints, &res);
	if (ret) {
		h->resolve_err = gai_strerror(ret);
		return ret == EAI_SYSTEM ? -errno : -ENXIO;
	}
	ret = bind(fd, res->ai_addr, res->ai_addrlen) ? -errno : 0;
	freeaddrinfo(res);
	return ret;
}

static int try_addr(struct smq_clientio *h, const struct addrinfo *ai, uint64_t deadline)
{
	int fd, ret, one = 1;

	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	ret = h->bind_addr ? bind_local(h, fd, ai->ai_family) : 0;
	if (!ret)
		ret = connect(fd, ai->ai_addr, ai->ai_addrlen) ? -errno : 0;
	if (ret == -EINPROGRESS)
		ret = connect_wait(fd, deadline);
	if (ret) {
		close(fd);
		return ret;
	}
	/* MQTT packets are small and latency matters more than segments */
	if (ai->ai_family != AF_UNIX)
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* A connected non-blocking Unix socket at h->unix_path, or -errno. */
static int unix_connect(struct smq_clientio *h, uint64_t deadline)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct addrinfo ai = { .ai_family = AF_UNIX, .ai_socktype = SOCK_STREAM,
			       .ai_addr = (struct sockaddr *)&sun, .ai_addrlen = sizeof(sun) };
	char *bind_addr = h->bind_addr;
	int ret;

	memcpy(sun.sun_path, h->unix_path, strlen(h->unix_path) + 1);	/* length checked */
	h->bind_addr = NULL;	/* a local IP address means nothing here */
	ret = try_addr(h, &ai, deadline);
	h->bind_addr = bind_addr;
	return ret;
}

/* A connected non-blocking socket, or -errno (-ENXIO: no such host, with
 * h->resolve_err saying why). */
static int tcp_connect(struct smq_clientio *h, uint64_t deadline)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
	struct addrinfo *res, *ai;
	char service[8];
	int ret;

	h->resolve_err = NULL;
	if (h->unix_path)
		return unix_connect(h, deadline);
	snprintf(service, sizeof(service), "%u", h->port);
	ret = getaddrinfo(h->host, service, &hints, &res);
	if (ret) {
		h->resolve_err = gai_strerror(ret);
		return ret == EAI_SYSTEM ? -errno : -ENXIO;
	}
	ret = -ENXIO;
	for (ai = res; ai; ai = ai->ai_next) {
		ret = try_addr(h, ai, deadline);
		if (ret >= 0 || ret == -ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	return ret;
}

/* ---- TLS --------------------------------------------------------------- */

/* The transform failed with @err: keep its words for the caller. */
static int tls_failed(struct smq_clientio *h, int err)
{
	const char *why = smq_tls_error(h->tls);

	if (why)
		snprintf(h->tls_err, sizeof(h->tls_err), "%s", why);
	return err;
}

/* Move the core's output into the transform and the ciphertext into the
 * socket, as far as each takes it. */
static int write_tls(struct smq_clientio *h)
{
	struct smq_xform *x = smq_tls_xform(h->tls);
	struct iovec iov[4];
	struct msghdr msg = { .msg_iov = iov };
	const uint8_t *p;
	size_t n;
	ssize_t r;

	for (;;) {
		smq_client_out(h->c, &p, &n);
		if (n) {
			iov[0] = (struct iovec){ (void *)p, n };
			r = smq_xform_write(x, iov, 1);
			if (r < 0)
				return tls_failed(h, (int)r);
			smq_client_out_consumed(h->c, (size_t)r);
		}
		msg.msg_iovlen = (size_t)smq_xform_out_iov(x, iov, 4);
		if (!msg.msg_iovlen)
			return 0;
		r = sendmsg(h->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
		smq_xform_out_done(x, (size_t)r);
	}
}

/* Feed @n bytes of ciphertext and pass the plaintext on to the core. */
static int feed_tls(struct smq_clientio *h, const uint8_t *buf, size_t n)
{
	struct smq_xform *x = smq_tls_xform(h->tls);
	uint8_t plain[16384];
	enum smq_client_state st;
	ssize_t r;
	int ret = smq_xform_feed(x, buf, n);

	if (ret)
		return tls_failed(h, ret);
	while ((r = smq_xform_read(x, plain, sizeof(plain))) > 0) {
		st = smq_client_state(h->c);
		if (st != SMQ_CLIENT_CONNECTING && st != SMQ_CLIENT_CONNECTED)
			continue;	/* closing: nothing more is processed */
		ret = smq_client_feed(h->c, plain, (size_t)r, smq_clientio_now_ms());
		if (ret)
			return ret;
	}
	return r < 0 ? tls_failed(h, (int)r) : 0;
}

/* Bytes wait to be written now: POLLOUT is worth asking for. */
static bool has_output(struct smq_clientio *h)
{
	const uint8_t *p;
	size_t n;

	if (h->tls && smq_xform_out_pending(smq_tls_xform(h->tls)))
		return true;
	if (h->tls && !smq_tls_handshake_done(h->tls))
		return false;	/* the core's output waits for the handshake */
	smq_client_out(h->c, &p, &n);
	return n > 0;
}

/* Everything queued, in the core and in the transform, is written. */
static bool all_written(struct smq_clientio *h)
{
	const uint8_t *p;
	size_t n;

	smq_client_out(h->c, &p, &n);
	return !n && !(h->tls && smq_xform_out_pending(smq_tls_xform(h->tls)));
}

/* ---- the socket, continued --------------------------------------------- */

/* Write what the core has queued, as far as the socket takes it. */
static int write_out(struct smq_clientio *h)
{
	const uint8_t *p;
	size_t n;
	ssize_t r;

	if (h->tls)
		return write_tls(h);
	for (;;) {
		smq_client_out(h->c, &p, &n);
		if (!n)
			return 0;
		r = send(h->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
		smq_client_out_consumed(h->c, (size_t)r);
	}
}

/* Read what the socket has and feed it. -ECONNRESET on end of stream. */
static int read_in(struct smq_clientio *h)
{
	uint8_t buf[16384];
	ssize_t r;
	int ret;
	enum smq_client_state st;

	for (;;) {
		r = recv(h->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (r <= 0) {
			ret = r ? -errno : -ECONNRESET;
			if (h->tls && smq_tls_handshaking(h->tls))
				snprintf(h->tls_err, sizeof(h->tls_err), "the server %s the "
					 "connection during the TLS handshake (not a TLS port?)",
					 r ? "reset" : "closed");
			return ret;
		}
		if (h->tls) {
			ret = feed_tls(h, buf, (size_t)r);
			if (ret)
				return ret;
			if ((size_t)r < sizeof(buf))
				return 0;
			continue;
		}
		st = smq_client_state(h->c);
		if (st != SMQ_CLIENT_CONNECTING && st != SMQ_CLIENT_CONNECTED)
			continue;	/* closing: nothing more is processed */
		ret = smq_client_feed(h->c, buf, (size_t)r, smq_clientio_now_ms());
		if (ret)
			return ret;
		if ((size_t)r < sizeof(buf))
			return 0;
	}
}

/* The connection is over because of @err: let a DISCONNECT the core
 * queued (5.0 reason code) out if the socket takes it now, then close.
 * The core's own error, when it has one, is the better explanation. */
static int end(struct smq_clientio *h, int err)
{
	int core_err = smq_client_error(h->c);

	if (core_err)
		err = core_err;
	if (h->fd >= 0 && smq_client_state(h->c) == SMQ_CLIENT_CLOSED)
		write_out(h);
	close_socket(h);
	h->err = err;
	return err;
}

/* ---- the loop ---------------------------------------------------------- */

static int poll_timeout(struct smq_clientio *h, int timeout_ms)
{
	uint64_t dl = smq_client_next_deadline(h->c);
	int ka = remaining(dl);

	if (dl == NO_DEADLINE)
		return timeout_ms;
	if (timeout_ms < 0 || ka < timeout_ms)
		return ka;
	return timeout_ms;
}

static void drop_pingresps(struct smq_clientio *h)
{
	struct smq_client_event ev;

	while (smq_client_take_event(h->c, SMQ_CLIENT_EVMASK(SMQ_CLIENT_EV_PINGRESP), -1, &ev))
		;
}

int smq_clientio_wait(struct smq_clientio *h, int extra_fd, int timeout_ms)
{
	struct pollfd pfd[2] = { { .fd = h->fd, .events = POLLIN }, { .fd = extra_fd, .events = POLLIN } };
	int ret;

	if (h->fd < 0)
		return h->err ? h->err : -ENOTCONN;
	ret = smq_client_tick(h->c, smq_clientio_now_ms());
	if (!ret)
		ret = write_out(h);
	if (ret)
		return end(h, ret);
	if (has_output(h))
		pfd[0].events |= POLLOUT;
	ret = poll(pfd, extra_fd >= 0 ? 2 : 1, poll_timeout(h, timeout_ms));
	if (ret < 0 && errno != EINTR)
		return end(h, -errno);
	if (ret > 0 && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
		ret = read_in(h);
	else
		ret = 0;
	if (!ret)
		ret = smq_client_tick(h->c, smq_clientio_now_ms());
	if (!ret)
		ret = write_out(h);
	if (ret)
		return end(h, ret);
	drop_pingresps(h);
	return extra_fd >= 0 && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) ? 1 : 0;
}

int smq_clientio_run(struct smq_clientio *h, int timeout_ms)
{
	int ret = smq_clientio_wait(h, -1, timeout_ms);

	return ret < 0 ? ret : 0;
}

int smq_clientio_flush(struct smq_clientio *h, int timeout_ms)
{
	uint64_t dl = deadline_of(timeout_ms);
	int ret;

	for (;;) {
		if (h->fd < 0)
			return h->err ? h->err : -ENOTCONN;
		ret = write_out(h);
		if (ret)
			return end(h, ret);
		if (all_written(h))
			return 0;
		if (!remaining(dl))
			return -ETIMEDOUT;
		ret = smq_clientio_run(h, remaining(dl));	/* polls for POLLOUT */
		if (ret)
			return ret;
	}
}

/* Run until an event in @mask (and with @packet_id, if >= 0) is queued,
 * and take it. */
static int wait_event(struct smq_clientio *h, uint32_t mask, int packet_id,
		      struct smq_client_event *ev, uint64_t deadline)
{
	int rem, ret;

	for (;;) {
		if (smq_client_take_event(h->c, mask, packet_id, ev))
			return 0;
		if (h->fd < 0)
			return h->err ? h->err : -ENOTCONN;
		/* writing alone may be the event (QoS 0 done): no poll for that */
		ret = write_out(h);
		if (ret) {
			end(h, ret);
			continue;
		}
		if (smq_client_take_event(h->c, mask, packet_id, ev))
			return 0;
		rem = remaining(deadline);
		if (!rem)
			return -ETIMEDOUT;
		smq_clientio_run(h, rem);	/* an error closes h->fd: seen above */
	}
}

/* ---- helpers ----------------------------------------------------------- */

int smq_clientio_connect(struct smq_clientio *h, int timeout_ms)
{
	uint64_t dl = deadline_of(timeout_ms);
	struct smq_client_event ev;
	int ret;

	close_socket(h);
	h->err = 0;
	h->session_present = false;
	h->tls_err[0] = '\0';
	ret = tcp_connect(h, dl);
	if (ret < 0)
		return ret;
	h->fd = ret;
	if (h->tls_ctx) {
		h->tls = smq_tls_new(h->tls_ctx, h->host);	/* queues the ClientHello */
		if (!h->tls)
			return end(h, -ENOMEM);
	}
	ret = smq_client_connect(h->c, smq_clientio_now_ms());
	if (ret)
		return end(h, ret);
	ret = wait_event(h, SMQ_CLIENT_EVMASK(SMQ_CLIENT_EV_CONNACK), -1, &ev, dl);
	if (ret)
		return h->fd >= 0 ? end(h, ret) : ret;
	if (ev.reason) {
		/* the core failed the connection when it saw the refusal */
		ret = h->err ? h->err : -SMQ_RC_UNSPECIFIED;
		return h->fd >= 0 ? end(h, ret) : ret;
	}
	h->session_present = ev.session_present;
	return 0;
}

int smq_clientio_publish(struct smq_clientio *h, const char *topic, struct smq_str payload,
			 uint8_t qos, bool retain, const struct smq_props *props, int timeout_ms)
{
	uint64_t dl = deadline_of(timeout_ms);
	struct smq_client_event ev;
	int id, ret;

	for (;;) {
		id = smq_client_publish(h->c, topic, payload, qos, retain, props);
		if (id != -EAGAIN)
			break;
		if (!remaining(dl))
			return -ETIMEDOUT;
		ret = smq_clientio_run(h, remaining(dl));	/* acks and writes make room */
		if (ret)
			return ret;
	}
	if (id == -ENOTCONN && h->err)
		return h->err;
	if (id < 0)
		return id;
	ret = wait_event(h, SMQ_CLIENT_EVMASK(SMQ_CLIENT_EV_PUBLISH_DONE), id, &ev, dl);
	if (ret)
		return ret;
	return ev.reason >= 0x80 ? -(int)ev.reason : 0;
}

/* Wait for the SUBACK or UNSUBACK of request @id (or its failure @id < 0). */
static int wait_ack(struct smq_clientio *h, int id, enum smq_client_event_type type,
		    uint8_t *codes, size_t n, int timeout_ms)
{
	struct smq_client_event ev;
	int ret;

	if (id == -ENOTCONN && h->err)
		return h->err;
	if (id < 0)
		return id;
	ret = wait_event(h, SMQ_CLIENT_EVMASK(type), id, &ev, deadline_of(timeout_ms));
	if (ret)
		return ret;
	if (codes)
		memcpy(codes, ev.codes.p, ev.codes.len < n ? ev.codes.len : n);
	return 0;
}

int smq_clientio_subscribe(struct smq_clientio *h, const struct smq_sub_entry *entries,
			   size_t n, const struct smq_props *props, uint8_t *codes,
			   int timeout_ms)
{
	int id = smq_client_subscribe(h->c, entries, n, props);

	return wait_ack(h, id, SMQ_CLIENT_EV_SUBACK, codes, n, timeout_ms);
}

int smq_clientio_unsubscribe(struct smq_clientio *h, const struct smq_str *filters, size_t n,
			     const struct smq_props *props, int timeout_ms)
{
	int id = smq_client_unsubscribe(h->c, filters, n, props);

	return wait_ack(h, id, SMQ_CLIENT_EV_UNSUBACK, NULL, 0, timeout_ms);
}

int smq_clientio_next_message(struct smq_clientio *h, struct smq_client_event *ev,
			      int timeout_ms)
{
	return wait_event(h, SMQ_CLIENT_EVMASK(SMQ_CLIENT_EV_MESSAGE), -1, ev,
			  deadline_of(timeout_ms));
}

/* After our DISCONNECT: stop sending and wait (briefly) for the server to
 * close, so that unread input never turns our close into a reset that
 * could overtake the DISCONNECT. */
static void linger(struct smq_clientio *h, uint64_t deadline)
{
	struct pollfd pfd = { .fd = h->fd, .events = POLLIN };
	uint8_t buf[4096];
	uint64_t dl = smq_clientio_now_ms() + LINGER_MS;
	ssize_t r;

	if (deadline < dl)
		dl = deadline;
	if (h->tls && !smq_tls_shutdown(h->tls))
		write_out(h);	/* close_notify, if the socket takes it now */
	shutdown(h->fd, SHUT_WR);
	while (poll(&pfd, 1, remaining(dl)) > 0) {
		r = recv(h->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
			break;
	}
}

int smq_clientio_disconnect(struct smq_clientio *h, uint8_t reason, int timeout_ms)
{
	return smq_clientio_disconnect_props(h, reason, NULL, timeout_ms);
}

int smq_clientio_disconnect_props(struct smq_clientio *h, uint8_t reason,
				  const struct smq_props *props, int timeout_ms)
{
	uint64_t dl = deadline_of(timeout_ms);
	int ret;

	if (h->fd < 0)
		return -ENOTCONN;
	ret = smq_client_disconnect(h->c, reason, props);
	if (!ret)
		ret = smq_clientio_flush(h, remaining(dl));
	if (h->fd >= 0 && !ret)
		linger(h, dl);
	close_socket(h);
	h->err = 0;
	return ret;
}
