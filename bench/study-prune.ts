// `basin study prune`: every pruning score on the same trained models, the validation metric at each density, and
// the UMTAM claim tested as it comes out (../shared/notes/algorithms.md §3): the curvature score (w²⊙F̂, or τ²⊙F̂
// for a task vector, from the optimizer's statistics — no calibration data) is at least as good as magnitude at
// EVERY density in {1,5,10,20,40,60,90} % kept, with one threshold across all targeted tensors (global ranking).
//
// The models: (1) a demo-like transformer (examples/demo.basin.yaml's shape, next-item sequences); (2) an MLP
// classifier (examples/mlp.basin.yaml's shape, trained with AdamW instead of the example's SGD: curvature needs a
// second moment, which SGD does not keep); (3) task vectors: a base transformer trained on a mixture of two
// synthetic tasks, fine-tuned on each task (`init.from`), and each expert's τ = θ − θ_base pruned (pruned entries
// go back to the base), measured on that task's validation split. Every sweep uses global granularity, so every
// score is ranked the same way the claim is stated (SparseGPT chooses its mask per column block whatever the
// granularity; Wanda's paper compares within rows, so it also gets a per-row sweep, `wanda/row` — both are
// reported for reference, not for the claim).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseConfig } from '../src/files/config/load';
import { DEFAULT_TARGETS, pruneScoreConfig, type PruneOptions } from '../src/files/prune/options';
import type { SweepFile, SweepMetrics } from '../src/files/prune/sweep-file';
import type { PruneScoreConfig } from '../src/files/registry/prune-scores';
import { GpuDevice } from '../src/engine/gpu/device';
import { Runtime } from '../src/engine/gpu/runtime';
import { resolvePruneSource } from '../src/engine/prune/source';
import { runSweep } from '../src/engine/prune/sweep';
import { train } from '../src/engine/train/trainer';
import { gitCommit } from './report';

export interface PruneStudyOptions {
  json: boolean;
  quick?: boolean;
  log(s: string): void;
  /** Keep the runs and sweep files here (default: a temporary folder, removed at the end). */
  out?: string;
}

/** The densities of the claim (fraction of targeted entries kept), descending. */
export const CLAIM_DENSITIES: readonly number[] = [0.9, 0.6, 0.4, 0.2, 0.1, 0.05, 0.01];
/** The sweep's densities: the claim's plus the dense model. */
export const STUDY_DENSITIES: readonly number[] = [1, ...CLAIM_DENSITIES];

export type ClaimMetric = 'accuracy' | 'loss';

/** One measured point of a sweep, as this study reads it. */
export interface StudyPoint {
  score: string;
  density: number;
  metrics: { loss: number; accuracy: number };
}

export interface ClaimResult {
  /** The case (model or expert) the claim was tested on. */
  case: string;
  claim: string;
  metric: ClaimMetric;
  /** Densities where both scores were measured. */
  tested: number[];
  /** challenger − reference at each tested density, oriented so that > 0 means the challenger is better (accuracy
   *  in points of a fraction, loss in nats); null where a point diverged. Shows how close each verdict is. */
  margins: (number | null)[];
  /** Densities where the challenger was strictly worse than the reference. */
  failsAt: number[];
  /** Densities of the claim with a point missing for either score (the claim is not tested there). */
  missing: number[];
  /** true: holds at every claim density; false: fails somewhere; null: a density could not be tested. */
  holds: boolean | null;
}

/** Is `a` at least as good as `b` on this metric (higher accuracy, lower loss)? Exact: a tie counts as ≥. */
export function atLeastAsGood(metric: ClaimMetric, a: number, b: number): boolean {
  return metric === 'accuracy' ? a >= b : a <= b;
}

const sameDensity = (a: number, b: number) => Math.abs(a - b) < 1e-9;

/**
 * "challenger ≥ reference at every density" on one case: where it fails, and where it could not be tested.
 * A non-finite metric (a pruned model that diverged) counts as the worst possible value, never as a tie.
 */
