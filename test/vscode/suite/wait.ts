// Waiting in the extension-host tests: for an event that passes a predicate, or for a probe to return something.
// One definition for every suite (esbuild bundles it into each test file).
import type * as vscode from 'vscode';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves with the first event that passes `pred`, or rejects after `timeoutMs`. */
export function waitFor<T, S extends T>(event: vscode.Event<T>, pred: (e: T) => e is S, timeoutMs: number, what: string): Promise<S>;
export function waitFor<T>(event: vscode.Event<T>, pred: (e: T) => boolean, timeoutMs: number, what: string): Promise<T>;
export function waitFor<T>(event: vscode.Event<T>, pred: (e: T) => boolean, timeoutMs: number, what: string): Promise<T> {
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

/** Polls `probe` every 50 ms until it returns something truthy; throws after `timeoutMs`. */
export async function until<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}
