"""ferry's virtio devices with the test guest's own drivers: the disk reads
back exactly (sha256 against the host's), readonly=on refuses writes, the
guest's disk writer leaves complete, in-order records, and a disk with
writes in flight survives save/restore, live and non-live migration, and a
destination killed before GO, with no record lost or written twice."""

import hashlib
import re
import shutil
import subprocess

from ferrytest import *
from test_migrate import (destination, finish, joined_beats, kill_all, pump, start_migration,
                          status, track, wait_migration)

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
CHECK_RECORDS = os.path.join(ROOT, "scripts", "check-disk-records.py")
MIB = 1024 * 1024

DISK_RE = re.compile(r"ferry-agent disk=(vd[a-z]) bytes=(\d+) sha256=([0-9a-f]{64})")
WRITER_RE = re.compile(r"ferry-agent disk-writer disk=(vd[a-z]) nonce=([0-9a-fA-F]+)")


def image(tmpdir, mib=16, name="disk.img"):
    """A random raw image on a file system that takes O_DIRECT (not tmpfs)."""
    path = os.path.join(tmpdir, name)
    with open(path, "wb") as f:
        f.write(os.urandom(mib * MIB))
    return path


def workdir():
    return tempfile.mkdtemp(prefix="ferry-virtio-", dir="/var/tmp")


