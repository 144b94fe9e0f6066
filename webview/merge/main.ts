// The merge panel's webview app: the tasks × layers grid, the method form, the preview per layer, Run Merge and
// the result table. It keeps no data: every `state` from the host is the whole picture (read back from the YAML),
// and every change the user makes is sent as an `edit` the host writes into the YAML. Only UI state (what the
// cells show, scroll) is persisted with vscode.setState (with the config file, for the panel serializer).
//
// Grid interaction: click a cell to include/exclude it; drag across cells to do the same to all of them (the
// first cell decides include or exclude; held at the grid's left or right edge, a drag scrolls it along, so a
// block can span more layers than fit on screen); click a layer's header or an expert's name for the whole
// column/row.
// Shift-click (or Shift-drag) selects cells instead, for the "Selected cells" bar: set a weight or density there,
// or clear the overrides. Keyboard: arrows move between cells, Space/Enter toggles, Shift+Space selects.
import css from './style.css';
import { Bridge, boot } from '../shared/bridge';
import { fmt, fmtPercent, onThemeChange } from '../shared/charts';
import { el, fmtBytes, numberInput, percentBar } from '../shared/dom';
import {
  coerceMergeUi,
  mergeProtocol,
  type MergeCellParam,
  type MergeEditRequest,
  type MergePanelSnapshot,
  type MergeUiState,
} from '../../src/protocol/panels/merge';

type MergeBridge = Bridge<import('../../src/protocol/panels/merge').MergeCommandParams, import('../../src/protocol/panels/merge').MergeRequestTypes, import('../../src/protocol/panels/merge').MergeNotificationParams>;

let bridge: MergeBridge;
let snap: MergePanelSnapshot | null = null;
let ui: MergeUiState = coerceMergeUi(undefined);
let configFile = '';
/** Cells selected for the value bar, as "r,c". */
const selected = new Set<string>();
let focusCell: [number, number] = [0, 0];
let drag: { mode: 'toggle' | 'select'; include: boolean; from: [number, number]; to: [number, number] } | null = null;
let forceOverwrite = false;
let editsSent = 0;

function sendEdit(edit: MergeEditRequest): void {
  // A method that weighs the models itself (model_stock) has no cell weight: clicks only move the focus.
  if (edit.kind === 'include' && snap && !snap.cellParams.includes('weight')) return;
  editsSent++;
  document.body.dataset.editsSent = String(editsSent);
  bridge.send('edit', edit);
}

function persist(): void {
  bridge.setState({ configFile, ui });
  bridge.send('uiState', ui);
}

// ------------------------------------------------------------------------------------------------ render

const root = () => document.getElementById('app')!;

function render(): void {
  const s = snap;
  const app = root();
  // Where the user has the grid (kept by its scroll listener), not the old grid's own position: that one may be a
  // restore still under way.
  const scroll = ui.scrollLeft;
  app.replaceChildren();
  if (!s) {
    app.append(el('p', { class: 'muted' }, 'Loading the merge…'));
    return;
  }
  document.body.dataset.rows = String(s.rows.length);
  document.body.dataset.cols = String(s.columns.length);
  document.body.dataset.edits = String(s.edits);
  document.body.dataset.preview = s.preview.status;
  document.body.dataset.job = s.job.status;
  document.body.dataset.saliency = s.saliency.status;
  document.body.dataset.stale = String(s.stale);
  document.body.dataset.excluded = String(s.cells.flat().filter((c) => c.weight === 0).length);

  app.append(header(s));
  if (s.diagnostics.length) app.append(diagnostics(s));
  if (s.method) app.append(methodForm(s));
  app.append(grid(s));
  if (selected.size) app.append(selectionBar(s));
  app.append(previewSection(s));
  app.append(runSection(s));
  const g = app.querySelector<HTMLElement>('.grid-scroll');
  if (g) restoreScroll(g, scroll);
  updateLayerSpan();
  const f = app.querySelector<HTMLElement>(`[data-cell="${focusCell[0]},${focusCell[1]}"]`);
  if (f && document.activeElement === document.body) f.tabIndex = 0;
}

