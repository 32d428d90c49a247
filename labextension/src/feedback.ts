/**
 * Thumbs up / down on a call, sent to the kernel that made it.
 *
 * The views are drawn by a mime renderer, which JupyterLab gives no kernel: the plugin
 * (plugin.ts) installs a bridge here that finds the notebook an output lives in and runs
 * `llmtrace_nb.evaluate(...)` in its kernel. Without a bridge (jest, a page without the
 * plugin) or without a running kernel, the buttons are disabled and say why.
 */

/** A human judgement: recorded as evaluation "feedback", label thumbs_up / thumbs_down. */
export type Thumb = 'up' | 'down';

export const FEEDBACK_NAME = 'feedback';

/** The kernel of one output's notebook, as the view needs it. */
export interface FeedbackTarget {
  /** null when a judgement can be sent now, else why not (shown as the tooltip) */
  unavailable(): string | null;
  /** runs the judgement in the kernel; rejects with the kernel's error message */
  send(code: string): Promise<void>;
  /** calls back when the kernel comes or goes; returns the unsubscribe */
  watch(changed: () => void): () => void;
}

export interface FeedbackBridge {
  /** the kernel for an output's node, or null when it is not in a notebook */
  targetFor(node: HTMLElement): FeedbackTarget | null;
}

let bridge: FeedbackBridge | null = null;

export function setFeedbackBridge(value: FeedbackBridge | null): void {
  bridge = value;
}

export const NO_KERNEL = 'Connect this notebook to a kernel to record judgements';

/** What the view uses: a target that is never null (unavailable when there is none). */
export function feedbackFor(node: HTMLElement): FeedbackTarget {
  const target = bridge?.targetFor(node) ?? null;
  if (target) {
    return target;
  }
  return {
    unavailable: () =>
      bridge ? NO_KERNEL : 'Judgements are sent from JupyterLab or Notebook 7 with a kernel',
    send: () => Promise.reject(new Error(NO_KERNEL)),
    watch: () => () => undefined
  };
}

const SPAN_ID = /^[0-9a-f]{16}$/;
const TRACE_ID = /^[0-9a-f]{32}$/;

/**
 * The Python statement that records a thumb. The ids are checked to be hex before they
 * are written into code, and are JSON-quoted (a valid Python string literal) anyway; no
 * text from the document reaches the kernel otherwise.
 */
export function judgementCode(traceId: string, spanId: string, thumb: Thumb): string {
  if (!SPAN_ID.test(spanId) || !TRACE_ID.test(traceId)) {
    throw new Error('this span has no ids the kernel can find');
  }
  const target = `{"trace_id": ${JSON.stringify(traceId)}, "span_id": ${JSON.stringify(spanId)}}`;
  const [score, label] = thumb === 'up' ? ['1.0', 'thumbs_up'] : ['0.0', 'thumbs_down'];
  return (
    `__import__("llmtrace_nb").evaluate(${target}, name=${JSON.stringify(FEEDBACK_NAME)}, ` +
    `score=${score}, label=${JSON.stringify(label)})`
  );
}
