/* uring.c - ring creation for shard threads.
 *
 * Create the ring inside the thread that will submit
 * (SINGLE_ISSUER), defer task work to our own io_uring_enter (DEFER_TASKRUN)
 * so completions are processed in batches, and size the CQ well above the
 * SQ because multishot accept/recv produce many CQEs per SQE.
 */
#include "net/uring.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"

void smq_uring_explain(int ret, char *err, size_t errlen)
{
	const char *why;

	switch (-ret) {
	case ENOSYS:
		why = "this kernel has no io_uring support (needs Linux 6.1 or later, "
		      "built with CONFIG_IO_URING)";
		break;
	case EPERM:
		why = "io_uring is disabled for this process: check the sysctl "
		      "kernel.io_uring_disabled (set it to 0) and, in a container, the seccomp "
		      "profile (docker: --security-opt seccomp=unconfined or a profile that "
		      "allows io_uring_setup/io_uring_enter/io_uring_register)";
		break;
	case ENOMEM:
		why = "the kernel refused the ring memory: raise the locked-memory limit "
		      "(ulimit -l unlimited, or LimitMEMLOCK=infinity in the systemd unit) or "
		      "use fewer shards";
		break;
	case EINVAL:
		why = "the kernel rejected the ring parameters (Linux 6.1 or later is required "
		      "for SINGLE_ISSUER/DEFER_TASKRUN)";
		break;
	default:
		why = "unexpected error";
		break;
	}
	snprintf(err, errlen, "cannot set up io_uring: %s: %s", strerror(-ret), why);
}

static int init_once(struct io_uring *ring, unsigned sq_entries, unsigned cq_entries)
{
	struct io_uring_params p;
	int ret;

	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
		  IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE;
	p.cq_entries = cq_entries;
	ret = io_uring_queue_init_params(sq_entries, ring, &p);
	if (ret == -EINVAL) {
		/* Older kernel: keep going without the 6.1 flags, slower but correct. */
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_CQSIZE;
		p.cq_entries = cq_entries;
		ret = io_uring_queue_init_params(sq_entries, ring, &p);
	}
	return ret;
}

/* The smallest ring worth running: 256 SQEs, 4096 CQEs (~85 KB locked). */
#define MIN_SQ 256u
#define MIN_CQ 4096u

int smq_uring_init(struct io_uring *ring, unsigned sq_entries, unsigned cq_entries, char *err,
		   size_t errlen)
{
	unsigned sq = sq_entries, cq = cq_entries;
	int ret = init_once(ring, sq, cq);

	/* Without CAP_IPC_LOCK the ring memory counts against RLIMIT_MEMLOCK
	 * (8 MiB by default: about 6 full-size rings). A smaller ring is only
	 * slower (the kernel keeps CQEs that overflow), so shrink it rather
	 * than refuse to start on a many-core machine. */
	while (ret == -ENOMEM && (sq > MIN_SQ || cq > MIN_CQ)) {
		sq = sq > MIN_SQ ? sq / 2 : sq;
		cq = cq > MIN_CQ ? cq / 2 : cq;
		ret = init_once(ring, sq, cq);
	}
	if (ret) {
		smq_uring_explain(ret, err, errlen);
		return ret;
	}
	if (sq != sq_entries || cq != cq_entries)
		smq_notice("io_uring ring reduced to %u SQEs and %u CQEs to fit the locked-memory "
			   "limit (ulimit -l; LimitMEMLOCK=infinity restores full size)", sq, cq);
	/* A registered ring fd saves an fget per enter; failure only costs speed. */
	io_uring_register_ring_fd(ring);
	return 0;
}
