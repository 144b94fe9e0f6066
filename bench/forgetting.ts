// `basin bench forgetting`: catastrophic forgetting over two tasks in sequence, and what EWC from stored curvature
// and replay keep of task 1.
//
// Tasks: `synthetic-tasks` with `tasks: 2` — two next-item Markov chains over one item set with conflicting rules
// (task index 0 is "task 1" here, index 1 is "task 2"). A model trains on task 1 from scratch (AdamW, with
// statistics, so its checkpoint has the v row/column sums EWC needs), then continues on task 2 from those weights
// (`init.from`) three ways, same steps and lr:
//   plain   — fine-tuning on task 2 alone;
//   EWC     — plus `train.ewc: { from: task-1 run, lambda }` (src/engine/train/ewc.ts), λ from a small grid, the one
//             with the best mean validation accuracy over both tasks (the table shows every λ);
//   replay  — fine-tuning on the 2-task mixture (`tasks: 2` with no `task`: half task-1 sequences, half task-2; the
//             task-1 half is the same stored training split task 1 was trained on — the task's rules depend only on
//             taskSeed and its index, its sequences on seed and its index — so this is replay of the old data, not
//             new task-1 data). No data-source change was needed.
// Scores: next-item accuracy on fresh test sequences of each task (data seed 2); λ is chosen on the validation
// splits (seed 1). Retained = task-1 accuracy after task 2 ÷ task-1 accuracy before.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseConfig } from '../src/files/config/load';
import { GpuDevice } from '../src/engine/gpu/device';
import { Runtime } from '../src/engine/gpu/runtime';
import { WeightsEvaluator } from '../src/engine/train/eval-weights';
import { train } from '../src/engine/train/trainer';
import { gitCommit } from './report';

export interface ForgettingOptions {
  json: boolean;
  quick?: boolean;
  log(s: string): void;
}

/** after ÷ before (1: nothing forgotten); null when before is not positive (nothing was learnt to forget). */
export function retainedFraction(before: number, after: number): number | null {
  if (!(before > 0) || !Number.isFinite(after)) return null;
  return after / before;
}

/** The index of the best mean of two scores (ties: the first); -1 for an empty list. */
export function pickBest(scores: readonly (readonly [number, number])[]): number {
  let best = -1;
  let bestMean = -Infinity;
  scores.forEach(([a, b], i) => {
    const m = (a + b) / 2;
    if (m > bestMean) {
      bestMean = m;
      best = i;
    }
  });
  return best;
}

const SEQUENCES = 900;
const modelSection = 'model: { type: transformer, vocab: 48, dModel: 32, layers: 2, heads: 2, seqLen: 12, dropout: 0 }';
const dataSection = (task: number | null, seed: number, sequences: number) =>
  `data: { type: synthetic-tasks, tasks: 2, ${task === null ? '' : `task: ${task}, `}sequences: ${sequences}, branching: 2, noise: 0.05, seed: ${seed}, validFraction: 0.15 }`;

function trainYaml(name: string, task: number | null, steps: number, lr: number, init: string | null, ewc: { from: string; lambda: number } | null): string {
  return [
    `name: ${name}`,
    'seed: 1',
    modelSection,
    // The replay mixture takes SEQUENCES per task, so its task-1 half is exactly task 1's own data (same splits).
    dataSection(task, 1, task === null ? 2 * SEQUENCES : SEQUENCES),
    init ? `init: { from: ${JSON.stringify(init)} }` : '',
    `train: { steps: ${steps}, batchSize: 32, optimizer: { type: adamw, lr: ${lr} }, schedule: { type: cosine, warmup: ${Math.min(20, steps >> 3)} }, ${ewc ? `ewc: { from: ${JSON.stringify(ewc.from)}, lambda: ${ewc.lambda} }, ` : ''}evalEvery: 0, checkpointEvery: 0, statsEvery: ${Math.max(10, steps >> 2)}, logEvery: 50 }`,
  ].join('\n');
}

function evalYaml(task: number, split: 'valid' | 'test'): string {
  return ['name: eval', 'seed: 1', modelSection, dataSection(task, split === 'valid' ? 1 : 2, SEQUENCES), 'train: { steps: 1, batchSize: 64 }'].join('\n');
}

interface Row {
  method: string;
  setting: string | null;
  /** Test accuracy on task 1 and task 2. */
  task1: number;
  task2: number;
  /** Validation accuracy on task 1 and task 2 (what chose λ). */
  valid1: number;
  valid2: number;
  retained: number | null;
  chosen?: boolean;
}

