/**
 * The shared time axis: the column heads with labeled ticks above the rows, and the
 * tick lines drawn behind the bars. Both use the rows' grid columns, so they line up.
 */

import { append, el, pct } from './dom';
import { formatTick } from './format';
import type { TraceModel } from './model';

export function renderColumnHead(model: TraceModel): HTMLElement {
  const head = el('div', 'lt-colhead');
  head.setAttribute('aria-hidden', 'true'); // the rows carry the same facts as labels
  append(
    head,
    el('div', 'lt-cell lt-name', 'span'),
    el('div', 'lt-cell lt-kind', 'kind'),
    el('div', 'lt-cell lt-num', 'tokens'),
    el('div', 'lt-cell lt-num', 'cost'),
    el('div', 'lt-cell lt-num', 'duration')
  );
  const axis = el('div', 'lt-cell lt-axis');
  const { step, ticks } = model.ticks();
  for (const tick of ticks) {
    // a label centered on the right edge would be cut off or run into its neighbour;
    // the tick line is still drawn
    if (tick.percent > 94) {
      continue;
    }
    const label = el('span', 'lt-tick', formatTick(tick.ms, step, model.axisEnd));
    label.style.left = pct(tick.percent);
    if (tick.percent < 3) {
      label.classList.add('lt-tick-first'); // left-aligned, inside the column
    }
    axis.appendChild(label);
  }
  head.appendChild(axis);
  return head;
}

/** Vertical lines at the ticks, for the area behind the rows. */
export function renderGridlines(model: TraceModel): HTMLElement {
  const grid = el('div', 'lt-gridlines');
  grid.setAttribute('aria-hidden', 'true');
  append(grid, el('div', 'lt-gridlines-pad'));
  const track = el('div', 'lt-gridlines-track');
  for (const tick of model.ticks().ticks) {
    const line = el('div', 'lt-gridline');
    line.style.left = pct(tick.percent);
    track.appendChild(line);
  }
  return append(grid, track);
}
