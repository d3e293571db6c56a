/* shard.h - one shard: a thread with its own io_uring ring, listener,
 * connections and broker engine. Internal to shard/.
 *
 * A shard's state splits in two (STYLE.md, the FlashMQ layout):
 *  - the private part, touched only by the shard's own thread;
 *  - the inbox, which any thread may push to (struct smq_mpsc), plus fields
 *    that are read-only once the thread runs (ring_fd, idx).
 */
#ifndef SMQ_SHARD_H
#define SMQ_SHARD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "net/bufring.h"
#include "shard/mpsc.h"

struct smq_broker;
struct smq_config;
struct smq_engine;
struct smq_retain;
struct conn;
struct fwd_block;
struct imsg;

struct smq_shard {
	/* any thread */
	struct smq_mpsc inbox;

	/* read-only once running */
	unsigned idx;
	int ring_fd;			/* target of MSG_RING wake-ups */
	struct smq_broker *broker;
	const struct smq_config *cfg;
	pthread_t thread;

	/* owner thread only */
	struct io_uring ring;
	struct smq_bufring bufs;
	struct smq_engine *eng;
	int listen_fd;
	bool accept_armed;
	bool stopping;
	unsigned nconns;
	uint64_t now_ms;
	struct conn *all;		/* every live conn, for shutdown */
	struct conn *send_list;		/* conns that want a send this turn */
	struct conn *rearm_list;	/* conns whose recv needs re-arming */
	struct conn *reap_list;		/* conns to finish closing */
	struct smq_mpsc_batch *out;	/* [nshards]: pushed once per slice of CQEs */
	bool batched;			/* something is waiting in out[] */
	struct fwd_block **open_fwd;	/* [nshards]: forward block still being filled */
	uint64_t enobufs;		/* recv ran out of provided buffers */
	uint64_t turns, waits;		/* loop turns; turns that slept */
	uint64_t sends, send_bytes;	/* sendmsg completions and bytes sent */
	uint64_t recvs, recv_bytes;	/* recv completions with data */

	/* start-up handshake with the control thread */
	int start_ret;
	char start_err[512];
};

/* Kinds of inbox message. */
enum imsg_type {
	IMSG_FORWARD,		/* routed PUBLISHes: a struct fwd_block (shard.c) */
	IMSG_FORWARD_SHARED,	/* a PUBLISH for one member of a shared subscription:
				 * ptr = owned struct fwd_shared (shard.c), len = share length */
	IMSG_INTEREST,		/* a 0<->1 interest transition: filter, shard, present */
	IMSG_HANDOFF,		/* a connection whose session lives here: fd, bytes */
	IMSG_STOP,		/* shut down */
};

struct imsg {
	struct smq_mpsc_node node;	/* first: the inbox links through it */
	uint8_t type;
	bool present;
	uint16_t shard;
	int fd;
	uint32_t len;
	void *ptr;			/* msg, or owned filter / handoff bytes */
	char peer[64];
};

/* The shard thread's body (arg: struct smq_shard *). */
void *smq_shard_main(void *arg);

/* Push one inbox message to @to and wake it if it sleeps; for threads that
 * are not shards (the control thread at shutdown). */
void smq_shard_post(struct smq_shard *to, struct imsg *m);

/* Called by the control thread once every shard thread has exited: drop
 * what is left in the inbox, free the engine and the ring. */
void smq_shard_fini(struct smq_shard *s);

/* Free an inbox message and what it owns (drops a msg reference, closes a
 * handed-off fd). */
void smq_imsg_free(struct imsg *m);

/* Shared by the shards: from broker.c. */
struct smq_shard *smq_broker_shard(struct smq_broker *b, unsigned i);
unsigned smq_broker_nshards_(const struct smq_broker *b);
struct smq_retain *smq_broker_retain(struct smq_broker *b);
int smq_broker_listen_port(const struct smq_broker *b);
/* Count a new connection against max_connections; false = refuse it. */
bool smq_broker_conn_get(struct smq_broker *b);
void smq_broker_conn_put(struct smq_broker *b);
/* Report the shard's start-up result to the control thread. */
void smq_broker_started(struct smq_broker *b, struct smq_shard *s, int ret);

#endif
