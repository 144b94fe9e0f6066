// The statistics panel's message validators (both directions) and its bounded-memory data reduction.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  answerRequest,
  coerceUiState,
  command,
  DEFAULT_UI_STATE,
  dispatchCommand,
  notification,
  parseHostMessage,
  parseWebviewMessage,
  request,
  toMetricRow,
  type CommandHandlers,
  type RequestHandlers,
  type RunInfo,
} from '../../src/protocol/panels/stats';
import { FrameIndexer, FrameStore, frameScalars, HeaderCache, LineSplitter, ScalarHistory, toArrayBuffer } from '../../src/protocol/panels/stats-reduce';
import { decodeStatsFrame, SCALAR_KEYS } from '../../src/protocol/stats';
import { RunSource, runInfoFromRecord } from '../../src/host/panels/stats-source';
import { axisFormatter, contrastRatio, ensureContrast, histogramView, middleEllipsis, plural, wrapText } from '../../webview/shared/charts';
import { appendSyntheticStep, syntheticFrame, syntheticTensors, writeSyntheticRun } from '../fixtures/stats-run';

const run: RunInfo = {
  dir: '/tmp/r',
  name: 'r',
  status: 'completed',
  step: 10,
  totalSteps: 100,
  statsEvery: 5,
  checkpoints: [10],
  device: null,
  createdAt: null,
  updatedAt: null,
  error: null,
  optimizer: 'adamw',
  gradClip: 1,
  classes: 64,
  base: null,
  rank: null,
  kind: 'train',
};

describe('stats panel protocol: webview → host', () => {
  it('accepts each valid command and request', () => {
    const ok = [
      command('ready', { protocol: 1 }),
      command('uiState', { ...DEFAULT_UI_STATE, selected: 'a.weight', scrollTop: 40 }),
      command('perf', { phase: 'firstPaint', ms: 120.5, renderMs: 30, layers: 500, frames: 40 }),
      command('log', { level: 'error', message: 'CSP violation' }),
      command('revealRunFolder', {}),
      request(1, 'layerHistory', { tensor: 'a.weight' }),
      request(2, 'refresh', {}),
    ];
    for (const m of ok) assert.equal(parseWebviewMessage(m).ok, true, JSON.stringify(m));
  });

  it('refuses malformed messages with a reason', () => {
    const bad: unknown[] = [
      null,
      'ready',
      [],
      { kind: 'command' },
      { kind: 'command', type: 'nope', params: {} },
      { kind: 'command', type: 'ready', params: {} },
      { kind: 'command', type: 'ready', params: { protocol: -1 } },
      { kind: 'command', type: 'uiState', params: { ...DEFAULT_UI_STATE, tab: 'bogus' } },
      { kind: 'command', type: 'uiState', params: { ...DEFAULT_UI_STATE, sortKey: 'loss' } },
      { kind: 'command', type: 'uiState', params: { ...DEFAULT_UI_STATE, scrollTop: -1 } },
      { kind: 'command', type: 'uiState', params: { ...DEFAULT_UI_STATE, detailOpen: 'yes' } },
      { kind: 'command', type: 'perf', params: { phase: 'firstPaint', ms: NaN, renderMs: 0, layers: 1, frames: 1 } },
      { kind: 'command', type: 'perf', params: { phase: 'other', ms: 1, renderMs: 0, layers: 1, frames: 1 } },
      { kind: 'command', type: 'log', params: { level: 'fatal', message: 'x' } },
      { kind: 'command', type: 'log', params: { level: 'info', message: 'x'.repeat(70_000) } },
      { kind: 'request', type: 'layerHistory', params: { tensor: 'a' } }, // no id
      { kind: 'request', id: 1.5, type: 'layerHistory', params: { tensor: 'a' } },
      { kind: 'request', id: 1, type: 'layerHistory', params: { tensor: 3 } },
      { kind: 'request', id: 1, type: 'toString', params: {} }, // inherited property is no message type
      { kind: 'notification', type: 'snapshot', params: {} }, // host → webview kind
    ];
    for (const m of bad) {
      const r = parseWebviewMessage(m);
      assert.equal(r.ok, false, JSON.stringify(m)?.slice(0, 200));
      if (!r.ok) assert.ok(r.reason.length > 0);
    }
  });

  it('dispatches by type through a typed handler table', async () => {
    const seen: string[] = [];
    const handlers: CommandHandlers = {
      ready: (p) => seen.push(`ready ${p.protocol}`),
      uiState: (p) => seen.push(`ui ${p.tab}`),
      perf: (p) => seen.push(`perf ${p.ms}`),
      log: (p) => seen.push(`log ${p.message}`),
      revealRunFolder: () => seen.push('reveal'),
    };
    for (const m of [command('ready', { protocol: 1 }), command('log', { level: 'info', message: 'hi' })]) {
      const r = parseWebviewMessage(m);
      assert.ok(r.ok && r.message.kind === 'command');
      if (r.ok && r.message.kind === 'command') dispatchCommand(handlers, r.message);
    }
    assert.deepEqual(seen, ['ready 1', 'log hi']);
    const req: RequestHandlers = {
      layerHistory: ({ tensor }) => (tensor === 'x' ? null : Promise.reject(new Error('no such tensor'))),
      refresh: () => ({ frames: 3 }),
    };
    const ok = await answerRequest(req, request(7, 'refresh', {}) as never);
    assert.deepEqual(ok, { kind: 'response', id: 7, type: 'refresh', ok: true, result: { frames: 3 } });
    const err = await answerRequest(req, request(8, 'layerHistory', { tensor: 'y' }) as never);
    assert.deepEqual(err, { kind: 'response', id: 8, type: 'layerHistory', ok: false, error: 'no such tensor' });
    // The replies are valid host → webview messages.
    assert.equal(parseHostMessage(ok).ok, true);
    assert.equal(parseHostMessage(err).ok, true);
  });
});

