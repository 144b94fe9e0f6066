// `basin bench editor`'s probe: runs INSIDE the VS Code extension host as the window's extensionTestsPath (plain
// CommonJS, loaded by the host as is; bench/editor.ts starts code-server and Chromium and hands it a plan). It
// reads the plan from <workspace>/.basin-bench/plan.json, measures, and writes result.json next to it:
//   activation   the extension's own clock (BasinApi.timing: bundle top-level start, activate() start and end)
//                and the cost of require()-ing a fresh copy of dist/extension.js (read + compile + top level),
//                median and best over a few copies after one warm-up (each copy's text differs by a comment, so
//                no compile cache helps)
//   first paint  basin.openStatistics on the 500-layer run, then basin.statsPanelState until the webview's
//                firstPaint perf report arrives (script start → charts, table and header painted); the panel is
//                closed and opened again, `opens` times
//   live         a panel on the 1,000-layer run that is "running": the probe appends prepared frames to its
//                stats.bin (and rows to metrics.jsonl) at `appendHz`, as a trainer would, and counts the updates
//                the webview painted (its perf reports)
//   cold start   ▶ Train on the demo config in a fresh worker with nothing compiled (the bench's own, empty
//                XDG_CACHE_HOME: no driver shader cache either): ms to the "compiling" notice and to the first step
//                reported; then Cancel → job ended and status bar cleared; again in a fresh worker (driver cache
//                warm); and once more after the config was shown and the worker warmed its kernels
// Progress goes to the console (the workbench page's console: the bench prints it with --verbose).
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const vscode = require('vscode');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2) : null;
};
const round = (x, d = 1) => (x === null || x === undefined || !Number.isFinite(x) ? null : Math.round(x * 10 ** d) / 10 ** d);
const log = (m) => console.log(`[bench-probe] ${m}`);

async function panelState(runDir) {
  const states = (await vscode.commands.executeCommand('basin.statsPanelState')) || [];
  return states.find((s) => path.resolve(s.runDir) === path.resolve(runDir));
}

