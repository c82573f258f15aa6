#!/usr/bin/env python3
"""Check the records the test guest's disk writer (ferry.disk-writer) left
on a raw disk image: the records of one boot (its nonce) must form one
unbroken run, as the writer keeps a single request in flight.

usage: check-disk-records.py IMAGE [--nonce HEX]

The record layout is in guest/README.md ("Disk records"). Without --nonce
the records checked are those of the latest boot: a boot starts writing at
slot 0, so the record in slot 0 names it.

With B the newest sequence number of that nonce and N the number of slots
(image bytes / 4096), the records must be exactly the sequence numbers
max(1, B - N + 1) .. B, each in slot (seq - 1) mod N, with the right
checksum and fill. Prints "records=N first_seq=A last_seq=B ok" and exits
0, or names the first problem and exits 1 (2: usage or I/O error).
"""

import argparse
import hashlib
import struct
import sys

REC = 4096
MAGIC = 0x4345525952524546  # "FERRYREC"
STEP = 0x9e3779b97f4a7c15
M64 = (1 << 64) - 1
FILL_WORDS = 507  # words 4 .. 510; word 511 is the checksum


def mix64(x):
    x ^= x >> 30
    x = (x * 0xbf58476d1ce4e5b9) & M64
    x ^= x >> 27
    x = (x * 0x94d049bb133111eb) & M64
    return x ^ (x >> 31)


def fill_bytes(nonce, seq):
    f = mix64((nonce + seq * STEP) & M64)
    return struct.pack(f"<{FILL_WORDS}Q", *((f + i * STEP) & M64 for i in range(FILL_WORDS)))


def parse(rec):
    """(nonce, seq, slot, checksum ok) of a record with the magic, or None."""
    magic, nonce, seq, slot = struct.unpack_from("<4Q", rec)
    if magic != MAGIC:
        return None
    ok = hashlib.sha256(rec[:REC - 8]).digest()[:8] == rec[REC - 8:]
    return nonce, seq, slot, ok


def check(data, nonce):
    nslots = len(data) // REC
    if nslots == 0:
        return "image smaller than one record"
    if nonce is None:
        first = parse(data[:REC])
        if first is None:
            return "no record in slot 0 (and no --nonce given)"
        nonce = first[0]
    by_seq = {}
    for slot in range(nslots):
        rec = data[slot * REC:(slot + 1) * REC]
        p = parse(rec)
        if p is None or p[0] != nonce:
            continue
        _, seq, rslot, ok = p
        if not ok:
            return f"slot {slot}: bad checksum (seq {seq})"
        if seq == 0 or rslot != slot or (seq - 1) % nslots != slot:
            return f"slot {slot}: holds seq {seq} claiming slot {rslot}"
        if seq in by_seq:
            return f"seq {seq} twice (slots {by_seq[seq]} and {slot})"
        if rec[32:REC - 8] != fill_bytes(nonce, seq):
            return f"slot {slot}: fill of seq {seq} is wrong"
        by_seq[seq] = slot
    if not by_seq:
        return f"no record of nonce {nonce:x}"
    last = max(by_seq)
    first = max(1, last - nslots + 1)
    for seq in range(first, last + 1):
        if seq not in by_seq:
            return (f"seq {seq} missing from slot {(seq - 1) % nslots} "
                    f"(records {first}..{last} expected)")
    if min(by_seq) != first:
        return f"seq {min(by_seq)} survives below the oldest possible {first}"
    print(f"records={len(by_seq)} first_seq={first} last_seq={last} nonce={nonce:x} ok")
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("image")
    ap.add_argument("--nonce", type=lambda s: int(s, 16))
    a = ap.parse_args()
    try:
        with open(a.image, "rb") as f:
            data = f.read()
    except OSError as e:
        print(f"check-disk-records: {a.image}: {e.strerror}", file=sys.stderr)
        return 2
    err = check(data, a.nonce)
    if err:
        print(f"check-disk-records: FAIL: {err}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
