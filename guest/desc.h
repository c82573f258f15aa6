/* Descriptor tables: the GDT (boot.S), one TSS per CPU, the shared IDT. */
#ifndef FERRY_GUEST_DESC_H
#define FERRY_GUEST_DESC_H

#include "types.h"

/* Fill the IDT. Boot CPU, once, before desc_load_cpu(). */
void idt_init(void);

/* Point this CPU's TSS RSP0 at its ring-0 stack, install its TSS
 * descriptor, and load TR and the IDT. Ring 0, on the CPU itself. */
void desc_load_cpu(u32 cpu);

#endif
