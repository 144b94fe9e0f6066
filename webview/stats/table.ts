// The layer table: a virtualized ARIA grid. Only the rows in view exist in the DOM (a pool of row elements reused
// on scroll), so 1,000+ layers scroll and update smoothly. Sortable headers (buttons, aria-sort); keyboard:
// ↑/↓, PageUp/PageDown, Home/End move the active row, Enter or Space selects it.
// Each tensor's role (trained, frozen, LoRA, adapter) is a badge column and a filter (setFilter); a frozen tensor's
// gradient, update and momentum cells say "frozen" (they are 0 by design). The extras' columns (mao's captured
// energy, a fine-tune's saliency mass) show only when the frames carry them (setColumns).
import { COLUMN_KEYS, type ColumnKey, type RoleFilter } from '../../src/protocol/panels/stats';
import { EXTRA_KEYS, type ExtraKey, type ScalarKey, type TensorRole, type TensorStats } from '../../src/protocol/stats';
import { fmt, fmtPercent, middleEllipsis } from '../shared/charts';

export const ROW_H = 22;

const LABELS: Record<ColumnKey, string> = {
  name: 'Layer',
  role: 'Role',
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
  capturedEnergy: 'energy kept',
  saliencyMass: 'saliency',
};

/** What each role means, for the badge's label and the filter. */
export const ROLE_TEXT: Record<TensorRole, string> = {
  trained: 'trained: updated by the optimizer',
  frozen: 'frozen: not trained at this step (train.freeze, a LoRA base weight, or not yet unfrozen); its gradient norm, update and momentum are 0 by design',
  lora: 'LoRA factor (.lora_a / .lora_b): the low-rank update that trains in place of its frozen weight',
  adapter: 'adapter: a small bottleneck module that trains while the model around it is frozen',
};

/** The scalars that are 0 by design for a frozen tensor. */
export const ZERO_WHEN_FROZEN: readonly ScalarKey[] = ['gradNorm', 'updateRatio', 'momentumNorm'];

const isExtra = (k: ColumnKey): k is ExtraKey => (EXTRA_KEYS as readonly string[]).includes(k);
const isText = (k: ColumnKey) => k === 'name' || k === 'shape' || k === 'role';
const cellClass = (k: ColumnKey) => (k === 'name' ? 'lt-name' : k === 'shape' ? 'lt-shape' : k === 'role' ? 'lt-role' : 'lt-num');

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
    role: 'How the tensor trains at this step: trained, frozen (0 gradient and update by design), LoRA factor or adapter',
    capturedEnergy: "mao: the share of the momentum's energy ‖M‖²_F its rank-r factors keep after the step (empty: a tensor with a dense momentum)",
    saliencyMass: 'Task saliency mass Σ τ²·F̂ of the fine-tune: τ = weights − base weights, F̂ = sqrt(R·Cᵀ/ΣR) from the second moment; how much the fine-tune changed this tensor where the loss is sensitive',
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

/** A numeric column's value (NaN where the tensor has none, e.g. an extra the frame lacks). */
export function columnValue(t: TensorStats, key: ScalarKey | ExtraKey): number {
  if (isExtra(key)) return t[key] ?? NaN;
  return shownScalar(t, key);
}

/** The role shown (frames of older writers have none: every tensor trained, as far as the panel knows). */
export function roleOf(t: TensorStats): TensorRole | null {
  return t.role ?? null;
}

