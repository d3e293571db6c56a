/* session.c - session state: subscriptions list, outbound in-flight window
 * and queue, inbound QoS 2 ids.
 *
 * Subscriptions are a dense array (the engine iterates it) plus, past
 * SUB_SCAN entries, an open-addressing index from filter to position, keyed
 * by the process-keyed SipHash (core/hash.h): a client chooses its filters
 * and must not be able to make them collide. Before the index, one client
 * subscribing to 100,000 filters spent 12 s in the linear search of each
 * SUBSCRIBE (quadratic) and held its shard that long (a CONNECT meanwhile
 * waited 4.5 s); indexed, 0.16 s (perf/bench_subs.sh, one shard; figures in
 * perf/RESULTS.md, "Subscribe burst").
 *
 * Invariants:
 *  - sub_idx is NULL or holds exactly the positions 0 .. nsubs - 1, each in
 *    the probe run of its entry's hash, at load <= 1/2;
 *  - every entry on the in-flight list has a non-zero packet id that maps to
 *    it in s->out, and no other id is in s->out (so ids are unique among
 *    messages in flight [MQTT-2.3.1-2]);
 *  - queued entries have pid 0 and are counted in nqueued / queued_bytes,
 *    which never exceed the limits given at push time;
 *  - an entry holds one message reference until it is RELEASED or freed.
 *
 * Left to the engine: encoding and sending, deciding the window, expiry
 * timers, the will, attaching connections.
 */
#include "core/session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/msg.h"

enum { SLOT_EMPTY = 0, SLOT_LIVE, SLOT_TOMB };

struct smq_pidslot {
	void *v;
	uint16_t pid;
	uint8_t state;
};

/* ---- packet id map ---------------------------------------------------- */

/* Header and slots in one allocation, made on the first put: most sessions
 * never have a packet id in flight in one direction or the other, and an
 * absent map costs a pointer instead of the header. */
struct smq_pidmap {
	uint32_t cap;			/* a power of two */
	uint32_t n;
	uint32_t used;			/* live + tombstones */
	struct smq_pidslot slots[];
};

static uint32_t pm_count(const struct smq_pidmap *m)
{
	return m ? m->n : 0;
}

static struct smq_pidslot *pm_find(struct smq_pidmap *m, uint16_t pid)
{
	if (!m)
		return NULL;
	for (uint32_t i = (pid * 40503u) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		struct smq_pidslot *sl = &m->slots[i];

		if (sl->state == SLOT_EMPTY)
			return NULL;
		if (sl->state == SLOT_LIVE && sl->pid == pid)
			return sl;
	}
}

static int pm_resize(struct smq_pidmap **mp, uint32_t cap)
{
	struct smq_pidmap *old = *mp, *m = calloc(1, sizeof(*m) + cap * sizeof(m->slots[0]));

	if (!m)
		return -ENOMEM;
	m->cap = cap;
	m->n = m->used = old ? old->n : 0;
	for (uint32_t i = 0; old && i < old->cap; i++) {
		uint32_t j;

		if (old->slots[i].state != SLOT_LIVE)
			continue;
		for (j = (old->slots[i].pid * 40503u) & (cap - 1); m->slots[j].state;
		     j = (j + 1) & (cap - 1))
			;
		m->slots[j] = old->slots[i];
	}
	free(old);
	*mp = m;
	return 0;
}

/* Insert @pid (known absent). */
static int pm_put(struct smq_pidmap **mp, uint16_t pid, void *v)
{
	struct smq_pidmap *m = *mp;
	uint32_t i;

	if (!m || (m->used + 1) * 4 >= m->cap * 3) {
		uint32_t cap = m ? m->cap : 8, n = pm_count(m);

		while ((n + 1) * 2 >= cap)
			cap *= 2;
		if (pm_resize(mp, cap))
			return -ENOMEM;
		m = *mp;
	}
	for (i = (pid * 40503u) & (m->cap - 1); m->slots[i].state == SLOT_LIVE;
	     i = (i + 1) & (m->cap - 1))
		;
	if (m->slots[i].state == SLOT_EMPTY)
		m->used++;
	m->slots[i] = (struct smq_pidslot){ v, pid, SLOT_LIVE };
	m->n++;
	return 0;
}

