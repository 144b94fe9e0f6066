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
  series: string[];
}

function cssVar(style: CSSStyleDeclaration, name: string, fallback: string): string {
  const v = style.getPropertyValue(name).trim();
  return v || fallback;
}

export function readTheme(): Theme {
  const s = getComputedStyle(document.body);
  const fg = cssVar(s, '--vscode-foreground', '#cccccc');
  return {
    fg,
    muted: cssVar(s, '--vscode-descriptionForeground', fg),
    bg: cssVar(s, '--vscode-editor-background', '#1e1e1e'),
    grid: withAlpha(fg, 0.12),
    border: cssVar(s, '--vscode-panel-border', withAlpha(fg, 0.3)),
    focus: cssVar(s, '--vscode-focusBorder', '#007fd4'),
    selection: cssVar(s, '--vscode-list-activeSelectionBackground', 'rgba(0,120,212,0.4)'),
    font: cssVar(s, '--vscode-font-family', 'sans-serif'),
    series: [
      cssVar(s, '--vscode-charts-blue', '#3794ff'),
      cssVar(s, '--vscode-charts-orange', '#d18616'),
      cssVar(s, '--vscode-charts-green', '#89d185'),
      cssVar(s, '--vscode-charts-purple', '#b180d7'),
      cssVar(s, '--vscode-charts-red', '#f14c4c'),
      cssVar(s, '--vscode-charts-yellow', '#cca700'),
    ],
  };
}

/** Calls `fn` when the workbench theme changes (VS Code rewrites body classes and the html style attribute). */
export function onThemeChange(fn: () => void): void {
  const mo = new MutationObserver(() => fn());
  mo.observe(document.body, { attributes: true, attributeFilter: ['class', 'data-vscode-theme-id'] });
  mo.observe(document.documentElement, { attributes: true, attributeFilter: ['style', 'class'] });
}

