#!/usr/bin/env bash
# make bench: every benchmark, ferry and QEMU side by side in one run.
#   bench/all.sh BUILD       BENCH_RUNS=N sets the runs of each figure
#                            (each script's default on a KVM host; 1 inside
#                            the test host, where one run takes minutes)
set -euo pipefail
build=${1:?usage: bench/all.sh BUILD}
runs=${BENCH_RUNS:-}
if [ "${FERRY_TESTHOST_INSIDE:-}" = 1 ]; then
	runs=${runs:-1}
	# SeaBIOS takes minutes there: qboot for the benchmarks whose guest has
	# no PCI device (qboot assigns no BARs; the disk benchmark keeps SeaBIOS)
	qboot=${FERRY_QEMU_BIOS:-qboot}
	echo "bench: measured inside the test host (QEMU TCG, -cpu max, emulated SVM): ferry and QEMU"
	echo "bench: (-accel kvm) in the same host, in the same run; under emulation only the ratios mean something"
else
	echo "bench: measured on this machine's /dev/kvm ($(grep -qw -e svm -e vmx /proc/cpuinfo && echo hardware virtualization || echo no svm/vmx flag: kvm_pvm or similar))"
fi
cd "$(dirname "$0")/.."
py=$(command -v /usr/bin/python3 || command -v python3)
# every benchmark runs; one that failed makes the whole fail, at the end
failed=
"$py" bench/boot.py "$build" "${runs:-5}" || failed="$failed boot"
FERRY_QEMU_BIOS=${qboot:-${FERRY_QEMU_BIOS:-}} "$py" bench/snapshot.py "$build" ${runs:+"$runs"} ||
	failed="$failed snapshot"
FERRY_QEMU_BIOS=${qboot:-${FERRY_QEMU_BIOS:-}} "$py" bench/migrate.py "$build" ${runs:+"$runs"} ||
	failed="$failed migrate"
"$py" bench/disk.py "$build" ${runs:+"$runs"} || failed="$failed disk"
if [ -n "$failed" ]; then
	echo "bench: failed:$failed"
	exit 1
fi
