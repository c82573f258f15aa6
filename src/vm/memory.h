/* Guest RAM: one memfd, mapped shared, exposed to KVM as one memory slot
 * below the 32-bit MMIO hole and one above 4 GiB when RAM does not fit
 * below it. memfd keeps file-backed save, post-copy (userfaultfd on shmem)
 * and huge pages possible without redesign. */
#ifndef FERRY_VM_MEMORY_H
#define FERRY_VM_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/x86/guest_mem.h"

/* Creates and maps size bytes of guest RAM (a multiple of 1 MiB). Returns 0
 * or -errno. Pages are allocated lazily, on first touch. */
int mem_create(struct guest_mem *mem, uint64_t size, const char *name);

/* Registers the RAM with a KVM VM as memory slots 0 (and 1). */
int mem_register(const struct guest_mem *mem, int vm_fd);

void mem_destroy(struct guest_mem *mem);

/* Re-registers the slots with flags (KVM_MEM_LOG_DIRTY_PAGES or 0). */
int mem_set_slot_flags(const struct guest_mem *mem, int vm_fd, uint32_t flags);

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
