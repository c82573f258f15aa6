/* The source side's API and thread, the hand-shake, and the channel to
 * the destination (migrate.h says how the parts fit). */
#include "migration/migrate.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/util.h"
#include "migration/channel_sock.h"
#include "migration/migrate_run.h"
#include "vm/vm.h"

#define CONNECT_TIMEOUT_MS 10000

/* Test hooks (tests/e2e/test_migrate.py): a delay, in ms, at a named point
 * of the migration, so that a test can hit a window reliably. Read from
 * the environment; 0 when unset. */
void mig_test_delay(const char *name)
{
	const char *v = getenv(name);
	uint64_t ms;

	if (v && parse_u64(v, &ms) == 0 && ms > 0 && ms < 600000) {
		struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

		log_info("test hook %s: waiting %llu ms", name, (unsigned long long)ms);
		nanosleep(&ts, NULL);
	}
}

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

void mig_push_event_locked(struct migration *m, bool pass, unsigned value)
{
	uint64_t one = 1;

	if (m->nevents < MIG_MAX_EVENTS)
		m->events[m->nevents++] = (struct mig_event){ pass, value };
	/* Wake the main loop, which emits them. */
	if (write(m->vm->event_fd, &one, sizeof(one)) < 0)
		(void)0;
}

void mig_set_status(struct migration *m, enum mig_status s)
{
	pthread_mutex_lock(&m->lock);
	m->status = s;
	mig_push_event_locked(m, false, s);
	pthread_mutex_unlock(&m->lock);
}

bool mig_cancelled(struct migration *m)
{
	return __atomic_load_n(&m->cancel, __ATOMIC_ACQUIRE);
}

struct mig_params mig_get_params(struct migration *m)
{
	struct mig_params p;

	pthread_mutex_lock(&m->lock);
	p = m->params;
	pthread_mutex_unlock(&m->lock);
	return p;
}

int mig_run_fail(struct mig_run *run, int err, const char *fmt, ...)
{
	va_list ap;

	if (run->err[0])
		return err; /* the first reason stays */
	va_start(ap, fmt);
	vsnprintf(run->err, sizeof(run->err), fmt, ap);
	va_end(ap);
	return err;
}

uint64_t mig_elapsed(const struct mig_run *run)
{
	return time_now_ns() - run->t0;
}

/* ---- the channel ---- */

/* After a failed write or read: the destination may have said why before
 * it closed; that message beats "broken pipe". */
void mig_peer_error(struct mig_run *run, int err, const char *what)
{
	const uint8_t *p;
	uint32_t type;
	size_t len;

	if (mig_cancelled(run->m)) {
		mig_run_fail(run, -ECANCELED, "cancelled");
		return;
	}
	mig_set_timeouts(run->fd, 0, 1000);
	if (run->r.fd >= 0 && stream_read_record(&run->r, &type, &p, &len) == 0 && type == REC_ERROR) {
		const char *text;
		size_t n = stream_error_text(p, len, &text);

		if (n) {
			mig_run_fail(run, -EPROTO, "the destination refused: %.*s", (int)MIN(n, 400u), text);
			return;
		}
	}
	mig_run_fail(run, err, "%s: %s", what,
		 err == -EAGAIN ? "timed out" : err == -EPIPE ? "the destination went away"
		 : strerror(-err));
}

/* Reads the next message from the destination, which must be want. */
int mig_expect(struct mig_run *run, uint32_t want, const uint8_t **p, size_t *len)
{
	uint32_t type;
	int ret = stream_read_record(&run->r, &type, p, len);

	if (ret) {
		if (mig_cancelled(run->m))
			return mig_run_fail(run, -ECANCELED, "cancelled");
		return mig_run_fail(run, ret, "waiting for %s from the destination: %s",
				stream_rec_name(want),
				strstr(run->r.error, "Resource temporarily") ? "timed out"
				: strstr(run->r.error, "truncated") ||
				  strstr(run->r.error, "Connection reset")
				? "the destination closed the connection" : run->r.error);
	}
	if (type == REC_ERROR) {
		const char *text;
		size_t n = stream_error_text(*p, *len, &text);

		return mig_run_fail(run, -EPROTO, "the destination refused: %.*s", (int)MIN(n, 400u),
				text);
	}
	if (type != want)
		return mig_run_fail(run, -EPROTO, "the destination sent %s where %s was due",
				stream_rec_name(type), stream_rec_name(want));
	return 0;
}

/* ---- the migration thread ---- */

void mig_stats_update(struct migration *m, void (*fn)(struct mig_stats *, const void *),
		      const void *arg)
{
	pthread_mutex_lock(&m->lock);
	fn(&m->stats, arg);
	pthread_mutex_unlock(&m->lock);
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
	if (mig_cancelled(m))
		return mig_run_fail(run, -ECANCELED, "cancelled");
	mig_set_timeouts(run->fd, MIG_IO_TIMEOUT_MS, MIG_IO_TIMEOUT_MS);
	t = time_now_ns();
	ret = stream_writer_start(&run->w, run->fd) ?: send_hello(run, m->token, m->ram_hash);
	if (ret) {
		mig_peer_error(run, ret, "sending the hand-shake");
		return ret;
	}
	ret = stream_reader_start(&run->r, run->fd);
	if (ret)
		return mig_run_fail(run, ret, "the destination did not answer as a ferry-vmm "
				"(%s); a wrong token, or not an incoming ferry-vmm",
				run->r.error);
	ret = mig_expect(run, REC_WELCOME, &p, &len);
	if (ret)
		return ret;
	*rtt = time_now_ns() - t;
	if (len < 4 || get_le32(p) < MIG_PROTOCOL_OLDEST)
		return mig_run_fail(run, -EPROTO, "the destination speaks an unknown protocol version");
	return 0;
}

