/*
 * The integrity workload (ring 3): the dirtied working set and the PRNG
 * region.
 *
 * Working set: pages of 4 KiB; page p at generation g holds word i =
 * seed(p, g) + i * K. gen[p] is the generation last written (0 = never,
 * not checked). Each CPU owns a contiguous slice of pages, so no two CPUs
 * touch the same page or gen entry. Every write first verifies the page;
 * a background sweep re-verifies every page about every 1.5 s.
 */
#ifndef FERRY_GUEST_WSET_H
#define FERRY_GUEST_WSET_H

#include "types.h"

struct wset {
	u8 *base;               /* pages, 4 KiB aligned */
	u64 pages;
	u32 *gen;               /* one per page */
};

/* Per-CPU counters, summed by CPU 0 for the heartbeat. */
struct wset_stats {
	volatile u64 verified;  /* page checks done */
	volatile u64 corrupt;   /* mismatches found */
	volatile u64 written;   /* pages written */
} __attribute__((aligned(64)));

extern struct wset_stats wset_stats[MAX_CPUS];

struct wset_worker {
	const struct wset *ws;
	struct wset_stats *st;
	u32 cpu;
	u64 lo, hi;             /* owned pages [lo, hi) */
	u64 wcur, vcur;         /* next page to write / to sweep */
	u64 t0;                 /* TSC origin of the schedules */
	u64 wrate, vrate;       /* pages per second */
	u64 wdone, vdone;       /* pages done since t0 (incl. skipped) */
	bool fill_once;         /* RATE 0: write each page once, then stop */
	u64 filled;             /* pages written so far, for fill_once */
	u64 log_window;         /* CORRUPT line rate limit */
	u32 log_lines;
};

/* Set up this CPU's share: pages of the slice, its part of rate_mib (the
 * shares add up exactly), gen[] of the slice zeroed. Ring 3, the CPU itself. */
void wset_worker_init(struct wset_worker *w, const struct wset *ws, u32 cpu,
		      u32 ncpus, u64 rate_mib, u64 t0);

/* Do the writes and sweep checks due by now (time-based, so the long-run
 * rate is exact; a backlog over 1 s, e.g. after the VM was paused, is
 * dropped rather than caught up). */
void wset_worker_tick(struct wset_worker *w, u64 now);

/* Test hook: flip one bit of the first written page of this CPU's slice,
 * behind the generation's back; false if no page was written yet. */
bool wset_inject(struct wset_worker *w);

/* PRNG region: fill from xorshift64 with a fixed seed and return its
 * checksum; prng_checksum() recomputes it. */
u64 prng_fill(u64 *p, u64 words);
u64 prng_checksum(const u64 *p, u64 words);

/* a * b / c without overflow for b * c < 2^64. */
u64 muldiv(u64 a, u64 b, u64 c);

#endif
