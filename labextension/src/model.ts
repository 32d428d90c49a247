/**
 * The waterfall's state, apart from the DOM: the span tree, which subtrees are
 * collapsed, the filter, which rows are visible, and the shared time axis.
 *
 * Spans arrive in tree order (a parent, then its subtree), so a subtree is a contiguous
 * range of indexes: collapsing is skipping a range, and nothing here is worse than
 * linear in the number of spans — 10k spans recompute in a few milliseconds.
 */

import type { Span } from './document';
import { niceStep } from './format';

export interface Tick {
  ms: number;
  /** position on the axis, 0..100 */
  percent: number;
}

export class TraceModel {
  readonly spans: Span[];
  /** index of the parent span, -1 for a root */
  readonly parent: Int32Array;
  /** one past the last index of the subtree of each span */
  readonly subtreeEnd: Int32Array;
  readonly axisStart: number;
  readonly axisEnd: number;

  private collapsed: Uint8Array;
  private filterText = '';
  /** for a filtered view: 1 where the span itself matches (the rest are ancestors) */
  private matches: Uint8Array | null = null;
  private visibleRows: number[] = [];

  constructor(spans: Span[], durationMs: number | null) {
    this.spans = spans;
    const n = spans.length;
    this.parent = new Int32Array(n).fill(-1);
    this.subtreeEnd = new Int32Array(n);
    this.collapsed = new Uint8Array(n);
    const stack: number[] = [];
    for (let i = 0; i < n; i++) {
      while (stack.length && spans[stack[stack.length - 1]].depth >= spans[i].depth) {
        this.subtreeEnd[stack.pop()!] = i;
      }
      this.parent[i] = stack.length ? stack[stack.length - 1] : -1;
      stack.push(i);
    }
    for (const i of stack) {
      this.subtreeEnd[i] = n;
    }
    let start = 0;
    let end = durationMs !== null && durationMs > 0 ? durationMs : 0;
    for (const s of spans) {
      start = Math.min(start, s.startMs);
      end = Math.max(end, s.startMs + (s.durationMs ?? 0));
    }
    this.axisStart = start;
    this.axisEnd = end > start ? end : start + 1;
    this.recompute();
  }

  get visible(): readonly number[] {
    return this.visibleRows;
  }

  get filter(): string {
    return this.filterText;
  }

  hasChildren(i: number): boolean {
    return this.subtreeEnd[i] > i + 1;
  }

  isCollapsed(i: number): boolean {
    return this.collapsed[i] === 1;
  }

  /** false for an ancestor shown only for context in a filtered view */
  isMatch(i: number): boolean {
    return this.matches === null || this.matches[i] === 1;
  }

  setCollapsed(i: number, collapsed: boolean): void {
    if (!this.hasChildren(i) || this.isCollapsed(i) === collapsed) {
      return;
    }
    this.collapsed[i] = collapsed ? 1 : 0;
    this.recompute();
  }

  toggle(i: number): void {
    this.setCollapsed(i, !this.isCollapsed(i));
  }

  /** Collapse or expand every span that has children. */
  setAllCollapsed(collapsed: boolean): void {
    for (let i = 0; i < this.spans.length; i++) {
      this.collapsed[i] = collapsed && this.hasChildren(i) ? 1 : 0;
    }
    this.recompute();
  }

  /** Case-insensitive substring of a span's name, kind, model, provider or error. */
  setFilter(text: string): void {
    this.filterText = text.trim().toLowerCase();
    this.recompute();
  }

  /** The nearest ancestor-or-self of i that is visible (after a collapse hid i). */
  visibleAncestor(i: number): number {
    let best = i;
    for (let p = this.parent[i]; p !== -1; p = this.parent[p]) {
      if (this.isCollapsed(p) && !this.filterText) {
        best = p;
      }
    }
    return best;
  }

  /** Indexes of the spans from the root down to i, i included. */
  path(i: number): number[] {
    const out: number[] = [];
    for (let p = i; p !== -1; p = this.parent[p]) {
      out.unshift(p);
    }
    return out;
  }

  /** Percent positions of a span's bar: left, width, and the pre-first-token part. */
  bar(i: number): { left: number; width: number; wait: number } {
    const s = this.spans[i];
    const extent = this.axisEnd - this.axisStart;
    const left = ((s.startMs - this.axisStart) / extent) * 100;
    const width = (Math.max(0, s.durationMs ?? 0) / extent) * 100;
    const wait = s.ttftMs !== null && s.durationMs ? Math.min(1, s.ttftMs / s.durationMs) * 100 : 0;
    return { left, width, wait };
  }

  ticks(target = 5): { step: number; ticks: Tick[] } {
    const extent = this.axisEnd - this.axisStart;
    const step = niceStep(extent, target);
    const ticks: Tick[] = [];
    const first = Math.ceil(this.axisStart / step) * step;
    for (let ms = first; ms <= this.axisEnd + step * 1e-9; ms += step) {
      ticks.push({ ms, percent: ((ms - this.axisStart) / extent) * 100 });
      if (ticks.length > 50) {
        break; // a guard against a degenerate axis, not a case seen in practice
      }
    }
    return { step, ticks };
  }

  private spanMatches(s: Span, q: string): boolean {
    return (
      s.name.toLowerCase().includes(q) ||
      s.kindLabel.toLowerCase().includes(q) ||
      (s.model ?? '').toLowerCase().includes(q) ||
      (s.provider ?? '').toLowerCase().includes(q) ||
      (s.errorType ?? '').toLowerCase().includes(q) ||
      (s.status === 'error' && 'error'.includes(q))
    );
  }

  private recompute(): void {
    const n = this.spans.length;
    const rows: number[] = [];
    if (!this.filterText) {
      this.matches = null;
      for (let i = 0; i < n;) {
        rows.push(i);
        i = this.isCollapsed(i) ? this.subtreeEnd[i] : i + 1;
      }
    } else {
      // A match is shown with its ancestors, so it keeps its place in the tree;
      // collapsing does not hide matches (the filter is the stronger request).
      const matches = new Uint8Array(n);
      const keep = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        if (this.spanMatches(this.spans[i], this.filterText)) {
          matches[i] = 1;
          for (let p = i; p !== -1 && !keep[p]; p = this.parent[p]) {
            keep[p] = 1;
          }
        }
      }
      for (let i = 0; i < n; i++) {
        if (keep[i]) {
          rows.push(i);
        }
      }
      this.matches = matches;
    }
    this.visibleRows = rows;
  }
}
