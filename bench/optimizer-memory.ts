// `basin bench optimizer-memory`: bytes of optimizer state per parameter for AdamW, Adafactor and mao at ranks 8,
// 32 and 128 without error feedback, and at rank 32 with it (E in bf16, +2 bytes per factored weight), on representative shapes (one square 512² weight, an MLP 1024×4096 weight, a 4096² weight, the demo
// model of examples/demo.basin.yaml, the transformer of bench/train-step.ts), next to the reference UMTAM design.
//
// Measured: each optimizer is constructed on a materialized ParameterStore of the case's shapes on the GPU and
// asked for its stateBytes (what it allocated for state; mao's step scratch is reported apart, it is sized for the
// largest tensor, is not state and is never checkpointed); that figure is checked against the sum of the state
// tensors it declares for checkpoints. The UMTAM reference (arXiv 2512.17109's public code: U, Σ, V at rank r, R and
// C, plus dense E, S and W₀ buffers per 2-D weight; Adam m, v for vectors) has no implementation here: its figure
// is COMPUTED from the shapes, and its row says so.
import * as path from 'node:path';
import { GpuDevice } from '../src/engine/gpu/device';
import { Runtime } from '../src/engine/gpu/runtime';
import type { TransformerSpec } from '../src/engine/nn/models';
import { Adafactor } from '../src/engine/optim/adafactor';
import { AdamW } from '../src/engine/optim/adamw';
import { Mao } from '../src/engine/optim/mao';
import { stateElementBytes, type Optimizer } from '../src/engine/optim/optimizer';
import { ParameterStore } from '../src/engine/optim/params';
import { materializeModel } from '../src/engine/train/trainer';
import { gitCommit } from './report';

export interface OptimizerMemoryBenchOptions {
  json: boolean;
  quick?: boolean;
  log: (s: string) => void;
}

interface Case {
  name: string;
  what: string;
  /** Plain shapes (weights named w0, w1…), or a model to build. */
  shapes?: number[][];
  model?: TransformerSpec;
}

// The same models as examples/demo.basin.yaml and bench/train-step.ts (TRANSFORMER there).
const DEMO_SPEC: TransformerSpec = { type: 'transformer', vocab: 64, dModel: 32, layers: 2, heads: 4, seqLen: 16, mlpRatio: 4, dropout: 0 };
const TRANSFORMER_SPEC: TransformerSpec = { type: 'transformer', vocab: 4096, dModel: 128, layers: 2, heads: 4, seqLen: 64, mlpRatio: 4, dropout: 0 };

const CASES: Case[] = [
  { name: '512x512', what: 'one square weight', shapes: [[512, 512]] },
  { name: '1024x4096', what: 'one MLP weight', shapes: [[1024, 4096]] },
  { name: '4096x4096', what: 'one large square weight', shapes: [[4096, 4096]] },
  { name: 'demo', what: 'examples/demo.basin.yaml (dModel 32: every matrix has min(m, n) = 32)', model: DEMO_SPEC },
  { name: 'transformer', what: 'bench/train-step.ts transformer (vocab 4096, dModel 128, 2 layers)', model: TRANSFORMER_SPEC },
];
const QUICK = new Set(['512x512', 'demo', 'transformer']);
const RANKS = [8, 32, 128] as const;

export interface OptimizerMemoryRow {
  case: string;
  what: string;
  parameters: number;
  /** Bytes of state per parameter. */
  adamw: number;
  adafactor: number;
  mao_r8: number;
  mao_r32: number;
  mao_r128: number;
  /** mao at rank 32 with error feedback (its bf16 residual E). */
  mao_r32_ef: number;
  /** Computed from the shapes (no implementation here): U, Σ, V (r = 32), R, C, dense E, S, W₀; Adam for vectors. */
  umtam_ref_r32: number;
  /** mao's step scratch at rank 32 (bytes per parameter; sized for the largest tensor, not state). */
  mao_r32_scratch: number;
  mao_r32_vs_adamw: number;
  /** Which tensors mao (r = 32) keeps factored, of all. */
  mao_r32_factored: string;
}

/** UMTAM's reference state in bytes: per 2-D (rank ≥ 2) weight (m+n)·r + r + m + n + 3·m·n floats, vectors 2·n. */
export function umtamReferenceBytes(shapes: readonly (readonly number[])[], r: number): number {
  let floats = 0;
  for (const s of shapes) {
    const n = s.reduce((a, b) => a * b, 1);
    if (s.length >= 2) {
      const rows = s[0];
      const cols = n / rows;
      const k = Math.min(r, rows, cols);
      floats += (rows + cols) * k + k + rows + cols + 3 * n;
    } else floats += 2 * n;
  }
  return floats * 4;
}

function declaredBytes(o: Optimizer): number {
  return o.stateTensors().reduce((s, d) => s + stateElementBytes(d) * d.shape.reduce((a, b) => a * b, 1), 0);
}