/**
 * Puts a re-rendered grid back where the user had scrolled it. A grid the renderer has not laid out yet (the
 * webview busy or briefly hidden) ignores the assignment and stays at 0: try again on the next frames, unless the
 * user scrolls it first or a newer render replaces it.
 */
function restoreScroll(g: HTMLElement, left: number, frames = 30): void {
  restoring = { g, left };
  g.scrollLeft = left;
  if (!left || Math.abs(g.scrollLeft - left) <= 1 || frames <= 0) {
    // The scroll event of this last assignment comes after: let it through as the user's position.
    requestAnimationFrame(() => {
      if (restoring?.g === g) restoring = null;
    });
    return;
  }
  requestAnimationFrame(() => {
    if (g.isConnected && restoring?.g === g) restoreScroll(g, left, frames - 1);
  });
}

/** A grid being put back at `left` (its scroll events are the restore's, not the user's). */
let restoring: { g: HTMLElement; left: number } | null = null;

function header(s: MergePanelSnapshot): HTMLElement {
  const open = el('button', { class: 'link', title: 'Show the YAML beside the panel' }, s.name);
  open.addEventListener('click', () => bridge.send('openConfig', {}));
  const h = el('header', { class: 'hdr' }, el('h1', {}, 'Merge '), open);
  if (s.base) h.append(el('span', { class: 'muted' }, ` · base ${s.base}`));
  if (s.stale) h.append(el('span', { class: 'badge warn', role: 'status' }, 'YAML has errors — showing the last good grid'));
  return h;
}

function diagnostics(s: MergePanelSnapshot): HTMLElement {
  const list = el('ul', { class: 'diags', 'aria-label': 'Problems in the merge config' });
  for (const d of s.diagnostics.slice(0, 20)) {
    list.append(el('li', { class: d.severity }, el('span', { class: 'pos' }, `line ${d.line}:${d.column}`), ' ', d.message));
  }
  return list;
}

function methodForm(s: MergePanelSnapshot): HTMLElement {
  const m = s.method!;
  const sel = el('select', { 'aria-label': 'Merge method', id: 'method' });
  for (const x of s.methods) {
    const o = el('option', { value: x.name, title: x.title }, x.name);
    if (x.name === m.name) o.selected = true;
    sel.append(o);
  }
  sel.addEventListener('change', () => sendEdit({ kind: 'setMethod', method: sel.value }));
  const form = el('section', { class: 'form', 'aria-label': 'Method and parameters' }, el('label', { class: 'field' }, el('span', {}, 'method'), sel));
  for (const p of m.params.filter((x) => !x.perModel)) {
    const wrap = el('label', { class: 'field', title: p.doc }, el('span', {}, p.name));
    if (p.type === 'boolean') {
      const c = el('input', { type: 'checkbox', 'aria-label': p.name });
      c.checked = typeof p.value === 'boolean' ? p.value : p.default === true;
      c.addEventListener('change', () => sendEdit({ kind: 'setGlobal', param: p.name, value: c.checked }));
      wrap.append(c);
    } else if (p.type === 'number' || p.type === 'integer') {
      if (p.text) wrap.append(el('code', { title: 'written in the YAML as a gradient or filters' }, p.text));
      else wrap.append(numberInput(p.name, typeof p.value === 'number' ? p.value : null, p, p.default === null ? '' : String(p.default), (v) => sendEdit({ kind: 'setGlobal', param: p.name, value: v })));
    } else wrap.append(el('code', {}, p.text ?? String(p.value ?? p.default ?? '')));
    form.append(wrap);
  }
  form.append(el('p', { class: 'muted doc' }, m.title));
  return form;
}

/** 0..1 position of a saliency value on the row-wise log scale (null: no value). */
function saliencyScale(s: MergePanelSnapshot): (r: number, c: number) => number | null {
  const logs = s.cells.map((row) => row.map((c) => (c.saliency !== null && c.saliency > 0 ? Math.log10(c.saliency) : null)));
  const all = logs.flat().filter((v): v is number => v !== null);
  if (!all.length) return () => null;
  const lo = Math.min(...all);
  const hi = Math.max(...all);
  return (r, c) => {
    const v = logs[r][c];
    return v === null ? null : hi > lo ? (v - lo) / (hi - lo) : 1;
  };
}

