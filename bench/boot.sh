#!/usr/bin/env bash
# Boot time, ferry vs QEMU, on the same test guest in the same run:
# time from process start to the guest's first heartbeat, and to process
# exit after the guest powers off at uptime 1 s. Each figure is the median
# of RUNS runs. QEMU runs as the issue's command line has it (SeaBIOS), and
# with qboot (the fastest firmware QEMU ships) for a fairer view.
#   bench/boot.sh [BUILD] [RUNS]
set -euo pipefail
build=${1:-build}
runs=${2:-5}
exec python3 "$(dirname "$0")/boot.py" "$build" "$runs"