describe('stats panel protocol: host → webview', () => {
  const history = { steps: [5, 10], names: ['a', 'b'], data: new Float32Array(2 * 2 * SCALAR_KEYS.length).buffer };
  const snapshot = notification('snapshot', {
    run,
    metrics: [{ step: 1, loss: 2 }],
    frames: [new ArrayBuffer(8)],
    framesTotal: 1,
    history,
    pinned: null,
    live: false,
  });

  it('accepts valid notifications and responses', () => {
    const ok = [
      snapshot,
      notification('frames', { frames: [new ArrayBuffer(4)], framesTotal: 2 }),
      notification('metrics', { rows: [{ step: 2, loss: 1.5, val_loss: 1.7 }] }),
      notification('run', { run: { ...run, status: 'interrupted' }, live: false }),
      notification('select', { tensor: 'a' }),
      notification('error', { message: 'gone' }),
      { kind: 'response', id: 1, type: 'layerHistory', ok: true, result: null },
      {
        kind: 'response',
        id: 2,
        type: 'layerHistory',
        ok: true,
        result: { tensor: 'a', steps: [1], scalars: Object.fromEntries(SCALAR_KEYS.map((k) => [k, [k === 'vMax' ? null : 1]])) },
      },
    ];
    for (const m of ok) assert.equal(parseHostMessage(m).ok, true, JSON.stringify(m));
  });

  it('refuses malformed notifications', () => {
    const p = snapshot.params as Record<string, unknown>;
    const bad: unknown[] = [
      { ...snapshot, params: { ...p, frames: ['not a buffer'] } },
      { ...snapshot, params: { ...p, frames: [new Uint8Array(4)] } }, // a view is not an ArrayBuffer
      { ...snapshot, params: { ...p, run: { ...run, status: 'exploded' } } },
      { ...snapshot, params: { ...p, metrics: [{ step: 'one' }] } },
      { ...snapshot, params: { ...p, metrics: [{ step: 1, loss: 'high' }] } },
      { ...snapshot, params: { ...p, history: { ...history, data: new ArrayBuffer(3) } } }, // size mismatch
      { ...snapshot, params: { ...p, live: 'yes' } },
      { kind: 'notification', type: 'frames', params: { frames: [], framesTotal: -1 } },
      { kind: 'notification', type: 'launch', params: {} },
      { kind: 'response', id: 1, type: 'refresh', ok: true, result: { frames: 'x' } },
      { kind: 'response', id: 1, type: 'refresh', ok: false },
      { kind: 'response', id: 1, type: 'layerHistory', ok: true, result: { tensor: 'a', steps: [1, 2], scalars: {} } },
      { kind: 'command', type: 'ready', params: { protocol: 1 } },
    ];
    for (const m of bad) assert.equal(parseHostMessage(m).ok, false, JSON.stringify(m)?.slice(0, 200));
  });

  it('reduces metrics.jsonl objects to finite numbers', () => {
    assert.deepEqual(toMetricRow({ step: 3, time: 9, loss: 1.5, note: 'x', nested: { a: 1 }, bad: NaN }), { step: 3, time: 9, loss: 1.5 });
    assert.equal(toMetricRow({ loss: 1 }), null);
    assert.equal(toMetricRow('x'), null);
  });

  it('coerces a saved UI state field by field', () => {
    assert.deepEqual(coerceUiState(undefined), DEFAULT_UI_STATE);
    assert.deepEqual(coerceUiState({ tab: 'layers', sortKey: 'nope', selected: 'w', scrollTop: -3 }), { ...DEFAULT_UI_STATE, tab: 'layers', selected: 'w' });
    assert.equal(coerceUiState({ detailOpen: false }).detailOpen, false);
    assert.equal(coerceUiState({ detailOpen: 'no' }).detailOpen, true);
  });

  it("reads what the panel's words depend on from run.json: optimizer, gradClip, classes", () => {
    const rec = (config: unknown) => runInfoFromRecord('/r', JSON.stringify({ name: 'r', status: 'completed', config }));
    const demo = rec({ model: { type: 'transformer', vocab: 64 }, train: { optimizer: { type: 'adamw' }, gradClip: 1 } });
    assert.deepEqual([demo.optimizer, demo.gradClip, demo.classes], ['adamw', 1, 64]);
    const mlp = rec({ model: { type: 'mlp', classes: 8 }, train: { optimizer: { type: 'sgd' }, gradClip: 0 } });
    assert.deepEqual([mlp.optimizer, mlp.gradClip, mlp.classes], ['sgd', 0, 8]);
    const none = rec(null);
    assert.deepEqual([none.optimizer, none.gradClip, none.classes], [null, null, null]);
    assert.equal(parseHostMessage(notification('run', { run: demo, live: false })).ok, true);
  });
});