export async function runOptimizerMemoryBench(opts: OptimizerMemoryBenchOptions): Promise<object> {
  const { log } = opts;
  const gpu = await GpuDevice.create();
  const rt = new Runtime(gpu);
  const rows: OptimizerMemoryRow[] = [];
  try {
    for (const c of CASES) {
      if (opts.quick && !QUICK.has(c.name)) continue;
      log(`optimizer-memory: ${c.name}`);
      let store: ParameterStore;
      if (c.model) store = materializeModel(rt, c.model, 1).store;
      else {
        store = new ParameterStore();
        c.shapes!.forEach((s, i) => store.add(`w${i}`, s));
        store.materialize(rt);
      }
      try {
        const P = store.parameterCount;
        const measure = (make: () => Optimizer): { bytes: number; extra?: Mao } => {
          const o = make();
          try {
            const bytes = o.stateBytes;
            if (bytes === undefined) throw new Error(`${o.name} does not report stateBytes`);
            // Adafactor counts its optional m with the padded layout; compare only optimizers without padding.
            if (o.name !== 'adafactor' && bytes !== declaredBytes(o)) throw new Error(`${o.name}: stateBytes ${bytes} ≠ declared state ${declaredBytes(o)}`);
            return { bytes };
          } finally {
            o.destroy();
          }
        };
        const adamw = measure(() => new AdamW(store)).bytes;
        const adafactor = measure(() => new Adafactor(store)).bytes;
        const mao: Record<number, number> = {};
        let scratch = 0;
        let factored = '';
        for (const r of RANKS) {
          const o = new Mao(store, { rank: r, errorFeedback: false });
          try {
            mao[r] = o.stateBytes!;
            if (mao[r] !== declaredBytes(o)) throw new Error(`mao r${r}: stateBytes ${mao[r]} ≠ declared state ${declaredBytes(o)}`);
            if (r === 32) {
              scratch = o.workBytes;
              const names = store.entries.map((e) => e.name);
              factored = `${names.filter((n) => o.isFactored(n)).length}/${names.length}`;
            }
          } finally {
            o.destroy();
          }
        }
        const ef = new Mao(store, { rank: 32, errorFeedback: true });
        let maoEf: number;
        try {
          maoEf = ef.stateBytes;
          if (maoEf !== declaredBytes(ef)) throw new Error(`mao r32 with error feedback: stateBytes ${maoEf} ≠ declared state ${declaredBytes(ef)}`);
        } finally {
          ef.destroy();
        }
        const shapes = store.entries.map((e) => e.shape);
        rows.push({
          case: c.name,
          what: c.what,
          parameters: P,
          adamw: adamw / P,
          adafactor: adafactor / P,
          mao_r8: mao[8] / P,
          mao_r32: mao[32] / P,
          mao_r128: mao[128] / P,
          mao_r32_ef: maoEf / P,
          umtam_ref_r32: umtamReferenceBytes(shapes, 32) / P,
          mao_r32_scratch: scratch / P,
          mao_r32_vs_adamw: mao[32] / adamw,
          mao_r32_factored: factored,
        });
      } finally {
        store.destroy();
      }
    }
  } finally {
    gpu.destroy();
  }
  const info = gpu.info;
  const by = (n: string) => rows.find((r) => r.case === n);
  return {
    bench: 'optimizer-memory',
    when: new Date().toISOString(),
    commit: gitCommit(),
    device: { vendor: info.vendor, description: info.description, backend: info.backend, fallback: info.fallback },
    peers: ['UMTAM reference design (computed from shapes, arXiv 2512.17109)'],
    what: 'bytes of optimizer state per parameter (stateBytes of each optimizer built on the case\'s parameters; checked against the state tensors it declares); AdamW keeps 8',
    rows,
    headline: {
      mao_r32_state_vs_adamw: by('transformer')?.mao_r32_vs_adamw ?? null,
      mao_r32_state_vs_adamw_512: by('512x512')?.mao_r32_vs_adamw ?? null,
      mao_r32_error_feedback_state_vs_adamw: by('transformer') ? by('transformer')!.mao_r32_ef / by('transformer')!.adamw : null,
      mao_r32_error_feedback_state_vs_adamw_512: by('512x512') ? by('512x512')!.mao_r32_ef / by('512x512')!.adamw : null,
      mao_r8_state_vs_adamw_demo: by('demo') ? by('demo')!.mao_r8 / by('demo')!.adamw : null,
      umtam_ref_r32_vs_adamw: by('transformer') ? by('transformer')!.umtam_ref_r32 / by('transformer')!.adamw : null,
    },
  };
}

export function formatOptimizerMemoryReport(report: object): string {
  const r = report as { rows: OptimizerMemoryRow[]; headline: Record<string, number | null>; device: { description: string; fallback: boolean }; commit: string | null };
  const f = (x: number) => x.toFixed(3).padStart(9);
  const out: string[] = [];
  out.push(`optimizer state, bytes per parameter (AdamW keeps 8), on ${r.device.description}${r.device.fallback ? ' (software)' : ''}, commit ${r.commit ?? 'n/a'}`);
  out.push(`${'case'.padEnd(12)} ${'params'.padStart(11)} ${'adamw'.padStart(9)} ${'adafactor'.padStart(9)} ${'mao r8'.padStart(9)} ${'mao r32'.padStart(9)} ${'mao r128'.padStart(9)} ${'r32 + EF'.padStart(9)} ${'UMTAM r32*'.padStart(10)}  mao r32/adamw  factored  scratch r32`);
  for (const x of r.rows) {
    out.push(
      `${x.case.padEnd(12)} ${String(x.parameters).padStart(11)} ${f(x.adamw)} ${f(x.adafactor)} ${f(x.mao_r8)} ${f(x.mao_r32)} ${f(x.mao_r128)} ${f(x.mao_r32_ef)} ${x.umtam_ref_r32.toFixed(3).padStart(10)}  ${x.mao_r32_vs_adamw.toFixed(3).padStart(13)}  ${x.mao_r32_factored.padStart(8)}  ${x.mao_r32_scratch.toFixed(3).padStart(11)}`,
    );
  }
  out.push('mao r8/r32/r128 without error feedback; r32 + EF: with it (E in bf16). * UMTAM: computed from the shapes (reference design with dense E, S, W₀), not measured.');
  out.push(`headline: ${Object.entries(r.headline).map(([k, v]) => `${k} = ${v === null ? 'n/a' : v.toFixed(3)}`).join(', ')}`);
  return out.join('\n');
}
