/* storeopen.c - opening the store at start-up: the lock, one environment
 * per shard, and putting every record where this run's shards expect it.
 *
 * Layout: persistence_location/persistence_file/ holds "lock" (flock'd
 * while a broker uses the store; it names that broker's pid) and
 * shard-0 ... shard-N-1, one LMDB environment each.
 *
 * Shard count changes: a session's records must live in its home shard's
 * environment, and the home depends on the shard count. When the count
 * differs from the last run (environments shard-K for K >= N exist, or
 * fewer than N do), every session group ('C' | uid ...) whose client id's
 * home is another shard is copied there and then deleted here (copy first:
 * a crash in between leaves a duplicate, found and refused at the next
 * start, never a loss), and environments beyond N are emptied into shard-0
 * and removed.
 *
 * Retained messages: each shard writes the retained updates of its own
 * clients, so one topic may be stored in several environments. Each copy
 * carries the global sequence number of its update; at start a merge walk
 * over all environments (they are sorted by key, so this is a k-way merge
 * without a table) keeps the newest copy of each topic and deletes the
 * rest, tombstones included.
 *
 * Refusals: a locked store, an environment LMDB cannot open (damaged), a
 * version record that is not ours or is newer. The store is not modified
 * before these checks pass for every environment.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/engine.h"
#include "core/log.h"
#include "core/persist.h"
#include "shard/store.h"
#include "shard/store_int.h"

#define MAP_START (16ull << 30)	/* address space, not memory or disk */

/* ---- environments ------------------------------------------------------------ */

int smq_store_env_open(struct smq_store *st, unsigned idx, const char *path, bool periodic,
		       char *err, size_t cap)
{
	MDB_txn *txn;
	int rc;

	st->idx = idx;
	st->efd = -1;
	st->open_epoch = 1;
	st->periodic = periodic;
	snprintf(st->path, sizeof(st->path), "%s", path);
	pthread_mutex_init(&st->mu, NULL);
	{
		pthread_condattr_t a;

		pthread_condattr_init(&a);
		pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
		pthread_cond_init(&st->cv, &a);
		pthread_condattr_destroy(&a);
	}
	if (mkdir(path, 0700) && errno != EEXIST) {
		snprintf(err, cap, "store %s: cannot create it: %s", path, strerror(errno));
		return -errno;
	}
	rc = mdb_env_create(&st->env);
	if (!rc)
		rc = mdb_env_set_mapsize(st->env, MAP_START);
	if (!rc)
		rc = mdb_env_open(st->env, path, MDB_NOTLS | (periodic ? MDB_NOSYNC : 0), 0600);
	if (!rc)
		rc = mdb_txn_begin(st->env, NULL, 0, &txn);
	if (!rc) {
		rc = mdb_dbi_open(txn, NULL, 0, &st->dbi);
		rc = rc ? (mdb_txn_abort(txn), rc) : mdb_txn_commit(txn);
	}
	if (rc) {
		snprintf(err, cap, "store %s: cannot open it: %s%s", path, smq_store_strerror(rc),
			 rc == MDB_INVALID || rc == MDB_CORRUPTED || rc == MDB_VERSION_MISMATCH
				 ? " (damaged, or not a shardmq store: move it away to start "
				   "afresh)" : "");
		if (st->env)
			mdb_env_close(st->env);
		st->env = NULL;
		return -EIO;
	}
	st->keymax = (unsigned)mdb_env_get_maxkeysize(st->env);
	return 0;
}

void smq_store_env_close(struct smq_store *st)
{
	if (!st->env)
		return;
	mdb_env_sync(st->env, 1);
	mdb_env_close(st->env);
	st->env = NULL;
	pthread_mutex_destroy(&st->mu);
	pthread_cond_destroy(&st->cv);
}

/* The version record: present and ours, or absent in an empty store
 * (written then). */
