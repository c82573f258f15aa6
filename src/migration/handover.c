/* The hand-over (docs/migration-protocol.md, "Hand-over"), as named steps:
 * pause, the last RAM, the vCPU and device state, await READY (and check
 * the RAM hash), GO — the point of no return — and await STARTED. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "migration/migrate_run.h"
#include "vm/vm.h"

/* The pause, the throttle off, and the disks flushed: with shared storage
 * the destination reads them after GO, so they are durable first. */
static int pause_and_flush(struct mig_run *run, bool live, struct mig_stats *parts)
{
	int ret;

	if (live)
		mig_pause_vm(run, &parts->pause_ns);
	vm_set_throttle(run->vm, 0);
	mig_set_status(run->m, MIG_DEVICE);
	ret = vm_flush_devices(run->vm);
	if (ret)
		return mig_run_fail(run, ret, "flushing the disks: %s", strerror(-ret));
	mig_test_delay("FERRY_TEST_DEVICE_DELAY_MS");
	return 0;
}

/* The last RAM: what the guest dirtied since the last harvest (live), or
 * all of it (non-live: the bitmap has every bit set). */
static int send_final_ram(struct mig_run *run, bool live, struct mig_stats *parts)
{
	uint64_t t = time_now_ns();
	struct pass_figures pf;
	int ret;

	if (live) {
		int64_t dirty = dirty_log_sync(&run->dlog);

		if (dirty < 0)
			return mig_run_fail(run, (int)dirty, "reading the dirty log: %s",
					    strerror((int)-dirty));
		parts->dirty_sync_count = 1;
		run->pass_budget = (uint64_t)dirty * MIG_PAGE_SIZE;
	} else {
		run->pass_budget = run->data_bytes;
	}
	run->pass_done = 0;
	ret = mig_send_pass(run, !live, false, &pf);
	if (ret)
		return ret;
	parts->final_ram_bytes = pf.bytes;
	parts->normal = pf.full;
	parts->duplicate = pf.zero;
	parts->final_ram_ns = time_now_ns() - t;
	return 0;
}

/* Devices, vCPUs, clock and END; the source's RAM hash when asked for. */
static int send_state(struct mig_run *run, struct mig_stats *parts)
{
	uint64_t t = time_now_ns();
	int ret = state_write_final(run->vm, &run->w);

	if (ret) {
		mig_peer_error(run, ret, "sending the vCPU and device state");
		return ret;
	}
	parts->device_ns = time_now_ns() - t;
	if (run->m->ram_hash) {
		parts->src_hash = state_ram_hash(run->vm);
		parts->have_hash = true;
		log_info("ram-hash=%08x (source, paused)", parts->src_hash);
	}
	return 0;
}

/* READY: the destination loaded and checked everything. */
static int await_ready(struct mig_run *run, struct mig_stats *parts)
{
	uint64_t t = time_now_ns();
	const uint8_t *p;
	size_t len;
	int ret = mig_expect(run, REC_READY, &p, &len);

	if (ret)
		return ret;
	parts->dest_load_ns = time_now_ns() - t;
	if (!run->m->ram_hash)
		return 0;
	if (len < 8 || !(get_le32(p) & MIG_HELLO_RAM_HASH))
		return mig_run_fail(run, -EPROTO, "the destination sent no RAM hash");
	parts->dst_hash = get_le32(p + 4);
	if (parts->dst_hash != parts->src_hash)
		return mig_run_fail(run, -EIO, "guest RAM differs on the destination (hash %08x "
				    "here, %08x there); the guest runs on here",
				    parts->src_hash, parts->dst_hash);
	return 0;
}

/* GO, the point of no return. Cancelled until here: the source resumes.
 * Sets m->go_sent while GO may have reached the destination; *t_go: when
 * it was written. */
