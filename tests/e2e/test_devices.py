"""Devices seen through the ferry-vmm binary with tiny payloads: serial
input from stdin (every byte delivered, in order, even when typed faster
than the guest drains the FIFO), resets through the i8042 and port 0xCF9
(a reboot, or the end with --no-reboot), quit and signals in a guest's
reset loop, and the report of an instruction KVM cannot run."""

import os
import signal
import time

from ferrytest import *


def payload(name):
    return os.path.join(PAYLOADS, name + ".elf")


def test_serial_input():
    vm = Vmm(kernel=payload("echo"), stdin=subprocess.PIPE)
    try:
        vm.console.wait_for(r"echo ready", 10)
        text = "".join(chr(ord("a") + i % 26) for i in range(300))  # > 16-byte FIFO
        vm.p.stdin.write((text + "\n!").encode())
        vm.p.stdin.flush()
        check(vm.wait_exit(10) == 0, "echo payload did not power off")
        out = "\n".join(l for _, l in vm.console.lines[1:])
        check(out.startswith(text.upper()), f"echoed {out[:40]!r}... expected {text.upper()[:40]!r}...")
    finally:
        vm.kill()


def reset_by(how):
    """The payload resets the machine as soon as it runs: ferry-vmm boots
    it again (RESET guest-reset), so it resets again; with --no-reboot the
    first reset ends the VM (SHUTDOWN guest-reset, exit 0)."""
    vm = Vmm(kernel=payload("reset"), cmdline=how, extra=["--paused"])
    try:
        ctl = vm.connect()
        check(ctl.execute("query-status")["return"]["status"] == "paused", "--paused")
        vm.console.collect(0.3)
        check(not vm.console.lines, "the guest ran before cont")
        ctl.execute("cont")
        for _ in range(2):
            ev = ctl.wait_event("RESET", 10)
            check(ev["data"] == {"guest": True, "reason": "guest-reset"}, str(ev))
        vm.console.wait_for(r"reset " + how, 10, 1)  # the reboot ran it again
        check(vm.console.lines[0][1] == "reset " + how, str(vm.console.lines))
        ctl.execute("quit")
        check(vm.wait_exit(5) == 0, "exit status after quit")
    finally:
        vm.kill()
    vm = Vmm(kernel=payload("reset"), cmdline=how, extra=["--paused", "--no-reboot"])
    try:
        ctl = vm.connect()
        ctl.execute("cont")
        ev = ctl.wait_event("SHUTDOWN", 10)
        check(ev["data"] == {"guest": True, "reason": "guest-reset"}, str(ev))
        check(vm.wait_exit(5) == 0, "reset with --no-reboot did not exit 0")
        check([l for _, l in vm.console.lines] == ["reset " + how], str(vm.console.lines))
    finally:
        vm.kill()


def test_i8042_reset():
    reset_by("k")


def test_cf9_reset():
    reset_by("c")


# Each a race the old code lost now and then (1 in 5 on kvm_pvm with the
# other CPU busy), so a few rounds.
ROUNDS = 5


def test_quit_and_signal_in_a_reset_storm():
    """A guest that resets as soon as it runs (a kernel that cannot boot)
    reboots over and over; quit and SIGTERM still end ferry-vmm at once: a
    pending reset gives way to them, and the control socket and signals
    are read between two reboots. (They were not: quit's reply came, the
    guest went on resetting, and ferry-vmm blocked once nobody read the
    line it logs per reboot.)"""
    times = {}
    for how in ("quit", "SIGTERM") * ROUNDS:
        vm = Vmm(kernel=payload("reset"), cmdline="c")
        try:
            ctl = vm.connect()
            for _ in range(20):
                ctl.wait_event("RESET", 10)
            if how == "quit":
                check(ctl.execute("quit") == {"return": {}}, "quit's reply")
            else:
                vm.p.send_signal(signal.SIGTERM)
            t0 = time.monotonic()
            check(vm.wait_exit(5) == 0, f"exit status after {how}")
            ev = ctl.wait_event("SHUTDOWN", 5)
            want = "host-qmp-quit" if how == "quit" else "host-signal"
            check(ev["data"] == {"guest": False, "reason": want}, str(ev))
            times.setdefault(how, []).append(time.monotonic() - t0)
        finally:
            vm.kill()
    for how, t in times.items():
        print(f"  {how} in a reset storm, {len(t)} times: ended in {min(t):.2f}-{max(t):.2f} s")


def test_unrunnable_instruction():
    # --no-reboot: on VMX/SVM the triple fault's reset ends the VM
    vm = Vmm(kernel=payload("reset"), cmdline="b", control=False, extra=["--no-reboot"])
    try:
        rc = vm.wait_exit(10)
        err = vm.stderr()
        if os.path.exists("/sys/module/kvm_pvm"):
            lines = [l for l in err.splitlines() if l.strip()]
            check(rc == 1, f"exit status {rc}, expected 1")
            check(len(lines) == 1 and "emulation failure at guest rip 0x" in lines[0] and
                  "kvm_pvm" in lines[0], f"report: {lines}")
            print(f"  {lines[0][:120]}...")
        else:  # VMX/SVM: int3 without an IDT triple-faults, which resets
            check(rc == 0 and "triple fault" in err, f"exit {rc}, stderr {err!r}")
    finally:
        vm.kill()


def test_double_fault_panics():
    """A double fault of the test guest on a broken stack prints its PANIC
    line from the #DF handler's own stack (IST 1) and halts: it does not
    become a triple fault, which the VMM could only report as a reset (on
    SVM without even the rip)."""
    vm = Vmm(cmdline="ferry.crash=df", cpus=1, memory=64)
    try:
        i = vm.console.wait_for(r"ferry-agent PANIC vector=", 20)
        line = vm.console.lines[i][1]
        detail = vm.console.wait_for(r"ferry-agent panic detail:", 5, i)
        print(f"  {line}\n  {vm.console.lines[detail][1]}")
        check("vector=8 " in line, f"not a double fault: {line!r}")
        vm.console.collect(1.0)
        ended = vm.p.poll()
    finally:
        vm.kill()
    err = vm.stderr()
    check(ended is None, f"ferry-vmm ended ({ended}) after the PANIC: {err!r}")
    check("triple fault" not in err, f"a triple fault: {err!r}")


if __name__ == "__main__":
    require_kvm()
    run_tests([test_serial_input, test_i8042_reset, test_cf9_reset,
               test_quit_and_signal_in_a_reset_storm, test_unrunnable_instruction,
               test_double_fault_panics])
