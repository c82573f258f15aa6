/*
 * The integrity workload, as the test guest's (guest/README.md,
 * "Workload"): a working set of anonymous memory whose pages are rewritten
 * at a chosen rate and verified continuously, by one thread per CPU,
 * pinned to it.
 *
 * Page p at generation g holds word i = mix64(p << 32 ^ g ^ C) + i * phi
 * (64-bit words); gen[p] is the generation last written (0: never, not
 * checked). Worker k owns pages [pages * k / n, pages * (k + 1) / n): no
 * page or gen entry is touched by two threads. Every write first verifies
 * the page; a sweep re-verifies the whole slice about every 1.5 s. A page
 * that does not hold its generation's content is reported
 * ("ferry-agent CORRUPT page=P gen=G", at most 5 lines a second a
 * worker), counted, and rewritten with that content, so that it counts
 * once.
 */
#ifndef FERRY_AGENT_WSET_H
#define FERRY_AGENT_WSET_H

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Per-worker counters, written by the worker, summed for the heartbeat. */
struct wset_stats {
	_Atomic uint64_t verified;      /* page checks done */
	_Atomic uint64_t corrupt;       /* mismatches found */
	_Atomic uint64_t written;       /* pages written */
} __attribute__((aligned(64)));

struct workload;

struct wset_worker {
	struct workload *wl;
	pthread_t thread;
	int cpu;                /* the CPU it is pinned to */
	uint32_t index;         /* 0 .. nworkers - 1 */
	uint64_t lo, hi;        /* owned pages [lo, hi) */
	uint64_t wcur, vcur;    /* next page to write / to sweep */
	uint64_t wrate, vrate;  /* pages per second */
	uint64_t wdone, vdone;  /* pages done since t0 (skipped ones too) */
	bool fill_once;         /* RATE 0: write each page once, then stop */
	uint64_t filled;        /* pages written so far, for fill_once */
	uint64_t log_window;    /* CORRUPT line rate limit (ns) */
	uint32_t log_lines;
	struct wset_stats st;
};

struct workload {
	uint8_t *base;          /* pages, 4 KiB aligned, populated */
	uint64_t pages;
	uint32_t *gen;          /* one per page */
	uint64_t t0_ns;         /* CLOCK_BOOTTIME origin of the schedules */
	uint64_t inject_ns;     /* when worker 0 injects (UINT64_MAX: never) */
	uint32_t nworkers;
	struct wset_worker *workers;
	atomic_bool stop;       /* workers return (workload_stop) */
};

/* Maps and populates ws_mib MiB (0: no working set, no threads), sets
 * t0_ns to the time it is ready (CLOCK_BOOTTIME: the schedules start
 * there) and starts one worker per CPU of cpus, pinned to it, dirtying
 * rate_mib MiB/s in total (shares that add up exactly; 0: every page
 * written once, at 64 MiB/s a worker). inject_after_ns, unless
 * UINT64_MAX, is when after t0 worker 0 flips a bit of its first written
 * page behind the generations' back (the ferry.inject test hook: the
 * verifier must find it). Returns 0, or -errno with nothing left running
 * or mapped. The workers run until workload_stop() or the process ends;
 * wl must stay where it is meanwhile (they point to it). */
int workload_start(struct workload *wl, uint64_t ws_mib, uint64_t rate_mib,
		   const cpu_set_t *cpus, uint64_t inject_after_ns);

/* Stops the workers (each within 10 ms), unmaps and frees; *wl is then
 * empty (no working set). After workload_start, successful or not.
 * Returns the corrupt pages found, every worker's last check included. */
uint64_t workload_stop(struct workload *wl);

/* Sums of every worker's counters (0 without a working set). */
void workload_totals(const struct workload *wl, uint64_t *verified,
		     uint64_t *corrupt, uint64_t *written);

#endif
