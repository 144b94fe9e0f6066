// The Runs view, the config code lenses and the config diagnostics, in a real VS Code extension host.
// Writes a run folder (run.json, metrics, a checkpoint and its statistics, with the engine's pure-TS writers)
// and a few configs into the fixture workspace, and removes them afterwards.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { BasinApi } from '../../../src/extension';
import type { RunsNode } from '../../../src/host/views/runs-tree';
import { RunFolder, openRun } from '../../../src/files/run-record';
import { writeSafetensors } from '../../../src/files/safetensors';
import { SCALAR_KEYS } from '../../../src/protocol/stats';

const EXTENSION_ID = 'basin-ml.basin';

async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function label(item: vscode.TreeItem): string {
  return typeof item.label === 'string' ? item.label : (item.label?.label ?? '');
}

describe('Runs view, config lenses and diagnostics', () => {
  let api: BasinApi;
  let ws: string;
  let runsDir: string;
  let createdRunsDir = false;
  let configFile: string;
  let runDir: string;
  const scratch: string[] = [];

  const basinDiagnostics = (uri: vscode.Uri): vscode.Diagnostic[] => vscode.languages.getDiagnostics(uri).filter((d) => d.source === 'basin');
  const children = (el?: RunsNode): Promise<RunsNode[]> => api.runsView.getChildren(el) as Promise<RunsNode[]>;
  const item = (el: RunsNode): vscode.TreeItem => api.runsView.getTreeItem(el);
  const child = async (el: RunsNode, name: string): Promise<RunsNode> => {
    const found = (await children(el)).find((c) => label(item(c)) === name);
    assert.ok(found, `no child "${name}" under ${label(item(el))}`);
    return found;
  };
  const runNode = async (): Promise<RunsNode | undefined> => (await children()).find((n) => n.kind === 'run' && n.runDir === runDir);

  before(async function () {
    this.timeout(30_000);
    const ext = vscode.extensions.getExtension<BasinApi>(EXTENSION_ID);
    assert.ok(ext);
    api = await ext.activate();
    const folder = vscode.workspace.workspaceFolders?.[0];
    assert.ok(folder, 'the tests run in the fixture workspace');
    ws = folder.uri.fsPath;
    runsDir = path.join(ws, 'runs');
    createdRunsDir = !fs.existsSync(runsDir);

    configFile = path.join(ws, 'views-test.basin.yaml');
    fs.writeFileSync(configFile, 'name: views-test\nmodel:\n  type: mlp\n  inputs: 8\n  hidden: [4]\n  classes: 3\ndata:\n  type: synthetic-classification\n');
    scratch.push(configFile);

    // A finished run of that config with one checkpoint (two tensors) and statistics for one of them.
    const run = await RunFolder.create(runsDir, 'views-test', { config: { name: 'views-test' }, configPath: configFile });
    runDir = run.dir;
    await run.appendMetrics({ step: 200, loss: 1.5, lr: 0.001 });
    await writeSafetensors(run.resolve(run.checkpointPath(200)), [
      { name: 'layers.0.weight', dtype: 'F32', shape: [8, 4], data: new Float32Array(32).fill(0.5) },
      { name: 'layers.0.bias', dtype: 'F16', shape: [4], data: new Float32Array(4) },
    ]);
    const scalars = new Float32Array(SCALAR_KEYS.length);
    scalars[SCALAR_KEYS.indexOf('vMean')] = 0.0025;
    await writeSafetensors(run.resolve(run.statsPath(200)), [
      { name: 'layers.0.weight.scalars', dtype: 'F32', shape: [SCALAR_KEYS.length], data: scalars },
      { name: 'layers.0.weight.v_row', dtype: 'F32', shape: [8], data: new Float32Array(8) },
    ]);
    await run.addCheckpoint(200, { valMetric: 0.75 });
    await run.finish('completed');
  });

  after(async () => {
    await vscode.commands.executeCommand('workbench.action.closeAllEditors');
    for (const f of scratch) fs.rmSync(f, { recursive: true, force: true });
    if (runDir) fs.rmSync(runDir, { recursive: true, force: true });
    if (createdRunsDir) fs.rmSync(runsDir, { recursive: true, force: true });
  });

  it('lists the run with its status, metrics, checkpoint and tensors (shape, dtype, v mean)', async () => {
    const count = await vscode.commands.executeCommand<number>('basin.refreshRuns');
    assert.ok(count >= 1, `basin.refreshRuns found ${count} runs`);
    const run = await runNode();
    assert.ok(run, `the Runs view lists ${runDir}`);
    const ri = item(run);
    assert.equal(label(ri), path.basename(runDir), 'labelled with the folder name (run name + time)');
    assert.match(label(ri), /^views-test-\d{8}-\d{6}$/);
    assert.match(String(ri.description), /completed/);
    assert.match(String(ri.description), /loss 1\.5/);
    assert.equal((ri.iconPath as vscode.ThemeIcon).id, 'pass');
    // `finished`: a completed run offers no Resume (package.json's menu clause does not match it).
    assert.match(String(ri.contextValue), /^basinRun status-completed finished checkpoint stats$/);

    const config = await child(run, 'Config');
    assert.equal(item(config).command?.command, 'vscode.open');
    assert.equal((item(config).command?.arguments?.[0] as vscode.Uri).fsPath, configFile);
    const metrics = await child(run, 'Metrics');
    assert.ok((await children(metrics)).some((m) => m.kind === 'metric' && m.key === 'loss' && m.value === 1.5));

    const checkpoints = await child(run, 'Checkpoints');
    const step = await child(checkpoints, 'step 200');
    assert.match(String(item(step).description), /val 0\.75/);
    const tensors = await children(step);
    const desc = Object.fromEntries(tensors.map((t) => [label(item(t)), String(item(t).description)]));
    assert.deepEqual(Object.keys(desc).sort(), ['layers.0.bias', 'layers.0.weight']);
    assert.equal(desc['layers.0.weight'], '[8, 4] F32 · v̄ 0.0025');
    assert.equal(desc['layers.0.bias'], '[4] F16 · v̄ —');
    // Every element carries runDir, which the context-menu commands (resume, statistics, delete) take.
    for (const n of [run, config, checkpoints, step, ...tensors]) assert.equal(n.runDir, runDir);
  });

  it('follows the files a job writes (watchers, debounced)', async function () {
    this.timeout(20_000);
    const file = path.join(runDir, 'checkpoints', 'step-300.safetensors');
    await writeSafetensors(file, [{ name: 'layers.0.weight', dtype: 'F32', shape: [8, 4], data: new Float32Array(32) }]);
    await until('the new checkpoint in the tree', async () => {
      const run = await runNode();
      if (!run || run.kind !== 'run') return undefined;
      return run.info.checkpoints.map((c) => c.step).join(',') === '200,300' || undefined;
    });
    const run = (await runNode())!;
    const step = await child(await child(run, 'Checkpoints'), 'step 300');
    assert.match(String(item(step).description), /not in run\.json/);
  });

  it('shows Train, Resume and Statistics lenses on a *.basin.yaml, and none on other YAML', async () => {
    const uri = vscode.Uri.file(configFile);
    await vscode.window.showTextDocument(uri);
    // The run completed: no Resume (there is nothing left to train, and resuming would overwrite its metrics).
    const done = await until('code lenses of the completed run', async () => {
      const ls = await vscode.commands.executeCommand<vscode.CodeLens[]>('vscode.executeCodeLensProvider', uri);
      return ls.some((l) => l.command?.command === 'basin.openStatistics') ? ls : undefined;
    });
    assert.ok(!done.some((l) => l.command?.command === 'basin.resumeRun'), 'no Resume lens on a completed run');
    // Cancelled (for this test): Resume is offered.
    await (await openRun(runDir)).update({ status: 'cancelled' });
    await vscode.commands.executeCommand('basin.refreshRuns');
    const lenses = await until('code lenses', async () => {
      const ls = await vscode.commands.executeCommand<vscode.CodeLens[]>('vscode.executeCodeLensProvider', uri);
      return ls.filter((l) => l.command?.command.startsWith('basin.')).length >= 3 ? ls : undefined;
    });
    const byCommand = new Map(lenses.map((l) => [l.command!.command, l]));
    const train = byCommand.get('basin.trainFromConfig');
    assert.ok(train, 'a Train lens');
    assert.equal(train.command!.title, '▶ Train');
    assert.equal((train.command!.arguments?.[0] as vscode.Uri).fsPath, configFile);
    assert.equal(train.range.start.line, 1, 'on the model: line');
    const resume = byCommand.get('basin.resumeRun');
    assert.ok(resume, 'a Resume lens (the run has a checkpoint)');
    assert.equal(resume.command!.title, '↻ Resume from step 300');
    assert.equal((resume.command!.arguments?.[0] as { runDir: string }).runDir, runDir);
    const stats = byCommand.get('basin.openStatistics');
    assert.ok(stats);
    assert.equal((stats.command!.arguments?.[0] as { runDir: string }).runDir, runDir);

    const plain = path.join(ws, 'views-test-plain.yaml');
    fs.writeFileSync(plain, 'model:\n  type: mlp\n');
    scratch.push(plain);
    await vscode.window.showTextDocument(vscode.Uri.file(plain));
    const other = await vscode.commands.executeCommand<vscode.CodeLens[]>('vscode.executeCodeLensProvider', vscode.Uri.file(plain));
    assert.deepEqual(other.filter((l) => l.command?.command.startsWith('basin.')), []);
  });

  it('publishes a diagnostic at the field, and clears it when the text is fixed', async function () {
    this.timeout(20_000);
    const file = path.join(ws, 'views-test-bad.basin.yaml');
    fs.writeFileSync(file, 'name: bad\ntrain:\n  steps: 10\n  optimizer:\n    type: adamw\n    lr: -1\n');
    scratch.push(file);
    const uri = vscode.Uri.file(file);
    const editor = await vscode.window.showTextDocument(uri);
    const diags = await until('a basin diagnostic', () => {
      const d = basinDiagnostics(uri);
      return d.length ? d : undefined;
    });
    assert.equal(diags.length, 1, diags.map((d) => d.message).join('\n'));
    const d = diags[0];
    assert.equal(d.range.start.line, 5);
    assert.equal(d.range.start.character, 8);
    assert.equal(d.range.end.character, 10);
    assert.match(d.message, /^train\.optimizer\.lr: must be > 0, got -1$/);
    assert.equal(d.severity, vscode.DiagnosticSeverity.Error);
    assert.equal(d.code, 'train.optimizer.lr');

    // A wrong type elsewhere, typed in: the diagnostic moves there (debounced re-validation on change).
    await editor.edit((e) => e.replace(new vscode.Range(5, 8, 5, 10), '0.01'));
    await editor.edit((e) => e.replace(new vscode.Range(2, 9, 2, 11), 'ten'));
    const typed = await until('the type error', () => {
      const ds = basinDiagnostics(uri);
      return ds.length === 1 && ds[0].code === 'train.steps' ? ds[0] : undefined;
    });
    assert.equal(typed.range.start.line, 2);
    assert.match(typed.message, /^train\.steps: must be an integer/);

    await editor.edit((e) => e.replace(new vscode.Range(2, 9, 2, 12), '10'));
    await until('no basin diagnostics', () => basinDiagnostics(uri).length === 0 || undefined);

    // Not a config: never validated.
    const plain = path.join(ws, 'views-test-plain2.yaml');
    fs.writeFileSync(plain, 'train:\n  optimizer: { lr: -1 }\n');
    scratch.push(plain);
    await vscode.window.showTextDocument(vscode.Uri.file(plain));
    await new Promise((r) => setTimeout(r, 400));
    assert.deepEqual(basinDiagnostics(vscode.Uri.file(plain)), []);
  });

  it('refuses to delete a running run and a folder without run.json', async () => {
    // A run whose writer (this extension host process) is alive.
    const live = await RunFolder.create(runsDir, 'views-test-live', { config: {} });
    scratch.push(live.dir);
    await vscode.commands.executeCommand('basin.refreshRuns');
    assert.equal(await vscode.commands.executeCommand('basin.deleteRun', { runDir: live.dir }, { confirm: false }), false);
    assert.ok(fs.existsSync(live.dir), 'a running run is kept');
    const live2 = (await children()).find((n) => n.runDir === live.dir);
    assert.ok(live2 && item(live2).iconPath instanceof vscode.ThemeIcon && (item(live2).iconPath as vscode.ThemeIcon).id === 'sync~spin');

    const notRun = path.join(ws, 'views-test-not-a-run');
    fs.mkdirSync(notRun, { recursive: true });
    scratch.push(notRun);
    assert.equal(await vscode.commands.executeCommand('basin.deleteRun', { runDir: notRun }, { confirm: false }), false);
    assert.ok(fs.existsSync(notRun));
  });

  it('deletes a run folder (confirmation skipped with { confirm: false }) and drops it from the tree and lenses', async () => {
    const ok = await vscode.commands.executeCommand<boolean>('basin.deleteRun', { runDir }, { confirm: false });
    assert.equal(ok, true);
    assert.ok(!fs.existsSync(runDir), 'the folder is gone');
    assert.equal(await runNode(), undefined, 'the tree no longer lists it');
    const lenses = await vscode.commands.executeCommand<vscode.CodeLens[]>('vscode.executeCodeLensProvider', vscode.Uri.file(configFile));
    const cmds = lenses.map((l) => l.command?.command);
    assert.ok(cmds.includes('basin.trainFromConfig'));
    assert.ok(!cmds.includes('basin.resumeRun'), 'no Resume lens without a run');
  });
});
