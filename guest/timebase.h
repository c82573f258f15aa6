/* TSC frequency detection (ring 0: CPUID in ring 3 returns raw host values
 * on kvm_pvm, only ring 0 sees the hypervisor's leaves). */
#ifndef FERRY_GUEST_TIMEBASE_H
#define FERRY_GUEST_TIMEBASE_H

#include "types.h"

/* Fill boot.tsc_khz, boot.tsc_source and, if the hypervisor says so,
 * boot.apic_khz. Order: CPUID 0x40000010, kvmclock, PIT. Boot CPU. */
void timebase_init(void);

/* Busy-wait (ring 0) for us microseconds of TSC time. */
void tsc_delay_us(u64 us);

#endif
