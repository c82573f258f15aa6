#include "migration/migrate.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "migration/channel_sock.h"
#include "migration/dirty.h"
#include "migration/state.h"
#include "migration/stream.h"
#include "vm/vm.h"

#define PAGE_SIZE 4096u
#define CHUNK_WORDS 64u /* pages cleared and sent together: 4096 (16 MiB) */
#define CONNECT_TIMEOUT_MS 10000

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

/* Test hooks (tests/e2e/test_migrate.py): a delay, in ms, at a named point
 * of the migration, so that a test can hit a window reliably. Read from
 * the environment; 0 when unset. */
static void test_delay(const char *name)
{
	const char *v = getenv(name);
	uint64_t ms;

	if (v && parse_u64(v, &ms) == 0 && ms > 0 && ms < 600000) {
		struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

		log_info("test hook %s: waiting %llu ms", name, (unsigned long long)ms);
		nanosleep(&ts, NULL);
	}
}

/* Learned from this process's previous hand-over (0: none yet). */
static uint64_t learned_fixed_ns;

const char *migration_status_name(enum mig_status s)
{
	static const char *const names[] = {
		[MIG_NONE] = "none",           [MIG_SETUP] = "setup",
		[MIG_ACTIVE] = "active",       [MIG_DEVICE] = "device",
		[MIG_COMPLETED] = "completed", [MIG_FAILED] = "failed",
		[MIG_CANCELLING] = "cancelling", [MIG_CANCELLED] = "cancelled",
	};

	return (unsigned)s < ARRAY_SIZE(names) ? names[s] : "unknown";
}

void migration_init(struct migration *m, struct vm *vm)
{
	memset(m, 0, sizeof(*m));
	m->vm = vm;
	m->sock = -1;
	pthread_mutex_init(&m->lock, NULL);
	m->params = (struct mig_params){
		.downtime_limit_ms = MIG_DEFAULT_DOWNTIME_MS,
		.auto_converge = true,
		.final_action = POLICY_FINAL_SUSPEND,
	};
}

/* ---- shared state, under m->lock ---- */

static void push_event_locked(struct migration *m, bool pass, unsigned value)
{
	uint64_t one = 1;

	if (m->nevents < MIG_MAX_EVENTS)
		m->events[m->nevents++] = (struct mig_event){ pass, value };
	/* Wake the main loop, which emits them. */
	if (write(m->vm->event_fd, &one, sizeof(one)) < 0)
		(void)0;
}

static void set_status(struct migration *m, enum mig_status s)
{
	pthread_mutex_lock(&m->lock);
	m->status = s;
	push_event_locked(m, false, s);
	pthread_mutex_unlock(&m->lock);
}

static bool cancelled(struct migration *m)
{
	return __atomic_load_n(&m->cancel, __ATOMIC_ACQUIRE);
}

static struct mig_params get_params(struct migration *m)
{
	struct mig_params p;

	pthread_mutex_lock(&m->lock);
	p = m->params;
	pthread_mutex_unlock(&m->lock);
	return p;
}

