#!/usr/bin/env python3
"""modules.py FETCH KERNEL_DIR OUT DEPFILE NAME...: the kernel modules the
Linux agent loads, from the same Debian package as KERNEL_DIR/vmlinux.

Runs FETCH KERNEL_DIR (scripts/fetch-linux.sh: it does nothing once the
kernel is there), then reads KERNEL_DIR/modules/lib/modules/VER/modules.dep
and writes, in OUT's directory:

  modules/M.ko   every NAME and every module it depends on, decompressed
                 when the package ships them compressed (.ko.xz, .ko.zst,
                 .ko.gz): finit_module then needs no decompressor
  modules/version  the package they came from (KERNEL_DIR/version)
  OUT            their paths relative to OUT's directory, one a line, in
                 load order: each module after every module it depends on
                 (tests/linux/mkinitramfs.py --modules packs them)
  DEPFILE        OUT depends on KERNEL_DIR/version and vmlinux: a kernel
                 fetched again (or removed) rebuilds the list

A NAME built into the kernel (modules.builtin) is left out; one the kernel
has neither way fails the build, as does a name that is no module."""

import gzip
import lzma
import os
import shutil
import subprocess
import sys

SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")


def mod_name(path):
    """virtio_pci for kernel/drivers/virtio/virtio_pci.ko.xz ('-' is '_')."""
    base = os.path.basename(path)
    for suffix in SUFFIXES:
        if base.endswith(suffix):
            return base[:-len(suffix)].replace("-", "_")
    raise SystemExit(f"modules.py: {path}: not a module file")


def read_dep(moddir):
    """{name: (path relative to moddir, [names it depends on])}."""
    deps = {}
    with open(os.path.join(moddir, "modules.dep")) as f:
        for line in f:
            path, _, rest = line.partition(":")
            deps[mod_name(path)] = (path, [mod_name(p) for p in rest.split()])
    return deps


def read_builtin(moddir):
    try:
        with open(os.path.join(moddir, "modules.builtin")) as f:
            return {mod_name(l.strip()) for l in f if l.strip()}
    except FileNotFoundError:
        return set()


def load_order(names, deps, builtin):
    """The modules to load for names, each after its dependencies."""
    order, seen = [], set()

    def visit(name):
        if name in seen:
            return
        seen.add(name)
        for d in deps[name][1]:
            visit(d)
        order.append(name)

    for name in names:
        name = name.replace("-", "_")
        if name in deps:
            visit(name)
        elif name in builtin:
            print(f"modules.py: {name} is built into the kernel")
        else:
            raise SystemExit(f"modules.py: {name}: no such module in this kernel")
    return order


def decompressed(path):
    """The bytes of a module file, decompressed."""
    if path.endswith(".ko.xz"):
        return lzma.decompress(open(path, "rb").read())
    if path.endswith(".ko.gz"):
        return gzip.decompress(open(path, "rb").read())
    if path.endswith(".ko.zst"):
        if not shutil.which("zstd"):
            raise SystemExit(f"modules.py: {path} needs zstd (apt-get install zstd)")
        return subprocess.run(["zstd", "-dc", path], check=True, capture_output=True).stdout
    return open(path, "rb").read()


def write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def main():
    if len(sys.argv) < 6:
        sys.exit("usage: modules.py FETCH KERNEL_DIR OUT DEPFILE NAME...")
    fetch, kdir, out, depfile = sys.argv[1:5]
    subprocess.run([fetch, kdir], check=True)
    root = os.path.join(kdir, "modules", "lib", "modules")
    kvers = sorted(os.listdir(root))
    if len(kvers) != 1:
        sys.exit(f"modules.py: expected one kernel under {root}, found {kvers}")
    moddir = os.path.join(root, kvers[0])
    deps = read_dep(moddir)
    order = load_order(sys.argv[5:], deps, read_builtin(moddir))

    dst = os.path.join(os.path.dirname(os.path.abspath(out)), "modules")
    shutil.rmtree(dst, ignore_errors=True)
    os.makedirs(dst)
    for name in order:
        write_atomic(os.path.join(dst, name + ".ko"),
                     decompressed(os.path.join(moddir, deps[name][0])))
    shutil.copyfile(os.path.join(kdir, "version"), os.path.join(dst, "version"))
    write_atomic(depfile, f"{out}: {kdir}/version {kdir}/vmlinux\n".encode())
    write_atomic(out, "".join(f"modules/{n}.ko\n" for n in order).encode())
    print(f"modules.py: {' '.join(order)} ({kvers[0]})")


if __name__ == "__main__":
    main()
