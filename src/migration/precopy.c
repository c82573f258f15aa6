/* The pre-copy: RAM passes over the dirty bitmap, and the loop that runs
 * them until the policy says switch over (docs/migration-protocol.md,
 * "RAM passes"). */
#include <errno.h>
#include <linux/sockios.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "common/log.h"
#include "common/util.h"
#include "migration/channel_sock.h"
#include "migration/migrate_run.h"
#include "vm/vm.h"

#define CHUNK_WORDS 64u /* pages cleared and sent together: 4096 (16 MiB) */

/* ---- between records ---- */

/* The bandwidth limit: sleeps while this second's window is over it. */
static void rate_limit(struct mig_run *run, uint64_t max_bw)
{
	uint64_t now = time_now_ns(), allowed;

	if (now - run->window_t > 1000000000ull) { /* a fresh window each second */
		run->window_t = now;
		run->window_bytes = 0;
	}
	allowed = (now - run->window_t) * max_bw / 1000000000ull;
	if (run->window_bytes > allowed) {
		uint64_t ns = (run->window_bytes - allowed) * 1000000000ull / max_bw;
		struct timespec ts = { (time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull) };

		nanosleep(&ts, NULL);
	}
}

/* Between records: cancel, the guest stopping, a message from the
 * destination (only ever an ERROR before READY), and the bandwidth limit. */
static int between_records(struct mig_run *run, uint64_t max_bw)
{
	struct pollfd pfd = { .fd = run->fd, .events = POLLIN };

	if (mig_cancelled(run->m))
		return mig_run_fail(run, -ECANCELED, "cancelled");
	if (vm_stop_reason(run->vm) != VM_STOP_NONE)
		return mig_run_fail(run, -ECANCELED, "the guest stopped during the migration");
	if (poll(&pfd, 1, 0) == 1) {
		const uint8_t *p;
		size_t len;

		return mig_expect(run, REC_READY, &p, &len) ?: mig_run_fail(run, -EPROTO,
			"the destination said READY before the stream ended");
	}
	if (max_bw)
		rate_limit(run, max_bw);
	return 0;
}

/* After each RAM record: count it against the bandwidth limit, check. */
static int after_record(struct mig_run *run, uint64_t max_bw)
{
	struct migration *m = run->m;

	run->window_bytes += run->w.offset - run->last_offset;
	run->last_offset = run->w.offset;
	pthread_mutex_lock(&m->lock);
	m->stats.transferred = run->w.offset; /* query-migrate sees progress */
	m->stats.remaining = run->pass_budget - MIN(run->pass_budget, run->pass_done);
	pthread_mutex_unlock(&m->lock);
	return between_records(run, max_bw);
}

/* Waits until the destination has taken everything sent so far (the send
 * queue is empty: read, for a UNIX socket; acknowledged, for TCP, whose
 * receive buffer is kept small on the destination). A pass ends here, so
 * that its measured bandwidth is what arrived, not what was queued, and
 * the switch-over decision does not leave megabytes in flight. */
static int wait_drained(struct mig_run *run)
{
	uint64_t deadline = time_now_ns() + (uint64_t)MIG_IO_TIMEOUT_MS * 1000000ull;
	struct timespec ts = { 0, 100000 };
	int queued;

	while (ioctl(run->fd, SIOCOUTQ, &queued) == 0 && queued > 0) {
		if (mig_cancelled(run->m))
			return mig_run_fail(run, -ECANCELED, "cancelled");
		if (time_now_ns() > deadline)
			return mig_run_fail(run, -ETIMEDOUT, "the destination stopped reading");
		nanosleep(&ts, NULL);
	}
	return 0;
}

/* ---- one pass ---- */

/* One pass's progress through the bitmap. */
struct pass {
	struct mig_run *run;
	struct pass_figures *pf;
	bool bulk;
	uint64_t max_bw;
	unsigned inbatch; /* pages in the RAM record being filled */
};

/* Marks in mask (CHUNK_WORDS words) the pages of memfd pages [first,
 * first + 64 * n) that hold data (SEEK_DATA/SEEK_HOLE): never-touched RAM
 * is skipped without reading it. */
