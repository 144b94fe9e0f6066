// The interaction-log readers (src/engine/data/interactions/read.ts): each format on small files, awkward bytes
// (quotes, CRLF, lone CR, BOM, blank lines), malformed rows → file:line, and skipBad's counts.
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataError, InteractionParser, LineParser, QuotedParser, iterateInteractions, readInteractions, type ReadOptions } from '../../src/engine/data/interactions/read';

type Row = [string, string, number, number, number];

let dir: string;
before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-inter-'));
});
after(() => fs.rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string | Buffer): string {
  const f = path.join(dir, name);
  fs.writeFileSync(f, text);
  return f;
}

async function rows(o: ReadOptions): Promise<{ rows: Row[]; report: Awaited<ReturnType<typeof readInteractions>> }> {
  const out: Row[] = [];
  const report = await readInteractions(o, (u, i, t, r, l) => out.push([u, i, t, r, l]));
  return { rows: out, report };
}

async function rejects(o: ReadOptions, re: RegExp, line?: number): Promise<void> {
  await assert.rejects(rows(o), (e: unknown) => {
    assert.ok(e instanceof DataError, `a DataError, got ${e}`);
    assert.match(e.message, re);
    assert.equal(e.file, o.file);
    if (line !== undefined) {
      assert.equal(e.line, line);
      assert.ok(e.message.startsWith(`${o.file}:${line}: `), e.message);
    }
    return true;
  });
}

