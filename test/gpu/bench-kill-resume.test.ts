// `basin bench kill-resume` with 2 kills (the benchmark runs 20): the report has the headline keys of
// shared/notes/benchmarks.md, every kill is survived, no file is corrupt and no kill loses more than one
// checkpoint interval. Runs the built CLI (dist/cli.js, as `npm test` builds it first).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatKillResumeReport, runKillResumeBench } from '../../bench/kill-resume';

describe('bench kill-resume (2 kills)', function () {
  this.timeout(600_000);

  it('survives every kill, corrupts no file and loses at most one checkpoint interval', async function () {
    if (!fs.existsSync(path.resolve(__dirname, '..', '..', 'dist', 'cli.js'))) this.skip();
    const logs: string[] = [];
    const report = (await runKillResumeBench({ json: true, kills: 2, log: (s) => logs.push(s) })) as {
      bench: string;
      headline: { kills_survived: number; kills: number; corrupt_files: number | null; max_steps_lost: number; max_steps_lost_allowed: number };
      files: { final_status: string | null } | null;
      why?: string;
    };
    assert.equal(report.bench, 'kill-resume');
    const h = report.headline;
    assert.equal(report.why, undefined, `${report.why}\n${logs.join('\n')}`);
    assert.equal(h.kills, 2);
    assert.equal(h.kills_survived, 2, logs.join('\n'));
    assert.equal(h.corrupt_files, 0, JSON.stringify(report.files));
    assert.ok(h.max_steps_lost <= h.max_steps_lost_allowed, `lost ${h.max_steps_lost} steps`);
    assert.equal(report.files?.final_status, 'completed');
    assert.match(formatKillResumeReport(report), /headline: kills_survived 2/);
  });
});