/** A cell parameter as the YAML names it: the weight is slerp's `t` where the method interpolates two models. */
function paramLabel(s: MergePanelSnapshot, p: MergeCellParam): string {
  return p === 'weight' ? (s.weightParam ?? 'weight') : p;
}

function cellText(s: MergePanelSnapshot, r: number, c: number): string {
  const cell = s.cells[r][c];
  if (ui.show === 'saliency') return cell.saliency === null ? (s.rows[r].noStatistics ? 'no stats' : '–') : fmt(cell.saliency, 2);
  const v = ui.show === 'weight' ? cell.weight : cell.density;
  return v === null ? 'mixed' : fmt(v, 3);
}

function inRect(r: number, c: number, a: [number, number], b: [number, number]): boolean {
  return r >= Math.min(a[0], b[0]) && r <= Math.max(a[0], b[0]) && c >= Math.min(a[1], b[1]) && c <= Math.max(a[1], b[1]);
}

function grid(s: MergePanelSnapshot): HTMLElement {
  const sec = el('section', { class: 'grid-sec', 'aria-label': 'Experts by layers' });
  const bar = el('div', { class: 'bar' });
  const showSel = el('select', { 'aria-label': 'What the cells show' });
  const shows: [MergeUiState['show'], string][] = [['saliency', 'saliency mass Σ τ²·F̂'], ...s.cellParams.map((p): [MergeCellParam, string] => [p, paramLabel(s, p)])];
  for (const [v, t] of shows) {
    const o = el('option', { value: v }, t);
    if (ui.show === v) o.selected = true;
    showSel.append(o);
  }
  showSel.addEventListener('change', () => {
    ui = coerceMergeUi({ ...ui, show: showSel.value });
    persist();
    render();
  });
  bar.append(el('label', { class: 'field' }, el('span', {}, 'cells show'), showSel));
  const sal = s.saliency;
  bar.append(el('span', { class: `muted sal-${sal.status}`, role: 'status' }, sal.status === 'running' ? 'computing saliency…' : (sal.message ?? (sal.status === 'done' ? 'saliency from the training statistics' : ''))));
  bar.append(
    el(
      'span',
      { class: 'muted hint' },
      !s.cellParams.length && s.method
        ? `${s.method.name} weighs the models itself: the cells show saliency only`
        : s.weightParam && s.weightParam !== 'weight'
          ? `Click or drag: include/exclude (${s.weightParam} = 0 keeps the base) · Shift: select to set values`
          : 'Click or drag: include/exclude · Shift: select to set values',
    ),
  );
  sec.append(bar);
  if (s.readOnly && !s.rows.length) {
    sec.append(el('p', { class: 'muted' }, s.readOnly));
    return sec;
  }
  const scale = saliencyScale(s);
  const perModel = s.method?.params.filter((p) => p.perModel && (p.type === 'number' || p.type === 'integer')) ?? [];
  // A method that weighs the models itself (model_stock) has nothing a click could write.
  const editable = s.cellParams.includes('weight');
  const table = el('table', { class: 'grid', role: 'grid', 'aria-label': `${s.rows.length} experts by ${s.columns.length} layers`, 'aria-readonly': s.stale || !editable ? 'true' : 'false' });
  const thead = el('thead');
  const hr = el('tr', {}, el('th', { class: 'corner', scope: 'col' }, 'expert'));
  for (const p of perModel) hr.append(el('th', { class: 'param', scope: 'col', title: p.doc }, p.name));
  s.columns.forEach((col, c) => {
    const excluded = s.rows.length > 0 && s.cells.every((row) => row[c].weight === 0);
    const b = el('button', { class: `colhdr${excluded ? ' excl' : ''}`, 'data-col': String(c), title: `${col.layer === null ? 'Tensors outside the layers' : `Layer ${col.layer}`} (${col.tensors} tensors)${editable ? `: click to ${excluded ? 'include' : 'exclude'} for every expert; Shift-click to select` : ''}` }, col.label);
    b.addEventListener('click', (e) => {
      const cells = s.rows.map((_, r): [number, number] => [r, c]);
      if (e.shiftKey) return selectCells(cells);
      sendEdit({ kind: 'include', cells, included: excluded });
    });
    hr.append(el('th', { scope: 'col', class: 'colh' }, b));
  });
  thead.append(hr);
  table.append(thead);
  const tbody = el('tbody');
  s.rows.forEach((row, r) => {
    const tr = el('tr');
    const rowExcluded = s.cells[r].every((c) => c.weight === 0);
    const name = el('button', { class: `rowhdr${rowExcluded ? ' excl' : ''}`, 'data-row': String(r), title: `${row.written} (${row.kind})${editable ? `: click to ${rowExcluded ? 'include' : 'exclude'} every layer; Shift-click to select` : ''}` }, row.written);
    name.addEventListener('click', (e) => {
      const cells = s.columns.map((_, c): [number, number] => [r, c]);
      if (e.shiftKey) return selectCells(cells);
      sendEdit({ kind: 'include', cells, included: rowExcluded });
    });
    const th = el('th', { scope: 'row' }, name);
    if (row.noStatistics) th.append(el('span', { class: 'badge', title: row.noStatistics }, 'no statistics'));
    tr.append(th);
    for (const p of perModel) {
      const td = el('td', { class: 'param' });
      if (row.paramText[p.name]) td.append(el('code', { title: 'written in the YAML as a gradient or filters' }, row.paramText[p.name]));
      else {
        const v = row.params[p.name];
        td.append(numberInput(`${p.name} of ${row.written}`, typeof v === 'number' ? v : null, p, p.default === null ? '' : String(p.default), (x) => sendEdit({ kind: 'setRow', row: r, param: p.name, value: x })));
      }
      tr.append(td);
    }
    s.columns.forEach((col, c) => {
      const cell = s.cells[r][c];
      const excluded = cell.weight === 0;
      const t = scale(r, c);
      const td = el('td', {
        class: `cell${excluded ? ' excl' : ''}${selected.has(`${r},${c}`) ? ' sel' : ''}${cell.overrideWeight !== null || cell.overrideDensity !== null ? ' ovr' : ''}`,
        role: 'gridcell',
        tabindex: r === focusCell[0] && c === focusCell[1] ? '0' : '-1',
        'data-cell': `${r},${c}`,
        'aria-selected': selected.has(`${r},${c}`) ? 'true' : 'false',
        'aria-label': `${row.written}, layer ${col.label}: ${excluded ? 'excluded' : 'included'}, ${paramLabel(s, 'weight')} ${cell.weight ?? 'mixed'}${cell.density !== null ? `, density ${cell.density}` : ''}, saliency ${cell.saliency === null ? 'unknown' : fmt(cell.saliency, 3)}`,
        title: `${row.written} · layer ${col.label}\n${paramLabel(s, 'weight')} ${cell.weight ?? 'mixed'}${cell.overrideWeight !== null ? ' (set here)' : ''}${s.cellParams.includes('density') ? `\ndensity ${cell.density ?? 'mixed'}${cell.overrideDensity !== null ? ' (set here)' : ''}` : ''}\nsaliency ${cell.saliency === null ? (row.noStatistics ?? 'unknown') : fmt(cell.saliency, 4)}`,
      });
      if (t !== null && !excluded) td.style.setProperty('--heat', String(0.12 + 0.78 * t));
      td.append(el('span', {}, excluded ? 'excluded' : cellText(s, r, c)));
      td.addEventListener('mousedown', (e) => {
        if (e.button !== 0) return;
        e.preventDefault();
        focusCell = [r, c];
        drag = { mode: e.shiftKey ? 'select' : 'toggle', include: excluded, from: [r, c], to: [r, c] };
        paintDrag();
      });
      td.addEventListener('mouseenter', () => {
        if (!drag) return;
        drag.to = [r, c];
        paintDrag();
      });
      tr.append(td);
    });
    tbody.append(tr);
  });
  table.append(tbody);
  table.addEventListener('keydown', (e) => onGridKey(e, s));
  const scroller = el('div', { class: 'grid-scroll' }, table);
  let spanFrame = 0;
  scroller.addEventListener('scroll', () => {
    // A grid replaced by a newer render says nothing about where the user is.
    if (!scroller.isConnected) return;
    // Part of a restore (the grid not laid out to its full width yet): not where the user is.
    if (restoring?.g === scroller && Math.abs(scroller.scrollLeft - restoring.left) > 1) return;
    ui.scrollLeft = scroller.scrollLeft;
    if (!spanFrame) spanFrame = requestAnimationFrame(() => ((spanFrame = 0), updateLayerSpan()));
  });
  sec.append(scroller);
  // Under the grid (its text changes while scrolling; above, a changed line wrap would move the cells): which
  // layers are in view when they do not all fit (a deep model has hundreds), and the saliency legend.
  const foot = el('div', { class: 'legend muted' }, el('span', { class: 'span', id: 'layer-span', role: 'status' }));
  if (ui.show === 'saliency') {
    foot.append(el('span', { class: 'ramp', 'aria-hidden': 'true' }), 'saliency per expert and layer, log scale (stronger colour: more of the task lives there)');
  }
  sec.append(foot);
  return sec;
}

