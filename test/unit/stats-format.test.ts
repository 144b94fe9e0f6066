// The statistics frame format (src/protocol/stats.ts): round trip, concatenation, truncated tails, malformed
// headers, random corruption (a StatsFormatError, null or a well-formed frame, never anything else), and the
// engine-side helpers that depend only on the format (stats checkpoint tensors, stats.bin truncation on resume).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  HIST_BINS,
  SCALAR_KEYS,
  STATS_MAGIC,
  StatsFormatError,
  StatsFrame,
  StatsFrameHeader,
  decodeStatsFrame,
  decodeStatsFrames,
  encodeStatsFrame,
  frameFloats,
  histQuantile,
  histUpperEdge,
  matrixView,
} from '../../src/protocol/stats';
import { histBin } from '../../src/engine/cpu/stats';
import { statsCheckpoint, truncateStatsFile } from '../../src/engine/stats/layer-stats';
import { seededRandom } from '../../src/engine/data/rng';

// Reproducible inputs from Basin's one PRNG.
const rng = seededRandom;

const SHAPES = [[1], [7], [3, 5], [4, 5, 6], [], [0], [3, 0]];

function makeFrame(step: number, seed = step, shapes = SHAPES): { header: StatsFrameHeader; payload: Float32Array; bytes: Uint8Array } {
  const header: StatsFrameHeader = {
    step,
    time: 1_700_000_000_000 + step,
    tensors: shapes.map((shape, i) => ({ name: `layer.${i}.wéight`, shape, ...matrixView(shape) })),
  };
  const r = rng(seed);
  const payload = Float32Array.from({ length: frameFloats(header.tensors) }, () => r() * 10 - 5);
  return { header, payload, bytes: encodeStatsFrame(header, payload) };
}

function assertFrameMatches(frame: StatsFrame, header: StatsFrameHeader, payload: Float32Array): void {
  assert.equal(frame.step, header.step);
  assert.equal(frame.time, header.time);
  assert.equal(frame.tensors.length, header.tensors.length);
  let p = 0;
  frame.tensors.forEach((t, k) => {
    const h = header.tensors[k];
    assert.equal(t.name, h.name);
    assert.deepEqual(t.shape, h.shape);
    assert.equal(t.rows, h.rows);
    assert.equal(t.cols, h.cols);
    SCALAR_KEYS.forEach((key, i) => assert.equal(t.scalars[key], payload[p + i], `${h.name} ${key}`));
    p += SCALAR_KEYS.length;
    assert.deepEqual([...t.hist], [...payload.subarray(p, p + HIST_BINS)]);
    p += HIST_BINS;
    assert.deepEqual([...t.vRow], [...payload.subarray(p, p + t.rows)]);
    p += t.rows;
    assert.deepEqual([...t.vCol], [...payload.subarray(p, p + t.cols)]);
    p += t.cols;
  });
  assert.equal(p, payload.length);
}

/** A frame whose header JSON is replaced (padded to a multiple of 4) and whose payload is `floats` floats. */
function rawFrame(json: string, floats = 0, hlenOverride?: number): Uint8Array {
  let h = new TextEncoder().encode(json);
  const pad = (4 - (h.length % 4)) % 4;
  if (pad) h = new TextEncoder().encode(json + ' '.repeat(pad));
  const out = new Uint8Array(8 + h.length + floats * 4);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, STATS_MAGIC, true);
  dv.setUint32(4, hlenOverride ?? h.length, true);
  out.set(h, 8);
  return out;
}