async function waitFor(what, fn, timeoutMs, everyMs = 20) {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

async function closePanel(runDir) {
  for (let i = 0; i < 3 && (await panelState(runDir)); i++) {
    await vscode.commands.executeCommand('workbench.action.closeActiveEditor');
    await waitFor('the panel to close', async () => !(await panelState(runDir)), 3000).catch(() => undefined);
  }
}

async function measureActivation(plan, ext) {
  const api = await ext.activate();
  const timing = api && api.timing;
  const out = {
    load_start_ms: timing ? round(timing.loadStartMs) : null,
    activate_call_ms: timing ? round(timing.activateEndMs - timing.activateStartMs, 2) : null,
    top_level_to_activated_ms: timing ? round(timing.activateEndMs - timing.loadStartMs, 2) : null,
    require_ms: [],
    why: timing ? undefined : 'the extension exposes no timing (BasinApi.timing): an older build?',
  };
  // require() a fresh copy of the bundle, inside the extension's folder (so that its require('vscode') is
  // recognised as Basin's), with a unique trailing comment.
  const bundle = path.join(ext.extensionPath, 'dist', 'extension.js');
  const text = fs.readFileSync(bundle, 'utf8');
  out.bundle_bytes = Buffer.byteLength(text);
  // The first copy is a warm-up (not counted): the file system cache and the loader's own first-use costs.
  for (let i = -1; i < plan.requireReps; i++) {
    const copy = path.join(ext.extensionPath, 'dist', `.bench-require-${process.pid}-${Date.now()}-${i}.js`);
    fs.writeFileSync(copy, `${text}\n// bench copy ${i} ${Math.random()}\n`);
    try {
      const t0 = performance.now();
      const mod = require(copy);
      const ms = performance.now() - t0;
      if (typeof mod.activate !== 'function') throw new Error('the copy exports no activate()');
      if (i >= 0) out.require_ms.push(round(ms, 2));
    } finally {
      delete require.cache[copy];
      fs.rmSync(copy, { force: true });
    }
  }
  out.require_ms_median = round(median(out.require_ms), 2);
  out.require_ms_min = round(Math.min(...out.require_ms), 2);
  // What a user waits for: loading the bundle (compile + top level) plus activate() itself.
  out.activation_ms = out.activate_call_ms === null ? null : round(out.require_ms_median + out.activate_call_ms, 2);
  return out;
}

async function measureFirstPaint(plan) {
  const rows = [];
  for (let i = 0; i < plan.opens; i++) {
    await closePanel(plan.run500);
    await sleep(300);
    const t0 = Date.now();
    await vscode.commands.executeCommand('basin.openStatistics', { runDir: plan.run500 });
    const s = await waitFor('the first paint of the 500-layer panel', async () => {
      const st = await panelState(plan.run500);
      return st && st.perf && st.perf.firstPaint ? st : undefined;
    }, 60_000);
    const wall = Date.now() - t0;
    rows.push({ first_paint_ms: round(s.perf.firstPaint.ms), render_ms: round(s.perf.firstPaint.renderMs), command_to_report_ms: wall, layers: s.perf.firstPaint.layers, frames: s.perf.firstPaint.frames });
    log(`open ${i + 1}/${plan.opens}: first paint ${s.perf.firstPaint.ms.toFixed(0)} ms (render ${s.perf.firstPaint.renderMs.toFixed(0)} ms), command → report ${wall} ms`);
  }
  await closePanel(plan.run500);
  return rows;
}

async function measureLive(plan) {
  await vscode.commands.executeCommand('basin.openStatistics', { runDir: plan.runLive });
  const s0 = await waitFor('the first paint of the 1,000-layer panel', async () => {
    const st = await panelState(plan.runLive);
    return st && st.perf && st.perf.firstPaint ? st : undefined;
  }, 60_000);
  await sleep(500);
  const before = await panelState(plan.runLive);
  const t0 = Date.now();
  const period = 1000 / plan.appendHz;
  let appended = 0;
  for (const a of plan.append) {
    if (Date.now() - t0 >= plan.appendSeconds * 1000) break;
    fs.appendFileSync(path.join(plan.runLive, 'stats.bin'), fs.readFileSync(a.frame));
    fs.appendFileSync(path.join(plan.runLive, 'metrics.jsonl'), JSON.stringify({ ...a.metrics, time: Date.now() }) + '\n');
    appended++;
    const next = t0 + appended * period;
    await sleep(Math.max(0, next - Date.now()));
  }
  const appendEnd = Date.now();
  await sleep(plan.settleMs);
  const after = await panelState(plan.runLive);
  const secs = (Date.now() - t0) / 1000;
  const painted = after.perf.updates - before.perf.updates;
  const sent = after.updates - before.updates;
  log(`live: ${appended} frames appended in ${((appendEnd - t0) / 1000).toFixed(1)} s; ${sent} updates sent, ${painted} painted in ${secs.toFixed(1)} s`);
  await closePanel(plan.runLive);
  return {
    layers: s0.layers,
    first_paint_ms: round(s0.perf.firstPaint.ms),
    frames_appended: appended,
    append_hz: plan.appendHz,
    seconds: round(secs, 2),
    updates_sent: sent,
    updates_painted: painted,
    update_hz: round(painted / secs, 2),
    update_ms_max: round(after.perf.updateMsMax),
    frames_total: after.framesTotal,
    webview_errors: after.webviewErrors,
  };
}

/** Resolves with the first event that passes `pred`, or rejects after `timeoutMs`. */
function nextEvent(event, pred, timeoutMs, what) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      sub.dispose();
      reject(new Error(`no ${what} within ${timeoutMs} ms`));
    }, timeoutMs);
    const sub = event((e) => {
      if (!pred(e)) return;
      clearTimeout(timer);
      sub.dispose();
      resolve(e);
    });
  });
}

/**
 * One ▶ Train of the demo config in a fresh worker: ms from the command to the notice that kernels compile (the
 * first progress) and to the first step reported (the first progress past the start step, i.e. train.logEvery
 * steps done), then Cancel: ms until the job ended and the status bar item is gone.
 */