export function evaluateClaim(
  caseName: string,
  points: readonly StudyPoint[],
  challenger: string,
  reference: string,
  metric: ClaimMetric,
  densities: readonly number[] = CLAIM_DENSITIES,
): ClaimResult {
  const worst = metric === 'accuracy' ? -Infinity : Infinity;
  const value = (p: StudyPoint) => (Number.isFinite(p.metrics[metric]) ? p.metrics[metric] : worst);
  const tested: number[] = [];
  const margins: (number | null)[] = [];
  const failsAt: number[] = [];
  const missing: number[] = [];
  for (const d of densities) {
    const c = points.find((p) => p.score === challenger && sameDensity(p.density, d));
    const r = points.find((p) => p.score === reference && sameDensity(p.density, d));
    if (!c || !r) {
      missing.push(d);
      continue;
    }
    tested.push(d);
    const cv = value(c);
    const rv = value(r);
    margins.push(Number.isFinite(cv) && Number.isFinite(rv) ? (metric === 'accuracy' ? cv - rv : rv - cv) : null);
    // Both diverged: neither is better, the claim is not refuted there.
    if (!(cv === worst && rv === worst) && !atLeastAsGood(metric, cv, rv)) failsAt.push(d);
  }
  return {
    case: caseName,
    claim: `${challenger} ≥ ${reference} (${metric}) at every density`,
    metric,
    tested,
    margins,
    failsAt,
    missing,
    holds: failsAt.length ? false : missing.length ? null : true,
  };
}

/** The fraction of tested (case, density) pairs where the claim held, pooled over the given claims; null if none. */
export function winFraction(claims: readonly ClaimResult[]): number | null {
  let tested = 0;
  let fails = 0;
  for (const c of claims) {
    tested += c.tested.length;
    fails += c.failsAt.length;
  }
  return tested ? (tested - fails) / tested : null;
}

/** The claim's status in words, for the table: what held, and at which densities (in %) it failed. */
export function describeClaim(c: ClaimResult): string {
  const pct = (d: number) => `${+(100 * d).toFixed(2)}%`;
  const head = c.holds === true ? 'holds     ' : c.holds === false ? 'FAILS     ' : 'not tested';
  // Each failing density with its margin (accuracy in points, loss in nats): a verdict decided by 0.1 point is
  // within the evaluation's noise, and the reader should see that.
  const margin = (d: number) => {
    const m = c.margins[c.tested.indexOf(d)];
    return m === null || m === undefined ? 'diverged' : c.metric === 'accuracy' ? `${(100 * m).toFixed(1)} pt` : `${m >= 0 ? '+' : ''}${m.toFixed(3)}`;
  };
  const fails = c.failsAt.length ? ` — fails at ${c.failsAt.map((d) => `${pct(d)} (${margin(d)})`).join(', ')}; ${c.tested.length - c.failsAt.length}/${c.tested.length} densities hold` : '';
  const miss = c.missing.length ? ` — not measured at ${c.missing.map(pct).join(', ')}` : '';
  return `${head}  ${c.case}: ${c.claim}${fails}${miss}`;
}

// ---- the runs ------------------------------------------------------------------------------------------------

const TASKS = 2;
const TRANSFORMER = 'model: { type: transformer, vocab: 64, dModel: 32, layers: 2, heads: 4, seqLen: 16, mlpRatio: 4, dropout: 0 }';
const TASK_MODEL = 'model: { type: transformer, vocab: 48, dModel: 32, layers: 2, heads: 2, seqLen: 12, dropout: 0 }';

const trainSection = (steps: number, batch: number, lr: number) =>
  `train: { steps: ${steps}, batchSize: ${batch}, optimizer: { type: adamw, lr: ${lr}, weightDecay: 0.01 }, schedule: { type: cosine, warmup: ${Math.min(40, steps >> 3)} }, gradClip: 1.0, evalEvery: 0, checkpointEvery: 0, statsEvery: ${Math.max(10, steps >> 2)}, logEvery: 50 }`;

