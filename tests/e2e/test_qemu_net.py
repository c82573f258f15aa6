"""The test guest's virtio-net driver and IPv4 stack against QEMU's
virtio-net-pci on a tap, a device we did not write. Each test makes a
network namespace (ferry-qnet-<pid>) with tap0 at 198.18.5.1/24 and runs
QEMU inside it; the guest is 198.18.5.2/24 and pings the host every 10 ms
(ferry.ping) while the host pings it. The namespace is always removed.

QEMU's qboot leaves PCI BARs unassigned, so these boots use SeaBIOS
(~3-4 s on kvm_pvm); the option checks need no device and use qboot."""

import os
import re
import shutil
import subprocess
import sys
import tempfile

from ferrytest import *

HERE = os.path.dirname(os.path.abspath(__file__))
RUN_QEMU = os.path.join(HERE, "..", "..", "guest", "run-qemu.sh")
NS = f"ferry-qnet-{os.getpid()}"
HOST_IP, GUEST_IP = "198.18.5.1", "198.18.5.2"
MAC = "52:54:00:12:34:56"
NET_ARGS = ("-netdev tap,id=n0,ifname=tap0,script=no,downscript=no "
            f"-device virtio-net-pci,netdev=n0,mac={MAC}")
NET_RE = re.compile(r"ferry-agent net=eth0 pci=(\S+) mac=([0-9a-f:]+) link=(up|down)$")
FIG_RE = re.compile(r" net_sent=(\d+) net_recv=(\d+) net_lost=(\d+)$")
REPORT_RE = re.compile(r"ferry-agent net=eth0 rx_irqs=(\d+) tx_irqs=(\d+) config_irqs=(\d+)")
# Inside the test host the guest under QEMU cannot keep a 100 ms heartbeat
# and a ping every 10 ms: it skips the grid points it missed (42 beats of
# the 70 wanted were seen). There it must show that much of each rate; what
# it loses and what it sends unanswered is checked as everywhere.
RATE_SHARE = scaled(0.95, 0.3)
BEAT_SHARE = scaled(1, 0.3)
MAX_BEAT_GAP_MS = scaled(150, 1000)
# Requests still unanswered at the last beat: a reply takes tens of ms
# there (7 were in flight at once).
MAX_IN_FLIGHT = scaled(2, 12)

# ping(8) may not be installed (iputils-ping): the same probe from Python,
# a raw ICMP socket in the namespace. Prints "N received".
PINGER = """
import os, socket, struct, sys, time
count, interval, dst = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(0.01)
ident, got = os.getpid() & 0xffff, set()
def csum(b):
    b += b"\\0" * (len(b) & 1)
    v = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    v = (v & 0xffff) + (v >> 16)
    return ~((v & 0xffff) + (v >> 16)) & 0xffff
def drain(until):
    while time.time() < until:
        try:
            p = s.recv(2048)
        except socket.timeout:
            continue
        ihl = (p[0] & 15) * 4
        t, _, _, i, q = struct.unpack("!BBHHH", p[ihl:ihl + 8])
        if t == 0 and i == ident:
            got.add(q)
for seq in range(1, count + 1):
    body = struct.pack("!d", time.time()) + bytes(48)
    h = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    h = struct.pack("!BBHHH", 8, 0, csum(h + body), ident, seq)
    s.sendto(h + body, (dst, 0))
    drain(time.time() + interval)
drain(time.time() + 1)
print(f"{count} packets transmitted, {len(got)} received")
"""


def make_ns():
    sh("ip", "netns", "add", NS)
    sh("ip", "-n", NS, "link", "set", "lo", "up")
    sh("ip", "-n", NS, "tuntap", "add", "dev", "tap0", "mode", "tap")
    sh("ip", "-n", NS, "addr", "add", HOST_IP + "/24", "dev", "tap0")
    sh("ip", "-n", NS, "link", "set", "tap0", "up")


def remove_ns():
    subprocess.run(["ip", "netns", "del", NS], capture_output=True)


