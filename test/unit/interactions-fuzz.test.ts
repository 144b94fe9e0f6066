// A fast in-process fuzz of the interaction-log readers (bench/fuzz.ts --only interactions runs 10^5 inputs in
// worker threads with a hang watchdog): random bytes and mutated rows in every format, with and without skipBad.
// Only DataError may escape; text arriving in random chunks must give the same rows, report or error as one
// chunk; no input may take long (a hang fails the test's time box).
import * as assert from 'node:assert/strict';
import { Rng } from '../../src/engine/data/rng';
import { DataError, InteractionParser, type ReadOptions } from '../../src/engine/data/interactions/read';

const MODES: ReadOptions[] = [
  { file: 'f.csv', format: 'movielens-csv' },
  { file: 'f.tsv', format: 'delimited', delimiter: '\t', columns: { user: 'u', item: 'i', timestamp: 't', rating: 'r' } },
  { file: 'f.dat', format: 'movielens-dat' },
  { file: 'f.txt', format: 'user-item' },
  { file: 'f.psv', format: 'delimited', delimiter: '|', header: false, quote: true, columns: { user: 0, item: 1, timestamp: 2 } },
];

const ALPHABET = ['1', '2', '9', '0', '.', 'e', '-', ',', '\t', ':', '|', ' ', '"', '\n', '\r', '\r\n', 'x', 'u', 'i', 't', 'r', '\ufeff', 'é', '\u0000'];

function validText(rng: Rng, mode: number): string {
  const head = ['userId,movieId,rating,timestamp', 'r\tt\ti\tu', '', '', ''][mode];
  const rows: string[] = head ? [head] : [];
  for (let k = 0; k < 1 + rng.int(12); k++) {
    const u = 1 + rng.int(9);
    const i = 1 + rng.int(50);
    const t = rng.int(1e6);
    rows.push([`${u},${i},${1 + rng.int(5)},${t}`, `${rng.int(5)}\t${t}\tI${i}\tU${u}`, `${u}::${i}::3::${t}`, `${u} ${i}`, `"${u}"|${i}|${t}`][mode]);
  }
  return rows.join(rng.float() < 0.5 ? '\n' : '\r\n');
}

function mutate(rng: Rng, text: string): string {
  let s = text;
  for (let k = 1 + rng.int(4); k > 0; k--) {
    const at = rng.int(s.length + 1);
    const r = rng.float();
    if (r < 0.35) s = s.slice(0, at) + ALPHABET[rng.int(ALPHABET.length)] + s.slice(at);
    else if (r < 0.6) s = s.slice(0, at) + s.slice(at + 1 + rng.int(4));
    else if (r < 0.8) {
      // A whole row duplicated, emptied or cut short.
      const lines = s.split('\n');
      const i = rng.int(lines.length);
      const c = rng.float();
      if (c < 0.4) lines.splice(i, 0, lines[rng.int(lines.length)]);
      else if (c < 0.7) lines[i] = lines[i].slice(0, rng.int(lines[i].length + 1));
      else lines[i] = '';
      s = lines.join('\n');
    } else s = s.slice(0, at) + Array.from({ length: 1 + rng.int(20) }, () => ALPHABET[rng.int(ALPHABET.length)]).join('') + s.slice(at);
  }
  return s;
}

function outcome(o: ReadOptions, chunks: string[]): string {
  const out: string[] = [];
  try {
    const p = new InteractionParser(o, (u, i, t, r, l) => out.push(`${l}:${u}/${i}/${t}/${r}`));
    for (const c of chunks) p.push(c);
    const rep = p.end();
    out.push(`rows ${rep.rows} bad ${rep.bad} at ${rep.badLines.join(',')}`);
  } catch (e) {
    if (!(e instanceof DataError)) throw new Error(`not a DataError: ${(e as Error)?.stack ?? e}`);
    assert.match(e.message, /^f\.\w+(:\d+)?: /, 'the message starts with file:line');
    out.push(`error ${e.message}`);
  }
  return out.join('\n');
}

describe('interactions: reader fuzz (fast tier)', () => {
  it('1,500 random and mutated inputs: DataError or rows, chunk-invariant, quick', function () {
    this.timeout(60_000);
    const rng = new Rng(2024);
    let errors = 0;
    let accepted = 0;
    let worst = 0;
    for (let n = 0; n < 1500; n++) {
      const mode = rng.int(MODES.length);
      const o = { ...MODES[rng.int(5) === 0 ? rng.int(MODES.length) : mode], skipBad: rng.float() < 0.5 };
      const text =
        rng.float() < 0.15
          ? Array.from({ length: rng.int(300) }, () => String.fromCharCode(rng.float() < 0.5 ? rng.int(128) : rng.int(0x3000))).join('')
          : mutate(rng, validText(rng, mode));
      const chunks: string[] = [];
      for (let at = 0; at < text.length; ) {
        const k = 1 + rng.int(Math.min(17, text.length - at));
        chunks.push(text.slice(at, at + k));
        at += k;
      }
      const t0 = performance.now();
      const whole = outcome(o, text ? [text] : []);
      assert.equal(outcome(o, chunks), whole, `input #${n} (${JSON.stringify(text.slice(0, 200))}) in ${chunks.length} chunks`);
      worst = Math.max(worst, performance.now() - t0);
      if (whole.includes('\nerror ') || whole.startsWith('error ')) errors++;
      else accepted++;
    }
    // Both outcomes occur (the mutations are neither all fatal nor all harmless), and nothing is slow.
    assert.ok(errors > 100 && accepted > 100, `errors ${errors}, accepted ${accepted}`);
    assert.ok(worst < 1000, `slowest input ${worst.toFixed(0)} ms`);
  });

  it('a runaway quote or line is cut off at MAX_FIELD_CHARS instead of filling memory', () => {
    const big = 'userId,movieId,rating,timestamp\n1,"' + 'x'.repeat((1 << 20) + 10) + '\n2,2,2,2\n';
    const r = outcome({ file: 'f.csv', format: 'movielens-csv' }, [big]);
    assert.match(r, /error f\.csv:2: a field is longer than 1048576 characters/);
    const line = outcome({ file: 'f.txt', format: 'user-item', skipBad: true }, ['1 2\n' + '3'.repeat((1 << 20) + 5), ' 4\n5 6\n']);
    assert.match(line, /1:1\/2\/1\/NaN\n3:5\/6\/3\/NaN\nrows 2 bad 1 at 2/);
  });
});
