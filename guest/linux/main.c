/*
 * ferry-agent: /init of ferry's Linux guest (guest/linux/README.md). It
 * speaks the test guest's console protocol (guest/README.md): "ready",
 * a heartbeat, the integrity workload (wset.h), power-off on a timer or
 * the ACPI power button, and the kernel's warnings (kmsg.h).
 *
 * As PID 1 it mounts /proc, /sys and /dev, loads the initramfs's modules,
 * takes its options from /proc/cmdline and ends by powering the VM off.
 * Anywhere else (a development machine) it takes them from --cmdline,
 * mounts and loads nothing, relays no kernel log, watches no button and
 * ends by exiting: 0, 1 if it found corruption, 2 if it could not run as
 * asked.
 */
#include "button.h"
#include "console.h"
#include "kmsg.h"
#include "options.h"
#include "system.h"
#include "wset.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define CMDLINE_MAX     4096
#define NS_PER_MS       1000000ULL
#define NS_PER_SEC      1000000000ULL
#define EXIT_CORRUPT    1
#define EXIT_CANNOT_RUN 2

enum agent_end {
	END_TIMER,              /* ferry.poweroff */
	END_BUTTON,             /* the ACPI power button */
	END_ERROR,              /* the event loop failed */
};

struct agent {
	bool pid1;
	struct agent_options opt;
	cpu_set_t cpus;         /* where the workers run: the online CPUs */
	struct workload wl;
	struct buttons buttons;
	int kmsg_fd;            /* -1: not relaying */
	int beat_fd;            /* timerfd, CLOCK_BOOTTIME, every beat_ms */
	int off_fd;             /* timerfd for ferry.poweroff, or -1 */
	uint64_t beat;          /* heartbeats printed */
};

static void usage(FILE *f)
{
	fprintf(f, "usage: ferry-agent [--cmdline STRING]\n"
		"  As PID 1 (/init) options come from /proc/cmdline; elsewhere\n"
		"  from --cmdline (guest/linux/README.md lists them).\n");
}

/* Outside a VM: --cmdline STRING, nothing else. Returns -1 to go on, or
 * the status to exit with at once (0 after --help). */
static int host_cmdline(int argc, char **argv, char *buf, size_t len)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--cmdline") && i + 1 < argc) {
			snprintf(buf, len, "%s", argv[++i]);
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return EXIT_CANNOT_RUN;
		}
	}
	return -1;
}

/* The options: /proc/cmdline as PID 1, else host_cmdline. Bad ones are
 * reported; returns 0 or EXIT_CANNOT_RUN. */
static int read_options(struct agent *a, const char *host_cmdline_str)
{
	char cmdline[CMDLINE_MAX] = "", bad[128];
	int r;

	if (!a->pid1)
		snprintf(cmdline, sizeof(cmdline), "%s", host_cmdline_str);
	else if ((r = sys_read_cmdline(cmdline, sizeof(cmdline))))
		say("error: /proc/cmdline: %s", strerror(-r));
	if (options_parse(cmdline, &a->opt, bad, sizeof(bad))) {
		say("error: bad option %s", bad);
		return EXIT_CANNOT_RUN;
	}
	for (int u = 0; u < UNSUP_COUNT; u++)
		if (a->opt.unsupported[u])
			say("error: %s is not supported yet",
			    options_unsupported_name((enum agent_unsupported)u));
	return 0;
}

/* PID 1 only: loads the modules, then opens what they bring: the power
 * button's event device; and the kernel log. */
static void open_kernel_sources(struct agent *a)
{
	unsigned loaded, failed;
	int r;

	sys_load_modules(&loaded, &failed);
	say("modules loaded=%u failed=%u", loaded, failed);
	a->kmsg_fd = kmsg_open();
	if (a->kmsg_fd < 0)
		say("error: /dev/kmsg: %s", strerror(-a->kmsg_fd));
	r = buttons_open(&a->buttons);
	if (r)
		say("error: /dev/input: %s", strerror(-r));
	else if (!a->buttons.n)
		say("warning: no power button (no /dev/input/event* with KEY_POWER)");
}

/* A CLOCK_BOOTTIME timerfd first due at first_ns, then every period_ns
 * (0: once). Returns the fd or -errno. */
static int timer_open(uint64_t first_ns, uint64_t period_ns)
{
	struct itimerspec its = {
		.it_value = { (time_t)(first_ns / NS_PER_SEC), (long)(first_ns % NS_PER_SEC) },
		.it_interval = { (time_t)(period_ns / NS_PER_SEC), (long)(period_ns % NS_PER_SEC) },
	};
	int fd = timerfd_create(CLOCK_BOOTTIME, TFD_NONBLOCK | TFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL)) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/* 0, or -ENOMEM for a working set that would leave the kernel less than
 * a tenth of what is available: populating it would call the OOM killer,
 * which cannot kill init and panics instead. */
static int check_fits(uint64_t ws_mib)
{
	int64_t avail = sys_meminfo_mib("MemAvailable");

	if (avail < 0)
		return 0;       /* unknown: mmap decides */
	return ws_mib > (uint64_t)avail / 10 * 9 ? -ENOMEM : 0;
}

/* The workload, then the timers on its t0: heartbeat 1 is due at once,
 * the power-off poweroff_s after. 0 or EXIT_CANNOT_RUN. */
