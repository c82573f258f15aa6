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
 * guests and check that a migration always ends.
 *
 * The round sequences are tables, as the KVM selftests write theirs: each
 * row one round's figures and the decision expected after it (and, where
 * given, the state), run in order by run_steps(), which also checks after
 * every round what any decision must satisfy (check_always). */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
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
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* The figures most tests use: 1 GiB/s, no fixed cost, a second per pass. */
#define BW GIB
/* The extra-round tests run at 1 GB/s (a byte a nanosecond) against a
 * 400 ms limit: half of it 200 ms, a quarter 100 ms. */
#define GBPS 1000000000ull
/* Nothing fits: 2^62 bytes is 250 ms even at 2^64 - 1 bytes/s. */
#define HUGE_REMAINING (1ull << 62)

/* The tables spell the ladder out for these figures (the throttle rows
 * read 20, 30, ..., 90, 99; two stalled rounds wait; twelve end it). */
_Static_assert(POLICY_STALL_ROUNDS == 2, "tables: two stalled rounds before a climb");
_Static_assert(POLICY_MAX_STALLED == 12, "tables: test_max_stalled ends at the 12th");
_Static_assert(POLICY_THROTTLE_INITIAL == 20 && POLICY_THROTTLE_STEP == 10 &&
		       POLICY_THROTTLE_MAX == 99,
	       "tables: throttle steps 20, 30, ..., 90, 99");
_Static_assert(POLICY_EXTRA_ROUNDS == 2, "tables: two extra rounds at most");

static const struct policy_params default_params = {
	.downtime_limit_ns = 300 * MS,
	.auto_converge = false,
	.convergence_timeout_ns = 0,
	.final_action = POLICY_FINAL_SUSPEND,
};

static const struct policy_params ac_params = {
	.downtime_limit_ns = 300 * MS,
	.auto_converge = true,
	.final_action = POLICY_FINAL_SUSPEND,
};

static const struct policy_params extra_params = {
	.downtime_limit_ns = 400 * MS,
	.final_action = POLICY_FINAL_ABORT,
};

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
 * up); one byte a second less waits. A constant, for the tables. */
#define FAST_RATE(bw) \
	((uint64_t)(((unsigned __int128)(bw) * POLICY_FAST_DIRTY_PCT + 99) / 100))

/* ---- the tables and their runner ------------------------------------ */

/* An expected figure, checked only when given: EQ(x). */
struct want {
	bool on;
	uint64_t v;
};
#define EQ(x) { true, (uint64_t)(x) }

/* The rows' short names for actions and rungs. FINAL is the final action
 * the parameters ask for (suspend, or abort), so one table serves both. */
#define CONTINUE POLICY_CONTINUE
#define SWITCHOVER POLICY_SWITCHOVER
#define THROTTLE POLICY_THROTTLE
#define SUSPEND POLICY_SUSPEND
#define ABORT POLICY_ABORT
#define FINAL ((enum policy_action)(POLICY_ABORT + 1))
#define CONVERGED POLICY_RUNG_CONVERGED
#define THROTTLED POLICY_RUNG_THROTTLED
#define STALLED POLICY_RUNG_STALLED
#define TIMEOUT POLICY_RUNG_TIMEOUT

/* One round and what is expected after it. A row reads
 *   { pass, remaining, dirty_rate, .action = ..., [round], [expected] }
 * the action always checked, every other expectation only when given. */
struct step {
	unsigned pass;
	uint64_t remaining;
	uint64_t dirty_rate;
	enum policy_action action;
	/* The rest of the round. */
	uint64_t bw;            /* bandwidth; 0: BW */
	bool unmeasured;        /* bandwidth 0 instead: nothing measured */
	uint64_t elapsed;       /* 0: pass seconds */
	uint64_t fixed;         /* fixed_cost_ns */
	/* The decision... */
	struct want rung;
	struct want throttle;   /* throttle_pct (the state's is the same) */
	struct want downtime;   /* expected_downtime_ns */
	/* ...and the state after it. */
	struct want stalled;
	struct want total;      /* stalled_total */
	struct want extra;      /* extra_rounds */
	struct want rate_before; /* rate_before_throttle */
	struct want useless;    /* throttle_useless */
};

/* One round from a state of its own (a case of a table of such). */
struct round_case {
	struct policy_state start;
	struct step step;
};

/* The step being checked: cmocka's asserts would name only the runner's
 * line, so every check here names the table, the row and its pass. */
static struct {
	const char *table;
	size_t row;
	unsigned pass;
} at;

static void check_eq(const char *what, uint64_t got, uint64_t want)
{
	if (got != want)
		fail_msg("%s step %zu (pass %u): %s is %" PRIu64 ", expected %" PRIu64, at.table,
			 at.row, at.pass, what, got, want);
}

static void check_want(const char *what, struct want w, uint64_t got)
{
	if (w.on)
		check_eq(what, got, w.v);
}

/* What every decision must satisfy, whatever the round. */
static void check_always(const struct policy_params *p, const struct policy_state *before,
			 const struct policy_state *st, const struct policy_round *r,
			 const struct policy_decision *d)
{
	check_eq("expected_downtime_ns - policy_expected_downtime()", d->expected_downtime_ns,
		 policy_expected_downtime(r));
	check_eq("throttle_pct, decision - state", d->throttle_pct, st->throttle_pct);
	check_eq("prev_remaining", st->prev_remaining, r->remaining_bytes);
	check_eq("extra_rounds <= POLICY_EXTRA_ROUNDS", st->extra_rounds <= POLICY_EXTRA_ROUNDS, 1);
	/* After an extra round, a pause over the limit switches over, before
	 * anything else is looked at or counted. */
	if (before->extra_rounds && d->expected_downtime_ns > p->downtime_limit_ns) {
		check_eq("action after an extra round", d->action, POLICY_SWITCHOVER);
		check_eq("rung after an extra round", d->rung,
			 before->throttle_pct ? THROTTLED : CONVERGED);
		check_eq("stalled, kept", st->stalled, before->stalled);
		check_eq("stalled_total, kept", st->stalled_total, before->stalled_total);
		check_eq("extra_rounds, kept", st->extra_rounds, before->extra_rounds);
		check_eq("throttle_pct, kept", st->throttle_pct, before->throttle_pct);
	}
}

/* Decides the rounds of steps[0..n) in order from *st, checking each
 * decision against its row. Returns the last decision; *st is left as
 * the last round left it. */
static struct policy_decision run_steps(const char *table, const struct policy_params *p,
					struct policy_state *st, const struct step *steps, size_t n)
{
	struct policy_decision d = { 0 };

	for (size_t i = 0; i < n; i++) {
		const struct step *s = &steps[i];
		const struct policy_round r = {
			.pass = s->pass,
			.elapsed_ns = s->elapsed ? s->elapsed : s->pass * SEC,
			.remaining_bytes = s->remaining,
			.bandwidth_Bps = s->unmeasured ? 0 : s->bw ? s->bw : BW,
			.dirty_rate_Bps = s->dirty_rate,
			.fixed_cost_ns = s->fixed,
		};
		const struct policy_state before = *st;
		enum policy_action want = s->action;

		if (want == FINAL)
			want = p->final_action == POLICY_FINAL_ABORT ? ABORT : SUSPEND;
		at.table = table;
		at.row = i;
		at.pass = s->pass;
		d = policy_decide(p, st, &r);
		if (d.action != want)
			fail_msg("%s step %zu (pass %u): %s, expected %s", table, i, s->pass,
				 policy_action_name(d.action), policy_action_name(want));
		check_always(p, &before, st, &r, &d);
		check_want("rung", s->rung, d.rung);
		check_want("throttle_pct", s->throttle, d.throttle_pct);
		check_want("expected_downtime_ns", s->downtime, d.expected_downtime_ns);
		check_want("stalled", s->stalled, st->stalled);
		check_want("stalled_total", s->total, st->stalled_total);
		check_want("extra_rounds", s->extra, st->extra_rounds);
		check_want("rate_before_throttle", s->rate_before, st->rate_before_throttle);
		check_want("throttle_useless", s->useless, st->throttle_useless);
	}
	return d;
}

static struct policy_decision run_fresh(const char *table, const struct policy_params *p,
					const struct step *steps, size_t n)
{
	struct policy_state st = { 0 };

	return run_steps(table, p, &st, steps, n);
}

/* A table from the start of a migration, or from the state *st (left as its
 * last round left it); RUN_AS names a table built in a loop by what varies. */
#define RUN(p, table) run_fresh(#table, (p), (table), ARRAY_SIZE(table))
#define RUN_FROM(p, st, table) run_steps(#table, (p), (st), (table), ARRAY_SIZE(table))
#define RUN_AS(name, p, table) run_fresh((name), (p), (table), ARRAY_SIZE(table))

