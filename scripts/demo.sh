#!/usr/bin/env bash
# make demo: boot the ferry test guest on ferry-vmm with 2 vCPUs and a
# working set that is rewritten and verified, show its console for a few
# seconds, pause and resume it through the control socket, and let it power
# itself off.
set -euo pipefail
build=${1:-build}
vmm=$build/src/ferry-vmm
guest=$build/guest/ferry-guest.elf
sock=$(mktemp -u /tmp/ferry-demo-XXXXXX.sock)

if [ ! -e /dev/kvm ]; then
	echo "demo: /dev/kvm is missing: ferry needs KVM" >&2
	exit 1
fi

ctl() { # one command on the control socket, its reply printed
	python3 - "$sock" "$1" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("r")
f.readline()  # greeting
s.sendall((json.dumps({"execute": sys.argv[2]}) + "\n").encode())
while True:
    m = json.loads(f.readline())
    if "event" not in m:
        print(f"demo: {sys.argv[2]} -> {json.dumps(m)}"); break
PY
}

echo "demo: $vmm --kernel $guest --cpus 2 --memory 512 --cmdline 'ferry.dirty=128@50 ferry.poweroff=6'"
start=$(date +%s%N)
"$vmm" --kernel "$guest" --cpus 2 --memory 512 --control "$sock" \
	--cmdline "ferry.dirty=128@50 ferry.poweroff=6" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$sock"' EXIT
for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
sleep 2
ctl query-status
ctl stop
echo "demo: --- paused for 1 s: no heartbeat ---"
sleep 1
ctl cont
rc=0
wait $pid || rc=$?
trap - EXIT
ms=$((($(date +%s%N) - start) / 1000000))
echo "demo: the guest powered itself off; ferry-vmm exited with status $rc after ${ms} ms"
