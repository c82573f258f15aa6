"""virtio-blk benchmark: ferry-vmm vs QEMU/KVM, the same test guest driving
the same image with its own virtio-blk driver (ferry.disk-bench=SECONDS):
4 KiB random reads and writes at queue depth 32 (IOPS), then sequential
reads and writes of 128 KiB requests at depth 8 (MB/s). Both VMMs open the
image with cache=none (O_DIRECT), QEMU with its default aio=threads; 2
vCPUs, 512 MiB. Each figure is the median of RUNS runs, alternating.

  bench/disk.py BUILD [RUNS] [SECONDS] [IMAGE_MIB]"""

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# Inside the test host QEMU/KVM runs under QEMU's emulated SVM, whose I/O
# bitmap check the guest avoids with IOPL 3 (guest/entry.c says why).
QEMU_EXTRA = " ferry.iopl=3" if os.environ.get("FERRY_TESTHOST_INSIDE") == "1" else ""

build = sys.argv[1] if len(sys.argv) > 1 else "build"
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
seconds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
image_mib = int(sys.argv[4]) if len(sys.argv) > 4 else 1024
guest = os.path.join(build, "guest", "ferry-guest.elf")
vmm = os.path.join(build, "src", "ferry-vmm")
CMDLINE = f"ferry.disk-bench={seconds}"
MEM, CPUS = 512, 2
FIELDS = ("randread_iops", "randwrite_iops", "seqread_mbs", "seqwrite_mbs")
LINE_RE = re.compile(r"ferry-agent diskbench " +
                     " ".join(f"{f}=(\\d+)" for f in FIELDS))


def run(args, what):
    t0 = time.monotonic()
    p = subprocess.run(args, capture_output=True, text=True, timeout=120 + 8 * seconds)
    m = LINE_RE.search(p.stdout)
    if not m:
        tail = (p.stdout + p.stderr).strip().splitlines()[-5:]
        sys.exit(f"{what}: no diskbench line (exit {p.returncode}): {tail}")
    return [int(x) for x in m.groups()], time.monotonic() - t0


def ferry(img):
    return run([vmm, "--kernel", guest, "--cpus", str(CPUS), "--memory", str(MEM),
                "--cmdline", CMDLINE, "--serial", "stdio",
                "--disk", f"{img},cache=none"], "ferry")


def qemu(img):
    bios = ["-bios", "/usr/share/qemu/qboot.rom"] if os.environ.get("FERRY_QEMU_BIOS") == "qboot" \
        else []
    return run(["qemu-system-x86_64"] + bios + [
        "-enable-kvm", "-cpu", "host,-arch-capabilities", "-M", "pc", "-m", str(MEM),
        "-smp", str(CPUS), "-kernel", guest, "-append", CMDLINE + QEMU_EXTRA, "-nographic", "-nodefaults",
        "-serial", "stdio", "-no-reboot", "-display", "none",
        "-drive", f"if=none,id=d0,file={img},format=raw,cache=none",
        "-device", "virtio-blk-pci,drive=d0"], "qemu")


def main():
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("SKIP: /dev/kvm is not usable here: benchmark not run")
        return
    if not shutil.which("qemu-system-x86_64"):
        print("SKIP: qemu-system-x86_64 is not installed: benchmark not run")
        return
    tmp = tempfile.mkdtemp(prefix="ferry-bench-disk-", dir="/var/tmp")
    try:
        img = os.path.join(tmp, "disk.img")
        # Every block allocated (random reads must reach the disk, not holes).
        subprocess.run(["dd", "if=/dev/urandom", f"of={img}", "bs=1M", f"count={image_mib}",
                        "status=none"], check=True)
        res = {"ferry": [], "qemu": []}
        for i in range(runs):
            for name, fn in (("ferry", ferry), ("qemu", qemu)):
                figs, _ = fn(img)
                res[name].append(figs)
                print(f"  run {i + 1} {name:5}: " +
                      " ".join(f"{f}={v}" for f, v in zip(FIELDS, figs)), flush=True)
        print(f"\nvirtio-blk, {image_mib} MiB image, cache=none, {seconds} s a phase, "
              f"median of {runs}")
        print(f"{'':16} {'ferry':>10} {'QEMU':>10} {'ferry/QEMU':>11}")
        for k, f in enumerate(FIELDS):
            a = statistics.median(r[k] for r in res["ferry"])
            b = statistics.median(r[k] for r in res["qemu"])
            print(f"{f:16} {a:10.0f} {b:10.0f} {a / b if b else float('nan'):11.2f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


main()
