"""Live-migration benchmark: ferry-vmm vs QEMU/KVM, same guest, same
workload, both ends on this host over TCP on 127.0.0.1.

Scenarios of the test guest (1 vCPU each, heartbeat every BEAT_MS ms on
both hypervisors):

  idle      1 GiB, no dirtier (just heartbeats)
  256@50    1 GiB, ferry.dirty=256@50   (256 MiB rewritten at 50 MiB/s)
  256@500   1 GiB, ferry.dirty=256@500
  4g-idle   4 GiB, no dirtier
  non-live  1 GiB, ferry.dirty=256@50, the VM paused first

and of Linux (Debian's cloud kernel, build/linux/vmlinux, with the agent
as /init, build/guest/linux/agent.cpio: the same console lines; 2 vCPUs,
heartbeat every LINUX_BEAT_MS ms, no device but the serial port):

  linux-idle    1 GiB, no dirtier
  linux-256@50  1 GiB, ferry.dirty=256@50 (a thread per vCPU)

Inside the test host (FERRY_TESTHOST_INSIDE=1): idle, 64@8, 64@16,
non-live with 64@8, linux-idle and linux-64@8 (SCENARIOS says why).

The guest runs WARMUP (2) s after its first heartbeat, or until the dirtier
has written its whole working set once if that takes longer (5.6 s for
256@50), then it is migrated with a maximum downtime of 10 ms:

  QEMU   migrate-set-parameters downtime-limit 10 and max-bandwidth
         8796093022207 (what libvirt sets for "unlimited"; QEMU's default is
         128 MiB/s), migrate tcp:..., query-migrate every 5 ms.  Non-live:
         stop, migrate, then cont on the destination once it has loaded
         (QEMU keeps a VM that was migrated paused, paused).
  ferry  migrate-set-parameters downtime-limit 10, migrate {"uri", "live"},
         query-migrate every 5 ms.  Non-live: "live": false.

Per scenario and hypervisor (median of RUNS runs):

  total     total-time reported by the hypervisor
  downtime  downtime reported by the hypervisor
  max gap   longest gap between heartbeat lines as they arrive at the host,
            from the last beat on the source before the migration command
            to WINDOW_AFTER s after the first beat on the destination (the
            guest-visible pause, plus any stall during the copy)
  switch    last beat on the source -> first beat on the destination
  to-beat   host time from the migration command (non-live: from the stop)
            to the first heartbeat on the destination
  sent      ram.transferred, in MB (10^6 bytes)
  MB/s      sent / total
  passes    ram.dirty-sync-count

and checks that the destination goes on counting (its first beat is the
source's last + 1 or more, never 1 again) and that corrupt=0 stays.  A line
takes the guest ~4.5 ms to print, so the pause often falls inside one: its
start stays on the source console, its end comes on the destination's; the
two are joined (and must parse) and the beat counts as arriving there.

  bench/migrate.py BUILD [RUNS] [--only qemu|ferry] [--scenario NAME,...] [-v]

FERRY_QEMU_BIOS=qboot boots QEMU with qboot instead of SeaBIOS (faster boot;
the migration itself is the same)."""

import argparse
import json
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
from ferry_harness import BAD_RE, BEAT_RE, HarnessError, Lines, free_port, parse_beat  # noqa: E402

# Inside the test host QEMU/KVM runs under QEMU's emulated SVM, whose I/O
# bitmap check the guest avoids with IOPL 3 (guest/entry.c says why).
QEMU_EXTRA = " ferry.iopl=3" if os.environ.get("FERRY_TESTHOST_INSIDE") == "1" else ""

BEAT_MS = 10
# Linux's serial driver takes an exit per byte and an interrupt per FIFO:
# a heartbeat every 10 ms would be most of what an emulated guest does.
LINUX_BEAT_MS = 100
# as tests/e2e/test_linux_agent.py: the kernel's errors on the console,
# a panic resets at once (and QEMU's -no-reboot, ferry's stream end it)
LINUX_ARGS = "console=ttyS0 loglevel=4 panic=-1"
WARMUP = 2.0           # s of guest run time after its first beat, before migrating (at least)
WINDOW_AFTER = 2.0     # s of destination console watched after its first beat
DOWNTIME_LIMIT = 10    # ms
MAX_BANDWIDTH = 8796093022207  # bytes/s: libvirt's "unlimited" (INT64_MAX / 2^20)
POLL = 0.005           # s between query-migrate calls
MIGRATE_TIMEOUT = 120  # s: a migration still running then is cancelled and reported
BOOT_TIMEOUT = 90      # s to the first heartbeat (SeaBIOS takes 3-4 s on kvm_pvm)
QEMU_BIOS = "/usr/share/qemu/qboot.rom" if os.environ.get("FERRY_QEMU_BIOS") == "qboot" else None


