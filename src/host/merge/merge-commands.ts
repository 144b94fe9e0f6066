// Merge commands and code lenses:
//   basin.newMerge(arg?)        Basin: New Merge — pick the experts (run folders, checkpoints or files) and a base,
//                               write `<name>.merge.yaml` next to them, open it in the merge panel. `arg` may preset
//                               { experts: string[], base?: string | null, file?: string, method?: string } (tests,
//                               the Runs view) — with `file` nothing is asked.
//   basin.mergeSelected(a, all) the Runs view's "Merge Selected…": the selected runs/checkpoints are the experts
//   basin.runMerge(uri?)        ▶ Merge: runs a merge config as a job (progress, Cancel); offers to overwrite an
//                               existing output
// Code lenses on *.merge.yaml (first line): ▶ Merge, Open in Merge Panel.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { commonLineageBase } from '../../files/merge/lineage-base';
import * as vscode from 'vscode';
import type { Ctx } from '../ctx';
import { isObject } from '../../protocol/panels/panel';
import type { MergePanels } from '../panels/merge-panel';

export const MERGE_SELECTOR: vscode.DocumentSelector = [{ scheme: 'file', pattern: '**/*.merge.{yaml,yml}' }];

/** A Runs-view element (run or checkpoint), a Uri or a path → the model path a merge config names. */
export function modelPathOf(arg: unknown): string | undefined {
  if (typeof arg === 'string') return path.resolve(arg);
  if (arg instanceof vscode.Uri) return arg.scheme === 'file' ? arg.fsPath : undefined;
  if (!isObject(arg)) return undefined;
  const cp = arg.checkpoint;
  if (arg.kind === 'checkpoint' && isObject(cp) && typeof cp.file === 'string') return cp.file;
  if (typeof arg.runDir === 'string') return arg.runDir;
  return undefined;
}

/** A path as a merge config writes it: relative to the config's folder, `./`-prefixed. */
function rel(from: string, p: string): string {
  const r = path.relative(from, p).split(path.sep).join('/');
  return r.startsWith('.') ? r : `./${r}`;
}

/** The text of a new merge config. */
export function newMergeYaml(dir: string, experts: string[], base: string | null, method: string): string {
  const lines = [
    `# A ${method} merge made with Basin: New Merge. The merge panel edits this file (Basin: Open in Merge Panel);`,
    '# `basin merge <this file>` runs it from a terminal. Paths are relative to this file.',
    `merge_method: ${method}`,
  ];
  if (base) lines.push(`base_model: ${JSON.stringify(rel(dir, base))}`);
  lines.push('models:');
  for (const e of experts) lines.push(`  - model: ${JSON.stringify(rel(dir, e))}`, '    parameters: { weight: 1 }');
  lines.push(`basin:`, `  output: ./merged/${'{name}'}`);
  return lines.join('\n') + '\n';
}

/** The deepest folder holding every path (the experts' common parent). */
function commonDir(paths: string[]): string {
  const parts = paths.map((p) => path.dirname(path.resolve(p)).split(path.sep));
  const out: string[] = [];
  for (let i = 0; ; i++) {
    const s = parts[0][i];
    if (s === undefined || !parts.every((p) => p[i] === s)) break;
    out.push(s);
  }
  return out.join(path.sep) || path.sep;
}

async function pickModels(ctx: Ctx, title: string, many: boolean, exclude: string[] = []): Promise<string[] | undefined> {
  await ctx.runs.ready();
  type Item = vscode.QuickPickItem & { path?: string; browse?: boolean; none?: boolean };
  const items: Item[] = ctx.runs
    .list()
    .filter((r) => r.checkpoints.some((c) => c.exists) && !exclude.includes(r.dir))
    .map((r) => ({ label: r.name, description: r.record?.status ?? '', detail: r.dir, path: r.dir }));
  if (!many) items.unshift({ label: 'No base model', description: 'methods without task vectors (linear, multislerp…)', none: true });
  items.push({ label: '$(folder-opened) Browse for model files…', browse: true });
  const picked = many
    ? await vscode.window.showQuickPick(items, { title, canPickMany: true, matchOnDetail: true })
    : await vscode.window.showQuickPick(items, { title, matchOnDetail: true }).then((x) => (x ? [x] : undefined));
  if (!picked || picked.length === 0) return undefined;
  const out = picked.filter((p) => p.path).map((p) => p.path!);
  if (picked.some((p) => p.none)) return [];
  if (picked.some((p) => p.browse)) {
    const uris = await vscode.window.showOpenDialog({ canSelectMany: many, canSelectFolders: true, canSelectFiles: true, title, filters: { Safetensors: ['safetensors', 'json'] } });
    if (!uris) return out.length ? out : undefined;
    out.push(...uris.map((u) => u.fsPath));
  }
  return out;
}

/** The base the experts were fine-tuned from, when their run.json lineage agrees on one (as the merge config does). */
function lineageBase(experts: string[]): string | null {
  return commonLineageBase(experts.map((e) => ({ path: e, kind: fs.existsSync(path.join(e, 'run.json')) ? 'run' : 'checkpoint' })));
}