static void data_mask(const struct vm *vm, uint64_t first, uint64_t n, uint64_t *mask)
{
	uint64_t end = (first + 64 * n) * MIG_PAGE_SIZE, start, stop;

	memset(mask, 0, n * sizeof(uint64_t));
	for (uint64_t off = first * MIG_PAGE_SIZE; mem_next_data(&vm->mem, off, end, &start, &stop);
	     off = stop)
		for (uint64_t p = start / MIG_PAGE_SIZE; p < stop / MIG_PAGE_SIZE; p++)
			mask[(p - first) / 64] |= 1ull << (p % 64);
}

/* Adds memfd page idx to the RAM record being filled; sends it when full. */
static int send_page(struct pass *ps, uint64_t idx)
{
	struct mig_run *run = ps->run;
	const uint8_t *page = run->vm->mem.host + idx * MIG_PAGE_SIZE;
	bool zero = state_page_is_zero(page);
	int ret;

	run->pass_done += MIG_PAGE_SIZE;
	if (zero)
		ps->pf->zero++;
	else
		ps->pf->full++;
	if (zero && ps->bulk)
		return 0; /* the destination's RAM is zero already */
	ret = state_ram_batch_add(&run->w, run->batch, dirty_page_gpa(&run->dlog, idx), page, zero);
	if (ret) {
		mig_peer_error(run, ret, "sending RAM");
		return ret;
	}
	if (++ps->inbatch < RAM_MAX_BATCH)
		return 0;
	ps->inbatch = 0; /* the add sent a record */
	return after_record(run, ps->max_bw);
}

/* The dirty pages of bitmap words [cw, cw + n). */
static int send_chunk(struct pass *ps, uint64_t cw, uint64_t n)
{
	struct dirty_log *d = &ps->run->dlog;
	uint64_t mask[CHUNK_WORDS];
	int ret = 0;

	if (ps->bulk)
		data_mask(ps->run->vm, cw * 64, n, mask);
	for (uint64_t i = 0; i < n && !ret; i++) {
		uint64_t bits = d->bitmap[cw + i] & (ps->bulk ? mask[i] : ~0ull);

		if (ps->bulk)
			ps->pf->skipped += (uint64_t)__builtin_popcountll(d->bitmap[cw + i] & ~mask[i]);
		while (bits && !ret) {
			uint64_t idx = (cw + i) * 64 + (uint64_t)__builtin_ctzll(bits);

			bits &= bits - 1;
			if (idx >= d->pages)
				break;
			ret = send_page(ps, idx);
		}
	}
	return ret;
}

static bool chunk_dirty(const struct dirty_log *d, uint64_t cw, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		if (d->bitmap[cw + i])
			return true;
	return false;
}

/* bulk: the first pass, where the destination's RAM is all zeros — zero
 * and never-touched pages are left out; later passes send a zero page as
 * a flag, since the destination holds an older copy. rearm: clear each
 * chunk in KVM's log before reading it (not needed once the guest is
 * paused). */
int mig_send_pass(struct mig_run *run, bool bulk, bool rearm, struct pass_figures *pf)
{
	struct dirty_log *d = &run->dlog;
	struct pass ps = { .run = run, .pf = pf, .bulk = bulk,
			   .max_bw = mig_get_params(run->m).max_bandwidth };
	uint64_t words = (d->pages + 63) / 64, off0 = run->w.offset;
	int ret = 0;

	memset(pf, 0, sizeof(*pf));
	run->last_offset = run->w.offset;
	for (uint64_t cw = 0; cw < words && !ret; cw += CHUNK_WORDS) {
		uint64_t n = MIN(CHUNK_WORDS, words - cw);

		if (!chunk_dirty(d, cw, n))
			continue;
		if (rearm && (ret = dirty_log_clear(d, cw, n)))
			return mig_run_fail(run, ret, "re-arming dirty tracking: %s", strerror(-ret));
		ret = send_chunk(&ps, cw, n);
		if (ret && rearm) /* harvested but maybe not sent: next time */
			dirty_log_put_back(d, cw, words - cw);
	}
	if (!ret && ps.inbatch) {
		ret = state_ram_batch_flush(&run->w, run->batch);
		if (ret)
			mig_peer_error(run, ret, "sending RAM");
		else
			ret = after_record(run, ps.max_bw);
	}
	pf->bytes = run->w.offset - off0;
	return ret;
}

