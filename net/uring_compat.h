/* uring_compat.h - what liburing 2.3 (Debian 12) lacks and this kernel has.
 *
 * Every constant or helper newer than liburing 2.3 that shardmq uses lives
 * here, behind #ifndef, so a newer liburing simply supersedes it.
 */
#ifndef SMQ_URING_COMPAT_H
#define SMQ_URING_COMPAT_H

#include <liburing.h>

#ifndef IORING_CQE_F_BUF_MORE
#define IORING_CQE_F_BUF_MORE (1U << 4)
#endif

#ifndef IORING_FEAT_RECVSEND_BUNDLE
#define IORING_FEAT_RECVSEND_BUNDLE (1U << 14)
#endif

#endif
