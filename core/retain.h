/* retain.h - the retained-message store shared by all shards.
 *
 * A topic trie (one node per topic level) whose nodes may hold one retained
 * message (a reference to a struct smq_msg). One store serves every shard,
 * behind a pthread rwlock: this is the one lock in core/, and it is off the
 * ordinary publish path - only a PUBLISH with RETAIN=1 takes the write lock
 * and only a SUBSCRIBE takes the read lock, both rare next to ordinary
 * publishes (measure before partitioning it by topic).
 *
 * Threads: every function may be called from any thread, concurrently,
 * except smq_retain_new/free (no other call may be in progress).
 */
#ifndef SMQ_RETAIN_H
#define SMQ_RETAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/codec.h"

struct smq_msg;
struct smq_retain;

/* A new empty store holding at most @max_messages topics (0 = unlimited),
 * or NULL. */
struct smq_retain *smq_retain_new(size_t max_messages);

/* Drop every retained reference and free the store. */
void smq_retain_free(struct smq_retain *r);

/* Make @msg the retained message of its topic, replacing the old one, or,
 * when its payload is empty, delete the topic's retained message
 * [MQTT-3.3.1-10] [MQTT-3.3.1-11]. The store takes its own reference; the
 * caller keeps its one. Returns 0, -ENOSPC (a new topic beyond
 * max_messages: nothing stored) or -ENOMEM. */
int smq_retain_set(struct smq_retain *r, struct smq_msg *msg);

/* The same, also giving the update's sequence number in *seq (may be
 * NULL): increasing in the order updates took effect, across all shards,
 * so that copies of one topic in several stores can be told apart. */
int smq_retain_set_seq(struct smq_retain *r, struct smq_msg *msg, uint64_t *seq);

/* Start-up: set a stored message (as smq_retain_set) whose sequence number
 * was @seq; later updates get higher numbers. */
int smq_retain_restore(struct smq_retain *r, struct smq_msg *msg, uint64_t seq);

/* Later updates get numbers above @seq. */
void smq_retain_seq_floor(struct smq_retain *r, uint64_t seq);

/* Collect the retained messages whose topics match @filter (wildcards and
 * the '$' rule of [MQTT-4.7.2-1] included) into *out, a malloc'd array the
 * caller frees, each with a reference the caller drops (smq_msg_unref).
 * At most @max messages (0 = no limit). Order is unspecified.
 * Returns the number collected (*out is NULL when 0) or -ENOMEM. */
long smq_retain_match(struct smq_retain *r, struct smq_str filter, size_t max,
		      struct smq_msg ***out);

/* Number of retained messages held. */
size_t smq_retain_count(struct smq_retain *r);

#endif
