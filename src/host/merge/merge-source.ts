// What the merge panel reads besides the config: the experts' last validation metrics (a Basin run's
// metrics.jsonl), the run folder and step a model reference means, and the per-layer aggregation of a merge
// report for the preview. Pure Node (no vscode), so the unit tests use it too.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { MergeJobResult } from '../../protocol/worker';
import type { MergeLayerPreview } from '../../protocol/panels/merge';
import { CHECKPOINTS_DIR, METRICS_FILE, RUN_FILE } from '../../files/run-record';
import type { GridModel } from './merge-model';

/** Bytes of metrics.jsonl read from its end when looking for the last validation row. */
const METRICS_TAIL_BYTES = 1 << 20;

/** The run folder (and checkpoint step) a model reference's resolved path means, when it is a Basin run. */
export function runOfModel(p: string, kind: string): { runDir: string; step: number | null } | null {
  if (kind === 'run') return { runDir: p, step: null };
  if (kind === 'checkpoint') {
    const m = /^step-(\d+)\.safetensors$/.exec(path.basename(p));
    const runDir = path.dirname(path.dirname(p));
    if (path.basename(path.dirname(p)) === CHECKPOINTS_DIR && fs.existsSync(path.join(runDir, RUN_FILE))) return { runDir, step: m ? Number(m[1]) : null };
  }
  return null;
}

/**
 * A run's validation metrics (`val_*` of metrics.jsonl, prefix dropped): the last row that has them, or the row
 * of `step` when given (the last one at or before it). Null when the run evaluated nothing.
 */
export function lastValidationMetrics(runDir: string, step: number | null = null): Record<string, number> | null {
  const file = path.join(runDir, METRICS_FILE);
  let text: string;
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const size = fs.fstatSync(fd).size;
      const n = Math.min(size, METRICS_TAIL_BYTES);
      const buf = Buffer.alloc(n);
      fs.readSync(fd, buf, 0, n, size - n);
      text = buf.toString('utf8');
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return null;
  }
  const lines = text.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i].trim();
    if (!line.startsWith('{')) continue;
    let row: Record<string, unknown>;
    try {
      row = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue; // a torn line
    }
    if (step !== null && typeof row.step === 'number' && row.step > step) continue;
    const out: Record<string, number> = {};
    for (const [k, v] of Object.entries(row)) if (k.startsWith('val_') && typeof v === 'number' && Number.isFinite(v)) out[k.slice(4)] = v;
    if (Object.keys(out).length) return out;
  }
  return null;
}

/**
 * A preview report per grid column: each expert's kept fraction (0 where the grid excludes the cell) and the
 * sign-conflict fraction, weighted by the sampled tensors' element counts. Experts are matched to grid rows by model path (the report's models).
 */
export function previewByLayer(report: MergeJobResult, grid: GridModel): MergeLayerPreview[] {
  // The report's expert order within a tensor is the plan's: the config's experts in order (the base excluded).
  const experts = report.models.filter((m) => m.role !== 'base');
  const rowOfExpert = experts.map((m) => grid.rows.findIndex((r) => r.path === m.path));
  const acc = new Map<string, { kept: number[]; w: number[]; conflict: number; n: number; tensors: number }>();
  for (const t of report.tensors) {
    const key = t.layer === null ? 'other' : `L${t.layer}`;
    const numel = t.shape.reduce((a, b) => a * b, 1);
    let a = acc.get(key);
    if (!a) acc.set(key, (a = { kept: grid.rows.map(() => 0), w: grid.rows.map(() => 0), conflict: 0, n: 0, tensors: 0 }));
    t.keptFraction.forEach((k, e) => {
      const r = rowOfExpert[e];
      if (r === undefined || r < 0) return;
      a!.kept[r] += k * numel;
      a!.w[r] += numel;
    });
    a.conflict += t.signConflict * numel;
    a.n += numel;
    a.tensors++;
  }
  return grid.columns
    .filter((c) => acc.has(c.key))
    .map((c) => {
      const a = acc.get(c.key)!;
      const ci = grid.columns.indexOf(c);
      // An excluded cell (weight 0 on every tensor) contributes nothing, whatever its mask kept.
      const kept = a.kept.map((k, r) => (grid.cells[r]?.[ci]?.values.weight === 0 ? 0 : a.w[r] > 0 ? k / a.w[r] : null));
      return { key: c.key, label: c.label, kept, signConflict: a.n ? a.conflict / a.n : 0, tensors: a.tensors };
    });
}

/** Saliency per (grid row, column) from a saliency report: Σ τ²⊙F̂ of the expert in the layer. */
export function saliencyCells(report: MergeJobResult, grid: GridModel): (number | null)[][] {
  const byPath = new Map<string, Record<string, number>>();
  for (const s of report.saliency) {
    const m = report.models.find((x) => x.index === s.model);
    if (m) byPath.set(m.path, s.perLayer);
  }
  return grid.rows.map((row) => {
    const per = byPath.get(row.path);
    return grid.columns.map((c) => {
      if (!per) return null;
      const v = per[c.layer === null ? 'other' : String(c.layer)];
      return typeof v === 'number' && Number.isFinite(v) ? v : null;
    });
  });
}
