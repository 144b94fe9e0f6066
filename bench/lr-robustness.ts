// `basin bench lr-robustness`: how much the final validation loss moves when the learning rate is off by up to
// ×10 either way, for AdamW and mao on the same task (the mao paper claims robustness to the learning rate; this
// tests it). Each optimizer trains the demo-like transformer (examples/demo-mao.basin.yaml's model and data) for
// the same steps at lr = multiplier × its registry default, same seed, same schedule, same clipping. The figure is
// the spread (max − min) of the final validation loss over the grid, and the worst-to-best ratio.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseConfig } from '../src/files/config/load';
import { optimizerRegistry } from '../src/files/registry/optimizers';
import type { RegistryEntry } from '../src/files/registry/entry';
import { GpuDevice } from '../src/engine/gpu/device';
import { Runtime } from '../src/engine/gpu/runtime';
import { NonFiniteError, train } from '../src/engine/train/trainer';
import { gitCommit } from './report';

export interface LrRobustnessOptions {
  json: boolean;
  quick?: boolean;
  log(s: string): void;
}

export const LR_MULTIPLIERS = [0.1, 0.3, 1, 3, 10] as const;
const OPTIMIZERS = ['adamw', 'mao'] as const;

export interface LrSpread {
  /** max − min of the final validation loss over the runs that finished; null when none did. */
  spread: number | null;
  /** worst ÷ best final validation loss (≥ 1); null when none finished or the best is not positive. */
  worstOverBest: number | null;
  best: number | null;
  worst: number | null;
  /** Runs that did not finish (non-finite loss): counted, never folded into the spread as a number. */
  diverged: number;
}

/** The spread of final validation losses over a learning-rate grid; null entries are diverged runs. */
export function lrSpread(losses: readonly (number | null)[]): LrSpread {
  const ok = losses.filter((x): x is number => x !== null && Number.isFinite(x));
  const diverged = losses.length - ok.length;
  if (ok.length === 0) return { spread: null, worstOverBest: null, best: null, worst: null, diverged };
  const best = Math.min(...ok);
  const worst = Math.max(...ok);
  return { spread: worst - best, worstOverBest: best > 0 ? worst / best : null, best, worst, diverged };
}

/** AdamW's spread over mao's: > 1 when mao is the more robust (bigger is better for mao, as headlines go). */
export function spreadRatio(adamw: number | null, mao: number | null): number | null {
  if (adamw === null || mao === null || !(mao > 0)) return null;
  return adamw / mao;
}

/** The registry default lr of an optimizer (the grid's ×1). */
export function defaultLr(name: string): number {
  const e = (optimizerRegistry.entries as readonly RegistryEntry[]).find((x) => x.name === name);
  const lr = (e?.params as Record<string, { default?: unknown }> | undefined)?.lr?.default;
  if (typeof lr !== 'number') throw new Error(`optimizer "${name}" has no default lr in src/files/registry/optimizers.ts`);
  return lr;
}

interface Row {
  optimizer: string;
  multiplier: number;
  lr: number;
  validLoss: number | null;
  validAccuracy: number | null;
  seconds: number;
  why?: string;
}

function yaml(optimizer: string, lr: number, steps: number): string {
  // mao at rank 8, as in examples/demo-mao.basin.yaml (every matrix here is 32 wide, so rank 8 is a real compression).
  const opt = optimizer === 'mao' ? `{ type: mao, lr: ${lr}, rank: 8 }` : `{ type: ${optimizer}, lr: ${lr} }`;
  return [
    `name: lr-${optimizer}-${lr}`,
    'seed: 1',
    'model: { type: transformer, vocab: 64, dModel: 32, layers: 2, heads: 4, seqLen: 16, mlpRatio: 4, dropout: 0 }',
    'data: { type: synthetic-sequences, sequences: 2000, length: 17, branching: 3, noise: 0.1, validFraction: 0.1 }',
    `train: { steps: ${steps}, batchSize: 32, optimizer: ${opt}, schedule: { type: cosine, warmup: ${Math.max(1, steps >> 3)}, minLrRatio: 0.1 }, gradClip: 1.0, evalEvery: 0, checkpointEvery: 0, statsEvery: 0, logEvery: 50 }`,
  ].join('\n');
}