/* A name for messages: "table[i]", "bw 3", ... (one at a time). */
static const char *named(const char *fmt, ...)
{
	static char buf[128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return buf;
}

/* Each case's round from its own start state; returns the last decision. */
static struct policy_decision run_cases(const char *table, const struct policy_params *p,
					const struct round_case *c, size_t n)
{
	struct policy_decision d = { 0 };

	for (size_t i = 0; i < n; i++) {
		struct policy_state st = c[i].start;
		char name[160];

		snprintf(name, sizeof(name), "%s[%zu]", table, i);
		d = run_steps(name, p, &st, &c[i].step, 1);
	}
	return d;
}

#define RUN_CASES(p, table) run_cases(#table, (p), (table), ARRAY_SIZE(table))

/* The way to the first throttle of a guest whose 2 GiB never shrink,
 * dirtying at `rate` with auto-converge on: below 90 % of the link it
 * waits POLICY_STALL_ROUNDS stalled rounds and steps at pass 3; at or
 * above it, it steps at pass 2. The throttle then is
 * POLICY_THROTTLE_INITIAL %, measured against `rate`. */
#define FIRST_THROTTLE(pass, rate, n_stalled)                                                   \
	{ pass, 2 * GIB, rate, .action = THROTTLE, .rung = EQ(THROTTLED),                        \
	  .throttle = EQ(POLICY_THROTTLE_INITIAL), .rate_before = EQ(rate), .useless = EQ(false), \
	  .stalled = EQ(POLICY_STALL_ROUNDS - 1), .total = EQ(n_stalled) }
#define SLOW_TO_THROTTLE(rate)                                       \
	{ 1, 2 * GIB, rate, .action = CONTINUE },                    \
	{ 2, 2 * GIB, rate, .action = CONTINUE, .throttle = EQ(0) }, \
	FIRST_THROTTLE(3, rate, 2)
#define FAST_TO_THROTTLE(rate)                   \
	{ 1, 2 * GIB, rate, .action = CONTINUE }, \
	FIRST_THROTTLE(2, rate, 1)

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

static const struct downtime_case {
	uint64_t remaining, bw, fixed, want;
} downtime_cases[] = {
	/* remaining / bandwidth, in ns, plus the fixed cost. */
	{ GIB, GIB, 0, SEC },
	{ GIB, GIB, 25 * MS, SEC + 25 * MS },
	{ 100 * MIB, GIB, 0, 100 * SEC / 1024 },
	{ 3 * MIB, 10 * MIB, 7 * MS, 300 * MS + 7 * MS },
	{ 1, 1, 0, SEC },
	{ 1, 1000000000u, 0, 1 },
	/* Truncated, not rounded: 1000 B at 3 B/s is 333.33... s. */
	{ 1000, 3, 0, 333333333333ull },
	{ 1, 3, 1, 333333333ull + 1 },
	/* Below a nanosecond's worth of data: only the fixed cost. */
	{ 1, 2000000000u, 5, 5 },
	/* The fixed cost only when nothing remains — whatever the bandwidth,
	 * zero (not measured) included. */
	{ 0, GIB, 0, 0 },
	{ 0, GIB, 40 * MS, 40 * MS },
	{ 0, 0, 40 * MS, 40 * MS },
	{ 0, 0, 0, 0 },
	{ 0, 0, UINT64_MAX, UINT64_MAX },
	/* Nothing measured: it cannot fit any limit, fixed cost or not. */
	{ 1, 0, 0, UINT64_MAX },
	{ GIB, 0, 10 * MS, UINT64_MAX },
	{ UINT64_MAX, 0, UINT64_MAX, UINT64_MAX },
	/* The transfer time overflows 64 bits. */
	{ UINT64_MAX, 1, 0, UINT64_MAX },
	{ UINT64_MAX / 1000000000u + 1, 1, 0, UINT64_MAX },
	{ UINT64_MAX, 2, 0, UINT64_MAX },
	/* 2^64 - 1 ns is the most there is: exactly that is not saturation,
	 * one more nanosecond of transfer saturates instead of wrapping. */
	{ UINT64_MAX / 1000000000u, 1, 0, UINT64_MAX / 1000000000u * 1000000000u },
	/* The fixed cost added overflows. */
	{ 0, GIB, UINT64_MAX, UINT64_MAX },
	{ GIB, GIB, UINT64_MAX, UINT64_MAX },
	{ GIB, GIB, UINT64_MAX - SEC + 1, UINT64_MAX },
	{ GIB, GIB, UINT64_MAX - SEC, UINT64_MAX },
	{ GIB, GIB, UINT64_MAX - SEC - 1, UINT64_MAX - 1 },
	{ 1, 1, UINT64_MAX - SEC - 1, UINT64_MAX - 1 },
	/* More than 2^64 / 10^9 bytes (~18.4 GB) remaining is not, by
	 * itself, an overflow: only a result beyond 2^64 ns is. */
	{ 32 * GIB, 64 * GIB, 0, 500 * MS },
	{ 20 * GIB, GIB, 3 * MS, 20 * SEC + 3 * MS },
	{ 1ull << 40, 1ull << 40, 0, SEC },
	{ UINT64_MAX, UINT64_MAX, 0, SEC },
	{ UINT64_MAX, UINT64_MAX / 2, 0, 2 * SEC },
	{ UINT64_MAX, 1000000000u, 0, UINT64_MAX },
	{ UINT64_MAX, 1000000000u, 1, UINT64_MAX },
	{ UINT64_MAX - 1, 1000000000u, 1, UINT64_MAX },
	{ UINT64_MAX - 1, 1000000000u, 0, UINT64_MAX - 1 },
};

/* And the decision follows: 20 GiB at 1 GiB/s with a generous limit
 * (the 2000 s most hypervisors accept) switches over. */
static const struct round_case large_guest[] = {
	{ { .prev_remaining = 20 * GIB },
	  { 2, 20 * GIB, 0, .action = SWITCHOVER, .rung = EQ(CONVERGED),
	    .downtime = EQ(20 * SEC) } },
};

static void test_expected_downtime(void **state)
{
	struct policy_params p = default_params;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(downtime_cases); i++) {
		const struct downtime_case *c = &downtime_cases[i];
		const struct policy_round r = {
			.pass = 2,
			.remaining_bytes = c->remaining,
			.bandwidth_Bps = c->bw,
			.fixed_cost_ns = c->fixed,
		};
		const uint64_t got = policy_expected_downtime(&r);

		if (got != c->want)
			fail_msg("downtime_cases[%zu]: %" PRIu64 " B at %" PRIu64 " B/s + %" PRIu64
				 " ns: %" PRIu64 " ns, expected %" PRIu64,
				 i, c->remaining, c->bw, c->fixed, got, c->want);
	}
	p.downtime_limit_ns = 2000 * SEC;
	p.final_action = POLICY_FINAL_ABORT;
	RUN_CASES(&p, large_guest);
}

/* ---- switchover ----------------------------------------------------- */

/* The bulk copy left little enough behind. */
static const struct step bulk_fits[] = {
	{ 1, 100 * MIB, 0, .action = SWITCHOVER, .rung = EQ(CONVERGED), .throttle = EQ(0),
	  .downtime = EQ(100 * SEC / 1024) },
};
/* The bulk copy against limits around its pause. */
static const struct {
	uint64_t limit;
	struct step step;
} bulk_limits[] = {
	/* Exactly the limit fits; one nanosecond more does not. */
	{ SEC, { 1, GIB, 0, .action = SWITCHOVER } },
	{ SEC - 1, { 1, GIB, 0, .action = CONTINUE } },
	/* The fixed cost counts against the limit. */
	{ SEC, { 1, GIB, 0, .action = CONTINUE, .fixed = 1 } },
	/* A limit of 0 is met only by nothing at all. (1 byte at 1 GiB/s
	 * truncates to 0 ns; 2 bytes take 1 ns.) */
	{ 0, { 1, 0, 0, .action = SWITCHOVER, .downtime = EQ(0) } },
	{ 0, { 1, 1, 0, .action = SWITCHOVER } },
	{ 0, { 1, 2, 0, .action = CONTINUE, .downtime = EQ(1) } },
};

static void test_switchover_converged(void **state)
{
	struct policy_params p = default_params;
	struct policy_state st = { 0 };

	(void)state;
	assert_string_equal(policy_rung_name(RUN(&p, bulk_fits).rung), "converged");
	for (size_t i = 0; i < ARRAY_SIZE(bulk_limits); i++) {
		p.downtime_limit_ns = bulk_limits[i].limit;
		st = (struct policy_state){ 0 };
		run_steps(named("bulk_limits[%zu]", i), &p, &st, &bulk_limits[i].step, 1);
	}
}

static const struct step switchover_halving[] = {
	{ 1, 2 * GIB, 0, .action = CONTINUE },
	{ 2, GIB, 0, .action = CONTINUE },
	{ 3, 512 * MIB, 0, .action = CONTINUE },
	/* A round that halved what remains (a shrink of far more than
	 * POLICY_EXTRA_SHRINK_PCT %), to a pause of at most half the
	 * limit: no extra round (test_extra_round_*), switch over. */
	{ 4, 150 * MIB, 0, .action = SWITCHOVER, .rung = EQ(CONVERGED),
	  .downtime = EQ(150 * SEC / 1024), .extra = EQ(0) },
};
/* Or a round that shrank it by less than a quarter (320 MiB to
 * 256 MiB: by a fifth), to more than half the limit. */
static const struct step by_a_fifth[] = {
	{ 1, 2 * GIB, 0, .action = CONTINUE },
	{ 2, 320 * MIB, 0, .action = CONTINUE },
	{ 3, 256 * MIB, 0, .action = SWITCHOVER, .downtime = EQ(250 * MS), .extra = EQ(0),
	  .stalled = EQ(0), .total = EQ(0) },
};
/* A stalled round that nevertheless fits switches over. */
static const struct round_case stalled_fits[] = {
	{ { 0 }, { 1, 200 * MIB, 0, .action = SWITCHOVER } },
	{ { .prev_remaining = 100 * MIB, .stalled = 5, .stalled_total = POLICY_MAX_STALLED + 5 },
	  { POLICY_MAX_PASSES + 10, 200 * MIB, 0, .action = SWITCHOVER, .rung = EQ(CONVERGED) } },
};

static void test_switchover_after_rounds(void **state)
{
	(void)state;
	RUN(&default_params, switchover_halving);
	RUN(&default_params, by_a_fifth);
	RUN_CASES(&default_params, stalled_fits);
}

/* ---- continue while rounds shrink ----------------------------------- */

static void test_continue_while_shrinking(void **state)
{
	struct policy_state st = { 0 };
	uint64_t remaining = 1ull << 50; /* never fits at 1 GiB/s */

	(void)state;
	/* 15 % less each round. */
	for (unsigned pass = 1; pass < POLICY_MAX_PASSES; pass++) {
		const struct step s = { pass, remaining, 10 * GIB, .action = CONTINUE,
					.rung = EQ(CONVERGED), .throttle = EQ(0),
					.stalled = EQ(0), .total = EQ(0) };

		run_steps("shrinking", &ac_params, &st, &s, 1);
		remaining = remaining * 85 / 100;
	}
}

/* Progress is a shrink by more than 10 %: exactly 10 % is a stall.
 * Growing is a stall. */
static const struct step threshold[] = {
	{ 1, 1000 * GIB, 0, .action = CONTINUE, .stalled = EQ(0) },
	{ 2, 900 * GIB, 0, .action = CONTINUE, .stalled = EQ(1), .total = EQ(1) },
	{ 3, 810 * GIB - 1, 0, .action = CONTINUE, .stalled = EQ(0), .total = EQ(1) },
	{ 4, 2000 * GIB, 0, .action = CONTINUE, .stalled = EQ(1), .total = EQ(2) },
};
/* The bulk copy is always progress, whatever came before. */
static const struct step bulk_again[] = {
	{ 1, 2000 * GIB, 0, .action = CONTINUE, .stalled = EQ(0), .total = EQ(2) },
};
/* No overflow in the comparison at the top of the range. */
static const struct step threshold_top[] = {
	{ 1, UINT64_MAX, 0, .action = CONTINUE },
	{ 2, UINT64_MAX - UINT64_MAX / 10, 0, .action = CONTINUE, .stalled = EQ(1) }, /* >= 90 % */
	{ 3, UINT64_MAX / 10 * 8, 0, .action = CONTINUE, .stalled = EQ(0) },
};

static void test_progress_threshold(void **state)
{
	struct policy_state st = { 0 };

	(void)state;
	RUN_FROM(&default_params, &st, threshold);
	st.prev_remaining = 1;
	st.stalled = 0;
	RUN_FROM(&default_params, &st, bulk_again);
	RUN(&default_params, threshold_top);
}

/* Stall, progress, stall, progress...: never two in a row, so no
 * rung is climbed until the total bound. */
static const struct step stall_alternating[] = {
	{ 1, 2 * GIB, 0, .action = CONTINUE },
	{ 2, 4 * GIB, 0, .action = CONTINUE, .stalled = EQ(1) },
	{ 3, 2 * GIB, 0, .action = CONTINUE, .stalled = EQ(0) },
	{ 4, 2 * GIB, 0, .action = CONTINUE, .stalled = EQ(1) },
	{ 5, GIB, 0, .action = CONTINUE, .stalled = EQ(0), .total = EQ(2) },
};

