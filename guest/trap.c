/* Exception and interrupt dispatch; see trap.h. */
#include "trap.h"
#include "apic.h"
#include "bootinfo.h"
#include "console.h"
#include "syscall.h"
#include "x86.h"

#define VEC_UD  6
#define VEC_PF  14

extern char kstacks[];

u32 this_cpu(void)
{
	u64 rsp;

	asm volatile("movq %%rsp, %0" : "=r"(rsp));
	return (u32)((rsp - (u64)(uintptr_t)kstacks) / KSTACK_SIZE);
}

NORETURN void panic(u64 vector, u64 rip)
{
	console_printf_force("ferry-agent PANIC vector=%lu rip=0x%lx cpu=%u\n",
			     vector, rip, this_cpu());
	halt_forever();
	__builtin_unreachable();
}

static bool is_user_ud2(const struct trap_frame *f)
{
	return f->vector == VEC_UD && (f->cs & 3) == 3 &&
	       *(const volatile u16 *)(uintptr_t)f->rip == 0x0b0f;
}

static void timer_interrupt(void)
{
	struct percpu *pc = &percpu[this_cpu()];

	pc->timer_ticks++;
	pc->timer_fired = 1;
	lapic_eoi();
}

volatile u64 msi_count[MSI_VECTORS];

/* A device interrupt: count it for ring 3, which polls the device anyway. */
static void msi_interrupt(u64 vector)
{
	msi_count[vector - VEC_MSI_BASE]++;
	lapic_eoi();
}

static NORETURN void fault(const struct trap_frame *f)
{
	u64 cr2 = 0;

	if (f->vector == VEC_PF)
		asm volatile("movq %%cr2, %0" : "=r"(cr2));
	/* CPU by APIC ID (= index here): a #DF runs on its own stack, which
	 * this_cpu cannot place. */
	console_printf_force("ferry-agent PANIC vector=%lu rip=0x%lx cpu=%u\n"
			     "ferry-agent panic detail: err=0x%lx cs=0x%lx "
			     "rsp=0x%lx cr2=0x%lx\n",
			     f->vector, f->rip, apic_id(), f->error, f->cs,
			     f->rsp, cr2);
	halt_forever();
	__builtin_unreachable();
}

/*
 * An interrupt taken with the idle loop's hlt still to run broke sti's
 * shadow: the hlt would then wait for a next interrupt, though the one it
 * waited for has come — for good if that was the timer the loop armed.
 * Hardware never does this; QEMU's emulated SVM (the test host,
 * docs/testing.md) was seen to: a host interrupt exits the guest between
 * sti and hlt, and on the next VMRUN the interrupt window KVM asks for
 * opens at once, on the hlt (KVM's trace: exit "vintr" at the hlt's
 * address, the timer's vector injected there, then the hlt, then nothing;
 * the guest stuck halted with its timer spent). So the handler steps over
 * that hlt, as if the interrupt had woken it.
 */
static void skip_idle_hlt(struct trap_frame *f)
{
	if (f->rip == (u64)(uintptr_t)idle_hlt)
		f->rip++;
}

void trap_dispatch(struct trap_frame *f)
{
	if (f->vector >= 32)    /* an interrupt, not an exception */
		skip_idle_hlt(f);
	if (is_user_ud2(f)) {
		f->rax = syscall_dispatch(f->rax, f->rdi, f->rsi, f->rdx);
		f->rip += 2;
		return;
	}
	if (f->vector == VEC_TIMER) {
		timer_interrupt();
		return;
	}
	if (f->vector == VEC_SPURIOUS)
		return;
	if (f->vector - VEC_MSI_BASE < MSI_VECTORS) {
		msi_interrupt(f->vector);
		return;
	}
	fault(f);
}
