#!/usr/bin/env bash
# Installs the system packages Basin needs on Debian/Ubuntu (run as root):
# a Vulkan driver (Mesa lavapipe when there is no GPU), and for the test tiers Chromium and libkrb5-dev
# (code-server's native modules). Idempotent: skips what is already there.
#   --torch  PyTorch on the CPU, the peer of `basin bench train-step` / `bench matmul` and of the parity tier
#            (test/torch/): Debian's python3-torch and libopenblas0-pthread. Without OpenBLAS Debian's torch
#            runs on the reference BLAS (libblas.so.3 alternative), tens of times slower: the benchmark reports
#            which BLAS it loaded.
#   --tests  everything the test tiers need (includes --torch).
set -euo pipefail
want_tests=0
want_torch=0
for arg in "$@"; do
  case "$arg" in
    --tests) want_tests=1; want_torch=1 ;;
    --torch) want_torch=1 ;;
    *) echo "setup-system.sh: unknown option $arg (known: --tests, --torch)" >&2; exit 2 ;;
  esac
done

need_apt_update=1
apt_update() { if [ $need_apt_update = 1 ]; then apt-get update -qq; need_apt_update=0; fi; }
export DEBIAN_FRONTEND=noninteractive

lavapipe_ok() {
  # Dawn needs Mesa >= 23 lavapipe (Debian 12's 22.3 is rejected); any vendor ICD is fine too.
  ls /usr/share/vulkan/icd.d/*.json >/dev/null 2>&1 || return 1
  if ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 && ! ls /usr/share/vulkan/icd.d/ | grep -qv lvp; then
    local v; v=$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || echo 0)
    dpkg --compare-versions "$v" ge 23 || return 1
  fi
  ldconfig -p | grep -q 'libvulkan.so.1'
}

if ! lavapipe_ok; then
  . /etc/os-release
  if [ "${ID:-}" = debian ] && [ "${VERSION_CODENAME:-}" = bookworm ]; then
    # backports from the mirror (or proxy) this machine's apt sources already use: never a hard-coded host.
    . "$(dirname "${BASH_SOURCE[0]}")/apt-mirror.sh"
    mirror=$(apt_mirror_uri bookworm)
    echo "deb $mirror bookworm-backports main" > /etc/apt/sources.list.d/basin-backports.list
    echo "bookworm-backports from $mirror (for Mesa's lavapipe)"
    apt_update
    apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
  else
    apt_update
    apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
  fi
fi

if [ $want_tests = 1 ]; then
  pk=()
  [ -x /usr/lib/chromium/chromium ] || pk+=(chromium)
  dpkg -s libkrb5-dev >/dev/null 2>&1 || pk+=(libkrb5-dev)
  # code-server's native modules compile with node-gyp (scripts/setup-vscode-test.sh)
  { command -v make && command -v g++; } >/dev/null 2>&1 || pk+=(build-essential)
  command -v python3 >/dev/null 2>&1 || pk+=(python3)
  dpkg -s xauth >/dev/null 2>&1 || true
  if [ ${#pk[@]} -gt 0 ]; then apt_update; apt-get install -y -qq "${pk[@]}" >/dev/null; fi
fi
if [ $want_torch = 1 ]; then
  pk=()
  command -v python3 >/dev/null 2>&1 || pk+=(python3)
  dpkg -s python3-torch >/dev/null 2>&1 || pk+=(python3-torch)
  dpkg -s libopenblas0-pthread >/dev/null 2>&1 || pk+=(libopenblas0-pthread)
  # No recommends: they bring a C++ toolchain, Qt and OpenCV development packages the peer does not use.
  if [ ${#pk[@]} -gt 0 ]; then
    apt_update
    # On bookworm with Mesa from backports, its newer libelf1 conflicts with main's libdw1 (torch's dependency
    # chain pins libelf1 = 0.188): let apt take such libraries from backports too.
    if ! apt-get install -y -qq --no-install-recommends "${pk[@]}" >/dev/null 2>&1; then
      if [ -f /etc/apt/sources.list.d/basin-backports.list ]; then
        apt-get install -y -qq --no-install-recommends -t bookworm-backports "${pk[@]}" >/dev/null
      else
        apt-get install -y -qq --no-install-recommends "${pk[@]}" >/dev/null
      fi
    fi
  fi
fi
echo "system packages ready"
