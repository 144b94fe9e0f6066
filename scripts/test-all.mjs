// `npm test`: system packages, build, then every test tier; a per-tier summary and, as the very last line,
// `N passed, N failed[, N skipped]` summed over the tiers. Exits non-zero if a test failed or a step/tier crashed
// (a crash counts as one failure and is named).
//
//   unit    mocha --config test/unit/.mocharc.json 'test/unit/**/*.test.ts' (each tier's globs: `tierSpec` in its config)
//   gpu     mocha --config test/gpu/.mocharc.json
//   torch   mocha --config test/torch/.mocharc.json: parity with PyTorch on the CPU (skipped with the reason when
//           python3-torch is absent, a failure under CI, where setup-system.sh --tests installs it)
//   vscode  scripts/setup-vscode-test.sh, then test/vscode/run.mjs (code-server + headless Chromium)
//   e2e     test/e2e/run.mjs: drives the workbench UI with playwright-core; screenshots in test-results/e2e/
//
// Counts come from summary files, never from parsing output: the mocha tiers use scripts/mocha-summary-reporter.cjs
// (spec output plus a JSON summary), the vscode tier's runner writes the same JSON (BASIN_TEST_SUMMARY).
// Options: --only unit,gpu (a subset of tiers), --skip-setup (no setup-system.sh), --skip-build.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const flag = (f) => argv.includes(f);
const onlyArg = argv.find((a, i) => argv[i - 1] === '--only' || a.startsWith('--only='));
const only = onlyArg ? onlyArg.replace(/^--only=/, '').split(',') : null;
const summaryDir = join(root, 'out', 'test-summary');
rmSync(summaryDir, { recursive: true, force: true });
mkdirSync(summaryDir, { recursive: true });

const mochaBin = join(root, 'node_modules', 'mocha', 'bin', 'mocha.js');
const reporter = join(root, 'scripts', 'mocha-summary-reporter.cjs');

/** Runs a command with inherited stdio (output shows live); resolves with its exit code (or signal). */
function run(cmd, args, env = {}) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, ...env } });
    child.on('error', (e) => resolve({ code: 127, error: e.message }));
    child.on('exit', (code, signal) => resolve({ code: code ?? 128, signal }));
  });
}

const banner = (s) => console.log(`\n━━━ ${s} ${'━'.repeat(Math.max(3, 70 - s.length))}`);
const secs = (t0) => ((Date.now() - t0) / 1000).toFixed(1);

/** Steps that must succeed before tiers make sense; a failure is a crash (named), and later tiers still run. */
const steps = [];
async function step(name, cmd, args) {
  banner(name);
  const t0 = Date.now();
  const r = await run(cmd, args);
  const ok = r.code === 0;
  steps.push({ name, ok, secs: secs(t0), detail: ok ? '' : r.error ?? (r.signal ? `killed by ${r.signal}` : `exit code ${r.code}`) });
  return ok;
}

/**
 * A tier's spec globs: `tierSpec` in its .mocharc.json, passed on the command line rather than as mocha's own
 * `spec` key, because mocha ADDS command-line files to a config's `spec`: with `tierSpec`,
 * `mocha --config test/gpu/.mocharc.json test/gpu/x.test.ts` runs x alone.
 */
function tierSpec(config) {
  return [].concat(JSON.parse(readFileSync(join(root, config), 'utf8')).tierSpec ?? []);
}

