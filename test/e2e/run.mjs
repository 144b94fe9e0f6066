// The e2e tier: drives a real VS Code workbench (code-server + headless Chromium via playwright-core) with the
// extension loaded from this folder, runs every test/e2e/*.e2e.mjs in order against one window, and saves
// screenshots to test-results/e2e/. `npm run test:e2e` builds first; needs `bash scripts/setup-vscode-test.sh`.
//
// A test file exports `tests`: [{ name, fn: async (t) => … }], run in order; `t` holds the page, the workspace
// folder, the workbench helpers (workbench.mjs), `screenshot(name, options)` (options as page.screenshot's, e.g.
// `clip`) and `fixtures` (test/fixtures/*.ts, loaded through tsx). A failing test does not stop the next ones
// (each should be able to recover its own state; after a failure the runner dismisses dialogs, and reloads or
// replaces a window that ran past its time, crashed or stopped answering).
// Writes the summary JSON ({ passed, failed, pending, durationMs, failures }) to BASIN_TEST_SUMMARY (default
// out/test/e2e/summary.json), as the other tiers do. Env: BASIN_E2E_GREP (run matching tests), BASIN_TEST_VERBOSE=1,
// BASIN_TEST_KEEP=1 (keep the scratch folder), BASIN_E2E_TIMEOUT_S (whole run, default 1200;
// about 300 s on 2 cores), BASIN_E2E_TEST_TIMEOUT_S (one test, default 240; a test may set its own `timeoutS`), BASIN_E2E_THEME (the
// window's colour theme, e.g. "Default Light Modern"; default: VS Code's, Default Dark Modern), BASIN_E2E_SHOTS
// (the screenshots' folder, emptied first; default test-results/e2e).
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { tsImport } from 'tsx/esm/api';
import { findTools, launchChromium, pipeConsole, prepareScratch, root, startCodeServer, tail, workbenchUrl } from '../vscode/code-server.mjs';
import * as wb from './workbench.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const verbose = process.env.BASIN_TEST_VERBOSE === '1';
const grep = process.env.BASIN_E2E_GREP ? new RegExp(process.env.BASIN_E2E_GREP, 'i') : null;
const t0 = Date.now();
const log = (m) => process.stderr.write(`[e2e +${((Date.now() - t0) / 1000).toFixed(1)}s] ${m}\n`);
const summaryPath = resolve(process.env.BASIN_TEST_SUMMARY || join(root, 'out', 'test', 'e2e', 'summary.json'));
const shotsDir = resolve(process.env.BASIN_E2E_SHOTS || join(root, 'test-results', 'e2e'));
const summary = { passed: 0, failed: 0, pending: 0, durationMs: 0, failures: [] };

function writeSummary() {
  summary.durationMs = Date.now() - t0;
  mkdirSync(dirname(summaryPath), { recursive: true });
  writeFileSync(summaryPath, JSON.stringify(summary, null, 2));
}

const tools = findTools();
if (tools.error) {
  process.stderr.write(`[e2e] ${tools.error}\n`);
  process.exit(2);
}
for (const f of ['dist/extension.js', 'dist/worker.js', 'dist/webview/stats.js']) {
  if (!readdirSync(join(root, dirname(f))).includes(f.split('/').pop())) {
    process.stderr.write(`[e2e] ${f} is missing: run \`npm run build\` first\n`);
    process.exit(2);
  }
}

mkdirSync(join(root, '.vscode-test'), { recursive: true });
const scratch = mkdtempSync(join(root, '.vscode-test', 'e2e-'));
const theme = process.env.BASIN_E2E_THEME ? { 'workbench.colorTheme': process.env.BASIN_E2E_THEME } : {};
const dirs = prepareScratch(scratch, { settings: { 'workbench.secondarySideBar.defaultVisibility': 'hidden', 'workbench.editor.restoreViewState': true, ...theme } });
const workspace = join(scratch, 'workspace');
mkdirSync(workspace, { recursive: true });
rmSync(shotsDir, { recursive: true, force: true });
mkdirSync(shotsDir, { recursive: true });


let server;
let browser;
// A test that runs past this fails (and the window is reloaded) instead of eating the whole run's time.
const perTestS = Number(process.env.BASIN_E2E_TEST_TIMEOUT_S || 240);
let pageCrashed = false;

/** A fresh page on the workbench, its console piped; a crash is logged and remembered for recover(). */
async function openWorkbench(url) {
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  pipeConsole(page, { verbose, t0 });
  pageCrashed = false;
  page.on('crash', () => {
    pageCrashed = true;
    log('the workbench page crashed');
  });
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  await wb.waitForWorkbench(page);
  return page;
}

/**
 * After a failed test, leave a window the next test can use: a crashed or closed page is replaced, a page that no
 * longer answers or that ran past its time is reloaded, and a modal left open is dismissed. Without this one
 * failure (a dialog, a crashed renderer) made every later test fail on its timeouts, and the run ran out of time.
 */
