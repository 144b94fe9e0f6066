// Basin's own completion and hover in `*.basin.yaml` configs, from the config's JSON Schema (src/files/config/
// schema.ts: generated from the registries, the same schema the validator uses), and a quick fix for the
// validator's "unknown field "batchsize" (did you mean "batchSize"?)" in YAML and JSON configs.
//
// Why our own: VS Code has no YAML language support built in, so without an extension such as Red Hat's YAML
// (which reads package.json's yamlValidation) a YAML config had neither. JSON configs (`*.basin.json`) get
// completion and hover from VS Code's built-in JSON language features through package.json's jsonValidation,
// so Basin adds nothing there (it would list every item twice). When redhat.vscode-yaml is installed, Basin's YAML
// completion and hover step aside for the same reason; the quick fix stays (that extension has none for this).
import * as vscode from 'vscode';
import type { Ctx } from '../ctx';
import { trainConfigSchema } from '../../files/config/schema';
import { DIAGNOSTIC_SOURCE } from './config-diagnostics';
import { yamlContext, yamlKeyAt } from './yaml-context';
import { objectProps, propMarkdown, schemaAt, typeChoices, typeLabel, yamlValue, type Schema } from './schema-nav';
import { CONFIG_FILE_GLOB, YAML_CONFIG_FILE_GLOB, YAML_CONFIG_FILE_RE } from '../../files/config/config-files';

