/* The pre-copy policy (src/migration/policy.h): the expected-downtime
 * arithmetic, every rung of the ladder — converged, auto-converge, stalled,
 * convergence-timeout — with its final action, the hard bounds, the stall
 * rule (a round without progress climbs at once when the guest dirtied at
 * least POLICY_FAST_DIRTY_PCT % of what the link sent, after
 * POLICY_STALL_ROUNDS such rounds otherwise), the extra rounds below the
 * limit (at most POLICY_EXTRA_ROUNDS, while rounds shrink what remains by
 * at least POLICY_EXTRA_SHRINK_PCT % and the pause would take more than
 * half the limit) and the round after one (a pause over the limit then
 * switches over all the same: it fitted a round ago), and property tests
 * that drive the policy with thousands of random rounds and simulated
 * guests and check that a migration always ends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "migration/policy.h"

#define MS 1000000ull
#define SEC 1000000000ull
#define MIB (1024ull * 1024)
#define GIB (1024ull * MIB)

/* The figures most tests use: 1 GiB/s, no fixed cost, a second per pass. */
#define BW GIB

static const struct policy_params default_params = {
	.downtime_limit_ns = 300 * MS,
	.auto_converge = false,
	.convergence_timeout_ns = 0,
	.final_action = POLICY_FINAL_SUSPEND,
};

static struct policy_round round_of(unsigned pass, uint64_t remaining, uint64_t dirty_rate)
{
	return (struct policy_round){
		.pass = pass,
		.elapsed_ns = pass * SEC,
		.remaining_bytes = remaining,
		.bandwidth_Bps = BW,
		.dirty_rate_Bps = dirty_rate,
		.fixed_cost_ns = 0,
	};
}

/* The round r decided, checking what every decision must satisfy,
 * whatever the round. */
static struct policy_decision decide_round(const struct policy_params *p, struct policy_state *st,
					   const struct policy_round *r)
{
	const struct policy_state before = *st;
	struct policy_decision d = policy_decide(p, st, r);

	assert_int_equal(d.expected_downtime_ns, policy_expected_downtime(r));
	assert_int_equal(d.throttle_pct, st->throttle_pct);
	assert_int_equal(st->prev_remaining, r->remaining_bytes);
	assert_true(st->extra_rounds <= POLICY_EXTRA_ROUNDS);
	/* After an extra round, a pause over the limit switches over, before
	 * anything else is looked at or counted. */
	if (before.extra_rounds && d.expected_downtime_ns > p->downtime_limit_ns) {
		assert_int_equal(d.action, POLICY_SWITCHOVER);
		assert_int_equal(d.rung, before.throttle_pct ? POLICY_RUNG_THROTTLED
							     : POLICY_RUNG_CONVERGED);
		assert_int_equal(st->stalled, before.stalled);
		assert_int_equal(st->stalled_total, before.stalled_total);
		assert_int_equal(st->extra_rounds, before.extra_rounds);
		assert_int_equal(st->throttle_pct, before.throttle_pct);
	}
	return d;
}

/* A round at bandwidth bw instead of BW. */
static struct policy_decision decide_at(const struct policy_params *p, struct policy_state *st,
					unsigned pass, uint64_t remaining, uint64_t dirty_rate,
					uint64_t bw)
{
	struct policy_round r = round_of(pass, remaining, dirty_rate);

	r.bandwidth_Bps = bw;
	return decide_round(p, st, &r);
}

static struct policy_decision decide(const struct policy_params *p, struct policy_state *st,
				     unsigned pass, uint64_t remaining, uint64_t dirty_rate)
{
	return decide_at(p, st, pass, remaining, dirty_rate, BW);
}

static bool is_final(enum policy_action a)
{
	return a == POLICY_SWITCHOVER || a == POLICY_SUSPEND || a == POLICY_ABORT;
}

/* The stall rule's "fast" guest: one that dirtied at least
 * POLICY_FAST_DIRTY_PCT % of what the link sent. */
static bool is_fast(uint64_t rate, uint64_t bw)
{
	return (unsigned __int128)rate * 100 >= (unsigned __int128)bw * POLICY_FAST_DIRTY_PCT;
}

/* The least dirty rate that is fast at bandwidth bw (90 % of it, rounded
 * up); one byte a second less waits. */
static uint64_t fast_rate(uint64_t bw)
{
	return (uint64_t)(((unsigned __int128)bw * POLICY_FAST_DIRTY_PCT + 99) / 100);
}

/* ---- names ---------------------------------------------------------- */

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(policy_rung_name(POLICY_RUNG_CONVERGED), "converged");
	assert_string_equal(policy_rung_name(POLICY_RUNG_THROTTLED), "auto-converge");
	assert_string_equal(policy_rung_name(POLICY_RUNG_STALLED), "stalled");
	assert_string_equal(policy_rung_name(POLICY_RUNG_TIMEOUT), "convergence-timeout");
	assert_string_equal(policy_rung_name(POLICY_RUNG_NON_LIVE), "non-live");
	assert_string_equal(policy_rung_name((enum policy_rung)(POLICY_RUNG_NON_LIVE + 1)),
			    "unknown");
	assert_string_equal(policy_rung_name((enum policy_rung)-1), "unknown");
	assert_string_equal(policy_rung_name((enum policy_rung)1000), "unknown");

	assert_string_equal(policy_action_name(POLICY_CONTINUE), "continue");
	assert_string_equal(policy_action_name(POLICY_SWITCHOVER), "switchover");
	assert_string_equal(policy_action_name(POLICY_THROTTLE), "throttle");
	assert_string_equal(policy_action_name(POLICY_SUSPEND), "suspend");
	assert_string_equal(policy_action_name(POLICY_ABORT), "abort");
	assert_string_equal(policy_action_name((enum policy_action)(POLICY_ABORT + 1)), "unknown");
	assert_string_equal(policy_action_name((enum policy_action)-1), "unknown");
	assert_string_equal(policy_action_name((enum policy_action)1000), "unknown");
}

/* ---- expected downtime ---------------------------------------------- */

static uint64_t expected(uint64_t remaining, uint64_t bw, uint64_t fixed)
{
	struct policy_round r = {
		.pass = 2,
		.remaining_bytes = remaining,
		.bandwidth_Bps = bw,
		.fixed_cost_ns = fixed,
	};

	return policy_expected_downtime(&r);
}

static void test_expected_downtime_arithmetic(void **state)
{
	(void)state;
	/* remaining / bandwidth, in ns, plus the fixed cost. */
	assert_int_equal(expected(GIB, GIB, 0), SEC);
	assert_int_equal(expected(GIB, GIB, 25 * MS), SEC + 25 * MS);
	assert_int_equal(expected(100 * MIB, GIB, 0), 100 * SEC / 1024);
	assert_int_equal(expected(3 * MIB, 10 * MIB, 7 * MS), 300 * MS + 7 * MS);
	assert_int_equal(expected(1, 1, 0), SEC);
	assert_int_equal(expected(1, 1000000000u, 0), 1);
	/* Truncated, not rounded: 1000 B at 3 B/s is 333.33... s. */
	assert_int_equal(expected(1000, 3, 0), 333333333333ull);
	assert_int_equal(expected(1, 3, 1), 333333333ull + 1);
	/* Below a nanosecond's worth of data: only the fixed cost. */
	assert_int_equal(expected(1, 2000000000u, 5), 5);
	/* The fixed cost only when nothing remains — whatever the bandwidth,
	 * zero (not measured) included. */
	assert_int_equal(expected(0, GIB, 0), 0);
	assert_int_equal(expected(0, GIB, 40 * MS), 40 * MS);
	assert_int_equal(expected(0, 0, 40 * MS), 40 * MS);
	assert_int_equal(expected(0, 0, 0), 0);
	assert_int_equal(expected(0, 0, UINT64_MAX), UINT64_MAX);
}

static void test_expected_downtime_zero_bandwidth(void **state)
{
	(void)state;
	/* Nothing measured: it cannot fit any limit, fixed cost or not. */
	assert_int_equal(expected(1, 0, 0), UINT64_MAX);
	assert_int_equal(expected(GIB, 0, 10 * MS), UINT64_MAX);
	assert_int_equal(expected(UINT64_MAX, 0, UINT64_MAX), UINT64_MAX);
}

static void test_expected_downtime_saturates(void **state)
{
	(void)state;
	/* The transfer time overflows 64 bits. */
	assert_int_equal(expected(UINT64_MAX, 1, 0), UINT64_MAX);
	assert_int_equal(expected(UINT64_MAX / 1000000000u + 1, 1, 0), UINT64_MAX);
	assert_int_equal(expected(UINT64_MAX, 2, 0), UINT64_MAX);
	/* 2^64 - 1 ns is the most there is: exactly that is not saturation,
	 * one more nanosecond of transfer saturates instead of wrapping. */
	assert_int_equal(expected(UINT64_MAX / 1000000000u, 1, 0),
			 UINT64_MAX / 1000000000u * 1000000000u);
	/* The fixed cost added overflows. */
	assert_int_equal(expected(0, GIB, UINT64_MAX), UINT64_MAX);
	assert_int_equal(expected(GIB, GIB, UINT64_MAX), UINT64_MAX);
	assert_int_equal(expected(GIB, GIB, UINT64_MAX - SEC + 1), UINT64_MAX);
	assert_int_equal(expected(GIB, GIB, UINT64_MAX - SEC), UINT64_MAX);
	assert_int_equal(expected(GIB, GIB, UINT64_MAX - SEC - 1), UINT64_MAX - 1);
	assert_int_equal(expected(1, 1, UINT64_MAX - SEC - 1), UINT64_MAX - 1);
}

static void test_expected_downtime_large_guest(void **state)
{
	(void)state;
	/* More than 2^64 / 10^9 bytes (~18.4 GB) remaining is not, by
	 * itself, an overflow: only a result beyond 2^64 ns is. */
	assert_int_equal(expected(32 * GIB, 64 * GIB, 0), 500 * MS);
	assert_int_equal(expected(20 * GIB, GIB, 3 * MS), 20 * SEC + 3 * MS);
	assert_int_equal(expected(1ull << 40, 1ull << 40, 0), SEC);
	assert_int_equal(expected(UINT64_MAX, UINT64_MAX, 0), SEC);
	assert_int_equal(expected(UINT64_MAX, UINT64_MAX / 2, 0), 2 * SEC);
	assert_int_equal(expected(UINT64_MAX, 1000000000u, 0), UINT64_MAX);
	assert_int_equal(expected(UINT64_MAX, 1000000000u, 1), UINT64_MAX);
	assert_int_equal(expected(UINT64_MAX - 1, 1000000000u, 1), UINT64_MAX);
	assert_int_equal(expected(UINT64_MAX - 1, 1000000000u, 0), UINT64_MAX - 1);

	/* And the decision follows: 20 GiB at 1 GiB/s with a generous limit
	 * (the 2000 s most hypervisors accept) switches over. */
	struct policy_params p = default_params;
	struct policy_state st = { 0 };
	struct policy_round r = round_of(2, 20 * GIB, 0);

	p.downtime_limit_ns = 2000 * SEC;
	p.final_action = POLICY_FINAL_ABORT;
	st.prev_remaining = 20 * GIB;
	struct policy_decision d = policy_decide(&p, &st, &r);
	assert_int_equal(d.action, POLICY_SWITCHOVER);
	assert_int_equal(d.rung, POLICY_RUNG_CONVERGED);
	assert_int_equal(d.expected_downtime_ns, 20 * SEC);
}

/* ---- switchover ----------------------------------------------------- */

static void test_switchover_converged(void **state)
{
	struct policy_params p = default_params;
	struct policy_state st = { 0 };
	struct policy_decision d;

	(void)state;
	/* The bulk copy left little enough behind. */
	d = decide(&p, &st, 1, 100 * MIB, 0);
	assert_int_equal(d.action, POLICY_SWITCHOVER);
	assert_int_equal(d.rung, POLICY_RUNG_CONVERGED);
	assert_int_equal(d.throttle_pct, 0);
	assert_int_equal(d.expected_downtime_ns, 100 * SEC / 1024);
	assert_string_equal(policy_rung_name(d.rung), "converged");

	/* Exactly the limit fits; one nanosecond more does not. */
	struct policy_round r = round_of(1, GIB, 0);
	p.downtime_limit_ns = SEC;
	memset(&st, 0, sizeof(st));
	assert_int_equal(policy_decide(&p, &st, &r).action, POLICY_SWITCHOVER);
	p.downtime_limit_ns = SEC - 1;
	memset(&st, 0, sizeof(st));
	assert_int_equal(policy_decide(&p, &st, &r).action, POLICY_CONTINUE);

	/* The fixed cost counts against the limit. */
	p.downtime_limit_ns = SEC;
	r.fixed_cost_ns = 1;
	memset(&st, 0, sizeof(st));
	assert_int_equal(policy_decide(&p, &st, &r).action, POLICY_CONTINUE);

	/* A limit of 0 is met only by nothing at all. */
	p.downtime_limit_ns = 0;
	memset(&st, 0, sizeof(st));
	d = decide(&p, &st, 1, 0, 0);
	assert_int_equal(d.action, POLICY_SWITCHOVER);
	assert_int_equal(d.expected_downtime_ns, 0);
	/* (1 byte at 1 GiB/s truncates to 0 ns; 2 bytes take 1 ns.) */
	memset(&st, 0, sizeof(st));
	assert_int_equal(decide(&p, &st, 1, 1, 0).action, POLICY_SWITCHOVER);
	memset(&st, 0, sizeof(st));
	d = decide(&p, &st, 1, 2, 0);
	assert_int_equal(d.action, POLICY_CONTINUE);
	assert_int_equal(d.expected_downtime_ns, 1);
}

static void test_switchover_after_rounds(void **state)
{
	struct policy_params p = default_params;
	struct policy_state st = { 0 };
	struct policy_decision d;

	(void)state;
	assert_int_equal(decide(&p, &st, 1, 2 * GIB, 0).action, POLICY_CONTINUE);
	assert_int_equal(decide(&p, &st, 2, GIB, 0).action, POLICY_CONTINUE);
	assert_int_equal(decide(&p, &st, 3, 512 * MIB, 0).action, POLICY_CONTINUE);
	/* A round that halved what remains (a shrink of far more than
	 * POLICY_EXTRA_SHRINK_PCT %), to a pause of at most half the limit:
	 * no extra round (test_extra_round_*), switch over. */
	d = decide(&p, &st, 4, 150 * MIB, 0);
	assert_int_equal(d.action, POLICY_SWITCHOVER);
	assert_int_equal(d.rung, POLICY_RUNG_CONVERGED);
	assert_int_equal(d.expected_downtime_ns, 150 * SEC / 1024);
	assert_int_equal(st.extra_rounds, 0);
	/* Or a round that shrank it by less than a quarter (320 MiB to
	 * 256 MiB: by a fifth), to more than half the limit. */
	memset(&st, 0, sizeof(st));
	assert_int_equal(decide(&p, &st, 1, 2 * GIB, 0).action, POLICY_CONTINUE);
	assert_int_equal(decide(&p, &st, 2, 320 * MIB, 0).action, POLICY_CONTINUE);
	d = decide(&p, &st, 3, 256 * MIB, 0);
	assert_int_equal(d.action, POLICY_SWITCHOVER);
	assert_int_equal(d.expected_downtime_ns, 250 * MS);
	assert_int_equal(st.extra_rounds, 0);
	assert_int_equal(st.stalled, 0);
	assert_int_equal(st.stalled_total, 0);

	/* A stalled round that nevertheless fits switches over. */
	memset(&st, 0, sizeof(st));
	assert_int_equal(decide(&p, &st, 1, 200 * MIB, 0).action, POLICY_SWITCHOVER);
	memset(&st, 0, sizeof(st));
	st.prev_remaining = 100 * MIB;
	st.stalled = 5;
	st.stalled_total = POLICY_MAX_STALLED + 5;
	d = decide(&p, &st, POLICY_MAX_PASSES + 10, 200 * MIB, 0);
	assert_int_equal(d.action, POLICY_SWITCHOVER);
	assert_int_equal(d.rung, POLICY_RUNG_CONVERGED);
}

/* ---- continue while rounds shrink ----------------------------------- */

