"""The test guest boots on ferry-vmm: every vCPU comes up, the heartbeat
runs on all of them, and the boot time is reported (bench/ compares it with
QEMU; no timing is asserted here)."""

from ferrytest import *


def boot(cpus, memory=256):
    vm = Vmm(cmdline="ferry.poweroff=2", cpus=cpus, memory=memory, control=False)
    try:
        i = vm.console.wait_for(r"ferry-agent ready", 20)
        m = READY_RE.search(vm.console.lines[i][1])
        check(m and int(m.group(1)) == cpus, f"ready line says {vm.console.lines[i][1]!r}")
        check(int(m.group(2)) == memory, f"mem_mib={m.group(2)}, expected {memory}")
        j = vm.console.wait_for(r"ferry-agent beat=1 ", 10, i)
        first_beat = vm.console.lines[j][0] - vm.started
        print(f"  cpus={cpus}: first heartbeat {first_beat * 1000:.0f} ms after start")
        check(vm.wait_exit(10) == 0, "ferry-vmm did not exit 0 after ferry.poweroff")
        beats = vm.console.beats()
        check(len(beats) >= 10, f"only {len(beats)} heartbeats in 2 s")
        check([b["beat"] for b in beats] == list(range(1, len(beats) + 1)),
              "beat numbers do not go 1, 2, 3, ...")
        ticks = beats[-1]["ticks"]
        check(len(ticks) == cpus and all(t > 0 for t in ticks),
              f"timer ticks per vCPU {ticks}: some vCPU is not running")
    finally:
        vm.kill()


def test_one_cpu():
    boot(1)


def test_two_cpus():
    boot(2)


def test_four_cpus():
    boot(4, memory=512)


def test_serial_to_file_and_unix():
    import os, socket
    vm = Vmm(cmdline="ferry.poweroff=1", control=False,
             extra=["--serial", "file:/dev/null"])
    vm.kill()
    tmp = tempfile.mkdtemp()
    out = os.path.join(tmp, "console.log")
    vm = Vmm(cmdline="ferry.poweroff=1", control=False, extra=["--serial", "file:" + out])
    try:
        check(vm.wait_exit(10) == 0, "ferry-vmm did not exit 0")
        text = open(out).read()
        check("ferry-agent ready cpus=1" in text and "beat=5 " in text,
              "the console file lacks the guest's output")
    finally:
        vm.kill()
        os.unlink(out)
    sock = os.path.join(tmp, "console.sock")
    vm = Vmm(cmdline="ferry.poweroff=3", control=False, extra=["--serial", "unix:" + sock])
    try:
        deadline = time.monotonic() + 5
        while not os.path.exists(sock):
            check(time.monotonic() < deadline, "serial socket never appeared")
            time.sleep(0.02)
        check(oct(os.stat(sock).st_mode & 0o777) == "0o600", "serial socket is not mode 0600")
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock)
        s.settimeout(5)
        data = b""
        while b"beat=" not in data:
            chunk = s.recv(4096)
            check(chunk, "serial socket closed before a heartbeat")
            data += chunk
        s.close()
        check(vm.wait_exit(10) == 0, "ferry-vmm did not exit 0")
    finally:
        vm.kill()
        os.rmdir(tmp)


if __name__ == "__main__":
    require_kvm()
    run_tests([test_one_cpu, test_two_cpus, test_four_cpus, test_serial_to_file_and_unix])
