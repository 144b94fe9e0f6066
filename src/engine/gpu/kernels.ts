// Kernel sources: WGSL files in kernels/, one file per kernel family, read once and cached.
import * as fs from 'node:fs';
import * as path from 'node:path';

export type Access = 'read' | 'rw';

/**
 * A kernel is a program description. Its compiled pipeline is cached by (file, entry, overrides, defines);
 * shapes travel as uniforms, so one pipeline serves every shape.
 * Binding 0 of group 0 is always the kernel's uniform block; `bindings` are the storage buffers 1..n.
 */
export interface KernelSpec {
  file: string;
  entry: string;
  bindings: readonly Access[];
  /** WGSL `override` constants (workgroup sizes, tile sizes). */
  overrides?: Readonly<Record<string, number>>;
  /** `{{NAME}}` text substitutions, for what an override cannot express (e.g. a loop unrolled per variant). */
  defines?: Readonly<Record<string, string | number>>;
}

export class KernelCompileError extends Error {
  constructor(readonly file: string, readonly entry: string, detail: string) {
    super(`Kernel ${file} (entry ${entry}) failed to compile:\n${detail}`);
    this.name = 'KernelCompileError';
  }
}

let kernelDir: string | null = null;

/** kernels/ beside the package root: found from this file (source or bundle) or BASIN_KERNELS_DIR. */
export function kernelsDirectory(): string {
  if (kernelDir) return kernelDir;
  const env = process.env.BASIN_KERNELS_DIR;
  if (env) return (kernelDir = env);
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, 'kernels');
    if (fs.existsSync(path.join(candidate, 'elementwise.wgsl'))) return (kernelDir = candidate);
    dir = path.dirname(dir);
  }
  throw new Error(`Basin's kernels/ folder was not found above ${__dirname}; set BASIN_KERNELS_DIR.`);
}

/** Point the loader at another folder (tests of the compile-error path). */
export function setKernelsDirectory(dir: string | null): void {
  kernelDir = dir;
  sources.clear();
}

const sources = new Map<string, string>();

export function kernelPath(file: string): string {
  return path.join(kernelsDirectory(), `${file}.wgsl`);
}

export function kernelSource(spec: KernelSpec): string {
  let src = sources.get(spec.file);
  if (src === undefined) {
    const p = kernelPath(spec.file);
    try {
      src = fs.readFileSync(p, 'utf8');
    } catch (e) {
      throw new KernelCompileError(`kernels/${spec.file}.wgsl`, spec.entry, `cannot read ${p}: ${(e as Error).message}`);
    }
    sources.set(spec.file, src);
  }
  if (spec.defines) {
    for (const [k, v] of Object.entries(spec.defines)) src = src.split(`{{${k}}}`).join(String(v));
  }
  const left = /\{\{(\w+)\}\}/.exec(src);
  if (left) throw new KernelCompileError(`kernels/${spec.file}.wgsl`, spec.entry, `no value given for {{${left[1]}}}`);
  return src;
}

export function kernelKey(spec: KernelSpec): string {
  const o = spec.overrides ? Object.entries(spec.overrides).sort().map(([k, v]) => `${k}=${v}`).join(',') : '';
  const d = spec.defines ? Object.entries(spec.defines).sort().map(([k, v]) => `${k}=${v}`).join(',') : '';
  return `${spec.file}:${spec.entry}:${spec.bindings.join('')}:${o}:${d}`;
}
