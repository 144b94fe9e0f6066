// The statistics panel's webview app. It keeps no data across reloads: it says `ready`, draws the host's snapshot,
// applies updates, and persists only UI state (tab, sort, selection, scroll) with vscode.setState.
import '@vscode-elements/elements/dist/vscode-tabs/index.js';
import '@vscode-elements/elements/dist/vscode-tab-header/index.js';
import '@vscode-elements/elements/dist/vscode-tab-panel/index.js';
import '@vscode-elements/elements/dist/vscode-single-select/index.js';
import '@vscode-elements/elements/dist/vscode-option/index.js';
import '@vscode-elements/elements/dist/vscode-button/index.js';
import css from './style.css';
import { Bridge, boot } from '../shared/bridge';
import { LayerTable, ROLE_TEXT, ZERO_WHEN_FROZEN, columnTitles, describeV, shownScalar } from './table';
import {
  drawHeatmap,
  drawHistogram,
  drawLineChart,
  fmt,
  fmtPercent,
  middleEllipsis,
  plural,
  colormapCss,
  onThemeChange,
  readTheme,
  resampleLog,
  type HeatmapData,
  type Series,
  type Theme,
} from '../shared/charts';
import {
  ROLE_FILTERS,
  TABS,
  coerceUiState,
  dispatchNotification,
  isObject,
  type LayerHistory,
  type MetricRow,
  type NotificationHandlers,
  type PinnedCheckpoint,
  type RunInfo,
  type StatsCommandParams,
  type StatsNotification,
  type StatsNotificationParams,
  type StatsRequestTypes,
  type StatsUiState,
  statsProtocol,
} from '../../src/protocol/panels/stats';
import { studyCharts } from './study';
import { ScalarHistory, capturedOverall, capturedOverallSeries, extrasArrays, lossGap, roleCounts, saliencyShares } from '../../src/protocol/panels/stats-reduce';
import { decodeStatsFrame, EXTRA_KEYS, HIST_BINS, HIST_HI, HIST_LO, SCALAR_KEYS, TENSOR_ROLES, type ExtraKey, type ScalarKey, type StatsFrame, type TensorRole } from '../../src/protocol/stats';

// ------------------------------------------------------------------------------------------------ perf

/** Script start: the boot script's start, else when the bundle was fetched (resource timing), else 0. */
function scriptStart(): number {
  const b = boot();
  if (b) return b.t0;
  const e = performance.getEntriesByType('resource').find((r) => /\/stats\.js(\?|$)/.test(r.name)) as PerformanceResourceTiming | undefined;
  return e ? e.responseEnd : 0;
}

// ------------------------------------------------------------------------------------------------ state

const HEATMAP_BINS = 96;
const HISTORY_CAP = 4096;

interface Model {
  run: RunInfo | null;
  live: boolean;
  metrics: MetricRow[];
  latest: StatsFrame | null;
  pinned: PinnedCheckpoint | null;
  pinnedFrame: StatsFrame | null;
  framesTotal: number;
  history: ScalarHistory;
  names: string[];
  layerHistory: LayerHistory | null;
  error: string | null;
}

const model: Model = {
  run: null,
  live: false,
  metrics: [],
  latest: null,
  pinned: null,
  pinnedFrame: null,
  framesTotal: 0,
  history: new ScalarHistory(HISTORY_CAP),
  names: [],
  layerHistory: null,
  error: null,
};

const app = document.getElementById('app')!;
const initial = (() => {
  try {
    return JSON.parse(app.dataset.initial ?? '{}') as { runDir?: string; pinnedStep?: number | null };
  } catch {
    return {};
  }
})();

let bridge: Bridge<StatsCommandParams, StatsRequestTypes, StatsNotificationParams>;
let ui: StatsUiState;
let persisted: { runDir: string; pinnedStep: number | null };
let theme: Theme;

function current(): StatsFrame | null {
  return model.pinnedFrame ?? model.latest;
}

// ------------------------------------------------------------------------------------------------ DOM

