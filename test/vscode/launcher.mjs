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
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { format } from 'node:util';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
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
function readEnvJson() {
  const p = join(root, '.vscode-test', 'env.json');
  return existsSync(p) ? JSON.parse(readFileSync(p, 'utf8')) : {};
}
const envJson = readEnvJson();
const node24 = process.env.BASIN_TEST_NODE || envJson.node;
const codeServer = process.env.BASIN_CODE_SERVER || envJson.codeServer;
const entry = codeServer && join(codeServer, 'out', 'node', 'entry.js');
if (!node24 || !existsSync(node24) || !entry || !existsSync(entry)) {
  fail('code-server or its Node 24 is not installed: run `bash scripts/setup-vscode-test.sh` first');
}
const chromium = [process.env.CHROMIUM_PATH, '/usr/lib/chromium/chromium', '/usr/bin/chromium', '/usr/bin/chromium-browser']
  .find((p) => p && existsSync(p));
if (!chromium) fail('no Chromium found: run `bash scripts/setup-system.sh --tests` (installs the Debian package chromium)');

// ---- scratch space: code-server writes config, logs and caches under XDG dirs
mkdirSync(join(root, '.vscode-test'), { recursive: true });
const scratch = mkdtempSync(join(root, '.vscode-test', 'run-'));
const userDataDir = opts.userDataDir ?? join(scratch, 'user');
const extensionsDir = opts.extensionsDir ?? join(scratch, 'exts');
for (const d of [userDataDir, extensionsDir, join(userDataDir, 'User'), join(scratch, 'xdg-config'), join(scratch, 'xdg-data'), join(scratch, 'xdg-cache')]) {
  mkdirSync(d, { recursive: true });
}
// A fresh user profile each run, so no state (trust, storage, open editors) leaks from one run into the next.
rmSync(join(userDataDir, 'User', 'workspaceStorage'), { recursive: true, force: true });
writeFileSync(
  join(userDataDir, 'User', 'settings.json'),
  JSON.stringify(
    {
      'workbench.startupEditor': 'none',
      'workbench.tips.enabled': false,
      'chat.disableAIFeatures': true,
      'telemetry.telemetryLevel': 'off',
      'extensions.autoCheckUpdates': false,
      'extensions.autoUpdate': false,
      'update.mode': 'none',
      'security.workspace.trust.enabled': false,
      'git.enabled': false,
    },
    null,
    2,
  ),
);
writeFileSync(join(scratch, 'config.yaml'), 'auth: none\ncert: false\n');

let server;
let browser;
let exiting = false;

