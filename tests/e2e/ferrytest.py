"""Shared helpers for ferry's end-to-end tests: start ferry-vmm with the
test guest, read its console line by line with arrival times, talk to its
control socket, and report SKIP (exit 77) / FAIL (exit 1) loudly."""

import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from ferry_harness import (BAD_RE, BEAT_RE, READY_RE, HarnessError, Lines, Qmp,  # noqa: E402
                           free_port, parse_beat, sh)

BUILD = os.environ.get("FERRY_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
VMM = os.path.join(BUILD, "src", "ferry-vmm")
GUEST = os.path.join(BUILD, "guest", "ferry-guest.elf")
PAYLOADS = os.path.join(BUILD, "tests", "payloads")

# Inside the test host (tests/host/run, docs/testing.md) the guest, KVM and
# ferry all run under QEMU's TCG: every instruction emulated, tens of times
# slower than on hardware, and the test host's one CPU (tests/host/run,
# FERRY_TESTHOST_CPUS, default 1) shared by everything.
# Tests run shorter there and relax only what depends on the guest keeping
# pace with the wall clock (how many heartbeats in a minute, a rate reached);
# what they check of correctness stays as it is.
EMULATED = os.environ.get("FERRY_TESTHOST_INSIDE") == "1"


def scaled(normal, emulated):
    """normal on a KVM host, emulated inside the test host."""
    return emulated if EMULATED else normal


# What every wait below is given is a limit for a hang, not a figure the
# test checks: inside the test host it is stretched by this much.
TIMEOUT_SCALE = scaled(1, 4)

# The guest's console protocol, the pipe reader and the QMP client are the
# harness's (tests/lib/ferry_harness.py), which bench/ and the demo share.
Failure = HarnessError

# What the QEMU cross-checks (test_qemu_net.py, test_qemu_virtio.py) refuse
# in a console: more than BAD_RE, any line with a warning or an error in it,
# the guest's, QEMU's or the firmware's.
WARN_RE = re.compile(r"warning|error|PANIC|CORRUPT|" + BAD_RE.pattern)


def wall_skew_ms(vm, last=None):
    """For the beats that carry the guest's wall clock (the Linux agent's
    wall_ms): guest's wall clock minus the host's when the line arrived, in
    ms (the line's way out adds to it), for the last `last` of them. vm: a
    Vmm, or a console (Lines)."""
    now_wall, now_mono = time.time(), time.monotonic()
    out = []
    for t, l in getattr(vm, "console", vm).lines:
        b = parse_beat(l)
        if b and "wall_ms" in b:
            out.append(b["wall_ms"] - (now_wall - (now_mono - t)) * 1000)
    return out[-last:] if last else out


def check_wall_clock(src, dst, what=""):
    """For guests that tell their wall clock (the Linux agent): after a
    hand-over from src to dst the guest's wall clock is within 1 s of the
    host's for every beat (the time the VM was stopped must not show), and
    it moves by at most 1 s against the host's across the hand-over. Inside
    the test host the guest's clock drifts from the host's erratically
    (docs/testing.md): there the figures are only returned, and
    tests/kvm/test_state.c's test_clock_advances_by_wall_time checks the
    clock's advance at the KVM level. Returns (before, after, worst) in
    ms, or None for a guest without wall_ms."""
    a, b = wall_skew_ms(src), wall_skew_ms(dst)
    if not a or not b:
        return None
    worst = max(b[-20:], key=abs)
    if not EMULATED:
        check(abs(worst) <= 1000,
              f"{what}the guest's wall clock is {worst:+.0f} ms off the host's after the "
              f"hand-over (before it: {a[-1]:+.0f} ms; the first beat after it: {b[0]:+.0f} ms)")
        check(abs(b[0] - a[-1]) <= 1000,
              f"{what}the guest's wall clock jumped {b[0] - a[-1]:+.0f} ms against the host's "
              "across the hand-over")
    return a[-1], b[0], worst


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def check_clean(lines):
    """No line of a console (a list of texts) matches WARN_RE."""
    bad = [l for l in lines if WARN_RE.search(l)]
    check(not bad, f"unexpected lines: {bad}")


def require_kvm():
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
        os.close(fd)
    except OSError as e:
        print(f"SKIP: /dev/kvm is not usable here ({e.strerror}): test not run", flush=True)
        sys.exit(77)


def require_unmodified_linux():
    """For tests that need Linux to boot: kvm_pvm's /dev/kvm cannot run an
    unmodified Linux (it stops after its banner on an instruction KVM's
    emulator cannot run: test_linux.py checks that), so there the test is
    not run and says why."""
    if os.path.exists("/sys/module/kvm_pvm"):
        print("SKIP: /dev/kvm is kvm_pvm's (/sys/module/kvm_pvm), which cannot run an "
              "unmodified Linux: test not run (it runs on a VMX/SVM host, the test host "
              "included)", flush=True)
        sys.exit(77)


class Console(Lines):
    """A pipe's lines with their arrival times; waits stretched under
    emulation."""

    def __init__(self, f, name="ferry-vmm"):
        super().__init__(f, name)

    def wait_for(self, pattern, timeout, start=0, what=None):
        return super().wait_for(pattern, timeout * TIMEOUT_SCALE, start, what)


class Vmm:
    """A ferry-vmm process with the console on its stdout."""

    def __init__(self, kernel=None, cmdline="", cpus=1, memory=256, control=True, extra=(),
                 stdin=subprocess.DEVNULL, restore=False, env=None, netns=None, initrd=None,
                 read_console=True):
        self.tmp = tempfile.mkdtemp(prefix="ferry-e2e-")
        self.control_path = os.path.join(self.tmp, "control.sock") if control else None
        if restore:  # the shape comes from the saved file
            args = [VMM]
        else:
            args = [VMM, "--kernel", kernel or GUEST, "--cpus", str(cpus), "--memory", str(memory)]
            if initrd:
                args += ["--initrd", initrd]
        if cmdline and not restore:
            args += ["--cmdline", cmdline]
        if self.control_path:
            args += ["--control", self.control_path]
        args += list(extra)
        if netns:  # run inside a network namespace (ip netns exec execs ferry-vmm)
            args = ["ip", "netns", "exec", netns] + args
        self.started = time.monotonic()
        # env: extra environment variables for ferry-vmm (test hooks), on
        # top of this process's environment
        self.p = subprocess.Popen(args, stdin=stdin, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE,
                                  env=dict(os.environ, **env) if env else None)
        # read_console=False leaves the console pipe unread (a stalled
        # reader, as tests/e2e/test_control.py makes one)
        self.console = Console(self.p.stdout) if read_console else None
        self.ctl = None

    def connect(self, timeout=5):
        timeout *= TIMEOUT_SCALE
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.ctl = Control(self.control_path, self)
                return self.ctl
            # Only a socket not there yet, or not listening yet, is
            # ferry-vmm still starting; any other error is one (a refused
            # attempt's socket is closed by Qmp).
            except (FileNotFoundError, ConnectionRefusedError) as e:
                if time.monotonic() > deadline or self.p.poll() is not None:
                    raise Failure(f"cannot connect to the control socket: {e.strerror}") \
                        from None
                time.sleep(0.02)

    def wait_exit(self, timeout):
        """Exit status, after reading the console to its end (when it is
        read: Vmm(read_console=False) has none to wait for)."""
        timeout *= TIMEOUT_SCALE
        if self.console is None:
            try:
                return self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                raise Failure(f"ferry-vmm still running after {timeout}s") from None
        deadline = time.monotonic() + timeout
        while self.p.poll() is None or not self.console.eof:
            if time.monotonic() > deadline:
                raise Failure(f"ferry-vmm still running after {timeout}s")
            self.console.poll(0.1)
        return self.p.returncode

    def stderr(self):
        return self.p.stderr.read().decode(errors="replace")

    def fate(self):
        """What became of the process, for a control socket that closed:
        its exit status and the end of its stderr, or that it still runs."""
        try:
            self.p.wait(2 * TIMEOUT_SCALE)
        except subprocess.TimeoutExpired:
            return f"ferry-vmm (pid {self.p.pid}) still runs"
        err = getattr(self, "err", None)  # a Console some tests keep on stderr
        if err:
            err.collect(1.0)
            text = err.transcript()
        else:
            text = self.stderr()
        err = text.strip().splitlines()[-5:]
        return (f"ferry-vmm exited with status {self.p.returncode}; its stderr ends: "
                + (" | ".join(err) if err else "(nothing)"))

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        for name in os.listdir(self.tmp):
            os.unlink(os.path.join(self.tmp, name))
        os.rmdir(self.tmp)


class Control(Qmp):
    """A client of ferry-vmm's control socket: commands and the events in
    between; a socket that closes says what became of the Vmm."""

    def __init__(self, path, vmm=None, name="ferry-vmm"):
        super().__init__(path, name=name, owner=vmm, scale=TIMEOUT_SCALE)


def testhost_pending(why):
    """Marks a test that does not pass inside the test host yet (issue 12
    goes on): there it is not run and says SKIP with `why`, and its file
    then ends SKIP (77) unless something failed; elsewhere it runs."""
    def mark(f):
        f.testhost_pending = why
        return f
    return mark


def run_tests(tests):
    """Runs test functions; prints one PASS/FAIL/SKIP line each and a
    summary. Any exception fails its test only (one that is not a Failure
    with its traceback). FERRY_ONLY (name substrings, comma-separated) runs
    only the tests it names, for debugging one; FERRY_RUN_PENDING=1 runs
    the tests marked testhost_pending inside the test host too."""
    only = os.environ.get("FERRY_ONLY")
    if only:
        tests = [t for t in tests if any(w in t.__name__ for w in only.split(","))]
    passed = failed = skipped = 0
    for t in tests:
        if EMULATED and getattr(t, "testhost_pending", None) and \
                not os.environ.get("FERRY_RUN_PENDING"):
            skipped += 1
            print(f"SKIP {t.__name__}: not yet passing inside the test host: "
                  f"{t.testhost_pending}", flush=True)
            continue
        t0 = time.monotonic()
        try:
            t()
            passed += 1
            print(f"PASS {t.__name__} ({time.monotonic() - t0:.1f}s)", flush=True)
        except Failure as e:
            failed += 1
            print(f"FAIL {t.__name__}: {e}", flush=True)
        except Exception as e:  # noqa: BLE001
            # An unexpected exception (a KeyError on a reply, a socket
            # timeout) fails this test, with where it came from; the next
            # tests still run.
            failed += 1
            print(f"FAIL {t.__name__}: {type(e).__name__}: {e}", flush=True)
            print(traceback.format_exc(), end="", flush=True)
    print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""),
          flush=True)
    sys.exit(1 if failed else 77 if skipped else 0)


