import { runMatmulBench } from '../../bench/matmul';

// `basin bench <name>`: a table for people, or with --json the report object on the last stdout line.
export async function benchCommand(name: string, opts: { json?: boolean; quick?: boolean }): Promise<void> {
  const log = (s: string) => process.stderr.write(s + '\n');
  let report: object;
  switch (name) {
    case 'matmul': {
      report = await runMatmulBench({ json: Boolean(opts.json), quick: opts.quick, log });
      break;
    }
    default:
      throw new Error(`unknown benchmark "${name}" (known: matmul)`);
  }
  if (opts.json) process.stdout.write(JSON.stringify(report) + '\n');
}
