/* bench_subs.c - a subscribe burst against a running broker, and what it does to
 * everyone else on the same broker.
 *
 * One client ("the burst") subscribes to N distinct filters in SUBSCRIBE packets
 * of K filters each, all written back to back without waiting for a SUBACK;
 * the time is from the first byte written to the last SUBACK read. Meanwhile
 * a second client ("the prober") connects, waits for its CONNACK, disconnects
 * and starts again, every 2 ms, until the burst is done: the CONNACK latency
 * it sees is how long the broker's loop was held by the burst. A broker whose
 * subscribe path is quadratic, or that applies a huge packet in one go without
 * yielding, shows here as a long burst and a long worst-case CONNACK.
 *
 * Filters are "bench/<i / 1000>/<i % 1000>/leaf", every 8th one ending in "+"
 * instead: the shape of a device fleet's subscriptions.
 *
 * Usage: bench_subs [-p port] [-h host] [-n filters] [-k per-packet] [-q qos]
 * Prints one line of JSON. Exit 0 when every SUBACK arrived and granted.
 * perf/bench_subs.sh runs it against shardmq and mosquitto side by side.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PROBE_GAP_US 2000
#define MAX_PROBES 100000

struct opts {
	const char *host;
	int port;
	uint32_t n, k;
	unsigned qos;
};

static struct opts o = { "127.0.0.1", 1883, 100000, 1000, 0 };
static volatile bool burst_done;
static double probe_ms[MAX_PROBES];
static uint32_t nprobes, probe_fail;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static int dial(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)o.port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;

	if (fd < 0)
		return -1;
	inet_pton(AF_INET, o.host, &a.sin_addr);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	return fd;
}

static size_t put_varint(uint8_t *p, uint32_t n)
{
	size_t i = 0;

	do {
		p[i] = (uint8_t)(n % 128);
		n /= 128;
		if (n)
			p[i] |= 0x80;
		i++;
	} while (n);
	return i;
}

/* A 3.1.1 CONNECT, clean session, keep-alive 60 s, into @p (>= 64 + id). */
static size_t connect_pkt(uint8_t *p, const char *id)
{
	size_t idlen = strlen(id), rl = 10 + 2 + idlen, i = 0;

	p[i++] = 0x10;
	i += put_varint(p + i, (uint32_t)rl);
	memcpy(p + i, "\0\4MQTT\4\2\0\74", 10);
	i += 10;
	p[i++] = (uint8_t)(idlen >> 8);
	p[i++] = (uint8_t)idlen;
	memcpy(p + i, id, idlen);
	return i + idlen;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read one whole packet's fixed header and body into @buf (cap @cap):
 * returns the first byte, or -1. Bodies longer than @cap are skipped. */
static int read_pkt(int fd, uint8_t *buf, size_t cap, size_t *len)
{
	uint8_t b;
	uint32_t rl = 0, mul = 1;
	size_t got = 0;
	int first;

	if (read(fd, &b, 1) != 1)
		return -1;
	first = b;
	do {
		if (read(fd, &b, 1) != 1)
			return -1;
		rl += (b & 127u) * mul;
		mul *= 128;
	} while (b & 128);
	while (got < rl) {
		uint8_t sink[4096];
		size_t want = rl - got;
		uint8_t *dst = got < cap ? buf + got : sink;
		ssize_t r;

		if (got < cap && want > cap - got)
			want = cap - got;
		if (got >= cap && want > sizeof(sink))
			want = sizeof(sink);
		r = read(fd, dst, want);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	*len = rl;
	return first;
}

/* All the burst's SUBSCRIBE packets, back to back. */
static uint8_t *build_burst(size_t *len)
{
	size_t cap = (size_t)o.n * 40 + (o.n / o.k + 1) * 16, off = 0;
	uint8_t *buf = malloc(cap), body_hdr[8];
	char f[64];
	uint32_t i = 0, pid = 0;

	if (!buf)
		return NULL;
	while (i < o.n) {
		size_t start = off + 8, body = 2, hl;	/* body written at +8, moved later */
		uint32_t j;

		pid = pid % 65535 + 1;
		buf[start] = (uint8_t)(pid >> 8);
		buf[start + 1] = (uint8_t)pid;
		for (j = 0; j < o.k && i < o.n; j++, i++) {
			int fl = snprintf(f, sizeof(f), i % 8 == 7 ? "bench/%u/%u/+" :
				"bench/%u/%u/leaf", i / 1000, i % 1000);

			buf[start + body] = 0;
			buf[start + body + 1] = (uint8_t)fl;
			memcpy(buf + start + body + 2, f, (size_t)fl);
			buf[start + body + 2 + fl] = (uint8_t)o.qos;
			body += 3 + (size_t)fl;
		}
		body_hdr[0] = 0x82;
		hl = 1 + put_varint(body_hdr + 1, (uint32_t)body);
		memmove(buf + off + hl, buf + start, body);
		memcpy(buf + off, body_hdr, hl);
		off += hl + body;
	}
	*len = off;
	return buf;
}

static void *prober(void *arg)
{
	uint8_t pkt[128], in[64];
	size_t n, len;
	char id[32];

	(void)arg;
	while (!burst_done && nprobes < MAX_PROBES) {
		int fd = dial();
		double t0;

		if (fd < 0) {
			probe_fail++;
			usleep(PROBE_GAP_US);
			continue;
		}
		snprintf(id, sizeof(id), "probe-%u", nprobes);
		n = connect_pkt(pkt, id);
		t0 = now_ms();
		if (write_all(fd, pkt, n) || read_pkt(fd, in, sizeof(in), &len) != 0x20)
			probe_fail++;
		else
			probe_ms[nprobes++] = now_ms() - t0;
		write_all(fd, (const uint8_t *)"\xe0\0", 2);
		close(fd);
		usleep(PROBE_GAP_US);
	}
	return NULL;
}

struct sender {
	int fd;
	const uint8_t *p;
	size_t n;
	int ret;
};

static void *send_burst(void *arg)
{
	struct sender *s = arg;

	s->ret = write_all(s->fd, s->p, s->n);
	return NULL;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int parse(int argc, char **argv)
{
	int c;

	while ((c = getopt(argc, argv, "h:p:n:k:q:")) != -1) {
		switch (c) {
		case 'h': o.host = optarg; break;
		case 'p': o.port = atoi(optarg); break;
		case 'n': o.n = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'k': o.k = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'q': o.qos = (unsigned)atoi(optarg); break;
		default:
			fprintf(stderr, "usage: bench_subs [-h host] [-p port] [-n filters] "
				"[-k filters per SUBSCRIBE] [-q qos]\n");
			return -1;
		}
	}
	return o.n && o.k && o.k <= 10000 && o.qos <= 2 ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct sender snd = { 0 };
	pthread_t pt, st;
	uint8_t pkt[256], in[16384];
	uint32_t acks = 0, npkts, refused = 0;
	double t0, t1;
	size_t len;
	int fd;

	if (parse(argc, argv))
		return 2;
	npkts = (o.n + o.k - 1) / o.k;
	snd.p = build_burst(&snd.n);
	fd = dial();
	if (!snd.p || fd < 0) {
		fprintf(stderr, "bench_subs: cannot connect to %s:%d\n", o.host, o.port);
		return 1;
	}
	len = connect_pkt(pkt, "bench-subs-burst");
	if (write_all(fd, pkt, len) || read_pkt(fd, in, sizeof(in), &len) != 0x20) {
		fprintf(stderr, "bench_subs: no CONNACK\n");
		return 1;
	}
	pthread_create(&pt, NULL, prober, NULL);
	usleep(50000);	/* a few idle probes first: the baseline */
	snd.fd = fd;
	t0 = now_ms();
	pthread_create(&st, NULL, send_burst, &snd);
	while (acks < npkts) {
		if (read_pkt(fd, in, sizeof(in), &len) != 0x90)
			break;
		for (size_t i = 2; i < len && i < sizeof(in); i++)
			refused += in[i] >= 0x80;
		acks++;
	}
	t1 = now_ms();
	burst_done = true;
	pthread_join(st, NULL);
	pthread_join(pt, NULL);
	qsort(probe_ms, nprobes, sizeof(double), cmp_d);
	printf("{\"filters\":%u,\"per_packet\":%u,\"subacks\":%u,\"refused\":%u,"
	       "\"burst_ms\":%.1f,\"filters_per_s\":%.0f,\"probes\":%u,\"probe_fail\":%u,"
	       "\"connack_p50_ms\":%.2f,\"connack_p99_ms\":%.2f,\"connack_max_ms\":%.2f}\n",
	       o.n, o.k, acks, refused, t1 - t0, o.n / ((t1 - t0) / 1e3), nprobes, probe_fail,
	       nprobes ? probe_ms[nprobes / 2] : -1.0,
	       nprobes ? probe_ms[(uint32_t)(nprobes * 0.99)] : -1.0,
	       nprobes ? probe_ms[nprobes - 1] : -1.0);
	close(fd);
	return acks == npkts && !refused && !snd.ret ? 0 : 1;
}
