// Canvas drawing shared by the panels' webviews: theme colours (the workbench's --vscode-* variables, re-read when
// the theme changes), line charts, heatmaps (the curvature profiles) and histograms. No chart library: a few
// hundred lines draw 1,000 layers in a few milliseconds.

export interface Theme {
  fg: string;
  muted: string;
  bg: string;
  grid: string;
  border: string;
  focus: string;
  selection: string;
  font: string;
  /** Line colours, each with a contrast ratio of at least SERIES_CONTRAST against `bg`. */
  series: string[];
}

/**
 * Minimum contrast of a series colour against the editor background. WCAG asks 3:1 of graphical objects; the
 * theme's `charts.*` colours do not always give it (a dark orange on Dark+, yellow on Light+), so readTheme lifts
 * each colour towards the foreground side until it does. A little above 3 so rounding never lands below it.
 */
export const SERIES_CONTRAST = 3.2;

function cssVar(style: CSSStyleDeclaration, name: string, fallback: string): string {
  const v = style.getPropertyValue(name).trim();
  return v || fallback;
}

export function readTheme(): Theme {
  const s = getComputedStyle(document.body);
  const fg = cssVar(s, '--vscode-foreground', '#cccccc');
  const bg = cssVar(s, '--vscode-editor-background', '#1e1e1e');
  // The theme's own chart colours, in an order where neighbours differ in hue and lightness (the first two are
  // train/validation loss, drawn together most often).
  const base = [
    cssVar(s, '--vscode-charts-blue', '#3794ff'),
    cssVar(s, '--vscode-charts-orange', '#d18616'),
    cssVar(s, '--vscode-charts-green', '#89d185'),
    cssVar(s, '--vscode-charts-purple', '#b180d7'),
    cssVar(s, '--vscode-charts-red', '#f14c4c'),
    cssVar(s, '--vscode-charts-yellow', '#cca700'),
  ];
  return {
    fg,
    muted: cssVar(s, '--vscode-descriptionForeground', fg),
    bg,
    grid: withAlpha(fg, 0.12),
    border: cssVar(s, '--vscode-panel-border', withAlpha(fg, 0.3)),
    focus: ensureContrast(cssVar(s, '--vscode-focusBorder', '#007fd4'), bg, SERIES_CONTRAST),
    selection: cssVar(s, '--vscode-list-activeSelectionBackground', 'rgba(0,120,212,0.4)'),
    font: cssVar(s, '--vscode-font-family', 'sans-serif'),
    series: base.map((c) => ensureContrast(c, bg, SERIES_CONTRAST)),
  };
}

/** Calls `fn` when the workbench theme changes (VS Code rewrites body classes and the html style attribute). */
export function onThemeChange(fn: () => void): void {
  const mo = new MutationObserver(() => fn());
  mo.observe(document.body, { attributes: true, attributeFilter: ['class', 'data-vscode-theme-id'] });
  mo.observe(document.documentElement, { attributes: true, attributeFilter: ['style', 'class'] });
}

// ------------------------------------------------------------------------------------------------ colours

export type Rgba = [number, number, number, number];

/** #rgb, #rgba, #rrggbb, #rrggbbaa, rgb() and rgba() (what getComputedStyle and the --vscode-* variables hold). */
export function parseColor(color: string): Rgba | null {
  const c = color.trim();
  const hex = /^#([0-9a-f]{3,4}|[0-9a-f]{6}|[0-9a-f]{8})$/i.exec(c);
  if (hex) {
    let h = hex[1];
    if (h.length <= 4) h = h.split('').map((x) => x + x).join('');
    const n = (i: number) => parseInt(h.slice(i, i + 2), 16);
    return [n(0), n(2), n(4), h.length === 8 ? n(6) / 255 : 1];
  }
  const fn = /^rgba?\(([^)]+)\)$/i.exec(c);
  if (fn) {
    const p = fn[1].split(/[\s,/]+/).filter(Boolean);
    if (p.length < 3) return null;
    const ch = (x: string) => (x.endsWith('%') ? (parseFloat(x) * 255) / 100 : parseFloat(x));
    const a = p[3] === undefined ? 1 : p[3].endsWith('%') ? parseFloat(p[3]) / 100 : parseFloat(p[3]);
    const out: Rgba = [ch(p[0]), ch(p[1]), ch(p[2]), a];
    return out.every(Number.isFinite) ? out : null;
  }
  return null;
}

/** `c` painted over the opaque `bg`. */
function over(c: Rgba, bg: Rgba): Rgba {
  const a = c[3];
  return [c[0] * a + bg[0] * (1 - a), c[1] * a + bg[1] * (1 - a), c[2] * a + bg[2] * (1 - a), 1];
}

