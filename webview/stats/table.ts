// The layer table: a virtualized ARIA grid. Only the rows in view exist in the DOM (a pool of row elements reused
// on scroll), so 1,000+ layers scroll and update smoothly. Sortable headers (buttons, aria-sort); keyboard:
// ↑/↓, PageUp/PageDown, Home/End move the active row, Enter or Space selects it.
import { COLUMN_KEYS, type ColumnKey } from '../../src/protocol/panels/stats';
import type { ScalarKey, TensorStats } from '../../src/protocol/stats';
import { fmt, middleEllipsis } from '../shared/charts';

export const ROW_H = 22;

const LABELS: Record<ColumnKey, string> = {
  name: 'Layer',
  shape: 'Shape',
  gradNorm: '‖g‖ after clip',
  weightNorm: '‖w‖',
  updateRatio: '‖Δw‖/‖w‖',
  momentumNorm: '‖m‖',
  vMean: 'mean v',
  vMax: 'max v',
  vP50: 'p50 of v',
  vP90: 'p90 of v',
  vP99: 'p99 of v',
};

/** What "v" is, for tooltips: Adam's second moment, or Adafactor's factored estimate of it. */
export function describeV(optimizer: string | null): string {
  if (optimizer === 'adafactor') return "v: Adafactor's factored second-moment estimate R·Cᵀ/mean(R) (row and column running means of g²), a curvature proxy";
  if (optimizer === 'sgd') return 'v: SGD keeps no second moment (v is 0)';
  return "v: Adam's second moment, the running mean of g² per weight (a curvature proxy)";
}

/** Column tooltips; the v columns say what v is for the run's optimizer. */
export function columnTitles(optimizer: string | null): Record<ColumnKey, string> {
  const v = describeV(optimizer);
  return {
    name: 'Parameter tensor (full name on hover)',
    shape: 'Tensor shape',
    gradNorm:
      "L2 norm of this tensor's gradient as the step applied it: AFTER the global clipping scale (train.gradClip). The run's global gradient norm in metrics.jsonl (Overview) is BEFORE clipping.",
    weightNorm: 'L2 norm of the weights after the step',
    updateRatio: '‖Δw‖ / ‖w‖: size of the step relative to the weights',
    momentumNorm: "L2 norm of the optimizer's first moment (momentum)",
    vMean: `Mean of v. ${v}`,
    vMax: `Largest v. ${v}`,
    vP50: `50th percentile (median) of v. ${v}`,
    vP90: `90th percentile of v. ${v}`,
    vP99: `99th percentile of v. ${v}`,
  };
}

/**
 * A scalar as the panel shows it. Quantiles of v are shown at most at max v: they were computed from log bins
 * (bin upper edges), so the p99 could read above the largest value; a quantile above the maximum is never true.
 */
export function shownScalar(t: TensorStats, key: ScalarKey): number {
  const v = t.scalars[key];
  if ((key === 'vP50' || key === 'vP90' || key === 'vP99') && Number.isFinite(v) && Number.isFinite(t.scalars.vMax)) return Math.min(v, t.scalars.vMax);
  return v;
}

export interface TableCallbacks {
  onSelect(name: string): void;
  onSort(key: ColumnKey, dir: 'asc' | 'desc'): void;
  onScroll(top: number): void;
}

export class LayerTable {
  readonly el: HTMLElement;
  private readonly scroller: HTMLElement;
  private readonly spacer: HTMLElement;
  private readonly rowsLayer: HTMLElement;
  private readonly header: HTMLElement;
  private readonly headerCells = new Map<ColumnKey, HTMLElement>();
  private readonly pool: { row: HTMLElement; cells: HTMLElement[] }[] = [];
  private readonly live: HTMLElement;
  private tensors: TensorStats[] = [];
  /** Display order: indices into `tensors`. */
  private order: number[] = [];
  private active = 0;
  private selected: string | null = null;
  /** Text widths in the name cells' font (names are shortened in the middle to fit their column). */
  private widths = new Map<string, number>();
  private measureFont = '';
  private measurer: CanvasRenderingContext2D | null = null;
  sortKey: ColumnKey = 'updateRatio';
  sortDir: 'asc' | 'desc' = 'desc';

