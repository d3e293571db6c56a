/* broker.h - the whole server: N shard threads, their listeners and the
 * state they share (config, retained store, connection count).
 *
 * Threads: smq_broker_new/start/stop/free are called by one control thread
 * (cmd/shardmq.c's main). Everything else happens on the shard threads.
 */
#ifndef SMQ_BROKER_H
#define SMQ_BROKER_H

#include <stdbool.h>
#include <stddef.h>

struct smq_config;
struct smq_listener_cfg;
struct smq_broker;

/* Shard masks are 64-bit (core/interest.h). */
#define SMQ_MAX_SHARDS 64u

/* Prepare a broker for @cfg (borrowed; must outlive the broker). Nothing
 * runs yet. NULL on ENOMEM. */
struct smq_broker *smq_broker_new(const struct smq_config *cfg);

/* Start the shard threads: each creates its io_uring ring, binds its
 * SO_REUSEPORT listener and starts accepting. Returns 0 once every shard
 * runs, or -errno with a sentence in @err (e.g. io_uring unavailable and how
 * to fix it, address in use); then no thread is left running. */
int smq_broker_start(struct smq_broker *b, char *err, size_t errlen);

/* The port of the first listener (useful with port 0), -1 before start. */
int smq_broker_port(const struct smq_broker *b);

/* Listener @i once started: its port (or -ENOENT past the last one), its
 * name ("127.0.0.1:1883") into @name, whether it speaks TLS into *@tls. */
/* Listener @i's settings once started, or NULL past the last one. */
const struct smq_listener_cfg *smq_broker_listener_cfg(const struct smq_broker *b, unsigned i);

int smq_broker_listener_info(const struct smq_broker *b, unsigned i, char *name, size_t len,
			     bool *tls);

/* The number of shards running. */
unsigned smq_broker_shards(const struct smq_broker *b);

/* SIGHUP: apply @cfg's password file, ACL file, allow_anonymous and
 * certificates (files read again) to every shard, without dropping a
 * connection. Returns 0, or -errno with a sentence in @err and nothing
 * changed (a bad file, or a change that needs a restart: the listener set,
 * TLS turned on or off). On success @what says what is now in force and
 * how it changed. @cfg is only read during the call. */
int smq_broker_reload(struct smq_broker *b, const struct smq_config *cfg, char *err,
		      size_t errlen, char *what, size_t whatlen);

/* Close every connection, stop and join the shard threads. Idempotent. */
void smq_broker_stop(struct smq_broker *b);

/* SIGUSR1: flush the store to disk now (persistence_sync periodic). Any
 * thread; returns before the flush is done. */
void smq_broker_flush(struct smq_broker *b);

/* Free everything (stops first if needed). */
void smq_broker_free(struct smq_broker *b);

#endif
