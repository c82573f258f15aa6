/* Identity map beyond 4 GiB; see paging.h. */
#include "paging.h"
#include "bootinfo.h"
#include "console.h"
#include "x86.h"

#define PTE_P   0x01ULL
#define PTE_RW  0x02ULL
#define PTE_US  0x04ULL
#define PTE_PS  0x80ULL
#define PTE_RAM (PTE_P | PTE_RW | PTE_US)
#define GiB     (1ULL << 30)
#define MAX_GIB_2M 64   /* without pdpe1gb: static page directories */

extern u64 boot_pdpt[512];
static u64 high_pd[MAX_GIB_2M - 4][512] __attribute__((aligned(4096)));

static bool has_1g_pages(void)
{
	u32 r[4];

	cpuid(0x80000000, 0, r);
	if (r[0] < 0x80000001)
		return false;
	cpuid(0x80000001, 0, r);
	return r[3] & (1u << 26);
}

static u64 ram_top(void)
{
	u64 top = 0;

	for (u32 i = 0; i < boot.nmem; i++)
		if (boot.mem[i].type == E820_RAM &&
		    boot.mem[i].addr + boot.mem[i].size > top)
			top = boot.mem[i].addr + boot.mem[i].size;
	return top;
}

static void map_gib_2m(u64 g)
{
	u64 *pd = high_pd[g - 4];

	for (u64 i = 0; i < 512; i++)
		pd[i] = (g * GiB + (i << 21)) | PTE_RAM | PTE_PS;
	boot_pdpt[g] = (u64)(uintptr_t)pd | PTE_RAM;
}

void paging_init(void)
{
	u64 gibs = ALIGN_UP(ram_top(), GiB) / GiB, max;
	bool big = has_1g_pages();
	u64 cr3;

	max = big ? 512 : MAX_GIB_2M;
	if (gibs > max) {
		console_printf("ferry-agent warning: RAM above %lu GiB not "
			       "mapped\n", max);
		gibs = max;
	}
	for (u64 g = 4; g < gibs; g++) {
		if (big)
			boot_pdpt[g] = (g * GiB) | PTE_RAM | PTE_PS;
		else
			map_gib_2m(g);
	}
	boot.mapped_top = (gibs > 4 ? gibs : 4) * GiB;
	asm volatile("movq %%cr3, %0; movq %0, %%cr3" : "=r"(cr3) : : "memory");
}
