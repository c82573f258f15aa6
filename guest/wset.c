/* The integrity workload; see wset.h. Ring 3 only: compiled with SSE2 so
 * the page loops vectorise. */
#include "wset.h"
#include "lib.h"
#include "bootinfo.h"
#include "console.h"
#include "user.h"

#define LOG_PER_SEC     5

struct wset_stats wset_stats[MAX_CPUS];

u64 muldiv(u64 a, u64 b, u64 c)
{
	return (a / c) * b + (a % c) * b / c;
}

static u64 *page_ptr(const struct wset *ws, u64 page)
{
	return (u64 *)(ws->base + page * PAGE_SIZE);
}

static void report(struct wset_worker *w, u64 page, u32 gen)
{
	u64 now = now_tsc();

	w->st->corrupt++;
	if (now - w->log_window > boot.tsc_khz * 1000) {
		w->log_window = now;
		w->log_lines = 0;
	}
	if (w->log_lines++ < LOG_PER_SEC)
		console_printf("ferry-agent CORRUPT page=%lu gen=%u\n", page, gen);
}

/* Check a page against its generation; a bad page is reported once and
 * rewritten with the expected content so it is not counted again. */
static void verify_page(struct wset_worker *w, u64 page)
{
	u32 gen = w->ws->gen[page];
	u64 seed;

	if (!gen)
		return;
	seed = pattern_seed(page, gen);
	w->st->verified++;
	if (!pattern_ok(page_ptr(w->ws, page), seed)) {
		report(w, page, gen);
		pattern_fill(page_ptr(w->ws, page), seed);
	}
}

static void write_page(struct wset_worker *w, u64 page)
{
	u32 gen = w->ws->gen[page] + 1;

	verify_page(w, page);
	if (!gen)
		gen = 1;
	pattern_fill(page_ptr(w->ws, page), pattern_seed(page, gen));
	w->ws->gen[page] = gen;
	w->st->written++;
}

void wset_worker_init(struct wset_worker *w, const struct wset *ws, u32 cpu,
		      u32 ncpus, u64 rate_mib, u64 t0)
{
	u64 total_pps = rate_mib * (MiB / PAGE_SIZE);

	*w = (struct wset_worker){ .ws = ws, .st = &wset_stats[cpu], .cpu = cpu,
				   .t0 = t0 };
	w->lo = ws->pages * cpu / ncpus;
	w->hi = ws->pages * (cpu + 1) / ncpus;
	w->wcur = w->vcur = w->lo;
	/* Shares of the total that add up to it exactly. */
	w->wrate = total_pps * (cpu + 1) / ncpus - total_pps * cpu / ncpus;
	if (!rate_mib) {
		w->fill_once = true;
		w->wrate = 16384;       /* 64 MiB/s per CPU for the one fill */
	}
	w->vrate = (w->hi - w->lo) * 2 / 3 + 1;
	for (u64 p = w->lo; p < w->hi; p++)
		ws->gen[p] = 0;
}

/* How many of a schedule's pages are due now; drops a backlog over 1 s. */
static u64 due(u64 *done, u64 rate, u64 elapsed)
{
	u64 target = muldiv(elapsed, rate, boot.tsc_khz * 1000);

	if (target - *done > rate)
		*done = target - rate;
	return target - *done;
}

void wset_worker_tick(struct wset_worker *w, u64 now)
{
	u64 elapsed = now - w->t0, n;

	if (w->hi == w->lo)
		return;
	if (!(w->fill_once && w->filled >= w->hi - w->lo)) {
		for (n = due(&w->wdone, w->wrate, elapsed); n; n--) {
			if (w->fill_once && w->filled++ >= w->hi - w->lo)
				break;
			write_page(w, w->wcur);
			w->wdone++;
			if (++w->wcur == w->hi)
				w->wcur = w->lo;
		}
	}
	for (n = due(&w->vdone, w->vrate, elapsed); n; n--) {
		verify_page(w, w->vcur);
		w->vdone++;
		if (++w->vcur == w->hi)
			w->vcur = w->lo;
	}
}

bool wset_inject(struct wset_worker *w)
{
	for (u64 p = w->lo; p < w->hi; p++) {
		if (w->ws->gen[p]) {
			page_ptr(w->ws, p)[7] ^= 1;
			return true;
		}
	}
	return false;
}

u64 prng_fill(u64 *p, u64 words)
{
	u64 x = 0x2545f4914f6cdd1dULL;

	for (u64 i = 0; i < words; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = x;
	}
	return prng_checksum(p, words);
}

/* FNV-1a over 64-bit words. */
u64 prng_checksum(const u64 *p, u64 words)
{
	u64 h = 0xcbf29ce484222325ULL;

	for (u64 i = 0; i < words; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}
