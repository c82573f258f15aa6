"""Bad input at start-up: one clear error line on stderr, exit status 1,
no crash (no signal, no sanitizer report), no vCPU run."""

import os
import socket
import subprocess
import tempfile
import time

from ferrytest import *


def run_vmm(args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([VMM] + args, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=20, env=e)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def pvh_elf(load_addr, filesz=16):
    """A minimal ELF64 with one PT_LOAD at load_addr and the PVH note."""
    import struct
    note = struct.pack("<III4sI", 4, 4, 18, b"Xen\0", load_addr & 0xffffffff)
    ehdr_size, phdr_size = 64, 56
    note_off = ehdr_size + 2 * phdr_size
    code_off = note_off + len(note)
    ehdr = struct.pack("<4sBBBBBxxxxxxxHHIQQQIHHHHHH", b"\x7fELF", 2, 1, 1, 0, 0,
                       2, 62, 1, load_addr, ehdr_size, 0, 0, ehdr_size, phdr_size, 2, 64, 0, 0)
    load = struct.pack("<IIQQQQQQ", 1, 7, code_off, load_addr, load_addr, filesz, filesz, 4096)
    pnote = struct.pack("<IIQQQQQQ", 4, 4, note_off, 0, 0, len(note), len(note), 4)
    return ehdr + load + pnote + note + b"\xf4" * 16


def expect_error(args, needle, env=None):
    rc, out, err = run_vmm(args, env)
    lines = [l for l in err.splitlines() if l.strip()]
    check(rc == 1, f"{args}: exit status {rc}, expected 1 (stderr: {err!r})")
    check(len(lines) == 1 and lines[0].startswith("ferry-vmm: error: "),
          f"{args}: expected one error line, got {lines}")
    check(needle in lines[0], f"{args}: {lines[0]!r} does not mention {needle!r}")
    check("ferry-agent" not in out, f"{args}: the guest ran")
    print(f"  {' '.join(args)[:60]:60} -> {lines[0][18:]}")


def test_files():
    tmp = tempfile.mkdtemp()
    try:
        text = os.path.join(tmp, "text")
        open(text, "w").write("not an elf\n")
        trunc = os.path.join(tmp, "trunc.elf")
        open(trunc, "wb").write(open(GUEST, "rb").read()[:200])
        empty = os.path.join(tmp, "empty")
        open(empty, "w").close()
        expect_error(["--kernel", "/nonexistent/vmlinux"], "No such file")
        expect_error(["--kernel", tmp], "Is a directory")
        expect_error(["--kernel", text], "not an ELF")
        expect_error(["--kernel", empty], "not an ELF")
        expect_error(["--kernel", trunc], trunc)
        expect_error(["--kernel", "/bin/true"], "not a PVH kernel")
        expect_error(["--kernel", GUEST, "--initrd", "/nonexistent"], "--initrd")
        expect_error(["--kernel", GUEST, "--serial", "bogus"], "--serial")
        expect_error(["--kernel", GUEST, "--serial", "file:/nonexistent/dir/x"], "serial")
        expect_error(["--kernel", GUEST, "--control", "/nonexistent/dir/sock"], "--control")
    finally:
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)


def test_sizes():
    expect_error(["--kernel", GUEST, "--memory", "0"], "--memory 0")
    expect_error(["--kernel", GUEST, "--memory", "100000000"], "more than this host")
    expect_error(["--kernel", GUEST, "--memory", "lots"], "--memory")
    expect_error(["--kernel", GUEST, "--memory", "-5"], "--memory")
    expect_error(["--kernel", GUEST, "--cpus", "0"], "--cpus 0")
    expect_error(["--kernel", GUEST, "--cpus", "100000"], "--cpus 100000")
    expect_error(["--kernel", GUEST, "--cpus", "2x"], "--cpus")
    expect_error(["--kernel", GUEST, "--cpu", "Skylake-Client"],
                 "--cpu Skylake-Client: 'Skylake-Client' is not a CPU ferry offers")
    expect_error(["--kernel", GUEST, "--cpu", "host,-nosuch"],
                 "--cpu host,-nosuch: unknown CPU feature 'nosuch'")
    expect_error(["--kernel", GUEST, "--cpu", "host,avx2"], "write -FEATURE or FEATURE=off")
    expect_error(["--incoming", "unix:/tmp/x.sock", "--cpu", "host"], "--cpu")
    tmp = tempfile.mkdtemp()
    big = os.path.join(tmp, "high.elf")
    try:
        open(big, "wb").write(pvh_elf(load_addr=64 << 20))
        expect_error(["--kernel", big, "--memory", "16"], "does not fit in guest RAM")
        open(big, "wb").write(pvh_elf(load_addr=0x1000))
        expect_error(["--kernel", big, "--memory", "16"], "below 1 MiB")
        open(big, "wb").write(pvh_elf(load_addr=1 << 20, filesz=1 << 20))
        expect_error(["--kernel", big, "--memory", "16"], "past the end of the file")
    finally:
        os.unlink(big)
        os.rmdir(tmp)