function transformerYaml(quick: boolean): string {
  return [
    'name: prune-transformer',
    'seed: 1',
    TRANSFORMER,
    `data: { type: synthetic-sequences, sequences: ${quick ? 1200 : 2000}, length: 17, branching: 3, noise: 0.1, validFraction: 0.1 }`,
    trainSection(quick ? 120 : 400, 32, 0.003),
  ].join('\n');
}

function mlpYaml(quick: boolean): string {
  return [
    'name: prune-mlp',
    'seed: 1',
    'model: { type: mlp, inputs: 16, hidden: [64, 64], classes: 8, activation: relu, dropout: 0 }',
    `data: { type: synthetic-classification, samples: ${quick ? 2000 : 4000}, noise: 0.5, validFraction: 0.1 }`,
    trainSection(quick ? 150 : 400, 64, 0.003),
  ].join('\n');
}

function taskYaml(name: string, task: number | null, steps: number, lr: number, init: string | null): string {
  return [
    `name: ${name}`,
    'seed: 1',
    TASK_MODEL,
    `data: { type: synthetic-tasks, tasks: ${TASKS}, ${task === null ? '' : `task: ${task}, `}sequences: ${task === null ? 1600 : 800}, branching: 2, noise: 0.05, seed: 1, validFraction: 0.15 }`,
    init ? `init: { from: ${JSON.stringify(init)} }` : '',
    trainSection(steps, 32, lr),
  ]
    .filter(Boolean)
    .join('\n');
}

interface CaseReport {
  case: string;
  kind: 'weights' | 'task-vector';
  /** 'global' for every score of the claim; a row-granularity Wanda sweep is appended as `wanda/row`. */
  granularity: 'global';
  scores: string[];
  dense: SweepMetrics | null;
  chance: SweepMetrics | null;
  points: StudyPoint[];
  /** Scores that could not run on this case, with why. */
  skipped: { score: string; why: string }[];
  sweepFile: string;
  seconds: number;
}

