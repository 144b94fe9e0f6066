// `basin bench prune`: the sparsity sweep's wall time against what evaluating each of its points from scratch
// would cost on the same model: points × one validation pass. Headline `sweep_ratio_vs_evals` = sweep wall time
// ÷ ((points + 1 dense) × median validation pass), target ≤ 1.3: scoring once, thresholds looked up per point and
// masks written into the live weights (no model copy) must add little on top of the evaluations. The sweep's
// own timing (src/files/prune/sweep-file.ts SweepTiming) says where its overhead goes.
// The model is a small transformer trained here first (AdamW with statistics, so curvature runs too); no peer:
// the reference is Basin's own evaluation pass, as the issue states the target.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { GpuDevice } from '../src/engine/gpu/device';
import { Runtime } from '../src/engine/gpu/runtime';
import { resolvePruneSource } from '../src/engine/prune/source';
import { PruneModel } from '../src/engine/prune/session';
import { runSweep } from '../src/engine/prune/sweep';
import { train } from '../src/engine/train/trainer';
import { parseConfig } from '../src/files/config/load';
import { DEFAULT_DENSITIES, DEFAULT_TARGETS, pruneScoreConfig } from '../src/files/prune/options';
import type { SweepFile } from '../src/files/prune/sweep-file';
import { gitCommit } from './report';

export interface PruneBenchOptions {
  json: boolean;
  quick?: boolean;
  log(s: string): void;
}

const CONFIG = (quick: boolean) => `
name: bench-prune
seed: 1
model: { type: transformer, vocab: 64, dModel: 32, layers: 2, heads: 4, seqLen: 16 }
data: { type: synthetic-sequences, sequences: ${quick ? 400 : 800}, length: 17, branching: 3, noise: 0.05, validFraction: 0.1 }
train:
  steps: ${quick ? 40 : 120}
  batchSize: 32
  optimizer: { type: adamw, lr: 0.005 }
  schedule: { type: cosine, warmup: 10 }
  evalEvery: 0
  checkpointEvery: 0
  statsEvery: 50
  logEvery: 50
`;

const median = (xs: number[]) => {
  const a = [...xs].sort((x, y) => x - y);
  const m = a.length >> 1;
  return a.length % 2 ? a[m] : (a[m - 1] + a[m]) / 2;
};
const round = (x: number, d = 0) => Number(x.toFixed(d));

/** Where one sweep's time went, ms: its evaluations, and its own overhead by part (sweep-file timing). */
interface SweepProfile {
  total: number;
  evals: number;
  open: number;
  scores: number;
  masks: number;
  save: number;
  writeWait: number;
  other: number;
}

function profileOf(sweep: SweepFile, wallMs: number): SweepProfile {
  const t = sweep.timing;
  const evals = t.denseEvalMs + (t.evalMs ?? 0);
  // wallMs is the sweep's own time (the reference passes of betweenPoints already taken out).
  const scores = Object.values(t.scoresMs).reduce((a, b) => a + b, 0);
  const parts = { open: t.openMs ?? 0, scores, masks: t.maskMs ?? 0, save: t.saveMs ?? 0, writeWait: t.writeWaitMs ?? 0 };
  const other = wallMs - evals - Object.values(parts).reduce((a, b) => a + b, 0);
  return { total: wallMs, evals, ...parts, other };
}

