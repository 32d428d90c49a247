/**
 * The legend: one swatch per kind present in the trace, plus the error color and the
 * lighter "before first token" part when the trace has them.
 */

import { KINDS, type Span } from './document';
import { append, el, safeClass } from './dom';

export function renderLegend(spans: Span[]): HTMLElement {
  const legend = el('div', 'lt-legend');
  legend.setAttribute('aria-label', 'legend');
  const present = new Set(spans.map(s => s.kind));
  for (const kind of KINDS) {
    if (present.has(kind)) {
      legend.appendChild(item(safeClass('lt-kind-', kind, KINDS, 'other'), kind));
    }
  }
  if (spans.some(s => s.status === 'error')) {
    legend.appendChild(item('lt-error', 'error'));
  }
  if (spans.some(s => s.ttftMs !== null)) {
    const wait = item('lt-kind-llm lt-legend-wait', 'before first token');
    legend.appendChild(wait);
  }
  return legend;
}

function item(classes: string, label: string): HTMLElement {
  const node = el('span', `lt-legend-item ${classes}`);
  return append(node, el('span', 'lt-swatch'), el('span', 'lt-legend-label', label));
}
