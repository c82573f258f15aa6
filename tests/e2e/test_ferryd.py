"""ferryd and the ferry CLI across two "hosts": network namespaces A and B,
each with its own ferryd and state directory, joined by a veth pair for
ferryd's RPC and the migration stream (198.18.0.1, 198.18.0.2) and by a
second one that makes the guests' network one segment (a bridge br0 with a
tap0 in each host; B's bridge is 198.18.10.1, the guest's gateway and the
pinger). The guest's disk image is at one path both hosts see (shared
storage) and its console a file both hosts append to, so its heartbeat is
read across every migration from one file. Everything made here is removed
at the end, also on failure."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import sys
import time

from ferrytest import *

FERRYD = os.path.join(BUILD, "src", "ferryd")
FERRY = os.path.join(BUILD, "src", "ferry")
TAG = f"ft{os.getpid() % 100000}"
NS = (f"{TAG}a", f"{TAG}b")
ADDR = ("198.18.0.1", "198.18.0.2")
GUEST_IP = "198.18.10.2"
NAME = "wanderer1"
PORT = 16514
tmp = None
hosts = []


def make_network():
    sh("ip", "netns", "add", NS[0])
    sh("ip", "netns", "add", NS[1])
    # management: ferryd RPC and migration streams
    sh("ip", "link", "add", f"{TAG}m0", "type", "veth", "peer", "name", f"{TAG}m1")
    # the guests' segment: A's br0 <-> B's br0
    sh("ip", "link", "add", f"{TAG}g0", "type", "veth", "peer", "name", f"{TAG}g1")
    for i, ns in enumerate(NS):
        sh("ip", "link", "set", f"{TAG}m{i}", "netns", ns)
        sh("ip", "link", "set", f"{TAG}g{i}", "netns", ns)
        n = ("ip", "-n", ns)
        sh(*n, "addr", "add", ADDR[i] + "/24", "dev", f"{TAG}m{i}")
        sh(*n, "link", "set", f"{TAG}m{i}", "up")
        sh(*n, "link", "set", "lo", "up")
        sh(*n, "link", "add", "br0", "type", "bridge")
        sh(*n, "link", "set", f"{TAG}g{i}", "master", "br0")
        sh(*n, "link", "set", f"{TAG}g{i}", "up")
        sh(*n, "tuntap", "add", "dev", "tap0", "mode", "tap")
        sh(*n, "link", "set", "tap0", "master", "br0")
        sh(*n, "link", "set", "tap0", "up")
        sh(*n, "addr", "add", ("198.18.10.3/24" if i == 0 else "198.18.10.1/24"), "dev", "br0")
        sh(*n, "link", "set", "br0", "up")


class Host:
    def __init__(self, i):
        self.i, self.ns = i, NS[i]
        self.dir = os.path.join(tmp, f"state{i}")
        self.sock = os.path.join(tmp, f"ferryd{i}.sock")
        self.uri = f"ferry+unix://{self.sock}"
        self.remote = f"ferry+tcp://{ADDR[i]}:{PORT}/"
        self.log = open(os.path.join(tmp, f"ferryd{i}.log"), "a")
        self.p = None
        self.start()

    def start(self):
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        cmd = [FERRYD, "--state-dir", self.dir, "--socket", self.sock, "--listen", self.remote,
               "--migration-ports", "49152-49160"]
        if self.i == 1:
            # Host B does not see A's local storage (TMP/a-only): its own
            # mount namespace with an empty tmpfs over that directory.
            aonly = os.path.join(tmp, "a-only")
            cmd = ["unshare", "-m", "sh", "-c", f"mount -t tmpfs tmpfs {aonly} && exec \"$@\"",
                   "sh"] + cmd
        self.p = subprocess.Popen(["ip", "netns", "exec", self.ns] + cmd,
                                  stdout=self.log, stderr=self.log, env=ssh_env())
        deadline = time.monotonic() + 10
        while not os.path.exists(self.sock):
            check(self.p.poll() is None and time.monotonic() < deadline,
                  f"ferryd {self.i} did not start (see {self.log.name})")
            time.sleep(0.02)

    def kill(self):
        """SIGKILL: the way a crashed ferryd goes."""
        self.p.kill()
        self.p.wait()

    def ferry(self, *args, rc=0, uri=None):
        r = subprocess.run(["ip", "netns", "exec", self.ns, FERRY, "-c", uri or self.uri] +
                           list(args), capture_output=True, text=True, timeout=120,
                           env=ssh_env())
        if rc is not None and r.returncode != rc:
            raise Failure(f"host {'AB'[self.i]}: ferry {' '.join(args)}: exit {r.returncode}"
                          f" (expected {rc}): {r.stdout.strip()} {r.stderr.strip()}")
        return r

    def popen(self, *args):
        return subprocess.Popen(["ip", "netns", "exec", self.ns, FERRY, "-c", self.uri] +
                                list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

    def states(self):
        """{name: state} from `ferry list --all`."""
        out = self.ferry("list", "--all").stdout.splitlines()
        check(len(out) >= 2 and out[0].split() == ["Id", "Name", "State"] and
              set(out[1]) == {"-"}, f"list's table: {out}")
        return {l.split()[1]: " ".join(l.split()[2:]) for l in out[2:] if l.strip()}

    def run_record_pid(self, name):
        with open(os.path.join(self.dir, "run", f"{name}.json")) as f:
            return json.load(f)["pid"]


def ssh_env():
    """ferry+ssh:// through a stand-in for ssh that runs the remote command
    (`ferry bridge SOCKET`) in host B's namespace."""
    env = dict(os.environ)
    env["FERRY_SSH"] = os.path.join(tmp, "fake-ssh")
    return env


