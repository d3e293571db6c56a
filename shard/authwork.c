/* authwork.c - the password-check workers (see authwork.h). */
#include "shard/authwork.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core/auth.h"
#include "core/log.h"
#include "core/passwd.h"
#include "net/uring.h"
#include "shard/shard.h"

struct smq_authwork {
	pthread_mutex_t lock;
	pthread_cond_t more;
	struct smq_auth_job *head, *tail;	/* FIFO under @lock */
	bool stopping;
	unsigned nthreads;
	pthread_t threads[];
};

struct smq_auth_job *smq_auth_job_new(struct smq_shard *shard, void *conn, struct smq_auth *auth,
				      const uint8_t *user, size_t ulen, const uint8_t *pass,
				      size_t plen)
{
	struct smq_auth_job *j = malloc(sizeof(*j) + ulen + plen);

	if (!j)
		return NULL;
	memset(j, 0, sizeof(*j));
	j->shard = shard;
	j->conn = conn;
	j->auth = auth;
	smq_auth_ref(auth);
	j->ulen = (uint32_t)ulen;
	j->plen = (uint32_t)plen;
	if (ulen)
		memcpy(j->data, user, ulen);
	if (plen)
		memcpy(j->data + ulen, pass, plen);
	return j;
}

void smq_auth_job_free(struct smq_auth_job *j)
{
	if (!j)
		return;
	smq_auth_unref(j->auth);
	/* The password must not linger in freed memory. */
	memset(j->data, 0, (size_t)j->ulen + j->plen);
	free(j);
}

static void answer(struct io_uring *ring, struct smq_auth_job *j)
{
	struct imsg *m = calloc(1, sizeof(*m));

	j->ok = smq_passwd_check(j->auth->pw, (const char *)j->data, j->ulen, j->data + j->ulen,
				 j->plen);
	if (!m) {
		/* The conn would wait forever: retrying beats losing it. */
		smq_err("out of memory answering a password check; retrying");
		while (!(m = calloc(1, sizeof(*m))))
			;
	}
	m->type = IMSG_AUTH;
	m->ptr = j;
	smq_shard_post_on(ring, j->shard, m);
}

static void *worker(void *arg)
{
	struct smq_authwork *w = arg;
	struct io_uring ring, *rp = NULL;

	/* A ring of its own for MSG_RING wake-ups of sleeping shards. */
	if (!io_uring_queue_init(8, &ring, 0))
		rp = &ring;
	pthread_mutex_lock(&w->lock);
	for (;;) {
		struct smq_auth_job *j = w->head;

		if (!j) {
			if (w->stopping)
				break;
			pthread_cond_wait(&w->more, &w->lock);
			continue;
		}
		w->head = j->next;
		if (!w->head)
			w->tail = NULL;
		pthread_mutex_unlock(&w->lock);
		answer(rp, j);
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	if (rp)
		io_uring_queue_exit(rp);
	return NULL;
}

struct smq_authwork *smq_authwork_new(unsigned nthreads)
{
	struct smq_authwork *w = calloc(1, sizeof(*w) + nthreads * sizeof(pthread_t));

	if (!w)
		return NULL;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->more, NULL);
	for (; w->nthreads < nthreads; w->nthreads++) {
		if (pthread_create(&w->threads[w->nthreads], NULL, worker, w)) {
			smq_authwork_free(w);
			return NULL;
		}
	}
	return w;
}

int smq_authwork_submit(struct smq_authwork *w, struct smq_auth_job *j)
{
	pthread_mutex_lock(&w->lock);
	if (w->stopping) {
		pthread_mutex_unlock(&w->lock);
		return -ESHUTDOWN;
	}
	j->next = NULL;
	if (w->tail)
		w->tail->next = j;
	else
		w->head = j;
	w->tail = j;
	pthread_cond_signal(&w->more);
	pthread_mutex_unlock(&w->lock);
	return 0;
}

void smq_authwork_free(struct smq_authwork *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->lock);
	w->stopping = true;
	pthread_cond_broadcast(&w->more);
	pthread_mutex_unlock(&w->lock);
	for (unsigned i = 0; i < w->nthreads; i++)
		pthread_join(w->threads[i], NULL);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->more);
	free(w);
}
