/* calc-dirty-rate: the guest's dirty rate over a few seconds, measured
 * with KVM's dirty log in a thread of its own (QMP's calc-dirty-rate and
 * query-dirty-rate; docs/control-protocol.md). */
#include <pthread.h>
#include <stdio.h>
#include <time.h>

#include "common/util.h"
#include "migration/migrate_run.h"
#include "vm/vm.h"

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
			for (uint64_t i = 0; i < calc_s * 10 && !mig_cancelled(m); i++) {
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
		m->rate_MBps = (uint64_t)pages * MIG_PAGE_SIZE / MiB(1);
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
