// The vscode test tier: builds the test suite (test/vscode/suite/*.ts → out/test/vscode/suite/*.js) and runs it
// in a real VS Code through @vscode/test-electron's runTests, whose "VS Code executable" is test/vscode/launcher.mjs
// (code-server + headless Chromium; see ../shared/notes/vscode-testing.md (beside the repository)). Where a desktop VS Code is wanted
// instead, set BASIN_VSCODE_EXECUTABLE to its binary: the same suite runs there unchanged.
// Needs dist/ (npm run build) and `bash scripts/setup-vscode-test.sh`.
// BASIN_TEST_EXTENSION_PATH: run the suite against another copy of the extension, e.g. an unpacked .vsix
// (`unzip basin-linux-x64-*.vsix -d /tmp/x`, then /tmp/x/extension).
// Writes the summary JSON to BASIN_TEST_SUMMARY (default out/test/vscode/summary.json) and prints it.
import * as esbuild from 'esbuild';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runTests } from '@vscode/test-electron';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const outDir = join(root, 'out', 'test', 'vscode');
const t0 = Date.now();

const extensionPath = resolve(process.env.BASIN_TEST_EXTENSION_PATH || root);
for (const f of ['dist/extension.js', 'dist/worker.js']) {
  if (!existsSync(join(extensionPath, f))) {
    console.error(`${f} is missing: run \`npm run build\` first.`);
    process.exit(2);
  }
}

// 1. Build the suite: one CommonJS file per entry, `vscode` and `mocha` resolved at run time.
rmSync(join(outDir, 'suite'), { recursive: true, force: true });
const entries = readdirSync(join(here, 'suite'))
  .filter((f) => f.endsWith('.ts'))
  .map((f) => join(here, 'suite', f));
await esbuild.build({
  entryPoints: entries,
  outdir: join(outDir, 'suite'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  sourcemap: 'inline',
  external: ['vscode', 'mocha'],
  logLevel: 'warning',
});

// 2. Run it.
const summaryPath = resolve(process.env.BASIN_TEST_SUMMARY || join(outDir, 'summary.json'));
mkdirSync(dirname(summaryPath), { recursive: true });
rmSync(summaryPath, { force: true });
// A fresh profile each run.
const profile = join(root, '.vscode-test', 'profile');
rmSync(profile, { recursive: true, force: true });
mkdirSync(profile, { recursive: true });

const executable = process.env.BASIN_VSCODE_EXECUTABLE || join(here, 'launcher.mjs');
let code = 0;
try {
  await runTests({
    vscodeExecutablePath: executable,
    extensionDevelopmentPath: extensionPath,
    extensionTestsPath: join(outDir, 'suite', 'index'),
    launchArgs: [
      join(here, 'fixture', 'workspace'),
      `--user-data-dir=${join(profile, 'user')}`,
      `--extensions-dir=${join(profile, 'exts')}`,
      '--disable-extensions',
    ],
    extensionTestsEnv: { BASIN_TEST_SUMMARY: summaryPath },
  });
} catch (e) {
  code = typeof e?.code === 'number' && e.code !== 0 ? e.code : 1;
  console.error(`vscode tier: ${e?.message ?? e}`);
}

const secs = ((Date.now() - t0) / 1000).toFixed(1);
if (existsSync(summaryPath)) {
  const s = JSON.parse(readFileSync(summaryPath, 'utf8'));
  console.log(`vscode tier: ${s.passed} passed, ${s.failed} failed, ${s.pending} pending in ${secs} s`);
  if (code === 0 && s.failed > 0) code = 1;
} else {
  console.error(`vscode tier: no summary was written (${summaryPath}): the test runner never finished (${secs} s)`);
  if (code === 0) code = 1;
}
process.exit(code);