function el<K extends keyof HTMLElementTagNameMap>(tag: K, cls?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

interface ChartBox {
  box: HTMLElement;
  title: HTMLElement;
  canvas: HTMLCanvasElement;
  /** A visible line under the chart (notes, exact values); empty when there is nothing to say. */
  note: HTMLElement;
  summary: HTMLElement;
}

/** A titled chart; `tip` (what the quantity means) is the title's tooltip, marked with an ⓘ. */
function chartBox(title: string, label: string, cls = '', tip = ''): ChartBox {
  const box = el('section', `chart ${cls}`);
  const h = el('h3', 'chart-title');
  const text = el('span', 'chart-title-text', title);
  h.append(text);
  if (tip) {
    h.title = tip;
    const i = el('span', 'info', 'ⓘ');
    i.setAttribute('aria-hidden', 'true');
    h.append(i);
  }
  const canvas = el('canvas');
  canvas.setAttribute('role', 'img');
  canvas.setAttribute('aria-label', tip ? `${label}. ${tip}` : label);
  const note = el('p', 'chart-note');
  note.hidden = true;
  const summary = el('p', 'sr-only');
  box.append(h, canvas, note, summary);
  return { box, title: text, canvas, note, summary };
}

function setNote(c: ChartBox, text: string): void {
  c.note.textContent = text;
  c.note.hidden = !text;
}

const hdr = {
  root: el('header', 'hdr'),
  name: el('span', 'hdr-name'),
  status: el('span', 'badge'),
  step: el('span', 'hdr-step'),
  live: el('span', 'live'),
  frames: el('span', 'hdr-muted'),
  pinned: el('span', 'hdr-pinned'),
  refresh: document.createElement('vscode-button'),
  detail: document.createElement('vscode-button'),
};

const GAP_TIP =
  'Validation loss minus the training loss around the same step (the mean of the training losses logged since the previous evaluation). Growing above 0: the model fits its training data better than new data (overfitting).';
const ENERGY_TIP =
  "mao keeps each weight matrix's momentum as rank-r factors U·S·Vᵀ. This is the share of the momentum's energy ‖M‖²_F they hold after each step (the rest is dropped, or carried by error feedback). The thick line is all factored tensors together (energy-weighted); low values mean the rank is too small for that layer.";
const SALIENCY_TIP =
  'Per tensor Σ τ²·F̂ with τ = weights − base weights and F̂ = sqrt(R·Cᵀ/ΣR) from the second moment (the curvature merge\'s saliency): how much the fine-tune changed this tensor where the loss is sensitive. Computed at each sample from the base checkpoint on disk.';
const HR10_TIP = 'HR@10 (hit rate at 10): the share of validation examples whose true class (next item) is among the model\'s 10 highest-scoring classes.';
const GLOBAL_GRAD_TIP =
  'The L2 norm of the whole gradient (all parameters together), as metrics.jsonl logs it: BEFORE clipping. Where it is above train.gradClip (dashed line), the step scaled every gradient down by gradClip / norm.';
const LAYER_GRAD_TIP =
  "Each tensor's gradient norm as the step applied it: AFTER the global clipping scale (the per-layer ‖g‖ of the statistics). The global norm before clipping is the chart beside this one.";

const tabs = document.createElement('vscode-tabs');
const overview = {
  root: el('div', 'tab-body overview'),
  loss: chartBox('Loss', 'Training and validation loss over steps'),
  val: chartBox('Validation accuracy and HR@10 (%)', 'Validation metrics over steps', '', HR10_TIP),
  grad: chartBox('Gradient norm, global, before clipping', 'Global gradient norm over steps, from metrics.jsonl', '', GLOBAL_GRAD_TIP),
  layerGrad: chartBox('Gradient norm per layer, after clipping (top layers, log scale)', 'Per-layer gradient norm over steps for the layers with the largest norm and the selected layer', '', LAYER_GRAD_TIP),
  update: chartBox('Update ratio ‖Δw‖/‖w‖ (top layers, log scale)', 'Update ratio over steps for the layers with the highest update ratio and the selected layer', '', 'The size of each step relative to the weights, per tensor.'),
  momentum: chartBox('Momentum norm ‖m‖ (top layers, log scale)', 'Momentum norm over steps for the layers with the largest momentum norm and the selected layer', '', "The L2 norm of the optimizer's first moment (momentum), per tensor."),
  gap: chartBox('Overfitting: the val − train loss gap', 'Gap between validation and training loss over steps', '', GAP_TIP),
  energy: chartBox('mao: momentum energy kept by the rank-r factors (%)', "Share of the momentum's energy mao's low-rank factors keep, over steps: all factored tensors together and the layers that keep the least", '', ENERGY_TIP),
  saliency: chartBox('Task saliency mass Σ τ²·F̂ (top layers, log scale)', 'Task saliency mass of the fine-tune over steps for the layers with the largest mass and the selected layer', '', SALIENCY_TIP),
};
/** A study's run folder (run.json kind 'study'): its metrics against the data size (./study.ts). */
const study = {
  root: el('div', 'study'),
  note: el('p', 'study-note'),
  boxes: new Map<string, ChartBox>(),
};
const layersTab = {
  root: el('div', 'tab-body layers'),
  empty: el('p', 'empty'),
  bar: el('div', 'lt-toolbar'),
  roleSelect: document.createElement('vscode-single-select'),
  note: el('p', 'lt-note'),
};
const curvature = {
  root: el('div', 'tab-body curvature'),
  scroller: el('div', 'hm-scroller'),
  labels: el('canvas', 'hm-labels'),
  rows: el('canvas', 'hm'),
  cols: el('canvas', 'hm'),
  legend: el('div', 'hm-legend'),
  tip: el('div', 'hm-tip'),
  summary: el('p', 'sr-only'),
  empty: el('p', 'empty'),
  head: null as HTMLElement | null,
};
const detail = {
  root: el('aside', 'detail'),
  head: el('div', 'detail-head'),
  title: el('h2', 'detail-title'),
  shape: el('div', 'detail-shape'),
  grid: el('dl', 'detail-grid'),
  keySelect: document.createElement('vscode-single-select'),
  hist: chartBox('History of the selected layer', 'History of the selected layer', 'detail-chart'),
  vhist: chartBox('Histogram of v (log10 bins, axis zoomed to the data)', 'Histogram of the second moment v of the selected layer', 'detail-chart'),
  empty: el('p', 'empty', 'Select a layer in the table or the heatmap to see its history and its v histogram.'),
};

/** Names and tooltips of the per-tensor scalars, in the detail pane and the "over steps" picker. */
const SCALAR_LABELS: Record<ScalarKey, string> = {
  gradNorm: '‖g‖ after clip',
  weightNorm: '‖w‖',
  updateRatio: '‖Δw‖/‖w‖',
  momentumNorm: '‖m‖ (momentum)',
  vMean: 'mean v',
  vMax: 'max v',
  vP50: 'p50 of v',
  vP90: 'p90 of v',
  vP99: 'p99 of v',
};
/** The role filter's options (counts are added when a frame arrives). */
const ROLE_FILTER_LABELS: Record<(typeof ROLE_FILTERS)[number], string> = {
  all: 'all tensors',
  trained: 'trained',
  frozen: 'frozen',
  lora: 'LoRA factors',
  adapter: 'adapters',
};
const ROLE_LABELS: Record<TensorRole, string> = { trained: 'trained', frozen: 'frozen', lora: 'LoRA', adapter: 'adapter' };
const EXTRA_LABELS: Record<ExtraKey, string> = { capturedEnergy: 'momentum energy kept (mao)', saliencyMass: 'task saliency mass' };

const table = new LayerTable({
  onSelect: (name) => select(name, false),
  onSort: (key, dir) => {
    ui.sortKey = key;
    ui.sortDir = dir;
    saveState();
  },
  onScroll: (top) => {
    ui.scrollTop = top;
    saveStateSoon();
  },
});

function buildDom(): void {
  app.textContent = '';
  hdr.refresh.textContent = 'Refresh';
  hdr.refresh.setAttribute('secondary', '');
  hdr.refresh.title = 'Re-read the run folder';
  hdr.refresh.addEventListener('click', () => void bridge.request('refresh', {}).catch((e: Error) => bridge.log('warn', e.message)));
  hdr.live.setAttribute('role', 'status');
  hdr.detail.setAttribute('secondary', '');
  hdr.detail.setAttribute('aria-controls', 'detail');
  hdr.detail.classList.add('hdr-detail');
  hdr.detail.addEventListener('click', () => {
    ui.detailOpen = !ui.detailOpen;
    saveState();
    invalidate();
  });
  const spacer = el('span', 'hdr-spacer');
  hdr.root.append(hdr.name, hdr.status, hdr.step, hdr.live, hdr.pinned, spacer, hdr.frames, hdr.detail, hdr.refresh);

  const labels: Record<(typeof TABS)[number], string> = { overview: 'Overview', layers: 'Layers', curvature: 'Curvature' };
  const bodies = { overview: overview.root, layers: layersTab.root, curvature: curvature.root };
  for (const t of TABS) {
    const h = document.createElement('vscode-tab-header');
    h.setAttribute('slot', 'header');
    h.textContent = labels[t];
    h.dataset.tab = t; // vscode-tabs assigns the ids itself
    const p = document.createElement('vscode-tab-panel');
    p.append(bodies[t]);
    tabs.append(h, p);
  }
  tabs.addEventListener('vsc-tabs-select', (e) => {
    const i = (e as CustomEvent<{ selectedIndex: number }>).detail.selectedIndex;
    ui.tab = TABS[i] ?? 'overview';
    saveState();
    invalidate();
  });

  overview.root.append(
    overview.loss.box,
    overview.val.box,
    overview.gap.box,
    overview.grad.box,
    overview.layerGrad.box,
    overview.update.box,
    overview.momentum.box,
    overview.energy.box,
    overview.saliency.box,
    study.root,
  );

  for (const f of ROLE_FILTERS) {
    const o = document.createElement('vscode-option');
    o.setAttribute('value', f);
    o.textContent = ROLE_FILTER_LABELS[f];
    layersTab.roleSelect.append(o);
  }
  layersTab.roleSelect.setAttribute('aria-label', 'Show the tensors of one role');
  layersTab.roleSelect.addEventListener('change', () => {
    const v = (layersTab.roleSelect as unknown as { value: string }).value;
    const f = ROLE_FILTERS.find((x) => x === v);
    if (f && f !== ui.roleFilter) {
      ui.roleFilter = f;
      table.setFilter(f);
      saveState();
      invalidate();
    }
  });
  const roleLabel = el('label', 'detail-label', 'Show:');
  layersTab.note.setAttribute('role', 'note');
  layersTab.bar.append(roleLabel, layersTab.roleSelect, layersTab.note);
  layersTab.root.append(layersTab.empty, layersTab.bar, table.el);

  const hmHead = el('div', 'hm-head');
  hmHead.append(el('span', 'hm-h-labels', 'Layer (model order)'), el('span', 'hm-h', 'Row profile: mean v per row i (vRow / cols)'), el('span', 'hm-h', 'Column profile: mean v per column j (vCol / rows)'));
  curvature.head = hmHead;
  const hmBody = el('div', 'hm-body');
  curvature.labels.setAttribute('aria-hidden', 'true');
  for (const c of [curvature.rows, curvature.cols]) {
    c.tabIndex = 0;
    c.setAttribute('role', 'img');
  }
  hmBody.append(curvature.labels, curvature.rows, curvature.cols);
  curvature.scroller.append(hmBody);
  curvature.tip.hidden = true;
  curvature.tip.setAttribute('aria-hidden', 'true');
  curvature.root.append(curvature.empty, hmHead, curvature.scroller, curvature.legend, curvature.tip, curvature.summary);
  for (const c of [curvature.rows, curvature.cols, curvature.labels]) {
    c.addEventListener('click', (e) => {
      const i = heatmapRowAt(e as MouseEvent);
      const f = current();
      if (f && i >= 0 && i < f.tensors.length) select(f.tensors[i].name, true);
    });
    c.addEventListener('mousemove', (e) => showTip(e as MouseEvent, c === curvature.cols));
    c.addEventListener('mouseleave', () => (curvature.tip.hidden = true));
    c.addEventListener('keydown', (e) => {
      const f = current();
      if (!f || !f.tensors.length) return;
      const ke = e as KeyboardEvent;
      const at = Math.max(0, f.tensors.findIndex((t) => t.name === ui.selected));
      const next = ke.key === 'ArrowDown' ? Math.min(f.tensors.length - 1, at + 1) : ke.key === 'ArrowUp' ? Math.max(0, at - 1) : -1;
      if (next >= 0) {
        ke.preventDefault();
        select(f.tensors[next].name, true);
      }
    });
  }

  for (const k of SCALAR_KEYS) {
    const o = document.createElement('vscode-option');
    o.setAttribute('value', k);
    o.textContent = SCALAR_LABELS[k];
    detail.keySelect.append(o);
  }
  detail.keySelect.setAttribute('aria-label', 'Scalar shown over steps');
  detail.keySelect.addEventListener('change', () => {
    const v = (detail.keySelect as unknown as { value: string }).value;
    if ((SCALAR_KEYS as readonly string[]).includes(v)) {
      ui.historyKey = v as ScalarKey;
      saveState();
      invalidate();
    }
  });
  const keyRow = el('div', 'detail-keyrow');
  keyRow.append(el('label', 'detail-label', 'Over steps:'), detail.keySelect);
  detail.hist.box.insertBefore(keyRow, detail.hist.canvas);
  detail.head.append(detail.title, detail.shape);
  detail.root.id = 'detail';
  detail.root.setAttribute('aria-label', 'Layer detail');
  detail.root.append(detail.head, detail.grid, detail.hist.box, detail.vhist.box, detail.empty);

  const main = el('div', 'main');
  const left = el('div', 'tabs-wrap');
  left.append(tabs);
  main.append(left, detail.root);
  app.append(hdr.root, main);

  // Redraw when any canvas changes size (layout changes, not only window resizes, move them).
  const ro = new ResizeObserver(() => invalidate());
  ro.observe(main);
  for (const c of [overview.loss, overview.val, overview.gap, overview.grad, overview.layerGrad, overview.update, overview.momentum, overview.energy, overview.saliency, detail.hist, detail.vhist]) ro.observe(c.canvas);
  ro.observe(curvature.scroller);
  // The header wraps on narrow panels: the tab bodies' height (style.css) follows its real height.
  new ResizeObserver(() => app.style.setProperty('--hdr-h', `${hdr.root.offsetHeight}px`)).observe(hdr.root);
}

// ------------------------------------------------------------------------------------------------ selection

function select(name: string, reveal: boolean): void {
  if (ui.selected !== name) model.layerHistory = null;
  ui.selected = name;
  table.setSelected(name, reveal);
  saveState();
  invalidate();
  requestLayerHistory();
}

let historyInFlight = false;
let historyAgain = false;
function requestLayerHistory(): void {
  const name = ui.selected;
  if (!name) return;
  if (historyInFlight) {
    historyAgain = true;
    return;
  }
  historyInFlight = true;
  bridge
    .request('layerHistory', { tensor: name })
    .then((h) => {
      if (ui.selected === name) {
        model.layerHistory = h;
        invalidate();
      }
    })
    .catch((e: Error) => bridge.log('warn', `layerHistory: ${e.message}`))
    .finally(() => {
      historyInFlight = false;
      if (historyAgain) {
        historyAgain = false;
        requestLayerHistory();
      }
    });
}

// ------------------------------------------------------------------------------------------------ persistence

function saveState(): void {
  bridge.setState({ ...persisted, ui });
  bridge.send('uiState', ui);
}
let saveTimer = 0;
function saveStateSoon(): void {
  window.clearTimeout(saveTimer);
  saveTimer = window.setTimeout(saveState, 200);
}

// ------------------------------------------------------------------------------------------------ data

function namesOf(f: StatsFrame): string[] {
  const prev = model.names;
  if (prev.length === f.tensors.length && f.tensors.every((t, i) => t.name === prev[i])) return prev;
  model.names = f.tensors.map((t) => t.name);
  return model.names;
}

function frameScalarsOf(f: StatsFrame): Float32Array {
  const n = SCALAR_KEYS.length;
  const out = new Float32Array(f.tensors.length * n);
  f.tensors.forEach((t, i) => SCALAR_KEYS.forEach((k, j) => (out[i * n + j] = t.scalars[k])));
  return out;
}

/** The decoded frame's extras as the history keeps them (NaN where a tensor has none). */
function frameExtrasOf(f: StatsFrame): ReturnType<typeof extrasArrays> {
  const extras: Partial<Record<ExtraKey, (number | null)[]>> = {};
  for (const k of EXTRA_KEYS) if (f.tensors.some((t) => t[k] !== undefined)) extras[k] = f.tensors.map((t) => t[k] ?? null);
  return extrasArrays(extras, f.tensors.length);
}

function decode(buf: ArrayBuffer): StatsFrame | null {
  try {
    return decodeStatsFrame(new Uint8Array(buf))?.frame ?? null;
  } catch (e) {
    bridge.log('warn', `a statistics frame could not be decoded: ${(e as Error).message}`);
    return null;
  }
}

let pendingPerf: { phase: 'firstPaint' | 'update'; received: number } | null = null;
let firstPaintDone = false;
let snapshotSeen = false;

const handlers: NotificationHandlers = {
  snapshot: (s) => {
    const received = performance.now();
    model.run = s.run;
    model.live = s.live;
    model.metrics = s.metrics;
    model.pinned = s.pinned;
    model.framesTotal = s.framesTotal;
    model.error = null;
    const frames = s.frames.map(decode).filter((f): f is StatsFrame => f !== null);
    model.latest = frames.length ? frames[frames.length - 1] : null;
    model.pinnedFrame = s.pinned && s.pinned.frameStep !== null ? (frames.find((f) => f.step === s.pinned!.frameStep) ?? frames[0] ?? null) : null;
    if (s.pinned && frames.length && model.pinnedFrame === null) model.pinnedFrame = frames[0];
    model.history = new ScalarHistory(HISTORY_CAP);
    model.history.loadPayload(s.history);
    model.names = s.history.names;
    if (persisted.runDir !== s.run.dir || persisted.pinnedStep !== (s.pinned?.step ?? null)) {
      persisted = { runDir: s.run.dir, pinnedStep: s.pinned?.step ?? null };
      saveState();
    }
    const f = current();
    table.setData(f ? f.tensors : []);
    if (!snapshotSeen) {
      snapshotSeen = true;
      table.setSort(ui.sortKey, ui.sortDir);
      if (ui.selected) table.setSelected(ui.selected);
      table.scrollTop = ui.scrollTop;
    } else table.setSelected(ui.selected);
    if (ui.selected) requestLayerHistory();
    if (!firstPaintDone) pendingPerf = { phase: 'firstPaint', received };
    invalidate();
  },
  frames: ({ frames, framesTotal }) => {
    if (!snapshotSeen) return;
    const received = performance.now();
    model.framesTotal = framesTotal;
    for (const buf of frames) {
      const f = decode(buf);
      if (!f) continue;
      model.latest = f;
      model.history.add(f.step, namesOf(f), frameScalarsOf(f), frameExtrasOf(f));
    }
    if (model.run && model.latest) model.run = { ...model.run, step: Math.max(model.run.step ?? 0, model.latest.step) };
    if (!model.pinnedFrame) table.setData(model.latest ? model.latest.tensors : []);
    if (ui.selected) requestLayerHistory();
    if (firstPaintDone && !pendingPerf) pendingPerf = { phase: 'update', received };
    invalidate();
  },
  metrics: ({ rows }) => {
    if (!snapshotSeen) return;
    model.metrics = model.metrics.concat(rows);
    const last = rows[rows.length - 1];
    if (model.run && last) model.run = { ...model.run, step: Math.max(model.run.step ?? 0, last.step) };
    invalidate();
  },
  run: ({ run, live }) => {
    model.run = { ...run, step: Math.max(run.step ?? 0, model.run?.step ?? 0) };
    model.live = live;
    invalidate();
  },
  select: ({ tensor }) => select(tensor, true),
  error: ({ message }) => {
    model.error = message;
    invalidate();
  },
};

// ------------------------------------------------------------------------------------------------ render

let frameRequested = false;
function invalidate(): void {
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(() => {
    frameRequested = false;
    render();
  });
}

function statsEmptyText(): string {
  const r = model.run;
  if (model.error) return model.error;
  if (r?.statsEvery === 0) return 'This run records no statistics (train.statsEvery is 0 in its config).';
  const n = r?.statsEvery ? `${r.statsEvery}` : 'N';
  return `No statistics yet: they appear after the first ${n} steps (train.statsEvery), and at every checkpoint.`;
}

function render(): void {
  theme ??= readTheme();
  const f = current();
  // For tests and screen scrapers: what is shown.
  document.body.dataset.tab = ui.tab;
  app.dataset.tab = ui.tab; // the layout depends on it (style.css)
  document.body.dataset.selected = ui.selected ?? '';
  document.body.dataset.layers = String(f?.tensors.length ?? 0);
  document.body.dataset.seriesColors = JSON.stringify(theme.series);
  renderHeader();
  const tab = ui.tab;
  const hasFrames = !!f && f.tensors.length > 0;
  layersTab.empty.hidden = hasFrames;
  table.el.hidden = !hasFrames;
  layersTab.empty.textContent = statsEmptyText();
  layersTab.bar.hidden = !hasFrames;
  table.setTitles(columnTitles(model.run?.optimizer ?? null));
  // Frames of older writers record no roles: no empty Role column, and no filter that could only say "all".
  const hasRoles = !!f && f.tensors.some((t) => t.role !== undefined);
  table.setColumns(f ? EXTRA_KEYS.filter((k) => f.tensors.some((t) => t[k] !== undefined)) : [], hasRoles);
  layersTab.roleSelect.hidden = !hasRoles;
  layersTab.bar.querySelector('label')!.hidden = !hasRoles;
  if (tab === 'layers' && f) renderLayersBar(f);
  document.body.dataset.roles = f ? JSON.stringify(roleCounts(f.tensors)) : '';
  if (tab === 'overview') renderOverview();
  if (tab === 'curvature') renderCurvature();
  renderDetail();
  if (pendingPerf) {
    const p = pendingPerf;
    pendingPerf = null;
    // The next frame is painted once this one's work is done: measure there.
    requestAnimationFrame(() => {
      const now = performance.now();
      const layers = current()?.tensors.length ?? 0;
      if (p.phase === 'firstPaint') {
        firstPaintDone = true;
        const ms = now - scriptStart();
        document.body.dataset.firstPaintMs = ms.toFixed(1);
        document.body.dataset.snapshotAtMs = (p.received - scriptStart()).toFixed(1);
        document.body.dataset.renderMs = (now - p.received).toFixed(1);
        document.body.dataset.scriptStartMs = scriptStart().toFixed(1);
        document.body.dataset.ready = 'true';
        bridge.send('perf', { phase: 'firstPaint', ms, renderMs: now - p.received, layers, frames: model.framesTotal });
      } else {
        document.body.dataset.updates = String(Number(document.body.dataset.updates ?? '0') + 1);
        bridge.send('perf', { phase: 'update', ms: now - p.received, renderMs: now - p.received, layers, frames: model.framesTotal });
      }
    });
  }
}

/** The Layers tab's role filter (with counts) and what the roles mean for the numbers. */
function renderLayersBar(f: StatsFrame): void {
  const counts = roleCounts(f.tensors);
  const key = JSON.stringify(counts);
  if (layersTab.bar.dataset.counts !== key) {
    layersTab.bar.dataset.counts = key;
    layersTab.roleSelect.querySelectorAll('vscode-option').forEach((o) => {
      const v = o.getAttribute('value') as (typeof ROLE_FILTERS)[number];
      const n = v === 'all' ? f.tensors.length : v === 'trained' ? counts.trained + counts.unknown : counts[v];
      o.textContent = `${ROLE_FILTER_LABELS[v]} (${n})`;
    });
  }
  const sel = layersTab.roleSelect as unknown as { value: string };
  if (sel.value !== ui.roleFilter) sel.value = ui.roleFilter;
  const parts: string[] = [];
  if (counts.unknown === f.tensors.length) parts.push('These statistics record no roles (written by an older version of Basin).');
  else {
    const roles = TENSOR_ROLES.filter((r) => counts[r] > 0).map((r) => `${plural(counts[r], `${ROLE_LABELS[r]} tensor`)}`);
    parts.push(`${roles.join(', ')}.`);
  }
  if (counts.frozen) parts.push('Frozen tensors do not train: their ‖g‖, ‖Δw‖/‖w‖ and ‖m‖ are 0 by design (shown as “frozen”, and left out of the Overview’s per-layer charts).');
  layersTab.note.textContent = parts.join(' ');
  const shown = table.shownCount;
  layersTab.empty.hidden = shown > 0;
  if (!shown) layersTab.empty.textContent = `No ${ROLE_FILTER_LABELS[ui.roleFilter]} in this run at step ${f.step}.`;
}

function renderHeader(): void {
  const r = model.run;
  hdr.name.textContent = r ? r.name : 'Loading…';
  hdr.name.title = r?.dir ?? '';
  const status = r?.status ?? 'unknown';
  hdr.status.textContent = status;
  hdr.status.className = `badge status-${status}`;
  hdr.status.title = r?.error ?? '';
  const step = r?.step;
  hdr.step.textContent =
    r?.kind === 'study'
      ? `study · ${plural(model.metrics.length, 'model')} trained` // its rows are models, its "steps" interactions
      : step === null || step === undefined
        ? 'no steps yet'
        : `step ${step}${r?.totalSteps ? ` / ${r.totalSteps}` : ''}`;
  hdr.live.hidden = !model.live;
  hdr.live.textContent = 'live';
  hdr.live.title = 'Updating while the run trains';
  const pin = model.pinned;
  hdr.pinned.hidden = !pin;
  if (pin) {
    hdr.pinned.textContent = pin.frameStep === null ? `checkpoint ${pin.step}: no statistics at or before it` : `checkpoint ${pin.step}${pin.frameStep !== pin.step ? ` (statistics of step ${pin.frameStep})` : ''}`;
  }
  const layers = current()?.tensors.length ?? 0;
  hdr.frames.textContent = model.framesTotal ? `${plural(layers, 'layer')} · ${plural(model.framesTotal, 'sample')}` : '';
  hdr.frames.title = model.framesTotal ? `Statistics sampled ${plural(model.framesTotal, 'time')} so far (every train.statsEvery steps and at checkpoints)` : '';
  const open = ui.detailOpen;
  hdr.detail.textContent = open ? 'Hide layer detail' : 'Show layer detail';
  hdr.detail.setAttribute('aria-expanded', String(open));
  hdr.detail.title = open ? 'Collapse the layer detail pane (more room for the table and the charts)' : 'Show the selected layer\'s values, history and v histogram';
}

/** Validation metrics that are fractions of examples (shown as percentages, as the job notifications do). */
function isFractionMetric(key: string): boolean {
  return /^val_(accuracy|acc|hr\d+|hr\d+Full|ndcg\d+|mrr|coverage\d+)$/i.test(key);
}

const METRIC_LABELS: Record<string, string> = {
  loss: 'train loss',
  val_loss: 'validation loss',
  val_accuracy: 'accuracy',
  val_hr10: 'HR@10',
  val_hr10Full: 'HR@10 (full ranking, seen removed)',
  val_ndcg10: 'NDCG@10',
  val_mrr: 'MRR',
  val_coverage10: 'coverage@10',
  gradNorm: 'global ‖g‖ before clipping',
};

/** HR@10 says nothing when the model has at most 10 classes: every target is among the 10 highest. */
function hr10Trivial(): boolean {
  const c = model.run?.classes;
  return typeof c === 'number' && c <= 10;
}

function metricSeries(keys: string[], scale = 1): Series[] {
  return keys.map((k, i) => {
    const xs: number[] = [];
    const ys: number[] = [];
    for (const r of model.metrics) {
      const v = r[k];
      if (typeof v === 'number') {
        xs.push(r.step);
        ys.push(v * scale);
      }
    }
    return { name: k, label: METRIC_LABELS[k], xs, ys, color: theme.series[i % theme.series.length], dots: k.startsWith('val'), width: k.startsWith('val') ? 2 : 1.5 };
  });
}

/** The last metrics row at or before `step` that has `key`. */
function metricAt(key: string, step: number): number | null {
  for (let i = model.metrics.length - 1; i >= 0; i--) {
    const r = model.metrics[i];
    if (r.step <= step && typeof r[key] === 'number') return r[key];
  }
  return null;
}

function topLayers(key: ScalarKey, k: number): string[] {
  const f = current();
  if (!f) return [];
  // A frozen tensor's gradient, update and momentum are 0 by design: a flat line at 0 would say nothing.
  const skipFrozen = (ZERO_WHEN_FROZEN as readonly string[]).includes(key);
  const idx = f.tensors.map((_, i) => i).filter((i) => Number.isFinite(f.tensors[i].scalars[key]) && !(skipFrozen && f.tensors[i].role === 'frozen'));
  idx.sort((a, b) => f.tensors[b].scalars[key] - f.tensors[a].scalars[key]);
  const names = idx.slice(0, k).map((i) => f.tensors[i].name);
  const selFrozen = skipFrozen && f.tensors.find((t) => t.name === ui.selected)?.role === 'frozen';
  if (ui.selected && !names.includes(ui.selected) && !selFrozen) names.push(ui.selected);
  return names;
}

/** "12 frozen tensors are left out: …", for the per-layer charts of the scalars that are 0 when frozen. */
function frozenNote(): string {
  const n = current()?.tensors.filter((t) => t.role === 'frozen').length ?? 0;
  return n ? `${plural(n, 'frozen tensor')} left out: their gradient, update and momentum are 0 by design.` : '';
}

/** Per-layer series of an extra (over steps, from the history): the `k` layers first by `order`, and the selected one. */
function extraLayerSeries(key: ExtraKey, names: string[], scale = 1): Series[] {
  const all = ui.selected && !names.includes(ui.selected) && current()?.tensors.some((t) => t.name === ui.selected && t[key] !== undefined) ? [...names, ui.selected] : names;
  return all.map((name, i) => {
    const s = model.history.extraSeries(name, key);
    const sel = name === ui.selected;
    return { name, xs: s.steps, ys: s.values.map((v) => v * scale), color: sel ? theme.fg : theme.series[(i + 1) % theme.series.length], width: sel ? 2.5 : 1.5 };
  });
}

/** Dashed reference lines of a fine-tune's base model (`base_<key>` metrics), each in its own series' colour. */
function baseSeries(own: Series[], scale = 1): Series[] {
  const out: Series[] = [];
  for (const s of own) {
    const key = `base_${s.name}`;
    const xs: number[] = [];
    const ys: number[] = [];
    for (const r of model.metrics) {
      const v = r[key];
      if (typeof v === 'number') {
        xs.push(r.step);
        ys.push(v * scale);
      }
    }
    if (xs.length) out.push({ name: key, label: `base: ${s.label ?? s.name}`, xs, ys, color: s.color, width: 1.5, dash: [6, 4] });
  }
  return out;
}

/** A study run: one chart per `<split>_<metric>`, a line per case against training interactions. */
function renderStudy(): void {
  const charts = studyCharts(model.metrics);
  document.body.dataset.studyCharts = String(charts.length);
  if (!study.note.isConnected) study.root.append(study.note);
  study.note.textContent = charts.length
    ? 'One point per trained model: its metric against the training interactions it saw (every model trained for the same number of steps). A case with a single data budget is a dot.'
    : model.metrics.length
      ? 'This study wrote no <case>_val_… or <case>_test_… metrics.'
      : 'No results yet: the study appends a row to metrics.jsonl as each model finishes.';
  const seen = new Set<string>();
  for (const c of charts) {
    seen.add(c.key);
    let box = study.boxes.get(c.key);
    if (!box) {
      box = chartBox(c.title, `${c.title}, one line per case`);
      study.boxes.set(c.key, box);
      study.root.append(box.box);
    }
    box.box.hidden = false;
    box.title.textContent = c.title;
    const scale = c.percent ? 100 : 1;
    const series: Series[] = c.series.map((s, i) => ({
      name: s.name,
      xs: s.xs,
      ys: s.ys.map((y) => y * scale),
      color: theme.series[i % theme.series.length],
      dots: true,
      width: 2,
    }));
    box.summary.textContent = drawLineChart(box.canvas, theme, series, { xLabel: 'training interactions', yUnit: c.percent ? '%' : '' });
  }
  for (const [k, b] of study.boxes) if (!seen.has(k)) b.box.hidden = true;
}

function renderFineTuneCharts(marker: number | null): void {
  // Overfitting: validation − training loss at each evaluation.
  const gap = lossGap(model.metrics);
  overview.gap.box.hidden = gap.steps.length === 0;
  if (gap.steps.length) {
    overview.gap.summary.textContent = drawLineChart(overview.gap.canvas, theme, [{ name: 'gap', label: 'validation − training loss', xs: gap.steps, ys: gap.gaps, color: theme.series[4 % theme.series.length], width: 2, dots: true }], {
      xLabel: 'step',
      markerX: marker,
      hLines: [{ y: 0, label: 'no gap' }],
    });
    const last = gap.gaps[gap.gaps.length - 1];
    const min = Math.min(...gap.gaps);
    setNote(overview.gap, `Gap ${fmt(last, 3)} at step ${gap.steps[gap.steps.length - 1]}${gap.gaps.length > 1 && last > min + Math.abs(min) * 0.1 + 1e-9 ? ` (up from ${fmt(min, 3)}: overfitting grows)` : ''}.`);
  }
  // mao: captured momentum energy.
  const f = current();
  const energyNow = f ? capturedOverall(f.tensors.map((t) => t.capturedEnergy ?? NaN), f.tensors.map((t) => t.scalars.momentumNorm)) : null;
  overview.energy.box.hidden = !energyNow;
  document.body.dataset.capturedEnergy = energyNow ? energyNow.overall.toFixed(4) : '';
  if (f && energyNow) {
    const low = f.tensors.filter((t) => t.capturedEnergy !== undefined).sort((a, b) => a.capturedEnergy! - b.capturedEnergy!);
    const overall = capturedOverallSeries(model.history.allPoints());
    const series: Series[] = [{ name: 'all', label: 'all factored tensors', xs: overall.steps, ys: overall.values.map((v) => v * 100), color: theme.series[0], width: 2.5 }];
    series.push(...extraLayerSeries('capturedEnergy', low.slice(0, 4).map((t) => t.name), 100));
    overview.energy.summary.textContent = drawLineChart(overview.energy.canvas, theme, series, { xLabel: 'step', markerX: marker, yUnit: '%', yClamp: [0, 100] });
    const r = model.run?.rank;
    setNote(
      overview.energy,
      `mao keeps ${fmtPercent(energyNow.overall)} of the momentum energy at rank ${r ?? 'r'} (${plural(energyNow.tensors, 'factored tensor')}, step ${f.step}); least: ${low
        .slice(0, 2)
        .map((t) => `${t.name} ${fmtPercent(t.capturedEnergy)}`)
        .join(', ')}.`,
    );
  }
  // A fine-tune's task saliency per layer.
  const shares = f ? saliencyShares(f.tensors) : [];
  overview.saliency.box.hidden = shares.length === 0;
  document.body.dataset.saliency = shares.length ? String(shares.length) : '';
  if (shares.length) {
    overview.saliency.summary.textContent = drawLineChart(overview.saliency.canvas, theme, extraLayerSeries('saliencyMass', shares.slice(0, 5).map((s) => s.name)), { logY: true, xLabel: 'step', markerX: marker });
    const top = shares.filter((s) => s.share > 0).slice(0, 3);
    setNote(overview.saliency, top.length ? `Where the fine-tune changed the model where it matters, at step ${f!.step}: ${top.map((s) => `${s.name} ${fmtPercent(s.share)}`).join(', ')} of the total.` : 'No saliency yet: the weights have not moved from the base, or the second moment is still 0.');
  }
}

function layerSeries(key: ScalarKey): Series[] {
  return topLayers(key, 5).map((name, i) => {
    const s = model.history.series(name, key);
    const sel = name === ui.selected;
    return { name, xs: s.steps, ys: s.values, color: sel ? theme.fg : theme.series[i % theme.series.length], width: sel ? 2.5 : 1.5 };
  });
}

function renderOverview(): void {
  const isStudy = model.run?.kind === 'study';
  for (const c of Object.values(overview)) if (c !== overview.root) (c as ChartBox).box.hidden = isStudy ? true : (c as ChartBox).box.hidden;
  study.root.hidden = !isStudy;
  if (isStudy) return renderStudy();
  if (overview.loss.box.hidden) for (const c of [overview.loss, overview.grad, overview.layerGrad, overview.update, overview.momentum]) c.box.hidden = false;
  const keys = new Set<string>();
  for (const r of model.metrics) for (const k in r) keys.add(k);
  const lossKeys = ['loss', ...[...keys].filter((k) => /^val[_A-Z]?loss$/i.test(k) || k === 'val_loss')].filter((k, i, a) => keys.has(k) && a.indexOf(k) === i);
  const trivial = hr10Trivial();
  const valKeys = [...keys].filter((k) => /^val/i.test(k) && !lossKeys.includes(k) && !(trivial && /^val_hr10$/i.test(k)));
  const marker = model.pinned?.step ?? null;
  const noMetrics = 'No metrics yet: metrics.jsonl is written every train.logEvery steps.';
  const lossSeries = metricSeries(lossKeys);
  const lossBase = baseSeries(lossSeries);
  let baseLines = lossBase.length;
  overview.loss.summary.textContent = drawLineChart(overview.loss.canvas, theme, [...lossSeries, ...lossBase], {
    xLabel: 'step',
    markerX: marker,
    empty: model.metrics.length ? 'No loss values in metrics.jsonl' : noMetrics,
  });
  overview.val.box.hidden = valKeys.length === 0;
  if (valKeys.length) {
    const pct = valKeys.every(isFractionMetric);
    const hasHr = valKeys.some((k) => /^val_hr10$/i.test(k));
    overview.val.title.textContent = pct ? `Validation ${hasHr ? 'accuracy and HR@10' : 'accuracy'} (%)` : 'Validation metrics';
    setNote(overview.val, trivial && keys.has('val_hr10') ? `HR@10 is not shown: with ${model.run?.classes} classes every target is among the 10 highest, so it is always 100 %.` : '');
    const valSeries = metricSeries(valKeys, pct ? 100 : 1);
    const valBase = baseSeries(valSeries, pct ? 100 : 1);
    baseLines += valBase.length;
    overview.val.summary.textContent = drawLineChart(overview.val.canvas, theme, [...valSeries, ...valBase], {
      xLabel: 'step',
      markerX: marker,
      yUnit: pct ? '%' : '',
      yClamp: pct ? [0, 100] : undefined,
    });
  }
  document.body.dataset.baseLines = String(baseLines);
  const clip = model.run?.gradClip ?? null;
  overview.grad.summary.textContent = drawLineChart(overview.grad.canvas, theme, metricSeries(['gradNorm']), {
    xLabel: 'step',
    markerX: marker,
    hLines: clip && clip > 0 ? [{ y: clip, label: `clip at ${fmt(clip)}` }] : [],
    empty: model.metrics.length ? 'No gradient norm in metrics.jsonl' : noMetrics,
  });
  setNote(overview.grad, clip === 0 ? 'No clipping in this run (train.gradClip is 0): the per-layer norms are the raw gradients.' : '');
  const empty = statsEmptyText();
  overview.layerGrad.summary.textContent = drawLineChart(overview.layerGrad.canvas, theme, layerSeries('gradNorm'), { logY: true, xLabel: 'step', markerX: marker, empty });
  overview.update.summary.textContent = drawLineChart(overview.update.canvas, theme, layerSeries('updateRatio'), { logY: true, xLabel: 'step', markerX: marker, empty });
  overview.momentum.summary.textContent = drawLineChart(overview.momentum.canvas, theme, layerSeries('momentumNorm'), { logY: true, xLabel: 'step', markerX: marker, empty });
  const frozen = frozenNote();
  for (const c of [overview.layerGrad, overview.update, overview.momentum]) setNote(c, frozen);
  setNote(overview.loss, model.run?.base ? 'Dashed: the base model (the checkpoint this run fine-tunes), evaluated once before the first step.' : '');
  renderFineTuneCharts(marker);
}

// ---- curvature heatmaps

let hmRowH = 4;
let hmCache: { frame: StatsFrame; rows: HeatmapData; cols: HeatmapData } | null = null;

function heatmaps(f: StatsFrame): { rows: HeatmapData; cols: HeatmapData } {
  if (hmCache && hmCache.frame === f) return hmCache;
  const n = f.tensors.length;
  const rows = new Float32Array(n * HEATMAP_BINS);
  const cols = new Float32Array(n * HEATMAP_BINS);
  const tmp = new Float32Array(HEATMAP_BINS);
  f.tensors.forEach((t, i) => {
    resampleLog(t.vRow, t.cols, HEATMAP_BINS, tmp);
    rows.set(tmp, i * HEATMAP_BINS);
    resampleLog(t.vCol, t.rows, HEATMAP_BINS, tmp);
    cols.set(tmp, i * HEATMAP_BINS);
  });
  // One colour scale for both maps: the 1st–99th percentile of the finite values, so one outlier does not flatten it.
  const finite: number[] = [];
  for (const a of [rows, cols]) for (let i = 0; i < a.length; i += Math.max(1, Math.floor(a.length / 20000))) if (Number.isFinite(a[i])) finite.push(a[i]);
  finite.sort((a, b) => a - b);
  const lo = finite.length ? finite[Math.floor(finite.length * 0.01)] : -12;
  const hi = finite.length ? finite[Math.min(finite.length - 1, Math.floor(finite.length * 0.99))] : -4;
  hmCache = { frame: f, rows: { rows: n, bins: HEATMAP_BINS, values: rows, lo, hi }, cols: { rows: n, bins: HEATMAP_BINS, values: cols, lo, hi } };
  return hmCache;
}

function renderCurvature(): void {
  const f = current();
  const has = !!f && f.tensors.length > 0;
  curvature.empty.hidden = has;
  curvature.empty.textContent = statsEmptyText();
  curvature.scroller.hidden = !has;
  curvature.legend.hidden = !has;
  if (curvature.head) curvature.head.hidden = !has;
  if (!f || !has) return;
  const { rows, cols } = heatmaps(f);
  const n = f.tensors.length;
  const vTip = describeV(model.run?.optimizer ?? null);
  curvature.head?.querySelectorAll<HTMLElement>('.hm-h').forEach((h) => (h.title = vTip));
  const avail = Math.max(120, curvature.scroller.clientHeight - 4);
  hmRowH = Math.max(2, Math.min(18, Math.floor(avail / n)));
  const sel = f.tensors.findIndex((t) => t.name === ui.selected);
  drawHeatmap(curvature.rows, theme, rows, hmRowH, sel);
  drawHeatmap(curvature.cols, theme, cols, hmRowH, sel);
  drawLabels(f, sel);
  const label = `Curvature heatmap, ${n} layers × ${HEATMAP_BINS} bins of the normalized index; colour = log10 of mean v, from ${rows.lo.toFixed(1)} to ${rows.hi.toFixed(1)}.${sel >= 0 ? ` Selected: ${f.tensors[sel].name}.` : ''} Arrow keys change the selected layer.`;
  curvature.rows.setAttribute('aria-label', `Row profile. ${label}`);
  curvature.cols.setAttribute('aria-label', `Column profile. ${label}`);
  // Text summary: the layers with the highest and lowest mean v.
  const byV = f.tensors.filter((t) => t.scalars.vMean > 0).sort((a, b) => b.scalars.vMean - a.scalars.vMean);
  curvature.summary.textContent = byV.length
    ? `Highest mean v: ${byV.slice(0, 3).map((t) => `${t.name} ${fmt(t.scalars.vMean)}`).join(', ')}. Lowest: ${byV.slice(-3).map((t) => `${t.name} ${fmt(t.scalars.vMean)}`).join(', ')}.`
    : 'No second-moment values.';
  renderLegend(rows.lo, rows.hi);
}

function drawLabels(f: StatsFrame, sel: number): void {
  const c = curvature.labels;
  const w = c.clientWidth;
  const h = f.tensors.length * hmRowH;
  const dpr = window.devicePixelRatio || 1;
  c.style.height = `${h}px`;
  curvature.rows.style.height = `${h}px`;
  curvature.cols.style.height = `${h}px`;
  if (w <= 0) return;
  c.width = Math.round(w * dpr);
  c.height = Math.round(h * dpr);
  const g = c.getContext('2d')!;
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);
  if (hmRowH < 9) {
    g.fillStyle = theme.muted;
    g.font = `11px ${theme.font}`;
    g.textBaseline = 'top';
    g.fillText(`${f.tensors.length} layers`, 4, 2);
    g.fillText('(hover for names)', 4, 16);
    if (sel >= 0) {
      g.fillStyle = theme.focus;
      g.fillRect(w - 6, sel * hmRowH, 4, Math.max(2, hmRowH));
    }
    return;
  }
  g.font = `${Math.min(12, hmRowH - 1)}px ${theme.font}`;
  g.textBaseline = 'middle';
  g.textAlign = 'right';
  const measure = (s: string) => g.measureText(s).width;
  f.tensors.forEach((t, i) => {
    g.fillStyle = i === sel ? theme.focus : theme.fg;
    // Shortened in the middle: "blocks.0.att….weight" and "….bias" stay apart (the full name is in the tooltip).
    g.fillText(middleEllipsis(t.name, w - 10, measure), w - 6, i * hmRowH + hmRowH / 2);
  });
}

