/* test_timer.c - the timer wheel: expiry exactness, order, cancel, re-arm
 * from callbacks, far timers, next(), and a random comparison against a
 * naive reference model. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/timer.h"

#define MAXT 512

struct tt {
	struct smq_timer t;	/* first, so a cast recovers the owner */
	int id;
	uint64_t period;	/* re-arm by this much when fired; 0: no */
	struct tt *victim;	/* cancel this one when fired */
	bool rearm_now;		/* re-arm for the wheel's current time */
};

struct log {
	int n;
	int id[4 * MAXT];
	uint64_t expire[4 * MAXT];
	struct smq_timers *ws;
};

static struct smq_timers ws;
static struct tt tts[MAXT];
static struct log lg;

static void on_fire(struct smq_timer *t, void *arg)
{
	struct tt *x = (struct tt *)t;
	struct log *l = arg;

	cr_assert_not(smq_timer_armed(t), "a firing timer is already disarmed");
	cr_assert_lt(l->n, 4 * MAXT);
	l->id[l->n] = x->id;
	l->expire[l->n] = t->expire_ms;
	l->n++;
	if (x->victim)
		smq_timer_cancel(&x->victim->t);
	if (x->period)
		smq_timer_arm(l->ws, t, t->expire_ms + x->period);
	if (x->rearm_now)
		smq_timer_arm(l->ws, t, t->expire_ms);
}

static void setup_at(uint64_t now)
{
	smq_timers_init(&ws, now);
	memset(&lg, 0, sizeof(lg));
	lg.ws = &ws;
	for (int i = 0; i < MAXT; i++) {
		memset(&tts[i], 0, sizeof(tts[i]));
		smq_timer_init(&tts[i].t, on_fire);
		tts[i].id = i;
	}
}

static void setup(void)
{
	setup_at(1000);
}

TestSuite(core_timer, .init = setup, .timeout = 10);

static unsigned run(uint64_t now)
{
	return smq_timers_run(&ws, now, &lg);
}

Test(core_timer, fires_at_expiry_never_before)
{
	smq_timer_arm(&ws, &tts[0].t, 1100);
	cr_assert(smq_timer_armed(&tts[0].t));
	cr_assert_eq(run(1099), 0);
	cr_assert_eq(lg.n, 0);
	cr_assert_eq(run(1100), 1);
	cr_assert_eq(lg.id[0], 0);
	cr_assert_not(smq_timer_armed(&tts[0].t));
	cr_assert_eq(run(5000), 0, "fires once");
}

Test(core_timer, late_run_fires_everything_due_in_expiry_order)
{
	uint64_t exp[] = { 1500, 1001, 70000, 1064, 1063, 5000, 1200, 4096 + 1000, 1002 };
	int n = sizeof(exp) / sizeof(exp[0]);

	for (int i = 0; i < n; i++)
		smq_timer_arm(&ws, &tts[i].t, exp[i]);
	smq_timer_arm(&ws, &tts[n].t, 70001);	/* not due */
	cr_assert_eq(run(70000), (unsigned)n);
	for (int i = 1; i < n; i++)
		cr_assert_leq(lg.expire[i - 1], lg.expire[i], "order at %d", i);
	cr_assert_eq(lg.expire[n - 1], 70000);
	cr_assert(smq_timer_armed(&tts[n].t));
}

Test(core_timer, expiry_in_the_past_fires_on_next_run)
{
	run(2000);
	smq_timer_arm(&ws, &tts[1].t, 10);
	smq_timer_arm(&ws, &tts[2].t, 2000);
	cr_assert_eq(smq_timers_next(&ws, 2000), 0);
	cr_assert_eq(run(2000), 2);
	cr_assert_eq(smq_timers_next(&ws, 2000), -1);
}

Test(core_timer, cancel_prevents_firing_and_is_idempotent)
{
	smq_timer_cancel(&tts[0].t);	/* never armed: no-op */
	smq_timer_arm(&ws, &tts[0].t, 1010);
	smq_timer_arm(&ws, &tts[1].t, 1010);
	smq_timer_arm(&ws, &tts[2].t, 900000);
	smq_timer_cancel(&tts[0].t);
	smq_timer_cancel(&tts[0].t);
	smq_timer_cancel(&tts[2].t);
	cr_assert_not(smq_timer_armed(&tts[0].t));
	cr_assert_eq(run(10000000), 1);
	cr_assert_eq(lg.id[0], 1);
	cr_assert_eq(smq_timers_next(&ws, 10000000), -1, "cancelled timers leave nothing");
}

Test(core_timer, rearm_moves_the_timer)
{
	smq_timer_arm(&ws, &tts[0].t, 1010);
	smq_timer_arm(&ws, &tts[0].t, 3000);	/* later */
	cr_assert_eq(run(2999), 0);
	cr_assert_eq(run(3000), 1);
	smq_timer_arm(&ws, &tts[0].t, 900000);
	smq_timer_arm(&ws, &tts[0].t, 3005);	/* earlier, from a far level */
	cr_assert_eq(run(3005), 1);
	cr_assert_eq(lg.n, 2);
	cr_assert_eq(lg.expire[1], 3005);
}

