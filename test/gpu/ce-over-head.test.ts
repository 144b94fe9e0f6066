// crossEntropyOverHead: full cross-entropy over a linear head with the logits formed in pieces of rows (for
// batches whose logits exceed one storage binding). Loss and the gradients of hidden, weight and bias against a
// float64 CPU reference, on awkward shapes and piece sizes; the registered cross-entropy loss switches to it when
// the logits exceed the binding limit, with the same numbers as the one-binding path.
import * as assert from 'node:assert/strict';
import { assertClose, randn, rng, runtime } from './helpers';
import { Runtime } from '../../src/engine/gpu/runtime';
import { fromArray, tidy } from '../../src/engine/tensor/tensor';
import { backward } from '../../src/engine/autograd/tape';
import { crossEntropyOverHead, headRowsPerPiece } from '../../src/engine/ops/loss';
import { linear } from '../../src/engine/ops/matmul';
import { crossEntropyLoss } from '../../src/engine/loss/cross-entropy';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { train } from '../../src/engine/train/trainer';
import { parseConfig } from '../../src/files/config/load';

interface Ref {
  loss: number;
  dh: Float64Array;
  dw: Float64Array;
  db: Float64Array;
}

/** Mean CE over rows with target ≥ 0 of logits h·Wᵀ + b, and its gradients, in float64. */
function reference(h: Float32Array, w: Float32Array, b: Float32Array | null, t: Int32Array, rows: number, d: number, c: number): Ref {
  const dh = new Float64Array(rows * d);
  const dw = new Float64Array(c * d);
  const db = new Float64Array(c);
  const valid = Array.from(t).filter((x) => x >= 0).length;
  let loss = 0;
  const z = new Float64Array(c);
  for (let r = 0; r < rows; r++) {
    if (t[r] < 0) continue;
    let m = -Infinity;
    for (let j = 0; j < c; j++) {
      let s = b ? b[j] : 0;
      for (let k = 0; k < d; k++) s += h[r * d + k] * w[j * d + k];
      z[j] = s;
      m = Math.max(m, s);
    }
    let se = 0;
    for (let j = 0; j < c; j++) se += Math.exp(z[j] - m);
    const lse = m + Math.log(se);
    loss += lse - z[t[r]];
    for (let j = 0; j < c; j++) {
      const gz = (Math.exp(z[j] - lse) - (j === t[r] ? 1 : 0)) / valid;
      db[j] += gz;
      for (let k = 0; k < d; k++) {
        dh[r * d + k] += gz * w[j * d + k];
        dw[j * d + k] += gz * h[r * d + k];
      }
    }
  }
  return { loss: valid ? loss / valid : 0, dh, dw, db };
}

