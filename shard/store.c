/* store.c - a shard's store at run time: the batches the loop fills, the
 * writer thread that commits them, and reading everything back at start.
 *
 * Group commit: the loop never waits. Records of one loop turn go into the
 * open batch; at the turn's end it is queued for the writer (one mutex
 * hold, one condition signal). The writer takes every queued batch, applies
 * them in one LMDB write transaction and commits: under load many turns
 * share one commit and one flush, so a flush costs per commit, not per
 * message. Done epochs come back through an eventfd the loop reads in its
 * ring, and held acknowledgements go out then (shard/durable.c).
 *
 * Commit mode opens LMDB with its default durable commits (data pages
 * flushed, then the meta page: a power loss keeps the last commit whole).
 * Periodic mode opens it with MDB_NOSYNC: a commit reaches the OS page
 * cache, which a process crash does not lose, and the writer flushes every
 * autosave_interval, on SIGUSR1 and at exit.
 *
 * A failed commit (ENOSPC, EIO, a map that cannot grow) is aborted, its
 * batches stay queued in order, the store reports itself full, and the
 * writer tries again every second: when space returns it recovers by
 * itself and nothing that was accepted is lost.
 */
#include "shard/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/hash.h>

#include "core/engine.h"
#include "core/log.h"
#include "core/persist.h"
#include "shard/store_int.h"

#define RETRY_MS 1000u

const char *smq_store_strerror(int rc)
{
	return rc == MDB_MAP_FULL ? "the store's map is full" : mdb_strerror(rc);
}

/* ---- key mapping ---------------------------------------------------------- */

size_t smq_store_map_key(const struct smq_store *st, const uint8_t *key, size_t klen,
			 uint8_t *out)
{
	size_t keep = st->keymax - STORE_DIGEST;

	if (klen <= st->keymax) {
		memcpy(out, key, klen);
		return klen;
	}
	memcpy(out, key, keep);
	wc_Sha256Hash(key, (word32)klen, out + keep);
	return st->keymax;
}

int smq_store_unmap(MDB_val k, MDB_val v, struct smq_str *key, struct smq_str *val)
{
	const uint8_t *p = v.mv_data;
	uint32_t klen;

	if (!v.mv_size || p[0] > 1)
		return -EINVAL;
	if (p[0] == 0) {
		*key = (struct smq_str){ k.mv_data, (uint32_t)k.mv_size };
		*val = (struct smq_str){ p + 1, (uint32_t)v.mv_size - 1 };
		return 0;
	}
	if (v.mv_size < 5)
		return -EINVAL;
	klen = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
	if (v.mv_size - 5 < klen || klen < k.mv_size)
		return -EINVAL;
	*key = (struct smq_str){ p + 5, klen };
	*val = (struct smq_str){ p + 5 + klen, (uint32_t)(v.mv_size - 5 - klen) };
	return 0;
}

/* ---- the writer's queue -------------------------------------------------------- */

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void batch_free(struct batch *b)
{
	if (b)
		free(b->buf);
	free(b);
}

void smq_store_queue(struct smq_store *st, struct batch *b)
{
	st->submitted = b->epoch;	/* b belongs to the writer once queued */
	pthread_mutex_lock(&st->mu);
	if (st->q_tail)
		st->q_tail->next = b;
	else
		st->q_head = b;
	st->q_tail = b;
	st->q_bytes += b->len;
	pthread_cond_signal(&st->cv);
	pthread_mutex_unlock(&st->mu);
}

void smq_store_poll(struct smq_store *st, uint64_t *done, uint64_t *failed, bool *full)
{
	pthread_mutex_lock(&st->mu);
	*done = st->done;
	*failed = st->failed;
	*full = st->full;
	st->seen_commits = st->commits;
	pthread_mutex_unlock(&st->mu);
	st->seen_done = *done > st->seen_done ? *done : st->seen_done;
	st->seen_full = *full;
}

uint64_t smq_store_commits(const struct smq_store *st)
{
	return st->seen_commits;
}

/* ---- the writer thread ------------------------------------------------------ */

static int del_prefix(struct smq_store *st, MDB_txn *txn, const uint8_t *pre, size_t n)
{
	MDB_cursor *cur;
	MDB_val k = { n, (void *)pre }, v;
	int rc = mdb_cursor_open(txn, st->dbi, &cur);

	if (rc)
		return rc;
	while (!(rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)) && k.mv_size >= n &&
	       !memcmp(k.mv_data, pre, n)) {
		rc = mdb_cursor_del(cur, 0);
		if (rc)
			break;
		k = (MDB_val){ n, (void *)pre };
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND || !rc || (k.mv_size >= n && memcmp(k.mv_data, pre, n)) ? 0 : rc;
}

