/* test_store.c - a shard's open store batch (shard/storebatch.c) against a
 * real LMDB environment in a temporary directory: which records reach the
 * disk, which cancel out, and when epochs are done.
 */
#include <criterion/criterion.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/engine.h"
#include "core/log.h"
#include "shard/store.h"
#include "shard/store_int.h"

static char dir[64];
static struct smq_config cfg;
static struct smq_stores *ss;
static struct smq_store *st;
static int efd;

static void setup(void)
{
	char err[512];

	smq_log_set_level(SMQ_LOG_ERROR);
	snprintf(dir, sizeof(dir), "/tmp/smq-test-store-XXXXXX");
	cr_assert(mkdtemp(dir));
	smq_config_defaults(&cfg);
	cfg.persistence = true;
	snprintf(cfg.persistence_location, sizeof(cfg.persistence_location), "%s", dir);
	ss = smq_stores_open(&cfg, 1, err, sizeof(err));
	cr_assert(ss, "%s", err);
	st = smq_stores_get(ss, 0);
	efd = smq_store_start(st);
	cr_assert(efd >= 0);
}

static void teardown(void)
{
	char cmd[128];

	smq_store_stop(st);
	smq_stores_close(ss);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert(system(cmd) == 0);
}

TestSuite(store, .init = setup, .fini = teardown, .timeout = 20);

static void rec(uint8_t op, uint8_t flags, const char *key, const char *val)
{
	struct smq_store_rec r = { .op = op, .flags = flags,
				   .key = { (const uint8_t *)key, (uint32_t)strlen(key) } };

	if (val) {
		r.val[0] = (struct smq_str){ (const uint8_t *)val, (uint32_t)strlen(val) };
		r.nval = 1;
	}
	smq_store_add(st, &r);
}

#define PAIR_NEW (SMQ_STORE_F_PAIR | SMQ_STORE_F_NEW | SMQ_STORE_F_LAZY)
#define PAIR_DEL (SMQ_STORE_F_PAIR | SMQ_STORE_F_LAZY)

static uint64_t done(void)
{
	uint64_t d, f;
	bool full;

	smq_store_poll(st, &d, &f, &full);
	return d;
}

/* Turn ends until @epoch is done (the writer answers through efd). */
static void wait_done(uint64_t epoch, uint64_t *now)
{
	for (int i = 0; i < 2000 && done() < epoch; i++) {
		struct pollfd p = { efd, POLLIN, 0 };
		int64_t wait;
		uint64_t ev;

		smq_store_turn_end(st, *now, &wait);
		if (poll(&p, 1, 5) == 1)
			cr_assert(read(efd, &ev, sizeof(ev)) == sizeof(ev));
		*now += 5;
	}
	cr_assert_geq(done(), epoch, "epoch %llu never done", (unsigned long long)epoch);
}

/* The committed value of @key, or NULL (a static buffer). */
static const char *stored(const char *key)
{
	static char out[256];
	MDB_txn *txn;
	MDB_val k = { strlen(key), (void *)key }, v;
	struct smq_str ek, ev;
	int rc;

	cr_assert_eq(mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn), 0);
	rc = mdb_get(txn, st->dbi, &k, &v);
	if (rc == MDB_NOTFOUND) {
		mdb_txn_abort(txn);
		return NULL;
	}
	cr_assert_eq(rc, 0);
	cr_assert_eq(smq_store_unmap(k, v, &ek, &ev), 0);
	snprintf(out, sizeof(out), "%.*s", (int)ev.len, (const char *)ev.p);
	mdb_txn_abort(txn);
	return out;
}

Test(store, a_pair_that_meets_is_never_written_and_its_epoch_ends_without_a_commit)
{
	uint64_t now = 1000, e = smq_store_epoch(st);
	int64_t wait;

	rec(SMQ_STORE_PUT, PAIR_NEW, "q1", "m");
	smq_store_need(st);
	cr_assert_not(smq_store_turn_end(st, now, &wait), "a lazy record waits for its pair");
	cr_assert(wait > 0 && wait <= 10, "it asks for a turn when its wait ends: %lld",
		  (long long)wait);
	cr_assert_lt(done(), e);
	rec(SMQ_STORE_DEL, PAIR_DEL, "q1", NULL);
	cr_assert(smq_store_turn_end(st, now + 1, &wait), "the epoch ends on the loop");
	cr_assert_geq(done(), e);
	cr_assert_eq(smq_store_cancelled(st), 1);
	cr_assert_eq(smq_store_backlog(st), 0);
	/* a later urgent record is written alone: q1 never appears */
	rec(SMQ_STORE_PUT, 0, "meta", "x");
	wait_done(smq_store_epoch(st), &now);
	cr_assert_str_eq(stored("meta"), "x");
	cr_assert_null(stored("q1"));
	cr_assert_eq(smq_store_commits(st), 1);
}