function renderLegend(lo: number, hi: number): void {
  const l = curvature.legend;
  if (l.dataset.range === `${lo}:${hi}`) return;
  l.dataset.range = `${lo}:${hi}`;
  l.textContent = '';
  const bar = el('div', 'hm-legend-bar');
  for (let i = 0; i < 32; i++) {
    const s = el('span');
    s.style.background = colormapCss(i / 31);
    bar.append(s);
  }
  l.append(el('span', 'hm-legend-label', `log10 mean v: ${lo.toFixed(1)}`), bar, el('span', 'hm-legend-label', `${hi.toFixed(1)}`), el('span', 'hm-legend-note', 'transparent: v = 0 (no value)'));
}

function heatmapRowAt(e: MouseEvent): number {
  const r = (e.target as HTMLElement).getBoundingClientRect();
  return Math.floor((e.clientY - r.top) / hmRowH);
}

function showTip(e: MouseEvent, isCols: boolean): void {
  const f = current();
  const i = heatmapRowAt(e);
  if (!f || i < 0 || i >= f.tensors.length) {
    curvature.tip.hidden = true;
    return;
  }
  const t = f.tensors[i];
  const target = e.target as HTMLElement;
  const r = target.getBoundingClientRect();
  let where = '';
  if (target !== curvature.labels) {
    const x = (e.clientX - r.left) / r.width;
    const { rows, cols } = heatmaps(f);
    const d = isCols ? cols : rows;
    const b = Math.max(0, Math.min(HEATMAP_BINS - 1, Math.floor(x * HEATMAP_BINS)));
    const v = d.values[i * HEATMAP_BINS + b];
    where = ` · ${isCols ? 'column' : 'row'} ≈ ${(x * 100).toFixed(0)}%: ${Number.isFinite(v) ? `mean v ${fmt(10 ** v)}` : 'v = 0'}`;
  }
  curvature.tip.textContent = `${t.name} [${t.shape.join('×')}]${where}`;
  curvature.tip.hidden = false;
  const host = curvature.root.getBoundingClientRect();
  curvature.tip.style.left = `${Math.min(host.width - 320, e.clientX - host.left + 12)}px`;
  curvature.tip.style.top = `${e.clientY - host.top + 14}px`;
}

