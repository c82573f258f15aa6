/* Counts forever: increments the 32-bit word at 0x200000 (guest-physical)
 * in a loop, printing "spin\n" once at start. The pause test reads the word
 * from the host to see whether the vCPU runs. */
#include "payload.h"
	.code32
	.text
	.globl pvh_start
pvh_start:
	mov $PAYLOAD_STACK, %esp
	mov $msg, %esi
	call puts
2:	incl 0x200000
	jmp 2b
msg:	.asciz "spin\n"