def sha256(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def disk_beats(vm):
    """(beat, disk_written, disk_corrupt, uptime_ms) of every beat with disk
    figures."""
    return [(b["beat"], b["disk_written"], b["disk_corrupt"], b["uptime_ms"])
            for b in vm.console.beats() if "disk_written" in b and "disk_corrupt" in b]


def check_records(img, nonce):
    p = subprocess.run([sys.executable, CHECK_RECORDS, img, "--nonce", nonce],
                       capture_output=True, text=True, timeout=60)
    out = (p.stdout + p.stderr).strip()
    check(p.returncode == 0, f"check-disk-records: {out}")
    m = re.search(r"records=(\d+) first_seq=(\d+) last_seq=(\d+)", out)
    check(m, f"check-disk-records said {out!r}")
    return int(m.group(1)), int(m.group(3))


def writer_nonce(vms):
    for vm in vms:
        for _, l in vm.console.lines:
            m = WRITER_RE.search(l)
            if m:
                return m.group(2)
    raise Failure("no disk-writer line")


def disk_line(vm, timeout=30):
    vm.console.wait_for(r"ferry-agent disk=vda bytes=", timeout)
    for _, l in vm.console.lines:
        m = DISK_RE.search(l)
        if m:
            return m
    raise Failure("no disk line with a sha256")


# ---- tests --------------------------------------------------------------

def test_sha256_matches():
    tmp = workdir()
    vm = None
    try:
        img = image(tmp)
        want = sha256(img)
        for cache in ("none", "writeback"):
            vm = Vmm(cmdline="ferry.poweroff=3", memory=128, control=False,
                     extra=["--disk", f"{img},cache={cache},serial=ferry0"])
            m = disk_line(vm)
            check(int(m.group(2)) == 16 * MIB, f"bytes={m.group(2)}")
            check(m.group(3) == want, f"cache={cache}: guest sha256 {m.group(3)}, host {want}")
            vm.console.wait_for(r"ferry-agent disk=vda serial=ferry0", 5)
            rc = vm.wait_exit(30)
            check(rc == 0, f"exit {rc}: {vm.stderr()}")
            vm.kill()
            vm = None
    finally:
        if vm:
            vm.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def test_readonly_refuses_writes():
    tmp = workdir()
    vm = None
    try:
        img = image(tmp)
        want = sha256(img)
        vm = Vmm(cmdline="ferry.poweroff=3 ferry.disk-writer=256", memory=128, control=False,
                 extra=["--disk", f"{img},readonly=on,cache=none"])
        vm.console.wait_for(r"ferry-agent disk=vda readonly=1", 30)
        vm.console.wait_for(r"ferry-agent disk=vda ro_write=refused", 10)
        vm.wait_exit(30)
        check(sha256(img) == want, "the read-only image changed")
    finally:
        if vm:
            vm.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def test_disk_writer_records():
    tmp = workdir()
    vm = None
    try:
        img = image(tmp, 4)
        vm = Vmm(cmdline="ferry.poweroff=6 ferry.disk-writer=512", memory=128, control=False,
                 extra=["--disk", f"{img},cache=none"])
        rc = vm.wait_exit(40)
        check(rc == 0, f"exit {rc}: {vm.stderr()}")
        beats = disk_beats(vm)
        check(len(beats) > 20, f"{len(beats)} beats with disk figures")
        check(all(d[2] == 0 for d in beats), f"disk_corrupt: {beats[-1]}")
        check(beats[-1][1] > beats[len(beats) // 2][1] > 0, "disk_written not growing")
        n, last = check_records(img, writer_nonce([vm]))
        # 512 KiB/s of 4 KiB records for ~5 s (under emulation the writer
        # falls behind: 218 seen)
        check(n >= scaled(500, 150), f"only {n} records on the disk")
        check(last >= beats[-1][1], f"last record {last} < written {beats[-1][1]}")
    finally:
        if vm:
            vm.kill()
        shutil.rmtree(tmp, ignore_errors=True)


# Under emulation (the test host) the guest dirties less: 128@50 keeps its
# vCPU busy all the time there, and the disk writer falls far behind.
WORKLOAD = os.environ.get("FERRY_VIRTIO_WORKLOAD", scaled("ferry.dirty=128@50", "ferry.dirty=32@8")
                          + " ferry.disk-writer=512")
# Share of the writer's 128 records/s it must reach where the guest ends
# (inside the test host a restored guest's writer was seen at 18 to 35 a
# second, 14 to 27 %: there it must only go on).
MIN_WRITER_SHARE = scaled(0.7, 0.1)


def settle(vms, nonce_from, img, poweroff_vm):
    """After the guest powered off: every heartbeat clean, the records on
    the image complete and in order, and at least as many as it wrote."""
    rc = finish(poweroff_vm, 60)
    check(rc == 0, f"exit {rc}")
    beats, _ = joined_beats(*vms)
    nums = [b["beat"] for b in beats]
    check(nums == list(range(nums[0], nums[0] + len(nums))),
          f"beats not consecutive across the processes: {nums[:3]}...{nums[-3:]}")
    check(all(b["corrupt"] == 0 for b in beats), "corrupt pages")
    db = [d for vm in vms for d in disk_beats(vm)]
    check(all(d[2] == 0 for d in db), f"disk_corrupt: {[d for d in db if d[2]][:3]}")
    n, last = check_records(img, writer_nonce(nonce_from))
    check(last >= db[-1][1], f"last record {last} < written {db[-1][1]}")
    # The writer kept its pace where the guest ended (512 KiB/s: 128
    # records a second of guest uptime).
    tail = disk_beats(poweroff_vm)
    check(len(tail) >= 10, f"only {len(tail)} beats where the guest ended")
    (_, w0, _, t0), (_, w1, _, t1) = tail[0], tail[-1]
    rate = (w1 - w0) * 1000 / max(1, t1 - t0)
    check(rate >= MIN_WRITER_SHARE * 128, f"the writer did {rate:.0f} records/s where the guest ended")
    return n, last


def test_save_restore_with_disk_writes():
    tmp = workdir()
    src = dst = None
    try:
        img = image(tmp, 8)
        disk = ["--disk", f"{img},cache=none"]
        src = track(Vmm(cmdline=WORKLOAD + " ferry.poweroff=9", memory=256, extra=disk))
        src.connect(10)
        src.console.wait_for(r"ferry-agent beat=20 ", 30)
        path = os.path.join(tmp, "vm.save")
        r = src.ctl.execute("save", {"path": path}, timeout=60)
        check("return" in r, f"save: {r}")
        src.ctl.execute("quit")
        check(finish(src) == 0, "source exit")
        dst = track(Vmm(restore=True, extra=["--restore", path] + disk))
        n, last = settle([src, dst], [src], img, dst)
        print(f"  save/restore: {n} records, last seq {last}")
    finally:
        kill_all([src, dst])
        shutil.rmtree(tmp, ignore_errors=True)


def migrate_with_disk(live):
    tmp = workdir()
    src = dst = None
    try:
        img = image(tmp, 8)
        disk = ["--disk", f"{img},cache=none"]
        # The guest powers off at 10 s of its uptime (30 under emulation,
        # where a live migration took all of it: the destination showed 0
        # heartbeats before the power-off).
        src = track(Vmm(cmdline=WORKLOAD + f" ferry.poweroff={scaled(10, 30)}", memory=256,
                        extra=disk + ["--verbose"]))
        src.connect(10)
        src.console.wait_for(r"ferry-agent beat=20 ", 30)
        dst, uri = destination(tmp, extra=disk)
        start_migration(src, uri, live=live, **{"debug-ram-hash": True})
        q = wait_migration(src, [dst], 60)
        check(q["status"] == "completed", f"migration {q['status']}: {q.get('error-desc')}")
        f = q.get("ferry", {})
        # the RAM the device wrote too (a used ring, a read's data) is the
        # same on both sides
        check(f.get("ram-hash") and f.get("ram-hash") == f.get("destination-ram-hash"),
              f"RAM hashes {f.get('ram-hash')} / {f.get('destination-ram-hash')}")
        src.ctl.execute("quit")
        finish(src)
        n, last = settle([src, dst], [src], img, dst)
        print(f"  {'live' if live else 'non-live'}: {n} records, last seq {last}, "
              f"downtime {q.get('downtime')} ms")
    finally:
        kill_all([src, dst])
        shutil.rmtree(tmp, ignore_errors=True)


def test_live_migration_with_disk_writes():
    migrate_with_disk(True)


def test_nonlive_migration_with_disk_writes():
    migrate_with_disk(False)


def test_destination_killed_before_go():
    """The source flushed its disk and the destination said READY; the
    destination dies before GO: the source resumes and its writer goes on
    with no gap and no record written twice."""
    tmp = workdir()
    src = dst = None
    try:
        img = image(tmp, 8)
        disk = ["--disk", f"{img},cache=none"]
        src = track(Vmm(cmdline=WORKLOAD + " ferry.poweroff=12", memory=256,
                        extra=disk + ["--verbose"], env={"FERRY_TEST_GO_DELAY_MS": "1500"}))
        src.connect(10)
        src.console.wait_for(r"ferry-agent beat=20 ", 30)
        dst, uri = destination(tmp, extra=disk)
        start_migration(src, uri)
        deadline = time.monotonic() + 60
        while not any("FERRY_TEST_GO_DELAY_MS" in l for _, l in src.err.lines):
            check(time.monotonic() < deadline, "the source never reached the GO delay")
            pump([src, dst], 0.02)
        dst.p.kill()
        q = wait_migration(src, [dst], 30)
        check(q["status"] == "failed", f"status {q['status']}")
        check(status(src) == "running", f"source {status(src)}")
        n, last = settle([src], [src], img, src)
        print(f"  destination killed before GO: {n} records, last seq {last}")
    finally:
        kill_all([src, dst])
        shutil.rmtree(tmp, ignore_errors=True)


def test_bad_device_options():
    tmp = workdir()
    try:
        img = image(tmp, 1)
        cases = [
            (["--disk", os.path.join(tmp, "missing.img")], "No such file"),
            (["--disk", tmp], "Is a directory"),
            (["--disk", f"{img},cache=fast"], "bad option"),
            (["--disk", f"{img},readonly=maybe"], "bad option"),
            (["--disk", f",readonly=on"], "path comes first"),
            (["--net", "tap=ferrynosuch0"], "no such network interface"),
            (["--net", "tap=lo"], "not a tap"),
            (["--net", "mac=52:54:00:00:00:01"], "tap=IFNAME is required"),
            (["--net", "tap=x,mac=01:00:00:00:00:01"], "bad option"),
        ]
        for extra, want in cases:
            p = subprocess.run([VMM, "--kernel", GUEST] + extra, capture_output=True,
                               text=True, timeout=30)
            errs = [l for l in p.stderr.splitlines() if "error" in l]
            check(p.returncode == 1, f"{extra}: exit {p.returncode}")
            check(len(errs) == 1 and want in errs[0], f"{extra}: {p.stderr.strip()!r}")
            check("ferry-agent" not in p.stdout, f"{extra}: the guest ran")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    require_kvm()
    tests = [test_bad_device_options, test_sha256_matches, test_readonly_refuses_writes,
             test_disk_writer_records, test_save_restore_with_disk_writes,
             test_live_migration_with_disk_writes, test_nonlive_migration_with_disk_writes,
             test_destination_killed_before_go]
    only = os.environ.get("FERRY_VIRTIO_ONLY")
    if only:
        tests = [t for t in tests if only in t.__name__]
    run_tests(tests)
