#include "migration/policy.h"

#include <stddef.h>

#define MIN(a, b) ((a) < (b) ? (a) : (b))

uint64_t policy_expected_downtime(const struct policy_round *r)
{
	uint64_t xfer;

	if (r->remaining_bytes == 0) {
		xfer = 0;
	} else if (r->bandwidth_Bps == 0) {
		return UINT64_MAX; /* nothing measured yet: cannot fit any limit */
	} else {
		/* In 128 bits: saturate when the time overflows, not the product
		 * (more than ~18.4 GB remaining is not by itself too long). */
		unsigned __int128 ns =
			(unsigned __int128)r->remaining_bytes * 1000000000u / r->bandwidth_Bps;

		if (ns > UINT64_MAX)
			return UINT64_MAX;
		xfer = (uint64_t)ns;
	}
	return xfer > UINT64_MAX - r->fixed_cost_ns ? UINT64_MAX : xfer + r->fixed_cost_ns;
}

static struct policy_decision final_action(const struct policy_params *p,
					   struct policy_decision d, enum policy_rung rung)
{
	d.action = p->final_action == POLICY_FINAL_ABORT ? POLICY_ABORT : POLICY_SUSPEND;
	d.rung = rung;
	return d;
}

/* A round made progress when what remains shrank by POLICY_SHRINK_PCT %
 * against the round before (the bulk copy always does). */
static bool made_progress(const struct policy_state *st, const struct policy_round *r)
{
	if (r->pass <= 1)
		return true;
	return (unsigned __int128)r->remaining_bytes * 100 <
	       (unsigned __int128)st->prev_remaining * (100 - POLICY_SHRINK_PCT);
}

struct policy_decision policy_decide(const struct policy_params *p, struct policy_state *st,
				     const struct policy_round *r)
{
	struct policy_decision d = {
		.action = POLICY_CONTINUE,
		.rung = st->throttle_pct ? POLICY_RUNG_THROTTLED : POLICY_RUNG_CONVERGED,
		.throttle_pct = st->throttle_pct,
		.expected_downtime_ns = policy_expected_downtime(r),
	};
	bool progress = made_progress(st, r);
	bool shrinking = r->pass > 1 && (unsigned __int128)r->remaining_bytes * 100 <=
					(unsigned __int128)st->prev_remaining *
						(100 - POLICY_EXTRA_SHRINK_PCT);

	st->prev_remaining = r->remaining_bytes;
	if (st->extra_rounds && d.expected_downtime_ns > p->downtime_limit_ns) {
		/* An extra round taken below the limit came out worse (the
		 * link slowed, the guest sped up): the pause was acceptable a
		 * round ago and an extra round must never turn a migration
		 * that fitted into a suspended or aborted one. */
		d.action = POLICY_SWITCHOVER;
		return d;
	}
	if (d.expected_downtime_ns <= p->downtime_limit_ns) {
		/* It fits. But when the last round still shrank what remains
		 * by a quarter or more, the pause would take more than half
		 * the limit and sending RAM more than a quarter of it, one more
		 * short round shrinks that part as much: the limit is a
		 * ceiling, not an aim (at most POLICY_EXTRA_ROUNDS of them). */
		uint64_t xfer_ns = d.expected_downtime_ns - MIN(d.expected_downtime_ns,
								r->fixed_cost_ns);

		if (shrinking && r->remaining_bytes && xfer_ns > p->downtime_limit_ns / 4 &&
		    d.expected_downtime_ns > p->downtime_limit_ns / 2 &&
		    st->extra_rounds < POLICY_EXTRA_ROUNDS && r->pass < POLICY_MAX_PASSES) {
			st->extra_rounds++;
			st->stalled = 0; /* it shrank what remains: progress */
			return d;
		}
		d.action = POLICY_SWITCHOVER;
		return d;
	}
	if (p->convergence_timeout_ns && r->elapsed_ns >= p->convergence_timeout_ns)
		return final_action(p, d, POLICY_RUNG_TIMEOUT);
	if (progress) {
		st->stalled = 0;
	} else if ((unsigned __int128)r->dirty_rate_Bps * 100 >=
			   (unsigned __int128)r->bandwidth_Bps * POLICY_FAST_DIRTY_PCT &&
		   st->stalled + 1 < POLICY_STALL_ROUNDS) {
		/* The guest dirtied (nearly) as fast as the link sent — the
		 * measured rate saturates when a round re-dirties the whole
		 * working set — so waiting another round cannot help: climb. */
		st->stalled = POLICY_STALL_ROUNDS;
		st->stalled_total++;
	} else {
		st->stalled++;
		st->stalled_total++;
	}
	if (r->pass >= POLICY_MAX_PASSES || st->stalled_total >= POLICY_MAX_STALLED)
		return final_action(p, d, POLICY_RUNG_STALLED);
	if (st->stalled < POLICY_STALL_ROUNDS)
		return d;

	/* Stalled: up the ladder. */
	if (!p->auto_converge || st->throttle_useless || st->throttle_pct >= POLICY_THROTTLE_MAX)
		return final_action(p, d, POLICY_RUNG_STALLED);
	if (st->throttle_pct == 0) {
		st->rate_before_throttle = r->dirty_rate_Bps;
		st->throttle_pct = POLICY_THROTTLE_INITIAL;
	} else if (st->throttle_pct >= POLICY_THROTTLE_INITIAL + 2 * POLICY_THROTTLE_STEP &&
		   (unsigned __int128)r->dirty_rate_Bps * 100 >
			   (unsigned __int128)st->rate_before_throttle *
				   (100 - POLICY_THROTTLE_HELPS_PCT)) {
		/* Three throttle steps and the guest dirties as fast as before:
		 * throttling does not help this guest (a ring-3 dirtier between
		 * timer ticks, say). Stop spending rounds on it. */
		st->throttle_useless = true;
		return final_action(p, d, POLICY_RUNG_STALLED);
	} else {
		st->throttle_pct += POLICY_THROTTLE_STEP;
		if (st->throttle_pct > POLICY_THROTTLE_MAX)
			st->throttle_pct = POLICY_THROTTLE_MAX;
	}
	/* Each further stalled round steps the throttle again. */
	st->stalled = POLICY_STALL_ROUNDS - 1;
	d.action = POLICY_THROTTLE;
	d.rung = POLICY_RUNG_THROTTLED;
	d.throttle_pct = st->throttle_pct;
	return d;
}

const char *policy_rung_name(enum policy_rung rung)
{
	static const char *const names[] = {
		[POLICY_RUNG_CONVERGED] = "converged",
		[POLICY_RUNG_THROTTLED] = "auto-converge",
		[POLICY_RUNG_STALLED] = "stalled",
		[POLICY_RUNG_TIMEOUT] = "convergence-timeout",
		[POLICY_RUNG_NON_LIVE] = "non-live",
	};

	return (unsigned)rung < sizeof(names) / sizeof(names[0]) ? names[rung] : "unknown";
}

const char *policy_action_name(enum policy_action action)
{
	static const char *const names[] = {
		[POLICY_CONTINUE] = "continue",
		[POLICY_SWITCHOVER] = "switchover",
		[POLICY_THROTTLE] = "throttle",
		[POLICY_SUSPEND] = "suspend",
		[POLICY_ABORT] = "abort",
	};

	return (unsigned)action < sizeof(names) / sizeof(names[0]) ? names[action] : "unknown";
}
