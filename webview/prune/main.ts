// The prune panel's webview app: metric-versus-sparsity curves (one line per score, the dense model as a dashed
// line), a sparsity slider that marks the point on every curve and shows the chosen score's per-layer kept
// fractions, "Evaluate this point" where the slider only interpolates, a new sweep, and Apply. It keeps no data:
// every `state` from the host is the whole picture (the sweep file as it is now). Only UI state (metric, score,
// slider) is persisted with vscode.setState (with the checkpoint, for the panel serializer).
import css from './style.css';
import { Bridge, boot } from '../shared/bridge';
import { drawLineChart, fmt, fmtPercent, onThemeChange, readTheme, type Series } from '../shared/charts';
import {
  DEFAULT_PRUNE_UI,
  isPruneUi,
  pruneProtocol,
  type PruneCommandParams,
  type PruneJobState,
  type PruneNotificationParams,
  type PrunePanelSnapshot,
  type PruneRequestTypes,
  type PruneSweepView,
  type PruneUiState,
} from '../../src/protocol/panels/prune';
import { LAYER_ROW_PX, curvesFor, filterLayers, isEvaluated, layerBars, layerSummary, metricKeys, metricLabel, readCurve, readOutNote, scoresOf, visibleRows } from './model';

let bridge: Bridge<PruneCommandParams, PruneRequestTypes, PruneNotificationParams>;
let snap: PrunePanelSnapshot | null = null;
let ui: PruneUiState = { ...DEFAULT_PRUNE_UI };
let checkpoint = '';
/** The new-sweep form (not persisted: it starts from the defaults). */
let formScores: string[] | null = null;
let formDensities: string | null = null;
let lastError = '';
/** The slider is being dragged: a state that comes meanwhile is drawn when it is let go (a rebuild ends a drag). */
let dragging = false;
let pendingRender = false;

const el = <K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...kids: (Node | string | null)[]): HTMLElementTagNameMap[K] => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else e.setAttribute(k, v);
  }
  for (const k of kids) if (k !== null) e.append(k);
  return e;
};

const pct = (d: number) => `${Number((100 * d).toFixed(2))}%`;
const sparsity = (d: number) => `${Number((100 * (1 - d)).toFixed(2))}%`;

function persist(): void {
  bridge.setState({ checkpoint, ui });
  bridge.send('uiState', ui);
}

function fmtMetric(metric: string, v: number | null | undefined): string {
  const m = metricLabel(metric);
  if (v === null || v === undefined || !Number.isFinite(v)) return '—';
  return m.percent ? fmtPercent(v) : `${fmt(v)}${m.unit ? ` ${m.unit}` : ''}`;
}

/** The metric and score the UI shows, made valid against the sweep (a saved one may be gone). */
function settle(s: PruneSweepView | null): void {
  const keys = metricKeys(s);
  if (keys.length && !keys.includes(ui.metric)) ui.metric = keys[0];
  const scores = scoresOf(s);
  if (scores.length && !scores.includes(ui.score)) ui.score = scores[0];
}

// ------------------------------------------------------------------------------------------------ render

const root = () => document.getElementById('app')!;

