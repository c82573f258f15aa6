/* Local APIC in xAPIC (MMIO) mode: works the same under ferry-vmm and QEMU.
 * All functions are ring 0; each register access is an MMIO exit. */
#ifndef FERRY_GUEST_APIC_H
#define FERRY_GUEST_APIC_H

#include "types.h"

/* Set the MMIO base (from the MADT) and mask the legacy 8259 PICs so that
 * nothing the BIOS left enabled reaches us. Boot CPU, once. */
void apic_setup(u64 base);

/* Enable this CPU's APIC: spurious vector, LINT0 masked, timer one-shot at
 * VEC_TIMER, divide by 1. Every CPU, after apic_setup(). */
void apic_init_cpu(void);

u32 apic_id(void);
void lapic_eoi(void);

/* Arm the one-shot timer for count APIC ticks (0 stops it). */
void apic_timer_oneshot(u32 count);

/* Measure the APIC timer rate against the TSC over ~10 ms; returns kHz.
 * The timer must not be armed. */
u64 apic_timer_calibrate(u64 tsc_khz);

/* Send INIT, or a SIPI with the start page (page number below 1 MiB), to
 * the CPU with this APIC ID. */
void apic_send_init(u32 apic_id);
void apic_send_sipi(u32 apic_id, u32 page);

#endif
