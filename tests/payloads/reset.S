/* Resets the machine the way the PVH command line's first byte says:
 * 'k' = i8042 command 0xFE, 'c' = 0xCF9 <- 0x06, 'b' = int3 in ring 0
 * without an IDT (an emulation failure on kvm_pvm, a triple fault on
 * VMX/SVM). Prints "reset <how>" first. */
#include "pvh_note.h"
	.code32
	.text
	.globl pvh_start
pvh_start:
	mov 24(%ebx), %esi      /* hvm_start_info.cmdline_paddr (low half) */
	movb (%esi), %bl
	mov $0x3f8, %dx
	mov $msg, %esi
1:	lodsb
	test %al, %al
	jz 2f
	out %al, %dx
	jmp 1b
2:	mov %bl, %al
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
