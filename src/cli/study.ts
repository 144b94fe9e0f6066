// `basin study <name>`: a study is a benchmark whose table answers a question about methods (which merge is best,
// which pruning score), with the same report shape as `basin bench` (../shared/notes/benchmarks.md).
import { formatMergeStudy, runMergeStudy } from '../../bench/study-merge';
import { formatDataEfficiencyStudy, runDataEfficiencyStudy } from '../../bench/study-data-efficiency';
import { formatPruneStudy, runPruneStudy } from '../../bench/study-prune';

export const STUDIES = ['merge', 'data-efficiency', 'prune'] as const;

export async function studyCommand(name: string, opts: { json?: boolean; quick?: boolean; out?: string }): Promise<void> {
  const log = (s: string) => process.stderr.write(s + '\n');
  let report: object;
  let table: string;
  switch (name) {
    case 'merge':
      report = await runMergeStudy({ json: Boolean(opts.json), quick: opts.quick, log, out: opts.out });
      table = formatMergeStudy(report);
      break;
    case 'data-efficiency':
      report = await runDataEfficiencyStudy({ json: Boolean(opts.json), quick: opts.quick, log, out: opts.out });
      table = formatDataEfficiencyStudy(report);
      break;
    case 'prune':
      report = await runPruneStudy({ json: Boolean(opts.json), quick: opts.quick, log, out: opts.out });
      table = formatPruneStudy(report);
      break;
    default:
      throw new Error(`unknown study "${name}" (known: ${STUDIES.join(', ')})`);
  }
  process.stdout.write(opts.json ? JSON.stringify(report) + '\n' : table + '\n');
}
