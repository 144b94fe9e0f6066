// `basin bench gpu-wait`: waiting for the GPU with Dawn's polls paced (src/engine/gpu/dawn-polling.ts) against
// Dawn's own polling, which runs one poll per event-loop turn for the whole wait. Both run in one process, on one device, and
// alternate round by round.
//
// What is timed, per case: iterations of "record `products` matmuls of n × n × n, then read one value back",
// which waits for them. A training loop that reads its loss every step waits the same way. Per round: wall time
// and the process's CPU time per iteration. The CPU time counts the driver's threads too: on a software adapter
// they are the GPU. The figure is the median over the rounds, after one warm-up round each.
//
// Cases go from a short wait to a long one. A short wait stays under SPIN_MS, so pacing should not change it:
// `wall_ratio_short` near 1 is the check that short waits lose no latency. A long wait is paced: on a software
// adapter, `wall_ratio_long` and `cpu_ratio_long` show what the spinning cost. On a real GPU every case here is
// short, and the ratios should stay near 1.
import { GpuDevice } from '../src/engine/gpu/device';
import { Runtime } from '../src/engine/gpu/runtime';
import { dawnPollCount, paceDawnPolling, setDawnPollPacing, SPIN_MS } from '../src/engine/gpu/dawn-polling';
import { matmul } from '../src/engine/ops/matmul';
import { fromArray, type Tensor } from '../src/engine/tensor/tensor';
import { Rng } from '../src/engine/data/rng';
import { gitCommit, median } from './report';

export interface GpuWaitBenchOptions {
  json: boolean;
  quick?: boolean;
  /** Tests: two short rounds per case and a 512³ long case (the report's shape, not its figures). */
  tiny?: boolean;
  log: (s: string) => void;
}

interface Case {
  name: 'short' | 'medium' | 'long';
  n: number;
  products: number;
}

const CASES: Case[] = [
  { name: 'short', n: 64, products: 1 },
  { name: 'medium', n: 256, products: 4 },
  { name: 'long', n: 1024, products: 2 },
];

export interface GpuWaitRow {
  case: string;
  n: number;
  products: number;
  iterations: number;
  rounds: number;
  paced_wall_ms: number;
  spin_wall_ms: number;
  /** Spinning's wall time over paced (above 1: pacing is faster). */
  wall_ratio: number;
  paced_cpu_ms: number;
  spin_cpu_ms: number;
  /** Spinning's CPU time over paced (above 1: pacing uses less). */
  cpu_ratio: number;
  /** Dawn polls per iteration. */
  paced_polls: number;
  spin_polls: number;
  what: string;
}

function randomMatrix(rt: Runtime, n: number, seed: number): Tensor {
  const r = new Rng(seed);
  const a = new Float32Array(n * n);
  for (let i = 0; i < a.length; i++) a[i] = r.normal() / Math.sqrt(n);
  return fromArray(rt, a, [n, n]);
}

/** One round: `iterations` × (record the products, read one value back). Wall and CPU ms per iteration, polls. */
async function round(rt: Runtime, a: Tensor, b: Tensor, products: number, iterations: number, paced: boolean): Promise<{ wall: number; cpu: number; polls: number }> {
  setDawnPollPacing(paced);
  const polls0 = dawnPollCount();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) {
    let x = a;
    const made: Tensor[] = [];
    for (let p = 0; p < products; p++) {
      x = matmul(x, b);
      made.push(x);
    }
    await rt.readBytes(x.range(), 4);
    for (const t of made) t.dispose();
  }
  const wall = (performance.now() - t0) / iterations;
  const c = process.cpuUsage(cpu0);
  return { wall, cpu: (c.user + c.system) / 1000 / iterations, polls: (dawnPollCount() - polls0) / iterations };
}

