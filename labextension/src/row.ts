/**
 * One row of the waterfall: the span's name indented by depth, its kind, its key numbers
 * and its bar on the shared time axis.
 */

import { KINDS, type Evaluation, type Span } from './document';
import { append, el, pct, px, safeClass } from './dom';
import { formatCost, formatCount, formatDuration } from './format';
import type { TraceModel } from './model';

/** Must match --lt-row-height in style/base.css; rows are positioned from it. */
export const ROW_HEIGHT = 26;
/** Indentation per level; deeper than MAX_INDENT levels stops moving right. */
const INDENT = 16;
const MAX_INDENT = 24;

export interface RowState {
  selected: boolean;
  opened: boolean;
  id: string;
  /** the row's thumbs up / down, when the call can be judged from here */
  thumbs?: HTMLElement | null;
}

export function isPriced(span: Span): boolean {
  return span.kind === 'llm' || span.kind === 'embedding';
}

/**
 * What tells a row from its neighbours beyond its name: a call's model (every OpenAI call
 * is named `openai.chat`), a tool span's tool; null when the name already says it.
 */
export function nameLabel(span: Span): string | null {
  const label = isPriced(span) ? span.model : span.kind === 'tool' ? span.tool : null;
  return label && !span.name.includes(label) ? label : null;
}

/** The row's name with its label: "openai.chat · gpt-4o-mini". */
export function fullName(span: Span): string {
  const label = nameLabel(span);
  return label ? `${span.name} · ${label}` : span.name;
}

/** What the bar's tooltip and the row's accessible name say. */
export function describeSpan(span: Span): string {
  const parts = [fullName(span), span.kindLabel, formatDuration(span.durationMs)];
  if (span.ttftMs !== null) {
    parts.push(`TTFT ${formatDuration(span.ttftMs)}`);
  }
  if (span.totalTokens !== null) {
    parts.push(`${formatCount(span.totalTokens)} tokens`);
  }
  if (span.duplicateOf !== null) {
    parts.push('the same call as another span: counted once, there');
  } else if (isPriced(span)) {
    parts.push(formatCost(span.costUsd));
  }
  if (span.status === 'error') {
    parts.push(`error${span.errorType ? `: ${span.errorType}` : ''}`);
  }
  for (const e of span.evaluations) {
    parts.push(`judged ${evaluationText(e)}`);
  }
  return parts.join(' · ');
}

/** "exact_match 1 (pass)": a judgement in a few words. */
export function evaluationText(e: Evaluation): string {
  const value = [e.score !== null ? String(e.score) : null, e.label]
    .filter((v): v is string => v !== null)
    .join(' · ');
  return `${e.name} ${value}${e.negative ? ' (negative)' : ''}`;
}

/** One badge per evaluation name (its latest judgement), after the span's name. */
function badges(span: Span): HTMLElement[] {
  const latest = new Map<string, Evaluation>();
  for (const e of span.evaluations) {
    latest.set(e.name, e);
  }
  return [...latest.values()].map(e => {
    const badge = el(
      'span',
      'lt-eval ' + (e.negative ? 'lt-eval-negative' : 'lt-eval-positive'),
      `${e.negative ? '✗' : '✓'} ${e.name}`
    );
    badge.title = evaluationText(e) + (e.explanation ? ` — ${e.explanation}` : '');
    return badge;
  });
}

