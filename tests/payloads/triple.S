/* Triple-faults: an empty IDT, then an invalid opcode. A PC resets. */
#include "payload.h"
	.code32
	.text
	.globl pvh_start
pvh_start:
	lidt idt_none
	ud2
idt_none:
	.word 0
	.long 0
