"""ferryd and the ferry CLI end to end (issue 6's acceptance): two network
namespaces as "hosts" A and B, each with its own ferryd (own state dir),
joined by a management veth pair (198.18.0.1 / 198.18.0.2, ferryd listening
on ferry+tcp://...:16514/) and by a guest L2 segment: a bridge br0 with a
tap0 in each namespace, the two bridges joined by a second veth pair (B's
br0 198.18.10.1 is the guest's ping target, A's br0 198.18.10.3, the guest
198.18.10.2). Shared storage is a directory both namespaces see; the
guest's serial console is one file both hosts append to, so its heartbeat
is read across migrations from that one file. The test makes and removes
everything (names carry the pid)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from ferrytest import *

FERRYD = os.path.abspath(os.path.join(BUILD, "src", "ferryd"))
FERRY = os.path.abspath(os.path.join(BUILD, "src", "ferry"))
KERNEL = os.path.abspath(GUEST)

TAG = f"fd{os.getpid() % 100000}"
NS = {"A": f"{TAG}-A", "B": f"{TAG}-B"}
MGMT = {"A": "198.18.0.1", "B": "198.18.0.2"}
PORT = 16514
REMOTE = {h: f"ferry+tcp://{MGMT[h]}:{PORT}/" for h in "AB"}
BR_ADDR = {"A": "198.18.10.3/24", "B": "198.18.10.1/24"}
GUEST_IP = "198.18.10.2"
NAME = "wanderer1"
NAME2 = "wanderer2"
MAC = "52:54:00:00:10:02"
UUID2 = "4dea22b3-1d52-d8f3-2516-782e98ab3fa0"
CMDLINE = (f"console=ttyS0 ferry.dirty=256@50 ferry.disk-writer=256 "
           f"ferry.ip={GUEST_IP}/24 ferry.ping=198.18.10.1")
CMDLINE2 = "console=ttyS0 ferry.dirty=16@8"

TMP = None          # the run's temp dir (state dirs, sockets, images, consoles)
HOSTS = {}          # "A"/"B" -> Host
CON = None          # wanderer1's console file
CON2 = None         # wanderer2's console file
IMG = None          # wanderer1's disk (shared storage)
IMG2 = None         # wanderer2's
T0 = time.monotonic()


def log(msg):
    print(f"[{time.monotonic() - T0:6.1f}] {msg}", flush=True)


def sh(args, timeout=30, check_rc=True):
    r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check_rc:
        check(r.returncode == 0, f"{' '.join(args)}: {r.stderr.strip()}")
    return r


def ip(*args):
    return sh(["ip"] + list(args))


# ---- topology ------------------------------------------------------------

def make_topology():
    a, b = NS["A"], NS["B"]
    for ns in (a, b):
        ip("netns", "add", ns)
        ip("-n", ns, "link", "set", "lo", "up")
    # management link, created inside A with its peer moved straight to B:
    # nothing is ever made in the host's own namespace
    ip("-n", a, "link", "add", "mgmt", "type", "veth", "peer", "name", "mgmt", "netns", b)
    ip("-n", a, "link", "add", "glink", "type", "veth", "peer", "name", "glink", "netns", b)
    for h, ns in NS.items():
        ip("-n", ns, "addr", "add", MGMT[h] + "/24", "dev", "mgmt")
        ip("-n", ns, "link", "set", "mgmt", "up")
        ip("-n", ns, "link", "add", "br0", "type", "bridge", "forward_delay", "0", "stp_state", "0")
        ip("-n", ns, "tuntap", "add", "dev", "tap0", "mode", "tap")
        for dev in ("tap0", "glink"):
            ip("-n", ns, "link", "set", dev, "master", "br0")
            ip("-n", ns, "link", "set", dev, "up")
        ip("-n", ns, "addr", "add", BR_ADDR[h], "dev", "br0")
        ip("-n", ns, "link", "set", "br0", "up")


def remove_topology():
    for ns in NS.values():
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def our_pids():
    """Processes whose command line names this run's temp dir: ferryd,
    ferry-vmm (and their waiters), ping, ferry — all started by this test."""
    if not TMP:
        return []
    r = subprocess.run(["pgrep", "-f", TMP], capture_output=True, text=True)
    return [int(p) for p in r.stdout.split() if int(p) != os.getpid()]


# ---- hosts: a ferryd each --------------------------------------------------

class Host:
    def __init__(self, name):
        self.name = name
        self.ns = NS[name]
        self.dir = os.path.join(TMP, name.lower())
        self.sock = os.path.join(TMP, f"{name.lower()}.sock")
        self.uri = f"ferry+unix://{self.sock}"
        self.logpath = os.path.join(TMP, f"ferryd-{name.lower()}.log")
        self.p = None
        self.start()

    def start(self):
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        self.logf = open(self.logpath, "a")
        self.logf.write(f"---- ferryd started at {time.monotonic() - T0:.1f}s ----\n")
        self.logf.flush()
        self.p = subprocess.Popen(["ip", "netns", "exec", self.ns, FERRYD, "--state-dir", self.dir,
                                   "--socket", self.sock, "--listen", REMOTE[self.name],
                                   "--verbose"],
                                  stdin=subprocess.DEVNULL, stdout=self.logf, stderr=self.logf)
        deadline = time.monotonic() + 10
        while True:
            if os.path.exists(self.sock):
                r = self.ferry("list", "--all", show=False, check_rc=False)
                if r.returncode == 0:
                    return
            check(self.p.poll() is None, f"ferryd {self.name} exited {self.p.returncode}: "
                  f"{self.log_tail()}")
            check(time.monotonic() < deadline, f"ferryd {self.name} did not answer in 10 s")
            time.sleep(0.05)

    def kill(self, sig=signal.SIGKILL):
        if self.p and self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.logf.close()

    def log_tail(self, n=15):
        try:
            with open(self.logpath, errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            return ""
        return "\n".join(f"    [ferryd {self.name}] {l}" for l in lines[-n:])

    def cmd(self, *args):
        return ["ip", "netns", "exec", self.ns, FERRY, "-c", self.uri] + list(args)

    def ferry(self, *args, show=True, check_rc=True, timeout=60):
        r = subprocess.run(self.cmd(*args), capture_output=True, text=True, timeout=timeout)
        if show:
            log(f"{self.name}$ ferry {' '.join(args)}  -> exit {r.returncode}")
            for line in (r.stdout + r.stderr).replace("\r", "\n").splitlines():
                if line.strip():
                    print(f"      {line}", flush=True)
        if check_rc:
            check(r.returncode == 0, f"ferry {' '.join(args)} on {self.name} exited "
                  f"{r.returncode}: {r.stderr.strip()}\n{self.log_tail()}")
        return r

    def list(self, all=True):
        """{name: state} from `ferry list [--all]` (virsh's table)."""
        r = self.ferry("list", *(["--all"] if all else []), show=False)
        lines = r.stdout.splitlines()
        check(len(lines) >= 2 and lines[0].split() == ["Id", "Name", "State"]
              and set(lines[1].strip()) == {"-"}, f"list's table: {r.stdout!r}")
        out = {}
        for line in lines[2:]:
            if line.strip():
                parts = line.split(None, 2)
                check(len(parts) == 3, f"list row {line!r}")
                out[parts[1]] = parts[2].strip()
        return out

    def dominfo(self, dom):
        r = self.ferry("dominfo", dom, show=False)
        return dict((k.strip(), v.strip()) for k, v in
                    (l.split(":", 1) for l in r.stdout.splitlines() if ":" in l))

    def vmm_pids(self, dom):
        """ferry-vmm processes of this host's state dir running `dom`."""
        r = subprocess.run(["pgrep", "-f", f"ferry-vmm.*{os.path.join(self.dir, 'run', dom)}\\.ctl"],
                           capture_output=True, text=True)
        return [int(p) for p in r.stdout.split()]


def state_of(dom):
    return {h: HOSTS[h].list().get(dom) for h in "AB"}


def wait_states(dom, want, timeout=20):
    """Polls both hosts' `list --all` until dom's states are `want`
    ({"A": state or None, "B": ...}); returns the last seen."""
    deadline = time.monotonic() + timeout
    while True:
        s = state_of(dom)
        if s == want:
            return s
        if time.monotonic() > deadline:
            raise Failure(f"{dom}: states {s}, wanted {want}\n"
                          f"{HOSTS['A'].log_tail()}\n{HOSTS['B'].log_tail()}")
        time.sleep(0.2)


# ---- the guest's console file ------------------------------------------------

class ConsoleFile:
    def __init__(self, path):
        self.path = path
        open(path, "w").close()

    def data(self):
        with open(self.path, "rb") as f:
            return f.read()

    def mark(self):
        """Offset just after the last complete line."""
        d = self.data()
        return d.rfind(b"\n") + 1

    def lines(self, since=0):
        d = self.data()[since:]
        d = d[:d.rfind(b"\n") + 1]
        return [l.rstrip("\r") for l in d.decode(errors="replace").split("\n")[:-1]]

    def beats(self, since=0):
        out = []
        for line in self.lines(since):
            if "beat=" in line:
                b = parse_beat(line)
                check(b is not None and BEAT_RE.fullmatch(line),
                      f"{os.path.basename(self.path)}: a heartbeat line was cut or garbled: "
                      f"{line!r}")
                b["line"] = line
                out.append(b)
        return out

    def wait_beats(self, n, since=0, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            b = self.beats(since)
            if len(b) >= n:
                return b
            if time.monotonic() > deadline:
                raise Failure(f"{os.path.basename(self.path)}: {len(b)} beats, wanted {n} "
                              f"within {timeout}s; last lines: {self.lines(since)[-5:]}")
            time.sleep(0.1)

    def check_goes_on(self, since, what, new=10, timeout=15):
        """The heartbeat since `since` is one unbroken run (consecutive
        numbers: nothing lost, no guest printing twice), with no
        corruption, and at least `new` more beats come from now on."""
        have = len(self.beats(since))
        beats = self.wait_beats(have + new, since, timeout)
        nums = [b["beat"] for b in beats]
        bad = [(x, y) for x, y in zip(nums, nums[1:]) if y != x + 1]
        check(not bad, f"{what}: heartbeat not consecutive (pairs {bad[:5]}): a guest lost or "
              f"running twice")
        corrupt = [b["line"] for b in beats if b["corrupt"] != 0
                   or re.search(r"disk_corrupt=[1-9]", b["line"])]
        check(not corrupt, f"{what}: corruption reported: {corrupt[:3]}")
        text = "\n".join(self.lines(since))
        check("CORRUPT" not in text and "PANIC" not in text,
              f"{what}: CORRUPT/PANIC on the console")
        log(f"  heartbeat ({what}): beats #{nums[0]}..#{nums[-1]} consecutive, corrupt=0")
        return beats


# ---- domain XML ----------------------------------------------------------------

def domain_xml(name, mib, vcpus, cmdline, disk, console, net=True, uuid=None):
    iface = (f"    <interface type='ethernet'>\n"
             f"      <mac address='{MAC}'/>\n"
             f"      <target dev='tap0'/>\n"
             f"      <model type='virtio'/>\n"
             f"    </interface>\n") if net else ""
    uuid = f"  <uuid>{uuid}</uuid>\n" if uuid else ""
    return (f"<domain type='kvm'>\n"
            f"  <name>{name}</name>\n{uuid}"
            f"  <memory unit='MiB'>{mib}</memory>\n"
            f"  <vcpu>{vcpus}</vcpu>\n"
            f"  <os>\n"
            f"    <type arch='x86_64'>hvm</type>\n"
            f"    <kernel>{KERNEL}</kernel>\n"
            f"    <cmdline>{cmdline}</cmdline>\n"
            f"  </os>\n"
            f"  <devices>\n"
            f"    <disk type='file' device='disk'>\n"
            f"      <driver name='qemu' type='raw' cache='none'/>\n"
            f"      <source file='{disk}'/>\n"
            f"      <target dev='vda' bus='virtio'/>\n"
            f"    </disk>\n"
            f"{iface}"
            f"    <serial type='file'>\n"
            f"      <source path='{console}'/>\n"
            f"      <target port='0'/>\n"
            f"    </serial>\n"
            f"  </devices>\n"
            f"</domain>\n")


def write(name, text):
    path = os.path.join(TMP, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def make_image(path, mib):
    with open(path, "wb") as f:
        f.write(os.urandom(mib << 20))


# ---- migrations ------------------------------------------------------------------

class Migration:
    """`ferry migrate ...` on a host, in the background."""

    def __init__(self, host, *args):
        self.host = host
        self.args = args
        log(f"{host.name}$ ferry migrate {' '.join(args)}  (background)")
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(host.cmd("migrate", *args), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        self.out = self.err = None

    def wait(self, timeout=120):
        try:
            self.out, self.err = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.out, self.err = self.p.communicate()
            raise Failure(f"ferry migrate still running after {timeout}s\n"
                          f"{self.host.log_tail()}")
        self.seconds = time.monotonic() - self.t0
        log(f"  migrate exited {self.p.returncode} after {self.seconds:.1f}s")
        for line in (self.out + self.err).replace("\r", "\n").splitlines():
            if line.strip():
                print(f"      {line}", flush=True)
        return self.p.returncode

    def running(self):
        return self.p.poll() is None


def migrate(host, *args, timeout=120):
    m = Migration(host, *args)
    rc = m.wait(timeout)
    return rc, m


def jobinfo(host, dom, completed=False, show=True):
    r = host.ferry("domjobinfo", dom, *(["--completed"] if completed else []), show=show,
                   check_rc=False)
    if r.returncode:
        return None
    return dict((k.strip(), v.strip()) for k, v in
                (l.split(":", 1) for l in r.stdout.splitlines() if ":" in l))


UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}


def size_of(text):
    """'12.345 MiB' -> bytes."""
    m = re.match(r"([\d.]+) (\w+)", text or "")
    check(m and m.group(2) in UNITS, f"not a size: {text!r}")
    return float(m.group(1)) * UNITS[m.group(2)]


def ms_of(text):
    m = re.match(r"(\d+)\s+ms", text or "")
    return int(m.group(1)) if m else None


def completed_downtime(dom, src, dst):
    """The downtime of dom's last migration: `domjobinfo --completed` on the
    source (gone after --undefinesource), else on the destination, else the
    source ferry-vmm's own log line (ms, rounded up; None if unknown)."""
    for h in (src, dst):
        job = jobinfo(h, dom, completed=True, show=False)
        if job and job.get("Job type") == "Completed":
            log(f"  downtime from domjobinfo --completed on {h.name}: {job.get('Total downtime')}")
            return ms_of(job.get("Total downtime"))
    log(f"  (domjobinfo --completed has no finished job on {src.name} or {dst.name})")
    try:
        with open(os.path.join(src.dir, "log", f"{dom}.log"), errors="replace") as f:
            us = re.findall(r"migration completed: .*downtime (\d+) us", f.read())
    except OSError:
        us = []
    if us:
        log(f"  downtime from the source ferry-vmm's log: {us[-1]} us")
        return (int(us[-1]) + 999) // 1000
    return None


class Pinger:
    """ping -i 0.01 from B's namespace to the guest, in the background."""

    def __init__(self):
        self.p = subprocess.Popen(["ip", "netns", "exec", NS["B"], "ping", "-n", "-i", "0.01",
                                   "-W", "1", GUEST_IP],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
        try:
            out, err = self.p.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            out, err = self.p.communicate()
        m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
        check(m, f"ping's summary missing: {out[-300:]!r} {err!r}")
        sent, got = int(m.group(1)), int(m.group(2))
        # the longest run of missing seqs (where the migration was)
        seqs = sorted(int(s) for s in re.findall(r"icmp_seq=(\d+)", out))
        gaps = [y - x - 1 for x, y in zip(seqs, seqs[1:])]
        return sent, got, max(gaps, default=0)


# ---- the cases ---------------------------------------------------------------------

def test_1_define_start_migrate_persistent_undefinesource():
    a, b = HOSTS["A"], HOSTS["B"]
    xml = write(f"{NAME}.xml", domain_xml(NAME, 512, 2, CMDLINE, IMG, CON.path))
    a.ferry("define", xml)
    a.ferry("start", NAME)
    check(a.list() == {NAME: "running"}, f"A's list --all: {a.list()}")
    check(a.dominfo(NAME).get("Persistent") == "yes", "not persistent on A")
    a.ferry("list", "--all")
    beats = CON.wait_beats(20, 0, timeout=60)  # 2 s of heartbeat
    log(f"  guest up: beat #{beats[-1]['beat']} uptime {beats[-1]['uptime_ms']} ms")
    # wait until the guest's own pings get answers (ARP resolved over the bridges)
    deadline = time.monotonic() + 15
    while not re.search(r"net_recv=[1-9]", CON.beats()[-1]["line"]):
        check(time.monotonic() < deadline, f"the guest's pings get no answer: "
              f"{CON.beats()[-1]['line']}")
        time.sleep(0.2)
    ping = Pinger()
    try:
        time.sleep(1.5)
        rc, m = migrate(a, "--live", "--persistent", "--undefinesource", "--verbose", NAME,
                        REMOTE["B"])
        time.sleep(1.5)
    finally:
        sent, got, gap = ping.stop()
    check(rc == 0, f"migrate exited {rc}: {m.err.strip()}\n{a.log_tail()}\n{b.log_tail()}")
    check("Migration: [100 %]" in m.err, f"no 'Migration: [100 %]' in {m.err!r}")
    a.ferry("list", "--all")
    b.ferry("list", "--all")
    check(NAME not in a.list(), f"still on A after --undefinesource: {a.list()}")
    check(b.list().get(NAME) == "running", f"B: {b.list()}")
    b.ferry("dominfo", NAME)
    info = b.dominfo(NAME)
    check(info.get("Persistent") == "yes", f"B's dominfo: {info}")
    check(info.get("State") == "running", f"B's dominfo: {info}")
    downtime = completed_downtime(NAME, a, b)
    CON.check_goes_on(0, "A→B")
    lost = sent - got
    last = CON.beats()[-1]["line"]
    guest_lost = re.search(r"net_lost=(\d+)", last)
    log(f"  FIGURES A→B: migration {m.seconds:.1f}s, downtime "
        f"{downtime if downtime is not None else 'unknown'} ms; pings from B every 10 ms: "
        f"{sent} sent, {got} answered, {lost} lost (longest gap {gap}); guest's own pings: "
        f"net_lost={guest_lost.group(1) if guest_lost else '?'}")
    limit = (downtime if downtime is not None else 10) // 10 + 3
    check(lost <= limit, f"{lost} of {sent} 10 ms pings lost across the migration "
          f"(allowed {limit} for a downtime of {downtime} ms)")


def test_2_migrate_back_plain_live():
    a, b = HOSTS["A"], HOSTS["B"]
    since = CON.mark()
    rc, m = migrate(b, "--live", "--verbose", NAME, REMOTE["A"])
    check(rc == 0, f"migrate exited {rc}: {m.err.strip()}\n{b.log_tail()}\n{a.log_tail()}")
    a.ferry("list", "--all")
    b.ferry("list", "--all")
    check(a.list().get(NAME) == "running", f"A: {a.list()}")
    check(a.dominfo(NAME).get("Persistent") == "no", "arrived persistent without --persistent")
    check(b.list().get(NAME) == "shut off", f"B should keep it defined, shut off: {b.list()}")
    job = jobinfo(b, NAME, completed=True)
    if job:
        log(f"  FIGURES B→A: downtime {job.get('Total downtime')}, elapsed "
            f"{job.get('Time elapsed')}")
    CON.check_goes_on(since, "B→A")
    # leave B clean for the cases that follow
    b.ferry("undefine", NAME)
    check(NAME not in b.list(), "undefine on B")


def test_3_offline_persistent():
    a, b = HOSTS["A"], HOSTS["B"]
    xml = write(f"{NAME2}.xml", domain_xml(NAME2, 128, 1, CMDLINE2, IMG2, CON2.path, net=False,
                                            uuid=UUID2))
    a.ferry("define", xml)
    check(a.list().get(NAME2) == "shut off", f"A: {a.list()}")
    rc, m = migrate(a, "--offline", "--persistent", NAME2, REMOTE["B"])
    check(rc == 0, f"offline migrate exited {rc}: {m.err.strip()}\n{b.log_tail()}")
    b.ferry("list", "--all")
    check(b.list().get(NAME2) == "shut off", f"B: {b.list()}")
    check(a.list().get(NAME2) == "shut off", f"A keeps its definition: {a.list()}")
    xa = a.ferry("dumpxml", NAME2, show=False).stdout
    xb = b.ferry("dumpxml", NAME2, show=False).stdout
    check(xa == xb, f"dumpxml differs:\nA:\n{xa}\nB:\n{xb}")
    log("  dumpxml on B equals A's")


def test_4_xml_other_disk_path():
    a, b = HOSTS["A"], HOSTS["B"]
    a.ferry("start", NAME2)
    CON2.wait_beats(10, 0, timeout=60)
    # a copy of the (unwritten: no disk writer) image at another shared path
    img_copy = os.path.join(TMP, "shared", "disk2-copy.img")
    shutil.copyfile(IMG2, img_copy)
    xml = a.ferry("dumpxml", NAME2, show=False).stdout
    check(IMG2 in xml, f"dumpxml lacks the disk path: {xml}")
    newxml = write(f"{NAME2}-dest.xml", xml.replace(IMG2, img_copy))
    since = CON2.mark()
    rc, m = migrate(a, "--live", "--persistent", "--undefinesource", "--xml", newxml, NAME2,
                    REMOTE["B"])
    check(rc == 0, f"migrate --xml exited {rc}: {m.err.strip()}\n{a.log_tail()}\n{b.log_tail()}")
    check(b.list().get(NAME2) == "running", f"B: {b.list()}")
    check(NAME2 not in a.list(), f"A: {a.list()}")
    xb = b.ferry("dumpxml", NAME2, show=False).stdout
    check(img_copy in xb and IMG2 not in xb, f"B's definition does not use the new path:\n{xb}")
    xbi = b.ferry("dumpxml", "--inactive", NAME2, show=False, check_rc=False)
    if xbi.returncode == 0:
        check(img_copy in xbi.stdout, f"B's persistent definition: {xbi.stdout}")
    log(f"  B's dumpxml names {img_copy}")
    CON2.check_goes_on(since, "wanderer2 A→B with --xml", new=5)
    b.ferry("destroy", NAME2)
    b.ferry("undefine", NAME2)
    check(NAME2 not in b.list(), f"B: {b.list()}")


def test_5_refused_migration():
    a, b = HOSTS["A"], HOSTS["B"]
    check(a.list().get(NAME) == "running", f"wanderer1 not running on A: {a.list()}")
    xml = a.ferry("dumpxml", NAME, show=False).stdout
    missing = os.path.join(TMP, "shared", "no-such-disk.img")
    bad = xml.replace(IMG, missing).replace("<target dev='tap0'/>", "<target dev='tap9'/>")
    check(missing in bad and "tap9" in bad, f"cannot make the bad XML from {xml}")
    path = write(f"{NAME}-bad.xml", bad)
    since = CON.mark()
    rc, m = migrate(a, "--live", "--persistent", "--xml", path, NAME, REMOTE["B"], timeout=60)
    check(rc == 1, f"refused migration exited {rc}")
    errs = [l for l in m.err.splitlines() if l.startswith("error:")]
    check(errs, f"no error line: {m.err!r}")
    check(missing in m.err, f"the error does not name the missing disk: {m.err!r}")
    check("tap9" in m.err, f"the error does not name the missing tap (every reason): {m.err!r}")
    check(a.list().get(NAME) == "running", f"A after the refusal: {a.list()}")
    check(NAME not in b.list(), f"B after the refusal: {b.list()}")
    CON.check_goes_on(since, "after the refused migration", new=5)


def test_6_domjobinfo_and_abort():
    a, b = HOSTS["A"], HOSTS["B"]
    since = CON.mark()
    mig = Migration(a, "--live", "--verbose", "--bandwidth", "20", NAME, REMOTE["B"])
    processed, elapsed = [], []
    try:
        deadline = time.monotonic() + 30
        while len(processed) < 4 and time.monotonic() < deadline and mig.running():
            time.sleep(1.0)
            job = jobinfo(a, NAME)
            if job and job.get("Job type") == "Unbounded":
                processed.append(size_of(job.get("Data processed")))
                elapsed.append(ms_of(job.get("Time elapsed")))
        check(mig.running(), "the 20 MiB/s migration ended by itself")
        b.ferry("list", "--all")
        jobinfo(b, NAME)
        a.ferry("domjobabort", NAME)
    finally:
        rc = mig.wait(60)
    log(f"  FIGURES: Data processed over {len(processed)} polls 1 s apart: "
        f"{[f'{x / 2**20:.1f} MiB' for x in processed]}")
    check(len(processed) >= 3, f"domjobinfo showed a running job {len(processed)} times")
    check(all(y > x for x, y in zip(processed, processed[1:])),
          f"Data processed did not increase: {processed}")
    check(all(y > x for x, y in zip(elapsed, elapsed[1:])),
          f"Time elapsed did not increase: {elapsed}")
    check(rc == 1, f"migrate after domjobabort exited {rc}")
    check(a.list().get(NAME) == "running", f"A after the abort: {a.list()}")
    wait_states(NAME, {"A": "running", "B": None}, timeout=15)
    job = jobinfo(a, NAME, completed=True)
    if job:
        check(job.get("Job type") in ("Cancelled", "Failed"), f"last job: {job}")
    CON.check_goes_on(since, "after domjobabort", new=5)


def test_7_dirty_rate():
    a = HOSTS["A"]
    check(a.list().get(NAME) == "running", f"wanderer1 not running on A: {a.list()}")
    # The dirtier catches up a backlog of up to 1 s after the guest was slowed
    # (dirty logging) or paused, e.g. by the migration just before: let that
    # pass, so the guest rewrites its steady 50 MiB/s while measured.
    time.sleep(2)
    before = CON.beats()[-1]
    a.ferry("domdirtyrate-calc", NAME, "2")
    time.sleep(3)
    deadline = time.monotonic() + 10
    while True:
        r = a.ferry("domstats", "--dirtyrate", NAME)
        stats = dict(re.findall(r"^\s*([\w.]+)=(\S+)", r.stdout, re.M))
        if stats.get("dirtyrate.calc_status") == "2" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    check(stats.get("dirtyrate.calc_status") == "2", f"calc_status: {stats}")
    rate = int(stats.get("dirtyrate.megabytes_per_second", "-1"))
    after = CON.beats()[-1]
    own = ((after["written"] - before["written"]) * 4096 / 2**20 /
           max(0.001, (after["uptime_ms"] - before["uptime_ms"]) / 1000))
    log(f"  FIGURES: dirty rate of ferry.dirty=256@50 (50 MiB/s rewritten): {rate} MB/s "
        f"(the guest's own count: {own:.1f} MiB/s written around the measurement)")
    check(40 <= rate <= 60, f"dirtyrate.megabytes_per_second={rate}, wanted 40..60")


def settle_one_running(dom, timeout=60):
    """Waits until exactly one host runs dom and neither shows it paused or
    migrating; returns that host's name."""
    deadline = time.monotonic() + timeout
    while True:
        s = state_of(dom)
        running = [h for h in "AB" if s[h] == "running"]
        others = [s[h] for h in "AB" if s[h] not in (None, "running", "shut off")]
        if len(running) == 1 and not others:
            return running[0], s
        check(len(running) < 2, f"{dom} running on both hosts: {s}")
        if time.monotonic() > deadline:
            raise Failure(f"{dom} not settled after {timeout}s: {s}\n"
                          f"{HOSTS['A'].log_tail()}\n{HOSTS['B'].log_tail()}")
        time.sleep(0.3)


def kill_source_ferryd(flags, restart_after, what):
    """SIGKILL ferryd A while it migrates wanderer1 to B (100 MiB/s: a few
    seconds), restart it on the same state dir after `restart_after` s; then
    exactly one host runs the guest, the lists say so, and the heartbeat is
    one unbroken run."""
    a, b = HOSTS["A"], HOSTS["B"]
    check(a.list().get(NAME) == "running", f"wanderer1 not running on A: {a.list()}")
    since = CON.mark()
    mig = Migration(a, *flags, "--verbose", "--bandwidth", "100", NAME, REMOTE["B"])
    try:
        # mid-migration: data moving
        deadline = time.monotonic() + 20
        while True:
            job = jobinfo(a, NAME, show=False)
            if job and job.get("Job type") == "Unbounded" and \
                    size_of(job.get("Data processed")) > 32 << 20:
                break
            check(mig.running() and time.monotonic() < deadline,
                  f"no running migration to interrupt: {job}")
            time.sleep(0.1)
        log(f"  SIGKILL ferryd A (pid {a.p.pid}) at {job.get('Data processed')} processed")
        a.kill(signal.SIGKILL)
    finally:
        rc = mig.wait(30)
    check(rc != 0, "migrate exited 0 although its ferryd was killed")
    time.sleep(restart_after)
    log(f"  {restart_after}s after the kill, B says: {b.list()}")
    a.start()
    log("  ferryd A restarted on the same state dir")
    where, s = settle_one_running(NAME, timeout=60)
    a.ferry("list", "--all")
    b.ferry("list", "--all")
    log(f"  after the restart: wanderer1 runs on {where} ({s})")
    time.sleep(2)
    s2 = state_of(NAME)
    check(s2 == s, f"states changed after settling: {s} -> {s2}")
    CON.check_goes_on(since, what, new=10)
    vmms = {h: HOSTS[h].vmm_pids(NAME) for h in "AB"}
    check(len(vmms[where]) == 1 and not vmms["B" if where == "A" else "A"],
          f"ferry-vmm processes of {NAME}: {vmms}")
    if where == "B" and "--persistent" in flags:
        b.ferry("dominfo", NAME)
        check(b.dominfo(NAME).get("Persistent") == "yes", "arrived without --persistent's "
              "definition")
    if where == "B" and "--undefinesource" in flags:
        check(NAME not in a.list(), f"A keeps it after --undefinesource: {a.list()}")
    # leave it on A for the next case
    if where == "B":
        rc, m = migrate(b, "--live", NAME, REMOTE["A"])
        check(rc == 0, f"migrating back to A: {m.err}")
    if b.list().get(NAME) == "shut off":
        b.ferry("undefine", NAME)
    wait_states(NAME, {"A": "running", "B": None})


def test_8a_kill_source_ferryd_restart_at_once():
    kill_source_ferryd(["--live"], 0.5, "source ferryd killed mid-migration, back at once")


def test_8a_kill_source_ferryd_restart_late():
    """The migration ends (or fails) while no ferryd watches the source."""
    kill_source_ferryd(["--live", "--persistent", "--undefinesource"], 6,
                       "source ferryd killed mid-migration, back 6 s later")


def test_8b_kill_destination_vmm():
    a, b = HOSTS["A"], HOSTS["B"]
    check(a.list().get(NAME) == "running", f"wanderer1 not running on A: {a.list()}")
    since = CON.mark()
    mig = Migration(a, "--live", "--verbose", "--bandwidth", "20", NAME, REMOTE["B"])
    try:
        deadline = time.monotonic() + 20
        pid = None
        while True:
            job = jobinfo(a, NAME, show=False)
            pids = b.vmm_pids(NAME)
            if job and job.get("Job type") == "Unbounded" and \
                    size_of(job.get("Data processed")) > 16 << 20 and pids:
                pid = pids[0]
                break
            check(mig.running() and time.monotonic() < deadline,
                  f"no running migration / incoming ferry-vmm: {job} {pids}")
            time.sleep(0.1)
        cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
        check("--incoming" in cmd, f"pid {pid} is not the incoming ferry-vmm: {cmd}")
        try:
            with open(os.path.join(b.dir, "run", f"{NAME}.json")) as f:
                rec = json.load(f)
            check(rec.get("pid") == pid, f"B's run record names pid {rec.get('pid')}, "
                  f"the incoming ferry-vmm is {pid}")
        except OSError as e:
            raise Failure(f"no run record on B for the incoming VM: {e}")
        log(f"  SIGKILL the destination's incoming ferry-vmm (pid {pid})")
        os.kill(pid, signal.SIGKILL)
    finally:
        rc = mig.wait(60)
    check(rc == 1, f"migrate exited {rc} after the destination's ferry-vmm was killed")
    # virsh's way: the error follows the progress on its line
    check(re.search(r"(^|\])error: \S", mig.err, re.M), f"no error line: {mig.err!r}")
    wait_states(NAME, {"A": "running", "B": None}, timeout=20)
    a.ferry("list", "--all")
    b.ferry("list", "--all")
    CON.check_goes_on(since, "destination ferry-vmm killed mid-migration", new=5)
    check(len(a.vmm_pids(NAME)) == 1 and not b.vmm_pids(NAME),
          f"ferry-vmm processes: A {a.vmm_pids(NAME)} B {b.vmm_pids(NAME)}")


def one_error(r, what, needle=None):
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    errs = [l for l in lines if l.startswith("error:")]
    log(f"  {what}: exit {r.returncode}, stderr {r.stderr.strip()!r}")
    check(r.returncode != 0, f"{what}: exit 0")
    check(len(errs) == 1, f"{what}: wanted one 'error:' line, got {lines}")
    check(len(lines) <= 2, f"{what}: too much on stderr: {lines}")
    if needle:
        check(needle in errs[0], f"{what}: the error does not name {needle!r}: {errs[0]!r}")


def test_9_bad_input():
    a = HOSTS["A"]
    bad = write("bad.xml", "<domain type='kvm'><name>broken</name><memory>64</memory>\n")
    r = a.ferry("define", bad, show=False, check_rc=False)
    one_error(r, "define of malformed XML")
    check(r.returncode == 1, f"define exited {r.returncode}")
    bad2 = write("bad2.xml", domain_xml("broken2", 64, 1, "", IMG2, CON2.path, net=False)
                 .replace("</devices>", "  <graphics type='vnc'/>\n  </devices>"))
    r = a.ferry("define", bad2, show=False, check_rc=False)
    one_error(r, "define with an unsupported element", "graphics")
    check("broken" not in a.list(all=True) and "broken2" not in a.list(), "a bad XML defined")
    r = a.ferry("frobnicate", show=False, check_rc=False)
    one_error(r, "unknown verb", "frobnicate")
    r = a.ferry("list", "--bogus", show=False, check_rc=False)
    one_error(r, "unknown option", "bogus")
    r = subprocess.run(["ip", "netns", "exec", NS["A"], FERRY, "-c", "ferry+tcp://198.18.0.2:1/",
                        "list"], capture_output=True, text=True, timeout=30)
    one_error(r, "unreachable URI")
    r = a.ferry("dominfo", "no-such-domain", show=False, check_rc=False)
    one_error(r, "unknown domain", "no-such-domain")
    r = a.ferry("migrate", "--live", "no-such-domain", REMOTE["B"], show=False, check_rc=False)
    one_error(r, "migrate of an unknown domain", "no-such-domain")


def test_99_nothing_lost():
    """At the end: wanderer1 still runs on A, once; its heartbeat was one
    run for the whole test."""
    a, b = HOSTS["A"], HOSTS["B"]
    a.ferry("list", "--all")
    b.ferry("list", "--all")
    beats = CON.check_goes_on(0, "whole run", new=3)
    last = beats[-1]["line"]
    m = re.search(r"net_sent=(\d+) net_recv=(\d+) net_lost=(\d+)", last)
    if m:
        log(f"  FIGURES: the guest's own 10 ms pings over the whole run: sent {m.group(1)}, "
            f"answered {m.group(2)}, lost {m.group(3)}")
    # destroy ends the VM; no ferry-vmm of this run is left on either host
    a.ferry("destroy", NAME)
    wait_states(NAME, {"A": None, "B": None}, timeout=15)
    deadline = time.monotonic() + 10
    while True:
        vmms = subprocess.run(["pgrep", "-f", f"ferry-vmm.*{TMP}"], capture_output=True,
                              text=True).stdout.split()
        if not vmms:
            break
        check(time.monotonic() < deadline, f"ferry-vmm processes left after destroy: {vmms}")
        time.sleep(0.2)


def guarded(t):
    """Any exception of a case (a timeout, ...) fails that case only."""
    def run():
        try:
            t()
        except Failure:
            raise
        except Exception as e:
            raise Failure(f"{type(e).__name__}: {e}")
    run.__name__ = t.__name__
    return run


def main():
    global TMP, CON, CON2, IMG, IMG2
    require_kvm()
    if os.geteuid() != 0 or subprocess.run(["ip", "netns", "list"],
                                           capture_output=True).returncode:
        print("SKIP: network namespaces need root and iproute2: test not run", flush=True)
        sys.exit(77)
    for f in (FERRYD, FERRY, KERNEL):
        if not os.path.exists(f):
            print(f"SKIP: {f} is missing (build it first): test not run", flush=True)
            sys.exit(77)
    remove_topology()
    # on disk (cache='none' needs O_DIRECT, which tmpfs lacks)
    TMP = tempfile.mkdtemp(prefix=f"ferry-daemon-{TAG}-", dir="/var/tmp")
    failed = False
    try:
        make_topology()
        os.makedirs(os.path.join(TMP, "shared"))
        IMG = os.path.join(TMP, "shared", "disk.img")
        IMG2 = os.path.join(TMP, "shared", "disk2.img")
        make_image(IMG, 32)
        make_image(IMG2, 16)
        CON = ConsoleFile(os.path.join(TMP, "shared", "console.log"))
        CON2 = ConsoleFile(os.path.join(TMP, "shared", "console2.log"))
        HOSTS["A"] = Host("A")
        HOSTS["B"] = Host("B")
        run_tests([guarded(t) for t in [test_1_define_start_migrate_persistent_undefinesource,
                   test_2_migrate_back_plain_live,
                   test_7_dirty_rate,
                   test_3_offline_persistent,
                   test_4_xml_other_disk_path,
                   test_5_refused_migration,
                   test_6_domjobinfo_and_abort,
                   test_8a_kill_source_ferryd_restart_at_once,
                   test_8a_kill_source_ferryd_restart_late,
                   test_8b_kill_destination_vmm,
                   test_9_bad_input,
                   test_99_nothing_lost]])
    except SystemExit as e:
        failed = e.code != 0
        raise
    except Failure as e:  # the topology or a ferryd did not come up
        failed = True
        print(f"FAIL setup: {e}", flush=True)
        sys.exit(1)
    finally:
        cleanup(show_logs=failed)


def cleanup(show_logs=False):
    if show_logs:
        for h in HOSTS.values():
            print(f"---- ferryd {h.name} log (tail) ----\n{h.log_tail(60)}", flush=True)
    for h in HOSTS.values():
        for dom in (NAME, NAME2):
            try:
                if h.p.poll() is None:
                    h.ferry("destroy", dom, show=False, check_rc=False, timeout=15)
            except Exception:
                pass
        h.kill(signal.SIGTERM)
    # VMs outlive their ferryd by design: end every process of this run by pid
    for attempt in range(20):
        pids = our_pids()
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    left = our_pids()
    remove_topology()
    shutil.rmtree(TMP, ignore_errors=True)
    if left:
        print(f"FAIL: processes left behind that cannot be killed: {left}", flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
