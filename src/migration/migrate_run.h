/* What the parts of the source side (migrate.c, precopy.c, handover.c,
 * dirty_rate.c) share: the running migration's own state, which only its
 * thread touches, and the helpers each part uses. Not for other layers:
 * migrate.h is the API. */
#ifndef FERRY_MIGRATION_MIGRATE_RUN_H
#define FERRY_MIGRATION_MIGRATE_RUN_H

#include <stdbool.h>
#include <stdint.h>

#include "migration/dirty.h"
#include "migration/migrate.h"
#include "migration/state.h"
#include "migration/stream.h"

#define MIG_PAGE_SIZE 4096u

/* What the thread works with; only it touches these. */
struct mig_run {
	struct migration *m;
	struct vm *vm;
	int fd;
	struct stream_writer w;
	struct stream_reader r;
	struct state_ram_batch *batch;
	struct dirty_log dlog;
	bool logging;
	bool paused_by_us;
	uint64_t t0;
	/* rate limiting: bytes since window_t */
	uint64_t window_t, window_bytes, last_offset;
	/* progress within a pass, for query-migrate's ram.remaining */
	uint64_t pass_budget;  /* bytes due in this pass when it began */
	uint64_t pass_done;    /* pages' bytes of it dealt with so far */
	uint64_t data_bytes;   /* RAM holding data (pass 1's budget) */
	char err[512];
};

/* What one RAM pass sent: bytes on the wire, full and zero pages, and
 * pages skipped as never touched (the first pass only). */
struct pass_figures {
	uint64_t bytes, full, zero, skipped;
};

/* ---- migrate.c: shared state (under m->lock) and the channel ---- */

void mig_push_event_locked(struct migration *m, bool pass, unsigned value);
void mig_set_status(struct migration *m, enum mig_status s);
bool mig_cancelled(struct migration *m);
struct mig_params mig_get_params(struct migration *m);
/* Applies fn to the stats under the lock. */
void mig_stats_update(struct migration *m, void (*fn)(struct mig_stats *, const void *),
		      const void *arg);

/* Records why the migration fails (the first reason stays); returns err. */
int mig_run_fail(struct mig_run *run, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
uint64_t mig_elapsed(const struct mig_run *run);

/* After a failed write or read: the destination's ERROR, if it sent one,
 * else what failed. */
void mig_peer_error(struct mig_run *run, int err, const char *what);
/* Reads the next message from the destination, which must be want. */
int mig_expect(struct mig_run *run, uint32_t want, const uint8_t **p, size_t *len);

/* Test hooks (tests/e2e/test_migrate.py): waits the milliseconds the
 * environment variable name says, at a named point; nothing when unset. */
void mig_test_delay(const char *name);

/* Pauses the guest (if it runs); *pause_ns: how long that took. */
void mig_pause_vm(struct mig_run *run, uint64_t *pause_ns);

/* ---- precopy.c ---- */

/* Sends every page whose bit is set in the dirty bitmap (precopy.c says
 * how bulk and rearm change that). Returns 0 or -errno (run->err set). */
int mig_send_pass(struct mig_run *run, bool bulk, bool rearm, struct pass_figures *pf);

/* The pre-copy loop: passes until the policy says switch over (or its
 * ladder ends). Returns 0 with *rung set, or -errno. */
int mig_precopy(struct mig_run *run, uint64_t rtt, enum policy_rung *rung);

/* ---- handover.c ---- */

/* Everything after the pre-copy: the pause, the last RAM, the state, and
 * the two-phase hand-over. Returns 0 when the destination runs the guest;
 * on failure, m->go_sent says whether the source may resume. */
int mig_handover(struct mig_run *run, enum policy_rung rung, bool live);

#endif
