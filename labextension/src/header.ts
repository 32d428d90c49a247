/**
 * The totals header: the numbers people came for, first — duration, LLM calls, tokens,
 * cost and errors of the whole cell.
 */

import type { TraceDocument } from './document';
import { append, el } from './dom';
import { formatCost, formatDuration, formatTokenSummary, plural } from './format';

/** "cell [12] rag-eval", without repeating a default name that already says "cell [12]". */
export function title(doc: TraceDocument): string {
  if (doc.cell === null) {
    return doc.name;
  }
  const cell = `cell [${doc.cell}]`;
  return doc.name === cell || doc.name.startsWith(`${cell} `) ? doc.name : `${cell} ${doc.name}`;
}

function stat(text: string, className: string): HTMLElement {
  return el('span', `lt-stat ${className}`, text);
}

/** "3 judgements, 1 negative": the cell's judgements, when there are any. */
function judgements(doc: TraceDocument): HTMLElement | null {
  const all = doc.spans.flatMap(s => s.evaluations);
  if (!all.length) {
    return null;
  }
  const negative = all.filter(e => e.negative).length;
  const text = plural(all.length, 'judgement') + (negative ? `, ${negative} negative` : '');
  return stat(text, 'lt-stat-evals' + (negative ? ' lt-stat-evals-negative' : ''));
}

export function renderHeader(doc: TraceDocument): HTMLElement {
  const t = doc.totals;
  const header = el('div', 'lt-header');
  const name = el('span', 'lt-title', title(doc));
  name.title = title(doc);
  const stats = el('span', 'lt-stats');
  append(
    stats,
    stat(formatDuration(t.durationMs), 'lt-stat-duration'),
    stat(plural(t.llmCalls, 'LLM call'), 'lt-stat-calls'),
    stat(formatTokenSummary(t.totalTokens, t.inputTokens, t.outputTokens), 'lt-stat-tokens'),
    stat(formatCost(t.costUsd), 'lt-stat-cost' + (t.costUsd === null ? ' lt-muted' : '')),
    t.errors > 0 ? stat(plural(t.errors, 'error'), 'lt-stat-errors') : null,
    judgements(doc)
  );
  return append(header, name, stats);
}
