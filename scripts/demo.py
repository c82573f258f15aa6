#!/usr/bin/env python3
"""make demo: two "hosts" on this machine — network namespaces joined by a
veth pair (198.18.0.1 and 198.18.0.2; loopback when namespaces cannot be
made) — a guest with 2 vCPUs and a working set it keeps rewriting and
verifying booted on host A, migrated live to host B with progress and
figures, its heartbeat shown going on there, then migrated back. The guest
has a virtio disk on an image both hosts share (cache=none) that it keeps
writing checked records to, and a virtio NIC on a tap in each host (the
same gateway address 198.18.10.1 on both) that it pings every 10 ms; the
demo ends with the image's records checked and the pings lost counted.

    scripts/demo.py [BUILD]"""

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

build = sys.argv[1] if len(sys.argv) > 1 else "build"
VMM = os.path.join(build, "src", "ferry-vmm")
GUEST = os.path.join(build, "guest", "ferry-guest.elf")
CMDLINE = "ferry.dirty=256@50 ferry.disk-writer=512"
NET_CMDLINE = " ferry.ip=198.18.10.2/24 ferry.ping=198.18.10.1"
CHECK_RECORDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "check-disk-records.py")
NS = ("ferry-demo-a", "ferry-demo-b")
ADDR = ("198.18.0.1", "198.18.0.2")
PORT = 4444
t_start = time.monotonic()


def say(msg):
    print(f"demo: {msg}", flush=True)


def sh(*args):
    return subprocess.run(args, capture_output=True, text=True)


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
        r = sh(*s)
        if r.returncode:
            say(f"cannot make network namespaces ({' '.join(s)}: {r.stderr.strip()}); "
                "both hosts use loopback instead")
            remove_hosts()
            return False
    return True


def remove_hosts():
    for ns in NS:
        sh("ip", "netns", "del", ns)


