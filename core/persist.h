/* persist.h - the records the engine stores, and how it reads them back.
 *
 * The engine is sans-I/O: what must survive a restart leaves it as records
 * (put / delete / delete-range of a key) through struct smq_engine_io's
 * store callback, and the shard writes them to its store in groups. At
 * start the shard hands every stored record back, in key order, to
 * smq_engine_restore(). This file owns the record layout; nothing else
 * parses keys or values except the start-up code that moves records
 * between stores (smq_persist_key_client(), smq_persist_key_kind()).
 *
 * Keys sort so that one cursor walk meets each session's records together,
 * its metadata first:
 *
 *   'V'                              the store's format version
 *   'C' | u64 uid | 0x01             session metadata (holds the client id)
 *   'C' | u64 uid | 0x02 | filter    a subscription
 *   'C' | u64 uid | 0x03 | u16 pid   an inbound QoS 2 id awaiting PUBREL
 *   'C' | u64 uid | 0x04 | u64 seq   an outbound message (in queue order)
 *   'R' | topic                      a retained message (or a tombstone)
 *
 * A session is keyed by a random 64-bit uid given when it is first stored,
 * not by its client id: keys stay short (LMDB keys are at most 511 bytes;
 * the store maps longer ones, which only long filters and topics make,
 * onto a prefix and a digest) and a session's records stay together.
 * Integers are big-endian (keys sort numerically). Times in values are wall
 * clock milliseconds (the engine's own clock restarts with the process).
 * Values start with what they are about; see persist.c for each layout.
 */
#ifndef SMQ_PERSIST_H
#define SMQ_PERSIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/codec.h"

/* The record format this build writes and reads; a store with a higher one
 * is refused (it comes from a newer shardmq). */
#define SMQ_PERSIST_FORMAT 1u

enum smq_persist_kind {
	SMQ_PK_VERSION = 'V',
	SMQ_PK_SESSION = 'C',
	SMQ_PK_RETAINED = 'R',
};

/* Session record types (the byte after the client id). */
enum {
	SMQ_PS_META = 1,
	SMQ_PS_SUB = 2,
	SMQ_PS_INBOUND = 3,
	SMQ_PS_QMSG = 4,
	SMQ_PS_DONE = 5,
};

/* The largest key: a session prefix plus a 64 KiB filter. */
#define SMQ_PERSIST_KEY_MAX (1u + 8u + 1u + 65535u)
/* The bytes of a session prefix ('C' | uid). */
#define SMQ_PERSIST_SESSION_PREFIX 9u

/* The kind of @key (enum smq_persist_kind), or 0 when it is none. */
int smq_persist_key_kind(struct smq_str key);

/* Is @key a session's metadata record? */
bool smq_persist_key_is_meta(struct smq_str key);

/* The client id of a session metadata record's value, into *id (pointing
 * into @val). 0, or -EINVAL when @val is not well formed. */
int smq_persist_meta_client(struct smq_str val, struct smq_str *id);

/* The key of the version record, and its value for this build (8 bytes:
 * "SMQS" then the format, u32). */
struct smq_str smq_persist_version_key(void);
void smq_persist_version_value(uint8_t out[8]);

/* Check a stored version value: 0, -EINVAL (not ours: damaged) or
 * -EPROTONOSUPPORT (a newer format). */
int smq_persist_version_check(struct smq_str val);

/* The seq of a retained record's value (for merging stores at start), and
 * whether it is a tombstone. 0 or -EINVAL. */
int smq_persist_retained_seq(struct smq_str val, uint64_t *seq, bool *tomb);

#endif
