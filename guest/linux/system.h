/*
 * What the agent does as PID 1 of an initramfs, and what it reads of the
 * system in any case.
 */
#ifndef FERRY_AGENT_SYSTEM_H
#define FERRY_AGENT_SYSTEM_H

#include <stddef.h>
#include <stdint.h>

/* CLOCK_BOOTTIME now, in ns: the agent's one clock (it goes on counting
 * while the VM is paused, as a host's wall clock does). */
uint64_t boottime_ns(void);

/* Sleeps until CLOCK_BOOTTIME reaches ns (at once if it has). */
void sleep_until_ns(uint64_t ns);

/* A time-based schedule of num/den things a second: how many are due
 * elapsed_ns after its start, *done being those done (or dropped) so far.
 * A backlog over one second's worth (the VM was paused, the CPU taken
 * away) is dropped, not caught up: *done moves up. */
uint64_t rate_due(uint64_t *done, uint64_t num, uint64_t den, uint64_t elapsed_ns);

/* The initramfs's module list (tests/linux/mkinitramfs.py --modules): one
 * file name of AGENT_MODULE_DIR a line, in load order. */
#define AGENT_MODULE_DIR  "/lib/modules"
#define AGENT_MODULE_LIST AGENT_MODULE_DIR "/modules.load"

/* Mounts proc on /proc, sysfs on /sys and devtmpfs on /dev (one already
 * mounted there is fine). Each failure is reported as one
 * "ferry-agent error:" line; returns how many failed. */
int sys_mount_all(void);

/* Loads the modules of AGENT_MODULE_LIST in its order (finit_module); one
 * already loaded or built in counts as loaded. Each one that fails, and a
 * list that cannot be read, is reported as one "ferry-agent error:" line
 * and the rest go on. *loaded and *failed get the counts. */
void sys_load_modules(unsigned *loaded, unsigned *failed);

/* Reads what one read(2) of path gives (a /proc or /sys file) into buf,
 * NUL-terminated, cut at len - 1. Returns 0 or -errno. */
int sys_read_file(const char *path, char *buf, size_t len);

/* A decimal number alone in a file (a trailing newline allowed): 0, or
 * -errno (-EINVAL for anything else in it). */
int sys_read_u64(const char *path, uint64_t *out);

/* Reads /proc/cmdline into buf (NUL-terminated, cut at len - 1). Returns
 * 0 or -errno. */
int sys_read_cmdline(char *buf, size_t len);

/* The field key ("MemTotal", "MemAvailable") of /proc/meminfo in MiB,
 * rounded down; -errno if it cannot be read. */
int64_t sys_meminfo_mib(const char *key);

#endif
