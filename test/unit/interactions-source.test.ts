// The `interactions` data source end to end: a config's data section → loadConfig's checks → buildDataset's split
// token sequences (what the transformer and SASRec trainers read) with the evaluation split attached.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { buildDataset } from '../../src/engine/data/dataset';
import { loadInteractionSplit, readOptionsOf, type InteractionsDataConfig } from '../../src/engine/data/interactions/source';
import { ConfigError, loadConfig, parseConfig } from '../../src/files/config/load';

const ROOT = path.resolve(__dirname, '../..');
const ML_SMALL = process.env.BASIN_ML_SMALL ?? path.join(ROOT, '..', 'shared', 'data', 'ml-latest-small');

let dir: string;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-isrc-'));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('interactions: data source', () => {
  it('a config naming a ratings.dat trains on leave-one-out prefixes and validates on input + target', async () => {
    // 4 users: u1..u3 with 4 interactions (out of time order in the file), u4 with 2 (dropped by leave-one-out).
    const rows: string[] = [];
    for (let u = 1; u <= 3; u++) for (const t of [3, 1, 4, 2]) rows.push(`${u}::${10 * u + t}::5::${t}`);
    rows.push('4::11::1::1', '4::12::1::2');
    fs.writeFileSync(path.join(dir, 'ratings.dat'), rows.join('\n') + '\n');
    const cfg = path.join(dir, 'loo.basin.yaml');
    fs.writeFileSync(cfg, 'model: { type: transformer, vocab: 64, dModel: 16, heads: 2, layers: 1, seqLen: 8 }\ndata: { type: interactions, path: . }\n');
    const { config } = loadConfig(cfg);
    const ds = await buildDataset(config, cfg);
    assert.equal(ds.kind, 'sequences');
    if (ds.kind !== 'sequences') return;
    const sp = ds.split!;
    assert.equal(sp.protocol, 'leave-one-out');
    assert.equal(sp.numUsers, 3);
    assert.equal(sp.stats.droppedUsers, 1);
    assert.equal(ds.vocab, 64); // the model's vocabulary
    const raw = (xs: Iterable<number>) => Array.from(xs, (i) => sp.itemIds[i]);
    assert.deepEqual(sp.userIds, ['1', '2', '3']);
    assert.deepEqual(ds.train.map(raw), [['11', '12'], ['21', '22'], ['31', '32']]);
    assert.deepEqual(ds.valid.map(raw), [['11', '12', '13'], ['21', '22', '23'], ['31', '32', '33']]);
    assert.deepEqual(raw(sp.test), ['14', '24', '34']);
    assert.match(ds.summary, /^interactions ratings\.dat: leave-one-out: 3 users \(1 dropped: fewer than 3 interactions\)/);
    // Every test target is unseen in training here (each user has its own items): reported.
    assert.equal(sp.stats.test.unseenTargets, 3);
  });

  it('a delimited TSV with a column mapping, skipBad and a temporal split', async () => {
    const lines = ['who\twhat\twhen'];
    for (let u = 0; u < 40; u++) for (let k = 0; k < 6; k++) lines.push(`U${u}\tI${(u + k) % 13}\t${1000 + 10 * k + u}`);
    lines.splice(5, 0, 'U1\tI2\tyesterday', 'U1\tI3');
    const file = path.join(dir, 'log.tsv');
    fs.writeFileSync(file, lines.join('\n'));
    const c = parseConfig(
      'model: { type: transformer, vocab: 20, dModel: 16, heads: 2, layers: 1, seqLen: 8 }\n' +
        `data: { type: interactions, path: ${JSON.stringify(file)}, userColumn: who, itemColumn: what, timestampColumn: when, skipBad: true, split: temporal, testFraction: 0.2, validFraction: 0.25, seed: 3 }\n`,
      't.basin.yaml',
    );
    const ds = await buildDataset(c);
    if (ds.kind !== 'sequences') return assert.fail('sequences');
    const sp = ds.split!;
    assert.equal(sp.protocol, 'temporal');
    assert.match(ds.summary, /2 malformed rows skipped \(lines 6, 7\)/);
    assert.ok(sp.stats.valid.users > 0 && sp.stats.test.users > 0);
    assert.equal(ds.valid.length, sp.stats.valid.users);
    // Validation users contribute nothing to training.
    for (let u = 0; u < sp.numUsers; u++) if (sp.valid[u] !== 0) assert.equal(sp.train[u].length, 0);
  });

  it('config checks: delimited needs columns, maxItems within the model, and a missing file is a DataError', async () => {
    const head = 'model: { type: transformer, vocab: 10, dModel: 16, heads: 2, layers: 1, seqLen: 8 }\n';
    assert.throws(
      () => parseConfig(head + 'data: { type: interactions, path: x.csv, format: delimited }\n', 'a.basin.yaml'),
      (e: unknown) => e instanceof ConfigError && /data\.userColumn.*required with format delimited/s.test(e.message),
    );
    assert.throws(
      () => parseConfig(head + 'data: { type: interactions, path: x.csv, maxItems: 10 }\n', 'b.basin.yaml'),
      (e: unknown) => e instanceof ConfigError && /maxItems.*at most model\.vocab − 1 \(9\)/.test(e.message),
    );
    const c = parseConfig(head + 'data: { type: interactions, path: nowhere.csv }\n', 'c.basin.yaml');
    assert.equal(c.data.type === 'interactions' && c.data.maxItems, 9);
    await assert.rejects(buildDataset(c, path.join(dir, 'c.basin.yaml')), /nowhere\.csv: not found/);
    // Column references: digits are indices; `tab` is a tab.
    const d = { type: 'interactions', path: 'x', format: 'delimited', delimiter: 'tab', header: false, userColumn: '2', itemColumn: '0', skipBad: false } as unknown as InteractionsDataConfig;
    assert.deepEqual(readOptionsOf(d, 'x'), { file: 'x', format: 'delimited', skipBad: false, delimiter: '\t', header: false, columns: { user: 2, item: 0, timestamp: undefined, rating: undefined } });
  });

  it('ml-latest-small through the source: 5-core, leave-one-out', async function () {
    this.timeout(60_000);
    if (!fs.existsSync(path.join(ML_SMALL, 'ratings.csv'))) {
      if (process.env.CI) assert.fail(`ml-latest-small is missing (looked in ${ML_SMALL})`);
      this.skip();
    }
    const d = { type: 'interactions', path: ML_SMALL, format: 'auto', skipBad: false, minRating: 0, kCore: 5, maxItems: 100_000, split: 'leave-one-out', testFraction: 0.1, seed: 1, validFraction: 0.1 } as InteractionsDataConfig;
    const { split, report } = await loadInteractionSplit(d);
    assert.equal(report.read.format, 'movielens-csv');
    assert.deepEqual(report.kept, { interactions: 90_274, users: 610, items: 3_650 });
    assert.equal(split.numUsers, 610);
    assert.equal(split.stats.trainInteractions, 90_274 - 2 * 610);
  });
});