// ---- detail pane

function renderDetail(): void {
  const open = ui.detailOpen;
  detail.root.hidden = !open;
  document.querySelector('.main')?.classList.toggle('detail-closed', !open);
  const f = current();
  const t = f?.tensors.find((x) => x.name === ui.selected) ?? null;
  detail.root.classList.toggle('detail-none', !t);
  if (!open) return;
  detail.empty.hidden = !!t;
  detail.empty.textContent = f ? 'Select a layer in the table or the heatmap to see its history and its v histogram.' : statsEmptyText();
  for (const e of [detail.head, detail.grid, detail.hist.box, detail.vhist.box]) e.hidden = !t;
  if (!t || !f) return;
  detail.title.textContent = t.name;
  detail.title.title = t.name;
  detail.shape.textContent = `shape [${t.shape.join(', ')}] · matrix ${t.rows}×${t.cols} · step ${f.step}`;
  const optimizer = model.run?.optimizer ?? null;
  const vTip = describeV(optimizer);
  const titles = columnTitles(optimizer);
  table.setTitles(titles);
  const globalNorm = metricAt('gradNorm', f.step);
  const clip = model.run?.gradClip ?? null;
  const key = `${f.step}:${t.name}:${globalNorm}:${clip}:${optimizer}:${t.role}`;
  if (detail.grid.dataset.key !== key) {
    detail.grid.dataset.key = key;
    detail.grid.textContent = '';
    const row = (label: string, value: string, tip: string, cls = '') => {
      const dt = el('dt', cls, label);
      const dd = el('dd', cls, value);
      dt.title = tip;
      dd.title = tip;
      detail.grid.append(dt, dd);
    };
    if (t.role) row('role', ROLE_LABELS[t.role], ROLE_TEXT[t.role], `detail-role role-text-${t.role}`);
    for (const k of SCALAR_KEYS) {
      const shown = shownScalar(t, k);
      const clamped = shown !== t.scalars[k];
      if (t.role === 'frozen' && (ZERO_WHEN_FROZEN as readonly string[]).includes(k)) {
        row(SCALAR_LABELS[k], `${fmt(shown)} (frozen)`, `${titles[k]}. 0 by design: ${ROLE_TEXT.frozen}`);
        continue;
      }
      row(SCALAR_LABELS[k], fmt(shown), `${titles[k]}${clamped ? ` (computed ${fmt(t.scalars[k])} from log bins; shown at most max v)` : ''}`);
    }
    if (t.capturedEnergy !== undefined) row(EXTRA_LABELS.capturedEnergy, fmtPercent(t.capturedEnergy), titles.capturedEnergy, 'detail-extra');
    if (t.saliencyMass !== undefined) {
      const share = saliencyShares(f.tensors).find((x) => x.name === t.name)?.share;
      row(EXTRA_LABELS.saliencyMass, `${fmt(t.saliencyMass)}${share !== undefined ? ` (${fmtPercent(share)} of all)` : ''}`, titles.saliencyMass, 'detail-extra');
    }
    // The other gradient norm, so both stay in view: the whole gradient before clipping, and the scale applied.
    if (globalNorm !== null) {
      row('global ‖g‖ before clip', fmt(globalNorm), GLOBAL_GRAD_TIP, 'detail-extra');
      if (clip && clip > 0) row('clip scale', globalNorm > clip ? fmt(clip / globalNorm, 3) : '1 (not clipped)', `min(1, gradClip / global ‖g‖) with gradClip = ${fmt(clip)}: every layer's gradient was multiplied by it`, 'detail-extra');
    }
  }
  if ((detail.keySelect as unknown as { value: string }).value !== ui.historyKey) (detail.keySelect as unknown as { value: string }).value = ui.historyKey;
  const hk = ui.historyKey;
  let xs: number[];
  let ys: number[];
  const h = model.layerHistory;
  if (h && h.tensor === t.name) {
    xs = h.steps;
    ys = h.scalars[hk].map((v) => (v === null ? NaN : v));
  } else {
    const s = model.history.series(t.name, hk);
    xs = s.steps;
    ys = s.values;
  }
  const logY = hk !== 'updateRatio' || ys.every((v) => !(v <= 0));
  // Frozen now means frozen all along (unfreezing only releases): a line at 0 would look like a dead layer.
  const frozenZero = t.role === 'frozen' && (ZERO_WHEN_FROZEN as readonly string[]).includes(hk);
  detail.hist.summary.textContent = drawLineChart(detail.hist.canvas, theme, frozenZero ? [] : [{ name: hk, label: SCALAR_LABELS[hk], xs, ys, color: theme.series[0], width: 1.75 }], {
    logY,
    xLabel: 'step',
    markerX: model.pinned?.step ?? null,
    empty: frozenZero ? `Frozen: ${SCALAR_LABELS[hk]} is 0 by design (this tensor does not train). Pick ‖w‖ or v to see its history.` : undefined,
  });
  detail.hist.canvas.setAttribute('aria-label', `${SCALAR_LABELS[hk]} of ${t.name} over steps`);
  const q = (k: 'vP50' | 'vP90' | 'vP99') => shownScalar(t, k);
  const qs = [
    { label: 'p50', value: q('vP50') },
    { label: 'p90', value: q('vP90') },
    { label: 'p99', value: q('vP99') },
  ];
  detail.vhist.box.title = vTip;
  const summary = drawHistogram(detail.vhist.canvas, theme, t.hist, HIST_LO, HIST_HI, qs);
  detail.vhist.summary.textContent = summary;
  const under = /; (\d+) at or below ([^ ]+)/.exec(summary);
  setNote(
    detail.vhist,
    t.scalars.vMax > 0
      ? `p50/p90/p99 of v: ${fmt(q('vP50'), 3)} · ${fmt(q('vP90'), 3)} · ${fmt(q('vP99'), 3)}; max ${fmt(t.scalars.vMax, 3)}.${under ? ` ${plural(Number(under[1]), 'value')} at or below ${under[2]} (zeros included) are left off the axis.` : ''}`
      : '',
  );
  detail.vhist.canvas.setAttribute('aria-label', `Histogram of v for ${t.name}: ${HIST_BINS} bins of log10 v from ${HIST_LO} to ${HIST_HI}, drawn over the occupied range. ${vTip}`);
}

