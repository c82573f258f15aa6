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
	# SeaBIOS takes minutes there; the migration itself is the same (bench/migrate.py)
	export FERRY_QEMU_BIOS=${FERRY_QEMU_BIOS:-qboot}
	echo "bench: measured inside the test host (QEMU TCG, -cpu max, emulated SVM): ferry and QEMU"
	echo "bench: (-accel kvm) in the same host, in the same run; under emulation only the ratios mean something"
else
	echo "bench: measured on this machine's /dev/kvm ($(grep -qw -e svm -e vmx /proc/cpuinfo && echo hardware virtualization || echo no svm/vmx flag: kvm_pvm or similar))"
fi
cd "$(dirname "$0")/.."
py=$(command -v /usr/bin/python3 || command -v python3)
"$py" bench/boot.py "$build" "${runs:-5}"
"$py" bench/snapshot.py "$build" ${runs:+"$runs"}
"$py" bench/migrate.py "$build" ${runs:+"$runs"}
"$py" bench/disk.py "$build" ${runs:+"$runs"}