describe('statistics frame format', () => {
  it('round-trips a frame (awkward shapes, non-ASCII names, an unaligned input offset)', () => {
    const { header, payload, bytes } = makeFrame(12);
    assert.equal(bytes.length % 4, 0);
    assert.equal(new DataView(bytes.buffer).getUint32(0, true), STATS_MAGIC);
    const r = decodeStatsFrame(bytes);
    assert.ok(r);
    assert.equal(r.next, bytes.length);
    assertFrameMatches(r.frame, header, payload);
    // At an odd offset inside a larger buffer.
    const shifted = new Uint8Array(bytes.length + 3);
    shifted.set(bytes, 3);
    const s = decodeStatsFrame(shifted, 3);
    assert.ok(s);
    assert.equal(s.next, shifted.length);
    assertFrameMatches(s.frame, header, payload);
    // A subarray with a non-zero byteOffset.
    const sub = decodeStatsFrame(shifted.subarray(3));
    assert.ok(sub);
    assertFrameMatches(sub.frame, header, payload);
  });

  it('decodes concatenated frames and ignores a truncated tail at every cut point', () => {
    const frames = [makeFrame(1), makeFrame(2, 7, [[2, 2]]), makeFrame(3)];
    const all = new Uint8Array(frames.reduce((n, f) => n + f.bytes.length, 0));
    let off = 0;
    for (const f of frames) {
      all.set(f.bytes, off);
      off += f.bytes.length;
    }
    const decoded = decodeStatsFrames(all);
    assert.deepEqual(decoded.map((f) => f.step), [1, 2, 3]);
    decoded.forEach((f, i) => assertFrameMatches(f, frames[i].header, frames[i].payload));
    const firstTwo = frames[0].bytes.length + frames[1].bytes.length;
    for (let cut = firstTwo; cut < all.length; cut++) {
      assert.deepEqual(decodeStatsFrames(all.subarray(0, cut)).map((f) => f.step), [1, 2], `cut at ${cut}`);
    }
    for (let cut = 0; cut < frames[0].bytes.length; cut++) assert.equal(decodeStatsFrame(all.subarray(0, cut)), null, `cut at ${cut}`);
    assert.deepEqual(decodeStatsFrames(new Uint8Array(0)), []);
  });

  it('throws StatsFormatError on malformed magic, lengths and headers', () => {
    const good = makeFrame(5).bytes;
    const bad = (mutate: (b: Uint8Array, dv: DataView) => Uint8Array | void, what: string) => {
      const b = good.slice();
      const out = mutate(b, new DataView(b.buffer)) ?? b;
      assert.throws(() => decodeStatsFrame(out), StatsFormatError, what);
    };
    bad((b) => void (b[0] ^= 1), 'magic');
    bad((_, dv) => dv.setUint32(4, 6, true), 'header length not a multiple of 4');
    bad((_, dv) => dv.setUint32(4, 0xfffffffc, true), 'huge header length');
    bad((_, dv) => dv.setUint32(4, 8, true), 'header length cutting the JSON');
    bad(() => rawFrame('{"step":1,"time":0,"tensors":[]', 0), 'not JSON');
    bad(() => rawFrame('', 0, 0), 'empty header');
    bad(() => rawFrame('null'), 'null header');
    bad(() => rawFrame('[1,2,3]'), 'array header');
    bad(() => rawFrame('{"time":0,"tensors":[]}'), 'no step');
    bad(() => rawFrame('{"step":1,"tensors":[]}'), 'no time');
    bad(() => rawFrame('{"step":1,"time":0,"tensors":{}}'), 'tensors not an array');
    bad(() => rawFrame('{"step":1,"time":0,"tensors":[null]}'), 'null tensor');
    bad(() => rawFrame('{"step":1,"time":0,"tensors":[{"name":"a","shape":[2],"rows":2,"cols":-1}]}', 100), 'negative cols');
    bad(() => rawFrame('{"step":1,"time":0,"tensors":[{"name":"a","shape":[2],"rows":2.5,"cols":1}]}', 100), 'fractional rows');
    bad(() => rawFrame('{"step":1,"time":0,"tensors":[{"name":"a","shape":[2],"rows":3,"cols":1}]}', 100), 'rows disagree with the shape');
    bad(() => rawFrame('{"step":1,"time":0,"tensors":[{"name":"a","shape":["2"],"rows":2,"cols":1}]}', 100), 'shape of strings');
    bad(() => rawFrame('{"step":1,"time":0,"tensors":[{"name":7,"shape":[2],"rows":2,"cols":1}]}', 100), 'name not a string');
    // A well-formed empty frame is fine.
    const empty = decodeStatsFrame(rawFrame('{"step":1,"time":0,"tensors":[]}'));
    assert.ok(empty);
    assert.equal(empty.frame.tensors.length, 0);
    // encode refuses a payload of the wrong length.
    const { header, payload } = makeFrame(1);
    assert.throws(() => encodeStatsFrame(header, payload.subarray(1)), /payload has/);
  });

  it('random corruption: a StatsFormatError, null, or well-formed frames, never another exception', () => {
    const r = rng(2024);
    const base = new Uint8Array([...makeFrame(1).bytes, ...makeFrame(2, 9, [[31, 17], [2]]).bytes]);
    const outcomes = { error: 0, nullish: 0, frames: 0 };
    for (let iter = 0; iter < 1500; iter++) {
      const b = base.slice(0, r() < 0.2 ? Math.floor(r() * base.length) : base.length);
      const flips = 1 + Math.floor(r() * 4);
      for (let k = 0; k < flips && b.length; k++) {
        const i = r() < 0.5 ? Math.floor(r() * Math.min(b.length, 200)) : Math.floor(r() * b.length); // headers more often
        b[i] = r() < 0.5 ? b[i] ^ (1 << Math.floor(r() * 8)) : Math.floor(r() * 256);
      }
      try {
        const frames = decodeStatsFrames(b);
        if (frames.length === 0) outcomes.nullish++;
        else outcomes.frames++;
        for (const f of frames) {
          assert.equal(typeof f.step, 'number');
          for (const t of f.tensors) {
            assert.equal(t.hist.length, HIST_BINS);
            assert.equal(t.vRow.length, t.rows);
            assert.equal(t.vCol.length, t.cols);
            for (const k of SCALAR_KEYS) assert.equal(typeof t.scalars[k], 'number');
          }
        }
      } catch (e) {
        if (!(e instanceof StatsFormatError)) throw new Error(`iteration ${iter}: ${(e as Error).name}: ${(e as Error).message}`);
        outcomes.error++;
      }
    }
    assert.ok(outcomes.error > 50 && outcomes.frames > 50, JSON.stringify(outcomes));
  });

  it('histogram bins and quantiles follow the documented edges', () => {
    assert.equal(histBin(0), 0);
    assert.equal(histBin(-1), 0);
    assert.equal(histBin(1e-30), 0);
    assert.equal(histBin(Infinity), HIST_BINS - 1);
    assert.equal(histBin(NaN), HIST_BINS - 1);
    assert.equal(histBin(10), HIST_BINS - 1);
    assert.equal(histBin(2e-16), 0);
    assert.equal(histBin(5e-16), 1); // log10 = -15.3: the second half-decade
    assert.equal(histBin(0.5), HIST_BINS - 1);
    assert.equal(histBin(0.2), HIST_BINS - 2);
    const hist = new Float32Array(HIST_BINS);
    hist[3] = 50;
    hist[10] = 40;
    hist[20] = 10;
    assert.equal(histQuantile(hist, 0.5), histUpperEdge(3));
    assert.equal(histQuantile(hist, 0.9), histUpperEdge(10));
    assert.equal(histQuantile(hist, 0.99), histUpperEdge(20));
    assert.equal(histQuantile(new Float32Array(HIST_BINS), 0.5), 0);
  });

  it('stats checkpoint tensors follow the weight names and SCALAR_KEYS order', () => {
    const { bytes } = makeFrame(40);
    const frame = decodeStatsFrame(bytes)!.frame;
    const { tensors, metadata } = statsCheckpoint(frame);
    assert.equal(tensors.length, 4 * frame.tensors.length);
    assert.equal(metadata.step, '40');
    assert.deepEqual(metadata.scalarKeys.split(','), [...SCALAR_KEYS]);
    const t = frame.tensors[3];
    const byName = new Map(tensors.map((x) => [x.name, x]));
    const sc = byName.get(`${t.name}.scalars`)!;
    assert.deepEqual(sc.shape, [SCALAR_KEYS.length]);
    assert.deepEqual([...(sc.data as Float32Array)], SCALAR_KEYS.map((k) => t.scalars[k]));
    assert.deepEqual(byName.get(`${t.name}.v_row`)!.shape, [t.rows]);
    assert.deepEqual(byName.get(`${t.name}.v_col`)!.shape, [t.cols]);
    assert.deepEqual(byName.get(`${t.name}.v_hist`)!.shape, [HIST_BINS]);
  });

  it('truncateStatsFile keeps complete frames up to the resume step and drops a torn tail', async () => {
    const dir = await fs.promises.mkdtemp(path.join(os.tmpdir(), 'basin-stats-'));
    try {
      const file = path.join(dir, 'stats.bin');
      await truncateStatsFile(file, 10); // no file: nothing to do
      assert.equal(fs.existsSync(file), false);
      const f = [10, 20, 30].map((s) => makeFrame(s).bytes);
      const torn = f[2].subarray(0, 17);
      await fs.promises.writeFile(file, new Uint8Array([...f[0], ...f[1], ...torn]));
      await truncateStatsFile(file, 25);
      assert.deepEqual(decodeStatsFrames(await fs.promises.readFile(file)).map((x) => x.step), [10, 20]);
      assert.equal((await fs.promises.stat(file)).size, f[0].length + f[1].length);
      // Steps must increase: a repeated run of frames is dropped from where the steps go back.
      await fs.promises.appendFile(file, new Uint8Array([...f[0], ...f[1]]));
      await truncateStatsFile(file, 25);
      assert.deepEqual(decodeStatsFrames(await fs.promises.readFile(file)).map((x) => x.step), [10, 20]);
      await truncateStatsFile(file, 15);
      assert.deepEqual(decodeStatsFrames(await fs.promises.readFile(file)).map((x) => x.step), [10]);
      await truncateStatsFile(file, 0);
      assert.equal((await fs.promises.stat(file)).size, 0);
    } finally {
      await fs.promises.rm(dir, { recursive: true, force: true });
    }
  });
});
