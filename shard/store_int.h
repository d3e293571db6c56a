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

/* A batch of records, each framed as
 *   op u8 | flags u8 | klen u32 | vlen u32 | key | value
 * (op 0: cancelled, skipped; flags: enum smq_store_flag). */
#define REC_HDR 10u

struct batch {
	struct batch *next;
	uint64_t epoch;			/* the last epoch it holds */
	uint8_t *buf;
	size_t len, cap;
};

/* The open batch's index of pairable PUTs, by key (storebatch.c). */
struct pair_slot {
	uint32_t off;			/* record offset + 1; 0 free, UINT32_MAX removed */
	uint32_t hash;
	uint8_t flags;
	uint64_t epoch;
};

/* An epoch of the open batch that still has live records. */
struct ep_live {
	uint64_t epoch;
	uint64_t t_ms;			/* the end of its turn (the loop's clock) */
	uint32_t live;
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

	/* shard thread: the open batch (storebatch.c) */
	struct batch *open;
	uint64_t open_epoch;		/* records added now belong to it */
	bool open_used, needed;		/* it got records / something waits for it */
	struct pair_slot *slot;		/* [nslot], a power of two */
	size_t nslot, slot_used, slot_live;
	struct ep_live *ep;		/* ring, sorted by epoch */
	size_t ep_h, ep_n, ep_cap;
	uint32_t urgent;		/* live records that must not wait */
	size_t dead;			/* bytes of cancelled records in @open */
	uint64_t cancelled;		/* records cancelled so far */
	uint64_t submitted;		/* last epoch handed to the writer (or done here) */
	uint64_t seen_done;		/* last done epoch the loop saw */
	bool seen_full;
	uint64_t seen_commits;		/* commits, as of the last poll */
	uint64_t oom_lost, oom_log_ms;	/* records lost to out of memory; log rate */
	int efd;			/* writer -> loop; -1 before start */

	/* shared, under mu */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct batch *q_head, *q_tail;	/* submitted, not yet committed */
	size_t q_bytes;			/* their records' bytes */
	uint64_t done;			/* epochs committed */
	uint64_t failed;		/* epochs whose commit failed (retried) */
	uint64_t commits;		/* transactions committed */
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

static inline uint8_t *smq_store_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
	return p + 4;
}

static inline uint32_t smq_store_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void smq_store_lock(struct smq_store *st)
{
	pthread_mutex_lock(&st->mu);
}

static inline void smq_store_unlock(struct smq_store *st)
{
	pthread_mutex_unlock(&st->mu);
}

/* Queue @b for the writer (store.c); @b->epoch is its last epoch. */
void smq_store_queue(struct smq_store *st, struct batch *b);

/* Hand the open batch (every closed epoch) to the writer now, whatever
 * waits in it; an empty one only when @empty_too. */
void smq_store_submit(struct smq_store *st, bool empty_too);

/* Free the open batch and its bookkeeping (at stop). */
void smq_store_batch_free(struct smq_store *st);

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
