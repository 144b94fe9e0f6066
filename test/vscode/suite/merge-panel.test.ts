// The merge panel in a real extension host, on tiny real experts (a base MLP and two fine-tunes trained with the
// CLI, statistics beside their checkpoints, plus a bare .safetensors expert without statistics): the panel opens
// on the merge config and paints its grid; invalid messages are refused and change nothing; excluding a layer in
// the grid writes a mergekit weight filter into the YAML (comments kept, undoable); editing the YAML updates the
// panel and a broken YAML shows diagnostics over the last good grid; the saliency and preview jobs fill the grid
// and the per-layer figures; Run Merge writes the model and the result table. basin.mergePanelDispatch hands a
// message to the panel exactly as its webview would (the same validation).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { BasinApi } from '../../../src/extension';
import type { MergePanelState } from '../../../src/host/panels/merge-panel';
import type { MergePreviewState, MergeJobState } from '../../../src/protocol/panels/merge';
import { makeMergeExpertsAsync } from '../../fixtures/merge-experts';
import { until } from './wait';

const EXTENSION_ID = 'basin-ml.basin';

async function panel(file: string): Promise<MergePanelState | undefined> {
  const all = (await vscode.commands.executeCommand<MergePanelState[]>('basin.mergePanelState')) ?? [];
  return all.find((p) => p.configFile === file);
}

type Reply = { ok: boolean; reason?: string; result?: unknown };
const dispatch = (file: string, message: unknown) => vscode.commands.executeCommand<Reply>('basin.mergePanelDispatch', file, message);

