/* Ring-0 side of the ud2 system calls; see syscall.h. */
#include "syscall.h"
#include "apic.h"
#include "bootinfo.h"
#include "console.h"
#include "timebase.h"
#include "trap.h"
#include "x86.h"

#define SLP_EN          (1u << 13)
#define MAX_SLEEP_MS    1000    /* one-shot count stays well below 2^32 */

static u64 do_write(u64 buf, u64 len)
{
	if (len > 4096 || buf + len < buf || buf + len > boot.mapped_top)
		return SYS_EINVAL;
	console_write((const char *)(uintptr_t)buf, len);
	return len;
}

static u32 tsc_to_apic(u64 delta)
{
	u64 max = boot.tsc_khz * MAX_SLEEP_MS;

	if (delta > max)
		delta = max;
	return (u32)(delta * boot.apic_khz / boot.tsc_khz) + 1;
}

/* sti; hlt; cli as one function, so that the hlt has one address the
 * interrupt handlers know (idle_hlt, trap.h). */
asm(".text\n"
    ".globl idle_sti_hlt\n"
    "idle_sti_hlt:\n\t"
    "sti\n"
    ".globl idle_hlt\n"
    "idle_hlt:\n\t"
    "hlt\n\t"
    "cli\n\t"
    "ret\n");
void idle_sti_hlt(void);

/*
 * One-shot APIC timer for the remaining time, then sti;hlt until it fired
 * (sti's one-instruction shadow closes the race with an interrupt that is
 * already pending; where a CPU breaks that, trap_dispatch steps over the
 * hlt). Loop: the timer may fire early by a rounding error, or the sleep
 * may be longer than one timer period.
 */
static u64 do_sleep_until(u64 deadline)
{
	struct percpu *pc = &percpu[this_cpu()];
	u64 now;

	while ((now = rdtsc()) < deadline) {
		pc->timer_fired = 0;
		apic_timer_oneshot(tsc_to_apic(deadline - now));
		while (!pc->timer_fired)
			idle_sti_hlt();
	}
	return 0;
}

#define PWRBTN          (1u << 8)       /* PM1 STS and EN: the power button */

/* The power button, polled (the test guest takes no SCI): its status bit
 * is write-1-to-clear. PWRBTN_EN was set at start (pm_enable_power_button). */
static u64 do_power_button(void)
{
	if (!boot.pm1a_evt || !(inw(boot.pm1a_evt) & PWRBTN))
		return 0;
	outw(boot.pm1a_evt, PWRBTN);
	return 1;
}

void pm_enable_power_button(void)
{
	if (boot.pm1a_evt)
		outw((u16)(boot.pm1a_evt + 2), (u16)(inw((u16)(boot.pm1a_evt + 2)) | PWRBTN));
}

static NORETURN void do_poweroff(void)
{
	console_printf("ferry-agent poweroff\n");
	if (boot.pm1a_cnt)
		outw(boot.pm1a_cnt, (u16)((boot.slp_typa << 10) | SLP_EN));
	tsc_delay_us(100000);
	console_printf("ferry-agent error: poweroff failed\n");
	halt_forever();
	__builtin_unreachable();
}

u64 syscall_dispatch(u64 nr, u64 a0, u64 a1, u64 a2)
{
	(void)a2;
	switch (nr) {
	case SYS_WRITE:
		return do_write(a0, a1);
	case SYS_SLEEP_UNTIL:
		return do_sleep_until(a0);
	case SYS_POWEROFF:
		do_poweroff();
	case SYS_POWER_BUTTON:
		return do_power_button();
	case SYS_TIMER_TICKS:
		return a0 < boot.ncpus ? percpu[a0].timer_ticks : 0;
	default:
		return SYS_ENOSYS;
	}
}
