// `merge`: runs a merge config (`*.merge.yaml`) as `basin merge` does — plan (headers only), then the streaming
// GPU merge — and answers with the merge report. Three uses:
//   - a full merge: writes the merged model and merge-report.json into `out` (never over one unless `force`);
//   - a preview (`preview: {tensors, rows}`): the plan on a sample, nothing written (the merge panel's live stats);
//   - saliency (`saliency` + `preview`): the panel's grid source. The config's experts that have training
//     statistics are merged with `curvature`, whose per-tensor saliency mass Σ τ²⊙F̂ the report sums per expert
//     and layer; the experts without statistics are named in `noStatistics` (with why) instead of failing.
// Cancellation stops between tensors (the reply: Cancelled); a cancelled full merge leaves no partial shard (the
// writer renames each shard into place only when it is whole).
import * as path from 'node:path';
import type { MergeJobParams, MergeJobProgress, MergeJobResult } from '../../protocol/worker';
import { ConfigError, formatDiagnostic, isMergeConfigFile, loadMergeConfig, type MergeConfig } from '../../files/merge/config';
import { statisticsFor } from '../../files/merge/model-files';
import { MergePlanError, planMerge, type MergePlan } from '../../files/merge/plan';
import { executeMerge, MergeCancelledError, MergeOutputExistsError } from '../../engine/merge/execute';
import { InvalidJobParamsError, JobCancelledError, optionalAbsolutePath, type JobHandler } from './context';
import { withGpu } from './gpu';
import { ThrottledProgress } from './throttle';

/** Progress notifications per second of a merge job, at most. */
const MERGE_PROGRESS_PER_SEC = 10;
/** Upper bounds of a preview sample (a bad request, not a slow job). */
const MAX_PREVIEW_TENSORS = 1_000_000;
const MAX_PREVIEW_ROWS = 1 << 20;

/** Where a merge writes (as `basin merge`): `out`, else the config's `basin.output`, else `<config folder>/merged/<name>`. */
export function mergeOutputDir(configFile: string, configured: string | null, out?: string): string {
  if (out) return path.resolve(out);
  if (configured) return configured;
  const name = path.basename(configFile).replace(/\.merge\.ya?ml$/i, '');
  return path.join(path.dirname(path.resolve(configFile)), 'merged', name);
}

function checkParams(params: MergeJobParams): { configFile: string; out?: string } {
  const configFile = optionalAbsolutePath('configFile', params?.configFile, 'an absolute path of a *.merge.yaml file');
  if (!configFile) throw new InvalidJobParamsError('a merge job needs configFile');
  if (!isMergeConfigFile(configFile)) throw new InvalidJobParamsError(`configFile must be a *.merge.yaml / *.merge.yml file, got ${configFile}`);
  const out = optionalAbsolutePath('out', params.out, 'an absolute folder path');
  if (params.force !== undefined && typeof params.force !== 'boolean') throw new InvalidJobParamsError(`force must be a boolean, got ${JSON.stringify(params.force)}`);
  const p = params.preview;
  if (p !== undefined) {
    const ok = (v: unknown, max: number) => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= max;
    if (typeof p !== 'object' || p === null || !ok(p.tensors, MAX_PREVIEW_TENSORS) || !ok(p.rows, MAX_PREVIEW_ROWS)) {
      throw new InvalidJobParamsError(`preview must be {tensors, rows} with positive integers, got ${JSON.stringify(p)}`);
    }
  }
  if (params.saliency !== undefined && typeof params.saliency !== 'boolean') throw new InvalidJobParamsError(`saliency must be a boolean, got ${JSON.stringify(params.saliency)}`);
  if (params.saliency && !p) throw new InvalidJobParamsError('saliency runs on a preview sample: give preview {tensors, rows} too');
  return { configFile, out };
}

/**
 * The config's saliency variant: method `curvature`, only the experts that have statistics, their parameters
 * dropped (saliency does not depend on weights or densities). Null when no expert has statistics.
 */
