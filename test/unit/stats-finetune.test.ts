// The statistics of fine-tuning runs and of mao (issue 17): the frame header's optional roles and extras (an old
// frame still decodes; bad extras are refused), the sidecar's extra tensors, the task saliency mass against the
// curvature merge's own (one definition), and the panel's reducers (history extras, the loss gap, mao's overall
// captured energy, saliency shares, role counts, the role filter in the UI state).
import * as assert from 'node:assert/strict';
import {
  SCALAR_KEYS,
  STATS_MAGIC,
  StatsFormatError,
  decodeStatsFrame,
  encodeStatsFrame,
  frameFloats,
  matrixView,
  type StatsFrameHeader,
  type StatsTensorInfo,
} from '../../src/protocol/stats';
import { capturedOverall, capturedOverallSeries, FrameIndexer, HeaderCache, lossGap, roleCounts, saliencyShares, ScalarHistory } from '../../src/protocol/panels/stats-reduce';
import { DEFAULT_UI_STATE, coerceUiState, isHistoryPayload, isUiState, parseHostMessage, type MetricRow } from '../../src/protocol/panels/stats';
import { runInfoFromRecord } from '../../src/host/panels/stats-source';
import { statsCheckpoint } from '../../src/engine/stats/layer-stats';
import { tensorRole } from '../../src/engine/stats/roles';
import { saliencyMass } from '../../src/engine/stats/saliency';
import { cpuMergeTensor } from '../../src/engine/cpu/merge';
import { seededRandom } from '../../src/engine/data/rng';

const TENSORS: StatsTensorInfo[] = [
  { name: 'blocks.0.attn.q.weight', shape: [3, 5], ...matrixView([3, 5]), role: 'frozen' },
  { name: 'blocks.0.attn.q.weight.lora_a', shape: [2, 5], ...matrixView([2, 5]), role: 'lora' },
  { name: 'blocks.0.adapter_mlp.down.weight', shape: [7], ...matrixView([7]), role: 'adapter' },
  { name: 'head.weight', shape: [1, 1], ...matrixView([1, 1]), role: 'trained' },
];

function payloadFor(tensors: readonly StatsTensorInfo[], seed: number): Float32Array {
  const r = seededRandom(seed);
  return Float32Array.from({ length: frameFloats(tensors) }, () => r());
}

/** A frame exactly as writers before roles and extras wrote it: JSON.stringify of { step, time, tensors }. */
function oldFrame(step: number): { bytes: Uint8Array; payload: Float32Array } {
  const tensors = TENSORS.map(({ name, shape, rows, cols }) => ({ name, shape, rows, cols }));
  let json = JSON.stringify({ step, time: 123, tensors });
  json += ' '.repeat((4 - (Buffer.byteLength(json) % 4)) % 4);
  const h = Buffer.from(json, 'utf8');
  const payload = payloadFor(TENSORS, step);
  const out = new Uint8Array(8 + h.length + payload.byteLength);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, STATS_MAGIC, true);
  dv.setUint32(4, h.length, true);
  out.set(h, 8);
  out.set(new Uint8Array(payload.buffer), 8 + h.length);
  return { bytes: out, payload };
}