static void pm_del(struct smq_pidmap *m, struct smq_pidslot *sl)
{
	sl->state = SLOT_TOMB;
	sl->v = NULL;
	m->n--;
	if (!m->n) {		/* cheap full reset: no tombstones left behind */
		memset(m->slots, 0, m->cap * sizeof(m->slots[0]));
		m->used = 0;
	}
}

static void pm_fini(struct smq_pidmap **mp)
{
	free(*mp);
	*mp = NULL;
}

/* ---- life ------------------------------------------------------------- */

uint32_t smq_session_hash(struct smq_str id)
{
	return (uint32_t)smq_hash_bytes(id.p, id.len);
}

/* An idle connection's session: with a client id of up to 15 bytes it
 * takes jemalloc's 192-byte class (the next is 224). */
_Static_assert(sizeof(struct smq_session) + 16 <= 192, "struct smq_session grew");

struct smq_session *smq_session_new(struct smq_str client_id)
{
	struct smq_session *s;

	if (client_id.len > 65535u)
		return NULL;
	s = calloc(1, sizeof(*s) + client_id.len + 1u);
	if (!s)
		return NULL;
	if (client_id.len)
		memcpy(s->client_id, client_id.p, client_id.len);
	s->id_len = (uint16_t)client_id.len;
	s->hash = smq_session_hash(client_id);
	s->next_pid = 1;
	return s;
}

struct smq_session_rare *smq_session_rare(struct smq_session *s)
{
	struct smq_session_rare *r = s->rare;

	if (r)
		return r;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->s = s;
	smq_timer_init(&r->expiry_timer, NULL);
	smq_timer_init(&r->will_timer, NULL);
	s->rare = r;
	return r;
}

static void rare_free(struct smq_session_rare *r)
{
	if (!r)
		return;
	while (r->in_pend) {
		struct smq_inpend *p = r->in_pend;

		r->in_pend = p->next;
		smq_msg_unref(p->msg);
		free(p);
	}
	smq_timer_cancel(&r->expiry_timer);
	smq_timer_cancel(&r->will_timer);
	smq_msg_unref(r->will);
	if (r->done)
		free(r->done->v);
	free(r->done);
	free(r);
}

void smq_qmsg_free(struct smq_qmsg *q)
{
	if (!q)
		return;
	smq_msg_unref(q->msg);
	free(q);
}

static void free_list(struct smq_qmsg *q)
{
	while (q) {
		struct smq_qmsg *next = q->next;

		smq_qmsg_free(q);
		q = next;
	}
}

static void free_subs(struct smq_session *s)
{
	for (uint32_t i = 0; i < s->nsubs; i++)
		free(s->subs[i].filter);
	free(s->subs);
	free(s->sub_idx);
	s->subs = NULL;
	s->sub_idx = NULL;
	s->nsubs = s->subs_cap = s->sub_idx_cap = 0;
}

void smq_session_reset(struct smq_session *s)
{
	free_list(s->fl_head);
	free_list(s->q_head);
	s->fl_head = s->fl_tail = s->q_head = s->q_tail = NULL;
	s->ninflight = s->nqueued = 0;
	s->queued_bytes = 0;
	pm_fini(&s->out);
	pm_fini(&s->in);
	free_subs(s);
}

void smq_session_free(struct smq_session *s)
{
	if (!s)
		return;
	rare_free(s->rare);
	smq_session_reset(s);
	free(s->user);
	free(s);
}

/* ---- subscriptions ---------------------------------------------------- */

/* Up to this many subscriptions are scanned (no index to allocate): most
 * clients hold a handful. */
#define SUB_SCAN 8u

static bool sub_eq(const struct smq_ssub *e, struct smq_str f, uint32_t h)
{
	return e->hash == h && e->len == f.len && !memcmp(e->filter, f.p, f.len);
}

/* The index slot holding @f, or the empty slot that ends its probe run. */
static uint32_t sidx_slot(const struct smq_session *s, struct smq_str f, uint32_t h)
{
	uint32_t mask = s->sub_idx_cap - 1, i = h & mask;

	while (s->sub_idx[i] && !sub_eq(&s->subs[s->sub_idx[i] - 1], f, h))
		i = (i + 1) & mask;
	return i;
}

/* The index slot holding position @pos (which is indexed). */
static uint32_t sidx_slot_of(const struct smq_session *s, uint32_t pos)
{
	uint32_t mask = s->sub_idx_cap - 1, i = s->subs[pos].hash & mask;

	while (s->sub_idx[i] != pos + 1)
		i = (i + 1) & mask;
	return i;
}