export async function runPruneBench(opts: PruneBenchOptions): Promise<object> {
  const quick = Boolean(opts.quick);
  const gpu = await GpuDevice.create();
  const rt = new Runtime(gpu);
  const info = gpu.info;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-bench-prune-'));
  try {
    opts.log(`prune bench on ${info.description || info.vendor} (${info.backend}${info.fallback ? ', software adapter' : ''}): training the model`);
    const config = parseConfig(CONFIG(quick), 'bench-prune.basin.yaml');
    const { runDir } = await train({ rt, config, outputDir: dir });
    const source = await resolvePruneSource(runDir);
    // sparsegpt is left out (SPARSEGPT_OUT says why).
    const scores = (quick ? ['magnitude', 'random'] : ['magnitude', 'random', 'curvature', 'wanda']).map((s) => pruneScoreConfig(s, s === 'wanda' ? { batches: 4 } : {}));
    const densities = quick ? [1, 0.5, 0.1] : [...DEFAULT_DENSITIES];
    const options = { targets: [...DEFAULT_TARGETS], granularity: 'tensor' as const, pattern: null };
    const reps = 3;

    // The machine may be loaded by other work, and the load changes from one minute to the next. So the reference
    // is interleaved with the subject point by point: after every sweep point (through the sweep's betweenPoints
    // hook, whose time is taken out of the sweep's) one validation pass of the same model is timed, and each sweep
    // is compared with the median of its own interleaved passes. Several sweeps; the headline is the median of
    // their ratios, and the spread (min, max) is reported. A warm-up sweep (one density, every score: every
    // pipeline compiled) and a warm-up pass come first and are not timed.
    const pm = await PruneModel.open(rt, source, options);
    const sweeps: { ms: number; passes: number[]; sweep: SweepFile; file: string }[] = [];
    try {
      await pm.evaluate();
      await runSweep(rt, source, { ...options, scores, densities: [0.5], file: path.join(dir, 'warm-up.json') });
      opts.log(`  warm-up done; ${reps} sweeps of ${scores.length} scores × ${densities.length} densities, a reference validation pass after every point`);
      for (let r = 0; r < reps; r++) {
        const passes: number[] = [];
        const betweenPoints = async () => {
          const t = performance.now();
          await pm.evaluate();
          passes.push(performance.now() - t);
        };
        const t0 = performance.now();
        const res = await runSweep(rt, source, { ...options, scores, densities, file: path.join(dir, `sweep-${r}.json`), betweenPoints });
        const ms = performance.now() - t0 - (res.sweep.timing.pausedMs ?? 0);
        sweeps.push({ ms, passes, ...res });
        const mean = passes.reduce((a, b) => a + b, 0) / passes.length;
        opts.log(`  sweep ${r + 1}: ${ms.toFixed(0)} ms without its ${passes.length} reference passes (mean ${mean.toFixed(0)} ms, median ${median(passes).toFixed(0)}, ${Math.min(...passes).toFixed(0)} … ${Math.max(...passes).toFixed(0)})`);
      }
    } finally {
      pm.destroy();
    }
    const evals = sweeps[0].sweep.points.length + 1;
    // The reference pass is the MEAN of the interleaved passes, not their median: load spikes lengthen the sweep's
    // wall time (a sum), so the reference must count them the same way; interleaved one for one, both sides meet
    // the same spikes in expectation. (A median would drop the spikes from the reference only and bias the ratio up.)
    const perRep = sweeps.map((s) => {
      const pass = s.passes.reduce((a, b) => a + b, 0) / s.passes.length;
      const prof = profileOf(s.sweep, s.ms);
      return {
        sweep_ms: Math.round(s.ms),
        one_eval_ms: round(pass, 1),
        one_eval_ms_median: round(median(s.passes), 1),
        ratio: round(s.ms / (evals * pass), 3),
        // Against the sweep's OWN passes (the same work, timed inside it): its overhead alone.
        ratio_own_evals: round(s.ms / prof.evals, 3),
        profile: prof,
      };
    });
    const ratios = perRep.map((p) => p.ratio);
    const ratio = median(ratios);
    const own = median(perRep.map((p) => p.ratio_own_evals));
    const keys = ['evals', 'open', 'scores', 'masks', 'save', 'writeWait', 'other'] as const;
    const overhead = Object.fromEntries(keys.map((k) => [k === 'writeWait' ? 'write_wait_ms' : `${k}_ms`, Math.round(median(perRep.map((p) => p.profile[k])))]));
    const last = sweeps[sweeps.length - 1].sweep;
    opts.log(`  ratio per sweep: ${ratios.join(', ')} (median ${ratio.toFixed(3)}); against the sweep's own passes: ${perRep.map((p) => p.ratio_own_evals).join(', ')}`);
    const rows = [
      {
        case: `${scores.map((s) => s.type).join('+')} × ${densities.length} densities`,
        targets: last.targets.length,
        target_weights: last.targets.reduce((s, t) => s + t.size, 0),
        points: last.points.length,
        repetitions: reps,
        sweep_ms_median: Math.round(median(perRep.map((p) => p.sweep_ms))),
        // Points of the trade-off curve per second of sweep (each point: a threshold, a mask and an evaluation).
        points_per_second: round(last.points.length / (median(perRep.map((p) => p.sweep_ms)) / 1000), 2),
        one_eval_ms: round(median(perRep.map((p) => p.one_eval_ms)), 1),
        ratio_min: Math.min(...ratios),
        ratio_max: Math.max(...ratios),
        ratio_own_evals_median: round(own, 3),
        // Medians over the repetitions, ms: the sweep's evaluations and each part of its own overhead.
        profile_ms: overhead,
        scores_ms: Object.fromEntries(Object.entries(last.timing.scoresMs).map(([k, v]) => [k, Math.round(v)])),
        mask_ms_per_point: round((last.timing.maskMs ?? 0) / last.points.length, 2),
        sweep_file_writes: last.timing.writes ?? null,
        sweep_file_bytes: fs.statSync(sweeps[sweeps.length - 1].file).size,
        per_repetition: perRep.map(({ profile: _p, ...r }) => r),
        without: SPARSEGPT_OUT,
      },
    ];
    return {
      bench: 'prune',
      when: new Date().toISOString(),
      commit: gitCommit(),
      device: { vendor: info.vendor, architecture: info.architecture, description: info.description, backend: info.backend, fallback: info.fallback },
      peers: [],
      why: 'no peer: the target is stated against Basin’s own validation pass on the same model',
      timed:
        'sweep: runSweep wall time (model load, dense evaluation, every score including calibration, every point’s threshold, mask and evaluation, ' +
        'and the sweep file written after each point), less the reference passes interleaved in it; reference: (points + 1) × the mean of the validation passes ' +
        `timed after every point of that sweep (same model, same load); ${reps} sweeps after a warm-up sweep and pass; headline: the median ratio over the sweeps, spread in ratio_min/ratio_max`,
      rows,
      headline: { sweep_ratio_vs_evals: round(ratio, 3) },
    };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    gpu.destroy();
  }
}

