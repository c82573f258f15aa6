/* Ring-0 entry points shared by the boot CPU and the APs. */
#ifndef FERRY_GUEST_ENTRY_H
#define FERRY_GUEST_ENTRY_H

#include "types.h"

/* Per-CPU ring-0 setup: TSS + IDT, SSE for ring 3, local APIC. */
void cpu_init_common(u32 cpu);

/* Leave for ring 3 at user_main(cpu) on this CPU's user stack. */
NORETURN void enter_ring3(u32 cpu);

#endif
