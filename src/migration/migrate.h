/* The source side of a migration: one thread per migration runs the
 * pre-copy loop (dirty log, passes, the policy's decision each round), the
 * final pause and the two-phase hand-over of docs/migration-protocol.md,
 * while the main thread keeps answering the control socket. Everything the
 * two threads share sits under struct migration's lock.
 *
 * The parts, in the protocol's order: migrate.c (this API, the thread, the
 * hand-shake and the channel), precopy.c (RAM passes and the pre-copy
 * loop), handover.c (the last RAM, the state, READY, GO, STARTED),
 * dirty_rate.c (calc-dirty-rate); migrate_run.h is what they share. */
#ifndef FERRY_MIGRATION_MIGRATE_H
#define FERRY_MIGRATION_MIGRATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "migration/policy.h"

struct vm;

/* QMP's MigrationStatus names (migration_status_name). */
enum mig_status {
	MIG_NONE,
	MIG_SETUP,
	MIG_ACTIVE,
	MIG_DEVICE,
	MIG_COMPLETED,
	MIG_FAILED,
	MIG_CANCELLING,
	MIG_CANCELLED,
};

struct mig_params {
	uint64_t downtime_limit_ms;      /* default 10 */
	uint64_t max_bandwidth;          /* bytes/s, 0 = unlimited */
	bool auto_converge;              /* default on */
	uint64_t convergence_timeout_s;  /* 0 = none */
	enum policy_final_action final_action; /* default suspend */
};

#define MIG_DEFAULT_DOWNTIME_MS 10u
#define MIG_MAX_DOWNTIME_MS 2000000u /* QMP's bound */

/* Figures for query-migrate; times in ns since the migration started. */
struct mig_stats {
	uint64_t start_wall_ms;
	uint64_t setup_ns, total_ns, downtime_ns, expected_downtime_ns;
	uint64_t transferred, remaining, total, duplicate, normal, skipped;
	uint64_t mbps_x1000;      /* Mbit/s × 1000 over the last round */
	uint64_t bandwidth_Bps;   /* bytes/s over the last round */
	uint64_t dirty_pages_rate;
	uint64_t dirty_sync_count;
	unsigned pass;
	unsigned throttle_pct;
	enum policy_rung rung;
	bool rung_known;
	/* The downtime in parts (ns): pausing the vCPUs, the last RAM, vCPU
	 * and device state, the destination's load up to READY, GO → STARTED. */
	uint64_t pause_ns, final_ram_ns, device_ns, dest_load_ns, start_ns;
	uint64_t final_ram_bytes;
	bool have_hash;
	uint32_t src_hash, dst_hash;
};

#define MIG_MAX_EVENTS 64

struct mig_event {
	bool pass;          /* MIGRATION_PASS, else MIGRATION */
	unsigned value;     /* pass number or enum mig_status */
};

struct migration {
	struct vm *vm;
	pthread_mutex_t lock;
	struct mig_params params;
	enum mig_status status;
	char error[800];
	bool postmigrate;       /* handed over: this copy never runs again */
	bool handover_unknown;  /* GO sent, STARTED never came */
	struct mig_stats stats;
	struct mig_event events[MIG_MAX_EVENTS];
	unsigned nevents;

	/* The running migration. */
	pthread_t thread;
	bool thread_started;
	bool cancel;            /* asked to cancel (checked by the thread) */
	bool go_sent;           /* past the point of no return */
	int sock;
	char *uri, *token;
	bool live, ram_hash;
	bool was_running;
	/* What the last hand-over in this process cost beyond its RAM (pause,
	 * state, the destination's load, GO → STARTED): the policy's fixed
	 * cost for the next migration (0: none yet). The thread's alone. */
	uint64_t learned_fixed_ns;

	/* calc-dirty-rate */
	pthread_t rate_thread;
	bool rate_thread_started;
	bool rate_measuring;
	bool rate_measured;
	uint64_t rate_start_s, rate_calc_s, rate_MBps, rate_pages;
};

void migration_init(struct migration *m, struct vm *vm);

/* Starts migrating to uri. Returns 0, or -1 with err (a migration already
 * runs, the VM stopped for good, a bad URI...). */
int migration_start(struct migration *m, const char *uri, const char *token, bool live,
		    bool ram_hash, char *err, size_t errlen);

/* Cancels a running migration before the hand-over's GO. Returns 0, or -1
 * with err when there is none or it is past GO. */
int migration_cancel(struct migration *m, char *err, size_t errlen);

/* True while a migration thread runs (stop/cont/save must wait). */
bool migration_active(struct migration *m);

/* A consistent copy of status, stats, params and error. */
void migration_snapshot(struct migration *m, enum mig_status *status, struct mig_stats *st,
			struct mig_params *p, char *error, size_t errlen);

/* Sets parameters (a running migration takes them from its next round). */
void migration_set_params(struct migration *m, const struct mig_params *p);
void migration_get_params(struct migration *m, struct mig_params *p);

/* Takes the events queued since the last call (at most max). */
unsigned migration_take_events(struct migration *m, struct mig_event *out, unsigned max);

/* calc-dirty-rate: measures the guest's dirty rate over calc_s seconds in
 * the background (dirty log on, then off). Returns 0 or -1 with err. */
int migration_calc_dirty_rate(struct migration *m, unsigned calc_s, char *err, size_t errlen);

/* Ends (cancels, then joins) any migration or measurement; at exit. */
void migration_shutdown(struct migration *m);

const char *migration_status_name(enum mig_status s);

#endif