export async function runGpuWaitBench(o: GpuWaitBenchOptions): Promise<object> {
  const gpu = await GpuDevice.create();
  const installed = paceDawnPolling();
  const rt = new Runtime(gpu);
  const rows: GpuWaitRow[] = [];
  const rounds = o.tiny ? 2 : o.quick ? 3 : 7;
  const roundMs = o.tiny ? 30 : o.quick ? 300 : 1000;
  const cases = o.tiny ? CASES.map((c) => (c.name === 'long' ? { ...c, n: 512, products: 1 } : c)) : CASES;
  try {
    for (const c of cases) {
      const a = randomMatrix(rt, c.n, 1);
      const b = randomMatrix(rt, c.n, 2);
      try {
        // Warm-up (compiles, pools) and the iteration count that fills a round.
        await round(rt, a, b, c.products, 2, true);
        const probe = await round(rt, a, b, c.products, 3, true);
        await round(rt, a, b, c.products, 3, false);
        const iterations = Math.max(3, Math.min(2000, Math.round(roundMs / Math.max(probe.wall, 0.01))));
        const paced: { wall: number; cpu: number; polls: number }[] = [];
        const spin: typeof paced = [];
        for (let r = 0; r < rounds; r++) {
          for (const p of r % 2 === 0 ? [true, false] : [false, true]) (p ? paced : spin).push(await round(rt, a, b, c.products, iterations, p));
        }
        const m = (xs: typeof paced, k: 'wall' | 'cpu' | 'polls') => median(xs.map((x) => x[k]));
        const row: GpuWaitRow = {
          case: c.name,
          n: c.n,
          products: c.products,
          iterations,
          rounds,
          paced_wall_ms: m(paced, 'wall'),
          spin_wall_ms: m(spin, 'wall'),
          wall_ratio: m(spin, 'wall') / m(paced, 'wall'),
          paced_cpu_ms: m(paced, 'cpu'),
          spin_cpu_ms: m(spin, 'cpu'),
          cpu_ratio: m(spin, 'cpu') / m(paced, 'cpu'),
          paced_polls: m(paced, 'polls'),
          spin_polls: m(spin, 'polls'),
          what: `${c.products} matmul(s) of ${c.n}³ then a 4-byte readback, ${iterations} per round; medians over ${rounds} rounds each, alternating`,
        };
        rows.push(row);
        o.log(`  ${c.name}: paced ${row.paced_wall_ms.toFixed(2)} ms (${row.paced_cpu_ms.toFixed(2)} CPU ms), spinning ${row.spin_wall_ms.toFixed(2)} ms (${row.spin_cpu_ms.toFixed(2)} CPU ms) per iteration`);
      } finally {
        a.dispose();
        b.dispose();
      }
    }
  } finally {
    setDawnPollPacing(installed);
    gpu.destroy();
  }
  const info = gpu.info;
  const by = (n: string) => rows.find((r) => r.case === n);
  return {
    bench: 'gpu-wait',
    when: new Date().toISOString(),
    commit: gitCommit(),
    device: { vendor: info.vendor, description: info.description, backend: info.backend, fallback: info.fallback },
    peers: [`Dawn's own polling (one poll per event-loop turn), same process and device; pacing starts after ${SPIN_MS} ms of a wait`],
    rows,
    headline: {
      wall_ratio_long: by('long')?.wall_ratio ?? null,
      cpu_ratio_long: by('long')?.cpu_ratio ?? null,
      wall_ratio_short: by('short')?.wall_ratio ?? null,
    },
  };
}

export function formatGpuWaitReport(report: object): string {
  const r = report as { rows: GpuWaitRow[]; headline: Record<string, number | null>; device: { description: string; fallback: boolean }; commit: string | null };
  const out: string[] = [];
  out.push(`waiting for the GPU, Dawn's polls paced vs spinning, on ${r.device.description}${r.device.fallback ? ' (software)' : ''}, commit ${r.commit ?? 'n/a'}`);
  out.push('case     n     products  paced ms  spin ms  wall ×  paced CPU ms  spin CPU ms  CPU ×  polls/iter paced · spin');
  for (const x of r.rows) {
    out.push(
      `${x.case.padEnd(8)} ${String(x.n).padStart(5)} ${String(x.products).padStart(9)}  ${x.paced_wall_ms.toFixed(2).padStart(8)}  ${x.spin_wall_ms.toFixed(2).padStart(7)}  ${x.wall_ratio.toFixed(2).padStart(6)}  ${x.paced_cpu_ms.toFixed(2).padStart(12)}  ${x.spin_cpu_ms.toFixed(2).padStart(11)}  ${x.cpu_ratio.toFixed(2).padStart(5)}  ${x.paced_polls.toFixed(0)} · ${x.spin_polls.toFixed(0)}`,
    );
  }
  out.push(`headline: ${Object.entries(r.headline).map(([k, v]) => `${k} = ${v === null ? 'n/a' : v.toFixed(2)}`).join(', ')}`);
  out.push('ratios: spinning over paced (above 1: pacing is faster or uses less CPU)');
  return out.join('\n');
}