static int start_workload(struct agent *a)
{
	const struct agent_options *o = &a->opt;
	uint64_t inject = o->inject ? o->inject_s * NS_PER_SEC : UINT64_MAX;
	uint64_t ws_mib = o->dirty ? o->ws_mib : 0;
	int r;

	if (sched_getaffinity(0, sizeof(a->cpus), &a->cpus)) {
		say("error: sched_getaffinity: %s", strerror(errno));
		return EXIT_CANNOT_RUN;
	}
	r = check_fits(ws_mib);
	if (!r)
		r = workload_start(&a->wl, ws_mib, o->rate_mib, &a->cpus, inject);
	if (r) {
		say("error: working set of %lu MiB: %s", (unsigned long)o->ws_mib,
		    r == -ENOMEM ? "does not fit in memory" : strerror(-r));
		return EXIT_CANNOT_RUN;
	}
	a->beat_fd = r = timer_open(a->wl.t0_ns, o->beat_ms * NS_PER_MS);
	if (r >= 0 && o->poweroff)
		a->off_fd = r = timer_open(a->wl.t0_ns + o->poweroff_s * NS_PER_SEC, 0);
	if (r < 0) {
		say("error: timerfd: %s", strerror(-r));
		return EXIT_CANNOT_RUN;
	}
	return 0;
}

static int agent_setup(struct agent *a, const char *host_cmdline_str)
{
	int64_t mem;
	int r;

	if (a->pid1)
		sys_mount_all();
	r = read_options(a, host_cmdline_str);
	if (r)
		return r;
	if (a->pid1)
		open_kernel_sources(a);
	r = start_workload(a);
	if (r)
		return r;
	mem = sys_meminfo_mib("MemTotal");
	if (mem < 0)
		say("error: /proc/meminfo: %s", strerror((int)-mem));
	say("ready cpus=%d mem_mib=%lld", CPU_COUNT(&a->cpus),
	    (long long)(mem < 0 ? 0 : mem));
	return 0;
}

static void heartbeat(struct agent *a)
{
	uint64_t expirations, v, c, w;

	/* missed periods are skipped; the count goes on by one a line */
	if (read(a->beat_fd, &expirations, sizeof(expirations)) < 0 && errno == EAGAIN)
		return;
	workload_totals(&a->wl, &v, &c, &w);
	say("beat=%lu uptime_ms=%lu verified=%lu corrupt=%lu written=%lu",
	    (unsigned long)++a->beat, (unsigned long)(boottime_ns() / NS_PER_MS),
	    (unsigned long)v, (unsigned long)c, (unsigned long)w);
}

enum { PFD_BEAT, PFD_OFF, PFD_KMSG, PFD_BUTTON, PFD_MAX = PFD_BUTTON + BUTTONS_MAX };

static nfds_t poll_set(const struct agent *a, struct pollfd *p)
{
	p[PFD_BEAT] = (struct pollfd){ .fd = a->beat_fd, .events = POLLIN };
	p[PFD_OFF] = (struct pollfd){ .fd = a->off_fd, .events = POLLIN };
	p[PFD_KMSG] = (struct pollfd){ .fd = a->kmsg_fd, .events = POLLIN };
	for (unsigned i = 0; i < a->buttons.n; i++)
		p[PFD_BUTTON + i] = (struct pollfd){ .fd = a->buttons.fd[i], .events = POLLIN };
	return PFD_BUTTON + a->buttons.n;
}

/* The kernel log and the buttons after poll; a source that fails is
 * reported once and no longer polled. True on a power button press. */
static bool poll_sources(struct pollfd *p, nfds_t n)
{
	int r = p[PFD_KMSG].revents ? kmsg_relay(p[PFD_KMSG].fd) : 0;

	if (r) {
		say("error: /dev/kmsg: %s", strerror(-r));
		p[PFD_KMSG].fd = -1;
	}
	for (nfds_t i = PFD_BUTTON; i < n; i++) {
		if ((p[i].revents & POLLIN) && button_pressed(p[i].fd))
			return true;
		if (p[i].revents & (POLLERR | POLLHUP | POLLNVAL))
			p[i].fd = -1;
	}
	return false;
}

/* Heartbeats, the kernel log and the buttons until the power-off timer
 * or a button press. */
static enum agent_end agent_run(struct agent *a)
{
	struct pollfd p[PFD_MAX];
	nfds_t n = poll_set(a, p);

	for (;;) {
		if (poll(p, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			say("error: poll: %s", strerror(errno));
			return END_ERROR;
		}
		if (p[PFD_BEAT].revents)
			heartbeat(a);
		if (p[PFD_OFF].revents)
			return END_TIMER;
		if (poll_sources(p, n))
			return END_BUTTON;
	}
}

/* As PID 1 the VM powers off (ACPI S5) and this never returns: if Linux
 * refuses, init must still not exit (that panics the kernel). Elsewhere
 * the workers stop (they use *a) and status is returned. */
static int agent_end(struct agent *a, enum agent_end why, int status)
{
	say("poweroff%s", why == END_BUTTON ? " (power button)" : "");
	if (!a->pid1) {
		workload_stop(&a->wl);
		return status;
	}
	sync();
	reboot(RB_POWER_OFF);
	say("error: poweroff failed: %s", strerror(errno));
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	struct agent a = { .pid1 = getpid() == 1, .kmsg_fd = -1, .beat_fd = -1,
			   .off_fd = -1 };
	enum agent_end why = END_ERROR;
	char cmdline[CMDLINE_MAX] = "";
	uint64_t v, c, w;
	int status;

	if (!a.pid1 && (status = host_cmdline(argc, argv, cmdline, sizeof(cmdline))) >= 0)
		return status;
	status = agent_setup(&a, cmdline);
	if (!status)
		why = agent_run(&a);
	workload_totals(&a.wl, &v, &c, &w);
	if (!status)
		status = c ? EXIT_CORRUPT : why == END_ERROR ? EXIT_CANNOT_RUN : 0;
	return agent_end(&a, why, status);
}
