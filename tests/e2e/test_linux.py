"""Linux smoke test: Debian's cloud kernel (vmlinux extracted by
scripts/fetch-linux.sh) boots through ferry-vmm's PVH loader and prints its
banner on the serial console.

On a VMX/SVM host (the test host, tests/host, included) Linux reaches user
space: it boots with 2 vCPUs and the initramfs built from tests/linux (a
static /init), whose one line `ferry-linux-smoke: user space reached,
cpus=2 uptime_ms=T` shows both CPUs came up; /init then powers off with
reboot(RB_POWER_OFF), which Linux does through ACPI S5, and ferry-vmm must
report a guest shutdown (not a reset, not a panic) and exit 0 by itself.

On kvm_pvm Linux stops after its banner on the known emulation failure,
which ferry-vmm must report in one clear line."""

import os
import re
import sys

from ferrytest import *

VMLINUX = os.path.join(BUILD, "linux", "vmlinux")
INITRAMFS = os.path.join(BUILD, "tests", "linux", "linux-smoke.cpio")
CPUS = 2
BANNER_RE = r"Linux version 6\.1"
INIT_RE = re.compile(r"ferry-linux-smoke: user space reached, cpus=(\d+) uptime_ms=(\d+)")


def linux_on_pvm():
    """Today's expectation on kvm_pvm: the banner, then ferry-vmm's one-line
    report of the emulation failure and exit status 1."""
    # --no-reboot: a panic (panic=-1) or a reset ends the VM, so it shows
    vm = Vmm(kernel=VMLINUX, cmdline="earlyprintk=serial console=ttyS0 panic=-1",
             cpus=1, memory=512, control=False, extra=["--no-reboot"])
    try:
        i = vm.console.wait_for(BANNER_RE, 60)
        print(f"  {vm.console.lines[i][1][:100]}")
        rc = vm.wait_exit(240)
        err = vm.stderr()
        print(f"  ferry-vmm: {err.strip()[:160]}...")
        check(rc == 1, f"exit status {rc}, expected 1 after the emulation failure")
        lines = [l for l in err.splitlines() if "error" in l]
        check(len(lines) == 1, f"expected one error line, got {lines}")
        check("emulation failure at guest rip 0x" in lines[0] and "kvm_pvm" in lines[0],
              f"unclear report: {lines[0]!r}")
    finally:
        vm.kill()


def linux_to_user_space():
    """The banner, the initramfs's /init line with all CPUs online, then a
    clean ACPI power-off: SHUTDOWN guest-shutdown, exit status 0."""
    if not os.path.exists(INITRAMFS):
        raise Failure(f"{INITRAMFS} is missing: build it with ninja -C {BUILD}")
    # loglevel=6 keeps KERN_NOTICE and above on the console (the banner,
    # warnings, "reboot: Power down") and leaves out the hundreds of
    # KERN_INFO lines: a serial console costs an exit per byte, which is
    # most of the boot time under emulation.
    vm = Vmm(kernel=VMLINUX, initrd=INITRAMFS, cmdline="console=ttyS0 loglevel=6 panic=-1",
             cpus=CPUS, memory=256, extra=["--no-reboot"])
    try:
        ctl = vm.connect()
        i = vm.console.wait_for(BANNER_RE, 120)
        print(f"  {vm.console.lines[i][1][:100]}")
        j = vm.console.wait_for(r"ferry-linux-smoke:|Kernel panic", 300, i)
        t_init, line = vm.console.lines[j]
        print(f"  {line}  ({t_init - vm.started:.1f}s after ferry-vmm started)")
        m = INIT_RE.search(line)
        check(m is not None, f"no user space: {line!r}")
        cpus, uptime_ms = int(m.group(1)), int(m.group(2))
        check(cpus == CPUS, f"/init saw {cpus} CPUs online, expected {CPUS}")
        rc = vm.wait_exit(120)
        err = vm.stderr()
        rest = [l for _, l in vm.console.lines[j + 1:]]
        print(f"  after /init: {rest[-3:]}; ferry-vmm exit status {rc}")
        check(not any("Kernel panic" in l for l in rest), f"the kernel panicked: {rest[-5:]}")
        check(any("reboot: Power down" in l for l in rest),
              f"Linux never said it powers down: {rest[-5:]}")
        ev = ctl.wait_event("SHUTDOWN", 5)
        check(ev.get("data", {}).get("reason") == "guest-shutdown",
              f"SHUTDOWN event {ev}, expected reason guest-shutdown")
        check(rc == 0, f"exit status {rc}, expected 0 after the power-off; stderr: {err.strip()}")
        print(f"  uptime_ms={uptime_ms} (guest CLOCK_BOOTTIME at /init)")
    finally:
        vm.kill()


def test_linux():
    if not os.path.exists(VMLINUX):
        raise Failure(f"{VMLINUX} is missing: run scripts/fetch-linux.sh {BUILD}/linux")
    if os.path.exists("/sys/module/kvm_pvm"):
        linux_on_pvm()
    else:
        linux_to_user_space()


if __name__ == "__main__":
    require_kvm()
    run_tests([test_linux])
