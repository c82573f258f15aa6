/* Exercises the ferry PC's port-I/O devices from 32-bit protected mode and
 * reports on COM1: "pio ok" when every device answered as a PC's would,
 * else "pio FAIL <letter>". Then powers off (ACPI PM1a_CNT, SLP_TYP 5). */
#include "payload.h"
	.code32
	.text
	.globl pvh_start
pvh_start:
	mov $PAYLOAD_STACK, %esp
	/* a: CMOS register D reads 0x80 (valid RAM and time). */
	mov $'a', %bl
	mov $0x0d, %al
	out %al, $0x70
	in $0x71, %al
	cmp $0x80, %al
	jne fail
	/* b: i8042 controller self-test answers 0x55. */
	mov $'b', %bl
	mov $0xaa, %al
	out %al, $0x64
	in $0x64, %al
	test $1, %al
	jz fail
	in $0x60, %al
	cmp $0x55, %al
	jne fail
	/* c: PM1a_CNT has SCI_EN set (ACPI mode, no SMI). */
	mov $'c', %bl
	mov $0x604, %dx
	in %dx, %ax
	test $1, %ax
	jz fail
	/* d: the UART's scratch register keeps what is written. */
	mov $'d', %bl
	mov $0x3ff, %dx
	mov $0x5a, %al
	out %al, %dx
	in %dx, %al
	cmp $0x5a, %al
	jne fail
	/* e: the ACPI PM timer advances. */
	mov $'e', %bl
	mov $0x608, %dx
	in %dx, %eax
	mov %eax, %ecx
	mov $100000, %esi
1:	in %dx, %eax
	cmp %eax, %ecx
	jne 2f
	dec %esi
	jnz 1b
	jmp fail
	/* f: an unclaimed port reads all ones. */
2:	mov $'f', %bl
	mov $0x2e8, %dx
	in %dx, %al
	cmp $0xff, %al
	jne fail
	mov $msg_ok, %esi
	call puts
	jmp off
fail:
	mov $msg_fail, %esi
	call puts
	mov %bl, %al
	mov $0x3f8, %dx
	out %al, %dx
	mov $'\n', %al
	out %al, %dx
off:
	mov $0x604, %dx
	mov $(5 << 10 | 1 << 13), %ax
	out %ax, %dx
3:	hlt
	jmp 3b

msg_ok:	.asciz "pio ok\n"
msg_fail: .asciz "pio FAIL "
