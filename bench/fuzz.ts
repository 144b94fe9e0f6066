// Fuzzing every parser a user's file reaches: safetensors (SafetensorsReader: the u64 header length, the JSON
// header, then every tensor decoded), stats frames (decodeStatsFrames over a whole stats.bin), configs
// (parseConfig of *.basin.yaml and *.basin.json text) and the MovieLens CSV reader (loadMovielens on a file, plus
// CsvParser fed the same text in random chunks, which must give the same records as one chunk).
//
//   npx tsx bench/fuzz.ts [--n 100000] [--seed 1] [--only safetensors,stats,config,csv] [--timeout-ms 5000]
//                         [--jobs 2]
//   npx tsx bench/fuzz.ts --only csv --seed 1 --index 1234     # replay one input, write it to out/fuzz/, show the outcome
//
// Inputs are mutations of valid seeds: truncation, bit flips, random and "interesting" bytes, inserted, deleted and
// duplicated runs, splices of two inputs, huge or wrong length fields, and structure-aware edits of the JSON/YAML
// (a value replaced by a huge number, a wrong type, a deep nest; keys deleted or added) and of CSV rows. Input i of
// a run depends only on (parser, seed, i): `new Rng(seed, i)`, so any input can be replayed alone.
//
// A parser may accept an input or throw its named error (SafetensorsError, StatsFormatError, ConfigError,
// DataError); anything else is an unexpected crash. Each parser runs in a worker thread; the main thread watches a
// shared progress counter and ends the worker when one input runs past --timeout-ms (a hang), then carries on from
// the next input in a fresh worker. Exit code 1 when any parser crashed or hung.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import YAML from 'yaml';
import { Rng } from '../src/engine/data/rng';
import { SafetensorsError, SafetensorsReader, writeSafetensors, type WriteTensor } from '../src/files/safetensors';
import { STATS_MAGIC, StatsFormatError, decodeStatsFrames, encodeStatsFrame, frameFloats, matrixView, type StatsFrameHeader } from '../src/protocol/stats';
import { ConfigError, parseConfig } from '../src/files/config/load';
import { CsvParser, DataError, loadMovielens } from '../src/engine/data/movielens';
import { parseMergeConfig } from '../src/files/merge/config';
import { ModelFiles, ModelFilesError } from '../src/files/merge/model-files';
import { MergePlanError, planMerge } from '../src/files/merge/plan';
import { InteractionParser, readInteractions, type ReadOptions } from '../src/engine/data/interactions/read';

const ROOT = path.resolve(__dirname, '..');

export const FUZZ_PARSERS = ['safetensors', 'stats', 'config', 'csv', 'interactions', 'merge-config', 'merge-index'] as const;
export type FuzzParser = (typeof FUZZ_PARSERS)[number];

export interface FuzzCrash {
  index: number;
  error: string;
  /** The input, base64 (first 4 KiB). */
  input: string;
}

export interface FuzzReport {
  parser: FuzzParser;
  inputs: number;
  namedErrors: number;
  accepted: number;
  crashes: number;
  hangs: number;
  maxMs: number;
  maxMsIndex: number;
  /** The first few crashes and hangs, for replay with --index. */
  examples: FuzzCrash[];
  seconds: number;
}

// ------------------------------------------------------------------------------------------- generic mutations

const enc = new TextEncoder();
const dec = new TextDecoder();
const INTERESTING_BYTES = [0x00, 0xff, 0x7f, 0x80, 0x22, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x0a, 0x0d, 0x2d, 0x39, 0x65, 0x20, 0x5c, 0xc3, 0xef];
const INTERESTING_U64 = [0n, 1n, 7n, 8n, 0x7fn, 0xffn, 0x7fffffffn, 0x80000000n, 0xffffffffn, 0x100000000n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n];

function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

function randomBytes(rng: Rng, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.float() < 0.3 ? INTERESTING_BYTES[rng.int(INTERESTING_BYTES.length)] : rng.int(256);
  return out;
}

/** A length for random runs: mostly short, sometimes long. */
function runLength(rng: Rng): number {
  const r = rng.float();
  return r < 0.7 ? 1 + rng.int(8) : r < 0.95 ? 1 + rng.int(256) : 1 + rng.int(65536);
}

type Mutator = (b: Uint8Array, rng: Rng, pool: Uint8Array[]) => Uint8Array;

const GENERIC: Mutator[] = [
  // truncation
  (b, rng) => b.slice(0, rng.int(b.length + 1)),
  // bit flips
  (b, rng) => {
    const c = b.slice();
    if (c.length === 0) return c;
    for (let k = 1 + rng.int(8); k > 0; k--) c[rng.int(c.length)] ^= 1 << rng.int(8);
    return c;
  },
  // random bytes overwritten
  (b, rng) => {
    const c = b.slice();
    if (c.length === 0) return c;
    const at = rng.int(c.length);
    c.set(randomBytes(rng, Math.min(runLength(rng), c.length - at)), at);
    return c;
  },
  // a run inserted
  (b, rng) => {
    const at = rng.int(b.length + 1);
    return concat(b.subarray(0, at), randomBytes(rng, runLength(rng)), b.subarray(at));
  },
  // a run deleted
  (b, rng) => {
    const at = rng.int(b.length + 1);
    return concat(b.subarray(0, at), b.subarray(Math.min(b.length, at + runLength(rng))));
  },
  // a run duplicated
  (b, rng) => {
    const at = rng.int(b.length + 1);
    const run = b.subarray(at, Math.min(b.length, at + runLength(rng)));
    return concat(b.subarray(0, at), run, run, b.subarray(at));
  },
  // entirely random
  (_b, rng) => randomBytes(rng, rng.float() < 0.9 ? rng.int(512) : rng.int(1 << 16)),
  // a splice of two inputs
  (b, rng, pool) => {
    const o = pool[rng.int(pool.length)];
    return concat(b.subarray(0, rng.int(b.length + 1)), o.subarray(rng.int(o.length + 1)));
  },
  // an interesting little-endian integer written over 1, 2, 4 or 8 bytes (length fields, counts)
  (b, rng) => {
    const c = b.slice();
    const size = [1, 2, 4, 8][rng.int(4)];
    if (c.length < size) return c;
    const at = rng.float() < 0.5 ? 0 : rng.int(c.length - size + 1);
    let v = INTERESTING_U64[rng.int(INTERESTING_U64.length)];
    if (rng.float() < 0.3) v = BigInt(b.length + rng.int(17) - 8) & (2n ** 64n - 1n);
    for (let i = 0; i < size; i++) c[at + i] = Number((v >> BigInt(8 * i)) & 0xffn);
    return c;
  },
];

