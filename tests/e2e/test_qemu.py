"""The same test guest, unchanged, boots under QEMU/KVM (-M pc, -kernel):
SMP from QEMU's MADT, its heartbeat, and power-off through QEMU's ACPI.
This checks that the guest follows the boot protocol and ACPI as a real
PC firmware provides them, not ferry's particular tables."""

import os
import shutil
import subprocess
import sys
import tempfile

from ferrytest import *

RUN_QEMU = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "guest",
                        "run-qemu.sh")


def qemu_boot(cpus):
    p = subprocess.Popen([RUN_QEMU, GUEST, "ferry.poweroff=3 ferry.dirty=16@10", str(cpus), "256"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    c = Console(p.stdout, "QEMU")
    t0 = time.monotonic()
    try:
        i = c.wait_for(r"ferry-agent ready", 60)
        m = READY_RE.search(c.lines[i][1])
        check(int(m.group(1)) == cpus, f"QEMU: {c.lines[i][1]!r}, expected cpus={cpus}")
        j = c.wait_for(r"ferry-agent beat=1 ", 10, i)
        print(f"  QEMU cpus={cpus}: first heartbeat {(c.lines[j][0] - t0) * 1000:.0f} ms after start")
        c.wait_for(r"ferry-agent poweroff", 15, j)
        rc = p.wait(15)
        check(rc == 0, f"QEMU exit status {rc}")
        beats = [b for b in (parse_beat(l) for _, l in c.lines) if b]
        # (inside the test host, one CPU for 4 vCPUs, 19 were seen)
        check(beats[-1]["corrupt"] == 0 and len(beats) >= scaled(20, 10), f"{len(beats)} beats")
        check(all(t > 0 for t in beats[-1]["ticks"]), f"ticks {beats[-1]['ticks']}")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_qemu_two_cpus():
    qemu_boot(2)


def test_qemu_four_cpus():
    qemu_boot(4)


def test_qemu_system_powerdown():
    """QEMU's system_powerdown (PIIX4 PM): the guest sees the button and powers off."""
    tmp = tempfile.mkdtemp(prefix="ferry-qmp-")
    qmp = os.path.join(tmp, "qmp.sock")
    env = dict(os.environ, FERRY_QEMU_ARGS=f"-qmp unix:{qmp},server=on,wait=off")
    p = subprocess.Popen([RUN_QEMU, GUEST, "ferry.dirty=16@10", "2", "256"], env=env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    c = Console(p.stdout, "QEMU")
    try:
        c.wait_for(r"ferry-agent beat=1 ", 60)
        ctl = Control(qmp, name="QEMU")
        check(ctl.execute("qmp_capabilities") == {"return": {}}, "qmp_capabilities")
        check(ctl.execute("system_powerdown") == {"return": {}}, "system_powerdown")
        ctl.wait_event("POWERDOWN", 2)
        c.wait_for(r"ferry-agent power-button: shutting down", 5)
        check(ctl.wait_event("SHUTDOWN", 5)["data"]["reason"] == "guest-shutdown", "reason")
        check(p.wait(10) == 0, "QEMU exit status")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    require_kvm()
    if not shutil.which("qemu-system-x86_64"):
        print("SKIP: qemu-system-x86_64 is not installed (scripts/setup.sh installs it)")
        sys.exit(77)
    run_tests([test_qemu_two_cpus, test_qemu_four_cpus, test_qemu_system_powerdown])