export async function runPruneStudy(o: PruneStudyOptions): Promise<object> {
  const t0 = performance.now();
  const quick = !!o.quick;
  const work = o.out ? path.resolve(o.out) : fs.mkdtempSync(path.join(os.tmpdir(), 'basin-study-prune-'));
  fs.mkdirSync(work, { recursive: true });
  const gpu = await GpuDevice.create();
  const rt = new Runtime(gpu);
  try {
    const runs = path.join(work, 'runs');
    const trainRun = async (name: string, yaml: string) => {
      const file = path.join(work, `${name}.basin.yaml`);
      fs.writeFileSync(file, yaml + '\n');
      const t = performance.now();
      const r = await train({ rt, config: parseConfig(yaml, file), configPath: file, outputDir: runs });
      o.log(`  trained ${name} in ${((performance.now() - t) / 1000).toFixed(0)} s`);
      return r.runDir;
    };
    const calib = quick ? 4 : 16;
    const scoreCfgs = (names: string[]): PruneScoreConfig[] =>
      names.map((n) => pruneScoreConfig(n, n === 'random' ? { seed: 1 } : n === 'wanda' || n === 'sparsegpt' ? { batches: calib } : {}));

    const sweepCase = async (caseName: string, kind: CaseReport['kind'], runDir: string, names: string[], skipped: CaseReport['skipped'], base?: string): Promise<CaseReport> => {
      const ts = performance.now();
      const source = await resolvePruneSource(runDir);
      const options: PruneOptions = { targets: [...DEFAULT_TARGETS], granularity: 'global', pattern: null, ...(base ? { base } : {}) };
      const file = path.join(work, `sweep-${caseName.replace(/[^a-z0-9]+/gi, '-')}.json`);
      o.log(`  sweeping ${caseName}: ${names.join(', ')}`);
      const { sweep } = await runSweep(rt, source, {
        ...options,
        scores: scoreCfgs(names),
        densities: [...STUDY_DENSITIES],
        file,
        onPoint: (p) => o.log(`    ${p.score} at ${+(100 * p.density).toFixed(2)}%: loss ${p.metrics.loss.toFixed(4)}, acc ${(100 * p.metrics.accuracy).toFixed(2)}%`),
      });
      return {
        case: caseName,
        kind,
        granularity: 'global',
        scores: [...names], // a copy: the wanda/row sweep appends to it
        dense: sweep.dense,
        chance: sweep.chance,
        points: pointsOf(sweep),
        skipped,
        sweepFile: o.out ? file : '(temporary)',
        seconds: (performance.now() - ts) / 1000,
      };
    };

    // Wanda's paper compares |W|·‖X‖ within each output row; ranked globally its scores mix layers whose input
    // norms differ by orders of magnitude. So Wanda also gets its own row sweep (`wanda/row`), reported beside the
    // global rows so that the comparison is fair to it; the claim uses the global rows only.
    const addWandaRows = async (c: CaseReport, runDir: string, base?: string) => {
      const source = await resolvePruneSource(runDir);
      o.log(`  sweeping ${c.case}: wanda per row`);
      const { sweep } = await runSweep(rt, source, {
        targets: [...DEFAULT_TARGETS],
        granularity: 'row',
        pattern: null,
        ...(base ? { base } : {}),
        scores: scoreCfgs(['wanda']),
        densities: STUDY_DENSITIES.filter((d) => d < 1),
        file: path.join(work, `sweep-${c.case.replace(/[^a-z0-9]+/gi, '-')}-wanda-row.json`),
      });
      const rows = pointsOf(sweep).map((p) => ({ ...p, score: 'wanda/row' }));
      const dense = c.points.find((p) => p.score === 'wanda' && p.density === 1);
      c.points.push(...(dense ? [{ ...dense, score: 'wanda/row' }] : []), ...rows);
      c.scores.push('wanda/row');
    };
    const ALL = ['magnitude', 'random', 'curvature', 'wanda', 'sparsegpt'];
    const cases: CaseReport[] = [];
    o.log(`prune study in ${work}`);
    for (const [name, yaml] of [
      ['transformer', transformerYaml(quick)],
      ['mlp', mlpYaml(quick)],
    ] as const) {
      o.log(name);
      const runDir = await trainRun(`prune-${name}`, yaml);
      const c = await sweepCase(name, 'weights', runDir, ALL, []);
      await addWandaRows(c, runDir);
      cases.push(c);
    }

    o.log(`task vectors: a base on a mixture of ${TASKS} tasks, one fine-tune per task`);
    const baseRun = await trainRun('tv-base', taskYaml('tv-base', null, quick ? 120 : 400, 0.01, null));
    const baseWeights = (await resolvePruneSource(baseRun)).checkpoint;
    // SparseGPT rebuilds each layer's output by updating the kept weights: it has no task-vector form (the engine
    // refuses it with a base), so it is listed as skipped rather than silently left out.
    const tvSkipped = [{ score: 'sparsegpt', why: 'updates the kept weights to rebuild layer outputs; no task-vector form' }];
    for (let t = 0; t < TASKS; t++) {
      const expert = await trainRun(`tv-expert-${t}`, taskYaml(`tv-expert-${t}`, t, quick ? 60 : 200, 0.003, baseRun));
      const c = await sweepCase(`task vector ${t}`, 'task-vector', expert, ['magnitude', 'random', 'curvature', 'wanda'], tvSkipped, baseWeights);
      await addWandaRows(c, expert, baseWeights);
      cases.push(c);
    }

    const claims: ClaimResult[] = [];
    for (const c of cases) {
      claims.push(evaluateClaim(c.case, c.points, 'curvature', 'magnitude', 'accuracy'));
      claims.push(evaluateClaim(c.case, c.points, 'curvature', 'magnitude', 'loss'));
    }
    // The floor: a score that does not beat random at every density is not doing its job (reported, not claimed).
    const floors = cases.flatMap((c) => ['magnitude', 'curvature'].map((s) => evaluateClaim(c.case, c.points, s, 'random', 'accuracy')));
    const tv = claims.filter((c) => c.metric === 'accuracy' && cases.find((k) => k.case === c.case)?.kind === 'task-vector');
    const weights = claims.filter((c) => c.metric === 'accuracy' && cases.find((k) => k.case === c.case)?.kind === 'weights');
    return {
      bench: 'study-prune',
      when: new Date().toISOString(),
      commit: gitCommit(),
      device: { vendor: gpu.info.vendor, description: gpu.info.description, backend: gpu.info.backend, fallback: gpu.info.fallback },
      peers: [],
      setup: {
        quick,
        granularity: 'global',
        densities: [...STUDY_DENSITIES],
        claimDensities: [...CLAIM_DENSITIES],
        metric: 'validation accuracy (claim) and loss, on each run’s validation split (each task’s for the experts)',
        calibrationBatches: calib,
        models: { transformer: TRANSFORMER, mlp: 'mlp 16→64→64→8 (AdamW: curvature needs a second moment)', taskVectors: TASK_MODEL },
        seconds: (performance.now() - t0) / 1000,
      },
      rows: cases,
      claims,
      floors,
      headline: {
        curvature_wins_vs_magnitude: winFraction(tv),
        curvature_wins_vs_magnitude_weights: winFraction(weights),
      },
    };
  } finally {
    gpu.destroy();
    if (!o.out) fs.rmSync(work, { recursive: true, force: true });
  }
}

