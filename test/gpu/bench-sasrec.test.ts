// `basin bench sasrec` on a tiny MovieLens-format log (not the real data: the real bench trains for minutes): every
// loss trains with early stopping over two seeds, its row is the mean of the seeds' runs (test figures of each
// run's best validation step), the training time leaves the evaluations out, and the table and headlines are
// printed. Quality is not checked here (the README quotes the real run).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { formatSasrecReport, runSasrecBench, sasrecBudget, type SasrecRow } from '../../bench/sasrec';

/** userId,movieId,rating,timestamp rows: 30 users, 12 ratings each over 40 movies, a noisy walk (learnable). */
function writeRatings(dir: string): void {
  const lines = ['userId,movieId,rating,timestamp'];
  let s = 7;
  const rand = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (let u = 1; u <= 30; u++) {
    let m = 1 + Math.floor(rand() * 40);
    for (let i = 0; i < 12; i++) {
      lines.push(`${u},${m * 10},4.0,${1_000_000 + u * 1000 + i}`);
      m = rand() < 0.7 ? (m % 40) + 1 : 1 + Math.floor(rand() * 40);
    }
  }
  fs.writeFileSync(path.join(dir, 'ratings.csv'), lines.join('\n') + '\n');
}

describe('bench sasrec (tiny log)', function () {
  this.timeout(600_000);

  it('budget: validation at most every steps / 4, defaults by mode', () => {
    assert.deepEqual(sasrecBudget({ quick: true }), { steps: 3000, evalEvery: 250, patience: 4 });
    assert.deepEqual(sasrecBudget({}), { steps: 4000, evalEvery: 250, patience: 4 });
    assert.deepEqual(sasrecBudget({ steps: 100 }), { steps: 100, evalEvery: 25, patience: 4 });
    assert.deepEqual(sasrecBudget({ steps: 2 }), { steps: 2, evalEvery: 1, patience: 4 });
  });

  it('trains every loss over two seeds with early stopping and reports means, ranges and headlines', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-bench-sasrec-'));
    try {
      writeRatings(dir);
      const logs: string[] = [];
      const report = (await runSasrecBench({ json: true, quick: true, steps: 12, seeds: 2, patience: 2, dataPath: dir, out: path.join(dir, 'out'), log: (x) => logs.push(x) })) as {
        rows: SasrecRow[];
        headline: Record<string, number | null>;
        setup: { eval_every: number; seeds: number };
      };
      assert.equal(report.setup.eval_every, 3);
      assert.deepEqual(report.rows.map((r) => r.case), ['popularity', 'ce', 'cce_minus', 'bce', 'gbce', 'bce_1neg']);
      for (const row of report.rows.slice(1)) {
        assert.equal(row.why, undefined, `${row.case}: ${row.why}`);
        assert.equal(row.runs.length, 2, row.case);
        assert.deepEqual(row.runs.map((r) => r.seed), [1, 2]);
        for (const run of row.runs) {
          assert.ok(run.steps >= 6 && run.steps <= 12, `${row.case}: ${run.steps} steps`);
          assert.ok(run.best_step !== null && run.best_step % 3 === 0 && run.best_step <= run.steps, `${row.case}: best step ${run.best_step}`);
          assert.ok(run.train_s > 0, `${row.case}: train_s ${run.train_s}`);
          for (const k of ['test_ndcg10', 'test_hr10', 'test_mrr', 'test_coverage10', 'val_ndcg10'] as const) assert.ok(Number.isFinite(run[k]), `${row.case} ${k}: ${run[k]}`);
        }
        // The row is the mean of its runs; the range holds the extremes.
        const mean = (row.runs[0].test_ndcg10! + row.runs[1].test_ndcg10!) / 2;
        assert.ok(Math.abs(row.test_ndcg10! - mean) < 1e-12);
        assert.deepEqual(row.test_ndcg10_range, [Math.min(row.runs[0].test_ndcg10!, row.runs[1].test_ndcg10!), Math.max(row.runs[0].test_ndcg10!, row.runs[1].test_ndcg10!)]);
        assert.ok(Math.abs(row.ms_per_step! - (1000 * (row.runs[0].train_s + row.runs[1].train_s)) / (row.runs[0].steps + row.runs[1].steps)) < 1e-9);
      }
      // Each run's test row scores its best step's checkpoint: the run folders say so.
      const runsDir = path.join(dir, 'out', 'runs');
      const ceRun = fs.readdirSync(runsDir).find((d) => d.startsWith('bench-ce-s1-'))!;
      const metrics = fs.readFileSync(path.join(runsDir, ceRun, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
      const testRow = metrics.find((m) => 'test_ndcg10' in m)!;
      assert.equal(testRow.step, report.rows[1].runs[0].best_step);
      // The weakest-loss headline leaves out the reference row (BCE with one negative), which has its own.
      const pop = report.rows[0].test_ndcg10!;
      assert.ok(pop > 0, 'popularity scores on the tiny log (the ratios below are defined)');
      const vsPop = report.rows.filter((r) => !['popularity', 'bce_1neg'].includes(r.case)).map((r) => r.test_ndcg10! / pop);
      assert.ok(Math.abs(report.headline.min_loss_ndcg_vs_popularity! - Math.min(...vsPop)) < 1e-12);
      assert.ok(Math.abs(report.headline.bce_1neg_ndcg_vs_popularity! - report.rows.find((r) => r.case === 'bce_1neg')!.test_ndcg10! / pop) < 1e-12);
      for (const k of ['cce_minus_ndcg_vs_ce', 'gbce_ndcg_vs_ce', 'bce_ndcg_vs_ce', 'bce_1neg_ndcg_vs_popularity', 'ce_ndcg10', 'popularity_ndcg10', 'min_loss_ndcg_vs_popularity', 'cce_minus_speedup_vs_ce']) {
        assert.ok(k in report.headline, k);
      }
      const table = formatSasrecReport(report);
      assert.match(table, /early stopping on validation NDCG@10 \(every 3 steps, patience 2\)/);
      assert.match(table, /^cce_minus /m);
      assert.match(table, /weakest loss \/ popularity/);
      assert.ok(logs.some((l) => /ce seed 2: \d+ steps \(best validation at step \d+\)/.test(l)), logs.join('\n'));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--losses trains only the losses named (popularity always); an unknown name is refused with the list', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-bench-sasrec-'));
    try {
      writeRatings(dir);
      const report = (await runSasrecBench({ json: true, quick: true, steps: 8, seedList: [3], patience: 1, losses: ['cce_minus'], dataPath: dir, log: () => undefined })) as { rows: SasrecRow[]; headline: Record<string, number | null> };
      assert.deepEqual(report.rows.map((r) => r.case), ['popularity', 'cce_minus']);
      assert.deepEqual(report.rows[1].runs.map((r) => r.seed), [3], 'the seeds listed');
      assert.equal(report.headline.cce_minus_ndcg_vs_ce, null, 'no CE row: no ratio to it');
      assert.match(formatSasrecReport(report), /^cce_minus /m);
      await assert.rejects(runSasrecBench({ json: true, quick: true, steps: 8, losses: ['ce', 'softmax'], dataPath: dir, log: () => undefined }), /unknown loss softmax \(the bench's losses: ce, cce_minus, bce, gbce, bce_1neg\)/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
