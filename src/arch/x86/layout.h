/* Where ferry puts things in guest-physical memory at boot. The guest may
 * reuse everything marked RAM in the memory map once it has read it (as
 * Linux does); the ACPI area is reserved for the guest's lifetime. */
#ifndef FERRY_ARCH_X86_LAYOUT_H
#define FERRY_ARCH_X86_LAYOUT_H

#define BOOT_START_INFO   0x6000ull  /* struct hvm_start_info (56 bytes) */
#define BOOT_MODLIST      0x6040ull  /* hvm_modlist_entry[], 32 bytes each */
#define BOOT_MEMMAP       0x6100ull  /* hvm_memmap_table_entry[], 24 bytes */
#define BOOT_MEMMAP_MAX   32
#define BOOT_CMDLINE      0x20000ull /* NUL-terminated kernel command line */
#define BOOT_CMDLINE_MAX  0x10000ull /* including the NUL */

#define LOWMEM_TOP        0x9fc00ull /* end of conventional memory (EBDA above) */
#define ACPI_BASE         0xe0000ull /* RSDP and the tables, reserved */
#define ACPI_SIZE         0x20000ull
#define KERNEL_MIN_ADDR   0x100000ull /* PT_LOAD segments must start here or above */

#define IOAPIC_ADDR       0xfec00000ull
#define LAPIC_ADDR        0xfee00000ull
#define KVM_IDENTITY_MAP  0xfeffc000ull /* KVM_SET_IDENTITY_MAP_ADDR, 1 page */
#define KVM_TSS_ADDR      0xfeffd000ull /* KVM_SET_TSS_ADDR, 3 pages */

/* Legacy I/O ports of the ferry PC. */
#define PORT_COM1         0x3f8
#define PORT_I8042_DATA   0x60
#define PORT_I8042_CMD    0x64
#define PORT_RTC          0x70
#define PORT_RESET        0xcf9
#define PORT_PCI_CONFIG   0xcf8 /* mechanism #1: 0xCF8-0xCFF */
#define PORT_ACPI_PM      0x600 /* PM1a_EVT (4), PM1a_CNT (2), pad, PM_TMR (4) */
#define PORT_ACPI_PM1_EVT (PORT_ACPI_PM + 0)
#define PORT_ACPI_PM1_CNT (PORT_ACPI_PM + 4)
#define PORT_ACPI_PM_TMR  (PORT_ACPI_PM + 8)

/* ISA interrupts (GSIs through the in-kernel PIC/IOAPIC). */
#define IRQ_COM1          4
#define IRQ_RTC           8
#define IRQ_SCI           9

/* SLP_TYP value that the DSDT's \_S5 package declares and the ACPI PM
 * device takes as "power off". */
#define ACPI_SLP_TYP_S5   5

#endif
