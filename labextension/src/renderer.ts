/**
 * The JupyterLab renderer: a Lumino widget that shows one output's trace document.
 *
 * renderModel never throws — a broken document must not break the notebook — and a bug
 * in the view falls back to the output's text/plain summary with the reason.
 */

import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Widget } from '@lumino/widgets';

import { COMPARE_MIME_TYPE, renderComparison } from './compare';
import { MIME_TYPE } from './document';
import { append, el } from './dom';
import { feedbackFor } from './feedback';
import { notice } from './notices';
import { TraceView } from './view';

export class TraceRenderer extends Widget implements IRenderMime.IRenderer {
  private view: TraceView | null = null;
  private unwatch: (() => void) | null = null;

  constructor(private readonly mimeType: string = MIME_TYPE) {
    super();
    this.addClass('jp-LLMTraceRenderer');
  }

  get traceView(): TraceView | null {
    return this.view;
  }

  renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    try {
      const feedback = feedbackFor(this.node);
      this.view = new TraceView(model.data[this.mimeType], feedback);
      this.node.replaceChildren(this.view.node);
      this.unwatch?.();
      const thumbs = this.view.thumbs;
      this.unwatch = thumbs ? feedback.watch(() => thumbs.refresh()) : null;
    } catch (err) {
      this.view = null;
      this.node.replaceChildren(fallback(err, model.data['text/plain']));
    }
    return Promise.resolve();
  }

  protected onAfterAttach(): void {
    // rendered before it was in its notebook: only now can the kernel be found
    this.view?.thumbs?.refresh();
  }

  dispose(): void {
    this.unwatch?.();
    this.unwatch = null;
    super.dispose();
  }
}

/** The renderer of compare() outputs: tables drawn from the comparison's data. */
export class CompareRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(private readonly mimeType: string = COMPARE_MIME_TYPE) {
    super();
    this.addClass('jp-LLMTraceCompareRenderer');
  }

  renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    try {
      this.node.replaceChildren(renderComparison(model.data[this.mimeType]));
    } catch (err) {
      this.node.replaceChildren(fallback(err, model.data['text/plain']));
    }
    return Promise.resolve();
  }
}

function fallback(err: unknown, plain: unknown): HTMLElement {
  const box = el('div', 'lt-root');
  const reason = err instanceof Error ? err.message : String(err);
  append(
    box,
    notice(
      'error',
      `The trace view could not draw this output (${reason}). Its text summary follows; ` +
        'please report this with the notebook.'
    ),
    typeof plain === 'string' ? el('pre', 'lt-plain', plain) : null
  );
  return box;
}