static int check_version(struct smq_store *st, char *err, size_t cap)
{
	struct smq_str vk = smq_persist_version_key();
	MDB_val k = { vk.len, (void *)vk.p }, v;
	MDB_txn *txn;
	MDB_stat stat;
	uint8_t ver[9] = { 0 };
	int rc = mdb_txn_begin(st->env, NULL, 0, &txn), ret;

	if (rc)
		goto out_mdb;
	rc = mdb_get(txn, st->dbi, &k, &v);
	if (!rc) {
		struct smq_str key, val;

		ret = smq_store_unmap(k, v, &key, &val);
		if (!ret)
			ret = smq_persist_version_check(val);
		mdb_txn_abort(txn);
		if (ret == -EPROTONOSUPPORT)
			snprintf(err, cap, "store %s: written by a newer shardmq (format above %u): "
				 "refusing to read it", st->path, SMQ_PERSIST_FORMAT);
		else if (ret)
			snprintf(err, cap, "store %s: its version record is damaged", st->path);
		return ret ? -EINVAL : 0;
	}
	if (rc != MDB_NOTFOUND || (rc = mdb_stat(txn, st->dbi, &stat)))
		goto out_abort;
	if (stat.ms_entries) {
		mdb_txn_abort(txn);
		snprintf(err, cap, "store %s: has records but no version record: damaged, or not "
			 "a shardmq store", st->path);
		return -EINVAL;
	}
	smq_persist_version_value(ver + 1);
	v = (MDB_val){ 9, ver };
	rc = mdb_put(txn, st->dbi, &k, &v, 0);
	if (rc)
		goto out_abort;
	rc = mdb_txn_commit(txn);
	if (rc)
		goto out_mdb;
	return 0;
out_abort:
	mdb_txn_abort(txn);
out_mdb:
	snprintf(err, cap, "store %s: %s", st->path, smq_store_strerror(rc));
	return -EIO;
}

/* ---- the lock ------------------------------------------------------------------ */

static int lock_dir(struct smq_stores *ss, char *err, size_t cap)
{
	char path[PATH_MAX + 8], pid[32] = "";
	ssize_t n;

	snprintf(path, sizeof(path), "%s/lock", ss->dir);
	ss->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (ss->lock_fd < 0) {
		snprintf(err, cap, "store %s: cannot open its lock: %s", ss->dir, strerror(errno));
		return -errno;
	}
	if (flock(ss->lock_fd, LOCK_EX | LOCK_NB)) {
		int e = errno;

		n = pread(ss->lock_fd, pid, sizeof(pid) - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		snprintf(err, cap, "store %s: %s%s%s%s", ss->dir,
			 e == EWOULDBLOCK ? "in use by another running broker" : strerror(e),
			 pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
		close(ss->lock_fd);
		ss->lock_fd = -1;
		return -EBUSY;
	}
	n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(ss->lock_fd, 0) || pwrite(ss->lock_fd, pid, (size_t)n, 0) != n)
		smq_warn("store %s: cannot write the pid into its lock file", ss->dir);
	return 0;
}

/* The highest shard-K directory + 1 (0: none). */
static unsigned count_envs(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	unsigned n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		unsigned k;
		char tail;

		if (sscanf(de->d_name, "shard-%u%c", &k, &tail) == 1 && k < 4096 && k + 1 > n)
			n = k + 1;
	}
	closedir(d);
	return n;
}

/* ---- moving records -------------------------------------------------------------- */

/* Copy every record of @from whose key starts with @pre (n bytes) into
 * @to's transaction, then delete them from @from's. Values move as stored
 * (the tag keeps a long key's full form). */
static int move_prefix(struct smq_store *from, MDB_txn *ft, struct smq_store *to, MDB_txn *tt,
		       const uint8_t *pre, size_t n)
{
	MDB_cursor *cur;
	MDB_val k = { n, (void *)pre }, v;
	int rc = mdb_cursor_open(ft, from->dbi, &cur);

	if (rc)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     !rc && k.mv_size >= n && !memcmp(k.mv_data, pre, n);
	     rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE)) {
		rc = mdb_put(tt, to->dbi, &k, &v, 0);
		if (!rc)
			rc = mdb_cursor_del(cur, 0);
		if (rc)
			break;
		k = (MDB_val){ n, (void *)pre };
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND || !rc || memcmp(k.mv_data, pre, n) ? 0 : rc;
}

