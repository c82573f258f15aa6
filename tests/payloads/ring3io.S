/* Port I/O from ring 3 through the TSS's I/O permission bitmap, for ever:
 * goes to long mode (2 MiB pages over the first 8 MiB, user-accessible),
 * loads a 64-bit TSS whose bitmap opens port RING3IO_PORT and nothing
 * else, drops to ring 3 and there writes an incrementing byte to that
 * port in a loop. No IDT (limit 0): any fault — a #GP on the OUT above
 * all — ends in a triple fault, which the VMM sees as a shutdown.
 * TR ends up as: selector 0x28, base `tss`, limit RING3IO_TSS_LIMIT,
 * whose values the test knows from here. */
#include "payload.h"

#define RING3IO_PORT 0x88            /* no device of the ferry PC is there */
/* The 104-byte TSS, the bitmap up to RING3IO_PORT's byte, the 0xff byte. */
#define RING3IO_TSS_LIMIT (0x68 + RING3IO_PORT / 8 + 2 - 1)
#define SEL_KCODE 0x08
#define SEL_KDATA 0x10
#define SEL_UDATA 0x18
#define SEL_UCODE 0x20
#define SEL_TSS 0x28
#define USER_STACK 0x80000

	.code32
	.text
	.globl pvh_start
pvh_start:
	mov $PAYLOAD_STACK, %esp
	/* The TSS descriptor's base, split over its fields. */
	mov $tss, %eax
	mov %ax, gdt_tss + 2
	shr $16, %eax
	mov %al, gdt_tss + 4
	mov %ah, gdt_tss + 7
	lgdt gdtr
	mov %cr4, %eax
	or $0x20, %eax                  /* PAE */
	mov %eax, %cr4
	mov $pml4, %eax
	mov %eax, %cr3
	mov $0xc0000080, %ecx           /* EFER.LME */
	rdmsr
	or $0x100, %eax
	wrmsr
	mov %cr0, %eax
	or $0x80000001, %eax            /* PG, PE */
	mov %eax, %cr0
	ljmp $SEL_KCODE, $long_mode

	.code64
long_mode:
	mov $SEL_KDATA, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	lidt idt_none
	mov $SEL_TSS, %ax
	ltr %ax
	/* iretq to ring 3: SS, RSP, RFLAGS (IF and IOPL 0), CS, RIP. */
	pushq $(SEL_UDATA | 3)
	pushq $USER_STACK
	pushq $0x2
	pushq $(SEL_UCODE | 3)
	pushq $user
	iretq

user:
	mov $RING3IO_PORT, %dx
	xor %eax, %eax
1:	inc %eax
	out %al, %dx
	jmp 1b

	.data
	.balign 8
gdt:
	.quad 0
	.quad 0x00af9a000000ffff         /* 0x08: ring-0 64-bit code */
	.quad 0x00cf92000000ffff         /* 0x10: ring-0 data */
	.quad 0x00cff2000000ffff         /* 0x18: ring-3 data */
	.quad 0x00affa000000ffff         /* 0x20: ring-3 64-bit code */
gdt_tss:                                 /* 0x28: 64-bit TSS, available; base set above */
	.word RING3IO_TSS_LIMIT
	.word 0
	.byte 0, 0x89, 0, 0
	.quad 0
gdt_end:
gdtr:
	.word gdt_end - gdt - 1
	.long gdt
idt_none:
	.word 0
	.quad 0

	.balign 16
tss:
	.long 0
	.quad PAYLOAD_STACK              /* RSP0 */
	.fill 0x66 - 12, 1, 0
	.word 0x68                       /* I/O bitmap right after the TSS */
	.fill RING3IO_PORT / 8, 1, 0xff  /* ports below RING3IO_PORT closed */
	.byte ~(1 << (RING3IO_PORT % 8)) & 0xff /* RING3IO_PORT open */
	.byte 0xff                       /* the terminating byte the CPU needs */

	.balign 4096
pml4:
	.quad pdpt + 0x7                 /* present, writable, user */
	.fill 511, 8, 0
pdpt:
	.quad pd + 0x7
	.fill 511, 8, 0
pd:
	.quad 0x000000 + 0x87            /* present, writable, user, 2 MiB */
	.quad 0x200000 + 0x87
	.quad 0x400000 + 0x87
	.quad 0x600000 + 0x87
	.fill 508, 8, 0
