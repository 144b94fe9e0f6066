// `basin study merge`: every merge method on the same synthetic experts, each at its best setting chosen on the
// validation splits and reported on test splits (../shared/notes/algorithms.md §2, fair comparison).
//
// The experts: a base transformer trained on a MIXTURE of four next-item tasks over one item set (each task its
// own Markov chain, so the tasks conflict), then fine-tuned on each task from the base (`init.from`, AdamW, with
// statistics every few steps, so each checkpoint has its v row/column sums beside it). Validation = each task's
// held-out split; test = the data source's test split, fresh sequences of the same task (synthetic-tasks draws
// them from a seed of their own). Each task's config is written as task-<t>.basin.yaml in the study's folder, so
// `basin eval <model> --task task-*.basin.yaml` there gives the same figures. The metric is next-item accuracy. The UMTAM claims are tested as they come out: curvature ≥ TIES ≥ task arithmetic on the mean, and
// curvature within 1 point of Fisher without a data pass.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseConfig } from '../src/files/config/load';
import { parseMergeConfig } from '../src/files/merge/config';
import { planMerge } from '../src/files/merge/plan';
import { mergeMethodRegistry } from '../src/files/registry/merge-methods';
import type { RegistryEntry } from '../src/files/registry/entry';
import { GpuDevice } from '../src/engine/gpu/device';
import { Runtime } from '../src/engine/gpu/runtime';
import { executeMerge } from '../src/engine/merge/execute';
import { WeightsEvaluator } from '../src/engine/train/eval-weights';
import { train } from '../src/engine/train/trainer';
import { gitCommit } from './report';

export interface MergeStudyOptions {
  json: boolean;
  quick?: boolean;
  log(s: string): void;
  /** Keep the runs and merged models here (default: a temporary folder, removed at the end). */
  out?: string;
  /**
   * Only train the base and the experts into `out` and write `out/experts.merge.yaml` over them (a curvature merge),
   * to open in the merge panel or run with `basin merge`: no merges, no table.
   */
  expertsOnly?: boolean;
}

const TASKS = 4;

const modelSection = 'model: { type: transformer, vocab: 48, dModel: 32, layers: 2, heads: 2, seqLen: 12, dropout: 0 }';
const dataSection = (task: number | null, seed: number, sequences: number) =>
  `data: { type: synthetic-tasks, tasks: ${TASKS}, ${task === null ? '' : `task: ${task}, `}sequences: ${sequences}, branching: 2, noise: 0.05, seed: ${seed}, validFraction: 0.15 }`;

function trainYaml(name: string, task: number | null, steps: number, lr: number, init: string | null): string {
  return [
    `name: ${name}`,
    'seed: 1',
    modelSection,
    dataSection(task, 1, task === null ? 2400 : 900),
    init ? `init: { from: ${JSON.stringify(init)} }` : '',
    `train: { steps: ${steps}, batchSize: 32, optimizer: { type: adamw, lr: ${lr} }, schedule: { type: cosine, warmup: ${Math.min(20, steps >> 3)} }, evalEvery: 0, checkpointEvery: 0, statsEvery: ${Math.max(10, steps >> 2)}, logEvery: 50 }`,
  ].join('\n');
}

/** The evaluation config of task t: the data its expert trained on, whose validation and test splits are scored. */
function evalYaml(task: number): string {
  return [`name: task-${task}`, 'seed: 1', modelSection, dataSection(task, 1, 900), 'train: { steps: 1, batchSize: 64 }'].join('\n');
}

/**
 * A merge config over the study's experts (paths relative to the config, so the folder can move): the curvature
 * merge at the study's defaults, one comment per expert naming its task.
 */
function expertsMergeYaml(work: string, base: string, experts: string[]): string {
  const rel = (p: string) => './' + path.relative(work, p).split(path.sep).join('/');
  return [
    `# The merge study's experts (basin study merge --experts-only): one base trained on a mixture of ${TASKS} next-item`,
    '# tasks, then fine-tuned on each task with AdamW statistics beside every checkpoint.',
    'merge_method: curvature',
    `base_model: ${rel(base)}`,
    'models:',
    ...experts.map((e, t) => `  - model: ${rel(e)}   # task ${t}`),
    'parameters:',
    '  density: 0.2',
    '  lambda: 1.0',
    'basin:',
    '  output: ./merged/experts',
    '',
  ].join('\n');
}