/** "layers a–b of n in view" beside the grid, from the column headers' offsets (binary search: n may be large). */
function updateLayerSpan(): void {
  const sc = root().querySelector<HTMLElement>('.grid-scroll');
  const out = root().querySelector<HTMLElement>('#layer-span');
  if (!sc || !out || !snap) return;
  const hdrs = Array.from(sc.querySelectorAll<HTMLElement>('thead th.colh'));
  const corner = sc.querySelector<HTMLElement>('th.corner');
  if (!hdrs.length || sc.scrollWidth <= sc.clientWidth + 1) {
    out.textContent = '';
    return;
  }
  // The names column is sticky: what lies under it is not in view.
  const lo = sc.scrollLeft + (corner ? corner.offsetWidth : 0);
  const hi = sc.scrollLeft + sc.clientWidth;
  /** The first header for which `past(h)` holds (headers are in left-to-right order). */
  const firstWhere = (past: (h: HTMLElement) => boolean) => {
    let a = 0;
    let b = hdrs.length;
    while (a < b) {
      const m = (a + b) >> 1;
      if (past(hdrs[m])) b = m;
      else a = m + 1;
    }
    return a;
  };
  // A column counts as in view when at least a few pixels of it show.
  const first = Math.min(hdrs.length - 1, firstWhere((h) => h.offsetLeft + h.offsetWidth > lo + 8));
  const last = Math.max(first, firstWhere((h) => h.offsetLeft >= hi - 8) - 1);
  const label = (i: number) => snap!.columns[i]?.label ?? String(i);
  const layers = snap.columns.filter((c) => c.layer !== null).length;
  out.textContent = `columns ${label(first)}–${label(last)} in view, of ${layers} layers`;
}

