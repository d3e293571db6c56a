/* timer.c - hierarchical timer wheel, 1 ms resolution, no per-tick work.
 *
 * Level k (0..10) has 64 slots; slot s of level k holds the timers whose
 * expiry agrees with the wheel's clock (->now) on every 6-bit digit above k
 * and has digit k equal to s, which is greater than the clock's digit k.
 * Where a timer goes follows from the highest bit in which its expiry and
 * the clock differ: a timer 3 ms away usually sits on level 0, one due in a
 * day on level 4. The slot's *boundary* is the time at which the clock's
 * digit k reaches s: the expiry with digits below k cleared.
 *
 * Invariant: every timer on the wheel expires after ->now, and so does
 * every slot's boundary; digits above a timer's level match ->now's.
 * Consequences used below: boundaries on a lower level all come before those
 * on a higher one (their digit k is the clock's, which is less than any
 * occupied slot of level k), so the next boundary is the first occupied
 * slot above the clock's digit on the lowest occupied level; and moving the
 * clock to that boundary keeps the invariant for every other timer.
 *
 * smq_timers_run() therefore jumps from boundary to boundary up to the
 * target time, never tick by tick: at each it empties the slot, fires the
 * timers that expire exactly there (all of them on level 0) and re-files the
 * rest on lower levels. A timer moves down at most once per level.
 *
 * ->used[k] has bit s set when slot s may hold timers. Cancelling does not
 * know the wheel (so that it needs no pointer to it), so a bit can be
 * stale; whoever reads a bit checks the slot and clears it if empty.
 *
 * Left to others: the clock (the caller passes times in), the io_uring
 * timeout that sleeps until smq_timers_next(), and the timers' meaning.
 */
#include "core/timer.h"

#include <stddef.h>

#define DIGIT_MASK ((uint64_t)SMQ_TIMER_SLOTS - 1)

static struct smq_timer *timer_of(struct smq_timer_link *l)
{
	return (struct smq_timer *)((char *)l - offsetof(struct smq_timer, link));
}

static void list_init(struct smq_timer_link *head)
{
	head->next = head;
	head->prev = head;
}

static bool list_empty(const struct smq_timer_link *head)
{
	return head->next == head;
}

static void list_append(struct smq_timer_link *head, struct smq_timer_link *l)
{
	l->prev = head->prev;
	l->next = head;
	head->prev->next = l;
	head->prev = l;
}

/* Move every element of @from to the (empty) list @to, leaving @from empty. */
static void list_move_all(struct smq_timer_link *from, struct smq_timer_link *to)
{
	list_init(to);
	if (list_empty(from))
		return;
	to->next = from->next;
	to->prev = from->prev;
	to->next->prev = to;
	to->prev->next = to;
	list_init(from);
}

static unsigned digit(uint64_t t, unsigned level)
{
	return (unsigned)((t >> (level * SMQ_TIMER_LEVEL_BITS)) & DIGIT_MASK);
}

/* Time @t with the digits of levels 0..@level cleared. */
static uint64_t above(uint64_t t, unsigned level)
{
	unsigned shift = (level + 1) * SMQ_TIMER_LEVEL_BITS;

	return shift >= 64 ? 0 : t >> shift << shift;
}

void smq_timers_init(struct smq_timers *ws, uint64_t now_ms)
{
	ws->now = now_ms;
	list_init(&ws->due);
	for (unsigned k = 0; k < SMQ_TIMER_LEVELS; k++) {
		ws->used[k] = 0;
		for (unsigned s = 0; s < SMQ_TIMER_SLOTS; s++)
			list_init(&ws->slot[k][s]);
	}
}

static void disarm_all(struct smq_timer_link *head)
{
	while (!list_empty(head))
		smq_timer_cancel(timer_of(head->next));
}

void smq_timers_fini(struct smq_timers *ws)
{
	disarm_all(&ws->due);
	for (unsigned k = 0; k < SMQ_TIMER_LEVELS; k++) {
		for (unsigned s = 0; s < SMQ_TIMER_SLOTS; s++)
			disarm_all(&ws->slot[k][s]);
		ws->used[k] = 0;
	}
}

void smq_timer_init(struct smq_timer *t, smq_timer_fn fn)
{
	t->link.next = NULL;
	t->link.prev = NULL;
	t->expire_ms = 0;
	t->fn = fn;
}

void smq_timer_cancel(struct smq_timer *t)
{
	struct smq_timer_link *l = &t->link;

	if (!l->next)
		return;
	l->prev->next = l->next;
	l->next->prev = l->prev;
	l->next = NULL;
	l->prev = NULL;
}

/* Insert @t into ->due, kept sorted by expiry (ties in arrival order) so
 * that a run fires overdue timers in order too. Scans from the tail: O(1)
 * in the usual case of a timer re-armed for "now". */