static int run_fail(struct mig_run *run, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int run_fail(struct mig_run *run, int err, const char *fmt, ...)
{
	va_list ap;

	if (run->err[0])
		return err; /* the first reason stays */
	va_start(ap, fmt);
	vsnprintf(run->err, sizeof(run->err), fmt, ap);
	va_end(ap);
	return err;
}

static uint64_t elapsed(const struct mig_run *run)
{
	return time_now_ns() - run->t0;
}

/* ---- the channel ---- */

/* After a failed write or read: the destination may have said why before
 * it closed; that message beats "broken pipe". */
static void peer_error(struct mig_run *run, int err, const char *what)
{
	const uint8_t *p;
	uint32_t type;
	size_t len;

	if (cancelled(run->m)) {
		run_fail(run, -ECANCELED, "cancelled");
		return;
	}
	mig_set_timeouts(run->fd, 0, 1000);
	if (run->r.fd >= 0 && stream_read_record(&run->r, &type, &p, &len) == 0 && type == REC_ERROR) {
		const char *text;
		size_t n = stream_error_text(p, len, &text);

		if (n) {
			run_fail(run, -EPROTO, "the destination refused: %.*s", (int)MIN(n, 400u), text);
			return;
		}
	}
	run_fail(run, err, "%s: %s", what,
		 err == -EAGAIN ? "timed out" : err == -EPIPE ? "the destination went away"
		 : strerror(-err));
}

/* Reads the next message from the destination, which must be want. */
static int expect(struct mig_run *run, uint32_t want, const uint8_t **p, size_t *len)
{
	uint32_t type;
	int ret = stream_read_record(&run->r, &type, p, len);

	if (ret) {
		if (cancelled(run->m))
			return run_fail(run, -ECANCELED, "cancelled");
		return run_fail(run, ret, "waiting for %s from the destination: %s",
				stream_rec_name(want),
				strstr(run->r.error, "Resource temporarily") ? "timed out"
				: strstr(run->r.error, "truncated") ||
				  strstr(run->r.error, "Connection reset")
				? "the destination closed the connection" : run->r.error);
	}
	if (type == REC_ERROR) {
		const char *text;
		size_t n = stream_error_text(*p, *len, &text);

		return run_fail(run, -EPROTO, "the destination refused: %.*s", (int)MIN(n, 400u),
				text);
	}
	if (type != want)
		return run_fail(run, -EPROTO, "the destination sent %s where %s was due",
				stream_rec_name(type), stream_rec_name(want));
	return 0;
}

/* Between records: cancel, the guest stopping, a message from the
 * destination (only ever an ERROR before READY), and the bandwidth limit. */
static int between_records(struct mig_run *run, uint64_t max_bw)
{
	struct pollfd pfd = { .fd = run->fd, .events = POLLIN };

	if (cancelled(run->m))
		return run_fail(run, -ECANCELED, "cancelled");
	if (vm_stop_reason(run->vm) != VM_STOP_NONE)
		return run_fail(run, -ECANCELED, "the guest stopped during the migration");
	if (poll(&pfd, 1, 0) == 1) {
		const uint8_t *p;
		size_t len;

		return expect(run, REC_READY, &p, &len) ?: run_fail(run, -EPROTO,
			"the destination said READY before the stream ended");
	}
	if (max_bw) {
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
	return 0;
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
		if (cancelled(run->m))
			return run_fail(run, -ECANCELED, "cancelled");
		if (time_now_ns() > deadline)
			return run_fail(run, -ETIMEDOUT, "the destination stopped reading");
		nanosleep(&ts, NULL);
	}
	return 0;
}

/* ---- RAM passes ---- */

struct pass_figures {
	uint64_t bytes, full, zero, skipped;
};

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

/* Marks in mask (CHUNK_WORDS words) the pages of memfd pages [first,
 * first + 64 * n) that hold data (SEEK_DATA/SEEK_HOLE): never-touched RAM
 * is skipped without reading it. */
static void data_mask(const struct vm *vm, uint64_t first, uint64_t n, uint64_t *mask)
{
	uint64_t end = (first + 64 * n) * PAGE_SIZE, start, stop;

	memset(mask, 0, n * sizeof(uint64_t));
	for (uint64_t off = first * PAGE_SIZE; mem_next_data(&vm->mem, off, end, &start, &stop);
	     off = stop)
		for (uint64_t p = start / PAGE_SIZE; p < stop / PAGE_SIZE; p++)
			mask[(p - first) / 64] |= 1ull << (p % 64);
}

/* Sends every page whose bit is set in the dirty bitmap. bulk: the first
 * pass, where the destination's RAM is all zeros — zero and never-touched
 * pages are left out; later passes send a zero page as a flag, since the
 * destination holds an older copy. rearm: clear each chunk in KVM's log
 * before reading it (not needed once the guest is paused). */
static int send_pass(struct mig_run *run, bool bulk, bool rearm, struct pass_figures *pf)
{
	struct dirty_log *d = &run->dlog;
	uint64_t words = (d->pages + 63) / 64;
	uint64_t mask[CHUNK_WORDS];
	uint64_t max_bw = get_params(run->m).max_bandwidth;
	int ret = 0;

	uint64_t off0 = run->w.offset;
	unsigned inbatch = 0;

	memset(pf, 0, sizeof(*pf));
	run->last_offset = run->w.offset;
	for (uint64_t cw = 0; cw < words && !ret; cw += CHUNK_WORDS) {
		uint64_t n = MIN(CHUNK_WORDS, words - cw);
		bool any = false;

		for (uint64_t i = 0; i < n; i++)
			any |= d->bitmap[cw + i] != 0;
		if (!any)
			continue;
		if (rearm && (ret = dirty_log_clear(d, cw, n)))
			return run_fail(run, ret, "re-arming dirty tracking: %s", strerror(-ret));
		if (bulk)
			data_mask(run->vm, cw * 64, n, mask);
		for (uint64_t i = 0; i < n && !ret; i++) {
			uint64_t bits = d->bitmap[cw + i] & (bulk ? mask[i] : ~0ull);

			if (bulk)
				pf->skipped += (uint64_t)__builtin_popcountll(d->bitmap[cw + i] & ~mask[i]);
			while (bits && !ret) {
				uint64_t idx = (cw + i) * 64 + (uint64_t)__builtin_ctzll(bits);
				const uint8_t *page = run->vm->mem.host + idx * PAGE_SIZE;
				bool zero;

				bits &= bits - 1;
				if (idx >= d->pages)
					break;
				run->pass_done += PAGE_SIZE;
				zero = state_page_is_zero(page);
				if (zero) {
					pf->zero++;
					if (bulk)
						continue;
				} else {
					pf->full++;
				}
				ret = state_ram_batch_add(&run->w, run->batch, dirty_page_gpa(d, idx),
							  page, zero);
				if (ret)
					peer_error(run, ret, "sending RAM");
				else if (++inbatch == RAM_MAX_BATCH) { /* the add sent a record */
					inbatch = 0;
					ret = after_record(run, max_bw);
				}
			}
		}
		if (ret && rearm) /* harvested but maybe not sent: next time */
			dirty_log_put_back(d, cw, words - cw);
	}
	if (!ret && inbatch) {
		ret = state_ram_batch_flush(&run->w, run->batch);
		if (ret)
			peer_error(run, ret, "sending RAM");
		else
			ret = after_record(run, max_bw);
	}
	pf->bytes = run->w.offset - off0;
	return ret;
}

/* ---- the migration thread ---- */

static void stats_update(struct migration *m, void (*fn)(struct mig_stats *, const void *),
			 const void *arg)
{
	pthread_mutex_lock(&m->lock);
	fn(&m->stats, arg);
	pthread_mutex_unlock(&m->lock);
}

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
static uint64_t fixed_cost(const struct vm *vm, uint64_t rtt_ns)
{
	if (learned_fixed_ns)
		return learned_fixed_ns;
	/* The hand-shake's round trip includes the destination accepting
	 * its first connection: a ceiling on the link's, not its value. */
	return MIN(rtt_ns, 2000000ull) + 300000ull + (uint64_t)vm->ncpus * 250000ull;
}

static int send_hello(struct mig_run *run, const char *token, bool ram_hash)
{
	struct buf b = { 0 };
	size_t tlen = token ? strlen(token) : 0;
	int ret;

	buf_put_u32(&b, MIG_PROTOCOL_VERSION);
	buf_put_u32(&b, ram_hash ? MIG_HELLO_RAM_HASH : 0);
	buf_put_u32(&b, (uint32_t)tlen);
	buf_put(&b, token, tlen);
	ret = buf_finish(&b) ?: stream_write_record(&run->w, REC_HELLO, b.data, b.len);
	buf_free(&b);
	return ret;
}

/* Connects and shakes hands: HELLO (version, token) → WELCOME. */
static int handshake(struct mig_run *run, uint64_t *rtt)
{
	struct migration *m = run->m;
	struct mig_uri u;
	const uint8_t *p;
	size_t len;
	uint64_t t;
	int ret;

	if (mig_uri_parse(m->uri, &u, run->err, sizeof(run->err)))
		return -EINVAL;
	run->fd = mig_connect(&u, CONNECT_TIMEOUT_MS, run->err, sizeof(run->err));
	if (run->fd < 0)
		return -ECONNREFUSED;
	pthread_mutex_lock(&m->lock);
	m->sock = run->fd;
	pthread_mutex_unlock(&m->lock);
	if (cancelled(m))
		return run_fail(run, -ECANCELED, "cancelled");
	mig_set_timeouts(run->fd, MIG_IO_TIMEOUT_MS, MIG_IO_TIMEOUT_MS);
	t = time_now_ns();
	ret = stream_writer_start(&run->w, run->fd) ?: send_hello(run, m->token, m->ram_hash);
	if (ret) {
		peer_error(run, ret, "sending the hand-shake");
		return ret;
	}
	ret = stream_reader_start(&run->r, run->fd);
	if (ret)
		return run_fail(run, ret, "the destination did not answer as a ferry-vmm "
				"(%s); a wrong token, or not an incoming ferry-vmm",
				run->r.error);
	ret = expect(run, REC_WELCOME, &p, &len);
	if (ret)
		return ret;
	*rtt = time_now_ns() - t;
	if (len < 4 || get_le32(p) < MIG_PROTOCOL_OLDEST)
		return run_fail(run, -EPROTO, "the destination speaks an unknown protocol version");
	return 0;
}

static int pause_vm(struct mig_run *run, uint64_t *pause_ns)
{
	uint64_t t = time_now_ns();

	if (!vm_is_paused(run->vm)) {
		vm_pause(run->vm);
		run->paused_by_us = true;
	}
	*pause_ns = time_now_ns() - t;
	return 0;
}

/* The pre-copy loop: passes until the policy says switch over (or its
 * ladder ends). Returns 0 with *rung set, or -errno. */
static int precopy(struct mig_run *run, uint64_t rtt, enum policy_rung *rung)
{
	struct migration *m = run->m;
	struct policy_state ps = { 0 };
	struct pass_figures pf;
	uint64_t t_sync = time_now_ns();
	int64_t dirty;
	unsigned pass = 1;
	int ret;

	ret = dirty_log_start(&run->dlog, &run->vm->mem, run->vm->fd);
	if (ret)
		return run_fail(run, ret, "cannot track dirty pages: %s", strerror(-ret));
	run->logging = true;
	/* Pass 1: everything (INITIALLY_SET: every bit is set). */
	dirty = dirty_log_sync(&run->dlog);
	if (dirty < 0)
		return run_fail(run, (int)dirty, "reading the dirty log: %s", strerror((int)-dirty));
	for (;;) {
		struct mig_params p = get_params(m);
		struct policy_params pp = {
			.downtime_limit_ns = p.downtime_limit_ms * 1000000ull,
			.auto_converge = p.auto_converge,
			.convergence_timeout_ns = p.convergence_timeout_s * 1000000000ull,
			.final_action = p.final_action,
		};
		uint64_t t_send = time_now_ns(), t_end, round_ns;
		struct policy_round pr;
		struct policy_decision dec;
		struct round_report rep;

		run->pass_budget = pass == 1 ? run->data_bytes : (uint64_t)dirty * PAGE_SIZE;
		run->pass_done = 0;
		pthread_mutex_lock(&m->lock);
		m->stats.pass = pass;
		push_event_locked(m, true, pass);
		pthread_mutex_unlock(&m->lock);
		ret = send_pass(run, pass == 1, true, &pf) ?: wait_drained(run);
		if (ret)
			return ret;
		t_end = time_now_ns();
		dirty = dirty_log_sync(&run->dlog);
		if (dirty < 0)
			return run_fail(run, (int)dirty, "reading the dirty log: %s",
					strerror((int)-dirty));
		round_ns = MAX(t_end - t_send, 1u);
		pr = (struct policy_round){
			.pass = pass,
			.elapsed_ns = elapsed(run),
			.remaining_bytes = (uint64_t)dirty * PAGE_SIZE,
			/* a pass of a few pages says little about the link: keep the
			 * better of this round's and the last one's */
			.bandwidth_Bps = pf.bytes * 1000000000ull / round_ns,
			.dirty_rate_Bps = (uint64_t)dirty * PAGE_SIZE * 1000000000ull /
					  MAX(time_now_ns() - t_sync, 1u),
			.fixed_cost_ns = fixed_cost(run->vm, rtt),
		};
		if (pf.bytes < MiB(8)) {
			uint64_t best;

			pthread_mutex_lock(&m->lock);
			best = m->stats.bandwidth_Bps;
			pthread_mutex_unlock(&m->lock);
			pr.bandwidth_Bps = MAX(pr.bandwidth_Bps, best);
		}
		t_sync = time_now_ns();
		dec = policy_decide(&pp, &ps, &pr);
		rep = (struct round_report){
			.pf = &pf, .transferred = run->w.offset, .remaining = pr.remaining_bytes,
			.bw = pr.bandwidth_Bps,
			.dirty_pages_rate = pr.dirty_rate_Bps / PAGE_SIZE,
			.expected = dec.expected_downtime_ns, .elapsed = pr.elapsed_ns,
			.pass = pass, .throttle = dec.throttle_pct, .syncd = true, .rung = dec.rung,
		};
		stats_update(m, apply_round, &rep);
		log_debug("migration pass %u: %llu bytes in %llu ms (%llu MB/s), %lld dirty pages, "
			  "expected downtime %llu us -> %s",
			  pass, (unsigned long long)pf.bytes, (unsigned long long)round_ns / 1000000,
			  (unsigned long long)pr.bandwidth_Bps / 1000000, (long long)dirty,
			  (unsigned long long)dec.expected_downtime_ns / 1000,
			  policy_action_name(dec.action));
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
			return run_fail(run, -ETIMEDOUT, "the migration did not converge (%s): %llu "
					"bytes still dirty after pass %u; aborted "
					"(convergence-timeout-action is abort)",
					policy_rung_name(dec.rung),
					(unsigned long long)pr.remaining_bytes, pass);
		}
		pass++;
	}
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

/* Everything after the pre-copy: the pause, the last RAM, the state, and
 * the two-phase hand-over. Returns 0 when the destination runs the guest;
 * on failure, m->go_sent says whether the source may resume. */
static int finish(struct mig_run *run, enum policy_rung rung, bool live)
{
	struct migration *m = run->m;
	struct mig_stats parts = { .rung = rung };
	struct pass_figures pf;
	uint64_t t_pause, t, go_flags;
	const uint8_t *p;
	size_t len;
	uint8_t go[8];
	int ret;

	t_pause = time_now_ns();
	if (live)
		pause_vm(run, &parts.pause_ns);
	vm_set_throttle(run->vm, 0);
	set_status(m, MIG_DEVICE);
	/* Disk writes made durable before anything commits: with shared
	 * storage the destination reads them after GO. */
	ret = vm_flush_devices(run->vm);
	if (ret)
		return run_fail(run, ret, "flushing the disks: %s", strerror(-ret));
	test_delay("FERRY_TEST_DEVICE_DELAY_MS");
	/* The last RAM: what the guest dirtied since the last harvest. */
	t = time_now_ns();
	if (live) {
		int64_t dirty = dirty_log_sync(&run->dlog);

		if (dirty < 0)
			return run_fail(run, (int)dirty, "reading the dirty log: %s",
					strerror((int)-dirty));
		parts.dirty_sync_count = 1;
		run->pass_budget = (uint64_t)dirty * PAGE_SIZE;
	} else {
		run->pass_budget = run->data_bytes;
	}
	run->pass_done = 0;
	ret = send_pass(run, !live, false, &pf);
	if (ret)
		return ret;
	parts.final_ram_bytes = pf.bytes;
	parts.normal = pf.full;
	parts.duplicate = pf.zero;
	parts.final_ram_ns = time_now_ns() - t;
	t = time_now_ns();
	ret = state_write_final(run->vm, &run->w);
	if (ret) {
		peer_error(run, ret, "sending the vCPU and device state");
		return ret;
	}
	parts.device_ns = time_now_ns() - t;
	if (m->ram_hash) {
		parts.src_hash = state_ram_hash(run->vm);
		parts.have_hash = true;
		log_info("ram-hash=%08x (source, paused)", parts.src_hash);
	}
	t = time_now_ns();
	ret = expect(run, REC_READY, &p, &len);
	if (ret)
		return ret;
	parts.dest_load_ns = time_now_ns() - t;
	if (m->ram_hash) {
		if (len < 8 || !(get_le32(p) & MIG_HELLO_RAM_HASH))
			return run_fail(run, -EPROTO, "the destination sent no RAM hash");
		parts.dst_hash = get_le32(p + 4);
		if (parts.dst_hash != parts.src_hash)
			return run_fail(run, -EIO, "guest RAM differs on the destination (hash "
					"%08x here, %08x there); the guest runs on here",
					parts.src_hash, parts.dst_hash);
	}
	test_delay("FERRY_TEST_GO_DELAY_MS");
	/* After READY the destination only waits for GO: anything to read,
	 * or a hang-up, means it went away — and it starts nothing without a
	 * whole GO, so the guest is still only here. */
	{
		struct pollfd pfd = { .fd = run->fd, .events = POLLIN | POLLRDHUP };

		if (poll(&pfd, 1, 0) != 0)
			return run_fail(run, -EPIPE, "the destination went away after READY");
	}
	/* The point of no return. Cancelled until here: resume here. */
	pthread_mutex_lock(&m->lock);
	if (m->cancel) {
		pthread_mutex_unlock(&m->lock);
		return run_fail(run, -ECANCELED, "cancelled");
	}
	m->go_sent = true;
	pthread_mutex_unlock(&m->lock);
	go_flags = m->was_running ? MIG_GO_RUN : 0;
	put_le64(go, go_flags);
	t = time_now_ns();
	ret = stream_write_record(&run->w, REC_GO, go, sizeof(go));
	if (ret) {
		/* Not written: a destination starts only on a whole, checked
		 * GO, so none did. The guest may resume here. */
		pthread_mutex_lock(&m->lock);
		m->go_sent = false;
		pthread_mutex_unlock(&m->lock);
		return run_fail(run, ret, "sending GO: %s (the destination did not get it)",
				strerror(-ret));
	}
	ret = expect(run, REC_STARTED, &p, &len);
	if (ret)
		return ret;
	parts.start_ns = time_now_ns() - t;
	parts.downtime_ns = time_now_ns() - t_pause;
	parts.total_ns = elapsed(run);
	parts.transferred = run->w.offset;
	learned_fixed_ns = parts.pause_ns + parts.device_ns + parts.dest_load_ns + parts.start_ns;
	stats_update(m, record_parts, &parts);
	log_info("migration completed: %llu bytes in %llu ms, downtime %llu us (pause %llu, "
		 "last RAM %llu for %llu bytes, state %llu, destination load %llu, start %llu), %s",
		 (unsigned long long)parts.transferred,
		 (unsigned long long)parts.total_ns / 1000000,
		 (unsigned long long)parts.downtime_ns / 1000,
		 (unsigned long long)parts.pause_ns / 1000,
		 (unsigned long long)parts.final_ram_ns / 1000,
		 (unsigned long long)parts.final_ram_bytes,
		 (unsigned long long)parts.device_ns / 1000,
		 (unsigned long long)parts.dest_load_ns / 1000,
		 (unsigned long long)parts.start_ns / 1000, policy_rung_name(rung));
	return 0;
}

/* Gives the RAM of a handed-over VM back to the host: its vCPUs never run
 * again here. */
static void release_ram(struct vm *vm)
{
	if (fallocate(vm->mem.memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
		      (off_t)vm->mem.size) < 0)
		log_debug("releasing guest RAM: %s", strerror(errno));
}

static void *migration_thread(void *arg)
{
	struct migration *m = arg;
	struct mig_run run = { .m = m, .vm = m->vm, .fd = -1, .r = { .fd = -1 } };
	enum policy_rung rung = POLICY_RUNG_NON_LIVE;
	uint64_t rtt = 0, pause_ns = 0;
	bool live = m->live;
	int ret;

	pthread_setname_np(pthread_self(), "migration");
	run.t0 = time_now_ns();
	run.window_t = run.t0;
	run.batch = state_ram_batch_new(true);
	ret = run.batch ? handshake(&run, &rtt) : run_fail(&run, -ENOMEM, "out of memory");
	if (ret == 0 && !live) {
		/* Non-live: pause first, then one pass over everything. */
		pause_vm(&run, &pause_ns);
		pthread_mutex_lock(&m->lock);
		m->stats.pause_ns = pause_ns;
		pthread_mutex_unlock(&m->lock);
	}
	if (ret == 0)
		ret = state_write_info(run.vm, &run.w) ?:
		      state_write_ram_extents(run.vm, &run.w, &run.data_bytes);
	if (ret == 0) {
		pthread_mutex_lock(&m->lock);
		m->stats.setup_ns = elapsed(&run);
		pthread_mutex_unlock(&m->lock);
		set_status(m, MIG_ACTIVE);
	} else if (!run.err[0]) {
		peer_error(&run, ret, "sending the VM's shape");
	}
	if (ret == 0 && live)
		ret = precopy(&run, rtt, &rung);
	if (ret == 0 && !live) {
		/* One pass over all RAM: a bitmap with every bit set. */
		run.dlog.mem = &run.vm->mem;
		run.dlog.pages = run.vm->mem.size / PAGE_SIZE;
		run.dlog.low_pages = run.vm->mem.low_size / PAGE_SIZE;
		run.dlog.bitmap = malloc((run.dlog.pages / 64 + 1) * sizeof(uint64_t));
		if (!run.dlog.bitmap)
			ret = run_fail(&run, -ENOMEM, "out of memory");
		else
			memset(run.dlog.bitmap, 0xff, (run.dlog.pages / 64 + 1) * sizeof(uint64_t));
	}
	if (ret == 0)
		ret = finish(&run, rung, live);
	if (run.logging || run.dlog.bitmap)
		dirty_log_stop(&run.dlog);
	vm_set_throttle(run.vm, 0);

	pthread_mutex_lock(&m->lock);
	m->sock = -1;
	if (ret == 0) {
		m->postmigrate = true;
		m->status = MIG_COMPLETED;
	} else if (m->go_sent) {
		/* After GO: never resume here by ourselves. */
		m->handover_unknown = true;
		m->status = MIG_FAILED;
		snprintf(m->error, sizeof(m->error), "%s — after GO: the destination may be "
			 "running the guest; this copy stays paused (ask the destination; "
			 "cont {\"force\": true} resumes it here)", run.err);
	} else {
		m->status = m->cancel ? MIG_CANCELLED : MIG_FAILED;
		snprintf(m->error, sizeof(m->error), "%s", run.err);
	}
	m->stats.total_ns = elapsed(&run);
	push_event_locked(m, false, m->status);
	pthread_mutex_unlock(&m->lock);
	if (ret && !m->go_sent && run.paused_by_us && vm_stop_reason(run.vm) == VM_STOP_NONE)
		vm_resume(run.vm); /* before GO: the source runs on */
	if (ret)
		log_error("migration %s: %s", migration_status_name(m->status), m->error);
	if (run.fd >= 0)
		close(run.fd);
	stream_reader_free(&run.r);
	state_ram_batch_free(run.batch);
	if (ret == 0)
		release_ram(run.vm);
	return NULL;
}

/* ---- the control side ---- */

int migration_start(struct migration *m, const char *uri, const char *token, bool live,
		    bool ram_hash, char *err, size_t errlen)
{
	struct mig_uri u;

	if (mig_uri_parse(uri, &u, err, errlen))
		return -1;
	if (token && strlen(token) > MIG_MAX_TOKEN) {
		snprintf(err, errlen, "the token is longer than %u bytes", MIG_MAX_TOKEN);
		return -1;
	}
	pthread_mutex_lock(&m->lock);
	if (m->postmigrate || m->handover_unknown) {
		snprintf(err, errlen, "the VM was handed over to another host already");
		goto busy;
	}
	if (m->thread_started || m->rate_measuring) {
		snprintf(err, errlen, m->rate_measuring ? "a dirty-rate measurement is running"
			 : "a migration is already running");
		goto busy;
	}
	free(m->uri);
	free(m->token);
	m->uri = strdup(uri);
	m->token = token ? strdup(token) : NULL;
	m->live = live;
	m->ram_hash = ram_hash;
	m->cancel = false;
	m->go_sent = false;
	m->error[0] = 0;
	memset(&m->stats, 0, sizeof(m->stats));
	m->stats.total = m->vm->mem.size;
	m->stats.rung = live ? POLICY_RUNG_CONVERGED : POLICY_RUNG_NON_LIVE;
	m->stats.start_wall_ms = 0;
	m->was_running = !vm_is_paused(m->vm);
	m->status = MIG_SETUP;
	push_event_locked(m, false, MIG_SETUP);
	if (!m->uri || (token && !m->token) ||
	    pthread_create(&m->thread, NULL, migration_thread, m)) {
		m->status = MIG_FAILED;
		snprintf(err, errlen, "cannot start the migration thread");
		goto busy;
	}
	m->thread_started = true;
	pthread_mutex_unlock(&m->lock);
	return 0;
busy:
	pthread_mutex_unlock(&m->lock);
	return -1;
}

/* Joins a migration thread that has finished (its status is final). */
static void reap(struct migration *m)
{
	bool join = false;

	pthread_mutex_lock(&m->lock);
	if (m->thread_started && m->status != MIG_SETUP && m->status != MIG_ACTIVE &&
	    m->status != MIG_DEVICE && m->status != MIG_CANCELLING) {
		m->thread_started = false;
		join = true;
	}
	pthread_mutex_unlock(&m->lock);
	if (join)
		pthread_join(m->thread, NULL);
}

bool migration_active(struct migration *m)
{
	bool active;

	reap(m);
	pthread_mutex_lock(&m->lock);
	active = m->thread_started;
	pthread_mutex_unlock(&m->lock);
	return active;
}

int migration_cancel(struct migration *m, char *err, size_t errlen)
{
	int ret = 0;

	pthread_mutex_lock(&m->lock);
	if (!m->thread_started || m->status == MIG_COMPLETED || m->status == MIG_FAILED ||
	    m->status == MIG_CANCELLED) {
		/* QMP: cancelling when nothing runs is not an error */
	} else if (m->go_sent) {
		snprintf(err, errlen, "the hand-over has begun (GO sent): the migration can no "
			 "longer be cancelled");
		ret = -1;
	} else {
		__atomic_store_n(&m->cancel, true, __ATOMIC_RELEASE);
		m->status = MIG_CANCELLING;
		push_event_locked(m, false, MIG_CANCELLING);
		/* Unblocks a thread waiting in a read or a write. */
		if (m->sock >= 0)
			shutdown(m->sock, SHUT_RDWR);
	}
	pthread_mutex_unlock(&m->lock);
	return ret;
}

void migration_snapshot(struct migration *m, enum mig_status *status, struct mig_stats *st,
			struct mig_params *p, char *error, size_t errlen)
{
	reap(m);
	pthread_mutex_lock(&m->lock);
	*status = m->status;
	*st = m->stats;
	if (p)
		*p = m->params;
	if (error)
		snprintf(error, errlen, "%s", m->error);
	pthread_mutex_unlock(&m->lock);
}

void migration_set_params(struct migration *m, const struct mig_params *p)
{
	pthread_mutex_lock(&m->lock);
	m->params = *p;
	pthread_mutex_unlock(&m->lock);
}

void migration_get_params(struct migration *m, struct mig_params *p)
{
	*p = get_params(m);
}

unsigned migration_take_events(struct migration *m, struct mig_event *out, unsigned max)
{
	unsigned n;

	pthread_mutex_lock(&m->lock);
	n = MIN(max, m->nevents);
	memcpy(out, m->events, n * sizeof(*out));
	memmove(m->events, m->events + n, (m->nevents - n) * sizeof(*out));
	m->nevents -= n;
	pthread_mutex_unlock(&m->lock);
	reap(m);
	return n;
}

/* ---- calc-dirty-rate ---- */

static void *rate_thread(void *arg)
{
	struct migration *m = arg;
	struct dirty_log d;
	int64_t pages = -1;
	uint64_t calc_s, t0, t1;
	struct timespec ts;

	pthread_setname_np(pthread_self(), "dirty-rate");
	pthread_mutex_lock(&m->lock);
	calc_s = m->rate_calc_s;
	pthread_mutex_unlock(&m->lock);
	if (dirty_log_start(&d, &m->vm->mem, m->vm->fd) == 0) {
		/* INITIALLY_SET: arm every page, then count what gets written. */
		if (dirty_log_sync(&d) >= 0 &&
		    dirty_log_clear(&d, 0, (d.pages + 63) / 64) == 0) {
			t0 = time_now_ns();
			for (uint64_t i = 0; i < calc_s * 10 && !cancelled(m); i++) {
				ts = (struct timespec){ 0, 100000000L };
				nanosleep(&ts, NULL);
			}
			pages = dirty_log_sync(&d);
			t1 = time_now_ns();
			if (pages >= 0)
				pages = (int64_t)((uint64_t)pages * 1000000000ull / MAX(t1 - t0, 1u));
		}
		dirty_log_stop(&d);
	}
	pthread_mutex_lock(&m->lock);
	m->rate_measuring = false;
	m->rate_measured = pages >= 0;
	if (pages >= 0) {
		m->rate_pages = (uint64_t)pages;
		m->rate_MBps = (uint64_t)pages * PAGE_SIZE / MiB(1);
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

int migration_calc_dirty_rate(struct migration *m, unsigned calc_s, char *err, size_t errlen)
{
	int64_t sec, usec;

	if (m->rate_thread_started && !m->rate_measuring) {
		pthread_join(m->rate_thread, NULL);
		m->rate_thread_started = false;
	}
	pthread_mutex_lock(&m->lock);
	if (m->rate_measuring || m->thread_started) {
		snprintf(err, errlen, m->rate_measuring ? "a dirty-rate measurement is running"
			 : "a migration is running");
		pthread_mutex_unlock(&m->lock);
		return -1;
	}
	time_wall(&sec, &usec);
	m->rate_start_s = (uint64_t)sec;
	m->rate_calc_s = calc_s;
	m->rate_measuring = true;
	m->rate_measured = false;
	if (pthread_create(&m->rate_thread, NULL, rate_thread, m)) {
		m->rate_measuring = false;
		pthread_mutex_unlock(&m->lock);
		snprintf(err, errlen, "cannot start the measurement thread");
		return -1;
	}
	m->rate_thread_started = true;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

void migration_shutdown(struct migration *m)
{
	char err[128];

	if (m->thread_started) {
		migration_cancel(m, err, sizeof(err));
		pthread_join(m->thread, NULL);
		m->thread_started = false;
	}
	if (m->rate_thread_started) {
		__atomic_store_n(&m->cancel, true, __ATOMIC_RELEASE);
		pthread_join(m->rate_thread, NULL);
		m->rate_thread_started = false;
	}
	free(m->uri);
	free(m->token);
	m->uri = m->token = NULL;
}