function paintDrag(): void {
  if (!drag) return;
  for (const td of Array.from(root().querySelectorAll<HTMLElement>('td.cell'))) {
    const [r, c] = td.dataset.cell!.split(',').map(Number);
    td.classList.toggle('drag', inRect(r, c, drag.from, drag.to));
  }
}

// ---- a drag held at the grid's edge scrolls it -------------------------------------------------------------------

const EDGE_PX = 36;
const SCROLL_STEP_PX = 28;
let pointer: { x: number; y: number } | null = null;
let edgeTimer: number | null = null;

function stopEdgeScroll(): void {
  if (edgeTimer !== null) window.clearInterval(edgeTimer);
  edgeTimer = null;
}

/** -1 / 1 while the pointer is within EDGE_PX of the scrolled area's left (past the sticky names) or right edge. */
function edgeDirection(sc: HTMLElement, x: number): number {
  const r = sc.getBoundingClientRect();
  const namesRight = sc.querySelector('th.corner')?.getBoundingClientRect().right ?? r.left;
  if (x > r.right - EDGE_PX) return sc.scrollLeft + sc.clientWidth < sc.scrollWidth ? 1 : 0;
  if (x < namesRight + EDGE_PX) return sc.scrollLeft > 0 ? -1 : 0;
  return 0;
}

