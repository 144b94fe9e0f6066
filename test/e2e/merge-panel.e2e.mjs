// The merge panel, end to end in the real workbench: open it from the command palette on the merge study's experts
// (`basin study merge --quick --experts-only` in `prepare`: a transformer base trained on a mixture of four
// conflicting next-item tasks and one fine-tune per task, with AdamW statistics), see the saliency grid, exclude a
// layer by clicking its header (the YAML gets the weight filter), shift-drag a block of cells and give them a
// density, preview (kept fraction and sign conflicts per layer), run the curvature merge, see the result table and
// evaluate the merged model, the base and the experts on every task.
// Screenshots: 10-merge-grid, 11-merge-excluded, 12-merge-selection, 13-merge-preview, 14-merge-result
// (BASIN_E2E_THEME="Default Light Modern" for light ones).
// Then the grid at scale: a merge of two experts with 600 layers (written directly, not trained): the column
// headers, horizontal scrolling with the expert names kept in view, a far column excluded without losing the
// scroll position, and a Shift-drag that runs past the visible columns (the grid scrolls along). Screenshots:
// 15-merge-wide, 16-merge-wide-drag.
import * as assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { tsImport } from 'tsx/esm/api';
import { parse } from 'yaml';

const NAMES = [
  "merge panel: opens on the study's experts with the saliency grid",
  'merge panel: excluding a layer writes the YAML',
  'merge panel: shift-drag selects cells, a density is set on them',
  'merge panel: preview per layer',
  'merge panel: run the merge and see the result table',
  "merge panel: a slerp of the base and one expert edits t per layer",
];
const WIDE_NAMES = ['merge panel at 600 layers: headers, scrolling and excluding a far layer', 'merge panel at 600 layers: a drag past the visible columns scrolls the grid'];
const WIDE_LAYERS = 600;
const state = {};

export async function prepare({ workspace, root }) {
  const grep = process.env.BASIN_E2E_GREP ? new RegExp(process.env.BASIN_E2E_GREP, 'i') : null;
  const fixtures = await tsImport(pathToFileURL(join(root, 'test', 'fixtures', 'merge-experts.ts')).href, import.meta.url);
  // Training the study's experts takes about a minute on lavapipe: only when one of these tests will run.
  if (!grep || NAMES.some((n) => grep.test(n))) {
    const dir = join(workspace, 'merge-study');
    execFileSync(process.execPath, [join(root, 'bin', 'basin.js'), 'study', 'merge', '--quick', '--experts-only', '--out', dir], { stdio: 'pipe', timeout: 600_000 });
    state.fx = { file: join(dir, 'experts.merge.yaml') };
    // A slerp of the base towards the first expert (slerp takes two models), in mergekit's usual form for it: one
    // slice over both models' layers (the study's models have 2 blocks). Its grid's weight is the global t.
    const y = parse(readFileSync(state.fx.file, 'utf8'));
    const first = y.models.find((m) => m.model !== y.base_model).model;
    state.slerp = join(dir, 'slerp.merge.yaml');
    const source = (m) => `      - model: ${m}\n        layer_range: [0, 2]\n`;
    writeFileSync(state.slerp, `merge_method: slerp\nslices:\n  - sources:\n${source(y.base_model)}${source(first)}base_model: ${y.base_model}\nparameters:\n  t: 0.5\n`);
  }
  if (!grep || WIDE_NAMES.some((n) => grep.test(n))) state.wide = await fixtures.makeWideMergeExperts(join(workspace, 'merge-wide'), WIDE_LAYERS);
}

async function noErrors(frame) {
  const d = await frame.locator('body').evaluate((b) => ({ errors: b.dataset.errors, last: b.dataset.lastError }));
  assert.equal(d.errors, undefined, `the webview reported errors: ${d.last}`);
}

// Four experts; columns: blocks 0 and 1, and "other" (embeddings, final norm, head).
const mergeFrame = (t, extra = '', timeout = 30_000) => t.wb.waitForWebview(t.page, `body[data-rows="4"]${extra}`, { timeout });