// ------------------------------------------------------------------------------------- structure-aware (JSON)

/** Values that break assumptions: huge, negative, fractional, wrong types, deep nests, long strings. */
function oddValue(rng: Rng): unknown {
  const pick = rng.int(22);
  switch (pick) {
    case 0: return null;
    case 1: return true;
    case 2: return -1;
    case 3: return 0;
    case 4: return 1.5;
    case 5: return 2 ** 31;
    case 6: return 2 ** 32;
    case 7: return 2 ** 53;
    case 8: return 2 ** 53 + 2;
    case 9: return 1e308;
    case 10: return -1e308;
    case 11: return '';
    case 12: return 'x'.repeat(rng.int(2) ? 3 : 100_000);
    case 13: return [];
    case 14: return {};
    case 15: return [-1, 2 ** 60];
    case 16: {
      let v: unknown = 0;
      for (let d = rng.int(10) ? 50 : 5000; d > 0; d--) v = [v];
      return v;
    }
    case 17: return Array.from({ length: 1 + rng.int(64) }, () => rng.int(1 << 20));
    case 18: return 'F32';
    case 19: return [2 ** 26, 2 ** 26];
    case 20: return rng.int(1000) - 500;
    default: return '\u0000\ud800é"\\';
  }
}

/** Every (container, key) in a JSON value, up to a limit. */
function slots(v: unknown, out: [Record<string, unknown> | unknown[], string | number][] = [], depth = 0): [Record<string, unknown> | unknown[], string | number][] {
  if (out.length > 400 || depth > 20 || v === null || typeof v !== 'object') return out;
  if (Array.isArray(v)) {
    v.forEach((x, i) => {
      out.push([v, i]);
      slots(x, out, depth + 1);
    });
  } else {
    for (const k of Object.keys(v)) {
      out.push([v as Record<string, unknown>, k]);
      slots((v as Record<string, unknown>)[k], out, depth + 1);
    }
  }
  return out;
}

/** A structural edit of a parsed JSON value (in place; returns the possibly replaced root). */
function mutateJson(root: unknown, rng: Rng): unknown {
  const s = slots(root);
  if (s.length === 0 || rng.float() < 0.05) return oddValue(rng);
  const [c, k] = s[rng.int(s.length)];
  const r = rng.float();
  const set = (key: string | number, v: unknown) => {
    // defineProperty: a key such as __proto__ must become data, not a prototype.
    Object.defineProperty(c, key, { value: v, enumerable: true, writable: true, configurable: true });
  };
  if (r < 0.55) set(k, oddValue(rng));
  else if (r < 0.7) {
    if (Array.isArray(c)) c.splice(k as number, 1);
    else delete c[k as string];
  } else if (r < 0.8) {
    // A copy, so that a value moved into its own subtree cannot make a cycle.
    const [c2, k2] = s[rng.int(s.length)];
    set(k, structuredClone((c2 as Record<string | number, unknown>)[k2]));
  } else if (r < 0.9 && !Array.isArray(c)) {
    const names = ['__proto__', 'constructor', 'toString', '__metadata__', 'dtype', 'shape', 'data_offsets', 'step', 'time', 'tensors', 'rows', 'cols', 'name', 'type', 'model', 'data', 'train', `k${rng.int(10)}`];
    set(names[rng.int(names.length)], rng.float() < 0.5 ? oddValue(rng) : structuredClone(c[k as string]));
  } else if (Array.isArray(c)) {
    c.push(structuredClone(c[k as number]));
  } else {
    set(k, [c[k as string]]);
  }
  return root;
}

// ----------------------------------------------------------------------------------------------- the parsers

interface Target {
  parser: FuzzParser;
  named: string;
  seeds(): Uint8Array[];
  /** Structure-aware mutations of this format (used half of the time, with the generic ones). */
  mutators: Mutator[];
  run(input: Uint8Array, ctx: { file: (ext: string) => string; rng: Rng }): void | Promise<void>;
  isNamed(e: unknown): boolean;
}

// safetensors -----------------------------------------------------------------------------------------------

function stBytes(header: unknown, buffer: Uint8Array, lengthOverride?: bigint, pad = 0): Uint8Array {
  const json = enc.encode(JSON.stringify(header) + ' '.repeat(pad));
  const pre = new Uint8Array(8);
  new DataView(pre.buffer).setBigUint64(0, lengthOverride ?? BigInt(json.length), true);
  return concat(pre, json, buffer);
}

/** Splits a safetensors file into (header JSON, buffer), or null when the framing is broken. */
function stSplit(b: Uint8Array): { header: unknown; buffer: Uint8Array } | null {
  if (b.length < 8) return null;
  const n = Number(new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true));
  if (n > b.length - 8) return null;
  try {
    return { header: JSON.parse(dec.decode(b.subarray(8, 8 + n))), buffer: b.subarray(8 + n) };
  } catch {
    return null;
  }
}

