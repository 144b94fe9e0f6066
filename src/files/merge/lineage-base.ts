// The base model a set of fine-tuned experts share, from their runs' run.json lineage: a run started with
// `init: { from: … }` records the checkpoint it started from (lineage.parentCheckpoint, relation 'fine-tune').
// A merge config that leaves base_model out uses it when every model agrees on one, so a merge of Basin
// fine-tunes needs no base to be named (the "finds the common base without being told").
import * as fs from 'node:fs';
import * as path from 'node:path';
import { CHECKPOINTS_DIR, RUN_FILE } from '../run-record';

export interface LineageModel {
  path: string;
  kind: string;
}

/** The run folder a model comes from: the model itself (a run) or its checkpoint's run; null for other files. */
function runDirOf(m: LineageModel): string | null {
  if (m.kind === 'run') return m.path;
  if (m.kind === 'checkpoint') {
    const dir = path.dirname(path.dirname(m.path));
    return path.basename(path.dirname(m.path)) === CHECKPOINTS_DIR && fs.existsSync(path.join(dir, RUN_FILE)) ? dir : null;
  }
  return null;
}

/**
 * The fine-tune base a model's run records (a checkpoint or model file, or a sharded model's folder), resolved and
 * existing; null when there is none.
 */
export function fineTuneBaseOf(m: LineageModel): string | null {
  const runDir = runDirOf(m);
  if (!runDir) return null;
  let rec: unknown;
  try {
    rec = JSON.parse(fs.readFileSync(path.join(runDir, RUN_FILE), 'utf8'));
  } catch {
    return null;
  }
  const lineage = (rec as { lineage?: { relation?: unknown; parentCheckpoint?: unknown } } | null)?.lineage;
  if (!lineage || lineage.relation !== 'fine-tune' || typeof lineage.parentCheckpoint !== 'string' || !lineage.parentCheckpoint) return null;
  // A fine-tune of a sharded model (a merged one, say) records its index: the model is the index's folder.
  const recorded = path.resolve(runDir, lineage.parentCheckpoint);
  const abs = path.basename(recorded) === 'model.safetensors.index.json' ? path.dirname(recorded) : recorded;
  try {
    return fs.realpathSync(abs);
  } catch {
    return null; // the base was moved or deleted: nothing to use
  }
}

/** The base checkpoint every model was fine-tuned from, or null when one has none or they disagree. */
export function commonLineageBase(models: LineageModel[]): string | null {
  if (models.length === 0) return null;
  let base: string | null = null;
  for (const m of models) {
    const b = fineTuneBaseOf(m);
    if (!b || (base !== null && b !== base)) return null;
    base = b;
  }
  return base;
}
