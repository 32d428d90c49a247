/**
 * The whole trace view for one output, as a DOM tree: notices, the totals header, the
 * waterfall and the detail pane of the selected span. No JupyterLab types here, so the
 * view is tested in jsdom as it is.
 */

import { parseDocument, type ParseResult } from './document';
import { renderDetail } from './detail';
import { append, el } from './dom';
import type { FeedbackTarget } from './feedback';
import { renderHeader } from './header';
import { TraceModel } from './model';
import { notice, renderNotices } from './notices';
import { Thumbs, judgeable } from './thumbs';
import { Waterfall } from './waterfall';

/** Marks our output, so tests (and users' CSS) can tell it from the static HTML twin. */
export const VIEW_ATTRIBUTE = 'data-llmtrace-view';

export class TraceView {
  readonly node: HTMLElement;
  readonly result: ParseResult;
  readonly waterfall: Waterfall | null = null;
  readonly thumbs: Thumbs | null = null;
  private readonly detailBox: HTMLElement;
  /** announces what became of a judgement (polite: it never interrupts) */
  private readonly status: HTMLElement;
  private opened = -1;

  /** feedback: the kernel to send thumbs to; without it the view shows none */
  constructor(data: unknown, feedback: FeedbackTarget | null = null) {
    this.node = el('div', 'lt-root');
    this.node.setAttribute(VIEW_ATTRIBUTE, 'jupyterlab');
    this.result = parseDocument(data);
    this.detailBox = el('div', 'lt-detail-box');
    this.status = el('div', 'lt-feedback-status');
    this.status.setAttribute('role', 'status');
    this.status.setAttribute('aria-live', 'polite');
    const doc = this.result.doc;
    if (!doc) {
      append(this.node, notice('error', this.result.fatal ?? 'This output cannot be read.'));
      return;
    }
    append(this.node, renderHeader(doc), renderNotices(this.result));
    if (!doc.spans.length) {
      this.node.appendChild(
        el(
          'div',
          'lt-empty',
          doc.totals.spans > 0
            ? 'The spans of this trace could not be read.'
            : 'No spans were recorded in this cell.'
        )
      );
      return;
    }
    const model = new TraceModel(doc.spans, doc.totals.durationMs);
    if (feedback && doc.spans.some(judgeable)) {
      this.thumbs = new Thumbs(doc.spans, feedback, status => this.feedbackChanged(status));
    }
    this.waterfall = new Waterfall(
      model,
      {
        open: i => this.open(i),
        close: () => this.close(),
        select: i => {
          if (this.opened >= 0) {
            this.open(i); // an open detail follows the selection
          }
        }
      },
      this.thumbs
    );
    this.detailBox.appendChild(
      el(
        'div',
        'lt-detail-hint',
        'Click a span, or select one with the arrow keys and press Enter, to see its messages and attributes.'
      )
    );
    this.detailBox.addEventListener('click', event => {
      this.thumbs?.clicked(event.target as HTMLElement | null);
    });
    append(this.node, this.waterfall.node, this.status, this.detailBox);
  }

  get openedIndex(): number {
    return this.opened;
  }

  open(index: number): void {
    const doc = this.result.doc;
    if (!doc || !this.waterfall || index < 0 || index >= doc.spans.length) {
      return;
    }
    this.opened = index;
    this.detailBox.replaceChildren(
      renderDetail(doc.spans[index], doc, () => this.close(), this.thumbs?.buttons(index))
    );
    this.waterfall.setOpened(index);
  }

  close(): void {
    if (!this.waterfall || this.opened < 0) {
      return;
    }
    this.opened = -1;
    this.detailBox.replaceChildren();
    this.waterfall.setOpened(-1);
    this.waterfall.focus();
  }

  /** A judgement was sent, recorded or refused, or the kernel came or went. */
  private feedbackChanged(status: string | null): void {
    if (status !== null) {
      this.status.textContent = status;
      this.waterfall?.renderWindow(); // a judgement's badge joins its row
    } else {
      this.waterfall?.renderThumbs(); // the rows stay: only their buttons change
    }
    const old = this.detailBox.querySelector<HTMLElement>('.lt-detail-actions .lt-thumbs');
    if (!old || this.opened < 0) {
      return;
    }
    const focused = old.contains(document.activeElement)
      ? (document.activeElement as HTMLElement).dataset.thumb
      : undefined;
    if (status !== null) {
      this.open(this.opened); // the pane's judgements list gains the new one
    } else {
      // in place: redrawing the pane would lose its scroll position
      old.replaceWith(this.thumbs?.buttons(this.opened) ?? el('span'));
    }
    if (focused) {
      this.detailBox.querySelector<HTMLElement>(`[data-thumb="${focused}"]`)?.focus();
    }
  }
}