async function trainOnce(api, config) {
  await api.worker.stop();
  const t0 = Date.now();
  let firstProgress = null;
  let compilingShown = false;
  const sub = api.jobs.onDidProgress((e) => {
    if (e.kind !== 'train') return;
    if (firstProgress === null) firstProgress = Date.now() - t0;
    if (e.progress.compiling || e.progress.phase === 'compiling') compilingShown = true;
  });
  const done = vscode.commands.executeCommand('basin.trainFromConfig', vscode.Uri.file(config));
  try {
    const e = await nextEvent(api.jobs.onDidProgress, (x) => x.kind === 'train' && x.progress.phase !== 'compiling' && x.progress.step > x.progress.startStep, 300_000, 'the first step');
    const firstStep = Date.now() - t0;
    const ended = nextEvent(api.jobs.onDidEnd, (x) => x.job === e.job, 60_000, 'the end of the job');
    const tc = Date.now();
    api.jobs.cancel(e.job.id);
    const stoppingShown = /stopping/.test(api.jobs.statusText || '');
    await ended;
    const cancelMs = Date.now() - tc;
    return { first_progress_ms: firstProgress, first_step_ms: firstStep, first_step: e.progress.step, compiling_shown: compilingShown, cancel_to_cleared_ms: cancelMs, stopping_shown: stoppingShown, status_cleared: api.jobs.statusText === undefined };
  } finally {
    sub.dispose();
    await done;
  }
}

async function measureColdStart(plan, ext) {
  const api = await ext.activate();
  if (!api.warmUp || api.jobs.statusText === null) return { why: 'the extension has no warm-up (an older build?)' };
  const config = plan.demoConfig;
  const settings = vscode.workspace.getConfiguration('basin');
  const out = {};
  try {
    // 1. The first run of a machine: nothing compiled, no driver cache (the bench's fresh XDG_CACHE_HOME), no warm-up.
    await settings.update('worker.warmUp', false, vscode.ConfigurationTarget.Global);
    out.cold = await trainOnce(api, config);
    log(`cold: first progress ${out.cold.first_progress_ms} ms, first step ${out.cold.first_step_ms} ms, cancel ${out.cold.cancel_to_cleared_ms} ms`);
    // 2. A fresh worker again: the driver's disk cache now holds the pipelines.
    out.second = await trainOnce(api, config);
    log(`second worker: first step ${out.second.first_step_ms} ms, cancel ${out.second.cancel_to_cleared_ms} ms`);
    // 3. A fresh worker that warmed the config while it was shown (what a user who opens the config gets).
    await settings.update('worker.warmUp', true, vscode.ConfigurationTarget.Global);
    await api.worker.stop();
    const warmed = nextEvent(api.warmUp.onDidWarm, (e) => path.resolve(e.configPath) === path.resolve(config), 300_000, 'the warm-up');
    const tw = Date.now();
    await vscode.window.showTextDocument(vscode.Uri.file(config));
    const w = await warmed;
    out.warm_up = { ms: Date.now() - tw, result: w.result || null, error: w.error || null };
    const t0 = Date.now();
    const done = vscode.commands.executeCommand('basin.trainFromConfig', vscode.Uri.file(config));
    const e = await nextEvent(api.jobs.onDidProgress, (x) => x.kind === 'train' && x.progress.phase !== 'compiling' && x.progress.step > x.progress.startStep, 300_000, 'the first step');
    out.after_warm_up = { first_step_ms: Date.now() - t0, first_step: e.progress.step };
    api.jobs.cancel(e.job.id);
    await done;
    log(`after warm-up (${out.warm_up.ms} ms): first step ${out.after_warm_up.first_step_ms} ms`);
  } finally {
    await settings.update('worker.warmUp', undefined, vscode.ConfigurationTarget.Global);
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
  }
  return out;
}

async function run() {
  const folder = vscode.workspace.workspaceFolders && vscode.workspace.workspaceFolders[0];
  if (!folder) throw new Error('no workspace folder: the bench opens one');
  const dir = path.join(folder.uri.fsPath, '.basin-bench');
  const plan = JSON.parse(fs.readFileSync(path.join(dir, 'plan.json'), 'utf8'));
  const result = { activation: null, firstPaint: null, live: null, coldStart: null, errors: [] };
  const write = () => fs.writeFileSync(path.join(dir, 'result.json'), JSON.stringify(result, null, 2));
  const ext = vscode.extensions.getExtension(plan.extensionId);
  if (!ext) {
    result.errors.push(`extension ${plan.extensionId} is not installed in this window`);
    write();
    return;
  }
  for (const [key, fn] of [
    ['activation', () => measureActivation(plan, ext)],
    ['firstPaint', () => measureFirstPaint(plan)],
    ['live', () => measureLive(plan)],
    ['coldStart', () => measureColdStart(plan, ext)],
  ]) {
    try {
      log(`${key}…`);
      result[key] = await fn();
    } catch (e) {
      result.errors.push(`${key}: ${(e && e.stack) || e}`);
      log(`${key} failed: ${(e && e.message) || e}`);
    }
    write();
  }
}

module.exports = { run };
