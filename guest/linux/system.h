/*
 * What the agent does as PID 1 of an initramfs, and what it reads of the
 * system in any case.
 */
#ifndef FERRY_AGENT_SYSTEM_H
#define FERRY_AGENT_SYSTEM_H

#include <stddef.h>
#include <stdint.h>

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

/* Reads /proc/cmdline into buf (NUL-terminated, cut at len - 1). Returns
 * 0 or -errno. */
int sys_read_cmdline(char *buf, size_t len);

/* The field key ("MemTotal", "MemAvailable") of /proc/meminfo in MiB,
 * rounded down; -errno if it cannot be read. */
int64_t sys_meminfo_mib(const char *key);

#endif