class Scenario:
    def __init__(self, name, mem, cmdline, live, cpus=1, linux=False):
        self.name, self.mem, self.live, self.cpus = name, mem, live, cpus
        self.linux = linux
        self.beat_ms = LINUX_BEAT_MS if linux else BEAT_MS
        self.cmdline = " ".join(x for x in (LINUX_ARGS if linux else "", cmdline,
                                            f"ferry.beat_ms={self.beat_ms}") if x)
        # Run long enough that the dirtier has written its whole working set
        # once (256 MiB at 50 MiB/s takes 5.1 s), and at least WARMUP.
        self.warmup = WARMUP
        m = re.search(r"ferry\.dirty=(\d+)@(\d+)", cmdline)
        if m and int(m.group(2)) > 0:
            self.warmup = max(WARMUP, int(m.group(1)) / int(m.group(2)) + 0.5)


EMULATED = os.environ.get("FERRY_TESTHOST_INSIDE") == "1"
if not EMULATED:
    SCENARIOS = [
        Scenario("idle", 1024, "", True),
        Scenario("256@50", 1024, "ferry.dirty=256@50", True),
        Scenario("256@500", 1024, "ferry.dirty=256@500", True),
        Scenario("4g-idle", 4096, "", True),
        Scenario("non-live", 1024, "ferry.dirty=256@50", False),
        Scenario("linux-idle", 1024, "", True, cpus=2, linux=True),
        Scenario("linux-256@50", 1024, "ferry.dirty=256@50", True, cpus=2, linux=True),
    ]
else:
    # Inside the test host a guest dirtying 50 or 500 MiB/s keeps its vCPU
    # busy all the time (no heartbeat for seconds: nothing to measure a
    # pause by), and the stream carries tens of MiB/s: the dirtiers are
    # scaled as the tests scale them (64@8 converges there, 64@16 does not
    # alone), and 4 GiB of idle RAM, minutes to copy there, is left out.
    SCENARIOS = [
        Scenario("idle", 1024, "", True),
        Scenario("64@8", 1024, "ferry.dirty=64@8", True),
        Scenario("64@16", 1024, "ferry.dirty=64@16", True),
        Scenario("non-live", 1024, "ferry.dirty=64@8", False),
        # Linux has no virtio device here: 2 vCPUs work (docs/testing.md)
        Scenario("linux-idle", 1024, "", True, cpus=2, linux=True),
        Scenario("linux-64@8", 1024, "ferry.dirty=64@8", True, cpus=2, linux=True),
    ]

BenchError = HarnessError


class Proc:
    """A hypervisor process: console on stdout, log on stderr, both read in
    threads."""

    def __init__(self, name, args):
        self.name, self.args = name, args
        self.p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        self.out = Lines(self.p.stdout, name)
        self.err = Lines(self.p.stderr, f"{name} stderr")

    def alive(self):
        return self.p.poll() is None

    def wait_exit(self, timeout):
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            pass

    def report(self):
        """What to show when something went wrong with this process."""
        rc = self.p.poll()
        state = "running" if rc is None else f"exited with status {rc}"
        s = [f"  {self.name} ({state}): {' '.join(self.args)}"]
        err = self.err.tail(15)
        s.append("    stderr: " + ("(empty)" if not err else ""))
        s += [f"      {l}" for l in err]
        out = self.out.tail(4)
        if out:
            s.append("    console, last lines:")
            s += [f"      {l}" for l in out]
        return "\n".join(s)


def Qmp(path, proc, timeout=30):
    """proc's QMP socket (QEMU's or ferry-vmm's), capabilities negotiated;
    its .proc is proc."""
    q = harness.Qmp(path, name=proc.name, negotiate=True, connect_timeout=timeout,
                    alive=proc.alive)
    q.proc = proc
    return q