/** Why the bench sweeps no sparsegpt: its score is the pruned layer's own sequential solve per density, not a ranking. */
const SPARSEGPT_OUT = 'sparsegpt (it solves each density anew, layer by layer, in float64 on the CPU: there is no "scoring nearly free" to measure)';

/** The report as a table for people. */
export function formatPruneReport(report: object): string {
  type Row = Record<string, unknown> & { points_per_second: number; sweep_ms_median: number; without?: string; profile_ms: Record<string, number>; per_repetition: { sweep_ms: number; one_eval_ms: number; ratio: number; ratio_own_evals: number }[] };
  const r = report as { device: { description: string; backend: string; fallback: boolean }; commit: string | null; rows: Row[]; headline: { sweep_ratio_vs_evals: number } };
  const row = r.rows[0];
  const p = row.profile_ms;
  return [
    `prune sweep on ${r.device.description} [${r.device.backend}${r.device.fallback ? ', software' : ''}], commit ${r.commit ?? 'n/a'}`,
    `  ${row.case}: ${row.targets} tensors, ${row.target_weights} weights, ${row.points} points, ${row.repetitions} sweeps, a reference validation pass after every point`,
    `  ${row.points_per_second} points per second (median sweep ${row.sweep_ms_median} ms)${row.without ? `; not in this bench: ${row.without}` : ''}`,
    '  sweep ms   mean reference pass ms   ratio   ratio vs its own passes',
    ...row.per_repetition.map((x) => `  ${String(x.sweep_ms).padStart(8)}  ${x.one_eval_ms.toFixed(1).padStart(23)}  ${x.ratio.toFixed(3).padStart(6)}  ${x.ratio_own_evals.toFixed(3).padStart(6)}`),
    `  where a sweep's time goes (median ms): evaluations ${p.evals_ms}; overhead: open ${p.open_ms}, scores ${p.scores_ms} ${JSON.stringify(row.scores_ms)}, masks ${p.masks_ms} (${row.mask_ms_per_point} per point), file ${p.save_ms} + wait ${p.write_wait_ms} (${row.sweep_file_writes} writes), other ${p.other_ms}`,
    `headline: sweep_ratio_vs_evals = ${r.headline.sweep_ratio_vs_evals} (median; spread ${row.ratio_min} … ${row.ratio_max}; target ≤ 1.3)`,
  ].join('\n');
}