/** A colour with alpha, for grid lines from the foreground colour (#rgb, #rrggbb, rgb(), rgba()). */
export function withAlpha(color: string, a: number): string {
  const c = color.trim();
  let m = /^#([0-9a-f]{3})$/i.exec(c);
  if (m) {
    const [r, g, b] = m[1].split('').map((h) => parseInt(h + h, 16));
    return `rgba(${r},${g},${b},${a})`;
  }
  m = /^#([0-9a-f]{6})([0-9a-f]{2})?$/i.exec(c);
  if (m) {
    const n = parseInt(m[1], 16);
    return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${a})`;
  }
  const r = /^rgba?\(([^)]+)\)$/i.exec(c);
  if (r) {
    const p = r[1].split(',').map((x) => x.trim());
    return `rgba(${p[0]},${p[1]},${p[2]},${a})`;
  }
  return c;
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

function niceStep(range: number, count: number): number {
  const raw = range / Math.max(1, count);
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  return (m < 1.5 ? 1 : m < 3 ? 2 : m < 7 ? 5 : 10) * p;
}

function linearTicks(lo: number, hi: number, count: number): number[] {
  if (!(hi > lo)) return [lo];
  const s = niceStep(hi - lo, count);
  const out: number[] = [];
  for (let v = Math.ceil(lo / s) * s; v <= hi + s * 1e-9; v += s) out.push(Math.abs(v) < s * 1e-9 ? 0 : v);
  return out;
}

/** Ticks (as log10 values) at 1·10ⁿ, then 1/2/5·10ⁿ, then 1..9·10ⁿ, whichever first gives at least 2 in range. */
function logTicks(lo: number, hi: number, count: number): number[] {
  for (const mult of [[1], [1, 2, 5], [1, 2, 3, 4, 5, 6, 7, 8, 9]]) {
    const out: number[] = [];
    for (let e = Math.floor(lo); e <= Math.ceil(hi); e++) for (const m of mult) {
      const v = e + Math.log10(m);
      if (v >= lo && v <= hi) out.push(v);
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

export interface Series {
  name: string;
  xs: ArrayLike<number>;
  ys: ArrayLike<number>;
  color: string;
  width?: number;
  dots?: boolean;
}

export interface LineChartOptions {
  logY?: boolean;
  xLabel?: string;
  /** A vertical marker (e.g. the pinned checkpoint's step). */
  markerX?: number | null;
  empty?: string;
}

/** Draws a line chart; returns a one-line text summary for screen readers. */
export function drawLineChart(canvas: HTMLCanvasElement, theme: Theme, series: Series[], opts: LineChartOptions = {}): string {
  const p = prepare(canvas);
  if (!p) return '';
  const { g, w, h } = p;
  g.font = `11px ${theme.font}`;
  const usable = (y: number) => Number.isFinite(y) && (!opts.logY || y > 0);
  let x0 = Infinity,
    x1 = -Infinity,
    y0 = Infinity,
    y1 = -Infinity;
  for (const s of series) {
    for (let i = 0; i < s.xs.length; i++) {
      const y = s.ys[i];
      if (!usable(y)) continue;
      const yy = opts.logY ? Math.log10(y) : y;
      x0 = Math.min(x0, s.xs[i]);
      x1 = Math.max(x1, s.xs[i]);
      y0 = Math.min(y0, yy);
      y1 = Math.max(y1, yy);
    }
  }
  if (!Number.isFinite(x0)) {
    g.fillStyle = theme.muted;
    g.textAlign = 'center';
    g.textBaseline = 'middle';
    g.fillText(opts.empty ?? 'No data yet', w / 2, h / 2);
    return opts.empty ?? 'No data yet';
  }
  if (x1 === x0) {
    x0 -= 1;
    x1 += 1;
  }
  if (y1 === y0) {
    const d = opts.logY ? 0.5 : Math.abs(y0) * 0.1 || 1;
    y0 -= d;
    y1 += d;
  } else {
    const pad = (y1 - y0) * 0.06;
    y0 -= pad;
    y1 += pad;
  }
  const yTicks = opts.logY ? logTicks(y0, y1, Math.max(2, Math.floor(h / 40))) : linearTicks(y0, y1, Math.max(2, Math.floor(h / 40)));
  const tickLabel = (v: number) => (opts.logY ? fmt(10 ** v) : fmt(v));
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
    let lx = left;
    let row = 0;
    const sorted = [...series].sort((a, b) => (b.width ?? 1.5) - (a.width ?? 1.5));
    for (let i = 0; i < sorted.length; i++) {
      const label = shortName(sorted[i].name, 22);
      const tw = g.measureText(label).width;
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
  // Steps are whole numbers: no "79.5" tick when a chart has a single point (or a few close ones).
  const xTicks = linearTicks(x0, x1, Math.max(2, Math.floor(pw / 80)));
  const wholeX = opts.xLabel === 'step' && xTicks.filter(Number.isInteger).length >= 1 ? xTicks.filter(Number.isInteger) : xTicks;
  for (const v of wholeX) {
    const x = Math.round(X(v)) + 0.5;
    g.beginPath();
    g.moveTo(x, top);
    g.lineTo(x, top + ph);
    g.stroke();
    const label = fmt(v);
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
  // series
  g.save();
  g.beginPath();
  g.rect(left, top - 2, pw, ph + 4);
  g.clip();
  for (const s of series) {
    g.strokeStyle = s.color;
    g.fillStyle = s.color;
    g.lineWidth = s.width ?? 1.5;
    g.lineJoin = 'round';
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
      const py = Y(opts.logY ? Math.log10(y) : y);
      if (pen) g.lineTo(px, py);
      else g.moveTo(px, py);
      pen = true;
    }
    g.stroke();
    if (s.dots || n < 3) {
      for (let i = 0; i < n; i++) {
        const y = s.ys[i];
        if (!usable(y)) continue;
        g.beginPath();
        g.arc(X(s.xs[i]), Y(opts.logY ? Math.log10(y) : y), 2.5, 0, Math.PI * 2);
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
      g.fillRect(e.x, y - 2, 10, 3);
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
      return n ? `${s.name}: ${fmt(s.ys[n - 1])} at step ${fmt(s.xs[n - 1])}` : `${s.name}: no data`;
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

/** The v histogram (log10 bins over [lo, hi)) with quantile markers. */
export function drawHistogram(canvas: HTMLCanvasElement, theme: Theme, hist: ArrayLike<number>, lo: number, hi: number, quantiles: { label: string; value: number }[]): string {
  const p = prepare(canvas);
  if (!p) return '';
  const { g, w, h } = p;
  g.font = `11px ${theme.font}`;
  let total = 0;
  let max = 0;
  for (let i = 0; i < hist.length; i++) {
    total += hist[i];
    max = Math.max(max, hist[i]);
  }
  if (total <= 0) {
    g.fillStyle = theme.muted;
    g.textAlign = 'center';
    g.textBaseline = 'middle';
    g.fillText('No second-moment values (v) for this tensor', w / 2, h / 2);
    return 'empty histogram';
  }
  const left = 8,
    right = 8,
    top = 4,
    bottom = 20;
  const pw = w - left - right;
  const ph = h - top - bottom;
  const bw = pw / hist.length;
  g.fillStyle = theme.series[0];
  for (let i = 0; i < hist.length; i++) {
    const bh = (hist[i] / max) * ph;
    if (bh > 0) g.fillRect(left + i * bw + 0.5, top + ph - bh, Math.max(1, bw - 1), Math.max(1, bh));
  }
  g.strokeStyle = theme.grid;
  g.beginPath();
  g.moveTo(left, top + ph + 0.5);
  g.lineTo(left + pw, top + ph + 0.5);
  g.stroke();
  g.fillStyle = theme.muted;
  g.textBaseline = 'top';
  // Labels at whole decades, every 1, 2, 4 or 8 decades: whatever leaves ≥ 46 px between them.
  const decades = hi - lo;
  const perDecade = pw / decades;
  const stepDec = [1, 2, 4, 8].find((k) => k * perDecade >= 46) ?? 16;
  for (let d = 0; d <= decades; d += stepDec) {
    const x = left + d * perDecade;
    g.textAlign = d === 0 ? 'left' : d + stepDec > decades ? 'right' : 'center';
    g.fillText(`1e${lo + d}`, x, top + ph + 4);
  }
  // Quantile markers; labels that would collide go one line lower.
  let lastX = -Infinity;
  let level = 0;
  for (const q of quantiles) {
    if (!(q.value > 0)) continue;
    const x = left + ((Math.log10(q.value) - lo) / (hi - lo)) * pw;
    g.strokeStyle = theme.series[1];
    g.setLineDash([3, 2]);
    g.beginPath();
    g.moveTo(x, top);
    g.lineTo(x, top + ph);
    g.stroke();
    g.setLineDash([]);
    level = x - lastX < 26 ? level + 1 : 0;
    g.fillStyle = theme.series[1];
    g.textAlign = 'left';
    g.fillText(q.label, x + 3, top + 2 + level * 12);
    lastX = x;
  }
  return `histogram of log10 v: ${total} values, peak bin 1e${Math.round(lo + ((Array.from(hist).indexOf(max) + 0.5) * (hi - lo)) / hist.length)}`;
}