def wait_until(t):
    d = t - time.monotonic()
    if d > 0:
        time.sleep(d)


def poll_migration(q, proc_other):
    """query-migrate every POLL s until it ends; the final answer."""
    deadline = time.monotonic() + MIGRATE_TIMEOUT
    while True:
        info = q.cmd("query-migrate")
        st = info.get("status")
        if st in ("completed", "failed", "cancelled"):
            return info
        if not q.proc.alive():
            raise BenchError(f"{q.proc.name} died during the migration")
        if proc_other is not None and not proc_other.alive() and st != "completed":
            # Give the source a moment to notice, then report.
            time.sleep(0.5)
            info = q.cmd("query-migrate")
            if info.get("status") in ("completed", "failed", "cancelled"):
                return info
            raise BenchError(f"{proc_other.name} died during the migration "
                             f"(source status {info.get('status')})")
        if time.monotonic() > deadline:
            try:
                q.cmd("migrate_cancel")
            except BenchError:
                pass
            raise BenchError(f"migration did not finish within {MIGRATE_TIMEOUT} s "
                             f"(status {st}, {json.dumps(info.get('ram', {}))})")
        time.sleep(POLL)


def analyse(src, dst, t0, i_dst_first):
    """Heartbeat figures and checks from both consoles."""
    sl, dl = src.out.snapshot(), dst.out.snapshot()
    spart = src.out.partial()
    # A line the guest was printing when it stopped on the source ends on the
    # destination: it arrives, whole, when its newline does.
    split = None
    if spart and dl and not dl[0][1].startswith("ferry-agent"):
        split = spart + dl[0][1]
        dl[0] = (dl[0][0], split)
    sb = [(t, b) for t, b in ((t, parse_beat(l)) for t, l in sl) if b]
    db = [(t, b) for t, b in ((t, parse_beat(l)) for t, l in dl) if b]
    if not sb:
        raise BenchError("no heartbeat on the source console")
    if not db:
        raise BenchError("no heartbeat on the destination console")
    before = [x for x in sb if x[0] < t0]
    if not before:
        raise BenchError("no source heartbeat before the migration started")
    t_first_dst = db[0][0]
    t_end = t_first_dst + WINDOW_AFTER
    last_src = sb[-1]
    times = sorted([t for t, _ in sb if t >= before[-1][0]] + [t for t, _ in db if t <= t_end])
    max_gap = max(b - a for a, b in zip(times, times[1:]))
    # jitter before the migration, over the last second of warm-up
    pre = [t for t, _ in before if t >= t0 - 1.0]
    base_gap = max((b - a for a, b in zip(pre, pre[1:])), default=0.0)

    problems = []
    step = db[0][1]["beat"] - last_src[1]["beat"]
    if step < 1 or db[0][1]["beat"] == 1:
        problems.append(f"destination beat={db[0][1]['beat']} after source beat="
                        f"{last_src[1]['beat']}")
    for where, proc, lines, beats in (("source", src, sl, sb), ("destination", dst, dl, db)):
        for (_, a), (_, b) in zip(beats, beats[1:]):
            if b["beat"] != a["beat"] + 1:
                # what the console had where the beats in between should be
                between = [l for _, l in lines if "beat=" in l and not BEAT_RE.fullmatch(l)]
                # ferry-vmm's UART holds a slow reader's output back; it
                # drops output only on a write error (src/vm/chardev.c),
                # and says so once
                dropped = [l for _, l in proc.err.snapshot() if "dropping it" in l]
                problems.append(f"{where} beats {a['beat']} -> {b['beat']}" +
                                (f"; a garbled line: {between[0][:240]!r}" if between else "") +
                                (f"; {proc.name} said: {dropped[0]}" if dropped else ""))
                break
    bad_corrupt = [b for _, b in sb + db if b["corrupt"] != 0]
    if bad_corrupt:
        problems.append(f"corrupt={bad_corrupt[0]['corrupt']} at beat={bad_corrupt[0]['beat']}")
    bad_lines = [l for _, l in sl + dl if BAD_RE.search(l)]
    if bad_lines:
        problems.append(f"{len(bad_lines)} bad line(s), first: {bad_lines[0]!r}")
    if split is not None and "beat=" in split and not parse_beat(split):
        problems.append(f"console line split across the migration does not parse: {split!r}")
    if last_src[1]["verified"] > 0 and db[-1][1]["verified"] <= last_src[1]["verified"]:
        problems.append(f"verified did not grow on the destination ({last_src[1]['verified']} -> "
                        f"{db[-1][1]['verified']})")
    return {
        "max_gap": max_gap * 1000,
        "switch": (t_first_dst - last_src[0]) * 1000,
        "to_beat": (t_first_dst - t0) * 1000,
        "base_gap": base_gap * 1000,
        "src_last": last_src[1]["beat"],
        "dst_first": db[0][1]["beat"],
        "dst_beats": len(db),
        "uptime_jump": db[0][1]["uptime_ms"] - last_src[1]["uptime_ms"],
        "corrupt_ok": not bad_corrupt and not bad_lines,
        "dst_verified": db[-1][1]["verified"] - last_src[1]["verified"],
        "split": split is not None,
        "problems": problems,
    }


