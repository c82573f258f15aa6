#!/usr/bin/env python3
"""mkinitramfs.py OUT INIT [--modules LIST]: writes OUT, an uncompressed
newc cpio archive (the initramfs format Linux unpacks) holding INIT as /init
plus the directories it mounts on and /dev/console, so the kernel can give
init a console without any device node of our own on the build machine.

With --modules, LIST names kernel module files, one a line, relative to
LIST's directory, in the order they are to be loaded
(guest/linux/modules.py writes it): each goes in as /lib/modules/BASENAME,
and /lib/modules/modules.load lists the basenames in that order.

All entries are root-owned with mtime 0, in a fixed order: the same inputs
give the same bytes."""

import os
import stat
import sys

DIR = stat.S_IFDIR | 0o755
FILE = stat.S_IFREG | 0o644


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


def read(path):
    with open(path, "rb") as f:
        return f.read()


def module_entries(listfile):
    """(name, mode, data, rdev) of /lib/modules and its files."""
    base = os.path.dirname(os.path.abspath(listfile))
    with open(listfile) as f:
        paths = [line.strip() for line in f if line.strip()]
    names = [os.path.basename(p) for p in paths]
    if len(set(names)) != len(names):
        sys.exit(f"mkinitramfs.py: {listfile}: a module name comes twice")
    out = [("lib", DIR, b"", (0, 0)), ("lib/modules", DIR, b"", (0, 0)),
           ("lib/modules/modules.load", FILE, "".join(n + "\n" for n in names).encode(),
            (0, 0))]
    for name, path in zip(names, paths):
        out.append(("lib/modules/" + name, FILE, read(os.path.join(base, path)), (0, 0)))
    return out


def parse_args(argv):
    if len(argv) == 3:
        return argv[1], argv[2], None
    if len(argv) == 5 and argv[3] == "--modules":
        return argv[1], argv[2], argv[4]
    sys.exit("usage: mkinitramfs.py OUT INIT [--modules LIST]")


def main():
    out, init, modules = parse_args(sys.argv)
    entries = [
        ("dev", DIR, b"", (0, 0)),
        ("dev/console", stat.S_IFCHR | 0o600, b"", (5, 1)),
        ("proc", stat.S_IFDIR | 0o555, b"", (0, 0)),
        ("sys", stat.S_IFDIR | 0o555, b"", (0, 0)),
        ("init", stat.S_IFREG | 0o755, read(init), (0, 0)),
    ]
    if modules:
        entries += module_entries(modules)
    blob = b"".join(entry(i + 1, *e) for i, e in enumerate(entries))
    blob += entry(0, "TRAILER!!!", 0)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        f.write(blob)
    os.replace(tmp, out)


if __name__ == "__main__":
    main()