static void test_continue_while_shrinking(void **state)
{
	struct policy_params p = default_params;
	struct policy_state st = { 0 };
	uint64_t remaining = 1ull << 50; /* never fits at 1 GiB/s */
	struct policy_decision d;

	(void)state;
	p.auto_converge = true;
	for (unsigned pass = 1; pass < POLICY_MAX_PASSES; pass++) {
		d = decide(&p, &st, pass, remaining, 10 * GIB);
		assert_int_equal(d.action, POLICY_CONTINUE);
		assert_int_equal(d.rung, POLICY_RUNG_CONVERGED);
		assert_int_equal(d.throttle_pct, 0);
		assert_int_equal(st.stalled, 0);
		assert_int_equal(st.stalled_total, 0);
		remaining = remaining * 85 / 100; /* 15 % less each round */
	}
}

static void test_progress_threshold(void **state)
{
	struct policy_params p = default_params;
	struct policy_state st = { 0 };

	(void)state;
	/* Progress is a shrink by more than 10 %: exactly 10 % is a stall. */
	decide(&p, &st, 1, 1000 * GIB, 0);
	assert_int_equal(st.stalled, 0);
	decide(&p, &st, 2, 900 * GIB, 0);
	assert_int_equal(st.stalled, 1);
	assert_int_equal(st.stalled_total, 1);
	decide(&p, &st, 3, 810 * GIB - 1, 0);
	assert_int_equal(st.stalled, 0);
	assert_int_equal(st.stalled_total, 1);
	/* Growing is a stall. */
	decide(&p, &st, 4, 2000 * GIB, 0);
	assert_int_equal(st.stalled, 1);
	assert_int_equal(st.stalled_total, 2);
	/* The bulk copy is always progress, whatever came before. */
	st.prev_remaining = 1;
	st.stalled = 0;
	decide(&p, &st, 1, 2000 * GIB, 0);
	assert_int_equal(st.stalled, 0);
	assert_int_equal(st.stalled_total, 2);
	/* No overflow in the comparison at the top of the range. */
	memset(&st, 0, sizeof(st));
	decide(&p, &st, 1, UINT64_MAX, 0);
	decide(&p, &st, 2, UINT64_MAX - UINT64_MAX / 10, 0); /* >= 90 % */
	assert_int_equal(st.stalled, 1);
	decide(&p, &st, 3, UINT64_MAX / 10 * 8, 0);
	assert_int_equal(st.stalled, 0);
}

static void test_stall_resets_on_progress(void **state)
{
	struct policy_params p = default_params;
	struct policy_state st = { 0 };
	uint64_t hi = 4 * GIB, lo = 2 * GIB;

	(void)state;
	/* Stall, progress, stall, progress...: never two in a row, so no
	 * rung is climbed until the total bound. */
	assert_int_equal(decide(&p, &st, 1, lo, 0).action, POLICY_CONTINUE);
	assert_int_equal(decide(&p, &st, 2, hi, 0).action, POLICY_CONTINUE);
	assert_int_equal(st.stalled, 1);
	assert_int_equal(decide(&p, &st, 3, lo, 0).action, POLICY_CONTINUE);
	assert_int_equal(st.stalled, 0);
	assert_int_equal(decide(&p, &st, 4, lo, 0).action, POLICY_CONTINUE);
	assert_int_equal(st.stalled, 1);
	assert_int_equal(decide(&p, &st, 5, lo / 2, 0).action, POLICY_CONTINUE);
	assert_int_equal(st.stalled, 0);
	assert_int_equal(st.stalled_total, 2);
}

/* ---- stalled, no auto-converge -------------------------------------- */

/* Without auto-converge, a guest whose 2 GiB of dirty memory never
 * shrinks, dirtying at `rate` against the 1 GiB/s link: the bulk copy, then
 * `wait` rounds without progress, the last of them the final action.
 * Returns that last pass. */
static unsigned run_stalled(enum policy_final_action fa, enum policy_action want, uint64_t rate,
			    unsigned wait)
{
	struct policy_params p = default_params;
	struct policy_state st = { 0 };
	struct policy_decision d;
	unsigned pass = 1;

	p.final_action = fa;
	d = decide(&p, &st, pass++, 2 * GIB, rate);
	assert_int_equal(d.action, POLICY_CONTINUE);
	assert_int_equal(st.stalled, 0);
	for (unsigned i = 1; i < wait; i++) {
		d = decide(&p, &st, pass++, 2 * GIB, rate);
		assert_int_equal(d.action, POLICY_CONTINUE);
		assert_int_equal(d.rung, POLICY_RUNG_CONVERGED);
		assert_int_equal(st.stalled, i);
		assert_int_equal(st.stalled_total, i);
	}
	d = decide(&p, &st, pass, 2 * GIB, rate);
	assert_int_equal(d.action, want);
	assert_int_equal(d.rung, POLICY_RUNG_STALLED);
	assert_string_equal(policy_rung_name(d.rung), "stalled");
	assert_int_equal(d.throttle_pct, 0);
	assert_int_equal(d.expected_downtime_ns, 2 * SEC);
	assert_int_equal(st.stalled, POLICY_STALL_ROUNDS);
	assert_int_equal(st.stalled_total, wait);
	assert_int_equal(st.throttle_pct, 0);
	return pass;
}

static void test_stalled_suspend_by_default(void **state)
{
	(void)state;
	assert_int_equal(POLICY_FINAL_SUSPEND, 0); /* zero-initialised params suspend */
	/* A guest dirtying slower than the link sends, yet not enough slower
	 * for the rounds to shrink: POLICY_STALL_ROUNDS stalled rounds, then
	 * the final action. */
	assert_int_equal(run_stalled(POLICY_FINAL_SUSPEND, POLICY_SUSPEND, BW / 2,
				     POLICY_STALL_ROUNDS),
			 1 + POLICY_STALL_ROUNDS);
	assert_int_equal(run_stalled(POLICY_FINAL_SUSPEND, POLICY_SUSPEND, 0, POLICY_STALL_ROUNDS),
			 3);
}

static void test_stalled_abort_when_configured(void **state)
{
	(void)state;
	assert_int_equal(run_stalled(POLICY_FINAL_ABORT, POLICY_ABORT, BW / 2, POLICY_STALL_ROUNDS),
			 1 + POLICY_STALL_ROUNDS);
	/* The fastest guest that still waits: a byte a second below 90 %. */
	assert_int_equal(run_stalled(POLICY_FINAL_ABORT, POLICY_ABORT, fast_rate(BW) - 1,
				     POLICY_STALL_ROUNDS),
			 3);
}

static void test_fixed_cost_above_limit(void **state)
{
	struct policy_params p = default_params;
	struct policy_state st = { 0 };
	struct policy_round r = round_of(1, 0, 0);
	struct policy_decision d;

	(void)state;
	/* Nothing left to send, but the pause alone exceeds the limit: the
	 * rounds cannot shrink below zero, so the ladder ends it. */
	r.fixed_cost_ns = SEC;
	for (;; r.pass++) {
		d = policy_decide(&p, &st, &r);
		assert_int_equal(d.expected_downtime_ns, SEC);
		if (d.action != POLICY_CONTINUE)
			break;
	}
	assert_int_equal(d.action, POLICY_SUSPEND);
	assert_int_equal(d.rung, POLICY_RUNG_STALLED);
	assert_int_equal(r.pass, 1 + POLICY_STALL_ROUNDS);
}

/* ---- auto-converge -------------------------------------------------- */

/* Stall a throttling-enabled migration until the first throttle; the
 * guest dirties at `rate` unthrottled: POLICY_STALL_ROUNDS stalled rounds
 * below 90 % of the 1 GiB/s link, a single one at or above it. Returns the
 * next pass. */
static unsigned stall_to_first_throttle(const struct policy_params *p, struct policy_state *st,
					uint64_t rate)
{
	const unsigned wait = is_fast(rate, BW) ? 1 : POLICY_STALL_ROUNDS;
	struct policy_decision d;
	unsigned pass = 1;

	d = decide(p, st, pass++, 2 * GIB, rate);
	assert_int_equal(d.action, POLICY_CONTINUE);
	for (unsigned i = 1; i < wait; i++) {
		d = decide(p, st, pass++, 2 * GIB, rate);
		assert_int_equal(d.action, POLICY_CONTINUE);
		assert_int_equal(d.throttle_pct, 0);
	}
	d = decide(p, st, pass++, 2 * GIB, rate);
	assert_int_equal(d.action, POLICY_THROTTLE);
	assert_int_equal(d.rung, POLICY_RUNG_THROTTLED);
	assert_int_equal(d.throttle_pct, POLICY_THROTTLE_INITIAL);
	assert_int_equal(d.throttle_pct, 20);
	assert_int_equal(st->rate_before_throttle, rate);
	assert_false(st->throttle_useless);
	assert_int_equal(st->stalled_total, wait);
	assert_int_equal(pass, 2 + wait);
	return pass;
}

static void test_auto_converge_ladder_to_cap(void **state)
{
	static const unsigned steps[] = { 30, 40, 50, 60, 70, 80, 90, 99 };
	struct policy_params p = default_params;
	struct policy_state st = { 0 };
	struct policy_decision d;
	/* Below 90 % of the link: the first throttle after the wait. */
	const uint64_t rate = 800 * MIB;
	unsigned pass;

	(void)state;
	assert_false(is_fast(rate, BW));
	p.auto_converge = true;
	pass = stall_to_first_throttle(&p, &st, rate);
	/* Each stalled round steps once; the rate falls just the 20 % that
	 * counts as helping (exactly 80 % of the unthrottled rate). */
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		d = decide(&p, &st, pass++, 2 * GIB, rate * 80 / 100);
		assert_int_equal(d.action, POLICY_THROTTLE);
		assert_int_equal(d.rung, POLICY_RUNG_THROTTLED);
		assert_int_equal(d.throttle_pct, steps[i]);
		assert_false(st.throttle_useless);
	}
	assert_int_equal(st.throttle_pct, POLICY_THROTTLE_MAX);
	/* At the cap, the next stalled round is the final action. */
	d = decide(&p, &st, pass, 2 * GIB, rate / 2);
	assert_int_equal(d.action, POLICY_SUSPEND);
	assert_int_equal(d.rung, POLICY_RUNG_STALLED);
	assert_int_equal(d.throttle_pct, 99);
	/* Within the bound on stalled rounds: the cap decided, not the bound. */
	assert_true(st.stalled_total < POLICY_MAX_STALLED);
	assert_int_equal(pass, 1 + POLICY_STALL_ROUNDS + 9);

	/* The same with abort. */
	memset(&st, 0, sizeof(st));
	p.final_action = POLICY_FINAL_ABORT;
	pass = stall_to_first_throttle(&p, &st, rate);
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++)
		assert_int_equal(decide(&p, &st, pass++, 2 * GIB, 0).throttle_pct, steps[i]);
	d = decide(&p, &st, pass, 2 * GIB, 0);
	assert_int_equal(d.action, POLICY_ABORT);
	assert_int_equal(d.rung, POLICY_RUNG_STALLED);
}

static void run_useless_throttle(enum policy_final_action fa, uint64_t rate, uint64_t later,
				 enum policy_action want)
{
	struct policy_params p = default_params;
	struct policy_state st = { 0 };
	struct policy_decision d;
	unsigned pass;

	p.auto_converge = true;
	p.final_action = fa;
	pass = stall_to_first_throttle(&p, &st, rate);
	/* Throttled at 20 %, then 30 %: too early to judge. */
	d = decide(&p, &st, pass++, 2 * GIB, later);
	assert_int_equal(d.action, POLICY_THROTTLE);
	assert_int_equal(d.throttle_pct, 30);
	d = decide(&p, &st, pass++, 2 * GIB, later);
	assert_int_equal(d.action, POLICY_THROTTLE);
	assert_int_equal(d.throttle_pct, 40);
	/* Three steps taken and the rate did not fall by 20 %: give up. */
	d = decide(&p, &st, pass++, 2 * GIB, later);
	assert_int_equal(d.action, want);
	assert_int_equal(d.rung, POLICY_RUNG_STALLED);
	assert_int_equal(d.throttle_pct, 40);
	assert_true(st.throttle_useless);
	assert_int_equal(st.throttle_pct, 40);
}

static void test_auto_converge_gives_up_when_useless(void **state)
{
	(void)state;
	/* A guest throttling does nothing for. */
	run_useless_throttle(POLICY_FINAL_SUSPEND, GIB, GIB, POLICY_SUSPEND);
	run_useless_throttle(POLICY_FINAL_ABORT, GIB, GIB, POLICY_ABORT);
	/* Faster than before. */
	run_useless_throttle(POLICY_FINAL_SUSPEND, GIB, 2 * GIB, POLICY_SUSPEND);
	/* Lowered, but by less than 20 %: 1 byte/s above 80 %. */
	run_useless_throttle(POLICY_FINAL_SUSPEND, 1000 * MIB, 800 * MIB + 1, POLICY_SUSPEND);
	/* Near the top of the range: no overflow in the comparison. */
	run_useless_throttle(POLICY_FINAL_ABORT, UINT64_MAX, UINT64_MAX, POLICY_ABORT);
}

static void test_auto_converge_keeps_climbing_when_helping(void **state)
{
	struct policy_params p = default_params;
	struct policy_state st = { 0 };
	struct policy_decision d;
	unsigned pass;

	(void)state;
	p.auto_converge = true;
	pass = stall_to_first_throttle(&p, &st, 1000 * MIB);
	/* The rate falls with the throttle ((100 - t) %), yet the rounds
	 * still do not shrink: keep climbing. */
	for (unsigned want = 30; want <= 90; want += 10) {
		d = decide(&p, &st, pass++, 2 * GIB, 1000 * MIB * (100 - st.throttle_pct) / 100);
		assert_int_equal(d.action, POLICY_THROTTLE);
		assert_int_equal(d.throttle_pct, want);
	}
	/* Helping, judged against the unthrottled rate, not the last one:
	 * 80 % of it is still enough even though it rose since. */
	d = decide(&p, &st, pass++, 2 * GIB, 800 * MIB);
	assert_int_equal(d.action, POLICY_THROTTLE);
	assert_int_equal(d.throttle_pct, 99);
	assert_int_equal(st.rate_before_throttle, 1000 * MIB);
	/* But the check is made at every step past the third, so a rate
	 * that climbs back stops it there: start again and rise at 50 %. */
	memset(&st, 0, sizeof(st));
	pass = stall_to_first_throttle(&p, &st, 1000 * MIB);
	assert_int_equal(decide(&p, &st, pass++, 2 * GIB, 700 * MIB).throttle_pct, 30);
	assert_int_equal(decide(&p, &st, pass++, 2 * GIB, 600 * MIB).throttle_pct, 40);
	assert_int_equal(decide(&p, &st, pass++, 2 * GIB, 500 * MIB).throttle_pct, 50);
	d = decide(&p, &st, pass++, 2 * GIB, 900 * MIB);
	assert_int_equal(d.action, POLICY_SUSPEND);
	assert_int_equal(d.rung, POLICY_RUNG_STALLED);
	assert_int_equal(d.throttle_pct, 50);
	assert_true(st.throttle_useless);
}

static void test_auto_converge_rungs_while_throttled(void **state)
{
	struct policy_params p = default_params;
	struct policy_state st = { 0 };
	struct policy_decision d;
	unsigned pass;

	(void)state;
	p.auto_converge = true;
	pass = stall_to_first_throttle(&p, &st, GIB);
	/* A round that shrinks: another round, throttle kept, still the
	 * auto-converge rung, stall count reset. */
	d = decide(&p, &st, pass++, GIB, GIB / 2);
	assert_int_equal(d.action, POLICY_CONTINUE);
	assert_int_equal(d.rung, POLICY_RUNG_THROTTLED);
	assert_int_equal(d.throttle_pct, 20);
	assert_int_equal(st.stalled, 0);
	/* After progress, two stalled rounds again before the next step. */
	d = decide(&p, &st, pass++, GIB, GIB / 2);
	assert_int_equal(d.action, POLICY_CONTINUE);
	assert_int_equal(d.throttle_pct, 20);
	d = decide(&p, &st, pass++, GIB, GIB / 2);
	assert_int_equal(d.action, POLICY_THROTTLE);
	assert_int_equal(d.throttle_pct, 30);
	/* It fits now: switchover on the auto-converge rung. */
	d = decide(&p, &st, pass++, 100 * MIB, GIB / 2);
	assert_int_equal(d.action, POLICY_SWITCHOVER);
	assert_int_equal(d.rung, POLICY_RUNG_THROTTLED);
	assert_string_equal(policy_rung_name(d.rung), "auto-converge");
	assert_int_equal(d.throttle_pct, 30);
	assert_int_equal(d.expected_downtime_ns, 100 * SEC / 1024);
}