function render(): void {
  const s = snap;
  const app = root();
  const focusId = (document.activeElement as HTMLElement | null)?.id;
  // A state update rebuilds the panel; the per-layer list keeps where it was scrolled to.
  const listTop = document.getElementById('bars-viewport')?.scrollTop ?? 0;
  app.replaceChildren();
  if (!s) {
    app.append(el('p', { class: 'muted' }, 'Loading the pruning sweep…'));
    return;
  }
  settle(s.sweep);
  const b = document.body.dataset;
  b.points = String(s.sweep?.points.length ?? 0);
  b.sweepStatus = s.sweep?.status ?? 'none';
  b.sweepJob = s.sweepJob.status;
  b.pointJob = s.pointJob.status;
  b.applyJob = s.applyJob.status;
  b.applied = s.applied ? 'true' : 'false';
  b.density = String(ui.density);
  b.metric = ui.metric;

  app.append(header(s));
  if (s.jobsBlocked) app.append(el('p', { class: 'note warn', role: 'status' }, s.jobsBlocked));
  if (lastError) app.append(el('p', { class: 'note error', role: 'alert' }, lastError));
  app.append(sweepSection(s));
  if (s.sweep) app.append(chartSection(s, s.sweep), sliderSection(s, s.sweep), applySection(s, s.sweep), el('section', { id: 'layers-view', class: 'layers-sec', 'aria-label': 'Per-layer sparsity' }, ...layersView(s.sweep)));
  else app.append(el('p', { class: 'muted empty' }, s.sweepMessage || 'No sweep yet.'));
  const vp = document.getElementById('bars-viewport');
  if (vp) {
    // The rows must exist for the height the scroll position needs; then the position, then the rows in view.
    updateBars();
    vp.scrollTop = listTop;
  }
  refreshDensity();
  if (focusId) document.getElementById(focusId)?.focus();
}

function header(s: PrunePanelSnapshot): HTMLElement {
  const h = el('header', { class: 'hdr' }, el('h1', {}, `Prune ${s.name}`), el('span', { class: 'muted' }, s.step !== null ? ` · checkpoint step ${s.step}` : ''));
  if (s.sweep) {
    const open = el('button', { class: 'link', title: `Open ${s.sweep.file}` }, 'sweep file');
    open.addEventListener('click', () => bridge.send('openFile', { which: 'sweep' }));
    const o = s.sweep;
    h.append(
      el('span', { class: 'muted' }, ` · ${o.targets.length} tensors, ${o.granularity}${o.pattern ? `, ${o.pattern}` : ''}`),
      el('span', { class: `badge ${o.status}`, role: 'status' }, o.status === 'running' ? 'sweep running — points appear as they are evaluated' : o.status),
      open,
    );
    if (o.error) h.append(el('span', { class: 'error' }, ` ${o.error}`));
  }
  return h;
}

function jobLine(j: PruneJobState, what: string, cancel: 'sweep' | 'point' | 'apply'): HTMLElement | null {
  if (j.status === 'idle') return null;
  const line = el('div', { class: `job ${j.status}`, role: 'status', 'aria-live': 'polite' });
  const active = j.status === 'running' || j.status === 'queued';
  if (active) {
    const p = el('progress', { max: '1', 'aria-label': `${what} progress` });
    if (j.fraction !== null) p.value = j.fraction;
    line.append(p);
  }
  line.append(el('span', {}, `${what}: ${j.status}${j.message ? ` — ${j.message}` : ''}`));
  if (active) {
    const c = el('button', { class: 'secondary', 'aria-label': `Cancel the ${what}` }, 'Cancel');
    c.addEventListener('click', () => bridge.send('cancel', { job: cancel }));
    line.append(c);
  }
  return line;
}