const safetensorsTarget: Target = {
  parser: 'safetensors',
  named: 'SafetensorsError',
  seeds() {
    const rng = new Rng(7);
    const many: Record<string, unknown> = { __metadata__: { format: 'pt', note: 'fuzz seed' } };
    const parts: Uint8Array[] = [];
    let off = 0;
    for (const [name, dtype, shape, size] of [
      ['w.f16', 'F16', [4], 2], ['w.bf16', 'BF16', [2, 2], 2], ['ids', 'I32', [3], 4], ['mask', 'BOOL', [3], 1], ['u8', 'U8', [5], 1],
      ['i64', 'I64', [2], 8], ['u32', 'U32', [2], 4], ['f64', 'F64', [1], 8], ['empty', 'I8', [0, 3], 1], ['scalar', 'F32', [], 4], ['w', 'F32', [2, 3], 4],
    ] as [string, string, number[], number][]) {
      const bytes = shape.reduce((a, d) => a * d, 1) * size;
      many[name] = { dtype, shape, data_offsets: [off, off + bytes] };
      // Small non-negative values so that the integer dtypes decode (their range checks are fuzzed by mutation).
      parts.push(Uint8Array.from({ length: bytes }, (_, i) => (i % size === 0 ? rng.int(100) : 0)));
      off += bytes;
    }
    const f32 = new Float32Array(6).map(() => rng.normal());
    return [
      stBytes({}, new Uint8Array(0)),
      stBytes({ w: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] } }, new Uint8Array(f32.buffer)),
      stBytes(many, concat(...parts), undefined, 5),
    ];
  },
  mutators: [
    // the header edited structurally, its length fixed (or wrong on purpose)
    (b, rng) => {
      const s = stSplit(b);
      if (!s) return b;
      const h = mutateJson(s.header, rng);
      const over = rng.float() < 0.2 ? INTERESTING_U64[rng.int(INTERESTING_U64.length)] : undefined;
      const buffer = rng.float() < 0.2 ? s.buffer.subarray(0, rng.int(s.buffer.length + 1)) : s.buffer;
      return stBytes(h, buffer, over);
    },
    // a key injected as text (JSON.stringify of an object cannot express duplicate keys)
    (b, rng) => {
      const s = stSplit(b);
      if (!s) return b;
      const inj = ['"__proto__":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},', '"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},', '"__metadata__":null,', '"x":{"dtype":"F32","shape":[9007199254740993],"data_offsets":[0,4]},'];
      const text = JSON.stringify(s.header);
      const json = text.startsWith('{') && text.length > 2 ? `{${inj[rng.int(inj.length)]}${text.slice(1)}` : text;
      const bytes = enc.encode(json);
      return concat(lenPrefix(bytes.length), bytes, s.buffer);
    },
  ],
  async run(input, ctx) {
    const file = ctx.file('.safetensors');
    fs.writeFileSync(file, input);
    const r = await SafetensorsReader.open(file);
    try {
      for (const t of r.tensors) await r.read(t.name);
    } finally {
      await r.close();
    }
  },
  isNamed: (e) => e instanceof SafetensorsError,
};

function lenPrefix(n: number): Uint8Array {
  const pre = new Uint8Array(8);
  new DataView(pre.buffer).setBigUint64(0, BigInt(n), true);
  return pre;
}

// stats frames ----------------------------------------------------------------------------------------------

function statsFrame(rng: Rng, step: number, shapes: number[][]): Uint8Array {
  const header: StatsFrameHeader = { step, time: 1_700_000_000_000 + step, tensors: shapes.map((shape, i) => ({ name: `blocks.${i}.wéight`, shape, ...matrixView(shape) })) };
  const payload = new Float32Array(frameFloats(header.tensors)).map(() => (rng.float() < 0.02 ? NaN : rng.normal()));
  return encodeStatsFrame(header, payload);
}

/** The frames of a stats.bin as (header, payload bytes), or null when the framing is broken. */
function statsSplit(b: Uint8Array): { header: unknown; payload: Uint8Array }[] | null {
  const out: { header: unknown; payload: Uint8Array }[] = [];
  let off = 0;
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  while (off + 8 <= b.length) {
    if (dv.getUint32(off, true) !== STATS_MAGIC) return null;
    const hlen = dv.getUint32(off + 4, true);
    if (off + 8 + hlen > b.length) return null;
    let header: { tensors?: { rows: number; cols: number }[] };
    try {
      header = JSON.parse(dec.decode(b.subarray(off + 8, off + 8 + hlen)));
    } catch {
      return null;
    }
    if (!header || !Array.isArray(header.tensors)) return null;
    let floats: number;
    try {
      floats = frameFloats(header.tensors);
    } catch {
      return null;
    }
    if (!Number.isSafeInteger(floats) || floats < 0) return null;
    const end = Math.min(b.length, off + 8 + hlen + floats * 4);
    out.push({ header, payload: b.subarray(off + 8 + hlen, end) });
    off = end;
  }
  return out;
}

function statsJoin(frames: { header: unknown; payload: Uint8Array }[], rng: Rng): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const f of frames) {
    let json: Uint8Array = enc.encode(JSON.stringify(f.header) ?? 'null');
    if (json.length % 4) json = concat(json, enc.encode(' '.repeat(4 - (json.length % 4))));
    const pre = new Uint8Array(8);
    const dv = new DataView(pre.buffer);
    dv.setUint32(0, STATS_MAGIC, true);
    dv.setUint32(4, rng.float() < 0.1 ? Number(INTERESTING_U64[rng.int(9)]) : json.length, true);
    parts.push(pre, json, f.payload);
  }
  return concat(...parts);
}

const statsTarget: Target = {
  parser: 'stats',
  named: 'StatsFormatError',
  seeds() {
    const rng = new Rng(8);
    const shapes = [[3, 4], [5], [], [2, 0, 3], [1, 1, 1], [7, 2]];
    return [
      statsFrame(rng, 0, []),
      statsFrame(rng, 50, shapes),
      concat(statsFrame(rng, 50, shapes), statsFrame(rng, 100, shapes), statsFrame(rng, 150, shapes.slice(2))),
    ];
  },
  mutators: [
    (b, rng) => {
      const frames = statsSplit(b);
      if (!frames || frames.length === 0) return b;
      const f = frames[rng.int(frames.length)];
      f.header = mutateJson(f.header, rng);
      if (rng.float() < 0.2) f.payload = f.payload.subarray(0, rng.int(f.payload.length + 1));
      return statsJoin(frames, rng);
    },
  ],
  run(input) {
    decodeStatsFrames(input);
  },
  isNamed: (e) => e instanceof StatsFormatError,
};

// configs ---------------------------------------------------------------------------------------------------

const YAML_TOKENS = [': ', '- ', '{', '}', '[', ']', '&a ', '*a', '<<: *a', '!!binary ', '!!js/function ', '? ', '|\n', '>-\n', '"', "'", '#', '\t', '\n  ', '\n', '---\n', '...\n', '~', '.inf', '-.inf', '.nan', '0x10', '1e999', '%YAML 1.1\n', '\ufeff', 'null', 'true'];
// An alias bomb: the yaml package must refuse it (maxAliasCount), not expand it.
const ALIAS_BOMB = 'a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\ne: [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n';

/** Config inputs carry their file kind in the first byte: 'y' (YAML) or 'j' (JSON). */
function configInput(kind: 'y' | 'j', text: string): Uint8Array {
  return enc.encode(kind + text);
}

