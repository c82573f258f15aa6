/* Counts forever: increments the 32-bit word at 0x200000 (guest-physical)
 * in a loop, printing "spin\n" once at start. The pause test reads the word
 * from the host to see whether the vCPU runs. Needs a stack: none used. */
#include "pvh_note.h"
	.code32
	.text
	.globl pvh_start
pvh_start:
	mov $0x3f8, %dx
	mov $msg, %esi
1:	lodsb
	test %al, %al
	jz 2f
	out %al, %dx
	jmp 1b
2:	incl 0x200000
	jmp 2b
msg:	.asciz "spin\n"
