#!/usr/bin/env bash
# The GPU session's checks, run on a device machine with `.device` carried (scripts/device-pack.sh made it):
#   basin bench gpu-wait --quick --json  Dawn's polls paced vs spinning on a real GPU (short waits must not slow)
#   basin bench merge --quick --json     3 × 48 × [1024, 1024] bf16
#   basin bench merge --json             3 × 32 × [4096, 4096] bf16 (1.07 GB each): issue 14's headline
#   the same with BASIN_GPU_POLL=spin    Dawn's own polling: whether pacing the polls (1 ms once a wait passes 2 ms)
#                                        costs the merge time on a real GPU (last, so a timeout loses only it)
# Each report goes to $OUT (or ./device-out) as <bench>.txt: the table and progress, the JSON on the last line.
# BASIN_DEVICE_ONLY="gpu-wait merge-quick" runs a subset; BASIN_DEVICE_SKIP_DEBS=1 keeps the system's Vulkan loader.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-device-out}"
mkdir -p "$out"
[ -d .device ] || { echo "device-check: .device is missing (run scripts/device-pack.sh here and carry .device)" >&2; exit 1; }
if [ -z "${BASIN_DEVICE_SKIP_DEBS:-}" ] && ! ldconfig -p | grep -q libvulkan.so.1; then
  for f in .device/debs/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
bin="$(mktemp -d)"
gzip -dc .device/node.gz > "$bin/node" && chmod +x "$bin/node"
export PATH="$bin:$PATH"
rm -rf dist && tar -xzf .device/dist.tar.gz
mkdir -p node_modules && rm -rf node_modules/webgpu && tar -xzf .device/webgpu.tar.gz -C node_modules
nv=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$nv" ]; then export VK_DRIVER_FILES="$nv"; fi
echo "device-check: node $(node --version), packed at $(cat .device/commit), $(nproc) cores"
(command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader) || true
node bin/basin.js gpu-info 2>&1 | tee "$out/gpu.txt" || true
only="${BASIN_DEVICE_ONLY:-gpu-wait merge-quick merge merge-spin}"
status=0
for b in $only; do
  case "$b" in
    gpu-wait) args=(bench gpu-wait --quick --json) ;;
    merge-quick) args=(bench merge --quick --json) ;;
    merge | merge-spin) args=(bench merge --json) ;;
    *) echo "device-check: unknown check $b" >&2; status=2; continue ;;
  esac
  echo "device-check: basin ${args[*]}"
  t0=$(date +%s)
  poll=paced
  [ "$b" = merge-spin ] && poll=spin
  BASIN_GPU_POLL=$poll node bin/basin.js "${args[@]}" > "$out/$b.txt" 2>&1 || { echo "device-check: $b failed (exit $?)"; status=1; }
  echo "device-check: $b took $(( $(date +%s) - t0 )) s"
  # The headline of the JSON report on the last line (the whole report stays in the file).
  # For the merge benches also each method's row: time, ratio, read amplification, the JS thread's CPU and GC.
  tail -n 1 "$out/$b.txt" | node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => { try { const r = JSON.parse(s); console.log(JSON.stringify(r.headline)); for (const x of r.rows ?? []) if ("main_thread_cpu_s" in x) console.log(JSON.stringify({ case: x.case, seconds: x.seconds, ratio: x.ratio_vs_read_bound, read_x: x.read_amplification, main_cpu_s: x.main_thread_cpu_s, gc_ms: x.gc_ms, polls: x.dawn_polls, ratio_cap_main: x.ratio_cap_main_thread })); } catch { console.log("no JSON report; the end of the log:"); } })'
  tail -n 5 "$out/$b.txt" | cut -c1-300 | grep -v '^{' || true
done
exit $status
