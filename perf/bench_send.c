/* bench_send.c - which io_uring send wins for one payload fanned out to many sockets.
 *
 * The broker (shard/conn.c) sends a connection's output as one IORING_OP_SENDMSG of up to
 * 16 gathered iovecs, payload chunks shared by every subscriber of a message. Would zero
 * copy (SEND_ZC, SENDMSG_ZC: the pages stay pinned until a notification CQE with
 * IORING_CQE_F_NOTIF) or a registered buffer beat it? One process: --conns TCP connections
 * over 127.0.0.1; the sender thread sends the SAME payload buffer to every connection, one
 * send in flight per connection (as the broker), short sends resumed where they stopped; a
 * reader thread drains the other ends (epoll + recv; --spin: it polls without sleeping).
 *   sendmsg        IORING_OP_SENDMSG, 1 iovec (the payload)
 *   sendmsg2       IORING_OP_SENDMSG, 2 iovecs: a 5-byte header + the payload (the broker)
 *   send_zc        IORING_OP_SEND_ZC of the payload
 *   sendmsg2_zc    IORING_OP_SENDMSG_ZC, the 2 iovecs of sendmsg2
 *   send_zc_fixed  IORING_OP_SEND_ZC from a registered buffer (IORING_RECVSEND_FIXED_BUF)
 *   write_fixed    IORING_OP_WRITE_FIXED from the registered buffer (copies, like sendmsg)
 * Each mode: fresh connections and ring, 0.5 s warm-up, --seconds measured. Its line: GB/s
 * and messages/s sent; CPU in % of one core of the sender (user/sys: on loopback the
 * receiving TCP's softirq work mostly runs here too), the reader and the rest of the
 * process (io-wq workers); CPU seconds per GB of the sender and of all threads (the fairer
 * figure: loopback moves work between the two); notification CQEs per send and the share
 * whose res has IORING_NOTIF_USAGE_ZC_COPIED (the kernel copied after all, as it must for a
 * local peer). The reader must get every byte sent, or the run fails (exit 1).
 *
 * Run: make BUILD=build build/perf/bench_send && ./build/perf/bench_send
 *      [--size 16384] [--conns 16] [--seconds 2] [--mode all] [--spin]
 */
#include <errno.h>
#include <getopt.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
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

/* Newer than the liburing 2.3 headers of Debian 12 (kernel 6.2+). */
#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif

#define WARMUP_S 0.5
#define HDR_LEN 5

enum mode { M_SENDMSG, M_SENDMSG2, M_SEND_ZC, M_SENDMSG2_ZC, M_SEND_ZC_FIXED, M_WRITE_FIXED };
static const char *const mode_names[] = {"sendmsg",	"sendmsg2",	 "send_zc",
					 "sendmsg2_zc", "send_zc_fixed", "write_fixed"};
#define N_MODES (int)(sizeof(mode_names) / sizeof(mode_names[0]))

struct conn {			/* one sending end; sender thread only */
	int fd;
	size_t off;		/* bytes of the current message already sent */
	struct iovec iov[2];	/* what sendmsg* points at until its CQE */
	struct msghdr mh;
};

/* Counters of the sender; copied at the start and the end of the measured window. */
struct tally {
	uint64_t bytes, msgs, sends, notifs, copied;
	double snd_user, snd_sys, rdr, proc, t;
};

struct reader {			/* shared with the reader thread */
	int *fds, n;
	bool spin;		/* poll without sleeping */
	atomic_bool stop;
	_Atomic uint64_t bytes;
};

static size_t size = 16384;
static int nconns = 16;
static double seconds = 2;
static bool spin;
static uint8_t *payload;
static const uint8_t header[HDR_LEN] = {0x30, 0x80, 0x80, 0x01, 0x00}; /* looks like PUBLISH */

