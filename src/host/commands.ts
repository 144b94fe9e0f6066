// Command factories: each takes the live Ctx and returns the handler (registered as `basin.<name>`).
// Only `vscode` and the protocol types here: GPU work happens in the worker.
import * as vscode from 'vscode';
import type { Cmd, Ctx } from './ctx';
import { WorkerExitedError } from './jobs/worker-process';
import type { GpuInfo } from '../protocol/worker';

/** "llvmpipe (…) — mesa, vulkan, software fallback" */
export function gpuSummary(info: GpuInfo): string {
  const name = info.description || info.device || info.architecture || 'unnamed adapter';
  const parts = [info.vendor || 'unknown vendor', info.backend];
  if (info.fallback) parts.push('software fallback adapter: correct but slow');
  return `${name} — ${parts.join(', ')}`;
}

/** The whole adapter description: identity, features, every limit. */
export function gpuDetails(info: GpuInfo): string {
  const lines = [
    'GPU adapter',
    `  description   ${info.description || '-'}`,
    `  vendor        ${info.vendor || '-'}`,
    `  architecture  ${info.architecture || '-'}`,
    `  device        ${info.device || '-'}`,
    `  backend       ${info.backend}`,
    `  fallback      ${info.fallback ? 'yes (software adapter)' : 'no'}`,
  ];
  if (info.subgroupMinSize) lines.push(`  subgroups     ${info.subgroupMinSize}–${info.subgroupMaxSize}`);
  lines.push(`features (${info.features.length})`, ...info.features.map((f) => `  ${f}`));
  const keys = Object.keys(info.limits).sort();
  const w = Math.max(0, ...keys.map((k) => k.length));
  lines.push(`limits (${keys.length})`, ...keys.map((k) => `  ${k.padEnd(w)}  ${info.limits[k].toLocaleString('en-US')}`));
  return lines.join('\n');
}

/**
 * Basin: Show GPU Info. Asks the worker (which creates the GPU device on first use) and shows the adapter.
 * Returns the GpuInfo (for tests and other extensions), or undefined when there is none.
 */
export function showGpuInfo(ctx: Ctx): Cmd {
  return async (): Promise<GpuInfo | undefined> => {
    let info: GpuInfo;
    try {
      info = await vscode.window.withProgress(
        { location: vscode.ProgressLocation.Window, title: 'Basin: asking the GPU…', cancellable: false },
        () => ctx.worker.gpuInfo(),
      );
    } catch (e) {
      const msg = (e as Error).message;
      ctx.log.error(`Show GPU Info: ${msg}`);
      // A worker crash is reported by the ctx already (exit code/signal, stderr tail).
      if (!(e instanceof WorkerExitedError)) {
        void vscode.window.showErrorMessage(`Basin found no usable GPU: ${msg}`, 'Show Output').then((c) => {
          if (c) ctx.log.show(true);
        });
      }
      return undefined;
    }
    ctx.log.info(`GPU: ${gpuSummary(info)}`);
    void vscode.window.showInformationMessage(`Basin GPU: ${gpuSummary(info)}`, 'Show Details').then((choice) => {
      if (choice !== 'Show Details') return;
      ctx.log.info(`\n${gpuDetails(info)}`);
      ctx.log.show(true);
    });
    return info;
  };
}