function sweepSection(s: PrunePanelSnapshot): HTMLElement {
  const sec = el('section', { class: 'sweep-form', 'aria-label': 'New sweep' });
  const chosen = formScores ?? s.sweep?.scores.filter((x) => s.scores.some((y) => y.name === x)) ?? s.defaultScores;
  const boxes = el('div', { class: 'scores', role: 'group', 'aria-label': 'Scores to sweep' });
  for (const sc of s.scores) {
    const id = `score-${sc.name}`;
    const cb = el('input', { type: 'checkbox', id });
    cb.checked = chosen.includes(sc.name);
    cb.addEventListener('change', () => {
      const now = new Set(formScores ?? chosen);
      if (cb.checked) now.add(sc.name);
      else now.delete(sc.name);
      formScores = s.scores.map((x) => x.name).filter((n) => now.has(n));
    });
    boxes.append(el('label', { class: 'check', title: `${sc.doc}${sc.needs ? ` Needs ${sc.needs}.` : ''}`, for: id }, cb, sc.name));
  }
  const dens = el('input', { type: 'text', id: 'densities', class: 'densities', 'aria-label': 'Densities to evaluate (fractions kept, comma-separated)' });
  dens.value = formDensities ?? (s.sweep?.densities ?? s.defaultDensities).join(', ');
  dens.addEventListener('input', () => (formDensities = dens.value));
  const run = el('button', { id: 'run-sweep', title: s.jobsBlocked ?? 'Evaluate every chosen score at every density (a prune-sweep job)' }, s.sweep ? 'Run New Sweep' : 'Run Sweep');
  const busy = s.sweepJob.status === 'running' || s.sweepJob.status === 'queued';
  run.disabled = busy || !!s.jobsBlocked;
  run.addEventListener('click', () => {
    const scores = formScores ?? chosen;
    const ds = dens.value.split(/[,\s]+/).filter(Boolean).map(Number);
    if (!scores.length) return showError('Choose at least one score.');
    if (!ds.length || ds.some((d) => !(d > 0 && d <= 1))) return showError(`Densities are fractions kept in (0, 1]: "${dens.value}"`);
    lastError = '';
    void bridge.request('runSweep', { scores, densities: [...new Set(ds)].sort((a, b) => b - a) }).catch((e: Error) => showError(e.message));
  });
  sec.append(el('h2', {}, 'Sweep'), boxes, el('label', { class: 'field', for: 'densities' }, el('span', {}, 'densities'), dens), run);
  const j = jobLine(s.sweepJob, 'sweep', 'sweep');
  if (j) sec.append(j);
  return sec;
}

function showError(m: string): void {
  lastError = m;
  render();
}

function chartSection(s: PrunePanelSnapshot, sw: PruneSweepView): HTMLElement {
  const sec = el('section', { class: 'chart-sec', 'aria-label': 'Metric versus sparsity' });
  const sel = el('select', { id: 'metric', 'aria-label': 'Metric' });
  for (const k of metricKeys(sw)) {
    const o = el('option', { value: k }, metricLabel(k).label);
    o.selected = k === ui.metric;
    sel.append(o);
  }
  sel.addEventListener('change', () => {
    ui.metric = sel.value;
    persist();
    render();
  });
  const m = metricLabel(ui.metric);
  const canvas = el('canvas', { id: 'curves', role: 'img', 'aria-label': curvesSummary(sw) });
  sec.append(
    el('div', { class: 'bar' }, el('h2', {}, 'Metric versus sparsity'), el('label', { class: 'field', for: 'metric' }, el('span', {}, 'metric'), sel)),
    el('div', { class: 'ylabel muted' }, `${m.label}${m.unit ? ` (${m.unit})` : ''} ${metricLabel(ui.metric).percent ? '↑ better' : '↓ better'}`),
    canvas,
  );
  void s;
  return sec;
}

function curvesSummary(sw: PruneSweepView): string {
  const parts = curvesFor(sw, ui.metric).map((c) => {
    const r = readCurve(c.xs, c.ys, ui.density);
    return `${c.score}: ${fmtMetric(ui.metric, r.value)} at ${sparsity(ui.density)} sparsity${r.exact ? '' : ' (interpolated)'}`;
  });
  return `${metricLabel(ui.metric).label} versus sparsity, one line per score${sw.dense ? `, dense ${fmtMetric(ui.metric, sw.dense[ui.metric])}` : ''}. ${parts.join('; ')}`;
}