static double clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double now(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

static double tv(struct timeval t)
{
	return (double)t.tv_sec + (double)t.tv_usec * 1e-6;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "bench_send: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

/* The reader: drain every receiving socket, count the bytes. */
static void *reader_main(void *arg)
{
	struct reader *r = arg;
	struct epoll_event ev[64];
	static uint8_t scratch[1 << 18];
	int ep = epoll_create1(0), i, n;

	for (i = 0; i < r->n; i++) {
		struct epoll_event e = {.events = EPOLLIN, .data.fd = r->fds[i]};
		epoll_ctl(ep, EPOLL_CTL_ADD, r->fds[i], &e);
	}
	while (!atomic_load(&r->stop)) {
		n = epoll_wait(ep, ev, 64, r->spin ? 0 : 20);
		for (i = 0; i < n; i++) {
			int fd = ev[i].data.fd;
			ssize_t got;

			while ((got = recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT)) > 0)
				atomic_fetch_add_explicit(&r->bytes, (uint64_t)got,
							  memory_order_relaxed);
		}
	}
	close(ep);
	return NULL;
}

/* @n connected pairs over loopback: out[i] sends, in[i] receives. */
static void connect_pairs(int lfd, int n, int *out, int *in)
{
	struct sockaddr_in a;
	socklen_t alen = sizeof(a);
	int i, one = 1;

	getsockname(lfd, (struct sockaddr *)&a, &alen);
	for (i = 0; i < n; i++) {
		out[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (connect(out[i], (struct sockaddr *)&a, sizeof(a)))
			die("connect", errno);
		in[i] = accept(lfd, NULL, NULL);
		if (in[i] < 0)
			die("accept", errno);
		setsockopt(out[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* as the broker */
	}
}

static size_t msg_len(enum mode m)
{
	return size + (m == M_SENDMSG2 || m == M_SENDMSG2_ZC ? HDR_LEN : 0);
}

/* The rest of @c's message as iovecs: [header] payload, less what went already. */
static int rest_iov(struct conn *c, enum mode m)
{
	size_t off = c->off;
	int n = 0;

	if (m == M_SENDMSG2 || m == M_SENDMSG2_ZC) {
		if (off < HDR_LEN)
			c->iov[n++] = (struct iovec){(void *)(header + off), HDR_LEN - off};
		off = off < HDR_LEN ? 0 : off - HDR_LEN;
	}
	c->iov[n++] = (struct iovec){payload + off, size - off};
	return n;
}

static void queue_send(struct io_uring *ring, struct conn *c, int idx, enum mode m)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
	int n;

	if (!sqe) {
		io_uring_submit(ring);
		sqe = io_uring_get_sqe(ring);
	}
	n = rest_iov(c, m);
	memset(&c->mh, 0, sizeof(c->mh));
	c->mh.msg_iov = c->iov;
	c->mh.msg_iovlen = (size_t)n;
	switch (m) {
	case M_SENDMSG:
	case M_SENDMSG2:
		io_uring_prep_sendmsg(sqe, c->fd, &c->mh, MSG_NOSIGNAL);
		break;
	case M_SEND_ZC:
		io_uring_prep_send_zc(sqe, c->fd, c->iov[0].iov_base, c->iov[0].iov_len,
				      MSG_NOSIGNAL, IORING_SEND_ZC_REPORT_USAGE);
		break;
	case M_SENDMSG2_ZC:
		io_uring_prep_sendmsg_zc(sqe, c->fd, &c->mh, MSG_NOSIGNAL);
		sqe->ioprio |= IORING_SEND_ZC_REPORT_USAGE;
		break;
	case M_SEND_ZC_FIXED:
		io_uring_prep_send_zc_fixed(sqe, c->fd, c->iov[0].iov_base, c->iov[0].iov_len,
					    MSG_NOSIGNAL, IORING_SEND_ZC_REPORT_USAGE, 0);
		break;
	case M_WRITE_FIXED:
		io_uring_prep_write_fixed(sqe, c->fd, c->iov[0].iov_base,
					  (unsigned)c->iov[0].iov_len, 0, 0);
		break;
	}
	io_uring_sqe_set_data64(sqe, (uint64_t)idx);
}

/* One CQE: account for it. Returns the change in (sends + notifications) still owed. */
static int complete(struct io_uring_cqe *cqe, struct conn *cs, enum mode m, struct tally *t)
{
	struct conn *c = &cs[cqe->user_data];
	int owed = -1;

	if (cqe->flags & IORING_CQE_F_NOTIF) {
		t->notifs++;
		t->copied += !!((unsigned)cqe->res & IORING_NOTIF_USAGE_ZC_COPIED);
		return -1;
	}
	if (cqe->flags & IORING_CQE_F_MORE)
		owed++;		/* its notification is still to come */
	t->sends++;
	if (cqe->res < 0 && cqe->res != -EAGAIN && cqe->res != -EINTR && cqe->res != -ENOBUFS)
		die(mode_names[m], cqe->res);
	if (cqe->res > 0) {
		c->off += (size_t)cqe->res;
		t->bytes += (uint64_t)cqe->res;
	}
	if (c->off == msg_len(m)) {
		c->off = 0;
		t->msgs++;
	}
	return owed;
}

static void snapshot(struct tally *t, const struct tally *run, clockid_t rdr_clock)
{
	struct rusage ru;

	*t = *run;
	getrusage(RUSAGE_THREAD, &ru);
	t->snd_user = tv(ru.ru_utime);
	t->snd_sys = tv(ru.ru_stime);
	getrusage(RUSAGE_SELF, &ru);
	t->proc = tv(ru.ru_utime) + tv(ru.ru_stime);
	t->rdr = clock_s(rdr_clock);
	t->t = now();
}

static void print_row(enum mode m, const struct tally *a, const struct tally *b)
{
	double dt = b->t - a->t, gb = (double)(b->bytes - a->bytes) / 1e9;
	double su = b->snd_user - a->snd_user, ss = b->snd_sys - a->snd_sys;
	double rd = b->rdr - a->rdr, all = b->proc - a->proc, other = all - su - ss - rd;
	double nn = (double)(b->notifs - a->notifs), sends = (double)(b->sends - a->sends);

	printf("%-13s %7zu %5d %6.2f %9.0f %5.0f%% (%3.0f/%3.0f) %5.0f%% %5.0f%% %6.2f %6.2f "
	       "%6.2f %6.1f%%\n",
	       mode_names[m], size, nconns, gb / dt, (double)(b->msgs - a->msgs) / dt,
	       100 * (su + ss) / dt, 100 * su / dt, 100 * ss / dt, 100 * rd / dt,
	       100 * (other > 0 ? other : 0) / dt, (su + ss) / gb, all / gb, nn / sends,
	       nn > 0 ? 100.0 * (double)(b->copied - a->copied) / nn : 0.0);
}

/* Keep every connection busy until @until (the loop stops sending at @until). */
static void pump(struct io_uring *ring, struct conn *cs, enum mode m, struct tally *t,
		 int *inflight, double until)
{
	struct io_uring_cqe *cqe;
	unsigned head, seen;

	while (now() < until) {
		int ret = io_uring_submit_and_wait(ring, 1);

		if (ret < 0 && ret != -EINTR)
			die("io_uring_submit_and_wait", ret);
		seen = 0;
		io_uring_for_each_cqe(ring, head, cqe) {
			*inflight += complete(cqe, cs, m, t);
			seen++;
			if (!(cqe->flags & IORING_CQE_F_NOTIF)) {	/* that conn is idle */
				queue_send(ring, &cs[cqe->user_data], (int)cqe->user_data, m);
				(*inflight)++;
			}
		}
		io_uring_cq_advance(ring, seen);
	}
}

/* Wait for every send and notification, then for the reader to get every byte. */
static void drain(struct io_uring *ring, struct conn *cs, enum mode m, struct tally *t,
		  int inflight, struct reader *r)
{
	struct io_uring_cqe *cqe;
	double give_up = now() + 10;

	io_uring_submit(ring);	/* what pump() queued last */
	while (inflight > 0) {
		int ret = io_uring_wait_cqe(ring, &cqe);

		if (ret < 0 && ret != -EINTR)
			die("io_uring_wait_cqe", ret);
		if (ret == 0) {
			inflight += complete(cqe, cs, m, t);
			io_uring_cqe_seen(ring, cqe);
		}
	}
	while (atomic_load(&r->bytes) < t->bytes && now() < give_up)
		usleep(1000);
	if (atomic_load(&r->bytes) != t->bytes) {
		fprintf(stderr, "bench_send: %s: sent %llu bytes, received %llu\n", mode_names[m],
			(unsigned long long)t->bytes, (unsigned long long)atomic_load(&r->bytes));
		exit(1);
	}
}

static void run_mode(int lfd, enum mode m)
{
	int out[nconns], in[nconns], i, inflight = 0, ret;
	struct conn cs[nconns];
	struct reader r = {.fds = in, .n = nconns, .spin = spin};
	struct tally run = {0}, a, b;
	struct io_uring ring;
	pthread_t th;
	clockid_t rdr_clock;

	connect_pairs(lfd, nconns, out, in);
	ret = io_uring_queue_init((unsigned)(2 * nconns + 8), &ring, 0);
	if (ret)
		die("io_uring_queue_init", ret);
	if (m == M_SEND_ZC_FIXED || m == M_WRITE_FIXED) {
		struct iovec reg = {payload, size};

		ret = io_uring_register_buffers(&ring, &reg, 1);
		if (ret)
			die("io_uring_register_buffers", ret);
	}
	pthread_create(&th, NULL, reader_main, &r);
	pthread_getcpuclockid(th, &rdr_clock);
	for (i = 0; i < nconns; i++) {
		cs[i] = (struct conn){.fd = out[i]};
		queue_send(&ring, &cs[i], i, m);
		inflight++;
	}
	pump(&ring, cs, m, &run, &inflight, now() + WARMUP_S);
	snapshot(&a, &run, rdr_clock);
	pump(&ring, cs, m, &run, &inflight, now() + seconds);
	snapshot(&b, &run, rdr_clock);
	drain(&ring, cs, m, &run, inflight, &r);
	print_row(m, &a, &b);
	atomic_store(&r.stop, true);
	pthread_join(th, NULL);
	io_uring_queue_exit(&ring);
	for (i = 0; i < nconns; i++) {
		close(out[i]);
		close(in[i]);
	}
}

static int parse_mode(const char *s)
{
	int i;

	for (i = 0; i < N_MODES; i++)
		if (!strcmp(s, mode_names[i]))
			return i;
	return strcmp(s, "all") ? -2 : -1;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {{"size", 1, NULL, 's'}, {"conns", 1, NULL, 'c'},
					     {"seconds", 1, NULL, 't'}, {"mode", 1, NULL, 'm'},
					     {"spin", 0, NULL, 'p'}, {NULL, 0, NULL, 0}};
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int opt, mode = -1, lfd, i;

	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			size = strtoul(optarg, NULL, 0);
			break;
		case 'c':
			nconns = atoi(optarg);
			break;
		case 't':
			seconds = atof(optarg);
			break;
		case 'm':
			mode = parse_mode(optarg);
			break;
		case 'p':
			spin = true;
			break;
		default:
			mode = -2;
		}
	}
	if (mode < -1 || size == 0 || nconns < 1 || nconns > 4096 || seconds <= 0) {
		fprintf(stderr, "usage: bench_send [--size BYTES] [--conns N] [--seconds S] "
				"[--spin] [--mode all|sendmsg|sendmsg2|send_zc|sendmsg2_zc|"
				"send_zc_fixed|write_fixed]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	/* whole pages: what zero copy pins and io_uring_register_buffers maps */
	payload = aligned_alloc(4096, (size + 4095) & ~(size_t)4095);
	if (!payload)
		die("aligned_alloc", ENOMEM);
	memset(payload, 'x', size);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 4096))
		die("listen", errno);
	printf("%-13s %7s %5s %6s %9s %17s %6s %6s %6s %6s %6s %7s\n", "mode", "size", "conns",
	       "GB/s", "msgs/s", "snd CPU (usr/sys)", "rdr", "other", "snd/GB", "all/GB",
	       "ntf/sd", "copied");
	for (i = 0; i < N_MODES; i++)
		if (mode == -1 || mode == i)
			run_mode(lfd, (enum mode)i);
	close(lfd);
	free(payload);
	return 0;
}
