// How the editor side looks to a new user (issue 18, "In VS Code"): the statistics panel with the side bar open
// at 1400×900 in the dark and the light default themes, on REAL runs trained by the CLI before the window opens
// (the demo transformer, 64 classes, and the MLP demo, 8 classes, whose HR@10 is trivially 100 %). Checks what a
// screenshot can only show: layer names are not cut (scrollWidth ≤ clientWidth) and weight/bias stay apart, the
// last column is not clipped, series colours reach 3:1 contrast on the editor background, quantiles are never
// shown above max v, HR@10 is left out for ≤ 10 classes; the GPU view's Adapter row answers once expanded and its
// last row is in view; the activity bar icon. Screenshots 20-… to 29-… go to test-results/e2e/.
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'node:assert/strict';

const state = {};
const VIEWPORT = { width: 1400, height: 900 };
// The theme picker's labels in VS Code 1.139 (formerly "Default Dark Modern" / "Default Light Modern").
const THEMES = { dark: 'Dark Modern', light: 'Light Modern' };
/** Every built-in colour theme (extensions/theme-defaults), with its base: the series colours must pass in each. */
const BUILT_IN = [
  ['Dark Modern', 'vs-dark'],
  ['Light Modern', 'vs'],
  ['Dark 2026', 'vs-dark'],
  ['Light 2026', 'vs'],
  ['Dark+', 'vs-dark'],
  ['Light+', 'vs'],
  ['Dark (Visual Studio)', 'vs-dark'],
  ['Light (Visual Studio)', 'vs'],
  ['Dark High Contrast', 'hc-black'],
  ['Light High Contrast', 'hc-light'],
];

/** A demo config sized for the test: 100 steps, statistics every 10, two evaluations and checkpoints. */
function demoConfig(out) {
  const src = readFileSync(join(state.root, 'examples', 'demo.basin.yaml'), 'utf8');
  return src
    .replace(/^name: .*$/m, 'name: look-demo')
    .replace(/steps: 400/, 'steps: 100')
    .replace(/statsEvery: \d+/, 'statsEvery: 10')
    .replace(/evalEvery: \d+/, 'evalEvery: 50')
    .replace(/checkpointEvery: \d+/, 'checkpointEvery: 50')
    .replace(/^output: .*$/m, `output: ${out}`);
}

function mlpConfig(out) {
  const src = readFileSync(join(state.root, 'examples', 'mlp.basin.yaml'), 'utf8');
  return src
    .replace(/^name: .*$/m, 'name: look-mlp')
    .replace(/epochs: \d+/, 'epochs: 2')
    .replace(/statsEvery: \d+/, 'statsEvery: 20')
    .replace(/evalEvery: \d+/, 'evalEvery: 40')
    .replace(/^output: .*$/m, `output: ${out}`);
}

function train(config) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [join(state.root, 'dist', 'cli.js'), 'train', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (out += d));
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`basin train ${config} exited ${code}:\n${out.slice(-2000)}`))));
  });
}

export async function prepare({ workspace, root }) {
  state.root = root;
  const out = join(workspace, 'runs');
  const dir = join(workspace, 'look');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'look-demo.basin.yaml'), demoConfig(out));
  writeFileSync(join(dir, 'look-mlp.basin.yaml'), mlpConfig(out));
  // Trains while code-server starts; the first test waits for it. One after the other: two cores.
  state.trained = train(join(dir, 'look-demo.basin.yaml')).then(() => train(join(dir, 'look-mlp.basin.yaml')));
  state.trained.catch(() => undefined); // reported by the test that awaits it
  state.runsDir = out;
}

function runName(prefix) {
  const d = readdirSync(state.runsDir).filter((x) => x.startsWith(prefix)).sort();
  assert.ok(d.length, `no ${prefix} run in ${state.runsDir}`);
  return d[d.length - 1];
}