function drawChart(): void {
  const canvas = document.getElementById('curves') as HTMLCanvasElement | null;
  const sw = snap?.sweep;
  if (!canvas || !sw) return;
  const theme = readTheme();
  const percent = metricLabel(ui.metric).percent;
  const k = percent ? 100 : 1;
  const series: Series[] = curvesFor(sw, ui.metric).map((c, i) => ({
    name: c.score,
    xs: c.xs.map((d) => 100 * (1 - d)),
    ys: c.ys.map((y) => y * k),
    color: theme.series[i % theme.series.length],
    width: c.score === ui.score ? 2.5 : 1.5,
    dots: true,
  }));
  const dense = sw.dense?.[ui.metric];
  const hLines = typeof dense === 'number' ? [{ y: dense * k, label: `dense ${fmtMetric(ui.metric, dense)}` }] : [];
  drawLineChart(canvas, theme, series, {
    xLabel: 'sparsity (% of targeted weights removed)',
    markerX: 100 * (1 - ui.density),
    yUnit: percent ? '%' : '',
    yClamp: percent ? [0, 100] : undefined,
    hLines,
    empty: sw.status === 'running' ? 'Evaluating the dense model…' : 'No points for this metric',
  });
}

function sliderSection(s: PrunePanelSnapshot, sw: PruneSweepView): HTMLElement {
  const sec = el('section', { class: 'slider-sec', 'aria-label': 'Sparsity' });
  const slider = el('input', { type: 'range', id: 'sparsity', min: '0', max: '99', step: '0.5', 'aria-label': 'Sparsity (% of targeted weights removed)' });
  slider.value = String(Math.round(200 * (1 - ui.density)) / 2);
  slider.setAttribute('aria-valuetext', `${sparsity(ui.density)} sparse, ${pct(ui.density)} kept`);
  // Moving the slider redraws only what depends on the density: rebuilding the slider itself would end a drag.
  slider.addEventListener('pointerdown', () => (dragging = true));
  slider.addEventListener('input', () => {
    ui.density = Math.max(0.001, Math.min(1, Number((1 - Number(slider.value) / 100).toFixed(4))));
    slider.setAttribute('aria-valuetext', `${sparsity(ui.density)} sparse, ${pct(ui.density)} kept`);
    persist();
    refreshDensity();
  });
  sec.append(
    el('div', { class: 'bar' }, el('h2', {}, 'Sparsity'), el('label', { class: 'field grow', for: 'sparsity' }, slider), el('output', { for: 'sparsity', class: 'sval', id: 'sval' }, '')),
    el('div', { id: 'density-view', class: 'density-view' }),
  );
  void s;
  void sw;
  return sec;
}

/** Everything that follows the slider: the read-out, Evaluate, the per-layer bars, Apply's label, the chart's marker. */
function refreshDensity(): void {
  const s = snap;
  const sw = s?.sweep;
  if (!s || !sw) return;
  const view = document.getElementById('density-view');
  if (view) view.replaceChildren(...densityView(s, sw));
  updateBars();
  document.getElementById('apply-sec')?.replaceWith(applySection(s, sw));
  const out = document.getElementById('sval');
  if (out) out.textContent = `${sparsity(ui.density)} sparse · ${pct(ui.density)} kept`;
  document.body.dataset.density = String(ui.density);
  document.getElementById('curves')?.setAttribute('aria-label', curvesSummary(sw));
  drawChart();
}