export async function runLrRobustnessBench(o: LrRobustnessOptions): Promise<object> {
  const t0 = performance.now();
  const quick = !!o.quick;
  const steps = quick ? 100 : 400;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-lr-robustness-'));
  const gpu = await GpuDevice.create();
  const rt = new Runtime(gpu);
  try {
    const rows: Row[] = [];
    for (const opt of OPTIMIZERS) {
      const lr0 = defaultLr(opt);
      for (const m of LR_MULTIPLIERS) {
        const lr = lr0 * m;
        const text = yaml(opt, lr, steps);
        const file = path.join(work, `${opt}-${m}.basin.yaml`);
        fs.writeFileSync(file, text + '\n');
        const s0 = performance.now();
        try {
          const r = await train({ rt, config: parseConfig(text, file), configPath: file, outputDir: path.join(work, 'runs') });
          const ev = r.eval;
          rows.push({ optimizer: opt, multiplier: m, lr, validLoss: ev?.loss ?? null, validAccuracy: ev?.accuracy ?? null, seconds: (performance.now() - s0) / 1000, ...(ev ? {} : { why: 'no validation metrics' }) });
        } catch (e) {
          // Divergence at a large lr is a result (the least robust outcome), not the end of the bench.
          if (!(e instanceof NonFiniteError)) throw e;
          rows.push({ optimizer: opt, multiplier: m, lr, validLoss: null, validAccuracy: null, seconds: (performance.now() - s0) / 1000, why: 'diverged (non-finite loss)' });
        }
        const last = rows[rows.length - 1];
        o.log(`  ${opt} ×${m} (lr ${lr.toPrecision(3)}): valid loss ${last.validLoss?.toFixed(4) ?? '—'}, acc ${last.validAccuracy === null ? '—' : (100 * last.validAccuracy).toFixed(1) + '%'} (${last.seconds.toFixed(1)} s)`);
      }
    }
    const spreads = Object.fromEntries(OPTIMIZERS.map((opt) => [opt, lrSpread(rows.filter((r) => r.optimizer === opt).map((r) => r.validLoss))])) as Record<(typeof OPTIMIZERS)[number], LrSpread>;
    const round = (x: number | null) => (x === null ? null : Math.round(x * 1e4) / 1e4);
    return {
      bench: 'lr-robustness',
      when: new Date().toISOString(),
      commit: gitCommit(),
      device: { vendor: gpu.info.vendor, description: gpu.info.description, backend: gpu.info.backend, fallback: gpu.info.fallback },
      peers: [],
      setup: {
        task: 'demo-like transformer (vocab 64, dModel 32, 2 layers, seqLen 16) on synthetic-sequences (branching 3, noise 0.1)',
        steps,
        multipliers: LR_MULTIPLIERS,
        defaults: Object.fromEntries(OPTIMIZERS.map((x) => [x, defaultLr(x)])),
        schedule: 'cosine, warmup steps/8, minLrRatio 0.1, gradClip 1',
        metric: 'final validation loss (and next-item accuracy)',
        quick,
        seconds: (performance.now() - t0) / 1000,
      },
      rows,
      spreads,
      headline: {
        lr_spread_adamw: round(spreads.adamw.spread),
        lr_spread_mao: round(spreads.mao.spread),
        mao_spread_vs_adamw: round(spreadRatio(spreads.adamw.spread, spreads.mao.spread)),
      },
    };
  } finally {
    gpu.destroy();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

export function formatLrRobustnessReport(report: object): string {
  const r = report as { rows: Row[]; spreads: Record<string, LrSpread>; headline: Record<string, number | null>; setup: { steps: number; quick: boolean; seconds: number } };
  const lines = [`lr robustness: final validation loss after ${r.setup.steps} steps, lr = multiplier × default${r.setup.quick ? ' (quick)' : ''}`];
  const head = `${'optimizer'.padEnd(10)} ${'×lr'.padStart(5)} ${'lr'.padStart(9)} ${'val loss'.padStart(9)} ${'val acc %'.padStart(9)} ${'s'.padStart(6)}`;
  lines.push(head, '-'.repeat(head.length));
  for (const x of r.rows) {
    lines.push(
      `${x.optimizer.padEnd(10)} ${String(x.multiplier).padStart(5)} ${x.lr.toPrecision(3).padStart(9)} ${(x.validLoss?.toFixed(4) ?? '—').padStart(9)} ${(x.validAccuracy === null ? '—' : (100 * x.validAccuracy).toFixed(1)).padStart(9)} ${x.seconds.toFixed(1).padStart(6)}${x.why ? `  (${x.why})` : ''}`,
    );
  }
  lines.push('');
  for (const [opt, s] of Object.entries(r.spreads)) {
    lines.push(`${opt.padEnd(10)} spread ${s.spread?.toFixed(4) ?? '—'}  worst/best ${s.worstOverBest?.toFixed(3) ?? '—'}  diverged ${s.diverged}`);
  }
  const q = r.headline.mao_spread_vs_adamw;
  lines.push(`mao spread vs AdamW (AdamW's ÷ mao's; > 1: mao more robust): ${q === null ? '—' : q.toFixed(3)}`, `(${r.setup.seconds.toFixed(0)} s)`);
  return lines.join('\n');
}
