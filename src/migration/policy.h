/* The pre-copy policy: after every round of a live migration, one pure
 * function looks at that round's figures and says what happens next
 * (STYLE.md §15). The loop in migrate.c only measures and obeys; every
 * decision — and the ladder that makes a migration always end — is here,
 * unit-tested without a VM (tests/unit/test_policy.c).
 *
 * Switch-over comes when the expected pause fits downtime-limit — after up
 * to two more rounds while rounds still shrink what remains by a quarter,
 * the pause would take more than half the limit and sending RAM more than
 * a quarter of it; a round after such an extra one switches over even if
 * it no longer fits (it fitted a round ago).
 *
 * The ladder, in order, when rounds stop shrinking (twice in a row; at
 * once when the guest dirtied nearly as fast as the link sent):
 *   1. auto-converge (if allowed): throttle the vCPUs, 20 % first, +10 %
 *      per stalled round, 99 % at most — kept only while it measurably
 *      lowers the dirty rate;
 *   2. the final action: "suspend" (pause and finish non-live, the default,
 *      as virsh migrate --timeout-suspend) or "abort" (fail, the source runs
 *      on).
 * convergence-timeout (if set) jumps to the final action when it passes; a
 * hard bound on stalled rounds makes sure one is always reached. */
#ifndef FERRY_MIGRATION_POLICY_H
#define FERRY_MIGRATION_POLICY_H

#include <stdbool.h>
#include <stdint.h>

/* Rounds without progress (remaining not shrinking by POLICY_SHRINK_PCT %)
 * before the ladder moves up a rung; and the bound on them in total. */
#define POLICY_STALL_ROUNDS 2u
#define POLICY_MAX_STALLED 12u
#define POLICY_SHRINK_PCT 10u
#define POLICY_MAX_PASSES 64u
/* A round without progress in which the guest dirtied at least this
 * share of what the link sent climbs the ladder at once. */
#define POLICY_FAST_DIRTY_PCT 90u
/* Extra rounds taken when the pause already fits the limit but the last
 * round shrank what remains by POLICY_EXTRA_SHRINK_PCT % or more (the
 * pause would shrink as much). */
#define POLICY_EXTRA_ROUNDS 2u
#define POLICY_EXTRA_SHRINK_PCT 25u
/* Throttling counts as helping when the dirty rate falls by this much
 * against the rate before throttling began. */
#define POLICY_THROTTLE_HELPS_PCT 20u
#define POLICY_THROTTLE_INITIAL 20u
#define POLICY_THROTTLE_STEP 10u
#define POLICY_THROTTLE_MAX 99u

enum policy_final_action {
	POLICY_FINAL_SUSPEND, /* pause the guest and finish non-live */
	POLICY_FINAL_ABORT,   /* give up; the source runs on */
};

/* The operator's parameters, as migrate-set-parameters sets them. */
struct policy_params {
	uint64_t downtime_limit_ns;
	bool auto_converge;
	uint64_t convergence_timeout_ns; /* 0: none */
	enum policy_final_action final_action;
};

/* One round's figures, as the loop measured them. */
struct policy_round {
	unsigned pass;               /* 1 = the bulk copy */
	uint64_t elapsed_ns;         /* since the migration started */
	uint64_t remaining_bytes;    /* dirty now, to be sent */
	uint64_t bandwidth_Bps;      /* measured over the round, bytes/s */
	uint64_t dirty_rate_Bps;     /* guest dirtying over the round, bytes/s */
	uint64_t fixed_cost_ns;      /* learned cost of the pause, device and vCPU
				      * state, destination load and start */
};

/* What the policy remembers between rounds (zero-initialised at start). */
struct policy_state {
	uint64_t prev_remaining;
	unsigned stalled;       /* consecutive rounds without progress */
	unsigned stalled_total;
	unsigned throttle_pct;  /* current throttle, 0 = none */
	uint64_t rate_before_throttle;
	bool throttle_useless;  /* measured: throttling did not lower the rate */
	unsigned extra_rounds;  /* taken below the limit (POLICY_EXTRA_ROUNDS) */
};

enum policy_action {
	POLICY_CONTINUE,    /* another round */
	POLICY_SWITCHOVER,  /* what remains fits the downtime limit: pause, finish */
	POLICY_THROTTLE,    /* another round with the vCPUs throttled (throttle_pct) */
	POLICY_SUSPEND,     /* the ladder's end: pause, finish non-live */
	POLICY_ABORT,       /* the ladder's end: fail, resume the source */
};

/* Which rung finished (or is running) the migration, for query-migrate. */
enum policy_rung {
	POLICY_RUNG_CONVERGED,    /* pre-copy fit the limit by itself */
	POLICY_RUNG_THROTTLED,    /* fit the limit with auto-converge */
	POLICY_RUNG_STALLED,      /* final action: rounds stopped shrinking */
	POLICY_RUNG_TIMEOUT,      /* final action: convergence-timeout passed */
	POLICY_RUNG_NON_LIVE,     /* asked for non-live (live=false) */
};

struct policy_decision {
	enum policy_action action;
	enum policy_rung rung;
	unsigned throttle_pct;      /* to apply for the next round */
	uint64_t expected_downtime_ns;
};

/* Expected downtime if the guest were paused now: the remaining bytes at
 * the measured bandwidth plus the learned fixed cost. */
uint64_t policy_expected_downtime(const struct policy_round *r);

/* The decision after round r. Updates st. */
struct policy_decision policy_decide(const struct policy_params *p, struct policy_state *st,
				     const struct policy_round *r);

const char *policy_rung_name(enum policy_rung rung);
const char *policy_action_name(enum policy_action action);

#endif
