/* Ring-3 side: time, options, and the workload's entry point. */
#ifndef FERRY_GUEST_USER_H
#define FERRY_GUEST_USER_H

#include "types.h"
#include "x86.h"

/* Every ring-3 time read goes through here (rdtsc runs natively in ring 3
 * on kvm_pvm), so the time source can be changed in one place. */
static inline u64 now_tsc(void)
{
	return rdtsc();
}

struct options {
	bool dirty;             /* ferry.dirty=WS@RATE given */
	u64 ws_mib;             /* working set, MiB (> 0) */
	u64 rate_mib;           /* MiB/s across all CPUs (0: verify only) */
	bool poweroff;          /* ferry.poweroff=SECONDS given */
	u64 poweroff_s;
	u64 beat_ms;            /* ferry.beat_ms, default 100 */
	bool inject;            /* ferry.inject=SECONDS (test hook) given */
	u64 inject_s;
	u64 disk_writer_kib;    /* ferry.disk-writer=RATE KiB/s (0: off) */
	u64 disk_bench_s;       /* ferry.disk-bench=SECONDS (0: off) */
	bool ip_set;            /* ferry.ip=ADDR/PREFIX given */
	u32 ip;                 /* IPv4 address, host order (a << 24 | ...) */
	u32 ip_prefix;          /* 1..32 */
	bool ping_set;          /* ferry.ping=ADDR given */
	u32 ping_ip;            /* same subnet as ip, not ip itself */
};

/* Parse the Linux-style command line: space-separated key=value, unknown
 * keys ignored. Returns 0, or -EINVAL with the offending "key=value"
 * token copied into bad. */
int options_parse(const char *cmdline, struct options *o, char *bad,
		  size_t badlen);

/* Ring-3 entry of every CPU (from enter_ring3), cpu index in %rdi. */
NORETURN void user_main(u32 cpu);

#endif