void mig_pause_vm(struct mig_run *run, uint64_t *pause_ns)
{
	uint64_t t = time_now_ns();

	if (!vm_is_paused(run->vm)) {
		vm_pause(run->vm);
		run->paused_by_us = true;
	}
	*pause_ns = time_now_ns() - t;
}

/* Gives the RAM of a handed-over VM back to the host: its vCPUs never run
 * again here. */
static void release_ram(struct vm *vm)
{
	if (fallocate(vm->mem.memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
		      (off_t)vm->mem.size) < 0)
		log_debug("releasing guest RAM: %s", strerror(errno));
}

/* The hand-shake, the pause of a non-live migration, and the VM's shape
 * (VM_INFO, RAM_EXTENTS): the destination builds the VM from these. */
static int setup(struct mig_run *run, bool live, uint64_t *rtt)
{
	struct migration *m = run->m;
	uint64_t pause_ns;
	int ret = run->batch ? handshake(run, rtt) : mig_run_fail(run, -ENOMEM, "out of memory");

	if (ret)
		return ret;
	if (!live) {
		/* Non-live: pause first, then one pass over everything. */
		mig_pause_vm(run, &pause_ns);
		pthread_mutex_lock(&m->lock);
		m->stats.pause_ns = pause_ns;
		pthread_mutex_unlock(&m->lock);
	}
	ret = state_write_info(run->vm, &run->w) ?:
	      state_write_ram_extents(run->vm, &run->w, &run->data_bytes);
	if (ret) {
		mig_peer_error(run, ret, "sending the VM's shape");
		return ret;
	}
	pthread_mutex_lock(&m->lock);
	m->stats.setup_ns = mig_elapsed(run);
	pthread_mutex_unlock(&m->lock);
	mig_set_status(m, MIG_ACTIVE);
	return 0;
}

/* A non-live migration's one pass over all RAM: a bitmap with every bit
 * set, in place of KVM's log. */
static int all_ram_bitmap(struct mig_run *run)
{
	struct dirty_log *d = &run->dlog;
	size_t size;

	d->mem = &run->vm->mem;
	d->pages = run->vm->mem.size / MIG_PAGE_SIZE;
	d->low_pages = run->vm->mem.low_size / MIG_PAGE_SIZE;
	size = (d->pages / 64 + 1) * sizeof(uint64_t);
	d->bitmap = malloc(size);
	if (!d->bitmap)
		return mig_run_fail(run, -ENOMEM, "out of memory");
	memset(d->bitmap, 0xff, size);
	return 0;
}

/* The migration's end, as the main thread and query-migrate see it. */
static void conclude(struct mig_run *run, int ret)
{
	struct migration *m = run->m;

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
			 "cont {\"force\": true} resumes it here)", run->err);
	} else {
		m->status = m->cancel ? MIG_CANCELLED : MIG_FAILED;
		snprintf(m->error, sizeof(m->error), "%s", run->err);
	}
	m->stats.total_ns = mig_elapsed(run);
	mig_push_event_locked(m, false, m->status);
	pthread_mutex_unlock(&m->lock);
	if (ret && !m->go_sent && run->paused_by_us && vm_stop_reason(run->vm) == VM_STOP_NONE)
		vm_resume(run->vm); /* before GO: the source runs on */
	if (ret)
		log_error("migration %s: %s", migration_status_name(m->status), m->error);
}

static void *migration_thread(void *arg)
{
	struct migration *m = arg;
	struct mig_run run = { .m = m, .vm = m->vm, .fd = -1, .r = { .fd = -1 } };
	enum policy_rung rung = POLICY_RUNG_NON_LIVE;
	uint64_t rtt = 0;
	bool live = m->live;
	int ret;

	pthread_setname_np(pthread_self(), "migration");
	run.t0 = time_now_ns();
	run.window_t = run.t0;
	run.batch = state_ram_batch_new(true);
	ret = setup(&run, live, &rtt);
	if (ret == 0)
		ret = live ? mig_precopy(&run, rtt, &rung) : all_ram_bitmap(&run);
	if (ret == 0)
		ret = mig_handover(&run, rung, live);
	if (run.logging || run.dlog.bitmap)
		dirty_log_stop(&run.dlog);
	vm_set_throttle(run.vm, 0);
	conclude(&run, ret);
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
	mig_push_event_locked(m, false, MIG_SETUP);
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
		mig_push_event_locked(m, false, MIG_CANCELLING);
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
	*p = mig_get_params(m);
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