static void test_stall_resets_on_progress(void **state)
{
	(void)state;
	RUN(&default_params, stall_alternating);
}

/* ---- stalled, no auto-converge -------------------------------------- */

/* Without auto-converge, a guest whose 2 GiB of dirty memory never
 * shrinks, dirtying at `rate` against the 1 GiB/s link: the bulk copy,
 * then POLICY_STALL_ROUNDS rounds without progress — one when the guest is
 * fast — the last of them the final action fa. */
static void run_stalled(enum policy_final_action fa, uint64_t rate, bool fast)
{
	const struct step waits[] = {
		{ 1, 2 * GIB, rate, .action = CONTINUE, .stalled = EQ(0) },
		{ 2, 2 * GIB, rate, .action = CONTINUE, .rung = EQ(CONVERGED), .stalled = EQ(1),
		  .total = EQ(1) },
		{ 3, 2 * GIB, rate, .action = FINAL, .rung = EQ(STALLED), .throttle = EQ(0),
		  .downtime = EQ(2 * SEC), .stalled = EQ(POLICY_STALL_ROUNDS), .total = EQ(2) },
	};
	const struct step at_once[] = {
		{ 1, 2 * GIB, rate, .action = CONTINUE, .stalled = EQ(0) },
		{ 2, 2 * GIB, rate, .action = FINAL, .rung = EQ(STALLED), .throttle = EQ(0),
		  .downtime = EQ(2 * SEC), .stalled = EQ(POLICY_STALL_ROUNDS), .total = EQ(1) },
	};
	const char *name = named("%s at %" PRIu64 " B/s, %s", fast ? "at_once" : "waits", rate,
				 fa == POLICY_FINAL_ABORT ? "abort" : "suspend");
	struct policy_params p = default_params;
	struct policy_decision d;

	p.final_action = fa;
	d = fast ? RUN_AS(name, &p, at_once) : RUN_AS(name, &p, waits);
	assert_string_equal(policy_rung_name(d.rung), "stalled");
}

static void test_stalled_suspend_by_default(void **state)
{
	(void)state;
	assert_int_equal(POLICY_FINAL_SUSPEND, 0); /* zero-initialised params suspend */
	/* A guest dirtying slower than the link sends, yet not enough slower
	 * for the rounds to shrink: POLICY_STALL_ROUNDS stalled rounds, then
	 * the final action. */
	run_stalled(POLICY_FINAL_SUSPEND, BW / 2, false);
	run_stalled(POLICY_FINAL_SUSPEND, 0, false);
}

static void test_stalled_abort_when_configured(void **state)
{
	(void)state;
	run_stalled(POLICY_FINAL_ABORT, BW / 2, false);
	/* The fastest guest that still waits: a byte a second below 90 %. */
	run_stalled(POLICY_FINAL_ABORT, FAST_RATE(BW) - 1, false);
}

/* Nothing left to send, but the pause alone exceeds the limit: the
 * rounds cannot shrink below zero, so the ladder ends it. */
static const struct step fixed_only[] = {
	{ 1, 0, 0, .action = CONTINUE, .elapsed = SEC, .fixed = SEC, .downtime = EQ(SEC) },
	{ 2, 0, 0, .action = CONTINUE, .elapsed = SEC, .fixed = SEC, .downtime = EQ(SEC) },
	{ 3, 0, 0, .action = SUSPEND, .elapsed = SEC, .fixed = SEC, .rung = EQ(STALLED),
	  .downtime = EQ(SEC) },
};

static void test_fixed_cost_above_limit(void **state)
{
	(void)state;
	RUN(&default_params, fixed_only);
}

/* ---- auto-converge -------------------------------------------------- */

/* A stalled round that steps the throttle to pct %. */
#define STEP_TO(pass, rate, pct) \
	{ pass, 2 * GIB, rate, .action = THROTTLE, .rung = EQ(THROTTLED), .throttle = EQ(pct), \
	  .useless = EQ(false) }

/* Below 90 % of the link (800 MiB/s): the first throttle after the
 * wait. Each stalled round steps once; the rate falls just the 20 %
 * that counts as helping (exactly 80 % of the unthrottled rate). At
 * the cap, the next stalled round is the final action. */
static const struct step to_cap[] = {
	SLOW_TO_THROTTLE(800 * MIB),
	STEP_TO(4, 640 * MIB, 30),
	STEP_TO(5, 640 * MIB, 40),
	STEP_TO(6, 640 * MIB, 50),
	STEP_TO(7, 640 * MIB, 60),
	STEP_TO(8, 640 * MIB, 70),
	STEP_TO(9, 640 * MIB, 80),
	STEP_TO(10, 640 * MIB, 90),
	STEP_TO(11, 640 * MIB, POLICY_THROTTLE_MAX),
	{ 12, 2 * GIB, 400 * MIB, .action = SUSPEND, .rung = EQ(STALLED), .throttle = EQ(99) },
};
/* The same with abort, the guest then dirtying nothing at all. */
static const struct step to_cap_abort[] = {
	SLOW_TO_THROTTLE(800 * MIB),
	STEP_TO(4, 0, 30),
	STEP_TO(5, 0, 40),
	STEP_TO(6, 0, 50),
	STEP_TO(7, 0, 60),
	STEP_TO(8, 0, 70),
	STEP_TO(9, 0, 80),
	STEP_TO(10, 0, 90),
	STEP_TO(11, 0, 99),
	{ 12, 2 * GIB, 0, .action = ABORT, .rung = EQ(STALLED) },
};

static void test_auto_converge_ladder_to_cap(void **state)
{
	struct policy_params p = default_params;
	struct policy_state st = { 0 };

	(void)state;
	assert_false(is_fast(800 * MIB, BW));
	p.auto_converge = true;
	RUN_FROM(&p, &st, to_cap);
	/* Within the bound on stalled rounds: the cap decided, not the bound. */
	assert_true(st.stalled_total < POLICY_MAX_STALLED);

	p.final_action = POLICY_FINAL_ABORT;
	RUN(&p, to_cap_abort);
}

static const struct {
	enum policy_final_action fa;
	uint64_t rate, later;
} useless_guests[] = {
	/* A guest throttling does nothing for. */
	{ POLICY_FINAL_SUSPEND, GIB, GIB },
	{ POLICY_FINAL_ABORT, GIB, GIB },
	/* Faster than before. */
	{ POLICY_FINAL_SUSPEND, GIB, 2 * GIB },
	/* Lowered, but by less than 20 %: 1 byte/s above 80 %. */
	{ POLICY_FINAL_SUSPEND, 1000 * MIB, 800 * MIB + 1 },
	/* Near the top of the range: no overflow in the comparison. */
	{ POLICY_FINAL_ABORT, UINT64_MAX, UINT64_MAX },
};

static void test_auto_converge_gives_up_when_useless(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(useless_guests); i++) {
		const uint64_t rate = useless_guests[i].rate, later = useless_guests[i].later;
		/* Throttled at 20 %, then 30 %: too early to judge. Three steps
		 * taken and the rate did not fall by 20 %: give up. */
		const struct step useless[] = {
			FAST_TO_THROTTLE(rate),
			{ 3, 2 * GIB, later, .action = THROTTLE, .throttle = EQ(30) },
			{ 4, 2 * GIB, later, .action = THROTTLE, .throttle = EQ(40) },
			{ 5, 2 * GIB, later, .action = FINAL, .rung = EQ(STALLED),
			  .throttle = EQ(40), .useless = EQ(true) },
		};
		struct policy_params p = default_params;

		assert_true(is_fast(rate, BW));
		p.auto_converge = true;
		p.final_action = useless_guests[i].fa;
		RUN_AS(named("useless_guests[%zu]", i), &p, useless);
	}
}

/* The rate falls with the throttle ((100 - t) % of 1000 MiB/s), yet
 * the rounds still do not shrink: keep climbing. Helping is judged
 * against the unthrottled rate, not the last one: 80 % of it is still
 * enough even though it rose since. */
static const struct step helping[] = {
	FAST_TO_THROTTLE(1000 * MIB),
	{ 3, 2 * GIB, 800 * MIB, .action = THROTTLE, .throttle = EQ(30) },
	{ 4, 2 * GIB, 700 * MIB, .action = THROTTLE, .throttle = EQ(40) },
	{ 5, 2 * GIB, 600 * MIB, .action = THROTTLE, .throttle = EQ(50) },
	{ 6, 2 * GIB, 500 * MIB, .action = THROTTLE, .throttle = EQ(60) },
	{ 7, 2 * GIB, 400 * MIB, .action = THROTTLE, .throttle = EQ(70) },
	{ 8, 2 * GIB, 300 * MIB, .action = THROTTLE, .throttle = EQ(80) },
	{ 9, 2 * GIB, 200 * MIB, .action = THROTTLE, .throttle = EQ(90) },
	{ 10, 2 * GIB, 800 * MIB, .action = THROTTLE, .throttle = EQ(99),
	  .rate_before = EQ(1000 * MIB) },
};
/* But the check is made at every step past the third, so a rate that
 * climbs back stops it there: start again and rise at 50 %. */
static const struct step rising[] = {
	FAST_TO_THROTTLE(1000 * MIB),
	{ 3, 2 * GIB, 700 * MIB, .action = THROTTLE, .throttle = EQ(30) },
	{ 4, 2 * GIB, 600 * MIB, .action = THROTTLE, .throttle = EQ(40) },
	{ 5, 2 * GIB, 500 * MIB, .action = THROTTLE, .throttle = EQ(50) },
	{ 6, 2 * GIB, 900 * MIB, .action = SUSPEND, .rung = EQ(STALLED), .throttle = EQ(50),
	  .useless = EQ(true) },
};

static void test_auto_converge_keeps_climbing_when_helping(void **state)
{
	(void)state;
	RUN(&ac_params, helping);
	RUN(&ac_params, rising);
}

static const struct step rungs_throttled[] = {
	FAST_TO_THROTTLE(GIB),
	/* A round that shrinks: another round, throttle kept, still the
	 * auto-converge rung, stall count reset. */
	{ 3, GIB, GIB / 2, .action = CONTINUE, .rung = EQ(THROTTLED), .throttle = EQ(20),
	  .stalled = EQ(0) },
	/* After progress, two stalled rounds again before the next step. */
	{ 4, GIB, GIB / 2, .action = CONTINUE, .throttle = EQ(20) },
	{ 5, GIB, GIB / 2, .action = THROTTLE, .throttle = EQ(30) },
	/* It fits now: switchover on the auto-converge rung. */
	{ 6, 100 * MIB, GIB / 2, .action = SWITCHOVER, .rung = EQ(THROTTLED),
	  .throttle = EQ(30), .downtime = EQ(100 * SEC / 1024) },
};

static void test_auto_converge_rungs_while_throttled(void **state)
{
	(void)state;
	assert_string_equal(policy_rung_name(RUN(&ac_params, rungs_throttled).rung),
			    "auto-converge");
}

