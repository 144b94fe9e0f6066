import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createHash } from 'node:crypto';
import {
  RunFolder,
  RunRecordError,
  canonicalJson,
  configHash,
  listRuns,
  openRun,
  timestamp,
} from '../../src/files/run-record';
import { writeSafetensors } from '../../src/files/safetensors';

const config = { name: 'demo', seed: 1, model: { type: 'transformer', vocab: 64 }, train: { steps: 10 } };
const when = new Date(2024, 0, 2, 3, 4, 5); // local time 2024-01-02 03:04:05

async function writeCkpt(run: RunFolder, step: number, withOpt = true): Promise<void> {
  await writeSafetensors(path.join(run.dir, run.checkpointPath(step)), [{ name: 'w', dtype: 'F32', shape: [2], data: new Float32Array([step, step]) }]);
  if (withOpt) await writeSafetensors(run.resolve(run.optimizerStatePath(step)), [{ name: 'w.m', dtype: 'F32', shape: [2], data: new Float32Array(2) }]);
}

describe('run record', () => {
  let out: string;
  beforeEach(() => {
    out = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-runs-'));
  });
  afterEach(() => {
    fs.rmSync(out, { recursive: true, force: true });
  });

  it('canonical JSON and the config hash ignore key order and undefined fields', () => {
    assert.equal(canonicalJson({ b: 1, a: { d: [1, { y: 2, x: 1 }], c: undefined } }), '{"a":{"d":[1,{"x":1,"y":2}]},"b":1}');
    assert.equal(configHash({ a: 1, b: 2 }), configHash({ b: 2, a: 1 }));
    assert.notEqual(configHash({ a: 1 }), configHash({ a: 2 }));
    assert.equal(configHash(config), createHash('sha256').update(canonicalJson(config)).digest('hex'));
    assert.equal(timestamp(when), '20240102-030405');
  });

  it('creates <name>-<yyyymmdd-hhmmss> with run.json, metrics.jsonl, checkpoints/ and stats/; a taken name gets -2', async () => {
    const run = await RunFolder.create(out, 'demo', { config, configPath: 'examples/demo.basin.yaml', now: when, device: { description: 'lavapipe', fallback: true } });
    assert.equal(run.dir, path.join(out, 'demo-20240102-030405'));
    for (const f of ['run.json', 'metrics.jsonl', 'checkpoints', 'stats']) assert.ok(fs.existsSync(path.join(run.dir, f)), f);
    const rec = JSON.parse(fs.readFileSync(run.runJsonPath, 'utf8'));
    assert.equal(rec.version, 1);
    assert.equal(rec.kind, 'train', 'a run is a training run unless its creator says otherwise');
    assert.equal(rec.name, 'demo');
    assert.equal(rec.status, 'running');
    assert.deepEqual(rec.config, config);
    assert.equal(rec.configPath, path.resolve('examples/demo.basin.yaml'));
    assert.equal(rec.configHash, configHash(config));
    assert.equal(rec.createdAt, when.toISOString());
    assert.deepEqual(rec.device, { description: 'lavapipe', fallback: true });
    assert.deepEqual(rec.lineage, {});
    assert.deepEqual(rec.checkpoints, []);
    assert.equal(rec.lastMetrics, null);
    assert.equal(rec.process.pid, process.pid);
    assert.equal(run.checkpointPath(200), 'checkpoints/step-200.safetensors');
    assert.equal(run.optimizerStatePath(200), 'checkpoints/step-200.opt.safetensors');
    assert.equal(run.statsPath(50), 'stats/step-50.safetensors');
    assert.equal(run.resolve(run.checkpointPath(200)), path.join(run.dir, 'checkpoints', 'step-200.safetensors'));

    const again = await RunFolder.create(out, 'demo', { config, now: when });
    assert.equal(again.dir, path.join(out, 'demo-20240102-030405-2'));
    await assert.rejects(RunFolder.create(out, '../escape', { config }), RunRecordError);
  });

  it('appends metrics (one JSON object per line), records checkpoints, finishes; run.json is written atomically', async () => {
    const run = await RunFolder.create(out, 'demo', { config, now: when, lineage: { parentRun: 'runs/base-1', dataWindow: { from: 0, to: 1000 } } });
    for (let step = 10; step <= 50; step += 10) await run.appendMetrics({ step, loss: 5 - step / 20, lr: 0.003, gradNorm: 1.5 });
    await run.flush();
    const lines = fs.readFileSync(run.metricsPath, 'utf8').trimEnd().split('\n');
    assert.equal(lines.length, 5);
    const first = JSON.parse(lines[0]);
    assert.equal(first.step, 10);
    assert.equal(typeof first.time, 'number');
    assert.equal(first.loss, 4.5);
    let rec = JSON.parse(fs.readFileSync(run.runJsonPath, 'utf8'));
    assert.equal(rec.lastMetrics.step, 50);

    await writeCkpt(run, 20);
    await writeCkpt(run, 40, false);
    const e20 = await run.addCheckpoint(20, { valMetric: 0.4 });
    assert.deepEqual({ ...e20, time: 'T' }, { step: 20, path: 'checkpoints/step-20.safetensors', optimizerPath: 'checkpoints/step-20.opt.safetensors', time: 'T', valMetric: 0.4 });
    await run.addCheckpoint({ step: 40, path: run.checkpointPath(40), time: Date.parse('2024-05-01T00:00:00Z'), metrics: { val_hr10: 0.8 } });
    await assert.rejects(run.addCheckpoint(60), /checkpoint file missing/);
    await run.finish('completed');
    rec = JSON.parse(fs.readFileSync(run.runJsonPath, 'utf8'));
    assert.equal(rec.status, 'completed');
    assert.deepEqual(
      rec.checkpoints.map((c: { step: number; path: string }) => [c.step, c.path]),
      [
        [20, 'checkpoints/step-20.safetensors'],
        [40, 'checkpoints/step-40.safetensors'],
      ],
    );
    assert.equal(rec.checkpoints[1].time, '2024-05-01T00:00:00.000Z');
    assert.deepEqual(rec.checkpoints[1].metrics, { val_hr10: 0.8 });
    assert.equal(rec.checkpoints[1].optimizerPath, undefined);
    assert.deepEqual(rec.lineage, { parentRun: 'runs/base-1', dataWindow: { from: 0, to: 1000 } });
    assert.ok(rec.updatedAt >= rec.createdAt);
    // No temporary files left beside run.json.
    assert.deepEqual(fs.readdirSync(run.dir).sort(), ['checkpoints', 'metrics.jsonl', 'run.json', 'stats']);
  });

  it('failure records the error; finishSync works from exit handlers', async () => {
    const run = await RunFolder.create(out, 'bad', { config });
    await run.finish('failed', new Error('NaN loss at step 7'));
    let rec = (await openRun(run.dir)).record;
    assert.equal(rec.status, 'failed');
    assert.equal(rec.error?.message, 'NaN loss at step 7');
    assert.match(rec.error?.stack ?? '', /NaN loss/);
    const run2 = await RunFolder.create(out, 'cancelled', { config });
    run2.finishSync('cancelled');
    rec = (await openRun(run2.dir)).record;
    assert.equal(rec.status, 'cancelled');
    const run3 = await RunFolder.create(out, 'str', { config });
    await run3.update({ status: 'failed', error: 'out of memory', lastMetrics: { loss: 3.2 } });
    rec = (await openRun(run3.dir)).record;
    assert.deepEqual(rec.error, { message: 'out of memory' });
    assert.deepEqual(rec.lastMetrics, { loss: 3.2 });
  });

  it('openRun reads it back and finds the latest checkpoint for resume (even one a crash kept out of run.json)', async () => {
    const run = await RunFolder.create(out, 'resume', { config, now: when });
    await writeCkpt(run, 100);
    await run.addCheckpoint(100, { valMetric: 0.5 });
    for (let s = 10; s <= 150; s += 10) await run.appendMetrics({ step: s, loss: 1 });
    await run.flush();
    // A crash: checkpoint 200 written (atomically) but never recorded, and a torn metrics line.
    await writeCkpt(run, 200);
    fs.appendFileSync(run.metricsPath, '{"step": 160, "lo');
    fs.writeFileSync(path.join(run.checkpointsDir, '.step-300.safetensors.123.abc.tmp'), 'partial');
    fs.writeFileSync(path.join(run.checkpointsDir, 'step-250.opt.safetensors'), 'an optimizer file alone is not a checkpoint');

    const reopened = await openRun(run.dir);
    assert.equal(reopened.record.status, 'running');
    assert.equal(reopened.record.configHash, configHash(config));
    assert.deepEqual(reopened.record.checkpoints.map((c) => c.step), [100]);
    const latest = reopened.latestCheckpoint();
    assert.ok(latest);
    assert.equal(latest.step, 200);
    assert.equal(latest.path, 'checkpoints/step-200.safetensors');
    assert.equal(latest.absPath, path.join(run.dir, 'checkpoints', 'step-200.safetensors'));
    assert.equal(latest.optimizerAbsPath, path.join(run.dir, 'checkpoints', 'step-200.opt.safetensors'));
    const rows = await reopened.readMetrics();
    assert.equal(rows.length, 15); // the torn line is skipped
    await reopened.truncateMetricsAfter(100);
    assert.deepEqual((await reopened.readMetrics()).map((r) => r.step), [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
    assert.equal(reopened.record.lastMetrics?.step, 100);
    await reopened.resume();
    await reopened.appendMetrics({ step: 110, loss: 0.9 });
    await reopened.finish('completed');
    const final = (await openRun(run.dir)).record;
    assert.equal(final.status, 'completed');
    assert.equal(final.lastMetrics?.step, 110);

    const empty = await RunFolder.create(out, 'empty', { config });
    assert.equal(empty.latestCheckpoint(), null);
  });

  it('records the run kind; reads files without one (written before the field existed) as training runs', async () => {
    const merged = await RunFolder.create(out, 'merged', { kind: 'merge', config: { name: 'merged' }, now: when });
    assert.equal(JSON.parse(fs.readFileSync(merged.runJsonPath, 'utf8')).kind, 'merge');
    assert.equal((await openRun(merged.dir)).record.kind, 'merge');
    await assert.rejects(RunFolder.create(out, 'bad', { kind: 'Not A Kind', config }), /run kind/);

    const old = await RunFolder.create(out, 'old', { config, now: when });
    const { kind: _dropped, ...withoutKind } = JSON.parse(fs.readFileSync(old.runJsonPath, 'utf8'));
    fs.writeFileSync(old.runJsonPath, JSON.stringify(withoutKind));
    const reopened = await openRun(old.dir);
    assert.equal(reopened.record.kind, 'train');
    // Rewritten by a newer Basin, the record gains the field.
    await reopened.update({ status: 'completed' });
    assert.equal(JSON.parse(fs.readFileSync(old.runJsonPath, 'utf8')).kind, 'train');

    fs.writeFileSync(old.runJsonPath, JSON.stringify({ ...withoutKind, kind: 7 }));
    await assert.rejects(openRun(old.dir), /"kind" must be a non-empty string/);
  });

  it('openRun rejects what is not a run record', async () => {
    await assert.rejects(openRun(path.join(out, 'nope')), (e: unknown) => e instanceof RunRecordError && /not a run folder/.test(e.message));
    const d = path.join(out, 'broken');
    fs.mkdirSync(d);
    fs.writeFileSync(path.join(d, 'run.json'), '{"version": 1, "name": "x"');
    await assert.rejects(openRun(d), /run\.json: not valid JSON/);
    fs.writeFileSync(path.join(d, 'run.json'), JSON.stringify({ version: 99, name: 'x' }));
    await assert.rejects(openRun(d), /version 99 is newer/);
    fs.writeFileSync(path.join(d, 'run.json'), JSON.stringify({ version: 1, name: 'x', status: 'exploded' }));
    await assert.rejects(openRun(d), /"status" must be one of/);
  });

  it('listRuns lists run folders oldest first, with unreadable ones flagged and non-runs skipped', async () => {
    assert.deepEqual(await listRuns(path.join(out, 'missing')), []);
    const a = await RunFolder.create(out, 'a', { config, now: new Date(2024, 0, 1) });
    const b = await RunFolder.create(out, 'b', { config, now: new Date(2023, 0, 1) });
    fs.mkdirSync(path.join(out, 'not-a-run'));
    fs.writeFileSync(path.join(out, 'stray.txt'), 'x');
    fs.mkdirSync(path.join(out, 'corrupt'));
    fs.writeFileSync(path.join(out, 'corrupt', 'run.json'), 'garbage');
    const runs = await listRuns(out);
    assert.deepEqual(
      runs.map((r) => [r.name, 'record' in r ? r.record.name : 'error']),
      [
        ['corrupt', 'error'],
        [path.basename(b.dir), 'b'],
        [path.basename(a.dir), 'a'],
      ],
    );
    const bad = runs[0];
    assert.ok('error' in bad && /not valid JSON/.test(bad.error));
  });
});