describe('statistics of fine-tunes and mao: the frame header', () => {
  it('an old frame (no roles, no extras) decodes as before, with neither', () => {
    const { bytes, payload } = oldFrame(5);
    const f = decodeStatsFrame(bytes)!.frame;
    assert.equal(f.step, 5);
    assert.equal(f.tensors.length, TENSORS.length);
    for (const t of f.tensors) {
      assert.equal(t.role, undefined);
      assert.equal(t.capturedEnergy, undefined);
      assert.equal(t.saliencyMass, undefined);
    }
    assert.equal(f.tensors[0].scalars.gradNorm, payload[0]);
    const info = new HeaderCache().scan(bytes, 0)!;
    assert.equal(info.extras, undefined);
    assert.equal(roleCounts(f.tensors).unknown, TENSORS.length);
  });

  it('round-trips roles and extras; nulls stay absent; extras are written before the tensor list', () => {
    const header: StatsFrameHeader = { step: 9, time: 1, tensors: TENSORS, extras: { capturedEnergy: [0.75, null, null, 1], saliencyMass: [2.5, null, 0, 1e-9] } };
    const bytes = encodeStatsFrame(header, payloadFor(TENSORS, 1));
    const text = Buffer.from(bytes.subarray(8, 8 + new DataView(bytes.buffer).getUint32(4, true))).toString('utf8');
    assert.ok(text.indexOf('"extras"') < text.indexOf('"tensors"'), 'extras before tensors');
    const f = decodeStatsFrame(bytes)!.frame;
    assert.deepEqual(f.tensors.map((t) => t.role), ['frozen', 'lora', 'adapter', 'trained']);
    assert.deepEqual(f.tensors.map((t) => t.capturedEnergy), [0.75, undefined, undefined, 1]);
    assert.deepEqual(f.tensors.map((t) => t.saliencyMass), [2.5, undefined, 0, 1e-9]);
  });

  it('the header cache reads each frame’s extras while it reuses an unchanged tensor list', () => {
    const ix = new FrameIndexer();
    const chunks: Uint8Array[] = [];
    for (let s = 1; s <= 3; s++) chunks.push(encodeStatsFrame({ step: s, time: s, tensors: TENSORS, extras: { capturedEnergy: [s / 10, null, null, null] } }, payloadFor(TENSORS, s)));
    const all = Buffer.concat(chunks);
    const frames = ix.push(new Uint8Array(all));
    assert.equal(frames.length, 3);
    assert.deepEqual(frames.map((f) => f.extras?.capturedEnergy?.[0]), [0.1, 0.2, 0.3]);
    assert.equal(frames[1].tensors, frames[2].tensors, 'the tensor list was reused, not re-parsed');
  });

  it('refuses extras of the wrong length or with non-numbers, and drops a role it does not know', () => {
    const p = payloadFor(TENSORS, 2);
    assert.throws(() => encodeStatsFrame({ step: 1, time: 1, tensors: TENSORS, extras: { capturedEnergy: [0.5] } }, p), StatsFormatError);
    // Written by hand: a bad extras array, and an unknown role.
    const forge = (header: object) => {
      let json = JSON.stringify(header);
      json += ' '.repeat((4 - (Buffer.byteLength(json) % 4)) % 4);
      const h = Buffer.from(json);
      const out = new Uint8Array(8 + h.length + p.byteLength);
      new DataView(out.buffer).setUint32(0, STATS_MAGIC, true);
      new DataView(out.buffer).setUint32(4, h.length, true);
      out.set(h, 8);
      out.set(new Uint8Array(p.buffer), 8 + h.length);
      return out;
    };
    const bad = forge({ step: 1, time: 1, extras: { saliencyMass: ['x', null, null, null] }, tensors: TENSORS });
    assert.throws(() => decodeStatsFrame(bad), /extras\.saliencyMass/);
    assert.throws(() => new HeaderCache().scan(bad, 0), StatsFormatError);
    const future = forge({ step: 1, time: 1, tensors: TENSORS.map((t) => ({ ...t, role: 'distilled' })) });
    assert.deepEqual(decodeStatsFrame(future)!.frame.tensors.map((t) => t.role), [undefined, undefined, undefined, undefined]);
    const notString = forge({ step: 1, time: 1, tensors: TENSORS.map((t) => ({ ...t, role: 3 })) });
    assert.throws(() => decodeStatsFrame(notString), /malformed role/);
  });

  it('the sidecar carries captured energy, saliency and roles where the frame has them', () => {
    const bytes = encodeStatsFrame({ step: 4, time: 1, tensors: TENSORS, extras: { capturedEnergy: [0.5, null, null, null], saliencyMass: [null, null, 3, null] } }, payloadFor(TENSORS, 3));
    const { tensors, metadata } = statsCheckpoint(decodeStatsFrame(bytes)!.frame);
    const names = tensors.map((t) => t.name);
    assert.ok(names.includes('blocks.0.attn.q.weight.captured_energy'));
    assert.ok(names.includes('blocks.0.adapter_mlp.down.weight.saliency_mass'));
    assert.equal(names.filter((n) => n.endsWith('.captured_energy') || n.endsWith('.saliency_mass')).length, 2);
    assert.equal((tensors.find((t) => t.name.endsWith('.saliency_mass'))!.data as Float32Array)[0], 3);
    assert.deepEqual(JSON.parse(metadata.roles), Object.fromEntries(TENSORS.map((t) => [t.name, t.role])));
  });

  it('roles: frozen first, then LoRA factors, adapters, and the rest trains', () => {
    assert.equal(tensorRole('blocks.0.attn.q.weight', false), 'trained');
    assert.equal(tensorRole('blocks.0.attn.q.weight', true), 'frozen');
    assert.equal(tensorRole('blocks.0.attn.q.weight.lora_a', false), 'lora');
    assert.equal(tensorRole('blocks.0.attn.q.weight.lora_b', false), 'lora');
    assert.equal(tensorRole('blocks.0.attn.q.weight.lora_b', true), 'frozen');
    assert.equal(tensorRole('blocks.1.adapter_attn.up.weight', false), 'adapter');
    assert.equal(tensorRole('adapter_x.weight', false), 'trained', 'the mark is ".adapter_" inside a name');
  });
});

