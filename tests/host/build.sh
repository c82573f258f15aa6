#!/usr/bin/env bash
# Builds the test host's kernel and initramfs:  tests/host/build.sh OUTDIR
#   OUTDIR/vmlinuz          Debian's generic kernel (linux-image-amd64's
#                           current dependency: never pinned, never committed)
#   OUTDIR/modules/lib/modules/VER   its modules, depmod'ed here
#   OUTDIR/initrd.img       busybox-static + the modules that mount the root
#   OUTDIR/version          the package it came from
# Everything is fetched here, on the machine: the test host has no network.
# Does nothing when OUTDIR/initrd.img is newer than this script and init.
set -euo pipefail

out=${1:?usage: build.sh OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)

if [ -s "$out/initrd.img" ] && [ -s "$out/vmlinuz" ] &&
   [ "$out/initrd.img" -nt "$here/build.sh" ] && [ "$out/initrd.img" -nt "$here/init" ]; then
	exit 0
fi

for tool in busybox depmod modprobe dpkg-deb apt-get; do
	command -v "$tool" >/dev/null ||
		{ echo "testhost: $tool is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
[ -x /bin/busybox ] && file_is_static=$(ldd /bin/busybox 2>&1 | grep -c "not a dynamic") || true
[ "${file_is_static:-0}" -ge 1 ] ||
	{ echo "testhost: /bin/busybox is not static (install busybox-static)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

meta=linux-image-amd64
resolve() { apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'; }
pkg=$(resolve)
if [ -z "$pkg" ]; then
	apt-get update -qq
	pkg=$(resolve)
fi
[ -n "$pkg" ] || { echo "testhost: cannot resolve $meta" >&2; exit 1; }

if [ "$(cat "$out/version" 2>/dev/null)" != "$pkg" ] || [ ! -s "$out/vmlinuz" ]; then
	echo "testhost: $meta -> $pkg (fetching)"
	(cd "$work" && apt-get download -qq "$pkg" 2>&1 | grep -v "unsandboxed" >&2 || true)
	deb=$(ls "$work"/*.deb 2>/dev/null | head -n1)
	[ -n "$deb" ] || { echo "testhost: downloading $pkg failed" >&2; exit 1; }
	dpkg-deb -x "$deb" "$work/root"
	rm -rf "$out/modules" "$out/vmlinuz" "$out/version"
	mkdir -p "$out/modules/lib"
	mv "$work/root/lib/modules" "$out/modules/lib/modules"
	mv "$work/root"/boot/vmlinuz-* "$out/vmlinuz"
	rm -rf "$work/root" "$deb"
	echo "$pkg" > "$out/version"
fi
kver=$(ls "$out/modules/lib/modules" | head -n1)
depmod -b "$out/modules" "$kver"

# The initramfs: busybox, and the modules (in load order) that the first
# stage needs to mount the machine's root over 9p under an overlay.
rd=$work/initrd
mkdir -p "$rd"/{bin,dev,proc,sys,lower,upper,newroot,modules}
cp /bin/busybox "$rd/bin/busybox"
ln -s busybox "$rd/bin/sh"
: > "$rd/modules/order"
for m in virtio_pci virtio_blk 9pnet_virtio 9p overlay ext4; do
	modprobe -d "$out/modules" -S "$kver" --show-depends "$m" |
	while read -r verb path _; do
		[ "$verb" = insmod ] || continue
		name=$(basename "$path")
		grep -qx "$name" "$rd/modules/order" && continue
		cp "$path" "$rd/modules/$name"
		echo "$name" >> "$rd/modules/order"
	done
done
cp "$here/init" "$rd/init"
chmod 755 "$rd/init"
(cd "$rd" && find . | busybox cpio -o -H newc 2>/dev/null) > "$out/initrd.img.tmp"
mv "$out/initrd.img.tmp" "$out/initrd.img"
echo "testhost: $out/vmlinuz ($pkg), initrd.img ($(wc -l < "$rd/modules/order") modules)"