  constructor(private readonly cb: TableCallbacks) {
    this.el = document.createElement('div');
    this.el.className = 'layer-table';
    this.scroller = document.createElement('div');
    this.scroller.className = 'lt-scroller';
    this.scroller.tabIndex = 0;
    this.scroller.setAttribute('role', 'grid');
    this.scroller.setAttribute('aria-label', 'Layers: per-tensor training statistics. Arrow keys move, Enter selects.');
    this.scroller.setAttribute('aria-colcount', String(COLUMN_KEYS.length));
    this.header = document.createElement('div');
    this.header.className = 'lt-row lt-header';
    this.header.setAttribute('role', 'row');
    this.header.setAttribute('aria-rowindex', '1');
    for (const key of COLUMN_KEYS) {
      const cell = document.createElement('div');
      cell.className = `lt-cell lt-h ${key === 'name' ? 'lt-name' : key === 'shape' ? 'lt-shape' : 'lt-num'}`;
      cell.setAttribute('role', 'columnheader');
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'lt-sort';
      b.textContent = LABELS[key];
      b.addEventListener('click', () => {
        const dir = this.sortKey === key ? (this.sortDir === 'asc' ? 'desc' : 'asc') : key === 'name' || key === 'shape' ? 'asc' : 'desc';
        this.setSort(key, dir);
        this.cb.onSort(key, dir);
      });
      cell.append(b);
      this.headerCells.set(key, cell);
      this.header.append(cell);
    }
    this.spacer = document.createElement('div');
    this.spacer.className = 'lt-spacer';
    this.rowsLayer = document.createElement('div');
    this.rowsLayer.className = 'lt-rows';
    this.rowsLayer.setAttribute('role', 'rowgroup');
    this.scroller.append(this.header, this.spacer);
    this.spacer.append(this.rowsLayer);
    this.live = document.createElement('div');
    this.live.className = 'sr-only';
    this.live.setAttribute('aria-live', 'polite');
    this.el.append(this.scroller, this.live);

    this.scroller.addEventListener('scroll', () => {
      this.render();
      this.cb.onScroll(this.scroller.scrollTop);
    });
    this.scroller.addEventListener('keydown', (e) => this.onKey(e));
    this.rowsLayer.addEventListener('click', (e) => {
      const row = (e.target as HTMLElement).closest<HTMLElement>('.lt-row');
      const i = row ? Number(row.dataset.index) : NaN;
      if (Number.isInteger(i)) {
        this.active = i;
        this.choose();
      }
    });
    new ResizeObserver(() => this.render()).observe(this.scroller);
    this.setTitles(columnTitles(null));
    this.updateSortIndicators();
  }

  /** Header tooltips (they depend on the run's optimizer). */
  setTitles(titles: Record<ColumnKey, string>): void {
    for (const [key, cell] of this.headerCells) {
      const b = cell.firstElementChild as HTMLElement;
      const t = `${titles[key]} (click to sort)`;
      if (b.title !== t) {
        b.title = t;
        b.setAttribute('aria-label', `${LABELS[key]}: ${titles[key]}, sort`);
      }
    }
  }

  /** `name` shortened in the middle to `width` px in `cell`'s font. */
  private fitName(cell: HTMLElement, name: string, width: number): string {
    const font = getComputedStyle(cell).font;
    if (font !== this.measureFont) {
      this.measureFont = font;
      this.widths.clear();
      this.measurer ??= document.createElement('canvas').getContext('2d');
      if (this.measurer) this.measurer.font = font;
    }
    const g = this.measurer;
    if (!g) return name;
    const measure = (s: string) => {
      let m = this.widths.get(s);
      if (m === undefined) {
        m = g.measureText(s).width;
        if (this.widths.size > 20_000) this.widths.clear();
        this.widths.set(s, m);
      }
      return m;
    };
    return middleEllipsis(name, width, measure);
  }

