/**
 * The detail pane of the selected span: the facts line (model, provider, duration, TTFT,
 * tokens, cost, finish reason), the messages as chat turns, and the attributes folded.
 */

import { KINDS, asText, type Message, type Span, type TraceDocument } from './document';
import { append, copyText, el, safeClass } from './dom';
import { formatCost, formatCount, formatDuration } from './format';
import { evaluationText, isPriced } from './row';

const ROLES = ['system', 'user', 'assistant', 'tool', 'developer', 'other'] as const;

/** Tool-call arguments are JSON text; indented, they read better (still plain text). */
function prettyJson(text: string): string {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null ? JSON.stringify(value, null, 2) : text;
  } catch {
    return text;
  }
}

function fact(label: string | null, value: string, className = ''): HTMLElement {
  const node = el('span', `lt-fact ${className}`.trim());
  if (label) {
    node.appendChild(el('span', 'lt-fact-label', label));
  }
  node.appendChild(el('span', 'lt-fact-value', value));
  return node;
}

function tokensFact(span: Span): HTMLElement | null {
  if (span.totalTokens === null) {
    return null;
  }
  let text = `${formatCount(span.totalTokens)} tokens`;
  if (span.inputTokens !== null) {
    text += ` · ${formatCount(span.inputTokens)} in`;
    const cache = [
      span.cacheReadTokens ? `${formatCount(span.cacheReadTokens)} cached` : null,
      span.cacheWriteTokens ? `${formatCount(span.cacheWriteTokens)} cache write` : null
    ].filter(Boolean);
    if (cache.length) {
      text += ` (${cache.join(', ')})`;
    }
  }
  if (span.outputTokens !== null) {
    text += ` · ${formatCount(span.outputTokens)} out`;
    if (span.reasoningTokens) {
      text += ` (${formatCount(span.reasoningTokens)} reasoning)`;
    }
  }
  return fact(null, text);
}

export function renderFacts(span: Span): HTMLElement {
  const facts = el('div', 'lt-facts');
  const model =
    span.model && span.requestModel && span.requestModel !== span.model
      ? `${span.model} (asked for ${span.requestModel})`
      : span.model;
  append(
    facts,
    model ? fact('model', model) : null,
    span.provider ? fact('provider', span.provider) : null,
    fact('duration', formatDuration(span.durationMs)),
    span.ttftMs !== null ? fact('TTFT', formatDuration(span.ttftMs)) : null,
    tokensFact(span),
    isPriced(span) && span.duplicateOf === null
      ? fact('cost', formatCost(span.costUsd), span.costUsd === null ? 'lt-muted' : '')
      : null,
    span.duplicateOf !== null
      ? fact(null, 'the same call as another span here: counted once, there', 'lt-muted')
      : null,
    span.finishReasons ? fact('finish', span.finishReasons) : null,
    span.isStreaming ? fact(null, 'streamed') : null,
    fact('start', `+${formatDuration(span.startMs)}`),
    span.status === 'error'
      ? fact('error', span.errorType ?? 'error', 'lt-fact-error')
      : span.status === 'ok'
        ? fact('status', 'ok')
        : null
  );
  return facts;
}

function renderTurn(message: Message): HTMLElement {
  const turn = el('div', 'lt-turn ' + safeClass('lt-role-', message.role, ROLES, 'other'));
  const role = el('div', 'lt-role', message.role);
  const body = el('div', 'lt-turn-body');
  if (message.name || message.toolCallId) {
    const meta = [message.name, message.toolCallId ? `for ${message.toolCallId}` : null]
      .filter(Boolean)
      .join(' · ');
    body.appendChild(el('div', 'lt-turn-meta', meta));
  }
  if (message.content !== null && message.content !== '') {
    body.appendChild(el('div', 'lt-text', message.content));
  } else if (!message.toolCalls.length) {
    body.appendChild(el('div', 'lt-text lt-muted', '(no text)'));
  }
  for (const call of message.toolCalls) {
    const box = el('div', 'lt-toolcall');
    const head = el('div', 'lt-toolcall-head');
    append(
      head,
      el('span', 'lt-toolcall-label', 'tool call'),
      el('span', 'lt-toolcall-name', call.name ?? '(unnamed tool)'),
      call.id ? el('span', 'lt-turn-meta', call.id) : null
    );
    append(
      box,
      head,
      call.arguments !== null ? el('pre', 'lt-code', prettyJson(call.arguments)) : null
    );
    body.appendChild(box);
  }
  if (message.finishReason) {
    body.appendChild(el('div', 'lt-turn-meta', `finish: ${message.finishReason}`));
  }
  return append(turn, role, body);
}

/** Messages as plain text, for the copy button. */
export function messagesText(span: Span): string {
  const lines: string[] = [];
  const add = (messages: Message[] | null) => {
    for (const m of messages ?? []) {
      lines.push(`${m.role}: ${m.content ?? ''}`);
      for (const call of m.toolCalls) {
        lines.push(`  tool call ${call.name ?? ''}(${call.arguments ?? ''})`);
      }
    }
  };
  add(span.inputMessages);
  add(span.outputMessages);
  return lines.join('\n');
}