describe('stats panel data reduction', () => {
  const tensors = syntheticTensors(6, 8);

  it('splits a byte stream into frames across arbitrary chunk boundaries', () => {
    const frames = [10, 20, 30].map((s) => syntheticFrame(tensors, s, 30));
    const all = new Uint8Array(frames.reduce((a, f) => a + f.length, 0));
    let o = 0;
    for (const f of frames) {
      all.set(f, o);
      o += f.length;
    }
    for (const chunk of [1, 7, 100, 4096, all.length]) {
      const ix = new FrameIndexer();
      const got: number[] = [];
      for (let i = 0; i < all.length; i += chunk) for (const f of ix.push(all.subarray(i, i + chunk))) got.push(f.step);
      assert.deepEqual(got, [10, 20, 30], `chunk ${chunk}`);
      assert.equal(ix.pending, 0);
    }
    // A torn tail waits for the rest.
    const ix = new FrameIndexer();
    assert.equal(ix.push(all.subarray(0, frames[0].length + 5)).length, 1);
    assert.equal(ix.pending, 5);
  });

  it('reuses the tensor list of consecutive headers and reads scalars without decoding payloads', () => {
    const hc = new HeaderCache();
    const a = hc.scan(syntheticFrame(tensors, 1, 10), 0)!;
    const b = hc.scan(syntheticFrame(tensors, 2, 10), 0)!;
    assert.equal(b.step, 2);
    assert.equal(a.tensors, b.tensors, 'the same tensor list object');
    const decoded = decodeStatsFrame(b.bytes)!.frame;
    const sc = frameScalars(b);
    decoded.tensors.forEach((t, i) => SCALAR_KEYS.forEach((k, j) => assert.equal(sc[i * SCALAR_KEYS.length + j], Math.fround(t.scalars[k]))));
    assert.equal(hc.scan(syntheticFrame(tensors, 3, 10).subarray(0, 20), 0), null);
    assert.throws(() => hc.scan(new Uint8Array(16), 0), /bad magic/);
  });

  it('keeps recent frames plus a thinned history within bounds', () => {
    const store = new FrameStore<{ step: number }>((f) => f.step, () => 10, { recent: 4, history: 6, maxBytes: 1e9 });
    for (let s = 1; s <= 1000; s++) store.add({ step: s });
    const steps = store.frames().map((f) => f.step);
    assert.ok(store.size <= 10, `kept ${store.size}`);
    assert.deepEqual(steps.slice(-4), [997, 998, 999, 1000]);
    assert.equal(steps[0], 1, 'the first frame survives thinning');
    assert.deepEqual([...steps].sort((a, b) => a - b), steps, 'in order');
    assert.equal(store.total, 1000);
    // Duplicates (the live feed and the file tail) are skipped.
    assert.equal(store.add({ step: 1000 }), false);
    // A resume from an earlier step drops what came after it.
    const gen = store.generation;
    assert.equal(store.add({ step: 998 }), true);
    assert.equal(store.lastStep, 998);
    assert.ok(store.frames().every((f, i, a) => i === 0 || f.step > a[i - 1].step));
    assert.ok(store.generation > gen);
  });

  it('respects the byte budget but always keeps the newest frame', () => {
    const store = new FrameStore<{ step: number; n: number }>((f) => f.step, (f) => f.n, { recent: 100, history: 100, maxBytes: 1000 });
    for (let s = 1; s <= 50; s++) store.add({ step: s, n: 100 });
    assert.ok(store.byteSize <= 1000);
    store.add({ step: 51, n: 5000 });
    assert.equal(store.size, 1);
    assert.equal(store.latest()?.step, 51);
  });

  it('keeps scalar history per tensor, thinned past its cap, and builds compact payloads', () => {
    const h = new ScalarHistory(64);
    const names = ['a', 'b'];
    for (let s = 0; s < 1000; s++) h.add(s, names, new Float32Array(2 * SCALAR_KEYS.length).fill(s));
    assert.ok(h.length <= 64);
    const a = h.get('a')!;
    assert.equal(a.steps[a.steps.length - 1], 999);
    assert.equal(a.scalars.gradNorm[a.scalars.gradNorm.length - 1], 999);
    assert.equal(h.get('zzz'), null);
    const p = h.toPayload(['b', 'c'], 16);
    assert.equal(p.steps.length, 16);
    assert.equal(p.data.byteLength, 16 * 2 * SCALAR_KEYS.length * 4);
    const f = new Float32Array(p.data);
    assert.equal(f[0], p.steps[0]); // b's gradNorm at the first point
    assert.ok(Number.isNaN(f[SCALAR_KEYS.length]), 'c is missing: NaN');
    const h2 = new ScalarHistory();
    h2.loadPayload(p);
    assert.deepEqual(h2.series('b', 'gradNorm').steps, p.steps);
  });

  it('splits appended text into complete lines', () => {
    const s = new LineSplitter();
    assert.deepEqual(s.push('{"a":1}\n{"b"'), ['{"a":1}']);
    assert.deepEqual(s.push(':2}\n\n'), ['{"b":2}']);
    assert.deepEqual(s.flush(), []);
  });

  it('hands frames over as exact ArrayBuffers', () => {
    const u = new Uint8Array([1, 2, 3, 4]);
    assert.equal(toArrayBuffer(u), u.buffer);
    const v = u.subarray(1, 3);
    assert.deepEqual([...new Uint8Array(toArrayBuffer(v))], [2, 3]);
  });
});

