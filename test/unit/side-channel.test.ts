// The worker → host binary side channel: the record framing (src/protocol/worker.ts) and the pipe at fd 4 that
// WorkerProcess opens (a stand-in worker writes records there).
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  SIDE_MAGIC,
  SIDE_MAX_BODY_BYTES,
  SIDE_MAX_ID_BYTES,
  SideChannelDecoder,
  SideChannelError,
  SideRecordKind,
  encodeSideRecord,
  type SideRecord,
} from '../../src/protocol/worker';
import { WorkerProcess } from '../../src/host/jobs/worker-process';

function rec(i: number, size: number): { kind: number; jobId: string; runDir: string; step: number; bytes: Uint8Array } {
  const bytes = new Uint8Array(size);
  for (let k = 0; k < size; k++) bytes[k] = (i * 31 + k) & 0xff;
  return { kind: SideRecordKind.Stats, jobId: `train-${i}`, runDir: `/tmp/runs/é-${i}`, step: i * 10, bytes };
}

function same(a: SideRecord, b: ReturnType<typeof rec>): void {
  assert.equal(a.kind, b.kind);
  assert.equal(a.jobId, b.jobId);
  assert.equal(a.runDir, b.runDir);
  assert.equal(a.step, b.step);
  assert.deepEqual(Buffer.from(a.bytes), Buffer.from(b.bytes));
}

describe('side channel framing', () => {
  it('round-trips records fed in any split', () => {
    const recs = [rec(1, 0), rec(2, 7), rec(3, 1000), rec(4, 65_537)];
    const all = Buffer.concat(recs.map((r) => encodeSideRecord(r)));
    for (const chunk of [1, 3, 8, 19, 4096, all.length]) {
      const d = new SideChannelDecoder();
      const got: SideRecord[] = [];
      for (let o = 0; o < all.length; o += chunk) got.push(...d.push(new Uint8Array(all.subarray(o, o + chunk))));
      assert.equal(got.length, recs.length, `chunk ${chunk}`);
      got.forEach((g, i) => same(g, recs[i]));
      assert.equal(d.pending, 0);
    }
  });

  it('holds a partial record until the rest comes', () => {
    const bytes = encodeSideRecord(rec(5, 100));
    const d = new SideChannelDecoder();
    assert.deepEqual(d.push(bytes.subarray(0, bytes.length - 1)), []);
    assert.equal(d.pending, bytes.length - 1);
    const out = d.push(bytes.subarray(bytes.length - 1));
    assert.equal(out.length, 1);
    // The payload owns its memory: later input does not change it.
    assert.equal(out[0].bytes.byteOffset, 0);
    assert.equal(out[0].bytes.buffer.byteLength, 100);
  });

  it('rejects a bad magic, an oversized body and strings that overrun the record, then refuses more input', () => {
    const bad = encodeSideRecord(rec(1, 4));
    new DataView(bad.buffer).setUint32(0, 0xdeadbeef, true);
    const d1 = new SideChannelDecoder();
    assert.throws(() => d1.push(bad), SideChannelError);
    assert.throws(() => d1.push(encodeSideRecord(rec(2, 4))), /bad magic/);

    const big = new Uint8Array(8);
    new DataView(big.buffer).setUint32(0, SIDE_MAGIC, true);
    new DataView(big.buffer).setUint32(4, SIDE_MAX_BODY_BYTES + 1, true);
    assert.throws(() => new SideChannelDecoder().push(big), /out of bounds/);

    const overrun = encodeSideRecord(rec(3, 0));
    new DataView(overrun.buffer).setUint32(12, 1000, true); // runDirBytes beyond the body
    assert.throws(() => new SideChannelDecoder().push(overrun), /overrun/);

    const longId = encodeSideRecord(rec(4, 0));
    new DataView(longId.buffer).setUint16(10, SIDE_MAX_ID_BYTES + 1, true);
    assert.throws(() => new SideChannelDecoder().push(longId), /out of bounds/);
  });

  it('refuses to encode out-of-bound strings', () => {
    assert.throws(() => encodeSideRecord({ ...rec(1, 0), jobId: 'x'.repeat(SIDE_MAX_ID_BYTES + 1) }), SideChannelError);
  });
});

describe('side channel pipe (fd 4 of the worker)', function () {
  this.timeout(20_000);
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-side-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('delivers every record a worker writes, in order, before the exit is reported', async () => {
    const recs = Array.from({ length: 40 }, (_, i) => rec(i, i * 997));
    const dataFile = path.join(dir, 'records.bin');
    fs.writeFileSync(dataFile, Buffer.concat(recs.map((r) => encodeSideRecord(r))));
    const script = path.join(dir, 'fake-worker.js');
    // Writes the records in uneven pieces on fd 4 (as the real worker does with a net.Socket), then exits.
    fs.writeFileSync(
      script,
      `const fs = require('fs'); const net = require('net');
       if (process.env.BASIN_SIDE_FD !== '4') { process.stderr.write('no BASIN_SIDE_FD\\n'); process.exit(3); }
       const s = new net.Socket({ fd: 4, readable: false, writable: true });
       const all = fs.readFileSync(${JSON.stringify(dataFile)});
       let o = 0, k = 1;
       while (o < all.length) { const n = Math.min(all.length - o, 1 + ((k++ * 7919) % 50000)); s.write(all.subarray(o, o + n)); o += n; }
       s.end(() => process.exit(0));`,
    );
    const got: SideRecord[] = [];
    const errors: string[] = [];
    const w = new WorkerProcess({ workerPath: script, nodePath: process.execPath, onSideRecord: (r) => got.push(r), onSideError: (m) => errors.push(m) });
    const exit = await w.exited;
    assert.equal(exit.code, 0, exit.stderrTail.join('\n'));
    assert.deepEqual(errors, []);
    assert.equal(got.length, recs.length);
    got.forEach((g, i) => same(g, recs[i]));
  });
});
