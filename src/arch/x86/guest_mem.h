/* Guest RAM as the ferry PC lays it out: the type every layer shares and
 * the one rule of where RAM sits in guest-physical space. RAM below 4 GiB
 * ends at MEM_LOW_LIMIT at most ([MEM_LOW_LIMIT, 4 GiB) is kept for MMIO:
 * PCI BARs, IOAPIC, local APIC, KVM's TSS and identity map); the rest of
 * it starts at MEM_HIGH_BASE. One host mapping holds it all, low part
 * first. vm/memory.c creates and registers it; migration/dirty.c tracks
 * what the VMM writes into it. */
#ifndef FERRY_ARCH_X86_GUEST_MEM_H
#define FERRY_ARCH_X86_GUEST_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MEM_LOW_LIMIT 0xC0000000ull
#define MEM_HIGH_BASE 0x100000000ull

struct guest_mem {
	int memfd;
	uint8_t *host;     /* mapping of the whole memfd */
	uint64_t size;     /* total RAM bytes */
	uint64_t low_size; /* RAM at [0, low_size) */
	uint64_t high_size;/* RAM at [MEM_HIGH_BASE, MEM_HIGH_BASE + high_size) */
	/* Pages the VMM itself wrote while dirty tracking is on (one bit per
	 * memfd page, set atomically). Allocated by the first enable and kept
	 * until mem_destroy: device threads mark it holding no lock of the
	 * migration's, so a disable only clears vmm_dirty_on, and a marker
	 * that saw it on a moment earlier still writes into live memory. */
	uint64_t *_Atomic vmm_dirty;
	_Atomic bool vmm_dirty_on;
};

/* The layout of size bytes of RAM: [0, low) with low = this, and the rest
 * from MEM_HIGH_BASE. The one place that rule is written. */
uint64_t mem_low_size(uint64_t size);

/* Where guest-physical [gpa, gpa + len) sits in RAM laid out as
 * [0, low) + [MEM_HIGH_BASE, + high): its offset in the memfd, or -1 when
 * any part of it is not RAM. Usable without a VM (stream checks). */
int64_t mem_layout_offset(uint64_t low, uint64_t high, uint64_t gpa, uint64_t len);

/* Host address of guest-physical [gpa, gpa + len), or NULL when any part of
 * it is not RAM. Every guest-supplied address goes through here. */
void *mem_gpa_to_hva(const struct guest_mem *mem, uint64_t gpa, uint64_t len);

/* Every place where ferry writes guest RAM on the guest's behalf (a device
 * doing DMA) calls this after the write: while a migration tracks dirty
 * pages, those pages are sent again. Cheap when nothing tracks. */
void mem_mark_dirty(struct guest_mem *mem, uint64_t gpa, uint64_t len);

/* The VMM's bitmap while tracking is on, else NULL (for dirty.c). */
uint64_t *mem_vmm_dirty_bits(struct guest_mem *mem);

#endif
