// What `basin prune <input>` and the prune-sweep job prune: a run folder (its latest checkpoint), a checkpoint
// inside a run folder (`<run>/checkpoints/step-<n>.safetensors`), or a training config (the newest run of that
// config with a checkpoint, under the config's output folder). The run's run.json records the model and data
// config the evaluation and the calibration pass need; a bare safetensors file outside a run folder has none.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadConfig } from '../../files/config/load';
import type { TrainConfig } from '../../files/config/schema';
import { listRuns, modelWeightsFile, openRun, RUN_FILE, type RunFolder } from '../../files/run-record';
import { CheckpointNotFoundError, findCheckpoint, runConfig } from '../train/eval-checkpoint';

export interface PruneSource {
  run: RunFolder;
  config: TrainConfig;
  configPath: string | undefined;
  /** Absolute path of the weights. */
  checkpoint: string;
  step: number;
  /** `stats/step-<n>.safetensors` of that step (absolute), whether or not it exists. */
  statsFile: string;
}

export async function resolvePruneSource(input: string, opts: { step?: number } = {}): Promise<PruneSource> {
  const abs = path.resolve(input);
  if (!fs.existsSync(abs)) throw new CheckpointNotFoundError(`${input} does not exist (give a run folder, a checkpoint in one, or a training config)`);
  let runDir: string;
  let step = opts.step;
  if (fs.statSync(abs).isDirectory()) {
    if (!fs.existsSync(path.join(abs, RUN_FILE))) throw new CheckpointNotFoundError(`${input} is a folder without ${RUN_FILE}: not a run folder`);
    runDir = abs;
  } else if (abs.endsWith('.safetensors')) {
    const parent = path.dirname(path.dirname(abs));
    const m = /^step-(\d+)\.safetensors$/.exec(path.basename(abs));
    if (!m || path.basename(path.dirname(abs)) !== 'checkpoints' || !fs.existsSync(path.join(parent, RUN_FILE))) {
      throw new CheckpointNotFoundError(
        `${input} is not a checkpoint inside a run folder (<run>/checkpoints/step-<n>.safetensors): pruning evaluates the model, and only the run's ${RUN_FILE} records its config`,
      );
    }
    runDir = parent;
    step = Number(m[1]);
  } else {
    const { config, path: cfgPath } = loadConfig(abs);
    const outDir = path.resolve(path.dirname(cfgPath), config.output ?? 'runs');
    const runs = (await listRuns(outDir)).filter((r) => 'record' in r && r.record.name === config.name);
    let found: string | null = null;
    for (const r of runs.reverse()) {
      const run = await openRun(r.dir);
      if (run.latestCheckpoint()) {
        found = r.dir;
        break;
      }
    }
    if (!found) throw new CheckpointNotFoundError(`no run of ${config.name} with a checkpoint under ${outDir}: train it first (basin train ${input})`);
    runDir = found;
  }
  const run = await openRun(runDir);
  const { config, configPath } = runConfig(run);
  const ck = findCheckpoint(run, step);
  // A LoRA run's model is its merged twin (W + scale·B·A), which fits the plain model pruning builds.
  return { run, config, configPath, checkpoint: modelWeightsFile(ck.file), step: ck.step, statsFile: path.join(run.dir, run.statsPath(ck.step)) };
}