function densityView(s: PrunePanelSnapshot, sw: PruneSweepView): HTMLElement[] {
  // The read-out per score: exact, or interpolated between two evaluated densities (and which).
  const table = el('table', { class: 'readout', 'aria-label': 'Values at the chosen sparsity' });
  table.append(el('tr', {}, el('th', {}, 'score'), el('th', {}, metricLabel(ui.metric).label), el('th', {}, '')));
  for (const c of curvesFor(sw, ui.metric)) {
    const r = readCurve(c.xs, c.ys, ui.density);
    table.append(el('tr', { class: c.score === ui.score ? 'sel' : '' }, el('td', {}, c.score), el('td', { class: 'num' }, fmtMetric(ui.metric, r.value)), el('td', { class: 'muted' }, readOutNote(r, pct))));
  }
  if (sw.dense) table.append(el('tr', { class: 'dense' }, el('td', {}, 'dense'), el('td', { class: 'num' }, fmtMetric(ui.metric, sw.dense[ui.metric])), el('td', { class: 'muted' }, 'no pruning')));
  const exact = isEvaluated(sw, ui.score, ui.density);
  document.body.dataset.exact = String(exact);
  const ev = el('button', { id: 'evaluate-point', class: 'secondary', title: s.jobsBlocked ?? `Evaluate ${ui.score} exactly at ${pct(ui.density)} kept (a one-density sweep)` }, 'Evaluate this point');
  ev.disabled = exact || !!s.jobsBlocked || s.pointJob.status === 'running' || s.pointJob.status === 'queued' || !ui.score;
  ev.addEventListener('click', () => {
    lastError = '';
    void bridge.request('evaluatePoint', { score: ui.score, density: ui.density }).catch((e: Error) => showError(e.message));
  });
  const out: HTMLElement[] = [table, el('div', { class: 'bar' }, ev, exact ? el('span', { class: 'muted' }, `${ui.score} was evaluated at this density`) : null)];
  const pj = jobLine(s.pointJob, 'point evaluation', 'point');
  if (pj) out.push(pj);
  return out;
}

function layersView(sw: PruneSweepView): HTMLElement[] {
  const scoreSel = el('select', { id: 'score', 'aria-label': 'Score whose per-layer sparsity is shown' });
  for (const n of scoresOf(sw)) {
    const o = el('option', { value: n }, n);
    o.selected = n === ui.score;
    scoreSel.append(o);
  }
  scoreSel.addEventListener('change', () => {
    ui.score = scoreSel.value;
    persist();
    render();
  });
  const head = el('div', { class: 'bar' }, el('h2', {}, 'Per-layer sparsity'), el('label', { class: 'field', for: 'score' }, el('span', {}, 'score'), scoreSel));
  // A long list gets a filter by name (space-separated words, all must match).
  if (sw.targets.length > FILTER_FROM) {
    const filter = el('input', { type: 'search', id: 'layer-filter', class: 'layer-filter', placeholder: 'filter by name, e.g. fc1 blocks.3.', 'aria-label': 'Filter the layers by name' });
    filter.value = layerQuery;
    filter.addEventListener('input', () => {
      layerQuery = filter.value;
      const vp = document.getElementById('bars-viewport');
      if (vp) vp.scrollTop = 0;
      updateBars();
    });
    head.append(el('label', { class: 'field', for: 'layer-filter' }, el('span', {}, 'layers'), filter));
  }
  const viewport = el('div', { id: 'bars-viewport', class: 'bars-viewport', role: 'list', tabindex: '0' }, el('div', { class: 'bars-spacer' }));
  let queued = false;
  viewport.addEventListener('scroll', () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      paintBars();
    });
  });
  const box = el('div', { class: 'bars', id: 'bars' }, el('p', { class: 'muted note', id: 'bars-note', hidden: '' }), el('p', { class: 'muted bars-summary', id: 'bars-summary' }), viewport);
  return [head, box];
}

/** Targets above which the per-layer list offers a name filter. */
const FILTER_FROM = 24;
/** The per-layer list's filter (UI only, not persisted). */
let layerQuery = '';
/** What the bar rows show now: kept fraction per target, the (filtered) target indices in order, the colour. */
let barsModel: { kept: number[]; rows: number[]; color: string } | null = null;

