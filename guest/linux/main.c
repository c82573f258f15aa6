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
#include "disk.h"
#include "kmsg.h"
#include "net.h"
#include "options.h"
#include "system.h"
#include "wset.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define CMDLINE_MAX     4096
#define NS_PER_MS       1000000ULL
#define NS_PER_SEC      1000000000ULL
#define EXIT_CORRUPT    1
#define EXIT_CANNOT_RUN 2

enum agent_end {
	END_TIMER,              /* ferry.poweroff */
	END_REBOOT,             /* ferry.reboot */
	END_BUTTON,             /* the ACPI power button */
	END_ERROR,              /* the event loop failed */
};

struct agent {
	bool pid1;
	struct agent_options opt;
	cpu_set_t cpus;         /* where the workers run: the online CPUs */
	struct workload wl;
	struct disk_writer disk;
	struct pinger ping;
	struct buttons buttons;
	int kmsg_fd;            /* -1: not relaying */
	int beat_fd;            /* timerfd, CLOCK_BOOTTIME, every beat_ms */
	int off_fd;             /* timerfd for ferry.poweroff, or -1 */
	int reboot_fd;          /* timerfd for ferry.reboot, or -1 */
	uint64_t beat;          /* heartbeats printed */
};

/* PID 1: fds 0-2 on /dev/null where the kernel left none (no
 * /dev/console), so that no file the agent opens becomes its console. */
static void std_fds_open(void)
{
	for (int fd = 0; fd <= 2; fd++) {
		int n;

		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		n = open("/dev/null", O_RDWR);
		if (n >= 0 && n != fd) {
			dup2(n, fd);
			close(n);
		}
	}
}

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
			if (snprintf(buf, len, "%s", argv[++i]) >= (int)len) {
				fprintf(stderr, "ferry-agent: --cmdline: longer than %zu bytes\n",
					len - 1);
				return EXIT_CANNOT_RUN;
			}
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
	if (a->opt.inject && !a->opt.dirty)
		say("warning: ferry.inject without ferry.dirty: no page to corrupt");
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
	if (r >= 0 && o->reboot)
		a->reboot_fd = r = timer_open(a->wl.t0_ns + o->reboot_s * NS_PER_SEC, 0);
	if (r < 0) {
		say("error: timerfd: %s", strerror(-r));
		return EXIT_CANNOT_RUN;
	}
	return 0;
}

/* PID 1 only: the disks' lines, the disk writer, eth0 and the pings.
 * What fails is reported and the agent goes on without it. */
static void start_devices(struct agent *a)
{
	const struct agent_options *o = &a->opt;
	char writable[DISK_NAME_MAX];

	disks_report(writable);
	if (o->disk_kib && !writable[0])
		say("error: ferry.disk-writer: no writable virtio disk");
	else if (o->disk_kib)
		dwriter_start(&a->disk, writable, o->disk_kib);
	if (o->ip && !net_configure(o->ip, o->prefix) && o->ping)
		pinger_start(&a->ping, o->ping);
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
	if (a->pid1) {
		open_kernel_sources(a);
		start_devices(a);
	} else if (a->opt.disk_kib || a->opt.ip) {
		say("warning: ferry.disk-writer, ferry.ip and ferry.ping work only as PID 1");
	}
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

#define LOAD(x) ((unsigned long long)atomic_load_explicit(&(x), memory_order_relaxed))

static void heartbeat(struct agent *a)
{
	uint64_t expirations, v, c, w;
	struct timespec wall;
	char dev[160] = "";
	int n = 0;

	/* missed periods are skipped; the count goes on by one a line */
	if (read(a->beat_fd, &expirations, sizeof(expirations)) < 0 && errno == EAGAIN)
		return;
	workload_totals(&a->wl, &v, &c, &w);
	if (a->disk.running)
		n = snprintf(dev, sizeof(dev), " disk_written=%llu disk_corrupt=%llu",
			     LOAD(a->disk.written), LOAD(a->disk.corrupt));
	if (a->ping.running)
		snprintf(dev + n, sizeof(dev) - (size_t)n,
			 " net_sent=%llu net_recv=%llu net_lost=%llu", LOAD(a->ping.sent),
			 LOAD(a->ping.recv), LOAD(a->ping.lost));
	clock_gettime(CLOCK_REALTIME, &wall);
	say("beat=%lu uptime_ms=%lu verified=%lu corrupt=%lu written=%lu wall_ms=%llu%s",
	    (unsigned long)++a->beat, (unsigned long)(boottime_ns() / NS_PER_MS),
	    (unsigned long)v, (unsigned long)c, (unsigned long)w,
	    (unsigned long long)wall.tv_sec * 1000 + (unsigned long long)wall.tv_nsec / NS_PER_MS,
	    dev);
}

enum { PFD_BEAT, PFD_OFF, PFD_REBOOT, PFD_KMSG, PFD_BUTTON,
       PFD_MAX = PFD_BUTTON + BUTTONS_MAX };

static nfds_t poll_set(const struct agent *a, struct pollfd *p)
{
	p[PFD_BEAT] = (struct pollfd){ .fd = a->beat_fd, .events = POLLIN };
	p[PFD_OFF] = (struct pollfd){ .fd = a->off_fd, .events = POLLIN };
	p[PFD_REBOOT] = (struct pollfd){ .fd = a->reboot_fd, .events = POLLIN };
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
		if (p[PFD_REBOOT].revents)
			return END_REBOOT;
		if (poll_sources(p, n))
			return END_BUTTON;
	}
}

/* Everything stops first (the disk writer's last records flushed, the
 * workers' last checks counted), then the VM powers off (ACPI S5) or reboots (ferry.reboot) and
 * this never returns as PID 1: if Linux refuses, init must still not exit
 * (that panics the kernel). Elsewhere the exit status is returned: status
 * if not 0, else EXIT_CORRUPT for a corrupt page, EXIT_CANNOT_RUN if the
 * loop failed. */
static int agent_end(struct agent *a, enum agent_end why, int status)
{
	uint64_t corrupt;

	dwriter_stop(&a->disk);
	pinger_stop(&a->ping);
	corrupt = workload_stop(&a->wl);
	if (!status)
		status = corrupt ? EXIT_CORRUPT : why == END_ERROR ? EXIT_CANNOT_RUN : 0;
	if (why == END_BUTTON)
		say("power-button: shutting down");
	say("%s", why == END_REBOOT ? "reboot" : "poweroff");
	if (!a->pid1)
		return status;
	sync();
	/* as reboot -f / poweroff -f: no user space to stop but this one */
	reboot(why == END_REBOOT ? RB_AUTOBOOT : RB_POWER_OFF);
	say("error: %s failed: %s", why == END_REBOOT ? "reboot" : "poweroff", strerror(errno));
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	struct agent a = { .pid1 = getpid() == 1, .kmsg_fd = -1, .beat_fd = -1,
			   .off_fd = -1, .reboot_fd = -1 };
	enum agent_end why = END_ERROR;
	char cmdline[CMDLINE_MAX] = "";
	int status;

	if (a.pid1)
		std_fds_open();
	else if ((status = host_cmdline(argc, argv, cmdline, sizeof(cmdline))) >= 0)
		return status;
	status = agent_setup(&a, cmdline);
	if (!status)
		why = agent_run(&a);
	return agent_end(&a, why, status);
}
