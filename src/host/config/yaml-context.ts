// Where the cursor is in a training config written in YAML: the path of the mapping it is in, whether it is at a
// key or a value, the text typed so far, and the other keys of that mapping (with scalar values: the `type` that
// selects a model's or an optimizer's parameters). Line-based and tolerant of half-typed text, which a YAML
// parser is not; it knows block mappings and one-line flow mappings (`optimizer: { type: adamw, lr: 0.003 }`),
// which is what configs are made of. No `vscode` import: the unit tier tests it.

export interface CursorContext {
  /** Keys from the root to the mapping the cursor is in (['train', 'optimizer']). */
  path: string[];
  /** At a key (typing one) or at the value of `key`. */
  at: 'key' | 'value';
  /** With at = 'value': the key whose value is typed. */
  key?: string;
  /** What is typed so far of the key or value (the word to replace), and where it starts (column). */
  prefix: string;
  prefixStart: number;
  /** The mapping's keys with their scalar value text ('' for nested or empty values). */
  siblings: Record<string, string>;
}

const KEY = /[A-Za-z_$][\w$-]*/;

function indentOf(line: string): number {
  return line.length - line.trimStart().length;
}

function isBlank(line: string): boolean {
  const t = line.trim();
  return t === '' || t.startsWith('#') || t === '---';
}

