/* broker_soak.c - a short in-process soak of the whole broker.
 *
 * Starts the real broker (4 shards, port 0) inside this process, so that
 * ThreadSanitizer (make tsan) sees every shard thread, every inbox push and
 * every cross-shard message free. Then PUBS publisher threads each send
 * MSGS sequence-numbered QoS 1 messages to "soak/<p>", and SUBS subscriber
 * threads, each subscribed to "soak/#" (and to "soak/+" at QoS 0, so the
 * overlap rule is exercised), check that every message arrives exactly once
 * per subscriber and in order per publisher. Clients are spread over shards
 * by their ids, so most deliveries cross shards.
 *
 * It runs twice: in memory, then with persistence (a store in a temporary
 * directory), so the store writer threads, the held acknowledgements and
 * the durability markers between shards run under ThreadSanitizer too.
 *
 * Exit: 0 pass, 1 fail, 77 skip (io_uring unavailable here).
 * Scale with SMQ_SOAK_MSGS (default 400 messages per publisher).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/client.h"
#include "core/config.h"
#include "core/log.h"
#include "net/clientio.h"
#include "shard/broker.h"

#define PUBS 8
#define SUBS 4
#define TIMEOUT_MS 30000

static int port;
static unsigned msgs = 400;
static pthread_barrier_t subscribed;
static atomic_int failures;

#define fail(...)                                                                                  \
	do {                                                                                       \
		fprintf(stderr, "broker_soak: " __VA_ARGS__);                                      \
		fputc('\n', stderr);                                                               \
		atomic_fetch_add(&failures, 1);                                                    \
	} while (0)

static struct smq_clientio *client(const char *id)
{
	struct smq_client_opts o = { .version = SMQ_V311, .client_id = id, .clean = true,
				     .keepalive = 30, .max_inflight = 32 };
	struct smq_clientio *h = smq_clientio_new("127.0.0.1", (uint16_t)port, &o);

	if (h && smq_clientio_connect(h, 5000)) {
		smq_clientio_free(h);
		h = NULL;
	}
	return h;
}

static void *publisher(void *arg)
{
	unsigned p = (unsigned)(uintptr_t)arg;
	struct smq_clientio *h;
	char id[32], topic[32], payload[32];

	snprintf(id, sizeof(id), "soak-pub-%u", p);
	snprintf(topic, sizeof(topic), "soak/%u", p);
	h = client(id);
	pthread_barrier_wait(&subscribed);
	if (!h) {
		fail("publisher %u cannot connect", p);
		return NULL;
	}
	for (unsigned i = 0; i < msgs; i++) {
		int n = snprintf(payload, sizeof(payload), "%u:%u", p, i);
		struct smq_str pl = { (const uint8_t *)payload, (uint32_t)n };

		if (smq_clientio_publish(h, topic, pl, 1, false, NULL, 5000) < 0) {
			fail("publisher %u: publish %u failed", p, i);
			break;
		}
	}
	smq_clientio_disconnect(h, 0, 2000);
	smq_clientio_free(h);
	return NULL;
}

static bool check_message(unsigned s, const struct smq_client_event *ev, unsigned next[PUBS])
{
	unsigned p, seq;
	char buf[32];
	size_t n = ev->msg.payload.len < sizeof(buf) - 1 ? ev->msg.payload.len : sizeof(buf) - 1;

	memcpy(buf, ev->msg.payload.p, n);
	buf[n] = 0;
	if (sscanf(buf, "%u:%u", &p, &seq) != 2 || p >= PUBS) {
		fail("subscriber %u: unexpected payload '%s'", s, buf);
		return false;
	}
	if (ev->msg.qos != 1)
		fail("subscriber %u: got QoS %u, want 1 (highest of overlapping subs)", s,
		     ev->msg.qos);
	if (seq != next[p]) {
		fail("subscriber %u: publisher %u: got seq %u, want %u (lost, duplicated or "
		     "reordered)", s, p, seq, next[p]);
		return false;
	}
	next[p]++;
	return true;
}

static void *subscriber(void *arg)
{
	unsigned s = (unsigned)(uintptr_t)arg;
	struct smq_sub_entry subs[2] = {
		{ { (const uint8_t *)"soak/#", 6 }, 1 },
		{ { (const uint8_t *)"soak/+", 6 }, 0 },
	};
	unsigned next[PUBS] = { 0 };
	struct smq_client_event ev;
	struct smq_clientio *h;
	uint8_t codes[2];
	uint64_t deadline;
	unsigned got = 0;
	char id[32];

	snprintf(id, sizeof(id), "soak-sub-%u", s);
	h = client(id);
	if (!h || smq_clientio_subscribe(h, subs, 2, NULL, codes, 5000) < 0) {
		fail("subscriber %u cannot connect or subscribe", s);
		pthread_barrier_wait(&subscribed);
		goto out;
	}
	pthread_barrier_wait(&subscribed);
	deadline = smq_clientio_now_ms() + TIMEOUT_MS;
	while (got < PUBS * msgs && smq_clientio_now_ms() < deadline) {
		if (smq_clientio_next_message(h, &ev, 1000) < 0)
			continue;
		if (!check_message(s, &ev, next))
			break;
		got++;
	}
	if (got != PUBS * msgs)
		fail("subscriber %u: received %u of %u messages", s, got, PUBS * msgs);
	smq_clientio_disconnect(h, 0, 2000);
out:
	smq_clientio_free(h);
	return NULL;
}

static int soak(const char *store_dir);

int main(void)
{
	const char *env = getenv("SMQ_SOAK_MSGS");
	char dir[] = "/tmp/smq-soak-XXXXXX", cmd[64];
	int ret;

	if (env && atoi(env) > 0)
		msgs = (unsigned)atoi(env);
	ret = soak(NULL);
	if (ret || !mkdtemp(dir))
		return ret ? ret : 1;
	ret = soak(dir);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		fprintf(stderr, "broker_soak: could not remove %s\n", dir);
	return ret;
}

/* One round; with @store_dir, persistence on with its store there. */
static int soak(const char *store_dir)
{
	static struct smq_config cfg;
	pthread_t pub[PUBS], sub[SUBS];
	struct smq_broker *b;
	char err[512];
	int ret;

	atomic_store(&failures, 0);
	smq_config_defaults(&cfg);
	cfg.port = 0;
	cfg.shards = 4;
	cfg.log_level = SMQ_LOG_WARNING;
	/* Nothing pushes back on publishers yet: with the default limit of
	 * 1,000 queued messages a subscriber that falls behind on a loaded
	 * machine loses messages by design (counted as queue-full drops), and
	 * this soak is about routing and threads, not about that limit. */
	cfg.max_queued_messages = 0;
	if (store_dir) {
		cfg.persistence = true;
		snprintf(cfg.persistence_location, sizeof(cfg.persistence_location), "%s",
			 store_dir);
	}
	smq_log_set_level(cfg.log_level);
	b = smq_broker_new(&cfg);
	if (!b)
		return 1;
	ret = smq_broker_start(b, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "broker_soak: %s\n", err);
		smq_broker_free(b);
		return ret == -EPERM || ret == -ENOSYS ? 77 : 1;
	}
	port = smq_broker_port(b);
	pthread_barrier_init(&subscribed, NULL, PUBS + SUBS);
	for (unsigned i = 0; i < SUBS; i++)
		pthread_create(&sub[i], NULL, subscriber, (void *)(uintptr_t)i);
	for (unsigned i = 0; i < PUBS; i++)
		pthread_create(&pub[i], NULL, publisher, (void *)(uintptr_t)i);
	for (unsigned i = 0; i < PUBS; i++)
		pthread_join(pub[i], NULL);
	for (unsigned i = 0; i < SUBS; i++)
		pthread_join(sub[i], NULL);
	pthread_barrier_destroy(&subscribed);
	smq_broker_free(b);
	if (atomic_load(&failures))
		return 1;
	printf("broker_soak: %u publishers x %u QoS 1 messages to %u subscribers%s: all "
	       "delivered once, in order\n", PUBS, msgs, SUBS, store_dir ? " (persistence)" : "");
	return 0;
}
