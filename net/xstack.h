/* xstack.h - two transforms stacked into one (struct smq_xform), so that a
 * connection that needs TLS below WebSocket (wss) still holds one transform.
 *
 *        above:  MQTT bytes      write() v      ^ read()
 *                        +------------ upper (WebSocket) -----------+
 *                        |  out_iov() -> lower.write()   lower.read() -> feed()
 *                        +------------ lower (TLS) -----------------+
 *        below:  wire bytes    out_iov()/out_done() v      ^ feed()
 *
 * The stack moves bytes between its layers whenever it is called: what the
 * lower layer decrypts is fed to the upper one at once, and what the upper
 * one wants to send is written into the lower one as far as the lower one
 * takes it (the rest waits in the upper layer, bounded by its own limit).
 * Errors are the layers' own, unchanged.
 *
 * Ownership: the stack owns both layers from smq_xstack_new() on and frees
 * them with itself. Threads: as any transform (net/xform.h); no state of its
 * own but the two pointers.
 */
#ifndef SMQ_XSTACK_H
#define SMQ_XSTACK_H

#include "net/xform.h"

/* Stack @upper on @lower. On success the stack owns both; NULL with errno
 * ENOMEM, and the caller keeps both. */
struct smq_xform *smq_xstack_new(struct smq_xform *lower, struct smq_xform *upper);

/* The layers of a stack made by smq_xstack_new(), or NULL if @x is not a
 * stack (it is then a single transform). */
struct smq_xform *smq_xstack_lower(struct smq_xform *x);
struct smq_xform *smq_xstack_upper(struct smq_xform *x);

#endif
