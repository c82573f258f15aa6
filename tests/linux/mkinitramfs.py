#!/usr/bin/env python3
"""mkinitramfs.py OUT INIT: writes OUT, an uncompressed newc cpio archive
(the initramfs format Linux unpacks) holding INIT as /init plus the
directories it mounts on and /dev/console, so the kernel can give init a
console without any device node of our own on the build machine. All
entries are root-owned with mtime 0: the same INIT gives the same bytes."""

import os
import stat
import sys


def entry(ino, name, mode, data=b"", rdev=(0, 0)):
    name_b = name.encode() + b"\0"
    fields = [ino, mode, 0, 0, 2 if stat.S_ISDIR(mode) else 1, 0, len(data),
              0, 0, rdev[0], rdev[1], len(name_b), 0]
    hdr = b"070701" + b"".join(b"%08X" % f for f in fields)
    out = hdr + name_b
    out += b"\0" * (-len(out) % 4)
    out += data
    out += b"\0" * (-len(out) % 4)
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: mkinitramfs.py OUT INIT")
    out, init = sys.argv[1:]
    with open(init, "rb") as f:
        init_data = f.read()
    entries = [
        ("dev", stat.S_IFDIR | 0o755, b"", (0, 0)),
        ("dev/console", stat.S_IFCHR | 0o600, b"", (5, 1)),
        ("proc", stat.S_IFDIR | 0o555, b"", (0, 0)),
        ("sys", stat.S_IFDIR | 0o555, b"", (0, 0)),
        ("init", stat.S_IFREG | 0o755, init_data, (0, 0)),
    ]
    blob = b"".join(entry(i + 1, *e) for i, e in enumerate(entries))
    blob += entry(0, "TRAILER!!!", 0)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(blob)
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
