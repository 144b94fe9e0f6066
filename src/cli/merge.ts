// `basin merge <config>`: a mergekit-style *.merge.yaml → a merged model (safetensors, sharded when large) and
// merge-report.json in the output folder. Warnings (keys Basin does not use) go to stderr first; the plan is
// checked whole before any tensor is read; progress on stderr; the output path on stdout.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SingleBar, Presets } from 'cli-progress';
import { loadMergeConfig, formatDiagnostic } from '../files/merge/config';
import { planMerge } from '../files/merge/plan';
import { GpuDevice } from '../engine/gpu/device';
import { Runtime } from '../engine/gpu/runtime';
import { executeMerge, type MergeReport } from '../engine/merge/execute';

export interface MergeCommandOptions {
  out?: string;
  force?: boolean;
  json?: boolean;
  /** Preview on a sample: tensors,rows (e.g. "8,64"); writes nothing. */
  preview?: boolean;
}

/** Where a merge writes: --out, else the config's `basin.output`, else `<config folder>/merged/<config name>`. */
export function mergeOutputDir(configFile: string, configured: string | null, out?: string): string {
  if (out) return path.resolve(out);
  if (configured) return configured;
  const name = path.basename(configFile).replace(/\.merge\.ya?ml$/i, '');
  return path.join(path.dirname(path.resolve(configFile)), 'merged', name);
}

export function formatMergeReport(r: MergeReport): string {
  const lines: string[] = [];
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const w = Math.min(48, Math.max(6, ...r.tensors.map((t) => t.name.length)));
  lines.push(`${'tensor'.padEnd(w)}  ${'kept (per model)'.padEnd(24)}  ${'sign conflicts'.padStart(14)}  ${'‖Δ‖'.padStart(10)}`);
  for (const t of r.tensors) {
    lines.push(`${t.name.slice(0, w).padEnd(w)}  ${t.keptFraction.map(pct).join(' ').padEnd(24)}  ${pct(t.signConflict).padStart(14)}  ${t.deltaNorm.toPrecision(4).padStart(10)}`);
  }
  if (r.saliency.length) {
    lines.push('', 'saliency mass per model:');
    for (const s of r.saliency) lines.push(`  ${r.models[s.model].written}: ${s.total.toPrecision(4)}`);
  }
  const mb = (b: number) => (b / 1e6).toFixed(1);
  lines.push('', `${r.tensors.length} tensors, ${mb(r.bytesRead)} MB read, ${mb(r.bytesWritten)} MB written in ${r.seconds.toFixed(2)} s`);
  return lines.join('\n');
}

export async function mergeCommand(configFile: string, opts: MergeCommandOptions): Promise<void> {
  const err = process.stderr;
  const config = loadMergeConfig(configFile);
  for (const d of config.warnings) err.write(`basin: warning: ${formatDiagnostic(config.file, d)}\n`);
  const plan = await planMerge(config);
  for (const w of plan.warnings) err.write(`basin: warning: ${w}\n`);
  const outDir = opts.preview ? undefined : mergeOutputDir(config.file, config.output, opts.out);
  // Replacing one of the merge's own inputs is allowed with --force (its files are read before any is replaced),
  // but rarely meant: said before the work.
  if (outDir && opts.force && fs.existsSync(outDir)) {
    const out = fs.realpathSync(outDir);
    const inside = plan.models.filter((m) => (m.ref.kind === 'folder' || m.ref.kind === 'sharded' ? m.ref.path : path.dirname(m.ref.path)) === out);
    for (const m of inside) err.write(`basin: warning: the output folder ${outDir} holds the input model "${m.ref.written}": --force replaces it with the merge once the merge is done\n`);
  }
  const gpu = await GpuDevice.create();
  const rt = new Runtime(gpu);
  const bar = new SingleBar(
    { format: ' {bar} {percentage}% | {value}/{total} tensors | {tensor}', hideCursor: true, stream: err, clearOnComplete: true, notTTYSchedule: 5000 },
    Presets.shades_classic,
  );
  const cancel = new AbortController();
  const onSigint = () => {
    if (cancel.signal.aborted) process.exit(130);
    err.write('\nbasin: cancelling the merge (nothing is written over; Ctrl-C again to quit at once)\n');
    cancel.abort();
  };
  process.on('SIGINT', onSigint);
  try {
    // The models the tasks read (a base_model the method does not use is not one of them).
    const used = new Set(plan.tasks.flatMap((t) => [...(t.base ? [t.base.model] : []), ...t.experts.map((e) => e.model)]));
    err.write(`basin: ${plan.method} merge of ${used.size} models, ${plan.tasks.length} tensors${outDir ? ` → ${outDir}` : ' (preview: nothing is written)'}\n`);
    bar.start(opts.preview ? Math.min(8, plan.tasks.length) : plan.tasks.length, 0, { tensor: '' });
    const report = await executeMerge({
      rt,
      plan,
      outDir,
      force: opts.force,
      maxShardBytes: config.maxShardBytes,
      signal: cancel.signal,
      preview: opts.preview ? { tensors: 8, rows: 256 } : undefined,
      onProgress: (p) => bar.update(p.done, { tensor: p.tensor }),
    });
    bar.stop();
    if (opts.json) process.stdout.write(JSON.stringify(report) + '\n');
    else {
      err.write(formatMergeReport(report) + '\n');
      process.stdout.write(`${report.output ?? '(preview)'}\n`);
    }
  } finally {
    bar.stop();
    process.off('SIGINT', onSigint);
    gpu.destroy();
  }
}