/* ---- the loop ---- */

struct round_report {
	const struct pass_figures *pf;
	uint64_t transferred, remaining, bw, dirty_pages_rate, expected, elapsed;
	unsigned pass, throttle;
	bool syncd;
	enum policy_rung rung;
};

static void apply_round(struct mig_stats *st, const void *arg)
{
	const struct round_report *r = arg;

	st->transferred = r->transferred;
	st->remaining = r->remaining;
	st->normal += r->pf->full;
	st->duplicate += r->pf->zero;
	st->skipped += r->pf->skipped;
	st->bandwidth_Bps = r->bw;
	st->mbps_x1000 = r->bw * 8 / 1000;
	st->dirty_pages_rate = r->dirty_pages_rate;
	st->dirty_sync_count += r->syncd;
	st->expected_downtime_ns = r->expected;
	st->total_ns = r->elapsed;
	st->pass = r->pass;
	st->throttle_pct = r->throttle;
	st->rung = r->rung;
}

/* The fixed part of the downtime, for the policy: what the last hand-over
 * in this process cost beyond its RAM, or, before any, the hand-shake's
 * measured round trip (at most 2 ms) plus 0.3 ms and a per-vCPU allowance
 * for saving, loading and restarting its state. */
static uint64_t fixed_cost(const struct mig_run *run, uint64_t rtt_ns)
{
	if (run->m->learned_fixed_ns)
		return run->m->learned_fixed_ns;
	/* The hand-shake's round trip includes the destination accepting
	 * its first connection: a ceiling on the link's, not its value. */
	return MIN(rtt_ns, 2000000ull) + 300000ull + (uint64_t)run->vm->ncpus * 250000ull;
}

static struct policy_params policy_params_now(struct migration *m)
{
	struct mig_params p = mig_get_params(m);

	return (struct policy_params){
		.downtime_limit_ns = p.downtime_limit_ms * 1000000ull,
		.auto_converge = p.auto_converge,
		.convergence_timeout_ns = p.convergence_timeout_s * 1000000000ull,
		.final_action = p.final_action,
	};
}

/* What the policy is told of a pass that sent pf in round_ns and left
 * dirty pages, dirtied over since_sync_ns. */
static struct policy_round round_figures(struct mig_run *run, unsigned pass,
					 const struct pass_figures *pf, uint64_t round_ns,
					 int64_t dirty, uint64_t since_sync_ns, uint64_t rtt)
{
	struct policy_round pr = {
		.pass = pass,
		.elapsed_ns = mig_elapsed(run),
		.remaining_bytes = (uint64_t)dirty * MIG_PAGE_SIZE,
		.bandwidth_Bps = pf->bytes * 1000000000ull / round_ns,
		.dirty_rate_Bps = (uint64_t)dirty * MIG_PAGE_SIZE * 1000000000ull /
				  MAX(since_sync_ns, 1u),
		.fixed_cost_ns = fixed_cost(run, rtt),
	};

	/* A pass of a few pages says little about the link: keep the better of
	 * this round's and the last one's. */
	if (pf->bytes < MiB(8)) {
		pthread_mutex_lock(&run->m->lock);
		pr.bandwidth_Bps = MAX(pr.bandwidth_Bps, run->m->stats.bandwidth_Bps);
		pthread_mutex_unlock(&run->m->lock);
	}
	return pr;
}

