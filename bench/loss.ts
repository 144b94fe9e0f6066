// `basin bench loss [--quick] [--json]`: the recommender losses' training step (loss forward + backward into the
// hidden states and the item table; the sampled ones draw their own negatives on the GPU inside the step) and
// its peak GPU memory, for full cross-entropy (the head's logits + the fused CE kernel), sampled softmax
// (K = 256, uniform, logQ), CCE and CCE− (K = 256), at catalogs of 10 k, 100 k and 1 M items, 4 k tokens (1 k with
// --quick), d = 64, no bias (a SASRec-style shared item table).
//
// Memory: the buffer pool's high-water mark (live + pooled + released-but-pending bytes) over the first step of a
// case, after the pool is emptied; it includes the inputs (X, E) and their gradients, which every loss needs.
// Time: median of several steady-state steps (one warm-up excluded), each timed from recording to the GPU's idle.
// Full CE keeps all its logits; above one storage binding it forms them in pieces of rows (the row's note says so),
// and a case that cannot run says why (not even 64 rows of logits fit one binding: it reports the bytes), and on
// a software adapter a case whose estimated time (from the rate the method reached on a smaller catalog) exceeds
// the budget is skipped with its estimate. Every figure in the report is measured.
import * as path from 'node:path';
import { backward } from '../src/engine/autograd/tape';
import { GpuDevice } from '../src/engine/gpu/device';
import { Runtime } from '../src/engine/gpu/runtime';
import { Tensor, fromArray, tidy, fmtBytes } from '../src/engine/tensor/tensor';
import { Rng } from '../src/engine/data/rng';
import { linear } from '../src/engine/ops/matmul';
import { headRowsPerPiece } from '../src/engine/ops/loss';
import { makeLoss } from '../src/engine/loss/registry';
import type { LossConfig } from '../src/files/registry/losses';
import type { OutputHead } from '../src/engine/nn/models';
import { gitCommit, median } from './report';

export interface LossBenchOptions {
  json: boolean;
  quick?: boolean;
  log: (s: string) => void;
  /** Catalog sizes (default 10 k, 100 k, 1 M). */
  catalogs?: number[];
  tokens?: number;
  /** Per-case time budget on a software adapter, ms (default 120 000; 40 000 with --quick). */
  budgetMs?: number;
}

export interface LossRow {
  case: string;
  loss: string;
  items: number;
  tokens: number;
  d: number;
  ms_per_step: number | null;
  peak_bytes: number | null;
  loss_value: number | null;
  why?: string;
  /** How the case ran when that matters to its figures (CE's logits in pieces). */
  note?: string;
}

const D = 64;
const K = 256;
/** The headline cases' budget on a software adapter, in units of the per-case budget. */
const HEADLINE_BUDGET_FACTOR = 6;

interface Method {
  name: string;
  cfg: LossConfig | null; // null: full CE through the head's logits
  /** Multiply-adds of one step, for the too-slow estimate. */
  flops: (n: number, v: number) => number;
}

const METHODS: Method[] = [
  { name: 'ce', cfg: null, flops: (n, v) => 3 * 2 * n * v * D },
  { name: 'sampled-ce', cfg: { type: 'sampled-softmax', negatives: K, sampler: 'uniform', logQ: true, seed: 1 }, flops: (n) => 3 * 2 * n * (K + 1) * D },
  { name: 'cce', cfg: { type: 'cce', gradFilter: 0 }, flops: (n, v) => 5 * 2 * n * v * D },
  { name: 'cce-minus', cfg: { type: 'cce-minus', negatives: K, sampler: 'uniform', seed: 1 }, flops: (n) => 3 * 2 * n * (K + 1) * D },
];


