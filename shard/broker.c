/* broker.c - start, run and stop the shard threads.
 *
 * The broker owns what the shards share: the config (read-only), the
 * retained store (its own rwlock), the connection counter (an atomic) and
 * the array of shards (read-only once started). Shards never touch each
 * other's private state; they only push to each other's inboxes.
 *
 * Start-up: the listeners come from the config (smq_config_listeners());
 * shard 0 starts first and binds every listener (so port 0 resolves to one
 * real port), then the others bind the same ports with SO_REUSEPORT.
 * Each shard creates its ring inside its own thread (SINGLE_ISSUER) and
 * reports success or a readable error before the next one starts.
 */
#include "shard/broker.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/acl.h"
#include "core/auth.h"
#include "core/passwd.h"
#include "core/config.h"
#include "core/log.h"
#include "core/retain.h"
#include "net/listen.h"
#include "net/tls.h"
#include "shard/authwork.h"
#include "shard/shard.h"
#include "shard/store.h"

struct smq_broker {
	const struct smq_config *cfg;
	struct smq_retain *retained;
	struct smq_shard *shards;	/* [nshards], read-only once started */
	unsigned nshards;
	unsigned running;		/* threads started (control thread only) */
	atomic_long nconns;
	_Atomic uint64_t pressure;	/* bit i: shard i's subscribers are backlogged */
	struct smq_listener *lst;	/* [nlst], from smq_broker_start() on */
	unsigned nlst;
	struct smq_listener metrics;	/* metrics_listener: shard 0 serves it */
	struct smq_reload cur;		/* control thread: the auth and TLS in force */
	struct smq_authwork *authwork;	/* password checks off the shard loops */
	uint64_t auth_gen;

	pthread_mutex_t start_lock;	/* start-up handshake only */
	pthread_cond_t start_cond;
	int start_done;
	bool go;			/* every shard started (or start-up failed) */
	struct smq_stores *stores;	/* persistence, or NULL */
};

#define RING_SQ 4096u
#define RING_CQ 65536u

/* Ring sizes every shard can have within the locked-memory limit: ring
 * memory counts against RLIMIT_MEMLOCK for a process without CAP_IPC_LOCK
 * (8 MiB by default, about 6 full-size rings). Smaller rings are slower
 * only (the kernel keeps overflowing CQEs), so the sizes are halved until
 * all shards fit, down to 256 SQEs / 4096 CQEs (~100 KB). The estimate is
 * generous; net/uring.c still shrinks a ring the kernel refuses. */
static void ring_sizes(unsigned nshards, unsigned *sq, unsigned *cq)
{
	struct rlimit rl;
	uint64_t budget, need;

	*sq = RING_SQ;
	*cq = RING_CQ;
	if (geteuid() == 0 || getrlimit(RLIMIT_MEMLOCK, &rl) || rl.rlim_cur == RLIM_INFINITY)
		return;
	budget = rl.rlim_cur / nshards;
	for (;;) {
		/* SQEs, the SQ index array, CQEs, the provided-buffer ring, pages */
		need = (uint64_t)*sq * 68u + (uint64_t)*cq * 16u + 16384u + 16384u;
		if (need <= budget || (*sq <= 256u && *cq <= 4096u))
			break;
		*sq = *sq > 256u ? *sq / 2 : *sq;
		*cq = *cq > 4096u ? *cq / 2 : *cq;
	}
	if (*sq != RING_SQ)
		smq_notice("%u shards in a locked-memory limit of %llu KB: rings of %u SQEs and %u "
			   "CQEs each (LimitMEMLOCK=infinity or ulimit -l unlimited gives the full "
			   "%u / %u)", nshards, (unsigned long long)(rl.rlim_cur / 1024), *sq, *cq,
			   RING_SQ, RING_CQ);
}

static unsigned default_shards(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > SMQ_MAX_SHARDS ? SMQ_MAX_SHARDS : (unsigned)n;
}

struct smq_broker *smq_broker_new(const struct smq_config *cfg)
{
	unsigned sq, cq;
	struct smq_broker *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->cfg = cfg;
	b->nshards = cfg->shards ? (unsigned)cfg->shards : default_shards();
	if (b->nshards > SMQ_MAX_SHARDS)
		b->nshards = SMQ_MAX_SHARDS;
	b->shards = calloc(b->nshards, sizeof(*b->shards));
	b->retained = smq_retain_new(cfg->max_retained_messages);
	if (!b->shards || !b->retained)
		goto out_free;
	ring_sizes(b->nshards, &sq, &cq);
	for (unsigned i = 0; i < b->nshards; i++) {
		struct smq_shard *s = &b->shards[i];

		s->ring_sq = sq;
		s->ring_cq = cq;
		smq_mpsc_init(&s->inbox);
		s->idx = i;
		s->broker = b;
		s->cfg = cfg;
	}
	pthread_mutex_init(&b->start_lock, NULL);
	pthread_cond_init(&b->start_cond, NULL);
	return b;
out_free:
	if (b->retained)
		smq_retain_free(b->retained);
	free(b->shards);
	free(b);
	return NULL;
}