def figures(info):
    ram = info.get("ram") or {}
    return {
        "total": info.get("total-time"),
        "downtime": info.get("downtime"),
        "sent": ram.get("transferred"),
        "passes": ram.get("dirty-sync-count"),
        "normal": ram.get("normal"),        # pages sent whole
        "duplicate": ram.get("duplicate"),  # pages sent as zero
        "setup": info.get("setup-time"),
    }


def finish(procs, quits):
    """quit every process through its control socket and check it exits 0."""
    notes = []
    for q in quits:
        if q is None or not q.proc.alive():
            continue
        try:
            q.cmd("quit")
        except (BenchError, OSError, ValueError):
            pass
    for p in procs:
        rc = p.wait_exit(10)
        if rc is None:
            notes.append(f"{p.name} did not exit 10 s after quit")
        elif rc != 0:
            notes.append(f"{p.name} exited with status {rc}")
    return notes


# ---------------------------------------------------------------- QEMU

def kernel_args(sc, cfg):
    """What boots: the test guest, or Linux with the agent's initramfs."""
    return ["--kernel", cfg.kernel, "--initrd", cfg.initrd] if sc.linux else \
        ["--kernel", cfg.guest]


def qemu_args(sc, sock, cfg):
    boot = [a[1:] if a.startswith("--") else a for a in kernel_args(sc, cfg)]  # -kernel ...
    args = ["qemu-system-x86_64", "-enable-kvm", "-cpu", "host,-arch-capabilities", "-M", "pc",
            "-m", str(sc.mem), "-smp", str(sc.cpus), *boot, "-append",
            sc.cmdline + ("" if sc.linux else QEMU_EXTRA),
            "-nographic", "-nodefaults", "-serial", "stdio", "-no-reboot", "-display", "none",
            "-qmp", f"unix:{sock},server=on,wait=off"]
    if QEMU_BIOS:
        args += ["-bios", QEMU_BIOS]
    return args