function renderMessages(span: Span): HTMLElement | null {
  const input = span.inputMessages ?? [];
  const output = span.outputMessages ?? [];
  if (!input.length && !output.length) {
    return null;
  }
  const box = el('div', 'lt-messages');
  if (input.length) {
    box.appendChild(el('div', 'lt-section-label', 'input'));
    input.forEach(m => box.appendChild(renderTurn(m)));
  }
  if (output.length) {
    box.appendChild(el('div', 'lt-section-label', 'output'));
    output.forEach(m => box.appendChild(renderTurn(m)));
  }
  return box;
}

function renderEvaluations(span: Span): HTMLElement | null {
  if (!span.evaluations.length) {
    return null;
  }
  const box = el('div', 'lt-evals');
  box.appendChild(el('div', 'lt-section-label', 'judgements'));
  for (const e of span.evaluations) {
    const line = el(
      'div',
      'lt-eval-line ' + (e.negative ? 'lt-eval-negative' : 'lt-eval-positive'),
      evaluationText(e)
    );
    box.appendChild(line);
    if (e.explanation) {
      box.appendChild(el('div', 'lt-eval-why', e.explanation));
    }
  }
  return box;
}

function renderAttributes(span: Span, doc: TraceDocument): HTMLElement {
  const entries: [string, string][] = [];
  if (span.spanId) {
    entries.push(['span_id', span.spanId]);
  }
  const traceId = span.traceId ?? doc.traceId;
  if (traceId) {
    entries.push(['trace_id', traceId]);
  }
  for (const [key, value] of Object.entries(span.attributes ?? {})) {
    entries.push([key, asText(value)]);
  }
  const fold = el('details', 'lt-attrs');
  const count = Object.keys(span.attributes ?? {}).length;
  fold.appendChild(el('summary', 'lt-attrs-summary', `attributes (${formatCount(count)})`));
  const table = el('div', 'lt-attrs-table');
  for (const [key, value] of entries) {
    append(table, el('div', 'lt-attr-key', key), el('div', 'lt-attr-value', value));
  }
  return append(fold, table);
}

function renderNotes(span: Span, doc: TraceDocument): HTMLElement | null {
  const notes: string[] = [];
  if (span.detailOmitted) {
    notes.push(
      'Messages and attributes of this span were left out of the saved trace to keep the ' +
        'notebook small; use llmtrace_nb.spans_df() in the kernel for the full span.'
    );
  } else if (isPriced(span) && span.inputMessages === null && span.outputMessages === null) {
    notes.push('Message content was not captured for this span (%llmtrace content on).');
  }
  if (span.truncated) {
    const limit = doc.maxText !== null ? ` to ${formatCount(doc.maxText)} characters` : '';
    notes.push(`Long texts of this span were cut${limit}; a marker shows where.`);
  }
  if (!notes.length) {
    return null;
  }
  const box = el('div', 'lt-detail-notes');
  notes.forEach(n => box.appendChild(el('div', 'lt-note', n)));
  return box;
}

function copyButton(label: string, text: () => string): HTMLButtonElement {
  const button = el('button', 'lt-button', label);
  button.type = 'button';
  button.addEventListener('click', async () => {
    const ok = await copyText(text());
    button.textContent = ok ? '✓ copied' : 'copy failed';
    window.setTimeout(() => (button.textContent = label), 1500);
  });
  return button;
}

export function renderDetail(
  span: Span,
  doc: TraceDocument,
  close: () => void,
  thumbs: HTMLElement | null = null
): HTMLElement {
  const pane = el('div', 'lt-detail ' + safeClass('lt-kind-', span.kind, KINDS, 'other'));
  pane.setAttribute('role', 'region');
  pane.setAttribute('aria-label', `detail of ${span.name}`);
  const head = el('div', 'lt-detail-head');
  const title = el('div', 'lt-detail-title');
  append(
    title,
    el('span', 'lt-swatch'),
    span.status === 'error' ? el('span', 'lt-errmark', '✕') : null,
    el('span', 'lt-detail-name', span.name),
    el('span', 'lt-detail-kind', span.kindLabel)
  );
  const actions = el('div', 'lt-detail-actions');
  const closeButton = el('button', 'lt-button lt-close', '✕');
  closeButton.type = 'button';
  closeButton.title = 'Close (Escape)';
  closeButton.setAttribute('aria-label', 'close detail');
  closeButton.addEventListener('click', close);
  append(
    actions,
    thumbs,
    span.inputMessages?.length || span.outputMessages?.length
      ? copyButton('copy messages', () => messagesText(span))
      : null,
    copyButton('copy span JSON', () => JSON.stringify(span.raw, null, 2)),
    closeButton
  );
  append(head, title, actions);
  return append(
    pane,
    head,
    renderFacts(span),
    renderNotes(span, doc),
    renderEvaluations(span),
    renderMessages(span),
    renderAttributes(span, doc)
  );
}