/** The cell under the pointer, clamped into the grid: where a drag that left the visible cells has got to. */
function cellUnderPointer(sc: HTMLElement): [number, number] | null {
  if (!pointer) return null;
  const r = sc.getBoundingClientRect();
  const body = sc.querySelector('tbody')?.getBoundingClientRect();
  const namesRight = sc.querySelector('th.corner')?.getBoundingClientRect().right ?? r.left;
  const x = Math.min(Math.max(pointer.x, namesRight + 2), r.right - 3);
  const y = body ? Math.min(Math.max(pointer.y, body.top + 2), body.bottom - 3) : pointer.y;
  const td = document.elementFromPoint(x, y)?.closest<HTMLElement>('td.cell');
  return td?.dataset.cell ? (td.dataset.cell.split(',').map(Number) as [number, number]) : null;
}

function onDragMove(e: MouseEvent): void {
  pointer = { x: e.clientX, y: e.clientY };
  const sc = root().querySelector<HTMLElement>('.grid-scroll');
  if (!drag || !sc) return stopEdgeScroll();
  if (edgeDirection(sc, e.clientX) === 0) return stopEdgeScroll();
  if (edgeTimer !== null) return;
  edgeTimer = window.setInterval(() => {
    const g = root().querySelector<HTMLElement>('.grid-scroll');
    const dir = g && drag && pointer ? edgeDirection(g, pointer.x) : 0;
    if (!g || dir === 0) return stopEdgeScroll();
    g.scrollLeft += dir * SCROLL_STEP_PX;
    ui.scrollLeft = g.scrollLeft;
    // The content moved under a still pointer: no mouseenter comes, so find the cell it is over now.
    const at = cellUnderPointer(g);
    if (at && drag && (at[0] !== drag.to[0] || at[1] !== drag.to[1])) {
      drag.to = at;
      paintDrag();
    }
  }, 30);
}

function endDrag(): void {
  stopEdgeScroll();
  if (!drag || !snap) return;
  const d = drag;
  drag = null;
  const cells: [number, number][] = [];
  for (let r = Math.min(d.from[0], d.to[0]); r <= Math.max(d.from[0], d.to[0]); r++) for (let c = Math.min(d.from[1], d.to[1]); c <= Math.max(d.from[1], d.to[1]); c++) cells.push([r, c]);
  if (d.mode === 'select') selectCells(cells);
  else sendEdit({ kind: 'include', cells, included: d.include });
  for (const td of Array.from(root().querySelectorAll('td.drag'))) td.classList.remove('drag');
}

function selectCells(cells: [number, number][]): void {
  const all = cells.every(([r, c]) => selected.has(`${r},${c}`));
  for (const [r, c] of cells) {
    if (all) selected.delete(`${r},${c}`);
    else selected.add(`${r},${c}`);
  }
  render();
}

function onGridKey(e: KeyboardEvent, s: MergePanelSnapshot): void {
  const t = e.target as HTMLElement;
  if (!t.dataset.cell) return;
  let [r, c] = t.dataset.cell.split(',').map(Number);
  const move: Record<string, [number, number]> = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
  if (move[e.key]) {
    e.preventDefault();
    r = Math.max(0, Math.min(s.rows.length - 1, r + move[e.key][0]));
    c = Math.max(0, Math.min(s.columns.length - 1, c + move[e.key][1]));
    focusCell = [r, c];
    for (const td of Array.from(root().querySelectorAll<HTMLElement>('td.cell'))) td.tabIndex = -1;
    const next = root().querySelector<HTMLElement>(`[data-cell="${r},${c}"]`);
    if (next) {
      next.tabIndex = 0;
      next.focus();
    }
  } else if (e.key === ' ' || e.key === 'Enter') {
    e.preventDefault();
    focusCell = [r, c];
    if (e.shiftKey) selectCells([[r, c]]);
    else sendEdit({ kind: 'include', cells: [[r, c]], included: s.cells[r][c].weight === 0 });
  }
}

