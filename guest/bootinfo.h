/*
 * What ring 0 learned at boot, for everyone.
 *
 * Written only by ring 0 on the boot CPU before any CPU enters ring 3 (the
 * APs' fields while they are brought up one by one), read-only afterwards.
 * Ring 3 reads it directly: every page is mapped with U/S set (test guest).
 */
#ifndef FERRY_GUEST_BOOTINFO_H
#define FERRY_GUEST_BOOTINFO_H

#include "types.h"

#define CMDLINE_MAX     2048
#define MEMMAP_MAX      64
#define MODS_MAX        8

#define E820_RAM        1

struct mem_range {
	u64 addr;
	u64 size;
	u32 type;   /* memory map type (1 = RAM); unused for modules */
};

struct boot_info {
	u64 start_tsc;          /* TSC at the first instruction of pvh_entry */
	u64 tsc_khz;
	u64 apic_khz;           /* APIC timer ticks per ms at divide-by-1 */
	const char *tsc_source; /* "cpuid", "kvmclock" or "pit" */

	u32 ncpus;              /* CPUs that came up; index 0 is the BSP */
	u32 apic_id[MAX_CPUS];  /* by CPU index */

	char cmdline[CMDLINE_MAX];
	u32 nmem;
	struct mem_range mem[MEMMAP_MAX];   /* copy of the PVH memory map */
	u32 nmods;
	struct mem_range mods[MODS_MAX];    /* PVH modules (kept clear) */
	u64 ram_bytes;          /* sum of type-1 entries */
	u64 rsdp_pa;            /* start_info.rsdp_paddr (0: scan the BIOS area) */
	u64 mapped_top;         /* identity map covers [0, mapped_top) */
	u64 low_used[4][2];     /* start_info, memmap, modlist, cmdline [start,end) */

	u16 pm1a_cnt;           /* FADT PM1a_CNT_BLK I/O port, 0 if none */
	u16 pm1a_evt;           /* FADT PM1a_EVT_BLK I/O port (STS, then EN), 0 if none */
	u16 slp_typa;           /* \_S5_ SLP_TYPa from the DSDT */
	bool s5_found;
};

extern struct boot_info boot;

/* Per-CPU counters kept by ring 0, readable from ring 3. */
struct percpu {
	volatile u64 timer_ticks;   /* APIC timer interrupts taken */
	volatile u32 timer_fired;   /* set by the timer handler, for sleep */
	u32 pad[13];
} __attribute__((aligned(64)));

extern struct percpu percpu[MAX_CPUS];

/* Interrupts taken on MSI vector VEC_MSI_BASE + i (any CPU; each vector is
 * aimed at one CPU, so the increments do not race). */
extern volatile u64 msi_count[MSI_VECTORS];

#endif
