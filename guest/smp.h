/* Bringing up the application processors (ring 0, boot CPU). */
#ifndef FERRY_GUEST_SMP_H
#define FERRY_GUEST_SMP_H

#include "acpi.h"

/*
 * Start every enabled CPU of the MADT other than the caller with INIT,
 * SIPI, SIPI through a real-mode trampoline copied to a free low page.
 * APs take CPU indices 1, 2, ... in MADT order as they check in; one that
 * does not within 1 s is reported and left out. Sets boot.ncpus and
 * boot.apic_id[]. Needs boot.tsc_khz, the IDT and the APIC set up.
 */
void smp_start_aps(const struct madt_info *madt);

/* Called by boot.S on each AP, on its own ring-0 stack; never returns. */
NORETURN void ap_main(u32 cpu);

#endif
