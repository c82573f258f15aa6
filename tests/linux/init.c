/*
 * /init of the Linux smoke test's initramfs (tests/e2e/test_linux.py): a
 * static program that shows Linux reached user space, then powers the VM
 * off. It prints one line on the console,
 *
 *   ferry-linux-smoke: user space reached, cpus=N uptime_ms=T
 *
 * N = CPUs online, T = milliseconds since the kernel started
 * (CLOCK_BOOTTIME), then sync()s and calls reboot(RB_POWER_OFF), which Linux
 * carries out through ACPI S5 (ferry's ACPI PM device). If that returns, it
 * says why and exits: init exiting makes the kernel panic.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <time.h>
#include <unistd.h>

static void mount_fs(const char *type, const char *dir)
{
	if (mount(type, dir, type, 0, NULL) && errno != EBUSY)
		fprintf(stderr, "ferry-linux-smoke: mount %s on %s: %s\n", type, dir,
			strerror(errno));
}

int main(void)
{
	struct timespec ts;
	long cpus;

	/* glibc counts online CPUs from /sys/devices/system/cpu/online, else
	 * /proc/stat */
	mount_fs("proc", "/proc");
	mount_fs("sysfs", "/sys");
	cpus = sysconf(_SC_NPROCESSORS_ONLN);
	clock_gettime(CLOCK_BOOTTIME, &ts);
	printf("ferry-linux-smoke: user space reached, cpus=%ld uptime_ms=%lld\n", cpus,
	       (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
	fflush(stdout);

	sync();
	reboot(RB_POWER_OFF);
	fprintf(stderr, "ferry-linux-smoke: reboot(RB_POWER_OFF): %s\n", strerror(errno));
	return 1;
}
