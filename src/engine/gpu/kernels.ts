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

/** Expanded source per kernel file, and where each of its lines came from. */
const sources = new Map<string, Expanded>();

interface Expanded {
  text: string;
  /** origins[i] = file (relative to kernels/) and 1-based line of the expanded source's line i + 1. */
  origins: { file: string; line: number }[];
}

export function kernelPath(file: string): string {
  return path.join(kernelsDirectory(), `${file}.wgsl`);
}

/**
 * `//#include "common/logsumexp.wgsl"` on a line of its own includes that file (a path relative to kernels/).
 * Included text is appended after the including file rather than pasted at the directive: WGSL module-scope
 * declarations are order-independent, so this is equivalent, and the including file keeps its own line numbers
 * in compiler messages. Each file is included once per kernel (WGSL rejects a second definition), which also
 * ends include cycles. Included files may include others.
 */
const INCLUDE_RE = /^[ \t]*\/\/#include[ \t]+"([^"]*)"[ \t]*$/;

function expand(file: string, entry: string): Expanded {
  const root = kernelsDirectory();
  const text: string[] = [];
  const origins: Expanded['origins'] = [];
  const done = new Set<string>();
  // Files still to append, with the directive that asked for them (for the message when one is missing).
  const queue: { rel: string; from?: { rel: string; line: number; name: string } }[] = [{ rel: `${file}.wgsl` }];
  while (queue.length > 0) {
    const { rel, from } = queue.shift()!;
    if (done.has(rel)) continue;
    done.add(rel);
    const abs = path.join(root, rel);
    let src: string;
    try {
      src = fs.readFileSync(abs, 'utf8');
    } catch (e) {
      const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (e as Error).message;
      const detail = from
        ? `kernels/${from.rel}:${from.line}: cannot include "${from.name}": ${abs} ${why}`
        : `cannot read ${abs}: ${why}`;
      throw new KernelCompileError(`kernels/${file}.wgsl`, entry, detail);
    }
    if (from) {
      text.push(`// ---- included from kernels/${rel} (by kernels/${from.rel}:${from.line})`);
      origins.push({ file: from.rel, line: from.line });
    }
    const lines = src.split(/\r?\n/);
    lines.forEach((l, i) => {
      text.push(l);
      origins.push({ file: rel, line: i + 1 });
      const m = INCLUDE_RE.exec(l);
      if (!m) return;
      const name = m[1];
      const target = path.posix.normalize(name);
      // Only files inside kernels/: the loader must not read arbitrary paths named in a kernel.
      if (name === '' || path.posix.isAbsolute(target) || target.startsWith('../') || target === '..' || !target.endsWith('.wgsl')) {
        throw new KernelCompileError(`kernels/${file}.wgsl`, entry, `kernels/${rel}:${i + 1}: cannot include "${name}": expected a .wgsl path inside kernels/`);
      }
      queue.push({ rel: target, from: { rel, line: i + 1, name } });
    });
  }
  return { text: text.join('\n'), origins };
}

export function kernelSource(spec: KernelSpec): string {
  let exp = sources.get(spec.file);
  if (exp === undefined) {
    exp = expand(spec.file, spec.entry);
    sources.set(spec.file, exp);
  }
  let src = exp.text;
  if (spec.defines) {
    for (const [k, v] of Object.entries(spec.defines)) src = src.split(`{{${k}}}`).join(String(v));
  }
  const left = /\{\{(\w+)\}\}/.exec(src);
  if (left) throw new KernelCompileError(`kernels/${spec.file}.wgsl`, spec.entry, `no value given for {{${left[1]}}}`);
  return src;
}

/**
 * Where line `line` (1-based) of a kernel's expanded source came from: `kernels/<file>:<line>`, so that a compiler
 * message about included code names the included file. Null before the source was loaded or out of range.
 */
export function kernelSourceOrigin(file: string, line: number): string | null {
  const o = sources.get(file)?.origins[line - 1];
  return o ? `kernels/${o.file}:${o.line}` : null;
}

export function kernelKey(spec: KernelSpec): string {
  const o = spec.overrides ? Object.entries(spec.overrides).sort().map(([k, v]) => `${k}=${v}`).join(',') : '';
  const d = spec.defines ? Object.entries(spec.defines).sort().map(([k, v]) => `${k}=${v}`).join(',') : '';
  return `${spec.file}:${spec.entry}:${spec.bindings.join('')}:${o}:${d}`;
}
