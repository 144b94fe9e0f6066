import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { KernelCompileError, kernelSource, kernelSourceOrigin, kernelsDirectory, setKernelsDirectory } from '../../src/engine/gpu/kernels';

// The WGSL include mechanism of the kernel loader (`//#include "common/x.wgsl"`): no GPU needed, the loader is
// plain file handling.
describe('kernel loader: //#include', () => {
  let real: string;
  let dir: string;
  before(() => {
    real = kernelsDirectory();
  });
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-include-'));
    fs.mkdirSync(path.join(dir, 'common'));
    setKernelsDirectory(dir);
  });
  afterEach(() => {
    setKernelsDirectory(real);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const write = (rel: string, text: string) => fs.writeFileSync(path.join(dir, rel), text);
  const spec = (file: string) => ({ file, entry: 'main', bindings: [] as const });

  it('appends each included file once (nested, repeated and cyclic includes) and keeps the kernel\'s own line numbers', () => {
    write('common/a.wgsl', '//#include "common/b.wgsl"\nfn a() -> f32 { return b(); }');
    write('common/b.wgsl', '//#include "common/a.wgsl"\nfn b() -> f32 { return {{K}}; }');
    write('k.wgsl', 'fn main_line1() {}\n//#include "common/a.wgsl"\n  //#include "common/b.wgsl"  \nfn main_line4() {}');
    const src = kernelSource({ ...spec('k'), defines: { K: 2 } });
    const lines = src.split('\n');
    assert.equal(lines[0], 'fn main_line1() {}');
    assert.equal(lines[3], 'fn main_line4() {}', 'the kernel\'s lines are where they were');
    assert.equal(src.split('fn a()').length, 2, 'a once');
    assert.equal(src.split('fn b()').length, 2, 'b once');
    assert.match(src, /return 2;/, 'defines apply to included text');
    const bLine = lines.findIndex((l) => l.startsWith('fn b()')) + 1;
    assert.equal(kernelSourceOrigin('k', bLine), 'kernels/common/b.wgsl:2');
    assert.equal(kernelSourceOrigin('k', 4), 'kernels/k.wgsl:4');
  });

  it('a missing include names the including file, its line and the missing file', () => {
    write('k.wgsl', 'fn f() {}\n\n//#include "common/nope.wgsl"\n');
    assert.throws(
      () => kernelSource(spec('k')),
      (e: unknown) => e instanceof KernelCompileError && e.message.includes('kernels/k.wgsl:3') && e.message.includes('common/nope.wgsl') && /not found/.test(e.message),
    );
    write('common/x.wgsl', 'fn x() {}\n//#include "common/gone.wgsl"');
    write('j.wgsl', '//#include "common/x.wgsl"');
    assert.throws(() => kernelSource(spec('j')), (e: unknown) => e instanceof KernelCompileError && e.message.includes('kernels/common/x.wgsl:2') && e.message.includes('common/gone.wgsl'));
  });

  it('refuses paths outside kernels/', () => {
    write('k.wgsl', '//#include "../secret.wgsl"');
    assert.throws(() => kernelSource(spec('k')), (e: unknown) => e instanceof KernelCompileError && /inside kernels/.test(e.message));
    write('m.wgsl', '//#include "/etc/passwd"');
    assert.throws(() => kernelSource(spec('m')), (e: unknown) => e instanceof KernelCompileError && /inside kernels/.test(e.message));
  });

  it('the shipped kernels take the log-sum-exp helpers from kernels/common/ (one definition)', () => {
    setKernelsDirectory(real);
    const files = fs.readdirSync(real).filter((f) => f.endsWith('.wgsl'));
    for (const f of ['cross_entropy', 'attention']) {
      const src = kernelSource({ ...spec(f), defines: { MAX_HD: 64 } });
      assert.equal(src.split('fn lse_step(').length, 2, `${f} gets lse_step from the include`);
    }
    for (const f of files) {
      const text = fs.readFileSync(path.join(real, f), 'utf8');
      assert.ok(!/fn lse_(step|push|merge)\(/.test(text), `kernels/${f} does not redefine the log-sum-exp helpers`);
    }
  });
});