/* 10 GiB/s over 1 GiB/s: the first round without progress ends it,
 * no throttle ever. */
static const struct step never_throttles[] = {
	{ 1, 2 * GIB, 10 * GIB, .action = CONTINUE, .throttle = EQ(0), .rate_before = EQ(0) },
	{ 2, 2 * GIB, 10 * GIB, .action = SUSPEND, .throttle = EQ(0), .rate_before = EQ(0) },
};

static void test_auto_converge_off_never_throttles(void **state)
{
	(void)state;
	RUN(&default_params, never_throttles);
}

/* ---- the stall rule: dirtying (nearly) as fast as the link sends ---- */

/* Bandwidths to try the rule at: the rule compares the round's own
 * figures, whatever the link. */
static const uint64_t rule_bandwidths[] = { 1, 10 * MIB, BW, 100 * GIB, UINT64_MAX };

/* Progress in between changes nothing: alternating 4 GiB, 8 GiB, the
 * first 8 GiB round ends it (a slower guest runs to the total bound,
 * test_max_stalled). */
static const struct step fast_alternating[] = {
	{ 1, 4 * GIB, 2 * GIB, .action = CONTINUE },
	{ 2, 8 * GIB, 2 * GIB, .action = SUSPEND, .rung = EQ(STALLED), .total = EQ(1) },
};
/* Nor does an earlier stalled round of a slower guest: that one
 * waited, this one, at 90 % of the link, ends it. */
static const struct step slow_then_fast[] = {
	{ 1, 4 * GIB, BW / 2, .action = CONTINUE },
	{ 2, 4 * GIB, BW / 2, .action = CONTINUE },
	{ 3, 2 * GIB, BW / 2, .action = CONTINUE, .stalled = EQ(0) },
	{ 4, 2 * GIB, FAST_RATE(BW), .action = SUSPEND, .total = EQ(2) },
};

/* A guest whose 2^62 bytes never shrink (nothing fits a 1 ms limit),
 * dirtying at rate against bandwidth bw: the ladder moves — the first
 * throttle with auto-converge, the final action fa without — at pass 2
 * when the guest is fast, after POLICY_STALL_ROUNDS stalled rounds (pass 3)
 * when it waits; each round before it a stalled one. */
static void check_climb(bool ac, enum policy_final_action fa, uint64_t rate, uint64_t bw,
			bool waits)
{
	const struct policy_params p = {
		.downtime_limit_ns = 1 * MS, .auto_converge = ac, .final_action = fa,
	};
	const struct step climb = {
		waits ? 3 : 2, HUGE_REMAINING, rate, .action = ac ? THROTTLE : FINAL, .bw = bw,
		.rung = EQ(ac ? THROTTLED : STALLED),
		.throttle = EQ(ac ? POLICY_THROTTLE_INITIAL : 0),
		.rate_before = EQ(ac ? rate : 0), .total = EQ(waits ? 2 : 1), .extra = EQ(0),
		.stalled = EQ(ac ? POLICY_STALL_ROUNDS - 1 : POLICY_STALL_ROUNDS),
	};
	const struct step after_wait[] = {
		{ 1, HUGE_REMAINING, rate, .action = CONTINUE, .bw = bw },
		{ 2, HUGE_REMAINING, rate, .action = CONTINUE, .bw = bw, .throttle = EQ(0),
		  .stalled = EQ(1), .total = EQ(1) },
		climb,
	};
	const struct step at_once[] = {
		{ 1, HUGE_REMAINING, rate, .action = CONTINUE, .bw = bw },
		climb,
	};
	const char *name = named("%s: %" PRIu64 " B/s at bw %" PRIu64 ", ac %d, %s",
				 waits ? "after_wait" : "at_once", rate, bw, ac,
				 fa == POLICY_FINAL_ABORT ? "abort" : "suspend");

	if (waits)
		RUN_AS(name, &p, after_wait);
	else
		RUN_AS(name, &p, at_once);
}

static void test_fast_dirtier_final_action_at_once(void **state)
{
	(void)state;
	/* Without auto-converge, the first round without progress after the
	 * bulk copy is the final action: exactly 90 % of the bandwidth counts,
	 * the bandwidth itself and above it, up to the top of the range. */
	run_stalled(POLICY_FINAL_SUSPEND, FAST_RATE(BW), true);
	run_stalled(POLICY_FINAL_ABORT, FAST_RATE(BW), true);
	run_stalled(POLICY_FINAL_SUSPEND, BW, true);
	run_stalled(POLICY_FINAL_SUSPEND, 3 * GIB, true);
	run_stalled(POLICY_FINAL_ABORT, BW, true);
	run_stalled(POLICY_FINAL_ABORT, UINT64_MAX, true);

	/* At any bandwidth: the round's own. One round without progress,
	 * counted once against the bound. */
	for (size_t i = 0; i < ARRAY_SIZE(rule_bandwidths); i++) {
		const uint64_t bw = rule_bandwidths[i];

		check_climb(false, POLICY_FINAL_ABORT, bw, bw, false);
		check_climb(false, POLICY_FINAL_ABORT, FAST_RATE(bw), bw, false);
	}

	RUN(&default_params, fast_alternating);
	RUN(&default_params, slow_then_fast);
}

static const struct step fast_throttles[] = {
	/* 3 GiB/s over the 1 GiB/s link: the first stalled round throttles. */
	{ 1, 2 * GIB, 3 * GIB, .action = CONTINUE },
	{ 2, 2 * GIB, 3 * GIB, .action = THROTTLE, .rung = EQ(THROTTLED),
	  .throttle = EQ(POLICY_THROTTLE_INITIAL), .rate_before = EQ(3 * GIB),
	  .stalled = EQ(POLICY_STALL_ROUNDS - 1), .total = EQ(1) },
	/* Once throttled every stalled round steps, fast or not. */
	{ 3, 2 * GIB, 2 * GIB, .action = THROTTLE, .throttle = EQ(30) },
	/* A round of progress resets the count: the next fast round steps at
	 * once again, where a slower one waits (test_slow_dirtier_waits). */
	{ 4, GIB, 2 * GIB, .action = CONTINUE, .rung = EQ(THROTTLED), .throttle = EQ(30),
	  .stalled = EQ(0) },
	{ 5, GIB, BW, .action = THROTTLE, .throttle = EQ(40), .total = EQ(3) },
	/* The usefulness check still applies: 40 % and the rate still
	 * above 80 % of the 3 GiB/s it started at — give up. */
	{ 6, GIB, 5 * GIB / 2, .action = SUSPEND, .rung = EQ(STALLED), .throttle = EQ(40),
	  .useless = EQ(true) },
};
/* The full climb of an always-fast guest that throttling helps: a step every
 * round from pass 2, the cap at pass 10, the final action at 11 — one round
 * sooner than a slower guest (test_auto_converge_ladder_to_cap). */
static const struct step full_climb[] = {
	FAST_TO_THROTTLE(4 * GIB),
	{ 3, 2 * GIB, 3 * GIB, .action = THROTTLE, .throttle = EQ(30) },
	{ 4, 2 * GIB, 3 * GIB, .action = THROTTLE, .throttle = EQ(40) },
	{ 5, 2 * GIB, 3 * GIB, .action = THROTTLE, .throttle = EQ(50) },
	{ 6, 2 * GIB, 3 * GIB, .action = THROTTLE, .throttle = EQ(60) },
	{ 7, 2 * GIB, 3 * GIB, .action = THROTTLE, .throttle = EQ(70) },
	{ 8, 2 * GIB, 3 * GIB, .action = THROTTLE, .throttle = EQ(80) },
	{ 9, 2 * GIB, 3 * GIB, .action = THROTTLE, .throttle = EQ(90) },
	{ 10, 2 * GIB, 3 * GIB, .action = THROTTLE, .throttle = EQ(99) },
	{ 11, 2 * GIB, 3 * GIB, .action = SUSPEND, .rung = EQ(STALLED),
	  .throttle = EQ(POLICY_THROTTLE_MAX) },
};

static void test_fast_dirtier_throttles_at_once(void **state)
{
	struct policy_state st = { 0 };

	(void)state;
	RUN(&ac_params, fast_throttles);

	/* At any bandwidth, and abort the same. */
	for (size_t i = 0; i < ARRAY_SIZE(rule_bandwidths); i++) {
		const uint64_t bw = rule_bandwidths[i];

		check_climb(true, POLICY_FINAL_ABORT, bw, bw, false);
	}
	RUN_FROM(&ac_params, &st, full_climb);
	assert_true(st.stalled_total < POLICY_MAX_STALLED);
}

/* Throttled, after a round of progress: the wait again, where a fast
 * round would step at once (test_fast_dirtier_throttles_at_once). */
static const struct step throttled_waits[] = {
	SLOW_TO_THROTTLE(FAST_RATE(BW) - 1),
	{ 4, GIB, FAST_RATE(BW) - 1, .action = CONTINUE, .stalled = EQ(0) },
	{ 5, GIB, FAST_RATE(BW) - 1, .action = CONTINUE, .throttle = EQ(20) },
	{ 6, GIB, FAST_RATE(BW) - 1, .action = THROTTLE, .throttle = EQ(30) },
};

static void test_slow_dirtier_waits(void **state)
{
	(void)state;
	/* One byte a second below 90 % of the round's bandwidth:
	 * POLICY_STALL_ROUNDS stalled rounds before the ladder moves, with
	 * auto-converge or without, at any bandwidth. */
	for (size_t i = 0; i < ARRAY_SIZE(rule_bandwidths); i++) {
		const uint64_t bw = rule_bandwidths[i];

		check_climb(false, POLICY_FINAL_SUSPEND, FAST_RATE(bw) - 1, bw, true);
		check_climb(true, POLICY_FINAL_SUSPEND, FAST_RATE(bw) - 1, bw, true);
	}
	RUN(&ac_params, throttled_waits);
}

static const uint64_t fast_rates[] = { BW, 10 * GIB, UINT64_MAX };
/* The bulk copy is progress, whatever the rate, even against a stale
 * smaller figure (a state that says 1 byte remained). */
static const struct step bulk_is_progress[] = {
	{ 1, 1000 * GIB, UINT64_MAX, .action = CONTINUE, .total = EQ(0) },
};
/* After the rounds below: exactly 10 % less is no progress, the same
 * rate climbs at once. Throttled, progress again keeps the throttle
 * and steps nothing. */
static const struct step exactly_10_pct[] = {
	{ 17, 100 * GIB, 10 * GIB, .action = CONTINUE },
	{ 18, 90 * GIB, 10 * GIB, .action = THROTTLE, .throttle = EQ(20), .total = EQ(1) },
	{ 19, 80 * GIB, BW, .action = CONTINUE, .rung = EQ(THROTTLED), .throttle = EQ(20),
	  .stalled = EQ(0), .total = EQ(1) },
	{ 20, 70 * GIB, 10 * GIB, .action = CONTINUE, .rung = EQ(THROTTLED),
	  .throttle = EQ(20), .stalled = EQ(0), .total = EQ(1) },
	{ 21, 60 * GIB, UINT64_MAX, .action = CONTINUE, .rung = EQ(THROTTLED),
	  .throttle = EQ(20), .stalled = EQ(0), .total = EQ(1) },
};