async function cleanup() {
  try {
    await browser?.close();
  } catch {
    /* gone */
  }
  if (server?.pid && server.exitCode === null && server.signalCode === null) {
    killGroup(server.pid, 'SIGTERM');
    const gone = await Promise.race([new Promise((r) => server.once('exit', () => r(true))), sleep(3000).then(() => false)]);
    if (!gone) killGroup(server.pid, 'SIGKILL');
  }
  // Children of the server (extension host, pty host…) share its process group: make sure none is left.
  if (server?.pid) killGroup(server.pid, 'SIGKILL');
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

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch {
    /* no such group */
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

process.on('SIGINT', () => void exit(130, 'interrupted'));
process.on('SIGTERM', () => void exit(143, 'terminated'));
const overall = setTimeout(() => void exit(124, `timed out after ${timeoutS} s`), timeoutS * 1000);
overall.unref();

// Messages of the workbench that are noise offline (gallery, telemetry, missing vsda…).
const NOISE = [
  /Timed out waiting for authentication provider/,
  /^\s*$/,
  /ENOTFOUND|ERR_NAME_NOT_RESOLVED|ERR_INTERNET_DISCONNECTED|net::ERR_/,
  /vsda/,
  /Failed to load resource/,
  /marketplace|gallery|update\.code\.visualstudio/i,
  /An iframe which has both allow-scripts and allow-same-origin/,
  /\[Extension Host\] (debugger listening|For help, see)/i,
  /Ignoring the error while validating workspace folder/,
  /ExperimentService|webPackagePaths|product\.json/,
  /The web worker extension host is started in a same-origin iframe/,
];

// The workbench's own INFO/WARN lines (shown with BASIN_TEST_VERBOSE=1).
const WORKBENCH = [
  /^(Resolving|Resolved) connection token/,
  /^Creating a socket/,
  /^\[(reconnection-grace-time|Service Worker|AgentHost[^\]]*|AccountPolicyGate)\]/,
  /^Updating additional builtin extensions cache/,
  /^Creation of workbench contribution/,
  /^Started local extension host|^Extension host \(/,
];

async function main() {
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const serverLog = join(scratch, 'code-server.log');
  const out = createWriteStream(serverLog);
  const args = [
    entry,
    '--config', join(scratch, 'config.yaml'),
    '--bind-addr', host,
    '--auth', 'none',
    '--disable-telemetry',
    '--disable-update-check',
    '--disable-workspace-trust',
    '--disable-getting-started-override',
    '--reconnection-grace-time', '10',
    '--user-data-dir', userDataDir,
    '--extensions-dir', extensionsDir,
    // Without this the built server ignores the test payload (extensionTestsPath) silently.
    '--vscode-option', 'enable-smoke-test-driver',
  ];
  if (opts.folder) args.push(opts.folder);
  log(`code-server on ${host}${opts.folder ? `, folder ${opts.folder}` : ''}`);
  server = spawn(node24, args, {
    // Its own process group (setsid-like): the whole tree (extension host, pty host, the extension's worker…)
    // ends with one kill(-pid).
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      XDG_CONFIG_HOME: join(scratch, 'xdg-config'),
      XDG_DATA_HOME: join(scratch, 'xdg-data'),
      XDG_CACHE_HOME: join(scratch, 'xdg-cache'),
      // The test's extension host must not think it runs under Electron.
      ELECTRON_RUN_AS_NODE: undefined,
      VSCODE_IPC_HOOK_CLI: undefined,
    },
  });
  for (const s of [server.stdout, server.stderr]) {
    s.pipe(out, { end: false });
    if (verbose) s.on('data', (d) => process.stderr.write(`[code-server] ${d}`));
  }
  server.on('exit', (code, signal) => {
    if (!exiting) {
      process.stderr.write(tail(serverLog, 40));
      void exit(3, `code-server ended early (${signal ?? code}); see its log above`);
    }
  });

  // Ready when /healthz answers.
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const r = await fetch(`http://${host}/healthz`);
      if (r.ok) break;
    } catch {
      /* not yet */
    }
    if (Date.now() > deadline) {
      process.stderr.write(tail(serverLog, 40));
      return exit(3, 'code-server did not answer /healthz within 60 s');
    }
    await sleep(150);
  }
  log('code-server is up');

  const remote = (p) => `vscode-remote://${host}${p}`;
  const payload = [...opts.dev.map((d) => ['extensionDevelopmentPath', remote(d)])];
  if (opts.tests) payload.push(['extensionTestsPath', remote(opts.tests)]);
  const url = new URL(`http://${host}/`);
  if (opts.folder) url.searchParams.set('folder', opts.folder);
  else url.searchParams.set('ew', 'true');
  url.searchParams.set('payload', JSON.stringify(payload));

  const { chromium: pw } = await import('playwright-core');
  browser = await pw.launch({
    executablePath: chromium,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  let resolveExit;
  const exitCode = new Promise((r) => (resolveExit = r));
  await page.exposeFunction('codeAutomationExit', (code) => {
    resolveExit(Number(code) || 0);
  });
  // The extension host's console (the test runner's output) arrives as page console messages, logged by the
  // workbench as ('%c INFO', css, ...original arguments). Format them in order (arguments are fetched async).
  let printed = Promise.resolve();
  page.on('console', (msg) => {
    const argsP = Promise.all(
      msg.args().map((a) => a.evaluate((v) => (v instanceof Error ? v.stack || String(v) : v)).catch(() => a.toString())),
    );
    printed = printed.then(async () => {
      const args = await argsP.catch(() => [msg.text()]);
      if (process.env.BASIN_TEST_DEBUG_CONSOLE === '1') process.stderr.write(`[console ${((Date.now() - t0) / 1000).toFixed(1)} ${msg.type()}] ${JSON.stringify(args)}\n`);
      const { level, text } = formatConsole(args);
      if (!text.trim()) return;
      if (!verbose && (NOISE.some((re) => re.test(text)) || (level !== 'ERR' && WORKBENCH.some((re) => re.test(text))))) return;
      (level === 'ERR' || msg.type() === 'error' ? process.stderr : process.stdout).write(`${text}\n`);
    });
  });
  page.on('pageerror', (err) => {
    if (verbose) process.stderr.write(`[page error] ${err.message}\n`);
  });
  page.on('crash', () => void exit(4, 'the workbench page crashed'));

  log('opening the workbench');
  await page.goto(url.toString(), { waitUntil: 'domcontentloaded' });
  if (!opts.tests) {
    log('no --extensionTestsPath: the window stays open until the time limit or Ctrl+C');
  }
  const code = await exitCode;
  // Let the last console messages (mocha's summary) print first.
  await sleep(100);
  await Promise.race([printed, sleep(2000)]);
  await exit(code, `tests finished with exit code ${code}`);
}

/** Console arguments → { level, text }: the workbench's "%c LEVEL" prefix is taken off, `%c` styles dropped. */
function formatConsole(args) {
  let level = '';
  if (typeof args[0] === 'string' && /^%c\s*(TRACE|DEBUG|INFO|WARN|ERR)\s*$/.test(args[0]) && typeof args[1] === 'string') {
    level = args[0].replace('%c', '').trim();
    args = args.slice(2);
  }
  return { level, text: args.length ? formatArgs(args) : '' };
}

function formatArgs(args) {
  if (typeof args[0] !== 'string') return format(...args);
  let fmt = args[0];
  const rest = args.slice(1);
  // Remove each %c and the argument it consumes, keeping the other specifiers' arguments in place.
  let argIndex = 0;
  const kept = [];
  fmt = fmt.replace(/%([csdifoOj%])/g, (m, k) => {
    if (k === '%') return m;
    const i = argIndex++;
    if (k === 'c') return '';
    kept.push(rest[i]);
    return m;
  });
  return format(fmt, ...kept, ...rest.slice(argIndex)).trimEnd();
}

function tail(file, n) {
  try {
    const lines = readFileSync(file, 'utf8').split('\n');
    return `--- last lines of ${file} ---\n${lines.slice(-n).join('\n')}\n`;
  } catch {
    return '';
  }
}

main().catch((e) => exit(5, `launcher failed: ${e?.stack ?? e}`));
