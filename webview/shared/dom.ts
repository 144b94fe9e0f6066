// Small DOM helpers the panels' webviews share (the merge panel's grid and forms; the prune panel may use them):
// an element builder, a validated number input for registry parameters, an inline percentage bar and byte sizes.
// Plain DOM, theme colours come from the panel's CSS (--vscode-* variables). No data, no messaging here.
import { fmtPercent } from './charts';

/** `el('td', { class: 'x', 'aria-label': '…' }, child, 'text')`: attributes as strings, children appended. */
export function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...kids: (Node | string | null)[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else e.setAttribute(k, v);
  }
  for (const k of kids) if (k !== null) e.append(k);
  return e;
}

/** The bounds of a registry number parameter (src/files/registry/entry.ts NumberParam), as a form needs them. */
export interface NumberBounds {
  type: string;
  minimum: number | null;
  maximum: number | null;
  exclusiveMinimum: number | null;
  exclusiveMaximum: number | null;
}

/**
 * A number input for a parameter: min/max from its bounds, step 1 for integers, `onSet(null)` when emptied. A
 * value outside the bounds is marked (class `invalid`, a title saying why) and not passed on.
 */
export function numberInput(label: string, value: number | null, bounds: NumberBounds | null, placeholder: string, onSet: (v: number | null) => void): HTMLInputElement {
  const i = el('input', { type: 'number', 'aria-label': label, placeholder, step: bounds?.type === 'integer' ? '1' : 'any' });
  if (value !== null) i.value = String(value);
  const lo = bounds?.minimum ?? bounds?.exclusiveMinimum ?? null;
  const hi = bounds?.maximum ?? bounds?.exclusiveMaximum ?? null;
  if (lo !== null) i.min = String(lo);
  if (hi !== null) i.max = String(hi);
  const inside = (v: number) =>
    (bounds?.minimum == null || v >= bounds.minimum) &&
    (bounds?.maximum == null || v <= bounds.maximum) &&
    (bounds?.exclusiveMinimum == null || v > bounds.exclusiveMinimum) &&
    (bounds?.exclusiveMaximum == null || v < bounds.exclusiveMaximum) &&
    (bounds?.type !== 'integer' || Number.isInteger(v));
  i.addEventListener('change', () => {
    const t = i.value.trim();
    if (t === '') return onSet(null);
    const v = Number(t);
    if (!Number.isFinite(v) || !inside(v)) {
      i.classList.add('invalid');
      i.title = `must be ${bounds?.type === 'integer' ? 'an integer' : 'a number'}${lo !== null ? ` ${bounds?.exclusiveMinimum != null ? '>' : '≥'} ${lo}` : ''}${hi !== null ? ` and ${bounds?.exclusiveMaximum != null ? '<' : '≤'} ${hi}` : ''}`;
      return;
    }
    i.classList.remove('invalid');
    i.title = '';
    onSet(v);
  });
  return i;
}

/** An inline bar for a fraction in [0, 1] with its percentage (CSS: .pcell, .pbar, .fill, .num). */
export function percentBar(v: number | null, label: string): HTMLElement {
  const b = el('span', { class: 'pbar', role: 'img', 'aria-label': `${label} ${v === null ? 'unknown' : fmtPercent(v)}` });
  const fill = el('span', { class: 'fill' });
  fill.style.width = `${Math.round(100 * Math.max(0, Math.min(1, v ?? 0)))}%`;
  b.append(fill);
  return el('span', { class: 'pcell' }, b, el('span', { class: 'num' }, v === null ? '–' : fmtPercent(v)));
}

/** "3.8 kB", "12.0 MB". */
export function fmtBytes(b: number): string {
  if (b < 1e3) return `${b} B`;
  if (b < 1e6) return `${(b / 1e3).toFixed(1)} kB`;
  if (b < 1e9) return `${(b / 1e6).toFixed(1)} MB`;
  return `${(b / 1e9).toFixed(2)} GB`;
}
