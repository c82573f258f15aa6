/* x86 vCPU register state: the PVH entry state at boot, the local APIC's
 * virtual-wire setup, and the save and restore of a vCPU's complete state
 * (the VM-wide in-kernel devices, irqchip, PIT and clock, are
 * kvm_devices.h's).
 *
 * State records are fixed-width little-endian byte strings (STYLE.md §11);
 * their layout, field by field, is written down above each *_put function
 * in cpu_state.c and in docs/stream-format.md. */
#ifndef FERRY_ARCH_X86_CPU_STATE_H
#define FERRY_ARCH_X86_CPU_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arch/x86/cpuid.h"
#include "arch/x86/vcpu_record.h"
#include "common/buf.h"
#include "devices/device.h"

/* Gives vCPU fd its CPUID. Returns 0 or -errno. */
int x86_vcpu_set_cpuid(int vcpu_fd, struct cpuid_table *t);

/* LINT0 = ExtINT, LINT1 = NMI: the PIC reaches CPU 0 as on a PC. Needs the
 * in-kernel irqchip. Returns 0 or -errno. */
int x86_vcpu_init_lapic(int vcpu_fd);

/* The PVH entry state: 32-bit protected mode, flat segments, paging off,
 * %ebx = start_info, %eip = entry. For the boot vCPU only; the others wait
 * for INIT/SIPI from the guest. Returns 0 or -errno. */
int x86_vcpu_set_pvh_entry(int vcpu_fd, uint64_t entry, uint64_t start_info);

/* True when /dev/kvm is kvm_amd's (SVM), whose vCPUs differ in ways the
 * state and the error messages must know (kvm_pvm is not, whatever the CPU). */
bool x86_kvm_is_svm(void);

/* The guest's instruction pointer (for error messages); 0 if unknown. */
uint64_t x86_vcpu_rip(int vcpu_fd);

/* ---- vCPU state save and load ---- */

/* Appends the complete state of vCPU vcpu_fd to out: CPUID, TSC rate,
 * registers, FPU/vector state, MSRs, MP state, local APIC, pending events,
 * debug registers. kvm_fd is /dev/kvm (for the MSR list and the XSAVE
 * size). The vCPU must not be in KVM_RUN (another thread's ioctl would
 * block) and its last I/O or MMIO exit must have been completed (or the
 * instruction's result would be missing). MSR_IA32_TSC is read at the
 * moment of the save: two saves of a paused vCPU differ there (and only
 * there) by the time between them — or, where the host's TSC is unstable
 * and KVM holds a parked vCPU's TSC still, by less than the length of a
 * save, either way. Returns 0 or -errno with one error
 * logged; on error out is left as it was (but for -ENOMEM: out->oom). */
int x86_vcpu_save(int kvm_fd, int vcpu_fd, struct buf *out);

/* Loads a record written by x86_vcpu_save (of `version`) into vCPU
 * vcpu_fd, freshly created and never run, of a VM whose irqchip and PIT
 * are loaded already (the LAPIC goes after the irqchip); the VM's clock
 * comes after every vCPU. A VM's vCPUs are loaded one after the other:
 * `first` says no other vCPU of this VM has been loaded yet (its TSC then
 * starts the VM's, which the others' join: tsc_unsync in cpu_state.c says
 * why that matters). The whole record is checked before KVM is touched.
 * Returns 0, or -errno with one line in err (errlen bytes) saying why:
 * -EPROTO for an unknown version, -EINVAL for a malformed record or state
 * KVM refuses (naming what), -ENOTSUP when the guest uses CPU features this
 * host lacks (naming them), -EOPNOTSUPP (the same number on Linux) for a
 * TSC rate KVM cannot give the vCPU (naming both rates), or another -errno
 * from KVM. Logs nothing. */
int x86_vcpu_load(int kvm_fd, int vcpu_fd, uint32_t version, const uint8_t *data, size_t len,
		  bool first, char *err, size_t errlen);

#endif
