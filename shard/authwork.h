/* authwork.h - password checks off the shard loops.
 *
 * A PBKDF2 check of a mosquitto password costs ~100-150 us (101 rounds of
 * HMAC-SHA512 in wolfCrypt), long enough to stall every other client of a
 * shard. So the engine parks such a CONNECT (io->auth_check), the shard
 * hands the check to these worker threads, and the verdict comes back to
 * the shard's inbox as IMSG_AUTH. A shard's cache of verified logins
 * (core/auth.h) answers reconnects without coming here at all.
 *
 * Threads: smq_authwork_new/free on the control thread; submit from any
 * shard thread; the workers post to the shard named in each job. The queue
 * is a mutex and a condition variable: jobs come at CONNECT rate, not
 * message rate, and the publish path never touches it.
 */
#ifndef SMQ_SHARD_AUTHWORK_H
#define SMQ_SHARD_AUTHWORK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct smq_auth;
struct smq_authwork;
struct smq_shard;

/* One check. The submitter fills everything but @ok; @auth holds a
 * reference that smq_auth_job_free() drops. */
struct smq_auth_job {
	struct smq_auth_job *next;
	struct smq_shard *shard;	/* answer here */
	void *conn;			/* the shard's struct conn, held by the job */
	struct smq_auth *auth;
	bool ok;			/* set by the worker */
	uint32_t ulen, plen;
	uint8_t data[];			/* user name, then password */
};

/* A job for @user / @pass, or NULL on ENOMEM. Takes a reference to @auth. */
struct smq_auth_job *smq_auth_job_new(struct smq_shard *shard, void *conn, struct smq_auth *auth,
				      const uint8_t *user, size_t ulen, const uint8_t *pass,
				      size_t plen);
void smq_auth_job_free(struct smq_auth_job *j);

/* Start @nthreads workers. NULL on failure. */
struct smq_authwork *smq_authwork_new(unsigned nthreads);

/* Queue @j; the verdict reaches j->shard as IMSG_AUTH. 0 or -ESHUTDOWN. */
int smq_authwork_submit(struct smq_authwork *w, struct smq_auth_job *j);

/* Answer every queued job, then stop and join the workers. */
void smq_authwork_free(struct smq_authwork *w);

#endif
