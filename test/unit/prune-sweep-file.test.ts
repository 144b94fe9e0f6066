// The sweep file (src/files/prune/sweep-file.ts): what the panel reads and the CLI prints. Round trip, the
// checks a reader makes (format, points against targets), listing newest first, the table.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SWEEP_FORMAT, SweepFileError, checkSweep, formatSweepTable, listSweepFiles, readSweepFile, sweepFileName, writeSweepFile, type SweepFile } from '../../src/files/prune/sweep-file';
import { sweepView } from '../../src/host/prune/sweep-view';

function sample(): SweepFile {
  const m = (loss: number, acc: number) => ({ loss, accuracy: acc, hr10: 1 });
  return {
    format: SWEEP_FORMAT,
    status: 'completed',
    created: '2026-01-01T00:00:00.000Z',
    updated: '2026-01-01T00:00:01.000Z',
    checkpoint: '/runs/a/checkpoints/step-10.safetensors',
    step: 10,
    options: { scores: [{ type: 'magnitude' }, { type: 'random', seed: 0 }], granularity: 'row', pattern: null, targets: ['layers.*.weight'], base: null, densities: [1, 0.5] },
    targets: [
      { name: 'layers.0.weight', shape: [4, 3], size: 12 },
      { name: 'layers.1.weight', shape: [2, 4], size: 8 },
    ],
    dense: m(0.1, 0.9),
    chance: m(2, 0.1),
    points: [
      { score: 'magnitude', density: 1, kept: 1, layers: [1, 1], metrics: m(0.1, 0.9), ms: 5 },
      { score: 'magnitude', density: 0.5, kept: 0.5, layers: [0.5, 0.5], metrics: m(0.3, 0.8), ms: 5 },
      { score: 'random', density: 1, kept: 1, layers: [1, 1], metrics: m(0.1, 0.9), ms: 5 },
      { score: 'random', density: 0.5, kept: 0.5, layers: [0.5, 0.5], metrics: m(0.9, 0.5), ms: 5 },
    ],
    timing: { scoresMs: { magnitude: 1, random: 1 }, totalMs: 30, denseEvalMs: 4 },
  };
}

describe('prune sweep file', () => {
  let dir = '';
  beforeEach(() => (dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-sweep-'))));
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('round-trips through an atomic write into <run>/prune/, leaving no temp file', async () => {
    const file = path.join(dir, sweepFileName(new Date(2026, 0, 2, 3, 4, 5)));
    assert.equal(path.relative(dir, file), path.join('prune', 'sweep-20260102-030405.json'));
    await writeSweepFile(file, sample());
    assert.deepEqual(await readSweepFile(file), sample());
    assert.deepEqual(fs.readdirSync(path.dirname(file)), ['sweep-20260102-030405.json']);
  });

  it('a reader names the file and the field of a bad file', async () => {
    const file = path.join(dir, 'bad.json');
    fs.writeFileSync(file, '{"format":"other"}');
    await assert.rejects(readSweepFile(file), (e: unknown) => e instanceof SweepFileError && e.message.includes(file) && /format is "other"/.test(e.message));
    const s = sample();
    s.points[1].layers = [0.5];
    fs.writeFileSync(file, JSON.stringify(s));
    await assert.rejects(readSweepFile(file), /points\[1\]\.layers: 1 entries for 2 targets/);
    fs.writeFileSync(file, '{"format":');
    await assert.rejects(readSweepFile(file), /not readable JSON/);
  });

  it('lists a run’s sweep files newest first; none when the run has none', async () => {
    assert.deepEqual(await listSweepFiles(dir), []);
    for (const d of [new Date(2026, 0, 1), new Date(2026, 0, 3), new Date(2026, 0, 2)]) await writeSweepFile(path.join(dir, sweepFileName(d)), sample());
    fs.writeFileSync(path.join(dir, 'prune', 'notes.txt'), '');
    assert.deepEqual((await listSweepFiles(dir)).map((f) => path.basename(f)), ['sweep-20260103-000000.json', 'sweep-20260102-000000.json', 'sweep-20260101-000000.json']);
  });

  it('formats a table: a dense row, one row per density, loss / accuracy / HR@10 per score', () => {
    const t = formatSweepTable(sample()).split('\n');
    assert.match(t[0], /prune sweep of .*step-10\.safetensors: 2 tensors, row \(completed\)/);
    assert.match(t[1], /^density\s+magnitude loss\s+acc\s+HR@10\s+random loss/);
    assert.match(t[2], /^dense\s+0\.1000\s+90\.0%/);
    assert.match(t[4], /^50\.0%\s+0\.3000\s+80\.0%\s+100\.0%\s+0\.9000\s+50\.0%/);
    assert.equal(t.length, 5);
  });
});

describe('prune sweep file: the e2e wide fixture', () => {
  it('is a valid sweep of 600 targets that the panel view takes', async () => {
    const { wideSweep } = (await import('../e2e/fixture/wide-sweep.mjs' as string)) as { wideSweep(o: { checkpoint: string; step: number }): unknown };
    const s = checkSweep('/r/prune/sweep-20260101-000000.json', JSON.parse(JSON.stringify(wideSweep({ checkpoint: '/r/checkpoints/step-40.safetensors', step: 40 }))));
    assert.equal(s.targets.length, 600);
    assert.equal(s.points.length, 24);
    const v = sweepView('/r/prune/sweep-20260101-000000.json', s);
    assert.equal(v.targets.length, 600);
    for (const p of v.points) {
      assert.equal(p.layers.length, 600);
      assert.ok(p.layers.every((k) => k >= 0 && k <= 1));
    }
    const at = (score: string, d: number) => v.points.find((p) => p.score === score && p.density === d)!;
    assert.ok(Math.max(...at('magnitude', 0.3).layers) - Math.min(...at('magnitude', 0.3).layers) > 0.2, 'layers differ, as a global threshold makes them');
  });
});