def qemu_once(tmp, sc, cfg):
    port = free_port()
    ssock, dsock = os.path.join(tmp, "qemu-src.qmp"), os.path.join(tmp, "qemu-dst.qmp")
    procs, qmps = [], []
    try:
        src = Proc("qemu source", qemu_args(sc, ssock, cfg))
        procs.append(src)
        i = src.out.wait_for(r"ferry-agent beat=1 ", BOOT_TIMEOUT, what=src.name)
        t_first = src.out.lines[i][0]
        qs = Qmp(ssock, src)
        qmps.append(qs)
        qs.cmd("migrate-set-parameters", {"downtime-limit": DOWNTIME_LIMIT,
                                          "max-bandwidth": MAX_BANDWIDTH})
        params = qs.cmd("query-migrate-parameters")
        if params.get("downtime-limit") != DOWNTIME_LIMIT or \
           params.get("max-bandwidth") != MAX_BANDWIDTH:
            raise BenchError(f"QEMU did not take the parameters: downtime-limit "
                             f"{params.get('downtime-limit')}, max-bandwidth "
                             f"{params.get('max-bandwidth')}")
        dst = Proc("qemu destination",
                   qemu_args(sc, dsock, cfg) + ["-incoming", f"tcp:127.0.0.1:{port}"])
        procs.append(dst)
        qd = Qmp(dsock, dst)  # QMP answers only after the incoming socket listens
        qmps.append(qd)
        st = qd.cmd("query-status")["status"]
        if st != "inmigrate":
            raise BenchError(f"QEMU destination status {st}, expected inmigrate")
        wait_until(t_first + sc.warmup)

        t0 = time.monotonic()
        if not sc.live:
            qs.cmd("stop")
        qs.cmd("migrate", {"uri": f"tcp:127.0.0.1:{port}"})
        info = poll_migration(qs, dst)
        if info.get("status") != "completed":
            raise BenchError(f"QEMU migration {info.get('status')}: {info.get('error-desc')}")
        if not sc.live:
            deadline = time.monotonic() + 30
            while (st := qd.cmd("query-status")["status"]) == "inmigrate":
                if time.monotonic() > deadline:
                    raise BenchError("QEMU destination still inmigrate 30 s after completion")
                time.sleep(0.002)
            if st != "paused":
                raise BenchError(f"QEMU destination status {st} after a non-live migration")
            qd.cmd("cont")
        i = dst.out.wait_for(r"ferry-agent beat=", 30, what=dst.name)
        wait_until(dst.out.lines[i][0] + WINDOW_AFTER + 0.05)
        r = figures(info)
        r.update(analyse(src, dst, t0, i))
        sst = qs.cmd("query-status")["status"]
        if sst != "postmigrate":
            r["problems"].append(f"source status {sst} after the migration, not postmigrate")
        dst_st = qd.cmd("query-status")["status"]
        if dst_st != "running":
            r["problems"].append(f"destination status {dst_st}")
        r["problems"] += finish(procs, qmps)
        r["extra"] = {}
        return r
    except (BenchError, OSError) as e:  # OSError: a QMP socket reset under us
        raise BenchError(f"{type(e).__name__}: {e}\n" + "\n".join(p.report() for p in procs)) \
            from None
    finally:
        for q in qmps:
            q.close()
        for p in procs:
            p.kill()


# ---------------------------------------------------------------- ferry