function selectionBar(s: MergePanelSnapshot): HTMLElement {
  const cells = [...selected].map((k) => k.split(',').map(Number) as [number, number]).filter(([r, c]) => r < s.rows.length && c < s.columns.length);
  const bar = el('section', { class: 'selbar', 'aria-label': 'Selected cells' }, el('strong', {}, `${cells.length} selected`));
  for (const p of s.cellParams) {
    const name = paramLabel(s, p);
    const f = s.method?.params.find((x) => x.name === name) ?? null;
    bar.append(el('label', { class: 'field' }, el('span', {}, name), numberInput(`${name} of the selected cells`, null, f, 'value', (v) => v !== null && sendEdit({ kind: 'setCells', cells, param: p, value: v }))));
  }
  const clear = el('button', { class: 'secondary' }, 'Clear overrides');
  clear.addEventListener('click', () => {
    for (const p of s.cellParams) sendEdit({ kind: 'setCells', cells, param: p, value: null });
  });
  const none = el('button', { class: 'secondary' }, 'Deselect');
  none.addEventListener('click', () => {
    selected.clear();
    render();
  });
  bar.append(clear, none);
  return bar;
}

function previewSection(s: MergePanelSnapshot): HTMLElement {
  const sec = el('section', { class: 'preview', 'aria-label': 'Preview' });
  const btn = el('button', { id: 'preview-btn' }, s.preview.status === 'running' ? 'Previewing…' : 'Preview');
  btn.disabled = s.preview.status === 'running' || s.stale || !s.rows.length;
  btn.addEventListener('click', () => void bridge.request('preview', {}).catch((e: Error) => bridge.log('warn', e.message)));
  const live = el('input', { type: 'checkbox', id: 'live', 'aria-label': 'Live preview while editing' });
  live.checked = s.livePreview;
  live.addEventListener('change', () => bridge.send('livePreview', { on: live.checked }));
  const p = s.preview;
  const info = p.status === 'done' && p.sample ? `${p.sample.tensors} tensors × ${p.sample.rowsPerTensor} rows in ${p.seconds?.toFixed(2)} s` : (p.message ?? '');
  sec.append(el('div', { class: 'bar' }, el('h2', {}, 'Preview'), btn, el('label', { class: 'check' }, live, ' live'), el('span', { class: `muted ${p.status === 'error' ? 'error' : ''}`, role: 'status' }, info)));
  if (p.layers.length) {
    const t = el('table', { class: 'ptable', 'aria-label': 'Kept fraction and sign conflicts per layer' });
    const hr = el('tr', {}, el('th', { scope: 'col' }, 'layer'));
    for (const r of s.rows) hr.append(el('th', { scope: 'col', title: r.written }, `kept · ${shortName(r.written)}`));
    hr.append(el('th', { scope: 'col' }, 'sign conflicts'));
    t.append(el('thead', {}, hr));
    const tb = el('tbody');
    for (const l of p.layers) {
      const tr = el('tr', {}, el('th', { scope: 'row' }, l.label));
      l.kept.forEach((k, i) => tr.append(el('td', {}, percentBar(k, `kept by ${s.rows[i]?.written ?? i}`))));
      tr.append(el('td', {}, percentBar(l.signConflict, 'sign conflicts')));
      tb.append(tr);
    }
    t.append(tb);
    sec.append(t);
  }
  return sec;
}

function shortName(s: string): string {
  const b = s.replace(/\/+$/, '').split('/').pop() ?? s;
  return b.length > 24 ? `${b.slice(0, 11)}…${b.slice(-11)}` : b;
}