/** The per-layer figures at the slider's density: note, summary, and the rows in view (scroll position kept). */
function updateBars(): void {
  const sw = snap?.sweep;
  const note = document.getElementById('bars-note');
  const summary = document.getElementById('bars-summary');
  const viewport = document.getElementById('bars-viewport');
  if (!sw || !note || !summary || !viewport) return;
  const lb = layerBars(sw, ui.score, ui.density);
  document.getElementById('bars')?.setAttribute('aria-label', `Per-layer sparsity of ${ui.score} at ${pct(ui.density)} kept`);
  const say = (text: string) => {
    note.textContent = text;
    note.hidden = !text;
  };
  if (!lb) {
    barsModel = null;
    say(`No per-layer figures for ${ui.score} at ${pct(ui.density)} kept: outside the evaluated densities.`);
    summary.textContent = '';
    paintBars();
    return;
  }
  say(!lb.exact && lb.lo !== null && lb.hi !== null ? `Interpolated between the evaluated ${pct(lb.lo)} and ${pct(lb.hi)}: use “Evaluate this point” for the exact split.` : '');
  // The bars take the colour of the score's curve.
  const series = readTheme().series;
  const color = series[Math.max(0, scoresOf(sw).indexOf(ui.score)) % series.length];
  const rows = filterLayers(
    sw.targets.map((t) => t.name),
    sw.targets.length > FILTER_FROM ? layerQuery : '',
  );
  barsModel = { kept: lb.kept, rows, color };
  // Over the rows shown: a filter summarises what it shows.
  const sum = layerSummary(
    rows.map((i) => sw.targets[i]),
    rows.map((i) => lb.kept[i]),
  );
  const shown = rows.length === sw.targets.length ? `${sw.targets.length} tensors` : `${rows.length} of ${sw.targets.length} tensors`;
  const p1 = (x: number) => `${(100 * x).toFixed(1)}%`;
  const spread = sum && p1(sum.least.sparsity) !== p1(sum.most.sparsity) ? ` · least pruned ${sum.least.name} (${p1(sum.least.sparsity)}), most ${sum.most.name} (${p1(sum.most.sparsity)})` : ' · the same in every one';
  summary.textContent = sum ? `${shown} · ${p1(sum.sparsity)} of their weights removed${spread}` : shown;
  paintBars();
}

/** Draws the rows of the list that are in view (plus a margin): a screenful, however many targets there are. */
function paintBars(): void {
  const sw = snap?.sweep;
  const viewport = document.getElementById('bars-viewport');
  const spacer = viewport?.firstElementChild as HTMLElement | null;
  if (!sw || !viewport || !spacer) return;
  const m = barsModel;
  const count = m?.rows.length ?? 0;
  const height = Math.min(BARS_MAX_PX, Math.max(1, count) * LAYER_ROW_PX);
  viewport.style.height = `${height}px`;
  spacer.style.height = `${count * LAYER_ROW_PX}px`;
  const rows: HTMLElement[] = [];
  if (m) {
    const { first, end } = visibleRows(viewport.scrollTop, height, count);
    for (let r = first; r < end; r++) {
      const i = m.rows[r];
      const t = sw.targets[i];
      const kept = m.kept[i];
      const fill = el('div', { class: 'fill' });
      fill.style.width = `${(100 * (1 - kept)).toFixed(2)}%`;
      fill.style.background = m.color;
      const row = el(
        'div',
        { class: 'barrow', role: 'listitem', 'aria-setsize': String(count), 'aria-posinset': String(r + 1), title: `${t.name}: ${t.size.toLocaleString('en-US')} weights, ${pct(kept)} kept` },
        el('span', { class: 'bname' }, t.name),
        el('div', { class: 'track', 'aria-hidden': 'true' }, fill),
        el('span', { class: 'bval num' }, `${(100 * (1 - kept)).toFixed(1)}% sparse`),
      );
      row.style.top = `${r * LAYER_ROW_PX}px`;
      rows.push(row);
    }
  }
  spacer.replaceChildren(...rows);
  const b = document.body.dataset;
  b.layers = String(count);
  b.barRows = String(rows.length);
}

/** The list's viewport height at most, px (then it scrolls). */
const BARS_MAX_PX = 360;

