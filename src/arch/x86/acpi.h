/* ACPI tables of the ferry PC: RSDP, RSDT, XSDT, FADT (PM1 power-off, PM
 * timer, reset register), FACS, DSDT (\_S5) and MADT (one local APIC per
 * vCPU, the IOAPIC, ISA overrides). Built once at boot in the reserved
 * area at ACPI_BASE. */
#ifndef FERRY_ARCH_X86_ACPI_H
#define FERRY_ARCH_X86_ACPI_H

#include <stddef.h>
#include <stdint.h>

#define ACPI_MAX_CPUS 255 /* xAPIC IDs 0..254 */

struct acpi_config {
	unsigned ncpus; /* 1..ACPI_MAX_CPUS; vCPU i has APIC ID i */
};

/* Writes the tables into area, which the guest sees at gpa (cap bytes).
 * Returns the guest-physical address of the RSDP, or -E2BIG / -EINVAL. */
int64_t acpi_build(uint8_t *area, uint64_t gpa, size_t cap, const struct acpi_config *cfg);

/* The byte that makes the sum of len bytes at p zero. */
uint8_t acpi_checksum(const void *p, size_t len);

#endif