static void sidx_insert(struct smq_session *s, uint32_t pos)
{
	uint32_t mask = s->sub_idx_cap - 1, i = s->subs[pos].hash & mask;

	while (s->sub_idx[i])
		i = (i + 1) & mask;
	s->sub_idx[i] = pos + 1;
}

/* (Re)build the index of the nsubs entries at @cap slots. */
static int sidx_build(struct smq_session *s, uint32_t cap)
{
	uint32_t *idx = calloc(cap, sizeof(*idx));

	if (!idx)
		return -ENOMEM;
	free(s->sub_idx);
	s->sub_idx = idx;
	s->sub_idx_cap = cap;
	for (uint32_t k = 0; k < s->nsubs; k++)
		sidx_insert(s, k);
	return 0;
}

/* Empty slot @i, shifting the rest of its run back (no tombstones, so
 * lookups never slow down under subscribe / unsubscribe churn). */
static void sidx_erase(struct smq_session *s, uint32_t i)
{
	uint32_t mask = s->sub_idx_cap - 1, j = i, home;

	for (;;) {
		s->sub_idx[i] = 0;
		for (;;) {
			j = (j + 1) & mask;
			if (!s->sub_idx[j])
				return;
			home = s->subs[s->sub_idx[j] - 1].hash & mask;
			/* move j back to i unless its home lies in (i, j] */
			if (i <= j ? (home <= i || home > j) : (home <= i && home > j))
				break;
		}
		s->sub_idx[i] = s->sub_idx[j];
		i = j;
	}
}

/* Position of @f in s->subs, or -1. */
static int64_t sub_pos(const struct smq_session *s, struct smq_str f, uint32_t h)
{
	uint32_t i;

	if (s->sub_idx) {
		i = sidx_slot(s, f, h);
		return s->sub_idx[i] ? (int64_t)s->sub_idx[i] - 1 : -1;
	}
	for (i = 0; i < s->nsubs; i++)
		if (sub_eq(&s->subs[i], f, h))
			return i;
	return -1;
}

struct smq_ssub *smq_session_sub_find(struct smq_session *s, struct smq_str filter)
{
	int64_t pos = sub_pos(s, filter, (uint32_t)smq_hash_bytes(filter.p, filter.len));

	return pos < 0 ? NULL : &s->subs[pos];
}

