// The prune panel in a real extension host, on a tiny trained MLP (trained with the CLI): the command and its
// menus are declared; the panel opens on a checkpoint (as the Runs view's context menu passes it) with no sweep
// yet; invalid messages are refused and change nothing; a sweep (2 scores × 6 densities, on 400 validation rows:
// long enough to be watched) run from the panel shows its points while it runs (the state has fewer points before
// it completes) and ends with all of them;
// "Evaluate this point" adds an exact point where the slider interpolated; Apply writes the pruned checkpoint and
// its report. basin.prunePanelDispatch hands a message to the panel exactly as its webview would.
import * as assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import * as vscode from 'vscode';
import type { BasinApi } from '../../../src/extension';
import type { PrunePanelState } from '../../../src/host/panels/prune-panel';
import type { PruneJobState } from '../../../src/protocol/panels/prune';
import { until } from './wait';

const EXTENSION_ID = 'basin-ml.basin';

const CONFIG = `name: prune-tiny
seed: 3
model: { type: mlp, inputs: 10, hidden: [16, 16], classes: 4 }
data: { type: synthetic-classification, samples: 2000, seed: 3, validFraction: 0.2 }
train: { steps: 30, batchSize: 32, optimizer: { type: adamw, lr: 0.01 }, evalEvery: 30, checkpointEvery: 0, logEvery: 10, statsEvery: 10 }
output: runs
`;

async function panel(checkpoint: string): Promise<PrunePanelState | undefined> {
  const all = (await vscode.commands.executeCommand<PrunePanelState[]>('basin.prunePanelState')) ?? [];
  return all.find((p) => p.checkpoint === checkpoint);
}

type Reply = { ok: boolean; reason?: string; result?: unknown };
const dispatch = (checkpoint: string, message: unknown) => vscode.commands.executeCommand<Reply>('basin.prunePanelDispatch', checkpoint, message);