static void test_auto_converge_off_never_throttles(void **state)
{
	struct policy_params p = default_params;
	struct policy_state st = { 0 };
	struct policy_decision d;
	unsigned pass = 1;

	(void)state;
	do {
		d = decide(&p, &st, pass++, 2 * GIB, 10 * GIB);
		assert_int_not_equal(d.action, POLICY_THROTTLE);
		assert_int_equal(st.throttle_pct, 0);
		assert_int_equal(st.rate_before_throttle, 0);
	} while (d.action == POLICY_CONTINUE);
	assert_int_equal(d.action, POLICY_SUSPEND);
	/* 10 GiB/s over 1 GiB/s: the first round without progress ends it. */
	assert_int_equal(pass - 1, 2);
}

/* ---- the stall rule: dirtying (nearly) as fast as the link sends ---- */

/* Bandwidths to try the rule at: the rule compares the round's own
 * figures, whatever the link. */
static const uint64_t rule_bandwidths[] = { 1, 10 * MIB, BW, 100 * GIB, UINT64_MAX };

/* Nothing fits: 2^62 bytes is 250 ms even at 2^64 - 1 bytes/s. */
#define HUGE_REMAINING (1ull << 62)

static void test_fast_dirtier_final_action_at_once(void **state)
{
	(void)state;
	/* Without auto-converge, the first round without progress after the
	 * bulk copy is the final action: exactly 90 % of the bandwidth counts,
	 * the bandwidth itself and above it, up to the top of the range. */
	assert_int_equal(run_stalled(POLICY_FINAL_SUSPEND, POLICY_SUSPEND, fast_rate(BW), 1), 2);
	assert_int_equal(run_stalled(POLICY_FINAL_ABORT, POLICY_ABORT, fast_rate(BW), 1), 2);
	assert_int_equal(run_stalled(POLICY_FINAL_SUSPEND, POLICY_SUSPEND, BW, 1), 2);
	assert_int_equal(run_stalled(POLICY_FINAL_SUSPEND, POLICY_SUSPEND, 3 * GIB, 1), 2);
	assert_int_equal(run_stalled(POLICY_FINAL_ABORT, POLICY_ABORT, BW, 1), 2);
	assert_int_equal(run_stalled(POLICY_FINAL_ABORT, POLICY_ABORT, UINT64_MAX, 1), 2);

	/* At any bandwidth: the round's own. */
	for (size_t i = 0; i < sizeof(rule_bandwidths) / sizeof(rule_bandwidths[0]); i++) {
		const uint64_t bw = rule_bandwidths[i];
		struct policy_params p = default_params;
		struct policy_state st = { 0 };
		struct policy_decision d;

		p.downtime_limit_ns = 1 * MS;
		p.final_action = POLICY_FINAL_ABORT;
		for (int at90 = 0; at90 < 2; at90++) {
			const uint64_t rate = at90 ? fast_rate(bw) : bw;

			memset(&st, 0, sizeof(st));
			d = decide_at(&p, &st, 1, HUGE_REMAINING, rate, bw);
			assert_int_equal(d.action, POLICY_CONTINUE);
			d = decide_at(&p, &st, 2, HUGE_REMAINING, rate, bw);
			assert_int_equal(d.action, POLICY_ABORT);
			assert_int_equal(d.rung, POLICY_RUNG_STALLED);
			assert_int_equal(st.stalled, POLICY_STALL_ROUNDS);
			/* One round without progress, counted once against the
			 * bound. */
			assert_int_equal(st.stalled_total, 1);
		}
	}

	/* Progress in between changes nothing: alternating 4 GiB, 8 GiB, the
	 * first 8 GiB round ends it (a slower guest runs to the total bound,
	 * test_max_stalled). */
	struct policy_params p = default_params;
	struct policy_state st = { 0 };
	struct policy_decision d;

	assert_int_equal(decide(&p, &st, 1, 4 * GIB, 2 * GIB).action, POLICY_CONTINUE);
	d = decide(&p, &st, 2, 8 * GIB, 2 * GIB);
	assert_int_equal(d.action, POLICY_SUSPEND);
	assert_int_equal(d.rung, POLICY_RUNG_STALLED);
	assert_int_equal(st.stalled_total, 1);
	/* Nor does an earlier stalled round of a slower guest: that one
	 * waited, this one, at 90 % of the link, ends it. */
	memset(&st, 0, sizeof(st));
	assert_int_equal(decide(&p, &st, 1, 4 * GIB, BW / 2).action, POLICY_CONTINUE);
	assert_int_equal(decide(&p, &st, 2, 4 * GIB, BW / 2).action, POLICY_CONTINUE);
	assert_int_equal(decide(&p, &st, 3, 2 * GIB, BW / 2).action, POLICY_CONTINUE);
	assert_int_equal(st.stalled, 0);
	assert_int_equal(decide(&p, &st, 4, 2 * GIB, fast_rate(BW)).action, POLICY_SUSPEND);
	assert_int_equal(st.stalled_total, 2);
}

static void test_fast_dirtier_throttles_at_once(void **state)
{
	struct policy_params p = default_params;
	struct policy_state st = { 0 };
	struct policy_decision d;

	(void)state;
	p.auto_converge = true;
	/* 3 GiB/s over the 1 GiB/s link: the first stalled round throttles. */
	assert_int_equal(decide(&p, &st, 1, 2 * GIB, 3 * GIB).action, POLICY_CONTINUE);
	d = decide(&p, &st, 2, 2 * GIB, 3 * GIB);
	assert_int_equal(d.action, POLICY_THROTTLE);
	assert_int_equal(d.rung, POLICY_RUNG_THROTTLED);
	assert_int_equal(d.throttle_pct, POLICY_THROTTLE_INITIAL);
	assert_int_equal(st.rate_before_throttle, 3 * GIB);
	assert_int_equal(st.stalled, POLICY_STALL_ROUNDS - 1);
	assert_int_equal(st.stalled_total, 1);
	/* Once throttled every stalled round steps, fast or not. */
	d = decide(&p, &st, 3, 2 * GIB, 2 * GIB);
	assert_int_equal(d.action, POLICY_THROTTLE);
	assert_int_equal(d.throttle_pct, 30);
	/* A round of progress resets the count: the next fast round steps at
	 * once again, where a slower one waits (test_slow_dirtier_waits). */
	d = decide(&p, &st, 4, GIB, 2 * GIB);
	assert_int_equal(d.action, POLICY_CONTINUE);
	assert_int_equal(d.rung, POLICY_RUNG_THROTTLED);
	assert_int_equal(d.throttle_pct, 30);
	assert_int_equal(st.stalled, 0);
	d = decide(&p, &st, 5, GIB, BW);
	assert_int_equal(d.action, POLICY_THROTTLE);
	assert_int_equal(d.throttle_pct, 40);
	assert_int_equal(st.stalled_total, 3);
	/* The usefulness check still applies: 40 % and the rate still above
	 * 80 % of the 3 GiB/s it started at — give up. */
	d = decide(&p, &st, 6, GIB, 5 * GIB / 2);
	assert_int_equal(d.action, POLICY_SUSPEND);
	assert_int_equal(d.rung, POLICY_RUNG_STALLED);
	assert_int_equal(d.throttle_pct, 40);
	assert_true(st.throttle_useless);

	/* At any bandwidth, and abort the same. */
	for (size_t i = 0; i < sizeof(rule_bandwidths) / sizeof(rule_bandwidths[0]); i++) {
		const uint64_t bw = rule_bandwidths[i];

		memset(&st, 0, sizeof(st));
		p.downtime_limit_ns = 1 * MS;
		p.final_action = POLICY_FINAL_ABORT;
		assert_int_equal(decide_at(&p, &st, 1, HUGE_REMAINING, bw, bw).action,
				 POLICY_CONTINUE);
		d = decide_at(&p, &st, 2, HUGE_REMAINING, bw, bw);
		assert_int_equal(d.action, POLICY_THROTTLE);
		assert_int_equal(d.throttle_pct, 20);
		assert_int_equal(st.rate_before_throttle, bw);
		assert_int_equal(st.stalled_total, 1);
	}

	/* The full climb of an always-fast guest that throttling helps: a
	 * step every round from pass 2, the cap at pass 10, the final action
	 * at 11 — one round sooner than a slower guest
	 * (test_auto_converge_ladder_to_cap). */
	memset(&st, 0, sizeof(st));
	p.downtime_limit_ns = 300 * MS;
	p.final_action = POLICY_FINAL_SUSPEND;
	unsigned pass = stall_to_first_throttle(&p, &st, 4 * GIB);
	assert_int_equal(pass, 3);
	while ((d = decide(&p, &st, pass, 2 * GIB, 3 * GIB)).action == POLICY_THROTTLE)
		pass++;
	assert_int_equal(d.action, POLICY_SUSPEND);
	assert_int_equal(d.rung, POLICY_RUNG_STALLED);
	assert_int_equal(d.throttle_pct, POLICY_THROTTLE_MAX);
	assert_int_equal(pass, 1 + 1 + 9);
	assert_true(st.stalled_total < POLICY_MAX_STALLED);
}

static void test_slow_dirtier_waits(void **state)
{
	(void)state;
	/* One byte a second below 90 % of the round's bandwidth:
	 * POLICY_STALL_ROUNDS stalled rounds before the ladder moves, with
	 * auto-converge or without, at any bandwidth. */
	for (size_t i = 0; i < sizeof(rule_bandwidths) / sizeof(rule_bandwidths[0]); i++) {
		for (int ac = 0; ac < 2; ac++) {
			const uint64_t bw = rule_bandwidths[i];
			const uint64_t slow = fast_rate(bw) - 1;
			struct policy_params p = default_params;
			struct policy_state st = { 0 };
			struct policy_decision d;
			unsigned pass = 1;

			p.auto_converge = ac;
			p.downtime_limit_ns = 1 * MS;
			d = decide_at(&p, &st, pass++, HUGE_REMAINING, slow, bw);
			assert_int_equal(d.action, POLICY_CONTINUE);
			for (unsigned k = 1; k < POLICY_STALL_ROUNDS; k++) {
				d = decide_at(&p, &st, pass++, HUGE_REMAINING, slow, bw);
				assert_int_equal(d.action, POLICY_CONTINUE);
				assert_int_equal(d.throttle_pct, 0);
				assert_int_equal(st.stalled, k);
				assert_int_equal(st.stalled_total, k);
			}
			d = decide_at(&p, &st, pass, HUGE_REMAINING, slow, bw);
			assert_int_equal(d.action, ac ? POLICY_THROTTLE : POLICY_SUSPEND);
			assert_int_equal(d.throttle_pct, ac ? 20 : 0);
			assert_int_equal(st.stalled_total, POLICY_STALL_ROUNDS);
			assert_int_equal(pass, 1 + POLICY_STALL_ROUNDS);
		}
	}

	/* Throttled, after a round of progress: the wait again, where a fast
	 * round would step at once (test_fast_dirtier_throttles_at_once). */
	struct policy_params p = default_params;
	struct policy_state st = { 0 };
	struct policy_decision d;
	unsigned pass;

	p.auto_converge = true;
	pass = stall_to_first_throttle(&p, &st, fast_rate(BW) - 1);
	assert_int_equal(pass, 2 + POLICY_STALL_ROUNDS);
	assert_int_equal(decide(&p, &st, pass++, GIB, fast_rate(BW) - 1).action, POLICY_CONTINUE);
	assert_int_equal(st.stalled, 0);
	for (unsigned k = 1; k < POLICY_STALL_ROUNDS; k++) {
		d = decide(&p, &st, pass++, GIB, fast_rate(BW) - 1);
		assert_int_equal(d.action, POLICY_CONTINUE);
		assert_int_equal(d.throttle_pct, 20);
	}
	d = decide(&p, &st, pass++, GIB, fast_rate(BW) - 1);
	assert_int_equal(d.action, POLICY_THROTTLE);
	assert_int_equal(d.throttle_pct, 30);
}

static void test_progress_never_climbs_at_once(void **state)
{
	static const uint64_t rates[] = { BW, 10 * GIB, UINT64_MAX };
	struct policy_params p = default_params;
	struct policy_state st = { 0 };
	struct policy_decision d;
	uint64_t remaining = 1000 * GIB;
	unsigned pass = 1;

	(void)state;
	p.auto_converge = true;
	/* The bulk copy is progress, whatever the rate, even against a stale
	 * smaller figure. */
	st.prev_remaining = 1;
	d = decide(&p, &st, pass++, remaining, UINT64_MAX);
	assert_int_equal(d.action, POLICY_CONTINUE);
	assert_int_equal(st.stalled_total, 0);
	/* Rounds shrinking by just over 10 % while the guest dirties at least
	 * as fast as the link: never a stall, never a throttle. */
	for (unsigned k = 0; k < 15; k++, pass++) {
		remaining = remaining / 10 * 9 - 1;
		d = decide(&p, &st, pass, remaining, rates[k % 3]);
		assert_int_equal(d.action, POLICY_CONTINUE);
		assert_int_equal(d.rung, POLICY_RUNG_CONVERGED);
		assert_int_equal(d.throttle_pct, 0);
		assert_int_equal(st.stalled, 0);
		assert_int_equal(st.stalled_total, 0);
	}
	/* Exactly 10 % less is no progress: the same rate climbs at once. */
	assert_int_equal(decide(&p, &st, pass++, 100 * GIB, 10 * GIB).action, POLICY_CONTINUE);
	d = decide(&p, &st, pass++, 90 * GIB, 10 * GIB);
	assert_int_equal(d.action, POLICY_THROTTLE);
	assert_int_equal(d.throttle_pct, 20);
	assert_int_equal(st.stalled_total, 1);
	/* Throttled, progress again keeps the throttle and steps nothing. */
	for (unsigned k = 0; k < 3; k++) {
		d = decide(&p, &st, pass++, (80 - 10 * k) * GIB, rates[k]);
		assert_int_equal(d.action, POLICY_CONTINUE);
		assert_int_equal(d.rung, POLICY_RUNG_THROTTLED);
		assert_int_equal(d.throttle_pct, 20);
		assert_int_equal(st.stalled, 0);
		assert_int_equal(st.stalled_total, 1);
	}
}

/* ---- the 90 % boundary ---------------------------------------------- */

/* A guest whose 2^62 bytes never shrink (nothing fits), dirtying at
 * rate against bandwidth bw: the pass at which the ladder moves — the
 * first throttle with auto-converge, the final action without. */
static unsigned pass_of_climb(bool ac, uint64_t rate, uint64_t bw)
{
	struct policy_params p = default_params;
	struct policy_state st = { 0 };
	struct policy_decision d;
	unsigned pass = 1;

	p.auto_converge = ac;
	p.downtime_limit_ns = 1 * MS;
	while ((d = decide_at(&p, &st, pass, HUGE_REMAINING, rate, bw)).action == POLICY_CONTINUE)
		pass++;
	assert_int_equal(d.action, ac ? POLICY_THROTTLE : POLICY_SUSPEND);
	assert_int_equal(d.throttle_pct, ac ? POLICY_THROTTLE_INITIAL : 0);
	assert_int_equal(st.stalled_total, pass - 1);
	assert_int_equal(st.extra_rounds, 0);
	return pass;
}