function nameCell(model: TraceModel, i: number, thumbs: HTMLElement | null): HTMLElement {
  const span = model.spans[i];
  const cell = el('div', 'lt-cell lt-name');
  cell.style.paddingLeft = px(4 + Math.min(span.depth, MAX_INDENT) * INDENT);
  const toggle = el('span', 'lt-toggle');
  if (model.hasChildren(i) && !model.filter) {
    toggle.textContent = model.isCollapsed(i) ? '▸' : '▾';
    toggle.dataset.action = 'toggle';
    toggle.title = model.isCollapsed(i) ? 'Expand' : 'Collapse';
  }
  const label = nameLabel(span);
  const text = el('span', 'lt-name-text', span.name);
  // the name and its label ellipsize as one: the full text is on hover
  const name = el('span', 'lt-name-full');
  name.title = fullName(span);
  append(name, text, label ? el('span', 'lt-name-label', label) : null);
  append(
    cell,
    toggle,
    span.status === 'error' ? el('span', 'lt-errmark', '✕') : null,
    name,
    ...badges(span),
    thumbs
  );
  return cell;
}

function numberCells(span: Span): HTMLElement[] {
  if (span.status === 'error') {
    // the exception type is the number that matters on a failed call
    const cell = el('div', 'lt-cell lt-errtype', span.errorType ?? 'error');
    cell.title = span.errorType ?? 'error';
    return [cell];
  }
  if (span.duplicateOf !== null) {
    // a framework's span and the client's describe one call, counted on the other row
    const same = el('div', 'lt-cell lt-num lt-tokens lt-muted', 'same call');
    same.title = 'The same call as another span here; its tokens and cost count once, there';
    return [same, el('div', 'lt-cell lt-num lt-cost')];
  }
  const tokens = el(
    'div',
    'lt-cell lt-num lt-tokens',
    span.totalTokens !== null ? formatCount(span.totalTokens) : ''
  );
  if (span.inputTokens !== null || span.outputTokens !== null) {
    tokens.title = `${formatCount(span.inputTokens)} in · ${formatCount(span.outputTokens)} out`;
  }
  const priced = isPriced(span) && (span.costUsd !== null || span.totalTokens !== null);
  const cost = el('div', 'lt-cell lt-num lt-cost', priced ? formatCost(span.costUsd) : '');
  if (priced && span.costUsd === null) {
    cost.classList.add('lt-muted');
  }
  return [tokens, cost];
}

function barCell(model: TraceModel, i: number): HTMLElement {
  const span = model.spans[i];
  const track = el('div', 'lt-cell lt-track');
  const { left, width, wait } = model.bar(i);
  const bar = el('div', 'lt-bar');
  bar.style.left = pct(left);
  bar.style.width = pct(Math.min(width, 100 - left));
  if (wait > 0) {
    // the wait before the first token: the same color, lighter
    const waitPart = el('div', 'lt-wait');
    waitPart.style.width = pct(wait);
    bar.appendChild(waitPart);
  }
  track.title = describeSpan(span);
  return append(track, bar);
}

export function renderRow(model: TraceModel, i: number, state: RowState): HTMLElement {
  const span = model.spans[i];
  const row = el('div', 'lt-row ' + safeClass('lt-kind-', span.kind, KINDS, 'other'));
  row.id = state.id;
  row.dataset.index = String(i);
  row.setAttribute('role', 'treeitem');
  row.setAttribute('aria-level', String(span.depth + 1));
  row.setAttribute('aria-selected', state.selected ? 'true' : 'false');
  row.setAttribute('aria-label', describeSpan(span));
  if (model.hasChildren(i)) {
    row.setAttribute('aria-expanded', model.isCollapsed(i) ? 'false' : 'true');
  }
  row.classList.toggle('lt-error', span.status === 'error');
  row.classList.toggle('lt-selected', state.selected);
  row.classList.toggle('lt-opened', state.opened);
  row.classList.toggle('lt-context', !model.isMatch(i));
  row.style.height = px(ROW_HEIGHT);
  const kind = el('div', 'lt-cell lt-kind');
  append(kind, el('span', 'lt-swatch'), el('span', 'lt-kind-text', span.kindLabel));
  append(
    row,
    nameCell(model, i, state.thumbs ?? null),
    kind,
    ...numberCells(span),
    el('div', 'lt-cell lt-num lt-dur', formatDuration(span.durationMs)),
    barCell(model, i)
  );
  return row;
}
