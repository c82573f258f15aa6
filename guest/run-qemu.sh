#!/bin/sh
# Boot the ferry test guest under QEMU/KVM with the serial console on stdout.
# usage: run-qemu.sh ELF CMDLINE [CPUS] [MEM_MIB]
# QEMU exits by itself when the guest powers off (ACPI S5, ferry.poweroff=S).
# -cpu host,-arch-capabilities: kvm_pvm rejects IA32_ARCH_CAPABILITIES;
# FERRY_QEMU_CPU replaces it (e.g. with kvm-pv-unhalt=off added).
# FERRY_QEMU_ARGS: extra QEMU arguments, split on spaces (e.g. -drive and
# -device options for disks); unset, nothing changes.
set -eu
if [ $# -lt 2 ]; then
	echo "usage: $0 ELF CMDLINE [CPUS] [MEM_MIB]" >&2
	exit 2
fi
elf=$1
cmdline=$2
cpus=${3:-2}
mem=${4:-512}
# FERRY_QEMU_BIOS=qboot swaps SeaBIOS (~3-4 s of emulated ring-0 firmware on
# kvm_pvm) for qboot (~0.1 s); the guest boots the same under both.
# Inside the test host (tests/host/run: QEMU's emulated SVM under this
# QEMU/KVM) the guest's ring 3 does port I/O with IOPL 3 (ferry.iopl=3,
# guest/entry.c says why), and SeaBIOS takes minutes, so qboot is the
# default there for a guest without PCI devices (qboot assigns no BARs).
if [ "${FERRY_TESTHOST_INSIDE:-}" = 1 ]; then
	[ -n "${FERRY_QEMU_ARGS:-}" ] || FERRY_QEMU_BIOS=${FERRY_QEMU_BIOS:-qboot}
	cmdline="$cmdline ferry.iopl=3"
fi
bios=
if [ "${FERRY_QEMU_BIOS:-}" = qboot ]; then
	bios="-bios /usr/share/qemu/qboot.rom"
fi
# shellcheck disable=SC2086
exec qemu-system-x86_64 $bios -enable-kvm -cpu "${FERRY_QEMU_CPU:-host,-arch-capabilities}" -M pc \
	-m "$mem" -smp "$cpus" -kernel "$elf" -append "$cmdline" \
	-nographic -nodefaults -serial stdio -no-reboot -display none \
	${FERRY_QEMU_ARGS:-}