describe('stats panel run source', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-stats-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('reads a finished run and tails appends', async () => {
    const { tensors, totalSteps } = writeSyntheticRun(dir, { layers: 10, frames: 6, statsEvery: 5, status: 'running' });
    const src = new RunSource(dir, { frames: { recent: 2, history: 2, maxBytes: 1e9 } });
    await src.load();
    assert.equal(src.store.total, 6);
    assert.ok(src.store.size <= 4);
    assert.equal(src.store.lastStep, 30);
    assert.equal(src.history.length, 6, 'scalar history keeps every frame');
    assert.ok(src.metrics.length > 0);
    assert.equal(src.run.statsEvery, 5);
    assert.equal(src.run.step, 30);
    // run.json says running but names no process: treated as live.
    assert.equal(src.run.status, 'running');

    appendSyntheticStep(dir, tensors, 35, totalSteps);
    const r = await src.poll();
    assert.deepEqual(r.frames.map((f) => f.step), [35]);
    assert.equal(r.rows.length, 1);
    assert.equal(r.reset, false);
    assert.equal(src.run.step, 35);
    // Nothing new: nothing out.
    const r2 = await src.poll();
    assert.equal(r2.frames.length + r2.rows.length, 0);
    // The same frame from the live feed is a duplicate.
    assert.equal(src.addLiveBytes(syntheticFrame(tensors, 35, totalSteps)).length, 0);
    assert.equal(src.addLiveBytes(syntheticFrame(tensors, 40, totalSteps)).length, 1);
  });

  it('marks a running record whose process is gone as interrupted, and resets on a rewritten file', async () => {
    writeSyntheticRun(dir, { layers: 3, frames: 3, statsEvery: 5, status: 'running' });
    const rec = JSON.parse(fs.readFileSync(path.join(dir, 'run.json'), 'utf8'));
    rec.process = { pid: 2 ** 22 + 12345, host: os.hostname() };
    fs.writeFileSync(path.join(dir, 'run.json'), JSON.stringify(rec));
    const src = new RunSource(dir);
    await src.load();
    assert.equal(src.run.status, 'interrupted');
    fs.writeFileSync(path.join(dir, 'stats.bin'), new Uint8Array(0));
    assert.equal((await src.poll()).reset, true);
  });

  it('pins the frame at or before a checkpoint step', async () => {
    writeSyntheticRun(dir, { layers: 3, frames: 6, statsEvery: 5 });
    const src = new RunSource(dir, { pinnedStep: 17, frames: { recent: 1, history: 1, maxBytes: 1e9 } });
    await src.load();
    assert.equal(src.pinnedFrame?.step, 15, 'found while reading, even though thinning dropped it from the store');
    assert.deepEqual(src.pinned, { step: 17, frameStep: 15 });
  });
});