Test(store, a_delete_of_a_written_record_is_written)
{
	uint64_t now = 1000;

	rec(SMQ_STORE_PUT, SMQ_STORE_F_PAIR | SMQ_STORE_F_NEW, "q2", "v1");	/* not lazy */
	wait_done(smq_store_epoch(st), &now);
	cr_assert_str_eq(stored("q2"), "v1");
	/* an update and its delete meet in the batch: the update goes, the
	 * delete stays, because the key is on disk */
	rec(SMQ_STORE_PUT, SMQ_STORE_F_PAIR | SMQ_STORE_F_LAZY, "q2", "v2");
	rec(SMQ_STORE_DEL, PAIR_DEL, "q2", NULL);
	wait_done(smq_store_epoch(st), &now);
	cr_assert_null(stored("q2"));
	cr_assert_eq(smq_store_cancelled(st), 1);
}

Test(store, an_update_of_a_new_record_stays_new)
{
	uint64_t now = 1000;
	int64_t wait;

	rec(SMQ_STORE_PUT, PAIR_NEW, "q3", "a");
	rec(SMQ_STORE_PUT, PAIR_DEL, "q3", "b");	/* its in-flight state */
	rec(SMQ_STORE_DEL, PAIR_DEL, "q3", NULL);
	smq_store_need(st);
	cr_assert(smq_store_turn_end(st, now, &wait));
	cr_assert_eq(smq_store_cancelled(st), 2);
	cr_assert_eq(smq_store_backlog(st), 0, "nothing left to write");
}

Test(store, an_unpaired_lazy_record_is_written_after_its_wait)
{
	uint64_t now = 1000, e;
	int64_t wait;

	rec(SMQ_STORE_PUT, PAIR_NEW, "q4", "slow");
	e = smq_store_epoch(st);
	smq_store_turn_end(st, now, &wait);
	cr_assert_gt(wait, 0);
	cr_assert_lt(done(), e);
	wait_done(e, &now);	/* the clock passes the wait: it is written */
	cr_assert_str_eq(stored("q4"), "slow");
	/* and its delete, no longer paired, is written too */
	rec(SMQ_STORE_DEL, PAIR_DEL, "q4", NULL);
	wait_done(smq_store_epoch(st), &now);
	cr_assert_null(stored("q4"));
}

Test(store, epochs_end_in_order_behind_a_waiting_record)
{
	uint64_t now = 1000, e1, e2;
	int64_t wait;

	rec(SMQ_STORE_PUT, PAIR_NEW, "a", "1");
	e1 = smq_store_epoch(st);
	smq_store_turn_end(st, now, &wait);
	rec(SMQ_STORE_PUT, PAIR_NEW, "b", "2");
	e2 = smq_store_epoch(st);
	smq_store_turn_end(st, now, &wait);
	rec(SMQ_STORE_DEL, PAIR_DEL, "b", NULL);	/* the later one pairs first */
	smq_store_turn_end(st, now, &wait);
	cr_assert_lt(done(), e1, "nothing is done while the first waits");
	rec(SMQ_STORE_DEL, PAIR_DEL, "a", NULL);
	cr_assert(smq_store_turn_end(st, now, &wait));
	cr_assert_geq(done(), e2, "both done once the first paired");
	cr_assert_eq(smq_store_commits(st), 0);
}

Test(store, an_urgent_record_takes_the_waiting_ones_along)
{
	uint64_t now = 1000;
	int64_t wait;

	rec(SMQ_STORE_PUT, PAIR_NEW, "lazy", "l");
	smq_store_turn_end(st, now, &wait);
	rec(SMQ_STORE_PUT, 0, "sub", "s");
	wait_done(smq_store_epoch(st) , &now);
	cr_assert_str_eq(stored("sub"), "s");
	cr_assert_str_eq(stored("lazy"), "l");
	cr_assert_eq(smq_store_commits(st), 1, "one commit for both");
}

Test(store, many_pairs_compact_and_only_the_unpaired_are_written)
{
	uint64_t now = 1000;
	int64_t wait;
	char key[32], val[200];

	memset(val, 'v', sizeof(val) - 1);
	val[sizeof(val) - 1] = '\0';
	rec(SMQ_STORE_PUT, PAIR_NEW, "hold", "h");	/* keeps the batch from emptying */
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		rec(SMQ_STORE_PUT, PAIR_NEW, key, val);
		if (i % 100 != 7)
			rec(SMQ_STORE_DEL, PAIR_DEL, key, NULL);
		if (i % 50 == 0)
			smq_store_turn_end(st, now, &wait);
	}
	cr_assert_lt(smq_store_backlog(st), 60 * 230, "live bytes only: %zu",
		     smq_store_backlog(st));
	wait_done(smq_store_epoch(st), &now);
	cr_assert_str_eq(stored("k7"), val);
	cr_assert_str_eq(stored("k4907"), val);
	cr_assert_null(stored("k8"));
	cr_assert_null(stored("k4999"));
	cr_assert_eq(smq_store_cancelled(st), 5000 - 50);
}
