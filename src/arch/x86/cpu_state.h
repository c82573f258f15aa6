/* x86 vCPU register state that ferry sets: the PVH entry state at boot and
 * the local APIC's virtual-wire setup. (Save and restore of the complete
 * state will live here too.) */
#ifndef FERRY_ARCH_X86_CPU_STATE_H
#define FERRY_ARCH_X86_CPU_STATE_H

#include <stdint.h>

#include "arch/x86/cpuid.h"

/* Gives vCPU fd its CPUID. Returns 0 or -errno. */
int x86_vcpu_set_cpuid(int vcpu_fd, struct cpuid_table *t);

/* LINT0 = ExtINT, LINT1 = NMI: the PIC reaches CPU 0 as on a PC. Needs the
 * in-kernel irqchip. Returns 0 or -errno. */
int x86_vcpu_init_lapic(int vcpu_fd);

/* The PVH entry state: 32-bit protected mode, flat segments, paging off,
 * %ebx = start_info, %eip = entry. For the boot vCPU only; the others wait
 * for INIT/SIPI from the guest. Returns 0 or -errno. */
int x86_vcpu_set_pvh_entry(int vcpu_fd, uint64_t entry, uint64_t start_info);

/* The guest's instruction pointer (for error messages); 0 if unknown. */
uint64_t x86_vcpu_rip(int vcpu_fd);

#endif