static int put(struct smq_store *st, MDB_txn *txn, const uint8_t *key, uint32_t klen,
	       const uint8_t *val, uint32_t vlen, uint8_t *kbuf)
{
	bool longkey = klen > st->keymax;
	MDB_val k = { smq_store_map_key(st, key, klen, kbuf), kbuf };
	MDB_val v = { 1 + (longkey ? 4 + klen : 0) + (size_t)vlen, NULL };
	uint8_t *p;
	int rc = mdb_put(txn, st->dbi, &k, &v, MDB_RESERVE);

	if (rc)
		return rc;
	p = v.mv_data;
	*p++ = longkey;
	if (longkey) {
		p = smq_store_put32(p, klen);
		memcpy(p, key, klen);
		p += klen;
	}
	memcpy(p, val, vlen);
	return 0;
}

static int apply_batch(struct smq_store *st, MDB_txn *txn, const struct batch *b, uint8_t *kbuf)
{
	const uint8_t *p = b->buf, *end = b->buf + b->len;
	int rc = 0;

	while (!rc && p < end) {
		uint8_t op = p[0];
		uint32_t klen = smq_store_get32(p + 2), vlen = smq_store_get32(p + 6);
		const uint8_t *key = p + REC_HDR, *val = key + klen;
		MDB_val k;

		p = val + vlen;
		switch (op) {	/* 0: cancelled */
		case SMQ_STORE_PUT:
			rc = put(st, txn, key, klen, val, vlen, kbuf);
			break;
		case SMQ_STORE_DEL:
			k = (MDB_val){ smq_store_map_key(st, key, klen, kbuf), kbuf };
			rc = mdb_del(txn, st->dbi, &k, NULL);
			if (rc == MDB_NOTFOUND)
				rc = 0;
			break;
		case SMQ_STORE_DEL_PREFIX:
			rc = del_prefix(st, txn, key, klen);
			break;
		}
	}
	return rc;
}

/* One transaction for every batch of @list; grows the map when it is full. */
static int apply(struct smq_store *st, const struct batch *list, uint8_t *kbuf)
{
	for (int tries = 0;; tries++) {
		MDB_txn *txn;
		MDB_envinfo info;
		int rc = mdb_txn_begin(st->env, NULL, 0, &txn);

		for (const struct batch *b = list; !rc && b; b = b->next)
			rc = apply_batch(st, txn, b, kbuf);
		if (!rc)
			return mdb_txn_commit(txn);
		mdb_txn_abort(txn);
		if (rc != MDB_MAP_FULL || tries >= 8 || mdb_env_info(st->env, &info))
			return rc;
		rc = mdb_env_set_mapsize(st->env, info.me_mapsize * 2);
		if (rc)
			return rc;
	}
}


/* Wait (holding mu) until there is work, a flush is due, or @until_ms.
 * While commits fail, new batches do not cut the pause short. */
static void wait_work(struct smq_store *st, uint64_t until_ms)
{
	while ((st->full || !st->q_head) && !st->stop && !st->sync_now) {
		struct timespec ts;
		uint64_t now = mono_ms();

		if (until_ms && now >= until_ms)
			return;
		if (!until_ms) {
			pthread_cond_wait(&st->cv, &st->mu);
			continue;
		}
		ts.tv_sec = (time_t)(until_ms / 1000u);
		ts.tv_nsec = (long)(until_ms % 1000u) * 1000000;
		pthread_cond_timedwait(&st->cv, &st->mu, &ts);
	}
}

static void flush(struct smq_store *st)
{
	int rc = mdb_env_sync(st->env, 1);

	if (rc)
		smq_err("store %s: flushing to disk failed: %s", st->path, smq_store_strerror(rc));
}

/* The end of a commit attempt, holding mu: what the loop learns next. */
static void commit_done(struct smq_store *st, struct batch *list, int rc, uint64_t *fail_log_ms)
{
	uint64_t last = 0;

	for (struct batch *b = list; b; b = b->next)
		last = b->epoch;
	if (!rc) {
		if (st->full)
			smq_notice("store %s: writing again", st->path);
		st->done = last;
		st->commits++;
		st->full = false;
		while (list) {
			struct batch *b = list;

			list = b->next;
			st->q_bytes -= b->len;
			batch_free(b);
		}
		return;
	}
	if (smq_log_due(fail_log_ms, mono_ms(), 60000))
		smq_err("store %s: cannot write: %s; QoS 1/2 publishes are refused until it can "
			"(retrying every second)", st->path, smq_store_strerror(rc));
	st->failed = last;
	st->full = true;
	/* back at the head, in order, before anything queued meanwhile */
	for (struct batch *b = list; b; b = b->next)
		if (!b->next) {
			b->next = st->q_head;
			if (!st->q_head)
				st->q_tail = b;
			st->q_head = list;
			break;
		}
}

