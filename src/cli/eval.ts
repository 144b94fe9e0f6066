// `basin eval <model…> --task <config…>`: every model on every task's validation split, one table. A model is a
// run folder (its latest checkpoint), a checkpoint, a merged model (model.safetensors or its folder) or any
// safetensors file of the tasks' architecture; a task is a training config (model, data, loss).
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
}

/** A model argument → its weights file (a merged model's folder holds model.safetensors). */
export async function weightsFileOf(arg: string): Promise<string> {
  const p = path.resolve(arg);
  if (fs.existsSync(path.join(p, 'model.safetensors'))) return path.join(p, 'model.safetensors');
  if (fs.existsSync(path.join(p, 'model.safetensors.index.json'))) {
    throw new Error(`${arg} is a sharded model: basin eval reads single-file models (merge with a larger basin.maxShardBytes)`);
  }
  return (await resolveInitSource(p)).file;
}

export async function evalCommand(models: string[], opts: EvalCommandOptions): Promise<void> {
  if (!opts.task?.length) throw new Error('give at least one task: --task <config.basin.yaml>');
  const tasks = opts.task.map((f) => ({ file: f, ...loadConfig(f) }));
  const files = await Promise.all(models.map(weightsFileOf));
  const gpu = await GpuDevice.create();
  const rt = new Runtime(gpu);
  const results: { model: string; task: string; metrics: EvalMetrics }[] = [];
  try {
    for (const t of tasks) {
      const ev = await WeightsEvaluator.create(rt, t.config, t.path);
      try {
        for (let i = 0; i < files.length; i++) {
          process.stderr.write(`basin: ${models[i]} on ${t.file}\n`);
          results.push({ model: models[i], task: t.file, metrics: await ev.evaluate(files[i]) });
        }
      } finally {
        ev.destroy();
      }
    }
  } finally {
    gpu.destroy();
  }
  if (opts.json) {
    process.stdout.write(JSON.stringify({ results }) + '\n');
    return;
  }
  const metric = (opts.metric ?? 'accuracy') as keyof EvalMetrics;
  const fmt = (v: number | undefined) => (v === undefined ? '—' : metric === 'loss' ? v.toFixed(4) : `${(100 * v).toFixed(1)}%`);
  const taskNames = tasks.map((t) => path.basename(t.file).replace(/\.basin\.(ya?ml|json)$/i, ''));
  const w = Math.max(5, ...models.map((m) => m.length));
  const lines = [`${metric} on each task's validation split`, `${'model'.padEnd(w)}  ${taskNames.map((n) => n.padStart(12)).join('  ')}  ${'mean'.padStart(8)}`];
  for (const m of models) {
    const vals = tasks.map((t) => results.find((r) => r.model === m && r.task === t.file)!.metrics[metric] as number | undefined);
    const mean = vals.every((v) => v !== undefined) ? vals.reduce((a, b) => a + b!, 0) / vals.length : undefined;
    lines.push(`${m.padEnd(w)}  ${vals.map((v) => fmt(v).padStart(12)).join('  ')}  ${fmt(mean).padStart(8)}`);
  }
  process.stdout.write(lines.join('\n') + '\n');
}
