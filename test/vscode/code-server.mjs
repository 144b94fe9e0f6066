// Helpers shared by test/vscode/launcher.mjs (extension tests in the extension host) and test/e2e/ (driving the
// workbench UI): find code-server, its Node 24 and a Chromium; prepare a throwaway profile; start code-server in
// its own process group and wait for /healthz; launch headless Chromium; format the workbench's console.
// See ../shared/notes/vscode-testing.md (beside the repository).
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { format } from 'node:util';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** code-server's entry, its Node 24 and a Chromium; `error` says what is missing. */
export function findTools() {
  const p = join(root, '.vscode-test', 'env.json');
  const envJson = existsSync(p) ? JSON.parse(readFileSync(p, 'utf8')) : {};
  const node24 = process.env.BASIN_TEST_NODE || envJson.node;
  const codeServer = process.env.BASIN_CODE_SERVER || envJson.codeServer;
  const entry = codeServer && join(codeServer, 'out', 'node', 'entry.js');
  const chromium = [process.env.CHROMIUM_PATH, '/usr/lib/chromium/chromium', '/usr/bin/chromium', '/usr/bin/chromium-browser'].find((x) => x && existsSync(x));
  let error;
  if (!node24 || !existsSync(node24) || !entry || !existsSync(entry)) error = 'code-server or its Node 24 is not installed: run `bash scripts/setup-vscode-test.sh` first';
  else if (!chromium) error = 'no Chromium found: run `bash scripts/setup-system.sh --tests` (installs the Debian package chromium)';
  return { node24, entry, chromium, error };
}

/** User settings for a quiet, offline, reproducible workbench. */
export const TEST_SETTINGS = {
  'workbench.startupEditor': 'none',
  'workbench.tips.enabled': false,
  'chat.disableAIFeatures': true,
  'telemetry.telemetryLevel': 'off',
  'extensions.autoCheckUpdates': false,
  'extensions.autoUpdate': false,
  'update.mode': 'none',
  'security.workspace.trust.enabled': false,
  'git.enabled': false,
};

/** Creates the scratch folders code-server writes to and a fresh user profile; returns their paths. */
export function prepareScratch(scratch, { userDataDir, extensionsDir, settings = {} } = {}) {
  const dirs = {
    scratch,
    userDataDir: userDataDir ?? join(scratch, 'user'),
    extensionsDir: extensionsDir ?? join(scratch, 'exts'),
    config: join(scratch, 'config.yaml'),
    log: join(scratch, 'code-server.log'),
  };
  for (const d of [dirs.userDataDir, dirs.extensionsDir, join(dirs.userDataDir, 'User'), join(scratch, 'xdg-config'), join(scratch, 'xdg-data'), join(scratch, 'xdg-cache')]) {
    mkdirSync(d, { recursive: true });
  }
  // A fresh user profile each run, so no state (trust, storage, open editors) leaks from one run into the next.
  rmSync(join(dirs.userDataDir, 'User', 'workspaceStorage'), { recursive: true, force: true });
  writeFileSync(join(dirs.userDataDir, 'User', 'settings.json'), JSON.stringify({ ...TEST_SETTINGS, ...settings }, null, 2));
  writeFileSync(dirs.config, 'auth: none\ncert: false\n');
  return dirs;
}

export function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch {
    /* no such group */
  }
}

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

export function tail(file, n) {
  try {
    const lines = readFileSync(file, 'utf8').split('\n');
    return `--- last lines of ${file} ---\n${lines.slice(-n).join('\n')}\n`;
  } catch {
    return '';
  }
}

/**
 * Starts code-server (its own process group: one kill(-pid) ends the extension host, pty host and the extension's
 * worker with it) and waits until /healthz answers. Returns { host, proc, stop() }; rejects when it does not come
 * up in time (its log tail in the message).
 */