/** Whether `key`'s cell of `t` shows "frozen" instead of its (zero) value. */
export function frozenCell(t: TensorStats, key: ColumnKey): boolean {
  return t.role === 'frozen' && (ZERO_WHEN_FROZEN as readonly string[]).includes(key);
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
  private filter: RoleFilter = 'all';
  /** Columns shown (the extras only when the frames carry them). */
  private visible = new Set<ColumnKey>(COLUMN_KEYS.filter((k) => !isExtra(k)));
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
      cell.className = `lt-cell lt-h ${cellClass(key)}`;
      cell.setAttribute('role', 'columnheader');
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'lt-sort';
      b.textContent = LABELS[key];
      b.addEventListener('click', () => {
        const dir = this.sortKey === key ? (this.sortDir === 'asc' ? 'desc' : 'asc') : isText(key) ? 'asc' : 'desc';
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
    this.applyColumns();
    this.updateSortIndicators();
  }

  /** Shows the extras' columns that the frames carry, and the role column when they record roles. */
  setColumns(extras: readonly ExtraKey[], roles = true): void {
    const next = new Set<ColumnKey>(COLUMN_KEYS.filter((k) => (isExtra(k) ? extras.includes(k) : k !== 'role' || roles)));
    if (next.size === this.visible.size && [...next].every((k) => this.visible.has(k))) return;
    this.visible = next;
    this.applyColumns();
    this.render();
  }

  private applyColumns(): void {
    for (const [key, cell] of this.headerCells) cell.hidden = !this.visible.has(key);
    for (const { cells } of this.pool) COLUMN_KEYS.forEach((k, i) => (cells[i].hidden = !this.visible.has(k)));
    // The row grid's number columns (style.css --lt-nums).
    this.el.style.setProperty('--lt-nums', String([...this.visible].filter((k) => !isText(k)).length));
    this.el.classList.toggle('lt-no-role', !this.visible.has('role'));
    this.scroller.setAttribute('aria-colcount', String(this.visible.size));
  }

  /** Shows only the tensors of one role ('all': every tensor). */
  setFilter(filter: RoleFilter): void {
    if (filter === this.filter) return;
    this.filter = filter;
    this.setData(this.tensors);
  }

  /** Rows shown under the current filter. */
  get shownCount(): number {
    return this.order.length;
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
    // Not the `font` shorthand: Chromium serializes it as '' when font-variant-numeric is set (.lt-cell), and the
    // canvas would then measure in its default 10 px font and never shorten a name.
    const cs = getComputedStyle(cell);
    const font = `${cs.fontStyle} ${cs.fontWeight} ${cs.fontSize} ${cs.fontFamily}`;
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
    this.scroller.setAttribute('aria-rowcount', String(this.order.length + 1));
    this.spacer.style.height = `${this.order.length * ROW_H}px`;
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
    const f = this.filter;
    const order = t.map((_, i) => i).filter((i) => f === 'all' || (t[i].role ?? 'trained') === f);
    if (key === 'name') order.sort((a, b) => sign * t[a].name.localeCompare(t[b].name, undefined, { numeric: true }));
    else if (key === 'shape') order.sort((a, b) => sign * (t[a].rows * t[a].cols - t[b].rows * t[b].cols) || a - b);
    else if (key === 'role') order.sort((a, b) => sign * (t[a].role ?? '').localeCompare(t[b].role ?? '') || a - b);
    else {
      const k = key as ScalarKey | ExtraKey;
      order.sort((a, b) => {
        const x = columnValue(t[a], k);
        const y = columnValue(t[b], k);
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
    this.live.textContent = `Row ${this.active + 1} of ${this.order.length}: ${t.name}${t.role ? `, ${t.role}` : ''}, update ratio ${fmt(t.scalars.updateRatio)}, gradient norm after clipping ${fmt(t.scalars.gradNorm)}, mean v ${fmt(t.scalars.vMean)}`;
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
        c.className = `lt-cell ${cellClass(key)}`;
        c.setAttribute('role', 'gridcell');
        c.hidden = !this.visible.has(key);
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
      row.classList.toggle('lt-frozen', t.role === 'frozen');
      const shownName = nameWidth > 0 ? this.fitName(cells[0], t.name, nameWidth) : t.name;
      for (let k = 0; k < COLUMN_KEYS.length; k++) {
        const key = COLUMN_KEYS[k];
        const c = cells[k];
        if (!this.visible.has(key)) continue;
        let text: string;
        // The full value on hover (the cell shows 3 significant digits).
        let title: string;
        if (key === 'name') [text, title] = [shownName, t.name];
        else if (key === 'shape') [text, title] = [t.shape.length ? t.shape.join('×') : 'scalar', ''];
        else if (key === 'role') [text, title] = [t.role ?? '', t.role ? ROLE_TEXT[t.role] : 'not recorded (statistics of an older version)'];
        else if (frozenCell(t, key)) [text, title] = ['frozen', `0 by design: ${ROLE_TEXT.frozen}`];
        else if (key === 'capturedEnergy') [text, title] = [t.capturedEnergy === undefined ? '' : fmtPercent(t.capturedEnergy), t.capturedEnergy === undefined ? 'dense momentum (no low-rank factors)' : String(t.capturedEnergy)];
        else if (key === 'saliencyMass') [text, title] = [t.saliencyMass === undefined ? '' : fmt(t.saliencyMass, 3), t.saliencyMass === undefined ? 'no base tensor (LoRA factors, adapters, a partial init)' : String(t.saliencyMass)];
        else {
          const v = shownScalar(t, key as ScalarKey);
          [text, title] = [fmt(v, 3), String(v)];
        }
        if (key === 'role') {
          // A badge: the role's theme colour (style.css .role-*), its meaning as the label.
          if (c.dataset.role !== (t.role ?? '')) {
            c.dataset.role = t.role ?? '';
            c.textContent = '';
            if (t.role) {
              const b = document.createElement('span');
              b.className = `role-badge role-${t.role}`;
              b.textContent = t.role === 'lora' ? 'LoRA' : t.role;
              c.append(b);
            }
          }
          c.setAttribute('aria-label', t.role ? `role: ${ROLE_TEXT[t.role]}` : 'role not recorded');
        } else if (c.textContent !== text) c.textContent = text;
        c.classList.toggle('lt-frozen-cell', frozenCell(t, key));
        if (c.title !== title) c.title = title;
      }
      if (shownName !== t.name) cells[0].setAttribute('aria-label', t.name);
      else cells[0].removeAttribute('aria-label');
    }
    if (activeId) this.scroller.setAttribute('aria-activedescendant', activeId);
    else this.scroller.removeAttribute('aria-activedescendant');
  }
}