static void test_fast_dirty_boundary(void **state)
{
	/* Bandwidths whose 90 % is a whole number of bytes a second. */
	static const uint64_t exact[] = { 100, 1000 * MIB, BW * 1000, 100 * GIB };
	/* And the rounding at the others. */
	static const uint64_t odd[] = { 1, 3, BW, UINT64_MAX };

	(void)state;
	assert_int_equal(POLICY_FAST_DIRTY_PCT, 90);
	assert_int_equal(fast_rate(1000 * MIB), 900 * MIB);
	assert_int_equal(fast_rate(BW), 966367642);  /* 966367641.6 rounded up */
	assert_int_equal(fast_rate(1), 1);
	assert_int_equal(fast_rate(3), 3);           /* 2.7 */
	assert_int_equal(fast_rate(UINT64_MAX), 16602069666338596454ull);

	for (int ac = 0; ac < 2; ac++) {
		/* 89 % waits POLICY_STALL_ROUNDS rounds, 90 % climbs on the
		 * first round without progress. */
		for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++) {
			const uint64_t bw = exact[i];

			assert_int_equal(pass_of_climb(ac, bw / 100 * 89, bw),
					 1 + POLICY_STALL_ROUNDS);
			assert_int_equal(pass_of_climb(ac, bw / 100 * 89 + bw / 100 - 1, bw),
					 1 + POLICY_STALL_ROUNDS);
			assert_int_equal(pass_of_climb(ac, bw / 100 * 90, bw), 2);
			assert_int_equal(pass_of_climb(ac, bw / 100 * 95, bw), 2);
			assert_int_equal(pass_of_climb(ac, bw, bw), 2);
		}
		/* A byte a second decides, at the top of the range too (the
		 * products are taken in 128 bits). */
		for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
			const uint64_t bw = odd[i];

			assert_int_equal(pass_of_climb(ac, fast_rate(bw) - 1, bw),
					 1 + POLICY_STALL_ROUNDS);
			assert_int_equal(pass_of_climb(ac, fast_rate(bw), bw), 2);
		}
		assert_int_equal(pass_of_climb(ac, UINT64_MAX, UINT64_MAX), 2);
		assert_int_equal(pass_of_climb(ac, UINT64_MAX, 1), 2);
		assert_int_equal(pass_of_climb(ac, UINT64_MAX / 100 * 89, UINT64_MAX),
				 1 + POLICY_STALL_ROUNDS);
	}

	/* The measured rate saturating: a 2 GiB working set re-dirtied whole
	 * in a round that sent it at 1 GiB/s, measured a little low (2 GiB
	 * over the round's 2.2 s, sync included: 0.91 GiB/s) still climbs at
	 * once; at 0.89 GiB/s it waits. */
	struct policy_params p = default_params;
	struct policy_state st = { 0 };

	p.auto_converge = true;
	assert_int_equal(decide(&p, &st, 1, 2 * GIB, 91 * GIB / 100).action, POLICY_CONTINUE);
	assert_int_equal(decide(&p, &st, 2, 2 * GIB, 91 * GIB / 100).action, POLICY_THROTTLE);
	memset(&st, 0, sizeof(st));
	assert_int_equal(decide(&p, &st, 1, 2 * GIB, 89 * GIB / 100).action, POLICY_CONTINUE);
	assert_int_equal(decide(&p, &st, 2, 2 * GIB, 89 * GIB / 100).action, POLICY_CONTINUE);
	assert_int_equal(st.stalled, 1);
	assert_int_equal(decide(&p, &st, 3, 2 * GIB, 89 * GIB / 100).action, POLICY_THROTTLE);
}

/* ---- extra rounds below the limit ----------------------------------- */

/* The extra-round tests run at 1 GB/s (a byte a nanosecond) against a
 * 400 ms limit: half of it 200 ms, a quarter 100 ms. */
#define GBPS 1000000000ull

static const struct policy_params extra_params = {
	.downtime_limit_ns = 400 * MS,
	.final_action = POLICY_FINAL_ABORT,
};

/* Round `pass` leaving `remaining` bytes at bandwidth bw with fixed cost
 * `fixed`; the state as it is. */
static struct policy_decision decide_full(const struct policy_params *p, struct policy_state *st,
					  unsigned pass, uint64_t remaining, uint64_t bw,
					  uint64_t fixed)
{
	struct policy_round r = round_of(pass, remaining, 0);

	r.bandwidth_Bps = bw;
	r.fixed_cost_ns = fixed;
	return decide_round(p, st, &r);
}

/* One round after a round that left prev bytes, from a fresh state (but
 * extra_rounds): the decision, asserting it fits. */
static struct policy_decision extra_case(unsigned pass, uint64_t prev, uint64_t remaining,
					 uint64_t fixed, unsigned extra_before)
{
	struct policy_state st = { 0 };
	struct policy_decision d;

	st.prev_remaining = prev;
	st.extra_rounds = extra_before;
	d = decide_full(&extra_params, &st, pass, remaining, GBPS, fixed);
	assert_true(d.expected_downtime_ns <= extra_params.downtime_limit_ns);
	assert_int_equal(d.expected_downtime_ns, remaining + fixed);
	assert_int_equal(d.rung, POLICY_RUNG_CONVERGED);
	assert_int_equal(d.throttle_pct, 0);
	/* Nothing of the stall rule is touched either way. */
	assert_int_equal(st.stalled, 0);
	assert_int_equal(st.stalled_total, 0);
	if (d.action == POLICY_CONTINUE)
		assert_int_equal(st.extra_rounds, extra_before + 1);
	else
		assert_int_equal(st.extra_rounds, extra_before);
	return d;
}

#define TAKES_EXTRA(...) assert_int_equal(extra_case(__VA_ARGS__).action, POLICY_CONTINUE)
#define SWITCHES(...) assert_int_equal(extra_case(__VA_ARGS__).action, POLICY_SWITCHOVER)

static void test_extra_round_taken(void **state)
{
	struct policy_params p = default_params;
	struct policy_state st = { 0 };
	struct policy_decision d;

	(void)state;
	assert_int_equal(POLICY_EXTRA_ROUNDS, 2);
	/* What test_switchover_after_rounds did before the rule: halving
	 * rounds, 256 MiB (250 ms) fits the 300 ms limit but takes more than
	 * half of it — one more round, which halves it to 125 ms: switch
	 * over then. */
	assert_int_equal(decide(&p, &st, 1, 2 * GIB, 0).action, POLICY_CONTINUE);
	assert_int_equal(decide(&p, &st, 2, GIB, 0).action, POLICY_CONTINUE);
	assert_int_equal(decide(&p, &st, 3, 512 * MIB, 0).action, POLICY_CONTINUE);
	assert_int_equal(st.extra_rounds, 0);
	d = decide(&p, &st, 4, 256 * MIB, 0);
	assert_int_equal(d.action, POLICY_CONTINUE);
	assert_int_equal(d.rung, POLICY_RUNG_CONVERGED);
	assert_int_equal(d.throttle_pct, 0);
	assert_int_equal(d.expected_downtime_ns, 250 * MS);
	assert_int_equal(st.extra_rounds, 1);
	assert_int_equal(st.stalled, 0);
	assert_int_equal(st.stalled_total, 0);
	d = decide(&p, &st, 5, 128 * MIB, 0);
	assert_int_equal(d.action, POLICY_SWITCHOVER);
	assert_int_equal(d.rung, POLICY_RUNG_CONVERGED);
	assert_int_equal(d.expected_downtime_ns, 125 * MS);
	assert_int_equal(st.extra_rounds, 1);

	/* The first round to fit may be the extra one's reason: it halved
	 * what a round that did not fit left. */
	memset(&st, 0, sizeof(st));
	assert_int_equal(decide_full(&extra_params, &st, 1, 2 * GBPS, GBPS, 0).action,
			 POLICY_CONTINUE);
	assert_int_equal(decide_full(&extra_params, &st, 2, 600 * MS, GBPS, 0).action,
			 POLICY_CONTINUE);
	assert_int_equal(st.extra_rounds, 0);
	assert_int_equal(decide_full(&extra_params, &st, 3, 300 * MS, GBPS, 0).action,
			 POLICY_CONTINUE);
	assert_int_equal(st.extra_rounds, 1);
	assert_int_equal(decide_full(&extra_params, &st, 4, 150 * MS, GBPS, 0).action,
			 POLICY_SWITCHOVER);
	assert_int_equal(st.extra_rounds, 1);

	/* Halving is more than needed: a round that shrank what remains by
	 * exactly POLICY_EXTRA_SHRINK_PCT % (480 ms to 360 ms) takes one too;
	 * the next, shrinking it by a byte less than a quarter (to 270 ms and
	 * a byte), switches over. */
	assert_int_equal(POLICY_EXTRA_SHRINK_PCT, 25);
	memset(&st, 0, sizeof(st));
	assert_int_equal(decide_full(&extra_params, &st, 1, 2 * GBPS, GBPS, 0).action,
			 POLICY_CONTINUE);
	assert_int_equal(decide_full(&extra_params, &st, 2, 480 * MS, GBPS, 0).action,
			 POLICY_CONTINUE);
	assert_int_equal(st.extra_rounds, 0);
	d = decide_full(&extra_params, &st, 3, 360 * MS, GBPS, 0);
	assert_int_equal(d.action, POLICY_CONTINUE);
	assert_int_equal(d.rung, POLICY_RUNG_CONVERGED);
	assert_int_equal(st.extra_rounds, 1);
	assert_int_equal(st.stalled, 0);
	assert_int_equal(st.stalled_total, 0);
	d = decide_full(&extra_params, &st, 4, 270 * MS + 1, GBPS, 0);
	assert_int_equal(d.action, POLICY_SWITCHOVER);
	assert_int_equal(d.expected_downtime_ns, 270 * MS + 1);
	assert_int_equal(st.extra_rounds, 1);
}

static void test_extra_round_conditions(void **state)
{
	(void)state;
	/* All the conditions hold: 300 ms after 600 ms, pass 2, none taken
	 * yet — an extra round. Each one false on its own switches over. */
	TAKES_EXTRA(2, 600 * MS, 300 * MS, 0, 0);

	/* pass > 1: the bulk copy never takes one, whatever the state says
	 * of a round before it. */
	SWITCHES(1, 600 * MS, 300 * MS, 0, 0);
	SWITCHES(1, UINT64_MAX, 300 * MS, 0, 0);
	TAKES_EXTRA(3, 600 * MS, 300 * MS, 0, 0);

	/* Shrank what remains by at least POLICY_EXTRA_SHRINK_PCT %: exactly
	 * a quarter is enough (400 ms to 300 ms), a byte less shrink is not
	 * — a byte less before, or a byte more after. */
	assert_int_equal(POLICY_EXTRA_SHRINK_PCT, 25);
	TAKES_EXTRA(2, 400 * MS, 300 * MS, 0, 0);
	SWITCHES(2, 400 * MS - 1, 300 * MS, 0, 0);
	SWITCHES(2, 400 * MS, 300 * MS + 1, 0, 0);
	TAKES_EXTRA(2, 400 * MS + 1, 300 * MS, 0, 0);
	TAKES_EXTRA(2, 400 * MS - 4, 300 * MS - 3, 0, 0);
	SWITCHES(2, 400 * MS - 4, 300 * MS - 2, 0, 0);
	/* A quarter of a figure not a multiple of four: of 400 ms and 3 bytes
	 * it is 100 ms and 0.75 bytes — a shrink of 100 ms and a byte (to
	 * 300 ms and 2 bytes) is enough, one of 100 ms (to 300 ms and 3
	 * bytes) is not. */
	TAKES_EXTRA(2, 400 * MS + 3, 300 * MS + 2, 0, 0);
	SWITCHES(2, 400 * MS + 3, 300 * MS + 3, 0, 0);
	/* Halving still qualifies, and anything between: half exactly, a byte
	 * less or more than half. */
	TAKES_EXTRA(2, 600 * MS, 300 * MS, 0, 0);
	TAKES_EXTRA(2, 600 * MS + 1, 300 * MS, 0, 0);
	TAKES_EXTRA(2, 600 * MS - 1, 300 * MS, 0, 0);
	TAKES_EXTRA(2, 500 * MS, 300 * MS, 0, 0);  /* shrank by two fifths */
	TAKES_EXTRA(2, UINT64_MAX, 300 * MS, 0, 0);
	SWITCHES(2, 375 * MS, 300 * MS, 0, 0);  /* shrank, by a fifth */
	SWITCHES(2, 300 * MS, 300 * MS, 0, 0);  /* the same */
	SWITCHES(2, 100 * MS, 300 * MS, 0, 0);  /* grew */
	SWITCHES(2, 0, 300 * MS, 0, 0);
	/* No overflow in the products (what remains x 100, the round before
	 * x 75) at the top of the range: a second's worth at ~13.8 EB/s
	 * against a 1.5 s limit, after 2^64 - 1 bytes. Three quarters of that
	 * is 3 x 2^62 - 0.75 bytes: 3 x 2^62 - 1 bytes is shrink enough,
	 * 3 x 2^62 is not. */
	{
		const uint64_t bw = 3ull << 62;
		struct policy_params p = extra_params;
		struct policy_state st = { .prev_remaining = UINT64_MAX };
		struct policy_decision d;

		p.downtime_limit_ns = 1500 * MS;
		d = decide_full(&p, &st, 2, (3ull << 62) - 1, bw, 0);
		assert_int_equal(d.expected_downtime_ns, SEC - 1);
		assert_int_equal(d.action, POLICY_CONTINUE);
		assert_int_equal(st.extra_rounds, 1);
		memset(&st, 0, sizeof(st));
		st.prev_remaining = UINT64_MAX;
		d = decide_full(&p, &st, 2, 3ull << 62, bw, 0);
		assert_int_equal(d.expected_downtime_ns, SEC);
		assert_int_equal(d.action, POLICY_SWITCHOVER);
		assert_int_equal(st.extra_rounds, 0);
		/* And with the round before a multiple of four: exactly three
		 * quarters of 2^64 - 4 bytes qualifies, a byte more does not. */
		memset(&st, 0, sizeof(st));
		st.prev_remaining = UINT64_MAX - 3;
		d = decide_full(&p, &st, 2, (3ull << 62) - 3, bw, 0);
		assert_int_equal(d.action, POLICY_CONTINUE);
		assert_int_equal(st.extra_rounds, 1);
		memset(&st, 0, sizeof(st));
		st.prev_remaining = UINT64_MAX - 3;
		d = decide_full(&p, &st, 2, (3ull << 62) - 2, bw, 0);
		assert_int_equal(d.action, POLICY_SWITCHOVER);
		assert_int_equal(st.extra_rounds, 0);
	}

	/* The transfer part more than a quarter of the limit (100 ms): the
	 * fixed cost makes the pause more than half of it either way. */
	SWITCHES(2, 600 * MS, 100 * MS, 150 * MS, 0);
	TAKES_EXTRA(2, 600 * MS, 100 * MS + 1, 150 * MS, 0);
	SWITCHES(2, 600 * MS, 10 * MS, 390 * MS, 0);  /* the pause nearly all fixed */
	TAKES_EXTRA(2, 600 * MS, 101 * MS, 299 * MS, 0);  /* the limit exactly */

	/* The pause more than half the limit (200 ms): the transfer part
	 * more than a quarter of it either way. */
	SWITCHES(2, 600 * MS, 200 * MS, 0, 0);
	TAKES_EXTRA(2, 600 * MS, 200 * MS + 1, 0, 0);
	SWITCHES(2, 600 * MS, 150 * MS, 50 * MS, 0);
	TAKES_EXTRA(2, 600 * MS, 150 * MS, 50 * MS + 1, 0);

	/* pass < POLICY_MAX_PASSES: the last pass switches over. */
	TAKES_EXTRA(POLICY_MAX_PASSES - 1, 600 * MS, 300 * MS, 0, 0);
	SWITCHES(POLICY_MAX_PASSES, 600 * MS, 300 * MS, 0, 0);
	SWITCHES(POLICY_MAX_PASSES + 1, 600 * MS, 300 * MS, 0, 0);

	/* Fewer than POLICY_EXTRA_ROUNDS taken. */
	TAKES_EXTRA(2, 600 * MS, 300 * MS, 0, POLICY_EXTRA_ROUNDS - 1);
	SWITCHES(2, 600 * MS, 300 * MS, 0, POLICY_EXTRA_ROUNDS);

	/* Something remaining: test_extra_round_never_when_nothing_remains. */

	/* And it fits at all: one nanosecond over, the ladder as ever (a
	 * round of progress: another round, no extra one counted). */
	struct policy_state st = { .prev_remaining = 800 * MS };
	struct policy_decision d = decide_full(&extra_params, &st, 2, 400 * MS + 1, GBPS, 0);

	assert_int_equal(d.action, POLICY_CONTINUE);
	assert_int_equal(st.extra_rounds, 0);
	TAKES_EXTRA(2, 800 * MS, 400 * MS, 0, 0);
}

