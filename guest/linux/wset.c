/* The integrity workload; see wset.h. */
#include "wset.h"
#include "console.h"
#include "pattern.h"
#include "system.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define PAGE_BYTES      4096ULL
#define MIB             (1024ULL * 1024)
#define NS_PER_SEC      1000000000ULL
#define TICK_NS         (10 * 1000000ULL)
#define FILL_ONCE_PPS   16384   /* 64 MiB/s a worker for RATE 0 */
#define LOG_PER_SEC     5

static uint64_t *page_ptr(const struct workload *wl, uint64_t page)
{
	return (uint64_t *)(wl->base + page * PAGE_BYTES);
}

static void report(struct wset_worker *w, uint64_t page, uint32_t gen)
{
	uint64_t now = boottime_ns();

	atomic_fetch_add_explicit(&w->st.corrupt, 1, memory_order_relaxed);
	if (now - w->log_window > NS_PER_SEC) {
		w->log_window = now;
		w->log_lines = 0;
	}
	if (w->log_lines++ < LOG_PER_SEC)
		say("CORRUPT page=%lu gen=%u", (unsigned long)page, gen);
}

/* Checks a page against its generation; a bad page is reported and
 * rewritten with the expected content, so it is counted once. */
static void verify_page(struct wset_worker *w, uint64_t page)
{
	uint32_t gen = w->wl->gen[page];
	uint64_t seed;

	if (!gen)
		return;
	seed = pattern_seed(page, gen);
	atomic_fetch_add_explicit(&w->st.verified, 1, memory_order_relaxed);
	if (!pattern_ok(page_ptr(w->wl, page), seed)) {
		report(w, page, gen);
		pattern_fill(page_ptr(w->wl, page), seed);
	}
}

static void write_page(struct wset_worker *w, uint64_t page)
{
	uint32_t gen = w->wl->gen[page] + 1;

	verify_page(w, page);
	if (!gen)
		gen = 1;
	pattern_fill(page_ptr(w->wl, page), pattern_seed(page, gen));
	w->wl->gen[page] = gen;
	atomic_fetch_add_explicit(&w->st.written, 1, memory_order_relaxed);
}

/* At most `chunk` of the pages due to be written by `elapsed`; how many
 * were written. */
static uint64_t dirty_due(struct wset_worker *w, uint64_t elapsed, uint64_t chunk)
{
	uint64_t n, k;

	if (w->hi == w->lo || (w->fill_once && w->filled >= w->hi - w->lo))
		return 0;       /* more workers than pages: this one has none */
	n = rate_due(&w->wdone, w->wrate, 1, elapsed);
	for (k = 0; k < n && k < chunk; k++) {
		if (w->fill_once && w->filled++ >= w->hi - w->lo)
			break;
		write_page(w, w->wcur);
		w->wdone++;
		if (++w->wcur == w->hi)
			w->wcur = w->lo;
	}
	return k;
}

/* The same for the pages due to be verified. */
static uint64_t sweep_due(struct wset_worker *w, uint64_t elapsed, uint64_t chunk)
{
	uint64_t n, k;

	if (w->hi == w->lo)
		return 0;
	n = rate_due(&w->vdone, w->vrate, 1, elapsed);
	for (k = 0; k < n && k < chunk; k++) {
		verify_page(w, w->vcur);
		w->vdone++;
		if (++w->vcur == w->hi)
			w->vcur = w->lo;
	}
	return k;
}

/* What is due now, writes and verifies in turns of CHUNK pages, for at
 * most a tick: a worker that falls behind (a slow or busy CPU; up to a
 * second's worth is owed) goes on with both, the writes at their rate
 * while it can, instead of doing nothing but one of them for as long as
 * the other's debt takes. */
#define CHUNK 64

static void work_due(struct wset_worker *w)
{
	uint64_t start = boottime_ns(), now = start, done;

	do {
		done = dirty_due(w, now - w->wl->t0_ns, CHUNK);
		done += sweep_due(w, now - w->wl->t0_ns, CHUNK);
		now = boottime_ns();
	} while (done && now - start < TICK_NS && !atomic_load(&w->wl->stop));
}

/* ferry.inject: flips one bit of the first written page of the slice,
 * behind its generation's back. */
static void inject(struct wset_worker *w)
{
	uint64_t p = w->lo;

	while (p < w->hi && !w->wl->gen[p])
		p++;
	if (p < w->hi)
		page_ptr(w->wl, p)[7] ^= 1;
	say("inject page=%d", p < w->hi);
}

/* Workers yield to the rest of the agent: a working set that takes a
 * whole CPU (a high rate on a slow, emulated one) must not hold back the
 * heartbeat, the disk writer or the pings. Nice 10 (Linux's nice is per
 * thread). */
#define WORKER_NICE 10