interface Setting {
  label: string;
  global: Record<string, number>;
}

/** The settings tried per method (validation picks one). Trim ratios of the curvature method: the paper's. */
function grid(method: string, quick: boolean): Setting[] | { why: string } {
  const lam = quick ? [1] : [0.7, 1];
  const cross = (densities: number[], extra: Record<string, number> = {}) =>
    densities.flatMap((density) => lam.map((lambda) => ({ label: `density ${density}, λ ${lambda}`, global: { density, lambda, ...extra } })));
  switch (method) {
    case 'linear':
    case 'model_stock':
    case 'multislerp':
      return [{ label: 'defaults', global: {} }];
    case 'slerp':
      return { why: 'interpolates two models; this study merges four experts' };
    case 'task_arithmetic':
      return (quick ? [0.5, 1] : [0.3, 0.5, 0.7, 1]).map((lambda) => ({ label: `λ ${lambda}`, global: { lambda } }));
    case 'ties':
      return cross(quick ? [0.2, 0.6] : [0.2, 0.4, 0.6, 0.8]);
    case 'dare_linear':
    case 'dare_ties':
      return cross(quick ? [0.5] : [0.3, 0.5, 0.7], { seed: 1 });
    case 'breadcrumbs':
    case 'breadcrumbs_ties':
      return cross(quick ? [0.6] : [0.5, 0.8], { gamma: 0.01 });
    case 'della':
      return cross(quick ? [0.5] : [0.4, 0.6], { epsilon: 0.1, seed: 1 });
    case 'curvature':
      return cross(quick ? [0.1, 0.4] : [0.05, 0.1, 0.2, 0.4, 0.6, 0.8]);
    case 'fisher':
      return [{ label: `${quick ? 4 : 16} batches`, global: { batches: quick ? 4 : 16 } }];
    case 'regmean':
      return (quick ? [0.9] : [0.5, 0.9, 1]).map((alpha) => ({ label: `α ${alpha}, ${quick ? 4 : 16} batches`, global: { alpha, batches: quick ? 4 : 16 } }));
    default:
      return { why: 'no grid defined' };
  }
}

interface Row {
  method: string;
  setting: string | null;
  needsData: boolean;
  /** Test accuracy per task, and their mean. */
  test: number[] | null;
  testMean: number | null;
  validMean: number | null;
  /** Seconds per merge (the chosen setting). */
  mergeSeconds: number | null;
  settingsTried: number;
  why?: string;
}