describe('Prune panel', function () {
  // Training a tiny run with the CLI, then the first prune jobs compiling their kernels through lavapipe.
  this.timeout(240_000);
  let api: BasinApi;
  let scratch: string;
  let runDir: string;
  let checkpoint: string;
  let cfg: string;

  before(async () => {
    const ext = vscode.extensions.getExtension<BasinApi>(EXTENSION_ID);
    assert.ok(ext);
    api = await ext.activate();
    const ws = vscode.workspace.workspaceFolders?.[0];
    assert.ok(ws);
    scratch = path.join(ws.uri.fsPath, `prune-test-${process.pid}`);
    fs.rmSync(scratch, { recursive: true, force: true });
    fs.mkdirSync(scratch, { recursive: true });
    cfg = path.join(scratch, 'prune-tiny.basin.yaml');
    fs.writeFileSync(cfg, CONFIG);
    const t0 = Date.now();
    await promisify(execFile)(process.execPath, [path.join(ext.extensionUri.fsPath, 'bin', 'basin.js'), 'train', cfg], { cwd: scratch, timeout: 180_000 });
    runDir = path.join(scratch, 'runs', fs.readdirSync(path.join(scratch, 'runs')).find((d) => d.startsWith('prune-tiny-'))!);
    checkpoint = path.join(runDir, 'checkpoints', 'step-30.safetensors');
    assert.ok(fs.existsSync(checkpoint), `${checkpoint} was written`);
    console.log(`      a tiny run trained with the CLI in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  });

  after(async () => {
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    api?.jobs.cancel();
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  });

  it('registers Preview Pruning and declares it (palette, Runs-view checkpoints, activation by its panel)', async () => {
    const all = await vscode.commands.getCommands(true);
    for (const c of ['basin.previewPruning', 'basin.prunePanelState', 'basin.prunePanelDispatch']) assert.ok(all.includes(c), c);
    const pkg = vscode.extensions.getExtension(EXTENSION_ID)!.packageJSON as {
      activationEvents: string[];
      contributes: { commands: { command: string; title: string; category?: string }[]; menus: Record<string, { command: string; when?: string }[]> };
    };
    const cmd = pkg.contributes.commands.find((c) => c.command === 'basin.previewPruning');
    assert.equal(`${cmd?.category}: ${cmd?.title}`, 'Basin: Preview Pruning');
    assert.ok(pkg.activationEvents.includes('onWebviewPanel:basin.prune'));
    const ctxMenu = pkg.contributes.menus['view/item/context'].filter((m) => m.command === 'basin.previewPruning');
    assert.ok(ctxMenu.some((m) => m.when?.includes('basinCheckpoint')), 'on checkpoints in the Runs view');
    const hidden = pkg.contributes.menus.commandPalette.filter((m) => m.when === 'false').map((m) => m.command);
    assert.ok(hidden.includes('basin.prunePanelState') && hidden.includes('basin.prunePanelDispatch'), 'test commands hidden from the palette');
  });

  it('opens on a Runs-view checkpoint, says there is no sweep yet, and paints', async () => {
    // What the Runs view passes for a checkpoint item.
    const st = await vscode.commands.executeCommand<PrunePanelState>('basin.previewPruning', { kind: 'checkpoint', runDir, checkpoint: { step: 30, file: checkpoint } });
    assert.ok(st, 'the command returns the panel state');
    assert.equal(st.checkpoint, checkpoint);
    assert.match(st.title, /^Prune: prune-tiny-.* @ 30$/);
    const ready = await until('the webview to say ready', async () => ((await panel(checkpoint))?.ready ? panel(checkpoint) : undefined), 30_000);
    assert.equal(ready!.snapshot.sweep, null);
    assert.match(ready!.snapshot.sweepMessage, /No pruning sweep/);
    assert.deepEqual(ready!.snapshot.defaultScores, ['magnitude', 'random']);
    assert.ok(ready!.snapshot.scores.some((s) => s.name === 'wanda' && /calibration/.test(s.needs)), 'scores come with what they need');
    assert.deepEqual(ready!.webviewErrors, []);
    // Opening it again reveals the same panel.
    await vscode.commands.executeCommand('basin.previewPruning', checkpoint);
    assert.equal((await vscode.commands.executeCommand<PrunePanelState[]>('basin.prunePanelState')).length, 1);
  });

  it('offers a Preview pruning lens on the config of a finished run, naming its last checkpoint', async () => {
    await vscode.commands.executeCommand('basin.refreshRuns');
    await vscode.window.showTextDocument(vscode.Uri.file(cfg));
    const lens = await until('the Preview pruning lens', async () => {
      const ls = await vscode.commands.executeCommand<vscode.CodeLens[]>('vscode.executeCodeLensProvider', vscode.Uri.file(cfg));
      return ls.find((l) => l.command?.command === 'basin.previewPruning');
    }, 30_000);
    assert.equal(lens.command!.title, 'Preview pruning');
    const arg = lens.command!.arguments?.[0] as { runDir: string; checkpoint: { file: string; step: number } };
    assert.equal(arg.runDir, runDir);
    assert.deepEqual(arg.checkpoint, { file: checkpoint, step: 30 });
  });

  it('refuses invalid messages and changes nothing', async () => {
    const before = (await panel(checkpoint))!;
    const bad: unknown[] = [
      { kind: 'request', id: 1, type: 'runSweep', params: { scores: [], densities: [0.5] } },
      { kind: 'request', id: 2, type: 'apply', params: { score: 'magnitude', density: 0 } },
      { kind: 'request', id: 3, type: 'apply', params: { score: 'magnitude', density: 2 } },
      { kind: 'request', id: 4, type: 'evaluatePoint', params: { score: 'x/../../y', density: 0.5 } },
      { kind: 'command', type: 'cancel', params: { job: 'all' } },
      { kind: 'command', type: 'deleteEverything', params: {} },
      'not an object',
    ];
    for (const m of bad) assert.equal((await dispatch(checkpoint, m)).ok, false, JSON.stringify(m));
    // A valid message for an unknown score is refused by the handler, with the known names.
    const unknown = await dispatch(checkpoint, { kind: 'request', id: 5, type: 'apply', params: { score: 'nonexistent', density: 0.5 } });
    assert.equal(unknown.ok, false);
    assert.match(unknown.reason ?? '', /unknown score "nonexistent"/);
    const after = (await panel(checkpoint))!;
    assert.equal(after.invalidMessages, before.invalidMessages + bad.length);
    assert.deepEqual(after.snapshot, before.snapshot);
  });

  it('runs a sweep from the panel: points appear while it runs, all 12 when it completes', async () => {
    const seen = new Set<number>();
    const states = new Set<string>(); // what the watcher saw, for the message when nothing partial was seen
    const watch = setInterval(() => {
      void panel(checkpoint).then((p) => {
        states.add(`${p?.snapshot.sweepJob.status}:${p?.snapshot.sweep?.points.length ?? 'none'}`);
        if (p?.snapshot.sweep && p.snapshot.sweepJob.status === 'running') seen.add(p.snapshot.sweep.points.length);
      });
    }, 25);
    try {
      const r = await dispatch(checkpoint, { kind: 'request', id: 10, type: 'runSweep', params: { scores: ['magnitude', 'random'], densities: [1, 0.8, 0.6, 0.5, 0.3, 0.2] } });
      assert.ok(r.ok, r.reason);
      assert.ok(['queued', 'running'].includes((r.result as PruneJobState).status), 'answers at once with the started job');
      // A second sweep while one runs is refused.
      const again = await dispatch(checkpoint, { kind: 'request', id: 11, type: 'runSweep', params: { scores: ['magnitude'], densities: [0.5] } });
      assert.equal(again.ok, false);
      const done = await until('the sweep to complete', async () => {
        const p = await panel(checkpoint);
        return p?.snapshot.sweepJob.status === 'completed' || p?.snapshot.sweepJob.status === 'failed' ? p : undefined;
      }, 200_000);
      assert.equal(done.snapshot.sweepJob.status, 'completed', done.snapshot.sweepJob.message ?? '');
      const sw = await until('the completed sweep file', async () => {
        const p = await panel(checkpoint);
        return p?.snapshot.sweep?.status === 'completed' ? p.snapshot.sweep : undefined;
      });
      assert.equal(sw.points.length, 12);
      assert.deepEqual(sw.scores, ['magnitude', 'random']);
      assert.deepEqual(sw.densities, [1, 0.8, 0.6, 0.5, 0.3, 0.2]);
      assert.ok(sw.dense && typeof sw.dense.loss === 'number');
      assert.equal(sw.targets.length, 2, 'the two hidden layers');
      assert.ok(fs.existsSync(sw.file) && sw.file.startsWith(path.join(runDir, 'prune')), sw.file);
      // Density 1 is the dense model exactly, for every score.
      for (const p of sw.points.filter((q) => q.density === 1)) assert.equal(p.metrics.loss, sw.dense!.loss);
      // Magnitude at half density keeps about half of each layer (ties kept: at least half).
      const half = sw.points.find((p) => p.score === 'magnitude' && p.density === 0.5)!;
      for (const k of half.layers) assert.ok(k >= 0.5 && k < 0.6, `${k}`);
      // Live: the panel saw the sweep with some but not all points while the job ran.
      assert.ok([...seen].some((n) => n < 12), `states seen while running had ${[...seen].join(', ')} points (job status:points seen: ${[...states].join(' ')})`);
    } finally {
      clearInterval(watch);
    }
  });

  it('evaluates the exact point where the slider interpolates, and marks it extra', async () => {
    const r = await dispatch(checkpoint, { kind: 'request', id: 20, type: 'evaluatePoint', params: { score: 'magnitude', density: 0.35 } });
    assert.ok(r.ok, r.reason);
    const p = await until('the point', async () => {
      const s = await panel(checkpoint);
      return s?.snapshot.pointJob.status === 'completed' && s.snapshot.sweep?.points.some((q) => q.extra) ? s : undefined;
    }, 120_000);
    const extra = p.snapshot.sweep!.points.filter((q) => q.extra);
    assert.equal(extra.length, 1);
    assert.equal(extra[0].score, 'magnitude');
    assert.equal(extra[0].density, 0.35);
    assert.equal(p.snapshot.sweep!.points.filter((q) => !q.extra).length, 12, 'the sweep itself is unchanged');
    assert.ok(fs.readdirSync(path.join(runDir, 'prune', 'points')).length >= 1, 'written under prune/points');
  });

  it('applies a score at a density: writes the pruned checkpoint and its report', async () => {
    const r = await dispatch(checkpoint, { kind: 'request', id: 30, type: 'apply', params: { score: 'magnitude', density: 0.5 } });
    assert.ok(r.ok, r.reason);
    const p = await until('the pruned checkpoint', async () => {
      const s = await panel(checkpoint);
      return s?.snapshot.applyJob.status === 'completed' || s?.snapshot.applyJob.status === 'failed' ? s : undefined;
    }, 120_000);
    assert.equal(p.snapshot.applyJob.status, 'completed', p.snapshot.applyJob.message ?? '');
    const a = p.snapshot.applied!;
    assert.ok(fs.existsSync(a.weights) && fs.existsSync(a.report), `${a.weights}, ${a.report}`);
    assert.equal(path.dirname(a.weights), path.join(runDir, 'prune', 'magnitude-d50-step30'));
    const report = JSON.parse(fs.readFileSync(a.report, 'utf8')) as { score: { type: string }; density: number; kept: number };
    assert.equal(report.score.type, 'magnitude');
    assert.equal(report.density, 0.5);
    assert.ok(Math.abs(report.kept - a.kept) < 1e-12);
    // Its pruned loss is the sweep's point at the same density (the same mask, the same evaluation).
    const pt = p.snapshot.sweep!.points.find((q) => q.score === 'magnitude' && q.density === 0.5 && !q.extra)!;
    assert.ok(Math.abs((a.pruned!.loss as number) - (pt.metrics.loss as number)) < 1e-5, `${a.pruned!.loss} vs ${pt.metrics.loss}`);
    assert.deepEqual(p.webviewErrors, []);
  });

  it('the scores that read statistics or data, from a CLI sweep: a point and an apply use its score parameters', async () => {
    // curvature (the run's statistics), wanda and sparsegpt (calibration batches of the config's data), with
    // parameters other than the defaults, swept by the CLI; the panel shows that sweep file.
    const basin = path.join(vscode.extensions.getExtension(EXTENSION_ID)!.extensionUri.fsPath, 'bin', 'basin.js');
    await promisify(execFile)(process.execPath, [basin, 'prune', runDir, '--sweep', '--score', 'curvature,wanda,sparsegpt', '--densities', '1,0.5', '--batches', '2', '--calibration', 'one-pass'], { cwd: scratch, timeout: 180_000 });
    const file = fs.readdirSync(path.join(runDir, 'prune')).filter((f) => /^sweep-.*\.json$/.test(f)).map((f) => path.join(runDir, 'prune', f)).sort((a, b) => fs.statSync(b).mtimeMs - fs.statSync(a).mtimeMs)[0];
    await vscode.commands.executeCommand('basin.previewPruning', { runDir, sweepFile: file });
    const sw = await until('the CLI sweep on the panel', async () => {
      const s = (await panel(checkpoint))?.snapshot.sweep;
      return s?.file === file && s.status === 'completed' ? s : undefined;
    }, 30_000);
    assert.deepEqual(sw.scores, ['curvature', 'wanda', 'sparsegpt']);
    assert.equal(sw.points.filter((q) => !q.extra).length, 6);
    for (const q of sw.points) assert.ok(Number.isFinite(q.metrics.loss as number), `${q.score}@${q.density}`);

    // Evaluate this point with wanda: the point file records wanda's batches from the sweep.
    const before = new Set(fs.readdirSync(path.join(runDir, 'prune', 'points')));
    const r = await dispatch(checkpoint, { kind: 'request', id: 40, type: 'evaluatePoint', params: { score: 'wanda', density: 0.35 } });
    assert.ok(r.ok, r.reason);
    await until('the wanda point', async () => ((await panel(checkpoint))?.snapshot.pointJob.status === 'completed' ? true : undefined), 120_000);
    const pointFile = fs.readdirSync(path.join(runDir, 'prune', 'points')).find((f) => !before.has(f))!;
    const pointSweep = JSON.parse(fs.readFileSync(path.join(runDir, 'prune', 'points', pointFile), 'utf8')) as { options: { scores: Record<string, unknown>[] } };
    assert.equal(pointSweep.options.scores[0].type, 'wanda');
    assert.equal(pointSweep.options.scores[0].batches, 2);

    // Apply sparsegpt at half density: its report says one-pass calibration on 2 batches, as the sweep did, and its
    // pruned loss is the sweep's point (the same solve).
    const ap = await dispatch(checkpoint, { kind: 'request', id: 41, type: 'apply', params: { score: 'sparsegpt', density: 0.5 } });
    assert.ok(ap.ok, ap.reason);
    const p = await until('the sparsegpt apply', async () => {
      const s = await panel(checkpoint);
      return s?.snapshot.applyJob.status === 'completed' || s?.snapshot.applyJob.status === 'failed' ? s : undefined;
    }, 120_000);
    assert.equal(p.snapshot.applyJob.status, 'completed', p.snapshot.applyJob.message ?? '');
    const report = JSON.parse(fs.readFileSync(p.snapshot.applied!.report, 'utf8')) as { score: Record<string, unknown> };
    assert.equal(report.score.type, 'sparsegpt');
    assert.equal(report.score.calibration, 'one-pass');
    assert.equal(report.score.batches, 2);
    const pt = sw.points.find((q) => q.score === 'sparsegpt' && q.density === 0.5)!;
    assert.ok(Math.abs((p.snapshot.applied!.pruned!.loss as number) - (pt.metrics.loss as number)) < 1e-4, `${p.snapshot.applied!.pruned!.loss} vs ${pt.metrics.loss}`);
    assert.deepEqual(p.webviewErrors, []);
  });
});
