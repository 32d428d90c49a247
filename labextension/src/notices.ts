/**
 * Plain statements of everything that makes the view less than the whole trace: a newer
 * document version, fields that could not be read, spans left out, spans still running,
 * models without a price. Each says what happened and what the user can do.
 */

import type { ParseResult, TraceDocument } from './document';
import { SUPPORTED_VERSION } from './document';
import { append, el } from './dom';
import { formatCost, formatCount, plural } from './format';

export type Level = 'info' | 'warn' | 'error';

export function notice(level: Level, text: string): HTMLElement {
  const node = el('div', `lt-notice lt-notice-${level}`, text);
  node.setAttribute('role', level === 'info' ? 'note' : 'status');
  return node;
}

function versionNotice(result: ParseResult): HTMLElement | null {
  if (result.newerVersion !== null) {
    const v = result.newerVersion;
    return notice(
      'warn',
      v > SUPPORTED_VERSION
        ? `This trace was written by a newer llmtrace_nb (version ${v}); this extension ` +
            `reads version ${SUPPORTED_VERSION}. Update it (pip install -U llmtrace_nb) to ` +
            'see everything; below is what it could read.'
        : `This trace has version ${v}, which this extension does not know (it reads ` +
            `version ${SUPPORTED_VERSION}); below is what it could read.`
    );
  }
  if (result.versionMissing) {
    return notice(
      'warn',
      'This trace has no version number, so it may not be an llmtrace_nb trace; below is ' +
        'what could be read.'
    );
  }
  return null;
}

function problemsNotice(problems: string[]): HTMLElement | null {
  if (!problems.length) {
    return null;
  }
  const box = el('details', 'lt-notice lt-notice-warn lt-problems');
  box.appendChild(
    el(
      'summary',
      '',
      `Some fields of this trace could not be read (${plural(problems.length, 'problem')}); ` +
        'they are shown as unknown.'
    )
  );
  const list = el('ul');
  problems.slice(0, 50).forEach(p => list.appendChild(el('li', '', p)));
  if (problems.length > 50) {
    list.appendChild(el('li', '', `… and ${formatCount(problems.length - 50)} more`));
  }
  return append(box, list);
}

function documentNotices(doc: TraceDocument): HTMLElement[] {
  const out: HTMLElement[] = [];
  if (doc.omitted) {
    const o = doc.omitted;
    out.push(
      notice(
        'info',
        `${plural(o.spans, 'more span')} not shown (the view keeps the first ` +
          `${formatCount(doc.maxSpans ?? doc.spans.length)}); their ` +
          `${plural(o.llmCalls, 'LLM call')}, ${formatCount(o.inputTokens + o.outputTokens)} ` +
          `tokens, ${formatCost(o.costUsd)} and ${plural(o.errors, 'error')} are included ` +
          'in the totals above.'
      )
    );
  }
  if (doc.evicted) {
    const { spans, uncounted } = doc.evicted;
    out.push(
      notice(
        uncounted ? 'warn' : 'info',
        `${plural(spans, 'span')} of this cell left the buffer (max_spans) and are not ` +
          'listed; ' +
          (uncounted
            ? `${formatCount(uncounted)} of them left before they could be counted: the ` +
              'totals cover the rest.'
            : 'the totals include them.')
      )
    );
  }
  if (doc.open) {
    const n = doc.openSpans;
    out.push(
      notice(
        'info',
        `${n > 0 ? plural(n, 'span') : 'Some spans'} still running when this view was made ` +
          'are not shown (they may have ended after the cell, e.g. in a background thread).'
      )
    );
  }
  if (doc.totals.sameCallSpans) {
    out.push(
      notice(
        'info',
        `${plural(doc.totals.sameCallSpans, 'span')} marked "same call" describe a call ` +
          "another span counts (a framework's span and the client's): counted once."
      )
    );
  }
  if (doc.totals.unpricedModels.length) {
    out.push(
      notice(
        'info',
        `No price for ${doc.totals.unpricedModels.join(', ')}: the cost leaves those calls ` +
          'out. Set one with %llmtrace price MODEL INPUT_USD_PER_MTOK OUTPUT_USD_PER_MTOK.'
      )
    );
  }
  return out;
}

export function renderNotices(result: ParseResult): HTMLElement | null {
  const items = [
    versionNotice(result),
    problemsNotice(result.problems),
    ...(result.doc ? documentNotices(result.doc) : [])
  ].filter((n): n is HTMLElement => n !== null);
  return items.length ? append(el('div', 'lt-notices'), ...items) : null;
}