export async function runMergeStudy(o: MergeStudyOptions): Promise<object> {
  const t0 = performance.now();
  const work = o.out ? path.resolve(o.out) : fs.mkdtempSync(path.join(os.tmpdir(), 'basin-study-merge-'));
  fs.mkdirSync(work, { recursive: true });
  const gpu = await GpuDevice.create();
  const rt = new Runtime(gpu);
  const evaluators: WeightsEvaluator[] = [];
  try {
    const quick = !!o.quick;
    const runs = path.join(work, 'runs');
    const trainRun = async (name: string, yaml: string) => {
      const file = path.join(work, `${name}.basin.yaml`);
      fs.writeFileSync(file, yaml + '\n');
      const r = await train({ rt, config: parseConfig(yaml, file), configPath: file, outputDir: runs });
      return r.runDir;
    };
    o.log(`merge study in ${work}: base on a mixture of ${TASKS} tasks, then one fine-tune per task`);
    const base = await trainRun('base', trainYaml('base', null, quick ? 150 : 400, 0.01, null));
    const experts: string[] = [];
    for (let t = 0; t < TASKS; t++) {
      o.log(`  expert ${t}`);
      experts.push(await trainRun(`expert-${t}`, trainYaml(`expert-${t}`, t, quick ? 80 : 200, 0.003, base)));
    }
    if (o.expertsOnly) {
      const file = path.join(work, 'experts.merge.yaml');
      fs.writeFileSync(file, expertsMergeYaml(work, base, experts));
      return { bench: 'study-merge', when: new Date().toISOString(), commit: gitCommit(), expertsOnly: true, base, experts, mergeConfig: file, setup: { tasks: TASKS, model: modelSection, quick, seconds: (performance.now() - t0) / 1000 } };
    }
    for (let t = 0; t < TASKS; t++) {
      const f = path.join(work, `task-${t}.basin.yaml`);
      fs.writeFileSync(f, evalYaml(t) + '\n');
      evaluators.push(await WeightsEvaluator.create(rt, parseConfig(evalYaml(t), f), f));
    }
    const score = async (file: string, split: 'valid' | 'test') => {
      const acc: number[] = [];
      for (const ev of evaluators) {
        const m = split === 'valid' ? await ev.evaluate(file) : await ev.evaluateTest(file);
        if (!m) throw new Error(`the study's task data has no test split (${ev.config.data.type})`);
        acc.push(m.accuracy);
      }
      return acc;
    };
    const mean = (a: number[]) => a.reduce((x, y) => x + y, 0) / a.length;
    const latest = (runDir: string) => {
      const ck = fs.readdirSync(path.join(runDir, 'checkpoints')).filter((f) => /^step-\d+\.safetensors$/.test(f));
      ck.sort((a, b) => Number(a.match(/\d+/)![0]) - Number(b.match(/\d+/)![0]));
      return path.join(runDir, 'checkpoints', ck[ck.length - 1]);
    };

    const rows: Row[] = [];
    const baseTest = await score(latest(base), 'test');
    rows.push({ method: 'base (no merge)', setting: null, needsData: false, test: baseTest, testMean: mean(baseTest), validMean: mean(await score(latest(base), 'valid')), mergeSeconds: null, settingsTried: 0 });
    // Each expert on every task, and the oracle: each task scored by its own expert (what a merge aims for).
    const own: number[] = [];
    for (let t = 0; t < TASKS; t++) {
      const test = await score(latest(experts[t]), 'test');
      own.push(test[t]);
      rows.push({ method: `expert ${t}`, setting: null, needsData: false, test, testMean: mean(test), validMean: null, mergeSeconds: null, settingsTried: 0 });
    }
    rows.push({ method: 'experts, each on its own task', setting: null, needsData: false, test: own, testMean: mean(own), validMean: null, mergeSeconds: null, settingsTried: 0 });

    for (const entry of mergeMethodRegistry.entries as readonly RegistryEntry[]) {
      const g = grid(entry.name, quick);
      const needsData = !!entry.needs?.data;
      if ('why' in g) {
        rows.push({ method: entry.name, setting: null, needsData, test: null, testMean: null, validMean: null, mergeSeconds: null, settingsTried: 0, why: g.why });
        continue;
      }
      let best: { s: Setting; valid: number; file: string; seconds: number } | null = null;
      let failure: string | null = null;
      for (const [i, s] of g.entries()) {
        const yaml = [
          `merge_method: ${entry.name}`,
          entry.needs?.base ? `base_model: ${JSON.stringify(base)}` : '',
          'models:',
          ...experts.map((e) => `  - model: ${JSON.stringify(e)}`),
          `parameters: ${JSON.stringify(s.global)}`,
        ].join('\n');
        const file = path.join(work, `${entry.name}-${i}.merge.yaml`);
        fs.writeFileSync(file, yaml + '\n');
        const out = path.join(work, 'merged', `${entry.name}-${i}`);
        const m0 = performance.now();
        let valid: number;
        let seconds: number;
        try {
          const plan = await planMerge(parseMergeConfig(yaml, file));
          await executeMerge({ rt, plan, outDir: out, force: true });
          seconds = (performance.now() - m0) / 1000;
          valid = mean(await score(path.join(out, 'model.safetensors'), 'valid'));
        } catch (e) {
          // A method that fails is a finding, not the end of the study: its row says why.
          o.log(`  ${entry.name} ${s.label}: failed: ${(e as Error).message}`);
          failure ??= (e as Error).message;
          continue;
        }
        o.log(`  ${entry.name} ${s.label}: valid ${(100 * valid).toFixed(2)}%`);
        if (!best || valid > best.valid) best = { s, valid, file: path.join(out, 'model.safetensors'), seconds };
      }
      if (!best) {
        rows.push({ method: entry.name, setting: null, needsData, test: null, testMean: null, validMean: null, mergeSeconds: null, settingsTried: g.length, why: `failed: ${failure}` });
        continue;
      }
      const test = await score(best.file, 'test');
      rows.push({ method: entry.name, setting: best.s.label, needsData, test, testMean: mean(test), validMean: best.valid, mergeSeconds: best.seconds, settingsTried: g.length, ...(failure ? { why: `some settings failed: ${failure}` } : {}) });
    }

    const get = (m: string) => rows.find((r) => r.method === m)?.testMean ?? null;
    const pts = (a: number | null, b: number | null) => (a === null || b === null ? null : Math.round(10000 * (a - b)) / 100);
    const curv = get('curvature');
    const ties = get('ties');
    const ta = get('task_arithmetic');
    const fisher = get('fisher');
    const claims = [
      { claim: 'curvature ≥ TIES (mean test accuracy)', holds: curv !== null && ties !== null ? curv >= ties : null, points: pts(curv, ties) },
      { claim: 'TIES ≥ task arithmetic', holds: ties !== null && ta !== null ? ties >= ta : null, points: pts(ties, ta) },
      { claim: 'curvature within 1 point of Fisher (or better) without a data pass', holds: curv !== null && fisher !== null ? curv >= fisher - 0.01 : null, points: pts(curv, fisher) },
    ];
    return {
      bench: 'study-merge',
      when: new Date().toISOString(),
      commit: gitCommit(),
      device: { vendor: gpu.info.vendor, description: gpu.info.description, backend: gpu.info.backend, fallback: gpu.info.fallback },
      peers: [],
      setup: { tasks: TASKS, model: modelSection, metric: 'next-item accuracy', quick, seconds: (performance.now() - t0) / 1000 },
      rows,
      claims,
      headline: { curvature_minus_ties_pts: pts(curv, ties), ties_minus_task_arithmetic_pts: pts(ties, ta), curvature_minus_fisher_pts: pts(curv, fisher) },
    };
  } finally {
    for (const e of evaluators) e.destroy();
    gpu.destroy();
    if (!o.out) fs.rmSync(work, { recursive: true, force: true });
  }
}