def host_ping(count=20, interval=0.05):
    """Pings from the namespace to the guest: (received, summary line)."""
    if shutil.which("ping"):
        cmd = ["ping", "-c", str(count), "-i", str(interval), "-W", "1", GUEST_IP]
    else:
        cmd = [sys.executable, "-c", PINGER, str(count), str(interval), GUEST_IP]
    r = subprocess.run(["ip", "netns", "exec", NS] + cmd, capture_output=True, text=True,
                       timeout=60)
    m = re.search(r"(\d+) packets transmitted, (\d+) received.*", r.stdout)
    check(m, f"{' '.join(cmd)}: {(r.stdout + r.stderr).strip()}")
    return int(m.group(2)), m.group(0)


class Qemu:
    """QEMU in the namespace with a virtio-net-pci on tap0 (and extra
    arguments), the console on a pipe."""

    def __init__(self, cmdline, cpus=2, extra="", bios=None, netns=True):
        net = NET_ARGS if netns else ""
        env = dict(os.environ, FERRY_QEMU_ARGS=(net + " " + extra).strip())
        env.pop("FERRY_QEMU_BIOS", None)  # qboot assigns no BARs
        if bios:
            env["FERRY_QEMU_BIOS"] = bios
        pre = ["ip", "netns", "exec", NS] if netns else []
        self.p = subprocess.Popen(pre + [RUN_QEMU, GUEST, cmdline, str(cpus), "256"], env=env,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        self.c = Console(self.p.stdout, "QEMU")

    def finish(self, timeout):
        self.c.wait_for(r"ferry-agent poweroff", timeout)
        rc = self.p.wait(15)
        check(rc == 0, f"QEMU exit status {rc}: {self.p.stderr.read().decode(errors='replace')}")
        return [l for _, l in self.c.lines]

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def net_line(lines):
    hits = [m for l in lines for m in [NET_RE.search(l.rstrip())] if m]
    check(len(hits) == 1, f"net=eth0 lines: {[l for l in lines if 'net=eth0' in l]}")
    check(hits[0].group(2) == MAC and hits[0].group(3) == "up", f"{hits[0].group(0)}")
    return hits[0].group(0)


def check_figures(lines, min_s):
    """Beats: net_* last, consecutive, net_lost=0 from one second after
    the first one, net_recv growing at ~100/s. Returns the last beat."""
    beats = [l.rstrip() for l in lines if "ferry-agent beat=" in l]
    check(len(beats) >= 10 * min_s * BEAT_SHARE, f"{len(beats)} beats")
    figs = []
    for l in beats:
        m = FIG_RE.search(l)
        check(m and parse_beat(l), f"beat line without net figures at the end: {l!r}")
        figs.append(tuple(int(x) for x in m.groups()) + (parse_beat(l)["uptime_ms"],))
    nums = [parse_beat(l)["beat"] for l in beats]
    check(nums == list(range(1, len(nums) + 1)), "beats not consecutive")
    t_first = figs[0][3]
    late = [f for f in figs if f[3] >= t_first + 1000]
    check(all(f[2] == 0 for f in late), f"net_lost: {[f[2] for f in late if f[2]][:10]}")
    recv = [f[1] for f in figs]
    check(all(a <= b for a, b in zip(recv, recv[1:])), "net_recv went down")
    span_s = (figs[-1][3] - t_first) / 1000
    # one request per 10 ms slot, late ones caught up: ~100 a second
    check(figs[-1][0] - figs[0][0] >= 100 * RATE_SHARE * span_s,
          f"net_sent {figs[0][0]} -> {figs[-1][0]} in {span_s:.1f} s")
    check(recv[-1] - recv[0] >= 100 * RATE_SHARE * span_s,
          f"net_recv {recv[0]} -> {recv[-1]} in {span_s:.1f} s")
    check(figs[-1][0] - figs[-1][1] <= MAX_IN_FLIGHT, f"sent {figs[-1][0]}, received {figs[-1][1]}")
    return beats[-1]


def check_report(lines):
    r = [m for l in lines for m in [REPORT_RE.search(l)] if m]
    check(len(r) == 1, "no net=eth0 irqs line")
    rx, tx, _ = (int(x) for x in r[0].groups())
    check(rx > 0 and tx > 0, f"no MSI-X interrupt counted: {r[0].group(0)}")
    return r[0].group(0)


def run_ping_test(cpus, cmdline, extra="", poweroff=10):
    make_ns()
    q = None
    try:
        q = Qemu(f"ferry.ip={GUEST_IP}/24 ferry.ping={HOST_IP} ferry.poweroff={poweroff} "
                 + cmdline, cpus=cpus, extra=extra)
        q.c.wait_for(r"ferry-agent net=eth0 arp " + re.escape(HOST_IP) + " is-at", 30)
        q.c.wait_for(r"ferry-agent beat=10 ", 10)
        got, summary = host_ping()
        check(got == 20, f"host -> guest: {summary}")
        lines = q.finish(poweroff + 20)
        check_clean(lines)
        print(f"  cpus={cpus}: {net_line(lines)}\n  host: {summary}")
        print(f"  {check_figures(lines, poweroff - 3)}\n  {check_report(lines)}")
        return lines
    finally:
        if q:
            q.kill()
        remove_ns()


def test_ping_two_cpus_with_disk():
    """The full load: a disk writer and the dirtier beside the network."""
    tmp = tempfile.mkdtemp(prefix="ferry-qnet-", dir="/var/tmp")
    try:
        img = os.path.join(tmp, "disk.img")
        with open(img, "wb") as f:
            f.truncate(4 << 20)
        lines = run_ping_test(2, "ferry.dirty=16@10 ferry.disk-writer=256",
                              f"-drive if=none,id=d0,file={img},format=raw,cache=none "
                              "-device virtio-blk-pci,drive=d0")
        beats = [l for l in lines if "ferry-agent beat=" in l]
        check(all(re.search(r" disk_written=\d+ disk_corrupt=0 net_sent=", l) for l in beats),
              f"field order: {beats[-1]!r}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_ping_one_cpu():
    """Alone, CPU 0 polls the network after its heartbeat: the beats must
    stay on their 100 ms grid."""
    lines = run_ping_test(1, "")
    ups = [parse_beat(l)["uptime_ms"] for l in lines if "ferry-agent beat=" in l]
    gaps = [b - a for a, b in zip(ups, ups[1:])]
    check(max(gaps) <= MAX_BEAT_GAP_MS, f"heartbeat gap of {max(gaps)} ms")
    print(f"  longest heartbeat gap {max(gaps)} ms", flush=True)


def test_nic_without_options():
    """A NIC and no net option: the line at start, beats as before."""
    make_ns()
    q = None
    try:
        q = Qemu("ferry.poweroff=2")
        lines = q.finish(30)
        check_clean(lines)
        net_line(lines)
        check(not any("net_" in l for l in lines if "beat=" in l), "net figures without ferry.ping")
        check(not any(" ip=" in l or "arp" in l for l in lines), "configured without ferry.ip")
    finally:
        if q:
            q.kill()
        remove_ns()


def test_bad_options():
    for opt in ["ferry.ping=198.18.5.1", "ferry.ip=198.18.5.2/24 ferry.ping=198.18.6.1",
                "ferry.ip=198.18.5.2/24 ferry.ping=198.18.5.2", "ferry.ip=198.18.5/24",
                "ferry.ip=198.18.5.2", "ferry.ip=198.18.5.2/33", "ferry.ip=198.18.5.256/24",
                "ferry.ip=198.18.5.2/24 ferry.ping=1.2.3.4.5"]:
        q = Qemu(opt, bios="qboot", netns=False)
        try:
            lines = q.finish(30)
        finally:
            q.kill()
        tok = opt.split()[-1]
        check(any(f"ferry-agent error: bad option {tok}" in l for l in lines),
              f"{opt}: {[l for l in lines if 'error' in l]}")


if __name__ == "__main__":
    require_kvm()
    if not shutil.which("qemu-system-x86_64"):
        print("SKIP: qemu-system-x86_64 is not installed (scripts/setup.sh installs it)")
        sys.exit(77)
    if subprocess.run(["ip", "netns", "add", NS], capture_output=True).returncode:
        print("SKIP: cannot create network namespaces here (ip netns): test not run",
              flush=True)
        sys.exit(77)
    remove_ns()
    run_tests([test_bad_options, test_nic_without_options, test_ping_one_cpu,
               test_ping_two_cpus_with_disk])
