#!/usr/bin/env bash
# Fetches Debian's current cloud kernel and extracts its vmlinux (a PVH ELF)
# for the Linux smoke test:  scripts/fetch-linux.sh OUTDIR  ->  OUTDIR/vmlinux
# The version is whatever linux-image-cloud-amd64 depends on today: never
# pinned, never committed. Does nothing when OUTDIR/vmlinux is already there.
set -euo pipefail

out=${1:?usage: fetch-linux.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
[ -s "$out/vmlinux" ] && exit 0

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

meta=linux-image-cloud-amd64
pkg=$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
if [ -z "$pkg" ]; then
	apt-get update -qq
	pkg=$(apt-cache depends "$meta" | awk '/Depends: linux-image-/ {print $2; exit}')
fi
[ -n "$pkg" ] || { echo "fetch-linux: cannot resolve $meta" >&2; exit 1; }
echo "fetch-linux: $meta -> $pkg"

(cd "$work" && apt-get download -qq "$pkg")
dpkg-deb -x "$work"/*.deb "$work/root"
bz=$(ls "$work"/root/boot/vmlinuz-* | head -n1)

# The bzImage's payload is LZ4 (legacy frame, magic 02 21 4c 18), as
# Linux's scripts/extract-vmlinux finds it.
pos=$(grep -abo $'\x02\x21\x4c\x18' "$bz" | head -n1 | cut -d: -f1)
[ -n "$pos" ] || { echo "fetch-linux: no LZ4 payload in $bz" >&2; exit 1; }
tail -c +$((pos + 1)) "$bz" | lz4 -dc > "$work/vmlinux" 2>/dev/null || true
if ! head -c 4 "$work/vmlinux" | grep -q $'\x7fELF'; then
	echo "fetch-linux: extracting vmlinux from $bz failed" >&2
	exit 1
fi
mv "$work/vmlinux" "$out/vmlinux.tmp"
echo "$pkg" > "$out/version"
mv "$out/vmlinux.tmp" "$out/vmlinux"
echo "fetch-linux: $out/vmlinux ($(stat -c %s "$out/vmlinux") bytes)"
