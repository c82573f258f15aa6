"""Boot-time benchmark: ferry-vmm vs QEMU/KVM on the ferry test guest."""

import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lib"))
from ferry_harness import HarnessError, Lines  # noqa: E402

# Inside the test host QEMU/KVM runs under QEMU's emulated SVM, whose I/O
# bitmap check the guest avoids with IOPL 3 (guest/entry.c says why).
QEMU_EXTRA = " ferry.iopl=3" if os.environ.get("FERRY_TESTHOST_INSIDE") == "1" else ""

build, runs = sys.argv[1], int(sys.argv[2])
guest = os.path.join(build, "guest", "ferry-guest.elf")
vmm = os.path.join(build, "src", "ferry-vmm")
CMDLINE = "ferry.poweroff=1"
CPUS, MEM = 2, 512
# A limit for a hang, not a figure: SeaBIOS alone takes minutes in the test
# host, where everything is emulated.
SILENCE = 600 if os.environ.get("FERRY_TESTHOST_INSIDE") == "1" else 30


def qemu(bios):
    cmd = ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host,-arch-capabilities", "-M", "pc",
           "-m", str(MEM), "-smp", str(CPUS), "-kernel", guest, "-append", CMDLINE + QEMU_EXTRA,
           "-nographic", "-nodefaults", "-serial", "stdio", "-no-reboot", "-display", "none"]
    if bios:
        cmd += ["-bios", bios]
    return cmd


SYSTEMS = [
    ("ferry-vmm", [vmm, "--kernel", guest, "--cpus", str(CPUS), "--memory", str(MEM),
                   "--cmdline", CMDLINE]),
    ("qemu (SeaBIOS)", qemu(None)),
    ("qemu (qboot)", qemu("/usr/share/qemu/qboot.rom")),
]


def one(cmd):
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL)
    out = Lines(p.stdout, cmd[0])
    try:
        first = out.lines[out.wait_for(r"ferry-agent beat=1 ", SILENCE)][0] - t0
        if not out.wait_eof(SILENCE):
            raise HarnessError(f"{cmd[0]}: did not power off within {SILENCE} s")
    except BaseException as e:
        # The process is ended and reaped whatever went wrong; a failure
        # says how it ended (it may have died on its own: the reason).
        killed = p.poll() is None
        if killed:
            p.kill()
        rc = p.wait()
        if isinstance(e, HarnessError):
            how = f"killed (exit status {rc})" if killed else f"it had exited with status {rc}"
            raise HarnessError(f"{e}; {how}") from None
        raise
    rc = p.wait()
    total = time.monotonic() - t0
    if rc != 0:
        raise HarnessError(f"{cmd[0]}: exit {rc}")
    return first, total


print(f"boot of the ferry test guest, {CPUS} vCPUs, {MEM} MiB, median of {runs} runs")
print(f"{'system':16} {'first heartbeat':>16} {'power-off at 1 s, exit':>24}")
for name, cmd in SYSTEMS:
    if name.endswith("(qboot)") and not os.path.exists("/usr/share/qemu/qboot.rom"):
        print(f"{name:16} skipped: /usr/share/qemu/qboot.rom is missing "
              "(Debian's qemu-system-data has it)", flush=True)
        continue
    res = [one(cmd) for _ in range(runs)]
    fb = statistics.median(r[0] for r in res) * 1000
    tot = statistics.median(r[1] for r in res) * 1000
    print(f"{name:16} {fb:13.0f} ms {tot:21.0f} ms", flush=True)
