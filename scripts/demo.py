#!/usr/bin/env python3
"""make demo: two "hosts" on this machine — network namespaces joined by a
veth pair (198.18.0.1 and 198.18.0.2; loopback when namespaces cannot be
made) — each running its own ferryd. A Linux VM — Debian's cloud kernel
(build/linux/vmlinux) with our agent as its /init (build/guest/linux/
agent.cpio), 2 vCPUs, 1 GiB, a working set it keeps rewriting and
verifying — is defined and started on host A with the ferry CLI, migrated
live to host B with `ferry migrate --live --persistent --verbose` (its
`domjobinfo` shown while it runs and after), its heartbeat shown going on
there, then migrated back. The guest has a virtio disk on an image both
hosts share (cache=none) that it keeps writing checked records to through
Linux's virtio_blk, and a virtio NIC on a tap in each host (the same
gateway 198.18.10.1 on both) that it pings through Linux's own stack; the
demo ends with the image's records checked, the pings lost counted and the
kernel's warnings listed.

Linux needs guest ring 0 of its own: on kvm_pvm (where it is emulated and
an unmodified kernel cannot run) `make demo` runs this inside the test host
(tests/host/run).

    scripts/demo.py [BUILD]"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lib"))
from ferry_harness import BAD_RE, Lines, parse_beat, sh  # noqa: E402

build = sys.argv[1] if len(sys.argv) > 1 else "build"
FERRYD = os.path.join(build, "src", "ferryd")
FERRY = os.path.join(build, "src", "ferry")
KERNEL = os.path.abspath(os.path.join(build, "linux", "vmlinux"))
INITRD = os.path.abspath(os.path.join(build, "guest", "linux", "agent.cpio"))
# Inside the test host (tests/host/run: everything emulated, a migration
# stream of tens of MiB/s) the guest dirties a smaller working set, slower,
# so that the live migration converges as it does on a KVM host; and its
# CPUID lacks kvm_pv_unhalt: there Linux's queued spinlocks stall on 2
# vCPUs, under QEMU as under ferry (docs/testing.md, "Linux's queued
# spinlocks stall on 2 vCPUs").
EMULATED = os.environ.get("FERRY_TESTHOST_INSIDE") == "1"
DIRTY = "ferry.dirty=64@4" if EMULATED else "ferry.dirty=256@50"
CPUS = 2
CPU_XML = ("  <cpu mode='host-passthrough'>\n"
           "    <feature policy='disable' name='kvm_pv_unhalt'/>\n"
           "  </cpu>\n") if EMULATED else "  <cpu mode='host-passthrough'/>\n"
# loglevel=4: the kernel's errors reach the console itself, its warnings
# come as `ferry-agent KERNEL` lines from the agent.
CMDLINE = "console=ttyS0 loglevel=4 panic=-1 " + DIRTY + " ferry.disk-writer=512"
NET_CMDLINE = " ferry.ip=198.18.10.2/24 ferry.ping=198.18.10.1"
CHECK_RECORDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check-disk-records.py")
NS = ("ferry-demo-a", "ferry-demo-b")
ADDR = ("198.18.0.1", "198.18.0.2")
NAME = "wanderer1"
t_start = time.monotonic()


def say(msg):
    print(f"demo: {msg}", flush=True)


def make_hosts():
    """Two namespaces with a veth pair; False when this machine cannot."""
    remove_hosts()
    steps = [["ip", "netns", "add", NS[0]], ["ip", "netns", "add", NS[1]],
             ["ip", "link", "add", "fdemo-a", "type", "veth", "peer", "name", "fdemo-b"],
             ["ip", "link", "set", "fdemo-a", "netns", NS[0]],
             ["ip", "link", "set", "fdemo-b", "netns", NS[1]]]
    for i, ns in enumerate(NS):
        dev = "fdemo-a" if i == 0 else "fdemo-b"
        steps += [["ip", "-n", ns, "addr", "add", ADDR[i] + "/24", "dev", dev],
                  ["ip", "-n", ns, "link", "set", dev, "up"],
                  ["ip", "-n", ns, "link", "set", "lo", "up"],
                  # the guest's network: the same gateway on both hosts
                  ["ip", "-n", ns, "tuntap", "add", "dev", "tap0", "mode", "tap"],
                  ["ip", "-n", ns, "link", "set", "tap0", "address", "02:00:00:00:10:01"],
                  ["ip", "-n", ns, "addr", "add", "198.18.10.1/24", "dev", "tap0"],
                  ["ip", "-n", ns, "link", "set", "tap0", "up"]]
    for s in steps:
        r = sh(*s, check_rc=False)
        if r.returncode:
            say(f"cannot make network namespaces ({' '.join(s)}: {r.stderr.strip()}); "
                "both hosts use loopback instead")
            remove_hosts()
            return False
    return True


def remove_hosts():
    for ns in NS:
        sh("ip", "netns", "del", ns, check_rc=False)


class Host:
    """One ferryd on one "host", its log lines printed as they come."""

    def __init__(self, name, ns, addr, port, tmp):
        self.name, self.ns, self.addr, self.port = name, ns, addr, port
        self.dir = os.path.join(tmp, name)
        self.sock = os.path.join(tmp, f"{name}.sock")
        self.uri = f"ferry+unix://{self.sock}"
        self.remote = f"ferry+tcp://{addr}:{port}/"
        self.prefix = ["ip", "netns", "exec", ns] if ns else []
        self.p = subprocess.Popen(self.prefix + [FERRYD, "--state-dir", self.dir, "--socket",
                                                 self.sock, "--listen", self.remote],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                  errors="replace")
        threading.Thread(target=self._log, daemon=True).start()
        deadline = time.monotonic() + 10
        while not os.path.exists(self.sock):
            if time.monotonic() > deadline or self.p.poll() is not None:
                raise RuntimeError(f"{name}: ferryd did not start")
            time.sleep(0.02)

    def _log(self):
        for line in self.p.stderr:
            print(f"  [{self.name} ferryd] {line.rstrip()}", flush=True)

    def ferry(self, *args, show=True, check=True):
        """Runs `ferry -c URI ARGS` on this host and shows what it printed."""
        if show:
            print(f"{self.name}$ ferry {' '.join(args)}", flush=True)
        r = subprocess.run(self.prefix + [FERRY, "-c", self.uri] + list(args),
                           capture_output=True, text=True, timeout=300)
        if show:
            for line in (r.stdout + r.stderr).rstrip("\n").splitlines():
                print(f"    {line}", flush=True)
        if check and r.returncode:
            raise RuntimeError(f"ferry {args[0]} failed on {self.name}: {r.stderr.strip()}")
        return r

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.p.kill()


# The first line of a kernel warning the agent relays; while the guest
# boots, the rest of one (registers, call trace, CPUID dumps) is counted,
# not shown. After that every line is shown.
KERNEL_HEADLINE = re.compile(r"WARNING|[Ee]rror|[Ff]ail|problem|BUG|unstable|stall|lockup|"
                             r"nobody cared|spurious|broken")


class Console(Lines):
    """The guest's serial console, a file both hosts append to, followed as
    it grows: every line shown but nine heartbeats in ten and the details
    of kernel warnings, until quiet."""

    def __init__(self, path):
        open(path, "w").close()
        self.path, self.quiet, self.hidden, self.booted = path, False, 0, False
        super().__init__(open(path, "rb"), "the guest's console", follow=True,
                         on_line=self.show)

    def show(self, _, line):
        b = parse_beat(line)
        kernel = line.split("ferry-agent KERNEL ", 1)[1] if "ferry-agent KERNEL " in line else None
        if kernel is not None and not self.booted and not KERNEL_HEADLINE.search(kernel):
            self.hidden += 1
        elif not self.quiet and (b is None or b["beat"] % 10 == 0):
            print(f"  [guest] {line.rstrip()}", flush=True)

    def heartbeats(self):
        """(arrival time, figures) of every heartbeat so far."""
        return [(t, b) for t, b in ((t, parse_beat(l)) for t, l in self.snapshot()) if b]


def domain_xml(img, console, net):
    iface = ("    <interface type='ethernet'>\n"
             "      <mac address='52:54:00:00:10:02'/>\n"
             "      <target dev='tap0'/>\n"
             "      <model type='virtio'/>\n"
             "    </interface>\n") if net else ""
    return (f"<domain type='kvm'>\n"
            f"  <name>{NAME}</name>\n"
            f"  <memory unit='MiB'>1024</memory>\n"
            f"  <vcpu>{CPUS}</vcpu>\n"
            f"  <os>\n"
            f"    <type arch='x86_64'>hvm</type>\n"
            f"    <kernel>{KERNEL}</kernel>\n"
            f"    <initrd>{INITRD}</initrd>\n"
            f"    <cmdline>{CMDLINE + (NET_CMDLINE if net else '')}</cmdline>\n"
            f"  </os>\n"
            f"{CPU_XML}"
            f"  <devices>\n"
            f"    <disk type='file' device='disk'>\n"
            f"      <driver name='qemu' type='raw' cache='none'/>\n"
            f"      <source file='{img}'/>\n"
            f"      <target dev='vda' bus='virtio'/>\n"
            f"    </disk>\n"
            f"{iface}"
            f"    <serial type='file'>\n"
            f"      <source path='{console}'/>\n"
            f"      <target port='0'/>\n"
            f"    </serial>\n"
            f"  </devices>\n"
            f"</domain>\n")


def migrate(src, dst, flags):
    """ferry migrate on src, with domjobinfo on src while it runs."""
    say(f"--- migrating live from {src.name} to {dst.name} ---")
    args = [FERRY, "-c", src.uri, "migrate"] + flags + [NAME, dst.remote]
    print(f"{src.name}$ ferry {' '.join(args[3:])}", flush=True)
    p = subprocess.Popen(src.prefix + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    out = []
    threading.Thread(target=lambda: out.append(p.stdout.read()), daemon=True).start()
    time.sleep(0.3)
    if p.poll() is None:
        src.ferry("domjobinfo", NAME, check=False)
    rc = p.wait(timeout=300)
    time.sleep(0.1)
    text = "".join(out)
    shown = -1
    for line in text.replace("\r", "\n").splitlines():
        m = re.search(r"Migration: \[ *(\d+) %\]", line)
        if m and int(m.group(1)) // 10 == shown:
            continue  # progress: a line each 10 %
        shown = int(m.group(1)) // 10 if m else shown
        if line.strip():
            print(f"    {line}", flush=True)
    if rc:
        raise RuntimeError(f"migration failed: {text.strip()}")


def heartbeat_gap(console, before, wait=60):
    """The longest silence of the heartbeat since heartbeat `before`, once
    the guest has beaten again since now (under emulation the destination's
    first heartbeat can come seconds after the migration command returned)."""
    now = len(console.heartbeats())
    deadline = time.monotonic() + wait
    while len(console.heartbeats()) <= now and time.monotonic() < deadline:
        time.sleep(0.1)
    beats = [(t, b["beat"]) for t, b in console.heartbeats()[max(0, before - 1):]]
    if len(beats) < 2:
        return "no heartbeat seen"
    worst = max(((b[0] - a[0], a[1], b[1]) for a, b in zip(beats, beats[1:])))
    return (f"heartbeat went on: #{beats[0][1]}..#{beats[-1][1]}, longest silence at the "
            f"host {worst[0] * 1000:.0f} ms (between #{worst[1]} and #{worst[2]}; "
            "beat period 100 ms)")


def main():
    for f in (FERRYD, FERRY, KERNEL, INITRD):
        if not os.path.exists(f):
            sys.exit(f"demo: {f} is missing (run make)")
    if not os.path.exists("/dev/kvm"):
        sys.exit("demo: /dev/kvm is missing: ferry needs KVM")
    if os.path.exists("/sys/module/kvm_pvm"):
        sys.exit("demo: this /dev/kvm is kvm_pvm, which cannot run an unmodified Linux: "
                 "run the demo in the test host (make demo does)")
    with open(os.path.join(build, "linux", "version")) as f:
        say(f"the guest: Debian's {f.read().strip()} with the agent as /init, "
            f"{CPUS} vCPU(s), 1 GiB")
    if EMULATED:
        say(f"inside the test host, everything emulated: the guest runs {DIRTY} "
            "(256@50 on a KVM host), its CPUID without kvm_pv_unhalt; times are the "
            "emulator's")
    netns = make_hosts()
    ns = NS if netns else (None, None)
    addr = ADDR if netns else ("127.0.0.1", "127.0.0.1")
    tmp = tempfile.mkdtemp(prefix="ferry-demo-", dir="/var/tmp")
    hosts = []
    try:
        img = os.path.join(tmp, "disk.img")
        with open(img, "wb") as f:
            f.write(os.urandom(64 << 20))
        console = Console(os.path.join(tmp, "console.log"))
        xml = os.path.join(tmp, f"{NAME}.xml")
        with open(xml, "w") as f:
            f.write(domain_xml(img, console.path, netns))
        a = Host("host-A", ns[0], addr[0], 16514, tmp)
        hosts.append(a)
        b = Host("host-B", ns[1], addr[1], 16514 if netns else 16515, tmp)
        hosts.append(b)
        a.ferry("define", xml)
        a.ferry("start", NAME)
        a.ferry("list", "--all")
        # Migrated once it beats (under emulation the guest's boot, a
        # sha256 of its disk among it, takes tens of seconds).
        console.wait_for(r"ferry-agent beat=20 ", 300, what="the guest")
        booted = len(console.snapshot())
        console.booted = True
        n = len(console.heartbeats())
        migrate(a, b, ["--live", "--persistent", "--verbose"])
        a.ferry("domjobinfo", NAME, "--completed")
        say(heartbeat_gap(console, n))
        a.ferry("list", "--all")
        b.ferry("list", "--all")
        time.sleep(3)
        n = len(console.heartbeats())
        migrate(b, a, ["--live", "--verbose"])
        b.ferry("domjobinfo", NAME, "--completed")
        say(heartbeat_gap(console, n))
        b.ferry("list", "--all")
        a.ferry("list", "--all")
        # the guest's memory checked again since it came back, not only
        # its heartbeat (under emulation its workers may take a while)
        back = console.heartbeats()[-1][1]["verified"]
        deadline = time.monotonic() + 120
        while console.heartbeats()[-1][1]["verified"] <= back and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(2)
        beats = [b for _, b in console.heartbeats()]
        checked = beats[-1]["verified"] - back
        say(f"pages of the working set verified since it came back: {checked}")
        corrupt = [b for b in beats if b["corrupt"] or b.get("disk_corrupt") != 0]
        say(f"the guest is back on host A; {len(corrupt)} heartbeat(s) reported corruption"
            " (memory or disk)")
        nums = [b["beat"] for b in beats]
        in_order = nums == list(range(1, len(nums) + 1))
        say(f"heartbeats #1..#{nums[-1] if nums else 0} "
            + ("each once, in order" if in_order else "NOT each once in order"))
        lost = beats[-1].get("net_lost") if beats else None
        if lost is not None:
            say(f"pings to the gateway every 10 ms: {lost} lost over the two migrations")
        warned = [i >= booted for i, (_, l) in enumerate(console.snapshot())
                  if "ferry-agent KERNEL " in l]
        say(f"the kernel's warnings: {warned.count(False)} line(s) while it booted, "
            f"{warned.count(True)} since ({console.hidden} lines of boot-time detail not shown)")
        console.quiet = True
        console.stop()
        a.ferry("destroy", NAME)
        # (it reads the whole image: under emulation that may take long)
        r = sh(sys.executable, CHECK_RECORDS, img, check_rc=False, timeout=None)
        say(f"the disk's records after the last host stopped: "
            f"{r.stdout.strip() or r.stderr.strip()}")
        say(f"done in {time.monotonic() - t_start:.1f} s")
        return 1 if corrupt or r.returncode or not in_order or checked <= 0 else 0
    except Exception as e:
        say(f"failed: {e}")
        for h in hosts:  # what each host's ferry-vmm said of the guest
            log = os.path.join(h.dir, "log", f"{NAME}.log")
            if os.path.exists(log):
                tail = open(log, errors="replace").read().splitlines()[-6:]
                say(f"{h.name}'s {NAME}.log ends: " + " | ".join(tail))
        tail = open(console.path, errors="replace").read().splitlines()[-4:] \
            if "console" in locals() else []
        for line in tail:
            if BAD_RE.search(line) or "poweroff" in line:
                say(f"the guest said: {line}")
        return 1
    finally:
        for h in hosts:
            for dom in (NAME,):
                if h.p.poll() is None:
                    h.ferry("destroy", dom, show=False, check=False)
            h.stop()
        if netns:
            remove_hosts()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