static void test_extra_round_cap(void **state)
{
	struct policy_state st = { 0 };
	struct policy_decision d;

	(void)state;
	/* Rounds that keep halving while the bandwidth halves too: the pause
	 * stays at 300 ms. Two extra rounds, then switch over. */
	assert_int_equal(decide_full(&extra_params, &st, 1, 4 * GBPS, GBPS, 0).action,
			 POLICY_CONTINUE);
	d = decide_full(&extra_params, &st, 2, 300 * MS, GBPS, 0);
	assert_int_equal(d.action, POLICY_CONTINUE);
	assert_int_equal(st.extra_rounds, 1);
	d = decide_full(&extra_params, &st, 3, 150 * MS, GBPS / 2, 0);
	assert_int_equal(d.action, POLICY_CONTINUE);
	assert_int_equal(d.expected_downtime_ns, 300 * MS);
	assert_int_equal(st.extra_rounds, 2);
	d = decide_full(&extra_params, &st, 4, 75 * MS, GBPS / 4, 0);
	assert_int_equal(d.action, POLICY_SWITCHOVER);
	assert_int_equal(d.rung, POLICY_RUNG_CONVERGED);
	assert_int_equal(d.expected_downtime_ns, 300 * MS);
	assert_int_equal(st.extra_rounds, POLICY_EXTRA_ROUNDS);

	/* The cap is over the whole migration, and extra rounds come only
	 * in one run: the round after an extra one fits (another extra round
	 * or switchover) or it does not and switches over all the same
	 * (test_extra_round_then_worse). Rounds that fit and halve, then one
	 * that (the bandwidth dropping) no longer fits though it still makes
	 * progress: it is the last, not a round to fit again and take a
	 * second extra one after. */
	memset(&st, 0, sizeof(st));
	assert_int_equal(decide_full(&extra_params, &st, 1, 2 * GBPS, GBPS, 0).action,
			 POLICY_CONTINUE);
	assert_int_equal(decide_full(&extra_params, &st, 2, 300 * MS, GBPS, 0).action,
			 POLICY_CONTINUE);
	assert_int_equal(st.extra_rounds, 1);
	d = decide_full(&extra_params, &st, 3, 100 * MS, GBPS / 5, 0);  /* 500 ms */
	assert_int_equal(d.action, POLICY_SWITCHOVER);
	assert_int_equal(d.rung, POLICY_RUNG_CONVERGED);
	assert_int_equal(d.expected_downtime_ns, 500 * MS);
	assert_int_equal(st.extra_rounds, 1);
	assert_int_equal(st.stalled_total, 0);
	/* The cap taken earlier holds for a round that fits and would take
	 * one: two taken, 250 ms after 500 ms switches over. */
	memset(&st, 0, sizeof(st));
	st.prev_remaining = 100 * MS;
	st.extra_rounds = POLICY_EXTRA_ROUNDS;
	d = decide_full(&extra_params, &st, 6, 50 * MS, GBPS / 5, 0);  /* 250 ms */
	assert_int_equal(d.action, POLICY_SWITCHOVER);
	assert_int_equal(st.extra_rounds, POLICY_EXTRA_ROUNDS);
	assert_int_equal(st.stalled_total, 0);

	/* Rounds that shrink by exactly a quarter count the same: 480 ms,
	 * then 360 and 270 ms (two extra rounds), then 202.5 ms — a quarter
	 * less again, more than half the limit, but the cap is reached. */
	memset(&st, 0, sizeof(st));
	assert_int_equal(decide_full(&extra_params, &st, 1, 2 * GBPS, GBPS, 0).action,
			 POLICY_CONTINUE);
	assert_int_equal(decide_full(&extra_params, &st, 2, 480 * MS, GBPS, 0).action,
			 POLICY_CONTINUE);
	assert_int_equal(st.extra_rounds, 0);
	assert_int_equal(decide_full(&extra_params, &st, 3, 360 * MS, GBPS, 0).action,
			 POLICY_CONTINUE);
	assert_int_equal(st.extra_rounds, 1);
	assert_int_equal(decide_full(&extra_params, &st, 4, 270 * MS, GBPS, 0).action,
			 POLICY_CONTINUE);
	assert_int_equal(st.extra_rounds, 2);
	d = decide_full(&extra_params, &st, 5, 202500 * 1000, GBPS, 0);
	assert_int_equal(d.action, POLICY_SWITCHOVER);
	assert_int_equal(d.expected_downtime_ns, 202500 * 1000);
	assert_int_equal(st.extra_rounds, POLICY_EXTRA_ROUNDS);
}

static void test_extra_round_never_when_nothing_remains(void **state)
{
	struct policy_params p = extra_params;
	struct policy_state st = { 0 };
	struct policy_decision d;

	(void)state;
	/* Nothing remains after a round that had plenty: shrunk by a
	 * quarter and more (by all of it), pass 2, the pause (all of it fixed
	 * cost) more than half the limit. */
	SWITCHES(2, 600 * MS, 0, 300 * MS, 0);
	SWITCHES(2, UINT64_MAX, 0, 400 * MS, 0);
	SWITCHES(2, 1, 0, 201 * MS, 0);
	SWITCHES(2, 0, 0, 201 * MS, 0);
	/* Whatever the bandwidth: none measured, or little. */
	for (uint64_t bw = 0; bw < 3; bw++) {
		memset(&st, 0, sizeof(st));
		st.prev_remaining = 600 * MS;
		d = decide_full(&p, &st, 2, 0, bw, 300 * MS);
		assert_int_equal(d.action, POLICY_SWITCHOVER);
		assert_int_equal(d.expected_downtime_ns, 300 * MS);
		assert_int_equal(st.extra_rounds, 0);
	}
	/* A byte left is another matter: at 8 bytes/s it takes 125 ms, over
	 * a quarter of the limit. */
	memset(&st, 0, sizeof(st));
	st.prev_remaining = 2;
	d = decide_full(&p, &st, 2, 1, 8, 150 * MS);
	assert_int_equal(d.action, POLICY_CONTINUE);
	assert_int_equal(d.expected_downtime_ns, 275 * MS);
	assert_int_equal(st.extra_rounds, 1);
	/* And the same pause with nothing left does not. */
	memset(&st, 0, sizeof(st));
	st.prev_remaining = 2;
	d = decide_full(&p, &st, 2, 0, 8, 275 * MS);
	assert_int_equal(d.action, POLICY_SWITCHOVER);
	assert_int_equal(st.extra_rounds, 0);

	/* Nor after an extra round: it emptied what remained. */
	memset(&st, 0, sizeof(st));
	assert_int_equal(decide_full(&p, &st, 1, 2 * GBPS, GBPS, 250 * MS).action, POLICY_CONTINUE);
	assert_int_equal(decide_full(&p, &st, 2, 140 * MS, GBPS, 250 * MS).action, POLICY_CONTINUE);
	assert_int_equal(st.extra_rounds, 1);
	d = decide_full(&p, &st, 3, 0, GBPS, 250 * MS);
	assert_int_equal(d.action, POLICY_SWITCHOVER);
	assert_int_equal(st.extra_rounds, 1);

	/* A limit of 0 is met only by nothing at all, and that is never
	 * more than half of it. */
	p.downtime_limit_ns = 0;
	memset(&st, 0, sizeof(st));
	st.prev_remaining = GIB;
	d = decide_full(&p, &st, 2, 0, GBPS, 0);
	assert_int_equal(d.action, POLICY_SWITCHOVER);
	assert_int_equal(st.extra_rounds, 0);
}

static void test_extra_round_while_throttled(void **state)
{
	struct policy_params p = default_params;
	struct policy_state st = { 0 };
	struct policy_decision d;
	unsigned pass;

	(void)state;
	p.auto_converge = true;
	pass = stall_to_first_throttle(&p, &st, GIB);
	assert_int_equal(decide(&p, &st, pass++, GIB, GIB / 2).action, POLICY_CONTINUE);
	/* It fits, shrunk by three quarters, at 250 ms: the extra round keeps
	 * the throttle, on the auto-converge rung, stepping nothing. */
	d = decide(&p, &st, pass++, 256 * MIB, GIB / 2);
	assert_int_equal(d.action, POLICY_CONTINUE);
	assert_int_equal(d.rung, POLICY_RUNG_THROTTLED);
	assert_int_equal(d.throttle_pct, 20);
	assert_int_equal(st.throttle_pct, 20);
	assert_int_equal(st.rate_before_throttle, GIB);
	assert_int_equal(st.extra_rounds, 1);
	assert_int_equal(st.stalled_total, 1);
	d = decide(&p, &st, pass++, 128 * MIB, GIB / 2);
	assert_int_equal(d.action, POLICY_SWITCHOVER);
	assert_int_equal(d.rung, POLICY_RUNG_THROTTLED);
	assert_int_equal(d.throttle_pct, 20);
}

/* An extra round shrank what remains by at least POLICY_EXTRA_SHRINK_PCT
 * %, more than POLICY_SHRINK_PCT: it made progress, and the stall rule
 * counts rounds without progress *in a row*. */
static void test_extra_round_is_progress(void **state)
{
	struct policy_params p = default_params;
	struct policy_state st = { 0 };
	struct policy_decision d;

	(void)state;
	/* Stall, extra round: the extra round resets the count of stalled
	 * rounds in a row and adds nothing to the total. A stalled round
	 * after it is never counted: it does not fit and switches over (the
	 * round before fit the limit!), test_extra_round_then_worse. */
	assert_int_equal(decide(&p, &st, 1, 4 * GIB, BW / 2).action, POLICY_CONTINUE);
	assert_int_equal(decide(&p, &st, 2, 4 * GIB, BW / 2).action, POLICY_CONTINUE);
	assert_int_equal(st.stalled, 1);
	d = decide(&p, &st, 3, 200 * MIB, BW / 2); /* 195 ms, shrank by 95 % */
	assert_int_equal(d.action, POLICY_CONTINUE);
	assert_int_equal(st.extra_rounds, 1);
	assert_int_equal(st.stalled, 0);
	assert_int_equal(st.stalled_total, 1);
	d = decide(&p, &st, 4, 400 * MIB, BW / 2); /* 390 ms, grew */
	assert_int_equal(d.action, POLICY_SWITCHOVER);
	assert_int_equal(d.rung, POLICY_RUNG_CONVERGED);
	assert_int_equal(st.stalled, 0);
	assert_int_equal(st.stalled_total, 1);

	/* The least shrink that takes one, a quarter exactly (320 MiB to
	 * 240 MiB, 234 ms), is progress as much. */
	memset(&st, 0, sizeof(st));
	assert_int_equal(decide(&p, &st, 1, 320 * MIB, BW / 2).action, POLICY_CONTINUE);
	assert_int_equal(decide(&p, &st, 2, 320 * MIB, BW / 2).action, POLICY_CONTINUE);
	assert_int_equal(st.stalled, 1);
	d = decide(&p, &st, 3, 240 * MIB, BW / 2);
	assert_int_equal(d.action, POLICY_CONTINUE);
	assert_int_equal(st.extra_rounds, 1);
	assert_int_equal(st.stalled, 0);
	assert_int_equal(st.stalled_total, 1);
	d = decide(&p, &st, 4, 320 * MIB, BW / 2); /* 312.5 ms, grew */
	assert_int_equal(d.action, POLICY_SWITCHOVER);
	assert_int_equal(d.expected_downtime_ns, 312500 * 1000);
	assert_int_equal(st.stalled, 0);
	assert_int_equal(st.stalled_total, 1);

	/* Throttled: a step, then an extra round resets the count the step
	 * left (POLICY_STALL_ROUNDS - 1: the next stalled round would step
	 * again); stalled rounds after it never step — the first switches
	 * over on the auto-converge rung, the throttle as it was. */
	memset(&st, 0, sizeof(st));
	p.auto_converge = true;
	unsigned pass = stall_to_first_throttle(&p, &st, BW / 2);
	assert_int_equal(st.stalled, POLICY_STALL_ROUNDS - 1);
	unsigned total = st.stalled_total;
	d = decide(&p, &st, pass++, 200 * MIB, BW / 2);
	assert_int_equal(d.action, POLICY_CONTINUE);
	assert_int_equal(d.rung, POLICY_RUNG_THROTTLED);
	assert_int_equal(st.extra_rounds, 1);
	assert_int_equal(st.stalled, 0);
	assert_int_equal(st.stalled_total, total);
	d = decide(&p, &st, pass++, 400 * MIB, BW / 2);
	assert_int_equal(d.action, POLICY_SWITCHOVER);
	assert_int_equal(d.rung, POLICY_RUNG_THROTTLED);
	assert_int_equal(d.throttle_pct, 20);
	assert_int_equal(st.stalled, 0);
	assert_int_equal(st.stalled_total, total);
}

static void test_extra_round_past_timeout(void **state)
{
	struct policy_params p = extra_params;
	struct policy_state st = { 0 };
	struct policy_round r;
	struct policy_decision d;

	(void)state;
	/* Fitting wins over convergence-timeout (test_convergence_timeout),
	 * and the extra round is part of fitting: taken past the timeout. */
	p.convergence_timeout_ns = 1 * SEC;
	st.prev_remaining = 600 * MS;
	r = round_of(2, 300 * MS, 0);
	r.bandwidth_Bps = GBPS;
	r.elapsed_ns = 10 * SEC;
	d = decide_round(&p, &st, &r);
	assert_int_equal(d.action, POLICY_CONTINUE);
	assert_int_equal(d.rung, POLICY_RUNG_CONVERGED);
	assert_int_equal(st.extra_rounds, 1);
	/* The next round that fits switches over... */
	struct policy_state saved = st;
	r.pass = 3;
	r.remaining_bytes = 150 * MS;
	assert_int_equal(decide_round(&p, &st, &r).action, POLICY_SWITCHOVER);
	/* ...and so does one that does not (the bandwidth fell, 600 ms):
	 * after an extra round the timeout's final action is never reached
	 * (test_extra_round_then_worse). */
	st = saved;
	r.bandwidth_Bps = GBPS / 4;
	d = decide_round(&p, &st, &r);
	assert_int_equal(d.action, POLICY_SWITCHOVER);
	assert_int_equal(d.rung, POLICY_RUNG_CONVERGED);
	assert_int_equal(d.expected_downtime_ns, 600 * MS);
	/* Without the extra round, the same round past the timeout is its
	 * final action, like any round past it that does not fit. */
	memset(&st, 0, sizeof(st));
	st.prev_remaining = 300 * MS;
	d = decide_round(&p, &st, &r);
	assert_int_equal(d.action, POLICY_ABORT);
	assert_int_equal(d.rung, POLICY_RUNG_TIMEOUT);
}

/* One round at GBPS after a round that left 300 ms (that may have been
 * the extra_before-th extra round), past the timeout if p has one. */
static struct policy_decision after_extra(const struct policy_params *p, struct policy_state *st,
					  unsigned extra_before, unsigned pass,
					  uint64_t remaining, uint64_t dirty_rate, uint64_t bw)
{
	struct policy_round r = round_of(pass, remaining, dirty_rate);

	memset(st, 0, sizeof(*st));
	st->prev_remaining = 300 * MS;
	st->extra_rounds = extra_before;
	r.bandwidth_Bps = bw;
	r.elapsed_ns = 1000 * SEC;
	return decide_round(p, st, &r);
}

/* After an extra round, a round whose pause no longer fits the limit (the
 * link slowed, the guest sped up) switches over all the same: the pause
 * fitted a round ago, and an extra round must never turn a migration that
 * fitted into a suspended or aborted one. That comes before everything
 * else: the timeout, the bounds, the stall rule and the ladder. Before
 * any extra round, nothing of it. */
