/* Serial input: prints "echo ready", then echoes every byte received on
 * COM1 in upper case (polling LSR.DR), until it reads '!'; then powers off. */
#include "payload.h"
	.code32
	.text
	.globl pvh_start
pvh_start:
	mov $PAYLOAD_STACK, %esp
	mov $0x3fa, %dx
	mov $0x07, %al          /* FCR: FIFO on, both cleared (before "ready") */
	out %al, %dx
	mov $msg, %esi
	call puts
1:	mov $0x3fd, %dx         /* LSR */
	in %dx, %al
	test $1, %al
	jnz 2f
	pause
	jmp 1b
2:	mov $0x3f8, %dx
	in %dx, %al
	cmp $'!', %al
	je off
	cmp $'a', %al
	jb 3f
	cmp $'z', %al
	ja 3f
	sub $0x20, %al
3:	out %al, %dx
	jmp 1b
off:	mov $0x604, %dx
	mov $(5 << 10 | 1 << 13), %ax
	out %ax, %dx
4:	hlt
	jmp 4b

msg:	.asciz "echo ready\n"