static int send_go(struct mig_run *run, uint64_t *t_go)
{
	struct migration *m = run->m;
	struct pollfd pfd = { .fd = run->fd, .events = POLLIN | POLLRDHUP };
	uint8_t go[8];
	int ret;

	mig_test_delay("FERRY_TEST_GO_DELAY_MS");
	/* After READY the destination only waits for GO: anything to read, or
	 * a hang-up, means it went away — and it starts nothing without a
	 * whole GO, so the guest is still only here. */
	if (poll(&pfd, 1, 0) != 0)
		return mig_run_fail(run, -EPIPE, "the destination went away after READY");
	pthread_mutex_lock(&m->lock);
	if (m->cancel) {
		pthread_mutex_unlock(&m->lock);
		return mig_run_fail(run, -ECANCELED, "cancelled");
	}
	m->go_sent = true;
	pthread_mutex_unlock(&m->lock);
	put_le64(go, m->was_running ? MIG_GO_RUN : 0);
	*t_go = time_now_ns();
	ret = stream_write_record(&run->w, REC_GO, go, sizeof(go));
	if (ret) {
		/* Not written: a destination starts only on a whole, checked
		 * GO, so none did. The guest may resume here. */
		pthread_mutex_lock(&m->lock);
		m->go_sent = false;
		pthread_mutex_unlock(&m->lock);
		return mig_run_fail(run, ret, "sending GO: %s (the destination did not get it)",
				    strerror(-ret));
	}
	return 0;
}

static void record_parts(struct mig_stats *st, const void *arg)
{
	const struct mig_stats *src = arg;

	st->pause_ns = src->pause_ns;
	st->final_ram_ns = src->final_ram_ns;
	st->device_ns = src->device_ns;
	st->dest_load_ns = src->dest_load_ns;
	st->start_ns = src->start_ns;
	st->final_ram_bytes = src->final_ram_bytes;
	st->downtime_ns = src->downtime_ns;
	st->total_ns = src->total_ns;
	st->transferred = src->transferred;
	st->remaining = 0;
	st->have_hash = src->have_hash;
	st->src_hash = src->src_hash;
	st->dst_hash = src->dst_hash;
	st->rung = src->rung;
	st->rung_known = true;
	st->throttle_pct = 0;
	st->normal += src->normal;
	st->duplicate += src->duplicate;
	st->dirty_sync_count += src->dirty_sync_count;
}

static void log_completed(const struct mig_stats *parts)
{
	log_info("migration completed: %llu bytes in %llu ms, downtime %llu us (pause %llu, "
		 "last RAM %llu for %llu bytes, state %llu, destination load %llu, start %llu), %s",
		 (unsigned long long)parts->transferred,
		 (unsigned long long)parts->total_ns / 1000000,
		 (unsigned long long)parts->downtime_ns / 1000,
		 (unsigned long long)parts->pause_ns / 1000,
		 (unsigned long long)parts->final_ram_ns / 1000,
		 (unsigned long long)parts->final_ram_bytes,
		 (unsigned long long)parts->device_ns / 1000,
		 (unsigned long long)parts->dest_load_ns / 1000,
		 (unsigned long long)parts->start_ns / 1000, policy_rung_name(parts->rung));
}

int mig_handover(struct mig_run *run, enum policy_rung rung, bool live)
{
	struct migration *m = run->m;
	struct mig_stats parts = { .rung = rung };
	uint64_t t_pause = time_now_ns(), t = 0;
	const uint8_t *p;
	size_t len;
	int ret;

	ret = pause_and_flush(run, live, &parts) ?: send_final_ram(run, live, &parts) ?:
	      send_state(run, &parts) ?: await_ready(run, &parts);
	if (ret)
		return ret;
	ret = send_go(run, &t);
	if (ret)
		return ret;
	ret = mig_expect(run, REC_STARTED, &p, &len);
	if (ret)
		return ret;
	parts.start_ns = time_now_ns() - t;
	parts.downtime_ns = time_now_ns() - t_pause;
	parts.total_ns = mig_elapsed(run);
	parts.transferred = run->w.offset;
	m->learned_fixed_ns = parts.pause_ns + parts.device_ns + parts.dest_load_ns +
			      parts.start_ns;
	mig_stats_update(m, record_parts, &parts);
	log_completed(&parts);
	return 0;
}