export function formatMergeStudy(report: object): string {
  const r = report as { rows: Row[]; claims: { claim: string; holds: boolean | null; points: number | null; why?: string }[]; setup: { seconds: number; quick: boolean } };
  const pct = (x: number | null | undefined) => (x === null || x === undefined ? '—' : `${(100 * x).toFixed(1)}`);
  const lines = [`merge study: next-item accuracy (%) on each task's test split; settings chosen on validation${r.setup.quick ? ' (quick)' : ''}`];
  const head = `${'method'.padEnd(30)} ${'setting'.padEnd(20)} ${Array.from({ length: TASKS }, (_, t) => `task ${t}`.padStart(7)).join(' ')} ${'mean'.padStart(6)} ${'valid'.padStart(6)} ${'merge s'.padStart(8)}  data?`;
  lines.push(head, '-'.repeat(head.length));
  for (const x of r.rows) {
    const tasks = x.test ? x.test.map((v) => pct(v).padStart(7)).join(' ') : Array.from({ length: TASKS }, () => '—'.padStart(7)).join(' ');
    lines.push(
      `${x.method.padEnd(30)} ${(x.setting ?? (x.why ? 'n/a' : '')).padEnd(20)} ${tasks} ${pct(x.testMean).padStart(6)} ${pct(x.validMean).padStart(6)} ${(x.mergeSeconds === null ? '—' : x.mergeSeconds.toFixed(2)).padStart(8)}  ${x.needsData ? 'yes' : 'no'}${x.why ? `  (${x.why})` : ''}`,
    );
  }
  lines.push('', 'claims (UMTAM), as measured:');
  for (const c of r.claims) lines.push(`  ${c.holds === null ? 'not tested' : c.holds ? 'holds     ' : 'FAILS     '}  ${c.claim}${c.points === null ? '' : ` (${c.points >= 0 ? '+' : ''}${c.points} points)`}${c.why ? ` — ${c.why}` : ''}`);
  lines.push(`(${r.setup.seconds.toFixed(0)} s)`);
  return lines.join('\n');
}
