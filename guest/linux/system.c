/* PID 1's duties and the system's figures; see system.h. */
#include "system.h"
#include "console.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int mount_one(const char *type, const char *dir)
{
	if (mkdir(dir, 0755) && errno != EEXIST) {
		say("error: mkdir %s: %s", dir, strerror(errno));
		return -1;
	}
	if (mount(type, dir, type, MS_NOSUID | MS_NOEXEC, NULL) && errno != EBUSY) {
		say("error: mount %s on %s: %s", type, dir, strerror(errno));
		return -1;
	}
	return 0;
}

#define NS_PER_SEC 1000000000ULL

uint64_t boottime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_SEC + (uint64_t)ts.tv_nsec;
}

void sleep_until_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / NS_PER_SEC),
			       .tv_nsec = (long)(ns % NS_PER_SEC) };

	while (clock_nanosleep(CLOCK_BOOTTIME, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

uint64_t rate_due(uint64_t *done, uint64_t num, uint64_t den, uint64_t elapsed_ns)
{
	uint64_t target = (uint64_t)((unsigned __int128)elapsed_ns * num / den / NS_PER_SEC);
	uint64_t per_s = num / den ? num / den : 1;

	if (target - *done > per_s)
		*done = target - per_s;
	return target - *done;
}

int sys_mount_all(void)
{
	/* devtmpfs hides the initramfs's /dev/console; fds 0-2 stay open */
	return -(mount_one("proc", "/proc") + mount_one("sysfs", "/sys") +
		 mount_one("devtmpfs", "/dev"));
}

/* name in the directory dir: 0, or -errno; a module already there (built
 * in, loaded) is 0. */
static int load_module(int dir, const char *name)
{
	int fd, r;

	fd = openat(dir, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = (int)syscall(SYS_finit_module, fd, "", 0) ? -errno : 0;
	close(fd);
	return r == -EEXIST ? 0 : r;
}

void sys_load_modules(unsigned *loaded, unsigned *failed)
{
	int dir = open(AGENT_MODULE_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	FILE *f = dir < 0 ? NULL : fopen(AGENT_MODULE_LIST, "re");
	char line[256];

	*loaded = *failed = 0;
	if (!f) {
		say("error: modules: %s: %s", AGENT_MODULE_LIST, strerror(errno));
		if (dir >= 0)
			close(dir);
		return;
	}
	while (fgets(line, sizeof(line), f)) {
		int r;

		line[strcspn(line, "\n")] = '\0';
		if (!line[0])
			continue;
		r = load_module(dir, line);
		if (r) {
			say("error: module %s: %s", line, strerror(-r));
			++*failed;
		} else {
			++*loaded;
		}
	}
	fclose(f);
	close(dir);
}

int sys_read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	int err;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	err = n < 0 ? -errno : 0;
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return err;
}

int sys_read_cmdline(char *buf, size_t len)
{
	return sys_read_file("/proc/cmdline", buf, len);
}

int sys_read_u64(const char *path, uint64_t *out)
{
	char buf[32], *end;
	int r = sys_read_file(path, buf, sizeof(buf));

	if (r)
		return r;
	errno = 0;
	*out = strtoull(buf, &end, 10);
	if (end == buf || errno || (*end && *end != '\n'))
		return -EINVAL;
	return 0;
}

int64_t sys_meminfo_mib(const char *key)
{
	FILE *f = fopen("/proc/meminfo", "re");
	size_t klen = strlen(key);
	char line[128];
	long long kib = -1;

	if (!f)
		return -errno;
	while (kib < 0 && fgets(line, sizeof(line), f))
		if (strncmp(line, key, klen) || line[klen] != ':' ||
		    sscanf(line + klen + 1, "%lld kB", &kib) != 1)
			kib = -1;
	fclose(f);
	return kib < 0 ? -EINVAL : kib / 1024;
}
