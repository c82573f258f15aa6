/* The CPUID a guest is given: what KVM supports on this host, minus what
 * cannot be set here, with per-vCPU topology and the TSC frequency leaf
 * (0x40000010, the VMware/KVM convention: EAX = TSC kHz, EBX = APIC bus
 * kHz) so a guest can tell time without calibrating. */
#ifndef FERRY_ARCH_X86_CPUID_H
#define FERRY_ARCH_X86_CPUID_H

#include <linux/kvm.h>
#include <stddef.h>
#include <stdint.h>

#define CPUID_MAX_ENTRIES 256
#define KVM_APIC_BUS_KHZ 1000000 /* KVM's local APIC timer ticks at 1 GHz */

struct cpuid_table {
	struct kvm_cpuid2 head;
	struct kvm_cpuid_entry2 entries[CPUID_MAX_ENTRIES];
};

/* KVM_GET_SUPPORTED_CPUID into t. Returns 0 or -errno. */
int x86_cpuid_supported(int kvm_fd, struct cpuid_table *t);

/* Turns the supported table into the one vCPU apic_id of ncpus sees:
 * APIC IDs, topology, hypervisor bit, no ARCH_CAPABILITIES, TSC leaf.
 * Pure: does not call KVM (unit-tested). */
void x86_cpuid_for_vcpu(struct cpuid_table *t, unsigned apic_id, unsigned ncpus,
			uint32_t tsc_khz);

/* Finds (function, index); NULL when absent. */
struct kvm_cpuid_entry2 *x86_cpuid_find(struct cpuid_table *t, uint32_t function,
					uint32_t index);

/* Applies a CPU spec to the supported table, as QEMU's -cpu does:
 * "host" (NULL too), then comma-separated -FEATURE or FEATURE=off to turn
 * one off, +FEATURE or FEATURE=on to require it (libvirt's or QEMU's
 * names, '-' and '_' alike: kvm_pv_unhalt, sse4.1). Returns 0, or -EINVAL
 * (malformed, unknown model or feature) or -ENOTSUP (a required feature
 * the host lacks) with err saying which. On error t may be partly
 * changed. */
int x86_cpuid_apply_spec(struct cpuid_table *t, const char *spec, char *err, size_t errlen);

/* Checks that every CPU feature a saved vCPU's CPUID gives the guest is in
 * host (this host's table for such a vCPU): a guest that already uses a
 * feature cannot lose it. Returns 0, or -ENOTSUP with err listing the
 * missing features (names where known, leaf/register/bit otherwise). */
int x86_cpuid_check_compatible(struct cpuid_table *saved, struct cpuid_table *host, char *err,
			       size_t errlen);

#endif
