// The packaged extension, as a user gets it: `npm run package` (scripts/package.mjs, here with --no-build: the
// tier runs after a build) makes the platform .vsix; code-server's own CLI installs it (`--install-extension`)
// into a fresh extensions folder; a second code-server then starts WITHOUT extensionDevelopmentPath (and without
// the smoke-test driver, so notifications show as toasts) on a workspace holding a config. Checks: the .vsix holds
// dist/, kernels/, media/, schemas/ and webgpu's linux-x64 dawn.node; the installed extension activates (the
// ▶ Train lens on the config); "Basin: Show GPU Info" answers with llvmpipe in a notification; and the worker
// process loaded dawn.node from the INSTALLED extension (its /proc/<pid>/maps), not from this repository.
// Everything lives in a folder under the OS temp dir, outside the repository, so that Node's module resolution
// cannot fall back to the repository's node_modules. Screenshots 20-… go to test-results/e2e/.
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as assert from 'node:assert/strict';
import { zipEntries } from '../../scripts/zip-entries.mjs';
import { findTools, launchChromium, pipeConsole, prepareScratch, startCodeServer, tail, workbenchUrl } from '../vscode/code-server.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const state = {};

function run(cmd, args, opts = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', (e) => resolve({ code: 127, out: e.message }));
    child.on('exit', (code, signal) => resolve({ code: code ?? 128, signal, out }));
  });
}


/** Processes of a process group (the code-server's: extension host, the extension's worker…). */
function groupPids(pgid) {
  const pids = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      // /proc/<pid>/stat: "pid (comm) state ppid pgrp …"; comm may hold spaces and parentheses.
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid) pids.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return pids;
}

async function cleanup() {
  await state.page?.close().catch(() => undefined);
  await state.browser?.close().catch(() => undefined);
  await state.server?.stop();
  if (state.scratch && process.env.BASIN_TEST_KEEP !== '1') rmSync(state.scratch, { recursive: true, force: true });
}

export const tests = [
  {
    name: 'packaged .vsix: npm run package holds dist, kernels, media, schemas and the linux-x64 webgpu binary',
    async fn(t) {
      const r = await run(process.execPath, [join(t.root, 'scripts', 'package.mjs'), '--no-build'], { cwd: t.root });
      assert.equal(r.code, 0, `scripts/package.mjs failed:\n${r.out.slice(-3000)}`);
      const m = /\[package\] (\S+\.vsix)/.exec(r.out);
      assert.ok(m, `no .vsix named in the output:\n${r.out.slice(-2000)}`);
      state.vsix = join(t.root, m[1]);
      const files = (await zipEntries(state.vsix)).filter((f) => f.startsWith('extension/')).map((f) => f.slice(10));
      for (const dir of ['dist/', 'kernels/', 'media/', 'schemas/']) assert.ok(files.some((f) => f.startsWith(dir)), `${dir} is in the .vsix`);
      for (const f of ['dist/extension.js', 'dist/config-validator.js', 'dist/worker.js', 'dist/webview/stats.js', 'kernels/common/logsumexp.wgsl', 'package.json', 'node_modules/webgpu/package.json', 'node_modules/webgpu/index.js', 'node_modules/webgpu/dist/linux-x64/dawn.node']) {
        assert.ok(files.includes(f), `${f} is in the .vsix`);
      }
      const others = files.filter((f) => f.startsWith('node_modules/') && !f.startsWith('node_modules/webgpu/'));
      assert.deepEqual(others, [], 'no other node_modules in the .vsix');
      t.log(`${m[1]}: ${files.length} files, ${(readFileSync(state.vsix).length / 2 ** 20).toFixed(1)} MiB`);
    },
  },
  {
    name: 'packaged .vsix: code-server --install-extension, then it activates without extensionDevelopmentPath',
    async fn(t) {
      try {
        await openPackagedWindow(t);
      } catch (e) {
        await cleanup();
        throw e;
      }
    },
  },
  {
    name: 'packaged .vsix: Show GPU Info answers llvmpipe; the worker loaded the installed dawn.node',
    async fn(t) {
      try {
        await gpuInfo(t);
      } finally {
        await cleanup();
      }
    },
  },
];

