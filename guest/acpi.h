/* ACPI: the RSDP, XSDT/RSDT, MADT (CPUs) and FADT/DSDT (power-off).
 * Tables are read in place (identity-mapped); ring 0, boot CPU. */
#ifndef FERRY_GUEST_ACPI_H
#define FERRY_GUEST_ACPI_H

#include "types.h"

#define MADT_MAX_CPUS   (2 * MAX_CPUS)

struct madt_info {
	u64 lapic_base;
	u32 ncpus;                      /* enabled CPUs listed */
	u32 apic_id[MADT_MAX_CPUS];     /* in MADT order */
};

/* Find the RSDP (start_info.rsdp_paddr, else the BIOS area scan), read the
 * MADT into *madt and the FADT/DSDT power-off data into boot.pm1a_cnt,
 * boot.slp_typa, boot.s5_found. Returns 0, or -ENOENT without an RSDP or
 * MADT (then *madt holds just the default APIC base). */
int acpi_init(u64 rsdp_hint, struct madt_info *madt);

#endif
