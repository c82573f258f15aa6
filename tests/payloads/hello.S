/* Prints "hello from payload" on COM1, then powers off through the ACPI
 * PM1a control port ferry's FADT names (0x604, SLP_TYP 5). Runs entirely
 * in 32-bit protected mode, as PVH enters it. */
#include "payload.h"
	.code32
	.text
	.globl pvh_start
pvh_start:
	mov $PAYLOAD_STACK, %esp
	mov $msg, %esi
	call puts
	mov $0x604, %dx
	mov $(5 << 10 | 1 << 13), %ax
	outw %ax, %dx
3:	hlt
	jmp 3b
msg:	.asciz "hello from payload\n"