async function recover(t, error) {
  const timedOut = /ran past its/.test(String(error?.message ?? ''));
  const answers = !pageCrashed && !t.page.isClosed() && (await Promise.race([
    t.page.evaluate(() => true).catch(() => false),
    new Promise((r) => setTimeout(() => r(false), 10_000)),
  ]));
  try {
    // A test that failed mid-drag leaves a button or a modifier held (in playwright's input state too, which a reload
    // keeps): a Shift left down turns the next test's Ctrl+P into the command palette, so one failure failed the rest.
    if (answers) {
      await t.page.mouse.up().catch(() => undefined);
      for (const k of ['Shift', 'Control', 'Alt', 'Meta']) await t.page.keyboard.up(k).catch(() => undefined);
    }
    if (!answers) {
      log(`recover: the workbench page ${pageCrashed ? 'crashed' : t.page.isClosed() ? 'is closed' : 'does not answer'}; opening a new one`);
      await t.page.close().catch(() => undefined);
      t.page = await openWorkbench(t.url);
    } else if (timedOut) {
      log('recover: reloading the window after a test that ran past its time');
      await t.page.reload({ waitUntil: 'domcontentloaded' });
      await wb.waitForWorkbench(t.page);
    } else {
      for (let i = 0; i < 3; i++) await t.page.keyboard.press('Escape').catch(() => undefined);
    }
  } catch (e) {
    log(`recover failed: ${e?.message ?? e}`);
  }
}
const overallS = Number(process.env.BASIN_E2E_TIMEOUT_S || 1200);
const overall = setTimeout(() => {
  log(`timed out after ${overallS} s`);
  summary.failed++;
  summary.failures.push({ title: 'e2e run', error: `timed out after ${overallS} s` });
  void finish(124);
}, overallS * 1000);

let finishing = false;
async function finish(code) {
  if (finishing) return;
  finishing = true;
  clearTimeout(overall);
  writeSummary();
  await browser?.close().catch(() => undefined);
  await server?.stop();
  if (!verbose && process.env.BASIN_TEST_KEEP !== '1') rmSync(scratch, { recursive: true, force: true });
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  console.log(`e2e tier: ${summary.passed} passed, ${summary.failed} failed, ${summary.pending} pending in ${secs} s; screenshots in ${shotsDir}`);
  process.exit(code || (summary.failed ? 1 : 0));
}
process.on('SIGINT', () => void finish(130));
process.on('SIGTERM', () => void finish(143));

try {
  // test/fixtures/*.ts through tsx (the fixtures build frames with the project's own encoder).
  const fixtures = await tsImport(pathToFileURL(join(root, 'test', 'fixtures', 'stats-run.ts')).href, import.meta.url);
  // Test files first: they may prepare the workspace before the window opens.
  const files = readdirSync(here).filter((f) => f.endsWith('.e2e.mjs')).sort();
  const suites = [];
  for (const f of files) suites.push({ file: f, mod: await import(pathToFileURL(join(here, f)).href) });
  for (const s of suites) await s.mod.prepare?.({ workspace, fixtures, root });

  server = await startCodeServer({
    tools,
    dirs,
    folder: workspace,
    verbose,
    onExit: (code, signal) => {
      process.stderr.write(tail(dirs.log, 40));
      summary.failed++;
      summary.failures.push({ title: 'code-server', error: `ended early (${signal ?? code})` });
      void finish(3);
    },
  });
  log(`code-server is up on ${server.host}`);
  browser = await launchChromium(tools.chromium);
  const url = workbenchUrl(server.host, { folder: workspace, dev: [root] });
  const page = await openWorkbench(url);
  log('workbench is up');

  const t = {
    page,
    workspace,
    fixtures,
    root,
    url,
    wb,
    log,
    async screenshot(name, options = {}) {
      const file = join(shotsDir, `${name}.png`);
      await t.page.screenshot({ ...options, path: file });
      log(`screenshot ${file}`);
      return file;
    },
  };
  for (const s of suites) {
    console.log(`  ${s.file}`);
    for (const test of s.mod.tests ?? []) {
      if (grep && !grep.test(test.name)) {
        summary.pending++;
        continue;
      }
      const ts = Date.now();
      const limitS = test.timeoutS ?? perTestS;
      let timer;
      try {
        await Promise.race([
          test.fn(t),
          new Promise((_, reject) => {
            timer = setTimeout(() => reject(new Error(`the test ran past its ${limitS} s (timeoutS)`)), limitS * 1000);
          }),
        ]);
        summary.passed++;
        console.log(`    ✔ ${test.name} (${Date.now() - ts} ms)`);
      } catch (e) {
        summary.failed++;
        summary.failures.push({ title: `${s.file}: ${test.name}`, error: e?.stack ?? String(e) });
        console.log(`    ✘ ${test.name} (${Date.now() - ts} ms, at +${((Date.now() - t0) / 1000).toFixed(0)} s)\n${String(e?.stack ?? e).replace(/^/gm, '      ')}`);
        await t.screenshot(`FAILED-${test.name.replace(/[^a-z0-9]+/gi, '-').slice(0, 60)}`).catch(() => undefined);
        await recover(t, e);
      } finally {
        clearTimeout(timer);
      }
    }
  }
  await finish(0);
} catch (e) {
  summary.failed++;
  summary.failures.push({ title: 'e2e setup', error: e?.stack ?? String(e) });
  log(`failed: ${e?.stack ?? e}`);
  await finish(1);
}