const configTarget: Target = {
  parser: 'config',
  named: 'ConfigError',
  seeds() {
    const out: Uint8Array[] = [];
    for (const f of fs.readdirSync(path.join(ROOT, 'examples')).filter((n) => /\.basin\.ya?ml$/.test(n)).sort()) {
      const text = fs.readFileSync(path.join(ROOT, 'examples', f), 'utf8');
      out.push(configInput('y', text), configInput('j', JSON.stringify(YAML.parse(text), null, 2)));
    }
    out.push(configInput('y', ALIAS_BOMB), configInput('j', '{}'));
    return out;
  },
  mutators: [
    // a value edited structurally, written back as YAML or JSON
    (b, rng) => {
      let v: unknown;
      try {
        v = YAML.parse(dec.decode(b.subarray(1)), { logLevel: 'silent', maxAliasCount: 1000 });
      } catch {
        return b;
      }
      v = mutateJson(v, rng);
      const kind = rng.float() < 0.5 ? 'y' : 'j';
      try {
        return configInput(kind, kind === 'y' ? YAML.stringify(v) : JSON.stringify(v, null, rng.int(3)) ?? 'null');
      } catch {
        return b;
      }
    },
    // YAML syntax dropped in at random places
    (b, rng) => {
      let text = dec.decode(b.subarray(1));
      for (let k = 1 + rng.int(3); k > 0; k--) {
        const at = rng.int(text.length + 1);
        text = text.slice(0, at) + YAML_TOKENS[rng.int(YAML_TOKENS.length)] + text.slice(at);
      }
      return configInput(b[0] === 0x6a ? 'j' : 'y', text);
    },
    // lines deleted, duplicated, swapped or re-indented
    (b, rng) => {
      const lines = dec.decode(b.subarray(1)).split('\n');
      const i = rng.int(lines.length);
      const j = rng.int(lines.length);
      const r = rng.float();
      if (r < 0.3) lines.splice(i, 1);
      else if (r < 0.6) lines.splice(i, 0, lines[j]);
      else if (r < 0.8) [lines[i], lines[j]] = [lines[j], lines[i]];
      else lines[i] = ' '.repeat(rng.int(6)) + lines[i].trimStart();
      return configInput(b[0] === 0x6a ? 'j' : 'y', lines.join('\n'));
    },
  ],
  run(input) {
    const kind = input[0] === 0x6a ? 'json' : 'yaml';
    parseConfig(dec.decode(input.subarray(1)), `fuzz.basin.${kind}`);
  },
  isNamed: (e) => e instanceof ConfigError,
};

// MovieLens CSV ---------------------------------------------------------------------------------------------

const CSV_FIELDS = ['', '0', '-1', '1', '2147483647', '2147483648', '99999999999999999999', '1.5', '4.0', '.5', '5.', '1e309', '-0', 'NaN', 'Infinity', ' 3 ', '"', '""', '"a,b"', '"line\nbreak"', '"unterminated', 'x"y', '\r', '9007199254740993', '1e3', '+2'];

function csvSeed(rng: Rng, opts: { crlf?: boolean; bom?: boolean; quoted?: boolean; extra?: boolean; order?: number[] } = {}): string {
  const cols = ['userId', 'movieId', 'rating', 'timestamp'];
  const order = opts.order ?? [0, 1, 2, 3];
  const eol = opts.crlf ? '\r\n' : '\n';
  const q = (s: string) => (opts.quoted ? `"${s}"` : s);
  const lines = [[...order.map((i) => cols[i]), ...(opts.extra ? ['tag'] : [])].join(',')];
  for (let r = 0; r < 12; r++) {
    const row = [String(1 + rng.int(4)), String(1 + rng.int(6) * 10), (1 + rng.int(9) / 2).toFixed(1), String(964_980_000 + rng.int(100_000))];
    lines.push([...order.map((i) => q(row[i])), ...(opts.extra ? ['"a ""quoted"", multi\nline tag"'] : [])].join(','));
  }
  return (opts.bom ? '\ufeff' : '') + lines.join(eol) + eol;
}

const csvTarget: Target = {
  parser: 'csv',
  named: 'DataError',
  seeds() {
    const rng = new Rng(9);
    return [
      csvSeed(rng),
      csvSeed(rng, { crlf: true, bom: true }),
      csvSeed(rng, { quoted: true }),
      csvSeed(rng, { extra: true, order: [3, 2, 1, 0] }),
      'userId,movieId,rating,timestamp\n',
    ].map((s) => enc.encode(s));
  },
  mutators: [
    // a field replaced
    (b, rng) => {
      const text = dec.decode(b);
      const lines = text.split('\n');
      const i = rng.int(lines.length);
      const f = lines[i].split(',');
      f[rng.int(f.length)] = CSV_FIELDS[rng.int(CSV_FIELDS.length)];
      lines[i] = f.join(',');
      return enc.encode(lines.join('\n'));
    },
    // a field added or removed, or a header name changed
    (b, rng) => {
      const lines = dec.decode(b).split('\n');
      const i = rng.float() < 0.3 ? 0 : rng.int(lines.length);
      const f = lines[i].split(',');
      const r = rng.float();
      if (r < 0.4) f.splice(rng.int(f.length + 1), 0, CSV_FIELDS[rng.int(CSV_FIELDS.length)]);
      else if (r < 0.7) f.splice(rng.int(f.length), 1);
      else f[rng.int(f.length)] = ['userId', 'movieId', 'rating', 'timestamp', 'UserId', ' userId ', '"userId"', ''][rng.int(8)];
      lines[i] = f.join(',');
      return enc.encode(lines.join(rng.float() < 0.2 ? '\r' : '\n'));
    },
    // many rows (a longer file: the typed columns grow)
    (b, rng) => {
      const lines = dec.decode(b).split('\n');
      const body = lines.slice(1).filter((l) => l !== '');
      const extra: string[] = [];
      for (let k = rng.int(2000); k > 0 && body.length > 0; k--) extra.push(body[rng.int(body.length)]);
      return enc.encode([lines[0], ...body, ...extra].join('\n'));
    },
  ],
  async run(input, ctx) {
    const file = ctx.file('.csv');
    fs.writeFileSync(file, input);
    await loadMovielens({ path: file, minRating: ctx.rng.int(3), maxItems: 1 + ctx.rng.int(10) });
    // The stream's chunk boundaries must not matter: one chunk and random chunks give the same records or the
    // same error.
    const text = dec.decode(input);
    const parse = (chunks: string[]): string => {
      const recs: string[] = [];
      try {
        const p = new CsvParser('f.csv', (f, line) => recs.push(`${line}:${JSON.stringify(f)}`));
        for (const c of chunks) p.push(c);
        p.end();
      } catch (e) {
        if (!(e instanceof DataError)) throw e;
        recs.push(`error ${e.message}`);
      }
      return recs.join('\n');
    };
    const chunks: string[] = [];
    for (let at = 0; at < text.length; ) {
      const n = 1 + ctx.rng.int(Math.min(64, text.length - at));
      chunks.push(text.slice(at, at + n));
      at += n;
    }
    const whole = parse(text === '' ? [] : [text]);
    const pieces = parse(chunks);
    if (whole !== pieces) throw new Error(`CsvParser: records differ when the text arrives in ${chunks.length} chunks`);
  },
  isNamed: (e) => e instanceof DataError,
};