static void file_due(struct smq_timers *ws, struct smq_timer *t)
{
	struct smq_timer_link *at = ws->due.prev;

	while (at != &ws->due && timer_of(at)->expire_ms > t->expire_ms)
		at = at->prev;
	list_append(at->next, &t->link);	/* i.e. insert after @at */
}

/* File an unlinked @t by its expiry relative to ->now. */
static void file(struct smq_timers *ws, struct smq_timer *t)
{
	uint64_t diff = t->expire_ms ^ ws->now;
	unsigned level, s;

	if (t->expire_ms <= ws->now) {
		file_due(ws, t);
		return;
	}
	level = (unsigned)(63 - __builtin_clzll(diff)) / SMQ_TIMER_LEVEL_BITS;
	s = digit(t->expire_ms, level);
	list_append(&ws->slot[level][s], &t->link);
	ws->used[level] |= 1ull << s;
}

void smq_timer_arm(struct smq_timers *ws, struct smq_timer *t, uint64_t expire_ms)
{
	smq_timer_cancel(t);
	t->expire_ms = expire_ms;
	file(ws, t);
}

/* The first occupied slot of the lowest occupied level: its level, slot
 * and boundary time. Clears stale ->used bits on the way. */
static bool next_slot(struct smq_timers *ws, unsigned *level, unsigned *slot, uint64_t *when)
{
	for (unsigned k = 0; k < SMQ_TIMER_LEVELS; k++) {
		unsigned d = digit(ws->now, k);
		uint64_t ahead = d == DIGIT_MASK ? 0 : ~0ull << (d + 1);

		while (ws->used[k] & ahead) {
			unsigned s = (unsigned)__builtin_ctzll(ws->used[k] & ahead);

			if (list_empty(&ws->slot[k][s])) {
				ws->used[k] &= ~(1ull << s);
				continue;
			}
			*level = k;
			*slot = s;
			*when = above(ws->now, k) | (uint64_t)s << (k * SMQ_TIMER_LEVEL_BITS);
			return true;
		}
	}
	return false;
}

/* The clock has just reached slot (@k, @s)'s boundary: re-file its timers.
 * Those expiring now go to @fire, the rest to lower levels. */
static void cascade(struct smq_timers *ws, unsigned k, unsigned s, struct smq_timer_link *fire)
{
	struct smq_timer_link tmp;

	list_move_all(&ws->slot[k][s], &tmp);
	ws->used[k] &= ~(1ull << s);
	while (!list_empty(&tmp)) {
		struct smq_timer *t = timer_of(tmp.next);

		smq_timer_cancel(t);
		if (t->expire_ms <= ws->now)
			list_append(fire, &t->link);
		else
			file(ws, t);
	}
}

/* Fire everything on @fire, in order. The callback may cancel, re-arm or
 * free any timer, including ones still on @fire: take them one at a time. */
static unsigned fire_all(struct smq_timer_link *fire, void *arg)
{
	unsigned n = 0;

	while (!list_empty(fire)) {
		struct smq_timer *t = timer_of(fire->next);

		smq_timer_cancel(t);
		n++;
		t->fn(t, arg);
	}
	return n;
}

unsigned smq_timers_run(struct smq_timers *ws, uint64_t now_ms, void *arg)
{
	struct smq_timer_link fire;
	unsigned fired, k, s;
	uint64_t when;

	/* what was due before this run; re-arms for <= ->now land on the
	 * fresh ->due and wait for the next run */
	list_move_all(&ws->due, &fire);
	fired = fire_all(&fire, arg);
	while (next_slot(ws, &k, &s, &when) && when <= now_ms) {
		ws->now = when;
		cascade(ws, k, s, &fire);
		fired += fire_all(&fire, arg);
	}
	if (now_ms > ws->now)
		ws->now = now_ms;
	return fired;
}

/* The earliest expiry in slot (@k, @s), which holds the earliest timers of
 * the wheel, if it has at most NEXT_SCAN of them; else its boundary, a
 * lower bound. */
#define NEXT_SCAN 16

static uint64_t slot_min(struct smq_timers *ws, unsigned k, unsigned s, uint64_t boundary)
{
	struct smq_timer_link *head = &ws->slot[k][s], *l;
	uint64_t min = UINT64_MAX;
	unsigned n = 0;

	if (k == 0)
		return boundary;	/* every timer there expires at it */
	for (l = head->next; l != head; l = l->next) {
		if (++n > NEXT_SCAN)
			return boundary;
		if (timer_of(l)->expire_ms < min)
			min = timer_of(l)->expire_ms;
	}
	return min;
}

int64_t smq_timers_next(struct smq_timers *ws, uint64_t now_ms)
{
	unsigned k, s;
	uint64_t when;

	if (!list_empty(&ws->due))
		return 0;
	if (!next_slot(ws, &k, &s, &when))
		return -1;
	when = slot_min(ws, k, s, when);
	if (when <= now_ms)
		return 0;
	return when - now_ms > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)(when - now_ms);
}