export const YAML_EXTENSION_ID = 'redhat.vscode-yaml';
const YAML_SELECTOR: vscode.DocumentSelector = [{ scheme: 'file', pattern: YAML_CONFIG_FILE_GLOB }, { scheme: 'untitled', language: 'yaml' }];
const CONFIG_SELECTOR: vscode.DocumentSelector = [{ scheme: 'file', pattern: CONFIG_FILE_GLOB }];
const SCHEMA = trainConfigSchema as unknown as Schema;
const UNKNOWN_FIELD = /unknown field "([^"]+)" \(did you mean "([^"]+)"\?\)/;

/** Whether another extension already gives YAML configs schema completion and hover (see the header). */
function yamlExtensionPresent(): boolean {
  return vscode.extensions.getExtension(YAML_EXTENSION_ID) !== undefined;
}

function isBasinYaml(doc: vscode.TextDocument): boolean {
  return YAML_CONFIG_FILE_RE.test(doc.uri.path) || (doc.uri.scheme === 'untitled' && doc.languageId === 'yaml' && /^\s*(model|train|data)\s*:/m.test(doc.getText()));
}

function lines(doc: vscode.TextDocument): string[] {
  return doc.getText().split(/\r?\n/);
}

export class ConfigCompletionProvider implements vscode.CompletionItemProvider {
  provideCompletionItems(doc: vscode.TextDocument, pos: vscode.Position, _token: vscode.CancellationToken, cc: vscode.CompletionContext): vscode.CompletionItem[] | undefined {
    if (!isBasinYaml(doc) || yamlExtensionPresent()) return undefined;
    const ctx = yamlContext(lines(doc), pos.line, pos.character);
    if (!ctx) return undefined;
    // A space typed anywhere but right after `key:` asks for nothing.
    if (cc.triggerKind === vscode.CompletionTriggerKind.TriggerCharacter && cc.triggerCharacter === ' ' && ctx.at !== 'value') return undefined;
    const mapping = schemaAt(SCHEMA, ctx.path, () => undefined);
    if (!mapping) return undefined;
    const range = new vscode.Range(pos.line, ctx.prefixStart, pos.line, pos.character);
    const props = objectProps(mapping, ctx.siblings.type);
    if (ctx.at === 'key') {
      const items: vscode.CompletionItem[] = [];
      for (const p of props) {
        if (p.name === '$schema' || (p.name in ctx.siblings && p.name !== ctx.prefix)) continue;
        const item = new vscode.CompletionItem({ label: p.name, description: typeLabel(p.schema) }, vscode.CompletionItemKind.Property);
        item.documentation = new vscode.MarkdownString(propMarkdown(p.name, p.schema, p.onlyFor));
        item.detail = p.schema.default !== undefined ? `default ${yamlValue(p.schema.default)}` : p.required ? 'required' : undefined;
        const section = p.schema.type === 'object' || Array.isArray(p.schema.oneOf);
        // `type` first (it decides the rest), then required keys, then the others in schema order.
        item.sortText = `${p.name === 'type' ? 0 : p.required ? 1 : 2}${String(props.indexOf(p)).padStart(3, '0')}`;
        item.insertText = section ? new vscode.SnippetString(`${p.name}:\n  $0`) : `${p.name}: `;
        item.range = range;
        if (!section) item.command = { command: 'editor.action.triggerSuggest', title: 'values' };
        items.push(item);
      }
      return items;
    }
    const prop = props.find((p) => p.name === ctx.key);
    if (!prop) return undefined;
    return valueItems(ctx.key === 'type' && Array.isArray(mapping.oneOf) ? mapping : prop.schema, ctx.key === 'type', range);
  }
}

function valueItems(s: Schema, isType: boolean, range: vscode.Range): vscode.CompletionItem[] {
  const items: vscode.CompletionItem[] = [];
  const add = (value: string, doc: string, preselect = false) => {
    const item = new vscode.CompletionItem(value, vscode.CompletionItemKind.Value);
    item.documentation = new vscode.MarkdownString(doc);
    item.range = range;
    item.preselect = preselect;
    items.push(item);
  };
  if (isType) {
    const dflt = (s.default as { type?: string } | undefined)?.type;
    for (const c of typeChoices(s)) {
      const item = new vscode.CompletionItem({ label: c.name, description: c.name === dflt ? 'default' : undefined }, vscode.CompletionItemKind.EnumMember);
      item.documentation = new vscode.MarkdownString(`**${c.name}** — ${c.description}`);
      item.detail = c.description;
      item.range = range;
      item.preselect = c.name === dflt;
      items.push(item);
    }
    return items;
  }
  if (Array.isArray(s.enum)) for (const v of s.enum) add(yamlValue(v), s.description ?? '', v === s.default);
  else if (s.type === 'boolean') for (const v of [true, false]) add(String(v), s.description ?? '', v === s.default);
  else if (s.default !== undefined) add(yamlValue(s.default), `Default. ${s.description ?? ''}`, true);
  return items;
}

export class ConfigHoverProvider implements vscode.HoverProvider {
  provideHover(doc: vscode.TextDocument, pos: vscode.Position): vscode.Hover | undefined {
    if (!isBasinYaml(doc) || yamlExtensionPresent()) return undefined;
    const ls = lines(doc);
    const k = yamlKeyAt(ls, pos.line, pos.character);
    if (k) {
      const mapping = schemaAt(SCHEMA, k.path, () => undefined);
      const prop = objectProps(mapping, k.siblings.type).find((p) => p.name === k.key);
      if (!prop) return undefined;
      let md = propMarkdown([...k.path, k.key].join('.'), prop.schema, prop.onlyFor);
      // On a section's `type`, say what the chosen entry is too.
      if (k.key === 'type' && k.value) {
        const chosen = typeChoices(mapping).find((c) => c.name === k.value);
        if (chosen) md += `\n\n\`${chosen.name}\`: ${chosen.description}`;
      }
      return new vscode.Hover(new vscode.MarkdownString(md), new vscode.Range(pos.line, k.start, pos.line, k.end));
    }
    // A `type` value: the entry it names.
    const word = doc.getWordRangeAtPosition(pos, /[\w.-]+/);
    if (!word) return undefined;
    const ctx = yamlContext(ls, pos.line, word.start.character);
    if (ctx?.at !== 'value' || ctx.key !== 'type') return undefined;
    const chosen = typeChoices(schemaAt(SCHEMA, ctx.path, () => undefined)).find((c) => c.name === doc.getText(word));
    return chosen ? new vscode.Hover(new vscode.MarkdownString(`**${[...ctx.path, 'type'].join('.')}: ${chosen.name}** — ${chosen.description}`), word) : undefined;
  }
}

/** "Change "batchsize" to "batchSize"" for the validator's unknown-field diagnostics (YAML and JSON). */
export class ConfigQuickFixProvider implements vscode.CodeActionProvider {
  static readonly kinds = [vscode.CodeActionKind.QuickFix];

  provideCodeActions(doc: vscode.TextDocument, _range: vscode.Range, context: vscode.CodeActionContext): vscode.CodeAction[] {
    const out: vscode.CodeAction[] = [];
    for (const d of context.diagnostics) {
      if (d.source !== DIAGNOSTIC_SOURCE) continue;
      const m = UNKNOWN_FIELD.exec(d.message);
      if (!m) continue;
      const [, wrong, right] = m;
      // The diagnostic covers the key (quoted in JSON): replace the key's own characters within it.
      const text = doc.getText(d.range);
      const at = text.indexOf(wrong);
      if (at < 0) continue;
      const start = doc.offsetAt(d.range.start) + at;
      const fix = new vscode.CodeAction(`Change "${wrong}" to "${right}"`, vscode.CodeActionKind.QuickFix);
      fix.edit = new vscode.WorkspaceEdit();
      fix.edit.replace(doc.uri, new vscode.Range(doc.positionAt(start), doc.positionAt(start + wrong.length)), right);
      fix.diagnostics = [d];
      fix.isPreferred = true;
      out.push(fix);
    }
    return out;
  }
}

export function registerConfigAssist(ctx: Ctx): void {
  ctx.push(
    vscode.languages.registerCompletionItemProvider(YAML_SELECTOR, new ConfigCompletionProvider(), ':', ' '),
    vscode.languages.registerHoverProvider(YAML_SELECTOR, new ConfigHoverProvider()),
    vscode.languages.registerCodeActionsProvider(CONFIG_SELECTOR, new ConfigQuickFixProvider(), { providedCodeActionKinds: ConfigQuickFixProvider.kinds }),
  );
}
