/* Guest RAM: one memfd, mapped shared, exposed to KVM as one memory slot
 * below the 32-bit MMIO hole and one above 4 GiB when RAM does not fit
 * below it. memfd keeps file-backed save, post-copy (userfaultfd on shmem)
 * and huge pages possible without redesign. */
#ifndef FERRY_VMM_MEMORY_H
#define FERRY_VMM_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RAM below 4 GiB ends here at most; [MEM_LOW_LIMIT, 4 GiB) is kept for
 * MMIO (PCI BARs, IOAPIC, local APIC, KVM's TSS and identity map). */
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

/* Creates and maps size bytes of guest RAM (a multiple of 1 MiB). Returns 0
 * or -errno. Pages are allocated lazily, on first touch. */
int mem_create(struct guest_mem *mem, uint64_t size, const char *name);

/* Registers the RAM with a KVM VM as memory slots 0 (and 1). */
int mem_register(const struct guest_mem *mem, int vm_fd);

void mem_destroy(struct guest_mem *mem);

/* Re-registers the slots with flags (KVM_MEM_LOG_DIRTY_PAGES or 0). */
int mem_set_slot_flags(const struct guest_mem *mem, int vm_fd, uint32_t flags);

/* Every place where ferry writes guest RAM on the guest's behalf (a device
 * doing DMA) calls this after the write: while a migration tracks dirty
 * pages, those pages are sent again. Cheap when nothing tracks. */
void mem_mark_dirty(struct guest_mem *mem, uint64_t gpa, uint64_t len);

/* Dirty tracking of VMM writes on or off (migration/dirty.c), from one
 * thread at a time; safe while other threads call mem_mark_dirty. An
 * enable starts from no page marked. */
int mem_vmm_dirty_enable(struct guest_mem *mem, bool on);

/* ORs the VMM's dirty bits into bitmap (words of it), leaving them set:
 * like KVM's log with manual protect, a bit is cleared only just before
 * its page is read (mem_vmm_dirty_clear), so a bit read by a sync whose
 * pass never runs (the switch-over) is read again by the next one. */
void mem_vmm_dirty_read(struct guest_mem *mem, uint64_t *bitmap, uint64_t words);

/* Clears the VMM's bits that are set in bits, over words [w, w + n). */
void mem_vmm_dirty_clear(struct guest_mem *mem, const uint64_t *bits, uint64_t w, uint64_t n);

/* ORs bits [w, w + n) back into the VMM's bitmap (a failed send). */
void mem_vmm_dirty_put_back(struct guest_mem *mem, const uint64_t *bits, uint64_t w, uint64_t n);

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

/* The next stretch of [off, end) of the memfd that holds data, as whole
 * pages: its data extents (SEEK_DATA/SEEK_HOLE) cover every page the guest
 * ever touched, resident or swapped out, and none it never touched. Returns
 * false when there is none; when lseek cannot tell, all of [off, end) counts
 * as data (slower, never wrong). */
bool mem_next_data(const struct guest_mem *mem, uint64_t off, uint64_t end, uint64_t *start,
		   uint64_t *stop);

/* The host's physical RAM in bytes (for refusing impossible --memory). */
uint64_t mem_host_total(void);

#endif
