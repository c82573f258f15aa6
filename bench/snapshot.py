"""Save/restore benchmark: ferry-vmm vs QEMU/KVM, same test guest, same
workload, one run. A 1 GiB guest with 2 vCPUs runs ferry.dirty=256@200 for
3 s (every page of its 256 MiB working set written), then:

  save     ferry: control command save (includes fsync + rename);
           QEMU:  stop + migrate "exec:cat > FILE" until completed, with
                  max-bandwidth unlimited as libvirt sets it for virsh save
                  (no fsync; the fsync it would need is shown apart)
  restore  from process start to the guest's first heartbeat after it
           ferry: ferry-vmm --restore FILE
           QEMU:  -incoming "exec:cat FILE", then cont once it has loaded (it
                  keeps the saved VM's paused state)

Each figure is the median of RUNS runs.  bench/snapshot.py BUILD [RUNS]"""

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lib"))
import ferry_harness as harness  # noqa: E402
from ferry_harness import Lines  # noqa: E402

# Inside the test host QEMU/KVM runs under QEMU's emulated SVM, whose I/O
# bitmap check the guest avoids with IOPL 3 (guest/entry.c says why).
QEMU_EXTRA = " ferry.iopl=3" if os.environ.get("FERRY_TESTHOST_INSIDE") == "1" else ""

build = sys.argv[1] if len(sys.argv) > 1 else "build"
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
guest = os.path.join(build, "guest", "ferry-guest.elf")
vmm = os.path.join(build, "src", "ferry-vmm")
CMDLINE = "ferry.dirty=256@200"
MEM, CPUS = 1024, 2


def Qmp(path):
    return harness.Qmp(path, name=os.path.basename(path), negotiate=True, connect_timeout=30)


def spawn(args, name, **kw):
    """A process whose console (stdout) a harness thread reads, so that it
    never blocks on a full pipe."""
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, **kw)
    p.out = Lines(p.stdout, name)
    return p


def wait_line(p, text, timeout=60):
    """When the first console line containing text arrived."""
    return p.out.lines[p.out.wait_for(re.escape(text), timeout)][0]


def stop(p):
    if p.poll() is None:
        p.kill()
    p.wait()


def qemu_args(sock):
    return ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host,-arch-capabilities", "-M", "pc",
            "-m", str(MEM), "-smp", str(CPUS), "-kernel", guest, "-append", CMDLINE + QEMU_EXTRA,
            "-nographic", "-nodefaults", "-serial", "stdio", "-display", "none",
            "-qmp", f"unix:{sock},server=on,wait=off"]


def ferry_once(tmp):
    sock, path = os.path.join(tmp, "f.sock"), os.path.join(tmp, "f.save")
    p = spawn([vmm, "--kernel", guest, "--cpus", str(CPUS), "--memory", str(MEM),
               "--cmdline", CMDLINE, "--control", sock], "ferry-vmm")
    try:
        wait_line(p, "beat=30 ")
        q = Qmp(sock)
        t0 = time.monotonic()
        info = q.cmd("save", {"path": path})
        t_save = time.monotonic() - t0
        q.cmd("quit")
    finally:
        stop(p)
    size = os.path.getsize(path)
    t0 = time.monotonic()
    p = spawn([vmm, "--restore", path], "ferry-vmm --restore")
    try:
        t_restore = wait_line(p, "ferry-agent beat=") - t0
    finally:
        stop(p)
    os.unlink(path)
    return t_save, 0.0, t_restore, size, info["ram-pages"]


def qemu_once(tmp):
    sock, path = os.path.join(tmp, "q.sock"), os.path.join(tmp, "q.save")
    p = spawn(qemu_args(sock), "QEMU", stderr=subprocess.DEVNULL)
    try:
        wait_line(p, "beat=30 ", 90)
        q = Qmp(sock)
        t0 = time.monotonic()
        # As libvirt does for virsh save: no bandwidth limit (QEMU's default
        # is 128 MiB/s).
        q.cmd("migrate-set-parameters", {"max-bandwidth": 1 << 40})
        q.cmd("stop")
        q.cmd("migrate", {"uri": f"exec:cat > {path}"})
        while q.cmd("query-migrate").get("status") not in ("completed", "failed"):
            time.sleep(0.002)
        t_save = time.monotonic() - t0
        t1 = time.monotonic()
        fd = os.open(path, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        t_fsync = time.monotonic() - t1
        q.cmd("quit")
    finally:
        stop(p)
    size = os.path.getsize(path)
    t0 = time.monotonic()
    sock2 = os.path.join(tmp, "q2.sock")
    p = spawn(qemu_args(sock2) + ["-incoming", f"exec:cat {path}"], "QEMU -incoming",
              stderr=subprocess.DEVNULL)
    try:
        # QEMU keeps the source's run state: a VM saved paused loads paused,
        # and is continued as soon as the load has finished.
        q = Qmp(sock2)
        while q.cmd("query-status")["status"] == "inmigrate":
            time.sleep(0.002)
        q.cmd("cont")
        t_restore = wait_line(p, "ferry-agent beat=", 90) - t0
    finally:
        stop(p)
    os.unlink(path)
    return t_save, t_fsync, t_restore, size, None


def main():
    tmp = tempfile.mkdtemp(prefix="ferry-bench-")
    print(f"save/restore: {MEM} MiB guest, {CPUS} vCPUs, {CMDLINE} (256 MiB touched), "
          f"median of {runs} runs")
    print(f"{'system':10} {'save':>9} {'(+fsync)':>9} {'restore':>9} {'file':>9}")
    res = {}
    for name, fn in (("ferry", ferry_once), ("qemu", qemu_once)):
        r = [fn(tmp) for _ in range(runs)]
        med = [statistics.median(x[i] for x in r) for i in range(4)]
        res[name] = med
        fs = f"{med[1] * 1000:7.0f}ms" if name == "qemu" else "incl."
        print(f"{name:10} {med[0] * 1000:7.0f}ms {fs:>9} {med[2] * 1000:7.0f}ms "
              f"{med[3] / 2**20:6.0f}MiB", flush=True)
    f, q = res["ferry"], res["qemu"]
    print(f"ratio ferry/qemu: save {f[0] / q[0]:.2f} (vs QEMU save+fsync {f[0] / (q[0] + q[1]):.2f}), "
          f"restore {f[2] / q[2]:.2f}")
    shutil.rmtree(tmp)


main()