export async function runLossBench(opts: LossBenchOptions): Promise<object> {
  const gpu = await GpuDevice.create();
  const rt = new Runtime(gpu);
  const info = gpu.info;
  const tokens = opts.tokens ?? (opts.quick ? 1024 : 4096);
  const catalogs = opts.catalogs ?? [10_000, 100_000, 1_000_000];
  const reps = opts.quick ? 2 : 3;
  const budget = opts.budgetMs ?? (opts.quick ? 40_000 : 120_000);
  const rows: LossRow[] = [];
  /** GFLOP/s each method reached on its last measured catalog (for the too-slow estimate). */
  const rate = new Map<string, number>();
  const rng = new Rng(7);
  const randn = (n: number, scale: number) => {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = scale * rng.normal();
    return a;
  };
  const xData = randn(tokens * D, 1);
  const tData = Int32Array.from({ length: tokens }, () => 1 + rng.int(catalogs[0] - 1));

  for (const v of catalogs) {
    const eData = randn(v * D, 0.05);
    const targets = Int32Array.from(tData, (t) => 1 + (t % (v - 1)));
    for (const m of METHODS) {
      const label = `${m.name} V=${v}`;
      const row: LossRow = { case: `${m.name}_${v}`, loss: m.name, items: v, tokens, d: D, ms_per_step: null, peak_bytes: null, loss_value: null };
      rows.push(row);
      const logitBytes = tokens * v * 4;
      if (!m.cfg) {
        // Full CE keeps every logit for its backward; above one binding it forms them in pieces of rows
        // (ops/loss.ts crossEntropyOverHead): the same loss and the same bytes, no single binding holding them.
        const per = headRowsPerPiece(rt.maxBindingBytes, v);
        if (per === 0) {
          row.why = `needs the logits [${tokens}, ${v}] (${fmtBytes(logitBytes)}), and not even 64 rows of them (${fmtBytes(64 * v * 4)}) fit one storage binding of this adapter (${fmtBytes(rt.maxBindingBytes)})`;
          opts.log(`${label}: cannot run (${row.why})`);
          continue;
        }
        if (logitBytes > rt.maxBindingBytes) row.note = `logits (${fmtBytes(logitBytes)}) in ${Math.ceil(tokens / per)} pieces of ≤ ${per} rows: above one binding (${fmtBytes(rt.maxBindingBytes)})`;
      }
      const r = rate.get(m.name);
      // The headline's two cases get a longer budget and as few as one timed step after the warm-up: without them
      // there is no headline, and the ratio is what the bench is for.
      const headlineCase = v === 100_000 && (m.name === 'ce' || m.name === 'cce-minus');
      const caseBudget = headlineCase ? HEADLINE_BUDGET_FACTOR * budget : budget;
      const minSteps = headlineCase ? 2 : reps + 1;
      if (info.fallback && r) {
        const est = (m.flops(tokens, v) / (r * 1e9)) * 1000 * minSteps;
        if (est > caseBudget) {
          row.why = `too slow on this software adapter: about ${(est / 1000).toFixed(0)} s for ${minSteps} steps at the ${r.toFixed(1)} GFLOP/s it reached on a smaller catalog (budget ${caseBudget / 1000} s)`;
          opts.log(`${label}: skipped (${row.why})`);
          continue;
        }
      }
      opts.log(`${label}: running`);
      // Fresh pool: the high-water mark of this case only. The previous case's buffers were released after its
      // last submit and nothing recorded since uses them: hand them to the pool (a flush with no work does not)
      // and destroy them, so they do not count as pending bytes here.
      await rt.sync();
      rt.pool.onSubmit();
      rt.pool.trim();
      rt.pool.resetPeak();
      const x = fromArray(rt, xData, [tokens, D]);
      const e = fromArray(rt, eData, [v, D]);
      const t = fromArray(rt, targets, [tokens], 'i32');
      x.requiresGrad = true;
      e.requiresGrad = true;
      const head: OutputHead = { weight: e, bias: null, logits: (h: Tensor) => linear(h, e) };
      const lossFn = m.cfg ? makeLoss(m.cfg) : makeLoss({ type: 'cross-entropy' });
      const step = async (): Promise<number> => {
        const loss = tidy(() => {
          const out = lossFn(x, head, { targets: t }, { training: true });
          backward(out.loss);
          return out.loss;
        });
        const value = await loss.item();
        await rt.sync();
        loss.dispose();
        return value;
      };
      try {
        const w0 = performance.now();
        row.loss_value = await step();
        const warm = performance.now() - w0;
        row.peak_bytes = rt.pool.snapshot().peakTotalBytes;
        const times: number[] = [];
        // On a software adapter, as many timed steps as the budget allows (up to reps).
        const timedSteps = info.fallback ? Math.min(reps, Math.floor((caseBudget - warm) / warm)) : reps;
        if (timedSteps < 1) {
          // No smaller catalog told us the rate: the warm-up step alone (pipeline compiles included) is the figure.
          row.ms_per_step = warm;
          row.why = `one step only (warm-up included): another would exceed the ${caseBudget / 1000} s budget on this software adapter`;
          rate.set(m.name, m.flops(tokens, v) / (warm * 1e6));
          opts.log(`${label}: ${warm.toFixed(1)} ms for its only step, peak ${fmtBytes(row.peak_bytes)}`);
          continue;
        }
        if (timedSteps < reps) row.note = [row.note, `${timedSteps} timed step${timedSteps > 1 ? 's' : ''} (budget)`].filter(Boolean).join('; ');
        for (let i = 0; i < timedSteps; i++) {
          const t0 = performance.now();
          await step();
          times.push(performance.now() - t0);
        }
        row.ms_per_step = median(times);
        rate.set(m.name, m.flops(tokens, v) / (row.ms_per_step * 1e6));
        opts.log(`${label}: ${row.ms_per_step.toFixed(1)} ms/step, peak ${fmtBytes(row.peak_bytes)}, loss ${row.loss_value.toFixed(4)}`);
      } catch (err) {
        row.why = `failed: ${(err as Error).message.split('\n')[0]}`;
        opts.log(`${label}: ${row.why}`);
      } finally {
        for (const u of [x.grad, e.grad, x, e, t]) u?.dispose();
      }
    }
  }
  rt.pool.trim();

  const at = (name: string, v: number) => rows.find((r) => r.loss === name && r.items === v);
  const ratio = (a: number | null | undefined, b: number | null | undefined) => (a && b ? a / b : null);
  const ce100 = at('ce', 100_000);
  const cm100 = at('cce-minus', 100_000);
  const headline = {
    cce_minus_memory_vs_ce_100k: ratio(ce100?.peak_bytes, cm100?.peak_bytes),
    cce_minus_speed_vs_ce_100k: ratio(ce100?.ms_per_step, cm100?.ms_per_step),
    ...(ce100?.why ? { why: `CE at 100 k: ${ce100.why}` } : {}),
  };
  return {
    bench: 'loss',
    when: new Date().toISOString(),
    commit: gitCommit(),
    device: { vendor: info.vendor, description: info.description, backend: info.backend, fallback: info.fallback },
    peers: [],
    timed: `one training step of the loss: forward + backward into X [${tokens}, ${D}] and the item table [V, ${D}] (negatives drawn inside the step), median of ${reps} after one warm-up (fewer where a row says so)`,
    rows,
    headline,
  };
}

