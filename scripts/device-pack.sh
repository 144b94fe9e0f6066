#!/usr/bin/env bash
# Packs what a GPU machine without Node or npm needs to run Basin's benchmarks: this machine's node binary, the
# built bundles (dist/), the `webgpu` package (Dawn, linux-x64 only) and the Vulkan loader. Writes .device/ (ignored;
# about 40 MB, under the 64 MiB a device call may carry). Run it from the repository root after `node scripts/build.mjs`.
# The machine then runs scripts/device-check.sh with `.device` carried.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f dist/cli.js ] || { echo "device-pack: dist/cli.js is missing: run node scripts/build.mjs first" >&2; exit 1; }
[ "$(uname -m)" = x86_64 ] || { echo "device-pack: the GPU machines are x86-64; this machine is $(uname -m)" >&2; exit 1; }
rm -rf .device
mkdir -p .device/debs
gzip -6 -c "$(readlink -f "$(command -v node)")" > .device/node.gz
tar -czf .device/dist.tar.gz dist
# Only the linux-x64 build of Dawn travels (the package holds every platform's).
tar -czf .device/webgpu.tar.gz -C node_modules --exclude='webgpu/dist/darwin-*' --exclude='webgpu/dist/win32-*' --exclude='webgpu/dist/linux-arm64' webgpu
# The Vulkan loader, for machines whose image has none (the NVIDIA driver brings its own ICD).
(cd .device/debs && apt-get download libvulkan1 >/dev/null)
git rev-parse --short HEAD > .device/commit
du -sh .device