static void *writer_main(void *arg)
{
	struct smq_store *st = arg;
	uint8_t *kbuf = malloc(st->keymax);
	uint64_t next_sync = 0, fail_log_ms = 0, retry_at = 0;
	bool dirty = false;

	if (!kbuf)
		abort();	/* 511 bytes at start-up */
	pthread_mutex_lock(&st->mu);
	for (;;) {
		struct batch *list;
		int rc;

		if (st->periodic && st->autosave_s && dirty && !next_sync)
			next_sync = mono_ms() + (uint64_t)st->autosave_s * 1000u;
		wait_work(st, retry_at ? retry_at : next_sync);
		list = st->q_head;
		st->q_head = st->q_tail = NULL;
		pthread_mutex_unlock(&st->mu);
		rc = list ? apply(st, list, kbuf) : 0;
		dirty |= list && !rc;
		pthread_mutex_lock(&st->mu);
		if (list)
			commit_done(st, list, rc, &fail_log_ms);
		retry_at = st->full ? mono_ms() + RETRY_MS : 0;
		if (st->periodic && dirty &&
		    (st->sync_now || st->stop || (next_sync && mono_ms() >= next_sync))) {
			pthread_mutex_unlock(&st->mu);
			flush(st);
			pthread_mutex_lock(&st->mu);
			dirty = false;
			next_sync = 0;
		}
		st->sync_now = false;
		if (list)
			eventfd_write(st->efd, 1);
		if (st->stop && (!st->q_head || st->full))
			break;
	}
	pthread_mutex_unlock(&st->mu);
	free(kbuf);
	return NULL;
}

int smq_store_start(struct smq_store *st)
{
	int ret;

	st->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (st->efd < 0)
		return -errno;
	ret = -pthread_create(&st->thread, NULL, writer_main, st);
	if (ret) {
		close(st->efd);
		st->efd = -1;
		return ret;
	}
	st->started = true;
	return st->efd;
}

void smq_store_stop(struct smq_store *st)
{
	if (!st->started)
		return;
	if (st->open_used || st->needed)
		st->open_epoch++;
	smq_store_submit(st, false);	/* whatever waits in it */
	smq_store_batch_free(st);
	pthread_mutex_lock(&st->mu);
	st->stop = true;
	pthread_cond_signal(&st->cv);
	pthread_mutex_unlock(&st->mu);
	pthread_join(st->thread, NULL);
	st->started = false;
	if (st->q_head) {
		smq_err("store %s: changes of the last moments could not be written", st->path);
		while (st->q_head) {
			struct batch *b = st->q_head;

			st->q_head = b->next;
			batch_free(b);
		}
	}
	close(st->efd);
	st->efd = -1;
}

void smq_stores_flush(struct smq_stores *ss)
{
	for (unsigned i = 0; ss && i < ss->n; i++) {
		struct smq_store *st = &ss->st[i];

		pthread_mutex_lock(&st->mu);
		st->sync_now = true;
		pthread_cond_signal(&st->cv);
		pthread_mutex_unlock(&st->mu);
	}
}

/* ---- restore ------------------------------------------------------------------ */

int smq_store_restore(struct smq_store *st, struct smq_engine *e, uint64_t now_ms, char *err,
		      size_t cap)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	char why[256];
	uint64_t n = 0;
	int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);

	if (rc)
		goto out_mdb;
	rc = mdb_cursor_open(txn, st->dbi, &cur);
	if (rc) {
		mdb_txn_abort(txn);
		goto out_mdb;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); !rc;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct smq_str key, val;
		int ret = smq_store_unmap(k, v, &key, &val);

		n++;
		why[0] = '\0';
		if (ret)
			snprintf(why, sizeof(why), "a record's framing is damaged");
		else
			ret = smq_engine_restore(e, key, val, now_ms, why, sizeof(why));
		if (ret) {
			mdb_cursor_close(cur);
			mdb_txn_abort(txn);
			snprintf(err, cap, "store %s: record %llu: %s", st->path,
				 (unsigned long long)n, why[0] ? why : strerror(-ret));
			return ret;
		}
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (rc == MDB_NOTFOUND)
		return 0;
out_mdb:
	snprintf(err, cap, "store %s: cannot read it: %s", st->path, smq_store_strerror(rc));
	return -EIO;
}
