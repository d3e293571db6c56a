/* uring.h - io_uring setup with diagnostics a user can act on. */
#ifndef SMQ_URING_H
#define SMQ_URING_H

#include <stddef.h>

#include "net/uring_compat.h"

/* Create @ring in the calling thread (SINGLE_ISSUER binds it to this thread)
 * with SINGLE_ISSUER | DEFER_TASKRUN | SUBMIT_ALL and a CQ of @cq_entries,
 * and register the ring fd. Falls back to plain flags on kernels that refuse
 * them. On failure returns -errno and writes into @err a sentence that says
 * why io_uring is unavailable and how to fix it. */
int smq_uring_init(struct io_uring *ring, unsigned sq_entries, unsigned cq_entries, char *err,
		   size_t errlen);

/* Explain a failed io_uring_queue_init() result (@ret = -errno). */
void smq_uring_explain(int ret, char *err, size_t errlen);

#endif