static void test_progress_never_climbs_at_once(void **state)
{
	struct policy_state st = { .prev_remaining = 1 };
	uint64_t remaining = 1000 * GIB;

	(void)state;
	RUN_FROM(&ac_params, &st, bulk_is_progress);
	/* Rounds shrinking by just over 10 % while the guest dirties at least
	 * as fast as the link: never a stall, never a throttle. */
	for (unsigned pass = 2; pass < 17; pass++) {
		const struct step s = {
			pass, remaining / 10 * 9 - 1, fast_rates[(pass - 2) % 3],
			.action = CONTINUE, .rung = EQ(CONVERGED), .throttle = EQ(0),
			.stalled = EQ(0), .total = EQ(0),
		};

		run_steps("shrinking", &ac_params, &st, &s, 1);
		remaining = s.remaining;
	}
	RUN_FROM(&ac_params, &st, exactly_10_pct);
}

/* ---- the 90 % boundary ---------------------------------------------- */

/* Bandwidths whose 90 % is a whole number of bytes a second. */
static const uint64_t bws_exact[] = { 100, 1000 * MIB, BW * 1000, 100 * GIB };
/* And the rounding at the others. */
static const uint64_t bws_odd[] = { 1, 3, BW, UINT64_MAX };
/* The measured rate saturating: a 2 GiB working set re-dirtied whole
 * in a round that sent it at 1 GiB/s, measured a little low (2 GiB
 * over the round's 2.2 s, sync included: 0.91 GiB/s) still climbs at
 * once; at 0.89 GiB/s it waits. */
static const struct step at_91[] = {
	{ 1, 2 * GIB, 91 * GIB / 100, .action = CONTINUE },
	{ 2, 2 * GIB, 91 * GIB / 100, .action = THROTTLE },
};
static const struct step at_89[] = {
	{ 1, 2 * GIB, 89 * GIB / 100, .action = CONTINUE },
	{ 2, 2 * GIB, 89 * GIB / 100, .action = CONTINUE, .stalled = EQ(1) },
	{ 3, 2 * GIB, 89 * GIB / 100, .action = THROTTLE },
};

static void test_fast_dirty_boundary(void **state)
{
	(void)state;
	assert_int_equal(POLICY_FAST_DIRTY_PCT, 90);
	assert_int_equal(FAST_RATE(1000 * MIB), 900 * MIB);
	assert_int_equal(FAST_RATE(BW), 966367642);  /* 966367641.6 rounded up */
	assert_int_equal(FAST_RATE(1), 1);
	assert_int_equal(FAST_RATE(3), 3);           /* 2.7 */
	assert_int_equal(FAST_RATE(UINT64_MAX), 16602069666338596454ull);

	for (int ac = 0; ac < 2; ac++) {
		const enum policy_final_action fa = POLICY_FINAL_SUSPEND;

		/* 89 % waits POLICY_STALL_ROUNDS rounds, 90 % climbs on the
		 * first round without progress. */
		for (size_t i = 0; i < ARRAY_SIZE(bws_exact); i++) {
			const uint64_t bw = bws_exact[i];

			check_climb(ac, fa, bw / 100 * 89, bw, true);
			check_climb(ac, fa, bw / 100 * 89 + bw / 100 - 1, bw, true);
			check_climb(ac, fa, bw / 100 * 90, bw, false);
			check_climb(ac, fa, bw / 100 * 95, bw, false);
			check_climb(ac, fa, bw, bw, false);
		}
		/* A byte a second decides, at the top of the range too (the
		 * products are taken in 128 bits). */
		for (size_t i = 0; i < ARRAY_SIZE(bws_odd); i++) {
			check_climb(ac, fa, FAST_RATE(bws_odd[i]) - 1, bws_odd[i], true);
			check_climb(ac, fa, FAST_RATE(bws_odd[i]), bws_odd[i], false);
		}
		check_climb(ac, fa, UINT64_MAX, UINT64_MAX, false);
		check_climb(ac, fa, UINT64_MAX, 1, false);
		check_climb(ac, fa, UINT64_MAX / 100 * 89, UINT64_MAX, true);
	}

	RUN(&ac_params, at_91);
	RUN(&ac_params, at_89);
}

/* ---- extra rounds below the limit ----------------------------------- */

/* One round at GBPS after a round that left `prev` bytes, from a fresh
 * state but for the extra rounds taken before, against the 400 ms limit:
 * it fits, and takes an extra round (CONTINUE) or switches over; nothing
 * of the stall rule is touched either way. */
struct extra_case {
	unsigned pass;
	uint64_t prev, remaining, fixed;
	unsigned extra_before;
	enum policy_action action;
};

static void run_extra_cases(const char *table, const struct extra_case *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct policy_state st = {
			.prev_remaining = c[i].prev,
			.extra_rounds = c[i].extra_before,
		};
		const struct step s = {
			c[i].pass, c[i].remaining, 0, .action = c[i].action,
			.bw = GBPS, .fixed = c[i].fixed,
			.rung = EQ(CONVERGED), .throttle = EQ(0),
			.downtime = EQ(c[i].remaining + c[i].fixed),
			.stalled = EQ(0), .total = EQ(0),
			.extra = EQ(c[i].extra_before + (c[i].action == CONTINUE)),
		};
		const char *name = named("%s[%zu]", table, i);
		struct policy_decision d = run_steps(name, &extra_params, &st, &s, 1);

		assert_true(d.expected_downtime_ns <= extra_params.downtime_limit_ns);
	}
}

#define RUN_EXTRA_CASES(table) run_extra_cases(#table, (table), ARRAY_SIZE(table))

/* What test_switchover_after_rounds did before the rule: halving rounds,
 * 256 MiB (250 ms) fits the 300 ms limit but takes more than half of it — one
 * more round, which halves it to 125 ms: switch over then. */
static const struct step extra_halving[] = {
	{ 1, 2 * GIB, 0, .action = CONTINUE },
	{ 2, GIB, 0, .action = CONTINUE },
	{ 3, 512 * MIB, 0, .action = CONTINUE, .extra = EQ(0) },
	{ 4, 256 * MIB, 0, .action = CONTINUE, .rung = EQ(CONVERGED), .throttle = EQ(0),
	  .downtime = EQ(250 * MS), .extra = EQ(1), .stalled = EQ(0), .total = EQ(0) },
	{ 5, 128 * MIB, 0, .action = SWITCHOVER, .rung = EQ(CONVERGED),
	  .downtime = EQ(125 * MS), .extra = EQ(1) },
};
/* The first round to fit may be the extra one's reason: it halved
 * what a round that did not fit left. */
static const struct step first_to_fit[] = {
	{ 1, 2 * GBPS, 0, .action = CONTINUE, .bw = GBPS },
	{ 2, 600 * MS, 0, .action = CONTINUE, .bw = GBPS, .extra = EQ(0) },
	{ 3, 300 * MS, 0, .action = CONTINUE, .bw = GBPS, .extra = EQ(1) },
	{ 4, 150 * MS, 0, .action = SWITCHOVER, .bw = GBPS, .extra = EQ(1) },
};
/* Halving is more than needed: a round that shrank what remains by
 * exactly POLICY_EXTRA_SHRINK_PCT % (480 ms to 360 ms) takes one too;
 * the next, shrinking it by a byte less than a quarter (to 270 ms and
 * a byte), switches over. */
static const struct step extra_by_a_quarter[] = {
	{ 1, 2 * GBPS, 0, .action = CONTINUE, .bw = GBPS },
	{ 2, 480 * MS, 0, .action = CONTINUE, .bw = GBPS, .extra = EQ(0) },
	{ 3, 360 * MS, 0, .action = CONTINUE, .bw = GBPS, .rung = EQ(CONVERGED),
	  .extra = EQ(1), .stalled = EQ(0), .total = EQ(0) },
	{ 4, 270 * MS + 1, 0, .action = SWITCHOVER, .bw = GBPS, .downtime = EQ(270 * MS + 1),
	  .extra = EQ(1) },
};

static void test_extra_round_taken(void **state)
{
	(void)state;
	assert_int_equal(POLICY_EXTRA_ROUNDS, 2);
	assert_int_equal(POLICY_EXTRA_SHRINK_PCT, 25);
	RUN(&default_params, extra_halving);
	RUN(&extra_params, first_to_fit);
	RUN(&extra_params, extra_by_a_quarter);
}

/* { pass, the round before, what remains, fixed cost, extra rounds
 * taken before, CONTINUE for an extra round or SWITCHOVER } */