/* The first session metadata key at or after @after (9 + 1 bytes) in @st. */
static int next_meta(struct smq_store *st, MDB_txn *txn, uint8_t key[10], struct smq_str *id,
		     uint8_t *idbuf)
{
	MDB_cursor *cur;
	MDB_val k = { 10, key }, v;
	int rc = mdb_cursor_open(txn, st->dbi, &cur);

	if (rc)
		return rc;
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); !rc;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct smq_str kk, vv;

		if (((uint8_t *)k.mv_data)[0] != SMQ_PK_SESSION) {
			rc = MDB_NOTFOUND;
			break;
		}
		if (smq_store_unmap(k, v, &kk, &vv) || !smq_persist_key_is_meta(kk))
			continue;
		if (smq_persist_meta_client(vv, id)) {
			rc = MDB_CORRUPTED;
			break;
		}
		memcpy(key, kk.p, 10);
		memcpy(idbuf, id->p, id->len);
		id->p = idbuf;
		break;
	}
	mdb_cursor_close(cur);
	return rc;
}

/* Move the sessions of store @i whose home is not @i (or every session
 * when @i is beyond the new count). */
static int move_sessions(struct smq_stores *ss, unsigned i, unsigned nshards, char *err,
			 size_t cap)
{
	struct smq_store *from = &ss->st[i];
	uint8_t key[10] = { SMQ_PK_SESSION }, *idbuf = malloc(65536);
	struct smq_str id;
	unsigned moved = 0;
	int rc = 0;

	if (!idbuf)
		return -ENOMEM;
	for (;;) {
		MDB_txn *rt, *ft = NULL, *tt = NULL;
		unsigned home;

		rc = mdb_txn_begin(from->env, NULL, MDB_RDONLY, &rt);
		if (!rc) {
			rc = next_meta(from, rt, key, &id, idbuf);
			mdb_txn_abort(rt);
		}
		if (rc)
			break;
		home = smq_engine_home_shard(id, nshards);
		if (home == i) {
			key[9] = SMQ_PS_META + 1;	/* past this session's metadata */
			continue;
		}
		/* write transactions in store order, as everywhere at start */
		if (home < i)
			rc = mdb_txn_begin(ss->st[home].env, NULL, 0, &tt);
		if (!rc)
			rc = mdb_txn_begin(from->env, NULL, 0, &ft);
		if (!rc && home > i)
			rc = mdb_txn_begin(ss->st[home].env, NULL, 0, &tt);
		if (rc) {
			if (tt)
				mdb_txn_abort(tt);
			break;
		}
		rc = move_prefix(from, ft, &ss->st[home], tt, key, 9);
		/* the copy is durable before the original goes */
		rc = rc ? (mdb_txn_abort(tt), rc) : mdb_txn_commit(tt);
		rc = rc ? (mdb_txn_abort(ft), rc) : mdb_txn_commit(ft);
		if (rc)
			break;
		moved++;
		key[9] = 0;
	}
	free(idbuf);
	if (rc == MDB_NOTFOUND) {
		if (moved)
			smq_info("store %s: %u sessions moved to their home shard", from->path, moved);
		return 0;
	}
	snprintf(err, cap, "store %s: moving sessions to their home shard failed: %s", from->path,
		 smq_store_strerror(rc));
	return -EIO;
}

/* Everything else of an environment beyond the new count (retained
 * messages) goes to shard-0. */
static int move_rest(struct smq_stores *ss, unsigned i, char *err, size_t cap)
{
	static const uint8_t r[1] = { SMQ_PK_RETAINED };
	MDB_txn *ft, *tt;
	int rc = mdb_txn_begin(ss->st[0].env, NULL, 0, &tt);	/* store order */

	if (!rc && (rc = mdb_txn_begin(ss->st[i].env, NULL, 0, &ft)))
		mdb_txn_abort(tt);
	if (!rc) {
		rc = move_prefix(&ss->st[i], ft, &ss->st[0], tt, r, 1);
		rc = rc ? (mdb_txn_abort(tt), rc) : mdb_txn_commit(tt);
		rc = rc ? (mdb_txn_abort(ft), rc) : mdb_txn_commit(ft);
	}
	if (!rc)
		return 0;
	snprintf(err, cap, "store %s: moving its retained messages failed: %s", ss->st[i].path,
		 smq_store_strerror(rc));
	return -EIO;
}

