/* bench_codec.c - packets per second through the codec, decode and encode.
 *
 * Typical packets: PUBLISH with 16 B and 1 KiB payloads (3.1.1 plain, 5.0 with
 * a few properties), CONNECT and SUBSCRIBE in both versions, and a stream of
 * small PUBLISH packets through smq_reader (the broker's receive path).
 * One thread, no I/O; each figure is the best of three timed runs, in
 * packets per second of the thread's CPU time (CLOCK_THREAD_CPUTIME_ID).
 *
 * Run: make build/perf/bench_codec && ./build/perf/bench_codec [seconds-per-run]
 * Results are recorded in perf/RESULTS.md ("## Codec").
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/codec.h"

struct bench_case {
	const char *name;
	struct smq_packet pkt;
	uint8_t wire[2048];
	long len;
};

static volatile uint64_t sink;
static double run_seconds = 0.3;

static double now(void)
{
	struct timespec ts;

	/* CPU time of this thread, not wall time: the figures stay comparable
	 * on a busy machine (cache effects of neighbours remain). */
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t decode_n(const struct bench_case *c, uint64_t n)
{
	struct smq_packet p;
	uint64_t acc = 0, i;

	for (i = 0; i < n; i++) {
		if (smq_decode(c->wire, (size_t)c->len, c->pkt.version, &p))
			abort();
		acc += p.type + p.packet_id;
	}
	return acc;
}

static uint64_t encode_n(const struct bench_case *c, uint64_t n)
{
	uint8_t out[2048];
	uint64_t acc = 0, i;

	for (i = 0; i < n; i++) {
		long m = smq_encode(&c->pkt, out, sizeof(out));

		if (m != c->len)
			abort();
		acc += out[m - 1];
	}
	return acc;
}

/* Calls per second of @fn, best of three runs of about run_seconds each. */
static double rate(uint64_t (*fn)(const struct bench_case *, uint64_t),
		   const struct bench_case *c)
{
	uint64_t n = 1000;
	double t, best = 0;
	int k;

	for (;;) {	/* calibrate */
		t = now();
		sink += fn(c, n);
		t = now() - t;
		if (t > run_seconds / 4)
			break;
		n *= 2;
	}
	n = (uint64_t)((double)n * run_seconds / t) + 1;
	for (k = 0; k < 3; k++) {
		t = now();
		sink += fn(c, n);
		t = now() - t;
		if ((double)n / t > best)
			best = (double)n / t;
	}
	return best;
}

static uint8_t payload[1024];
static uint8_t users[64];
static struct smq_sub_entry subs[3] = {
	{ SMQ_STR("sensors/+/temperature"), 1 },
	{ SMQ_STR("alerts/#"), 2 },
	{ SMQ_STR("$SYS/broker/clients/connected"), 0 },
};

static void make_publish(struct bench_case *c, const char *name, uint8_t v, uint32_t size)
{
	struct smq_packet *p = &c->pkt;

	c->name = name;
	*p = (struct smq_packet){ .type = SMQ_PUBLISH, .version = v, .packet_id = 4242 };
	p->publish.qos = 1;
	p->publish.topic = SMQ_STR("building/7/floor/3/room/12/temperature");
	p->publish.payload = (struct smq_str){ payload, size };
	if (v == SMQ_V5) {
		p->props.message_expiry = 3600;
		SMQ_SET(&p->props, SMQ_PROP_MESSAGE_EXPIRY);
		p->props.content_type = SMQ_STR("application/json");
		SMQ_SET(&p->props, SMQ_PROP_CONTENT_TYPE);
		p->props.user = (struct smq_str){ users, 0 };
		p->props.user.len = (uint32_t)smq_props_put_user(users, sizeof(users),
								 SMQ_STR("trace"),
								 SMQ_STR("0af7651916cd43dd"));
		SMQ_SET(&p->props, SMQ_PROP_USER);
	}
}

