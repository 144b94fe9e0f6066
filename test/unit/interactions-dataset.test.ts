// Interaction logs (src/engine/data/interactions/dataset.ts): rating filter, k-core against a brute-force
// reference, id remapping, time-ordered sequences, and the real ml-latest-small file.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Rng } from '../../src/engine/data/rng';
import {
  InteractionLogBuilder,
  filterByRating,
  kCore,
  loadSequences,
  sequenceOf,
  toSequences,
  type InteractionLog,
} from '../../src/engine/data/interactions/dataset';
import { DataError } from '../../src/engine/data/interactions/read';

const ROOT = path.resolve(__dirname, '../..');
const ML_SMALL = process.env.BASIN_ML_SMALL ?? path.join(ROOT, '..', 'shared', 'data', 'ml-latest-small');

function randomLog(rng: Rng, rows: number, users: number, items: number, skew = 2): InteractionLog {
  const b = new InteractionLogBuilder(true);
  for (let k = 0; k < rows; k++) {
    // Skewed ids so that some users/items are rare and some frequent.
    const u = Math.floor(users * rng.float() ** skew);
    const i = Math.floor(items * rng.float() ** skew);
    b.add(`u${u}`, `i${i}`, rng.int(50), 1 + rng.int(5));
  }
  return b.build();
}

/** The k-core by its definition: remove one offending row at a time until none is left. */
function bruteKCore(log: InteractionLog, minUser: number, minItem: number): Set<number> {
  const alive = new Set<number>(Array.from({ length: log.length }, (_, k) => k));
  for (;;) {
    const uc = new Map<number, number>();
    const ic = new Map<number, number>();
    for (const k of alive) {
      uc.set(log.users[k], (uc.get(log.users[k]) ?? 0) + 1);
      ic.set(log.items[k], (ic.get(log.items[k]) ?? 0) + 1);
    }
    const bad = [...alive].find((k) => uc.get(log.users[k])! < minUser || ic.get(log.items[k])! < minItem);
    if (bad === undefined) return alive;
    // Remove every row of the offending user or item (they can never come back).
    const u = log.users[bad];
    const i = log.items[bad];
    const byUser = uc.get(u)! < minUser;
    for (const k of [...alive]) if (byUser ? log.users[k] === u : log.items[k] === i) alive.delete(k);
  }
}

const rowsOf = (log: InteractionLog) => Array.from({ length: log.length }, (_, k) => `${log.users[k]}/${log.items[k]}/${log.times[k]}`).sort();

