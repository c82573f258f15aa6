/*
 * Ring-0 main line of the boot CPU, and the per-CPU setup shared with the
 * APs. Ring 0 is emulated on kvm_pvm (~0.6 us an instruction): it only
 * copies the boot data, sets up the machine and leaves for ring 3.
 */
#include "entry.h"
#include "acpi.h"
#include "apic.h"
#include "bootinfo.h"
#include "console.h"
#include "desc.h"
#include "lib.h"
#include "paging.h"
#include "smp.h"
#include "syscall.h"
#include "timebase.h"
#include "x86.h"

#define HVM_START_MAGIC 0x336ec578

struct hvm_start_info {
	u32 magic, version, flags, nr_modules;
	u64 modlist_paddr, cmdline_paddr, rsdp_paddr;
	u64 memmap_paddr;       /* version >= 1 */
	u32 memmap_entries, reserved;
} PACKED;

struct hvm_memmap_entry {
	u64 addr, size;
	u32 type, reserved;
} PACKED;

struct hvm_modlist_entry {
	u64 paddr, size, cmdline_paddr, reserved;
} PACKED;

struct boot_info boot;
struct percpu percpu[MAX_CPUS];
static u8 ustacks[MAX_CPUS][USTACK_SIZE] __attribute__((aligned(16)));

extern u64 boot_tsc, pvh_start_info_pa;   /* boot.S */
extern void enter_user(u64 entry, u64 arg, u64 rsp, u64 rflags) NORETURN;
extern void user_main(u32 cpu) NORETURN;  /* workload.c, ring 3 */

static void note_used(u32 slot, u64 pa, u64 len)
{
	boot.low_used[slot][0] = pa;
	boot.low_used[slot][1] = pa + len;
}

static void copy_memmap(const struct hvm_start_info *si)
{
	const struct hvm_memmap_entry *e = (const void *)(uintptr_t)si->memmap_paddr;
	u32 n = si->memmap_entries;

	note_used(1, si->memmap_paddr, (u64)n * sizeof(*e));
	for (u32 i = 0; i < n && boot.nmem < MEMMAP_MAX; i++) {
		boot.mem[boot.nmem++] = (struct mem_range){ e[i].addr, e[i].size,
							    e[i].type };
		if (e[i].type == E820_RAM)
			boot.ram_bytes += e[i].size;
	}
}

static void copy_modules(const struct hvm_start_info *si)
{
	const struct hvm_modlist_entry *m = (const void *)(uintptr_t)si->modlist_paddr;

	note_used(2, si->modlist_paddr, (u64)si->nr_modules * sizeof(*m));
	for (u32 i = 0; i < si->nr_modules && i < MODS_MAX; i++)
		boot.mods[boot.nmods++] = (struct mem_range){ m[i].paddr,
							      m[i].size, 0 };
}

/* First thing: the low pages holding these may be reused later (e.g. for
 * the AP trampoline). Without a memory map (version 0) assume 64 MiB. */
static bool copy_start_info(void)
{
	const struct hvm_start_info *si = (const void *)(uintptr_t)pvh_start_info_pa;

	boot.start_tsc = boot_tsc;
	if (si->magic != HVM_START_MAGIC)
		return false;
	note_used(0, pvh_start_info_pa, sizeof(*si));
	boot.rsdp_pa = si->rsdp_paddr;
	if (si->cmdline_paddr) {
		const char *c = (const char *)(uintptr_t)si->cmdline_paddr;
		size_t n = strnlen(c, CMDLINE_MAX - 1);

		memcpy(boot.cmdline, c, n);
		note_used(3, si->cmdline_paddr, n + 1);
	}
	if (si->version >= 1 && si->memmap_paddr && si->memmap_entries) {
		copy_memmap(si);
	} else {
		boot.mem[0] = (struct mem_range){ 0, 0x9f000, E820_RAM };
		boot.mem[1] = (struct mem_range){ MiB, 63 * MiB, E820_RAM };
		boot.nmem = 2;
		boot.ram_bytes = 0x9f000 + 63 * MiB;
	}
	if (si->nr_modules && si->modlist_paddr)
		copy_modules(si);
	return true;
}