static const struct extra_case conditions[] = {
	/* All the conditions hold: 300 ms after 600 ms, pass 2, none taken yet
	 * — an extra round. Each one false on its own switches over. */
	{ 2, 600 * MS, 300 * MS, 0, 0, CONTINUE },

	/* pass > 1: the bulk copy never takes one, whatever the state
	 * says of a round before it. */
	{ 1, 600 * MS, 300 * MS, 0, 0, SWITCHOVER },
	{ 1, UINT64_MAX, 300 * MS, 0, 0, SWITCHOVER },
	{ 3, 600 * MS, 300 * MS, 0, 0, CONTINUE },

	/* Shrank what remains by at least POLICY_EXTRA_SHRINK_PCT %:
	 * exactly a quarter is enough (400 ms to 300 ms), a byte less
	 * shrink is not — a byte less before, or a byte more after. */
	{ 2, 400 * MS, 300 * MS, 0, 0, CONTINUE },
	{ 2, 400 * MS - 1, 300 * MS, 0, 0, SWITCHOVER },
	{ 2, 400 * MS, 300 * MS + 1, 0, 0, SWITCHOVER },
	{ 2, 400 * MS + 1, 300 * MS, 0, 0, CONTINUE },
	{ 2, 400 * MS - 4, 300 * MS - 3, 0, 0, CONTINUE },
	{ 2, 400 * MS - 4, 300 * MS - 2, 0, 0, SWITCHOVER },
	/* A quarter of a figure not a multiple of four: of 400 ms and 3
	 * bytes it is 100 ms and 0.75 bytes — a shrink of 100 ms and a
	 * byte (to 300 ms and 2 bytes) is enough, one of 100 ms (to
	 * 300 ms and 3 bytes) is not. */
	{ 2, 400 * MS + 3, 300 * MS + 2, 0, 0, CONTINUE },
	{ 2, 400 * MS + 3, 300 * MS + 3, 0, 0, SWITCHOVER },
	/* Halving still qualifies, and anything between: half exactly,
	 * a byte less or more than half. */
	{ 2, 600 * MS, 300 * MS, 0, 0, CONTINUE },
	{ 2, 600 * MS + 1, 300 * MS, 0, 0, CONTINUE },
	{ 2, 600 * MS - 1, 300 * MS, 0, 0, CONTINUE },
	{ 2, 500 * MS, 300 * MS, 0, 0, CONTINUE },  /* shrank by two fifths */
	{ 2, UINT64_MAX, 300 * MS, 0, 0, CONTINUE },
	{ 2, 375 * MS, 300 * MS, 0, 0, SWITCHOVER }, /* shrank, by a fifth */
	{ 2, 300 * MS, 300 * MS, 0, 0, SWITCHOVER }, /* the same */
	{ 2, 100 * MS, 300 * MS, 0, 0, SWITCHOVER }, /* grew */
	{ 2, 0, 300 * MS, 0, 0, SWITCHOVER },

	/* The transfer part more than a quarter of the limit (100 ms): the
	 * fixed cost makes the pause more than half of it either way. */
	{ 2, 600 * MS, 100 * MS, 150 * MS, 0, SWITCHOVER },
	{ 2, 600 * MS, 100 * MS + 1, 150 * MS, 0, CONTINUE },
	{ 2, 600 * MS, 10 * MS, 390 * MS, 0, SWITCHOVER }, /* the pause nearly all fixed */
	{ 2, 600 * MS, 101 * MS, 299 * MS, 0, CONTINUE },  /* the limit exactly */

	/* The pause more than half the limit (200 ms): the transfer
	 * part more than a quarter of it either way. */
	{ 2, 600 * MS, 200 * MS, 0, 0, SWITCHOVER },
	{ 2, 600 * MS, 200 * MS + 1, 0, 0, CONTINUE },
	{ 2, 600 * MS, 150 * MS, 50 * MS, 0, SWITCHOVER },
	{ 2, 600 * MS, 150 * MS, 50 * MS + 1, 0, CONTINUE },

	/* pass < POLICY_MAX_PASSES: the last pass switches over. */
	{ POLICY_MAX_PASSES - 1, 600 * MS, 300 * MS, 0, 0, CONTINUE },
	{ POLICY_MAX_PASSES, 600 * MS, 300 * MS, 0, 0, SWITCHOVER },
	{ POLICY_MAX_PASSES + 1, 600 * MS, 300 * MS, 0, 0, SWITCHOVER },

	/* Fewer than POLICY_EXTRA_ROUNDS taken. */
	{ 2, 600 * MS, 300 * MS, 0, POLICY_EXTRA_ROUNDS - 1, CONTINUE },
	{ 2, 600 * MS, 300 * MS, 0, POLICY_EXTRA_ROUNDS, SWITCHOVER },

	/* Something remaining: test_extra_round_never_when_nothing_remains. */

	/* And it fits at all: the limit exactly takes one (a
	 * nanosecond over is the ladder: not_fitting, below). */
	{ 2, 800 * MS, 400 * MS, 0, 0, CONTINUE },
};
/* No overflow in the products (what remains x 100, the round before x 75) at
 * the top of the range: a second's worth at ~13.8 EB/s against a 1.5 s
 * limit, after 2^64 - 1 bytes. Three quarters of that is 3 x 2^62 - 0.75
 * bytes: 3 x 2^62 - 1 bytes is shrink enough, 3 x 2^62 is not. And with the
 * round before a multiple of four: exactly three quarters of 2^64 - 4 bytes
 * qualifies, a byte more does not. */
static const struct round_case extra_top[] = {
	{ { .prev_remaining = UINT64_MAX },
	  { 2, (3ull << 62) - 1, 0, .action = CONTINUE, .bw = 3ull << 62,
	    .downtime = EQ(SEC - 1), .extra = EQ(1) } },
	{ { .prev_remaining = UINT64_MAX },
	  { 2, 3ull << 62, 0, .action = SWITCHOVER, .bw = 3ull << 62, .downtime = EQ(SEC),
	    .extra = EQ(0) } },
	{ { .prev_remaining = UINT64_MAX - 3 },
	  { 2, (3ull << 62) - 3, 0, .action = CONTINUE, .bw = 3ull << 62, .extra = EQ(1) } },
	{ { .prev_remaining = UINT64_MAX - 3 },
	  { 2, (3ull << 62) - 2, 0, .action = SWITCHOVER, .bw = 3ull << 62, .extra = EQ(0) } },
};
/* One nanosecond over the limit: the ladder as ever (a round of
 * progress: another round, no extra one counted). */
static const struct round_case not_fitting[] = {
	{ { .prev_remaining = 800 * MS },
	  { 2, 400 * MS + 1, 0, .action = CONTINUE, .bw = GBPS, .extra = EQ(0) } },
};

static void test_extra_round_conditions(void **state)
{
	struct policy_params p = extra_params;

	(void)state;
	assert_int_equal(POLICY_EXTRA_SHRINK_PCT, 25);
	RUN_EXTRA_CASES(conditions);
	p.downtime_limit_ns = 1500 * MS;
	RUN_CASES(&p, extra_top);
	RUN_CASES(&extra_params, not_fitting);
}

/* Rounds that keep halving while the bandwidth halves too: the pause
 * stays at 300 ms. Two extra rounds, then switch over. */
static const struct step halving_link[] = {
	{ 1, 4 * GBPS, 0, .action = CONTINUE, .bw = GBPS },
	{ 2, 300 * MS, 0, .action = CONTINUE, .bw = GBPS, .extra = EQ(1) },
	{ 3, 150 * MS, 0, .action = CONTINUE, .bw = GBPS / 2, .downtime = EQ(300 * MS),
	  .extra = EQ(2) },
	{ 4, 75 * MS, 0, .action = SWITCHOVER, .bw = GBPS / 4, .rung = EQ(CONVERGED),
	  .downtime = EQ(300 * MS), .extra = EQ(POLICY_EXTRA_ROUNDS) },
};
/* The cap is over the whole migration, and extra rounds come only in one run:
 * the round after an extra one fits (another extra round or switchover) or it
 * does not and switches over all the same (test_extra_round_then_worse).
 * Rounds that fit and halve, then one that (the bandwidth dropping) no longer
 * fits though it still makes progress: it is the last, not a round to fit
 * again and take a second extra one after. */
static const struct step one_run[] = {
	{ 1, 2 * GBPS, 0, .action = CONTINUE, .bw = GBPS },
	{ 2, 300 * MS, 0, .action = CONTINUE, .bw = GBPS, .extra = EQ(1) },
	{ 3, 100 * MS, 0, .action = SWITCHOVER, .bw = GBPS / 5, /* 500 ms */
	  .rung = EQ(CONVERGED), .downtime = EQ(500 * MS), .extra = EQ(1), .total = EQ(0) },
};
/* The cap taken earlier holds for a round that fits and would take
 * one: two taken, 250 ms after 500 ms switches over. */
static const struct round_case capped[] = {
	{ { .prev_remaining = 100 * MS, .extra_rounds = POLICY_EXTRA_ROUNDS },
	  { 6, 50 * MS, 0, .action = SWITCHOVER, .bw = GBPS / 5, /* 250 ms */
	    .extra = EQ(POLICY_EXTRA_ROUNDS), .total = EQ(0) } },
};
/* Rounds that shrink by exactly a quarter count the same: 480 ms,
 * then 360 and 270 ms (two extra rounds), then 202.5 ms — a quarter
 * less again, more than half the limit, but the cap is reached. */
static const struct step by_quarters[] = {
	{ 1, 2 * GBPS, 0, .action = CONTINUE, .bw = GBPS },
	{ 2, 480 * MS, 0, .action = CONTINUE, .bw = GBPS, .extra = EQ(0) },
	{ 3, 360 * MS, 0, .action = CONTINUE, .bw = GBPS, .extra = EQ(1) },
	{ 4, 270 * MS, 0, .action = CONTINUE, .bw = GBPS, .extra = EQ(2) },
	{ 5, 202500 * 1000, 0, .action = SWITCHOVER, .bw = GBPS,
	  .downtime = EQ(202500 * 1000), .extra = EQ(POLICY_EXTRA_ROUNDS) },
};

static void test_extra_round_cap(void **state)
{
	(void)state;
	RUN(&extra_params, halving_link);
	RUN(&extra_params, one_run);
	RUN_CASES(&extra_params, capped);
	RUN(&extra_params, by_quarters);
}

/* Nothing remains after a round that had plenty: shrunk by a
 * quarter and more (by all of it), pass 2, the pause (all of it fixed
 * cost) more than half the limit. */
static const struct extra_case nothing_left[] = {
	{ 2, 600 * MS, 0, 300 * MS, 0, SWITCHOVER },
	{ 2, UINT64_MAX, 0, 400 * MS, 0, SWITCHOVER },
	{ 2, 1, 0, 201 * MS, 0, SWITCHOVER },
	{ 2, 0, 0, 201 * MS, 0, SWITCHOVER },
};
static const struct round_case any_bw[] = {
	/* Whatever the bandwidth: none measured, or little. */
	{ { .prev_remaining = 600 * MS },
	  { 2, 0, 0, .action = SWITCHOVER, .unmeasured = true, .fixed = 300 * MS,
	    .downtime = EQ(300 * MS), .extra = EQ(0) } },
	{ { .prev_remaining = 600 * MS },
	  { 2, 0, 0, .action = SWITCHOVER, .bw = 1, .fixed = 300 * MS,
	    .downtime = EQ(300 * MS), .extra = EQ(0) } },
	{ { .prev_remaining = 600 * MS },
	  { 2, 0, 0, .action = SWITCHOVER, .bw = 2, .fixed = 300 * MS,
	    .downtime = EQ(300 * MS), .extra = EQ(0) } },
	/* A byte left is another matter: at 8 bytes/s it takes 125 ms,
	 * over a quarter of the limit. */
	{ { .prev_remaining = 2 },
	  { 2, 1, 0, .action = CONTINUE, .bw = 8, .fixed = 150 * MS,
	    .downtime = EQ(275 * MS), .extra = EQ(1) } },
	/* And the same pause with nothing left does not. */
	{ { .prev_remaining = 2 },
	  { 2, 0, 0, .action = SWITCHOVER, .bw = 8, .fixed = 275 * MS, .extra = EQ(0) } },
};
/* Nor after an extra round: it emptied what remained. */
static const struct step emptied[] = {
	{ 1, 2 * GBPS, 0, .action = CONTINUE, .bw = GBPS, .fixed = 250 * MS },
	{ 2, 140 * MS, 0, .action = CONTINUE, .bw = GBPS, .fixed = 250 * MS, .extra = EQ(1) },
	{ 3, 0, 0, .action = SWITCHOVER, .bw = GBPS, .fixed = 250 * MS, .extra = EQ(1) },
};
/* A limit of 0 is met only by nothing at all, and that is never
 * more than half of it. */
static const struct round_case zero_limit[] = {
	{ { .prev_remaining = GIB },
	  { 2, 0, 0, .action = SWITCHOVER, .bw = GBPS, .extra = EQ(0) } },
};