describe('Merge panel', function () {
  // Training three tiny runs with the CLI, and the first GPU jobs compiling the merge kernels through lavapipe.
  this.timeout(240_000);
  let api: BasinApi;
  let scratch: string;
  let fx: Awaited<ReturnType<typeof makeMergeExpertsAsync>>;

  before(async () => {
    const ext = vscode.extensions.getExtension<BasinApi>(EXTENSION_ID);
    assert.ok(ext);
    api = await ext.activate();
    const ws = vscode.workspace.workspaceFolders?.[0];
    assert.ok(ws);
    scratch = path.join(ws.uri.fsPath, `merge-test-${process.pid}`);
    fs.rmSync(scratch, { recursive: true, force: true });
    const root = ext.extensionUri.fsPath;
    const t0 = Date.now();
    fx = await makeMergeExpertsAsync(scratch, { root });
    console.log(`      three tiny runs trained with the CLI in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  });

  after(async () => {
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    api?.jobs.cancel();
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  });

  it('registers the merge commands and declares them (palette, Runs view context menu, lenses on *.merge.yaml)', async () => {
    const all = await vscode.commands.getCommands(true);
    for (const c of ['basin.openMergePanel', 'basin.newMerge', 'basin.runMerge', 'basin.mergeSelected', 'basin.mergePanelState']) assert.ok(all.includes(c), c);
    const pkg = vscode.extensions.getExtension(EXTENSION_ID)!.packageJSON as {
      activationEvents: string[];
      contributes: { commands: { command: string; title: string; category?: string }[]; menus: Record<string, { command: string; when?: string }[]> };
    };
    assert.equal(pkg.contributes.commands.find((c) => c.command === 'basin.newMerge')?.title, 'New Merge');
    assert.ok(pkg.contributes.menus['view/item/context'].some((m) => m.command === 'basin.mergeSelected' && m.when?.includes('basin.runs')));
    assert.ok(pkg.activationEvents.includes('onWebviewPanel:basin.merge'));
    const doc = await vscode.workspace.openTextDocument(fx.file);
    const lenses = await vscode.commands.executeCommand<vscode.CodeLens[]>('vscode.executeCodeLensProvider', doc.uri);
    const titles = lenses.map((l) => l.command?.title);
    assert.ok(titles.includes('▶ Merge') && titles.includes('Open in Merge Panel'), `lenses: ${titles.join(', ')}`);
  });

  it('opens the panel on the config: a 3 × 4 grid with weight and density, painted by the webview', async () => {
    const opened = await vscode.commands.executeCommand<MergePanelState>('basin.openMergePanel', vscode.Uri.file(fx.file));
    assert.ok(opened);
    const s = await until('the webview to say ready', async () => {
      const p = await panel(fx.file);
      return p?.ready && p.snapshot.rows.length ? p : undefined;
    }, 60_000);
    const snap = s.snapshot;
    assert.equal(s.title, 'Merge: experts');
    assert.deepEqual(snap.rows.map((r) => r.written), [fx.a, fx.b].map((d) => `./runs/${path.basename(d)}`).concat('./plain-expert.safetensors'));
    assert.deepEqual(snap.columns.map((c) => c.label), ['0', '1', '2', '3']);
    assert.deepEqual(snap.cellParams, ['weight', 'density']);
    assert.equal(snap.method?.name, 'ties');
    assert.equal(snap.cells[0][0].weight, 1);
    assert.equal(snap.cells[2][0].weight, 0.5);
    assert.ok(snap.rows[0].metrics && typeof snap.rows[0].metrics.accuracy === 'number', 'the expert run’s last validation metrics');
    assert.equal(s.invalidMessages, 0);
    assert.deepEqual(s.webviewErrors, []);
  });

  it('refuses invalid messages, and they change nothing', async () => {
    const before = fs.readFileSync(fx.file, 'utf8');
    const bad: unknown[] = [
      { kind: 'command', type: 'edit', params: { kind: 'include', cells: [[-1, 0]], included: false } },
      { kind: 'command', type: 'edit', params: { kind: 'setCells', cells: [[0, 0]], param: 'weight', value: 'x' } },
      { kind: 'command', type: 'edit', params: { kind: 'setCells', cells: [[0, 0]], param: 'lambda', value: 1 } },
      { kind: 'command', type: 'edit', params: { kind: 'rm -rf' } },
      { kind: 'command', type: 'nope', params: {} },
      { kind: 'request', id: 1, type: 'runMerge', params: { force: 'yes' } },
      'not an object',
    ];
    for (const m of bad) {
      const r = await dispatch(fx.file, m);
      assert.equal(r.ok, false, `refused: ${JSON.stringify(m)}`);
    }
    // Valid in shape, impossible in content: the edit is refused with a reason (no such cell, out of range).
    const far = await dispatch(fx.file, { kind: 'command', type: 'edit', params: { kind: 'include', cells: [[9, 0]], included: false } });
    assert.match(far.reason ?? '', /no cell/);
    const range = await dispatch(fx.file, { kind: 'command', type: 'edit', params: { kind: 'setCells', cells: [[0, 0]], param: 'density', value: 2 } });
    assert.match(range.reason ?? '', /density must be ≤ 1/);
    assert.equal(fs.readFileSync(fx.file, 'utf8'), before, 'the YAML is untouched');
    assert.equal((await panel(fx.file))!.invalidMessages, bad.length);
  });

  it('excluding a layer in the grid writes a weight filter into the YAML, keeps its comments, and Undo reverts it', async () => {
    const r = await dispatch(fx.file, { kind: 'command', type: 'edit', params: { kind: 'include', cells: [[0, 1]], included: false } });
    assert.equal(r.ok, true, r.reason);
    const text = fs.readFileSync(fx.file, 'utf8');
    assert.match(text, /weight: \[ \{ filter: layers\.1\., value: 0 \}, \{ value: 1 \} \]/);
    assert.match(text, /# task A/);
    assert.match(text, /# Two fine-tunes of one base/);
    const s = (await panel(fx.file))!.snapshot;
    assert.equal(s.cells[0][1].weight, 0);
    assert.equal(s.cells[0][1].overrideWeight, 0);
    assert.equal(s.cells[0][0].weight, 1);
    assert.equal(s.cells[1][1].weight, 1, 'the other experts keep the layer');
    // The edit went through a WorkspaceEdit: Undo in the editor takes it back (and the panel follows).
    const editor = await vscode.window.showTextDocument(vscode.Uri.file(fx.file), { preview: false });
    await vscode.commands.executeCommand('undo');
    assert.doesNotMatch(editor.document.getText(), /filter: layers\.1\./);
    await until('the panel to follow the undo', async () => ((await panel(fx.file))!.snapshot.cells[0][1].weight === 1 ? true : undefined), 10_000);
    await vscode.commands.executeCommand('redo');
    await editor.document.save();
    await until('the panel to follow the redo', async () => ((await panel(fx.file))!.snapshot.cells[0][1].weight === 0 ? true : undefined), 10_000);
  });

  it('editing the YAML updates the panel; a broken YAML shows diagnostics over the last good grid', async () => {
    const doc = await vscode.workspace.openTextDocument(fx.file);
    const edit = async (from: RegExp, to: string) => {
      const text = doc.getText();
      const m = from.exec(text);
      assert.ok(m, `${from} in the YAML`);
      const we = new vscode.WorkspaceEdit();
      we.replace(doc.uri, new vscode.Range(doc.positionAt(m.index), doc.positionAt(m.index + m[0].length)), to);
      assert.ok(await vscode.workspace.applyEdit(we));
    };
    await edit(/lambda: 1\.0/, 'lambda: 0.5');
    await until('lambda 0.5 in the panel', async () => ((await panel(fx.file))!.snapshot.method?.params.find((p) => p.name === 'lambda')?.value === 0.5 ? true : undefined), 10_000);
    await edit(/merge_method: ties/, 'merge_method: no_such_method');
    const broken = await until('diagnostics in the panel', async () => {
      const s = (await panel(fx.file))!.snapshot;
      return s.diagnostics.some((d) => d.severity === 'error') ? s : undefined;
    }, 10_000);
    assert.equal(broken.stale, true);
    assert.equal(broken.rows.length, 3, 'the last good grid stays');
    assert.match(broken.diagnostics.find((d) => d.severity === 'error')!.message, /no_such_method/);
    const refused = await dispatch(fx.file, { kind: 'command', type: 'edit', params: { kind: 'include', cells: [[1, 0]], included: false } });
    assert.equal(refused.ok, false, 'no edits over a broken YAML');
    await edit(/merge_method: no_such_method/, 'merge_method: ties');
    await until('the panel to recover', async () => ((await panel(fx.file))!.snapshot.stale === false ? true : undefined), 10_000);
    await doc.save();
  });

  it('the saliency job fills the grid from the statistics; the expert without statistics says so', async () => {
    const s = await until('saliency', async () => {
      const p = (await panel(fx.file))!.snapshot;
      return p.saliency.status === 'done' || p.saliency.status === 'error' ? p : undefined;
    }, 120_000);
    assert.equal(s.saliency.status, 'done', s.saliency.message ?? '');
    for (const r of [0, 1]) assert.ok(s.cells[r].every((c) => c.saliency !== null && c.saliency > 0), `row ${r} has saliency in every layer`);
    assert.ok(s.cells[2].every((c) => c.saliency === null));
    assert.match(s.rows[2].noStatistics ?? '', /not a Basin checkpoint/);
  });

  it('a preview job returns per-layer kept fractions and sign conflicts', async () => {
    const t0 = Date.now();
    const r = await dispatch(fx.file, { kind: 'request', id: 7, type: 'preview', params: {} });
    assert.equal(r.ok, true, r.reason);
    const p = r.result as MergePreviewState;
    console.log(`      preview answered in ${Date.now() - t0} ms (${p.sample?.tensors} tensors × ${p.sample?.rowsPerTensor} rows)`);
    assert.equal(p.status, 'done', p.message ?? '');
    assert.deepEqual(p.layers.map((l) => l.key), ['L0', 'L1', 'L2', 'L3']);
    for (const l of p.layers) {
      assert.equal(l.kept.length, 3);
      assert.ok(l.signConflict >= 0 && l.signConflict <= 1);
    }
    // The two runs keep their density (0.5, top-k per tensor); the bare expert keeps the default, everything.
    const [a, b, bare] = p.layers[0].kept;
    assert.ok(a !== null && b !== null && Math.abs(a - 0.5) < 0.05 && Math.abs(b - 0.5) < 0.05, JSON.stringify(p.layers[0].kept));
    assert.equal(bare, 1);
  });

  it('live preview: an edit re-runs the preview, which follows the YAML', async () => {
    assert.equal((await dispatch(fx.file, { kind: 'command', type: 'livePreview', params: { on: true } })).ok, true);
    await until('the first live preview', async () => ((await panel(fx.file))!.snapshot.preview.status === 'done' ? true : undefined), 30_000);
    const r = await dispatch(fx.file, { kind: 'command', type: 'edit', params: { kind: 'include', cells: [[1, 3]], included: false } });
    assert.equal(r.ok, true, r.reason);
    const p = await until('a preview with expert 1 excluded from layer 3', async () => {
      const s = (await panel(fx.file))!.snapshot;
      const l3 = s.preview.layers.find((l) => l.key === 'L3');
      return s.preview.status === 'done' && l3?.kept[1] === 0 ? s.preview : undefined;
    }, 30_000);
    assert.ok(p.layers.find((l) => l.key === 'L3')!.kept[0]! > 0, 'the other expert still contributes');
    await dispatch(fx.file, { kind: 'command', type: 'livePreview', params: { on: false } });
    await dispatch(fx.file, { kind: 'command', type: 'edit', params: { kind: 'include', cells: [[1, 3]], included: true } });
  });

  it('Run Merge writes the merged model and the result table (experts with their validation metrics)', async () => {
    const r = await dispatch(fx.file, { kind: 'request', id: 8, type: 'runMerge', params: { force: true } });
    assert.equal(r.ok, true, r.reason);
    const job = r.result as MergeJobState;
    assert.equal(job.status, 'completed', job.message ?? '');
    const s = (await panel(fx.file))!.snapshot;
    assert.ok(s.result);
    assert.ok(fs.existsSync(s.result.output), s.result.output);
    assert.equal(s.result.tensors, 8);
    assert.deepEqual(s.result.rows.map((x) => x.role), ['merged', 'base', 'expert', 'expert', 'expert']);
    assert.ok(s.result.metricKeys.includes('accuracy'));
    assert.ok(s.result.rows[2].metrics?.accuracy !== undefined);
    assert.match(s.result.evaluateNote ?? '', /^Evaluate scores the merged model/);
    assert.match(s.result.rows[0].note ?? '', /not evaluated yet/);
  });

  it('Evaluate scores the merged model, the base and the experts on each Basin expert\'s task', async () => {
    const r = await dispatch(fx.file, { kind: 'request', id: 10, type: 'evaluate', params: {} });
    assert.equal(r.ok, true, r.reason);
    const res = r.result as { started: boolean; message: string };
    assert.equal(res.started, true);
    // merged, base, two Basin experts and the bare file; tasks: the two experts that are runs.
    assert.match(res.message, /^evaluated 5 models on 2 tasks \(validation accuracy\)$/);
    const s = (await panel(fx.file))!.snapshot.result!;
    assert.equal(s.evaluateNote, null);
    assert.equal(s.metricKeys.length, 3, s.metricKeys.join(', '));
    assert.match(s.metricKeys[0], /^acc · task-a-/);
    assert.match(s.metricKeys[1], /^acc · task-b-/);
    assert.equal(s.metricKeys[2], 'acc · mean');
    for (const row of s.rows) {
      const m = row.metrics ?? {};
      assert.equal(Object.keys(m).length, 3, `${row.label}: ${JSON.stringify(m)}`);
      assert.ok(Object.values(m).every((v) => v >= 0 && v <= 1), `${row.label}: ${JSON.stringify(m)}`);
      assert.equal(row.note, null);
    }
    // Expert a on its own task: what its run recorded at its last evaluation.
    const ownRun = JSON.parse(fs.readFileSync(path.join(fx.a, 'run.json'), 'utf8')) as { lastMetrics: { val_accuracy: number } };
    const a = s.rows[2].metrics!;
    assert.ok(Math.abs(a[s.metricKeys[0]] - ownRun.lastMetrics.val_accuracy) < 1e-6, `${a[s.metricKeys[0]]} vs ${ownRun.lastMetrics.val_accuracy}`);
  });

  it('runs no merge job in an untrusted workspace (trust predicate stubbed)', async () => {
    const started: string[] = [];
    const sub = api.jobs.onDidStart((j) => started.push(j.kind));
    const real = api.jobs.isTrusted;
    api.jobs.isTrusted = () => false;
    try {
      const r = await dispatch(fx.file, { kind: 'request', id: 9, type: 'runMerge', params: { force: true } });
      assert.equal((r.result as MergeJobState).status, 'failed');
      assert.match((r.result as MergeJobState).message ?? '', /untrusted/);
      assert.equal(await vscode.commands.executeCommand('basin.runMerge', vscode.Uri.file(fx.file)), undefined);
    } finally {
      api.jobs.isTrusted = real;
      sub.dispose();
    }
    assert.deepEqual(started, []);
  });

  it('New Merge writes a config for given experts and opens it in the panel', async () => {
    const file = path.join(scratch, 'made.merge.yaml');
    const out = await vscode.commands.executeCommand<string>('basin.newMerge', { experts: [fx.a, fx.b], base: fx.base, file });
    assert.equal(out, file);
    const text = fs.readFileSync(file, 'utf8');
    assert.match(text, /merge_method: ties/);
    assert.match(text, new RegExp(`base_model: "\\./runs/${path.basename(fx.base)}"`));
    const s = await until('the new panel', async () => {
      const p = await panel(file);
      return p?.snapshot.rows.length ? p : undefined;
    }, 30_000);
    assert.equal(s.snapshot.rows.length, 2);
    assert.deepEqual(s.snapshot.diagnostics.filter((d) => d.severity === 'error'), []);
  });

  it("slerp: the grid's weight is t (a layer excluded writes t: 0 for it); model_stock's cells show saliency only", async () => {
    const file = path.join(scratch, 'two.merge.yaml');
    const out = await vscode.commands.executeCommand<string>('basin.newMerge', { experts: [fx.a], base: fx.base, file });
    assert.equal(out, file);
    const ready = async (method: string) =>
      until(`the panel on ${method}`, async () => {
        const p = await panel(file);
        return p?.snapshot.method?.name === method && !p.snapshot.stale ? p.snapshot : undefined;
      }, 30_000);
    await ready('ties');
    let r = await dispatch(file, { kind: 'command', type: 'edit', params: { kind: 'setMethod', method: 'slerp' } });
    assert.equal(r.ok, true, r.reason);
    let snap = await ready('slerp');
    assert.deepEqual(snap.cellParams, ['weight']);
    assert.equal(snap.weightParam, 't');
    assert.equal(snap.rows.length, 1);
    assert.ok(snap.cells[0].every((c) => c.weight === 0.5), 'the default t');
    r = await dispatch(file, { kind: 'command', type: 'edit', params: { kind: 'include', cells: [[0, 2]], included: false } });
    assert.equal(r.ok, true, r.reason);
    assert.match(fs.readFileSync(file, 'utf8'), /t: \[ \{ filter: layers\.2\., value: 0 \} \]/);
    snap = await until('the panel to read t back', async () => {
      const p = await panel(file);
      return p?.snapshot.cells[0]?.[2]?.weight === 0 ? p.snapshot : undefined;
    }, 10_000);
    assert.equal(snap.cells[0][1].weight, 0.5);
    r = await dispatch(file, { kind: 'command', type: 'edit', params: { kind: 'setCells', cells: [[0, 1]], param: 'weight', value: 2 } });
    assert.match(r.reason ?? '', /t must be ≤ 1/);
    // model_stock (two experts at least) weighs the models itself: no cell parameter, an include is refused with the reason.
    const stock = path.join(scratch, 'stock.merge.yaml');
    assert.equal(await vscode.commands.executeCommand<string>('basin.newMerge', { experts: [fx.a, fx.b], base: fx.base, file: stock }), stock);
    await until('the second panel', async () => ((await panel(stock))?.snapshot.rows.length ? true : undefined), 30_000);
    r = await dispatch(stock, { kind: 'command', type: 'edit', params: { kind: 'setMethod', method: 'model_stock' } });
    assert.equal(r.ok, true, r.reason);
    snap = await until('the panel on model_stock', async () => {
      const p = await panel(stock);
      return p?.snapshot.method?.name === 'model_stock' && !p.snapshot.stale && p.snapshot.rows.length === 2 ? p.snapshot : undefined;
    }, 30_000);
    assert.deepEqual(snap.cellParams, []);
    assert.equal(snap.weightParam, null);
    r = await dispatch(stock, { kind: 'command', type: 'edit', params: { kind: 'include', cells: [[0, 0]], included: false } });
    assert.match(r.reason ?? '', /weighs the models itself/);
  });
});
