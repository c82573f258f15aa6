/* Local APIC; see apic.h. */
#include "apic.h"
#include "x86.h"

#define APIC_ID         0x020
#define APIC_TPR        0x080
#define APIC_EOI        0x0b0
#define APIC_SVR        0x0f0
#define APIC_ICR_LO     0x300
#define APIC_ICR_HI     0x310
#define APIC_LVT_TIMER  0x320
#define APIC_LVT_LINT0  0x350
#define APIC_LVT_ERROR  0x370
#define APIC_TMICT      0x380
#define APIC_TMCCT      0x390
#define APIC_TDCR       0x3e0

#define LVT_MASKED      (1u << 16)
#define ICR_BUSY        (1u << 12)
#define ICR_INIT        0x00004500u     /* INIT, level assert */
#define ICR_SIPI        0x00004600u

static u64 apic_base = 0xfee00000;

static u32 rd(u32 reg)
{
	return *(volatile u32 *)(uintptr_t)(apic_base + reg);
}

static void wr(u32 reg, u32 v)
{
	*(volatile u32 *)(uintptr_t)(apic_base + reg) = v;
}

void apic_setup(u64 base)
{
	if (base)
		apic_base = base;
	outb(0x21, 0xff);
	outb(0xa1, 0xff);
}

void apic_init_cpu(void)
{
	wr(APIC_SVR, 0x100 | VEC_SPURIOUS);
	wr(APIC_TPR, 0);
	wr(APIC_LVT_LINT0, LVT_MASKED);
	wr(APIC_LVT_ERROR, LVT_MASKED);
	wr(APIC_TDCR, 0xb);
	wr(APIC_LVT_TIMER, VEC_TIMER);  /* one-shot */
}

u32 apic_id(void)
{
	return rd(APIC_ID) >> 24;
}

void lapic_eoi(void)
{
	wr(APIC_EOI, 0);
}

void apic_timer_oneshot(u32 count)
{
	wr(APIC_TMICT, count);
}

u64 apic_timer_calibrate(u64 tsc_khz)
{
	u64 t0, t1;
	u32 left;

	wr(APIC_LVT_TIMER, LVT_MASKED | VEC_TIMER);
	wr(APIC_TDCR, 0xb);
	wr(APIC_TMICT, 0xffffffffu);
	t0 = rdtsc();
	while ((t1 = rdtsc()) - t0 < tsc_khz * 10)
		;
	left = rd(APIC_TMCCT);
	wr(APIC_TMICT, 0);
	wr(APIC_LVT_TIMER, VEC_TIMER);
	return (u64)(0xffffffffu - left) * tsc_khz / (t1 - t0);
}

static void send_ipi(u32 apic_id, u32 lo)
{
	wr(APIC_ICR_HI, apic_id << 24);
	wr(APIC_ICR_LO, lo);
	while (rd(APIC_ICR_LO) & ICR_BUSY)
		cpu_relax();
}

void apic_send_init(u32 apic_id)
{
	send_ipi(apic_id, ICR_INIT);
}

void apic_send_sipi(u32 apic_id, u32 page)
{
	send_ipi(apic_id, ICR_SIPI | (page & 0xff));
}
