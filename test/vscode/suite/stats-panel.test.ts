// The statistics panel in a real extension host: basin.openStatistics on a synthetic run folder opens a
// `basin.stats` webview, the webview says `ready`, gets its snapshot and reports its first paint; appended frames
// reach it as updates. basin.statsPanelState is the test hook (also what `basin bench editor` reads).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { StatsPanelState } from '../../../src/host/panels/stats-panel';
import { appendSyntheticStep, writeSyntheticRun } from '../../fixtures/stats-run';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, f: () => T | undefined | Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

async function panelState(runDir: string): Promise<StatsPanelState | undefined> {
  const all = (await vscode.commands.executeCommand<StatsPanelState[]>('basin.statsPanelState')) ?? [];
  return all.find((p) => p.runDir === runDir);
}

function statsTab(): vscode.Tab | undefined {
  for (const g of vscode.window.tabGroups.all) {
    for (const t of g.tabs) if (t.input instanceof vscode.TabInputWebview && t.input.viewType.endsWith('basin.stats')) return t;
  }
  return undefined;
}

describe('Statistics panel', () => {
  let root: string;
  let runDir: string;
  let run: ReturnType<typeof writeSyntheticRun>;

  before(async () => {
    const ext = vscode.extensions.getExtension('basin-ml.basin');
    await ext?.activate();
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-stats-panel-'));
    runDir = path.join(root, 'runs', 'synthetic-20240101-000000');
    run = writeSyntheticRun(runDir, { layers: 40, frames: 8, statsEvery: 10, status: 'running' });
  });

  after(async () => {
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('registers basin.openStatistics', async () => {
    const all = await vscode.commands.getCommands(true);
    assert.ok(all.includes('basin.openStatistics'));
    assert.ok(all.includes('basin.statsPanelState'));
  });

  it('opens a panel for { runDir }, which says ready and paints', async function () {
    this.timeout(60_000);
    const opened = await vscode.commands.executeCommand<StatsPanelState>('basin.openStatistics', { runDir });
    assert.ok(opened, 'the command returns the panel state');
    const tab = await until('the basin.stats tab', statsTab);
    assert.match(tab.label, /Statistics: synthetic/);
    const s = await until('the webview to say ready and report its first paint', async () => {
      const st = await panelState(runDir);
      return st?.ready && st.perf.firstPaint ? st : undefined;
    });
    assert.equal(s.snapshots >= 1, true);
    assert.equal(s.framesTotal, 8);
    assert.equal(s.layers, 40);
    assert.equal(s.invalidMessages, 0);
    assert.deepEqual(s.webviewErrors, [], 'no CSP violation or script error in the webview');
    assert.equal(s.perf.firstPaint!.layers, 40);
    console.log(`      first paint: ${s.perf.firstPaint!.ms.toFixed(0)} ms after script start (render ${s.perf.firstPaint!.renderMs.toFixed(0)} ms)`);
  });

  it('sends appended frames to the visible panel as updates', async function () {
    this.timeout(30_000);
    const before = (await panelState(runDir))!;
    appendSyntheticStep(runDir, run.tensors, 90, run.totalSteps);
    const s = await until('the appended frame', async () => {
      const st = await panelState(runDir);
      return st && st.framesTotal === 9 && st.perf.updates > before.perf.updates ? st : undefined;
    });
    assert.ok(s.updates > before.updates);
  });

  it('reveals the same panel when opened again, and pins a checkpoint step', async () => {
    const s = await vscode.commands.executeCommand<StatsPanelState>('basin.openStatistics', { runDir, step: 45 });
    assert.equal(s?.pinnedStep, 45);
    const panels = (await vscode.commands.executeCommand<StatsPanelState[]>('basin.statsPanelState')) ?? [];
    assert.equal(panels.length, 1, 'one panel per run folder');
  });

  it('refuses a folder that is not a run', async () => {
    const s = await vscode.commands.executeCommand<StatsPanelState | undefined>('basin.openStatistics', { runDir: root });
    assert.equal(s, undefined);
  });
});