async function saliencyConfig(c: MergeConfig): Promise<{ config: MergeConfig | null; noStatistics: NonNullable<MergeJobResult['noStatistics']> }> {
  if (!c.baseModel) throw new InvalidJobParamsError(`${c.file}: saliency (τ = expert − base) needs a base_model`);
  const noStatistics: NonNullable<MergeJobResult['noStatistics']> = [];
  const withStats = new Set<string>();
  const seen = new Set<string>();
  let index = 0;
  for (const s of c.slices) {
    for (const src of s.sources) {
      const m = src.model;
      if (seen.has(m.path) || m.path === c.baseModel.path) continue;
      seen.add(m.path);
      const r = await statisticsFor(m);
      if (r.stats) withStats.add(m.path);
      else noStatistics.push({ model: index, written: m.written, message: r.message });
      index++;
    }
  }
  if (!withStats.size) return { config: null, noStatistics };
  const slices = c.slices
    .map((s) => ({ ...s, sources: s.sources.filter((src) => withStats.has(src.model.path)).map((src) => ({ ...src, parameters: {} })), parameters: {} }))
    .filter((s) => s.sources.length > 0);
  return { config: { ...c, method: 'curvature', slices, parameters: {} }, noStatistics };
}

export const mergeJob: JobHandler<'merge'> = async (params, ctx) => {
  const { configFile, out } = checkParams(params);
  const preview = params.preview;
  // A config or plan that cannot work is a bad request (InvalidParams), found before queueing for the GPU.
  let plan: MergePlan | null;
  let noStatistics: MergeJobResult['noStatistics'];
  let config: MergeConfig;
  try {
    config = loadMergeConfig(configFile);
    let use: MergeConfig | null = config;
    if (params.saliency) {
      const s = await saliencyConfig(config);
      use = s.config;
      noStatistics = s.noStatistics;
    }
    plan = use ? await planMerge(use) : null;
  } catch (e) {
    if (e instanceof ConfigError) throw new InvalidJobParamsError(e.diagnostics.map((d) => formatDiagnostic(e.file, d)).join('\n'));
    if (e instanceof MergePlanError) throw new InvalidJobParamsError(e.message);
    throw e;
  }
  for (const w of config.warnings) ctx.log('warn', formatDiagnostic(config.file, w));

  if (!plan) {
    // No expert has statistics: nothing to run, every expert is listed with why.
    return emptyReport(config, noStatistics ?? []);
  }
  const outDir = preview ? undefined : mergeOutputDir(config.file, config.output, out);
  const queued = (): MergeJobProgress => ({ phase: 'queued', done: 0, total: 0, tensor: '' });
  return withGpu(ctx, queued, async (rt) => {
    const abort = new AbortController();
    const sub = ctx.token.onCancellationRequested(() => abort.abort());
    if (ctx.token.isCancellationRequested) abort.abort();
    const progress = new ThrottledProgress<MergeJobProgress>((p) => {
      ctx.progress(p, { fraction: p.total ? p.done / p.total : undefined, message: p.total ? `tensor ${p.done}/${p.total}${p.tensor ? ` (${p.tensor})` : ''}` : 'planning' });
    }, 1000 / MERGE_PROGRESS_PER_SEC);
    try {
      const total = preview ? Math.min(preview.tensors, plan!.tasks.length) : plan!.tasks.length;
      progress.post({ phase: 'planning', done: 0, total, tensor: '' }, true);
      const report = await executeMerge({
        rt,
        plan: plan!,
        outDir,
        force: params.force,
        maxShardBytes: config.maxShardBytes,
        signal: abort.signal,
        preview,
        onProgress: (p) => progress.post({ phase: 'merging', done: p.done, total: p.total, tensor: p.tensor }, p.done === p.total),
      });
      progress.flush();
      if (!preview) ctx.log('info', `merge ${path.basename(configFile)}: ${report.tensors.length} tensors → ${report.output} in ${report.seconds.toFixed(2)} s`);
      const result: MergeJobResult = { ...report, ...(noStatistics ? { noStatistics } : {}) };
      return result;
    } catch (e) {
      if (e instanceof MergeCancelledError || ctx.token.isCancellationRequested) throw new JobCancelledError(ctx.jobId);
      if (e instanceof MergeOutputExistsError) throw new InvalidJobParamsError(e.message);
      throw e;
    } finally {
      progress.flush();
      sub.dispose();
    }
  });
};

function emptyReport(config: MergeConfig, noStatistics: NonNullable<MergeJobResult['noStatistics']>): MergeJobResult {
  return {
    format: 'basin-merge-report-1',
    configFile: config.file,
    method: 'curvature',
    models: [],
    saliency: [],
    tensors: [],
    bytesRead: 0,
    bytesWritten: 0,
    seconds: 0,
    output: null,
    warnings: [],
    sample: { tensors: 0, rowsPerTensor: 0 },
    noStatistics,
  };
}
