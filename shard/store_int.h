/* store_int.h - what store.c (runtime: batches, the writer thread, restore)
 * and storeopen.c (start-up: lock, open, move, merge) share. Not for other
 * files.
 *
 * Stored form of a record. LMDB keys are at most mdb_env_get_maxkeysize()
 * bytes (511 in Debian's build); the engine's keys can be longer (long
 * filters and topics), so every value starts with a tag byte:
 *
 *   0 | value                        the key is stored as is
 *   1 | u32 key_len | key | value    the stored key is the key's first
 *                                    (max - 32) bytes and its SHA-256
 *
 * Prefix deletions and the sort order of short prefixes (what the engine
 * relies on) are the same either way.
 */
#ifndef SMQ_STORE_INT_H
#define SMQ_STORE_INT_H

#include <lmdb.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/codec.h"
#include "shard/store.h"

#define STORE_DIGEST 32u

/* A batch of records: [op u8][klen u32][vlen u32][key][value] ... */
struct batch {
	struct batch *next;
	uint64_t epoch;
	uint8_t *buf;
	size_t len, cap;
};

struct smq_store {
	/* read-only once started */
	unsigned idx;
	char path[PATH_MAX];		/* the environment's directory */
	MDB_env *env;
	MDB_dbi dbi;
	unsigned keymax;		/* mdb_env_get_maxkeysize() */
	bool periodic;			/* persistence_sync periodic */
	int autosave_s;

	/* shard thread */
	struct batch *open;
	uint64_t open_epoch;		/* epoch of @open */
	uint64_t submitted;		/* last epoch handed to the writer */
	uint64_t seen_done;		/* last done epoch the loop saw */
	bool needed;
	uint64_t oom_lost, oom_log_ms;	/* records lost to out of memory; log rate */
	int efd;			/* writer -> loop; -1 before start */

	/* shared, under mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct batch *q_head, *q_tail;	/* submitted, not yet committed */
	size_t q_bytes;			/* their records' bytes */
	uint64_t done;			/* epochs committed */
	uint64_t failed;		/* epochs whose commit failed (retried) */
	bool full;			/* commits fail now */
	bool stop, sync_now;
	bool started;
	pthread_t thread;
};

struct smq_stores {
	char dir[PATH_MAX];
	int lock_fd;
	unsigned n;
	struct smq_store *st;		/* [n] */
};

/* A record's stored key into @out (keymax bytes at most); its length. */
size_t smq_store_map_key(const struct smq_store *st, const uint8_t *key, size_t klen,
			 uint8_t *out);

/* Split a stored (key, value) into the engine's key and value. 0 or
 * -EINVAL (a damaged tag). */
int smq_store_unmap(MDB_val k, MDB_val v, struct smq_str *key, struct smq_str *val);

/* Open one environment at @path (created if absent) for shard @idx. 0 or
 * -errno with a message in @err. */
int smq_store_env_open(struct smq_store *st, unsigned idx, const char *path, bool periodic,
		       char *err, size_t cap);
void smq_store_env_close(struct smq_store *st);

/* "MDB_MAP_FULL..." / strerror, for messages. */
const char *smq_store_strerror(int rc);

#endif