static void test_extra_round_then_worse(void **state)
{
	static const enum policy_final_action finals[] = { POLICY_FINAL_ABORT,
							    POLICY_FINAL_SUSPEND };
	struct policy_params p = extra_params;
	struct policy_state st;
	struct policy_decision d;

	(void)state;
	for (unsigned f = 0; f < 2; f++) {
		const enum policy_action final =
			finals[f] == POLICY_FINAL_ABORT ? POLICY_ABORT : POLICY_SUSPEND;

		p = extra_params;
		p.final_action = finals[f];
		/* The way there: 300 ms after 600 ms takes an extra round;
		 * the next, a nanosecond over the limit, switches over. */
		memset(&st, 0, sizeof(st));
		st.prev_remaining = 600 * MS;
		assert_int_equal(decide_full(&p, &st, 2, 300 * MS, GBPS, 0).action,
				 POLICY_CONTINUE);
		assert_int_equal(st.extra_rounds, 1);
		d = decide_full(&p, &st, 3, 400 * MS + 1, GBPS, 0);
		assert_int_equal(d.action, POLICY_SWITCHOVER);
		assert_int_equal(d.rung, POLICY_RUNG_CONVERGED);
		assert_int_equal(d.throttle_pct, 0);
		assert_int_equal(d.expected_downtime_ns, 400 * MS + 1);
		assert_int_equal(st.extra_rounds, 1);
		assert_int_equal(st.stalled, 0);
		assert_int_equal(st.stalled_total, 0);

		for (unsigned extra = 1; extra <= POLICY_EXTRA_ROUNDS; extra++) {
			/* Grown, the guest dirtying faster than the link: a
			 * round that climbs at once without an extra one. */
			d = after_extra(&p, &st, extra, 3, 2 * GBPS, 2 * GBPS, GBPS);
			assert_int_equal(d.action, POLICY_SWITCHOVER);
			assert_int_equal(d.rung, POLICY_RUNG_CONVERGED);
			assert_int_equal(d.expected_downtime_ns, 2 * SEC);
			assert_int_equal(st.extra_rounds, extra);
			assert_int_equal(st.stalled, 0);
			assert_int_equal(st.stalled_total, 0);
			/* Shrunk, but the link slowed more. */
			d = after_extra(&p, &st, extra, 3, 200 * MS, 0, GBPS / 4);
			assert_int_equal(d.action, POLICY_SWITCHOVER);
			assert_int_equal(d.expected_downtime_ns, 800 * MS);
			/* The fixed cost alone over the limit; nothing measured
			 * (the pause unbounded). */
			struct policy_round r = round_of(3, 0, 0);
			memset(&st, 0, sizeof(st));
			st.prev_remaining = 300 * MS;
			st.extra_rounds = extra;
			r.bandwidth_Bps = GBPS;
			r.fixed_cost_ns = 400 * MS + 1;
			assert_int_equal(decide_round(&p, &st, &r).action, POLICY_SWITCHOVER);
			d = after_extra(&p, &st, extra, 3, 300 * MS, 0, 0);
			assert_int_equal(d.action, POLICY_SWITCHOVER);
			assert_int_equal(d.expected_downtime_ns, UINT64_MAX);
			/* At the last pass, and one round short of the bound on
			 * stalled rounds (one stalled round already): no final
			 * action, nothing counted. */
			d = after_extra(&p, &st, extra, POLICY_MAX_PASSES, 2 * GBPS, 0, GBPS);
			assert_int_equal(d.action, POLICY_SWITCHOVER);
			memset(&st, 0, sizeof(st));
			st.prev_remaining = 300 * MS;
			st.extra_rounds = extra;
			st.stalled = 1;
			st.stalled_total = POLICY_MAX_STALLED - 1;
			d = decide_full(&p, &st, 3, 2 * GBPS, GBPS, 0);
			assert_int_equal(d.action, POLICY_SWITCHOVER);
			assert_int_equal(st.stalled, 1);
			assert_int_equal(st.stalled_total, POLICY_MAX_STALLED - 1);
		}

		/* The convergence timeout long passed (a round at 1000 s)
		 * changes nothing: switchover, not its final action. */
		p.convergence_timeout_ns = 1 * SEC;
		d = after_extra(&p, &st, 1, 3, 2 * GBPS, 2 * GBPS, GBPS);
		assert_int_equal(d.action, POLICY_SWITCHOVER);
		assert_int_equal(d.rung, POLICY_RUNG_CONVERGED);
		d = after_extra(&p, &st, POLICY_EXTRA_ROUNDS, 3, 500 * MS, 0, GBPS);
		assert_int_equal(d.action, POLICY_SWITCHOVER);

		/* Before any extra round, the same rounds go the old way: past
		 * the timeout, its final action... */
		d = after_extra(&p, &st, 0, 3, 2 * GBPS, 2 * GBPS, GBPS);
		assert_int_equal(d.action, final);
		assert_int_equal(d.rung, POLICY_RUNG_TIMEOUT);
		d = after_extra(&p, &st, 0, 3, 400 * MS + 1, 0, GBPS);
		assert_int_equal(d.action, final);
		assert_int_equal(d.rung, POLICY_RUNG_TIMEOUT);
		/* ...and without it, the stall rule and the ladder: a fast
		 * dirtier's final action at once, a slow one waits, a round
		 * of progress goes on, the last pass ends. */
		p.convergence_timeout_ns = 0;
		d = after_extra(&p, &st, 0, 3, 2 * GBPS, 2 * GBPS, GBPS);
		assert_int_equal(d.action, final);
		assert_int_equal(d.rung, POLICY_RUNG_STALLED);
		assert_int_equal(st.stalled_total, 1);
		d = after_extra(&p, &st, 0, 3, 400 * MS + 1, 0, GBPS);
		assert_int_equal(d.action, POLICY_CONTINUE);
		assert_int_equal(st.stalled, 1);
		assert_int_equal(st.stalled_total, 1);
		d = after_extra(&p, &st, 0, 3, 200 * MS, 0, GBPS / 4);
		assert_int_equal(d.action, POLICY_CONTINUE);
		assert_int_equal(st.stalled, 0);
		assert_int_equal(st.stalled_total, 0);
		d = after_extra(&p, &st, 0, POLICY_MAX_PASSES, 2 * GBPS, 0, GBPS);
		assert_int_equal(d.action, final);
		assert_int_equal(d.rung, POLICY_RUNG_STALLED);
		d = after_extra(&p, &st, 0, 3, 200 * MS, 0, 0);  /* nothing measured */
		assert_int_equal(d.action, POLICY_CONTINUE);
		assert_int_equal(d.expected_downtime_ns, UINT64_MAX);
	}

	/* With auto-converge, throttled: the extra round of
	 * test_extra_round_while_throttled (250 ms at 20 %), then a round
	 * that grew to 500 ms, the guest dirtying as fast as the link — a
	 * round that would step the throttle: it switches over on the
	 * auto-converge rung, the throttle as it was. */
	for (unsigned f = 0; f < 2; f++) {
		unsigned pass, total;

		p = default_params;
		p.auto_converge = true;
		p.final_action = finals[f];
		memset(&st, 0, sizeof(st));
		pass = stall_to_first_throttle(&p, &st, GIB);
		assert_int_equal(decide(&p, &st, pass++, GIB, GIB / 2).action, POLICY_CONTINUE);
		d = decide(&p, &st, pass++, 256 * MIB, GIB / 2);
		assert_int_equal(d.action, POLICY_CONTINUE);
		assert_int_equal(st.extra_rounds, 1);
		total = st.stalled_total;
		struct policy_state saved = st;
		d = decide(&p, &st, pass, 512 * MIB, GIB);
		assert_int_equal(d.action, POLICY_SWITCHOVER);
		assert_int_equal(d.rung, POLICY_RUNG_THROTTLED);
		assert_string_equal(policy_rung_name(d.rung), "auto-converge");
		assert_int_equal(d.throttle_pct, 20);
		assert_int_equal(d.expected_downtime_ns, 500 * MS);
		assert_int_equal(st.throttle_pct, 20);
		assert_int_equal(st.stalled_total, total);
		/* The timeout passed as well. */
		p.convergence_timeout_ns = 1 * SEC;
		st = saved;
		d = decide(&p, &st, pass, 512 * MIB, GIB);
		assert_int_equal(d.action, POLICY_SWITCHOVER);
		assert_int_equal(d.rung, POLICY_RUNG_THROTTLED);
		/* Throttling found useless, or at the cap: still switchover,
		 * not the final action. */
		p.convergence_timeout_ns = 0;
		st = saved;
		st.throttle_useless = true;
		d = decide(&p, &st, pass, 512 * MIB, GIB);
		assert_int_equal(d.action, POLICY_SWITCHOVER);
		assert_int_equal(d.rung, POLICY_RUNG_THROTTLED);
		st = saved;
		st.throttle_pct = POLICY_THROTTLE_MAX;
		d = decide(&p, &st, pass, 512 * MIB, GIB);
		assert_int_equal(d.action, POLICY_SWITCHOVER);
		assert_int_equal(d.throttle_pct, POLICY_THROTTLE_MAX);
		/* Without the extra round, that round steps the throttle. */
		st = saved;
		st.extra_rounds = 0;
		d = decide(&p, &st, pass, 512 * MIB, GIB);
		assert_int_equal(d.action, POLICY_THROTTLE);
		assert_int_equal(d.throttle_pct, 30);
	}
}

/* ---- convergence-timeout -------------------------------------------- */

static void test_convergence_timeout(void **state)
{
	struct policy_params p = default_params;
	struct policy_state st = { 0 };
	struct policy_round r;
	struct policy_decision d;

	(void)state;
	p.convergence_timeout_ns = 5 * SEC;
	/* Shrinking rounds, but slowly: the timeout ends it. */
	for (unsigned pass = 1; pass < 5; pass++) {
		d = decide(&p, &st, pass, (100 - 20 * pass) * GIB, 0);
		assert_int_equal(d.action, POLICY_CONTINUE);
	}
	d = decide(&p, &st, 5, 10 * GIB, 0); /* elapsed 5 s: reached */
	assert_int_equal(d.action, POLICY_SUSPEND);
	assert_int_equal(d.rung, POLICY_RUNG_TIMEOUT);
	assert_string_equal(policy_rung_name(d.rung), "convergence-timeout");
	assert_int_equal(d.expected_downtime_ns, 10 * SEC);

	/* One nanosecond before: not yet. Abort when configured. */
	p.final_action = POLICY_FINAL_ABORT;
	memset(&st, 0, sizeof(st));
	r = round_of(1, 10 * GIB, 0);
	r.elapsed_ns = 5 * SEC - 1;
	assert_int_equal(policy_decide(&p, &st, &r).action, POLICY_CONTINUE);
	r.pass = 2;
	r.remaining_bytes = 5 * GIB;
	r.elapsed_ns = 5 * SEC;
	d = policy_decide(&p, &st, &r);
	assert_int_equal(d.action, POLICY_ABORT);
	assert_int_equal(d.rung, POLICY_RUNG_TIMEOUT);

	/* Fitting wins over the timeout. */
	memset(&st, 0, sizeof(st));
	r.remaining_bytes = 100 * MIB;
	r.elapsed_ns = 100 * SEC;
	d = policy_decide(&p, &st, &r);
	assert_int_equal(d.action, POLICY_SWITCHOVER);
	assert_int_equal(d.rung, POLICY_RUNG_CONVERGED);

	/* Even on the bulk copy. */
	memset(&st, 0, sizeof(st));
	r = round_of(1, 10 * GIB, 0);
	r.elapsed_ns = 6 * SEC;
	assert_int_equal(policy_decide(&p, &st, &r).rung, POLICY_RUNG_TIMEOUT);

	/* 0 is no timeout at all. */
	p.convergence_timeout_ns = 0;
	memset(&st, 0, sizeof(st));
	r.elapsed_ns = UINT64_MAX;
	assert_int_equal(policy_decide(&p, &st, &r).action, POLICY_CONTINUE);
}

static void test_convergence_timeout_while_throttled(void **state)
{
	struct policy_params p = default_params;
	struct policy_state st = { 0 };
	struct policy_round r;
	struct policy_decision d;
	unsigned pass;

	(void)state;
	p.auto_converge = true;
	p.convergence_timeout_ns = 1000 * SEC;
	pass = stall_to_first_throttle(&p, &st, GIB);
	assert_int_equal(decide(&p, &st, pass++, 2 * GIB, GIB / 2).throttle_pct, 30);
	/* The timeout ends even a throttled migration that still helps;
	 * no further step is taken, the state is kept as it was. */
	r = round_of(pass, 2 * GIB, GIB / 2);
	r.elapsed_ns = 1000 * SEC;
	unsigned stalled = st.stalled, total = st.stalled_total;
	d = policy_decide(&p, &st, &r);
	assert_int_equal(d.action, POLICY_SUSPEND);
	assert_int_equal(d.rung, POLICY_RUNG_TIMEOUT);
	assert_int_equal(d.throttle_pct, 30);
	assert_int_equal(st.throttle_pct, 30);
	assert_int_equal(st.stalled, stalled);
	assert_int_equal(st.stalled_total, total);
}

/* ---- the hard bounds ------------------------------------------------ */

static void test_max_passes(void **state)
{
	struct policy_params p = default_params;
	struct policy_state st = { 0 };
	struct policy_decision d;
	uint64_t remaining = 1ull << 60;

	(void)state;
	for (int ac = 0; ac < 2; ac++) {
		for (int fa = 0; fa < 2; fa++) {
			p.auto_converge = ac;
			p.final_action = fa ? POLICY_FINAL_ABORT : POLICY_FINAL_SUSPEND;
			memset(&st, 0, sizeof(st));
			remaining = 1ull << 60;
			/* Always shrinking by 11 %, never fitting. */
			for (unsigned pass = 1; pass < POLICY_MAX_PASSES; pass++) {
				d = decide(&p, &st, pass, remaining, GIB);
				assert_int_equal(d.action, POLICY_CONTINUE);
				remaining = remaining / 100 * 89;
			}
			assert_int_equal(st.stalled_total, 0);
			d = decide(&p, &st, POLICY_MAX_PASSES, remaining, GIB);
			assert_int_equal(d.action, fa ? POLICY_ABORT : POLICY_SUSPEND);
			assert_int_equal(d.rung, POLICY_RUNG_STALLED);
			assert_int_equal(d.throttle_pct, 0);
		}
	}
	/* A pass number past the bound (a caller that went on) ends too. */
	memset(&st, 0, sizeof(st));
	st.prev_remaining = 1ull << 60;
	d = decide(&p, &st, POLICY_MAX_PASSES + 1, 1ull << 40, GIB);
	assert_int_equal(d.action, POLICY_ABORT);
}

static void test_max_stalled(void **state)
{
	struct policy_params p = default_params;
	struct policy_state st = { 0 };
	struct policy_decision d;
	unsigned pass = 1;

	(void)state;
	p.auto_converge = true;
	/* Alternating 4 GiB, 8 GiB with the guest dirtying slower than the
	 * link: every other round stalls, never two in a row, so nothing is
	 * throttled — the total bound ends it. */
	d = decide(&p, &st, pass++, 4 * GIB, GIB / 2);
	assert_int_equal(d.action, POLICY_CONTINUE);
	for (;;) {
		d = decide(&p, &st, pass++, 8 * GIB, GIB / 2);
		if (d.action != POLICY_CONTINUE)
			break;
		assert_int_equal(st.stalled, 1);
		assert_int_equal(decide(&p, &st, pass++, 4 * GIB, GIB / 2).action, POLICY_CONTINUE);
	}
	assert_int_equal(d.action, POLICY_SUSPEND);
	assert_int_equal(d.rung, POLICY_RUNG_STALLED);
	assert_int_equal(d.throttle_pct, 0);
	assert_int_equal(st.stalled_total, POLICY_MAX_STALLED);
	assert_int_equal(pass - 1, 2 * POLICY_MAX_STALLED);

	/* Throttled, with the climb slowed by rounds of progress: the total
	 * bound ends it before the throttle reaches the cap. */
	memset(&st, 0, sizeof(st));
	p.downtime_limit_ns = 1 * MS;
	pass = stall_to_first_throttle(&p, &st, GIB);
	uint64_t remaining = 2 * GIB;
	unsigned last = st.throttle_pct;
	for (;;) {
		remaining /= 2; /* progress */
		d = decide(&p, &st, pass++, remaining, 0);
		assert_int_equal(d.action, POLICY_CONTINUE);
		d = decide(&p, &st, pass++, remaining, 0); /* stall 1 */
		if (d.action != POLICY_CONTINUE)
			break;
		d = decide(&p, &st, pass++, remaining, 0); /* stall 2: a step */
		if (d.action != POLICY_THROTTLE)
			break;
		assert_int_equal(d.throttle_pct, last + POLICY_THROTTLE_STEP);
		last = d.throttle_pct;
	}
	assert_int_equal(d.action, POLICY_SUSPEND);
	assert_int_equal(d.rung, POLICY_RUNG_STALLED);
	assert_int_equal(st.stalled_total, POLICY_MAX_STALLED);
	assert_true(st.throttle_pct < POLICY_THROTTLE_MAX);
	assert_true(pass - 1 <= POLICY_MAX_PASSES);
}

static void test_bounds_are_consistent(void **state)
{
	(void)state;
	/* The ladder's rungs fit within the bounds: a full climb to the cap
	 * (two stalled rounds — one for a guest dirtying at 90 % of the link
	 * or more — then one per step, then one more) takes fewer stalled
	 * rounds than POLICY_MAX_STALLED, and that fewer passes than
	 * POLICY_MAX_PASSES. The extra rounds below the limit are few, and
	 * never past POLICY_MAX_PASSES. */
	unsigned steps = 1 + (POLICY_THROTTLE_MAX - POLICY_THROTTLE_INITIAL + POLICY_THROTTLE_STEP -
			      1) / POLICY_THROTTLE_STEP;
	assert_int_equal(steps, 9); /* 20, 30, ..., 90, 99 */
	assert_true(POLICY_STALL_ROUNDS + steps - 1 + 1 <= POLICY_MAX_STALLED);
	assert_true(POLICY_MAX_STALLED < POLICY_MAX_PASSES);
	assert_true(POLICY_STALL_ROUNDS >= 1);
	assert_true(POLICY_SHRINK_PCT > 0 && POLICY_SHRINK_PCT < 100);
	assert_true(POLICY_THROTTLE_HELPS_PCT > 0 && POLICY_THROTTLE_HELPS_PCT < 100);
	/* "Fast" is at most the link's own rate, and above the rate at which
	 * rounds shrink by POLICY_SHRINK_PCT %. */
	assert_true(POLICY_FAST_DIRTY_PCT <= 100);
	assert_true(POLICY_FAST_DIRTY_PCT >= 100 - POLICY_SHRINK_PCT);
	assert_true(POLICY_EXTRA_ROUNDS >= 1 && POLICY_EXTRA_ROUNDS < POLICY_MAX_PASSES);
	/* A round that shrinks enough for an extra round is progress (the
	 * extra round resets the stall count, check_stall_rule), and
	 * something can remain after it. */
	assert_true(POLICY_EXTRA_SHRINK_PCT > POLICY_SHRINK_PCT);
	assert_true(POLICY_EXTRA_SHRINK_PCT < 100);
}

