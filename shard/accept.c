/* accept.c - the shard's listeners: one SO_REUSEPORT socket per listener,
 * a multishot accept on each, the max_connections checks, and a conn for
 * every socket that passes.
 *
 * Running out of file descriptors (EMFILE, ENFILE) ends a multishot accept
 * with the error; re-arming at once would spin the shard at 100% CPU while
 * the backlog stays full. The listener instead rests ACCEPT_BACKOFF_MS, and
 * each kind of accept failure is logged at most once per ACCEPT_LOG_MS with
 * the count since the last line.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "net/listen.h"
#include "shard/conn.h"
#include "shard/metrics.h"
#include "shard/shard.h"

#define ACCEPT_BACKOFF_MS 100
#define ACCEPT_LOG_MS 10000

/* Listener @i of the shard: the MQTT ones, then the metrics listener
 * (fd -1 unless this shard serves it), so every loop below covers both. */
static struct shard_lst *lst_at(struct smq_shard *s, unsigned i)
{
	return i < s->nlst ? &s->lst[i] : &s->http_lst;
}

static unsigned nlst_all(const struct smq_shard *s)
{
	return s->nlst + 1;
}

static int open_one(struct smq_shard *s, struct shard_lst *sl)
{
	struct smq_listener *l = sl->l;
	struct smq_listen_spec sp;
	int domain = l->cfg.socket_domain == SMQ_DOMAIN_IPV4   ? 4
		     : l->cfg.socket_domain == SMQ_DOMAIN_IPV6 ? 6
							       : 0;
	int fd = 0;

	if (l->cfg.unix_sock) {
		/* one socket file: shard 0 accepts, and hand-off spreads the
		 * sessions over the shards as for any listener */
		if (s->idx != 0)
			return 0;
		fd = smq_listen_unix(l->cfg.addr, 4096);
		if (fd < 0) {
			snprintf(s->start_err, sizeof(s->start_err), "cannot listen on Unix socket "
				 "%.255s: %s", l->cfg.addr, fd == -EEXIST
				 ? "a file that is not a socket is there" : strerror(-fd));
			return fd;
		}
		sl->fd = fd;
		return 0;
	}
	smq_listen_spec_init(&sp, l->cfg.addr, (uint16_t)l->cfg.port, domain,
			     l->cfg.bind_interface);
	/* Shard 0 binds first; a port in use must be refused, not shared. */
	if (s->idx == 0 && l->cfg.port)
		fd = smq_listen_check_free(&sp);
	if (!fd)
		fd = smq_listen_open(&sp, 4096);
	if (fd < 0) {
		snprintf(s->start_err, sizeof(s->start_err), "cannot listen on %.255s:%d%s%s: %s",
			 sp.addr, l->cfg.port, l->cfg.bind_interface[0] ? " on interface " : "",
			 l->cfg.bind_interface, strerror(-fd));
		return fd;
	}
	sl->fd = fd;
	/* Port 0: the kernel chose; the other shards bind the same one. */
	if (s->idx == 0 && !l->cfg.port) {
		int port = smq_listen_port(fd);

		if (port > 0)
			l->cfg.port = port;
	}
	return 0;
}

/* Shard 0 serves the metrics endpoint, like $SYS: an HTTP request is rare
 * and reading the other shards' counters costs it microseconds. */
static int open_metrics(struct smq_shard *s)
{
	struct shard_lst *sl = &s->http_lst;
	struct smq_listener *l = smq_broker_metrics(s->broker);
	const char *a;
	int ret;

	if (s->idx != 0 || !l)
		return 0;
	sl->l = l;
	ret = open_one(s, sl);
	if (ret)
		return ret;
	a = l->cfg.addr[0] ? l->cfg.addr : "*";
	snprintf(l->name, sizeof(l->name), strchr(a, ':') ? "[%s]:%d" : "%s:%d", a, l->cfg.port);
	smq_notice("metrics on http://%s/metrics (Prometheus text format)", l->name);
	return 0;
}

int smq_accept_open(struct smq_shard *s)
{
	unsigned n = smq_broker_nlisteners(s->broker);
	int ret;

	s->http_lst.fd = -1;
	for (unsigned i = 0; i < n; i++) {
		struct shard_lst *sl = &s->lst[i];

		sl->l = smq_broker_listener(s->broker, i);
		sl->fd = -1;
		s->nlst = i + 1;
		ret = open_one(s, sl);
		if (ret) {
			smq_accept_close(s);
			return ret;
		}
	}
	ret = open_metrics(s);
	if (ret)
		smq_accept_close(s);
	return ret;
}

void smq_accept_close(struct smq_shard *s)
{
	for (unsigned i = 0; i < nlst_all(s); i++) {
		struct shard_lst *sl = lst_at(s, i);

		if (sl->fd >= 0) {
			close(sl->fd);
			if (sl->l->cfg.unix_sock)
				unlink(sl->l->cfg.addr);	/* as mosquitto leaves no file */
		}
		sl->fd = -1;
	}
}

