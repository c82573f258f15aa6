#!/usr/bin/env bash
# Fetches Debian's current cloud kernel and extracts from its one package,
# for the Linux smoke test and the Linux agent (guest/linux):
#   OUTDIR/vmlinux                    its vmlinux (a PVH ELF)
#   OUTDIR/modules/lib/modules/VER/   its modules, depmod'ed here (Debian
#                                     ships no modules.dep)
#   OUTDIR/version                    the package
# usage: scripts/fetch-linux.sh OUTDIR
# The version is whatever linux-image-cloud-amd64 depends on today: never
# pinned, never committed. Does nothing when vmlinux and modules.dep are
# already there; an OUTDIR with a vmlinux and no modules (fetched before the
# agent wanted them) is fetched again whole, so that the kernel and its
# modules always come from the same package.
set -euo pipefail

out=${1:?usage: fetch-linux.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ -s "$out/vmlinux" ] && ls "$out"/modules/lib/modules/*/modules.dep >/dev/null 2>&1; then
	exit 0
fi

depmod=$(command -v depmod || echo /sbin/depmod)
[ -x "$depmod" ] || { echo "fetch-linux: depmod is missing (kmod; scripts/setup.sh installs it)" >&2; exit 1; }
# Inside OUTDIR: the results are moved into place, not copied.
work=$(mktemp -d "$out/.fetch.XXXXXX")
trap 'rm -rf "$work"' EXIT

meta=linux-image-cloud-amd64
pkg=$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
if [ -z "$pkg" ]; then
	apt-get update -qq
	pkg=$(apt-cache depends "$meta" | awk '/Depends: linux-image-/ {print $2; exit}')
fi
[ -n "$pkg" ] || { echo "fetch-linux: cannot resolve $meta" >&2; exit 1; }
echo "fetch-linux: $meta -> $pkg"

# As root apt warns that it downloads unsandboxed (OUTDIR is not _apt's).
(cd "$work" && apt-get download -qq "$pkg" 2>&1 | grep -v "unsandboxed" >&2 || true)
deb=$(ls "$work"/*.deb 2>/dev/null | head -n1)
[ -n "$deb" ] || { echo "fetch-linux: downloading $pkg failed" >&2; exit 1; }
dpkg-deb -x "$deb" "$work/root"
rm -f "$deb"
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

# The modules: under lib/ (Debian 12) or usr/lib/ (merged /usr), moved to
# OUTDIR/modules/lib/modules, where depmod -b looks.
mods=$work/root/lib/modules
[ -d "$mods" ] || mods=$work/root/usr/lib/modules
kver=$(ls "$mods" 2>/dev/null | head -n1)
[ -n "$kver" ] || { echo "fetch-linux: no modules in $pkg" >&2; exit 1; }
mkdir -p "$work/modules/lib"
mv "$mods" "$work/modules/lib/modules"
"$depmod" -b "$work/modules" "$kver"

# vmlinux last: with modules.dep it marks a complete OUTDIR.
rm -rf "$out/vmlinux" "$out/modules"
mv "$work/modules" "$out/modules"
echo "$pkg" > "$out/version"
mv "$work/vmlinux" "$out/vmlinux"
echo "fetch-linux: $out/vmlinux ($(stat -c %s "$out/vmlinux") bytes), modules of $kver"