/* ---- simulated guests ----------------------------------------------- */

/* A guest of ram bytes, writing a working set of wss bytes at rate bytes/s
 * unthrottled; a throttle of t % scales the rate by (100 - t * sens) %,
 * sens in [0, 1]. Each round sends what remained at bw and leaves what the
 * guest dirtied meanwhile; the round lasts `overhead` (a fraction) longer
 * than its sending — syncing the dirty log, say — and the guest dirties
 * through all of it. So a round leaves rate x (1 + overhead) / bw of what
 * it sent: with an overhead, a guest dirtying below 90 % of the link can
 * make no progress. */
struct guest {
	double ram, wss, rate, sens, bw, fixed_ns, jitter, overhead;
};

struct outcome {
	struct policy_decision d;
	unsigned passes;
	unsigned throttle_steps;
	unsigned extra_rounds;
};

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* xorshift64* — fixed seed, the same scenarios every run. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

static double rng_unit(void)
{
	return (double)(rng() >> 11) / (double)(1ull << 53);
}

static uint64_t rng_below(uint64_t n)
{
	return n ? rng() % n : 0;
}

static uint64_t to_u64(double x)
{
	if (!(x > 0))
		return 0;
	if (x >= 18446744073709549568.0)
		return UINT64_MAX;
	return (uint64_t)x;
}

/* Checks what every decision in a migration's sequence must satisfy. */
static void check_decision(const struct policy_params *p, const struct policy_state *st,
			   const struct policy_round *r, const struct policy_decision *d,
			   unsigned prev_throttle)
{
	assert_int_equal(d->expected_downtime_ns, policy_expected_downtime(r));
	assert_int_equal(d->throttle_pct, st->throttle_pct);
	assert_true(d->throttle_pct <= POLICY_THROTTLE_MAX);
	assert_true(d->throttle_pct >= prev_throttle);
	assert_true(st->stalled_total <= POLICY_MAX_STALLED);
	assert_true(st->extra_rounds <= POLICY_EXTRA_ROUNDS);
	/* When it fits, switchover or an extra round (check_extra_round says
	 * which). When it does not, switchover exactly when an extra round
	 * was taken before (a round that does not fit never takes one, so
	 * st->extra_rounds is what it was before the round). */
	if (d->expected_downtime_ns <= p->downtime_limit_ns)
		assert_true(d->action == POLICY_SWITCHOVER || d->action == POLICY_CONTINUE);
	else if (st->extra_rounds > 0)
		assert_int_equal(d->action, POLICY_SWITCHOVER);
	else
		assert_int_not_equal(d->action, POLICY_SWITCHOVER);
	switch (d->action) {
	case POLICY_CONTINUE:
		assert_int_equal(d->throttle_pct, prev_throttle);
		assert_int_equal(d->rung,
				 d->throttle_pct ? POLICY_RUNG_THROTTLED : POLICY_RUNG_CONVERGED);
		break;
	case POLICY_SWITCHOVER:
		assert_int_equal(d->throttle_pct, prev_throttle);
		assert_int_equal(d->rung,
				 d->throttle_pct ? POLICY_RUNG_THROTTLED : POLICY_RUNG_CONVERGED);
		break;
	case POLICY_THROTTLE:
		assert_true(p->auto_converge);
		assert_int_equal(d->rung, POLICY_RUNG_THROTTLED);
		assert_true(d->throttle_pct > prev_throttle);
		if (prev_throttle == 0)
			assert_int_equal(d->throttle_pct, POLICY_THROTTLE_INITIAL);
		else if (prev_throttle + POLICY_THROTTLE_STEP <= POLICY_THROTTLE_MAX)
			assert_int_equal(d->throttle_pct, prev_throttle + POLICY_THROTTLE_STEP);
		else
			assert_int_equal(d->throttle_pct, POLICY_THROTTLE_MAX);
		break;
	case POLICY_SUSPEND:
	case POLICY_ABORT:
		assert_int_equal(d->action, p->final_action == POLICY_FINAL_ABORT ? POLICY_ABORT
										  : POLICY_SUSPEND);
		assert_int_equal(d->throttle_pct, prev_throttle);
		if (d->rung == POLICY_RUNG_TIMEOUT) {
			assert_true(p->convergence_timeout_ns != 0);
			assert_true(r->elapsed_ns >= p->convergence_timeout_ns);
		} else {
			assert_int_equal(d->rung, POLICY_RUNG_STALLED);
		}
		break;
	default:
		fail_msg("action %d", (int)d->action);
	}
	if (!p->auto_converge)
		assert_int_equal(d->throttle_pct, 0);
}

/* How often the property tests met each side of the stall rule, and of
 * the extra-round rule (and the round after one that no longer fits). */
static unsigned n_fast_climbs, n_slow_waits, n_extra, n_extra_refused, n_extra_worse;

/* The extra-round rule, round by round: when the pause fits the limit, an
 * extra round (another round, the throttle kept, counted in
 * st->extra_rounds) exactly when every condition holds — switchover
 * otherwise; never one when it does not fit, and then, after one taken
 * before, switchover with nothing else touched. */
static void check_extra_round(const struct policy_params *p, const struct policy_state *before,
			      const struct policy_state *st, const struct policy_round *r,
			      const struct policy_decision *d)
{
	const uint64_t limit = p->downtime_limit_ns;
	const bool fits = d->expected_downtime_ns <= limit;
	/* The transfer part: the pause less the fixed cost (saturated, the
	 * pause is never less than the fixed cost). */
	assert_true(d->expected_downtime_ns >= r->fixed_cost_ns);
	const uint64_t xfer = d->expected_downtime_ns - r->fixed_cost_ns;
	/* What remains shrank by at least POLICY_EXTRA_SHRINK_PCT %. */
	const bool shrank = r->pass > 1 && (unsigned __int128)r->remaining_bytes * 100 <=
						   (unsigned __int128)before->prev_remaining *
							   (100 - POLICY_EXTRA_SHRINK_PCT);
	const bool want = fits && shrank && r->remaining_bytes > 0 && xfer > limit / 4 &&
			  d->expected_downtime_ns > limit / 2 &&
			  before->extra_rounds < POLICY_EXTRA_ROUNDS && r->pass < POLICY_MAX_PASSES;

	if (!fits && before->extra_rounds > 0) {
		n_extra_worse++;
		assert_int_equal(d->action, POLICY_SWITCHOVER);
		assert_int_equal(d->rung, before->throttle_pct ? POLICY_RUNG_THROTTLED
							       : POLICY_RUNG_CONVERGED);
		assert_int_equal(st->prev_remaining, r->remaining_bytes);
		assert_int_equal(st->stalled, before->stalled);
		assert_int_equal(st->stalled_total, before->stalled_total);
		assert_int_equal(st->throttle_pct, before->throttle_pct);
		assert_int_equal(st->rate_before_throttle, before->rate_before_throttle);
		assert_int_equal(st->throttle_useless, before->throttle_useless);
		assert_int_equal(st->extra_rounds, before->extra_rounds);
		return;
	}
	if (!want) {
		assert_int_equal(st->extra_rounds, before->extra_rounds);
		if (fits)
			assert_int_equal(d->action, POLICY_SWITCHOVER);
		n_extra_refused += fits && shrank && r->remaining_bytes > 0 &&
				   d->expected_downtime_ns > limit / 2;
		return;
	}
	n_extra++;
	assert_int_equal(d->action, POLICY_CONTINUE);
	assert_int_equal(st->extra_rounds, before->extra_rounds + 1);
	assert_int_equal(d->rung, before->throttle_pct ? POLICY_RUNG_THROTTLED
						       : POLICY_RUNG_CONVERGED);
	assert_int_equal(st->throttle_pct, before->throttle_pct);
	assert_int_equal(st->rate_before_throttle, before->rate_before_throttle);
	assert_int_equal(st->throttle_useless, before->throttle_useless);
	/* That shrink is progress: nothing counted against the bound
	 * (check_stall_rule checks the count of stalled rounds in a row). */
	assert_int_equal(st->stalled_total, before->stalled_total);
}

/* The stall rule, round by round, from the state before r to the state
 * after: progress (an extra round's included) resets the count and never
 * climbs; a round without it counts once, and climbs at once if the guest
 * dirtied at least 90 % of what the link sent, waits otherwise. */
static void check_stall_rule(const struct policy_state *before, const struct policy_state *st,
			     const struct policy_round *r, const struct policy_decision *d)
{
	bool shrank = r->pass <= 1 || (unsigned __int128)r->remaining_bytes * 100 <
					      (unsigned __int128)before->prev_remaining *
						      (100 - POLICY_SHRINK_PCT);
	bool bound = r->pass >= POLICY_MAX_PASSES || st->stalled_total >= POLICY_MAX_STALLED;

	if (st->extra_rounds != before->extra_rounds)
		assert_true(shrank); /* an extra round's shrink is progress */
	if (d->action == POLICY_SWITCHOVER || d->rung == POLICY_RUNG_TIMEOUT) {
		/* Decided before the round was counted. */
		assert_int_equal(st->stalled, before->stalled);
		assert_int_equal(st->stalled_total, before->stalled_total);
		return;
	}
	if (shrank) {
		assert_int_equal(st->stalled, 0);
		assert_int_equal(st->stalled_total, before->stalled_total);
		assert_int_not_equal(d->action, POLICY_THROTTLE);
		if (d->action != POLICY_CONTINUE)
			assert_true(bound);
		return;
	}
	assert_int_equal(st->stalled_total, before->stalled_total + 1);
	if (is_fast(r->dirty_rate_Bps, r->bandwidth_Bps)) {
		assert_int_not_equal(d->action, POLICY_CONTINUE);
		n_fast_climbs += before->stalled + 1 < POLICY_STALL_ROUNDS;
	} else if (before->stalled + 1 < POLICY_STALL_ROUNDS && !bound) {
		assert_int_equal(d->action, POLICY_CONTINUE);
		assert_int_equal(st->stalled, before->stalled + 1);
		n_slow_waits++;
	}
}

/* A migration that took extra rounds took them in one run and switched
 * over at the round after the last: each round after an extra one fits
 * (another extra round, or switchover) or switches over all the same. */
static void check_extra_run(unsigned first_extra, unsigned extra_rounds, unsigned last_pass,
			    enum policy_action last)
{
	if (!extra_rounds) {
		assert_int_equal(first_extra, 0);
		return;
	}
	assert_int_equal(last, POLICY_SWITCHOVER);
	assert_int_equal(last_pass, first_extra + extra_rounds);
}

/* Migrates g under p until the policy ends it; fails if it has not by
 * POLICY_MAX_PASSES (the loop runs well past to catch a policy that does
 * not end). */
static struct outcome simulate(const struct policy_params *p, const struct guest *g)
{
	struct policy_state st = { 0 };
	struct policy_round r = { 0 };
	struct outcome o = { 0 };
	double remaining = g->ram, elapsed = 0;
	unsigned throttle = 0, first_extra = 0;

	for (unsigned pass = 1; pass <= 4 * POLICY_MAX_PASSES; pass++) {
		double jit = 1 + g->jitter * (2 * rng_unit() - 1);
		double bw = g->bw * jit;
		double rate = g->rate * (100 - throttle * g->sens) / 100;
		double t = (bw > 0 ? remaining / bw : 1e6) * (1 + g->overhead);

		elapsed += t * 1e9 + g->fixed_ns / 4;
		remaining = rate * t;
		if (remaining > g->wss)
			remaining = g->wss;
		r = (struct policy_round){
			.pass = pass,
			.elapsed_ns = to_u64(elapsed),
			.remaining_bytes = to_u64(remaining),
			.bandwidth_Bps = to_u64(bw),
			.dirty_rate_Bps = to_u64(rate),
			.fixed_cost_ns = to_u64(g->fixed_ns),
		};
		struct policy_state before = st;

		o.d = policy_decide(p, &st, &r);
		check_decision(p, &st, &r, &o.d, throttle);
		check_extra_round(p, &before, &st, &r, &o.d);
		check_stall_rule(&before, &st, &r, &o.d);
		if (o.d.action == POLICY_THROTTLE)
			o.throttle_steps++;
		throttle = o.d.throttle_pct;
		o.extra_rounds = st.extra_rounds;
		if (st.extra_rounds && !first_extra)
			first_extra = pass;
		if (is_final(o.d.action)) {
			o.passes = pass;
			check_extra_run(first_extra, st.extra_rounds, pass, o.d.action);
			return o;
		}
	}
	fail_msg("the policy did not end the migration in %u passes", 4 * POLICY_MAX_PASSES);
	return o;
}

