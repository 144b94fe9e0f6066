// The claim evaluation of `basin study prune`: which densities fail "curvature ≥ magnitude", the metric's
// direction (accuracy up, loss down), missing points, diverged points, and the pooled headline fraction.
import { strict as assert } from 'node:assert';
import { CLAIM_DENSITIES, STUDY_DENSITIES, atLeastAsGood, describeClaim, evaluateClaim, winFraction, type StudyPoint } from '../../bench/study-prune';

/** Points of two scores at the claim densities: accuracy and loss given per density. */
function pts(score: string, acc: number[], loss?: number[], densities: readonly number[] = CLAIM_DENSITIES): StudyPoint[] {
  return densities.map((density, i) => ({ score, density, metrics: { accuracy: acc[i], loss: loss ? loss[i] : 1 - acc[i] } }));
}

describe('study prune: claim evaluation', () => {
  it('the densities are the claim’s {1,5,10,20,40,60,90} % and the sweep adds the dense model', () => {
    assert.deepEqual([...CLAIM_DENSITIES].sort((a, b) => a - b), [0.01, 0.05, 0.1, 0.2, 0.4, 0.6, 0.9]);
    assert.deepEqual(STUDY_DENSITIES, [1, ...CLAIM_DENSITIES]);
  });

  it('metric direction: accuracy higher is better, loss lower is better, ties count as ≥', () => {
    assert.equal(atLeastAsGood('accuracy', 0.5, 0.4), true);
    assert.equal(atLeastAsGood('accuracy', 0.4, 0.5), false);
    assert.equal(atLeastAsGood('loss', 0.4, 0.5), true);
    assert.equal(atLeastAsGood('loss', 0.5, 0.4), false);
    assert.equal(atLeastAsGood('accuracy', 0.5, 0.5), true);
    assert.equal(atLeastAsGood('loss', 0.5, 0.5), true);
  });

  it('holds when the challenger is at least as good at every density', () => {
    const mag = pts('magnitude', [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]);
    const cur = pts('curvature', [0.9, 0.85, 0.7, 0.65, 0.55, 0.45, 0.35]);
    const c = evaluateClaim('m', [...mag, ...cur], 'curvature', 'magnitude', 'accuracy');
    assert.equal(c.holds, true);
    assert.deepEqual(c.failsAt, []);
    assert.deepEqual(c.missing, []);
    assert.equal(c.tested.length, 7);
    assert.match(describeClaim(c), /^holds/);
  });

  it('names exactly the densities where it fails (accuracy)', () => {
    const mag = pts('magnitude', [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]);
    // worse at 60 % and at 1 %, better or equal elsewhere
    const cur = pts('curvature', [0.9, 0.79, 0.7, 0.61, 0.5, 0.41, 0.2]);
    const c = evaluateClaim('m', [...mag, ...cur], 'curvature', 'magnitude', 'accuracy');
    assert.equal(c.holds, false);
    assert.deepEqual(c.failsAt, [0.6, 0.01]);
    const line = describeClaim(c);
    assert.match(line, /^FAILS/);
    assert.match(line, /fails at 60% \(-1\.0 pt\), 1% \(-10\.0 pt\)/);
    assert.match(line, /5\/7 densities hold/);
  });

  it('on loss the comparison is reversed: a lower loss wins', () => {
    const mag = pts('magnitude', [0, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]);
    const cur = pts('curvature', [0, 0, 0, 0, 0, 0, 0], [0.9, 1, 1.1, 1, 0.5, 1, 2]);
    const c = evaluateClaim('m', [...mag, ...cur], 'curvature', 'magnitude', 'loss');
    assert.deepEqual(c.failsAt, [0.4, 0.01]);
    // margins: > 0 where curvature is better (lower loss)
    assert.deepEqual(c.margins.map((m) => +m!.toFixed(6)), [0.1, 0, -0.1, 0, 0.5, 0, -1]);
  });

  it('a density measured for only one score is missing, not a pass; holds is null when nothing failed', () => {
    const mag = pts('magnitude', [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]);
    const cur = pts('curvature', [0.9, 0.8, 0.7, 0.6, 0.5, 0.4], undefined, CLAIM_DENSITIES.slice(0, 6));
    const c = evaluateClaim('m', [...mag, ...cur], 'curvature', 'magnitude', 'accuracy');
    assert.deepEqual(c.missing, [0.01]);
    assert.equal(c.tested.length, 6);
    assert.equal(c.holds, null);
    assert.match(describeClaim(c), /^not tested.*not measured at 1%/);
    // and a failure elsewhere still makes it false
    cur[0].metrics.accuracy = 0.1;
    assert.equal(evaluateClaim('m', [...mag, ...cur], 'curvature', 'magnitude', 'accuracy').holds, false);
  });

  it('points of other scores and densities outside the claim are ignored; densities match despite float noise', () => {
    const mag = pts('magnitude', [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]);
    const cur = pts('curvature', [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]).map((p) => ({ ...p, density: p.density + 1e-12 }));
    const noise: StudyPoint[] = [
      { score: 'random', density: 0.6, metrics: { accuracy: 1, loss: 0 } },
      { score: 'curvature', density: 1, metrics: { accuracy: 0, loss: 9 } },
    ];
    const c = evaluateClaim('m', [...noise, ...mag, ...cur], 'curvature', 'magnitude', 'accuracy');
    assert.equal(c.holds, true);
    assert.equal(c.tested.length, 7);
  });

  it('a diverged (NaN) challenger fails; both diverged is not a failure', () => {
    const mag = pts('magnitude', [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3], [1, 1, 1, 1, 1, 1, NaN]);
    const cur = pts('curvature', [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3], [1, NaN, 1, 1, 1, 1, NaN]);
    const c = evaluateClaim('m', [...mag, ...cur], 'curvature', 'magnitude', 'loss');
    assert.deepEqual(c.failsAt, [0.6]);
    assert.equal(c.margins[1], null);
    // a diverged reference loses to any finite challenger
    const d = evaluateClaim('m', [...mag, ...pts('curvature', [0, 0, 0, 0, 0, 0, 0], [5, 5, 5, 5, 5, 5, 5])], 'curvature', 'magnitude', 'loss');
    assert.deepEqual(d.failsAt, [0.9, 0.6, 0.4, 0.2, 0.1, 0.05]);
  });

  it('the headline pools densities over cases: (tested − failed) / tested, null when nothing was tested', () => {
    const mag = pts('magnitude', [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]);
    const a = evaluateClaim('a', [...mag, ...pts('curvature', [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])], 'curvature', 'magnitude', 'accuracy');
    const b = evaluateClaim('b', [...mag, ...pts('curvature', [0.8, 0.8, 0.6, 0.6, 0.5, 0.4, 0.2])], 'curvature', 'magnitude', 'accuracy');
    assert.equal(winFraction([a]), 1);
    assert.equal(winFraction([b]), 4 / 7);
    assert.equal(winFraction([a, b]), 11 / 14);
    assert.equal(winFraction([]), null);
    assert.equal(winFraction([evaluateClaim('c', [], 'curvature', 'magnitude', 'accuracy')]), null);
  });
});