def flatten(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = v
    return out


def ferry_once(tmp, sc, cfg):
    port = free_port()
    sctl, dctl = os.path.join(tmp, "ferry-src.sock"), os.path.join(tmp, "ferry-dst.sock")
    procs, qmps = [], []
    try:
        src = Proc("ferry-vmm source",
                   [cfg.vmm, *kernel_args(sc, cfg), "--memory", str(sc.mem), "--cpus",
                    str(sc.cpus), "--cmdline", sc.cmdline, "--serial", "stdio",
                    "--control", sctl])
        procs.append(src)
        i = src.out.wait_for(r"ferry-agent beat=1 ", BOOT_TIMEOUT, what=src.name)
        t_first = src.out.lines[i][0]
        qs = Qmp(sctl, src)
        qmps.append(qs)
        qs.cmd("migrate-set-parameters", {"downtime-limit": DOWNTIME_LIMIT})
        dst = Proc("ferry-vmm destination",
                   [cfg.vmm, "--incoming", f"tcp:127.0.0.1:{port}", "--serial", "stdio",
                    "--control", dctl])
        procs.append(dst)
        dst.err.wait_for(r"waiting for a migration on", 30, what=f"{dst.name} stderr")
        wait_until(t_first + sc.warmup)

        t0 = time.monotonic()
        qs.cmd("migrate", {"uri": f"tcp:127.0.0.1:{port}", "live": sc.live})
        info = poll_migration(qs, dst)
        if info.get("status") != "completed":
            raise BenchError(f"ferry migration {info.get('status')}: {info.get('error-desc')}")
        i = dst.out.wait_for(r"ferry-agent beat=", 30, what=dst.name)
        # The destination's control socket appears once the migrated VM runs.
        qd = Qmp(dctl, dst, timeout=10)
        qmps.append(qd)
        notes = []
        st = qd.cmd("query-status")["status"]
        if st == "paused":
            notes.append("destination was paused after the migration; sent cont")
            qd.cmd("cont")
        wait_until(dst.out.lines[i][0] + WINDOW_AFTER + 0.05)
        r = figures(info)
        r.update(analyse(src, dst, t0, i))
        r["problems"] += notes
        sst = qs.cmd("query-status")["status"]
        if sst != "postmigrate":
            r["problems"].append(f"source status {sst} after the migration, not postmigrate")
        dst_st = qd.cmd("query-status")["status"]
        if dst_st != "running":
            r["problems"].append(f"destination status {dst_st}")
        r["problems"] += finish(procs, qmps)
        r["extra"] = flatten(info.get("ferry") or {})
        return r
    except (BenchError, OSError) as e:  # OSError: a QMP socket reset under us
        raise BenchError(f"{type(e).__name__}: {e}\n" + "\n".join(p.report() for p in procs)) \
            from None
    finally:
        for q in qmps:
            q.close()
        for p in procs:
            p.kill()


# ---------------------------------------------------------------- report

COLS = "total downtime max_gap switch to_beat".split()


def med(rs, key):
    v = [r[key] for r in rs if r.get(key) is not None]
    return statistics.median(v) if v else None


def fmt(v, unit="", width=9, prec=0):
    if v is None:
        return f"{'-':>{width}}"
    return f"{v:{width - len(unit)}.{prec}f}{unit}"


def row(hv, rs):
    m = {k: med(rs, k) for k in COLS + ["sent", "passes"]}
    rate = None
    if m["sent"] is not None and m["total"]:
        rate = statistics.median(r["sent"] / 1e6 / (r["total"] / 1000)
                                 for r in rs if r.get("sent") is not None and r.get("total"))
    cells = [fmt(m[k], "ms") for k in COLS]
    cells.append(fmt(m["sent"] / 1e6 if m["sent"] is not None else None, "", 8, 1))
    cells.append(fmt(rate, "", 7))
    cells.append(fmt(m["passes"], "", 6))
    return f"  {hv:6}" + " ".join(cells), m


def checks(rs):
    n = len(rs)
    cont = sum(1 for r in rs if r["dst_first"] > r["src_last"] and r["dst_first"] != 1)
    corrupt = sum(1 for r in rs if r["corrupt_ok"])
    steps = sorted({r["dst_first"] - r["src_last"] for r in rs})
    jumps = [r["uptime_jump"] for r in rs]
    splits = sum(1 for r in rs if r["split"])
    s = (f"          beats continue {cont}/{n} (dst first - src last: "
         f"{','.join(f'+{x}' for x in steps)}; e.g. {rs[-1]['src_last']} -> {rs[-1]['dst_first']}; "
         f"a line split between the consoles {splits}/{n})"
         f"\n          corrupt=0 {corrupt}/{n} (dst verified +{rs[-1]['dst_verified']}), "
         f"guest uptime jump {statistics.median(jumps):.0f} ms, "
         f"beat jitter before {statistics.median(r['base_gap'] for r in rs):.0f} ms")
    for i, r in enumerate(rs):
        for p in r["problems"]:
            s += f"\n          run {i + 1}: PROBLEM: {p}"
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("runs", nargs="?", type=int, default=3)
    ap.add_argument("--only", choices=("qemu", "ferry"))
    ap.add_argument("--scenario", help="comma-separated: " + ",".join(s.name for s in SCENARIOS))
    ap.add_argument("-v", "--verbose", action="store_true", help="print every run's figures")
    cfg = ap.parse_args()
    cfg.guest = os.path.join(cfg.build, "guest", "ferry-guest.elf")
    cfg.kernel = os.path.join(cfg.build, "linux", "vmlinux")
    cfg.initrd = os.path.join(cfg.build, "guest", "linux", "agent.cpio")
    cfg.vmm = os.path.join(cfg.build, "src", "ferry-vmm")
    sides = [("qemu", qemu_once), ("ferry", ferry_once)]
    if cfg.only:
        sides = [s for s in sides if s[0] == cfg.only]
    scenarios = SCENARIOS
    if cfg.scenario:
        names = cfg.scenario.split(",")
        unknown = [n for n in names if n not in {s.name for s in SCENARIOS}]
        if unknown:
            ap.error(f"unknown scenario(s) {unknown}")
        scenarios = [s for s in SCENARIOS if s.name in names]
    if os.path.exists("/sys/module/kvm_pvm") and any(s.linux for s in scenarios):
        print("SKIP: " + ", ".join(s.name for s in scenarios if s.linux) + ": this /dev/kvm is "
              "kvm_pvm, which cannot run an unmodified Linux (FERRY_TESTHOST=always make bench "
              "measures them in the test host)", flush=True)
        scenarios = [s for s in scenarios if not s.linux]
    for path in [cfg.guest] + ([cfg.kernel, cfg.initrd] if any(s.linux for s in scenarios) else []):
        if not os.path.exists(path):
            sys.exit(f"{path} is missing: run make")
    if any(n == "ferry" for n, _ in sides) and not os.path.exists(cfg.vmm):
        sys.exit(f"{cfg.vmm} is missing: run make")
    if any(n == "qemu" for n, _ in sides) and not shutil.which("qemu-system-x86_64"):
        sys.exit("qemu-system-x86_64 is not installed (scripts/setup.sh installs it)")

    print(f"live migration over tcp:127.0.0.1, downtime-limit {DOWNTIME_LIMIT} ms, "
          f"median of {cfg.runs} run(s)")
    print("total/downtime: as the hypervisor reports them; max gap: longest gap between "
          "heartbeats at the host\nacross the migration; switch: last source beat -> first "
          "destination beat; to-beat: migrate\n(non-live: stop) -> first destination beat; "
          "sent in MB (10^6 B), MB/s = sent / total")
    print(f"{'scenario':8}{'':2}{'total':>9} {'downtime':>9} {'max gap':>9} {'switch':>9} "
          f"{'to-beat':>9} {'sent MB':>8} {'MB/s':>7} {'passes':>6}", flush=True)
    failed = False
    for sc in scenarios:
        print(f"{sc.name} ({'Linux, ' if sc.linux else ''}{sc.cpus} vCPU(s), {sc.mem} MiB, "
              f"\"{sc.cmdline}\", migrated after {sc.warmup:.1f} s"
              f"{'' if sc.live else ', paused first'})",
              flush=True)
        meds = {}
        for hv, fn in sides:
            rs = []
            for k in range(cfg.runs):
                tmp = tempfile.mkdtemp(prefix="ferry-mig-")
                try:
                    r = fn(tmp, sc, cfg)
                    rs.append(r)
                    if cfg.verbose:
                        print(f"    {hv} run {k + 1}: " + ", ".join(
                            f"{c}={r[c]:.0f}" if isinstance(r[c], (int, float)) else f"{c}={r[c]}"
                            for c in COLS + ["sent", "passes", "normal", "duplicate",
                                             "src_last", "dst_first", "uptime_jump"]),
                          flush=True)
                except (BenchError, OSError) as e:
                    # OSError: a hypervisor that died under its QMP socket
                    # (seen: QEMU's source, ConnectionResetError)
                    print(f"  {hv:6}FAILED (run {k + 1}): {type(e).__name__}: {e}", flush=True)
                    failed = True
                    break
                finally:
                    shutil.rmtree(tmp, ignore_errors=True)
            if not rs:
                continue
            line, m = row(hv, rs)
            meds[hv] = m
            print(line + (f"   ({len(rs)} of {cfg.runs} runs)" if len(rs) < cfg.runs else ""))
            print(checks(rs), flush=True)
            if hv == "qemu" and not sc.live:
                print("          (QEMU's downtime counts only its final stop-and-copy phase, "
                      "not the time the VM\n          was paused before migrate: compare "
                      "max gap and to-beat here)", flush=True)
            if any(r["problems"] for r in rs):
                failed = True
            extras = {}
            for r in rs:
                for k, v in r["extra"].items():
                    extras.setdefault(k, []).append(v)
            if extras:
                print("          ferry parts (median): " + ", ".join(
                    f"{k}={statistics.median(v):g}" for k, v in extras.items()), flush=True)
        if "qemu" in meds and "ferry" in meds:
            f, q = meds["ferry"], meds["qemu"]

            def ratio(k):
                if f[k] is None or not q[k]:
                    return "-"
                return f"{f[k] / q[k]:.2f}"
            print(f"  ferry/qemu: total {ratio('total')}, downtime {ratio('downtime')}, "
                  f"max gap {ratio('max_gap')}, to-beat {ratio('to_beat')}", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
