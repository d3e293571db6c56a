/* persist.c - a shard's persistence glue: reading its store back into the
 * engine at start, the store's eventfd in the ring, and the final flush at
 * stop. The store itself is shard/store.c; when acknowledgements leave is
 * shard/durable.c.
 */
#include "shard/persist.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/engine.h"
#include "core/log.h"
#include "shard/durable.h"
#include "shard/shard.h"
#include "shard/store.h"

static int64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void smq_persist_io_store(void *ctx, const struct smq_store_rec *r)
{
	struct smq_shard *s = ctx;

	smq_store_add(s->store, r);
}

static void arm_read(struct smq_shard *s)
{
	struct io_uring_sqe *sqe = smq_shard_sqe(s);

	io_uring_prep_read(sqe, s->store_efd, &s->store_ev, sizeof(s->store_ev), 0);
	io_uring_sqe_set_data64(sqe, UD(s, UD_WAKE));
}

int smq_persist_setup(struct smq_shard *s)
{
	uint64_t seed = 0, t0 = (uint64_t)clock_ms(CLOCK_MONOTONIC);
	size_t n;
	int ret;

	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed))
		seed = t0 ^ ((uint64_t)s->idx << 56);
	smq_engine_set_persist(s->eng, clock_ms(CLOCK_REALTIME) - clock_ms(CLOCK_MONOTONIC), seed);
	ret = smq_store_restore(s->store, s->eng, t0, s->start_err, sizeof(s->start_err));
	if (ret)
		return ret;
	n = smq_engine_restore_done(s->eng, t0);
	if (n)
		smq_notice("shard %u: restored %zu sessions from the store in %llu ms", s->idx, n,
			   (unsigned long long)((uint64_t)clock_ms(CLOCK_MONOTONIC) - t0));
	s->dur = smq_durable_new(s->store);
	if (!s->dur) {
		snprintf(s->start_err, sizeof(s->start_err), "out of memory starting shard %u",
			 s->idx);
		return -ENOMEM;
	}
	ret = smq_store_start(s->store);
	if (ret < 0) {
		snprintf(s->start_err, sizeof(s->start_err), "cannot start the store writer of "
			 "shard %u: %s", s->idx, strerror(-ret));
		return ret;
	}
	s->store_efd = ret;
	arm_read(s);
	return 0;
}

void smq_persist_on_cqe(struct smq_shard *s, int res)
{
	if (res < 0 && res != -EINTR && res != -EAGAIN) {
		if (!s->stopping)
			smq_err("shard %u: reading the store's eventfd failed: %s", s->idx,
				strerror(-res));
	} else if (s->store_efd >= 0) {
		arm_read(s);
	}
	smq_durable_progress(s);
}

void smq_persist_stop(struct smq_shard *s)
{
	if (!s->store)
		return;
	smq_store_stop(s->store);
	smq_durable_free(s->dur);
	s->dur = NULL;
	s->store_efd = -1;
}