static void remove_env(const struct smq_store *st)
{
	char f[PATH_MAX + 16];

	snprintf(f, sizeof(f), "%s/data.mdb", st->path);
	unlink(f);
	snprintf(f, sizeof(f), "%s/lock.mdb", st->path);
	unlink(f);
	if (rmdir(st->path))
		smq_warn("store %s: cannot remove it: %s", st->path, strerror(errno));
}

/* ---- merging retained messages ------------------------------------------------------ */

struct rcur {
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	bool live;
};

static int key_cmp(const MDB_val *a, const MDB_val *b)
{
	size_t n = a->mv_size < b->mv_size ? a->mv_size : b->mv_size;
	int c = memcmp(a->mv_data, b->mv_data, n);

	return c ? c : (a->mv_size > b->mv_size) - (a->mv_size < b->mv_size);
}

static void rcur_step(struct rcur *c, MDB_cursor_op op)
{
	c->live = !mdb_cursor_get(c->cur, &c->k, &c->v, op) &&
		  ((uint8_t *)c->k.mv_data)[0] == SMQ_PK_RETAINED;
}

/* One topic's copies (the cursors at key @k): delete all but the newest,
 * and the newest too when it is a tombstone. */
static int merge_one(struct rcur *c, unsigned n, const MDB_val *k)
{
	uint64_t best = 0;
	int win = -1, rc = 0;
	bool have = false;

	for (unsigned i = 0; i < n; i++) {
		struct smq_str key, val;
		uint64_t seq;
		bool tomb;

		if (!c[i].live || key_cmp(&c[i].k, k))
			continue;
		if (smq_store_unmap(c[i].k, c[i].v, &key, &val) ||
		    smq_persist_retained_seq(val, &seq, &tomb))
			return MDB_CORRUPTED;
		if (!have || seq > best) {
			have = true;
			best = seq;
			win = tomb ? -1 : (int)i;	/* a tombstone goes too */
		}
	}
	for (unsigned i = 0; !rc && i < n; i++) {
		if (!c[i].live || key_cmp(&c[i].k, k))
			continue;
		if ((int)i != win)
			rc = mdb_cursor_del(c[i].cur, 0);
		/* after a delete, MDB_NEXT gives the record that followed */
		if (!rc)
			rcur_step(&c[i], MDB_NEXT);
	}
	return rc;
}

static int merge_retained(struct smq_stores *ss, unsigned n, char *err, size_t cap)
{
	struct rcur *c = calloc(n, sizeof(*c));
	static const uint8_t r[1] = { SMQ_PK_RETAINED };
	int rc = 0;

	if (!c)
		return -ENOMEM;
	for (unsigned i = 0; !rc && i < n; i++) {
		rc = mdb_txn_begin(ss->st[i].env, NULL, 0, &c[i].txn);
		if (!rc && (rc = mdb_cursor_open(c[i].txn, ss->st[i].dbi, &c[i].cur)))
			mdb_txn_abort(c[i].txn);
		if (rc) {
			c[i].txn = NULL;
			break;
		}
		c[i].k = (MDB_val){ 1, (void *)r };
		rcur_step(&c[i], MDB_SET_RANGE);
	}
	while (!rc) {
		MDB_val *min = NULL;
		uint8_t kcopy[512];
		MDB_val k;

		for (unsigned i = 0; i < n; i++)
			if (c[i].live && (!min || key_cmp(&c[i].k, min) < 0))
				min = &c[i].k;
		if (!min)
			break;
		memcpy(kcopy, min->mv_data, min->mv_size);	/* at most keymax */
		k = (MDB_val){ min->mv_size, kcopy };
		rc = merge_one(c, n, &k);
	}
	for (unsigned i = 0; i < n; i++) {
		if (!c[i].txn)
			continue;
		mdb_cursor_close(c[i].cur);
		if (rc)
			mdb_txn_abort(c[i].txn);
		else
			rc = mdb_txn_commit(c[i].txn);
	}
	free(c);
	if (!rc)
		return 0;
	snprintf(err, cap, "store %s: merging retained messages failed: %s", ss->dir,
		 smq_store_strerror(rc));
	return -EIO;
}

