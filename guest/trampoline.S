/*
 * Real-mode AP trampoline. smp.c copies [trampoline_start, trampoline_end)
 * to a free page below 1 MiB and points the SIPI vector at it. The code is
 * position-independent: it addresses its own GDT pointer relative to %cs,
 * and jumps to ap_entry32 in the kernel image (identity-mapped, fixed
 * address), which continues to long mode.
 */
#include "config.h"

	.section .rodata, "a"
	.code16
	.globl trampoline_start, trampoline_end
trampoline_start:
	cli
	cld
	movw %cs, %ax
	movw %ax, %ds
	lgdtl tramp_gdtr - trampoline_start
	movl %cr0, %eax
	orl $1, %eax
	movl %eax, %cr0
	ljmpl $SEL_KCODE32, $ap_entry32
	.balign 4
tramp_gdtr:
	.word GDT_ENTRIES * 8 - 1
	.long gdt
trampoline_end:
	.code64

	.section .note.GNU-stack, "", @progbits
