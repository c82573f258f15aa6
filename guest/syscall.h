/*
 * The system-call ABI. Ring 3 executes `ud2` with the call number in RAX
 * and arguments in RDI, RSI, RDX; the #UD handler (ring 0) runs the call,
 * returns its result in RAX, preserves every other register, and resumes
 * after the ud2. INT n and SYSCALL do not reach ring 0 on kvm_pvm;
 * exceptions do. A round trip costs ~20 us there.
 */
#ifndef FERRY_GUEST_SYSCALL_H
#define FERRY_GUEST_SYSCALL_H

#include "types.h"

enum {
	SYS_WRITE = 1,          /* (buf, len): console write; returns len */
	SYS_SLEEP_UNTIL = 2,    /* (tsc): sleep until rdtsc >= tsc; 0 */
	SYS_POWEROFF = 3,       /* (): ACPI S5; returns only by halting */
	SYS_TIMER_TICKS = 4,    /* (cpu): APIC timer interrupts of that CPU */
	SYS_POWER_BUTTON = 5,   /* (): 1 if the ACPI power button was pressed (cleared) */
};

#define SYS_ENOSYS ((u64)-38)
#define SYS_EINVAL ((u64)-22)

/* Ring 0: sets PWRBTN_EN, so that a press is reported (and raises an SCI
 * on a machine that routes it). */
void pm_enable_power_button(void);

/* Ring 0: run call nr. */
u64 syscall_dispatch(u64 nr, u64 a0, u64 a1, u64 a2);

/* Ring 3 side. */
static inline u64 sys_call(u64 nr, u64 a0, u64 a1, u64 a2)
{
	u64 ret;

	asm volatile("ud2" : "=a"(ret) : "a"(nr), "D"(a0), "S"(a1), "d"(a2)
		     : "memory");
	return ret;
}

static inline void sys_sleep_until(u64 tsc)
{
	sys_call(SYS_SLEEP_UNTIL, tsc, 0, 0);
}

static inline int sys_power_button(void)
{
	return sys_call(SYS_POWER_BUTTON, 0, 0, 0) == 1;
}

static inline NORETURN void sys_poweroff(void)
{
	sys_call(SYS_POWEROFF, 0, 0, 0);
	__builtin_unreachable();
}

#endif
