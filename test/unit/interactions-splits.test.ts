// Evaluation splits (src/engine/data/interactions/splits.ts): leave-one-out and global temporal invariants on
// random logs, the seen-item CSR, and the reports of unseen targets and dropped users.
import * as assert from 'node:assert/strict';
import { Rng } from '../../src/engine/data/rng';
import { InteractionLogBuilder, sequenceOf, toSequences, type Sequences } from '../../src/engine/data/interactions/dataset';
import { csrRow, describeSplit, leaveOneOut, temporalSplit, timeQuantileCutoff } from '../../src/engine/data/interactions/splits';

function randomSequences(seed: number, users: number, items: number, maxLen: number): Sequences {
  const rng = new Rng(seed);
  const b = new InteractionLogBuilder(false);
  for (let u = 0; u < users; u++) {
    const len = 1 + rng.int(maxLen);
    for (let k = 0; k < len; k++) b.add(`u${u}`, `i${rng.int(items)}`, rng.int(1000));
  }
  return toSequences(b.build());
}

const arr = (x: Int32Array) => Array.from(x);
const distinctSorted = (x: Int32Array) => [...new Set(x)].sort((a, b) => a - b);

describe('interactions: splits', () => {
  for (const [users, items, maxLen] of [
    [1, 1, 1],
    [1, 2, 3],
    [7, 5, 4],
    [131, 37, 17],
    [1009, 997, 40],
  ]) {
    it(`leave-one-out invariants (${users} users, ${items} items, length ≤ ${maxLen})`, () => {
      const s = randomSequences(users * 7 + items, users, items, maxLen);
      const sp = leaveOneOut(s);
      let u = 0;
      let dropped = 0;
      for (let src = 0; src < s.numUsers; src++) {
        const full = sequenceOf(s, src);
        if (full.length < 3) {
          dropped++;
          continue;
        }
        assert.equal(sp.userIds[u], s.userIds[src]);
        // train ++ [valid] ++ [test] is the user's whole time-ordered sequence.
        assert.deepEqual([...arr(sp.train[u]), sp.valid[u], sp.test[u]], arr(full));
        assert.deepEqual(arr(sp.validInput[u]), arr(sp.train[u]));
        assert.deepEqual(arr(sp.testInput[u]), [...arr(sp.train[u]), sp.valid[u]]);
        assert.deepEqual(arr(csrRow(sp.seen, u)), distinctSorted(sp.testInput[u]));
        assert.deepEqual(arr(csrRow(sp.seenValid, u)), distinctSorted(sp.train[u]));
        assert.ok(sp.valid[u] >= 1 && sp.test[u] >= 1 && sp.valid[u] <= s.numItems && sp.test[u] <= s.numItems);
        u++;
      }
      assert.equal(sp.numUsers, u);
      assert.equal(sp.stats.droppedUsers, dropped);
      assert.equal(sp.stats.valid.users, u);
      assert.equal(sp.stats.test.users, u);
      assert.equal(sp.stats.trainInteractions, s.items.length - 2 * u - [...Array(s.numUsers).keys()].reduce((n, x) => n + (s.offsets[x + 1] - s.offsets[x] < 3 ? s.offsets[x + 1] - s.offsets[x] : 0), 0));
      // Unseen targets, by brute force.
      const inTrain = new Set(sp.train.flatMap((x) => arr(x)));
      assert.equal(sp.stats.test.unseenTargets, arr(sp.test).filter((t) => !inTrain.has(t)).length);
      assert.equal(sp.stats.valid.unseenTargets, arr(sp.valid).filter((t) => !inTrain.has(t)).length);
      assert.equal(sp.stats.test.targetsInInput, arr(sp.test).filter((t, k) => sp.testInput[k].includes(t)).length);
      assert.match(describeSplit(sp), /^leave-one-out: \d+ users/);
    });
  }

  it('leave-one-out names the targets never seen in training', () => {
    const b = new InteractionLogBuilder(false);
    // u1: a b c; u2: a b new → 'new' is a test target that no training sequence holds; 'b' is a valid target
    // that is not in training either (training = the prefixes: [a], [a]).
    for (const [u, i, t] of [['u1', 'a', 1], ['u1', 'b', 2], ['u1', 'c', 3], ['u2', 'a', 1], ['u2', 'b', 2], ['u2', 'new', 3], ['u3', 'a', 1]] as const) b.add(u, i, t);
    const sp = leaveOneOut(toSequences(b.build()));
    assert.equal(sp.numUsers, 2);
    assert.equal(sp.stats.droppedUsers, 1);
    assert.equal(sp.stats.test.unseenTargets, 2);
    assert.deepEqual(sp.stats.test.unseenExamples.sort(), ['c', 'new']);
    assert.equal(sp.stats.valid.unseenTargets, 2);
    assert.deepEqual(sp.stats.valid.unseenExamples, ['b']);
  });

  it('the time-quantile cutoff puts about the last fraction of interactions after it', () => {
    const t = Float64Array.from({ length: 1000 }, (_, k) => (k * 7919) % 1000);
    const c = timeQuantileCutoff(t, 0.1);
    assert.equal(c, 900);
    assert.equal(t.filter((x) => x >= c).length, 100);
    // Ties at the cutoff all fall after it.
    assert.equal(timeQuantileCutoff(Float64Array.from([1, 2, 2, 2, 2]), 0.1), 2);
  });

  for (const [users, items, maxLen, validFraction] of [
    [1, 3, 5, 0.5],
    [13, 7, 6, 0.3],
    [503, 211, 30, 0.1],
  ] as const) {
    it(`temporal split invariants (${users} users, validFraction ${validFraction})`, () => {
      const s = randomSequences(users + 99, users, items, maxLen);
      const sp = temporalSplit(s, { seed: 5, testFraction: 0.2, validFraction });
      const cut = sp.stats.cutoff!;
      assert.equal(cut, timeQuantileCutoff(s.times, 0.2));
      let u = 0;
      let cold = 0;
      let validUsers = 0;
      let eligible = 0;
      for (let src = 0; src < s.numUsers; src++) {
        const a = s.offsets[src];
        const b = s.offsets[src + 1];
        const history: number[] = [];
        const after: number[] = [];
        for (let k = a; k < b; k++) (s.times[k] < cut ? history : after).push(s.items[k]);
        if (history.length === 0) {
          cold++;
          continue;
        }
        assert.equal(sp.userIds[u], s.userIds[src]);
        if (history.length >= 2) eligible++;
        if (sp.valid[u] !== 0) {
          validUsers++;
          // Held out of training; predicts the last history item from the rest.
          assert.equal(sp.train[u].length, 0);
          assert.deepEqual([...arr(sp.validInput[u]), sp.valid[u]], history);
          assert.deepEqual(arr(csrRow(sp.seenValid, u)), distinctSorted(sp.validInput[u]));
        } else {
          assert.deepEqual(arr(sp.train[u]), history);
          assert.equal(sp.validInput[u].length, 0);
        }
        if (after.length > 0) {
          assert.equal(sp.test[u], after[0]);
          assert.deepEqual(arr(sp.testInput[u]), history);
          assert.deepEqual(arr(csrRow(sp.seen, u)), distinctSorted(sp.testInput[u]));
        } else {
          assert.equal(sp.test[u], 0);
          assert.equal(csrRow(sp.seen, u).length, 0);
        }
        u++;
      }
      assert.equal(sp.numUsers, u);
      assert.equal(sp.stats.droppedUsers, cold);
      assert.equal(validUsers, Math.round(eligible * validFraction));
      // No training interaction is at or after the cutoff; the test period holds ~20 % of the interactions.
      assert.equal(sp.stats.testPeriodInteractions, s.times.filter((x) => x >= cut).length);
      // Deterministic by seed, different for another seed (when there is a choice to make).
      const again = temporalSplit(s, { seed: 5, testFraction: 0.2, validFraction });
      assert.deepEqual(arr(again.valid), arr(sp.valid));
      if (eligible >= 10) assert.notDeepEqual(arr(temporalSplit(s, { seed: 6, testFraction: 0.2, validFraction }).valid), arr(sp.valid));
    });
  }

  it('temporal split refuses fractions out of range', () => {
    const s = randomSequences(1, 5, 5, 5);
    assert.throws(() => temporalSplit(s, { seed: 1, testFraction: 0 }), /testFraction must be in \(0, 1\)/);
    assert.throws(() => temporalSplit(s, { seed: 1, validFraction: 1 }), /validFraction must be in \[0, 1\)/);
  });
});