static void *worker_main(void *arg)
{
	struct wset_worker *w = arg;
	uint64_t tick = w->wl->t0_ns;
	bool inject_due = w->index == 0 && w->wl->inject_ns != UINT64_MAX;

	if (setpriority(PRIO_PROCESS, (id_t)gettid(), WORKER_NICE))
		say("warning: worker %u: setpriority: %s", w->index, strerror(errno));

	while (!atomic_load(&w->wl->stop)) {
		uint64_t now = boottime_ns();

		if (now >= tick) {
			work_due(w);
			tick += TICK_NS;
			if (tick <= now)        /* absolute grid, missed slots skipped */
				tick += ((now - tick) / TICK_NS + 1) * TICK_NS;
		}
		if (inject_due && now >= w->wl->inject_ns) {
			inject(w);
			inject_due = false;
		}
		sleep_until_ns(inject_due && w->wl->inject_ns < tick ? w->wl->inject_ns : tick);
	}
	return NULL;
}

/* Worker k's slice and its exact share of the total rate. */
static void worker_init(struct workload *wl, uint32_t k, int cpu, uint64_t rate_mib)
{
	struct wset_worker *w = &wl->workers[k];
	uint64_t total_pps = rate_mib * (MIB / PAGE_BYTES), n = wl->nworkers;

	w->wl = wl;
	w->index = k;
	w->cpu = cpu;
	w->lo = wl->pages * k / n;
	w->hi = wl->pages * (k + 1) / n;
	w->wcur = w->vcur = w->lo;
	w->wrate = total_pps * (k + 1) / n - total_pps * k / n;
	if (!rate_mib) {
		w->fill_once = true;
		w->wrate = FILL_ONCE_PPS;
	}
	w->vrate = (w->hi - w->lo) * 2 / 3 + 1;
}

/* Stops the first `started` workers (each within a tick) and unmaps. */
static void workload_stop_n(struct workload *wl, uint32_t started)
{
	atomic_store(&wl->stop, true);
	for (uint32_t k = 0; k < started; k++)
		pthread_join(wl->workers[k].thread, NULL);
	free(wl->workers);
	free(wl->gen);
	if (wl->base)
		munmap(wl->base, wl->pages * PAGE_BYTES);
	*wl = (struct workload){ 0 };
}

static int worker_spawn(struct wset_worker *w)
{
	pthread_attr_t attr;
	cpu_set_t one;
	int r;

	CPU_ZERO(&one);
	CPU_SET(w->cpu, &one);
	r = pthread_attr_init(&attr);
	if (r)
		return -r;
	r = pthread_attr_setaffinity_np(&attr, sizeof(one), &one);
	if (!r)
		r = pthread_create(&w->thread, &attr, worker_main, w);
	pthread_attr_destroy(&attr);
	return -r;
}

static int workload_map(struct workload *wl, uint64_t ws_mib, uint32_t nworkers)
{
	void *base;

	wl->pages = ws_mib * (MIB / PAGE_BYTES);
	wl->nworkers = nworkers;
	wl->gen = calloc(wl->pages, sizeof(*wl->gen));
	wl->workers = aligned_alloc(64, nworkers * sizeof(*wl->workers));
	if (!wl->gen || !wl->workers)
		return -ENOMEM;
	memset(wl->workers, 0, nworkers * sizeof(*wl->workers));
	base = mmap(NULL, wl->pages * PAGE_BYTES, PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (base == MAP_FAILED)
		return -errno;
	wl->base = base;
	return 0;
}

int workload_start(struct workload *wl, uint64_t ws_mib, uint64_t rate_mib,
		   const cpu_set_t *cpus, uint64_t inject_after_ns)
{
	uint32_t k = 0;
	int r = 0;

	*wl = (struct workload){ .inject_ns = UINT64_MAX };
	if (ws_mib && !CPU_COUNT(cpus))
		return -EINVAL;
	if (ws_mib)
		r = workload_map(wl, ws_mib, (uint32_t)CPU_COUNT(cpus));
	wl->t0_ns = boottime_ns();
	if (inject_after_ns != UINT64_MAX)
		wl->inject_ns = wl->t0_ns + inject_after_ns;
	for (int cpu = 0; !r && k < wl->nworkers && cpu < CPU_SETSIZE; cpu++) {
		if (!CPU_ISSET(cpu, cpus))
			continue;
		worker_init(wl, k, cpu, rate_mib);
		r = worker_spawn(&wl->workers[k]);
		k += !r;
	}
	if (r)
		workload_stop_n(wl, k);
	return r;
}

uint64_t workload_stop(struct workload *wl)
{
	uint64_t v, c, w;

	atomic_store(&wl->stop, true);
	for (uint32_t k = 0; k < wl->nworkers; k++)
		pthread_join(wl->workers[k].thread, NULL);
	workload_totals(wl, &v, &c, &w);
	workload_stop_n(wl, 0);         /* joined already */
	return c;
}

void workload_totals(const struct workload *wl, uint64_t *verified,
		     uint64_t *corrupt, uint64_t *written)
{
	*verified = *corrupt = *written = 0;
	for (uint32_t k = 0; k < wl->nworkers; k++) {
		const struct wset_stats *st = &wl->workers[k].st;

		*verified += atomic_load_explicit(&st->verified, memory_order_relaxed);
		*corrupt += atomic_load_explicit(&st->corrupt, memory_order_relaxed);
		*written += atomic_load_explicit(&st->written, memory_order_relaxed);
	}
}