export const tests = [
  {
    name: NAMES[0],
    async fn(t) {
      assert.ok(state.fx, 'prepare trained the experts');
      await t.wb.pickFromCommand(t.page, 'Basin: Open in Merge Panel', 'Open in Merge Panel', 'experts.merge.yaml', { log: t.log });
      await t.wb.editorTab(t.page, 'Merge: experts').waitFor({ state: 'visible', timeout: 20_000 });
      let frame = await mergeFrame(t, '[data-ready="true"]', 60_000);
      // The saliency job compiles the merge kernels on first use (lavapipe): give it time.
      frame = await mergeFrame(t, '[data-saliency="done"]', 120_000);
      const d = await t.wb.webviewData(frame);
      t.log(`merge panel first paint ${d.firstPaintMs} ms after script start`);
      assert.equal(d.cols, '3');
      assert.equal(await frame.locator('td.cell').count(), 12);
      assert.equal(await frame.locator('.badge', { hasText: 'no statistics' }).count(), 0, 'every expert has statistics');
      assert.match(await frame.locator('td.cell').first().getAttribute('aria-label'), /saliency \d/);
      await noErrors(frame);
      await t.screenshot('10-merge-grid');
    },
  },
  {
    name: NAMES[1],
    async fn(t) {
      let frame = await mergeFrame(t);
      // Keep the base's first block: exclude layer 0 for every expert.
      await frame.locator('button.colhdr[data-col="0"]').click();
      frame = await mergeFrame(t, '[data-excluded="4"]', 15_000);
      const yaml = readFileSync(state.fx.file, 'utf8');
      assert.equal((yaml.match(/filter: blocks\.0\., value: 0/g) ?? []).length, 4, yaml);
      assert.match(yaml, /# task 3/, 'comments survive');
      assert.equal(await frame.locator('td.cell.excl').count(), 4);
      await noErrors(frame);
      await t.screenshot('11-merge-excluded');
    },
  },
  {
    name: NAMES[2],
    async fn(t) {
      let frame = await mergeFrame(t);
      // Shift-drag from (0, 1) to (3, 1): layer 1 of all four experts selected, the value bar shows.
      const from = await t.wb.boxOf(frame.locator('td.cell[data-cell="0,1"]'));
      const to = await t.wb.boxOf(frame.locator('td.cell[data-cell="3,1"]'));
      // The webview's frames are offset inside the page: playwright's boundingBox is in page coordinates already.
      await t.page.keyboard.down('Shift');
      try {
        await t.page.mouse.move(from.x + from.width / 2, from.y + from.height / 2);
        await t.page.mouse.down();
        await t.page.mouse.move(to.x + to.width / 2, to.y + to.height / 2, { steps: 4 });
      } finally {
        await t.page.mouse.up().catch(() => undefined); // the test's own error matters more
        await t.page.keyboard.up('Shift').catch(() => undefined);
      }
      await frame.locator('.selbar').waitFor({ state: 'visible', timeout: 5000 });
      assert.match(await frame.locator('.selbar strong').textContent(), /4 selected/);
      const input = frame.locator('.selbar input[aria-label="density of the selected cells"]');
      await input.fill('0.3');
      await input.press('Enter');
      await input.blur();
      const t0 = Date.now();
      for (;;) {
        const yaml = readFileSync(state.fx.file, 'utf8');
        if ((yaml.match(/filter: blocks\.1\., value: 0\.3/g) ?? []).length === 4) break;
        if (Date.now() - t0 > 10_000) throw new Error(`no density filters in the YAML:\n${yaml}`);
        await t.page.waitForTimeout(100);
      }
      // The grid is re-read from the new YAML: the cell says so.
      frame = await mergeFrame(t);
      await frame.locator('td.cell[data-cell="3,1"][aria-label*="density 0.3"]').waitFor({ timeout: 10_000 });
      await noErrors(frame);
      await t.screenshot('12-merge-selection');
      await frame.locator('.selbar button', { hasText: 'Deselect' }).click();
    },
  },
  {
    name: NAMES[3],
    async fn(t) {
      let frame = await mergeFrame(t);
      const t0 = Date.now();
      await frame.locator('#preview-btn').click();
      frame = await mergeFrame(t, '[data-preview="done"]', 30_000);
      t.log(`preview shown ${Date.now() - t0} ms after the click`);
      assert.equal(await frame.locator('.ptable tbody tr').count(), 3);
      // Layer 0 is excluded for every expert: nothing of it is kept.
      const kept = await frame.locator('.ptable tbody tr').nth(0).locator('td .num').allTextContents();
      assert.deepEqual(kept.slice(0, 4).map((x) => x.replace(/\s/g, '')), ['0.0%', '0.0%', '0.0%', '0.0%'], kept.join(' | '));
      // Layer 1 keeps something of every expert (density 0.3 of the saliency-trimmed delta).
      const kept1 = await frame.locator('.ptable tbody tr').nth(1).locator('td .num').allTextContents();
      assert.ok(kept1.slice(0, 4).every((x) => parseFloat(x) > 0), kept1.join(' | '));
      await noErrors(frame);
      await t.screenshot('13-merge-preview');
    },
  },
  {
    name: NAMES[4],
    async fn(t) {
      let frame = await mergeFrame(t);
      await frame.locator('#run-btn').click();
      frame = await mergeFrame(t, '[data-job="completed"]', 120_000);
      assert.ok(existsSync(join(state.fx.file, '..', 'merged', 'experts', 'model.safetensors')));
      const rows = frame.locator('.rtable tbody tr');
      // merged, base and the four experts.
      assert.equal(await rows.count(), 6);
      assert.match(await rows.first().textContent(), /merged/);
      assert.match(await frame.locator('.rtable thead').textContent(), /val accuracy/);
      // Evaluate: the merged model, the base and every expert on each expert's task (validation).
      await frame.locator('#evaluate-btn').click();
      await frame.locator('.eval-note', { hasText: /evaluated 6 models on 4 tasks/ }).waitFor({ timeout: 180_000 });
      frame = await mergeFrame(t);
      const merged = await frame.locator('.rtable tbody tr').first().locator('td.num').first().textContent();
      assert.match(merged, /%/, `the merged model's validation accuracy: ${merged}`);
      await frame.locator('#evaluate-btn').scrollIntoViewIfNeeded();
      // Notifications (the merge's end message) cover the panel's corner: close them for the picture.
      await t.page.keyboard.press('Escape');
      await t.page.waitForTimeout(300);
      await noErrors(frame);
      await t.screenshot('14-merge-result');
    },
  },
  {
    name: NAMES[5],
    async fn(t) {
      await t.wb.pickFromCommand(t.page, 'Basin: Open in Merge Panel', 'Open in Merge Panel', 'slerp.merge.yaml', { log: t.log });
      await t.wb.editorTab(t.page, 'Merge: slerp').waitFor({ state: 'visible', timeout: 20_000 });
      let frame = await t.wb.waitForWebview(t.page, 'body[data-rows="1"][data-ready="true"]', { timeout: 60_000 });
      // The cells can show t, the weight a slerp has; the hint says what 0 means.
      await frame.locator('select[aria-label="What the cells show"]').selectOption('weight');
      assert.match(await frame.locator('select[aria-label="What the cells show"] option:checked').textContent(), /^t$/);
      assert.match(await frame.locator('.hint').textContent(), /t = 0 keeps the base/);
      // Keep the base's block 1: the column's header excludes it (t: 0 there).
      await frame.locator('button.colhdr[data-col="1"]').click();
      frame = await t.wb.waitForWebview(t.page, 'body[data-rows="1"][data-excluded="1"]', { timeout: 15_000 });
      assert.match(readFileSync(state.slerp, 'utf8'), /t: \[ \{ filter: blocks\.1\., value: 0 \}, \{ value: 0\.5 \} \]/);
      assert.match(await frame.locator('td.cell[data-cell="0,0"]').getAttribute('aria-label'), /included, t 0\.5/);
      assert.equal(await frame.locator('td.cell[data-cell="0,1"] span').textContent(), 'excluded');
      await noErrors(frame);
      await t.screenshot('14b-merge-slerp');
    },
  },
  {
    name: WIDE_NAMES[0],
    async fn(t) {
      assert.ok(state.wide, 'prepare wrote the wide experts');
      // Layers 0…599 and the "other" column (embedding and head).
      const cols = WIDE_LAYERS + 1;
      const wideFrame = (extra = '', timeout = 30_000) => t.wb.waitForWebview(t.page, `body[data-cols="${cols}"]${extra}`, { timeout });
      const t0 = Date.now();
      await t.wb.pickFromCommand(t.page, 'Basin: Open in Merge Panel', 'Open in Merge Panel', 'wide.merge.yaml', { log: t.log });
      let frame = await wideFrame('[data-ready="true"]', 60_000);
      t.log(`wide merge panel: grid shown ${Date.now() - t0} ms after the command (first paint ${(await t.wb.webviewData(frame)).firstPaintMs} ms after script start)`);
      assert.equal(await frame.locator('button.colhdr').count(), cols);
      assert.equal(await frame.locator('td.cell').count(), 2 * cols);
      frame = await wideFrame('[data-saliency="done"]', 180_000);
      t.log(`wide merge panel: saliency of ${cols} columns ${Date.now() - t0} ms after the command`);
      await noErrors(frame);
      // Scroll to layer 550: its header and cells are in view, and so are the experts' names (sticky column).
      const scroller = frame.locator('.grid-scroll');
      await frame.locator('button.colhdr[data-col="550"]').scrollIntoViewIfNeeded();
      const box = await t.wb.boxOf(scroller);
      const hdr = await t.wb.boxOf(frame.locator('button.colhdr[data-col="550"]'));
      assert.ok(hdr.x >= box.x && hdr.x + hdr.width <= box.x + box.width + 1, `layer 550's header in view: ${JSON.stringify({ hdr, box })}`);
      const name = await t.wb.boxOf(frame.locator('button.rowhdr[data-row="0"]'));
      assert.ok(name.x >= box.x - 1 && name.x < box.x + 40, `the expert's name stays at the left edge while scrolled: ${JSON.stringify({ name, box })}`);
      const left = await scroller.evaluate((e) => e.scrollLeft);
      assert.ok(left > 1000, `scrolled: scrollLeft ${left}`);
      // The bar says which layers are in view.
      await t.page.waitForTimeout(100);
      const span = (await frame.locator('#layer-span').textContent()).match(/columns (\d+)–(\d+) in view, of 600 layers/);
      assert.ok(span && Number(span[1]) <= 550 && Number(span[2]) >= 550, `the layers in view: ${await frame.locator('#layer-span').textContent()}`);
      // Exclude layer 550 by its header: the YAML gets its filters, and the grid stays where it was.
      await frame.locator('button.colhdr[data-col="550"]').click();
      frame = await wideFrame('[data-excluded="2"]', 15_000);
      const yaml = readFileSync(state.wide.file, 'utf8');
      assert.equal((yaml.match(/filter: layers\.550\., value: 0/g) ?? []).length, 2, yaml);
      // The re-rendered grid is put back within a few frames.
      let after = 0;
      for (const t0 = Date.now(); Date.now() - t0 < 3000; await t.page.waitForTimeout(100)) {
        after = await frame.locator('.grid-scroll').evaluate((e) => e.scrollLeft);
        if (Math.abs(after - left) < 2) break;
      }
      assert.ok(Math.abs(after - left) < 2, `the scroll position survives the edit: ${left} → ${after}`);
      assert.equal(await frame.locator('td.cell.excl').count(), 2);
      await noErrors(frame);
      await t.screenshot('15-merge-wide');
    },
  },
  {
    name: WIDE_NAMES[1],
    async fn(t) {
      const cols = WIDE_LAYERS + 1;
      // Its tab in front: a webview behind another tab is in the DOM but has no layout (no boxes to drag between).
      await t.wb.editorTab(t.page, 'Merge: wide').click();
      let frame = await t.wb.waitForWebview(t.page, `body[data-cols="${cols}"]`);
      const scroller = frame.locator('.grid-scroll');
      await scroller.evaluate((e) => (e.scrollLeft = 0));
      await t.page.waitForTimeout(200); // the "in view" line updates on the next frame (it must not move the grid)
      const box = await t.wb.boxOf(scroller);
      // Which columns are in view now.
      const visible = await frame.locator('button.colhdr').evaluateAll((bs, b) => bs.filter((x) => { const r = x.getBoundingClientRect(); return r.right > 0 && r.left < b; }).length, await scroller.evaluate((e) => e.getBoundingClientRect().right));
      const from = await t.wb.boxOf(frame.locator('td.cell[data-cell="0,1"]'));
      // Shift-drag from (0, 1) to the grid's right edge and hold there: the grid scrolls along under the pointer.
      await t.page.keyboard.down('Shift');
      try {
        await t.page.mouse.move(from.x + from.width / 2, from.y + from.height / 2);
        await t.page.mouse.down();
        const edgeX = box.x + box.width - 6;
        const y = from.y + from.height * 1.5; // the second expert's row: a two-row block
        await t.page.mouse.move(edgeX, y, { steps: 6 });
        const t0 = Date.now();
        for (;;) {
          const l = await scroller.evaluate((e) => e.scrollLeft);
          if (l > 1500) break;
          if (Date.now() - t0 > 8000) throw new Error(`the grid did not scroll along a drag held at its edge (scrollLeft ${l})`);
          await t.page.mouse.move(edgeX + ((Date.now() / 100) % 2), y);
          await t.page.waitForTimeout(100);
        }
      } finally {
        await t.page.mouse.up().catch(() => undefined); // the test's own error matters more
        await t.page.keyboard.up('Shift').catch(() => undefined);
      }
      await frame.locator('.selbar').waitFor({ state: 'visible', timeout: 5000 });
      const n = Number((await frame.locator('.selbar strong').textContent()).match(/(\d+) selected/)[1]);
      const cells = await frame.locator('td.cell[aria-selected="true"]').evaluateAll((tds) => tds.map((td) => td.dataset.cell.split(',').map(Number)));
      const colsSel = cells.map(([, c]) => c);
      const [c0, c1] = [Math.min(...colsSel), Math.max(...colsSel)];
      t.log(`drag selection: columns ${c0}–${c1}, ${n} cells, ${visible} columns were in view`);
      assert.equal(c0, 1, 'the block starts where the drag did');
      assert.ok(c1 >= visible + 5, `the block runs past the ${visible} visible columns: columns ${c0}–${c1}`);
      assert.equal(n, 2 * (c1 - c0 + 1), 'both experts of each column, nothing else');
      frame = await t.wb.waitForWebview(t.page, `body[data-cols="${cols}"]`);
      await noErrors(frame);
      await t.screenshot('16-merge-wide-drag');
      await frame.locator('.selbar button', { hasText: 'Deselect' }).click();
    },
  },
];
