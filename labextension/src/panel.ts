/**
 * The "LLM traces" side panel's content: the notebook's totals, one row per traced cell
 * (sortable, a click or Enter jumps to the cell), the spend per model, and copies of
 * both tables as CSV or Markdown. Plain DOM, drawn from a Ledger (ledger.ts).
 */

import { append, copyText, el } from './dom';
import { formatCost, formatCount, formatDuration, plural } from './format';
import {
  cellsTable,
  modelsTable,
  toCsv,
  toMarkdown,
  type CellSpend,
  type Ledger,
  type TextTable
} from './ledger';

type SortKey = 'index' | 'label' | 'calls' | 'costUsd' | 'durationMs' | 'errors';

const COLUMNS: { key: SortKey; head: string; numeric: boolean }[] = [
  { key: 'label', head: 'cell', numeric: false },
  { key: 'calls', head: 'calls', numeric: true },
  { key: 'costUsd', head: 'cost', numeric: true },
  { key: 'durationMs', head: 'time', numeric: true },
  { key: 'errors', head: 'errors', numeric: true }
];

export interface PanelEvents {
  /** show the cell at this notebook position, and its trace view */
  reveal(index: number): void;
}

export class TracesPanelView {
  readonly node: HTMLElement;
  private sortKey: SortKey = 'index';
  private descending = false;
  private last: Ledger | null = null;
  private notebook: string | null = null;
  private readonly status: HTMLElement;
  private readonly body: HTMLElement;

  constructor(private readonly events: PanelEvents) {
    this.node = el('div', 'lt-panel');
    this.node.setAttribute('role', 'region');
    this.node.setAttribute('aria-label', 'LLM traces of this notebook');
    this.body = el('div', 'lt-panel-body');
    this.status = el('div', 'lt-panel-status');
    this.status.setAttribute('role', 'status');
    this.status.setAttribute('aria-live', 'polite');
    append(this.node, this.body, this.status);
    this.render(null, null);
  }

  /** Draws the notebook's ledger; null: no notebook is open. */
  render(ledger: Ledger | null, notebook: string | null): void {
    this.last = ledger;
    this.notebook = notebook;
    const heading = el('h2', 'lt-panel-title', notebook ?? 'LLM traces');
    heading.title = notebook ?? '';
    if (!ledger) {
      this.body.replaceChildren(
        heading,
        el('p', 'lt-panel-empty', 'Open a notebook to see its LLM calls, tokens and cost.')
      );
      return;
    }
    if (!ledger.cells.length) {
      this.body.replaceChildren(
        heading,
        el(
          'p',
          'lt-panel-empty',
          'No traced cells in this notebook yet: run a cell with %%trace (after %load_ext llmtrace_nb).'
        )
      );
      return;
    }
    this.body.replaceChildren(
      heading,
      this.totals(ledger),
      this.section('Cells', this.cellsTable(ledger), cellsTable(ledger)),
      this.section('Models', this.modelsTable(ledger), modelsTable(ledger))
    );
  }

  private totals(l: Ledger): HTMLElement {
    const t = l.total;
    const box = el('div', 'lt-panel-totals');
    append(
      box,
      el('span', 'lt-panel-cost', formatCost(t.costUsd)),
      el('span', '', plural(t.calls, 'LLM call')),
      el(
        'span',
        '',
        `${formatCount(t.inputTokens + t.outputTokens)} tokens (${formatCount(t.inputTokens)} in · ${formatCount(t.outputTokens)} out)`
      ),
      el('span', '', formatDuration(t.durationMs)),
      el('span', '', plural(l.cells.length, 'traced cell')),
      t.errors ? el('span', 'lt-panel-errors', plural(t.errors, 'error')) : null
    );
    return box;
  }

  private section(name: string, table: HTMLElement, text: TextTable): HTMLElement {
    const box = el('section', 'lt-panel-section');
    const head = el('div', 'lt-panel-section-head');
    const copy = (format: 'CSV' | 'Markdown') => {
      const button = el('button', 'lt-button', format);
      button.type = 'button';
      button.setAttribute('aria-label', `copy the ${name.toLowerCase()} table as ${format}`);
      button.title = `Copy this table as ${format}`;
      button.addEventListener('click', () => {
        const content = format === 'CSV' ? toCsv(text) : toMarkdown(text);
        void copyText(content).then(ok => {
          this.status.textContent = ok
            ? `Copied the ${name.toLowerCase()} table as ${format}.`
            : 'The browser refused to copy.';
        });
      });
      return button;
    };
    append(head, el('h3', 'lt-panel-heading', name), copy('CSV'), copy('Markdown'));
    return append(box, head, table);
  }

  private sorted(cells: CellSpend[]): CellSpend[] {
    const key = this.sortKey;
    const sign = this.descending ? -1 : 1;
    return [...cells].sort((a, b) => {
      const x = a[key];
      const y = b[key];
      if (x === y) {
        return a.index - b.index;
      }
      if (x === null) {
        return 1; // unknown last, either way
      }
      if (y === null) {
        return -1;
      }
      return (typeof x === 'string' ? x.localeCompare(String(y)) : x - Number(y)) * sign;
    });
  }