def remove_tmp(tmp):
    """Removes a test's scratch directory; while a failure propagates and
    $FERRY_KEEP_TMP names a directory, moves it there instead (the saved
    files of a failed run, for ferry-stream dump)."""
    keep = os.environ.get("FERRY_KEEP_TMP")
    if keep and sys.exc_info()[0] is not None:
        os.makedirs(keep, exist_ok=True)
        dst = os.path.join(keep, os.path.basename(tmp))
        shutil.move(tmp, dst)
        print(f"  kept {dst}", flush=True)
    else:
        shutil.rmtree(tmp, ignore_errors=True)


# ---- ferry's stream format (docs/stream-format.md) --------------------------

def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
        t.append(c)
    return t


CRC_TABLE = _crc_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def record(typ, payload):
    """One stream record: header, payload, padding, CRC32C trailer."""
    head = struct.pack("<II", typ, len(payload))
    pad = b"\0" * (-len(payload) % 8)
    return head + payload + pad + struct.pack("<II", crc32c(head + payload + pad), 0)


def stream_records(data):
    """(offset, type, payload) of every record in a stream's bytes, after
    the 16-byte header; a record cut short at the end comes with what
    there is of its payload."""
    off, out = 16, []
    while off + 8 <= len(data):
        typ, ln = struct.unpack_from("<II", data, off)
        out.append((off, typ, data[off + 8:off + 8 + ln]))
        off += 8 + ln + (-ln % 8) + 8
    return out
