/* The in-kernel devices KVM keeps for a VM (the PICs and IOAPIC, the PIT,
 * the guest clock), exposed as device ops tables so that their state goes
 * through the same registry as the emulated devices. */
#ifndef FERRY_ARCH_X86_KVM_DEVICES_H
#define FERRY_ARCH_X86_KVM_DEVICES_H

#include "devices/device.h"

/* The `dev` of the three ops tables below: the KVM VM they live in. */
struct x86_kvm_devices {
	int vm_fd;
};

/* "kvm-irqchip": PIC master, PIC slave and IOAPIC (KVM_GET/SET_IRQCHIP).
 * Loads before the vCPUs. */
extern const struct device_ops x86_irqchip_ops;
/* "kvm-pit": the i8254's three channels and flags (KVM_GET/SET_PIT2).
 * Loads before the vCPUs. */
extern const struct device_ops x86_pit_ops;
/* "kvm-clock": the guest's kvmclock (KVM_GET/SET_CLOCK). Loads last,
 * after the vCPUs (register it with device_register_after_vcpus). */
extern const struct device_ops x86_clock_ops;

#endif
