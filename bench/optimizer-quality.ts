// `basin bench optimizer-quality`: the validation loss AdamW, Adafactor and mao reach on the benchmark transformer
// (the model of bench/train-step.ts: vocab 4096, dModel 128, 2 layers, 4 heads, seqLen 64, batch 32) at the same
// step budget, same schedule, same seed, same data, same gradient clipping. Issue 17's claim: mao reaches AdamW's
// validation loss within 2 % (headline `mao_val_loss_vs_adamw` = mao's ÷ AdamW's, target ≤ 1.02).
//
// Every optimizer runs at its registry defaults (src/files/registry/optimizers.ts), learning rate included: AdamW
// and mao share lr 0.003; Adafactor's lr is a different quantity (a relative step size, min(lr, 1/√t) × RMS(w)), so
// it runs at its own default and is a reference row, not the headline. The data: next-item sequences from a sparse
// random Markov chain over the model's 4096 items (3 likely successors, 10 % noise), the held-out 10 % scored once
// at the end (the trainer's final evaluation). The demo's figure (vocab 64) is `basin bench lr-robustness`'s ×1 row.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseConfig } from '../src/files/config/load';
import { GpuDevice } from '../src/engine/gpu/device';
import { Runtime } from '../src/engine/gpu/runtime';
import { NonFiniteError, train } from '../src/engine/train/trainer';
import { defaultLr } from './lr-robustness';
import { gitCommit } from './report';

export interface OptimizerQualityOptions {
  json: boolean;
  quick?: boolean;
  log(s: string): void;
  /** Only these optimizers (default: all three); the ratio needs adamw among them. */
  only?: readonly string[];
  /** Override the step budget (default 120, quick 30). */
  steps?: number;
  /** Also run mao's diagnostic variants (MAO_VARIANTS), each a row beside the defaults. */
  variants?: boolean;
}

export const QUALITY_OPTIMIZERS = ['adamw', 'adafactor', 'mao'] as const;
/**
 * mao with one setting changed from its defaults: which part of mao costs or buys quality against AdamW (the rank-r
 * factors alone without the error-feedback residual, and with it at full weight on the gradient outside their
 * subspaces; rank 8 with the residual; dense Adam state at rank 128; refit frequency; the learning rate). Each is
 * the row `mao <setting>`.
 */
export const MAO_VARIANTS = ['errorFeedback: false', 'errorFeedback: false, residualWeight: 0.5', 'rank: 8', 'rank: 128', 'refitEvery: 5', 'lr: 0.0015', 'lr: 0.006'] as const;
/** The benchmark transformer of bench/train-step.ts, as a config's model line. */
const MODEL = '{ type: transformer, vocab: 4096, dModel: 128, layers: 2, heads: 4, seqLen: 64, mlpRatio: 4, dropout: 0 }';
const BATCH = 32;

interface Row {
  optimizer: string;
  lr: number;
  steps: number;
  validLoss: number | null;
  validAccuracy: number | null;
  /** This optimizer's validation loss ÷ AdamW's (≤ 1: as good or better); null when either did not finish. */
  vsAdamw: number | null;
  seconds: number;
  why?: string;
}

/** Validation loss ÷ AdamW's; null when either is missing or AdamW's is not positive. */
export function lossRatio(loss: number | null, adamw: number | null): number | null {
  if (loss === null || adamw === null || !(adamw > 0) || !Number.isFinite(loss)) return null;
  return loss / adamw;
}

function yaml(optimizer: string, lr: number, steps: number, sequences: number, extra = ''): string {
  return [
    `name: quality-${optimizer}`,
    'seed: 1',
    `model: ${MODEL}`,
    `data: { type: synthetic-sequences, sequences: ${sequences}, branching: 3, noise: 0.1, validFraction: 0.1 }`,
    `train: { steps: ${steps}, batchSize: ${BATCH}, optimizer: { type: ${optimizer}, lr: ${lr}${extra ? `, ${extra}` : ''} }, schedule: { type: cosine, warmup: ${Math.max(1, steps >> 3)}, minLrRatio: 0.1 }, gradClip: 1.0, evalEvery: 0, checkpointEvery: 0, statsEvery: 0, logEvery: 50 }`,
  ].join('\n');
}