def write_fake_ssh():
    path = os.path.join(tmp, "fake-ssh")
    with open(path, "w") as f:
        f.write("#!/bin/sh\n"
                "# ssh [options] HOST -- COMMAND...: the host is always B here\n"
                "while [ $# -gt 0 ] && [ \"$1\" != -- ]; do shift; done\n"
                "shift\n"
                f"PATH={os.path.abspath(os.path.dirname(FERRY))}:$PATH exec ip netns exec "
                f"{NS[1]} \"$@\"\n")
    os.chmod(path, 0o755)


def domain_xml(name, img, console, cmdline, memory=512, net=True):
    iface = ("    <interface type='ethernet'>\n"
             "      <mac address='52:54:00:00:10:02'/>\n"
             "      <target dev='tap0'/>\n"
             "    </interface>\n") if net else ""
    return (f"<domain type='kvm'>\n  <name>{name}</name>\n"
            f"  <memory unit='MiB'>{memory}</memory>\n  <vcpu>2</vcpu>\n"
            f"  <os>\n    <type arch='x86_64'>hvm</type>\n    <kernel>{GUEST}</kernel>\n"
            f"    <cmdline>{cmdline}</cmdline>\n  </os>\n"
            # a <cpu> feature turned off: the destination's ferry-vmm takes
            # the CPU from the stream, so ferryd must not give it --cpu
            f"  <cpu mode='host-passthrough'>\n"
            f"    <feature policy='disable' name='kvm_pv_unhalt'/>\n  </cpu>\n"
            f"  <devices>\n"
            f"    <disk type='file' device='disk'>\n"
            f"      <driver name='qemu' type='raw' cache='none'/>\n"
            f"      <source file='{img}'/>\n      <target dev='vda' bus='virtio'/>\n"
            f"    </disk>\n{iface}"
            f"    <serial type='file'>\n      <source path='{console}'/>\n    </serial>\n"
            f"  </devices>\n</domain>\n")


def write(name, text):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def beats():
    """(beat, corrupt, net_lost) of every heartbeat in the console file."""
    with open(os.path.join(tmp, "console.log"), errors="replace") as f:
        text = f.read()
    out = []
    # Only whole lines: the guest may be writing the last one right now
    # (a line takes long to print under emulation).
    for line in text.split("\n")[:-1]:
        b = parse_beat(line)
        if b:
            out.append((b["beat"], b["corrupt"], b.get("net_lost", 0)))
    return out


def wait_beats_after(n, more=5, timeout=15):
    deadline = time.monotonic() + timeout * TIMEOUT_SCALE
    while time.monotonic() < deadline:
        b = beats()
        if len(b) >= n + more:
            return b
        time.sleep(0.1)
    raise Failure(f"the heartbeat stopped at {len(beats())} beats")


def check_heartbeat(what):
    b = beats()
    check(b, "no heartbeat")
    for (x, cx, _), (y, cy, _) in zip(b, b[1:]):
        check(y == x + 1, f"{what}: beat {y} after {x}")
        check(cy == 0, f"{what}: beat {y} reports corrupt={cy}")
    return b


