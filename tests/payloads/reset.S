/* Resets the machine the way the PVH command line's first byte says:
 * 'k' = i8042 command 0xFE, 'c' = 0xCF9 <- 0x06, 'b' = int3 in ring 0
 * without an IDT (an emulation failure on kvm_pvm, a triple fault on
 * VMX/SVM). Prints "reset <how>" first. */
#include "payload.h"
	.code32
	.text
	.globl pvh_start
pvh_start:
	mov $PAYLOAD_STACK, %esp
	mov 24(%ebx), %esi      /* hvm_start_info.cmdline_paddr (low half) */
	movb (%esi), %bl
	mov $msg, %esi
	call puts
	mov $0x3f8, %dx
	mov %bl, %al
	out %al, %dx
	mov $'\n', %al
	out %al, %dx
	cmp $'k', %bl
	je kbd
	cmp $'c', %bl
	je cf9
	lidt idt_none
	int3
	jmp hang
kbd:	mov $0xfe, %al
	out %al, $0x64
	jmp hang
cf9:	mov $0xcf9, %dx
	mov $0x06, %al
	out %al, %dx
hang:	hlt
	jmp hang
idt_none:
	.word 0
	.long 0
msg:	.asciz "reset "