Test(core_timer, periodic_rearm_in_callback_fires_each_period_in_one_run)
{
	tts[0].period = 10;
	smq_timer_arm(&ws, &tts[0].t, 1010);
	cr_assert_eq(run(1100), 10);
	for (int i = 0; i < 10; i++)
		cr_assert_eq(lg.expire[i], 1010 + 10 * (uint64_t)i);
	cr_assert(smq_timer_armed(&tts[0].t));
	cr_assert_eq(tts[0].t.expire_ms, 1110);
}

Test(core_timer, rearm_for_now_in_callback_waits_for_next_run)
{
	tts[0].rearm_now = true;
	smq_timer_arm(&ws, &tts[0].t, 1005);
	cr_assert_eq(run(1005), 1);
	cr_assert_eq(smq_timers_next(&ws, 1005), 0);
	cr_assert_eq(run(1005), 1);
	cr_assert_eq(run(1006), 1);
	smq_timer_cancel(&tts[0].t);
	cr_assert_eq(run(1007), 0);
}

Test(core_timer, callback_cancels_a_timer_due_at_the_same_time)
{
	tts[0].victim = &tts[1];
	smq_timer_arm(&ws, &tts[0].t, 1050);
	smq_timer_arm(&ws, &tts[1].t, 1050);
	tts[2].victim = &tts[3];
	smq_timer_arm(&ws, &tts[2].t, 1060);
	smq_timer_arm(&ws, &tts[3].t, 1061);
	/* 0 and 1 are tied: whichever fires first decides; 3 must not fire */
	tts[1].victim = &tts[0];
	unsigned n = run(2000);
	cr_assert_eq(n, 2, "one of the tied pair and timer 2");
	cr_assert_eq(lg.id[1], 2);
	cr_assert_not(smq_timer_armed(&tts[3].t));
}

static void free_self(struct smq_timer *t, void *arg)
{
	(*(int *)arg)++;
	free(t);
}

Test(core_timer, callback_may_free_its_timer)
{
	int count = 0;

	for (int i = 0; i < 3; i++) {
		struct smq_timer *t = malloc(sizeof(*t));

		cr_assert_not_null(t);
		smq_timer_init(t, free_self);
		smq_timer_arm(&ws, t, 1001 + (uint64_t)i);
	}
	cr_assert_eq(smq_timers_run(&ws, 5000, &count), 3);
	cr_assert_eq(count, 3);
}

Test(core_timer, keepalive_and_day_long_timers_fire_on_time)
{
	uint64_t keepalive = 65535ull * 1500;	/* 1.5 x the largest keepalive */
	uint64_t week = 7ull * 24 * 3600 * 1000;
	uint64_t decade = 10ull * 365 * 24 * 3600 * 1000;

	smq_timer_arm(&ws, &tts[0].t, 1000 + keepalive);
	smq_timer_arm(&ws, &tts[1].t, 1000 + week);
	smq_timer_arm(&ws, &tts[2].t, 1000 + decade);
	smq_timer_arm(&ws, &tts[3].t, UINT64_MAX);
	cr_assert_eq(run(1000 + keepalive - 1), 0);
	cr_assert_eq(run(1000 + keepalive), 1);
	cr_assert_eq(run(1000 + week - 1), 0);
	cr_assert_eq(run(1000 + week), 1);
	cr_assert_eq(run(1000 + decade - 1), 0);
	cr_assert_eq(run(1000 + decade), 1);
	cr_assert_eq(run(UINT64_MAX - 1), 0);
	cr_assert_eq(run(UINT64_MAX), 1);
	cr_assert_eq(lg.id[3], 3);
}

Test(core_timer, long_idle_jump_is_cheap)
{
	/* a per-tick wheel would need 10^12 steps here (and time out) */
	cr_assert_eq(run(1000000000000ull), 0);
	smq_timer_arm(&ws, &tts[0].t, 1000000000500ull);
	cr_assert_eq(run(2000000000000ull), 1);
}

Test(core_timer, next_is_minus_one_when_idle_and_exact_when_sparse)
{
	cr_assert_eq(smq_timers_next(&ws, 1000), -1);
	smq_timer_arm(&ws, &tts[0].t, 1037);	/* crosses a level-1 digit */
	cr_assert_eq(smq_timers_next(&ws, 1000), 37);
	cr_assert_eq(smq_timers_next(&ws, 1030), 7);
	smq_timer_arm(&ws, &tts[1].t, 1000 + 86400000);
	smq_timer_arm(&ws, &tts[2].t, 1000 + 3600000);
	cr_assert_eq(smq_timers_next(&ws, 1000), 37);
	smq_timer_cancel(&tts[0].t);
	cr_assert_eq(smq_timers_next(&ws, 1000), 3600000);
	cr_assert_eq(smq_timers_next(&ws, 3601000), 0, "overdue");
}