/* Room in s->subs, and in the index, for one more entry. */
static int sub_reserve(struct smq_session *s)
{
	if (s->nsubs == s->subs_cap) {
		uint32_t cap = s->subs_cap ? s->subs_cap * 2 : 4;
		struct smq_ssub *v = realloc(s->subs, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->subs = v;
		s->subs_cap = cap;
	}
	if (s->nsubs + 1 > SUB_SCAN && (s->nsubs + 1) * 2 > s->sub_idx_cap)
		return sidx_build(s, s->sub_idx_cap ? s->sub_idx_cap * 2 : 4 * SUB_SCAN);
	return 0;
}

int smq_session_sub_put(struct smq_session *s, struct smq_str filter, uint8_t opts,
			uint32_t sub_id)
{
	uint32_t h = (uint32_t)smq_hash_bytes(filter.p, filter.len);
	int64_t pos = sub_pos(s, filter, h);
	struct smq_ssub *e;
	char *copy;

	if (pos < 0) {
		if (filter.len > 65535u)
			return -EINVAL;
		copy = malloc(filter.len + 1u);
		if (!copy || sub_reserve(s)) {
			free(copy);
			return -ENOMEM;
		}
		memcpy(copy, filter.p, filter.len);
		copy[filter.len] = 0;
		pos = s->nsubs++;
		s->subs[pos] = (struct smq_ssub){ .filter = copy, .len = (uint16_t)filter.len,
						  .hash = h };
		if (s->sub_idx)
			sidx_insert(s, (uint32_t)pos);
	}
	e = &s->subs[pos];
	e->opts = opts;
	e->sub_id = sub_id;
	return 0;
}

int smq_session_sub_del(struct smq_session *s, struct smq_str filter)
{
	uint32_t h = (uint32_t)smq_hash_bytes(filter.p, filter.len), last;
	int64_t pos = sub_pos(s, filter, h);

	if (pos < 0)
		return -ENOENT;
	last = s->nsubs - 1;
	if (s->sub_idx) {
		sidx_erase(s, sidx_slot(s, filter, h));
		/* the last entry fills the hole: re-point its slot first */
		if (pos != last)
			s->sub_idx[sidx_slot_of(s, last)] = (uint32_t)pos + 1;
	}
	free(s->subs[pos].filter);
	s->subs[pos] = s->subs[last];
	s->nsubs--;
	return 0;
}

/* ---- outbound --------------------------------------------------------- */

static struct smq_qmsg *qmsg_new(struct smq_msg *msg, uint8_t qos, bool retain,
				 const uint32_t *ids, uint16_t nids)
{
	struct smq_qmsg *q = malloc(sizeof(*q) + (size_t)nids * sizeof(uint32_t));

	if (!q)
		return NULL;
	*q = (struct smq_qmsg){ .msg = smq_msg_ref(msg), .qos = qos, .retain = retain,
				.nids = nids, .uid = msg->uid };
	if (nids)
		memcpy(q->ids, ids, (size_t)nids * sizeof(uint32_t));
	return q;
}

static void link_tail(struct smq_qmsg **head, struct smq_qmsg **tail, struct smq_qmsg *q)
{
	q->next = NULL;
	q->prev = *tail;
	if (*tail)
		(*tail)->next = q;
	else
		*head = q;
	*tail = q;
}

static void unlink_q(struct smq_qmsg **head, struct smq_qmsg **tail, struct smq_qmsg *q)
{
	if (q->prev)
		q->prev->next = q->next;
	else
		*head = q->next;
	if (q->next)
		q->next->prev = q->prev;
	else
		*tail = q->prev;
	q->next = q->prev = NULL;
}

int smq_session_push(struct smq_session *s, struct smq_msg *msg, uint8_t qos, bool retain,
		     const uint32_t *ids, uint16_t nids, const struct smq_session_limits *lim)
{
	size_t size = smq_msg_size(msg);
	struct smq_qmsg *q;

	if (s->nqueued >= lim->max_queued)
		return -ENOSPC;
	if (lim->max_queued_bytes && s->queued_bytes + size > lim->max_queued_bytes)
		return -ENOSPC;
	q = qmsg_new(msg, qos, retain, ids, nids);
	if (!q)
		return -ENOMEM;
	link_tail(&s->q_head, &s->q_tail, q);
	s->nqueued++;
	s->queued_bytes += size;
	return 0;
}

/* Allocate an unused outbound packet id, or 0 when all are in use. */
static uint16_t pid_alloc(struct smq_session *s)
{
	if (pm_count(s->out) >= 65535u)
		return 0;
	for (;;) {
		uint16_t pid = s->next_pid;

		s->next_pid = pid == 65535u ? 1 : (uint16_t)(pid + 1);
		if (!pm_find(s->out, pid))
			return pid;
	}
}

/* Put @q in flight with a fresh id. */
static int fly(struct smq_session *s, struct smq_qmsg *q)
{
	uint16_t pid = pid_alloc(s);

	if (!pid || pm_put(&s->out, pid, q))
		return -ENOMEM;
	q->pid = pid;
	q->state = SMQ_QS_PUBLISHED;
	link_tail(&s->fl_head, &s->fl_tail, q);
	s->ninflight++;
	return 0;
}

struct smq_qmsg *smq_session_fly(struct smq_session *s, struct smq_msg *msg, uint8_t qos,
				 bool retain, const uint32_t *ids, uint16_t nids)
{
	struct smq_qmsg *q = qmsg_new(msg, qos, retain, ids, nids);

	if (q && fly(s, q)) {
		smq_qmsg_free(q);
		q = NULL;
	}
	return q;
}

bool smq_session_window_open(const struct smq_session *s, uint32_t window)
{
	return !window || s->ninflight < window;
}

struct smq_qmsg *smq_session_take(struct smq_session *s, uint32_t window)
{
	struct smq_qmsg *q = s->q_head;

	if (!q)
		return NULL;
	if (q->qos && !smq_session_window_open(s, window))
		return NULL;
	if (q->qos && pm_count(s->out) >= 65535u)
		return NULL;
	unlink_q(&s->q_head, &s->q_tail, q);
	s->nqueued--;
	s->queued_bytes -= smq_msg_size(q->msg);
	if (!q->qos)
		return q;
	if (fly(s, q)) {	/* ENOMEM: keep it queued for a later try */
		link_tail(&s->q_head, &s->q_tail, q);
		s->nqueued++;
		s->queued_bytes += smq_msg_size(q->msg);
		return NULL;
	}
	return q;
}

void smq_session_drop(struct smq_session *s, struct smq_qmsg *q)
{
	if (q->state == SMQ_QS_QUEUED) {
		unlink_q(&s->q_head, &s->q_tail, q);
		s->nqueued--;
		s->queued_bytes -= smq_msg_size(q->msg);
	} else {
		struct smq_pidslot *sl = pm_find(s->out, q->pid);

		if (sl)
			pm_del(s->out, sl);
		unlink_q(&s->fl_head, &s->fl_tail, q);
		s->ninflight--;
	}
	smq_qmsg_free(q);
}

struct smq_qmsg *smq_session_inflight(const struct smq_session *s, uint16_t pid)
{
	struct smq_pidslot *sl = pm_find(s->out, pid);

	return sl ? sl->v : NULL;
}

int smq_session_puback(struct smq_session *s, uint16_t pid)
{
	struct smq_qmsg *q = smq_session_inflight(s, pid);

	if (!q)
		return -ENOENT;
	if (q->qos != 1)
		return -EPROTO;
	smq_session_drop(s, q);
	return 0;
}

int smq_session_pubrec(struct smq_session *s, uint16_t pid)
{
	struct smq_qmsg *q = smq_session_inflight(s, pid);

	if (!q)
		return -ENOENT;
	if (q->qos != 2)
		return -EPROTO;
	if (q->state == SMQ_QS_PUBLISHED) {
		/* [MQTT-4.3.3-1] the message is no longer re-sent: only PUBREL */
		q->state = SMQ_QS_RELEASED;
		smq_msg_unref(q->msg);
		q->msg = NULL;
	}
	return 0;
}

int smq_session_pubcomp(struct smq_session *s, uint16_t pid)
{
	struct smq_qmsg *q = smq_session_inflight(s, pid);

	if (!q)
		return -ENOENT;
	if (q->state != SMQ_QS_RELEASED)
		return -EPROTO;
	smq_session_drop(s, q);
	return 0;
}

/* ---- inbound QoS 2 ---------------------------------------------------- */

int smq_session_in_publish(struct smq_session *s, uint16_t pid)
{
	if (pm_find(s->in, pid))
		return 0;
	return pm_put(&s->in, pid, s) ? -ENOMEM : 1;
}

int smq_session_in_release(struct smq_session *s, uint16_t pid)
{
	struct smq_pidslot *sl = pm_find(s->in, pid);

	if (!sl)
		return -ENOENT;
	pm_del(s->in, sl);
	return 0;
}

bool smq_session_in_has(const struct smq_session *s, uint16_t pid)
{
	return pm_find(s->in, pid) != NULL;
}

uint32_t smq_session_in_count(const struct smq_session *s)
{
	return pm_count(s->in);
}

/* ---- restore ---------------------------------------------------------- */

struct smq_qmsg *smq_session_restore_flight(struct smq_session *s, struct smq_msg *msg,
					    uint8_t qos, bool retain, const uint32_t *ids,
					    uint16_t nids, uint16_t pid, uint8_t state)
{
	struct smq_qmsg *q;

	if (!pid || pm_find(s->out, pid) || (state == SMQ_QS_PUBLISHED) != (msg != NULL))
		return NULL;
	q = malloc(sizeof(*q) + (size_t)nids * sizeof(uint32_t));
	if (!q)
		return NULL;
	*q = (struct smq_qmsg){ .msg = msg ? smq_msg_ref(msg) : NULL, .pid = pid, .qos = qos,
				.state = state, .retain = retain, .sent = true, .nids = nids,
				.uid = msg ? msg->uid : 0 };
	if (nids)
		memcpy(q->ids, ids, (size_t)nids * sizeof(uint32_t));
	if (pm_put(&s->out, pid, q)) {
		smq_qmsg_free(q);
		return NULL;
	}
	link_tail(&s->fl_head, &s->fl_tail, q);
	s->ninflight++;
	return q;
}

uint32_t smq_session_in_list(const struct smq_session *s, uint16_t *out, uint32_t max)
{
	uint32_t n = 0;

	for (uint32_t i = 0; s->in && i < s->in->cap && n < max; i++)
		if (s->in->slots[i].state == SLOT_LIVE)
			out[n++] = s->in->slots[i].pid;
	return n;
}