export async function runOptimizerQualityBench(o: OptimizerQualityOptions): Promise<object> {
  const t0 = performance.now();
  const quick = !!o.quick;
  // ~1.1 epochs of 3,600 training windows at the full budget; the quick run only shows the machinery works.
  const steps = o.steps ?? (quick ? 30 : 120);
  const sequences = quick ? 1000 : 4000;
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-optimizer-quality-'));
  const gpu = await GpuDevice.create();
  const rt = new Runtime(gpu);
  try {
    const rows: Row[] = [];
    const cases: { opt: string; label: string; lr: number; extra: string }[] = QUALITY_OPTIMIZERS.filter((x) => !o.only || o.only.includes(x)).map((opt) => ({ opt, label: opt, lr: defaultLr(opt), extra: '' }));
    for (const v of o.variants ? MAO_VARIANTS : []) {
      const lrOf = /^lr: (.*)$/.exec(v);
      cases.push({ opt: 'mao', label: `mao ${v}`, lr: lrOf ? Number(lrOf[1]) : defaultLr('mao'), extra: lrOf ? '' : v });
    }
    for (const [i, { opt, label, lr, extra }] of cases.entries()) {
      const text = yaml(opt, lr, steps, sequences, extra);
      const file = path.join(work, `case-${i}.basin.yaml`);
      fs.writeFileSync(file, text + '\n');
      const s0 = performance.now();
      try {
        const r = await train({ rt, config: parseConfig(text, file), configPath: file, outputDir: path.join(work, 'runs') });
        const ev = r.eval;
        rows.push({ optimizer: label, lr, steps, validLoss: ev?.loss ?? null, validAccuracy: ev?.accuracy ?? null, vsAdamw: null, seconds: (performance.now() - s0) / 1000, ...(ev ? {} : { why: 'no validation metrics' }) });
      } catch (e) {
        // A diverged optimizer is a result (the worst one), reported as such.
        if (!(e instanceof NonFiniteError)) throw e;
        rows.push({ optimizer: label, lr, steps, validLoss: null, validAccuracy: null, vsAdamw: null, seconds: (performance.now() - s0) / 1000, why: 'diverged (non-finite loss)' });
      }
      const last = rows[rows.length - 1];
      o.log(`  ${label} (lr ${lr}): valid loss ${last.validLoss?.toFixed(4) ?? '—'}, acc ${last.validAccuracy === null ? '—' : (100 * last.validAccuracy).toFixed(1) + '%'} (${last.seconds.toFixed(1)} s)`);
    }
    const adamw = rows.find((r) => r.optimizer === 'adamw')?.validLoss ?? null;
    for (const r of rows) r.vsAdamw = lossRatio(r.validLoss, adamw);
    const round = (x: number | null | undefined) => (x === null || x === undefined ? null : Math.round(x * 1e4) / 1e4);
    return {
      bench: 'optimizer-quality',
      when: new Date().toISOString(),
      commit: gitCommit(),
      device: { vendor: gpu.info.vendor, description: gpu.info.description, backend: gpu.info.backend, fallback: gpu.info.fallback },
      peers: ['Basin AdamW (same model, data, steps, schedule, seed)'],
      setup: {
        model: MODEL,
        batch: BATCH,
        data: `synthetic-sequences, ${sequences} sequences of 65 items over 4096 ids (branching 3, noise 0.1), 10 % held out`,
        steps,
        schedule: 'cosine, warmup steps/8, minLrRatio 0.1, gradClip 1',
        hyperparameters: 'every optimizer at its registry defaults (lr: adamw and mao 0.003, adafactor 0.01 as a relative step size)',
        metric: 'validation loss (cross-entropy) after the last step',
        quick,
        seconds: (performance.now() - t0) / 1000,
      },
      rows,
      headline: {
        mao_val_loss_vs_adamw: round(rows.find((r) => r.optimizer === 'mao')?.vsAdamw),
        adafactor_val_loss_vs_adamw: round(rows.find((r) => r.optimizer === 'adafactor')?.vsAdamw),
      },
    };
  } finally {
    gpu.destroy();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

export function formatOptimizerQualityReport(report: object): string {
  const r = report as { rows: Row[]; headline: Record<string, number | null>; setup: { steps: number; quick: boolean; seconds: number } };
  const lines = [`optimizer quality on the benchmark transformer: validation loss after ${r.setup.steps} steps${r.setup.quick ? ' (quick)' : ''}`];
  const wide = Math.max(10, ...r.rows.map((x) => x.optimizer.length));
  const head = `${'optimizer'.padEnd(wide)} ${'lr'.padStart(7)} ${'val loss'.padStart(9)} ${'val acc %'.padStart(9)} ${'÷ adamw'.padStart(8)} ${'s'.padStart(6)}`;
  lines.push(head, '-'.repeat(head.length));
  for (const x of r.rows) {
    lines.push(
      `${x.optimizer.padEnd(wide)} ${String(x.lr).padStart(7)} ${(x.validLoss?.toFixed(4) ?? '—').padStart(9)} ${(x.validAccuracy === null ? '—' : (100 * x.validAccuracy).toFixed(1)).padStart(9)} ${(x.vsAdamw?.toFixed(4) ?? '—').padStart(8)} ${x.seconds.toFixed(1).padStart(6)}${x.why ? `  (${x.why})` : ''}`,
    );
  }
  const q = r.headline.mao_val_loss_vs_adamw;
  lines.push(`mao validation loss ÷ AdamW's (target ≤ 1.02): ${q === null ? '—' : q.toFixed(4)}`, `(${r.setup.seconds.toFixed(0)} s)`);
  return lines.join('\n');
}