  setData(tensors: TensorStats[]): void {
    this.tensors = tensors;
    this.sort();
    this.scroller.setAttribute('aria-rowcount', String(tensors.length + 1));
    this.spacer.style.height = `${tensors.length * ROW_H}px`;
    this.render();
  }

  setSort(key: ColumnKey, dir: 'asc' | 'desc'): void {
    const keepName = this.order.length ? this.tensors[this.order[this.active]]?.name : undefined;
    this.sortKey = key;
    this.sortDir = dir;
    this.sort();
    if (keepName !== undefined) this.active = Math.max(0, this.order.findIndex((i) => this.tensors[i].name === keepName));
    this.updateSortIndicators();
    this.render();
  }

  setSelected(name: string | null, reveal = false): void {
    this.selected = name;
    if (name !== null) {
      const pos = this.order.findIndex((i) => this.tensors[i].name === name);
      if (pos >= 0) {
        this.active = pos;
        if (reveal) this.reveal(pos);
      }
    }
    this.render();
  }

  get scrollTop(): number {
    return this.scroller.scrollTop;
  }

  set scrollTop(v: number) {
    this.scroller.scrollTop = v;
    this.render();
  }

  focus(): void {
    this.scroller.focus();
  }

  private sort(): void {
    const key = this.sortKey;
    const sign = this.sortDir === 'asc' ? 1 : -1;
    const t = this.tensors;
    const order = t.map((_, i) => i);
    if (key === 'name') order.sort((a, b) => sign * t[a].name.localeCompare(t[b].name, undefined, { numeric: true }));
    else if (key === 'shape') order.sort((a, b) => sign * (t[a].rows * t[a].cols - t[b].rows * t[b].cols) || a - b);
    else {
      const k = key as ScalarKey;
      order.sort((a, b) => {
        const x = shownScalar(t[a], k);
        const y = shownScalar(t[b], k);
        const xn = !Number.isFinite(x);
        const yn = !Number.isFinite(y);
        if (xn || yn) return xn === yn ? a - b : xn ? 1 : -1; // NaN/∞ last, whatever the direction
        return sign * (x - y) || a - b;
      });
    }
    this.order = order;
    if (this.active >= order.length) this.active = Math.max(0, order.length - 1);
  }

  private updateSortIndicators(): void {
    for (const [key, cell] of this.headerCells) {
      const on = key === this.sortKey;
      cell.setAttribute('aria-sort', on ? (this.sortDir === 'asc' ? 'ascending' : 'descending') : 'none');
      cell.classList.toggle('lt-sorted', on);
      const b = cell.firstElementChild as HTMLElement;
      b.dataset.dir = on ? (this.sortDir === 'asc' ? '▲' : '▼') : '';
    }
  }

  private reveal(pos: number): void {
    const headerH = this.header.offsetHeight || ROW_H;
    const viewH = this.scroller.clientHeight - headerH;
    const top = pos * ROW_H;
    if (top < this.scroller.scrollTop) this.scroller.scrollTop = top;
    else if (top + ROW_H > this.scroller.scrollTop + viewH) this.scroller.scrollTop = top + ROW_H - viewH;
  }

  private onKey(e: KeyboardEvent): void {
    const n = this.order.length;
    if (!n) return;
    const page = Math.max(1, Math.floor((this.scroller.clientHeight - ROW_H) / ROW_H) - 1);
    let next = this.active;
    switch (e.key) {
      case 'ArrowDown':
        next = Math.min(n - 1, this.active + 1);
        break;
      case 'ArrowUp':
        next = Math.max(0, this.active - 1);
        break;
      case 'PageDown':
        next = Math.min(n - 1, this.active + page);
        break;
      case 'PageUp':
        next = Math.max(0, this.active - page);
        break;
      case 'Home':
        next = 0;
        break;
      case 'End':
        next = n - 1;
        break;
      case 'Enter':
      case ' ':
        e.preventDefault();
        this.choose();
        return;
      default:
        return;
    }
    e.preventDefault();
    this.active = next;
    this.reveal(next);
    this.render();
    this.announce();
  }

