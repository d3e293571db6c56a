/* store.h - a shard's persistent store: one LMDB environment, written by a
 * thread of its own in group commits, so the shard loop never waits on a
 * disk.
 *
 * The shard loop gathers the engine's records (core/engine.h,
 * struct smq_store_rec) into the open batch, where a message's DEL cancels
 * its PUT when both meet before the write (shard/storebatch.c); the batch
 * goes to the writer at a turn end (smq_store_turn_end). Every loop turn
 * that adds records closes an epoch. The writer thread applies every
 * submitted batch in one write transaction,
 * commits it (flushed to disk in commit mode; to the OS in periodic mode,
 * which flushes every autosave_interval), and reports through an eventfd
 * that the loop reads in its ring: smq_store_poll() then tells which epochs
 * are done. A commit that fails (disk full, I/O error) keeps its batches
 * and is retried every second; meanwhile the store reports itself full.
 *
 * Start-up (the control thread, before any shard runs): smq_stores_open()
 * locks the store directory, opens one environment per shard, moves
 * sessions to their home shard's environment when the shard count changed,
 * and merges retained messages that several environments hold.
 *
 * Threads: smq_stores_open/close on the control thread; smq_stores_flush
 * from any thread; everything else on the owning shard's thread.
 */
#ifndef SMQ_STORE_H
#define SMQ_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct smq_config;
struct smq_engine;
struct smq_store_rec;
struct smq_store;
struct smq_stores;

/* Open (creating when absent) the store directory of @cfg for @nshards
 * shards. NULL with a message in @err when it is locked by another process,
 * damaged, from a newer shardmq or cannot be written; nothing is modified
 * then, except the moves of a shard-count change that were complete. */
struct smq_stores *smq_stores_open(const struct smq_config *cfg, unsigned nshards, char *err,
				   size_t cap);

/* Shard @i's store. */
struct smq_store *smq_stores_get(struct smq_stores *ss, unsigned i);

/* After every shard stopped (smq_store_stop): close and unlock. */
void smq_stores_close(struct smq_stores *ss);

/* SIGUSR1: flush every store to disk now (periodic mode). Any thread. */
void smq_stores_flush(struct smq_stores *ss);

/* The directory, for logs. */
const char *smq_stores_path(const struct smq_stores *ss);

/* ---- one shard's store: its thread only ---------------------------------- */

/* Hand every stored record to @e (smq_engine_restore) in key order. 0, or
 * -errno / -EINVAL with a message naming the store in @err. */
int smq_store_restore(struct smq_store *st, struct smq_engine *e, uint64_t now_ms, char *err,
		      size_t cap);

/* Start the writer thread. Returns the eventfd the loop must read (it
 * becomes readable after each commit or failure), or -errno. */
int smq_store_start(struct smq_store *st);

/* Add a record to the open batch (copied). */
void smq_store_add(struct smq_store *st, const struct smq_store_rec *r);

/* The epoch of the open batch: records added now are durable once
 * smq_store_poll() reports it done. */
uint64_t smq_store_epoch(const struct smq_store *st);

/* Something waits for the open epoch: close it at the turn end even when
 * it holds no records. */
void smq_store_need(struct smq_store *st);

/* End of a loop turn at @now_ms: close the open epoch, finish the epochs
 * whose records all cancelled (storebatch.c), and hand the batch to the
 * writer when it is idle and the batch must or may go. True when epochs
 * finished here (poll now; the eventfd says nothing). *wait_ms: call again
 * within this many ms (a lazy record's wait ends), or -1. */
bool smq_store_turn_end(struct smq_store *st, uint64_t now_ms, int64_t *wait_ms);

/* Records cancelled by their partner before they were written. */
uint64_t smq_store_cancelled(const struct smq_store *st);

/* Bytes of records not yet committed (queued and open): the shard stops
 * reading clients while this is high (the store is slower than they are). */
size_t smq_store_backlog(struct smq_store *st);

/* What the writer finished: every epoch <= *done is durable, every epoch
 * <= *failed could not be written (it is being retried), *full while
 * commits fail. */
void smq_store_poll(struct smq_store *st, uint64_t *done, uint64_t *failed, bool *full);

/* Transactions the writer committed so far. */
uint64_t smq_store_commits(const struct smq_store *st);

/* Shutdown: submit what is open, let the writer finish (one last try when
 * failing), flush, and stop it. */
void smq_store_stop(struct smq_store *st);

#endif