int64_t smq_accept_arm(struct smq_shard *s)
{
	int64_t next = -1;

	if (s->stopping)
		return -1;
	for (unsigned i = 0; i < nlst_all(s); i++) {
		struct shard_lst *sl = lst_at(s, i);
		struct io_uring_sqe *sqe;

		if (sl->armed || sl->fd < 0)
			continue;
		if (sl->retry_ms > s->now_ms) {
			int64_t wait = (int64_t)(sl->retry_ms - s->now_ms);

			if (next < 0 || wait < next)
				next = wait;
			continue;
		}
		sqe = smq_shard_sqe(s);
		io_uring_prep_multishot_accept(sqe, sl->fd, NULL, NULL, SOCK_CLOEXEC);
		io_uring_sqe_set_data64(sqe, UD(sl, UD_ACCEPT));
		sl->armed = true;
	}
	return next;
}

void smq_accept_cancel(struct smq_shard *s)
{
	for (unsigned i = 0; i < nlst_all(s); i++) {
		struct io_uring_sqe *sqe;

		if (!lst_at(s, i)->armed)
			continue;
		sqe = smq_shard_sqe(s);
		io_uring_prep_cancel64(sqe, UD(lst_at(s, i), UD_ACCEPT), 0);
		io_uring_sqe_set_data64(sqe, UD(NULL, UD_IGNORE));
	}
}

bool smq_accept_armed(const struct smq_shard *s)
{
	for (unsigned i = 0; i < nlst_all(s); i++)
		if (lst_at((struct smq_shard *)s, i)->armed)
			return true;
	return false;
}

static void accept_failed(struct smq_shard *s, struct shard_lst *sl, int err)
{
	if (err == -ECANCELED || err == -EBADF)
		return;
	sl->fails++;
	if (err == -EMFILE || err == -ENFILE || err == -ENOBUFS || err == -ENOMEM)
		sl->retry_ms = s->now_ms + ACCEPT_BACKOFF_MS;
	if (!smq_log_due(&sl->fail_logged_ms, s->now_ms, ACCEPT_LOG_MS))
		return;
	smq_warn("shard %u: accept on %s failed: %s (%llu failures since the last report; "
		 "pausing %d ms%s)", s->idx, sl->l->name, strerror(-err),
		 (unsigned long long)sl->fails, ACCEPT_BACKOFF_MS,
		 err == -EMFILE ? ": raise the open files limit, ulimit -n" : "");
	sl->fails = 0;
}

/* A metrics connection: counted against SMQ_METRICS_MAX_CONNS only (MQTT's
 * max_connections is for MQTT clients). */
static void accept_http(struct smq_shard *s, struct shard_lst *sl, int fd, const char *peer)
{
	struct conn *c;

	if (atomic_load_explicit(&sl->l->conns, memory_order_relaxed) >= SMQ_METRICS_MAX_CONNS) {
		if (smq_log_due(&s->refuse_logged_ms, s->now_ms, ACCEPT_LOG_MS))
			smq_notice("refusing metrics connection from %s: %d already open (logged "
				   "at most every %d s)", peer, SMQ_METRICS_MAX_CONNS,
				   ACCEPT_LOG_MS / 1000);
		close(fd);
		return;
	}
	c = smq_conn_new_http(s, fd, peer, sl->l);
	if (!c) {
		smq_warn("shard %u: out of memory accepting %s", s->idx, peer);
		close(fd);
		return;
	}
	atomic_fetch_add_explicit(&sl->l->conns, 1, memory_order_relaxed);
	smq_debug("shard %u: accepted %s on %s (metrics)", s->idx, peer, sl->l->name);
	smq_conn_arm_recv(s, c);
}

void smq_accept_on_cqe(struct smq_shard *s, struct shard_lst *sl, struct io_uring_cqe *cqe)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char peer[64] = "?";
	struct conn *c;
	int fd = cqe->res;

	if (!(cqe->flags & IORING_CQE_F_MORE))
		sl->armed = false;
	if (fd < 0) {
		accept_failed(s, sl, fd);
		return;
	}
	if (!getpeername(fd, (struct sockaddr *)&ss, &len))
		smq_addr_format((struct sockaddr *)&ss, len, peer, sizeof(peer));
	if (s->stopping) {
		close(fd);
		return;
	}
	if (sl->l->http) {
		accept_http(s, sl, fd, peer);
		return;
	}
	if (!smq_broker_conn_get(s->broker, sl->l)) {
		if (smq_log_due(&s->refuse_logged_ms, s->now_ms, ACCEPT_LOG_MS))
			smq_notice("refusing connection from %s on %s: max_connections reached "
				   "(logged at most every %d s)", peer, sl->l->name,
				   ACCEPT_LOG_MS / 1000);
		close(fd);
		return;
	}
	c = smq_conn_new(s, fd, peer, sl->l);
	if (!c) {
		smq_warn("shard %u: out of memory accepting %s", s->idx, peer);
		smq_broker_conn_put(s->broker, sl->l);
		close(fd);
		return;
	}
	c->counted = true;
	if (smq_conn_attach_transport(s, c)) {
		smq_warn("shard %u: cannot start TLS for %s on %s; closing it", s->idx, peer,
			 sl->l->name);
		smq_conn_close(s, c, -ENOMEM);
		return;
	}
	smq_debug("shard %u: accepted %s on %s", s->idx, peer, sl->l->name);
	smq_conn_arm_recv(s, c);
}
