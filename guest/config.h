/* Compile-time limits and GDT layout, shared by C and assembly. */
#ifndef FERRY_GUEST_CONFIG_H
#define FERRY_GUEST_CONFIG_H

#define MAX_CPUS        32      /* per-CPU arrays are static (BSS) */
#define KSTACK_SIZE     16384   /* ring-0 stack per CPU */
#define USTACK_SIZE     65536   /* ring-3 stack per CPU */

#define SEL_KCODE       0x08    /* 64-bit ring 0 */
#define SEL_KDATA       0x10
#define SEL_KCODE32     0x18    /* 32-bit ring 0: PVH entry, AP trampoline */
#define SEL_UDATA       0x23    /* 0x20 | RPL 3 */
#define SEL_UCODE       0x2b    /* 0x28 | RPL 3 */
#define SEL_TSS0        0x30    /* 16-byte TSS descriptor per CPU from here */
#define GDT_ENTRIES     (6 + 2 * MAX_CPUS)

#define AP_NONE         0xffffffff  /* ap_boot_cpu: no AP may claim */

#define VEC_TIMER       0x40
#define VEC_SPURIOUS    0xff

/* MSI/MSI-X vectors handed to PCI devices (ring 3 allocates them, see
 * pci.h): each one only counts and EOIs. isr.S lists them by number, so
 * a change here must be made there too. */
#define VEC_MSI_BASE    0x50
#define MSI_VECTORS     16

#endif