  private choose(): void {
    const t = this.tensors[this.order[this.active]];
    if (!t) return;
    this.selected = t.name;
    this.render();
    this.cb.onSelect(t.name);
  }

  private announce(): void {
    const t = this.tensors[this.order[this.active]];
    if (!t) return;
    this.live.textContent = `Row ${this.active + 1} of ${this.order.length}: ${t.name}, update ratio ${fmt(t.scalars.updateRatio)}, gradient norm after clipping ${fmt(t.scalars.gradNorm)}, mean v ${fmt(t.scalars.vMean)}`;
  }

  /** Puts the rows in view into the pool's elements. */
  render(): void {
    const n = this.order.length;
    const headerH = this.header.offsetHeight || ROW_H;
    const viewH = Math.max(ROW_H, this.scroller.clientHeight - headerH);
    const first = Math.max(0, Math.floor(this.scroller.scrollTop / ROW_H) - 2);
    const count = Math.min(n - first, Math.ceil(viewH / ROW_H) + 5);
    while (this.pool.length < count) {
      const row = document.createElement('div');
      row.className = 'lt-row';
      row.setAttribute('role', 'row');
      row.id = `lt-row-${this.pool.length}`;
      const cells = COLUMN_KEYS.map((key) => {
        const c = document.createElement('div');
        c.className = `lt-cell ${key === 'name' ? 'lt-name' : key === 'shape' ? 'lt-shape' : 'lt-num'}`;
        c.setAttribute('role', 'gridcell');
        row.append(c);
        return c;
      });
      this.pool.push({ row, cells });
      this.rowsLayer.append(row);
    }
    this.rowsLayer.style.transform = `translateY(${first * ROW_H}px)`;
    let activeId = '';
    // Room for a name: the column's width (the header cell's: it is always laid out) less a body cell's padding
    // (5 px each side), 1 px spare against sub-pixel rounding.
    const nameWidth = (this.headerCells.get('name')?.clientWidth ?? 0) - 11;
    for (let j = 0; j < this.pool.length; j++) {
      const { row, cells } = this.pool[j];
      if (j >= count) {
        row.hidden = true;
        continue;
      }
      row.hidden = false;
      const pos = first + j;
      const t = this.tensors[this.order[pos]];
      row.dataset.index = String(pos);
      row.setAttribute('aria-rowindex', String(pos + 2));
      const sel = t.name === this.selected;
      row.setAttribute('aria-selected', String(sel));
      row.classList.toggle('lt-selected', sel);
      row.classList.toggle('lt-active', pos === this.active);
      if (pos === this.active) activeId = row.id;
      const values = [nameWidth > 0 ? this.fitName(cells[0], t.name, nameWidth) : t.name, t.shape.length ? t.shape.join('×') : 'scalar'];
      for (let k = 0; k < COLUMN_KEYS.length; k++) {
        const key = COLUMN_KEYS[k];
        const text = k < 2 ? values[k] : fmt(shownScalar(t, key as ScalarKey), 3);
        if (cells[k].textContent !== text) cells[k].textContent = text;
      }
      if (cells[0].title !== t.name) cells[0].title = t.name;
      if (values[0] !== t.name) cells[0].setAttribute('aria-label', t.name);
      else cells[0].removeAttribute('aria-label');
      // The full value on hover (the cell shows 3 significant digits).
      for (let k = 2; k < COLUMN_KEYS.length; k++) {
        const full = String(shownScalar(t, COLUMN_KEYS[k] as ScalarKey));
        if (cells[k].title !== full) cells[k].title = full;
      }
    }
    if (activeId) this.scroller.setAttribute('aria-activedescendant', activeId);
    else this.scroller.removeAttribute('aria-activedescendant');
  }
}
