import { formatEditorReport, runEditorBench } from '../../bench/editor';
import { formatKillResumeReport, runKillResumeBench } from '../../bench/kill-resume';
import { formatLossReport, runLossBench } from '../../bench/loss';
import { formatLrRobustnessReport, runLrRobustnessBench } from '../../bench/lr-robustness';
import { formatForgettingReport, runForgettingBench } from '../../bench/forgetting';
import { formatGpuWaitReport, runGpuWaitBench } from '../../bench/gpu-wait';
import { formatMatmulReport, runMatmulBench } from '../../bench/matmul';
import { formatMergeBench, runMergeBench } from '../../bench/merge';
import { formatMixedPrecisionReport, runMixedPrecisionBench } from '../../bench/mixed-precision';
import { formatMaoStepReport, runMaoStepBench } from '../../bench/mao-step';
import { formatOptimizerMemoryReport, runOptimizerMemoryBench } from '../../bench/optimizer-memory';
import { formatOptimizerQualityReport, runOptimizerQualityBench } from '../../bench/optimizer-quality';
import { formatPruneReport, runPruneBench } from '../../bench/prune';
import { SASREC_LOSSES, formatSasrecReport, runSasrecBench } from '../../bench/sasrec';
import { formatTrainStepReport, runTrainStepBench } from '../../bench/train-step';

/** The names `bench sasrec --losses` takes (the bench's own list), for messages and the CLI's help. */
export const SASREC_LOSS_NAMES = SASREC_LOSSES.map((m) => m.name).join(', ');

/** Every benchmark `basin bench` runs: the CLI's help and the unknown-name error read this list. */
export const BENCH_NAMES = [
  'matmul', 'train-step', 'editor', 'kill-resume', 'loss', 'sasrec', 'merge', 'prune', 'optimizer-memory',
  'optimizer-quality', 'mao-step', 'lr-robustness', 'forgetting', 'mixed-precision', 'gpu-wait',
] as const;

export interface BenchCliOptions {
  json?: boolean;
  quick?: boolean;
  /** bench loss: catalog sizes, comma-separated ("100000" or "10000,100000"). */
  catalogs?: string;
  /** bench loss: tokens per batch. */
  tokens?: string;
  /** bench merge: matrices × dimension of each model ("8x2048"). */
  shape?: string;
  /** bench merge: repetitions. */
  reps?: string;
  /** bench sasrec, optimizer-quality: training steps per case (sasrec: the budget of each run). */
  steps?: string;
  /** bench sasrec: seeds per loss, or a comma-separated list of seeds. */
  seeds?: string;
  /** bench sasrec: only these losses, comma-separated. */
  losses?: string;
  /** bench optimizer-quality: also mao's diagnostic variants. */
  variants?: boolean;
  /** bench merge: every tensor merged whole (no row chunks), as a hardware GPU merges a [4096, 4096] matrix. */
  whole?: boolean;
}

const positiveInt = (flag: string, v: string): number => {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < 1) throw new Error(`${flag}: expected a positive integer, got "${v}"`);
  return n;
};

/**
 * The size options of `basin bench`, checked: a case of a benchmark picked out (the headline's catalog of bench
 * loss, a model size of bench merge between --quick and the full one). Each belongs to one benchmark.
 */
