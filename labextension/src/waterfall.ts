/**
 * The interactive waterfall: the filter, the column heads with the time axis, and the
 * rows, with selection by mouse and keyboard.
 *
 * Rows are virtualized: the scroller holds a spacer as tall as all visible rows and only
 * the rows in view (plus a few above and below) exist in the DOM, so a 10k-span trace
 * costs as much to draw as a 20-span one. The row height is fixed for that reason.
 */

import { renderColumnHead, renderGridlines } from './axis';
import { append, el, px, uniqueId } from './dom';
import { formatCount } from './format';
import { renderLegend } from './legend';
import type { TraceModel } from './model';
import { ROW_HEIGHT, renderRow } from './row';
import type { Thumbs } from './thumbs';

/** Rows shown before the list scrolls. */
export const MAX_VISIBLE_ROWS = 18;
/** Rows drawn beyond each edge of the view, so fast scrolling shows no gap. */
const OVERSCAN = 8;

export interface WaterfallEvents {
  /** Enter, Space or a click: show this span's detail */
  open(index: number): void;
  /** Escape: hide the detail */
  close(): void;
  /** the selected span changed (the detail follows it when it is open) */
  select(index: number): void;
}

export class Waterfall {
  readonly node: HTMLElement;
  private readonly scroller: HTMLElement;
  private readonly spacer: HTMLElement;
  private readonly rowsLayer: HTMLElement;
  private readonly count: HTMLElement;
  private readonly ids: string;
  private selected = -1;
  private opened = -1;
  private viewportHeight = 0;

  constructor(
    private readonly model: TraceModel,
    private readonly events: WaterfallEvents,
    /** thumbs up / down on calls; none where judgements cannot be sent (tests, twins) */
    private readonly thumbs: Thumbs | null = null
  ) {
    this.ids = uniqueId('lt-row');
    this.node = el('div', 'lt-waterfall');
    this.count = el('span', 'lt-count');
    this.scroller = el('div', 'lt-scroller');
    this.scroller.tabIndex = 0;
    this.scroller.setAttribute('role', 'tree');
    this.scroller.setAttribute(
      'aria-label',
      'spans: arrow keys move, Enter opens, Left and Right collapse and expand' +
        (thumbs ? ', + and - judge the selected call' : '')
    );
    // While the list has focus, its keys are ours: without this, JupyterLab's notebook
    // shortcuts (j/k, a/b, d d …) would act on the cell behind the view.
    this.scroller.setAttribute('data-lm-suppress-shortcuts', 'true');
    this.spacer = el('div', 'lt-spacer');
    this.rowsLayer = el('div', 'lt-rows');
    // the tick lines span the spacer's full height, behind the rows
    append(this.spacer, renderGridlines(model), this.rowsLayer);
    append(this.scroller, this.spacer);
    append(this.node, this.renderToolbar(), renderColumnHead(model), this.scroller);

    this.scroller.addEventListener('scroll', () => this.renderWindow());
    this.scroller.addEventListener('click', e => this.onClick(e));
    this.scroller.addEventListener('keydown', e => this.onKey(e));
    this.layout();
  }

  get selectedIndex(): number {
    return this.selected;
  }

  /** Marks the span whose detail is shown (or -1), so its row stays highlighted. */
  setOpened(index: number): void {
    this.opened = index;
    this.renderWindow();
  }

  focus(): void {
    this.scroller.focus({ preventScroll: true });
  }

  select(index: number, scrollIntoView = true): void {
    if (index < 0 || index >= this.model.spans.length) {
      return;
    }
    this.selected = index;
    if (scrollIntoView) {
      this.scrollTo(index);
    }
    this.renderWindow();
    this.events.select(index);
  }

  private renderToolbar(): HTMLElement {
    const bar = el('div', 'lt-toolbar');
    const filter = el('input', 'lt-filter');
    filter.type = 'search';
    filter.placeholder = 'filter by name, kind or model';
    filter.setAttribute('aria-label', 'filter spans by name, kind or model');
    filter.spellcheck = false;
    filter.addEventListener('input', () => {
      this.model.setFilter(filter.value);
      this.layout();
    });
    filter.addEventListener('keydown', e => {
      if (e.key === 'ArrowDown' || e.key === 'Enter') {
        e.preventDefault();
        e.stopPropagation();
        this.focus();
        if (this.model.visible.length) {
          this.select(this.model.visible[0]);
        }
      }
    });
    const expand = el('button', 'lt-button', 'expand all');
    expand.type = 'button';
    expand.addEventListener('click', () => this.setAllCollapsed(false));
    const collapse = el('button', 'lt-button', 'collapse all');
    collapse.type = 'button';
    collapse.addEventListener('click', () => this.setAllCollapsed(true));
    const hasTree = this.model.spans.some((_, i) => this.model.hasChildren(i));
    return append(
      bar,
      filter,
      this.count,
      hasTree ? expand : null,
      hasTree ? collapse : null,
      el('span', 'lt-toolbar-gap'),
      renderLegend(this.model.spans)
    );
  }

  private setAllCollapsed(collapsed: boolean): void {
    this.model.setAllCollapsed(collapsed);
    if (this.selected >= 0) {
      this.selected = this.model.visibleAncestor(this.selected);
    }
    this.layout();
  }

  /** After the visible rows changed: size the scroller and spacer, then draw. */
  private layout(): void {
    const rows = this.model.visible.length;
    const total = this.model.spans.length;
    this.count.textContent = this.model.filter
      ? `${formatCount(rows)} of ${formatCount(total)} spans`
      : `${formatCount(total)} span${total === 1 ? '' : 's'}`;
    this.viewportHeight = Math.max(1, Math.min(rows, MAX_VISIBLE_ROWS)) * ROW_HEIGHT;
    this.scroller.style.height = px(this.viewportHeight);
    this.spacer.style.height = px(rows * ROW_HEIGHT);
    this.scroller.classList.toggle('lt-empty-filter', rows === 0);
    this.renderWindow();
  }

