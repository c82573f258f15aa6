/* AP bring-up; see smp.h. */
#include "smp.h"
#include "apic.h"
#include "bootinfo.h"
#include "console.h"
#include "entry.h"
#include "lib.h"
#include "timebase.h"
#include "x86.h"

#define AP_TIMEOUT_US   1000000

extern char trampoline_start[], trampoline_end[];
extern volatile u32 ap_boot_cpu;    /* boot.S */

static bool overlaps(u64 a, u64 alen, u64 b, u64 blen)
{
	return a < b + blen && b < a + alen;
}

static bool page_is_free(u64 pa)
{
	bool ram = false;

	for (u32 i = 0; i < boot.nmem; i++)
		if (boot.mem[i].type == E820_RAM && pa >= boot.mem[i].addr &&
		    pa + PAGE_SIZE <= boot.mem[i].addr + boot.mem[i].size)
			ram = true;
	for (u32 i = 0; ram && i < ARRAY_SIZE(boot.low_used); i++)
		if (overlaps(pa, PAGE_SIZE, boot.low_used[i][0],
			     boot.low_used[i][1] - boot.low_used[i][0]))
			return false;
	for (u32 i = 0; ram && i < boot.nmods; i++)
		if (overlaps(pa, PAGE_SIZE, boot.mods[i].addr, boot.mods[i].size))
			return false;
	return ram;
}

/* 0x8000 if free, else the first free page in [0x1000, 0x9f000). */
static u64 trampoline_page(void)
{
	if (page_is_free(0x8000))
		return 0x8000;
	for (u64 pa = 0x1000; pa < 0x9f000; pa += PAGE_SIZE)
		if (page_is_free(pa))
			return pa;
	return 0;
}

/* Hand index cpu to whichever AP takes it first; true if one did. */
static bool start_one(u32 apic, u32 page, u32 cpu)
{
	u64 t0;

	ap_boot_cpu = cpu;
	apic_send_sipi(apic, page);
	tsc_delay_us(200);
	if (ap_boot_cpu != AP_NONE)
		apic_send_sipi(apic, page);
	t0 = rdtsc();
	while (ap_boot_cpu != AP_NONE) {
		if (rdtsc() - t0 > AP_TIMEOUT_US * boot.tsc_khz / 1000)
			return xchg32(&ap_boot_cpu, AP_NONE) == AP_NONE;
		cpu_relax();
	}
	return true;
}

void smp_start_aps(const struct madt_info *madt)
{
	u32 self = apic_id(), n = 1;
	u64 page = trampoline_page();

	boot.ncpus = 1;
	boot.apic_id[0] = self;
	if (madt->ncpus <= 1)
		return;
	if (!page) {
		console_printf("ferry-agent warning: no free low page for the "
			       "AP trampoline\n");
		return;
	}
	memcpy((void *)(uintptr_t)page, trampoline_start,
	       (size_t)(trampoline_end - trampoline_start));
	/* INIT all APs first (as many as the guest can run), then one 10 ms
	 * wait for all of them. */
	for (u32 i = 0, k = 1; i < madt->ncpus && k < MAX_CPUS; i++) {
		if (madt->apic_id[i] != self && madt->apic_id[i] < 255) {
			apic_send_init(madt->apic_id[i]);
			k++;
		}
	}
	tsc_delay_us(10000);
	for (u32 i = 0; i < madt->ncpus; i++) {
		u32 apic = madt->apic_id[i];

		if (apic == self)
			continue;
		if (n == MAX_CPUS) {
			console_printf("ferry-agent warning: cpu apic_id=%u not started: "
				       "the guest supports %u CPUs\n", apic, MAX_CPUS);
			continue;
		}
		if (apic >= 255 || !start_one(apic, (u32)(page >> 12), n)) {
			console_printf("ferry-agent warning: cpu apic_id=%u did "
				       "not start\n", apic);
			continue;
		}
		boot.apic_id[n++] = apic;
		boot.ncpus = n;
	}
}

NORETURN void ap_main(u32 cpu)
{
	cpu_init_common(cpu);
	enter_ring3(cpu);
}