/* ---- shared helpers for shard.c ------------------------------------------ */

struct smq_shard *smq_broker_shard(struct smq_broker *b, unsigned i)
{
	return &b->shards[i];
}

struct smq_listener *smq_broker_metrics(struct smq_broker *b)
{
	return b->metrics.http ? &b->metrics : NULL;
}

unsigned smq_broker_nshards_(const struct smq_broker *b)
{
	return b->nshards;
}

uint64_t smq_broker_pressure(struct smq_broker *b)
{
	return atomic_load_explicit(&b->pressure, memory_order_relaxed);
}

void smq_broker_press(struct smq_broker *b, unsigned shard, bool on)
{
	if (on)
		atomic_fetch_or_explicit(&b->pressure, 1ull << shard, memory_order_relaxed);
	else
		atomic_fetch_and_explicit(&b->pressure, ~(1ull << shard), memory_order_relaxed);
}

unsigned smq_broker_shards(const struct smq_broker *b)
{
	return b->nshards;
}

struct smq_retain *smq_broker_retain(struct smq_broker *b)
{
	return b->retained;
}

unsigned smq_broker_nlisteners(const struct smq_broker *b)
{
	return b->nlst;
}

struct smq_listener *smq_broker_listener(struct smq_broker *b, unsigned i)
{
	return &b->lst[i];
}

int smq_broker_port(const struct smq_broker *b)
{
	return b->nlst ? b->lst[0].cfg.port : -1;
}

const struct smq_listener_cfg *smq_broker_listener_cfg(const struct smq_broker *b, unsigned i)
{
	return i < b->nlst ? &b->lst[i].cfg : NULL;
}

int smq_broker_listener_info(const struct smq_broker *b, unsigned i, char *name, size_t len,
			     bool *tls)
{
	if (i >= b->nlst)
		return -ENOENT;
	snprintf(name, len, "%s", b->lst[i].name);
	*tls = smq_config_listener_tls(&b->lst[i].cfg);
	return b->lst[i].cfg.port;
}

/* Take one slot of @count limited to @max (-1: no limit). */
static bool slot_get(atomic_long *count, long max)
{
	if (max < 0) {
		atomic_fetch_add_explicit(count, 1, memory_order_relaxed);
		return true;
	}
	if (atomic_fetch_add_explicit(count, 1, memory_order_relaxed) < max)
		return true;
	atomic_fetch_sub_explicit(count, 1, memory_order_relaxed);
	return false;
}

bool smq_broker_conn_get(struct smq_broker *b, struct smq_listener *l)
{
	if (!slot_get(&l->conns, l->cfg.max_connections))
		return false;
	if (slot_get(&b->nconns, b->cfg->max_connections))
		return true;
	atomic_fetch_sub_explicit(&l->conns, 1, memory_order_relaxed);
	return false;
}

void smq_broker_conn_put(struct smq_broker *b, struct smq_listener *l)
{
	atomic_fetch_sub_explicit(&l->conns, 1, memory_order_relaxed);
	atomic_fetch_sub_explicit(&b->nconns, 1, memory_order_relaxed);
}

struct smq_store *smq_broker_store(struct smq_broker *b, unsigned i)
{
	return b->stores ? smq_stores_get(b->stores, i) : NULL;
}

void smq_broker_wait_go(struct smq_broker *b)
{
	pthread_mutex_lock(&b->start_lock);
	while (!b->go)
		pthread_cond_wait(&b->start_cond, &b->start_lock);
	pthread_mutex_unlock(&b->start_lock);
}

static void let_go(struct smq_broker *b)
{
	pthread_mutex_lock(&b->start_lock);
	b->go = true;
	pthread_cond_broadcast(&b->start_cond);
	pthread_mutex_unlock(&b->start_lock);
}

void smq_broker_flush(struct smq_broker *b)
{
	if (b->stores)
		smq_stores_flush(b->stores);
}

