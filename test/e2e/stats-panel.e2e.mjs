// The statistics panel, end to end: open it from the command palette on a prepared run folder (500 layers), see
// the charts, the layer table and the heatmaps render, select a layer with the keyboard, switch to another editor
// and back, reload the window and find the panel restored with its UI state; then a live run of 1,000 layers
// receives appended frames. A fine-tune run with mao (roles, base metrics, captured energy, saliency) shows the base's
// dashed lines, the overfitting gap, mao's energy, the saliency per layer and the role badges and filter (tests
// named "fine-tune: …"; run them alone with BASIN_E2E_GREP=fine-tune). Screenshots go to test-results/e2e/.
import { appendFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'node:assert/strict';

const RUN = 'e2e-synthetic-20240101-000000';
const LIVE = 'e2e-live-20240101-000000';
const FT = 'e2e-finetune-20240101-000000';
const state = {};

export async function prepare({ workspace, fixtures }) {
  fixtures.writeSyntheticRun(join(workspace, 'runs', RUN), { layers: 500, frames: 40, statsEvery: 25, width: 48 });
  state.live = fixtures.writeSyntheticRun(join(workspace, 'runs', LIVE), { layers: 1000, frames: 3, statsEvery: 10, width: 32, status: 'running', totalSteps: 1000 });
  state.liveDir = join(workspace, 'runs', LIVE);
  state.ft = fixtures.writeSyntheticRun(join(workspace, 'runs', FT), { layers: 40, frames: 24, statsEvery: 50, width: 48, fineTune: true });
  writeFileSync(join(workspace, 'notes.md'), '# Notes\n\nAnother editor to switch to.\n');
}

async function openStats(t, run) {
  await t.wb.pickFromCommand(t.page, 'Basin: Open Statistics', 'Open Statistics', run, { log: t.log });
  await t.wb.editorTab(t.page, `Statistics: ${run}`).waitFor({ state: 'visible', timeout: 20_000 });
  return t.wb.waitForWebview(t.page, 'body[data-ready="true"]', { timeout: 60_000 });
}

async function noErrors(frame) {
  const d = await frame.locator('body').evaluate((b) => ({ errors: b.dataset.errors, last: b.dataset.lastError }));
  assert.equal(d.errors, undefined, `the webview reported errors: ${d.last}`);
}

export const tests = [
  {
    name: 'opens the panel from the command palette and paints charts',
    async fn(t) {
      const frame = await openStats(t, RUN);
      const d = await t.wb.webviewData(frame);
      assert.equal(d.layers, '500');
      const firstPaint = Number(d.firstPaintMs);
      t.log(`first paint with 500 layers: ${firstPaint.toFixed(0)} ms after script start (script loaded at ${d.scriptStartMs} ms, snapshot at +${d.snapshotAtMs} ms, render ${d.renderMs} ms)`);
      state.firstPaintMs = firstPaint;
      assert.ok(firstPaint > 0 && firstPaint <= 1500, `first paint ${firstPaint} ms`);
      assert.match(await frame.locator('.hdr-name').textContent(), new RegExp(RUN));
      assert.match(await frame.locator('.hdr-step').textContent(), /step 1000 \/ 1000/);
      assert.match(await frame.locator('.hdr-frames, .hdr-muted').first().textContent(), /500 layers · 40 samples/);
      await noErrors(frame);
      await t.screenshot('01-overview');
    },
  },
  {
    name: 'layer table: sorts, selects with the keyboard, shows the layer detail',
    async fn(t) {
      const frame = t.wb.webviewFrame(t.page);
      await frame.locator('vscode-tab-header[data-tab=\"layers\"]').click();
      await frame.locator('.lt-rows .lt-row').first().waitFor({ state: 'visible' });
      const rows = await frame.locator('.lt-rows .lt-row:not([hidden])').count();
      assert.ok(rows > 10 && rows < 100, `virtualized: ${rows} row elements for 500 layers`);
      // Sort by name, ascending.
      await frame.locator('.lt-sort', { hasText: 'Layer' }).click();
      assert.equal(await frame.locator('[role="columnheader"][aria-sort="ascending"]').count(), 1);
      // Keyboard: focus the grid, go down three rows, select with Enter.
      await frame.locator('.lt-scroller').focus();
      for (let i = 0; i < 3; i++) await t.page.keyboard.press('ArrowDown');
      await t.page.keyboard.press('Enter');
      const { selected } = await t.wb.waitForWebviewData(frame, (d) => !!d.selected, { what: 'a layer selected by Enter' });
      state.selected = selected;
      await frame.locator('.detail-title', { hasText: selected }).waitFor({ state: 'visible' });
      await t.page.waitForTimeout(300); // the layer history request answers asynchronously
      await noErrors(frame);
      await t.screenshot('02-layers');
    },
  },
  {
    name: 'curvature heatmaps render and select on click',
    async fn(t) {
      const frame = t.wb.webviewFrame(t.page);
      await frame.locator('vscode-tab-header[data-tab=\"curvature\"]').click();
      const hm = frame.locator('canvas.hm').first();
      await hm.waitFor({ state: 'visible' });
      const box = await hm.boundingBox();
      assert.ok(box && box.width > 100 && box.height > 100, `heatmap is ${box?.width}×${box?.height}`);
      assert.match(await hm.getAttribute('aria-label'), /500 layers/);
      await t.page.waitForTimeout(200);
      await noErrors(frame);
      await t.screenshot('03-curvature');
    },
  },
  {
    name: 'switching to another editor and back restores the UI state',
    async fn(t) {
      await t.page.keyboard.press('Control+P');
      await t.wb.pickQuickItem(t.page, 'notes.md');
      await t.wb.editorTab(t.page, 'notes.md').waitFor({ state: 'visible' });
      await t.page.waitForTimeout(500);
      await t.wb.editorTab(t.page, `Statistics: ${RUN}`).click();
      const frame = await t.wb.waitForWebview(t.page, 'body[data-ready="true"]');
      const d = await t.wb.webviewData(frame);
      assert.equal(d.tab, 'curvature');
      assert.equal(d.selected, state.selected);
      await noErrors(frame);
      await t.screenshot('04-back-to-panel');
    },
  },
  {
    name: 'reloading the window restores the panel (serializer)',
    async fn(t) {
      await t.wb.runCommand(t.page, 'Developer: Reload Window');
      await t.page.waitForLoadState('domcontentloaded');
      await t.wb.waitForWorkbench(t.page);
      await t.wb.editorTab(t.page, `Statistics: ${RUN}`).waitFor({ state: 'visible', timeout: 30_000 });
      // A restored background tab loads its webview when shown.
      await t.wb.editorTab(t.page, `Statistics: ${RUN}`).click();
      const frame = await t.wb.waitForWebview(t.page, 'body[data-ready="true"]', { timeout: 60_000 });
      const d = await t.wb.webviewData(frame);
      assert.equal(d.layers, '500');
      assert.equal(d.tab, 'curvature');
      assert.equal(d.selected, state.selected);
      await frame.locator('vscode-tab-header[data-tab=\"overview\"]').click();
      await t.page.waitForTimeout(300);
      await noErrors(frame);
      await t.screenshot('05-after-reload');
    },
  },
  {
    name: 'a live run with 1,000 layers takes at least one update per second',
    async fn(t) {
      const frame0 = await openStats(t, LIVE);
      assert.equal((await t.wb.webviewData(frame0)).layers, '1000');
      await frame0.locator('vscode-tab-header[data-tab=\"layers\"]').click();
      const before = Number((await t.wb.webviewData(frame0)).updates ?? 0);
      const { tensors, totalSteps } = state.live;
      const t1 = Date.now();
      let step = 30;
      const seconds = 6;
      // The trainer appends a frame and a metrics row 4 times a second.
      while (Date.now() - t1 < seconds * 1000) {
        step += 10;
        t.fixtures.appendSyntheticStep(state.liveDir, tensors, step, totalSteps);
        await t.page.waitForTimeout(250);
      }
      await t.page.waitForTimeout(1500);
      const frame = t.wb.webviewFrame(t.page);
      const d = await t.wb.webviewData(frame);
      const updates = Number(d.updates ?? 0) - before;
      const rate = updates / (seconds + 1.5);
      state.liveUpdatesPerSec = rate;
      t.log(`live run, 1000 layers: ${updates} updates in ${seconds + 1.5} s (${rate.toFixed(2)}/s), last step ${step}`);
      assert.ok(rate >= 1, `${rate.toFixed(2)} updates/s`);
      assert.match(await frame.locator('.hdr-step').textContent(), new RegExp(`step ${step}\\b`));
      assert.equal(await frame.locator('.live').isVisible(), true, 'the live indicator shows');
      await noErrors(frame);
      await t.screenshot('06-live-1000-layers');
      appendFileSync(join(t.workspace, 'notes.md'), `first paint ${state.firstPaintMs} ms, live ${rate} updates/s\n`);
    },
  },
  {
    name: 'fine-tune: the overview draws the base as dashed lines, the overfitting gap, mao’s captured energy and the saliency',
    async fn(t) {
      await openStats(t, FT);
      const frame = await t.wb.waitForWebview(t.page, `body[data-ready="true"][data-layers="${state.ft.tensors.length}"]`);
      await frame.locator('vscode-tab-header[data-tab="overview"]').click();
      await t.page.waitForTimeout(300);
      const d = await t.wb.webviewData(frame);
      assert.equal(d.layers, String(state.ft.tensors.length));
      assert.ok(Number(d.baseLines) >= 2, `base lines drawn: ${d.baseLines} (validation loss and accuracy)`);
      const gap = frame.locator('.chart', { hasText: 'Overfitting: the val − train loss gap' });
      assert.equal(await gap.isVisible(), true, 'the gap chart shows');
      assert.match(await gap.locator('.chart-note').textContent(), /overfitting grows/);
      const energy = frame.locator('.chart', { hasText: 'mao: momentum energy' });
      assert.equal(await energy.isVisible(), true, 'the captured-energy chart shows');
      assert.match(await energy.locator('.chart-note').textContent(), /^mao keeps \d+\.\d % of the momentum energy at rank 8 /);
      const e = Number(d.capturedEnergy);
      assert.ok(e > 0 && e <= 1, `overall captured energy ${d.capturedEnergy}`);
      const sal = frame.locator('.chart', { hasText: 'Task saliency mass' });
      assert.equal(await sal.isVisible(), true, 'the saliency chart shows');
      assert.match(await sal.locator('.chart-note').textContent(), /Where the fine-tune changed the model where it matters/);
      assert.match(await frame.locator('.chart', { hasText: 'Loss' }).first().locator('.chart-note').textContent(), /Dashed: the base model/);
      assert.match(await frame.locator('.chart', { hasText: 'Update ratio' }).locator('.chart-note').textContent(), /frozen tensors left out/);
      await noErrors(frame);
      await t.screenshot('07-finetune-overview');
    },
  },
  {
    name: 'fine-tune: the layer table shows each tensor’s role and filters by it',
    async fn(t) {
      const frame = await t.wb.waitForWebview(t.page, `body[data-ready="true"][data-layers="${state.ft.tensors.length}"]`);
      await frame.locator('vscode-tab-header[data-tab="layers"]').click();
      await frame.locator('.lt-rows .lt-row').first().waitFor({ state: 'visible' });
      const counts = JSON.parse((await t.wb.webviewData(frame)).roles);
      const want = { trained: 0, frozen: 0, lora: 0, adapter: 0, unknown: 0 };
      for (const x of state.ft.tensors) want[x.role]++;
      assert.deepEqual(counts, want);
      assert.ok((await frame.locator('.role-badge.role-lora').count()) > 0 || want.lora === 0);
      assert.match(await frame.locator('.lt-note').textContent(), /frozen.*0 by design/);
      assert.equal(await frame.locator('[role="columnheader"]', { hasText: 'energy kept' }).isVisible(), true, 'mao column');
      assert.equal(await frame.locator('[role="columnheader"]', { hasText: 'saliency' }).isVisible(), true, 'saliency column');
      // Sorted by role: the adapters, frozen tensors and LoRA factors first, each badge in its colour.
      await frame.locator('.lt-sort', { hasText: 'Role' }).click();
      await t.page.waitForTimeout(200);
      assert.match(await frame.locator('.lt-rows .lt-row:not([hidden]) .lt-role').first().getAttribute('aria-label'), /^role: adapter/);
      await t.screenshot('08-finetune-layers');
      // Sorted by saliency (descending): the tensor the fine-tune changed most where it mattered comes first.
      await frame.locator('.lt-sort', { hasText: 'saliency' }).click();
      await t.page.waitForTimeout(200);
      const first = await frame.locator('.lt-rows .lt-row:not([hidden]) .lt-name').first().getAttribute('title');
      const last = state.ft.tensors.filter((x) => x.role === 'trained').at(-1);
      assert.ok(first && first !== last.name && /weight$/.test(first), `largest saliency: ${first}`);
      // Only the frozen tensors: every row is marked, and says "frozen" instead of a zero gradient.
      const select = frame.locator('.lt-toolbar vscode-single-select');
      await select.evaluate((el) => {
        el.value = 'frozen';
        el.dispatchEvent(new Event('change', { bubbles: true }));
      });
      await t.page.waitForTimeout(300);
      const rows = frame.locator('.lt-rows .lt-row:not([hidden])');
      const n = await rows.count();
      assert.ok(n > 0 && n <= want.frozen, `${n} rows for ${want.frozen} frozen tensors`);
      assert.equal(await frame.locator('.lt-rows .lt-row:not([hidden]):not(.lt-frozen)').count(), 0, 'only frozen rows');
      assert.equal(await rows.first().locator('.lt-frozen-cell').first().textContent(), 'frozen');
      await rows.first().click();
      await frame.locator('.detail-grid dd', { hasText: '(frozen)' }).first().waitFor({ state: 'visible' });
      await noErrors(frame);
      await t.screenshot('09-finetune-frozen-filter');
      await select.evaluate((el) => {
        el.value = 'all';
        el.dispatchEvent(new Event('change', { bubbles: true }));
      });
    },
  },
];
