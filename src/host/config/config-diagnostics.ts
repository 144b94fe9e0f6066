// Problems in training configs, as you type: the SAME validator as `basin train` (validateConfigText in
// src/files/config/load.ts: YAML/JSON syntax, the JSON Schema through Ajv, cross-field checks), published at
// the field's line and column with the field path in the message, source "basin". Runs on open and on change
// (debounced), clears on close.
//
// The validator (yaml + ajv + the schema, ~540 KiB) is loaded on the first config seen, so activation stays cheap:
// built, it is a bundle of its own (dist/config-validator.js, scripts/build.mjs) that the extension bundle does not
// contain, so activation does not even compile it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { Ctx } from '../ctx';
import type { ConfigDiagnostic } from '../../files/config/load';
import { CONFIG_FILE_RE } from '../../files/config/config-files';

export const DIAGNOSTIC_SOURCE = 'basin';
const DEBOUNCE_MS = 200;
const CONFIG_RE = CONFIG_FILE_RE;

/** Whether a document is a training config (on disk or not: an unsaved config is checked too). */
export function isConfigDocument(doc: vscode.TextDocument): boolean {
  return doc.uri.scheme !== 'git' && doc.uri.scheme !== 'output' && CONFIG_RE.test(doc.uri.path);
}

type Validate = (text: string, fileName: string) => ConfigDiagnostic[];
let validatorPromise: Promise<Validate> | undefined;

type LoadModule = typeof import('../../files/config/load');

function loadValidator(): Promise<Validate> {
  validatorPromise ??= (async () => {
    // dist/extension.js → dist/config-validator.js. (Non-literal specifiers: esbuild must not bundle either.)
    const bundled = path.join(__dirname, 'config-validator.js');
    if (fs.existsSync(bundled)) return (require(bundled) as LoadModule).validateConfigText;
    // Run from source (tsx): the module itself.
    const source = '../../files/config/load.js';
    return ((await import(source)) as LoadModule).validateConfigText;
  })();
  return validatorPromise;
}

/** ConfigDiagnostic (1-based, end column exclusive) → vscode.Diagnostic (0-based). */
export function toDiagnostic(d: ConfigDiagnostic): vscode.Diagnostic {
  const range = new vscode.Range(Math.max(0, d.line - 1), Math.max(0, d.column - 1), Math.max(0, d.endLine - 1), Math.max(0, d.endColumn - 1));
  const diag = new vscode.Diagnostic(
    range,
    d.field ? `${d.field}: ${d.message}` : d.message,
    d.severity === 'warning' ? vscode.DiagnosticSeverity.Warning : vscode.DiagnosticSeverity.Error,
  );
  diag.source = DIAGNOSTIC_SOURCE;
  if (d.field) diag.code = d.field;
  return diag;
}

export class ConfigDiagnostics implements vscode.Disposable {
  readonly collection = vscode.languages.createDiagnosticCollection(DIAGNOSTIC_SOURCE);
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private readonly subs: vscode.Disposable[] = [];

  constructor(private readonly log?: vscode.LogOutputChannel) {
    this.subs.push(
      vscode.workspace.onDidOpenTextDocument((d) => this.validateSoon(d, 0)),
      vscode.workspace.onDidChangeTextDocument((e) => {
        if (e.contentChanges.length) this.validateSoon(e.document, DEBOUNCE_MS);
      }),
      vscode.workspace.onDidCloseTextDocument((d) => this.clear(d.uri)),
    );
    for (const d of vscode.workspace.textDocuments) this.validateSoon(d, 0);
  }

  private validateSoon(doc: vscode.TextDocument, delay: number): void {
    if (!isConfigDocument(doc)) return;
    const key = doc.uri.toString();
    clearTimeout(this.timers.get(key));
    this.timers.set(
      key,
      setTimeout(() => {
        this.timers.delete(key);
        void this.validate(doc);
      }, delay),
    );
  }

  /** Validates a document now and publishes its diagnostics. */
  async validate(doc: vscode.TextDocument): Promise<vscode.Diagnostic[]> {
    if (!isConfigDocument(doc) || doc.isClosed) return [];
    const version = doc.version;
    let validate: Validate;
    try {
      validate = await loadValidator();
    } catch (e) {
      this.log?.error(`Config diagnostics: cannot load the validator: ${(e as Error).message}`);
      return [];
    }
    if (doc.isClosed || doc.version !== version) return []; // a newer text is on its way
    const t0 = Date.now();
    const diags = validate(doc.getText(), doc.fileName).map(toDiagnostic);
    this.log?.trace(`Config diagnostics: ${doc.uri.fsPath}: ${diags.length} problem(s) in ${Date.now() - t0} ms`);
    this.collection.set(doc.uri, diags);
    return diags;
  }

  private clear(uri: vscode.Uri): void {
    const key = uri.toString();
    clearTimeout(this.timers.get(key));
    this.timers.delete(key);
    this.collection.delete(uri);
  }

  dispose(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    for (const s of this.subs.splice(0)) s.dispose();
    this.collection.dispose();
  }
}

export function registerConfigDiagnostics(ctx: Ctx): ConfigDiagnostics {
  const d = new ConfigDiagnostics(ctx.log);
  ctx.push(d);
  return d;
}
