/* handoff.h - moving a connection to the shard that owns its session.
 * Internal to shard/; owner thread of the shard named in each call.
 *
 * The accepting shard reads until the CONNECT; when the engine says the
 * session lives elsewhere (SMQ_ENGINE_HANDOFF), the recv is cancelled, every
 * byte read so far is taken from the engine and, once no SQE names the
 * conn, fd + bytes travel to the home shard's inbox (IMSG_HANDOFF), which
 * adopts them as if it had read them itself.
 */
#ifndef SMQ_SHARD_HANDOFF_H
#define SMQ_SHARD_HANDOFF_H

#include <stddef.h>
#include <stdint.h>

struct conn;
struct imsg;
struct smq_shard;

/* The engine asked for a hand-off of @c: detach it and stop its recv. */
void smq_handoff_start(struct smq_shard *s, struct conn *c);

/* Bytes that arrived after the hand-off began (the recv's last CQEs). */
void smq_handoff_append(struct conn *c, const uint8_t *p, size_t n);

/* No SQE names @c any more: send fd and bytes home; frees @c. */
void smq_handoff_finish(struct smq_shard *s, struct conn *c);

/* The home shard: adopt the connection of an IMSG_HANDOFF (frees @m). */
void smq_handoff_adopt(struct smq_shard *s, struct imsg *m);

#endif