// Interaction logs (src/engine/data/interactions/read.ts) ---------------------------------------------------
// The first byte picks the format and options (INTERACTION_MODES); the rest is the file. Each input is read from
// a file (with or without skipBad), then parsed in memory in one chunk and in random chunks: both must give the
// same rows and report, or the same DataError.

const INTERACTION_MODES: Array<Omit<ReadOptions, 'file'>> = [
  { format: 'movielens-csv' },
  { format: 'delimited', delimiter: '\t', columns: { user: 'u', item: 'i', timestamp: 't' } },
  { format: 'movielens-dat' },
  { format: 'user-item' },
  { format: 'delimited', delimiter: ';', header: false, quote: true, columns: { user: 2, item: 0, rating: 1 } },
];

function interactionSeed(rng: Rng, mode: number): Uint8Array {
  const lines: string[] = [];
  if (mode === 0) lines.push('userId,movieId,rating,timestamp');
  if (mode === 1) lines.push('i\tt\tu');
  for (let r = 0; r < 10; r++) {
    const u = 1 + rng.int(5);
    const i = 1 + rng.int(30);
    const t = 964_980_000 + rng.int(100_000);
    const rt = (1 + rng.int(9) / 2).toFixed(1);
    lines.push([`${u},"${i}",${rt},${t}`, `I${i}\t${t}\tU${u}`, `${u}::${i}::${rt}::${t}`, `${u} ${i}`, `"${i}";${rt};u "${u}"`][mode]);
  }
  return concat(Uint8Array.of(mode), enc.encode((rng.float() < 0.3 ? '\ufeff' : '') + lines.join(rng.float() < 0.3 ? '\r\n' : '\n') + '\n'));
}

const INTERACTION_FIELDS = ['', ' ', '1', '-1', '1.5', '1e400', 'NaN', 'x', '"', '""', '"a;b"', '"q\nr"', '::', '\t', '\r', '9'.repeat(30)];

const interactionsTarget: Target = {
  parser: 'interactions',
  named: 'DataError',
  seeds() {
    const rng = new Rng(16);
    return [0, 1, 2, 3, 4, 0, 2].map((m) => interactionSeed(rng, m));
  },
  mutators: [
    // a field replaced or inserted on one line (split on any delimiter the modes use)
    (b, rng) => {
      const lines = dec.decode(b.subarray(1)).split('\n');
      const i = rng.int(lines.length);
      const f = lines[i].split(/(,|\t|::|;| )/);
      const at = rng.int(f.length);
      if (rng.float() < 0.7) f[at] = INTERACTION_FIELDS[rng.int(INTERACTION_FIELDS.length)];
      else f.splice(at, 0, INTERACTION_FIELDS[rng.int(INTERACTION_FIELDS.length)]);
      lines[i] = f.join('');
      return concat(b.subarray(0, 1), enc.encode(lines.join('\n')));
    },
    // another mode byte (the text read as another format)
    (b, rng) => concat(Uint8Array.of(rng.int(INTERACTION_MODES.length)), b.subarray(1)),
    // many rows
    (b, rng) => {
      const lines = dec.decode(b.subarray(1)).split('\n');
      for (let k = rng.int(1500); k > 0; k--) lines.push(lines[1 + rng.int(Math.max(1, lines.length - 1))] ?? '');
      return concat(b.subarray(0, 1), enc.encode(lines.join('\n')));
    },
  ],
  async run(input, ctx) {
    const mode = INTERACTION_MODES[(input[0] ?? 0) % INTERACTION_MODES.length];
    const text = input.length > 0 ? dec.decode(input.subarray(1)) : '';
    const file = ctx.file('.log');
    fs.writeFileSync(file, text);
    const skipBad = ctx.rng.float() < 0.5;
    const outcome = (chunks: string[]): string => {
      const rows: string[] = [];
      try {
        const p = new InteractionParser({ ...mode, file, skipBad }, (u, i, t, r, l) => rows.push(`${l}:${u}/${i}/${t}/${r}`));
        for (const c of chunks) p.push(c);
        const rep = p.end();
        rows.push(`rows ${rep.rows} bad ${rep.bad} at ${rep.badLines.join(',')}`);
      } catch (e) {
        if (!(e instanceof DataError)) throw e;
        rows.push(`error ${e.message}`);
      }
      return rows.join('\n');
    };
    const chunks: string[] = [];
    for (let at = 0; at < text.length; ) {
      const n = 1 + ctx.rng.int(Math.min(64, text.length - at));
      chunks.push(text.slice(at, at + n));
      at += n;
    }
    const whole = outcome(text === '' ? [] : [text]);
    if (outcome(chunks) !== whole) throw new Error(`InteractionParser: rows differ when the text arrives in ${chunks.length} chunks`);
    await readInteractions({ ...mode, file, skipBad }, () => {});
  },
  isNamed: (e) => e instanceof DataError,
};

// merge configs and sharded-model indices (src/files/merge/) ------------------------------------------------

