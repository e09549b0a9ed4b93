#!/usr/bin/env bash
# Installs what `make test` needs when it is missing: qemu-user-static (arm64
# tests), g++ (the CUDA emulator) and Debian's python3-torch, python3-numpy, python3-pil in
# /usr/bin/python3 (PyTorch/Pillow parity checks). Needs root (or sudo) and
# Debian's package archive; prints what to do otherwise.
set -euo pipefail
need=()
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v g++ >/dev/null || need+=(g++) # the CUDA emulator of make test-engines-emu
/usr/bin/python3 -c 'import torch, numpy, PIL' 2>/dev/null || need+=(python3-torch python3-numpy python3-pil)
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if ! command -v apt-get >/dev/null; then
  echo "make test needs: ${need[*]} (Debian package names); install them and rerun" >&2
  exit 1
fi
echo "installing test dependencies: ${need[*]}"
$sudo apt-get update -q >/dev/null
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need[@]}" >/dev/null