/** Strips a trailing comment (outside quotes) and surrounding quotes of a scalar. */
function scalar(text: string): string {
  let out = '';
  let q: string | null = null;
  for (const ch of text) {
    if (q) {
      if (ch === q) q = null;
    } else if (ch === '"' || ch === "'") q = ch;
    else if (ch === '#') break;
    out += ch;
  }
  return out.trim().replace(/^(["'])(.*)\1$/, '$2');
}

/** `{ a: 1, b: { c: 2 } }` text (from its `{`) → top-level key → scalar text, up to its `}` or the line's end. */
function flowSiblings(text: string, open: number): Record<string, string> {
  const out: Record<string, string> = {};
  let depth = 0;
  let seg = '';
  let q: string | null = null;
  const flush = () => {
    const i = seg.indexOf(':');
    if (i > 0) {
      const k = seg.slice(0, i).trim();
      const v = seg.slice(i + 1).trim();
      if (KEY.test(k)) out[k] = v.startsWith('{') || v.startsWith('[') ? '' : scalar(v);
    }
    seg = '';
  };
  for (let i = open + 1; i < text.length; i++) {
    const ch = text[i];
    if (q) {
      if (ch === q) q = null;
      seg += ch;
      continue;
    }
    if (ch === '"' || ch === "'") q = ch;
    else if (ch === '#' && /\s/.test(text[i - 1] ?? ' ')) break;
    if (ch === '{' || ch === '[') depth++;
    if (ch === '}' || ch === ']') {
      if (depth === 0) break;
      depth--;
    }
    if (ch === ',' && depth === 0) {
      flush();
      continue;
    }
    seg += ch;
  }
  flush();
  return out;
}

/** The keys of the block mapping at `indent` that holds line `at` (its siblings above and below). */
function blockSiblings(lines: readonly string[], at: number, indent: number): Record<string, string> {
  const out: Record<string, string> = {};
  const take = (i: number): boolean => {
    const l = lines[i];
    if (isBlank(l)) return true;
    const ind = indentOf(l);
    if (ind < indent) return false;
    if (ind === indent) {
      const m = /^\s*([A-Za-z_$][\w$-]*)\s*:(.*)$/.exec(l);
      if (m) {
        const v = m[2].trim();
        out[m[1]] = v.startsWith('{') || v.startsWith('[') ? '' : scalar(v);
      }
    }
    return true;
  };
  for (let i = at - 1; i >= 0 && take(i); i--);
  for (let i = at + 1; i < lines.length && take(i); i++);
  return out;
}

/** The block keys that enclose line `at` whose content starts at column `indent` (outermost first). */
function blockParents(lines: readonly string[], at: number, indent: number): string[] | undefined {
  const path: string[] = [];
  let ind = indent;
  for (let i = at - 1; i >= 0 && ind > 0; i--) {
    const l = lines[i];
    if (isBlank(l)) continue;
    const li = indentOf(l);
    if (li >= ind) continue;
    const m = /^\s*([A-Za-z_$][\w$-]*)\s*:\s*(#.*)?$/.exec(l);
    if (!m) return undefined; // a list item or a key with an inline value: not a place for Basin's keys
    path.unshift(m[1]);
    ind = li;
  }
  return path;
}

/** The context at (line, column) of a YAML config, or undefined where no key or value of the schema is typed. */
export function yamlContext(lines: readonly string[], line: number, column: number): CursorContext | undefined {
  const cur = lines[line] ?? '';
  const before = cur.slice(0, column);
  if (/^\s*#/.test(before)) return undefined;

  // One-line flow mapping: find the innermost `{` open at the cursor, and the keys that lead to it.
  const stack: { open: number; key: string }[] = [];
  let lastKey = '';
  let seg = '';
  let segStart = 0;
  let q: string | null = null;
  let inSeq = 0;
  for (let i = 0; i < before.length; i++) {
    const ch = before[i];
    if (q) {
      if (ch === q) q = null;
      seg += ch;
      continue;
    }
    if (ch === '"' || ch === "'") {
      q = ch;
      seg += ch;
      continue;
    }
    if (ch === '#' && /\s/.test(before[i - 1] ?? ' ')) return undefined; // in a comment
    if (ch === '{' && inSeq === 0) {
      stack.push({ open: i, key: lastKey });
      seg = '';
      segStart = i + 1;
    } else if (ch === '}' && inSeq === 0) {
      stack.pop();
      seg = '';
    } else if (ch === '[') inSeq++;
    else if (ch === ']') inSeq = Math.max(0, inSeq - 1);
    else if (ch === ',' && inSeq === 0) {
      seg = '';
      segStart = i + 1;
    } else if (ch === ':' && inSeq === 0) {
      const k = seg.trim();
      if (KEY.test(k)) lastKey = k;
      seg += ch;
    } else seg += ch;
  }
  if (inSeq > 0) return undefined;

  if (stack.length > 0) {
    const blockIndent = indentOf(cur);
    const parents = blockParents(lines, line, blockIndent);
    if (!parents) return undefined;
    const path = [...parents, ...stack.map((s) => s.key)];
    if (path.some((k) => !k)) return undefined;
    const siblings = flowSiblings(cur, stack[stack.length - 1].open);
    return segmentContext(seg, segStart, path, siblings);
  }

  // Block mapping.
  const blankLine = before.trim() === '';
  const indent = blankLine ? column : indentOf(cur);
  const parents = blockParents(lines, line, indent);
  if (!parents) return undefined;
  const siblings = blockSiblings(lines, line, indent);
  return segmentContext(before.slice(indentOf(before)), indentOf(before), parents, siblings);
}

/** `seg` is what is typed since the mapping's last separator (from column segStart). */
function segmentContext(seg: string, segStart: number, path: string[], siblings: Record<string, string>): CursorContext | undefined {
  const lead = seg.length - seg.trimStart().length;
  const text = seg.slice(lead);
  const keyOnly = /^[A-Za-z_$]?[\w$-]*$/.exec(text);
  if (keyOnly) return { path, at: 'key', prefix: text, prefixStart: segStart + lead, siblings };
  const kv = /^([A-Za-z_$][\w$-]*)\s*:(\s*)(.*)$/.exec(text);
  if (!kv) return undefined;
  const value = kv[3];
  if (value.startsWith('{') || value.startsWith('[') || value.includes('#')) return undefined;
  const start = segStart + lead + kv[1].length + 1 + kv[2].length;
  return { path, at: 'value', key: kv[1], prefix: value, prefixStart: start, siblings };
}

/** The key under the cursor (for hover): its text, its start column and the path of the mapping it is in. */
export function yamlKeyAt(lines: readonly string[], line: number, column: number): { key: string; start: number; end: number; path: string[]; siblings: Record<string, string>; value?: string } | undefined {
  const cur = lines[line] ?? '';
  const re = /([A-Za-z_$][\w$-]*)\s*:/g;
  for (let m = re.exec(cur); m; m = re.exec(cur)) {
    const start = m.index;
    const end = start + m[1].length;
    const prev = cur[start - 1];
    if (prev !== undefined && !/[\s{,]/.test(prev)) continue;
    if (column < start || column > end) continue;
    const ctx = yamlContext(lines, line, start);
    if (!ctx || ctx.at !== 'key') return undefined;
    const rest = cur.slice(m.index + m[0].length);
    const value = rest.trim().startsWith('{') || rest.trim().startsWith('[') ? undefined : scalar(rest.split(/[,}]/)[0] ?? '');
    return { key: m[1], start, end, path: ctx.path, siblings: ctx.siblings, value };
  }
  return undefined;
}