/** Model fixtures the merge inputs name, written once per fuzz folder (a worker's first input waits for them). */
const mergeFixtures = new Map<string, Promise<void>>();
function mergeFixture(dir: string): Promise<void> {
  let p = mergeFixtures.get(dir);
  if (!p) {
    p = (async () => {
      const model = (seed: number): WriteTensor[] =>
        ['tok.weight', 'blocks.0.attn.q.weight', 'blocks.0.ln1.bias', 'blocks.1.attn.q.weight', 'blocks.1.ln1.bias', 'ln_f.weight', 'head.weight'].map((name) => ({
          name,
          dtype: 'F32',
          shape: name.endsWith('bias') || name.startsWith('ln_f') ? [3] : [name.startsWith('blocks') ? 3 : 5, 3],
          data: Float32Array.from({ length: name.endsWith('bias') || name.startsWith('ln_f') ? 3 : name.startsWith('blocks') ? 9 : 15 }, (_, i) => seed + i),
        }));
      for (const [i, m] of ['base', 'expert-math', 'expert-code'].entries()) {
        fs.mkdirSync(path.join(dir, 'models', m), { recursive: true });
        await writeSafetensors(path.join(dir, 'models', m, 'model.safetensors'), model(i));
      }
      await writeSafetensors(path.join(dir, 'a.safetensors'), model(7));
      fs.mkdirSync(path.join(dir, 'idx'), { recursive: true });
      const all = model(3);
      await writeSafetensors(path.join(dir, 'idx', 'model-00001-of-00002.safetensors'), all.slice(0, 3));
      await writeSafetensors(path.join(dir, 'idx', 'model-00002-of-00002.safetensors'), all.slice(3));
    })();
    mergeFixtures.set(dir, p);
  }
  return p;
}

const MERGE_KEYS = ['merge_method', 'models', 'slices', 'sources', 'model', 'layer_range', 'parameters', 'base_model', 'filter', 'value', 'weight', 'density', 'lambda', 't', 'dtype', 'out_dtype', 'basin', 'output', 'tokenizer_source'];
const MERGE_VALUES: unknown[] = ['ties', 'slerp', 'curvature', 'linear', 'passthrough', 'a.safetensors', './models/base', 'mistralai/Mistral-7B-v0.1', '../../etc', '/', 'idx', [0, 1], [0, 99], [1, 0], [{ filter: 'attn', value: [0, 1] }, { value: 0.5 }], { filter: 'x' }, [[1]], 0.5, -1, 1e308];

const mergeConfigTarget: Target = {
  parser: 'merge-config',
  named: 'ConfigError | MergePlanError',
  seeds() {
    const ex = fs.readFileSync(path.join(ROOT, 'examples', 'ties.merge.yaml'), 'utf8');
    return [
      ex,
      'merge_method: linear\nmodels:\n  - model: a.safetensors\n    parameters: {weight: [0, 1]}\n  - model: models/base\n',
      'merge_method: task_arithmetic\nbase_model: models/base\nslices:\n  - sources:\n      - {model: a.safetensors, layer_range: [0, 2], parameters: {weight: [{filter: attn, value: 2}, {value: 1}]}}\n      - {model: models/expert-math, layer_range: [0, 2]}\n    parameters: {lambda: [0.5, 1]}\n',
      'merge_method: slerp\nbase_model: models/base\nmodels:\n  - model: models/expert-code\nparameters:\n  t: [{filter: self_attn, value: [0, 0.5, 0.3, 0.7, 1]}, {filter: mlp, value: [1, 0.5, 0.7, 0.3, 0]}, {value: 0.5}]\ndtype: bfloat16\n',
    ].map((s) => enc.encode(s));
  },
  mutators: [
    // a value edited structurally (merge keys and values among the edits), written back as YAML
    (b, rng) => {
      let v: unknown;
      try {
        v = YAML.parse(dec.decode(b), { logLevel: 'silent', maxAliasCount: 1000 });
      } catch {
        return b;
      }
      const s = slots(v);
      if (s.length > 0 && rng.float() < 0.5) {
        const [c, k] = s[rng.int(s.length)];
        const key = Array.isArray(c) || rng.float() < 0.5 ? k : MERGE_KEYS[rng.int(MERGE_KEYS.length)];
        Object.defineProperty(c, key, { value: structuredClone(MERGE_VALUES[rng.int(MERGE_VALUES.length)]), enumerable: true, writable: true, configurable: true });
      } else v = mutateJson(v, rng);
      try {
        return enc.encode(YAML.stringify(v) ?? '');
      } catch {
        return b;
      }
    },
    // YAML syntax dropped in at random places
    (b, rng) => {
      let text = dec.decode(b);
      for (let k = 1 + rng.int(3); k > 0; k--) {
        const at = rng.int(text.length + 1);
        text = text.slice(0, at) + YAML_TOKENS[rng.int(YAML_TOKENS.length)] + text.slice(at);
      }
      return enc.encode(text);
    },
  ],
  async run(input, ctx) {
    const file = ctx.file('.merge.yaml');
    await mergeFixture(path.dirname(file));
    const c = parseMergeConfig(dec.decode(input), file);
    await planMerge(c);
  },
  isNamed: (e) => e instanceof ConfigError || e instanceof MergePlanError,
};

const mergeIndexTarget: Target = {
  parser: 'merge-index',
  named: 'ModelFilesError | SafetensorsError',
  seeds() {
    const s1 = 'model-00001-of-00002.safetensors';
    const s2 = 'model-00002-of-00002.safetensors';
    const wm = { 'tok.weight': s1, 'blocks.0.attn.q.weight': s1, 'blocks.0.ln1.bias': s1, 'blocks.1.attn.q.weight': s2, 'blocks.1.ln1.bias': s2, 'ln_f.weight': s2, 'head.weight': s2 };
    return [{ metadata: { total_size: 220 }, weight_map: wm }, { weight_map: wm }, { weight_map: { 'tok.weight': s1 } }].map((x) => enc.encode(JSON.stringify(x, null, 2)));
  },
  mutators: [
    (b, rng) => {
      let v: unknown;
      try {
        v = JSON.parse(dec.decode(b));
      } catch {
        return b;
      }
      return enc.encode(JSON.stringify(mutateJson(v, rng)) ?? 'null');
    },
    // shard paths made hostile or wrong
    (b, rng) => {
      let v: { weight_map?: Record<string, unknown> };
      try {
        v = JSON.parse(dec.decode(b));
      } catch {
        return b;
      }
      const wm = v?.weight_map;
      if (!wm || typeof wm !== 'object') return b;
      const keys = Object.keys(wm);
      if (keys.length === 0) return b;
      const bad = ['../a.safetensors', '/etc/passwd', 'sub/../../x.safetensors', '..\\x.safetensors', '', 'model.safetensors.index.json', 'missing.safetensors', 'model-00002-of-00002.safetensors', '.', 'x\u0000.safetensors', 'C:/x.safetensors'];
      Object.defineProperty(wm, keys[rng.int(keys.length)], { value: bad[rng.int(bad.length)], enumerable: true, writable: true, configurable: true });
      return enc.encode(JSON.stringify(v));
    },
  ],
  async run(input, ctx) {
    const dir = path.dirname(ctx.file('.json'));
    await mergeFixture(dir);
    fs.writeFileSync(path.join(dir, 'idx', 'model.safetensors.index.json'), input);
    const m = await ModelFiles.open({ path: path.join(dir, 'idx'), kind: 'sharded' });
    try {
      if (m.list.length) await m.readF32(m.list[ctx.rng.int(m.list.length)].name);
    } finally {
      await m.close();
    }
  },
  isNamed: (e) => e instanceof ModelFilesError || e instanceof SafetensorsError,
};