describe('crossEntropyOverHead (logits in pieces of rows)', () => {
  let rt: Runtime;
  before(async () => {
    rt = await runtime();
  });
  afterEach(() => {
    rt.setMaxBindingBytes(null);
  });

  async function run(rows: number, d: number, c: number, withBias: boolean, per: number | undefined, seed: number) {
    const r = rng(seed);
    const h = randn(rows * d, seed);
    const w = randn(c * d, seed + 1, 0.5);
    const b = withBias ? randn(c, seed + 2, 0.3) : null;
    const t = Int32Array.from({ length: rows }, (_, i) => (i % 5 === 4 ? -1 : Math.floor(r() * c)));
    const ref = reference(h, w, b, t, rows, d, c);
    const ht = fromArray(rt, h, [rows, d]);
    const wt = fromArray(rt, w, [c, d]);
    const bt = b ? fromArray(rt, b, [c]) : null;
    const tt = fromArray(rt, t, [rows], 'i32');
    for (const x of [ht, wt, bt]) if (x) x.requiresGrad = true;
    const loss = tidy(() => {
      const out = crossEntropyOverHead(ht, wt, bt, tt, { rowsPerPiece: per });
      backward(out);
      return out;
    });
    const what = `rows ${rows}, d ${d}, classes ${c}, bias ${withBias}, piece ${per ?? 'fit'}`;
    assertClose([await loss.item()], [ref.loss], { rtol: 1e-5, atol: 1e-6, what: `${what}: loss` });
    assertClose(await ht.grad!.toFloat32(), ref.dh, { rtol: 1e-4, atol: 1e-6, what: `${what}: dhidden` });
    assertClose(await wt.grad!.toFloat32(), ref.dw, { rtol: 1e-4, atol: 1e-6, what: `${what}: dweight` });
    if (bt) assertClose(await bt.grad!.toFloat32(), ref.db, { rtol: 1e-4, atol: 1e-6, what: `${what}: dbias` });
    for (const x of [ht, wt, bt, tt, loss]) {
      x?.grad?.dispose();
      x?.dispose();
    }
  }

  // Rows of 1, a prime, one piece exactly, a partial last piece; classes of 1, a prime, above the 256-wide row block.
  const cases: [number, number, number, boolean, number | undefined][] = [
    [1, 3, 1, true, 64],
    [1, 5, 7, false, 64],
    [64, 4, 13, true, 64],
    [131, 17, 97, true, 64],
    [257, 8, 301, false, 128],
    [300, 16, 1031, true, undefined],
  ];
  for (const [rows, d, c, withBias, per] of cases) {
    it(`rows ${rows}, d ${d}, classes ${c}, ${withBias ? 'bias' : 'no bias'}, piece ${per ?? 'as fits'}: loss and gradients = CPU`, async () => {
      await run(rows, d, c, withBias, per, rows * 31 + c);
    });
  }

  it('pieces are multiples of 64 rows; a class count where 64 rows do not fit is refused, pointing at cce', async () => {
    assert.equal(headRowsPerPiece(128 * 2 ** 20, 100_000), 320);
    assert.equal(headRowsPerPiece(128 * 2 ** 20, 1_000_000), 0);
    rt.setMaxBindingBytes(256 * 64);
    const ht = fromArray(rt, new Float32Array(64 * 4), [64, 4]);
    const wt = fromArray(rt, new Float32Array(65 * 4), [65, 4]);
    const tt = fromArray(rt, new Int32Array(64), [64], 'i32');
    assert.throws(() => crossEntropyOverHead(ht, wt, null, tt), /64 rows of logits over 65 classes \(16\.3 KiB\) exceed one storage binding \(16\.0 KiB\).*\(cce\)/);
    assert.throws(() => crossEntropyOverHead(ht, wt, null, tt, { rowsPerPiece: 32 }), /multiple of 64|cce/);
    for (const x of [ht, wt, tt]) x.dispose();
  });

  it('the cross-entropy loss takes the pieces when the logits exceed one binding, with the same loss and gradients', async () => {
    const rows = 200;
    const d = 8;
    const c = 50;
    const h = randn(rows * d, 5);
    const w = randn(c * d, 6, 0.5);
    const b = randn(c, 7, 0.1);
    const t = Int32Array.from({ length: rows }, (_, i) => (i * 7) % c);
    const once = async (limit: number | null) => {
      rt.setMaxBindingBytes(limit);
      const ht = fromArray(rt, h, [rows, d]);
      const wt = fromArray(rt, w, [c, d]);
      const bt = fromArray(rt, b, [c]);
      const tt = fromArray(rt, t, [rows], 'i32');
      for (const x of [ht, wt, bt]) x.requiresGrad = true;
      const head = { weight: wt, bias: bt, logits: (x: typeof ht) => linear(x, wt, bt) };
      const out = tidy(() => {
        const o = crossEntropyLoss(ht, head, { targets: tt }, { training: true });
        backward(o.loss);
        return { loss: o.loss, formed: o.logits !== undefined };
      });
      const res = { loss: await out.loss.item(), formed: out.formed, dh: await ht.grad!.toFloat32(), dw: await wt.grad!.toFloat32() };
      for (const x of [ht, wt, bt, tt, out.loss]) {
        x.grad?.dispose();
        x.dispose();
      }
      return res;
    };
    const whole = await once(null);
    // 200 × 50 × 4 = 40,000 bytes of logits; a 16 KiB binding holds 64 rows of them (12,800 bytes).
    const split = await once(16384);
    assert.equal(whole.formed, true);
    assert.equal(split.formed, false);
    assertClose([split.loss], [whole.loss], { rtol: 1e-6, what: 'loss' });
    assertClose(split.dh, whole.dh, { rtol: 1e-5, atol: 1e-7, what: 'dhidden' });
    assertClose(split.dw, whole.dw, { rtol: 1e-5, atol: 1e-7, what: 'dweight' });
  });

  it('a transformer trains and evaluates with its logits in pieces: the same losses and metrics as in one binding', async function () {
    this.timeout(120_000);
    // 8 × 16 = 128 rows × 300 classes × 4 B = 150 KiB of logits per batch; a 128 KiB binding holds a piece of 64
    // rows (75 KiB) but not all of them: training and evaluation both go through the pieces.
    const text = `name: ce-pieces
seed: 3
model: { type: transformer, vocab: 300, dModel: 16, layers: 1, heads: 2, seqLen: 16, mlpRatio: 2, dropout: 0 }
data: { type: synthetic-sequences, sequences: 200, length: 17, branching: 3, noise: 0.1, validFraction: 0.2 }
train: { steps: 6, batchSize: 8, optimizer: { type: adamw, lr: 0.01 }, evalEvery: 0, checkpointEvery: 0, statsEvery: 0, logEvery: 1 }
`;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-ce-pieces-'));
    try {
      const once = async (limit: number | null) => {
        rt.setMaxBindingBytes(limit);
        const losses: number[] = [];
        const r = await train({ rt, config: parseConfig(text, 'p.basin.yaml'), outputDir: path.join(dir, String(limit)), events: { onLog: (l) => losses.push(l.loss) } });
        rt.setMaxBindingBytes(null);
        return { losses, eval: r.eval! };
      };
      const whole = await once(null);
      const pieces = await once(131072);
      assert.equal(pieces.losses.length, 6);
      assertClose(pieces.losses, whole.losses, { rtol: 1e-4, what: 'training losses' });
      assertClose([pieces.eval.loss, pieces.eval.accuracy, pieces.eval.hr10], [whole.eval.loss, whole.eval.accuracy, whole.eval.hr10], { rtol: 1e-4, what: 'validation loss, accuracy, HR@10' });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