def test_options():
    expect_error([], "--kernel")
    expect_error(["--kernel"], "--kernel")
    expect_error(["--kernel", GUEST, "--frobnicate"], "--frobnicate")
    expect_error(["--kernel", GUEST, "stray"], "stray")
    expect_error(["--kernel", GUEST, "--cmdline", "x" * 70000], "command line")
    expect_error(["--kernel", GUEST, "--incoming-timeout", "5"], "--incoming")
    sock = os.path.join(tempfile.mkdtemp(), "in.sock")
    for bad in ("0", "abc", "86401"):
        expect_error(["--incoming", "unix:" + sock, "--incoming-timeout", bad],
                     "--incoming-timeout")


def test_incoming_timeout():
    """ferryd's incoming VMs end themselves when no source comes."""
    sock = os.path.join(tempfile.mkdtemp(), "in.sock")
    t = time.monotonic()
    rc, out, err = run_vmm(["--incoming", "unix:" + sock, "--incoming-timeout", "1"])
    took = time.monotonic() - t
    check(rc == 1, f"exit status {rc}, expected 1 ({err!r})")
    check("no migration arrived within 1 s" in err, f"no timeout message: {err!r}")
    check(took < 5, f"took {took:.1f} s")
    print(f"  --incoming-timeout 1: exit 1 after {took:.1f} s")
    # A client that connects and sends nothing does not hold the timeout
    # off (the HELLO wait alone is 10 s).
    for i, extra in enumerate(([], ["--incoming-token", "t"])):
        path = f"{sock}.{i}"
        p = subprocess.Popen([VMM, "--incoming", "unix:" + path, "--incoming-timeout", "1"] +
                             extra, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        t = time.monotonic()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            while s.connect_ex(path) and time.monotonic() - t < 5:
                time.sleep(0.02)
            rc = p.wait(5)
        except subprocess.TimeoutExpired:
            rc = None
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            s.close()
        err = p.stderr.read().decode(errors="replace")
        check(rc == 1 and "no migration arrived within 1 s" in err,
              f"silent client {extra}: exit {rc}, {err!r}")
        print(f"  silent client {' '.join(extra) or '(no token)'}: exit 1 after "
              f"{time.monotonic() - t:.1f} s")


def test_ferryd_no_signalfd():
    """ferryd that cannot read its signals (signalfd fails, injected with
    tests/e2e/fault.c) stops at once with one line: going on would leave
    SIGTERM blocked and never read, a daemon that cannot be stopped."""
    fault = os.path.join(BUILD, "tests", "e2e", "libferry-fault.so")
    tmp = tempfile.mkdtemp()
    env = dict(os.environ, LD_PRELOAD=fault, FERRY_FAULT="signalfd")
    p = subprocess.Popen([os.path.join(BUILD, "src", "ferryd"), "--state-dir", tmp,
                          "--socket", os.path.join(tmp, "sock")], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        rc = p.wait(10 * TIMEOUT_SCALE)
    except subprocess.TimeoutExpired:
        p.terminate()
        try:
            rc = p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
        raise Failure(f"ferryd went on without its signalfd (after SIGTERM: {rc})")
    err = p.stderr.read().decode(errors="replace")
    lines = [l for l in err.splitlines() if l.strip()]
    check(rc == 1, f"exit status {rc}, expected 1 ({err!r})")
    check(len(lines) == 1 and "error" in lines[0] and "signalfd" in lines[0],
          f"expected one error line naming signalfd, got {lines}")
    check(not os.path.exists(os.path.join(tmp, "sock")), "the socket was left behind")
    print(f"  signalfd fails -> {lines[0]}")


def test_no_kvm():
    expect_error(["--kernel", GUEST], "/nonexistent/kvm", env={"FERRY_KVM_DEV": "/nonexistent/kvm"})


if __name__ == "__main__":
    require_kvm()
    run_tests([test_files, test_sizes, test_options, test_incoming_timeout, test_ferryd_no_signalfd,
               test_no_kvm])