const TARGETS: Record<FuzzParser, Target> = { safetensors: safetensorsTarget, stats: statsTarget, config: configTarget, csv: csvTarget, interactions: interactionsTarget, 'merge-config': mergeConfigTarget, 'merge-index': mergeIndexTarget };

// ---------------------------------------------------------------------------------------------- the inputs

/** The valid inputs a parser's mutations start from. */
export function fuzzSeeds(parser: FuzzParser): Uint8Array[] {
  return TARGETS[parser].seeds();
}

/** Input i of a run: a seed with 1–3 mutations, from `new Rng(seed, i)` alone. */
export function fuzzInput(parser: FuzzParser, seed: number, index: number, seeds = TARGETS[parser].seeds()): Uint8Array {
  const t = TARGETS[parser];
  const rng = new Rng(seed, index);
  let b = seeds[rng.int(seeds.length)];
  // A few inputs are the seeds themselves (they must be accepted).
  if (index < seeds.length) return seeds[index];
  for (let k = 1 + rng.int(3); k > 0; k--) {
    const m = rng.float() < 0.5 && t.mutators.length > 0 ? t.mutators[rng.int(t.mutators.length)] : GENERIC[rng.int(GENERIC.length)];
    try {
      b = m(b, rng, seeds);
    } catch {
      // A structure-aware mutator met something it cannot take apart: keep the input as it was.
    }
    // Keep inputs bounded so that 10^5 of them run in minutes (a 1 MiB cap still allows the huge-length cases).
    if (b.length > 1 << 20) b = b.subarray(0, 1 << 20);
  }
  return b;
}

type Outcome = { kind: 'accepted' } | { kind: 'named' } | { kind: 'crash'; error: string };

async function runOne(parser: FuzzParser, input: Uint8Array, index: number, seed: number, dir: string): Promise<Outcome> {
  const t = TARGETS[parser];
  const ctx = { file: (ext: string) => path.join(dir, `input${ext}`), rng: new Rng(seed ^ 0x5a5a, index) };
  try {
    await t.run(input, ctx);
    return { kind: 'accepted' };
  } catch (e) {
    if (t.isNamed(e)) return { kind: 'named' };
    const err = e as Error;
    return { kind: 'crash', error: `${err?.name ?? typeof e}: ${String(err?.message ?? e).slice(0, 300)}${err?.stack ? `\n${err.stack.split('\n').slice(1, 4).join('\n')}` : ''}` };
  }
}

// ----------------------------------------------------------------------------------------------- the worker

// Shared progress: [next index, accepted, named, crashes, hangs] as Int32, then [max ms, index of max] as Float64.
const I_NEXT = 0;
const I_ACCEPTED = 1;
const I_NAMED = 2;
const I_CRASHES = 3;
const I_HANGS = 4;
/** Set by a worker once its modules and seeds are loaded: start-up is not an input's time. */
const I_READY = 5;
/** The input being parsed, -1 between inputs (while the next one is generated): only parsing is time-boxed. */
const I_PARSING = 6;

interface WorkerArgs {
  fuzz: true;
  parser: FuzzParser;
  seed: number;
  n: number;
  dir: string;
  counters: SharedArrayBuffer;
  timing: SharedArrayBuffer;
}

async function workerMain(a: WorkerArgs): Promise<void> {
  const c = new Int32Array(a.counters);
  const tm = new Float64Array(a.timing);
  const seeds = TARGETS[a.parser].seeds();
  Atomics.store(c, I_READY, 1);
  for (let i = Atomics.load(c, I_NEXT); i < a.n; i = Atomics.add(c, I_NEXT, 1) + 1) {
    const input = fuzzInput(a.parser, a.seed, i, seeds);
    Atomics.store(c, I_PARSING, i);
    const t0 = performance.now();
    const o = await runOne(a.parser, input, i, a.seed, a.dir);
    const ms = performance.now() - t0;
    Atomics.store(c, I_PARSING, -1);
    if (ms > tm[0]) {
      tm[0] = ms;
      tm[1] = i;
    }
    if (o.kind === 'accepted') Atomics.add(c, I_ACCEPTED, 1);
    else if (o.kind === 'named') Atomics.add(c, I_NAMED, 1);
    else if (o.kind === 'crash') {
      Atomics.add(c, I_CRASHES, 1);
      parentPort!.postMessage({ crash: { index: i, error: o.error, input: Buffer.from(input.subarray(0, 4096)).toString('base64') } });
    }
  }
  parentPort!.postMessage({ done: true });
}

if (!isMainThread && (workerData as WorkerArgs | undefined)?.fuzz) {
  void workerMain(workerData as WorkerArgs);
}

const GENERATE_LIMIT_MS = 30_000;

