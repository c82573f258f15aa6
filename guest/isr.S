/*
 * Interrupt and exception entry stubs. Each pushes (error code, vector) and
 * all general registers, forming a struct trap_frame (trap.h), and calls
 * trap_dispatch(frame). In 64-bit mode the CPU aligns %rsp to 16 before
 * pushing its frame; 22 quadwords later the call is 16-byte aligned again.
 * No swapgs: the guest does not use %gs.
 */
#include "config.h"

.macro STUB vec, has_err
	.text
isr_\vec:
	.if \has_err == 0
	pushq $0
	.endif
	pushq $\vec
	jmp isr_common
	.section .rodata
	.quad isr_\vec
.endm

	.section .rodata
	.balign 8
	.globl isr_table
/* isr_table[0..31] = exceptions, [32] = timer, [33] = spurious,
 * [34..49] = MSI vectors VEC_MSI_BASE.. (config.h; the numbers are spelled
 * out below because the stub labels are made from them). */
isr_table:

	STUB 0, 0
	STUB 1, 0
	STUB 2, 0
	STUB 3, 0
	STUB 4, 0
	STUB 5, 0
	STUB 6, 0
	STUB 7, 0
	STUB 8, 1
	STUB 9, 0
	STUB 10, 1
	STUB 11, 1
	STUB 12, 1
	STUB 13, 1
	STUB 14, 1
	STUB 15, 0
	STUB 16, 0
	STUB 17, 1
	STUB 18, 0
	STUB 19, 0
	STUB 20, 0
	STUB 21, 1
	STUB 22, 0
	STUB 23, 0
	STUB 24, 0
	STUB 25, 0
	STUB 26, 0
	STUB 27, 0
	STUB 28, 0
	STUB 29, 1
	STUB 30, 1
	STUB 31, 0
	STUB VEC_TIMER, 0
	STUB VEC_SPURIOUS, 0
	.irp v, 0x50,0x51,0x52,0x53,0x54,0x55,0x56,0x57,0x58,0x59,0x5a,0x5b,0x5c,0x5d,0x5e,0x5f
	STUB \v, 0
	.endr

	.text
isr_common:
	pushq %rax
	pushq %rbx
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %rbp
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	pushq %r12
	pushq %r13
	pushq %r14
	pushq %r15
	cld
	movq %rsp, %rdi
	call trap_dispatch
	popq %r15
	popq %r14
	popq %r13
	popq %r12
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rbp
	popq %rdi
	popq %rsi
	popq %rdx
	popq %rcx
	popq %rbx
	popq %rax
	addq $16, %rsp
	iretq

	.section .note.GNU-stack, "", @progbits
