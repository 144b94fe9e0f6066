// `eval-weights`: every model on every task's validation split (the merge panel's Evaluate: the merged model, its
// base and its experts on each expert's task). A task is a training config file or a run folder (its recorded
// config); a model is a weights file, a folder with model.safetensors, or a run folder (its latest checkpoint, or
// the merged twin of a LoRA run). One evaluator per task: its data and model are built once.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { EvalWeightsJobProgress } from '../../protocol/worker';
import { loadConfig } from '../../files/config/load';
import { RUN_FILE, openRun } from '../../files/run-record';
import { runConfig } from '../../engine/train/eval-checkpoint';
import { WeightsEvaluator } from '../../engine/train/eval-weights';
import { resolveInitSource } from '../../engine/train/fine-tune';
import { settleMergeFolder } from '../../files/merge/merge-commit';
import type { TrainConfig } from '../../files/config/schema';
import { InvalidJobParamsError, JobCancelledError, type JobHandler } from './context';
import { withGpu } from './gpu';

async function taskConfig(p: string): Promise<{ config: TrainConfig; configPath?: string }> {
  if (fs.existsSync(path.join(p, RUN_FILE))) return runConfig(await openRun(p));
  const { config, path: file } = loadConfig(p);
  return { config, configPath: file };
}

async function weightsOf(p: string): Promise<string> {
  settleMergeFolder(p); // which file is the model is read next: a merge killed while moving its files in is finished first
  if (fs.existsSync(path.join(p, 'model.safetensors'))) return path.join(p, 'model.safetensors');
  return (await resolveInitSource(p)).file;
}

export const evalWeightsJob: JobHandler<'eval-weights'> = async (params, ctx) => {
  const list = (name: string, v: unknown) => {
    if (!Array.isArray(v) || !v.length || !v.every((x) => typeof x === 'string' && path.isAbsolute(x))) {
      throw new InvalidJobParamsError(`${name} must be a non-empty list of absolute paths`);
    }
    return v as string[];
  };
  const models = list('models', params?.models);
  const taskPaths = list('tasks', params?.tasks);
  let files: string[];
  let tasks: { config: TrainConfig; configPath?: string }[];
  try {
    files = await Promise.all(models.map(weightsOf));
    tasks = await Promise.all(taskPaths.map(taskConfig));
  } catch (e) {
    throw new InvalidJobParamsError((e as Error).message);
  }
  const total = files.length * tasks.length;
  return withGpu(ctx, (): EvalWeightsJobProgress => ({ phase: 'queued', done: 0, total }), async (rt) => {
    const results: Record<string, number>[][] = [];
    let done = 0;
    for (const t of tasks) {
      const ev = await WeightsEvaluator.create(rt, t.config, t.configPath);
      try {
        const row: Record<string, number>[] = [];
        for (const f of files) {
          if (ctx.token.isCancellationRequested) throw new JobCancelledError(ctx.jobId);
          row.push({ ...(await ev.evaluate(f)) } as Record<string, number>);
          done++;
          ctx.progress({ phase: 'evaluating', done, total }, { fraction: done / total, message: `${done}/${total} evaluations` });
        }
        results.push(row);
      } finally {
        ev.destroy();
      }
    }
    return { results };
  });
};