/** Fuzzes one parser with n inputs in a worker thread, each time-boxed to timeoutMs. */
export async function fuzzParser(parser: FuzzParser, opts: { n: number; seed?: number; timeoutMs?: number; onProgress?: (done: number) => void }): Promise<FuzzReport> {
  const seed = opts.seed ?? 1;
  const timeoutMs = opts.timeoutMs ?? 5000;
  const counters = new SharedArrayBuffer(8 * 4);
  const timing = new SharedArrayBuffer(2 * 8);
  const c = new Int32Array(counters);
  const tm = new Float64Array(timing);
  const examples: FuzzCrash[] = [];
  const dir = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), `basin-fuzz-${parser}-`));
  const t0 = performance.now();
  try {
    while (Atomics.load(c, I_NEXT) < opts.n) {
      const args: WorkerArgs = { fuzz: true, parser, seed, n: opts.n, dir, counters, timing };
      Atomics.store(c, I_READY, 0);
      Atomics.store(c, I_PARSING, -1);
      // The worker loads this TypeScript file through tsx's CommonJS hook: loader hooks of the parent (tsx's
      // --import) do not reach worker threads.
      const w = new Worker(`require('tsx/cjs/api').register(); require(${JSON.stringify(__filename)});`, { eval: true, workerData: args });
      const hung = await new Promise<boolean>((resolve, reject) => {
        let seen = '';
        let since = performance.now();
        const timer = setInterval(() => {
          const i = Atomics.load(c, I_NEXT);
          const parsing = Atomics.load(c, I_PARSING);
          opts.onProgress?.(i);
          const state = `${i}:${parsing}:${Atomics.load(c, I_READY)}`;
          if (state !== seen) {
            seen = state;
            since = performance.now();
            return;
          }
          // An input parsing past the time box is a hang; generating one should never take long, but a stuck
          // generator must not stall the run either.
          const limit = parsing >= 0 ? timeoutMs : GENERATE_LIMIT_MS;
          if (Atomics.load(c, I_READY) === 1 && performance.now() - since > limit) {
            clearInterval(timer);
            resolve(true);
          }
        }, 20);
        w.on('message', (m: { crash?: FuzzCrash; done?: boolean }) => {
          if (m.crash && examples.length < 10) examples.push(m.crash);
          if (m.done) {
            clearInterval(timer);
            resolve(false);
          }
        });
        w.on('error', (e) => {
          clearInterval(timer);
          reject(e);
        });
      });
      if (hung) {
        const parsing = Atomics.load(c, I_PARSING);
        const i = parsing >= 0 ? parsing : Atomics.load(c, I_NEXT);
        await w.terminate();
        Atomics.add(c, I_HANGS, 1);
        if (examples.length < 10) {
          examples.push({ index: i, error: `hang: still running after ${timeoutMs} ms`, input: Buffer.from(fuzzInput(parser, seed, i).subarray(0, 4096)).toString('base64') });
        }
        Atomics.store(c, I_NEXT, i + 1);
      } else {
        await w.terminate();
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return {
    parser,
    inputs: opts.n,
    namedErrors: c[I_NAMED],
    accepted: c[I_ACCEPTED],
    crashes: c[I_CRASHES],
    hangs: c[I_HANGS],
    maxMs: tm[0],
    maxMsIndex: tm[1],
    examples,
    seconds: (performance.now() - t0) / 1000,
  };
}

export function formatFuzzTable(reports: FuzzReport[]): string {
  const rows = [['parser', 'inputs', 'named errors', 'accepted', 'unexpected crashes', 'hangs', 'max ms', 'seconds']];
  for (const r of reports) {
    rows.push([r.parser, String(r.inputs), String(r.namedErrors), String(r.accepted), String(r.crashes), String(r.hangs), `${r.maxMs.toFixed(1)} (#${r.maxMsIndex})`, r.seconds.toFixed(1)]);
  }
  const w = rows[0].map((_, j) => Math.max(...rows.map((r) => r[j].length)));
  return rows.map((r, i) => r.map((cell, j) => (j === 0 ? cell.padEnd(w[j]) : cell.padStart(w[j]))).join('  ') + (i === 0 ? `\n${w.map((n) => '-'.repeat(n)).join('  ')}` : '')).join('\n');
}

// ------------------------------------------------------------------------------------------------------ CLI

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const arg = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    if (i >= 0) return argv[i + 1];
    return argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
  };
  const n = Number(arg('n') ?? 100_000);
  const seed = Number(arg('seed') ?? 1);
  const timeoutMs = Number(arg('timeout-ms') ?? 5000);
  const jobs = Math.max(1, Number(arg('jobs') ?? Math.min(FUZZ_PARSERS.length, os.cpus().length)));
  const only = (arg('only')?.split(',') ?? [...FUZZ_PARSERS]) as FuzzParser[];
  for (const p of only) if (!FUZZ_PARSERS.includes(p)) throw new Error(`--only: unknown parser ${p} (known: ${FUZZ_PARSERS.join(', ')})`);
  if (!(Number.isInteger(n) && n > 0)) throw new Error(`--n must be a positive integer, got ${arg('n')}`);

  const index = arg('index');
  if (index !== undefined) {
    // Replay one input in this thread (no time box), keep it for a test case.
    const i = Number(index);
    const input = fuzzInput(only[0], seed, i);
    const out = path.join(ROOT, 'out', 'fuzz');
    fs.mkdirSync(out, { recursive: true });
    const file = path.join(out, `${only[0]}-seed${seed}-${i}.bin`);
    fs.writeFileSync(file, input);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'basin-fuzz-'));
    const o = await runOne(only[0], input, i, seed, dir);
    fs.rmSync(dir, { recursive: true, force: true });
    console.log(`${only[0]} input #${i} (seed ${seed}, ${input.length} bytes, saved to ${path.relative(ROOT, file)}): ${o.kind}${o.kind === 'crash' ? `\n${o.error}` : ''}`);
    return;
  }

  console.log(`fuzzing ${only.join(', ')}: ${n} inputs each, seed ${seed}, ${timeoutMs} ms per input, ${jobs} at a time`);
  const reports: FuzzReport[] = [];
  const queue = [...only];
  await Promise.all(
    Array.from({ length: Math.min(jobs, queue.length) }, async () => {
      for (let p = queue.shift(); p; p = queue.shift()) {
        // A line per tenth of the run: the config parser takes minutes for 10^5 inputs on a small machine.
        let shown = 0;
        const t0 = performance.now();
        const onProgress = (done: number) => {
          if (done >= shown + n / 10 && done < n) {
            shown = done;
            console.log(`  ${p}: ${done} of ${n} (${((performance.now() - t0) / 1000).toFixed(0)} s)`);
          }
        };
        const r = await fuzzParser(p, { n, seed, timeoutMs, onProgress });
        reports.push(r);
        console.log(`  ${p}: done in ${r.seconds.toFixed(1)} s`);
      }
    }),
  );
  reports.sort((a, b) => only.indexOf(a.parser) - only.indexOf(b.parser));
  console.log(`\n${formatFuzzTable(reports)}\n`);
  let bad = false;
  for (const r of reports) {
    for (const e of r.examples) {
      bad = true;
      console.log(`${r.parser} #${e.index}: ${e.error}\n  replay: npx tsx bench/fuzz.ts --only ${r.parser} --seed ${seed} --index ${e.index}\n`);
    }
    if (r.crashes + r.hangs > 0) bad = true;
  }
  process.exitCode = bad ? 1 : 0;
}

if (isMainThread && require.main === module) {
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(2);
  });
}
