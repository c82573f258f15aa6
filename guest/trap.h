/* Exception and interrupt dispatch (ring 0). */
#ifndef FERRY_GUEST_TRAP_H
#define FERRY_GUEST_TRAP_H

#include "types.h"

/* Built by isr.S: general registers (last pushed first), then the vector
 * and error code, then the CPU's interrupt frame. */
struct trap_frame {
	u64 r15, r14, r13, r12, r11, r10, r9, r8;
	u64 rbp, rdi, rsi, rdx, rcx, rbx, rax;
	u64 vector, error;
	u64 rip, cs, rflags, rsp, ss;
};

/* The hlt of the idle loop's sti; hlt; cli (syscall.c). */
extern const char idle_hlt[];

/* Called by isr_common for every vector. */
void trap_dispatch(struct trap_frame *f);

/* The CPU index of the caller, from which per-CPU ring-0 stack it is on.
 * Ring 0 only. */
u32 this_cpu(void);

/* Print "ferry-agent PANIC vector=V rip=0x... cpu=C" and halt forever with
 * interrupts off. */
NORETURN void panic(u64 vector, u64 rip);

#endif
