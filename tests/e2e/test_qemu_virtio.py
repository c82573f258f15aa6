"""The test guest's PCI, virtio-pci (modern) and virtio-blk drivers against
QEMU's virtio-blk-pci, a device we did not write: the digest of a random
image read through the driver equals hashlib's, the serial comes through
GET_ID, a read-only disk refuses a write, and the record writer leaves an
unbroken run of records that scripts/check-disk-records.py accepts.

QEMU's qboot leaves PCI BARs unassigned, so these boots use SeaBIOS
(~3-4 s on kvm_pvm)."""

import hashlib
import importlib.util
import os
import shutil
import struct
import subprocess
import sys
import tempfile

from ferrytest import *

HERE = os.path.dirname(os.path.abspath(__file__))
RUN_QEMU = os.path.join(HERE, "..", "..", "guest", "run-qemu.sh")
CHECK_RECORDS = os.path.join(HERE, "..", "..", "scripts", "check-disk-records.py")
IMAGE_BYTES = 16 << 20
SERIAL = "ferry0"


def workdir():
    """On a file system that takes O_DIRECT (cache=none): not tmpfs."""
    return tempfile.TemporaryDirectory(prefix="ferry-qemu-virtio-", dir="/var/tmp")


def make_image(tmp):
    path = os.path.join(tmp, "disk.img")
    with open(path, "wb") as f:
        f.write(os.urandom(IMAGE_BYTES))
    return path


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def qemu_run(image, cmdline, readonly=False, cpus=2, timeout=60):
    """Boot the guest with `image` as a virtio-blk-pci disk until it powers
    off; returns the console lines."""
    drive = f"if=none,id=d0,file={image},format=raw,cache=none"
    if readonly:
        drive += ",readonly=on"
    env = dict(os.environ, FERRY_QEMU_ARGS=f"-drive {drive} "
               f"-device virtio-blk-pci,drive=d0,serial={SERIAL}")
    env.pop("FERRY_QEMU_BIOS", None)  # qboot assigns no BARs
    p = subprocess.Popen([RUN_QEMU, GUEST, cmdline, str(cpus), "256"], env=env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    c = Console(p.stdout, "QEMU")
    try:
        c.wait_for(r"ferry-agent poweroff", timeout)
        rc = p.wait(15)
        check(rc == 0, f"QEMU exit status {rc}: {p.stderr.read().decode(errors='replace')}")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    lines = [l for _, l in c.lines]
    check_clean(lines)
    return lines


def find(lines, prefix):
    hits = [l[l.index(prefix):] for l in lines if prefix in l]
    check(hits, f"no line starting {prefix!r}; got {lines[:12]}")
    return hits


def check_common(lines, want):
    """want: hashlib's digest of the image as the guest started."""
    pci = find(lines, "ferry-agent pci ")
    check(len(pci) == 1 and " virtio id=2 (blk) " in pci[0], f"pci lines {pci}")
    got = find(lines, "ferry-agent disk=vda bytes=")
    check(got == [f"ferry-agent disk=vda bytes={IMAGE_BYTES} sha256={want}"],
          f"digest line {got}, hashlib says {want}")
    check(find(lines, "ferry-agent disk=vda serial=") == [f"ferry-agent disk=vda serial={SERIAL}"],
          "serial line")
    irqs = find(lines, "ferry-agent disk=vda irqs=")
    print(f"  {pci[0]}\n  {got[0]}\n  {irqs[0]}")
    check(int(irqs[0].split()[2].split("=")[1]) > 0, f"no MSI-X interrupt counted: {irqs}")


def load_checker():
    spec = importlib.util.spec_from_file_location("check_disk_records", CHECK_RECORDS)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def synthetic_image(ck, nonce, nslots, seqs, other=None):
    """Slots of records as the guest writes them; other: a nonce whose
    records 1..nslots lie underneath (an earlier boot)."""
    slots = [bytes(ck.REC)] * nslots
    for n, run in ((other, range(1, nslots + 1)), (nonce, seqs)):
        for seq in run if n is not None else ():
            slot = (seq - 1) % nslots
            head = struct.pack("<4Q", ck.MAGIC, n, seq, slot) + ck.fill_bytes(n, seq)
            slots[slot] = head + hashlib.sha256(head).digest()[:8]
    return b"".join(slots)


def test_checker_synthetic():
    """check-disk-records.py on made-up images: wrap-around, an earlier
    boot underneath, and each kind of damage."""
    ck = load_checker()
    ok = [(range(1, 6), "records=5 first_seq=1 last_seq=5"),
          (range(1, 20), "records=8 first_seq=12 last_seq=19")]
    for seqs, want in ok:
        img = synthetic_image(ck, 0xabc, 8, seqs, other=0x123)
        check(ck.check(img, None) is None, f"{want}: rejected")
    bad = [("missing", [1, 2, 4, 5], "seq 3 missing"),
           ("stale", list(range(1, 9)) + [10], "seq 9 missing")]
    for what, seqs, err in bad:
        got = ck.check(synthetic_image(ck, 0xabc, 8, seqs), 0xabc)
        check(got and err in got, f"{what}: {got!r}")
    img = bytearray(synthetic_image(ck, 0xabc, 8, range(1, 4)))
    img[ck.REC + 200] ^= 1
    got = ck.check(bytes(img), None)
    check(got and "slot 1: bad checksum" in got, f"flipped bit: {got!r}")


def test_digest_and_serial():
    with workdir() as tmp:
        image = make_image(tmp)
        lines = qemu_run(image, "ferry.poweroff=2")
        check_common(lines, sha256_file(image))
        check(not any("readonly=" in l for l in lines), "a writable disk said readonly")


def test_readonly_disk():
    with workdir() as tmp:
        image = make_image(tmp)
        before = sha256_file(image)
        lines = qemu_run(image, "ferry.poweroff=2", readonly=True)
        check_common(lines, before)
        check(find(lines, "ferry-agent disk=vda readonly=") == ["ferry-agent disk=vda readonly=1"],
              "readonly line")
        ro = find(lines, "ferry-agent disk=vda ro_write=")
        check(ro == ["ferry-agent disk=vda ro_write=refused"], f"{ro}")
        check(sha256_file(image) == before, "the read-only image changed")


def test_disk_writer():
    with workdir() as tmp:
        image = make_image(tmp)
        before = sha256_file(image)
        lines = qemu_run(image, "ferry.poweroff=8 ferry.disk-writer=512 ferry.dirty=16@10")
        check_common(lines, before)
        start = find(lines, "ferry-agent disk-writer ")
        check(len(start) == 1 and "disk=vda" in start[0] and "slots=4096" in start[0]
              and "rate_kib=512" in start[0], f"{start}")
        nonce = start[0].split("nonce=")[1].split()[0]
        beats = [l for l in lines if "ferry-agent beat=" in l]
        # ~80 in 8 s; under emulation (the test host) the disk writer and
        # the dirtier leave the heartbeat fewer
        check(len(beats) >= scaled(50, 25), f"{len(beats)} beats")
        for l in beats:
            check(l.rstrip().endswith(" disk_corrupt=0") and " disk_written=" in l,
                  f"beat line {l!r}")
        written = [int(l.split("disk_written=")[1].split()[0]) for l in beats]
        check(all(a <= b for a, b in zip(written, written[1:])), "disk_written went down")
        # 512 KiB/s = 128 records/s; from ready to the last beat ~7 s (under
        # emulation the writer falls far behind: 91 seen)
        check(written[-1] >= scaled(600, 50), f"only {written[-1]} records written")
        r = subprocess.run([sys.executable, CHECK_RECORDS, image, "--nonce", nonce],
                           capture_output=True, text=True)
        print(f"  {beats[-1]}\n  check-disk-records: {r.stdout.strip()}")
        check(r.returncode == 0, f"check-disk-records: {r.stdout}{r.stderr}")
        n = int(r.stdout.split("records=")[1].split()[0])
        check(n >= written[-1], f"{n} records on disk, the guest counted {written[-1]}")
        # without --nonce the checker finds the same boot through slot 0
        r2 = subprocess.run([sys.executable, CHECK_RECORDS, image],
                            capture_output=True, text=True)
        check(r2.returncode == 0 and r2.stdout == r.stdout, f"{r2.stdout}{r2.stderr}")
        # and it does notice a damaged record
        with open(image, "r+b") as f:
            f.seek(4096 * 5 + 100)
            b = f.read(1)
            f.seek(4096 * 5 + 100)
            f.write(bytes([b[0] ^ 1]))
        r3 = subprocess.run([sys.executable, CHECK_RECORDS, image],
                            capture_output=True, text=True)
        check(r3.returncode == 1 and "slot 5" in r3.stdout, f"damage not seen: {r3.stdout}")


if __name__ == "__main__":
    require_kvm()
    if not shutil.which("qemu-system-x86_64"):
        print("SKIP: qemu-system-x86_64 is not installed (scripts/setup.sh installs it)")
        sys.exit(77)
    run_tests([test_checker_synthetic, test_digest_and_serial, test_readonly_disk, test_disk_writer])