static void report_round(struct mig_run *run, const struct pass_figures *pf,
			 const struct policy_round *pr, const struct policy_decision *dec,
			 uint64_t round_ns, int64_t dirty)
{
	struct round_report rep = {
		.pf = pf, .transferred = run->w.offset, .remaining = pr->remaining_bytes,
		.bw = pr->bandwidth_Bps, .dirty_pages_rate = pr->dirty_rate_Bps / MIG_PAGE_SIZE,
		.expected = dec->expected_downtime_ns, .elapsed = pr->elapsed_ns,
		.pass = pr->pass, .throttle = dec->throttle_pct, .syncd = true, .rung = dec->rung,
	};

	mig_stats_update(run->m, apply_round, &rep);
	log_debug("migration pass %u: %llu bytes in %llu ms (%llu MB/s), %lld dirty pages, "
		  "expected downtime %llu us -> %s",
		  pr->pass, (unsigned long long)pf->bytes, (unsigned long long)round_ns / 1000000,
		  (unsigned long long)pr->bandwidth_Bps / 1000000, (long long)dirty,
		  (unsigned long long)dec->expected_downtime_ns / 1000,
		  policy_action_name(dec->action));
}

static int64_t sync_log(struct mig_run *run)
{
	int64_t dirty = dirty_log_sync(&run->dlog);

	if (dirty < 0)
		mig_run_fail(run, (int)dirty, "reading the dirty log: %s", strerror((int)-dirty));
	return dirty;
}

/* One round: pass number pass over the *dirty pages found, then the
 * policy's decision (*dirty: what is dirty after it). */
static int precopy_round(struct mig_run *run, struct policy_state *ps, unsigned pass,
			 int64_t *dirty, uint64_t *t_sync, uint64_t rtt,
			 struct policy_decision *dec)
{
	struct migration *m = run->m;
	struct policy_params pp = policy_params_now(m);
	uint64_t t_send = time_now_ns(), round_ns;
	struct pass_figures pf;
	struct policy_round pr;
	int ret;

	run->pass_budget = pass == 1 ? run->data_bytes : (uint64_t)*dirty * MIG_PAGE_SIZE;
	run->pass_done = 0;
	pthread_mutex_lock(&m->lock);
	m->stats.pass = pass;
	mig_push_event_locked(m, true, pass);
	pthread_mutex_unlock(&m->lock);
	ret = mig_send_pass(run, pass == 1, true, &pf) ?: wait_drained(run);
	if (ret)
		return ret;
	round_ns = MAX(time_now_ns() - t_send, 1u);
	*dirty = sync_log(run);
	if (*dirty < 0)
		return (int)*dirty;
	pr = round_figures(run, pass, &pf, round_ns, *dirty, time_now_ns() - *t_sync, rtt);
	*t_sync = time_now_ns();
	*dec = policy_decide(&pp, ps, &pr);
	report_round(run, &pf, &pr, dec, round_ns, *dirty);
	return 0;
}

int mig_precopy(struct mig_run *run, uint64_t rtt, enum policy_rung *rung)
{
	struct policy_state ps = { 0 };
	struct policy_decision dec = { 0 };
	uint64_t t_sync = time_now_ns();
	int64_t dirty;
	int ret = dirty_log_start(&run->dlog, &run->vm->mem, run->vm->fd);

	if (ret)
		return mig_run_fail(run, ret, "cannot track dirty pages: %s", strerror(-ret));
	run->logging = true;
	/* Pass 1: everything (INITIALLY_SET: every bit is set). */
	dirty = sync_log(run);
	if (dirty < 0)
		return (int)dirty;
	for (unsigned pass = 1;; pass++) {
		ret = precopy_round(run, &ps, pass, &dirty, &t_sync, rtt, &dec);
		if (ret)
			return ret;
		switch (dec.action) {
		case POLICY_CONTINUE:
			break;
		case POLICY_THROTTLE:
			vm_set_throttle(run->vm, dec.throttle_pct);
			break;
		case POLICY_SWITCHOVER:
		case POLICY_SUSPEND:
			*rung = dec.rung;
			return 0;
		case POLICY_ABORT:
			return mig_run_fail(run, -ETIMEDOUT, "the migration did not converge (%s): "
					    "%llu bytes still dirty after pass %u; aborted "
					    "(convergence-timeout-action is abort)",
					    policy_rung_name(dec.rung),
					    (unsigned long long)dirty * MIG_PAGE_SIZE, pass);
		}
	}
}
