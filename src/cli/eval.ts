// `basin eval <model…> --task <config…>`: every model on every task's validation and test splits, a table per
// split. A model is a run folder (its latest checkpoint), a checkpoint, a merged model (its folder: one file or
// shards) or any safetensors file of the tasks' architecture; a task is a training config (model, data, loss).
// Data with a test split (the interactions source's held-out targets, synthetic-tasks' fresh sequences) has test
// figures; other tasks are listed as having none.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadConfig } from '../files/config/load';
import { GpuDevice } from '../engine/gpu/device';
import { Runtime } from '../engine/gpu/runtime';
import { WeightsEvaluator } from '../engine/train/eval-weights';
import { resolveInitSource } from '../engine/train/fine-tune';
import type { EvalMetrics } from '../engine/train/evaluate';

export interface EvalCommandOptions {
  task: string[];
  json?: boolean;
  metric?: string;
  /** Which splits to score: validation, test or both (the default). */
  split?: string;
}

export type EvalSplit = 'validation' | 'test';
const SPLITS: Record<string, EvalSplit[]> = { validation: ['validation'], test: ['test'], both: ['validation', 'test'] };

/** A model argument → its weights file (a merged model's folder: model.safetensors, or its shards' index). */
export async function weightsFileOf(arg: string): Promise<string> {
  return (await resolveInitSource(path.resolve(arg))).file;
}

export async function evalCommand(models: string[], opts: EvalCommandOptions): Promise<void> {
  if (!opts.task?.length) throw new Error('give at least one task: --task <config.basin.yaml>');
  const splits = SPLITS[opts.split ?? 'both'];
  if (!splits) throw new Error(`--split must be one of ${Object.keys(SPLITS).join(', ')}, got "${opts.split}"`);
  const tasks = opts.task.map((f) => ({ file: f, ...loadConfig(f) }));
  const files = await Promise.all(models.map(weightsFileOf));
  const gpu = await GpuDevice.create();
  const rt = new Runtime(gpu);
  const results: { model: string; task: string; split: EvalSplit; metrics: EvalMetrics }[] = [];
  const withoutTest: string[] = [];
  try {
    for (const t of tasks) {
      const ev = await WeightsEvaluator.create(rt, t.config, t.path);
      try {
        if (splits.includes('test') && !ev.hasTest) withoutTest.push(`${t.file} (data ${t.config.data.type})`);
        for (let i = 0; i < files.length; i++) {
          process.stderr.write(`basin: ${models[i]} on ${t.file}\n`);
          if (splits.includes('validation')) results.push({ model: models[i], task: t.file, split: 'validation', metrics: await ev.evaluate(files[i]) });
          const test = splits.includes('test') ? await ev.evaluateTest(files[i]) : null;
          if (test) results.push({ model: models[i], task: t.file, split: 'test', metrics: test });
        }
      } finally {
        ev.destroy();
      }
    }
  } finally {
    gpu.destroy();
  }
  if (opts.json) {
    process.stdout.write(JSON.stringify({ results, withoutTestSplit: withoutTest }) + '\n');
    return;
  }
  const metric = (opts.metric ?? 'accuracy') as keyof EvalMetrics;
  const fmt = (v: number | undefined) => (v === undefined ? '—' : metric === 'loss' ? v.toFixed(4) : `${(100 * v).toFixed(1)}%`);
  const taskNames = tasks.map((t) => path.basename(t.file).replace(/\.basin\.(ya?ml|json)$/i, ''));
  const w = Math.max(5, ...models.map((m) => m.length));
  const lines: string[] = [];
  for (const split of splits) {
    if (split === 'test' && withoutTest.length === tasks.length) continue; // no task has one: said below
    if (lines.length) lines.push('');
    lines.push(`${metric} on each task's ${split} split`, `${'model'.padEnd(w)}  ${taskNames.map((n) => n.padStart(12)).join('  ')}  ${'mean'.padStart(8)}`);
    for (const m of models) {
      const vals = tasks.map((t) => results.find((r) => r.model === m && r.task === t.file && r.split === split)?.metrics[metric] as number | undefined);
      const mean = vals.every((v) => v !== undefined) ? vals.reduce((a, b) => a + b!, 0) / vals.length : undefined;
      lines.push(`${m.padEnd(w)}  ${vals.map((v) => fmt(v).padStart(12)).join('  ')}  ${fmt(mean).padStart(8)}`);
    }
  }
  if (withoutTest.length) lines.push('', `no test split (the interactions source holds one out, synthetic-tasks draws fresh sequences; this data has none): ${withoutTest.join(', ')}`);
  process.stdout.write(lines.join('\n') + '\n');
}
