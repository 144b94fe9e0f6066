import * as assert from 'node:assert/strict';
import { FUZZ_PARSERS, formatFuzzTable, fuzzInput, fuzzParser, fuzzSeeds } from '../../bench/fuzz';

// The CI tier of bench/fuzz.ts: ~2,000 generated inputs per parser a user's file reaches (safetensors, stats
// frames, configs, MovieLens CSV). A parser may accept an input or throw its named error; anything else, or an
// input running past the time box, fails. `npx tsx bench/fuzz.ts` runs 10^5 per parser.
const N = Number(process.env.BASIN_FUZZ_N ?? 2000);

describe('fuzzing the file parsers (bench/fuzz.ts, CI tier)', () => {
  it('inputs are reproducible from (parser, seed, index) and the seeds come first, unchanged', () => {
    for (const p of FUZZ_PARSERS) {
      const seeds = fuzzSeeds(p);
      assert.deepEqual(fuzzInput(p, 3, 0, seeds), seeds[0]);
      assert.deepEqual(fuzzInput(p, 3, 500, seeds), fuzzInput(p, 3, 500));
      assert.notDeepEqual(fuzzInput(p, 3, 500, seeds), fuzzInput(p, 4, 500, seeds));
    }
  });

  for (const parser of FUZZ_PARSERS) {
    it(`${parser}: ${N} inputs, no crash other than the named error, no hang`, async function () {
      // Generous: the config parser takes ~10 ms an input on a loaded 2-core machine.
      this.timeout(240_000);
      const r = await fuzzParser(parser, { n: N, seed: 1, timeoutMs: 10_000 });
      const detail = `\n${formatFuzzTable([r])}\n${r.examples.map((e) => `#${e.index}: ${e.error}`).join('\n')}`;
      assert.equal(r.crashes, 0, `unexpected crashes${detail}`);
      assert.equal(r.hangs, 0, `hangs${detail}`);
      assert.equal(r.accepted + r.namedErrors, N, detail);
      // Both outcomes occur: the mutations are neither all fatal nor all harmless.
      assert.ok(r.accepted > 0 && r.namedErrors > 0, detail);
    });
  }
});