static void test_extra_round_never_when_nothing_remains(void **state)
{
	struct policy_params p = extra_params;

	(void)state;
	RUN_EXTRA_CASES(nothing_left);
	RUN_CASES(&p, any_bw);
	RUN(&p, emptied);
	p.downtime_limit_ns = 0;
	RUN_CASES(&p, zero_limit);
}

static const struct step extra_throttled[] = {
	FAST_TO_THROTTLE(GIB),
	{ 3, GIB, GIB / 2, .action = CONTINUE },
	/* It fits, shrunk by three quarters, at 250 ms: the extra round keeps
	 * the throttle, on the auto-converge rung, stepping nothing. */
	{ 4, 256 * MIB, GIB / 2, .action = CONTINUE, .rung = EQ(THROTTLED), .throttle = EQ(20),
	  .rate_before = EQ(GIB), .extra = EQ(1), .total = EQ(1) },
	{ 5, 128 * MIB, GIB / 2, .action = SWITCHOVER, .rung = EQ(THROTTLED), .throttle = EQ(20) },
};

static void test_extra_round_while_throttled(void **state)
{
	(void)state;
	RUN(&ac_params, extra_throttled);
}

/* Stall, extra round: the extra round resets the count of stalled
 * rounds in a row and adds nothing to the total. A stalled round
 * after it is never counted: it does not fit and switches over (the
 * round before fit the limit!), test_extra_round_then_worse. */
static const struct step stall_then_extra[] = {
	{ 1, 4 * GIB, BW / 2, .action = CONTINUE },
	{ 2, 4 * GIB, BW / 2, .action = CONTINUE, .stalled = EQ(1) },
	{ 3, 200 * MIB, BW / 2, .action = CONTINUE, /* 195 ms, shrank by 95 % */
	  .extra = EQ(1), .stalled = EQ(0), .total = EQ(1) },
	{ 4, 400 * MIB, BW / 2, .action = SWITCHOVER, /* 390 ms, grew */
	  .rung = EQ(CONVERGED), .stalled = EQ(0), .total = EQ(1) },
};
/* The least shrink that takes one, a quarter exactly (320 MiB to
 * 240 MiB, 234 ms), is progress as much. */
static const struct step progress_by_a_quarter[] = {
	{ 1, 320 * MIB, BW / 2, .action = CONTINUE },
	{ 2, 320 * MIB, BW / 2, .action = CONTINUE, .stalled = EQ(1) },
	{ 3, 240 * MIB, BW / 2, .action = CONTINUE, .extra = EQ(1), .stalled = EQ(0),
	  .total = EQ(1) },
	{ 4, 320 * MIB, BW / 2, .action = SWITCHOVER, /* 312.5 ms, grew */
	  .downtime = EQ(312500 * 1000), .stalled = EQ(0), .total = EQ(1) },
};
/* Throttled: a step, then an extra round resets the count the step
 * left (POLICY_STALL_ROUNDS - 1: the next stalled round would step
 * again); stalled rounds after it never step — the first switches
 * over on the auto-converge rung, the throttle as it was. */
static const struct step progress_throttled[] = {
	SLOW_TO_THROTTLE(BW / 2),
	{ 4, 200 * MIB, BW / 2, .action = CONTINUE, .rung = EQ(THROTTLED), .extra = EQ(1),
	  .stalled = EQ(0), .total = EQ(2) },
	{ 5, 400 * MIB, BW / 2, .action = SWITCHOVER, .rung = EQ(THROTTLED),
	  .throttle = EQ(20), .stalled = EQ(0), .total = EQ(2) },
};

/* An extra round shrank what remains by at least POLICY_EXTRA_SHRINK_PCT
 * %, more than POLICY_SHRINK_PCT: it made progress, and the stall rule
 * counts rounds without progress *in a row*. */
static void test_extra_round_is_progress(void **state)
{
	struct policy_params p = default_params;

	(void)state;
	RUN(&p, stall_then_extra);
	RUN(&p, progress_by_a_quarter);
	p.auto_converge = true;
	RUN(&p, progress_throttled);
}

/* Fitting wins over convergence-timeout (test_convergence_timeout),
 * and the extra round is part of fitting: taken past the timeout.
 * The next round that fits switches over. */
static const struct step extra_then_fits[] = {
	{ 2, 300 * MS, 0, .action = CONTINUE, .bw = GBPS, .elapsed = 10 * SEC,
	  .rung = EQ(CONVERGED), .extra = EQ(1) },
	{ 3, 150 * MS, 0, .action = SWITCHOVER, .bw = GBPS, .elapsed = 10 * SEC },
};
/* ...and so does one that does not (the bandwidth fell, 600 ms):
 * after an extra round the timeout's final action is never reached
 * (test_extra_round_then_worse). Without the extra round, the same
 * round past the timeout is its final action, like any round past it
 * that does not fit. */
static const struct round_case slower[] = {
	{ { .prev_remaining = 300 * MS, .extra_rounds = 1 },
	  { 3, 150 * MS, 0, .action = SWITCHOVER, .bw = GBPS / 4, .elapsed = 10 * SEC,
	    .rung = EQ(CONVERGED), .downtime = EQ(600 * MS) } },
	{ { .prev_remaining = 300 * MS },
	  { 3, 150 * MS, 0, .action = ABORT, .bw = GBPS / 4, .elapsed = 10 * SEC,
	    .rung = EQ(TIMEOUT) } },
};

static void test_extra_round_past_timeout(void **state)
{
	struct policy_params p = extra_params;
	struct policy_state st = { .prev_remaining = 600 * MS };

	(void)state;
	p.convergence_timeout_ns = 1 * SEC;
	RUN_FROM(&p, &st, extra_then_fits);
	RUN_CASES(&p, slower);
}

/* The state after a round that left 300 ms, n extra rounds taken. */
#define AFTER_300MS(n) { .prev_remaining = 300 * MS, .extra_rounds = (n) }

/* After n extra rounds, the last of them leaving 300 ms: rounds that no
 * longer fit switch over all the same, nothing counted. */
static void run_worse(const struct policy_params *p, unsigned n)
{
	const struct round_case worse[] = {
		/* Grown, the guest dirtying faster than the link: a round that
		 * climbs at once without an extra one. */
		{ AFTER_300MS(n),
		  { 3, 2 * GBPS, 2 * GBPS, .action = SWITCHOVER, .bw = GBPS, .elapsed = 1000 * SEC,
		    .rung = EQ(CONVERGED), .downtime = EQ(2 * SEC), .extra = EQ(n),
		    .stalled = EQ(0), .total = EQ(0) } },
		/* Shrunk, but the link slowed more. */
		{ AFTER_300MS(n),
		  { 3, 200 * MS, 0, .action = SWITCHOVER, .bw = GBPS / 4, .elapsed = 1000 * SEC,
		    .downtime = EQ(800 * MS) } },
		/* The fixed cost alone over the limit; nothing measured (the
		 * pause unbounded). */
		{ AFTER_300MS(n),
		  { 3, 0, 0, .action = SWITCHOVER, .bw = GBPS, .fixed = 400 * MS + 1 } },
		{ AFTER_300MS(n),
		  { 3, 300 * MS, 0, .action = SWITCHOVER, .unmeasured = true, .elapsed = 1000 * SEC,
		    .downtime = EQ(UINT64_MAX) } },
		/* At the last pass, and one round short of the bound on stalled
		 * rounds (one stalled round already): no final action, nothing
		 * counted. */
		{ AFTER_300MS(n),
		  { POLICY_MAX_PASSES, 2 * GBPS, 0, .action = SWITCHOVER, .bw = GBPS,
		    .elapsed = 1000 * SEC } },
		{ { .prev_remaining = 300 * MS, .extra_rounds = n, .stalled = 1,
		    .stalled_total = POLICY_MAX_STALLED - 1 },
		  { 3, 2 * GBPS, 0, .action = SWITCHOVER, .bw = GBPS, .stalled = EQ(1),
		    .total = EQ(POLICY_MAX_STALLED - 1) } },
	};

	run_cases(named("worse after %u", n), p, worse, ARRAY_SIZE(worse));
}

static const enum policy_final_action finals[] = { POLICY_FINAL_ABORT,
						    POLICY_FINAL_SUSPEND };
/* The way there: 300 ms after 600 ms takes an extra round; the next,
 * a nanosecond over the limit, switches over. */
static const struct step way_there[] = {
	{ 2, 300 * MS, 0, .action = CONTINUE, .bw = GBPS, .extra = EQ(1) },
	{ 3, 400 * MS + 1, 0, .action = SWITCHOVER, .bw = GBPS, .rung = EQ(CONVERGED),
	  .throttle = EQ(0), .downtime = EQ(400 * MS + 1), .extra = EQ(1), .stalled = EQ(0),
	  .total = EQ(0) },
};
/* The convergence timeout long passed (a round at 1000 s) changes nothing:
 * switchover, not its final action. Before any extra round, the same rounds go
 * the old way: past the timeout, its final action... */
static const struct round_case past_timeout[] = {
	{ AFTER_300MS(1),
	  { 3, 2 * GBPS, 2 * GBPS, .action = SWITCHOVER, .bw = GBPS, .elapsed = 1000 * SEC,
	    .rung = EQ(CONVERGED) } },
	{ AFTER_300MS(POLICY_EXTRA_ROUNDS),
	  { 3, 500 * MS, 0, .action = SWITCHOVER, .bw = GBPS, .elapsed = 1000 * SEC } },
	{ AFTER_300MS(0),
	  { 3, 2 * GBPS, 2 * GBPS, .action = FINAL, .bw = GBPS, .elapsed = 1000 * SEC,
	    .rung = EQ(TIMEOUT) } },
	{ AFTER_300MS(0), { 3, 400 * MS + 1, 0, .action = FINAL, .bw = GBPS, .elapsed = 1000 * SEC,
	    .rung = EQ(TIMEOUT) } },
};
/* ...and without it, the stall rule and the ladder: a fast dirtier's
 * final action at once, a slow one waits, a round of progress goes
 * on, the last pass ends. */
static const struct round_case no_extra[] = {
	{ AFTER_300MS(0),
	  { 3, 2 * GBPS, 2 * GBPS, .action = FINAL, .bw = GBPS, .elapsed = 1000 * SEC,
	    .rung = EQ(STALLED), .total = EQ(1) } },
	{ AFTER_300MS(0),
	  { 3, 400 * MS + 1, 0, .action = CONTINUE, .bw = GBPS, .elapsed = 1000 * SEC,
	    .stalled = EQ(1), .total = EQ(1) } },
	{ AFTER_300MS(0),
	  { 3, 200 * MS, 0, .action = CONTINUE, .bw = GBPS / 4, .elapsed = 1000 * SEC,
	    .stalled = EQ(0), .total = EQ(0) } },
	{ AFTER_300MS(0), { POLICY_MAX_PASSES, 2 * GBPS, 0, .action = FINAL, .bw = GBPS,
	    .elapsed = 1000 * SEC, .rung = EQ(STALLED) } },
	{ AFTER_300MS(0), /* nothing measured */
	  { 3, 200 * MS, 0, .action = CONTINUE, .unmeasured = true, .elapsed = 1000 * SEC,
	    .downtime = EQ(UINT64_MAX) } },
};
/* With auto-converge, throttled: the extra round of
 * test_extra_round_while_throttled (250 ms at 20 %), then a round
 * that grew to 500 ms, the guest dirtying as fast as the link — a
 * round that would step the throttle: it switches over on the
 * auto-converge rung, the throttle as it was. */
