/* The PVH boot protocol (Xen's docs/misc/pvh.pandoc), as QEMU's -kernel,
 * Cloud Hypervisor and Firecracker implement it: an ELF whose
 * XEN_ELFNOTE_PHYS32_ENTRY note names a 32-bit entry point, entered in
 * protected mode with paging off and %ebx = &hvm_start_info. */
#ifndef FERRY_ARCH_X86_BOOT_H
#define FERRY_ARCH_X86_BOOT_H

#include <stddef.h>
#include <stdint.h>

#include "arch/x86/guest_mem.h"

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define HVM_START_MAGIC 0x336ec578u

#define E820_RAM 1
#define E820_RESERVED 2

struct pvh_kernel {
	uint64_t entry;     /* 32-bit entry point from the PVH note */
	uint64_t load_low;  /* lowest guest-physical byte loaded */
	uint64_t load_high; /* one past the highest (p_paddr + p_memsz) */
};

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
};

/* Parses an ELF32/ELF64 x86 image, checks every header and segment against
 * the file and guest RAM, and finds the PVH entry. Does not touch guest
 * memory. Returns 0, or -ENOEXEC with one error line logged that starts with
 * path and says what is wrong. */
int pvh_parse(const char *path, const uint8_t *elf, size_t size, const struct guest_mem *mem,
	      struct pvh_kernel *out);

/* Copies the PT_LOAD segments (zeroing the BSS part) into guest RAM.
 * Requires a successful pvh_parse() of the same image. */
void pvh_load(const uint8_t *elf, size_t size, const struct guest_mem *mem);

/* Builds the memory map of a VM with this RAM. Returns the entry count. */
unsigned pvh_memmap(const struct guest_mem *mem, struct e820_entry *map, unsigned max);

struct pvh_boot_params {
	const char *cmdline;     /* may be NULL */
	const uint8_t *initrd;   /* may be NULL */
	size_t initrd_size;
	uint64_t rsdp;           /* guest-physical RSDP */
	uint64_t kernel_high;    /* end of the kernel image: initrd goes above */
};

/* Writes hvm_start_info, the memory map, the command line and the initrd
 * (as module 0, high in low RAM) into guest memory. Returns the start_info
 * address, or -EINVAL / -E2BIG / -ENOMEM with an error logged. */
int64_t pvh_write_start_info(const struct guest_mem *mem, const struct pvh_boot_params *p);

#endif
