// `basin study <name>`: a study is a benchmark whose table answers a question about methods (which merge is best,
// which pruning score), with the same report shape as `basin bench` (../shared/notes/benchmarks.md).
import { formatMergeStudy, runMergeStudy } from '../../bench/study-merge';
import { formatDataEfficiencyStudy, runDataEfficiencyStudy } from '../../bench/study-data-efficiency';
import { formatPruneStudy, runPruneStudy } from '../../bench/study-prune';

export const STUDIES = ['merge', 'data-efficiency', 'prune'] as const;

export async function studyCommand(name: string, opts: { json?: boolean; quick?: boolean; out?: string; expertsOnly?: boolean }): Promise<void> {
  const log = (s: string) => process.stderr.write(s + '\n');
  let report: object;
  let table: string;
  if (opts.expertsOnly && name !== 'merge') throw new Error(`--experts-only is an option of "study merge", not of "study ${name}"`);
  switch (name) {
    case 'merge':
      if (opts.expertsOnly && !opts.out) throw new Error('study merge --experts-only: give --out <dir>, the folder to keep the experts in');
      report = await runMergeStudy({ json: Boolean(opts.json), quick: opts.quick, log, out: opts.out, expertsOnly: opts.expertsOnly });
      table = 'expertsOnly' in report ? expertsTrained((report as unknown as { mergeConfig: string }).mergeConfig) : formatMergeStudy(report);
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

const expertsTrained = (file: string) => `experts trained: ${file} merges them (open it in the merge panel, or: basin merge ${file})`;
