"""Reset and reboot, with the test guest (Linux's own reboot is in
tests/e2e/test_linux_agent.py): QMP's system_reset makes the machine anew
and boots the kernel again in the same ferry-vmm, as QEMU does — a RESET
event, a fresh boot (the heartbeat starts again at 1) on the same control
connection, paused if the VM was; --no-reboot ends the VM instead
(SHUTDOWN host-qmp-system-reset, exit 0); a restored VM reboots with the
--kernel it was given, and without one it ends, having nothing to boot."""

import os
import shutil
import subprocess
import tempfile
import time

from ferrytest import *

CMDLINE = "ferry.dirty=8@4"


def boot_count(vm):
    return sum(1 for _, l in vm.console.lines if READY_RE.search(l))


def wait_boot(vm, n, timeout=20):
    """Until the guest said ready for the n-th time."""
    deadline = time.monotonic() + timeout * TIMEOUT_SCALE
    while boot_count(vm) < n:
        if vm.p.poll() is not None:
            raise Failure(f"ferry-vmm exited {vm.p.returncode}: {vm.stderr()[-300:]}")
        check(time.monotonic() < deadline, f"no boot number {n}: {vm.console.tail(5)}")
        vm.console.poll(0.1)


def check_host_reset(ev):
    data = ev.get("data", {})
    check(data == {"guest": False, "reason": "host-qmp-system-reset"}, f"RESET event {ev}")


def test_system_reset_reboots():
    vm = Vmm(cmdline=CMDLINE, cpus=2)
    try:
        ctl = vm.connect()
        vm.console.wait_for(r"ferry-agent beat=5 ", 20)
        start = len(vm.console.lines)
        check(ctl.execute("system_reset") == {"return": {}}, "system_reset")
        check_host_reset(ctl.wait_event("RESET", 10))
        wait_boot(vm, 2)
        i = vm.console.wait_for(r"ferry-agent beat=3 ", 20, start)
        beats = [b["beat"] for b in map(parse_beat, (l for _, l in vm.console.lines[start:i + 1]))
                 if b]
        check(beats[:3] == [1, 2, 3], f"the heartbeat after the reset: {beats[:5]}")
        st = ctl.execute("query-status")["return"]
        check(st["status"] == "running", f"status after the reset {st}")
        check(not any(e[1]["event"] == "SHUTDOWN" for e in ctl.events), "a SHUTDOWN event")
        # the new machine works as the old one did: a second reset, then quit
        check(ctl.execute("system_reset") == {"return": {}}, "second system_reset")
        check_host_reset(ctl.wait_event("RESET", 10))
        wait_boot(vm, 3)
        check(ctl.execute("quit") == {"return": {}}, "quit")
        check(vm.wait_exit(10) == 0, "exit status after quit")
        check(not BAD_RE.search(vm.console.transcript()), "the guest reported a problem")
    finally:
        vm.kill()


def test_system_reset_while_paused():
    vm = Vmm(cmdline=CMDLINE, cpus=1)
    try:
        ctl = vm.connect()
        vm.console.wait_for(r"ferry-agent beat=2 ", 20)
        check(ctl.execute("stop") == {"return": {}}, "stop")
        ctl.wait_event("STOP")
        check(ctl.execute("system_reset") == {"return": {}}, "system_reset")
        check_host_reset(ctl.wait_event("RESET", 10))
        st = ctl.execute("query-status")["return"]
        check(st["status"] == "paused", f"a paused VM reset runs: {st}")
        vm.console.collect(1.0)
        check(boot_count(vm) == 1, "the reset VM booted while paused")
        check(ctl.execute("cont") == {"return": {}}, "cont")
        wait_boot(vm, 2)
        ctl.execute("quit")
        check(vm.wait_exit(10) == 0, "exit status after quit")
    finally:
        vm.kill()


def test_no_reboot():
    vm = Vmm(cmdline=CMDLINE, extra=["--no-reboot"])
    try:
        ctl = vm.connect()
        vm.console.wait_for(r"ferry-agent beat=2 ", 20)
        check(ctl.execute("system_reset") == {"return": {}}, "system_reset")
        ev = ctl.wait_event("SHUTDOWN", 10)
        check(ev.get("data") == {"guest": False, "reason": "host-qmp-system-reset"},
              f"SHUTDOWN event {ev}")
        check(vm.wait_exit(10) == 0, "exit status")
        check(not any(e[1]["event"] == "RESET" for e in ctl.events), "a RESET event")
        check(boot_count(vm) == 1, "booted again despite --no-reboot")
        check("--no-reboot: the VM ends here" in vm.stderr(), "no word of --no-reboot")
    finally:
        vm.kill()


def test_restored_vm_reboots_with_kernel():
    tmp = tempfile.mkdtemp(prefix="ferry-reset-")
    path = os.path.join(tmp, "vm.save")
    vms = []
    try:
        src = Vmm(cmdline=CMDLINE)
        vms.append(src)
        ctl = src.connect()
        src.console.wait_for(r"ferry-agent beat=2 ", 20)
        check("return" in ctl.execute("save", {"path": path}, timeout=60), "save")
        ctl.execute("quit")
        src.wait_exit(10)
        # with --kernel: the reset boots it
        a = Vmm(restore=True, extra=["--restore", path, "--kernel", GUEST])
        vms.append(a)
        ctl = a.connect()
        a.console.wait_for(r"ferry-agent beat=", 20)
        check(ctl.execute("system_reset") == {"return": {}}, "system_reset")
        check_host_reset(ctl.wait_event("RESET", 10))
        wait_boot(a, 1)  # the restored guest printed no ready line; the reboot does
        ctl.execute("quit")
        check(a.wait_exit(10) == 0, "exit status after quit")
        # without: there is nothing to boot, so the VM ends
        b = Vmm(restore=True, extra=["--restore", path])
        vms.append(b)
        ctl = b.connect()
        b.console.wait_for(r"ferry-agent beat=", 20)
        check(ctl.execute("system_reset") == {"return": {}}, "system_reset")
        ev = ctl.wait_event("SHUTDOWN", 10)
        check(ev.get("data", {}).get("reason") == "host-qmp-system-reset", f"SHUTDOWN {ev}")
        check(b.wait_exit(10) == 0, "exit status")
        check("nothing to boot" in b.stderr(), "no word of why the VM ended")
        # the shape still comes from the file
        r = subprocess.run([VMM, "--restore", path, "--cmdline", "x"], capture_output=True,
                           text=True, timeout=30)
        check(r.returncode == 1 and "do not give --cmdline" in r.stderr,
              f"--restore with --cmdline: {r.returncode} {r.stderr.strip()!r}")
        r = subprocess.run([VMM, "--restore", path, "--initrd", GUEST], capture_output=True,
                           text=True, timeout=30)
        check(r.returncode == 1 and "--initrd goes with --kernel" in r.stderr,
              f"--initrd alone: {r.returncode} {r.stderr.strip()!r}")
    finally:
        for vm in vms:
            vm.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    require_kvm()
    run_tests([test_system_reset_reboots, test_system_reset_while_paused, test_no_reboot,
               test_restored_vm_reboots_with_kernel])
