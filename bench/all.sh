#!/usr/bin/env bash
# make bench: every benchmark, ferry and QEMU side by side in one run.
set -euo pipefail
build=${1:?usage: bench/all.sh BUILD}
if [ "${FERRY_TESTHOST_INSIDE:-}" = 1 ]; then
	echo "bench: measured inside the test host (QEMU TCG, -cpu max, emulated SVM; ferry and"
	echo "bench: QEMU -accel kvm in the same host, same run): under emulation only the ratios mean something"
else
	echo "bench: measured on this machine's /dev/kvm ($(grep -qw -e svm -e vmx /proc/cpuinfo && echo hardware virtualization || echo no svm/vmx flag: kvm_pvm or similar))"
fi
cd "$(dirname "$0")/.."
py=$(command -v /usr/bin/python3 || command -v python3)
bench/boot.sh "$build"
"$py" bench/snapshot.py "$build"
"$py" bench/migrate.py "$build"
"$py" bench/disk.py "$build"
