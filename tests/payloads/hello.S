/* Prints "hello from payload" on COM1, then powers off through the ACPI
 * PM1a control port ferry's FADT names (0x604, SLP_TYP 5). Runs entirely
 * in 32-bit protected mode, as PVH enters it. */
#include "pvh_note.h"
	.code32
	.text
	.globl pvh_start
pvh_start:
	mov $msg, %esi
1:	lodsb
	test %al, %al
	jz 2f
	mov $0x3f8, %dx
	outb %al, %dx
	jmp 1b
2:	mov $0x604, %dx
	mov $(5 << 10 | 1 << 13), %ax
	outw %ax, %dx
3:	hlt
	jmp 3b
msg:	.asciz "hello from payload\n"
