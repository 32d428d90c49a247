/**
 * The whole trace view for one output, as a DOM tree: notices, the totals header, the
 * waterfall and the detail pane of the selected span. No JupyterLab types here, so the
 * view is tested in jsdom as it is.
 */

import { parseDocument, type ParseResult } from './document';
import { renderDetail } from './detail';
import { append, el } from './dom';
import { renderHeader } from './header';
import { TraceModel } from './model';
import { notice, renderNotices } from './notices';
import { Waterfall } from './waterfall';

/** Marks our output, so tests (and users' CSS) can tell it from the static HTML twin. */
export const VIEW_ATTRIBUTE = 'data-llmtrace-view';

export class TraceView {
  readonly node: HTMLElement;
  readonly result: ParseResult;
  readonly waterfall: Waterfall | null = null;
  private readonly detailBox: HTMLElement;
  private opened = -1;

  constructor(data: unknown) {
    this.node = el('div', 'lt-root');
    this.node.setAttribute(VIEW_ATTRIBUTE, 'jupyterlab');
    this.result = parseDocument(data);
    this.detailBox = el('div', 'lt-detail-box');
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
    this.waterfall = new Waterfall(model, {
      open: i => this.open(i),
      close: () => this.close(),
      select: i => {
        if (this.opened >= 0) {
          this.open(i); // an open detail follows the selection
        }
      }
    });
    this.detailBox.appendChild(
      el(
        'div',
        'lt-detail-hint',
        'Click a span, or select one with the arrow keys and press Enter, to see its messages and attributes.'
      )
    );
    append(this.node, this.waterfall.node, this.detailBox);
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
    this.detailBox.replaceChildren(renderDetail(doc.spans[index], doc, () => this.close()));
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
}
