#!/usr/bin/env bash
# Installs what `make test` needs when it is missing: qemu-user-static (arm64
# tests), g++ (the CUDA emulator), binutils (objdump: the AVX emulator),
# Debian's python3-torch, python3-numpy, python3-pil in /usr/bin/python3 (PyTorch/Pillow parity checks),
# python3-onnx (the ONNX checker on exports), nodejs and npm, and
# onnxruntime-node from npm (ONNX export tests). apt-get needs root (or sudo)
# and Debian's package archive; prints what to do otherwise.
set -euo pipefail
need=()
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v g++ >/dev/null || need+=(g++) # the CUDA emulator of make test-engines-emu
command -v objdump >/dev/null || need+=(binutils) # the AVX instruction emulator tests (tensor/*_emu_*)
/usr/bin/python3 -c 'import torch, numpy, PIL' 2>/dev/null || need+=(python3-torch python3-numpy python3-pil)
/usr/bin/python3 -c 'import onnx' 2>/dev/null || need+=(python3-onnx)
{ command -v node && command -v npm; } >/dev/null || need+=(nodejs npm)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if ! command -v apt-get >/dev/null; then
    echo "make test needs: ${need[*]} (Debian package names); install them and rerun" >&2
    exit 1
  fi
  echo "installing test dependencies: ${need[*]}"
  $sudo apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${need[@]}" >/dev/null
fi
# ONNX Runtime for the export tests (package internal/ortnode looks here):
# onnxruntime-node into $MOPECLIP_ORT_NODE_PATH, by default the user cache.
# ONNXRUNTIME_NODE_INSTALL=skip: the CPU library ships in the package; the
# install script would only fetch GPU libraries.
ort_version=1.30.0
ort_modules="${MOPECLIP_ORT_NODE_PATH:-${XDG_CACHE_HOME:-$HOME/.cache}/mopeclip/ort/node_modules}"
if ! NODE_PATH="$ort_modules" node -e "require('onnxruntime-node')" 2>/dev/null; then
  ort_dir=$(dirname "$ort_modules")
  echo "installing onnxruntime-node@$ort_version into $ort_dir"
  mkdir -p "$ort_dir"
  [ -f "$ort_dir/package.json" ] || echo '{"private": true}' >"$ort_dir/package.json"
  (cd "$ort_dir" && ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund --ignore-scripts "onnxruntime-node@$ort_version" >/dev/null)
fi
