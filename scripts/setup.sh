#!/usr/bin/env bash
# Install the Debian packages ferry needs to build, test and benchmark
# (busybox-static, kmod and e2fsprogs build and run the test host, tests/host;
# kmod's depmod also orders the Linux agent's modules, scripts/fetch-linux.sh).
# Quiet and quick when everything is already there.
set -euo pipefail

pkgs=(meson ninja-build gcc pkg-config libjson-c-dev libcmocka-dev liburing-dev libxml2-dev
      python3 lz4 binutils iproute2 iputils-ping qemu-system-x86 dpkg-dev
      busybox-static kmod e2fsprogs)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
	echo "setup: missing packages: ${missing[*]} (run as root, or install them)" >&2
	exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