describe('statistics of fine-tunes: the task saliency mass', () => {
  const cases: [number, number][] = [
    [1, 1],
    [7, 1],
    [1, 13],
    [3, 5],
    [31, 17],
  ];
  for (const [rows, cols] of cases) {
    it(`is the curvature merge's saliency mass, Σ τ²·sqrt(R·Cᵀ/ΣR), for [${rows}, ${cols}]`, () => {
      const r = seededRandom(rows * 100 + cols);
      const base = Float32Array.from({ length: rows * cols }, () => r() * 2 - 1);
      const tuned = Float32Array.from(base, (v) => v + (r() - 0.5) * 0.2);
      const R = Float32Array.from({ length: rows }, () => r() * 1e-3);
      const C = Float32Array.from({ length: cols }, () => r() * 1e-3);
      if (rows > 2) R[1] = 0; // a row that saw no gradient
      const merged = cpuMergeTensor('curvature', { name: 't', shape: [rows, cols], base, experts: [tuned], perModel: [{ density: 1 }], global: {}, curvature: [{ row: R, col: C }] });
      const want = merged.stats.saliencyMass![0];
      const got = saliencyMass(tuned, rows, cols, R, C, base);
      assert.ok(Math.abs(got - want) <= 1e-9 + 1e-9 * Math.abs(want), `${got} vs the merge's ${want}`);
      assert.ok(got > 0);
      // τ given directly gives the same.
      const tau = Float32Array.from(tuned, (v, i) => Math.fround(v - base[i]));
      assert.ok(Math.abs(saliencyMass(tau, rows, cols, R, C) - got) <= 1e-12 * Math.max(1, got));
    });
  }

  it('is 0 without a second moment and for an untouched tensor; refuses mismatched sizes', () => {
    const w = Float32Array.from([1, 2, 3, 4, 5, 6]);
    assert.equal(saliencyMass(w, 2, 3, [0, 0], [1, 1, 1]), 0);
    assert.equal(saliencyMass(w, 2, 3, [1, 2], [1, 1, 1], w), 0);
    assert.throws(() => saliencyMass(w, 3, 3, [1, 2, 3], [1, 1, 1]), /saliency mass: τ has 6 values, R 3, C 3, for a \[3, 3\] tensor/);
    assert.throws(() => saliencyMass(w, 2, 3, [1, 2], [1, 1, 1], w.subarray(1)), /base 5/);
  });
});