  private sortHeader(col: (typeof COLUMNS)[number], colSpan = 1): HTMLTableCellElement {
    const th = el('th', col.numeric ? 'lt-num' : '');
    th.scope = 'col';
    th.colSpan = colSpan;
    const active = this.sortKey === col.key;
    th.setAttribute('aria-sort', active ? (this.descending ? 'descending' : 'ascending') : 'none');
    const button = el(
      'button',
      'lt-sort',
      col.head + (active ? (this.descending ? ' ▾' : ' ▴') : '')
    );
    button.type = 'button';
    button.title = `Sort by ${col.head}`;
    button.dataset.key = col.key;
    button.addEventListener('click', () => {
      // numbers sort largest first on the first click: the costly cell is the question
      this.descending = active ? !this.descending : col.numeric;
      this.sortKey = col.key;
      this.render(this.last, this.notebook);
      this.node.querySelector<HTMLElement>(`.lt-sort[data-key="${col.key}"]`)?.focus();
    });
    th.appendChild(button);
    return th;
  }

  /**
   * One tbody per cell, in two rows: its name (a row-group header, the whole panel
   * wide: a side panel is narrow and names are long), then its numbers under the
   * column heads.
   */
  private cellsTable(l: Ledger): HTMLTableElement {
    const table = el('table', 'lt-panel-table');
    table.appendChild(el('caption', 'lt-sr-only', 'Traced cells: click a cell to go to it'));
    const numeric = COLUMNS.filter(c => c.numeric);
    const thead = el('thead');
    const names = el('tr');
    names.appendChild(this.sortHeader(COLUMNS[0], numeric.length));
    const numbers = el('tr');
    numeric.forEach(col => numbers.appendChild(this.sortHeader(col)));
    append(thead, names, numbers);
    table.appendChild(thead);
    const max = Math.max(0, ...l.cells.map(c => c.costUsd ?? 0));
    const total = l.total.costUsd ?? 0;
    for (const cell of this.sorted(l.cells)) {
      const group = el('tbody', 'lt-panel-row' + (cell.errors ? ' lt-panel-row-error' : ''));
      const name = el('th', 'lt-panel-name');
      name.scope = 'rowgroup';
      name.colSpan = numeric.length;
      const go = el('button', 'lt-panel-cell', cell.label);
      go.type = 'button';
      go.title = `Go to ${cell.label}`;
      go.addEventListener('click', () => this.events.reveal(cell.index));
      // the cell's cost against the costliest cell's, under its name
      const bar = el('span', 'lt-share');
      bar.style.width = `${max > 0 ? Math.round(((cell.costUsd ?? 0) / max) * 100) : 0}%`;
      bar.setAttribute('aria-hidden', 'true');
      append(name, go, bar);
      const cost = el('td', 'lt-num', formatCost(cell.costUsd));
      const share = total > 0 && cell.costUsd !== null ? cell.costUsd / total : 0;
      cost.title = `${Math.round(share * 100)}% of the notebook's cost`;
      twoRows(group, name, [
        el('td', 'lt-num', formatCount(cell.calls)),
        cost,
        el('td', 'lt-num', formatDuration(cell.durationMs)),
        el('td', 'lt-num', cell.errors ? formatCount(cell.errors) : '')
      ]);
      // a click anywhere on the cell's rows goes to it, as its button does
      group.addEventListener('click', event => {
        if (!(event.target as HTMLElement).closest('button')) {
          this.events.reveal(cell.index);
        }
      });
      table.appendChild(group);
    }
    return table;
  }

  /** Per model, the same two-row shape: the model's name, then its numbers. */
  private modelsTable(l: Ledger): HTMLTableElement {
    const table = el('table', 'lt-panel-table');
    table.appendChild(el('caption', 'lt-sr-only', 'LLM calls, tokens and cost per model'));
    const thead = el('thead');
    const names = el('tr');
    const modelHead = el('th', '', 'model');
    modelHead.scope = 'col';
    modelHead.colSpan = 3;
    names.appendChild(modelHead);
    const numbers = el('tr');
    for (const text of ['calls', 'tokens', 'cost']) {
      const th = el('th', 'lt-num', text);
      th.scope = 'col';
      numbers.appendChild(th);
    }
    append(thead, names, numbers);
    table.appendChild(thead);
    for (const m of l.models) {
      const group = el('tbody', 'lt-panel-row-model');
      const name = el('th', 'lt-panel-model', m.model);
      name.scope = 'rowgroup';
      name.colSpan = 3;
      name.title = m.model;
      const tokens = el('td', 'lt-num', formatCount(m.inputTokens + m.outputTokens));
      tokens.title = `${formatCount(m.inputTokens)} in · ${formatCount(m.outputTokens)} out`;
      twoRows(group, name, [
        el('td', 'lt-num', formatCount(m.calls)),
        tokens,
        el('td', 'lt-num', formatCost(m.costUsd))
      ]);
      table.appendChild(group);
    }
    return table;
  }
}

/** A row group's two rows: its name (a header spanning the table), then its numbers. */
function twoRows(group: HTMLElement, name: HTMLElement, numbers: HTMLElement[]): void {
  const nameRow = el('tr');
  nameRow.appendChild(name);
  group.append(nameRow, append(el('tr'), ...numbers));
}

/** The status bar's words: "LLM $0.0123 · 14 calls", or null with nothing traced. */
export function statusText(l: Ledger | null): string | null {
  if (!l || !l.cells.length) {
    return null;
  }
  return `LLM ${formatCost(l.total.costUsd)} · ${plural(l.total.calls, 'call')}`;
}
