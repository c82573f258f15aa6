"""The Linux agent (guest/linux): Debian's cloud kernel (build/linux/vmlinux,
scripts/fetch-linux.sh) with the agent's initramfs
(build/guest/linux/agent.cpio: /init = ferry-agent and the modules of the
same kernel package) on ferry-vmm, 2 vCPUs, 256 MiB.

- test_agent_workload: the agent loads its modules, says ready with both
  CPUs, and beats with its working set dirtied and verified
  (ferry.dirty=16@8), never corrupt, until ferry.poweroff=10 powers the VM
  off: ferry-vmm reports SHUTDOWN guest-shutdown and exits 0. The kernel's
  warnings the agent relayed (`ferry-agent KERNEL ...`) are listed, not
  judged yet.
- test_agent_power_button: QMP's system_powerdown presses the ACPI power
  button; the agent sees KEY_POWER on its event device and powers off.

Needs a host that runs unmodified Linux (VMX/SVM, the test host included):
on kvm_pvm the file says SKIP and why."""

import os

from ferrytest import *

VMLINUX = os.path.join(BUILD, "linux", "vmlinux")
AGENT = os.path.join(BUILD, "guest", "linux")
INITRAMFS = os.path.join(AGENT, "agent.cpio")
CPUS = 2
MEMORY = 256
# loglevel=4: only errors and worse reach the console from the kernel
# itself (every byte costs an exit); the agent relays warnings as
# `ferry-agent KERNEL` lines. panic=-1: a panic resets at once, which the
# SHUTDOWN reason shows.
KERNEL_ARGS = "console=ttyS0 loglevel=4 panic=-1"
POWEROFF_S = 10


def check_build():
    """The kernel and the initramfs, their modules from the kernel's package."""
    for path in (VMLINUX, INITRAMFS):
        if not os.path.exists(path):
            raise Failure(f"{path} is missing: build it with ninja -C {BUILD}")
    with open(os.path.join(BUILD, "linux", "version")) as f:
        kernel = f.read().strip()
    with open(os.path.join(AGENT, "modules", "version")) as f:
        modules = f.read().strip()
    check(kernel == modules, f"vmlinux is {kernel}, agent.cpio's modules are {modules}: "
                             f"rebuild with ninja -C {BUILD}")
    print(f"  kernel {kernel}")


def boot(cmdline):
    """A VM running the agent, past its ready line: (vm, control, index of
    the ready line)."""
    vm = Vmm(kernel=VMLINUX, initrd=INITRAMFS, cmdline=f"{KERNEL_ARGS} {cmdline}",
             cpus=CPUS, memory=MEMORY)
    try:
        ctl = vm.connect()
        i = vm.console.wait_for(r"ferry-agent ready|Kernel panic", 300)
        t, line = vm.console.lines[i]
        for _, l in vm.console.lines[:i]:
            if "ferry-agent" in l:
                print(f"  {l}")
        print(f"  {line}  ({t - vm.started:.1f}s after ferry-vmm started)")
        m = READY_RE.search(line)
        check(m is not None, f"the agent never got ready: {vm.console.tail(5)}")
        check(int(m.group(1)) == CPUS, f"the agent saw {m.group(1)} CPUs, expected {CPUS}")
        return vm, ctl, i
    except BaseException:
        vm.kill()
        raise


def check_powered_off(vm, ctl):
    rc = vm.wait_exit(120)
    err = vm.stderr()
    lines = [l for _, l in vm.console.lines]
    check(not any("Kernel panic" in l for l in lines), f"the kernel panicked: {lines[-5:]}")
    ev = ctl.wait_event("SHUTDOWN", 5)
    check(ev.get("data", {}).get("reason") == "guest-shutdown",
          f"SHUTDOWN event {ev}, expected reason guest-shutdown")
    check(rc == 0, f"exit status {rc}, expected 0 after the power-off; stderr: {err.strip()}")


def list_kernel_lines(vm):
    """The kernel's warnings and worse, as the agent relayed them: shown,
    not a failure yet."""
    kernel = [l for _, l in vm.console.lines if "ferry-agent KERNEL " in l]
    print(f"  {len(kernel)} kernel warning(s) relayed by the agent")
    for l in kernel[:30]:
        print(f"    {l[:160]}")
    if len(kernel) > 30:
        print(f"    ... {len(kernel) - 30} more")


def check_clean_console(vm):
    bad = [l for _, l in vm.console.lines if BAD_RE.search(l)]
    check(not bad, f"the agent reported: {bad[:5]}")


def test_agent_workload():
    check_build()
    vm, ctl, i = boot(f"ferry.dirty=16@8 ferry.poweroff={POWEROFF_S}")
    try:
        check_powered_off(vm, ctl)
        lines = [l for _, l in vm.console.lines[i:]]
        beats = [b for b in map(parse_beat, lines) if b]
        print(f"  {len(beats)} beats; last: {beats[-1] if beats else None}")
        list_kernel_lines(vm)
        check_clean_console(vm)
        check(any(l.endswith("ferry-agent poweroff") for l in lines), "no poweroff line")
        check(len(beats) >= scaled(50, 10),
              f"{len(beats)} beats in {POWEROFF_S} s, expected {scaled(50, 10)} or more")
        check([b["beat"] for b in beats] == list(range(1, len(beats) + 1)),
              "the beats are not numbered 1, 2, 3, ...")
        check(all(b["corrupt"] == 0 for b in beats), "corrupt pages reported")
        check(beats[-1]["written"] > beats[len(beats) // 2]["written"] > 0,
              "the working set is not being written")
        check(beats[-1]["verified"] > 0, "nothing was verified")
    finally:
        vm.kill()


def test_agent_power_button():
    check_build()
    vm, ctl, i = boot("ferry.dirty=16@8")
    try:
        vm.console.wait_for(r"ferry-agent beat=5 ", 30, i)
        check(not any("no power button" in l for _, l in vm.console.lines),
              "the agent found no power button")
        check(ctl.execute("system_powerdown") == {"return": {}}, "system_powerdown")
        ctl.wait_event("POWERDOWN", 2)
        j = vm.console.wait_for(r"ferry-agent poweroff", 30, i)
        line = vm.console.lines[j][1]
        print(f"  {line}")
        check(line.endswith("ferry-agent poweroff (power button)"),
              f"expected the power button's poweroff line, got {line!r}")
        check_powered_off(vm, ctl)
        list_kernel_lines(vm)
        check_clean_console(vm)
    finally:
        vm.kill()


if __name__ == "__main__":
    require_kvm()
    require_unmodified_linux()
    run_tests([test_agent_workload, test_agent_power_button])