/** WCAG relative luminance of an opaque colour. */
export function luminance(c: Rgba): number {
  const lin = (v: number) => {
    const x = v / 255;
    return x <= 0.03928 ? x / 12.92 : ((x + 0.055) / 1.055) ** 2.4;
  };
  return 0.2126 * lin(c[0]) + 0.7152 * lin(c[1]) + 0.0722 * lin(c[2]);
}

/** WCAG contrast ratio of `fg` (composited over `bg`) against `bg`; NaN when either colour cannot be read. */
export function contrastRatio(fg: string, bg: string): number {
  const b = parseColor(bg);
  const f = parseColor(fg);
  if (!b || !f) return NaN;
  const ob = over(b, [0, 0, 0, 1]);
  const la = luminance(over(f, ob));
  const lb = luminance(ob);
  return (Math.max(la, lb) + 0.05) / (Math.min(la, lb) + 0.05);
}

/**
 * `color` made opaque, or the same hue mixed towards white (on a dark background) or black (on a light one) just
 * enough to reach `min` contrast against `bg`. Opaque, because a theme's translucent chart colour (Dark Modern's
 * orange) turns a muddy brown over the background when drawn as a thin line. Unreadable colours are returned as
 * they are.
 */
export function ensureContrast(color: string, bg: string, min: number): string {
  const b = parseColor(bg);
  const f = parseColor(color);
  if (!b || !f) return color;
  const ob = over(b, [0, 0, 0, 1]);
  const base: Rgba = [f[0], f[1], f[2], 1];
  const toward = luminance(ob) < 0.35 ? 255 : 0;
  for (let t = 0; t <= 1.0001; t += 0.04) {
    const c: Rgba = [base[0] + (toward - base[0]) * t, base[1] + (toward - base[1]) * t, base[2] + (toward - base[2]) * t, 1];
    const la = luminance(c);
    const lb = luminance(ob);
    if ((Math.max(la, lb) + 0.05) / (Math.min(la, lb) + 0.05) >= min) {
      return t === 0 && f[3] === 1 ? color : `rgb(${Math.round(c[0])},${Math.round(c[1])},${Math.round(c[2])})`;
    }
  }
  return toward ? '#ffffff' : '#000000';
}

/** A colour with alpha, for grid lines from the foreground colour (#rgb, #rrggbb, rgb(), rgba()). */
export function withAlpha(color: string, a: number): string {
  const c = parseColor(color);
  return c ? `rgba(${Math.round(c[0])},${Math.round(c[1])},${Math.round(c[2])},${a})` : color.trim();
}

/** Sizes the canvas to its CSS box at the device pixel ratio; returns the context in CSS pixels, or null if hidden. */
export function prepare(canvas: HTMLCanvasElement, cssHeight?: number): { g: CanvasRenderingContext2D; w: number; h: number } | null {
  const w = canvas.clientWidth;
  const h = cssHeight ?? canvas.clientHeight;
  if (w <= 0 || h <= 0) return null;
  const dpr = window.devicePixelRatio || 1;
  const W = Math.round(w * dpr);
  const H = Math.round(h * dpr);
  if (canvas.width !== W) canvas.width = W;
  if (canvas.height !== H) canvas.height = H;
  const g = canvas.getContext('2d');
  if (!g) return null;
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  return { g, w, h };
}

// ------------------------------------------------------------------------------------------------ text

/** 0.00123 → "1.23e-3", 1234.5 → "1235", 0.5 → "0.5". */
export function fmt(v: number | null | undefined, digits = 4): string {
  if (v === null || v === undefined) return '—';
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '∞' : '−∞';
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) {
    const [m, e] = v.toExponential(Math.max(1, digits - 2)).split('e');
    return `${m}e${Number(e)}`;
  }
  return String(Number(v.toPrecision(digits)));
}

/** A fraction as a percentage: 0.8987 → "89.9 %" (how the job notifications write accuracy and HR@10). */
export function fmtPercent(v: number | null | undefined, decimals = 1): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return fmt(v);
  return `${(v * 100).toFixed(decimals)} %`;
}

