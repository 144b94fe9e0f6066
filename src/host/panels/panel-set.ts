// The open panels of one kind (merge panels by config file, prune panels by checkpoint): each found by its key,
// their states for tests, a message dispatched to one of them (the test-only *Dispatch commands), a restored
// panel whose subject is gone shown as a note. The kinds differ in what they open and how; this part does not.
import * as path from 'node:path';
import * as vscode from 'vscode';
import { webviewOptions } from './panel-controller';

/** What PanelSet needs from a panel. */
export interface OpenPanel<S> {
  readonly panel: vscode.WebviewPanel;
  state(): S;
  receive(message: unknown): Promise<{ ok: boolean; reason?: string; result?: unknown }>;
}

export class PanelSet<P extends OpenPanel<S>, S> implements vscode.Disposable {
  private readonly panels = new Set<P>();

  /** `keyOf`: the panel's subject as an absolute path; `kind` names the panels in messages ("merge"). */
  constructor(private readonly keyOf: (p: P) => string, private readonly kind: string) {}

  /** Tracks a new panel until its webview panel is closed. */
  adopt(p: P): P {
    this.panels.add(p);
    p.panel.onDidDispose(() => this.panels.delete(p));
    return p;
  }

  find(key: string): P | undefined {
    const k = path.resolve(key);
    return [...this.panels].find((p) => this.keyOf(p) === k);
  }

  states(): S[] {
    return [...this.panels].map((p) => p.state());
  }

  async dispatch(key: string | undefined, message: unknown): Promise<{ ok: boolean; reason?: string; result?: unknown }> {
    const p = key ? this.find(key) : undefined;
    if (!p) return { ok: false, reason: `no ${this.kind} panel for ${String(key)}` };
    return p.receive(message);
  }

  dispose(): void {
    for (const p of this.panels) p.panel.dispose();
    this.panels.clear();
  }
}

/** A panel restored after a window reload whose subject no longer exists: a note saying what to open instead. */
export function showGonePanel(panel: vscode.WebviewPanel, extensionUri: vscode.Uri, note: string): void {
  panel.webview.options = webviewOptions(extensionUri);
  const text = note.replace(/[&<>]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' })[c]!);
  panel.webview.html = `<!DOCTYPE html><html><body><p>${text}</p></body></html>`;
}