export interface NewMergeArgs {
  experts?: string[];
  base?: string | null;
  /** Where to write the config (no questions asked when given with experts). */
  file?: string;
  method?: string;
}

export async function newMerge(ctx: Ctx, panels: MergePanels, arg?: unknown): Promise<string | undefined> {
  const a: NewMergeArgs = isObject(arg) ? (arg as NewMergeArgs) : {};
  const experts = a.experts?.map((p) => path.resolve(p)) ?? (await pickModels(ctx, 'Basin: New Merge — the experts (two or more)', true));
  if (!experts || experts.length === 0) return undefined;
  let base: string | null;
  if (a.base !== undefined) base = a.base === null ? null : path.resolve(a.base);
  else {
    const guess = lineageBase(experts);
    const picked = guess && a.file ? [guess] : await pickModels(ctx, `Basin: New Merge — the base model${guess ? ` (suggested: ${path.basename(guess)})` : ''}`, false, experts);
    if (!picked) return undefined;
    base = picked[0] ?? null;
  }
  const method = a.method ?? (base ? 'ties' : 'linear');
  let file = a.file ? path.resolve(a.file) : undefined;
  if (!file) {
    const dir = commonDir([...experts, ...(base ? [base] : [])]);
    const name = await vscode.window.showInputBox({
      title: 'Basin: New Merge — name',
      prompt: `Written as <name>.merge.yaml in ${dir}`,
      value: 'merged',
      validateInput: (v) => (/^[\w.-]+$/.test(v) ? undefined : 'letters, digits, ".", "_" and "-" only'),
    });
    if (!name) return undefined;
    file = path.join(dir, `${name}.merge.yaml`);
  }
  if (fs.existsSync(file)) {
    if (a.file) throw new Error(`${file} already exists`);
    const ok = await vscode.window.showWarningMessage(`${path.basename(file)} exists. Replace it?`, { modal: true }, 'Replace');
    if (ok !== 'Replace') return undefined;
  }
  const name = path.basename(file).replace(/\.merge\.ya?ml$/i, '');
  fs.writeFileSync(file, newMergeYaml(path.dirname(file), experts, base, method).replace('{name}', name));
  await panels.open(file);
  return file;
}

/** ▶ Merge: the config as a merge job; an existing output is replaced only when the user says so. */
export async function runMergeCommand(ctx: Ctx, arg?: unknown): Promise<unknown> {
  const file =
    typeof arg === 'string' ? path.resolve(arg) : arg instanceof vscode.Uri ? arg.fsPath : isObject(arg) && typeof arg.configFile === 'string' ? arg.configFile : vscode.window.activeTextEditor?.document.fileName;
  if (!file || !/\.merge\.ya?ml$/i.test(file)) {
    void vscode.window.showErrorMessage('Basin: run ▶ Merge on a merge config (*.merge.yaml).');
    return undefined;
  }
  const doc = vscode.workspace.textDocuments.find((d) => d.uri.fsPath === file);
  if (doc?.isDirty) await doc.save();
  const force = isObject(arg) && arg.force === true;
  const end = await ctx.jobs.run('merge', { configFile: file, ...(force ? { force } : {}) });
  if (end?.status === 'failed' && /already exists/.test(end.error?.message ?? '') && !force) {
    const choice = await vscode.window.showWarningMessage(`Basin: ${end.error!.message}`, 'Overwrite');
    if (choice === 'Overwrite') return runMergeCommand(ctx, { configFile: file, force: true });
  }
  return end;
}

export class MergeLensProvider implements vscode.CodeLensProvider {
  provideCodeLenses(document: vscode.TextDocument): vscode.CodeLens[] {
    let line = 0;
    const n = Math.min(document.lineCount, 2000);
    for (let i = 0; i < n; i++) if (/^merge_method\s*:/.test(document.lineAt(i).text)) line = i;
    const range = new vscode.Range(line, 0, line, 0);
    return [
      new vscode.CodeLens(range, { title: '▶ Merge', tooltip: 'Run this merge (Basin: Run Merge)', command: 'basin.runMerge', arguments: [document.uri] }),
      new vscode.CodeLens(range, { title: 'Open in Merge Panel', tooltip: 'Edit this merge on a tasks × layers grid', command: 'basin.openMergePanel', arguments: [document.uri] }),
    ];
  }
}

/** Registers the merge commands and lenses (the panel's own commands: registerMergePanel). */
export function registerMergeCommands(ctx: Ctx, panels: MergePanels): void {
  ctx.registerCommand('newMerge', () => (arg?: unknown) => newMerge(ctx, panels, arg));
  ctx.registerCommand('runMerge', () => (arg?: unknown) => runMergeCommand(ctx, arg));
  ctx.registerCommand('mergeSelected', () => (clicked: unknown, selected?: unknown[]) => {
    const all = (Array.isArray(selected) && selected.length ? selected : [clicked]).map(modelPathOf).filter((p): p is string => !!p);
    return newMerge(ctx, panels, all.length ? { experts: [...new Set(all)] } : undefined);
  });
  ctx.push(vscode.languages.registerCodeLensProvider(MERGE_SELECTOR, new MergeLensProvider()));
}