static void make_connect(struct bench_case *c, const char *name, uint8_t v)
{
	struct smq_packet *p = &c->pkt;

	c->name = name;
	*p = (struct smq_packet){ .type = SMQ_CONNECT, .version = v };
	p->connect.clean = true;
	p->connect.keepalive = 60;
	p->connect.client_id = SMQ_STR("sensor-gateway-00042");
	p->connect.will = true;
	p->connect.will_qos = 1;
	p->connect.will_topic = SMQ_STR("gateways/00042/status");
	p->connect.will_payload = SMQ_STR("offline");
	p->connect.has_username = p->connect.has_password = true;
	p->connect.username = SMQ_STR("gateway");
	p->connect.password = SMQ_STR("s3cr3t-passw0rd");
	if (v == SMQ_V5) {
		p->props.session_expiry = 3600;
		SMQ_SET(&p->props, SMQ_PROP_SESSION_EXPIRY);
		p->props.receive_max = 100;
		SMQ_SET(&p->props, SMQ_PROP_RECEIVE_MAX);
		p->props.max_packet_size = 1u << 20;
		SMQ_SET(&p->props, SMQ_PROP_MAX_PACKET_SIZE);
	}
}

static void make_subscribe(struct bench_case *c, const char *name, uint8_t v)
{
	struct smq_packet *p = &c->pkt;

	c->name = name;
	*p = (struct smq_packet){ .type = SMQ_SUBSCRIBE, .version = v, .packet_id = 7 };
	p->list.entries = subs;
	p->list.count = 3;
	if (v == SMQ_V5) {
		p->props.sub_id = 12;
		SMQ_SET(&p->props, SMQ_PROP_SUBSCRIPTION_ID);
	}
}

/* The receive path: 64 KiB of back-to-back 16 B QoS 0 PUBLISH packets fed
 * to a reader in 16 KiB reads (the split ones are copied), until at least @n
 * packets went through (the rate is therefore a slight underestimate). */
static uint64_t reader_n(const struct bench_case *c, uint64_t n)
{
	static uint8_t stream[65536];
	static size_t stream_len, per_stream;
	struct smq_reader r;
	struct smq_packet p;
	uint64_t got = 0, acc = 0;

	if (!stream_len) {
		while (stream_len + (size_t)c->len <= sizeof(stream)) {
			memcpy(stream + stream_len, c->wire, (size_t)c->len);
			stream_len += (size_t)c->len;
			per_stream++;
		}
	}
	smq_reader_init(&r, 0, c->pkt.version);
	while (got < n) {
		size_t off;

		for (off = 0; off < sizeof(stream); off += 16384) {
			const uint8_t *in = stream + off;
			size_t left = 16384;

			while (smq_reader_next(&r, &in, &left, &p) == 1) {
				acc += p.publish.payload.len;
				got++;
			}
		}
	}
	smq_reader_fini(&r);
	return acc;
}

int main(int argc, char **argv)
{
	static struct bench_case cases[10];
	struct bench_case *c;
	size_t n = 0, i;

	if (argc > 1)
		run_seconds = atof(argv[1]);
	memset(payload, 'x', sizeof(payload));
	make_publish(&cases[n++], "PUBLISH 3.1.1 QoS1 16 B", SMQ_V311, 16);
	make_publish(&cases[n++], "PUBLISH 3.1.1 QoS1 1 KiB", SMQ_V311, 1024);
	make_publish(&cases[n++], "PUBLISH 5.0 QoS1 16 B +3 props", SMQ_V5, 16);
	make_publish(&cases[n++], "PUBLISH 5.0 QoS1 1 KiB +3 props", SMQ_V5, 1024);
	make_connect(&cases[n++], "CONNECT 3.1.1 will+login", SMQ_V311);
	make_connect(&cases[n++], "CONNECT 5.0 will+login +3 props", SMQ_V5);
	make_subscribe(&cases[n++], "SUBSCRIBE 3.1.1 3 filters", SMQ_V311);
	make_subscribe(&cases[n++], "SUBSCRIBE 5.0 3 filters +sub id", SMQ_V5);

	printf("packets per CPU-second, best of 3 runs of %.1f s\n", run_seconds);
	printf("%-34s %6s %14s %14s\n", "packet", "bytes", "decode pkt/s", "encode pkt/s");
	for (i = 0; i < n; i++) {
		c = &cases[i];
		c->len = smq_encode(&c->pkt, c->wire, sizeof(c->wire));
		if (c->len < 0)
			return 1;
		printf("%-34s %6ld %14.0f %14.0f\n", c->name, c->len, rate(decode_n, c),
		       rate(encode_n, c));
	}
	c = &cases[n];
	make_publish(c, "reader: 3.1.1 QoS0 16 B stream", SMQ_V311, 16);
	c->pkt.publish.qos = 0;
	c->len = smq_encode(&c->pkt, c->wire, sizeof(c->wire));
	printf("%-34s %6ld %14.0f %14s\n", c->name, c->len, rate(reader_n, c), "-");
	return 0;
}