describe('statistics of fine-tunes and mao: the panel’s reducers', () => {
  it('the history keeps extras per point, through a snapshot payload, per tensor', () => {
    const names = TENSORS.map((t) => t.name);
    const h = new ScalarHistory();
    const sc = new Float32Array(names.length * SCALAR_KEYS.length);
    h.add(10, names, sc);
    h.add(20, names, sc, { capturedEnergy: Float32Array.from([0.5, NaN, NaN, 0.9]) });
    h.add(30, names, sc, { capturedEnergy: Float32Array.from([0.6, NaN, NaN, 0.8]), saliencyMass: Float32Array.from([NaN, 1, 2, 3]) });
    const p = h.toPayload(names);
    assert.ok(isHistoryPayload(p));
    assert.deepEqual(Object.keys(p.extras!).sort(), ['capturedEnergy', 'saliencyMass']);
    const back = new ScalarHistory();
    back.loadPayload(p);
    assert.deepEqual(back.extraSeries(names[0], 'capturedEnergy'), { steps: [20, 30], values: [0.5, Math.fround(0.6)] });
    assert.deepEqual(back.extraSeries(names[1], 'capturedEnergy'), { steps: [], values: [] });
    assert.deepEqual(back.extraSeries(names[2], 'saliencyMass'), { steps: [30], values: [2] });
    const lh = back.get(names[0])!;
    assert.deepEqual(lh.extras?.capturedEnergy, [null, 0.5, Math.fround(0.6)]);
    // A payload whose extras do not fit its points is refused.
    assert.equal(isHistoryPayload({ ...p, extras: { capturedEnergy: new ArrayBuffer(4) } }), false);
    assert.equal(isHistoryPayload({ ...p, extras: { other: p.extras!.capturedEnergy } }), false);
  });

  it('the loss gap: validation minus the mean training loss since the previous evaluation', () => {
    const rows: MetricRow[] = [
      { step: 1, loss: 3 },
      { step: 2, loss: 2 },
      { step: 2, val_loss: 2.75 },
      { step: 3, loss: 1 },
      { step: 4, val_loss: 1.5, base_val_loss: 4 },
      { step: 5, val_loss: 2 }, // no training loss logged since the last evaluation: the last one
    ];
    assert.deepEqual(lossGap(rows), { steps: [2, 4, 5], gaps: [0.25, 0.5, 1] });
    assert.deepEqual(lossGap([{ step: 1, val_loss: 1 }]), { steps: [], gaps: [] }, 'no training loss yet: no gap');
  });

  it("mao's overall captured energy weighs each tensor by its momentum's energy", () => {
    // Tensor 0 keeps 50 % of an energy of 8 (‖UΣVᵀ‖² = 4); tensor 1 keeps 100 % of 1; tensor 2 is dense (NaN).
    const c = capturedOverall([0.5, 1, NaN], [2, 1, 5])!;
    assert.equal(c.tensors, 2);
    assert.ok(Math.abs(c.overall - 5 / 9) < 1e-12, `${c.overall}`);
    assert.deepEqual(capturedOverall([NaN, NaN], [1, 1]), null);
    assert.equal(capturedOverall([0.2, 0.4], [0, 0])!.overall, 0.30000000000000004, 'no momentum yet: the plain mean');
    const at = SCALAR_KEYS.indexOf('momentumNorm');
    const sc = new Float32Array(2 * SCALAR_KEYS.length);
    sc[at] = 2;
    sc[SCALAR_KEYS.length + at] = 1;
    const s = capturedOverallSeries([
      { step: 1, names: ['a', 'b'], scalars: sc },
      { step: 2, names: ['a', 'b'], scalars: sc, extras: { capturedEnergy: Float32Array.from([0.5, 1]) } },
    ]);
    assert.deepEqual(s.steps, [2]);
    assert.ok(Math.abs(s.values[0] - 5 / 9) < 1e-7);
  });

  it('saliency shares and role counts', () => {
    const shares = saliencyShares([{ name: 'a', saliencyMass: 1 }, { name: 'b' }, { name: 'c', saliencyMass: 3 }]);
    assert.deepEqual(shares, [
      { name: 'c', mass: 3, share: 0.75 },
      { name: 'a', mass: 1, share: 0.25 },
    ]);
    assert.deepEqual(roleCounts(TENSORS), { trained: 1, frozen: 1, lora: 1, adapter: 1, unknown: 0 });
  });

  it('the UI state carries the role filter; an older saved state gets "all"', () => {
    assert.ok(isUiState({ ...DEFAULT_UI_STATE, roleFilter: 'frozen' }));
    assert.equal(isUiState({ ...DEFAULT_UI_STATE, roleFilter: 'melted' }), false);
    const old: Record<string, unknown> = { ...DEFAULT_UI_STATE, sortKey: 'capturedEnergy' };
    delete old.roleFilter;
    assert.equal(isUiState(old), false);
    const c = coerceUiState(old);
    assert.equal(c.roleFilter, 'all');
    assert.equal(c.sortKey, 'capturedEnergy', 'the extras are sortable columns');
  });

  it('run info: a fine-tune names its base, mao its rank; a continued run has no base', () => {
    const rec = (lineage: object) => JSON.stringify({ name: 'r', status: 'completed', config: { train: { optimizer: { type: 'mao', rank: 8 } } }, lineage });
    const ft = runInfoFromRecord('/tmp/r', rec({ relation: 'fine-tune', parentCheckpoint: '/runs/base/checkpoints/step-20.safetensors' }));
    assert.equal(ft.base, '/runs/base/checkpoints/step-20.safetensors');
    assert.equal(ft.rank, 8);
    assert.equal(runInfoFromRecord('/tmp/r', rec({ relation: 'continue', parentCheckpoint: '/x' })).base, null);
    assert.equal(runInfoFromRecord('/tmp/r', rec({})).base, null);
    // The snapshot's validator accepts the new fields.
    const msg = { kind: 'notification', type: 'run', params: { run: ft, live: false } };
    assert.ok(parseHostMessage(msg).ok, JSON.stringify(parseHostMessage(msg)));
  });
});

