/**
 * The thumbs of one view: which calls can be judged, what is being sent, what was given.
 *
 * The buttons are drawn into rows (which the waterfall redraws as it scrolls) and into
 * the detail pane, so their state lives here and each drawing reads it.
 */

import type { Span } from './document';
import { el } from './dom';
import { FEEDBACK_NAME, judgementCode, type FeedbackTarget, type Thumb } from './feedback';

const LABELS: Record<Thumb, string> = { up: 'thumbs up', down: 'thumbs down' };
const ICONS: Record<Thumb, string> = { up: '👍', down: '👎' };

/** A call a person can judge: an LLM call counted on its own row, with ids. */
export function judgeable(span: Span): boolean {
  return span.kind === 'llm' && span.duplicateOf === null && !!span.spanId && !!span.traceId;
}

export class Thumbs {
  private readonly pending = new Set<number>();
  private readonly given = new Map<number, Thumb>();
  private reason: string | null;

  constructor(
    private readonly spans: Span[],
    private readonly target: FeedbackTarget,
    /** redraw what shows thumbs; status is what to announce, if anything */
    private readonly changed: (status: string | null) => void
  ) {
    this.reason = target.unavailable();
  }

  /** The kernel came or went (or the output was attached to its notebook). */
  refresh(): void {
    const reason = this.target.unavailable();
    if (reason !== this.reason) {
      this.reason = reason;
      this.changed(null);
    }
  }

  /** The two buttons for span i, or null when it cannot be judged. */
  buttons(i: number): HTMLElement | null {
    const span = this.spans[i];
    if (!span || !judgeable(span)) {
      return null;
    }
    const box = el('span', 'lt-thumbs');
    box.setAttribute('role', 'group');
    box.setAttribute('aria-label', `judge ${span.name}`);
    for (const thumb of ['up', 'down'] as const) {
      const button = el('button', `lt-thumb lt-thumb-${thumb}`, ICONS[thumb]);
      button.type = 'button';
      button.dataset.thumb = thumb;
      button.dataset.index = String(i);
      const given = this.given.get(i) === thumb;
      button.setAttribute('aria-pressed', given ? 'true' : 'false');
      button.classList.toggle('lt-thumb-given', given);
      const busy = this.pending.has(i);
      button.disabled = this.reason !== null || busy;
      button.title =
        this.reason ??
        (busy ? 'Sending…' : `${LABELS[thumb]}: record a judgement of this call in the kernel`);
      button.setAttribute('aria-label', `${LABELS[thumb]} for ${span.name}`);
      box.appendChild(button);
    }
    return box;
  }

  /**
   * A click in a row or in the detail pane: on one of our buttons (which carry their
   * span's index), it sends that judgement and returns true.
   */
  clicked(target: HTMLElement | null): boolean {
    const button = target?.closest<HTMLElement>('[data-thumb]');
    if (!button) {
      return false;
    }
    const thumb = button.dataset.thumb;
    if (thumb === 'up' || thumb === 'down') {
      void this.give(Number(button.dataset.index), thumb);
    }
    return true;
  }

  /** Sends a judgement of span i; its badge shows once the kernel recorded it. */
  async give(i: number, thumb: Thumb): Promise<void> {
    const span = this.spans[i];
    if (!span || !judgeable(span) || this.pending.has(i)) {
      return;
    }
    this.reason = this.target.unavailable();
    if (this.reason !== null) {
      this.changed(this.reason);
      return;
    }
    this.pending.add(i);
    this.changed(null);
    let status: string;
    try {
      await this.target.send(judgementCode(span.traceId ?? '', span.spanId ?? '', thumb));
      this.given.set(i, thumb);
      span.evaluations.push({
        name: FEEDBACK_NAME,
        score: thumb === 'up' ? 1 : 0,
        label: thumb === 'up' ? 'thumbs_up' : 'thumbs_down',
        explanation: null,
        negative: thumb === 'down'
      });
      status = `Recorded ${LABELS[thumb]} for ${span.name} in the kernel.`;
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      status = `Not recorded (${reason}).`;
    } finally {
      this.pending.delete(i);
    }
    this.changed(status);
  }
}