/* ---- open and close ------------------------------------------------------------------ */

static int make_dirs(struct smq_stores *ss, const struct smq_config *cfg, char *err, size_t cap)
{
	const char *loc = cfg->persistence_location[0] ? cfg->persistence_location : ".";
	struct stat sb;

	if (stat(loc, &sb) || !S_ISDIR(sb.st_mode)) {
		snprintf(err, cap, "persistence_location %s: %s", loc,
			 errno && !S_ISDIR(sb.st_mode) ? strerror(errno) : "not a directory");
		return -ENOTDIR;
	}
	if ((size_t)snprintf(ss->dir, sizeof(ss->dir), "%s/%s", loc, cfg->persistence_file) >=
	    sizeof(ss->dir) - 16) {
		snprintf(err, cap, "persistence_location %s: too long", loc);
		return -ENAMETOOLONG;
	}
	if (mkdir(ss->dir, 0700) && errno != EEXIST) {
		snprintf(err, cap, "store %s: cannot create it: %s", ss->dir, strerror(errno));
		return -errno;
	}
	return 0;
}

struct smq_stores *smq_stores_open(const struct smq_config *cfg, unsigned nshards, char *err,
				   size_t cap)
{
	struct smq_stores *ss = calloc(1, sizeof(*ss));
	unsigned old, n;
	int ret;

	if (!ss) {
		snprintf(err, cap, "out of memory opening the store");
		return NULL;
	}
	ss->lock_fd = -1;
	ret = make_dirs(ss, cfg, err, cap);
	if (!ret)
		ret = lock_dir(ss, err, cap);
	if (ret)
		goto out_free;
	old = count_envs(ss->dir);
	n = old > nshards ? old : nshards;
	ss->st = calloc(n, sizeof(*ss->st));
	if (!ss->st) {
		snprintf(err, cap, "out of memory opening the store");
		goto out_free;
	}
	for (ss->n = 0; ss->n < n; ss->n++) {
		char path[PATH_MAX + 16];
		struct smq_store *st = &ss->st[ss->n];

		if ((size_t)snprintf(path, sizeof(path), "%s/shard-%u", ss->dir, ss->n) >=
		    sizeof(path))
			goto out_free;	/* cannot be: make_dirs left room */
		ret = smq_store_env_open(st, ss->n, path, cfg->persistence_sync == SMQ_SYNC_PERIODIC,
					 err, cap);
		if (!ret)
			ret = check_version(st, err, cap);
		if (ret) {
			if (st->env)
				ss->n++;
			goto out_free;
		}
		st->autosave_s = cfg->autosave_interval;
	}
	if (old && old != nshards) {
		smq_notice("store %s: written with %u shards, now %u: moving sessions to their "
			   "home shard", ss->dir, old, nshards);
		for (unsigned i = 0; i < n; i++)
			if ((ret = move_sessions(ss, i, nshards, err, cap)))
				goto out_free;
		for (unsigned i = nshards; i < n; i++)
			if ((ret = move_rest(ss, i, err, cap)))
				goto out_free;
		for (; ss->n > nshards; ss->n--) {
			smq_store_env_close(&ss->st[ss->n - 1]);
			remove_env(&ss->st[ss->n - 1]);
		}
	}
	if (merge_retained(ss, ss->n, err, cap))
		goto out_free;
	return ss;
out_free:
	smq_stores_close(ss);
	return NULL;
}

struct smq_store *smq_stores_get(struct smq_stores *ss, unsigned i)
{
	return i < ss->n ? &ss->st[i] : NULL;
}

const char *smq_stores_path(const struct smq_stores *ss)
{
	return ss->dir;
}

void smq_stores_close(struct smq_stores *ss)
{
	if (!ss)
		return;
	for (unsigned i = 0; ss->st && i < ss->n; i++) {
		smq_store_batch_free(&ss->st[i]);	/* a store never started */
		smq_store_env_close(&ss->st[i]);
	}
	free(ss->st);
	if (ss->lock_fd >= 0)
		close(ss->lock_fd);	/* releases the flock */
	free(ss);
}