/* SSE for ring 3 (CR0.MP, !EM, !TS; CR4.OSFXSR, OSXMMEXCPT). No XSAVE/AVX:
 * xrstor fails in kvm_pvm's ring-0 emulator. */
static void sse_enable(void)
{
	u64 cr0, cr4;

	asm volatile("movq %%cr0, %0" : "=r"(cr0));
	cr0 = (cr0 & ~(u64)((1 << 2) | (1 << 3))) | (1 << 1);
	asm volatile("movq %0, %%cr0" : : "r"(cr0));
	asm volatile("movq %%cr4, %0" : "=r"(cr4));
	cr4 |= (1 << 9) | (1 << 10);
	asm volatile("movq %0, %%cr4" : : "r"(cr4));
	asm volatile("fninit");
}

void cpu_init_common(u32 cpu)
{
	desc_load_cpu(cpu);
	sse_enable();
	apic_init_cpu();
}

/* True when the command line holds the word token. */
static bool cmdline_has(const char *token)
{
	size_t n = strlen(token);

	for (const char *c = boot.cmdline; *c; c++)
		if ((c == boot.cmdline || c[-1] == ' ') && memcmp(c, token, n) == 0 &&
		    (c[n] == ' ' || c[n] == '\0'))
			return true;
	return false;
}

/* ferry.crash=df (tests/e2e/test_devices.py): a double fault on a broken
 * stack, as the one seen inside the test host that became a triple fault.
 * A push to a non-canonical %rsp faults (#SS), delivering that faults
 * again: #DF, which runs on its own stack (desc.c) and prints the PANIC
 * line. (Not int3: kvm_pvm's emulator cannot run it in ring 0.) */
static void crash_if_asked(void)
{
	if (!cmdline_has("ferry.crash=df"))
		return;
	console_printf("ferry-agent crash: a double fault on purpose\n");
	asm volatile("movq %0, %%rsp\n\tpushq $0" : : "r"(0x8000000000000000ull) : "memory");
}

/* Ring 3's RFLAGS: IF, and IOPL 3 with ferry.iopl=3 on the command line.
 * Ring 3's port I/O goes through the TSS I/O bitmap (desc.c), which works
 * everywhere but under QEMU with KVM inside QEMU's emulated SVM (the test
 * host, docs/testing.md): there QEMU's own register syncs leave TR's type
 * busy, which the emulator's bitmap check refuses. With IOPL 3 the bitmap
 * is not consulted where IOPL is honoured; kvm_pvm masks IOPL and still
 * takes the bitmap. Only the tests that run this guest under QEMU in the
 * test host ask for it. */
static u64 user_rflags(void)
{
	return cmdline_has("ferry.iopl=3") ? 0x202 | (3u << 12) : 0x202;
}

NORETURN void enter_ring3(u32 cpu)
{
	/* As if called: %rsp + 8 is 16-byte aligned at function entry. */
	u64 rsp = (u64)(uintptr_t)(ustacks[cpu] + USTACK_SIZE) - 8;

	enter_user((u64)(uintptr_t)user_main, cpu, rsp, user_rflags());
}

NORETURN void kmain(void)
{
	struct madt_info madt;
	bool ok = copy_start_info();

	console_init();
	if (!ok) {
		console_printf("ferry-agent error: bad hvm_start_info\n");
		halt_forever();
	}
	idt_init();
	paging_init();
	timebase_init();
	if (acpi_init(boot.rsdp_pa, &madt))
		console_printf("ferry-agent warning: no ACPI MADT\n");
	pm_enable_power_button();
	apic_setup(madt.lapic_base);
	cpu_init_common(0);
	crash_if_asked();
	if (!boot.apic_khz)
		boot.apic_khz = apic_timer_calibrate(boot.tsc_khz);
	smp_start_aps(&madt);
	enter_ring3(0);
}
