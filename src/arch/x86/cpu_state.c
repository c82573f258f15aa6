#include "arch/x86/cpu_state.h"

#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>

#include "common/util.h"

#define APIC_LVT_LINT0 0x350
#define APIC_LVT_LINT1 0x360
#define APIC_DM_NMI 0x400
#define APIC_DM_EXTINT 0x700
#define APIC_DM_MASK 0x700

#define X86_CR0_PE 0x1ull
#define X86_CR0_ET 0x10ull

int x86_vcpu_set_cpuid(int vcpu_fd, struct cpuid_table *t)
{
	return ioctl(vcpu_fd, KVM_SET_CPUID2, &t->head) < 0 ? -errno : 0;
}

static void lapic_set_mode(struct kvm_lapic_state *l, unsigned reg, uint32_t mode)
{
	uint32_t v = get_le32(&l->regs[reg]);

	put_le32(&l->regs[reg], (v & ~APIC_DM_MASK) | mode);
}

int x86_vcpu_init_lapic(int vcpu_fd)
{
	struct kvm_lapic_state l;

	if (ioctl(vcpu_fd, KVM_GET_LAPIC, &l) < 0)
		return -errno;
	lapic_set_mode(&l, APIC_LVT_LINT0, APIC_DM_EXTINT);
	lapic_set_mode(&l, APIC_LVT_LINT1, APIC_DM_NMI);
	return ioctl(vcpu_fd, KVM_SET_LAPIC, &l) < 0 ? -errno : 0;
}

static void flat_segment(struct kvm_segment *s, uint16_t selector, uint8_t type)
{
	*s = (struct kvm_segment){
		.base = 0,
		.limit = 0xffffffff,
		.selector = selector,
		.type = type,
		.present = 1,
		.dpl = 0,
		.db = 1,
		.s = 1,
		.l = 0,
		.g = 1,
	};
}

int x86_vcpu_set_pvh_entry(int vcpu_fd, uint64_t entry, uint64_t start_info)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs = { 0 };

	if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	/* PVH: "CS: 32-bit read/execute, base 0, limit 4G; DS, ES, SS: 32-bit
	 * read/write, base 0, limit 4G; TR: 32-bit TSS (type 11), base 0,
	 * limit 0x67; CR0: PE set, PG clear; CR4: 0; EFLAGS: bits 9 (IF) and
	 * 17 (VM) clear; EBX: start_info" (Xen docs/misc/pvh.pandoc). */
	flat_segment(&sregs.cs, 0x10, 0xb);
	flat_segment(&sregs.ds, 0x18, 0x3);
	sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
	sregs.tr = (struct kvm_segment){ .selector = 0x20, .limit = 0x67, .type = 11,
					 .present = 1 };
	sregs.cr0 = X86_CR0_PE | X86_CR0_ET;
	sregs.cr4 = 0;
	sregs.efer = 0;
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0)
		return -errno;
	regs.rip = entry;
	regs.rbx = start_info;
	regs.rflags = 0x2;
	return ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0 ? -errno : 0;
}

uint64_t x86_vcpu_rip(int vcpu_fd)
{
	struct kvm_regs regs;

	return ioctl(vcpu_fd, KVM_GET_REGS, &regs) < 0 ? 0 : regs.rip;
}