static void test_throttled_guest_converges(void **state)
{
	struct policy_params p = default_params;
	/* 4 GiB, a 2 GiB working set written at 1.6 GiB/s over a 1 GiB/s
	 * link: without help the rounds never shrink. Its dirty rate scales
	 * with (100 - throttle) %. */
	const struct guest g = {
		.ram = 4.0 * GIB,
		.wss = 2.0 * GIB,
		.rate = 1.6 * GIB,
		.sens = 1,
		.bw = 1.0 * GIB,
		.fixed_ns = 20.0 * MS,
	};
	struct outcome o;

	(void)state;
	p.auto_converge = false;
	o = simulate(&p, &g);
	assert_int_equal(o.d.action, POLICY_SUSPEND);
	assert_int_equal(o.d.rung, POLICY_RUNG_STALLED);
	/* It dirties faster than the link sends: no waiting, the first round
	 * after the bulk copy, which does not shrink, is the last. */
	assert_int_equal(o.passes, 2);

	/* Dirtying at 0.85 GiB/s, below 90 % of the link, but with rounds
	 * that last 10 % longer than their sending: they shrink by only 6.5 %
	 * (0.85 x 1.1 = 0.935), and that guest gets the POLICY_STALL_ROUNDS
	 * wait. */
	struct guest slow = g;
	slow.rate = 0.85 * GIB;
	slow.overhead = 0.1;
	assert_false(is_fast(to_u64(slow.rate), to_u64(slow.bw)));
	o = simulate(&p, &slow);
	assert_int_equal(o.d.action, POLICY_SUSPEND);
	assert_int_equal(o.d.rung, POLICY_RUNG_STALLED);
	assert_int_equal(o.passes, 1 + POLICY_STALL_ROUNDS);

	p.auto_converge = true;
	o = simulate(&p, &g);
	assert_int_equal(o.d.action, POLICY_SWITCHOVER);
	assert_int_equal(o.d.rung, POLICY_RUNG_THROTTLED);
	assert_string_equal(policy_rung_name(o.d.rung), "auto-converge");
	/* 1.6 * (100 - t) % < 0.9: 50 % is the first throttle that lets
	 * the rounds shrink by more than 10 %. */
	assert_int_equal(o.d.throttle_pct, 50);
	assert_int_equal(o.throttle_steps, 4);
	assert_true(o.d.expected_downtime_ns <= p.downtime_limit_ns);
	assert_true(o.passes < POLICY_MAX_PASSES);
	/* Passes 2, 3, 4 step at once (1.6, 1.28, 1.12 GiB/s: at least the
	 * link); at 40 % (0.96 GiB/s) the rounds shrink 4 %, and that round,
	 * already one after a step, steps to 50 % at pass 5 (1.92 GiB). Pass 6
	 * shrinks that by a fifth to 1.54 GiB, then 1.23, 0.98, 0.79, 0.63,
	 * 0.50, 0.40, 0.32, 0.26 GiB: 258 ms plus 20 fits at pass 14 — more
	 * than half the limit, but the round shrank what remained by less
	 * than a quarter: no extra round. */
	assert_int_equal(o.passes, 14);
	assert_int_equal(o.d.expected_downtime_ns / MS, 277);
	assert_int_equal(o.extra_rounds, 0);

	/* The slower guest: two stalled rounds, one step to 20 % at pass 3
	 * (0.68 GiB/s), then shrinking by 25.2 % a round (0.68 x 1.1 = 0.748)
	 * from 1.75 GiB to 0.229 GiB: 229 ms with the 20 ms fixed cost fits
	 * at pass 10 — more than half the limit, and that round shrank what
	 * remained by a quarter or more (not halving it): an extra round, to
	 * 0.171 GiB, 191 ms at pass 11, more than half the limit again and
	 * shrunk as much: the second. Pass 12 leaves 0.128 GiB, 148 ms:
	 * switch over. */
	o = simulate(&p, &slow);
	assert_int_equal(o.d.action, POLICY_SWITCHOVER);
	assert_int_equal(o.d.rung, POLICY_RUNG_THROTTLED);
	assert_int_equal(o.d.throttle_pct, 20);
	assert_int_equal(o.d.expected_downtime_ns / MS, 148);
	assert_int_equal(o.extra_rounds, POLICY_EXTRA_ROUNDS);
	assert_int_equal(o.throttle_steps, 1);
	assert_int_equal(o.passes, 10 + POLICY_EXTRA_ROUNDS);

	/* A guest throttling does not slow (sens 0): auto-converge gives up
	 * after three steps, with abort if asked. */
	struct guest stubborn = g;
	stubborn.sens = 0;
	p.final_action = POLICY_FINAL_ABORT;
	o = simulate(&p, &stubborn);
	assert_int_equal(o.d.action, POLICY_ABORT);
	assert_int_equal(o.d.rung, POLICY_RUNG_STALLED);
	assert_int_equal(o.d.throttle_pct, 40);
	assert_int_equal(o.throttle_steps, 3);
	/* Bulk copy, a step at each of passes 2-4, the verdict at 5. */
	assert_int_equal(o.passes, 5);

	/* A guest throttling slows only a little (rate x (100 - 0.6 t) %): it
	 * helps enough to keep climbing, but never enough to converge — the
	 * cap or the bound ends it. */
	struct guest weak = g;
	weak.rate = 4.0 * GIB;
	weak.sens = 0.6;
	p.final_action = POLICY_FINAL_SUSPEND;
	o = simulate(&p, &weak);
	assert_int_equal(o.d.action, POLICY_SUSPEND);
	assert_int_equal(o.d.rung, POLICY_RUNG_STALLED);
	assert_int_equal(o.d.throttle_pct, 99);
	assert_int_equal(o.throttle_steps, 9);
	/* Always faster than the link (4 GiB/s x 40.6 % at the cap): a step
	 * at each of passes 2-10, the cap's final action at 11. */
	assert_int_equal(o.passes, 2 + 9);

	/* A light guest converges without any throttle. */
	struct guest light = g;
	light.rate = 0.3 * GIB;
	o = simulate(&p, &light);
	assert_int_equal(o.d.action, POLICY_SWITCHOVER);
	assert_int_equal(o.d.rung, POLICY_RUNG_CONVERGED);
	assert_int_equal(o.d.throttle_pct, 0);
	/* 4 GiB, then 1.2, 0.36, 0.108 GiB: 128 ms, under half the limit. */
	assert_int_equal(o.passes, 3);
	assert_int_equal(o.extra_rounds, 0);

	/* A guest whose rounds halve, converging above half the limit: the
	 * bulk copy leaves 1.8 GiB, then 0.81, 0.36 and at pass 4 0.164 GiB:
	 * 184 ms fits, but the round more than halved what remained (a
	 * quarter is enough) — one more round takes it to 0.074 GiB, 93.8 ms,
	 * and switches over at pass 5. */
	struct guest halving = g;
	halving.rate = 0.45 * GIB;
	o = simulate(&p, &halving);
	assert_int_equal(o.d.action, POLICY_SWITCHOVER);
	assert_int_equal(o.d.rung, POLICY_RUNG_CONVERGED);
	assert_int_equal(o.extra_rounds, 1);
	assert_int_equal(o.passes, 5);
	assert_int_equal(o.d.expected_downtime_ns / MS, 93);
}

static struct policy_params random_params(void)
{
	static const uint64_t limits[] = { 0, 1 * MS, 30 * MS, 300 * MS, 2 * SEC, 2000 * SEC };
	struct policy_params p = {
		.downtime_limit_ns = rng_below(8) ? limits[rng_below(6)] : rng(),
		.auto_converge = rng() & 1,
		.convergence_timeout_ns = rng_below(3) ? 0 : 1 + rng_below(600 * SEC),
		.final_action = (rng() & 1) ? POLICY_FINAL_ABORT : POLICY_FINAL_SUSPEND,
	};

	return p;
}

static void test_property_simulated_guests(void **state)
{
	unsigned n_switch = 0, n_throttled = 0, n_final = 0, n_fast = 0, n_extra_used = 0;
	unsigned n_extra_then_final = 0, n_steady_extra_used = 0;

	(void)state;
	rng_state = 0x9e3779b97f4a7c15ull;
	n_fast_climbs = n_slow_waits = n_extra = n_extra_refused = n_extra_worse = 0;
	for (unsigned i = 0; i < 10000; i++) {
		struct policy_params p = random_params();
		struct guest g;

		g.ram = (double)(64 * MIB) * (1 + rng_below(1024));
		g.wss = g.ram * (0.001 + rng_unit());
		if (g.wss > g.ram)
			g.wss = g.ram;
		g.bw = (double)MIB * (1 + rng_below(20 * 1024)); /* 1 MiB/s .. 20 GiB/s */
		/* Up to 4x the bandwidth: many guests dirty faster than it. */
		g.rate = g.bw * 4 * rng_unit();
		g.sens = rng_below(4) ? rng_unit() : (double)(rng() & 1);
		g.fixed_ns = (double)rng_below(100 * MS);
		g.jitter = rng_unit() * 0.5;
		/* Half the guests' rounds last up to 30 % longer than their
		 * sending. */
		g.overhead = rng_below(2) ? 0 : rng_unit() * 0.3;
		if (g.rate > g.bw)
			n_fast++;

		struct outcome o = simulate(&p, &g);
		assert_true(o.passes >= 1 && o.passes <= POLICY_MAX_PASSES);
		assert_true(o.throttle_steps <= 9);
		if (!p.auto_converge)
			assert_int_equal(o.throttle_steps, 0);
		if (o.d.action == POLICY_SWITCHOVER)
			n_switch++, n_throttled += o.d.rung == POLICY_RUNG_THROTTLED;
		else
			n_final++;
		n_extra_used += o.extra_rounds > 0;
		n_extra_then_final += o.extra_rounds > 0 && o.d.action != POLICY_SWITCHOVER;

		/* The same guest on a steady link (the random stream put back
		 * after it, so the scenarios above stay the same). A round that
		 * takes an extra one shrank what remains by a quarter or more;
		 * the throttle kept, the next round shrinks it by as much
		 * again and fits: a migration that took one converged. */
		struct guest steady = g;
		const uint64_t rng_saved = rng_state;

		steady.jitter = 0;
		o = simulate(&p, &steady);
		rng_state = rng_saved;
		if (o.extra_rounds > 0) {
			n_steady_extra_used++;
			assert_int_equal(o.d.action, POLICY_SWITCHOVER);
		}
	}
	/* The scenarios cover every kind of ending. */
	assert_true(n_fast > 1000);
	assert_true(n_switch > 100);
	assert_true(n_throttled > 10);
	assert_true(n_final > 100);
	/* And both sides of the stall rule. */
	assert_true(n_fast_climbs > 1000);
	assert_true(n_slow_waits > 1000);
	/* And of the extra-round rule: taken (by more than 100 migrations,
	 * some twice), refused at the cap or for too little left to send. */
	assert_true(n_extra_used > 100);
	assert_true(n_extra > n_extra_used);
	assert_true(n_extra_refused > 10);
	assert_true(n_steady_extra_used > 100);
	/* On a jittery link too, every migration that took an extra round
	 * switched over: when the bandwidth drops after one, the next round
	 * need not fit — it switches over all the same (and it happens
	 * here: n_extra_worse). */
	assert_int_equal(n_extra_then_final, 0);
	assert_true(n_extra_worse > 0);
}

static uint64_t random_figure(void)
{
	switch (rng_below(8)) {
	case 0:
		return 0;
	case 1:
		return UINT64_MAX - rng_below(3);
	case 2:
		return rng();
	case 3:
		return rng_below(1000);
	default:
		return rng_below(64 * GIB);
	}
}

static void test_property_random_rounds(void **state)
{
	unsigned endings[5] = { 0 };

	(void)state;
	rng_state = 0x243f6a8885a308d3ull;
	n_fast_climbs = n_slow_waits = n_extra = n_extra_refused = n_extra_worse = 0;
	for (unsigned i = 0; i < 20000; i++) {
		struct policy_params p = random_params();
		struct policy_state st = { 0 };
		struct policy_decision d = { 0 };
		uint64_t elapsed = 0, rem = random_figure();
		unsigned throttle = 0, pass, first_extra = 0;
		/* Some scenarios are mostly stalling, some mostly shrinking,
		 * some anything at all. */
		unsigned mode = (unsigned)rng_below(3);

		for (pass = 1; pass <= 4 * POLICY_MAX_PASSES; pass++) {
			struct policy_round r;

			elapsed += rng_below(10 * SEC);
			if (mode == 0)
				rem = rng_below(4) ? rem : random_figure();
			else if (mode == 1)
				rem = rem / 100 * (50 + rng_below(50)) + rng_below(2);
			else
				rem = random_figure();
			r = (struct policy_round){
				.pass = pass,
				.elapsed_ns = elapsed,
				.remaining_bytes = rem,
				.bandwidth_Bps = rng_below(8) ? random_figure() | 1 : 0,
				.dirty_rate_Bps = random_figure(),
				.fixed_cost_ns = rng_below(2) ? 0 : random_figure() / 4,
			};
			struct policy_state before = st;

			d = policy_decide(&p, &st, &r);
			check_decision(&p, &st, &r, &d, throttle);
			check_extra_round(&p, &before, &st, &r, &d);
			check_stall_rule(&before, &st, &r, &d);
			throttle = d.throttle_pct;
			if (st.extra_rounds && !first_extra)
				first_extra = pass;
			if (is_final(d.action)) {
				check_extra_run(first_extra, st.extra_rounds, pass, d.action);
				break;
			}
		}
		if (pass > POLICY_MAX_PASSES)
			fail_msg("scenario %u: no end after %u passes", i, POLICY_MAX_PASSES);
		endings[d.action]++;
	}
	assert_int_equal(endings[POLICY_CONTINUE], 0);
	assert_int_equal(endings[POLICY_THROTTLE], 0);
	assert_true(endings[POLICY_SWITCHOVER] > 0);
	assert_true(endings[POLICY_SUSPEND] > 0);
	assert_true(endings[POLICY_ABORT] > 0);
	assert_true(n_fast_climbs > 1000);
	assert_true(n_slow_waits > 1000);
	assert_true(n_extra > 20);
	assert_true(n_extra_worse > 0);
}

/* A guest that always dirties at least 90 % of what the link sends —
 * half of them faster than it — with and without auto-converge, every
 * final action, every timeout: it always ends, and never by switchover
 * unless the limit allows (most of) the whole working set. */
static void test_property_dirtier_than_bandwidth(void **state)
{
	(void)state;
	rng_state = 0xb7e151628aed2a6bull;
	n_fast_climbs = n_slow_waits = n_extra = n_extra_refused = n_extra_worse = 0;
	for (unsigned i = 0; i < 5000; i++) {
		struct policy_params p = random_params();
		struct guest g = {
			.ram = (double)GIB * (1 + rng_below(64)),
			.bw = (double)MIB * (1 + rng_below(10 * 1024)),
		};

		g.wss = g.ram;
		if (rng_below(2))
			g.rate = g.bw * (1.0 + 0.01 + rng_unit() * 10);
		else
			g.rate = g.bw * (0.91 + rng_unit() * 0.09); /* 91 % .. 100 % */
		g.sens = 0; /* no throttle helps */
		g.fixed_ns = (double)rng_below(50 * MS);
		if (p.downtime_limit_ns > 2 * SEC)
			p.downtime_limit_ns = 300 * MS;

		struct outcome o = simulate(&p, &g);
		assert_true(o.passes <= POLICY_MAX_PASSES);
		/* RAM that never shrinks, at least 1 GiB over at most
		 * 10 GiB/s: 100 ms, but the limit can be 2 s. Below the
		 * link's rate, it shrinks by at most 9 % a round, over at most
		 * the five rounds below: 0.91^5 GiB, 62 ms. */
		if (p.downtime_limit_ns < (g.rate >= g.bw ? 100 : 60) * MS)
			assert_int_not_equal(o.d.action, POLICY_SWITCHOVER);
		/* Never shrinking by a quarter, never an extra round. */
		assert_int_equal(o.extra_rounds, 0);
		if (o.d.action != POLICY_SWITCHOVER) {
			assert_int_equal(o.d.action, p.final_action == POLICY_FINAL_ABORT
							     ? POLICY_ABORT
							     : POLICY_SUSPEND);
			/* The ladder, unhelped, is short: at most three steps. */
			assert_true(o.throttle_steps <= 3);
			/* And, the guest always dirtying at least 90 % of
			 * what the link sends, climbed without waiting: the
			 * first round after the bulk copy stalls and steps (or
			 * ends), so does every one after it — three steps, then
			 * the verdict. */
			if (o.d.rung == POLICY_RUNG_STALLED) {
				assert_int_equal(o.throttle_steps, p.auto_converge ? 3 : 0);
				assert_int_equal(o.passes, 2 + o.throttle_steps);
			}
		}
	}
	/* Never a slower round: nothing ever waited. */
	assert_true(n_fast_climbs > 1000);
	assert_int_equal(n_slow_waits, 0);
	assert_int_equal(n_extra, 0);
	assert_int_equal(n_extra_worse, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_expected_downtime_arithmetic),
		cmocka_unit_test(test_expected_downtime_zero_bandwidth),
		cmocka_unit_test(test_expected_downtime_saturates),
		cmocka_unit_test(test_expected_downtime_large_guest),
		cmocka_unit_test(test_switchover_converged),
		cmocka_unit_test(test_switchover_after_rounds),
		cmocka_unit_test(test_continue_while_shrinking),
		cmocka_unit_test(test_progress_threshold),
		cmocka_unit_test(test_stall_resets_on_progress),
		cmocka_unit_test(test_stalled_suspend_by_default),
		cmocka_unit_test(test_stalled_abort_when_configured),
		cmocka_unit_test(test_fixed_cost_above_limit),
		cmocka_unit_test(test_auto_converge_ladder_to_cap),
		cmocka_unit_test(test_auto_converge_gives_up_when_useless),
		cmocka_unit_test(test_auto_converge_keeps_climbing_when_helping),
		cmocka_unit_test(test_auto_converge_rungs_while_throttled),
		cmocka_unit_test(test_auto_converge_off_never_throttles),
		cmocka_unit_test(test_fast_dirtier_final_action_at_once),
		cmocka_unit_test(test_fast_dirtier_throttles_at_once),
		cmocka_unit_test(test_slow_dirtier_waits),
		cmocka_unit_test(test_progress_never_climbs_at_once),
		cmocka_unit_test(test_fast_dirty_boundary),
		cmocka_unit_test(test_extra_round_taken),
		cmocka_unit_test(test_extra_round_conditions),
		cmocka_unit_test(test_extra_round_cap),
		cmocka_unit_test(test_extra_round_never_when_nothing_remains),
		cmocka_unit_test(test_extra_round_while_throttled),
		cmocka_unit_test(test_extra_round_is_progress),
		cmocka_unit_test(test_extra_round_past_timeout),
		cmocka_unit_test(test_extra_round_then_worse),
		cmocka_unit_test(test_convergence_timeout),
		cmocka_unit_test(test_convergence_timeout_while_throttled),
		cmocka_unit_test(test_max_passes),
		cmocka_unit_test(test_max_stalled),
		cmocka_unit_test(test_bounds_are_consistent),
		cmocka_unit_test(test_throttled_guest_converges),
		cmocka_unit_test(test_property_random_rounds),
		cmocka_unit_test(test_property_simulated_guests),
		cmocka_unit_test(test_property_dirtier_than_bandwidth),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