/** Switches the colour theme as a user does (Preferences: Color Theme), by its label; `base`: vs, vs-dark, hc-…. */
async function pickTheme(t, label, base) {
  await t.wb.runCommand(t.page, 'Preferences: Color Theme');
  const input = t.page.locator('.quick-input-widget input');
  await input.waitFor({ state: 'visible', timeout: 10_000 });
  await input.fill(label);
  // The row whose label is exactly this one ("Dark+" must not pick "Dark+ (something)").
  const row = t.page.locator('.quick-input-list .monaco-list-row').filter({ has: t.page.locator('.label-name', { hasText: new RegExp(`^${label.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) }) }).first();
  await row.waitFor({ state: 'visible', timeout: 15_000 });
  await row.click();
  await t.page.waitForFunction((cls) => document.querySelector('.monaco-workbench')?.classList.contains(cls), base, { timeout: 20_000 });
  await t.wb.closeQuickInput(t.page);
  await t.page.waitForTimeout(800); // webviews get the new colours by message
}

const setTheme = (t, which) => pickTheme(t, THEMES[which], which === 'dark' ? 'vs-dark' : 'vs');

async function openStats(t, run) {
  await t.wb.pickFromCommand(t.page, 'Basin: Open Statistics', 'Open Statistics', run, { log: t.log });
  await t.wb.editorTab(t.page, `Statistics: ${run}`).waitFor({ state: 'visible', timeout: 20_000 });
  const frame = await waitForPanel(t, run);
  return frame;
}

/** The statistics webview showing `run` (several may be open). */
async function waitForPanel(t, run, timeout = 60_000) {
  const t0 = Date.now();
  for (;;) {
    const n = await t.page.locator('iframe.webview.ready').count();
    for (let i = 0; i < n; i++) {
      const f = t.wb.webviewFrame(t.page, i);
      const ok = await f
        .locator('body[data-ready="true"] .hdr-name', { hasText: run })
        .count()
        .catch(() => 0);
      if (ok) return f;
    }
    if (Date.now() - t0 > timeout) throw new Error(`no statistics panel for ${run} within ${timeout} ms`);
    await t.page.waitForTimeout(200);
  }
}

async function showBasinSideBar(t) {
  const item = t.page.locator('.activitybar .action-item a.action-label[aria-label^="Basin"]').first();
  await item.waitFor({ state: 'visible', timeout: 20_000 });
  const checked = await item.evaluate((a) => a.closest('.action-item')?.classList.contains('checked'));
  if (!checked) await item.click();
  await t.page.locator('.sidebar .pane-header', { hasText: 'Runs' }).first().waitFor({ state: 'visible', timeout: 10_000 });
}

async function tab(frame, name) {
  await frame.locator(`vscode-tab-header[data-tab="${name}"]`).click();
}

async function noErrors(frame) {
  const d = await frame.locator('body').evaluate((b) => ({ errors: b.dataset.errors, last: b.dataset.lastError }));
  assert.equal(d.errors, undefined, `the webview reported errors: ${d.last}`);
}

/** In the page: WCAG contrast of every series colour against the editor background. */
async function seriesContrast(frame) {
  return frame.locator('body').evaluate((b) => {
    const parse = (c) => {
      const x = document.createElement('canvas').getContext('2d');
      x.fillStyle = '#010203';
      x.fillStyle = c;
      const s = String(x.fillStyle);
      if (s.startsWith('#')) return [1, 3, 5].map((i) => parseInt(s.slice(i, i + 2), 16)).concat(1);
      const m = /rgba?\(([^)]+)\)/.exec(s);
      return m ? m[1].split(',').map(Number) : null;
    };
    const lum = ([r, g, bl]) => {
      const l = (v) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
      return 0.2126 * l(r) + 0.7152 * l(g) + 0.0722 * l(bl);
    };
    const bgCss = getComputedStyle(b).getPropertyValue('--vscode-editor-background').trim();
    const bg = parse(bgCss);
    const colors = JSON.parse(b.dataset.seriesColors ?? '[]');
    return {
      bg: bgCss,
      ratios: colors.map((c) => {
        const f = parse(c);
        const a = f[3] ?? 1;
        const mixed = [0, 1, 2].map((i) => f[i] * a + bg[i] * (1 - a));
        const [hi, lo] = [lum(mixed), lum(bg)].sort((x, y) => y - x);
        return { color: c, ratio: (hi + 0.05) / (lo + 0.05) };
      }),
    };
  });
}

/** Layout checks of the layer table and the detail pane. */
async function tableLayout(frame) {
  return frame.locator('body').evaluate(() => {
    const names = [...document.querySelectorAll('.lt-rows .lt-row:not([hidden]) .lt-name')].map((c) => ({ text: c.textContent, full: c.title, scroll: c.scrollWidth, client: c.clientWidth }));
    const scroller = document.querySelector('.lt-scroller').getBoundingClientRect();
    const header = [...document.querySelectorAll('.lt-header .lt-cell')];
    const last = header[header.length - 1].getBoundingClientRect();
    const headerOverflow = header.map((c) => c.firstElementChild).filter((b) => b.scrollWidth > b.clientWidth + 1).map((b) => b.textContent);
    const detailOverflow = [...document.querySelectorAll('.detail dt, .detail dd, .detail-title, .detail-shape, .chart-note, .empty')]
      .filter((e) => e.offsetParent && e.scrollWidth > e.clientWidth + 1)
      .map((e) => e.textContent);
    // Each row: the quantiles as shown (the full value is the cell's tooltip) and max v.
    const cols = [...document.querySelectorAll('.lt-header .lt-sort')].map((b) => b.textContent);
    const at = (k) => cols.indexOf(k);
    const quant = [...document.querySelectorAll('.lt-rows .lt-row:not([hidden])')].map((r) => {
      const c = r.querySelectorAll('.lt-cell');
      return { name: c[0].title, max: Number(c[at('max v')].title), p50: Number(c[at('p50 of v')].title), p90: Number(c[at('p90 of v')].title), p99: Number(c[at('p99 of v')].title) };
    });
    return { names, lastRight: last.right, scrollerRight: scroller.right, scrollbarX: document.querySelector('.lt-scroller').scrollWidth > document.querySelector('.lt-scroller').clientWidth, headerOverflow, detailOverflow, quant };
  });
}

async function selectLayer(t, frame, name) {
  await tab(frame, 'layers');
  // By name, ascending: the model's tensors in order (a second click would sort descending).
  const header = frame.locator('[role="columnheader"]', { has: frame.locator('.lt-sort', { hasText: 'Layer' }) });
  for (let i = 0; i < 2 && (await header.getAttribute('aria-sort')) !== 'ascending'; i++) await frame.locator('.lt-sort', { hasText: 'Layer' }).click();
  // The table is virtualized (row elements are reused on scroll): scroll until the row is in view, then click it.
  const ok = await frame.locator('.lt-scroller').evaluate(async (sc, n) => {
    sc.scrollTop = 0;
    for (let i = 0; i < 200; i++) {
      await new Promise((r) => requestAnimationFrame(r));
      const cell = [...sc.querySelectorAll('.lt-rows .lt-row:not([hidden]) .lt-name')].find((c) => c.title === n);
      const head = sc.querySelector('.lt-header').getBoundingClientRect();
      const view = sc.getBoundingClientRect();
      const r = cell?.getBoundingClientRect();
      if (r && r.top >= head.bottom && r.bottom <= view.bottom) {
        cell.click();
        return true;
      }
      if (sc.scrollTop + sc.clientHeight >= sc.scrollHeight) return false;
      sc.scrollTop += 44;
    }
    return false;
  }, name);
  assert.ok(ok, `no row for ${name} in the layer table`);
  await frame.locator('.detail-title', { hasText: name }).waitFor({ state: 'visible', timeout: 10_000 });
  await t.page.waitForTimeout(400); // the layer history request answers asynchronously
}

function checkTable(lay, where) {
  assert.ok(lay.names.length > 10, `${where}: ${lay.names.length} name cells`);
  const cut = lay.names.filter((n) => n.scroll > n.client);
  assert.deepEqual(cut, [], `${where}: names overflow their cells`);
  const byText = new Map();
  for (const n of lay.names) {
    const prev = byText.get(n.text);
    assert.ok(!prev || prev === n.full, `${where}: "${prev}" and "${n.full}" both show as "${n.text}"`);
    byText.set(n.text, n.full);
  }
  assert.ok(lay.lastRight <= lay.scrollerRight + 1, `${where}: the last column ends at ${lay.lastRight}, the table at ${lay.scrollerRight}`);
  assert.equal(lay.scrollbarX, false, `${where}: the table scrolls sideways`);
  assert.deepEqual(lay.headerOverflow, [], `${where}: header labels cut`);
  assert.deepEqual(lay.detailOverflow, [], `${where}: detail text cut`);
  for (const q of lay.quant) for (const k of ['p50', 'p90', 'p99']) assert.ok(!(q[k] > q.max), `${where}: ${q.name} shows ${k} ${q[k]} above max v ${q.max}`);
}

export const tests = [
  {
    name: 'look: the CLI trained the demo and the MLP runs for the screenshots',
    async fn(t) {
      await state.trained;
      state.demo = runName('look-demo-');
      state.mlp = runName('look-mlp-');
      await t.page.setViewportSize(VIEWPORT);
    },
  },
  {
    name: 'look: statistics panel with the side bar open, dark and light (names, columns, contrast, quantiles)',
    async fn(t) {
      await showBasinSideBar(t);
      await setTheme(t, 'dark');
      const frame = await openStats(t, state.demo);
      await tab(frame, 'overview');
      const d = await t.wb.webviewData(frame);
      assert.equal(d.layers, '38');
      assert.match(await frame.locator('.hdr-muted').first().textContent(), /^38 layers · \d+ samples$/);
      for (const which of ['dark', 'light']) {
        await setTheme(t, which);
        const f = await waitForPanel(t, state.demo);
        const c = await seriesContrast(f);
        t.log(`${which}: series contrast on ${c.bg}: ${c.ratios.map((r) => `${r.color} ${r.ratio.toFixed(2)}`).join(', ')}`);
        for (const r of c.ratios) assert.ok(r.ratio >= 3, `${which}: ${r.color} has contrast ${r.ratio.toFixed(2)} on ${c.bg}`);
        await tab(f, 'overview');
        // The demo has 64 classes: HR@10 is drawn, and the chart says what it is.
        assert.match(await f.locator('.chart-title', { hasText: 'Validation' }).textContent(), /HR@10 \(%\)/);
        assert.match(await f.locator('.chart-title', { hasText: 'Validation' }).getAttribute('title'), /10 highest/);
        assert.match(await f.locator('.chart-title', { hasText: 'before clipping' }).textContent(), /global/);
        assert.match(await f.locator('.chart-title', { hasText: 'after clipping' }).textContent(), /per layer/);
        await t.page.waitForTimeout(300);
        await noErrors(f);
        await t.screenshot(`20-stats-overview-${which}`);
        await selectLayer(t, f, 'blocks.0.attn.o.weight');
        const lay = await tableLayout(f);
        checkTable(lay, `${which} layers tab`);
        const o = lay.names.filter((n) => /^blocks\.0\.attn\.o\./.test(n.full)).map((n) => n.text);
        t.log(`${which}: the attention output rows read ${JSON.stringify(o)}`);
        assert.equal(o.length, 2);
        assert.ok(o.some((x) => x.endsWith('.weight')) && o.some((x) => x.endsWith('.bias')), `weight and bias apart: ${o}`);
        // Both gradient norms in the detail pane, each named.
        const dts = await f.locator('.detail-grid dt').allTextContents();
        assert.ok(dts.includes('‖g‖ after clip') && dts.includes('global ‖g‖ before clip'), dts.join(', '));
        assert.match(await f.locator('.detail .chart-note').last().textContent(), /^p50\/p90\/p99 of v: /);
        await noErrors(f);
        await t.screenshot(`21-stats-layers-${which}`);
      }
    },
  },
  {
    name: 'look: series colours reach 3:1 contrast on the editor background in every built-in theme',
    async fn(t) {
      const bad = [];
      for (const [label, base] of BUILT_IN) {
        await pickTheme(t, label, base);
        const f = await waitForPanel(t, state.demo);
        const c = await seriesContrast(f);
        t.log(`${label}: on ${c.bg}: ${c.ratios.map((r) => `${r.color} ${r.ratio.toFixed(2)}`).join(', ')}`);
        for (const r of c.ratios) if (!(r.ratio >= 3)) bad.push(`${label}: ${r.color} ${r.ratio.toFixed(2)} on ${c.bg}`);
        if (base.startsWith('hc')) await t.screenshot(`20-stats-overview-${base}`);
      }
      await setTheme(t, 'light');
      assert.deepEqual(bad, []);
    },
  },
  {
    name: 'look: the layer detail pane collapses and the table takes the width',
    async fn(t) {
      const f = await waitForPanel(t, state.demo);
      await tab(f, 'layers');
      const size = () => f.locator('.lt-scroller').evaluate((e) => ({ w: e.clientWidth, h: e.clientHeight }));
      const before = await size();
      await f.locator('.hdr-detail').click();
      await f.locator('.detail').waitFor({ state: 'hidden', timeout: 5000 });
      assert.equal(await f.locator('.hdr-detail').getAttribute('aria-expanded'), 'false');
      await t.page.waitForTimeout(300);
      const after = await size();
      t.log(`table ${before.w}×${before.h} px → ${after.w}×${after.h} px with the detail pane collapsed`);
      // The pane sits beside the table on wide panels and below it on narrow ones: the table grows either way.
      assert.ok(after.w * after.h > before.w * before.h * 1.1, `${JSON.stringify(before)} → ${JSON.stringify(after)}`);
      checkTable(await tableLayout(f), 'detail collapsed');
      await t.screenshot('22-stats-detail-collapsed-light');
      await f.locator('.hdr-detail').click();
      await f.locator('.detail').waitFor({ state: 'visible', timeout: 5000 });
    },
  },
  {
    name: 'look: v histogram zoomed to the data, quantile labels apart, curvature names',
    async fn(t) {
      const f = await waitForPanel(t, state.demo);
      // tok.weight has zero rows (the padding id) and v over ~2 decades: the axis must not span 1e-16…1e0.
      await selectLayer(t, f, 'tok.weight');
      const s = await f.locator('.detail-chart').nth(1).locator('.sr-only').textContent();
      t.log(`tok.weight histogram: ${s}`);
      const m = /from 1e(-?\d+) to 1e(-?\d+)/.exec(s);
      assert.ok(m, s);
      assert.ok(Number(m[2]) - Number(m[1]) <= 6, `the axis spans ${m[1]}…${m[2]}`);
      await t.screenshot('23-stats-histogram-light');
      await tab(f, 'curvature');
      await t.page.waitForTimeout(400);
      await noErrors(f);
      await t.screenshot('24-stats-curvature-light');
    },
  },
  {
    name: 'look: an 8-class run hides HR@10 (trivially 100 %) and says why',
    async fn(t) {
      const f = await openStats(t, state.mlp);
      await tab(f, 'overview');
      await t.page.waitForTimeout(300);
      const title = await f.locator('.chart-title', { hasText: 'Validation' }).textContent();
      assert.doesNotMatch(title, /HR@10/);
      assert.match(await f.locator('.chart-note:not([hidden])', { hasText: 'HR@10' }).textContent(), /8 classes/);
      await noErrors(f);
      await t.screenshot('25-stats-mlp-8-classes-light');
    },
  },
  {
    name: 'look: GPU view answers on the Adapter row once expanded; its last row is in view',
    async fn(t) {
      await showBasinSideBar(t);
      const header = t.page.locator('.sidebar .pane-header', { hasText: 'GPU' }).first();
      if ((await header.getAttribute('aria-expanded')) !== 'true') await header.click();
      const pane = t.page.locator('.sidebar .pane', { has: t.page.locator('.pane-header', { hasText: 'GPU' }) }).first();
      const adapter = pane.locator('.monaco-list-row', { hasText: 'Adapter' }).first();
      await adapter.waitFor({ state: 'visible', timeout: 10_000 });
      if ((await adapter.getAttribute('aria-expanded')) !== 'true') await adapter.click();
      await pane.locator('.monaco-list-row', { hasText: 'limits' }).first().waitFor({ state: 'attached', timeout: 60_000 });
      await t.page.waitForFunction(
        () => ![...document.querySelectorAll('.sidebar .monaco-list-row')].some((r) => /expand to ask the worker|asking the worker/.test(r.textContent ?? '')),
        undefined,
        { timeout: 20_000 },
      );
      const desc = await adapter.textContent();
      t.log(`GPU view Adapter row: ${desc}`);
      assert.doesNotMatch(desc, /expand to ask/);
      // Every row the view lays out lies inside the view's body (none cut at the bottom edge).
      const geo = await pane.evaluate((p) => {
        const body = p.querySelector('.pane-body').getBoundingClientRect();
        const rows = [...p.querySelectorAll('.monaco-list-row')].map((r) => r.getBoundingClientRect()).filter((r) => r.bottom > body.top && r.top < body.bottom);
        const last = rows.sort((a, b) => b.bottom - a.bottom)[0];
        return { bodyBottom: body.bottom, lastBottom: last?.bottom ?? 0, rows: rows.length };
      });
      t.log(`GPU view: ${geo.rows} rows in view, last ends at ${geo.lastBottom}, the view at ${geo.bodyBottom}`);
      assert.ok(geo.lastBottom <= geo.bodyBottom + 0.5, `the last row ends at ${geo.lastBottom}, below the view's ${geo.bodyBottom}`);
      await t.screenshot('26-gpu-view-light');
      await setTheme(t, 'dark');
      await t.screenshot('27-gpu-view-dark');
    },
  },
  {
    name: 'look: the activity bar icon in dark and light, and the Runs view',
    async fn(t) {
      const item = t.page.locator('.activitybar .action-item a.action-label[aria-label^="Basin"]').first();
      // The activity bar beside the side bar's title: the icon among the workbench's own at their real size.
      const box = await t.page.locator('.activitybar').boundingBox();
      const clip = { x: box.x, y: box.y, width: box.width + 260, height: Math.min(box.height, 340) };
      const mask = await item.evaluate((a) => getComputedStyle(a).webkitMaskImage || getComputedStyle(a).maskImage);
      assert.match(mask, /basin-activity\.svg/);
      await t.screenshot('28-activity-icon-dark', { clip });
      await setTheme(t, 'light');
      await t.screenshot('28-activity-icon-light', { clip });
      // The Runs view down to a checkpoint's tensors (the README's runs-view image).
      // A tree row by its label (not its description: "Metrics  step 100 · …" is no "step 100" row).
      const row = (text) => t.page.locator('.sidebar .monaco-list-row').filter({ has: t.page.locator('.label-name', { hasText: new RegExp(`^${text.replace(/[.]/g, '\\.')}$`) }) }).first();
      const expand = async (text) => {
        const r = row(text);
        await r.waitFor({ state: 'visible', timeout: 20_000 });
        if ((await r.getAttribute('aria-expanded')) !== 'true') await r.click();
      };
      await expand(state.demo);
      await expand('Checkpoints');
      await expand('step 100');
      // Beside it, the run's statistics (Layers tab) rather than the last panel opened.
      await t.wb.editorTab(t.page, `Statistics: ${state.demo}`).click();
      await tab(await waitForPanel(t, state.demo), 'layers');
      await t.page.locator('.sidebar .monaco-list-row', { hasText: 'blocks.0.attn.o.bias' }).first().waitFor({ state: 'visible', timeout: 20_000 });
      await t.page.waitForTimeout(400);
      await t.screenshot('29-runs-view-light');
      await setTheme(t, 'dark'); // the default, for the test files after this one
      await t.page.setViewportSize({ width: 1440, height: 900 });
    },
  },
];