  private position(index: number): number {
    // visible is sorted (tree order), so the row number is a binary search away
    const rows = this.model.visible;
    let lo = 0;
    let hi = rows.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (rows[mid] === index) {
        return mid;
      }
      if (rows[mid] < index) {
        lo = mid + 1;
      } else {
        hi = mid - 1;
      }
    }
    return -1;
  }

  private scrollTo(index: number): void {
    const pos = this.position(index);
    if (pos < 0) {
      return;
    }
    const top = pos * ROW_HEIGHT;
    if (top < this.scroller.scrollTop) {
      this.scroller.scrollTop = top;
    } else if (top + ROW_HEIGHT > this.scroller.scrollTop + this.viewportHeight) {
      this.scroller.scrollTop = top + ROW_HEIGHT - this.viewportHeight;
    }
  }

  /**
   * Redraws only the rows' thumbs (the kernel came or went): the rows stay the same
   * elements, so hover, a pointer mid-click and anything holding a row keep them.
   */
  renderThumbs(): void {
    for (const old of this.rowsLayer.querySelectorAll<HTMLElement>('.lt-thumbs')) {
      const fresh = this.thumbs?.buttons(
        Number(old.closest<HTMLElement>('.lt-row')?.dataset.index)
      );
      if (fresh) {
        old.replaceWith(fresh);
      }
    }
  }

  /** Draws the rows in view; everything else exists only as spacer height. */
  renderWindow(): void {
    const rows = this.model.visible;
    const top = this.scroller.scrollTop;
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(
      rows.length,
      Math.ceil((top + this.viewportHeight) / ROW_HEIGHT) + OVERSCAN
    );
    const fragment = document.createDocumentFragment();
    let active = '';
    for (let pos = first; pos < last; pos++) {
      const i = rows[pos];
      const id = `${this.ids}-${i}`;
      const row = renderRow(this.model, i, {
        id,
        selected: i === this.selected,
        opened: i === this.opened,
        thumbs: this.thumbs?.buttons(i) ?? null
      });
      row.style.top = px(pos * ROW_HEIGHT);
      if (i === this.selected) {
        active = id;
      }
      fragment.appendChild(row);
    }
    this.rowsLayer.replaceChildren(fragment);
    if (active) {
      this.scroller.setAttribute('aria-activedescendant', active);
    } else {
      this.scroller.removeAttribute('aria-activedescendant');
    }
  }

  private onClick(event: MouseEvent): void {
    const target = event.target as HTMLElement | null;
    const row = target?.closest<HTMLElement>('.lt-row');
    if (!row || !this.scroller.contains(row)) {
      return;
    }
    const index = Number(row.dataset.index);
    if (!Number.isInteger(index)) {
      return;
    }
    if (this.thumbs?.clicked(target)) {
      return; // a judgement, not a request to open the detail
    }
    this.focus();
    if (target?.closest('[data-action="toggle"]')) {
      this.model.toggle(index);
      this.selected = index;
      this.layout();
      this.events.select(index);
      return;
    }
    this.select(index, false);
    this.events.open(index);
  }

  private onKey(event: KeyboardEvent): void {
    if (event.altKey || event.ctrlKey || event.metaKey) {
      return; // leave shortcuts such as Ctrl+S to the application
    }
    const rows = this.model.visible;
    if (!rows.length) {
      return;
    }
    const pos = this.selected >= 0 ? this.position(this.selected) : -1;
    const at = (p: number) => rows[Math.max(0, Math.min(rows.length - 1, p))];
    const page = MAX_VISIBLE_ROWS - 1;
    const i = this.selected;
    let handled = true;
    switch (event.key) {
      case 'ArrowDown':
        this.select(at(pos + 1));
        break;
      case 'ArrowUp':
        this.select(at(pos < 0 ? 0 : pos - 1));
        break;
      case 'PageDown':
        this.select(at(pos + page));
        break;
      case 'PageUp':
        this.select(at(pos - page));
        break;
      case 'Home':
        this.select(rows[0]);
        break;
      case 'End':
        this.select(rows[rows.length - 1]);
        break;
      case 'ArrowRight':
        if (i < 0) {
          this.select(rows[0]);
        } else if (this.model.hasChildren(i) && this.model.isCollapsed(i)) {
          this.model.setCollapsed(i, false);
          this.layout();
        } else if (this.model.hasChildren(i)) {
          this.select(at(pos + 1));
        }
        break;
      case 'ArrowLeft':
        if (i < 0) {
          this.select(rows[0]);
        } else if (this.model.hasChildren(i) && !this.model.isCollapsed(i) && !this.model.filter) {
          this.model.setCollapsed(i, true);
          this.layout();
        } else if (this.model.parent[i] >= 0) {
          this.select(this.model.parent[i]);
        }
        break;
      case 'Enter':
      case ' ':
        if (i < 0) {
          this.select(rows[0]);
        }
        this.events.open(this.selected);
        break;
      case 'Escape':
        this.events.close();
        break;
      case '+':
      case '-':
        if (this.thumbs && i >= 0) {
          void this.thumbs.give(i, event.key === '+' ? 'up' : 'down');
        } else {
          handled = false;
        }
        break;
      default:
        handled = false;
    }
    if (handled) {
      event.preventDefault();
      event.stopPropagation();
    }
  }
}