Test(core_timer, next_on_a_busy_slot_is_early_never_late)
{
	/* 100 timers spread over one level-2 slot: next() may answer the
	 * slot's start instead of scanning them all, but never later than
	 * the earliest */
	for (int i = 0; i < 100; i++)
		smq_timer_arm(&ws, &tts[i].t, 8192 + 500 + 30 * (uint64_t)i);
	int64_t d = smq_timers_next(&ws, 1000);
	cr_assert_gt(d, 0);
	cr_assert_leq(d, 8192 + 500 - 1000);
	cr_assert_eq(run(1000 + (uint64_t)d), d == 7692 ? 1 : 0);
}

/* Sleep exactly as long as next() says, repeatedly: the timer must fire
 * at its expiry, never late, after a handful of early wake-ups at most. */
static void sleep_loop_reaches(uint64_t start, uint64_t delay)
{
	uint64_t now = start, target = start + delay;
	int wakeups = 0;

	setup_at(start);
	smq_timer_arm(&ws, &tts[0].t, target);
	while (lg.n == 0) {
		int64_t d = smq_timers_next(&ws, now);

		cr_assert_geq(d, 0);
		cr_assert_leq(now + (uint64_t)d, target, "next() must never overshoot");
		now += (uint64_t)d;
		run(now);
		cr_assert_lt(++wakeups, SMQ_TIMER_LEVELS + 2, "too many wake-ups");
	}
	cr_assert_eq(now, target);
	cr_assert_eq(smq_timers_next(&ws, now), -1);
}

Test(core_timer, next_never_overshoots_far_timers)
{
	sleep_loop_reaches(1000, 98302500);			/* keepalive */
	sleep_loop_reaches(123456789, 86400000ull * 3 + 7);	/* days */
	sleep_loop_reaches((1ull << 42) - 1, 5);		/* across digits */
	sleep_loop_reaches((1ull << 62) + 12345, 1ull << 61);
	sleep_loop_reaches(0, UINT64_MAX);
}

Test(core_timer, fini_disarms_everything)
{
	smq_timer_arm(&ws, &tts[0].t, 1);
	smq_timer_arm(&ws, &tts[1].t, 5000);
	smq_timer_arm(&ws, &tts[2].t, 1ull << 50);
	smq_timers_fini(&ws);
	for (int i = 0; i < 3; i++)
		cr_assert_not(smq_timer_armed(&tts[i].t));
	smq_timer_cancel(&tts[1].t);
}

/* Random arms, re-arms, cancels and runs, against a model that simply
 * scans every timer: each run must fire exactly the armed timers with
 * expire <= now, in non-decreasing expiry order. */
static uint64_t rng = 88172645463325252ull;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static uint64_t random_delay(void)
{
	switch (rnd() % 6) {
	case 0: return rnd() % 3;
	case 1: return rnd() % 64;
	case 2: return rnd() % 5000;
	case 3: return rnd() % 300000;
	case 4: return rnd() % 100000000;
	default: return rnd() % (1ull << (rnd() % 50));
	}
}

static uint64_t sat_add(uint64_t a, uint64_t b)
{
	return a + b < a ? UINT64_MAX : a + b;
}

static void random_round(uint64_t start)
{
	bool model[MAXT] = { 0 };
	uint64_t now = start;

	setup_at(start);
	for (int step = 0; step < 4000; step++) {
		int i = (int)(rnd() % MAXT);
		unsigned r = (unsigned)(rnd() % 10);

		if (r < 6) {
			uint64_t at = sat_add(now, random_delay()) - (rnd() % 8 == 0);

			smq_timer_arm(&ws, &tts[i].t, at);
			model[i] = true;
		} else if (r < 8) {
			smq_timer_cancel(&tts[i].t);
			model[i] = false;
		} else {
			int expect = 0, base = lg.n;

			now = sat_add(now, random_delay() / (1 + rnd() % 64));
			for (int j = 0; j < MAXT; j++)
				expect += model[j] && tts[j].t.expire_ms <= now;
			cr_assert_eq(run(now), (unsigned)expect, "step %d", step);
			for (int k = base; k < lg.n; k++) {
				cr_assert(model[lg.id[k]], "fired a timer that was not armed");
				cr_assert_leq(lg.expire[k], now);
				cr_assert(k == base || lg.expire[k - 1] <= lg.expire[k]);
				model[lg.id[k]] = false;
			}
			lg.n = 0;
		}
		for (int j = 0; j < MAXT; j += 61)
			cr_assert_eq(smq_timer_armed(&tts[j].t), model[j]);
	}
}

Test(core_timer, random_operations_match_reference_model)
{
	random_round(0);
	random_round(1000);
	random_round((1ull << 36) - 17);
	random_round(0xfffffff000000000ull);
}