void smq_broker_started(struct smq_broker *b, struct smq_shard *s, int ret)
{
	pthread_mutex_lock(&b->start_lock);
	s->start_ret = ret;
	b->start_done = 1;
	pthread_cond_broadcast(&b->start_cond);
	pthread_mutex_unlock(&b->start_lock);
}

/* ---- threads -------------------------------------------------------------- */

/* The CPU for shard @i: from the configured list, or CPU i. -1: don't pin. */
static int shard_cpu(const struct smq_config *cfg, unsigned i)
{
	if (!cfg->pin_cpus)
		return -1;
	if (cfg->ncpus)
		return cfg->cpus[i % cfg->ncpus];
	return (int)(i % (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
}

static int start_one(struct smq_broker *b, unsigned i, char *err, size_t errlen)
{
	struct smq_shard *s = &b->shards[i];
	pthread_attr_t attr;
	int cpu = shard_cpu(b->cfg, i);
	int ret;

	pthread_attr_init(&attr);
	if (cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
	}
	b->start_done = 0;
	ret = -pthread_create(&s->thread, &attr, smq_shard_main, s);
	pthread_attr_destroy(&attr);
	if (ret) {
		snprintf(err, errlen, "cannot start shard thread %u: %s", i, strerror(-ret));
		return ret;
	}
	pthread_mutex_lock(&b->start_lock);
	while (!b->start_done)
		pthread_cond_wait(&b->start_cond, &b->start_lock);
	pthread_mutex_unlock(&b->start_lock);
	if (s->start_ret) {
		pthread_join(s->thread, NULL);
		snprintf(err, errlen, "%s", s->start_err);
		return s->start_ret;
	}
	b->running++;
	if (cpu >= 0)
		smq_info("shard %u pinned to CPU %d", i, cpu);
	return 0;
}

/* ---- auth and TLS: built by the control thread, handed to shards -------- */

static void reload_free_fields(struct smq_reload *r)
{
	smq_auth_unref(r->auth);
	for (unsigned i = 0; i < SMQ_CONFIG_MAX_LISTENERS; i++)
		smq_tls_ctx_unref(r->tls[i]);
	memset(r, 0, sizeof(*r));
}

void smq_reload_free(struct smq_reload *r)
{
	if (!r)
		return;
	reload_free_fields(r);
	free(r);
}

static void reload_ref(struct smq_reload *dst, const struct smq_reload *src)
{
	*dst = *src;
	if (dst->auth)
		smq_auth_ref(dst->auth);
	for (unsigned i = 0; i < SMQ_CONFIG_MAX_LISTENERS; i++)
		if (dst->tls[i])
			smq_tls_ctx_ref(dst->tls[i]);
}

struct smq_reload *smq_broker_reload_get(struct smq_broker *b)
{
	struct smq_reload *r = malloc(sizeof(*r));

	if (r)
		reload_ref(r, &b->cur);
	return r;
}

/* The server TLS context of listener @l from @lc's settings (the paths as
 * they are now), or NULL for a plain listener; -errno with @err. */
static int tls_make(const struct smq_listener_cfg *lc, struct smq_tls_ctx **out, char *err,
		    size_t errlen)
{
	struct smq_tls_opts o = {
		.certfile = lc->certfile,
		.keyfile = lc->keyfile,
		.cafile = lc->cafile[0] ? lc->cafile : NULL,
		.capath = lc->capath[0] ? lc->capath : NULL,
		.require_certificate = lc->require_certificate,
		.tls_version = lc->tls_version[0] ? lc->tls_version : NULL,
		.ciphers = lc->ciphers[0] ? lc->ciphers : NULL,
		.ciphers_tls13 = lc->ciphers_tls13[0] ? lc->ciphers_tls13 : NULL,
	};
	char why[512];

	*out = NULL;
	if (!smq_config_listener_tls(lc))
		return 0;
	*out = smq_tls_ctx_new(SMQ_TLS_SERVER, &o, why, sizeof(why));
	if (!*out) {
		snprintf(err, errlen, "listener %d: %s", lc->port, why);
		return errno ? -errno : -EINVAL;
	}
	return 0;
}

/* Build auth and TLS from @cfg (the listeners as they are, with the
 * certificate settings of @cfg's listener at the same index). */
static int reload_build(struct smq_broker *b, const struct smq_config *cfg,
			const struct smq_listener_cfg *lcfgs, struct smq_reload *r, char *err,
			size_t errlen)
{
	int ret;

	memset(r, 0, sizeof(*r));
	ret = smq_auth_load(cfg, b->auth_gen + 1, &r->auth, err, errlen);
	for (unsigned i = 0; !ret && i < b->nlst; i++)
		ret = tls_make(&lcfgs[i], &r->tls[i], err, errlen);
	if (ret) {
		smq_auth_unref(r->auth);
		for (unsigned i = 0; i < b->nlst; i++)
			smq_tls_ctx_unref(r->tls[i]);
		return ret;
	}
	b->auth_gen++;
	return 0;
}

/* "password_file: 3 users (was 2); acl_file: 12 rules (was 10); ..." */
static void describe_change(const struct smq_reload *old, const struct smq_reload *next,
			    unsigned ntls, char *out, size_t len)
{
	const struct smq_auth *o = old->auth, *n = next->auth;
	long po = o && o->pw ? (long)smq_passwd_count(o->pw) : -1;
	long pn = n->pw ? (long)smq_passwd_count(n->pw) : -1;
	long ao = o && o->acl ? (long)smq_acl_rule_count(o->acl) : -1;
	long an = n->acl ? (long)smq_acl_rule_count(n->acl) : -1;

	snprintf(out, len, "password_file: %s%ld users (was %s%ld); acl_file: %s%ld rules "
		 "(was %s%ld); anonymous clients %s%s; %u TLS listener%s' certificates read again",
		 pn < 0 ? "none, " : "", pn < 0 ? 0 : pn, po < 0 ? "none, " : "", po < 0 ? 0 : po,
		 an < 0 ? "none, " : "", an < 0 ? 0 : an, ao < 0 ? "none, " : "", ao < 0 ? 0 : ao,
		 n->anonymous ? "allowed" : "refused",
		 o && o->anonymous != n->anonymous ? " (changed)" : " (unchanged)", ntls,
		 ntls == 1 ? "" : "s");
}

int smq_broker_reload(struct smq_broker *b, const struct smq_config *cfg, char *err,
		      size_t errlen, char *what, size_t whatlen)
{
	unsigned ntls = 0;

	struct smq_listener_cfg *lcfgs = calloc(SMQ_CONFIG_MAX_LISTENERS + 1, sizeof(*lcfgs));
	struct smq_reload next;
	int n, ret;

	if (!lcfgs) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	n = smq_config_listeners(cfg, lcfgs, SMQ_CONFIG_MAX_LISTENERS + 1, err, errlen);
	if (n >= 0 && (unsigned)n != b->nlst) {
		snprintf(err, errlen, "the listeners changed (%d now, %u running): that needs a "
			 "restart", n, b->nlst);
		n = -EINVAL;
	}
	for (unsigned i = 0; n >= 0 && i < b->nlst; i++) {
		if (smq_config_listener_tls(&lcfgs[i]) != b->lst[i].tls ||
		    lcfgs[i].require_certificate != b->lst[i].cfg.require_certificate ||
		    lcfgs[i].use_identity_as_username != b->lst[i].cfg.use_identity_as_username) {
			snprintf(err, errlen, "listener %d: turning TLS, require_certificate or "
				 "use_identity_as_username on or off needs a restart",
				 b->lst[i].cfg.port);
			n = -EINVAL;
		}
	}
	if (n >= 0 && (cfg->metrics_port != b->cfg->metrics_port ||
		       strcmp(cfg->metrics_addr, b->cfg->metrics_addr))) {
		snprintf(err, errlen, "metrics_listener changed: that needs a restart");
		n = -EINVAL;
	}
	ret = n < 0 ? n : reload_build(b, cfg, lcfgs, &next, err, errlen);
	free(lcfgs);
	if (ret)
		return ret;
	for (unsigned i = 0; i < b->nlst; i++)
		ntls += b->lst[i].tls;
	describe_change(&b->cur, &next, ntls, what, whatlen);
	for (unsigned i = 0; i < b->running; i++) {
		struct imsg *m = calloc(1, sizeof(*m));
		struct smq_reload *r = malloc(sizeof(*r));

		if (!m || !r) {
			free(m);
			free(r);
			continue;	/* that shard keeps the old settings */
		}
		reload_ref(r, &next);
		m->type = IMSG_RELOAD;
		m->ptr = r;
		smq_shard_post(&b->shards[i], m);
	}
	reload_free_fields(&b->cur);
	b->cur = next;
	return 0;
}

/* "127.0.0.1:1883", "[::]:8883" */
static void listener_name(struct smq_listener *l)
{
	const char *a = l->cfg.addr[0] ? l->cfg.addr : "*";

	if (l->cfg.unix_sock) {
		snprintf(l->name, sizeof(l->name), "unix:%s", l->cfg.addr);
		return;
	}
	snprintf(l->name, sizeof(l->name), strchr(a, ':') ? "[%s]:%d" : "%s:%d", a, l->cfg.port);
}

static int make_listeners(struct smq_broker *b, char *err, size_t errlen)
{
	struct smq_listener_cfg *cfgs = calloc(SMQ_CONFIG_MAX_LISTENERS + 1, sizeof(*cfgs));
	int n;

	if (!cfgs) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	n = smq_config_listeners(b->cfg, cfgs, SMQ_CONFIG_MAX_LISTENERS + 1, err, errlen);
	if (n < 0) {
		free(cfgs);
		return n;
	}
	b->lst = calloc((size_t)n, sizeof(*b->lst));
	if (!b->lst) {
		free(cfgs);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (int i = 0; i < n; i++) {
		b->lst[i].cfg = cfgs[i];
		b->lst[i].tls = smq_config_listener_tls(&cfgs[i]);
		b->lst[i].idx = (unsigned)i;
		atomic_init(&b->lst[i].conns, 0);
	}
	b->nlst = (unsigned)n;
	if (b->cfg->metrics_port >= 0) {
		b->metrics.cfg.port = b->cfg->metrics_port;
		strcpy(b->metrics.cfg.addr, b->cfg->metrics_addr);
		b->metrics.cfg.max_connections = -1;
		b->metrics.http = true;
		b->metrics.idx = SMQ_CONFIG_MAX_LISTENERS;	/* no TLS context */
		atomic_init(&b->metrics.conns, 0);
		listener_name(&b->metrics);
	}
	n = reload_build(b, b->cfg, cfgs, &b->cur, err, errlen);
	free(cfgs);
	return n;
}

struct smq_authwork *smq_broker_authwork(struct smq_broker *b)
{
	return b->authwork;
}

int smq_broker_start(struct smq_broker *b, char *err, size_t errlen)
{
	int ret = make_listeners(b, err, errlen);

	if (!ret && b->cfg->persistence) {
		b->stores = smq_stores_open(b->cfg, b->nshards, err, errlen);
		if (!b->stores)
			ret = -EIO;
		else
			smq_notice("persistence: store %s (%s)", smq_stores_path(b->stores),
				   b->cfg->persistence_sync == SMQ_SYNC_PERIODIC
					   ? "periodic: acknowledged after the commit, flushed "
					     "every autosave_interval"
					   : "commit: acknowledged after the flush to disk");
	}
	/* One checker per two shards: PBKDF2 competes with the shards for
	 * the same cores, and CONNECT bursts are short. */
	if (!ret) {
		b->authwork = smq_authwork_new(b->nshards / 2 + 1);
		if (!b->authwork) {
			snprintf(err, errlen, "cannot start the password-check threads");
			ret = -ENOMEM;
		}
	}

	for (unsigned i = 0; !ret && i < b->nshards; i++) {
		/* Named before shard 0 binds, and again once it resolved port 0. */
		if (i <= 1)
			for (unsigned j = 0; j < b->nlst; j++)
				listener_name(&b->lst[j]);
		ret = start_one(b, i, err, errlen);
	}
	let_go(b);
	if (ret) {
		smq_broker_stop(b);
		return ret;
	}
	if (b->nshards == 1)
		for (unsigned j = 0; j < b->nlst; j++)
			listener_name(&b->lst[j]);
	return 0;
}

void smq_broker_stop(struct smq_broker *b)
{
	for (unsigned i = 0; i < b->running; i++) {
		struct imsg *m = calloc(1, sizeof(*m));

		if (!m)
			abort();	/* cannot stop cleanly without it */
		m->type = IMSG_STOP;
		smq_shard_post(&b->shards[i], m);
	}
	for (unsigned i = 0; i < b->running; i++)
		pthread_join(b->shards[i].thread, NULL);
	/* Checks still queued are answered into the stopped shards' inboxes,
	 * which smq_shard_fini() empties next. */
	smq_authwork_free(b->authwork);
	b->authwork = NULL;
	/* Only now may engines go: a shard may hold messages of another. */
	for (unsigned i = 0; i < b->running; i++)
		smq_shard_fini(&b->shards[i]);
	b->running = 0;
}

void smq_broker_free(struct smq_broker *b)
{
	if (!b)
		return;
	smq_broker_stop(b);
	smq_stores_close(b->stores);	/* after the shards' last writes */
	smq_retain_free(b->retained);
	pthread_mutex_destroy(&b->start_lock);
	pthread_cond_destroy(&b->start_cond);
	reload_free_fields(&b->cur);
	free(b->shards);
	free(b->lst);
	free(b);
}