describe('stats panel drawing helpers (webview/shared/charts)', () => {
  // A monospace measure: 7 px a character.
  const mono = (t: string) => t.length * 7;

  it('shortens names in the middle, keeping the last segment so weight and bias stay apart', () => {
    assert.equal(middleEllipsis('blocks.0.attn.o.weight', 1000, mono), 'blocks.0.attn.o.weight');
    const w = middleEllipsis('blocks.0.attn.o.weight', 120, mono);
    const b = middleEllipsis('blocks.0.attn.o.bias', 120, mono);
    assert.ok(mono(w) <= 120 && mono(b) <= 120, `${w} ${b}`);
    assert.ok(w.startsWith('blocks.') && w.endsWith('….weight'), w);
    assert.ok(b.startsWith('blocks.') && b.endsWith('….bias'), b);
    assert.notEqual(w, b);
    // Too narrow for the whole last segment: head and tail of the name, still within the width.
    const tiny = middleEllipsis('embeddings.position_embeddings_table', 70, mono);
    assert.ok(mono(tiny) <= 70 && tiny.includes('…'), tiny);
  });

  it('formats every tick of an axis alike', () => {
    const f1 = axisFormatter([0.5, 1, 1.5, 2]);
    assert.deepEqual([0.5, 1, 1.5, 2].map(f1), ['0.5', '1.0', '1.5', '2.0']);
    // One tick below 1e-3 puts the whole axis in scientific notation (no "0.001" beside "5e-4").
    const f2 = axisFormatter([5e-4, 1e-3, 2e-3]);
    assert.deepEqual([5e-4, 1e-3, 2e-3].map(f2), ['5e-4', '1e-3', '2e-3']);
    const f3 = axisFormatter([0, 20, 40, 60]);
    assert.deepEqual([0, 20, 40, 60].map(f3), ['0', '20', '40', '60']);
    const f4 = axisFormatter([0.02, 0.05, 0.1, 0.2]);
    assert.deepEqual([0.02, 0.05, 0.1, 0.2].map(f4), ['0.02', '0.05', '0.10', '0.20']);
  });

  it('lifts a series colour to 3:1 contrast on the background, and makes a translucent one opaque', () => {
    assert.ok(contrastRatio('#d18616', '#1f1f1f') >= 3);
    const onWhite = ensureContrast('#cca700', '#ffffff', 3.2);
    assert.ok(contrastRatio(onWhite, '#ffffff') >= 3.2, onWhite);
    const translucent = ensureContrast('#d1861680', '#1f1f1f', 3.2);
    assert.match(translucent, /^rgb\(/);
    assert.ok(contrastRatio(translucent, '#1f1f1f') >= 3.2);
    assert.equal(ensureContrast('#3794ff', '#1e1e1e', 3.2), '#3794ff', 'a colour that passes is kept');
  });

  it('zooms the v histogram to the occupied decades, leaving the zeros bin out', () => {
    const hist = new Array(32).fill(0);
    hist[0] = 32; // zeros (the padding row)
    hist[19] = 60;
    hist[21] = 1000;
    hist[23] = 30;
    const v = histogramView(hist, -16, 0, [1e-5, 3e-5]);
    assert.ok(v);
    assert.deepEqual([v.from, v.to, v.under, v.total], [-7, -4, 32, 1122]);
    // Only zeros: the first bin is the data.
    const z = histogramView([5, ...new Array(31).fill(0)], -16, 0);
    assert.ok(z && z.from === -16 && z.under === 0);
    assert.equal(histogramView(new Array(32).fill(0), -16, 0), null);
  });

  it('wraps text and counts in words', () => {
    assert.deepEqual(wrapText('No statistics yet: they appear after the first 50 steps', 150, mono), ['No statistics yet:', 'they appear after the', 'first 50 steps']);
    assert.equal(plural(1, 'sample'), '1 sample');
    assert.equal(plural(40, 'sample'), '40 samples');
  });
});