/** "1 sample", "40 samples". */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${n.toLocaleString('en-US')} ${n === 1 ? one : many}`;
}

/**
 * One number format for all the labels of an axis: plain decimals with the same number of places, or, when a
 * value needs it (≥ 1e5 or below 1e-3), scientific notation with the same mantissa digits for every label —
 * never "0.001" beside "5e-4". The fewest digits that still write every tick exactly are used.
 */
export function axisFormatter(ticks: readonly number[]): (v: number) => string {
  const vals = ticks.filter((v) => Number.isFinite(v));
  const nonzero = vals.filter((v) => v !== 0).map(Math.abs);
  const maxAbs = nonzero.length ? Math.max(...nonzero) : 0;
  const minAbs = nonzero.length ? Math.min(...nonzero) : 0;
  const exact = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b), 1e-300);
  if (maxAbs >= 1e5 || (minAbs > 0 && minAbs < 1e-3)) {
    let d = 0;
    while (d < 4 && !vals.every((v) => exact(Number(v.toExponential(d)), v))) d++;
    return (v) => {
      if (v === 0) return '0';
      const [m, e] = v.toExponential(d).split('e');
      return `${m}e${Number(e)}`;
    };
  }
  let d = 0;
  while (d < 8 && !vals.every((v) => exact(Number(v.toFixed(d)), v))) d++;
  return (v) => (Math.abs(v) < 0.5 * 10 ** -d ? '0' : v.toFixed(d));
}

/**
 * A name shortened in the MIDDLE to fit `maxWidth` (as `measure` says): the start and the last segment stay, so
 * "blocks.0.attn.o.weight" and "blocks.0.attn.o.bias" remain distinguishable ("blocks.0.a….weight", "….bias").
 * Returns the name itself when it fits.
 */
export function middleEllipsis(name: string, maxWidth: number, measure: (s: string) => number): string {
  if (measure(name) <= maxWidth) return name;
  const dot = name.lastIndexOf('.');
  // The tail kept whole: the last dotted segment with its dot, unless it alone takes more than half the room.
  let tail = dot > 0 ? name.slice(dot) : '';
  if (!tail || measure(`…${tail}`) > maxWidth * 0.6) tail = '';
  const rest = tail ? name.slice(0, dot) : name;
  // Largest head (and, without a whole tail, a balanced head + tail) that fits: binary search on the kept length.
  const build = (k: number): string => {
    if (tail) return `${rest.slice(0, k)}…${tail}`;
    const h = Math.ceil(k / 2);
    return `${rest.slice(0, h)}…${rest.slice(rest.length - (k - h))}`;
  };
  let lo = 0;
  let hi = rest.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (measure(build(mid)) <= maxWidth) lo = mid;
    else hi = mid - 1;
  }
  return build(lo);
}

/** Greedy word wrap of `text` into lines no wider than `maxWidth` (a word longer than that gets a line of its own). */
export function wrapText(text: string, maxWidth: number, measure: (s: string) => number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    const next = line ? `${line} ${word}` : word;
    if (line && measure(next) > maxWidth) {
      lines.push(line);
      line = word;
    } else line = next;
  }
  if (line) lines.push(line);
  return lines;
}

/** Draws `text` wrapped and centred in the w × h box (the empty-chart messages). */
function drawMessage(g: CanvasRenderingContext2D, theme: Theme, text: string, w: number, h: number): void {
  g.fillStyle = theme.muted;
  g.textAlign = 'center';
  g.textBaseline = 'middle';
  const lines = wrapText(text, Math.max(40, w - 24), (s) => g.measureText(s).width);
  const lh = 15;
  const y0 = h / 2 - ((lines.length - 1) * lh) / 2;
  lines.forEach((l, i) => g.fillText(l, w / 2, y0 + i * lh));
}

// ------------------------------------------------------------------------------------------------ ticks

function niceStep(range: number, count: number): number {
  const raw = range / Math.max(1, count);
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  return (m < 1.5 ? 1 : m < 3 ? 2 : m < 7 ? 5 : 10) * p;
}

function linearTicks(lo: number, hi: number, count: number, minStep = 0): number[] {
  if (!(hi > lo)) return [lo];
  const s = Math.max(minStep, niceStep(hi - lo, count));
  const out: number[] = [];
  // Multiples of the step, computed (not accumulated) so 0.1 + 0.2 never shows as 0.30000000000000004.
  for (let i = Math.ceil(lo / s - 1e-9); i * s <= hi + s * 1e-9; i++) out.push(Number((i * s).toPrecision(12)) || 0);
  return out;
}

/** Ticks (as log10 values) at 1·10ⁿ, then 1/2/5·10ⁿ, then 1..9·10ⁿ, whichever first gives at least 2 in range. */
function logTicks(lo: number, hi: number, count: number): number[] {
  for (const mult of [[1], [1, 2, 5], [1, 2, 3, 4, 5, 6, 7, 8, 9]]) {
    const out: number[] = [];
    for (let e = Math.floor(lo); e <= Math.ceil(hi); e++)
      for (const m of mult) {
        const v = e + Math.log10(m);
        if (v >= lo - 1e-9 && v <= hi + 1e-9) out.push(v);
      }
    if (out.length >= 2) {
      const stride = Math.max(1, Math.ceil(out.length / Math.max(2, count)));
      return out.filter((_, i) => i % stride === 0);
    }
  }
  return linearTicks(lo, hi, count);
}

/** "blocks.70.mlp.fc1.weight" → "…70.mlp.fc1.weight": whole leading segments dropped until it fits. */
export function shortName(name: string, max: number): string {
  if (name.length <= max) return name;
  const parts = name.split('.');
  while (parts.length > 1 && parts.join('.').length + 1 > max) parts.shift();
  const s = parts.join('.');
  return s.length + 1 > max ? `…${s.slice(-(max - 1))}` : `…${s}`;
}

// ------------------------------------------------------------------------------------------------ line chart

export interface Series {
  name: string;
  /** Legend text (default: the name, shortened in the middle to fit). */
  label?: string;
  xs: ArrayLike<number>;
  ys: ArrayLike<number>;
  color: string;
  width?: number;
  dots?: boolean;
  /** A dashed line (canvas setLineDash pattern, px), e.g. a reference such as a fine-tune's base model. */
  dash?: number[];
}

export interface LineChartOptions {
  logY?: boolean;
  xLabel?: string;
  /** A vertical marker (e.g. the pinned checkpoint's step). */
  markerX?: number | null;
  empty?: string;
  /** Appended to every y tick label and value in the summary ("%"). */
  yUnit?: string;
  /** Bounds the y range may not cross (percentages stay within 0–100). */
  yClamp?: [number, number];
  /** Horizontal reference lines (the gradient clipping threshold), labelled at the right. */
  hLines?: { y: number; label: string }[];
}

/** Draws a line chart; returns a one-line text summary for screen readers. */
export function drawLineChart(canvas: HTMLCanvasElement, theme: Theme, series: Series[], opts: LineChartOptions = {}): string {
  const p = prepare(canvas);
  if (!p) return '';
  const { g, w, h } = p;
  g.font = `11px ${theme.font}`;
  const usable = (y: number) => Number.isFinite(y) && (!opts.logY || y > 0);
  const ty = (y: number) => (opts.logY ? Math.log10(y) : y);
  const unit = opts.yUnit ?? '';
  const isStep = opts.xLabel === 'step';
  let x0 = Infinity,
    x1 = -Infinity,
    y0 = Infinity,
    y1 = -Infinity;
  for (const s of series) {
    for (let i = 0; i < s.xs.length; i++) {
      const y = s.ys[i];
      if (!usable(y)) continue;
      x0 = Math.min(x0, s.xs[i]);
      x1 = Math.max(x1, s.xs[i]);
      y0 = Math.min(y0, ty(y));
      y1 = Math.max(y1, ty(y));
    }
  }
  if (!Number.isFinite(x0)) {
    const msg = opts.empty ?? 'No data yet';
    drawMessage(g, theme, msg, w, h);
    return msg;
  }
  const hLines = (opts.hLines ?? []).filter((l) => usable(l.y));
  for (const l of hLines) {
    y0 = Math.min(y0, ty(l.y));
    y1 = Math.max(y1, ty(l.y));
  }
  // x: one sample (or one step) gets the run's start beside it — a step axis starts at 0 — not "49 50 51".
  if (x1 === x0) {
    if (isStep && x0 > 0) x0 = 0;
    else {
      x0 -= 1;
      x1 += 1;
    }
  }
  const dataMin = y0;
  // y: one value gets ±10 % (half a decade on a log axis) around it; then the range is padded and, on a linear
  // axis, widened to whole tick steps so the first and last gridlines carry round labels.
  if (y1 === y0) {
    const d = opts.logY ? 0.5 : Math.abs(y0) * 0.1 || 1;
    y0 -= d;
    y1 += d;
  } else {
    const pad = (y1 - y0) * 0.06;
    y0 -= pad;
    y1 += pad;
  }
  const tickCount = Math.max(2, Math.floor(h / 44));
  if (!opts.logY) {
    // A quantity that is never negative (a loss, a norm) does not get a negative axis from the padding.
    const s = niceStep(y1 - y0, tickCount);
    y0 = Math.floor(y0 / s + 1e-9) * s;
    y1 = Math.ceil(y1 / s - 1e-9) * s;
    if (y0 < 0 && dataMin >= 0) y0 = 0;
  }
  if (opts.yClamp) {
    const [lo, hi] = opts.yClamp.map((v) => (opts.logY ? Math.log10(v) : v));
    y0 = Math.max(lo, y0);
    y1 = Math.min(hi, y1);
    if (!(y1 > y0)) [y0, y1] = [lo, hi];
  }
  const yTicks = opts.logY ? logTicks(y0, y1, tickCount) : linearTicks(y0, y1, tickCount);
  const yFmt = axisFormatter(yTicks.map((v) => (opts.logY ? 10 ** v : v)));
  const tickLabel = (v: number) => `${yFmt(opts.logY ? 10 ** v : v)}${unit}`;
  const left = Math.ceil(Math.max(...yTicks.map((v) => g.measureText(tickLabel(v)).width), 20)) + 10;
  const right = 10;
  // Legend: every line gets an entry (the widest line, the selected layer, first), wrapping onto at most 3 rows;
  // what still does not fit is counted in a "+n more" at the end.
  const legend: { s: (typeof series)[number]; label: string; x: number; row: number }[] = [];
  let legendRows = 0;
  let legendMore = 0;
  if (series.length > 1) {
    const maxRows = 3;
    const moreW = g.measureText('+99 more').width + 8;
    const measure = (s: string) => g.measureText(s).width;
    let lx = left;
    let row = 0;
    // The given order, except an emphasised line (the selected layer, drawn wider than 2 px) goes first.
    const sorted = [...series].sort((a, b) => Number((b.width ?? 1.5) > 2) - Number((a.width ?? 1.5) > 2));
    for (let i = 0; i < sorted.length; i++) {
      const label = sorted[i].label ?? middleEllipsis(sorted[i].name, Math.min(170, w - left - right - 20), measure);
      const tw = measure(label);
      // On the last row keep room for "+n more" unless this is the last entry.
      const reserve = row === maxRows - 1 && i < sorted.length - 1 ? moreW : 0;
      if (lx + tw + 18 + reserve > w - right && lx > left) {
        if (row === maxRows - 1) {
          legendMore = sorted.length - i;
          break;
        }
        row++;
        lx = left;
      }
      legend.push({ s: sorted[i], label, x: lx, row });
      lx += tw + 26;
    }
    legendRows = row + 1;
  }
  const top = 8 + legendRows * 16;
  const bottom = 20 + (opts.xLabel ? 12 : 0);
  const pw = Math.max(10, w - left - right);
  const ph = Math.max(10, h - top - bottom);
  const X = (x: number) => left + ((x - x0) / (x1 - x0)) * pw;
  const Y = (y: number) => top + (1 - (y - y0) / (y1 - y0)) * ph;

  // grid and axes
  g.strokeStyle = theme.grid;
  g.lineWidth = 1;
  g.fillStyle = theme.muted;
  g.textAlign = 'right';
  g.textBaseline = 'middle';
  for (const v of yTicks) {
    const y = Math.round(Y(v)) + 0.5;
    g.beginPath();
    g.moveTo(left, y);
    g.lineTo(left + pw, y);
    g.stroke();
    g.fillText(tickLabel(v), left - 6, y);
  }
  g.textAlign = 'center';
  g.textBaseline = 'top';
  // Steps are whole numbers: integer ticks only (no "79.5" when a chart has a few close points).
  const xTicks = linearTicks(x0, x1, Math.max(2, Math.floor(pw / 64)), isStep ? 1 : 0);
  const xFmt = axisFormatter(xTicks);
  for (const v of xTicks) {
    const x = Math.round(X(v)) + 0.5;
    g.beginPath();
    g.moveTo(x, top);
    g.lineTo(x, top + ph);
    g.stroke();
    const label = xFmt(v);
    const half = g.measureText(label).width / 2;
    // Keep the label inside the canvas.
    g.fillText(label, Math.min(w - half - 1, Math.max(half + 1, x)), top + ph + 4);
  }
  if (opts.xLabel) {
    g.textAlign = 'right';
    g.fillText(opts.xLabel, left + pw, top + ph + 16);
  }
  if (opts.markerX !== undefined && opts.markerX !== null && opts.markerX >= x0 && opts.markerX <= x1) {
    g.strokeStyle = theme.focus;
    g.setLineDash([4, 3]);
    g.beginPath();
    g.moveTo(Math.round(X(opts.markerX)) + 0.5, top);
    g.lineTo(Math.round(X(opts.markerX)) + 0.5, top + ph);
    g.stroke();
    g.setLineDash([]);
  }
  for (const l of hLines) {
    const y = Math.round(Y(ty(l.y))) + 0.5;
    g.strokeStyle = theme.muted;
    g.setLineDash([6, 4]);
    g.beginPath();
    g.moveTo(left, y);
    g.lineTo(left + pw, y);
    g.stroke();
    g.setLineDash([]);
    g.fillStyle = theme.muted;
    g.textAlign = 'right';
    g.textBaseline = 'bottom';
    g.fillText(l.label, left + pw - 2, y - 2);
  }
  // series
  g.save();
  g.beginPath();
  g.rect(left, top - 3, pw, ph + 6);
  g.clip();
  for (const s of series) {
    g.strokeStyle = s.color;
    g.fillStyle = s.color;
    g.lineWidth = s.width ?? 1.5;
    g.lineJoin = 'round';
    g.setLineDash(s.dash ?? []);
    g.beginPath();
    let pen = false;
    const n = s.xs.length;
    for (let i = 0; i < n; i++) {
      const y = s.ys[i];
      if (!usable(y)) {
        pen = false;
        continue;
      }
      const px = X(s.xs[i]);
      const py = Y(ty(y));
      if (pen) g.lineTo(px, py);
      else g.moveTo(px, py);
      pen = true;
    }
    g.stroke();
    g.setLineDash([]);
    if (s.dots || n < 3) {
      for (let i = 0; i < n; i++) {
        const y = s.ys[i];
        if (!usable(y)) continue;
        g.beginPath();
        g.arc(X(s.xs[i]), Y(ty(y)), 3, 0, Math.PI * 2);
        g.fill();
      }
    }
  }
  g.restore();
  // legend (laid out above)
  if (legend.length) {
    g.textAlign = 'left';
    g.textBaseline = 'middle';
    let endX = left;
    for (const e of legend) {
      const y = 8 + e.row * 16;
      g.fillStyle = e.s.color;
      if (e.s.dash) {
        // A dashed swatch, so the legend tells the reference lines apart from the run's own.
        g.fillRect(e.x, y - 2, 4, 3);
        g.fillRect(e.x + 6, y - 2, 4, 3);
      } else g.fillRect(e.x, y - 2, 10, 3);
      g.fillStyle = theme.fg;
      g.fillText(e.label, e.x + 13, y);
      if (e.row === legendRows - 1) endX = e.x + 13 + g.measureText(e.label).width + 13;
    }
    if (legendMore) {
      g.fillStyle = theme.muted;
      g.fillText(`+${legendMore} more`, endX, 8 + (legendRows - 1) * 16);
    }
  }
  return series
    .map((s) => {
      const n = s.ys.length;
      return n ? `${s.label ?? s.name}: ${fmt(s.ys[n - 1])}${unit} at ${opts.xLabel && !isStep ? `${fmt(s.xs[n - 1])} ${opts.xLabel}` : `step ${fmt(s.xs[n - 1])}`}` : `${s.label ?? s.name}: no data`;
    })
    .join('; ');
}

// ---------------------------------------------------------------------------------------------- heatmap

/** A perceptually uniform map (viridis), 256 entries of [r, g, b]. */
const VIRIDIS_STOPS = [
  [68, 1, 84],
  [72, 40, 120],
  [62, 74, 137],
  [49, 104, 142],
  [38, 130, 142],
  [31, 158, 137],
  [53, 183, 121],
  [110, 206, 88],
  [181, 222, 43],
  [253, 231, 37],
];
export const COLORMAP: Uint8ClampedArray = (() => {
  const out = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * (VIRIDIS_STOPS.length - 1);
    const a = Math.floor(t);
    const b = Math.min(a + 1, VIRIDIS_STOPS.length - 1);
    const f = t - a;
    for (let c = 0; c < 3; c++) out[i * 3 + c] = VIRIDIS_STOPS[a][c] + (VIRIDIS_STOPS[b][c] - VIRIDIS_STOPS[a][c]) * f;
  }
  return out;
})();

export function colormapCss(t: number): string {
  const i = Math.max(0, Math.min(255, Math.round(t * 255))) * 3;
  return `rgb(${COLORMAP[i]},${COLORMAP[i + 1]},${COLORMAP[i + 2]})`;
}

/**
 * Resamples a profile (vRow or vCol) to `bins` values of log10(mean v) along a normalized index: each bin averages
 * the entries that fall in it (or takes the nearest entry when the profile is shorter than `bins`), divided by
 * `perEntry` (the count each sum ran over) so tensors of different widths compare. NaN where v ≤ 0.
 */
export function resampleLog(profile: Float32Array, perEntry: number, bins: number, out: Float32Array): void {
  const n = profile.length;
  const div = perEntry > 0 ? perEntry : 1;
  for (let b = 0; b < bins; b++) {
    let s = 0;
    let c = 0;
    if (n >= bins) {
      const i0 = Math.floor((b * n) / bins);
      const i1 = Math.max(i0 + 1, Math.floor(((b + 1) * n) / bins));
      for (let i = i0; i < i1; i++) {
        s += profile[i];
        c++;
      }
    } else if (n > 0) {
      s = profile[Math.min(n - 1, Math.floor(((b + 0.5) * n) / bins))];
      c = 1;
    }
    const m = c ? s / c / div : 0;
    out[b] = m > 0 && Number.isFinite(m) ? Math.log10(m) : NaN;
  }
}

export interface HeatmapData {
  rows: number;
  bins: number;
  /** log10 values, row-major [rows][bins]; NaN: no value. */
  values: Float32Array;
  lo: number;
  hi: number;
}

/** Draws rows × bins cells into the canvas (CSS size w × rows*rowH), with the selected row outlined. */
export function drawHeatmap(canvas: HTMLCanvasElement, theme: Theme, d: HeatmapData, rowH: number, selected: number): void {
  const p = prepare(canvas, Math.max(1, d.rows * rowH));
  if (!p) return;
  const { g, w } = p;
  if (!d.rows) return;
  const img = new ImageData(d.bins, d.rows);
  const span = d.hi - d.lo || 1;
  for (let r = 0; r < d.rows; r++) {
    for (let b = 0; b < d.bins; b++) {
      const v = d.values[r * d.bins + b];
      const o = (r * d.bins + b) * 4;
      if (!Number.isFinite(v)) {
        img.data[o + 3] = 0;
        continue;
      }
      const t = Math.max(0, Math.min(255, Math.round(((v - d.lo) / span) * 255))) * 3;
      img.data[o] = COLORMAP[t];
      img.data[o + 1] = COLORMAP[t + 1];
      img.data[o + 2] = COLORMAP[t + 2];
      img.data[o + 3] = 255;
    }
  }
  // Draw the small image scaled up without smoothing (one cell per value).
  const off = new OffscreenCanvas(d.bins, d.rows);
  off.getContext('2d')!.putImageData(img, 0, 0);
  g.imageSmoothingEnabled = rowH < 1;
  g.drawImage(off, 0, 0, w, d.rows * rowH);
  if (selected >= 0 && selected < d.rows) {
    g.strokeStyle = theme.focus;
    g.lineWidth = 2;
    g.strokeRect(1, selected * rowH - 1, w - 2, rowH + 2);
  }
}

export interface HistogramMarker {
  label: string;
  value: number;
}

export interface HistogramView {
  /** log10 range shown (whole decades around the occupied bins and the markers). */
  from: number;
  to: number;
  /** Values in the first bin (at or below its upper edge, zeros included) left out of the zoomed axis. */
  under: number;
  total: number;
}

/**
 * The log10 range a histogram over [lo, hi) in `hist.length` bins is drawn on: the whole decades that hold the
 * occupied bins and the markers, at least `minDecades` wide. The first bin also holds every value
 * below `lo` and the zeros: when other bins are occupied it is left out of the range (and counted in `under`),
 * so one zero row does not stretch the axis over 16 decades.
 */
export function histogramView(hist: ArrayLike<number>, lo: number, hi: number, markers: readonly number[] = [], minDecades = 2): HistogramView | null {
  const n = hist.length;
  const bw = (hi - lo) / n;
  let total = 0;
  let first = -1;
  let last = -1;
  for (let i = 0; i < n; i++) {
    total += hist[i];
    if (i > 0 && hist[i] > 0) {
      if (first < 0) first = i;
      last = i;
    }
  }
  if (total <= 0) return null;
  let under = 0;
  if (first < 0) {
    first = 0;
    last = 0;
  } else under = hist[0];
  let a = lo + first * bw;
  let b = lo + (last + 1) * bw;
  for (const m of markers) {
    if (!(m > 0) || !Number.isFinite(m)) continue;
    const l = Math.log10(m);
    if (under && l <= lo + bw) continue; // a marker in the left-out first bin does not widen the axis
    a = Math.min(a, l);
    b = Math.max(b, l);
  }
  let from = Math.floor(a);
  let to = Math.ceil(b);
  while (to - from < minDecades) {
    if (to < hi) to++;
    if (to - from < minDecades && from > lo) from--;
    if (from <= lo && to >= hi) break;
  }
  from = Math.max(lo, from);
  to = Math.min(hi, to);
  return { from, to, under, total };
}

/**
 * The v histogram (log10 bins over [lo, hi)) with quantile markers, its axis zoomed to the occupied decades
 * (histogramView). Marker labels never overlap: each goes on the first label row where it has room, and markers
 * at the same spot share one label. Returns a one-line text summary for screen readers.
 */
export function drawHistogram(canvas: HTMLCanvasElement, theme: Theme, hist: ArrayLike<number>, lo: number, hi: number, markers: HistogramMarker[]): string {
  const p = prepare(canvas);
  if (!p) return '';
  const { g, w, h } = p;
  g.font = `11px ${theme.font}`;
  const view = histogramView(
    hist,
    lo,
    hi,
    markers.map((m) => m.value),
  );
  if (!view) {
    const msg = 'No second-moment values (v) for this tensor';
    drawMessage(g, theme, msg, w, h);
    return msg;
  }
  const n = hist.length;
  const bw = (hi - lo) / n;
  const firstBin = view.under ? 1 : 0;
  let max = 0;
  for (let i = firstBin; i < n; i++) max = Math.max(max, hist[i]);
  // Marker labels: laid out first, so the plot starts below the rows they need.
  const left = 8;
  const right = 8;
  const pw = w - left - right;
  const X = (l: number) => left + ((l - view.from) / (view.to - view.from)) * pw;
  const placed: { x: number; label: string; row: number; lx: number }[] = [];
  const rows: [number, number][][] = [];
  const sorted = markers
    .filter((m) => m.value > 0 && Number.isFinite(m.value))
    .map((m) => ({ label: m.label, x: X(Math.min(view.to, Math.max(view.from, Math.log10(m.value)))) }))
    .sort((a, b) => a.x - b.x);
  // Markers within 2 px are one marker with a joint label ("p90 p99").
  const merged: { label: string; x: number }[] = [];
  for (const m of sorted) {
    const prev = merged[merged.length - 1];
    if (prev && Math.abs(prev.x - m.x) < 2) prev.label = `${prev.label} ${m.label}`;
    else merged.push({ ...m });
  }
  for (const m of merged) {
    const tw = g.measureText(m.label).width;
    // Centred on the marker, kept inside the canvas.
    const lx = Math.min(w - right - tw, Math.max(left, m.x - tw / 2));
    let row = 0;
    for (; ; row++) {
      rows[row] ??= [];
      if (rows[row].every(([a, b]) => lx + tw + 6 <= a || lx >= b + 6)) break;
    }
    rows[row].push([lx, lx + tw]);
    placed.push({ x: m.x, label: m.label, row, lx });
  }
  const labelRows = rows.length;
  const top = 4 + labelRows * 13;
  const bottom = 20;
  const ph = Math.max(10, h - top - bottom);
  g.fillStyle = theme.series[0];
  for (let i = firstBin; i < n; i++) {
    if (!(hist[i] > 0)) continue;
    const a = lo + i * bw;
    if (a + bw <= view.from || a >= view.to) continue;
    const x0 = X(Math.max(view.from, a));
    const x1 = X(Math.min(view.to, a + bw));
    const bh = (hist[i] / max) * ph;
    g.fillRect(x0 + 0.5, top + ph - bh, Math.max(1, x1 - x0 - 1), Math.max(1, bh));
  }
  g.strokeStyle = theme.grid;
  g.lineWidth = 1;
  g.beginPath();
  g.moveTo(left, top + ph + 0.5);
  g.lineTo(left + pw, top + ph + 0.5);
  g.stroke();
  // Decade labels, one format ("1e-8"), every 1, 2, 4 or 8 decades: whatever leaves ≥ 46 px between them.
  g.fillStyle = theme.muted;
  g.textBaseline = 'top';
  const decades = view.to - view.from;
  const perDecade = pw / decades;
  const stepDec = [1, 2, 4, 8].find((k) => k * perDecade >= 46) ?? 16;
  for (let d = 0; d <= decades; d += stepDec) {
    const x = left + d * perDecade;
    g.beginPath();
    g.moveTo(Math.round(x) + 0.5, top + ph);
    g.lineTo(Math.round(x) + 0.5, top + ph + 3);
    g.stroke();
    g.textAlign = d === 0 ? 'left' : d + stepDec > decades ? 'right' : 'center';
    g.fillText(`1e${view.from + d}`, x, top + ph + 5);
  }
  // Markers: dashed lines through the plot, labels in their rows above it.
  const mark = theme.series[1];
  g.strokeStyle = mark;
  g.fillStyle = mark;
  g.lineWidth = 1.5;
  g.textAlign = 'left';
  g.textBaseline = 'top';
  for (const m of placed) {
    g.setLineDash([4, 3]);
    g.beginPath();
    g.moveTo(Math.round(m.x) + 0.5, 4 + (m.row + 1) * 13);
    g.lineTo(Math.round(m.x) + 0.5, top + ph);
    g.stroke();
    g.setLineDash([]);
    g.fillText(m.label, m.lx, 4 + m.row * 13);
  }
  g.lineWidth = 1;
  let peak = firstBin;
  for (let i = firstBin; i < n; i++) if (hist[i] > hist[peak]) peak = i;
  const under = view.under ? `; ${view.under} at or below ${fmt(10 ** (lo + bw))} (zeros included), not drawn` : '';
  return `histogram of log10 v: ${view.total} values from 1e${view.from} to 1e${view.to}, peak bin around ${fmt(10 ** (lo + (peak + 0.5) * bw), 2)}${under}`;
}
