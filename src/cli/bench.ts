import { formatEditorReport, runEditorBench } from '../../bench/editor';
import { formatKillResumeReport, runKillResumeBench } from '../../bench/kill-resume';
import { formatLossReport, runLossBench } from '../../bench/loss';
import { formatLrRobustnessReport, runLrRobustnessBench } from '../../bench/lr-robustness';
import { formatForgettingReport, runForgettingBench } from '../../bench/forgetting';
import { formatMatmulReport, runMatmulBench } from '../../bench/matmul';
import { formatMergeBench, runMergeBench } from '../../bench/merge';
import { formatMixedPrecisionReport, runMixedPrecisionBench } from '../../bench/mixed-precision';
import { formatMaoStepReport, runMaoStepBench } from '../../bench/mao-step';
import { formatOptimizerMemoryReport, runOptimizerMemoryBench } from '../../bench/optimizer-memory';
import { formatOptimizerQualityReport, runOptimizerQualityBench } from '../../bench/optimizer-quality';
import { formatPruneReport, runPruneBench } from '../../bench/prune';
import { formatSasrecReport, runSasrecBench } from '../../bench/sasrec';
import { formatTrainStepReport, runTrainStepBench } from '../../bench/train-step';

/** Every benchmark `basin bench` runs: the CLI's help and the unknown-name error read this list. */
export const BENCH_NAMES = [
  'matmul', 'train-step', 'editor', 'kill-resume', 'loss', 'sasrec', 'merge', 'prune', 'optimizer-memory',
  'optimizer-quality', 'mao-step', 'lr-robustness', 'forgetting', 'mixed-precision',
] as const;

// `basin bench <name>`: a table for people, or with --json the report object on the last stdout line.
// Progress goes to stderr either way.
export async function benchCommand(name: string, opts: { json?: boolean; quick?: boolean }): Promise<void> {
  const log = (s: string) => process.stderr.write(s + '\n');
  let report: object;
  let table: string;
  switch (name) {
    case 'matmul': {
      report = await runMatmulBench({ json: Boolean(opts.json), quick: opts.quick, log });
      table = formatMatmulReport(report);
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
      report = await runLossBench({ json: Boolean(opts.json), quick: opts.quick, log });
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
      report = await runOptimizerQualityBench({ json: Boolean(opts.json), quick: opts.quick, log });
      table = formatOptimizerQualityReport(report);
      break;
    }
    case 'mao-step': {
      report = await runMaoStepBench({ json: Boolean(opts.json), quick: opts.quick, log });
      table = formatMaoStepReport(report);
      break;
    }
    case 'merge': {
      report = await runMergeBench({ json: Boolean(opts.json), quick: opts.quick, log });
      table = formatMergeBench(report);
      break;
    }
    case 'sasrec': {
      report = await runSasrecBench({ json: Boolean(opts.json), quick: opts.quick, log });
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