async function openPackagedWindow(t) {
  assert.ok(state.vsix, 'the .vsix was built (previous test)');
  const tools = findTools();
  state.scratch = mkdtempSync(join(tmpdir(), 'basin-vsix-'));
  const dirs = prepareScratch(state.scratch, { settings: { 'workbench.secondarySideBar.defaultVisibility': 'hidden' } });
  const env = {
    ...process.env,
    XDG_CONFIG_HOME: join(state.scratch, 'xdg-config'),
    XDG_DATA_HOME: join(state.scratch, 'xdg-data'),
    XDG_CACHE_HOME: join(state.scratch, 'xdg-cache'),
  };
  const inst = await run(tools.node24, [tools.entry, '--user-data-dir', dirs.userDataDir, '--extensions-dir', dirs.extensionsDir, '--install-extension', state.vsix], { env });
  t.log(`code-server --install-extension: ${inst.out.trim().split('\n').slice(-1)[0]}`);
  assert.equal(inst.code, 0, `--install-extension failed:\n${inst.out}`);
  const installed = readdirSync(dirs.extensionsDir).find((d) => d.startsWith('basin-ml.basin-'));
  assert.ok(installed, `installed into ${dirs.extensionsDir}: ${readdirSync(dirs.extensionsDir).join(', ')}`);
  state.extDir = join(dirs.extensionsDir, installed);
  assert.ok(existsSync(join(state.extDir, 'node_modules', 'webgpu', 'dist', 'linux-x64', 'dawn.node')), 'dawn.node is in the installed extension');

  const workspace = join(state.scratch, 'workspace');
  mkdirSync(workspace, { recursive: true });
  copyFileSync(join(here, 'fixture', 'demo.basin.yaml'), join(workspace, 'demo.basin.yaml'));
  state.server = await startCodeServer({ tools, dirs, folder: workspace, smokeTestDriver: false, onExit: (code, signal) => t.log(`the packaged code-server ended (${signal ?? code})\n${tail(dirs.log, 30)}`) });
  state.browser = await launchChromium(tools.chromium);
  const page = (state.page = await state.browser.newPage({ viewport: { width: 1440, height: 900 } }));
  pipeConsole(page);
  const url = workbenchUrl(state.server.host, { folder: workspace });
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  await t.wb.waitForWorkbench(page);
  await page.keyboard.press('Control+P');
  await t.wb.pickQuickItem(page, 'demo.basin.yaml', { timeout: 30_000 });
  await page.locator('.codelens-decoration a', { hasText: '▶ Train' }).first().waitFor({ state: 'visible', timeout: 60_000 });
  // An installed extension, not a development one: the title says no "[Extension Development Host]".
  assert.doesNotMatch(await page.title(), /Extension Development Host/);
  await page.screenshot({ path: join(t.root, 'test-results', 'e2e', '20-vsix-installed-lens.png') });
}

async function gpuInfo(t) {
  const page = state.page;
  assert.ok(page, 'the packaged window is open (previous test)');
  await t.wb.runCommand(page, 'Basin: Show GPU Info');
  const note = page.locator('.notifications-toasts .notification-list-item', { hasText: 'Basin GPU:' }).first();
  await note.waitFor({ state: 'visible', timeout: 60_000 });
  const text = await note.textContent();
  t.log(`notification: ${text}`);
  assert.match(text, /llvmpipe/i);
  await page.screenshot({ path: join(t.root, 'test-results', 'e2e', '21-vsix-gpu-info.png') });
  // The worker (a child of the extension host, in code-server's process group) mapped dawn.node from the
  // installed extension.
  const maps = groupPids(state.server.proc.pid)
    .map((pid) => {
      try {
        return readFileSync(`/proc/${pid}/maps`, 'utf8');
      } catch {
        return '';
      }
    })
    .join('\n');
  const dawn = [...new Set(maps.split('\n').filter((l) => l.endsWith('dawn.node')).map((l) => l.slice(l.indexOf('/'))))];
  t.log(`dawn.node mapped from: ${dawn.join(', ') || 'nowhere'}`);
  assert.deepEqual(dawn, [join(state.extDir, 'node_modules', 'webgpu', 'dist', 'linux-x64', 'dawn.node')]);
}