describe('interactions: readers', () => {
  it('movielens-csv: header in any order, quotes, CRLF, BOM, blank lines, extra columns', async () => {
    const f = write('ratings.csv', '\ufefftimestamp,"movieId",userId,rating,tag\r\n964982703,1,1,4.0,"a, ""b""\r\nc"\r\n\r\n964981247,3,1,3.5,x\r\n5,"10",2,.5,\r\n');
    const { rows: r, report } = await rows({ file: f, format: 'movielens-csv' });
    assert.deepEqual(r, [
      ['1', '1', 964982703, 4, 2],
      ['1', '3', 964981247, 3.5, 5],
      ['2', '10', 5, 0.5, 6],
    ]);
    assert.equal(report.rows, 3);
    assert.equal(report.bad, 0);
    assert.ok(report.hasRating && report.hasTimestamp);
  });

  it('delimited TSV by name, and a headerless file by index with a custom delimiter; lone CR line ends', async () => {
    const tsv = write('log.tsv', 'u\ti\tts\nA1 \tB"x\t10\nA2\tB2\t9.5\n');
    const { rows: r } = await rows({ file: tsv, format: 'delimited', delimiter: '\t', columns: { user: 'u', item: 'i', timestamp: 'ts' } });
    // Quotes are ordinary characters in TSV (quote defaults off for delimiters other than ',').
    assert.deepEqual(r, [
      ['A1', 'B"x', 10, NaN, 2],
      ['A2', 'B2', 9.5, NaN, 3],
    ]);
    const semi = write('log.txt', '7;x;1\r8;y;2\r9;z;3');
    const { rows: s } = await rows({ file: semi, format: 'delimited', delimiter: ';', header: false, columns: { user: 2, item: 1, rating: 0 } });
    // No timestamp column: the line number is the time order.
    assert.deepEqual(s, [
      ['1', 'x', 1, 7, 1],
      ['2', 'y', 2, 8, 2],
      ['3', 'z', 3, 9, 3],
    ]);
  });

  it('movielens-dat (::) and the user-item format', async () => {
    const dat = write('ratings.dat', '1::1193::5::978300760\n1::661::3::978302109\r\n2::3068::4::978299000\n');
    const { rows: d } = await rows({ file: dat, format: 'movielens-dat' });
    assert.deepEqual(d, [
      ['1', '1193', 978300760, 5, 1],
      ['1', '661', 978302109, 3, 2],
      ['2', '3068', 978299000, 4, 3],
    ]);
    const ui = write('ml-1m.txt', '1 5\n1  7\n\n 2\t9 \n2 5');
    const { rows: s, report } = await rows({ file: ui, format: 'user-item' });
    assert.deepEqual(s, [
      ['1', '5', 1, NaN, 1],
      ['1', '7', 2, NaN, 2],
      ['2', '9', 4, NaN, 4],
      ['2', '5', 5, NaN, 5],
    ]);
    assert.ok(!report.hasRating && !report.hasTimestamp);
  });

  it('malformed rows name the file and line; skipBad counts them and keeps the first line numbers', async () => {
    const text = 'userId,movieId,rating,timestamp\n1,1,4,100\n1,2,4\n1,3,4,abc\n2,4,x,5\n,5,1,1\n2,6,1,1e3\n2,"7"x,1,1\n3,8,1,200\n';
    const f = write('bad.csv', text);
    await rejects({ file: f, format: 'movielens-csv' }, /expected 4 fields, got 3/, 3);
    const { rows: r, report } = await rows({ file: f, format: 'movielens-csv', skipBad: true, badExamples: 3 });
    assert.deepEqual(
      r.map((x) => x[4]),
      [2, 7, 9],
    );
    assert.equal(r[1][2], 1000);
    assert.equal(report.bad, 5);
    assert.deepEqual(report.badLines, [3, 4, 5]);
    assert.match(report.badMessages[1], /bad\.csv:4: timestamp "abc" is not a finite number/);
    // Each kind of bad row on its own.
    for (const [row, re] of [
      ['1,3,4,abc', /timestamp "abc"/],
      ['1,3,4,NaN', /timestamp "NaN"/],
      ['1,3,4,1e999', /timestamp "1e999"/],
      ['2,4,x,5', /rating "x"/],
      [',5,1,1', /user id is empty/],
      ['5, ,1,1', /item id is empty/],
      ['2,"7"x,1,1', /after the closing quote/],
      ['2,7",1,1', /unexpected quote/],
      ['1,2,3,4,5', /expected 4 fields, got 5/],
    ] as const) {
      await rejects({ file: write('one.csv', `userId,movieId,rating,timestamp\n1,1,1,1\n${row}\n`), format: 'movielens-csv' }, re, 3);
    }
    // An unterminated quote is reported at the line it opened on; skipBad drops the rest of the file.
    const uq = write('uq.csv', 'userId,movieId,rating,timestamp\n1,1,1,1\n1,"2,1,1\n3,3,3,3\n');
    await rejects({ file: uq, format: 'movielens-csv' }, /unterminated quoted field/, 3);
    const { rows: r2, report: rep2 } = await rows({ file: uq, format: 'movielens-csv', skipBad: true });
    assert.equal(r2.length, 1);
    assert.equal(rep2.bad, 1);
    assert.deepEqual(rep2.badLines, [3]);
  });

  it('bad headers, mappings and files are fatal even with skipBad', async () => {
    const f = write('h.csv', 'user,item\n1,2\n');
    await rejects({ file: f, format: 'movielens-csv', skipBad: true }, /header has no column "userId" for user/, 1);
    await rejects({ file: f, format: 'delimited', columns: { user: 'user', item: 'item', timestamp: 5 } }, /column timestamp is index 5 but the header has 2 fields/, 1);
    await rejects({ file: write('e.csv', ''), format: 'movielens-csv' }, /empty file/, 1);
    await rejects({ file: write('q.csv', 'userId,"movieId"x,rating,timestamp\n1,2,3,4\n'), format: 'movielens-csv', skipBad: true }, /after the closing quote/, 1);
    await rejects({ file: f, format: 'delimited', header: false, columns: { user: 'user', item: 1 } }, /no header: give a 0-based index/);
    await rejects({ file: f, format: 'delimited' } as ReadOptions, /needs a column mapping/);
    await rejects({ file: path.join(dir, 'missing.csv'), format: 'movielens-csv' }, /cannot read \(no such file\)/);
    await rejects({ file: f, format: 'delimited', delimiter: '::', quote: true, columns: { user: 0, item: 1 } }, /quoting needs a one-character delimiter/);
    // A headerless file's first row fixes the width: later rows of another width are bad rows.
    const nh = write('nh.dat', '1::2::3::4\n5::6::7\n');
    await rejects({ file: nh, format: 'movielens-dat' }, /expected 4 fields, got 3/, 2);
    const { rows: r, report } = await rows({ file: write('nh2.dat', '1::2\n1::2::3::4\n'), format: 'movielens-dat', skipBad: true });
    assert.equal(r.length, 1);
    assert.deepEqual(report.badLines, [1]);
  });

  it('chunk boundaries never change the records (every split point, both parsers)', () => {
    const texts: Array<[string, (on: (f: string[], l: number) => void) => QuotedParser | LineParser]> = [
      ['\ufeffa,"b\r\nc",d\r\n\r"x""y",,z\n\n"q"', (on) => new QuotedParser('t', ',', on)],
      ['\ufeff1::2::3\r\n4::5::6\r7::8::9\n\n10::11::12', (on) => new LineParser('t', '::', on)],
      ['1 2\r\n 3\t4 \r\r5 6', (on) => new LineParser('t', 'whitespace', on)],
    ];
    for (const [text, make] of texts) {
      const whole: string[] = [];
      const p = make((f, l) => whole.push(`${l}:${JSON.stringify(f)}`));
      p.push(text);
      p.end();
      assert.ok(whole.length >= 3, whole.join('|'));
      for (let a = 0; a <= text.length; a++) {
        for (let b = a; b <= text.length; b += 3) {
          const got: string[] = [];
          const q = make((f, l) => got.push(`${l}:${JSON.stringify(f)}`));
          q.push(text.slice(0, a));
          q.push(text.slice(a, b));
          q.push(text.slice(b));
          q.end();
          assert.deepEqual(got, whole, `split at ${a}, ${b}`);
        }
      }
    }
    // Spot checks of what the quoted parser reads: a line break inside quotes keeps the record on its first line.
    const recs: string[] = [];
    const p = new QuotedParser('t', ',', (f, l) => recs.push(`${l}:${f.join('|')}`));
    p.push('a,"b\r\nc",d\r\n\r"x""y",,z\n');
    p.end();
    assert.deepEqual(recs, ['1:a|b\r\nc|d', '4:x"y||z']);
  });

  it('a large file streams in chunks with the right line numbers', async () => {
    const n = 300_000;
    const parts: string[] = ['userId,movieId,rating,timestamp\n'];
    for (let k = 0; k < n; k++) parts.push(`${k % 997},${k % 10007},${(k % 5) + 1},${1000 + k}\n`);
    const f = write('big.csv', parts.join(''));
    assert.ok(fs.statSync(f).size > 3 << 20, 'spans several 1 MiB chunks');
    let count = 0;
    let lineOk = true;
    const report = await readInteractions({ file: f, format: 'movielens-csv' }, (u, i, t, r, l) => {
      if (l !== count + 2 || t !== 1000 + count || u !== String(count % 997)) lineOk = false;
      count++;
    });
    assert.equal(count, n);
    assert.equal(report.rows, n);
    assert.ok(lineOk);
    // The pull form gives the same rows in batches (one per chunk read), then the report.
    let pulled = 0;
    let batches = 0;
    let last = 0;
    let rep: { rows: number } | undefined;
    for await (const b of iterateInteractions({ file: f, format: 'movielens-csv' }, (r) => (rep = r))) {
      batches++;
      pulled += b.length;
      assert.equal(b[0].line, last + (last === 0 ? 2 : 1));
      last = b[b.length - 1].line;
    }
    assert.equal(pulled, n);
    assert.ok(batches >= 3, `${batches} batches`);
    assert.equal(rep?.rows, n);
    await assert.rejects(async () => {
      for await (const _ of iterateInteractions({ file: write('bad2.csv', 'userId,movieId,rating,timestamp\n1,2,3\n'), format: 'movielens-csv' }));
    }, /bad2\.csv:2: expected 4 fields, got 3/);
  });

  it('InteractionParser accepts text pushed in pieces (the fuzz harness drives it from memory)', () => {
    const got: string[] = [];
    const p = new InteractionParser({ file: 'mem.csv', format: 'movielens-csv' }, (u, i, t, r, l) => got.push(`${u}/${i}/${t}/${r}@${l}`));
    for (const c of 'userId,movieId,rating,timestamp\n1,2,3,4\n5,6,7,8'.split('')) p.push(c);
    const rep = p.end();
    assert.deepEqual(got, ['1/2/4/3@2', '5/6/8/7@3']);
    assert.equal(rep.rows, 2);
  });
});