function runSection(s: MergePanelSnapshot): HTMLElement {
  const sec = el('section', { class: 'run', 'aria-label': 'Run the merge' });
  const running = s.job.status === 'running' || s.job.status === 'queued';
  const run = el('button', { id: 'run-btn' }, running ? 'Merging…' : 'Run Merge');
  run.disabled = running || s.stale || !s.method;
  run.addEventListener('click', () => void bridge.request('runMerge', { force: forceOverwrite }).catch((e: Error) => bridge.log('warn', e.message)));
  const force = el('input', { type: 'checkbox', 'aria-label': 'Overwrite an existing merged model' });
  force.checked = forceOverwrite;
  force.addEventListener('change', () => (forceOverwrite = force.checked));
  const row = el('div', { class: 'bar' }, el('h2', {}, 'Merge'), run, el('label', { class: 'check' }, force, ' overwrite existing output'));
  if (running) {
    const pr = el('progress', { max: '1', 'aria-label': 'Merge progress' });
    if (s.job.fraction !== null) pr.value = s.job.fraction;
    const cancel = el('button', { class: 'secondary', id: 'cancel-btn' }, 'Cancel');
    cancel.addEventListener('click', () => bridge.send('cancel', {}));
    row.append(pr, cancel);
  }
  if (s.job.message) row.append(el('span', { class: `muted ${s.job.status === 'failed' ? 'error' : ''}`, role: 'status' }, s.job.message));
  sec.append(row);
  const r = s.result;
  if (r) {
    sec.append(el('p', { class: 'muted' }, `${r.tensors} tensors → ${r.output} (${fmtBytes(r.bytesWritten)}, ${r.seconds.toFixed(2)} s) · mean kept ${r.kept.map((k) => fmtPercent(k)).join(' / ')} · sign conflicts ${fmtPercent(r.signConflict)}`));
    const t = el('table', { class: 'rtable', 'aria-label': 'Merged model, experts and base' });
    const hr = el('tr', {}, el('th', { scope: 'col' }, 'model'), el('th', { scope: 'col' }, 'role'));
    for (const k of r.metricKeys) hr.append(el('th', { scope: 'col' }, `val ${k}`));
    hr.append(el('th', { scope: 'col' }, ''));
    t.append(el('thead', {}, hr));
    const tb = el('tbody');
    for (const x of r.rows) {
      const tr = el('tr', { class: x.role }, el('th', { scope: 'row' }, x.label), el('td', {}, x.role));
      for (const k of r.metricKeys) {
        const v = x.metrics?.[k];
        tr.append(el('td', { class: 'num' }, v === undefined ? '–' : /acc|hr|recall|ndcg/i.test(k) && v >= 0 && v <= 1 ? fmtPercent(v) : fmt(v, 4)));
      }
      tr.append(el('td', { class: 'muted' }, x.note ?? ''));
      tb.append(tr);
    }
    t.append(tb);
    const ev = el('button', { class: 'secondary', id: 'evaluate-btn', title: r.evaluateNote ?? 'Evaluate the merged model on every task' }, 'Evaluate');
    ev.addEventListener('click', () =>
      void bridge.request('evaluate', {}).then((res) => {
        const note = root().querySelector('.eval-note');
        if (note) note.textContent = res.message;
      }),
    );
    sec.append(t, el('div', { class: 'bar' }, ev, el('span', { class: 'muted eval-note' }, r.evaluateNote ?? '')));
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
      return JSON.parse(document.getElementById('app')?.dataset.initial ?? '{}') as { configFile?: string };
    } catch {
      return {};
    }
  })();
  bridge = new Bridge(mergeProtocol, (n) => {
    if (n.type === 'state') {
      snap = n.params;
      for (const k of [...selected]) {
        const [r, c] = k.split(',').map(Number);
        if (r >= snap.rows.length || c >= snap.columns.length) selected.delete(k);
      }
      render();
      document.body.dataset.ready = 'true';
      const b = boot();
      if (b && !document.body.dataset.firstPaintMs) document.body.dataset.firstPaintMs = String(Math.round(performance.now() - b.t0));
    }
  });
  bridge.reportErrors();
  const saved = bridge.getState((x) => x) as { configFile?: unknown; ui?: unknown } | undefined;
  ui = coerceMergeUi(saved?.ui);
  configFile = typeof saved?.configFile === 'string' ? saved.configFile : (initial.configFile ?? '');
  bridge.setState({ configFile, ui });
  window.addEventListener('mouseup', () => endDrag());
  window.addEventListener('mousemove', (e) => onDragMove(e));
  onThemeChange(() => render());
  render();
  bridge.start();
}

start();
