// The house rules of design.md, checked on the import graph of src/ and webview/ (static imports, dynamic
// import() with a literal, require() with a literal, and `typeof import('…')`):
//   webview → protocol; host → protocol, files; worker/CLI → engine, files, protocol; engine → files, protocol;
//   files → protocol (pure Node: no GPU, no engine); protocol → nothing of ours but itself (types and constants).
// And no import circle anywhere in src/ (a circle hides an order dependency at module load).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '../..');

type Part = 'bench' | 'webview' | 'host' | 'protocol' | 'files' | 'engine' | 'worker' | 'cli' | 'extension';

const ALLOWED: Record<Part, Part[]> = {
  bench: ['bench', 'engine', 'files', 'protocol'],
  webview: ['webview', 'protocol'],
  extension: ['host', 'protocol', 'files'],
  host: ['host', 'protocol', 'files'],
  protocol: ['protocol'],
  files: ['files', 'protocol'],
  engine: ['engine', 'files', 'protocol'],
  worker: ['worker', 'engine', 'files', 'protocol'],
  cli: ['cli', 'engine', 'files', 'protocol', 'worker', 'bench'],
};

function partOf(file: string): Part | 'bench' | null {
  const rel = path.relative(root, file).split(path.sep);
  if (rel[0] === 'webview') return 'webview';
  if (rel[0] === 'bench') return 'bench';
  if (rel[0] !== 'src') return null;
  if (rel[1] === 'extension.ts') return 'extension';
  return (['host', 'protocol', 'files', 'engine', 'worker', 'cli'] as const).find((p) => p === rel[1]) ?? null;
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...sourceFiles(p));
    else if (/\.ts$/.test(e.name) && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*|\brequire\s*\(\s*|^\s*import\s+)['"](\.{1,2}\/[^'"]+)['"]/gm;

/** Relative imports of a file, resolved to .ts files. */
function importsOf(file: string, opts: { types: boolean }): string[] {
  let text = fs.readFileSync(file, 'utf8');
  // `import type` / `export type … from` are erased at build time: they count for the boundaries, not for circles.
  if (!opts.types) text = text.replace(/^\s*(import|export)\s+type\s[^;]*;/gm, '');
  const out: string[] = [];
  for (const m of text.matchAll(SPECIFIER)) {
    const base = path.resolve(path.dirname(file), m[1].replace(/\.js$/, ''));
    const hit = [base + '.ts', path.join(base, 'index.ts'), base].find((c) => fs.existsSync(c) && fs.statSync(c).isFile());
    if (hit) out.push(hit);
  }
  return out;
}

describe('layering (design.md import rules)', () => {
  const files = [...sourceFiles(path.join(root, 'src')), ...sourceFiles(path.join(root, 'webview'))];
  const graph = new Map(files.map((f) => [f, importsOf(f, { types: true })]));
  const runtimeGraph = new Map(files.map((f) => [f, importsOf(f, { types: false })]));

  it('finds the parts it checks', () => {
    const parts = new Set(files.map(partOf));
    for (const p of ['webview', 'host', 'protocol', 'files', 'engine', 'worker', 'cli'] as const) assert.ok(parts.has(p), `no file found in ${p}`);
  });

  it('every import crosses only the allowed boundaries', () => {
    const bad: string[] = [];
    for (const [f, deps] of graph) {
      const from = partOf(f);
      if (!from || from === 'bench') continue;
      for (const d of deps) {
        const to = partOf(d);
        if (to && ALLOWED[from].includes(to)) continue;
        bad.push(`${path.relative(root, f)} (${from}) → ${path.relative(root, d)} (${to ?? 'outside src'})`);
      }
    }
    assert.deepEqual(bad, [], `imports that break design.md's rules:\n${bad.join('\n')}`);
  });

  it('the protocol holds types and constants only: no fs, no child_process, no GPU', () => {
    const bad = files
      .filter((f) => partOf(f) === 'protocol')
      .filter((f) => /from\s+['"](node:)?(fs|child_process|webgpu|vscode)['"]/.test(fs.readFileSync(f, 'utf8')))
      .map((f) => path.relative(root, f));
    assert.deepEqual(bad, []);
  });

  it('has no import circle in src/ (type-only imports aside)', () => {
    const srcFiles = files.filter((f) => partOf(f) !== 'webview');
    const state = new Map<string, 0 | 1 | 2>(); // 1 on the stack, 2 done
    const cycles: string[] = [];
    const stack: string[] = [];
    const visit = (f: string) => {
      state.set(f, 1);
      stack.push(f);
      for (const d of runtimeGraph.get(f) ?? []) {
        const s = state.get(d) ?? 0;
        if (s === 1) cycles.push(stack.slice(stack.indexOf(d)).concat(d).map((x) => path.relative(root, x)).join(' → '));
        else if (s === 0 && runtimeGraph.has(d)) visit(d);
      }
      stack.pop();
      state.set(f, 2);
    };
    for (const f of srcFiles) if (!state.get(f)) visit(f);
    assert.deepEqual(cycles, [], `import circles:\n${cycles.join('\n')}`);
  });
});