static const struct step throttled_extra[] = {
	FAST_TO_THROTTLE(GIB),
	{ 3, GIB, GIB / 2, .action = CONTINUE },
	{ 4, 256 * MIB, GIB / 2, .action = CONTINUE, .extra = EQ(1), .total = EQ(1) },
};
static const struct step grew[] = {
	{ 5, 512 * MIB, GIB, .action = SWITCHOVER, .rung = EQ(THROTTLED), .throttle = EQ(20),
	  .downtime = EQ(500 * MS), .total = EQ(1) },
};
static const struct step grew_switches[] = {
	{ 5, 512 * MIB, GIB, .action = SWITCHOVER, .rung = EQ(THROTTLED) },
};
static const struct step grew_at_cap[] = {
	{ 5, 512 * MIB, GIB, .action = SWITCHOVER, .throttle = EQ(POLICY_THROTTLE_MAX) },
};
/* Without the extra round, that round steps the throttle. */
static const struct step grew_steps[] = {
	{ 5, 512 * MIB, GIB, .action = THROTTLE, .throttle = EQ(30) },
};

/* After an extra round, a round whose pause no longer fits the limit (the
 * link slowed, the guest sped up) switches over all the same: the pause
 * fitted a round ago, and an extra round must never turn a migration that
 * fitted into a suspended or aborted one. That comes before everything
 * else: the timeout, the bounds, the stall rule and the ladder. Before
 * any extra round, nothing of it. */
static void test_extra_round_then_worse(void **state)
{
	struct policy_params p;
	struct policy_state st, saved;

	(void)state;
	for (unsigned f = 0; f < ARRAY_SIZE(finals); f++) {
		p = extra_params;
		p.final_action = finals[f];
		st = (struct policy_state){ .prev_remaining = 600 * MS };
		RUN_FROM(&p, &st, way_there);

		for (unsigned extra = 1; extra <= POLICY_EXTRA_ROUNDS; extra++)
			run_worse(&p, extra);

		p.convergence_timeout_ns = 1 * SEC;
		RUN_CASES(&p, past_timeout);
		p.convergence_timeout_ns = 0;
		RUN_CASES(&p, no_extra);
	}

	for (unsigned f = 0; f < ARRAY_SIZE(finals); f++) {
		p = default_params;
		p.auto_converge = true;
		p.final_action = finals[f];
		st = (struct policy_state){ 0 };
		RUN_FROM(&p, &st, throttled_extra);
		saved = st;
		assert_string_equal(policy_rung_name(RUN_FROM(&p, &st, grew).rung),
				    "auto-converge");
		/* The timeout passed as well. */
		p.convergence_timeout_ns = 1 * SEC;
		st = saved;
		RUN_FROM(&p, &st, grew_switches);
		/* Throttling found useless, or at the cap: still switchover,
		 * not the final action. */
		p.convergence_timeout_ns = 0;
		st = saved;
		st.throttle_useless = true;
		RUN_FROM(&p, &st, grew_switches);
		st = saved;
		st.throttle_pct = POLICY_THROTTLE_MAX;
		RUN_FROM(&p, &st, grew_at_cap);
		st = saved;
		st.extra_rounds = 0;
		RUN_FROM(&p, &st, grew_steps);
	}
}

/* ---- convergence-timeout -------------------------------------------- */

/* Shrinking rounds, but slowly: the timeout ends it. */
static const struct step slow_shrink[] = {
	{ 1, 80 * GIB, 0, .action = CONTINUE },
	{ 2, 60 * GIB, 0, .action = CONTINUE },
	{ 3, 40 * GIB, 0, .action = CONTINUE },
	{ 4, 20 * GIB, 0, .action = CONTINUE },
	{ 5, 10 * GIB, 0, .action = SUSPEND, /* elapsed 5 s: reached */
	  .rung = EQ(TIMEOUT), .downtime = EQ(10 * SEC) },
};
/* One nanosecond before: not yet. Abort when configured. */
static const struct step just_before[] = {
	{ 1, 10 * GIB, 0, .action = CONTINUE, .elapsed = 5 * SEC - 1 },
	{ 2, 5 * GIB, 0, .action = ABORT, .elapsed = 5 * SEC, .rung = EQ(TIMEOUT) },
};
static const struct round_case past[] = {
	/* Fitting wins over the timeout. */
	{ { 0 },
	  { 2, 100 * MIB, 0, .action = SWITCHOVER, .elapsed = 100 * SEC, .rung = EQ(CONVERGED) } },
	/* Even on the bulk copy (the timeout ends it). */
	{ { 0 }, { 1, 10 * GIB, 0, .action = ABORT, .elapsed = 6 * SEC, .rung = EQ(TIMEOUT) } },
};
/* 0 is no timeout at all. */
static const struct round_case none[] = {
	{ { 0 }, { 1, 10 * GIB, 0, .action = CONTINUE, .elapsed = UINT64_MAX } },
};

static void test_convergence_timeout(void **state)
{
	struct policy_params p = default_params;

	(void)state;
	p.convergence_timeout_ns = 5 * SEC;
	assert_string_equal(policy_rung_name(RUN(&p, slow_shrink).rung),
			    "convergence-timeout");
	p.final_action = POLICY_FINAL_ABORT;
	RUN(&p, just_before);
	RUN_CASES(&p, past);
	p.convergence_timeout_ns = 0;
	RUN_CASES(&p, none);
}

/* The timeout ends even a throttled migration that still helps; no
 * further step is taken, the state is kept as it was. */
static const struct step timeout_throttled[] = {
	FAST_TO_THROTTLE(GIB),
	{ 3, 2 * GIB, GIB / 2, .action = THROTTLE, .throttle = EQ(30), .stalled = EQ(1),
	  .total = EQ(2) },
	{ 4, 2 * GIB, GIB / 2, .action = SUSPEND, .elapsed = 1000 * SEC, .rung = EQ(TIMEOUT),
	  .throttle = EQ(30), .stalled = EQ(1), .total = EQ(2) },
};

static void test_convergence_timeout_while_throttled(void **state)
{
	struct policy_params p = default_params;

	(void)state;
	p.auto_converge = true;
	p.convergence_timeout_ns = 1000 * SEC;
	RUN(&p, timeout_throttled);
}

/* ---- the hard bounds ------------------------------------------------ */

/* A pass number past the bound (a caller that went on) ends too. */
static const struct round_case past_bound[] = {
	{ { .prev_remaining = 1ull << 60 },
	  { POLICY_MAX_PASSES + 1, 1ull << 40, GIB, .action = ABORT } },
};

static void test_max_passes(void **state)
{
	struct policy_params p = default_params;
	struct policy_state st;

	(void)state;
	for (int ac = 0; ac < 2; ac++) {
		for (int fa = 0; fa < 2; fa++) {
			uint64_t remaining = 1ull << 60;

			p.auto_converge = ac;
			p.final_action = fa ? POLICY_FINAL_ABORT : POLICY_FINAL_SUSPEND;
			st = (struct policy_state){ 0 };
			/* Always shrinking by 11 %, never fitting, never a stall:
			 * the last pass ends it. */
			for (unsigned pass = 1; pass <= POLICY_MAX_PASSES; pass++) {
				const bool last = pass == POLICY_MAX_PASSES;
				const struct step s = {
					pass, remaining, GIB, .action = last ? FINAL : CONTINUE,
					.rung = { last, STALLED }, .throttle = { last, 0 },
					.total = EQ(0),
				};

				run_steps(named("shrinking ac %d fa %d", ac, fa), &p, &st, &s, 1);
				remaining = remaining / 100 * 89;
			}
		}
	}
	RUN_CASES(&p, past_bound);
}

/* Throttled, with the climb slowed by rounds of progress (what
 * remains halves, then two stalled rounds step): the total bound ends
 * it before the throttle reaches the cap. */
static const struct step slowed_climb[] = {
	FAST_TO_THROTTLE(GIB),
	{ 3, GIB, 0, .action = CONTINUE },
	{ 4, GIB, 0, .action = CONTINUE },
	{ 5, GIB, 0, .action = THROTTLE, .throttle = EQ(30) },
	{ 6, 512 * MIB, 0, .action = CONTINUE },
	{ 7, 512 * MIB, 0, .action = CONTINUE },
	{ 8, 512 * MIB, 0, .action = THROTTLE, .throttle = EQ(40) },
	{ 9, 256 * MIB, 0, .action = CONTINUE },
	{ 10, 256 * MIB, 0, .action = CONTINUE },
	{ 11, 256 * MIB, 0, .action = THROTTLE, .throttle = EQ(50) },
	{ 12, 128 * MIB, 0, .action = CONTINUE },
	{ 13, 128 * MIB, 0, .action = CONTINUE },
	{ 14, 128 * MIB, 0, .action = THROTTLE, .throttle = EQ(60) },
	{ 15, 64 * MIB, 0, .action = CONTINUE },
	{ 16, 64 * MIB, 0, .action = CONTINUE },
	{ 17, 64 * MIB, 0, .action = THROTTLE, .throttle = EQ(70) },
	{ 18, 32 * MIB, 0, .action = CONTINUE },
	{ 19, 32 * MIB, 0, .action = SUSPEND, .rung = EQ(STALLED), .throttle = EQ(70),
	  .total = EQ(POLICY_MAX_STALLED) },
};

static void test_max_stalled(void **state)
{
	struct policy_params p = default_params;
	struct policy_state st = { 0 };

	(void)state;
	p.auto_converge = true;
	/* Alternating 4 GiB, 8 GiB with the guest dirtying slower than the
	 * link: every other round stalls, never two in a row, so nothing is
	 * throttled — the total bound ends it, at the 12th stall. */
	for (unsigned pass = 1; pass <= 2 * POLICY_MAX_STALLED; pass++) {
		const bool grew = pass % 2 == 0, last = pass == 2 * POLICY_MAX_STALLED;
		const struct step s = {
			pass, grew ? 8 * GIB : 4 * GIB, GIB / 2,
			.action = last ? SUSPEND : CONTINUE,
			.stalled = { grew && !last, 1 }, .rung = { last, STALLED },
			.throttle = { last, 0 }, .total = { last, POLICY_MAX_STALLED },
		};

		run_steps("alternating", &p, &st, &s, 1);
	}

	p.downtime_limit_ns = 1 * MS;
	st = (struct policy_state){ 0 };
	RUN_FROM(&p, &st, slowed_climb);
	assert_true(st.throttle_pct < POLICY_THROTTLE_MAX);
	assert_true(ARRAY_SIZE(slowed_climb) <= POLICY_MAX_PASSES);
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
		cmocka_unit_test(test_expected_downtime),
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