/** Does any file match the config's spec globs? (mocha fails on none; a tier with no tests yet counts 0/0.) */
function mochaHasFiles(config) {
  return tierSpec(config).some((spec) => {
    const parts = spec.split('/');
    const firstGlob = parts.findIndex((p) => /[*?[{]/.test(p));
    if (firstGlob < 0) return existsSync(join(root, spec));
    // Walk below the static prefix; match file names against the last segment (`*.test.ts` → /^.*\.test\.ts$/).
    const base = join(root, ...parts.slice(0, firstGlob));
    const last = parts[parts.length - 1];
    const re = new RegExp(`^${last.replace(/[.+^$()|\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
    const deep = parts.slice(firstGlob, -1).some((p) => p === '**');
    const walk = (d, depth) => {
      for (const e of readdirSyncSafe(d)) {
        const p = join(d, e.name);
        if (e.isDirectory()) {
          if ((deep || depth < parts.length - 1 - firstGlob) && walk(p, depth + 1)) return true;
        } else if (re.test(e.name)) return true;
      }
      return false;
    };
    return walk(base, 0);
  });
}
function readdirSyncSafe(d) {
  try {
    return readdirSync(d, { withFileTypes: true });
  } catch {
    return [];
  }
}

const tiers = [];
async function tier(name, body) {
  if (only && !only.includes(name)) return;
  banner(`tier: ${name}`);
  const t0 = Date.now();
  const summaryFile = join(summaryDir, `${name}.json`);
  let r;
  try {
    r = await body(summaryFile);
  } catch (e) {
    r = { code: 1, error: e.message };
  }
  const t = { name, secs: secs(t0), passed: 0, failed: 0, pending: 0, crashed: '', note: r.note ?? '' };
  if (r.skipped) {
    t.note = r.skipped;
  } else if (existsSync(summaryFile)) {
    const s = JSON.parse(readFileSync(summaryFile, 'utf8'));
    Object.assign(t, { passed: s.passed | 0, failed: s.failed | 0, pending: s.pending | 0, failures: s.failures ?? [] });
    if (r.code !== 0 && t.failed === 0) t.crashed = r.error ?? `exit code ${r.code}${r.signal ? ` (${r.signal})` : ''} with no failed test`;
  } else {
    t.crashed = r.error ?? `exit code ${r.code}${r.signal ? ` (${r.signal})` : ''}, no summary written (it crashed before its tests finished)`;
  }
  tiers.push(t);
}

const tStart = Date.now();
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
if (!flag('--skip-setup')) {
  if (isRoot || process.env.CI) await step('setup-system.sh --tests', 'bash', ['scripts/setup-system.sh', '--tests']);
  else {
    banner('setup-system.sh --tests');
    console.log('not root: skipped (run `sudo bash scripts/setup-system.sh --tests` once if system packages are missing)');
  }
}
const buildStart = Date.now();
const built = flag('--skip-build') ? true : await step('build', process.execPath, ['scripts/build.mjs']);
// The vscode tier needs only dist/extension.js and dist/worker.js: it still runs when another bundle failed,
// provided these two were written by this build (not stale).
const hostBundlesFresh = ['dist/extension.js', 'dist/worker.js'].every((f) => {
  const p = join(root, f);
  return existsSync(p) && (flag('--skip-build') || statSync(p).mtimeMs >= buildStart - 1000);
});

const mochaTier = (name, config) =>
  tier(name, async (summaryFile) => {
    if (!mochaHasFiles(config)) return { skipped: 'no test files yet' };
    return run(process.execPath, [mochaBin, '--config', config, '--reporter', reporter, '--reporter-option', `summary=${summaryFile}`, ...tierSpec(config)]);
  });

await mochaTier('unit', 'test/unit/.mocharc.json');
await mochaTier('gpu', 'test/gpu/.mocharc.json');
await mochaTier('torch', 'test/torch/.mocharc.json');
await tier('vscode', async (summaryFile) => {
  if (!built && !hostBundlesFresh) return { code: 1, error: 'not run: the build of dist/extension.js or dist/worker.js failed' };
  const setup = await run('bash', ['scripts/setup-vscode-test.sh']);
  if (setup.code !== 0) return { code: setup.code, error: `scripts/setup-vscode-test.sh failed (exit code ${setup.code})` };
  return run(process.execPath, ['test/vscode/run.mjs'], { BASIN_TEST_SUMMARY: summaryFile });
});

await tier('e2e', async (summaryFile) => {
  if (!built) return { code: 1, error: 'not run: the build failed' };
  const setup = await run('bash', ['scripts/setup-vscode-test.sh']);
  if (setup.code !== 0) return { code: setup.code, error: `scripts/setup-vscode-test.sh failed (exit code ${setup.code})` };
  return run(process.execPath, ['test/e2e/run.mjs'], { BASIN_TEST_SUMMARY: summaryFile });
});

// ---- summary
banner('summary');
for (const s of steps) console.log(`  ${s.ok ? 'ok     ' : 'FAILED '} ${s.name.padEnd(26)} ${s.secs.padStart(6)} s${s.detail ? `  ${s.detail}` : ''}`);
for (const t of tiers) {
  const counts = `${t.passed} passed, ${t.failed} failed${t.pending ? `, ${t.pending} skipped` : ''}`;
  const state = t.crashed ? 'CRASHED' : t.failed ? 'FAILED ' : 'ok     ';
  console.log(`  ${state} tier ${t.name.padEnd(21)} ${t.secs.padStart(6)} s  ${counts}${t.note ? `  (${t.note})` : ''}${t.crashed ? `  — ${t.crashed}` : ''}`);
}
console.log(`  total ${secs(tStart)} s`);

const crashes = [...steps.filter((s) => !s.ok).map((s) => s.name), ...tiers.filter((t) => t.crashed).map((t) => `tier ${t.name}`)];
if (crashes.length) console.log(`  crashed (each counted as 1 failure): ${crashes.join(', ')}`);
// The first failures, a line each, just above the last line: CI shows only the end of the log, and the first
// failure is often the cause of the rest.
const failures = tiers.flatMap((t) => (t.failures ?? []).map((f) => ({ tier: t.name, ...f })));
if (failures.length) {
  console.log(`  first failures (of ${failures.length}):`);
  for (const f of failures.slice(0, 6)) {
    const first = String(f.error ?? '').split('\n').map((l) => l.trim()).find((l) => l) ?? '';
    console.log(`    ${f.tier}: ${String(f.title).slice(0, 90)} — ${first.slice(0, 160)}`);
  }
}
const passed = tiers.reduce((a, t) => a + t.passed, 0);
const failed = tiers.reduce((a, t) => a + t.failed, 0) + crashes.length;
const skipped = tiers.reduce((a, t) => a + t.pending, 0);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exitCode = failed > 0 ? 1 : 0;
