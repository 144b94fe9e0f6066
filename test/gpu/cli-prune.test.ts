// `basin prune` as a user runs it (bin/basin.js; needs dist/cli.js, which npm test builds), on tiny real runs
// trained with the CLI (a base with statistics and a fine-tune of it): a sweep of all five scores printed as a
// table, an apply of each kind the README shows (a score at a density, 2:4, a task vector against a base given as
// a run folder), each checked against the files it writes.
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { readAllTensors } from './helpers';
import { makeMergeExperts, type MergeExperts } from '../fixtures/merge-experts';

const ROOT = path.resolve(__dirname, '../..');
const basin = (cwd: string, ...args: string[]) => spawnSync(process.execPath, [path.join(ROOT, 'bin/basin.js'), ...args], { cwd, encoding: 'utf8', timeout: 180_000 });


describe('basin prune (CLI)', function () {
  this.timeout(400_000);
  let dir = '';
  let fx: MergeExperts;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-cli-prune-'));
    fx = makeMergeExperts(dir, { root: ROOT, withBare: false });
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('sweeps all five scores and prints the table; the sweep file holds every point', () => {
    const r = basin(dir, 'prune', fx.base, '--sweep', '--score', 'magnitude,random,curvature,wanda,sparsegpt', '--densities', '1,0.5,0.25', '--batches', '2');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^prune sweep of .*step-12\.safetensors: 3 tensors, tensor \(completed\)/m);
    for (const s of ['magnitude', 'random', 'curvature', 'wanda', 'sparsegpt']) assert.match(r.stdout, new RegExp(`${s} loss`));
    const file = /sweep file: (.*)$/m.exec(r.stdout)![1];
    const sweep = JSON.parse(fs.readFileSync(file, 'utf8')) as { points: { score: string; density: number; metrics: { loss: number } }[]; dense: { loss: number } };
    assert.equal(sweep.points.length, 15);
    for (const p of sweep.points) {
      assert.ok(Number.isFinite(p.metrics.loss), `${p.score}@${p.density}`);
      // Density 1 is the dense model, except SparseGPT, which zeroes inputs no calibration batch reached.
      if (p.density === 1 && p.score !== 'sparsegpt') assert.equal(p.metrics.loss, sweep.dense.loss, p.score);
    }
  });

  it('applies a score at a density and 2:4, writing the pruned checkpoint and its report', async () => {
    const out = path.join(dir, 'pruned-curv');
    const r = basin(dir, 'prune', fx.base, '--score', 'curvature', '--density', '0.4', '--out', out);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^pruned with curvature: kept (39\.9|40\.\d)% of 3 tensors\n {2}dense .*\n {2}pruned .*\nweights: .*model\.safetensors\nreport: {2}.*prune-report\.json\n$/);
    const w = await readAllTensors(path.join(out, 'model.safetensors'));
    for (const name of ['layers.0.weight', 'layers.1.weight', 'layers.2.weight']) {
      const t = w.get(name)!;
      const kept = t.filter((x) => x !== 0).length / t.length;
      assert.ok(Math.abs(kept - 0.4) < 0.02, `${name} keeps ${kept}`);
    }

    const out24 = path.join(dir, 'pruned-24');
    const r24 = basin(dir, 'prune', fx.base, '--score', 'wanda', '--pattern', '2:4', '--targets', 'layers.1.weight,layers.2.weight', '--batches', '2', '--out', out24, '--json');
    assert.equal(r24.status, 0, r24.stderr);
    const rep = JSON.parse(r24.stdout) as { score: { type: string; batches: number }; pattern: string; kept: number };
    assert.deepEqual([rep.score.type, rep.score.batches, rep.pattern, rep.kept], ['wanda', 2, '2:4', 0.5]);
    const w24 = (await readAllTensors(path.join(out24, 'model.safetensors'))).get('layers.1.weight')!;
    for (let g = 0; g < w24.length; g += 4) assert.ok([0, 1, 2, 3].filter((t) => w24[g + t] !== 0).length <= 2, `group ${g}`);
  });

  it('prunes a task vector against a base given as a run folder: pruned entries are the base', async () => {
    const out = path.join(dir, 'tv');
    const r = basin(dir, 'prune', fx.a, '--base', fx.base, '--score', 'magnitude', '--density', '0.1', '--out', out);
    assert.equal(r.status, 0, r.stderr);
    const base = await readAllTensors(path.join(fx.base, 'checkpoints', 'step-12.safetensors'));
    const ft = await readAllTensors(path.join(fx.a, 'checkpoints', 'step-12.safetensors'));
    const got = await readAllTensors(path.join(out, 'model.safetensors'));
    const name = 'layers.1.weight';
    const [b, f, g] = [base.get(name)!, ft.get(name)!, got.get(name)!];
    let kept = 0;
    for (let i = 0; i < g.length; i++) {
      assert.ok(g[i] === b[i] || g[i] === f[i], `entry ${i} is neither the base nor the fine-tune`);
      if (g[i] === f[i] && f[i] !== b[i]) kept++;
    }
    assert.ok(Math.abs(kept / g.length - 0.1) < 0.02, `kept ${kept / g.length} of the task vector`);
    // A folder that is no run is refused before any work, naming the field.
    const bad = basin(dir, 'prune', fx.a, '--base', dir, '--score', 'magnitude', '--density', '0.1', '--out', path.join(dir, 'tv2'));
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /base: .* is a folder without run\.json/);
  });
});