export async function runForgettingBench(o: ForgettingOptions): Promise<object> {
  const t0 = performance.now();
  const quick = !!o.quick;
  const steps1 = quick ? 150 : 400;
  const steps2 = quick ? 100 : 300;
  const lambdas = quick ? [1, 3, 10, 30] : [0.3, 1, 3, 10, 30, 100];
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-forgetting-'));
  const gpu = await GpuDevice.create();
  const rt = new Runtime(gpu);
  const evaluators: WeightsEvaluator[] = [];
  try {
    const runs = path.join(work, 'runs');
    const trainRun = async (name: string, yaml: string) => {
      const file = path.join(work, `${name}.basin.yaml`);
      fs.writeFileSync(file, yaml + '\n');
      const r = await train({ rt, config: parseConfig(yaml, file), configPath: file, outputDir: runs });
      return r.runDir;
    };
    const evaluator = async (task: number, split: 'valid' | 'test') => {
      const f = path.join(work, `task-${task}-${split}.basin.yaml`);
      fs.writeFileSync(f, evalYaml(task, split) + '\n');
      const ev = await WeightsEvaluator.create(rt, parseConfig(evalYaml(task, split), f), f);
      evaluators.push(ev);
      return ev;
    };
    const [test1, test2, valid1, valid2] = [await evaluator(0, 'test'), await evaluator(1, 'test'), await evaluator(0, 'valid'), await evaluator(1, 'valid')];
    const latest = (runDir: string) => {
      const ck = fs.readdirSync(path.join(runDir, 'checkpoints')).filter((f) => /^step-\d+\.safetensors$/.test(f));
      ck.sort((a, b) => Number(a.match(/\d+/)![0]) - Number(b.match(/\d+/)![0]));
      return path.join(runDir, 'checkpoints', ck[ck.length - 1]);
    };
    const score = async (runDir: string) => {
      const f = latest(runDir);
      return {
        task1: (await test1.evaluate(f)).accuracy,
        task2: (await test2.evaluate(f)).accuracy,
        valid1: (await valid1.evaluate(f)).accuracy,
        valid2: (await valid2.evaluate(f)).accuracy,
      };
    };

    o.log(`forgetting bench in ${work}: task 1 (${steps1} steps), then task 2 (${steps2} steps) three ways`);
    const first = await trainRun('task1', trainYaml('task1', 0, steps1, 0.01, null, null));
    const before = await score(first);
    const rows: Row[] = [{ method: 'after task 1 (before task 2)', setting: null, ...before, retained: 1 }];
    const row = (method: string, setting: string | null, s: typeof before): Row => ({ method, setting, ...s, retained: retainedFraction(before.task1, s.task1) });
    const log = (r: Row) => o.log(`  ${r.method}${r.setting ? ` (${r.setting})` : ''}: task 1 ${(100 * r.task1).toFixed(1)}%, task 2 ${(100 * r.task2).toFixed(1)}%`);
    log(rows[0]);

    const lr2 = 0.003;
    rows.push(row('plain fine-tuning', null, await score(await trainRun('plain', trainYaml('plain', 1, steps2, lr2, first, null)))));
    log(rows[rows.length - 1]);
    const ewcRows: Row[] = [];
    for (const lambda of lambdas) {
      const r = row('EWC (stored curvature)', `λ ${lambda}`, await score(await trainRun(`ewc-${lambda}`, trainYaml(`ewc-${lambda}`, 1, steps2, lr2, first, { from: first, lambda }))));
      ewcRows.push(r);
      rows.push(r);
      log(r);
    }
    const chosen = ewcRows[pickBest(ewcRows.map((r) => [r.valid1, r.valid2] as const))];
    chosen.chosen = true;
    rows.push(row('replay (2-task mixture)', '½ task 1, ½ task 2', await score(await trainRun('replay', trainYaml('replay', null, steps2, lr2, first, null)))));
    log(rows[rows.length - 1]);

    const plain = rows[1];
    const replay = rows[rows.length - 1];
    const round = (x: number | null) => (x === null ? null : Math.round(x * 1e4) / 1e4);
    return {
      bench: 'forgetting',
      when: new Date().toISOString(),
      commit: gitCommit(),
      device: { vendor: gpu.info.vendor, description: gpu.info.description, backend: gpu.info.backend, fallback: gpu.info.fallback },
      peers: [],
      setup: {
        tasks: 'synthetic-tasks, tasks: 2 (index 0 = task 1, index 1 = task 2), branching 2, noise 0.05',
        model: modelSection,
        steps: { task1: steps1, task2: steps2 },
        lr: { task1: 0.01, task2: lr2 },
        lambdas,
        lambdaChosenBy: 'best mean validation accuracy over both tasks',
        metric: 'next-item accuracy on fresh test sequences (data seed 2); retained = task-1 accuracy after ÷ before',
        quick,
        seconds: (performance.now() - t0) / 1000,
      },
      rows,
      headline: {
        task1_retained_plain: round(plain.retained),
        task1_retained_ewc: round(chosen.retained),
        task1_retained_replay: round(replay.retained),
        ewc_lambda: Number(chosen.setting!.replace('λ ', '')),
        task2_acc_plain: round(plain.task2),
        task2_acc_ewc: round(chosen.task2),
        task2_acc_replay: round(replay.task2),
      },
    };
  } finally {
    for (const e of evaluators) e.destroy();
    gpu.destroy();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

export function formatForgettingReport(report: object): string {
  const r = report as { rows: Row[]; setup: { quick: boolean; seconds: number; steps: { task1: number; task2: number } } };
  const pct = (x: number) => (100 * x).toFixed(1);
  const lines = [`forgetting: next-item test accuracy (%) on task 1 and task 2, task 1 (${r.setup.steps.task1} steps) then task 2 (${r.setup.steps.task2} steps)${r.setup.quick ? ' (quick)' : ''}`];
  const head = `${'method'.padEnd(30)} ${'setting'.padEnd(20)} ${'task 1'.padStart(7)} ${'task 2'.padStart(7)} ${'retained'.padStart(9)} ${'val 1'.padStart(6)} ${'val 2'.padStart(6)}`;
  lines.push(head, '-'.repeat(head.length));
  for (const x of r.rows) {
    lines.push(
      `${x.method.padEnd(30)} ${(x.setting ?? '').padEnd(20)} ${pct(x.task1).padStart(7)} ${pct(x.task2).padStart(7)} ${(x.retained === null ? '—' : x.retained.toFixed(3)).padStart(9)} ${pct(x.valid1).padStart(6)} ${pct(x.valid2).padStart(6)}${x.chosen ? '  ← chosen λ' : ''}`,
    );
  }
  lines.push(`(${r.setup.seconds.toFixed(0)} s)`);
  return lines.join('\n');
}