function applySection(s: PrunePanelSnapshot, sw: PruneSweepView): HTMLElement {
  const sec = el('section', { class: 'apply-sec', id: 'apply-sec', 'aria-label': 'Apply' });
  const apply = el('button', { id: 'apply', title: s.jobsBlocked ?? `Write the checkpoint pruned with ${ui.score} at ${pct(ui.density)} kept (a prune-apply job)` }, `Apply ${ui.score} at ${sparsity(ui.density)} sparsity`);
  apply.disabled = !!s.jobsBlocked || !ui.score || s.applyJob.status === 'running' || s.applyJob.status === 'queued';
  apply.addEventListener('click', () => {
    lastError = '';
    void bridge.request('apply', { score: ui.score, density: ui.density }).catch((e: Error) => showError(e.message));
  });
  // Export is the export issue's: the button is there so the flow is visible, and says why it is off.
  const exp = el('button', { id: 'export', class: 'secondary', title: 'ONNX export comes with the export issue', 'aria-disabled': 'true' }, 'Export…');
  exp.disabled = true;
  const expWrap = el('span', { class: 'tip', title: 'ONNX export comes with the export issue' }, exp);
  sec.append(el('h2', {}, 'Pruned checkpoint'), el('div', { class: 'bar' }, apply, expWrap));
  const j = jobLine(s.applyJob, 'apply', 'apply');
  if (j) sec.append(j);
  const a = s.applied;
  if (a) {
    const open = el('button', { class: 'link', title: a.report }, 'report');
    open.addEventListener('click', () => bridge.send('openFile', { which: 'report' }));
    const keys = metricKeys(sw).filter((k) => a.dense?.[k] !== undefined);
    const t = el('table', { class: 'readout', 'aria-label': 'The pruned checkpoint against the dense model' }, el('tr', {}, el('th', {}, ''), ...keys.map((k) => el('th', {}, metricLabel(k).label))));
    t.append(el('tr', {}, el('td', {}, 'dense'), ...keys.map((k) => el('td', { class: 'num' }, fmtMetric(k, a.dense?.[k])))));
    t.append(el('tr', {}, el('td', {}, `${a.score} ${sparsity(a.kept)} sparse`), ...keys.map((k) => el('td', { class: 'num' }, fmtMetric(k, a.pruned?.[k])))));
    sec.append(el('p', { class: 'applied' }, 'Wrote ', el('code', {}, a.weights), ' · ', open), t);
  }
  return sec;
}

// ------------------------------------------------------------------------------------------------ start

function start(): void {
  const sheet = new CSSStyleSheet();
  sheet.replaceSync(css);
  document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
  const initial = (() => {
    try {
      return JSON.parse(document.getElementById('app')?.dataset.initial ?? '{}') as { checkpoint?: string };
    } catch {
      return {};
    }
  })();
  bridge = new Bridge(pruneProtocol, (n) => {
    if (n.type === 'state') {
      snap = n.params;
      if (snap.applyJob.status !== 'failed' && snap.sweepJob.status !== 'failed' && snap.pointJob.status !== 'failed') lastError = '';
      if (dragging) pendingRender = true;
      else render();
      document.body.dataset.ready = 'true';
      const b = boot();
      if (b && !document.body.dataset.firstPaintMs) document.body.dataset.firstPaintMs = String(Math.round(performance.now() - b.t0));
    }
  });
  bridge.reportErrors();
  const saved = bridge.getState((x) => x) as { checkpoint?: unknown; ui?: unknown } | undefined;
  if (isPruneUi(saved?.ui)) ui = { ...saved.ui };
  checkpoint = typeof saved?.checkpoint === 'string' ? saved.checkpoint : (initial.checkpoint ?? '');
  bridge.setState({ checkpoint, ui });
  onThemeChange(() => render());
  window.addEventListener('resize', () => drawChart());
  window.addEventListener('pointerup', () => {
    dragging = false;
    if (pendingRender) {
      pendingRender = false;
      render();
    }
  });
  render();
  bridge.start();
}

start();
