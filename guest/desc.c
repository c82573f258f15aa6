/* GDT TSS descriptors, TSSes and IDT; see desc.h. */
#include "desc.h"

/*
 * 64-bit TSS with an I/O permission bitmap. kvm_pvm ignores IOPL for ring 3,
 * but honours the bitmap: byte 0x7f covers ports 0x3f8-0x3ff (COM1) and
 * byte 0x19f ports 0xcf8-0xcff (PCI configuration mechanism #1), which
 * ring 3 may use; every other port up to there is closed; ports beyond the
 * bitmap lie past the TSS limit and are closed too. The terminating 0xff
 * byte is required by the CPU. Initialised statically so ring 0 does no
 * loop.
 */
struct tss {
	u32 reserved0;
	u64 rsp[3];
	u64 reserved1;
	u64 ist[7];
	u64 reserved2;
	u16 reserved3;
	u16 iomap_base;
	u8 iomap[0x1a0 + 1];
} PACKED __attribute__((aligned(16)));

#define TSS_INIT { .iomap_base = offsetof(struct tss, iomap),		\
		   .iomap = { [0 ... 0x7e] = 0xff, [0x7f] = 0x00,	\
			      [0x80 ... 0x19e] = 0xff, [0x19f] = 0x00,	\
			      [0x1a0] = 0xff } }

static struct tss tss[MAX_CPUS] = { [0 ... MAX_CPUS - 1] = TSS_INIT };

struct idt_gate {
	u16 off0;
	u16 sel;
	u8 ist;
	u8 type;
	u16 off1;
	u32 off2;
	u32 reserved;
} PACKED;

static struct idt_gate idt[256] __attribute__((aligned(16)));

/* A double fault runs on a stack of its own (IST 1): one that comes of a
 * broken stack then still prints its PANIC line instead of becoming a
 * triple fault, which the VMM can only report as a reset (on SVM, KVM
 * resets the vCPU before anyone can read where it was). */
#define VEC_DF 8
#define DF_STACK_SIZE 4096
#define DF_IST 1
static u8 df_stacks[MAX_CPUS][DF_STACK_SIZE] __attribute__((aligned(16)));

extern u64 gdt[GDT_ENTRIES];
extern char kstacks[];
extern const u64 isr_table[34 + MSI_VECTORS];

_Static_assert(VEC_MSI_BASE == 0x50 && MSI_VECTORS == 16,
	       "isr.S spells out the MSI vectors 0x50-0x5f");

static void set_gate(u8 vec, u64 handler, u8 ist)
{
	struct idt_gate *g = &idt[vec];

	g->off0 = (u16)handler;
	g->sel = SEL_KCODE;
	g->ist = ist;
	g->type = 0x8e;         /* present, DPL 0, interrupt gate (IF off) */
	g->off1 = (u16)(handler >> 16);
	g->off2 = (u32)(handler >> 32);
}

void idt_init(void)
{
	for (u8 v = 0; v < 32; v++)
		set_gate(v, isr_table[v], v == VEC_DF ? DF_IST : 0);
	set_gate(VEC_TIMER, isr_table[32], 0);
	set_gate(VEC_SPURIOUS, isr_table[33], 0);
	for (u8 i = 0; i < MSI_VECTORS; i++)
		set_gate(VEC_MSI_BASE + i, isr_table[34 + i], 0);
}

static void set_tss_desc(u32 cpu)
{
	u64 base = (u64)(uintptr_t)&tss[cpu];
	u64 limit = sizeof(struct tss) - 1;
	u32 slot = (SEL_TSS0 >> 3) + 2 * cpu;

	gdt[slot] = (limit & 0xffff) | ((base & 0xffffff) << 16) |
		    (0x89ULL << 40) |  /* present, 64-bit TSS (available) */
		    (((limit >> 16) & 0xf) << 48) |
		    (((base >> 24) & 0xff) << 56);
	gdt[slot + 1] = base >> 32;
}

void desc_load_cpu(u32 cpu)
{
	struct { u16 limit; u64 base; } PACKED idtr = {
		sizeof(idt) - 1, (u64)(uintptr_t)idt
	};
	u16 sel = (u16)(SEL_TSS0 + 16 * cpu);

	tss[cpu].rsp[0] = (u64)(uintptr_t)(kstacks + (u64)(cpu + 1) * KSTACK_SIZE);
	tss[cpu].ist[DF_IST - 1] = (u64)(uintptr_t)(df_stacks[cpu] + DF_STACK_SIZE);
	set_tss_desc(cpu);
	asm volatile("lidt %0" : : "m"(idtr));
	asm volatile("ltr %0" : : "r"(sel));
}