// ------------------------------------------------------------------------------------------------ start

function start(): void {
  const sheet = new CSSStyleSheet();
  sheet.replaceSync(css);
  document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
  bridge = new Bridge(statsProtocol, (n: StatsNotification) => dispatchNotification(handlers, n));
  bridge.reportErrors();
  const saved = bridge.getState((x) => x);
  ui = coerceUiState(isObject(saved) ? saved.ui : undefined);
  persisted = {
    runDir: isObject(saved) && typeof saved.runDir === 'string' ? saved.runDir : (initial.runDir ?? ''),
    pinnedStep: isObject(saved) && typeof saved.pinnedStep === 'number' ? saved.pinnedStep : (initial.pinnedStep ?? null),
  };
  buildDom();
  tabs.setAttribute('selected-index', String(Math.max(0, TABS.indexOf(ui.tab))));
  (tabs as unknown as { selectedIndex: number }).selectedIndex = Math.max(0, TABS.indexOf(ui.tab));
  table.sortKey = ui.sortKey;
  table.sortDir = ui.sortDir;
  table.setFilter(ui.roleFilter);
  theme = readTheme();
  onThemeChange(() => {
    theme = readTheme();
    hmCache = null;
    invalidate();
  });
  bridge.setState({ ...persisted, ui });
  render();
  bridge.start();
}

start();
