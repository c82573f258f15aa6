/*
 * PVH entry, boot-time page tables and GDT, the switch to long mode (shared
 * by the boot CPU and the APs), and the drop to ring 3.
 *
 * Everything here runs in ring 0, i.e. through KVM's instruction emulator on
 * kvm_pvm (~0.6 us an instruction): the page tables and the GDT are therefore
 * built by the assembler, not by loops at run time.
 */
#include "config.h"

#define X86_CR0_PE      (1 << 0)
#define X86_CR0_NW      (1 << 29)
#define X86_CR0_CD      (1 << 30)
#define X86_CR0_PG      (1 << 31)
#define X86_CR4_PAE     (1 << 5)
#define MSR_EFER        0xc0000080
#define EFER_LME        (1 << 8)

#define PTE_P           0x01
#define PTE_RW          0x02
#define PTE_US          0x04
#define PTE_PWT         0x08
#define PTE_PCD         0x10
#define PTE_PS          0x80

/* XEN_ELFNOTE_PHYS32_ENTRY: QEMU and ferry-vmm find it through PT_NOTE. The
 * descriptor is 8 bytes (QEMU reads a size_t), the entry is in the low 4. */
	.section .note.Xen, "a", @note
	.balign 4
	.long 4                 /* namesz */
	.long 8                 /* descsz */
	.long 18                /* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.balign 4
	.quad pvh_entry
	.balign 4

/* Enter IA-32e mode from 32-bit protected mode and jump to \target.
 * Clears CR0.CD/NW too: an AP comes out of INIT with caching disabled. */
.macro ENTER_LONG target
	movl %cr4, %eax
	orl $X86_CR4_PAE, %eax
	movl %eax, %cr4
	movl $boot_pml4, %eax
	movl %eax, %cr3
	movl $MSR_EFER, %ecx
	rdmsr
	orl $EFER_LME, %eax
	wrmsr
	movl %cr0, %eax
	andl $~(X86_CR0_CD | X86_CR0_NW), %eax
	orl $(X86_CR0_PG | X86_CR0_PE), %eax
	movl %eax, %cr0
	ljmp $SEL_KCODE, $\target
.endm

	.section .text.boot, "ax"
	.code32
	.globl pvh_entry
/* PVH: 32-bit protected mode, paging off, %ebx = struct hvm_start_info. */
pvh_entry:
	cli
	cld
	rdtsc                           /* uptime origin, see README */
	movl %eax, boot_tsc
	movl %edx, boot_tsc + 4
	movl %ebx, pvh_start_info_pa
	lgdt gdt_ptr
	movl $SEL_KDATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	movl $(kstacks + KSTACK_SIZE), %esp
	ENTER_LONG bsp_long

	.globl ap_entry32
/* APs arrive here from the real-mode trampoline (trampoline.S). */
ap_entry32:
	movl $SEL_KDATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	ENTER_LONG ap_long

/* Kernel data in DS/ES/SS, null FS/GS: the state both long-mode entries
 * start C with. Clobbers %eax. */
.macro LOAD_LONG_SEGS
	movl $SEL_KDATA, %eax
	movl %eax, %ds
	movl %eax, %es
	movl %eax, %ss
	xorl %eax, %eax
	movl %eax, %fs
	movl %eax, %gs
.endm

	.code64
bsp_long:
	LOAD_LONG_SEGS
	leaq kstacks + KSTACK_SIZE(%rip), %rsp
	call kmain
	jmp park

/* The BSP hands each AP its CPU index in ap_boot_cpu; the AP takes it with
 * xchg so that an AP which comes up after the BSP gave up on it (AP_NONE)
 * parks instead of sharing another CPU's stack. */
ap_long:
	LOAD_LONG_SEGS
	movl $AP_NONE, %eax
	xchgl %eax, ap_boot_cpu(%rip)
	cmpl $AP_NONE, %eax
	je park
	movl %eax, %edi                 /* zero-extends into %rdi */
	leaq 1(%rdi), %rax
	imulq $KSTACK_SIZE, %rax
	leaq kstacks(%rip), %rsp
	addq %rax, %rsp
	call ap_main
park:
	cli
	hlt
	jmp park

	.globl enter_user
/* void enter_user(u64 entry, u64 arg, u64 user_rsp, u64 rflags): iretq to
 * ring 3 with those flags (IF set by the caller), %rdi = arg. Segment
 * registers are nulled (fine in 64-bit mode). */
enter_user:
	xorl %eax, %eax
	movl %eax, %ds
	movl %eax, %es
	pushq $SEL_UDATA
	pushq %rdx
	pushq %rcx
	pushq $SEL_UCODE
	pushq %rdi
	movq %rsi, %rdi
	xorl %esi, %esi
	xorl %edx, %edx
	xorl %ecx, %ecx
	xorl %r8d, %r8d
	xorl %r9d, %r9d
	xorl %r10d, %r10d
	xorl %r11d, %r11d
	iretq

	.data
	.globl boot_tsc, pvh_start_info_pa, ap_boot_cpu, gdt, gdt_ptr
	.balign 8
boot_tsc:
	.quad 0
pvh_start_info_pa:
	.quad 0
ap_boot_cpu:
	.long AP_NONE
	.long 0

	.balign 16
gdt:
	.quad 0
	.quad 0x00af9a000000ffff        /* 0x08 ring-0 code, 64-bit */
	.quad 0x00cf92000000ffff        /* 0x10 ring-0 data */
	.quad 0x00cf9a000000ffff        /* 0x18 ring-0 code, 32-bit */
	.quad 0x00cff2000000ffff        /* 0x20 ring-3 data */
	.quad 0x00affa000000ffff        /* 0x28 ring-3 code, 64-bit */
	.fill 2 * MAX_CPUS, 8, 0        /* 0x30 TSS descriptors, set in desc.c */
gdt_end:
	.balign 8
	.word 0
gdt_ptr:                                /* used in 32- and 64-bit mode */
	.word gdt_end - gdt - 1
	.quad gdt

/*
 * Identity map of the first 4 GiB in 2 MiB pages, user-accessible, with
 * 3 GiB-4 GiB uncached: no RAM lies there under QEMU -M pc or ferry-vmm,
 * only PCI BARs (which ring 3 drives), the IOAPIC and the local APIC. Built by the
 * assembler so that ring 0 spends no time on it; paging.c adds RAM above
 * 4 GiB at run time.
 */
	.balign 4096
	.globl boot_pml4, boot_pdpt
boot_pml4:
	.quad boot_pdpt + (PTE_P | PTE_RW | PTE_US)
	.fill 511, 8, 0
boot_pdpt:
	.quad boot_pd + 0x0000 + (PTE_P | PTE_RW | PTE_US)
	.quad boot_pd + 0x1000 + (PTE_P | PTE_RW | PTE_US)
	.quad boot_pd + 0x2000 + (PTE_P | PTE_RW | PTE_US)
	.quad boot_pd + 0x3000 + (PTE_P | PTE_RW | PTE_US)
	.fill 508, 8, 0
boot_pd:
	.set i, 0
	.rept 2048
	.if i >= (0xc0000000 >> 21)
	.quad (i << 21) + (PTE_P | PTE_RW | PTE_US | PTE_PS | PTE_PWT | PTE_PCD)
	.else
	.quad (i << 21) + (PTE_P | PTE_RW | PTE_US | PTE_PS)
	.endif
	.set i, i + 1
	.endr

	.bss
	.balign 4096
	.globl kstacks
kstacks:
	.space KSTACK_SIZE * MAX_CPUS

	.section .note.GNU-stack, "", @progbits
