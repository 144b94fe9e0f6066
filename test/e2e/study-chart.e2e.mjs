// The data-efficiency study's chart in VS Code: `basin study data-efficiency` writes a run folder of kind `study`
// (one metrics row per trained model; the fixture is a real --quick run on ml-latest-small); opened in the
// statistics panel it shows each metric against the training interactions, one line per downsampling strategy.
import { copyFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as assert from 'node:assert/strict';

const here = dirname(fileURLToPath(import.meta.url));
const RUN = 'data-efficiency-20261201-064709';

export async function prepare({ workspace }) {
  const dir = join(workspace, 'runs', RUN);
  mkdirSync(dir, { recursive: true });
  copyFileSync(join(here, 'fixture', 'data-efficiency.run.json'), join(dir, 'run.json'));
  copyFileSync(join(here, 'fixture', 'data-efficiency.metrics.jsonl'), join(dir, 'metrics.jsonl'));
}

export const tests = [
  {
    name: 'study: the data-efficiency run charts NDCG and HR against training interactions, per strategy',
    async fn(t) {
      await t.wb.pickFromCommand(t.page, 'Basin: Open Statistics', 'Open Statistics', RUN, { log: t.log });
      await t.wb.editorTab(t.page, `Statistics: ${RUN}`).waitFor({ state: 'visible', timeout: 20_000 });
      const frame = await t.wb.waitForWebview(t.page, 'body[data-study-charts]', { timeout: 60_000 });
      const d = await t.wb.webviewData(frame);
      assert.equal(d.studyCharts, '4', 'val/test × NDCG@10/HR@10');
      assert.equal(d.errors, undefined, `the webview reported errors: ${d.lastError}`);
      assert.match(await frame.locator('.hdr-step').textContent(), /study · 7 models trained/);
      const titles = await frame.locator('.study .chart-title-text').allTextContents();
      assert.deepEqual(titles.slice(0, 2), ['Validation NDCG@10 (%) against training interactions', 'Validation HR@10 (%) against training interactions']);
      // The canvas's screen-reader summary names every strategy.
      const summary = await frame.locator('.study .sr-only').first().textContent();
      for (const s of ['uniform', 'recent', 'cap', 'recency_weighted']) assert.match(summary, new RegExp(s));
      // The training-run charts (loss over steps, per-layer statistics) are not shown for a study.
      assert.equal(await frame.locator('.overview .chart:not(.study .chart):visible').count(), 0);
      await t.screenshot('study-data-efficiency');
    },
  },
];
