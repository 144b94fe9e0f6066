// `basin bench mao-step`: the time of a training step with mao against the same step with AdamW, same model, same
// batch, same device, in the same run.
//
// What is timed: windows of `refitEvery` (20) consecutive training steps (upload batch, forward, cross-entropy,
// backward, optimizer step, zeroGrads, loss read back, queue drained), so that each window holds exactly one mao
// refit: the refit is amortized as it is in training. The figure is the median over windows of (window time /
// steps). AdamW and mao windows alternate (ABBA) so that machine load hits both alike; one window each warms up
// (pipeline compiles, the first refit). Also timed, the same way: the optimizer step alone (optimizer.step(lr) then
// the queue drained, gradients left in place), to show what the optimizer itself costs.
// Cases: the demo model with mao at rank 8 (at rank 32 every demo matrix would take the dense Adam path), the
// transformer of bench/train-step.ts at rank 32, both at mao's defaults (error feedback on: E in bf16), and the
// transformer without error feedback (the factors alone; skipped by --quick).
import * as path from 'node:path';
import { backward } from '../src/engine/autograd/tape';
import { GpuDevice } from '../src/engine/gpu/device';
import { Runtime } from '../src/engine/gpu/runtime';
import type { TransformerSpec } from '../src/engine/nn/models';
import { AdamW } from '../src/engine/optim/adamw';
import { Mao } from '../src/engine/optim/mao';
import type { Optimizer } from '../src/engine/optim/optimizer';
import { forwardBatch, materializeModel } from '../src/engine/train/trainer';
import type { Batch } from '../src/engine/train/data-source';
import { tidy } from '../src/engine/tensor/tensor';
import { gitCommit } from './report';
import { makeBatch, median } from './train-step';

export interface MaoStepBenchOptions {
  json: boolean;
  quick?: boolean;
  log: (s: string) => void;
}

interface Case {
  name: string;
  spec: TransformerSpec;
  batch: number;
  rank: number;
  /** mao with its bf16 error-feedback residual E (exact momentum; the default) or the factors alone. */
  errorFeedback: boolean;
}

const REFIT_EVERY = 20;
const LR = 3e-3;
const TRANSFORMER: TransformerSpec = { type: 'transformer', vocab: 4096, dModel: 128, layers: 2, heads: 4, seqLen: 64, mlpRatio: 4, dropout: 0 };
const CASES: Case[] = [
  { name: 'demo', spec: { type: 'transformer', vocab: 64, dModel: 32, layers: 2, heads: 4, seqLen: 16, mlpRatio: 4, dropout: 0 }, batch: 32, rank: 8, errorFeedback: true },
  { name: 'transformer', spec: TRANSFORMER, batch: 32, rank: 32, errorFeedback: true },
  { name: 'transformer-noef', spec: TRANSFORMER, batch: 32, rank: 32, errorFeedback: false },
];


class Runner {
  readonly model;
  readonly store;
  readonly optimizer: Optimizer;

  constructor(readonly rt: Runtime, c: Case, readonly batch: Batch, which: 'adamw' | 'mao') {
    const { model, store } = materializeModel(rt, c.spec, 1);
    this.model = model;
    this.store = store;
    this.optimizer = which === 'adamw' ? new AdamW(store, { maxGradNorm: 1 }) : new Mao(store, { rank: c.rank, refitEvery: REFIT_EVERY, maxGradNorm: 1, errorFeedback: c.errorFeedback });
    model.train();
  }

  /** Steps training steps, completed on the GPU; ms per step. */
  async window(steps: number): Promise<{ ms: number; loss: number }> {
    const rt = this.rt;
    await rt.sync();
    const t0 = performance.now();
    let last = NaN;
    for (let i = 0; i < steps; i++) {
      const loss = tidy(() => {
        const { loss } = forwardBatch(rt, this.model, this.batch, { training: true });
        backward(loss);
        return loss;
      });
      this.optimizer.step(LR);
      this.store.zeroGrads();
      last = (await loss.toArray())[0];
      loss.dispose();
    }
    await rt.sync();
    return { ms: (performance.now() - t0) / steps, loss: last };
  }

  /** The optimizer step alone, `steps` times over the gradients of one backward; ms per step. */
  async optimizerWindow(steps: number): Promise<number> {
    const rt = this.rt;
    const loss = tidy(() => {
      const { loss } = forwardBatch(rt, this.model, this.batch, { training: true });
      backward(loss);
      return loss;
    });
    await loss.toArray();
    loss.dispose();
    await rt.sync();
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) {
      this.optimizer.step(LR);
      rt.flush();
    }
    await rt.sync();
    const ms = (performance.now() - t0) / steps;
    this.store.zeroGrads();
    return ms;
  }

  destroy(): void {
    this.optimizer.destroy();
    this.store.destroy();
  }
}

