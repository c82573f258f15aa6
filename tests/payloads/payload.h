/* What every tiny PVH payload shares: the XEN_ELFNOTE_PHYS32_ENTRY note
 * that makes the ELF a PVH kernel, a stack (PVH gives none), and puts. */
	.pushsection .note.pvh, "a"
	.balign 4
	.long 4             /* namesz */
	.long 4             /* descsz */
	.long 18            /* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.long pvh_start
	.popsection

#define PAYLOAD_STACK 0x90000

/* puts: writes the NUL-terminated string at %esi to COM1. Clobbers %eax,
 * %edx, %esi. */
	.pushsection .text.lib, "ax"
	.code32
puts:
	mov $0x3f8, %dx
1:	lodsb
	test %al, %al
	jz 2f
	out %al, %dx
	jmp 1b
2:	ret
	.popsection