describe('interactions: logs, filters, sequences', () => {
  it('k-core equals the brute-force reference on random skewed logs (prime sizes, asymmetric k)', () => {
    const rng = new Rng(11);
    for (const [rows, users, items, ku, ki] of [
      [1, 1, 1, 1, 1],
      [1, 1, 1, 2, 1],
      [97, 13, 17, 3, 2],
      [401, 31, 53, 5, 5],
      [1009, 101, 211, 4, 7],
      [2003, 67, 509, 10, 3],
    ]) {
      const log = randomLog(rng, rows, users, items);
      const { log: core, stats } = kCore(log, { minUser: ku, minItem: ki });
      const ref = bruteKCore(log, ku, ki);
      assert.deepEqual(rowsOf(core), [...ref].map((k) => `${log.users[k]}/${log.items[k]}/${log.times[k]}`).sort(), `${rows} rows, k=${ku}/${ki}`);
      assert.equal(stats.droppedInteractions, rows - ref.size);
      const uBefore = new Set(log.users).size;
      const uAfter = new Set([...ref].map((k) => log.users[k])).size;
      assert.equal(stats.droppedUsers, uBefore - uAfter);
      assert.equal(stats.droppedItems, new Set(log.items).size - new Set([...ref].map((k) => log.items[k])).size);
      // The property itself.
      const uc = new Map<number, number>();
      const ic = new Map<number, number>();
      for (let k = 0; k < core.length; k++) {
        uc.set(core.users[k], (uc.get(core.users[k]) ?? 0) + 1);
        ic.set(core.items[k], (ic.get(core.items[k]) ?? 0) + 1);
      }
      for (const c of uc.values()) assert.ok(c >= ku);
      for (const c of ic.values()) assert.ok(c >= ki);
      assert.ok(stats.rounds >= 1);
    }
  });

  it('a cascade: removing a rare item drops a user, which drops another item', () => {
    const b = new InteractionLogBuilder(false);
    // u1 has 2 rows (a, rare) → after `rare` (1 row) goes, u1 has 1 < 2 and goes, then `a` has 1 < 2 and goes.
    for (const [u, i] of [['u1', 'a'], ['u1', 'rare'], ['u2', 'a'], ['u2', 'b'], ['u3', 'b'], ['u3', 'c'], ['u2', 'c']]) b.add(u, i, 0);
    const { log, stats } = kCore(b.build(), { minUser: 2, minItem: 2 });
    assert.deepEqual(rowsOf(log), ['1/2/0', '1/3/0', '2/2/0', '2/3/0'].sort());
    assert.deepEqual({ u: stats.droppedUsers, i: stats.droppedItems, r: stats.droppedInteractions }, { u: 1, i: 2, r: 3 });
  });

  it('rating filter; a log without ratings refuses minRating', () => {
    const b = new InteractionLogBuilder(true);
    [5, 3.5, 4, 1, 4].forEach((r, k) => b.add(`u${k % 2}`, `i${k}`, k, r));
    const { log, stats } = filterByRating(b.build(), 4);
    assert.deepEqual(Array.from(log.ratings!), [5, 4, 4]);
    assert.equal(stats.droppedInteractions, 2);
    assert.equal(stats.droppedItems, 2);
    assert.equal(stats.droppedUsers, 1); // u1's ratings were 3.5 and 1
    assert.throws(() => filterByRating(new InteractionLogBuilder(false).build(), 1), DataError);
  });

  it('sequences: users by first appearance, items by frequency (ties: first appearance), stable time order', () => {
    const b = new InteractionLogBuilder(false);
    // (user, item, time) in file order.
    const rows: Array<[string, string, number]> = [
      ['bob', 'x', 5],
      ['amy', 'y', 3],
      ['bob', 'y', 1],
      ['bob', 'z', 5], // ties with bob/x at t=5: file order keeps x first
      ['amy', 'z', 2],
      ['amy', 'y', 9],
      ['cat', 'w', 0],
    ];
    for (const [u, i, t] of rows) b.add(u, i, t);
    const s = toSequences(b.build());
    assert.deepEqual(s.userIds, ['bob', 'amy', 'cat']);
    // y: 3, z: 2, x: 1 (first), w: 1.
    assert.deepEqual(s.itemIds, ['', 'y', 'z', 'x', 'w']);
    assert.deepEqual(Array.from(s.itemCounts), [0, 3, 2, 1, 1]);
    const names = (u: number) => Array.from(sequenceOf(s, u), (i) => s.itemIds[i]);
    assert.deepEqual(names(0), ['y', 'x', 'z']);
    assert.deepEqual(names(1), ['z', 'y', 'y']);
    assert.deepEqual(names(2), ['w']);
    assert.deepEqual(Array.from(s.times.subarray(0, 3)), [1, 5, 5]);
    // First-appearance order, a cap on items, and a minimum length.
    const f = toSequences(b.build(), { itemOrder: 'first' });
    assert.deepEqual(f.itemIds, ['', 'x', 'y', 'z', 'w']);
    const c = toSequences(b.build(), { maxItems: 2, minLength: 2 });
    assert.deepEqual(c.itemIds, ['', 'y', 'z']);
    // Capped to {y, z}: bob keeps [y, z], amy [z, y, y], cat nothing.
    assert.deepEqual(c.userIds, ['bob', 'amy']);
    assert.deepEqual(c.dropped, { items: 2, users: 1, interactions: 2 });
    // maxLength keeps each user's most recent items (bob [x, z], amy [y, y], cat [w]); the ids are ranked on what
    // is left: y (2), then the count-1 ties by first appearance x, z, w.
    const m = toSequences(b.build(), { maxLength: 2 });
    assert.deepEqual(m.itemIds, ['', 'y', 'x', 'z', 'w']);
    assert.deepEqual(Array.from(m.offsets), [0, 2, 4, 5]);
    assert.deepEqual([0, 1, 2].map((u) => Array.from(sequenceOf(m, u), (i) => m.itemIds[i])), [['x', 'z'], ['y', 'y'], ['w']]);
    assert.deepEqual(Array.from(m.times), [5, 5, 3, 9, 0]);
    assert.equal(m.dropped.interactions, 2);
  });

  it('the real ml-latest-small: 610 users, 9,724 items, 100,836 rows; 5-core and rating ≥ 4 counts', async function () {
    this.timeout(60_000);
    const file = path.join(ML_SMALL, 'ratings.csv');
    if (!fs.existsSync(file)) {
      if (process.env.CI) assert.fail(`ml-latest-small is missing (looked in ${ML_SMALL})`);
      this.skip();
    }
    // The shared copy carries one row more than the GroupLens release ("999,999999,5.0,1493846415" appended at the
    // end, without a final newline): a user and a movie with one rating each. Dropping users with fewer than 2
    // interactions must give back exactly the published figures, whichever copy is read.
    const all = await loadSequences({ file, format: 'movielens-csv', minLength: 2 });
    const extra = all.report.raw.interactions - 100_836;
    assert.ok(extra === 0 || extra === 1, `rows ${all.report.raw.interactions}`);
    assert.deepEqual(all.report.raw, { interactions: 100_836 + extra, users: 610 + extra, items: 9_724 + extra });
    assert.deepEqual(all.report.kept, { interactions: 100_836, users: 610, items: 9_724 });
    assert.deepEqual(all.sequences.dropped, { users: extra, items: extra, interactions: extra });
    assert.equal(all.report.read.bad, 0);
    // Time order inside each user.
    const s = all.sequences;
    for (let u = 0; u < s.numUsers; u++) for (let k = s.offsets[u] + 1; k < s.offsets[u + 1]; k++) assert.ok(s.times[k - 1] <= s.times[k]);
    // The most rated movie of ml-latest-small is Forrest Gump (movieId 356, 329 ratings).
    assert.equal(s.itemIds[1], '356');
    assert.equal(s.itemCounts[1], 329);
    const core = await loadSequences({ file, format: 'movielens-csv', kCore: 5 });
    // Every user of ml-latest-small has ≥ 20 ratings, so the 5-core only drops rare movies (and the rows they
    // take with them). The figures agree with an independent pass-until-stable script over the same file.
    const kc = core.report.kCore!;
    assert.equal(kc.droppedUsers, extra);
    assert.equal(core.report.kept.items + kc.droppedItems, 9_724 + extra);
    assert.equal(core.report.kept.interactions + kc.droppedInteractions, 100_836 + extra);
    assert.deepEqual(core.report.kept, { interactions: 90_274, users: 610, items: 3_650 });
    for (let i = 1; i <= core.sequences.numItems; i++) assert.ok(core.sequences.itemCounts[i] >= 5);
    const liked = await loadSequences({ file, format: 'movielens-csv', minRating: 4 });
    assert.equal(liked.report.kept.interactions, 48_580 + extra);
    assert.equal(liked.report.rating!.droppedInteractions, 100_836 - 48_580);
  });
});
