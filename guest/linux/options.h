/*
 * The agent's options: the kernel command line (/proc/cmdline as PID 1,
 * --cmdline outside a VM), Linux-style space-separated key=value. The
 * meanings are the test guest's (guest/README.md, "Options") where the
 * agent has them; guest/linux/README.md lists the differences.
 */
#ifndef FERRY_AGENT_OPTIONS_H
#define FERRY_AGENT_OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Options of the test guest the agent does not have yet: each one given
 * is reported as an error line, never silently ignored. */
enum agent_unsupported {
	UNSUP_DISK_BENCH,
	UNSUP_COUNT
};

struct agent_options {
	bool dirty;             /* ferry.dirty=WS@RATE given */
	uint64_t ws_mib;        /* working set, MiB (> 0) */
	uint64_t rate_mib;      /* MiB/s across all CPUs (0: written once) */
	bool poweroff;          /* ferry.poweroff=SECONDS given */
	uint64_t poweroff_s;    /* seconds after "ready" */
	bool reboot;            /* ferry.reboot=SECONDS given */
	uint64_t reboot_s;      /* seconds after "ready" */
	uint64_t beat_ms;       /* ferry.beat_ms, default 100 */
	bool inject;            /* ferry.inject=SECONDS (test hook) given */
	uint64_t inject_s;      /* seconds after "ready" */
	uint64_t disk_kib;      /* ferry.disk-writer=KiB/s (0: none) */
	uint32_t ip;            /* ferry.ip=ADDR/PREFIX, host order (0: none) */
	unsigned prefix;        /* 1 .. 32 */
	uint32_t ping;          /* ferry.ping=ADDR, host order (0: none) */
	bool unsupported[UNSUP_COUNT];  /* those options, seen */
};

/* Largest disk writer rate, KiB/s. */
#define AGENT_MAX_DISK_KIB (1ULL << 24)

/* Largest working set (MiB) and rate (MiB/s) accepted: keep every size
 * and page count computed from them far from overflowing. */
#define AGENT_MAX_WS_MIB (1ULL << 24)
#define AGENT_MAX_RATE_MIB (1ULL << 24)

/* Parses a command line; unknown keys (console=ttyS0, ...) are ignored.
 * Returns 0, or -EINVAL with the offending token copied into bad (at most
 * badlen - 1 characters, NUL-terminated); *o is then partly filled.
 * ferry.ping needs ferry.ip, and an address in its subnet other than its
 * own (bad then names ferry.ping). */
int options_parse(const char *cmdline, struct agent_options *o, char *bad,
		  size_t badlen);

/* The option's name, e.g. "ferry.disk-writer", for the error line. */
const char *options_unsupported_name(enum agent_unsupported u);

#endif