function pointsOf(sweep: SweepFile): StudyPoint[] {
  return sweep.points.map((p) => ({ score: p.score, density: p.density, metrics: { loss: p.metrics.loss, accuracy: p.metrics.accuracy } }));
}

export function formatPruneStudy(report: object): string {
  const r = report as {
    rows: CaseReport[];
    claims: ClaimResult[];
    floors: ClaimResult[];
    headline: Record<string, number | null>;
    setup: { seconds: number; quick: boolean };
  };
  const lines = [
    `prune study: validation accuracy % (loss) per score × density kept, global ranking across tensors (wanda/row: per output row)${r.setup.quick ? ' (quick)' : ''}`,
  ];
  for (const c of r.rows) {
    lines.push('', `${c.case} (${c.kind === 'task-vector' ? 'task vector τ = θ − θ_base' : 'weights'}; dense acc ${c.dense ? (100 * c.dense.accuracy).toFixed(1) : '—'}%, chance ${c.chance ? (100 * c.chance.accuracy).toFixed(1) : '—'}%)`);
    const densities = [...new Set(c.points.map((p) => p.density))].sort((a, b) => b - a);
    const head = `${'score'.padEnd(11)} ${densities.map((d) => `${+(100 * d).toFixed(2)}%`.padStart(14)).join('')}`;
    lines.push(head, '-'.repeat(head.length));
    for (const s of c.scores) {
      // (`wanda/row` is Wanda ranked within each output row, as its paper does; every other row is global.)
      const cells = densities.map((d) => {
        const p = c.points.find((x) => x.score === s && sameDensity(x.density, d));
        return (p ? `${(100 * p.metrics.accuracy).toFixed(1)} (${p.metrics.loss.toFixed(2)})` : '—').padStart(14);
      });
      lines.push(`${s.padEnd(11)} ${cells.join('')}`);
    }
    for (const k of c.skipped) lines.push(`${k.score.padEnd(11)} n/a: ${k.why}`);
  }
  lines.push('', 'claim (UMTAM): curvature ≥ magnitude at every density, no calibration data — as measured:');
  for (const c of r.claims) lines.push(`  ${describeClaim(c)}`);
  lines.push('', 'floor (not a claim): each score ≥ random:');
  for (const c of r.floors) lines.push(`  ${describeClaim(c)}`);
  const f = (x: number | null | undefined) => (x === null || x === undefined ? '—' : `${(100 * x).toFixed(0)}%`);
  lines.push(
    '',
    `curvature ≥ magnitude (accuracy): task vectors ${f(r.headline.curvature_wins_vs_magnitude)} of densities, weights ${f(r.headline.curvature_wins_vs_magnitude_weights)}`,
    `(${r.setup.seconds.toFixed(0)} s)`,
  );
  return lines.join('\n');
}
