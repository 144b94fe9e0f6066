// `basin bench editor`: the extension in the REAL VS Code (OSS) — code-server's server and web workbench in
// headless Chromium — on a scratch workspace with a config (so the extension activates as it does for a user) and
// two synthetic run folders (test/fixtures/stats-run.ts): 500 layers × 40 frames, and a "running" one of 1,000
// layers. The measuring happens inside the extension host (bench/editor-probe.cjs, the window's
// extensionTestsPath); this side prepares the workspace and the frames to append, starts and stops everything, and
// reports:
//   activation_ms                    require() of a fresh copy of dist/extension.js (compile + top level, median)
//                                    + activate() itself (the extension's own clock, BasinApi.timing)
//   panel_first_paint_ms_500_layers  median over several opens of the webview's firstPaint report (its script start
//                                    → header, table and charts painted with data, the ready → snapshot round trip
//                                    included)
//   stats_update_hz                  webview-painted updates per second of a 1,000-layer live run whose stats.bin
//                                    grows by 4 frames a second
//   cold_train_first_step_s          ▶ Train on the demo config → its first step reported (logEvery steps done), in
//                                    a fresh worker on a machine that never compiled its kernels (empty driver
//                                    cache, no warm-up); rows also give the same in a second fresh worker (driver
//                                    cache warm), after the config-shown warm-up, and Cancel → status bar cleared
// Targets: activation ≤ 50 ms, first paint ≤ 500 ms, ≥ 1 update/s.
//
// A dev tool: it needs the repository (test/vscode/code-server.mjs, imported at run time), its dev dependencies
// (playwright-core), `bash scripts/setup-vscode-test.sh` (code-server + Node 24) and a system Chromium; when one
// is missing every figure is null with the reason in "why".
import { execSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { syntheticFrame, writeSyntheticRun } from '../test/fixtures/stats-run';

export interface EditorBenchOptions {
  json: boolean;
  quick?: boolean;
  log: (s: string) => void;
  /** Print the workbench's console (the probe's progress, the extension's log). */
  verbose?: boolean;
}

const EXTENSION_ID = 'basin-ml.basin';
const TARGETS = { activation_ms: 50, panel_first_paint_ms_500_layers: 500, stats_update_hz: 1, cancel_to_cleared_ms: 1000 };

/** The repository root: bench/ under tsx, dist/ in the bundled CLI. */
function repoRoot(): string {
  return path.resolve(__dirname, '..');
}

function gitCommit(root: string): string | null {
  try {
    const head = execSync('git rev-parse --short HEAD', { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const dirty = execSync('git status --porcelain --untracked-files=no', { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    return dirty ? `${head}+dirty` : head;
  } catch {
    return null;
  }
}

const median = (xs: number[]): number | null => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return null;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const round = (x: number | null | undefined, d = 1): number | null => (x === null || x === undefined || !Number.isFinite(x) ? null : Math.round(x * 10 ** d) / 10 ** d);

interface ProbeResult {
  activation: {
    load_start_ms: number | null;
    activate_call_ms: number | null;
    top_level_to_activated_ms: number | null;
    require_ms: number[];
    require_ms_median: number | null;
    require_ms_min: number | null;
    activation_ms: number | null;
    bundle_bytes: number;
    why?: string;
  } | null;
  firstPaint: { first_paint_ms: number; render_ms: number; command_to_report_ms: number; layers: number; frames: number }[] | null;
  live: {
    layers: number;
    first_paint_ms: number | null;
    frames_appended: number;
    append_hz: number;
    seconds: number;
    updates_sent: number;
    updates_painted: number;
    update_hz: number | null;
    update_ms_max: number | null;
    webview_errors: string[];
  } | null;
  coldStart: {
    why?: string;
    cold?: TrainOnce;
    second?: TrainOnce;
    warm_up?: { ms: number; result: { kernels: number; ms: number; skipped?: string } | null; error: string | null };
    after_warm_up?: { first_step_ms: number; first_step: number };
  } | null;
  errors: string[];
}

interface TrainOnce {
  first_progress_ms: number | null;
  first_step_ms: number;
  first_step: number;
  compiling_shown: boolean;
  cancel_to_cleared_ms: number;
  stopping_shown: boolean;
  status_cleared: boolean;
}

interface CodeServerHelpers {
  findTools(): { node24: string; entry: string; chromium: string; error?: string };
  prepareScratch(scratch: string, opts?: object): { scratch: string; userDataDir: string; extensionsDir: string; log: string };
  startCodeServer(o: object): Promise<{ host: string; stop(): Promise<void> }>;
  workbenchUrl(host: string, o: object): string;
  launchChromium(executablePath: string): Promise<{
    newPage(o: object): Promise<{
      exposeFunction(name: string, fn: (...a: unknown[]) => unknown): Promise<void>;
      on(ev: string, fn: (msg: { text(): string }) => void): void;
      goto(url: string, o: object): Promise<unknown>;
    }>;
    close(): Promise<void>;
  }>;
  tail(file: string, n: number): string;
}

export async function runEditorBench(opts: EditorBenchOptions): Promise<object> {
  const { log } = opts;
  const root = repoRoot();
  const quick = Boolean(opts.quick);
  const report = {
    bench: 'editor',
    when: new Date().toISOString(),
    commit: gitCommit(root),
    device: { vendor: null as string | null, description: 'VS Code (code-server) in headless Chromium; CPU only', fallback: true },
    peers: [] as string[],
    environment: { vscode: null as string | null, node: null as string | null, cpus: os.cpus().length, loadavg: os.loadavg().map((x) => round(x, 2)) },
    rows: [] as Record<string, unknown>[],
    headline: {
      activation_ms: null as number | null,
      panel_first_paint_ms_500_layers: null as number | null,
      stats_update_hz: null as number | null,
      cold_train_first_step_s: null as number | null,
      cancel_to_cleared_ms: null as number | null,
    },
    targets: TARGETS,
    why: undefined as string | undefined,
    errors: [] as string[],
  };

  // ---- what it needs
  const helperPath = path.join(root, 'test', 'vscode', 'code-server.mjs');
  const probe = path.join(root, 'bench', 'editor-probe.cjs');
  const why = (() => {
    if (!fs.existsSync(helperPath) || !fs.existsSync(probe)) return `needs the Basin repository (${path.relative(root, helperPath)}, bench/editor-probe.cjs): a dev tool`;
    if (!fs.existsSync(path.join(root, 'dist', 'extension.js')) || !fs.existsSync(path.join(root, 'dist', 'webview', 'stats.js'))) return 'dist/ is not built: run `npm run build`';
    if (!fs.existsSync(path.join(root, 'node_modules', 'playwright-core'))) return 'playwright-core (a dev dependency) is not installed: run `npm install`';
    return undefined;
  })();
  if (why) return { ...report, why };
  // Loaded at run time from the repository (not bundled: it imports playwright-core).
  const cs = (await import(pathToFileURL(helperPath).href)) as CodeServerHelpers;
  const tools = cs.findTools();
  if (tools.error) return { ...report, why: tools.error };
  try {
    const envJson = JSON.parse(fs.readFileSync(path.join(root, '.vscode-test', 'env.json'), 'utf8'));
    report.environment.vscode = envJson.codeServerVersion ? `code-server ${envJson.codeServerVersion}` : null;
    report.environment.node = envJson.nodeVersion ?? null;
  } catch {
    /* not recorded */
  }

  // ---- the workspace: a config (activation), a 500-layer run, a live 1,000-layer run and the frames to append
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-bench-editor-'));
  const workspace = path.join(scratch, 'workspace');
  const benchDir = path.join(workspace, '.basin-bench');
  fs.mkdirSync(benchDir, { recursive: true });
  fs.copyFileSync(path.join(root, 'examples', 'demo.basin.yaml'), path.join(workspace, 'demo.basin.yaml'));
  const run500 = path.join(workspace, 'runs', 'bench-500-layers');
  const runLive = path.join(workspace, 'runs', 'bench-live-1000-layers');
  log('[bench editor] writing the synthetic runs (500 layers × 40 frames; 1,000 layers live)…');
  writeSyntheticRun(run500, { layers: 500, frames: 40, statsEvery: 25, width: 48 });
  const live = writeSyntheticRun(runLive, { layers: 1000, frames: 3, statsEvery: 10, width: 32, status: 'running', totalSteps: 1000 });
  const appendSeconds = quick ? 5 : 8;
  const appendHz = 4;
  const append: { frame: string; metrics: object }[] = [];
  for (let i = 0, step = 40; i < appendSeconds * appendHz + 4; i++, step += 10) {
    const f = path.join(benchDir, `frame-${step}.bin`);
    fs.writeFileSync(f, syntheticFrame(live.tensors, step, live.totalSteps));
    append.push({ frame: f, metrics: { step, loss: 2.3 * Math.exp(-step / 600) + 0.4 } });
  }
  const plan = { extensionId: EXTENSION_ID, demoConfig: path.join(workspace, 'demo.basin.yaml'), run500, runLive, opens: quick ? 3 : 5, requireReps: quick ? 5 : 9, appendHz, appendSeconds, settleMs: 1500, append };
  fs.writeFileSync(path.join(benchDir, 'plan.json'), JSON.stringify(plan, null, 2));

  // ---- code-server + Chromium, the probe as the window's extension tests
  const dirs = cs.prepareScratch(scratch, { settings: { 'workbench.secondarySideBar.defaultVisibility': 'hidden' } });
  // The cold start is the first run of a machine: an empty driver shader cache (Mesa's, which the test helpers
  // otherwise share with earlier runs). BASIN_BENCH_DRIVER_CACHE=shared measures with the machine's cache instead.
  const savedMesaCache = process.env.MESA_SHADER_CACHE_DIR;
  if (process.env.BASIN_BENCH_DRIVER_CACHE !== 'shared') process.env.MESA_SHADER_CACHE_DIR = path.join(scratch, 'mesa-shader-cache');
  let server: { host: string; stop(): Promise<void> } | undefined;
  let browser: Awaited<ReturnType<CodeServerHelpers['launchChromium']>> | undefined;
  const t0 = Date.now();
  try {
    log('[bench editor] starting code-server…');
    server = await cs.startCodeServer({ tools, dirs, folder: workspace });
    browser = await cs.launchChromium(tools.chromium);
    const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
    let exitCode: (c: number) => void = () => undefined;
    const exited = new Promise<number>((r) => (exitCode = r));
    await page.exposeFunction('codeAutomationExit', (c: unknown) => exitCode(Number(c) || 0));
    page.on('console', (msg) => {
      const text = msg.text();
      if (text.includes('[bench-probe]')) log(`[bench editor] ${text.slice(text.indexOf('[bench-probe]') + 14)}`);
      else if (opts.verbose) log(`[workbench] ${text}`);
    });
    const url = cs.workbenchUrl(server.host, { folder: workspace, dev: [root], tests: probe });
    log('[bench editor] opening the workbench; the probe runs in the extension host');
    await page.goto(url, { waitUntil: 'domcontentloaded' });
    const timeoutS = 900;
    let timer: NodeJS.Timeout | undefined;
    const code = await Promise.race([exited, new Promise<number>((r) => (timer = setTimeout(() => r(-1), timeoutS * 1000)))]);
    clearTimeout(timer);
    if (code === -1) report.errors.push(`the probe did not finish within ${timeoutS} s`);
    else if (code !== 0) report.errors.push(`the probe ended with exit code ${code}`);
    log(`[bench editor] probe done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  } catch (e) {
    report.errors.push(`${(e as Error).message}\n${cs.tail(dirs.log, 20)}`);
  } finally {
    await browser?.close().catch(() => undefined);
    await server?.stop().catch(() => undefined);
    if (savedMesaCache === undefined) delete process.env.MESA_SHADER_CACHE_DIR;
    else process.env.MESA_SHADER_CACHE_DIR = savedMesaCache;
  }

  let result: ProbeResult | undefined;
  try {
    result = JSON.parse(fs.readFileSync(path.join(benchDir, 'result.json'), 'utf8')) as ProbeResult;
  } catch {
    report.errors.push('the probe wrote no result.json');
  }
  if (process.env.BASIN_BENCH_KEEP !== '1') fs.rmSync(scratch, { recursive: true, force: true });
  if (!result) return { ...report, why: report.errors.join('; ') };
  report.errors.push(...result.errors);

  // ---- rows and headline
  const a = result.activation;
  if (a) {
    report.rows.push({
      case: 'activation',
      timed: 'require() of a fresh copy of dist/extension.js in the extension host (median after a warm-up; compile + top level) + activate() (extension clock)',
      bundle_kib: round(a.bundle_bytes / 1024, 0),
      require_ms: a.require_ms_median,
      require_ms_min: a.require_ms_min,
      require_ms_all: a.require_ms,
      activate_call_ms: a.activate_call_ms,
      top_level_to_activated_ms: a.top_level_to_activated_ms,
      ext_host_clock_at_load_ms: a.load_start_ms,
      activation_ms: a.activation_ms,
      ...(a.why ? { why: a.why } : {}),
    });
    report.headline.activation_ms = a.activation_ms;
  }
  const fp = result.firstPaint;
  if (fp?.length) {
    const med = median(fp.map((r) => r.first_paint_ms));
    report.rows.push({
      case: 'panel first paint, 500 layers × 40 frames',
      timed: `webview script start → header, table and charts painted (its firstPaint report), median of ${fp.length} opens`,
      first_paint_ms: round(med),
      first_paint_ms_all: fp.map((r) => r.first_paint_ms),
      render_ms: round(median(fp.map((r) => r.render_ms))),
      command_to_report_ms: round(median(fp.map((r) => r.command_to_report_ms)), 0),
    });
    report.headline.panel_first_paint_ms_500_layers = round(med);
  }
  const lv = result.live;
  if (lv) {
    report.rows.push({
      case: 'live run, 1,000 layers',
      timed: `updates painted by the webview while stats.bin grew by ${lv.append_hz} frames/s for ${appendSeconds} s (+1.5 s settle)`,
      stats_update_hz: lv.update_hz,
      updates_painted: lv.updates_painted,
      updates_sent: lv.updates_sent,
      frames_appended: lv.frames_appended,
      seconds: lv.seconds,
      update_ms_max: lv.update_ms_max,
      first_paint_ms: lv.first_paint_ms,
      ...(lv.webview_errors?.length ? { webview_errors: lv.webview_errors } : {}),
    });
    report.headline.stats_update_hz = lv.update_hz;
  }
  const cs0 = result.coldStart;
  if (cs0?.cold) {
    const c = cs0.cold;
    report.rows.push({
      case: 'cold start: ▶ Train on the demo, fresh worker',
      timed: `the Train command → the first step reported (train.logEvery steps), nothing compiled, ${process.env.BASIN_BENCH_DRIVER_CACHE === 'shared' ? "the machine's driver shader cache" : 'an empty driver shader cache'}; then Cancel → job ended, status bar cleared`,
      cold_train_first_step_s: round(c.first_step_ms / 1000, 1),
      first_progress_ms: c.first_progress_ms,
      compiling_notice_shown: c.compiling_shown,
      first_step: c.first_step,
      second_worker_first_step_s: cs0.second ? round(cs0.second.first_step_ms / 1000, 1) : null,
      after_warm_up_first_step_s: cs0.after_warm_up ? round(cs0.after_warm_up.first_step_ms / 1000, 1) : null,
      warm_up_s: cs0.warm_up ? round(cs0.warm_up.ms / 1000, 1) : null,
      warm_up_result: cs0.warm_up?.result ?? cs0.warm_up?.error ?? null,
      cancel_to_cleared_ms: [c.cancel_to_cleared_ms, cs0.second?.cancel_to_cleared_ms].filter((x) => x !== undefined),
      stopping_shown_at_once: c.stopping_shown,
    });
    report.headline.cold_train_first_step_s = round(c.first_step_ms / 1000, 1);
    report.headline.cancel_to_cleared_ms = median([c.cancel_to_cleared_ms, cs0.second?.cancel_to_cleared_ms ?? NaN]);
  } else if (cs0?.why) report.errors.push(`cold start: ${cs0.why}`);
  for (const [k, v] of Object.entries(report.headline)) if (v === null && !report.why) report.why = `${k} not measured: ${report.errors.join('; ') || 'see rows'}`;
  return report;
}

export function formatEditorReport(report: object): string {
  const r = report as {
    commit: string | null;
    environment: { vscode: string | null; cpus: number; loadavg: number[] };
    rows: Record<string, unknown>[];
    headline: Record<string, number | null>;
    targets: Record<string, number>;
    why?: string;
    errors?: string[];
  };
  const cell = (v: unknown) => (v === null || v === undefined ? 'n/a' : String(v));
  const out: string[] = [];
  out.push(`editor bench in ${r.environment.vscode ?? 'VS Code (code-server)'} + headless Chromium, ${r.environment.cpus} CPUs (load ${r.environment.loadavg.join(' ')}), commit ${r.commit ?? 'n/a'}`);
  out.push('');
  const line = (name: string, value: unknown, target: string, detail: string) => out.push(`${name.padEnd(34)} ${cell(value).padStart(9)}  ${target.padEnd(9)} ${detail}`);
  out.push(`${'figure'.padEnd(34)} ${'value'.padStart(9)}  ${'target'.padEnd(9)} detail`);
  const ok = (k: string, v: number | null, lower: boolean) => (v === null ? '' : (lower ? v <= r.targets[k] : v >= r.targets[k]) ? ' ✓' : ' ✗');
  const h = r.headline;
  const act = r.rows.find((x) => x.case === 'activation');
  line('activation_ms', h.activation_ms === null ? null : `${h.activation_ms}${ok('activation_ms', h.activation_ms, true)}`, '≤ 50', act ? `require ${cell(act.require_ms)} ms (min ${cell(act.require_ms_min)}) + activate() ${cell(act.activate_call_ms)} ms; bundle ${cell(act.bundle_kib)} KiB` : '');
  const fp = r.rows.find((x) => String(x.case).startsWith('panel first paint'));
  line('panel_first_paint_ms_500_layers', h.panel_first_paint_ms_500_layers === null ? null : `${h.panel_first_paint_ms_500_layers}${ok('panel_first_paint_ms_500_layers', h.panel_first_paint_ms_500_layers, true)}`, '≤ 500', fp ? `opens: ${(fp.first_paint_ms_all as number[]).join(', ')} ms; render ${cell(fp.render_ms)} ms; command → report ${cell(fp.command_to_report_ms)} ms` : '');
  const lv = r.rows.find((x) => String(x.case).startsWith('live'));
  line('stats_update_hz', h.stats_update_hz === null ? null : `${h.stats_update_hz}${ok('stats_update_hz', h.stats_update_hz, false)}`, '≥ 1', lv ? `${cell(lv.updates_painted)} painted (${cell(lv.updates_sent)} sent) in ${cell(lv.seconds)} s at 1,000 layers; slowest update ${cell(lv.update_ms_max)} ms` : '');
  const cold = r.rows.find((x) => String(x.case).startsWith('cold start'));
  line('cold_train_first_step_s', h.cold_train_first_step_s, '', cold ? `"compiling" notice after ${cell(cold.first_progress_ms)} ms (shown: ${cell(cold.compiling_notice_shown)}); second worker ${cell(cold.second_worker_first_step_s)} s; after the warm-up (${cell(cold.warm_up_s)} s) ${cell(cold.after_warm_up_first_step_s)} s` : '');
  line('cancel_to_cleared_ms', h.cancel_to_cleared_ms === null ? null : `${h.cancel_to_cleared_ms}${ok('cancel_to_cleared_ms', h.cancel_to_cleared_ms, true)}`, '≤ 1000', cold ? `Cancel → job ended, status bar cleared: ${(cold.cancel_to_cleared_ms as number[]).join(', ')} ms ("stopping…" at once: ${cell(cold.stopping_shown_at_once)})` : '');
  if (r.why) out.push(`\nwhy: ${r.why}`);
  if (r.errors?.length) out.push(`errors:\n  ${r.errors.join('\n  ')}`);
  return out.join('\n');
}
