/* The XEN_ELFNOTE_PHYS32_ENTRY note that makes an ELF a PVH kernel. */
	.pushsection .note.pvh, "a"
	.balign 4
	.long 4             /* namesz */
	.long 4             /* descsz */
	.long 18            /* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.long pvh_start
	.popsection