class Host:
    """One ferry-vmm on one "host", its console lines printed as they come."""

    def __init__(self, name, ns, args):
        self.name = name
        self.tmp = tempfile.mkdtemp(prefix=f"ferry-demo-{name}-")
        self.ctl_path = os.path.join(self.tmp, "control.sock")
        prefix = ["ip", "netns", "exec", ns] if ns else []
        self.p = subprocess.Popen(prefix + [VMM, "--control", self.ctl_path] + args,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  errors="replace")
        self.beats = []
        self.quiet = False
        threading.Thread(target=self._console, daemon=True).start()
        threading.Thread(target=self._log, daemon=True).start()

    def _console(self):
        for line in self.p.stdout:
            m = re.search(r"beat=(\d+)", line)
            if m:
                self.beats.append((time.monotonic(), int(m.group(1)), line.strip()))
            if not self.quiet and (not m or int(m.group(1)) % 5 == 0):
                print(f"  [{self.name} guest] {line.rstrip()}", flush=True)

    def _log(self):
        for line in self.p.stderr:
            if "debug:" not in line:
                print(f"  [{self.name} ferry-vmm] {line.rstrip()}", flush=True)

    def qmp(self, cmd, args=None, timeout=10):
        deadline = time.monotonic() + timeout
        while not hasattr(self, "f"):
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(self.ctl_path)
                self.s, self.f = s, s.makefile("r")
                self.f.readline()
            except OSError:
                if time.monotonic() > deadline or self.p.poll() is not None:
                    raise RuntimeError(f"{self.name}: no control socket")
                time.sleep(0.02)
        req = {"execute": cmd}
        if args:
            req["arguments"] = args
        self.s.sendall((json.dumps(req) + "\n").encode())
        while True:
            m = json.loads(self.f.readline())
            if "event" not in m:
                if "error" in m:
                    raise RuntimeError(f"{cmd}: {m['error']['desc']}")
                return m["return"]

    def stop(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def migrate(src, dst, dst_addr):
    say(f"--- migrating live from {src.name} to {dst.name} (tcp:{dst_addr}:{PORT}) ---")
    src.qmp("migrate", {"uri": f"tcp:{dst_addr}:{PORT}"})
    last = -1
    while True:
        r = src.qmp("query-migrate")
        st = r.get("status")
        ram = r.get("ram", {})
        if st in ("active", "device") and ram.get("total"):
            done = ram["transferred"] / max(1, ram["transferred"] + ram["remaining"])
            pct = min(99, int(done * 100))
            if pct // 10 != last // 10 or last < 0:
                print(f"demo: Migration: [{pct:3d} %]  pass {r['ferry']['pass']}, "
                      f"{ram['transferred'] >> 20} MiB sent, {ram['remaining'] >> 20} MiB to go",
                      flush=True)
                last = pct
        if st in ("completed", "failed", "cancelled"):
            break
        time.sleep(0.02)
    if st != "completed":
        raise RuntimeError(f"migration {st}: {r.get('error-desc')}")
    f, parts = r["ferry"], r["ferry"]["downtime-parts"]
    ram = r["ram"]
    print("demo: Migration: [100 %]", flush=True)
    say(f"completed in {r['total-time']} ms: {ram['transferred'] / 1e6:.1f} MB sent "
        f"({ram['normal']} pages, {ram['duplicate']} zero), {f['pass']} passes, "
        f"{ram['mbps']:.0f} Mbit/s, finished by: {f['rung']}")
    say(f"downtime {parts['total-us'] / 1000:.2f} ms = pause {parts['pause-us']} us + last RAM "
        f"{parts['final-ram-us']} us ({parts['final-ram-bytes']} bytes) + vCPU/device state "
        f"{parts['device-state-us']} us + destination load {parts['destination-load-us']} us + "
        f"start {parts['start-us']} us")
    say(f"{src.name}: query-status -> {src.qmp('query-status')['status']}")


def heartbeat_gap(src, dst):
    """Last beat on the source, first on the destination, the gap between."""
    deadline = time.monotonic() + 5
    while not dst.beats and time.monotonic() < deadline:
        time.sleep(0.02)
    if not src.beats or not dst.beats:
        return "no heartbeat seen on one side"
    a, b = src.beats[-1], dst.beats[0]
    return (f"last beat on the source #{a[1]}, first on the destination #{b[1]}; the guest "
            f"was silent for {(b[0] - a[0]) * 1000:.0f} ms at the host (beat period 100 ms)")


def main():
    for f in (VMM, GUEST):
        if not os.path.exists(f):
            sys.exit(f"demo: {f} is missing (run make)")
    if not os.path.exists("/dev/kvm"):
        sys.exit("demo: /dev/kvm is missing: ferry needs KVM")
    netns = make_hosts()
    ns = NS if netns else (None, None)
    addr = ADDR if netns else ("127.0.0.1", "127.0.0.1")
    hosts = []
    tmp = tempfile.mkdtemp(prefix="ferry-demo-", dir="/var/tmp")
    img = os.path.join(tmp, "disk.img")
    with open(img, "wb") as f:
        f.write(os.urandom(64 << 20))
    devs = ["--disk", f"{img},cache=none"] + (["--net", "tap=tap0"] if netns else [])
    cmdline = CMDLINE + (NET_CMDLINE if netns else "")
    try:
        say(f"host A: ferry-vmm --kernel {GUEST} --cpus 2 --memory 1024 "
            f"--cmdline '{cmdline}' {' '.join(devs)}")
        a = Host("host-A", ns[0], ["--kernel", GUEST, "--cpus", "2", "--memory", "1024",
                                   "--cmdline", cmdline] + devs)
        hosts.append(a)
        time.sleep(3)
        say(f"host B: ferry-vmm --incoming tcp:{addr[1]}:{PORT} {' '.join(devs)}")
        b = Host("host-B", ns[1], ["--incoming", f"tcp:{addr[1]}:{PORT}"] + devs)
        hosts.append(b)
        time.sleep(0.3)
        migrate(a, b, addr[1])
        say(heartbeat_gap(a, b))
        a.qmp("quit")
        a.p.wait(timeout=10)
        time.sleep(3)
        say(f"host A: ferry-vmm --incoming tcp:{addr[0]}:{PORT} {' '.join(devs)}")
        a2 = Host("host-A", ns[0], ["--incoming", f"tcp:{addr[0]}:{PORT}"] + devs)
        hosts.append(a2)
        time.sleep(0.3)
        migrate(b, a2, addr[0])
        say(heartbeat_gap(b, a2))
        b.qmp("quit")
        b.p.wait(timeout=10)
        time.sleep(2)
        corrupt = [l for _, _, l in a2.beats
                   if not re.search(r" corrupt=0\b", l) or "disk_corrupt=0" not in l]
        say(f"the guest is back on host A; {len(corrupt)} heartbeat(s) reported corruption"
            " (memory or disk)")
        lost = re.search(r"net_lost=(\d+)", a2.beats[-1][2]) if a2.beats else None
        if lost:
            say(f"pings to the gateway every 10 ms: {lost.group(1)} lost over the two "
                "migrations")
        a2.qmp("quit")
        rc = a2.p.wait(timeout=10)
        r = sh(sys.executable, CHECK_RECORDS, img)
        say(f"the disk's records after the last host stopped: {r.stdout.strip() or r.stderr.strip()}")
        say(f"done in {time.monotonic() - t_start:.1f} s; last ferry-vmm exited {rc}")
        return 1 if corrupt or rc or r.returncode else 0
    except Exception as e:
        say(f"failed: {e}")
        return 1
    finally:
        for h in hosts:
            h.stop()
        if netns:
            remove_hosts()
        for n in os.listdir(tmp):
            os.unlink(os.path.join(tmp, n))
        os.rmdir(tmp)


if __name__ == "__main__":
    sys.exit(main())