export function formatLossReport(report: object): string {
  const r = report as { device: { description: string; backend: string; fallback: boolean }; commit: string | null; rows: LossRow[]; headline: Record<string, number | string | null>; timed: string };
  const out: string[] = [];
  out.push(`loss step on ${r.device.description} [${r.device.backend}${r.device.fallback ? ', software' : ''}], commit ${r.commit ?? 'n/a'}`);
  out.push(`timed: ${r.timed}`);
  out.push('');
  out.push(`${'loss'.padEnd(11)} ${'items'.padStart(9)} ${'tokens'.padStart(7)} ${'ms/step'.padStart(10)} ${'peak'.padStart(11)}  note`);
  for (const row of r.rows) {
    const ms = row.ms_per_step === null ? '—' : row.ms_per_step.toFixed(1);
    const peak = row.peak_bytes === null ? '—' : fmtBytes(row.peak_bytes);
    out.push(`${row.loss.padEnd(11)} ${String(row.items).padStart(9)} ${String(row.tokens).padStart(7)} ${ms.padStart(10)} ${peak.padStart(11)}  ${[row.note, row.why].filter(Boolean).join('; ')}`);
  }
  out.push('');
  for (const [k, v] of Object.entries(r.headline)) out.push(`${k}: ${typeof v === 'number' ? v.toFixed(2) : v ?? 'null'}`);
  return out.join('\n');
}