def migrate_bg(src, *args):
    return src.popen("migrate", *args)


def wait_state(host, name, want, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = host.states().get(name)
        if st == want:
            return
        time.sleep(0.2)
    raise Failure(f"host {'AB'[host.i]}: {name} is {host.states().get(name)!r}, "
                  f"expected {want!r}")


# ---- the cases ----

def test_define_start():
    a = hosts[0]
    r = a.ferry("define", os.path.join(tmp, "w.xml"))
    check(f"Domain '{NAME}' defined from" in r.stdout, f"define: {r.stdout!r}")
    r = a.ferry("start", NAME)
    check(f"Domain '{NAME}' started" in r.stdout, f"start: {r.stdout!r}")
    check(a.states() == {NAME: "running"}, f"A: {a.states()}")
    wait_beats_after(0, 10)
    info = a.ferry("dominfo", NAME).stdout
    check(re.search(r"^State:\s+running$", info, re.M) and
          re.search(r"^Persistent:\s+yes$", info, re.M), f"dominfo: {info}")


def test_dirtyrate():
    a = hosts[0]
    a.ferry("domdirtyrate-calc", NAME, "2")
    # A 2 s calculation; its end is a limit for a hang (seen still measuring
    # at 2.6 s inside a loaded test host).
    deadline = time.monotonic() + 2 + 10 * TIMEOUT_SCALE
    time.sleep(2.1)
    while True:
        out = a.ferry("domstats", "--dirtyrate", NAME).stdout
        if "dirtyrate.calc_status=1" not in out or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    m = re.search(r"dirtyrate.megabytes_per_second=(\d+)", out)
    check(m and "dirtyrate.calc_status=2" in out, f"domstats: {out!r}")
    rate = int(m.group(1))
    print(f"  dirty rate of ferry.dirty={DIRTY_WS}@{DIRTY_RATE}: {rate} MB/s", flush=True)
    # Under emulation the guest may fall short of its rate when the test
    # host is loaded (5 MB/s of 8 seen).
    lo, hi = int(DIRTY_RATE * scaled(0.8, 0.5)), -(-DIRTY_RATE * 6 // 5)
    check(lo <= rate <= hi, f"dirty rate {rate} MB/s, expected {lo}-{hi}")


def test_bad_input():
    a = hosts[0]
    cases = [
        (["define", write("bad.xml", "<domain type='kvm'><name>x</name><graphics/></domain>")],
         "graphics"),
        (["define", write("broken.xml", "<domain")], "XML"),
        (["define", "/nonexistent.xml"], "nonexistent"),
        (["frobnicate"], "unknown command"),
        (["list", "--frob"], "--frob"),
        (["start"], "requires"),
        (["dominfo", "nosuch"], "nosuch"),
        (["migrate", NAME, "ferry+tcp://198.18.0.2:1/"], "198.18.0.2:1"),
        (["migrate", NAME, "xen+ssh://h/"], "xen"),
        (["migrate", "--offline", NAME, hosts[1].remote], "persistent"),
        (["migrate-setspeed", NAME, "abc"], "abc"),
    ]
    for args, needle in cases:
        r = a.ferry(*args, rc=None)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        check(r.returncode == 1, f"ferry {' '.join(args)}: exit {r.returncode}")
        check(len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0],
              f"ferry {' '.join(args)}: {lines}")
        print(f"  ferry {' '.join(args)[:50]:50} -> {lines[0]}", flush=True)
    # Raw requests: arguments of the wrong JSON type are refused by name
    # ("all": "false" was once taken for true), as the monitor does.
    for execute, args, needle in [
            ("list", {"all": "false"}, "argument 'all' must be true or false"),
            ("list", {"all": 1}, "argument 'all' must be true or false"),
            ("dominfo", {"domain": 7}, "argument 'domain' must be a string"),
            ("domdirtyrate-calc", {"domain": NAME, "seconds": -1}, "argument 'seconds' must be"),
            ("domstats", {"groups": "state"}, "argument 'groups' must be an array"),
            ("start", {"domain": NAME, "frob": True}, "unexpected argument 'frob'")]:
        reply = rpc(a.sock, execute, args)
        err = reply.get("error", {})
        check(err.get("class") == "GenericError" and needle in err.get("desc", ""),
              f"{execute} {args}: {reply}")
        print(f"  {execute} {json.dumps(args)[:40]:40} -> {err['desc']}", flush=True)
    r = subprocess.run(["ip", "netns", "exec", NS[0], FERRY, "-c", "ferry+tcp://198.18.0.2:1/",
                        "list"], capture_output=True, text=True, timeout=30)
    check(r.returncode == 1 and "failed to connect" in r.stderr, f"unreachable: {r.stderr!r}")
    check(a.states() == {NAME: "running"}, f"A after bad input: {a.states()}")


def rpc(sock, execute, args):
    """One request on ferryd's socket (docs/ferryd-rpc.md); the reply."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    try:
        s.connect(sock)
        f = s.makefile("rwb")
        json.loads(f.readline())  # the greeting
        f.write(json.dumps({"execute": execute, "arguments": args, "id": 1}).encode() + b"\n")
        f.flush()
        return json.loads(f.readline())
    finally:
        s.close()


def test_offline():
    a, b = hosts
    a.ferry("define", os.path.join(tmp, "parked.xml"))
    a.ferry("migrate", "--offline", "--persistent", "parked", b.remote)
    check(b.states().get("parked") == "shut off", f"B: {b.states()}")
    check(a.ferry("dumpxml", "parked").stdout == b.ferry("dumpxml", "parked").stdout,
          "dumpxml differs between A and B")
    a.ferry("undefine", "parked")
    b.ferry("undefine", "parked")


def test_refused():
    """A disk only A sees (not shared storage), then a disk path that does
    not exist anywhere (--xml): refused before anything moves."""
    a, b = hosts
    n = len(beats())
    local = os.path.join(tmp, "a-only", "local.img")
    with open(local, "wb") as f:
        f.truncate(1 << 20)
    xml = domain_xml("lonely", local, "", "ferry.dirty=16@1", memory=64, net=False)
    xml = xml.replace("<serial type='file'>\n      <source path=''/>\n    </serial>", "")
    a.ferry("create", write("lonely.xml", xml))
    r = a.ferry("migrate", "--live", "lonely", b.remote, rc=1)
    check(local in r.stderr and "does not exist" in r.stderr, f"refusal: {r.stderr!r}")
    print(f"  {r.stderr.strip()}", flush=True)
    check(a.states().get("lonely") == "running" and "lonely" not in b.states(),
          f"after the refusal: A {a.states()}, B {b.states()}")
    a.ferry("destroy", "lonely")
    xml = write("missing.xml", domain_xml(NAME, "/nonexistent/disk.img",
                                          os.path.join(tmp, "console.log"), CMDLINE)
                .replace("'tap0'", "'tap9'"))
    r = a.ferry("migrate", "--live", "--xml", xml, NAME, b.remote, rc=1)
    check("/nonexistent/disk.img" in r.stderr and "tap tap9 does not exist" in r.stderr,
          f"refusal: every reason expected: {r.stderr!r}")
    check(a.states() == {NAME: "running"} and NAME not in b.states(),
          f"after the refusal: A {a.states()}, B {b.states()}")
    wait_beats_after(n, 3)


def test_jobinfo_abort():
    a, b = hosts
    p = migrate_bg(a, "--live", "--bandwidth", str(JOB_MIBPS), NAME, b.remote)
    # The job is Unbounded from the start; its figures come once the
    # destination is prepared and RAM flows (seconds under emulation).
    deadline = time.monotonic() + 30 * TIMEOUT_SCALE
    while True:
        out = a.ferry("domjobinfo", NAME).stdout
        if "Data processed:" in out:
            break
        check(time.monotonic() < deadline, f"no figures in domjobinfo: {out!r}")
        time.sleep(0.2)
    seen = []
    for _ in range(4):
        time.sleep(scaled(0.6, 1.5))
        out = a.ferry("domjobinfo", NAME).stdout
        m = re.search(r"Data processed:\s+([\d.]+) (\w+)", out)
        check("Job type:         Unbounded" in out and m, f"domjobinfo: {out!r}")
        scale = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}[m.group(2)]
        seen.append(float(m.group(1)) * scale)
    print(f"  domjobinfo data processed: {[f'{x / 2**20:.1f} MiB' for x in seen]}", flush=True)
    check(all(y > x for x, y in zip(seen, seen[1:])), f"figures did not change: {seen}")
    check(b.states().get(NAME) == "paused", f"B during the migration: {b.states()}")
    a.ferry("domjobabort", NAME)
    out, err = p.communicate(timeout=30)
    check(p.returncode == 1 and "abort" in err, f"migrate after abort: {p.returncode} {err!r}")
    check(a.states() == {NAME: "running"}, f"A after abort: {a.states()}")
    wait_state(b, NAME, None)
    n = len(beats())
    wait_beats_after(n, 3)


def test_kill_destination_vmm():
    a, b = hosts
    p = migrate_bg(a, "--live", "--bandwidth", str(JOB_MIBPS), NAME, b.remote)
    deadline = time.monotonic() + 10
    while not os.path.exists(os.path.join(b.dir, "run", f"{NAME}.json")):
        check(time.monotonic() < deadline, "no incoming VM on B")
        time.sleep(0.05)
    time.sleep(1)
    os.kill(b.run_record_pid(NAME), signal.SIGKILL)
    out, err = p.communicate(timeout=30)
    check(p.returncode == 1 and "failed" in err, f"migrate: {p.returncode} {err!r}")
    print(f"  {err.strip()}", flush=True)
    check(a.states() == {NAME: "running"}, f"A: {a.states()}")
    wait_state(b, NAME, None)
    n = len(beats())
    wait_beats_after(n, 3)


def ping_from_b():
    return subprocess.Popen(["ip", "netns", "exec", NS[1], "ping", "-n", "-i", "0.01", "-W",
                             "1", GUEST_IP], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def ping_result(p):
    p.send_signal(signal.SIGINT)
    out = p.communicate(timeout=10)[0]
    m = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    check(m, f"ping: {out[-300:]!r}")
    return int(m.group(1)), int(m.group(2))


def test_live_persistent_undefinesource():
    a, b = hosts
    n = len(beats())
    ping = ping_from_b()
    time.sleep(1)
    r = a.ferry("migrate", "--live", "--persistent", "--undefinesource", "--verbose", NAME,
                b.remote)
    check("Migration: [100 %]" in r.stderr, f"no progress: {r.stderr!r}")
    time.sleep(1)
    tx, rx = ping_result(ping)
    job = b.ferry("domjobinfo", NAME, "--completed").stdout
    check(NAME not in a.states(), f"A still has it: {a.states()}")
    check(b.states() == {NAME: "running"}, f"B: {b.states()}")
    info = b.ferry("dominfo", NAME).stdout
    check(re.search(r"^Persistent:\s+yes$", info, re.M), f"B's dominfo: {info}")
    wait_beats_after(n, 10)
    check_heartbeat("A -> B")
    print(f"  pings from B every 10 ms: {tx - rx} of {tx} lost", flush=True)
    check(tx > 100 and tx - rx <= MAX_LOST_PINGS, f"{tx - rx} of {tx} pings lost")
    # The source undefined it: the figures are kept on the destination.
    m = re.search(r"Total downtime:\s+(\d+)\s+ms", job)
    check("Incoming migration" in job and m, f"B's domjobinfo --completed: {job!r}")
    print(f"  A -> B: downtime {m.group(1)} ms", flush=True)


def test_back_transient():
    a, b = hosts
    n = len(beats())
    a_job = b.ferry("migrate", "--live", NAME, a.remote)
    del a_job
    check(a.states() == {NAME: "running"}, f"A: {a.states()}")
    check(b.states() == {NAME: "shut off"}, f"B keeps the definition: {b.states()}")
    info = a.ferry("dominfo", NAME).stdout
    check(re.search(r"^Persistent:\s+no$", info, re.M), f"A's dominfo: {info}")
    job = b.ferry("domjobinfo", NAME, "--completed").stdout
    m = re.search(r"Total downtime:\s+(\d+)\s+ms", job)
    check(m, f"domjobinfo --completed: {job!r}")
    print(f"  B -> A: downtime {m.group(1)} ms", flush=True)
    wait_beats_after(n, 10)
    check_heartbeat("B -> A")


def test_xml_other_disk():
    a, b = hosts
    img2 = os.path.join(tmp, "disk2.img")
    shutil.copyfile(os.path.join(tmp, "disk.img"), img2)
    xml = write("w2.xml", domain_xml(NAME, img2, os.path.join(tmp, "console.log"), CMDLINE))
    n = len(beats())
    a.ferry("migrate", "--live", "--xml", xml, NAME, b.remote)
    check(b.states() == {NAME: "running"}, f"B: {b.states()}")
    live = b.ferry("dumpxml", NAME).stdout
    check(f"<source file='{img2}'/>" in live, f"B's definition: {live}")
    wait_beats_after(n, 5)
    check_heartbeat("A -> B with --xml")


def test_console():
    """A <serial type='pty'> domain: `ferry console` shows its output."""
    a = hosts[0]
    xml = domain_xml("talker", os.path.join(tmp, "disk.img"), "", "ferry.dirty=16@1",
                     memory=128, net=False).replace(
        "<serial type='file'>\n      <source path=''/>\n    </serial>",
        "<serial type='pty'/>")
    a.ferry("create", write("talker.xml", xml))
    # 2 s of console for a guest just created (8 under emulation, where its
    # first beat once came later than 2 s)
    r = subprocess.run(["timeout", str(scaled(2, 8)), "ip", "netns", "exec", NS[0], FERRY,
                        "-c", a.uri, "console", "talker"], stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=30)
    check("Connected to domain 'talker'" in r.stdout and
          re.search(r"ferry-agent beat=\d+", r.stdout), f"console: {r.stdout[-400:]!r}")
    a.ferry("destroy", "talker")
    check("talker" not in a.states(), f"a transient domain stays after destroy: {a.states()}")
    r = a.ferry("console", NAME, rc=1)
    check("pty" in r.stderr, f"console of a file-serial domain: {r.stderr!r}")


def test_crash():
    """A VM whose process dies is crashed, not forgotten, also across a
    ferryd restart, until destroy; then it starts again."""
    a = hosts[0]
    a.ferry("define", os.path.join(tmp, "parked.xml"))
    a.ferry("start", "parked")
    os.kill(a.run_record_pid("parked"), signal.SIGKILL)
    wait_state(a, "parked", "crashed", timeout=10)
    a.kill()
    a.start()
    check(a.states().get("parked") == "crashed", f"after a ferryd restart: {a.states()}")
    check(a.states().get(NAME) == "running", f"{NAME} after a ferryd restart: {a.states()}")
    r = a.ferry("domstate", "--reason", "parked")
    check("crashed (crashed)" in r.stdout, f"domstate: {r.stdout!r}")
    a.ferry("destroy", "parked")
    check(a.states().get("parked") == "shut off", f"after destroy: {a.states()}")
    a.ferry("start", "parked")
    check(a.states().get("parked") == "running", f"restarted: {a.states()}")
    # shutdown: the power button; the guest powers off, the domain is shut off
    r = a.ferry("shutdown", "parked")
    check("Domain 'parked' is being shutdown" in r.stdout, f"shutdown: {r.stdout!r}")
    wait_state(a, "parked", "shut off", timeout=10)
    r = a.ferry("domstate", "--reason", "parked")
    check("shut off (shutdown)" in r.stdout, f"domstate after shutdown: {r.stdout!r}")
    a.ferry("undefine", "parked")


def test_ssh_uri():
    a, b = hosts
    ssh = f"ferry+ssh://{ADDR[1]}/?socket={b.sock}"
    b.ferry("define", os.path.join(tmp, "parked.xml"))
    st = a.ferry("list", "--all", uri=ssh).stdout
    check("parked" in st and NAME not in st, f"B's list over ssh: {st!r}")
    b.ferry("undefine", "parked")
    n = len(beats())
    a.ferry("migrate", "--live", NAME, ssh)
    check(b.states().get(NAME) == "running" and a.states().get(NAME) == "shut off",
          f"after a migration to {ssh}: A {a.states()}, B {b.states()}")
    b.ferry("migrate", "--live", NAME, a.remote)
    wait_beats_after(n, 5)
    check_heartbeat("over ssh")
    print(f"  ferry -c {ssh} list, and migrate A -> B over it: ok", flush=True)


def test_kill_source_ferryd():
    a, b = hosts
    n = len(beats())
    p = migrate_bg(b, "--live", "--persistent", "--undefinesource", "--bandwidth", "100", NAME,
                   a.remote)
    # Killed mid-migration: once RAM flows (0.5 s in on a KVM host; the
    # set-up alone takes seconds under emulation, and a ferryd killed
    # before its ferry-vmm was told to migrate leaves the guest on B).
    t0 = time.monotonic()
    while "Data processed:" not in b.ferry("domjobinfo", NAME, rc=None).stdout:
        if not EMULATED and time.monotonic() - t0 >= 0.5:
            break
        check(time.monotonic() - t0 < 30 * TIMEOUT_SCALE, "B's migration never sent RAM")
        time.sleep(0.1)
    b.kill()
    p.communicate(timeout=30)
    time.sleep(2)
    b.start()
    wait_state(a, NAME, "running")
    wait_state(b, NAME, None)
    running = [h for h in hosts if NAME in h.states()]
    check(len(running) == 1, "runs on both or on neither")
    info = a.ferry("dominfo", NAME).stdout
    check(re.search(r"^Persistent:\s+yes$", info, re.M), f"A's dominfo: {info}")
    wait_beats_after(n, 10)
    check_heartbeat("B -> A with B's ferryd killed")
    print(f"  after B's ferryd was killed mid-migration and restarted: A {a.states()}, "
          f"B {b.states()}", flush=True)


# The guest's working set and dirty rate: under emulation (the test host)
# 256@50 keeps its vCPU busy all the time and outruns the migration stream.
DIRTY_WS, DIRTY_RATE = scaled((256, 50), (64, 8))
CMDLINE = (f"ferry.dirty={DIRTY_WS}@{DIRTY_RATE} ferry.ip={GUEST_IP}/24 "
           f"ferry.ping=198.18.10.1")
# MiB/s of the migrations a test watches or breaks while they run: slow
# enough that they are still running (the working set is smaller under
# emulation).
JOB_MIBPS = scaled(10, 2)
# Pings from B every 10 ms that a live migration may lose: the pause is
# ~10 ms on a KVM host; under emulation it is the emulator's (up to ~1 s).
MAX_LOST_PINGS = scaled(5, 100)


def cleanup(failed):
    for h in hosts:
        if h.p and h.p.poll() is None:
            h.ferry("destroy", NAME, rc=None)
            h.p.terminate()
            try:
                h.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                h.p.kill()
    bad = []
    for h in hosts:
        h.log.close()
        with open(h.log.name, errors="replace") as f:
            bad += [l.rstrip() for l in f if "Sanitizer" in l or "runtime error" in l]
    if failed and tmp:
        # what the hosts said, before it goes with tmp
        for root, _, files in os.walk(tmp):
            for name in sorted(files):
                if name.endswith(".log"):
                    path = os.path.join(root, name)
                    with open(path, errors="replace") as f:
                        tail = f.read().splitlines()[-12:]
                    print(f"--- last lines of {os.path.relpath(path, tmp)}:\n  "
                          + "\n  ".join(tail), flush=True)
    # VMs outlive ferryd by design: end any left in our state directories
    if tmp:
        subprocess.run(["pkill", "-9", "-f", "--", f"--control {tmp}/"], capture_output=True)
    for ns in NS:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)
    if bad:
        print("FAIL sanitizer reports in ferryd's log:\n  " + "\n  ".join(bad[:20]), flush=True)
        sys.exit(1)


def main():
    global tmp
    require_kvm()
    for f in (FERRYD, FERRY, GUEST):
        check(os.path.exists(f), f"{f} missing")
    tmp = tempfile.mkdtemp(prefix="ferry-ferryd-", dir="/var/tmp")
    failed = True
    try:
        make_network()
        os.mkdir(os.path.join(tmp, "a-only"))
        with open(os.path.join(tmp, "disk.img"), "wb") as f:
            f.truncate(16 << 20)
        console = os.path.join(tmp, "console.log")
        write_fake_ssh()
        write("w.xml", domain_xml(NAME, os.path.join(tmp, "disk.img"), console, CMDLINE))
        write("parked.xml", domain_xml("parked", os.path.join(tmp, "disk.img"), console,
                                       "ferry.dirty=16@1", memory=64, net=False))
        hosts.append(Host(0))
        hosts.append(Host(1))
        run_tests([test_define_start, test_dirtyrate, test_bad_input, test_offline,
                   test_refused, test_jobinfo_abort, test_kill_destination_vmm,
                   test_live_persistent_undefinesource, test_back_transient,
                   test_xml_other_disk, test_kill_source_ferryd, test_ssh_uri,
                   test_console, test_crash])
    except BaseException as e:
        failed = not isinstance(e, SystemExit) or e.code != 0
        raise
    finally:
        cleanup(failed)


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print(f"FAIL setup: {e}", flush=True)
        sys.exit(1)
