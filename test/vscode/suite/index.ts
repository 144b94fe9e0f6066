// The mocha runner that VS Code's extension host loads (extensionTestsPath): `run(): Promise<void>`.
// Runs every *.test.js next to it (built by test/vscode/run.mjs from test/vscode/suite/*.test.ts) and, when
// BASIN_TEST_SUMMARY names a file, writes a machine-readable summary there for the outer test runner:
//   { "passed": n, "failed": n, "pending": n, "durationMs": n, "failures": [{ "title", "error" }] }
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Mocha from 'mocha';

export interface TierSummary {
  passed: number;
  failed: number;
  pending: number;
  durationMs: number;
  failures: { title: string; error: string }[];
}

export function run(): Promise<void> {
  const mocha = new Mocha({
    ui: 'bdd',
    reporter: 'spec',
    color: process.env.BASIN_TEST_COLOR === '1',
    timeout: Number(process.env.BASIN_TEST_TIMEOUT_MS || 60_000),
    slow: 5_000,
  });
  const grep = process.env.BASIN_TEST_GREP;
  if (grep) mocha.grep(grep);
  for (const f of readdirSync(__dirname).filter((f) => f.endsWith('.test.js')).sort()) mocha.addFile(join(__dirname, f));

  const summary: TierSummary = { passed: 0, failed: 0, pending: 0, durationMs: 0, failures: [] };
  const write = (): void => {
    const path = process.env.BASIN_TEST_SUMMARY;
    if (path) writeFileSync(path, JSON.stringify(summary, null, 2));
  };

  return new Promise<void>((resolve, reject) => {
    try {
      const runner = mocha.run((failures) => {
        summary.passed = runner.stats?.passes ?? summary.passed;
        summary.pending = runner.stats?.pending ?? summary.pending;
        summary.failed = Math.max(failures, runner.stats?.failures ?? 0);
        summary.durationMs = runner.stats?.duration ?? 0;
        write();
        if (failures > 0) reject(new Error(`${failures} test(s) failed.`));
        else resolve();
      });
      runner.on('fail', (test, err: Error) => {
        summary.failures.push({ title: test.fullTitle(), error: err?.message ?? String(err) });
      });
    } catch (e) {
      // Loading a test file failed: that is a failed tier, not an empty one.
      summary.failed = Math.max(1, summary.failed);
      summary.failures.push({ title: 'loading the test files', error: (e as Error).stack ?? String(e) });
      write();
      reject(e);
    }
  });
}
