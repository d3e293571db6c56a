/* timer.h - a hierarchical hashed timer wheel with 1 ms resolution.
 *
 * One struct smq_timers per shard, driven by that shard's loop: it asks
 * smq_timers_next() how long it may sleep, sleeps at most that long (one
 * io_uring timeout), then calls smq_timers_run() with the current time.
 * Timers are intrusive (embed struct smq_timer in the connection, session or
 * message and recover the owner with container_of in the callback) and are
 * never allocated or freed here.
 *
 * Time is a caller-supplied uint64_t in milliseconds from any monotonic
 * origin (CLOCK_MONOTONIC ms is the intended one). Every expiry time from
 * now to UINT64_MAX works: eleven levels of 64 slots cover all 64 bits, so
 * keepalives (up to 65535 * 1.5 s) and session or message expiries of days,
 * months or years need no special case.
 *
 * Guarantees:
 *  - a timer never fires before its expire_ms, and fires in the first
 *    smq_timers_run() whose @now_ms >= expire_ms (exact to the millisecond:
 *    there is no tick to round to);
 *  - within one run, timers fire in increasing expire_ms order; timers with
 *    equal expire_ms fire in an unspecified order;
 *  - arm, re-arm and cancel are O(1); run costs O(1) per timer fired plus
 *    O(1) per timer moved down a level (each timer moves at most 10 times in
 *    its life), plus O(levels) per distinct expiry time; a long sleep with an
 *    idle wheel costs nothing extra (there is no per-tick work).
 *
 * Threads: none. A wheel and every timer armed on it belong to one thread.
 */
#ifndef SMQ_TIMER_H
#define SMQ_TIMER_H

#include <stdbool.h>
#include <stdint.h>

#define SMQ_TIMER_LEVEL_BITS 6
#define SMQ_TIMER_SLOTS (1u << SMQ_TIMER_LEVEL_BITS)	/* per level */
#define SMQ_TIMER_LEVELS 11				/* 11 * 6 >= 64 bits */

struct smq_timer;

/* Called once when @t expires; @t is already disarmed, so the callback may
 * re-arm it, arm or cancel any other timer, or free @t's owner. @arg is
 * the one given to smq_timers_run(). Must not call smq_timers_run(). */
typedef void (*smq_timer_fn)(struct smq_timer *t, void *arg);

/* Doubly linked list links; a slot head is a sentinel of the same type. */
struct smq_timer_link {
	struct smq_timer_link *next;
	struct smq_timer_link *prev;
};

struct smq_timer {
	struct smq_timer_link link;	/* private; next == NULL: not armed */
	uint64_t expire_ms;		/* read-only for users; set by arm */
	smq_timer_fn fn;		/* set by smq_timer_init(), or directly */
};

struct smq_timers {
	/* private */
	uint64_t now;					/* time of the last run */
	uint64_t used[SMQ_TIMER_LEVELS];		/* bit s: slot s may be non-empty */
	struct smq_timer_link due;			/* armed for <= now: next run */
	struct smq_timer_link slot[SMQ_TIMER_LEVELS][SMQ_TIMER_SLOTS];
};

/* Set up an empty wheel whose clock reads @now_ms. */
void smq_timers_init(struct smq_timers *ws, uint64_t now_ms);

/* Disarm every timer still on the wheel (so that a later cancel of any of
 * them is a no-op). Calls no callbacks. */
void smq_timers_fini(struct smq_timers *ws);

/* Prepare @t (not armed) with callback @fn. Call once before first use. */
void smq_timer_init(struct smq_timer *t, smq_timer_fn fn);

/* Arm @t to fire at @expire_ms (absolute). If @t is armed already, on this
 * wheel, it is moved. An expiry at or before the wheel's clock (the time of
 * the last run) fires on the next smq_timers_run(): a callback that re-arms
 * its timer for "now" therefore fires once per run, never in a loop. */
void smq_timer_arm(struct smq_timers *ws, struct smq_timer *t, uint64_t expire_ms);

/* Disarm @t. O(1); does nothing if @t is not armed. Needs no wheel. */
void smq_timer_cancel(struct smq_timer *t);

static inline bool smq_timer_armed(const struct smq_timer *t)
{
	return t->link.next != 0;
}

/* Advance the clock to @now_ms (a smaller value than the last run's is
 * taken as the last run's: the clock never goes back) and fire every timer
 * with expire_ms <= @now_ms, in expiry order, each with @arg. A timer that
 * a callback arms for a time after the expiry being processed and <= @now_ms
 * fires in this same run; one armed for the expiry being processed or
 * earlier fires in the next run. Returns the number of callbacks called. */
unsigned smq_timers_run(struct smq_timers *ws, uint64_t now_ms, void *arg);

/* Milliseconds from @now_ms until the next run has something to do, or -1
 * if no timer is armed; 0 if something is due already. Never LATER than
 * the earliest expiry, so a loop that sleeps this long never fires a timer
 * late. Exact when the earliest timers are few (their slot holds <= 16
 * timers) or on the lowest level. Otherwise it may be EARLIER: the time at
 * which the slot holding the earliest timer must be moved down a level; the
 * run then finds nothing to fire and the next call answers closer (at most
 * one such early wake-up per level, and only on a busy wheel, which wakes
 * often anyway). Clamped to INT64_MAX. O(levels) plus that scan. */
int64_t smq_timers_next(struct smq_timers *ws, uint64_t now_ms);

#endif
