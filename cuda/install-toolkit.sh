#!/usr/bin/env bash
# Installs Debian's CUDA toolkit (nvcc, cuda.h, cublas headers, stub
# libcuda.so) when nvcc is missing. bookworm ships CUDA 11.8 in the non-free
# component; the component is added to the deb822 sources (or the classic
# sources.list) when it is missing. Idempotent; needs root.
set -euo pipefail

if command -v nvcc >/dev/null 2>&1; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "install-toolkit: nvcc is missing and this is not root; install nvidia-cuda-toolkit (non-free)" >&2
	exit 1
fi

# nvidia-cuda-toolkit is in non-free; the driver library it depends on
# (libcuda1) needs nvidia-support from contrib.
changed=0
for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list; do
	[ -f "$f" ] || continue
	before=$(md5sum <"$f")
	for comp in contrib non-free non-free-firmware; do
		if [ "${f##*.}" = sources ]; then
			# deb822: only stanzas of Debian's own archive.
			grep -q 'URIs: .*debian' "$f" || continue
			sed -i -E "/^Components:/{/ $comp( |\$)/!s/\$/ $comp/}" "$f"
		else
			sed -i -E "/^deb .*debian/{/ $comp( |\$)/!s/\$/ $comp/}" "$f"
		fi
	done
	[ "$before" = "$(md5sum <"$f")" ] || changed=1
done
[ "$changed" = 1 ] && echo "install-toolkit: added contrib non-free non-free-firmware to the apt sources"

# Another apt job may hold the dpkg lock: wait for it, never break it.
wait_lock() {
	while fuser /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock >/dev/null 2>&1; do
		echo "install-toolkit: waiting for the dpkg/apt lock" >&2
		sleep 10
	done
}
export DEBIAN_FRONTEND=noninteractive
wait_lock
apt-get update -q
wait_lock
apt-get install -y -q --no-install-recommends -o DPkg::Lock::Timeout=3600 nvidia-cuda-toolkit nvidia-cuda-dev
command -v nvcc
nvcc --version | tail -2
