/* broker.c - start, run and stop the shard threads.
 *
 * The broker owns what the shards share: the config (read-only), the
 * retained store (its own rwlock), the connection counter (an atomic) and
 * the array of shards (read-only once started). Shards never touch each
 * other's private state; they only push to each other's inboxes.
 *
 * Start-up: shard 0 starts first and binds the port (so port 0 resolves to
 * one real port), then the others bind the same port with SO_REUSEPORT.
 * Each shard creates its ring inside its own thread (SINGLE_ISSUER) and
 * reports success or a readable error before the next one starts.
 */
#include "shard/broker.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "core/retain.h"
#include "net/listen.h"
#include "shard/shard.h"

struct smq_broker {
	const struct smq_config *cfg;
	struct smq_retain *retained;
	struct smq_shard *shards;	/* [nshards], read-only once started */
	unsigned nshards;
	unsigned running;		/* threads started (control thread only) */
	atomic_long nconns;
	atomic_int port;

	pthread_mutex_t start_lock;	/* start-up handshake only */
	pthread_cond_t start_cond;
	int start_done;
};

static unsigned default_shards(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > SMQ_MAX_SHARDS ? SMQ_MAX_SHARDS : (unsigned)n;
}

struct smq_broker *smq_broker_new(const struct smq_config *cfg)
{
	struct smq_broker *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->cfg = cfg;
	b->nshards = cfg->shards ? (unsigned)cfg->shards : default_shards();
	if (b->nshards > SMQ_MAX_SHARDS)
		b->nshards = SMQ_MAX_SHARDS;
	b->shards = calloc(b->nshards, sizeof(*b->shards));
	b->retained = smq_retain_new(cfg->max_retained_messages);
	if (!b->shards || !b->retained)
		goto out_free;
	for (unsigned i = 0; i < b->nshards; i++) {
		struct smq_shard *s = &b->shards[i];

		smq_mpsc_init(&s->inbox);
		s->idx = i;
		s->broker = b;
		s->cfg = cfg;
	}
	atomic_init(&b->port, cfg->port);
	pthread_mutex_init(&b->start_lock, NULL);
	pthread_cond_init(&b->start_cond, NULL);
	return b;
out_free:
	if (b->retained)
		smq_retain_free(b->retained);
	free(b->shards);
	free(b);
	return NULL;
}

/* ---- shared helpers for shard.c ------------------------------------------ */

struct smq_shard *smq_broker_shard(struct smq_broker *b, unsigned i)
{
	return &b->shards[i];
}

unsigned smq_broker_nshards_(const struct smq_broker *b)
{
	return b->nshards;
}

unsigned smq_broker_shards(const struct smq_broker *b)
{
	return b->nshards;
}

struct smq_retain *smq_broker_retain(struct smq_broker *b)
{
	return b->retained;
}

int smq_broker_listen_port(const struct smq_broker *b)
{
	return atomic_load(&b->port);
}

int smq_broker_port(const struct smq_broker *b)
{
	return atomic_load(&b->port);
}

bool smq_broker_conn_get(struct smq_broker *b)
{
	long max = b->cfg->max_connections;

	if (max < 0) {
		atomic_fetch_add_explicit(&b->nconns, 1, memory_order_relaxed);
		return true;
	}
	if (atomic_fetch_add_explicit(&b->nconns, 1, memory_order_relaxed) < max)
		return true;
	atomic_fetch_sub_explicit(&b->nconns, 1, memory_order_relaxed);
	return false;
}

void smq_broker_conn_put(struct smq_broker *b)
{
	atomic_fetch_sub_explicit(&b->nconns, 1, memory_order_relaxed);
}

void smq_broker_started(struct smq_broker *b, struct smq_shard *s, int ret)
{
	pthread_mutex_lock(&b->start_lock);
	s->start_ret = ret;
	if (!ret && s->idx == 0 && s->listen_fd >= 0) {
		int port = smq_listen_port(s->listen_fd);

		if (port > 0)
			atomic_store(&b->port, port);
	}
	b->start_done = 1;
	pthread_cond_signal(&b->start_cond);
	pthread_mutex_unlock(&b->start_lock);
}

/* ---- threads -------------------------------------------------------------- */

/* The CPU for shard @i: from the configured list, or CPU i. -1: don't pin. */
static int shard_cpu(const struct smq_config *cfg, unsigned i)
{
	if (!cfg->pin_cpus)
		return -1;
	if (cfg->ncpus)
		return cfg->cpus[i % cfg->ncpus];
	return (int)(i % (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
}

static int start_one(struct smq_broker *b, unsigned i, char *err, size_t errlen)
{
	struct smq_shard *s = &b->shards[i];
	pthread_attr_t attr;
	int cpu = shard_cpu(b->cfg, i);
	int ret;

	pthread_attr_init(&attr);
	if (cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
	}
	b->start_done = 0;
	ret = -pthread_create(&s->thread, &attr, smq_shard_main, s);
	pthread_attr_destroy(&attr);
	if (ret) {
		snprintf(err, errlen, "cannot start shard thread %u: %s", i, strerror(-ret));
		return ret;
	}
	pthread_mutex_lock(&b->start_lock);
	while (!b->start_done)
		pthread_cond_wait(&b->start_cond, &b->start_lock);
	pthread_mutex_unlock(&b->start_lock);
	if (s->start_ret) {
		pthread_join(s->thread, NULL);
		snprintf(err, errlen, "%s", s->start_err);
		return s->start_ret;
	}
	b->running++;
	if (cpu >= 0)
		smq_info("shard %u pinned to CPU %d", i, cpu);
	return 0;
}

int smq_broker_start(struct smq_broker *b, char *err, size_t errlen)
{
	for (unsigned i = 0; i < b->nshards; i++) {
		int ret = start_one(b, i, err, errlen);

		if (ret) {
			smq_broker_stop(b);
			return ret;
		}
	}
	return 0;
}

void smq_broker_stop(struct smq_broker *b)
{
	for (unsigned i = 0; i < b->running; i++) {
		struct imsg *m = calloc(1, sizeof(*m));

		if (!m)
			abort();	/* cannot stop cleanly without it */
		m->type = IMSG_STOP;
		smq_shard_post(&b->shards[i], m);
	}
	for (unsigned i = 0; i < b->running; i++)
		pthread_join(b->shards[i].thread, NULL);
	/* Only now may engines go: a shard may hold messages of another. */
	for (unsigned i = 0; i < b->running; i++)
		smq_shard_fini(&b->shards[i]);
	b->running = 0;
}

void smq_broker_free(struct smq_broker *b)
{
	if (!b)
		return;
	smq_broker_stop(b);
	smq_retain_free(b->retained);
	pthread_mutex_destroy(&b->start_lock);
	pthread_cond_destroy(&b->start_cond);
	free(b->shards);
	free(b);
}
