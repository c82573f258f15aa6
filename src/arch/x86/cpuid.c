#include "arch/x86/cpuid.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#define CPUID_KVM_SIGNATURE 0x40000000
#define CPUID_TSC_LEAF 0x40000010
#define CPUID_1_ECX_HYPERVISOR (1u << 31)
#define CPUID_7_EDX_ARCH_CAPABILITIES (1u << 29)

int x86_cpuid_supported(int kvm_fd, struct cpuid_table *t)
{
	memset(t, 0, sizeof(*t));
	t->head.nent = CPUID_MAX_ENTRIES;
	if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, &t->head) < 0)
		return -errno;
	return 0;
}

struct kvm_cpuid_entry2 *x86_cpuid_find(struct cpuid_table *t, uint32_t function,
					uint32_t index)
{
	for (uint32_t i = 0; i < t->head.nent; i++) {
		struct kvm_cpuid_entry2 *e = &t->entries[i];

		if (e->function == function &&
		    (!(e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) || e->index == index))
			return e;
	}
	return NULL;
}

static struct kvm_cpuid_entry2 *cpuid_add(struct cpuid_table *t, uint32_t function)
{
	struct kvm_cpuid_entry2 *e = x86_cpuid_find(t, function, 0);

	if (e)
		return e;
	if (t->head.nent >= CPUID_MAX_ENTRIES)
		return NULL;
	e = &t->entries[t->head.nent++];
	memset(e, 0, sizeof(*e));
	e->function = function;
	return e;
}

/* Bits needed to number n things (x2APIC ID shifts of leaf 0xB). */
static uint32_t bits_for(unsigned n)
{
	uint32_t b = 0;

	while ((1u << b) < n)
		b++;
	return b;
}

static void cpuid_topology(struct cpuid_table *t, unsigned apic_id, unsigned ncpus)
{
	/* One socket, ncpus cores, one thread each: what --cpus N means. */
	for (uint32_t i = 0; i < t->head.nent; i++) {
		struct kvm_cpuid_entry2 *e = &t->entries[i];

		if (e->function == 0xb || e->function == 0x1f) {
			e->edx = apic_id;
			if (e->index == 0) {
				e->eax = 0;
				e->ebx = 1;
				e->ecx = (1u << 8) | 0; /* level 0: SMT */
			} else if (e->index == 1) {
				e->eax = bits_for(ncpus);
				e->ebx = ncpus;
				e->ecx = (2u << 8) | 1; /* level 1: core */
			} else {
				e->eax = e->ebx = 0;
				e->ecx = e->index;
			}
		}
		if (e->function == 4 && (e->eax & 0x1f)) {
			e->eax &= ~(0x3fu << 26);
			e->eax |= (uint32_t)(ncpus > 64 ? 63 : ncpus - 1) << 26;
		}
	}
}

void x86_cpuid_for_vcpu(struct cpuid_table *t, unsigned apic_id, unsigned ncpus,
			uint32_t tsc_khz)
{
	struct kvm_cpuid_entry2 *e;

	e = x86_cpuid_find(t, 1, 0);
	if (e) {
		e->ebx &= 0x0000ffffu;
		e->ebx |= (apic_id & 0xffu) << 24;
		e->ebx |= (ncpus > 255 ? 255u : ncpus) << 16;
		e->edx |= 1u << 28; /* HTT: the logical count above is valid */
		e->ecx |= CPUID_1_ECX_HYPERVISOR;
	}
	/* KVM reports ARCH_CAPABILITIES with the host's value, which cannot
	 * be written back on every host (kvm_pvm refuses MSR 0x10a); a guest
	 * that does not see the bit never reads the MSR. */
	e = x86_cpuid_find(t, 7, 0);
	if (e)
		e->edx &= ~CPUID_7_EDX_ARCH_CAPABILITIES;
	cpuid_topology(t, apic_id, ncpus);

	e = x86_cpuid_find(t, CPUID_KVM_SIGNATURE, 0);
	if (e && tsc_khz) {
		struct kvm_cpuid_entry2 *f = cpuid_add(t, CPUID_TSC_LEAF);

		if (f) {
			if (e->eax < CPUID_TSC_LEAF)
				e->eax = CPUID_TSC_LEAF;
			f->eax = tsc_khz;
			f->ebx = KVM_APIC_BUS_KHZ;
			f->ecx = f->edx = 0;
		}
	}
}