export interface MaoStepRow {
  case: string;
  rank: number;
  parameters: number;
  factored: string;
  adamw_ms_per_step: number;
  mao_ms_per_step: number;
  /** mao ÷ AdamW training-step time (refit amortized); target ≤ 1.3. */
  ratio: number;
  adamw_optimizer_ms: number;
  mao_optimizer_ms: number;
  optimizer_ratio: number;
  windows: number;
  steps_per_window: number;
  what: string;
}

export async function runMaoStepBench(opts: MaoStepBenchOptions): Promise<object> {
  const { log } = opts;
  const timed = opts.quick ? 1 : 3;
  const gpu = await GpuDevice.create();
  const rt = new Runtime(gpu);
  const rows: MaoStepRow[] = [];
  try {
    for (const c of CASES) {
      if (opts.quick && !c.errorFeedback) continue;
      log(`mao-step: ${c.name} (mao rank ${c.rank}${c.errorFeedback ? '' : ', without error feedback'})`);
      const batch = makeBatch(c.spec, c.batch, 1234);
      const a = new Runner(rt, c, batch, 'adamw');
      const m = new Runner(rt, c, batch, 'mao');
      try {
        await a.window(REFIT_EVERY); // warm-up: compiles, and mao's first refit
        await m.window(REFIT_EVERY);
        const ta: number[] = [];
        const tm: number[] = [];
        for (let w = 0; w < timed; w++) {
          const order = w % 2 === 0 ? [a, m] : [m, a];
          for (const r of order) (r === a ? ta : tm).push((await r.window(REFIT_EVERY)).ms);
          log(`  window ${w + 1}/${timed}: adamw ${ta[ta.length - 1].toFixed(1)} ms/step, mao ${tm[tm.length - 1].toFixed(1)} ms/step`);
        }
        const oa: number[] = [];
        const om: number[] = [];
        for (let w = 0; w < timed; w++) {
          const order = w % 2 === 0 ? [a, m] : [m, a];
          for (const r of order) (r === a ? oa : om).push(await r.optimizerWindow(REFIT_EVERY));
        }
        const mao = m.optimizer as Mao;
        const names = m.store.entries.map((e) => e.name);
        rows.push({
          case: c.name,
          rank: c.rank,
          parameters: m.store.parameterCount,
          factored: `${names.filter((n) => mao.isFactored(n)).length}/${names.length}`,
          adamw_ms_per_step: median(ta),
          mao_ms_per_step: median(tm),
          ratio: median(tm) / median(ta),
          adamw_optimizer_ms: median(oa),
          mao_optimizer_ms: median(om),
          optimizer_ratio: median(om) / median(oa),
          windows: timed,
          steps_per_window: REFIT_EVERY,
          what: `median over ${timed} windows of ${REFIT_EVERY} training steps (each window holds one mao refit), after one warm-up window each; gradient clipping 1.0 for both`,
        });
      } finally {
        a.destroy();
        m.destroy();
      }
    }
  } finally {
    gpu.destroy();
  }
  const info = gpu.info;
  const by = (n: string) => rows.find((r) => r.case === n);
  return {
    bench: 'mao-step',
    when: new Date().toISOString(),
    commit: gitCommit(),
    device: { vendor: info.vendor, description: info.description, backend: info.backend, fallback: info.fallback },
    peers: ['Basin AdamW (same model, batch and device)'],
    rows,
    headline: {
      mao_step_vs_adamw: by('transformer')?.ratio ?? null,
      mao_step_vs_adamw_demo: by('demo')?.ratio ?? null,
      mao_no_error_feedback_step_vs_adamw: by('transformer-noef')?.ratio ?? null,
      mao_optimizer_vs_adamw: by('transformer')?.optimizer_ratio ?? null,
    },
  };
}

export function formatMaoStepReport(report: object): string {
  const r = report as { rows: MaoStepRow[]; headline: Record<string, number | null>; device: { description: string; fallback: boolean }; commit: string | null };
  const out: string[] = [];
  out.push(`training step, mao vs AdamW (refit amortized), on ${r.device.description}${r.device.fallback ? ' (software)' : ''}, commit ${r.commit ?? 'n/a'}`);
  out.push(`${'case'.padEnd(15)} rank  factored  adamw ms/step  mao ms/step  ratio   adamw opt ms  mao opt ms  opt ratio`);
  for (const x of r.rows) {
    out.push(
      `${x.case.padEnd(15)} ${String(x.rank).padStart(4)}  ${x.factored.padStart(8)}  ${x.adamw_ms_per_step.toFixed(1).padStart(13)}  ${x.mao_ms_per_step.toFixed(1).padStart(11)}  ${x.ratio.toFixed(2).padStart(5)}   ${x.adamw_optimizer_ms.toFixed(2).padStart(12)}  ${x.mao_optimizer_ms.toFixed(2).padStart(10)}  ${x.optimizer_ratio.toFixed(2).padStart(9)}`,
    );
  }
  out.push(`headline: ${Object.entries(r.headline).map(([k, v]) => `${k} = ${v === null ? 'n/a' : v.toFixed(2)}`).join(', ')}`);
  return out.join('\n');
}