export async function startCodeServer({ tools, dirs, folder, verbose = false, onExit, smokeTestDriver = true }) {
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const out = createWriteStream(dirs.log);
  const args = [
    tools.entry,
    '--config', dirs.config,
    '--bind-addr', host,
    '--auth', 'none',
    '--disable-telemetry',
    '--disable-update-check',
    '--disable-workspace-trust',
    '--disable-getting-started-override',
    '--reconnection-grace-time', '10',
    '--user-data-dir', dirs.userDataDir,
    '--extensions-dir', dirs.extensionsDir,
  ];
  // Without this the built server ignores the test payload (extensionDevelopmentPath, extensionTestsPath)
  // silently. It also turns notification toasts off (they go to the notification center only): a window without
  // a payload (an installed extension) can leave it out.
  if (smokeTestDriver) args.push('--vscode-option', 'enable-smoke-test-driver');
  if (folder) args.push(folder);
  const proc = spawn(tools.node24, args, {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      XDG_CONFIG_HOME: join(dirs.scratch, 'xdg-config'),
      XDG_DATA_HOME: join(dirs.scratch, 'xdg-data'),
      XDG_CACHE_HOME: join(dirs.scratch, 'xdg-cache'),
      // Mesa's shader cache stays where the GPU tier (and earlier runs) filled it: otherwise the first job
      // recompiles every kernel from scratch, which takes a minute on a loaded 2-core machine.
      MESA_SHADER_CACHE_DIR: process.env.MESA_SHADER_CACHE_DIR || process.env.XDG_CACHE_HOME || join(homedir(), '.cache'),
      // The test's extension host must not think it runs under Electron.
      ELECTRON_RUN_AS_NODE: undefined,
      VSCODE_IPC_HOOK_CLI: undefined,
    },
  });
  for (const s of [proc.stdout, proc.stderr]) {
    s.pipe(out, { end: false });
    if (verbose) s.on('data', (d) => process.stderr.write(`[code-server] ${d}`));
  }
  let stopping = false;
  proc.on('exit', (code, signal) => {
    if (!stopping) onExit?.(code, signal);
  });
  const stop = async () => {
    stopping = true;
    if (proc.pid && proc.exitCode === null && proc.signalCode === null) {
      killGroup(proc.pid, 'SIGTERM');
      const gone = await Promise.race([new Promise((r) => proc.once('exit', () => r(true))), sleep(3000).then(() => false)]);
      if (!gone) killGroup(proc.pid, 'SIGKILL');
    }
    // Children of the server (extension host, pty host…) share its process group: make sure none is left.
    if (proc.pid) killGroup(proc.pid, 'SIGKILL');
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const r = await fetch(`http://${host}/healthz`);
      if (r.ok) break;
    } catch {
      /* not yet */
    }
    if (proc.exitCode !== null || proc.signalCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`code-server did not answer /healthz within 60 s\n${tail(dirs.log, 40)}`);
    }
    await sleep(150);
  }
  return { host, proc, stop };
}

/** The workbench URL for a folder (or an empty window) with the extension development/test payload. */
export function workbenchUrl(host, { folder, dev = [], tests } = {}) {
  const remote = (p) => `vscode-remote://${host}${p}`;
  const payload = dev.map((d) => ['extensionDevelopmentPath', remote(d)]);
  if (tests) payload.push(['extensionTestsPath', remote(tests)]);
  const url = new URL(`http://${host}/`);
  if (folder) url.searchParams.set('folder', folder);
  else url.searchParams.set('ew', 'true');
  url.searchParams.set('payload', JSON.stringify(payload));
  return url.toString();
}

export async function launchChromium(executablePath) {
  const { chromium: pw } = await import('playwright-core');
  return pw.launch({
    executablePath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

// Messages of the workbench that are noise offline (gallery, telemetry, missing vsda…).
export const NOISE = [
  /Timed out waiting for authentication provider/,
  /^\s*$/,
  /ENOTFOUND|ERR_NAME_NOT_RESOLVED|ERR_INTERNET_DISCONNECTED|net::ERR_/,
  /vsda/,
  /Failed to load resource/,
  // Leaving a window (the e2e tests open another folder) cancels its pending file reads.
  /Unable to read file .*\(Canceled: Canceled\)|^Canceled: Canceled$/,
  /marketplace|gallery|update\.code\.visualstudio/i,
  /An iframe which has both allow-scripts and allow-same-origin/,
  /\[Extension Host\] (debugger listening|For help, see)/i,
  /Ignoring the error while validating workspace folder/,
  /ExperimentService|webPackagePaths|product\.json/,
  /The web worker extension host is started in a same-origin iframe/,
];

// The workbench's own INFO/WARN lines (shown with BASIN_TEST_VERBOSE=1).
export const WORKBENCH = [
  /^(Resolving|Resolved) connection token/,
  /^Creating a socket/,
  /^\[(reconnection-grace-time|Service Worker|AgentHost[^\]]*|AccountPolicyGate)\]/,
  /^Updating additional builtin extensions cache/,
  /^Creation of workbench contribution/,
  /^Started local extension host|^Extension host \(/,
];

/** Console arguments → { level, text }: the workbench's "%c LEVEL" prefix is taken off, `%c` styles dropped. */
export function formatConsole(args) {
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

/**
 * Forwards the page's console (the extension host's output arrives there) to stdout/stderr, in order, without
 * the offline noise. Returns () => the promise of everything printed so far.
 */
export function pipeConsole(page, { verbose = false, t0 = Date.now() } = {}) {
  let printed = Promise.resolve();
  page.on('console', (msg) => {
    const argsP = Promise.all(msg.args().map((a) => a.evaluate((v) => (v instanceof Error ? v.stack || String(v) : v)).catch(() => a.toString())));
    printed = printed.then(async () => {
      const args = await argsP.catch(() => [msg.text()]);
      if (process.env.BASIN_TEST_DEBUG_CONSOLE === '1') process.stderr.write(`[console ${((Date.now() - t0) / 1000).toFixed(1)} ${msg.type()}] ${JSON.stringify(args)}\n`);
      const { level, text } = formatConsole(args);
      if (!text.trim()) return;
      if (!verbose && (NOISE.some((re) => re.test(text)) || (level !== 'ERR' && WORKBENCH.some((re) => re.test(text))))) return;
      (level === 'ERR' || msg.type() === 'error' ? process.stderr : process.stdout).write(`${text}\n`);
    });
  });
  return () => printed;
}
