#include "arch/x86/guest_mem.h"

#include <stdatomic.h>

#include "common/util.h"

uint64_t mem_low_size(uint64_t size)
{
	return MIN(size, MEM_LOW_LIMIT);
}

int64_t mem_layout_offset(uint64_t low, uint64_t high, uint64_t gpa, uint64_t len)
{
	if (range_within(gpa, len, low))
		return (int64_t)gpa;
	if (gpa >= MEM_HIGH_BASE && range_within(gpa - MEM_HIGH_BASE, len, high))
		return (int64_t)(low + (gpa - MEM_HIGH_BASE));
	return -1;
}

void *mem_gpa_to_hva(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	int64_t off = mem_layout_offset(mem->low_size, mem->high_size, gpa, len);

	return off < 0 ? NULL : mem->host + off;
}

uint64_t *mem_vmm_dirty_bits(struct guest_mem *mem)
{
	return atomic_load_explicit(&mem->vmm_dirty_on, memory_order_acquire) ?
		atomic_load_explicit(&mem->vmm_dirty, memory_order_relaxed) : NULL;
}

void mem_mark_dirty(struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	uint64_t *bm = mem_vmm_dirty_bits(mem);
	int64_t off;

	if (!bm || !len)
		return;
	off = mem_layout_offset(mem->low_size, mem->high_size, gpa, len);
	if (off < 0)
		return;
	for (uint64_t p = (uint64_t)off >> 12; p <= ((uint64_t)off + len - 1) >> 12; p++)
		__atomic_fetch_or(&bm[p / 64], 1ull << (p % 64), __ATOMIC_RELAXED);
}
