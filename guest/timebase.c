/* TSC frequency detection; see timebase.h. */
#include "timebase.h"
#include "bootinfo.h"
#include "x86.h"

#define CPUID_HV_BASE           0x40000000
#define CPUID_HV_TIMING         0x40000010  /* EAX TSC kHz, EBX APIC kHz */
#define CPUID_KVM_FEATURES      0x40000001
#define KVM_FEATURE_CLOCKSOURCE2 (1u << 3)
#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01

struct pvclock {
	u32 version;
	u32 pad0;
	u64 tsc_timestamp;
	u64 system_time;
	u32 tsc_to_system_mul;
	s8 tsc_shift;
	u8 flags;
	u8 pad[2];
} PACKED;

static struct pvclock kvmclock __attribute__((aligned(64)));

static bool from_cpuid(void)
{
	u32 r[4];

	cpuid(CPUID_HV_BASE, 0, r);
	if (r[0] < CPUID_HV_TIMING || r[0] > CPUID_HV_BASE + 0xff)
		return false;
	cpuid(CPUID_HV_TIMING, 0, r);
	if (!r[0])
		return false;
	boot.tsc_khz = r[0];
	boot.apic_khz = r[1];
	boot.tsc_source = "cpuid";
	return true;
}

static bool is_kvm(void)
{
	u32 r[4];

	cpuid(CPUID_HV_BASE, 0, r);
	/* "KVMKVMKVM\0\0\0" */
	return r[1] == 0x4b4d564b && r[2] == 0x564b4d56 && r[3] == 0x4d;
}

/* freq = 1e9 * 2^32 / mul, scaled by 2^-shift (ns = (tsc << shift) * mul
 * >> 32). kvmclock is switched off again: we only want the rate. */
static bool from_kvmclock(void)
{
	u32 r[4];
	u64 hz;
	u32 mul;
	s8 shift;

	if (!is_kvm())
		return false;
	cpuid(CPUID_KVM_FEATURES, 0, r);
	if (!(r[0] & KVM_FEATURE_CLOCKSOURCE2))
		return false;
	wrmsr(MSR_KVM_SYSTEM_TIME_NEW, (u64)(uintptr_t)&kvmclock | 1);
	do {
		while (kvmclock.version & 1)
			cpu_relax();
		mul = kvmclock.tsc_to_system_mul;
		shift = kvmclock.tsc_shift;
		barrier();
	} while (kvmclock.version & 1);
	wrmsr(MSR_KVM_SYSTEM_TIME_NEW, 0);
	if (!mul)
		return false;
	hz = (1000000000ULL << 32) / mul;
	hz = shift < 0 ? hz << -shift : hz >> shift;
	boot.tsc_khz = hz / 1000;
	boot.tsc_source = "kvmclock";
	return true;
}

/* PIT channel 2 in mode 0 counting 11932 ticks of 1.193182 MHz = 10 ms. */
static void from_pit(void)
{
	u64 t0, t1;

	outb(0x61, (inb(0x61) & ~0x02) | 0x01);
	outb(0x43, 0xb0);
	outb(0x42, 11932 & 0xff);
	t0 = rdtsc();
	outb(0x42, 11932 >> 8);
	while (!(inb(0x61) & 0x20))
		;
	t1 = rdtsc();
	boot.tsc_khz = (t1 - t0) / 10;
	boot.tsc_source = "pit";
}

void timebase_init(void)
{
	if (from_cpuid() || from_kvmclock())
		return;
	from_pit();
}

void tsc_delay_us(u64 us)
{
	u64 t0 = rdtsc(), n = us * boot.tsc_khz / 1000;

	while (rdtsc() - t0 < n)
		cpu_relax();
}