export function benchSizes(name: string, o: BenchCliOptions): { catalogs?: number[]; tokens?: number; shape?: { matrices: number; dim: number }; reps?: number; steps?: number; seeds?: number; seedList?: number[]; losses?: string[] } {
  const owner: Record<string, string[]> = { catalogs: ['loss'], tokens: ['loss'], shape: ['merge'], reps: ['merge'], steps: ['sasrec', 'optimizer-quality'], seeds: ['sasrec'], losses: ['sasrec'], variants: ['optimizer-quality'], whole: ['merge'] };
  for (const [k, benches] of Object.entries(owner)) {
    if (o[k as keyof BenchCliOptions] !== undefined && !benches.includes(name)) {
      throw new Error(`--${k} is an option of ${benches.map((b) => `\`basin bench ${b}\``).join(' and ')}, not of ${name}`);
    }
  }
  const out: ReturnType<typeof benchSizes> = {};
  if (o.catalogs !== undefined) out.catalogs = o.catalogs.split(',').map((c) => positiveInt('--catalogs', c));
  if (o.catalogs !== undefined && out.catalogs!.some((c) => c < 2)) throw new Error('--catalogs: every catalog needs at least 2 items');
  if (o.tokens !== undefined) out.tokens = positiveInt('--tokens', o.tokens);
  if (o.shape !== undefined) {
    const m = /^(\d+)x(\d+)$/.exec(o.shape.trim());
    if (!m) throw new Error(`--shape: expected <matrices>x<dim>, e.g. 8x2048, got "${o.shape}"`);
    out.shape = { matrices: positiveInt('--shape', m[1]), dim: positiveInt('--shape', m[2]) };
  }
  if (o.reps !== undefined) out.reps = positiveInt('--reps', o.reps);
  if (o.steps !== undefined) out.steps = positiveInt('--steps', o.steps);
  // A count (seeds 1…N) or a list of seeds ("2,3": more seeds for a table already run with seed 1).
  if (o.seeds !== undefined && o.seeds.includes(',')) out.seedList = o.seeds.split(',').map((x) => positiveInt('--seeds', x));
  else if (o.seeds !== undefined) out.seeds = positiveInt('--seeds', o.seeds);
  if (o.losses !== undefined) {
    out.losses = o.losses.split(',').map((x) => x.trim().replace(/-/g, '_')).filter(Boolean);
    if (!out.losses.length) throw new Error(`--losses: expected loss names, comma-separated (${SASREC_LOSS_NAMES})`);
  }
  return out;
}

// `basin bench <name>`: a table for people, or with --json the report object on the last stdout line.
// Progress goes to stderr either way.
export async function benchCommand(name: string, opts: BenchCliOptions): Promise<void> {
  const log = (s: string) => process.stderr.write(s + '\n');
  const sized = benchSizes(name, opts);
  let report: object;
  let table: string;
  switch (name) {
    case 'matmul': {
      report = await runMatmulBench({ json: Boolean(opts.json), quick: opts.quick, log });
      table = formatMatmulReport(report);
      break;
    }
    case 'gpu-wait': {
      report = await runGpuWaitBench({ json: Boolean(opts.json), quick: opts.quick, log });
      table = formatGpuWaitReport(report);
      break;
    }
    case 'train-step': {
      report = await runTrainStepBench({ json: Boolean(opts.json), quick: opts.quick, log });
      table = formatTrainStepReport(report);
      break;
    }
    case 'editor': {
      report = await runEditorBench({ json: Boolean(opts.json), quick: opts.quick, log, verbose: process.env.BASIN_TEST_VERBOSE === '1' });
      table = formatEditorReport(report);
      break;
    }
    case 'kill-resume': {
      report = await runKillResumeBench({ json: Boolean(opts.json), quick: opts.quick, log });
      table = formatKillResumeReport(report);
      break;
    }
    case 'loss': {
      report = await runLossBench({ json: Boolean(opts.json), quick: opts.quick, log, catalogs: sized.catalogs, tokens: sized.tokens });
      table = formatLossReport(report);
      break;
    }
    case 'prune': {
      report = await runPruneBench({ json: Boolean(opts.json), quick: opts.quick, log });
      table = formatPruneReport(report);
      break;
    }
    case 'optimizer-memory': {
      report = await runOptimizerMemoryBench({ json: Boolean(opts.json), quick: opts.quick, log });
      table = formatOptimizerMemoryReport(report);
      break;
    }
    case 'optimizer-quality': {
      report = await runOptimizerQualityBench({ json: Boolean(opts.json), quick: opts.quick, log, steps: sized.steps, variants: opts.variants });
      table = formatOptimizerQualityReport(report);
      break;
    }
    case 'mao-step': {
      report = await runMaoStepBench({ json: Boolean(opts.json), quick: opts.quick, log });
      table = formatMaoStepReport(report);
      break;
    }
    case 'merge': {
      report = await runMergeBench({ json: Boolean(opts.json), quick: opts.quick, log, shape: sized.shape, reps: sized.reps, chunkBytes: opts.whole ? Infinity : undefined });
      table = formatMergeBench(report);
      break;
    }
    case 'sasrec': {
      report = await runSasrecBench({ json: Boolean(opts.json), quick: opts.quick, log, steps: sized.steps, seeds: sized.seeds, seedList: sized.seedList, losses: sized.losses });
      table = formatSasrecReport(report);
      break;
    }
    case 'lr-robustness': {
      report = await runLrRobustnessBench({ json: Boolean(opts.json), quick: opts.quick, log });
      table = formatLrRobustnessReport(report);
      break;
    }
    case 'forgetting': {
      report = await runForgettingBench({ json: Boolean(opts.json), quick: opts.quick, log });
      table = formatForgettingReport(report);
      break;
    }
    case 'mixed-precision': {
      const r = await runMixedPrecisionBench({ json: Boolean(opts.json), quick: opts.quick, log });
      report = r;
      table = formatMixedPrecisionReport(r);
      break;
    }
    default:
      throw new Error(`unknown benchmark "${name}" (known: ${BENCH_NAMES.join(', ')})`);
  }
  process.stdout.write(opts.json ? JSON.stringify(report) + '\n' : table + '\n');
}
