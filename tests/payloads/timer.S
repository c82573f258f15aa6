/* One one-shot APIC timer interrupt, counted: in 32-bit protected mode
 * (no paging), loads a GDT and an IDT whose vector TIMER_VECTOR counts
 * each interrupt with a write to port TIMER_IRQ_PORT (then EOI), enables
 * the local APIC, arms its timer once, one-shot, TIMER_TMICT ticks at
 * divide-by-1 (KVM's APIC bus runs at 1 GHz: 200 ms), says so with a write
 * to port TIMER_ARMED_PORT and halts with interrupts on, for ever. The
 * timer is never armed again: a second interrupt would be a spurious one.
 * tests/kvm/test_state.c pauses the vCPU before the timer runs out and
 * saves it after, so that the interrupt is due but not yet delivered. */
#include "payload.h"

#define TIMER_VECTOR 0x40
#define TIMER_IRQ_PORT 0x89
#define TIMER_ARMED_PORT 0x8a
#define TIMER_TMICT 200000000
#define APIC 0xfee00000
#define SEL_CODE 0x08
#define SEL_DATA 0x10

	.code32
	.text
	.globl pvh_start
pvh_start:
	mov $PAYLOAD_STACK, %esp
	lgdt gdtr
	ljmp $SEL_CODE, $1f
1:	mov $SEL_DATA, %ax
	mov %ax, %ds
	mov %ax, %es
	mov %ax, %ss
	/* The interrupt gate: handler's offset split over the gate's halves. */
	mov $timer_irq, %eax
	mov %ax, idt + TIMER_VECTOR * 8
	shr $16, %eax
	mov %ax, idt + TIMER_VECTOR * 8 + 6
	lidt idtr
	movl $0x1ff, APIC + 0xf0        /* SVR: enabled, spurious vector 0xff */
	movl $0xb, APIC + 0x3e0         /* divide by 1 */
	movl $TIMER_VECTOR, APIC + 0x320 /* LVTT: one-shot, unmasked */
	movl $TIMER_TMICT, APIC + 0x380
	mov $TIMER_ARMED_PORT, %dx
	out %al, %dx
halt:
	mov $PAYLOAD_STACK, %esp
	sti
2:	hlt
	jmp 2b

/* Back to the halt loop rather than iret, which kvm_pvm's instruction
 * emulator (ring 0 there) cannot run in protected mode. */
timer_irq:
	mov $TIMER_IRQ_PORT, %dx
	out %al, %dx
	movl $0, APIC + 0xb0            /* EOI */
	jmp halt

	.data
	.balign 8
gdt:
	.quad 0
	.quad 0x00cf9a000000ffff         /* 0x08: 32-bit code */
	.quad 0x00cf92000000ffff         /* 0x10: data */
gdtr:
	.word 3 * 8 - 1
	.long gdt
	.balign 8
idt:
	.fill TIMER_VECTOR, 8, 0
	/* 32-bit interrupt gate, present, DPL 0; offset filled in above */
	.word 0, SEL_CODE, 0x8e00, 0
idt_end:
idtr:
	.word idt_end - idt - 1
	.long idt

