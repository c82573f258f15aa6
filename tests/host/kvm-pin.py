#!/usr/bin/env python3
"""Holds one KVM VM with a vCPU whose local APIC is never enabled, for the
test host's whole life, so that KVM's static keys for disabled local APICs
(apic_sw_disabled, with the vCPU's creation) never go from 0 to 1 and back
as the tests' VMs come and go.

Why: each such transition patches the test host kernel's text (jump labels
through int3, text_poke_bp). Under QEMU's multi-threaded TCG that patching
was seen to wedge both vCPUs of the test host for good — both spinning in
exc_int3/native_irq_return_iret with interrupts off, the shell dead —
twice in e2e-snapshot, whose VMs come and go by the hundred. Holding the
keys up means no patching at all from KVM."""
import fcntl
import os
import signal
import sys

KVM_CREATE_VM = 0xAE01
KVM_CREATE_VCPU = 0xAE41
KVM_CREATE_IRQCHIP = 0xAE60

try:
    kvm = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    vm = fcntl.ioctl(kvm, KVM_CREATE_VM, 0)
    fcntl.ioctl(vm, KVM_CREATE_IRQCHIP, 0)
    vcpu = fcntl.ioctl(vm, KVM_CREATE_VCPU, 0)
except OSError as e:
    print(f"testhost: kvm-pin: {e.strerror}: KVM's static keys are not held", file=sys.stderr)
    sys.exit(1)
open("/run/kvm-pin.ready", "w").close()
signal.pause()
