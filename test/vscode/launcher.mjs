#!/usr/bin/env node
// A stand-in for the VS Code executable, for @vscode/test-electron's runTests({ vscodeExecutablePath }):
// it takes VS Code's CLI arguments (--extensionDevelopmentPath=, --extensionTestsPath=, --user-data-dir=,
// --extensions-dir=, a folder) and runs the tests in a real VS Code (OSS) — code-server's server and web
// workbench — with the extension host on the server (Node, child_process and native modules work there),
// opening the workbench in headless Chromium (playwright-core). Exits with the test run's exit code.
// Needs `bash scripts/setup-vscode-test.sh` (Node 24 + code-server in .vscode-test/) and a system Chromium.
//
// Env: BASIN_TEST_TIMEOUT_S (whole run, default 300), BASIN_TEST_VERBOSE=1 (code-server output and all
// workbench console messages), CHROMIUM_PATH, BASIN_CODE_SERVER / BASIN_TEST_NODE (override .vscode-test/env.json).
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { findTools, launchChromium, pipeConsole, prepareScratch, root, sleep, startCodeServer, tail, workbenchUrl } from './code-server.mjs';

const verbose = process.env.BASIN_TEST_VERBOSE === '1';
const timeoutS = Number(process.env.BASIN_TEST_TIMEOUT_S || 300);
const t0 = Date.now();
const log = (m) => process.stderr.write(`[launcher +${((Date.now() - t0) / 1000).toFixed(1)}s] ${m}\n`);

// ---- arguments (VS Code's CLI; the ones that do not apply to code-server are ignored)
const opts = { dev: [], tests: undefined, userDataDir: undefined, extensionsDir: undefined, folder: undefined };
for (const a of process.argv.slice(2)) {
  const m = /^--([^=]+)=(.*)$/s.exec(a);
  if (m) {
    const [, k, v] = m;
    if (k === 'extensionDevelopmentPath') opts.dev.push(resolve(v));
    else if (k === 'extensionTestsPath') opts.tests = resolve(v);
    else if (k === 'user-data-dir') opts.userDataDir = resolve(v);
    else if (k === 'extensions-dir') opts.extensionsDir = resolve(v);
  } else if (!a.startsWith('-')) {
    opts.folder = resolve(a);
  }
}
if (!opts.dev.length) fail('no --extensionDevelopmentPath= given');

// ---- what to run
const tools = findTools();
if (tools.error) fail(tools.error);

// ---- scratch space: code-server writes config, logs and caches under XDG dirs
mkdirSync(join(root, '.vscode-test'), { recursive: true });
const scratch = mkdtempSync(join(root, '.vscode-test', 'run-'));
const dirs = prepareScratch(scratch, { userDataDir: opts.userDataDir, extensionsDir: opts.extensionsDir });

let server;
let browser;
let exiting = false;

async function cleanup() {
  try {
    await browser?.close();
  } catch {
    /* gone */
  }
  await server?.stop();
  if (!verbose && process.env.BASIN_TEST_KEEP !== '1') rmSync(scratch, { recursive: true, force: true });
}

async function exit(code, why) {
  if (exiting) return;
  exiting = true;
  if (why) log(why);
  await cleanup();
  log(`exit ${code} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  process.exit(code);
}

function fail(msg) {
  process.stderr.write(`[launcher] ${msg}\n`);
  process.exit(2);
}

process.on('SIGINT', () => void exit(130, 'interrupted'));
process.on('SIGTERM', () => void exit(143, 'terminated'));
const overall = setTimeout(() => void exit(124, `timed out after ${timeoutS} s`), timeoutS * 1000);
overall.unref();

async function main() {
  log(`code-server${opts.folder ? `, folder ${opts.folder}` : ''}`);
  try {
    server = await startCodeServer({
      tools,
      dirs,
      folder: opts.folder,
      verbose,
      onExit: (code, signal) => {
        if (exiting) return;
        process.stderr.write(tail(dirs.log, 40));
        void exit(3, `code-server ended early (${signal ?? code}); see its log above`);
      },
    });
  } catch (e) {
    process.stderr.write(`${e.message}\n`);
    return exit(3, 'code-server did not start');
  }
  log(`code-server is up on ${server.host}`);
  const url = workbenchUrl(server.host, { folder: opts.folder, dev: opts.dev, tests: opts.tests });

  browser = await launchChromium(tools.chromium);
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  let resolveExit;
  const exitCode = new Promise((r) => (resolveExit = r));
  await page.exposeFunction('codeAutomationExit', (code) => {
    resolveExit(Number(code) || 0);
  });
  // The extension host's console (the test runner's output) arrives as page console messages.
  const printed = pipeConsole(page, { verbose, t0 });
  page.on('pageerror', (err) => {
    if (verbose) process.stderr.write(`[page error] ${err.message}\n`);
  });
  page.on('crash', () => void exit(4, 'the workbench page crashed'));

  log('opening the workbench');
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  if (!opts.tests) {
    log('no --extensionTestsPath: the window stays open until the time limit or Ctrl+C');
  }
  const code = await exitCode;
  // Let the last console messages (mocha's summary) print first.
  await sleep(100);
  await Promise.race([printed(), sleep(2000)]);
  await exit(code, `tests finished with exit code ${code}`);
}

main().catch((e) => exit(5, `launcher failed: ${e?.stack ?? e}`));
