/**
 * The JupyterLab side of the notebook's ledger: the "LLM traces" side panel and the
 * status bar item, both drawn from the trace documents in the current notebook's
 * outputs — so they work with no kernel, on any saved notebook, and follow new runs.
 */

import type { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import type { ICodeCellModel } from '@jupyterlab/cells';
import { INotebookTracker, type NotebookPanel } from '@jupyterlab/notebook';
import { IStatusBar } from '@jupyterlab/statusbar';
import { Widget } from '@lumino/widgets';

import { MIME_TYPE } from './document';
import { el } from './dom';
import { DocumentCache, ledger, type CellOutputs, type Ledger } from './ledger';
import { TracesPanelView, statusText } from './panel';

export const PANEL_ID = 'llmtrace-nb-traces';
export const OPEN_COMMAND = 'llmtrace_nb:open-traces';
/** A notebook changes on every keystroke: the ledger is read again at most this often. */
const DEBOUNCE_MS = 250;

function cellOutputs(panel: NotebookPanel): CellOutputs[] {
  const cells = panel.content.model?.cells;
  const out: CellOutputs[] = [];
  if (!cells) {
    return out;
  }
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type !== 'code') {
      continue;
    }
    const outputs = (cell as ICodeCellModel).outputs;
    const list = [];
    for (let j = 0; j < outputs.length; j++) {
      const model = outputs.get(j);
      list.push({ key: model, data: () => model.data[MIME_TYPE] });
    }
    if (list.length) {
      out.push({ index: i, outputs: list });
    }
  }
  return out;
}

/** Scrolls to a cell, shows its outputs, and puts the keyboard in its trace view. */
async function reveal(panel: NotebookPanel, index: number): Promise<void> {
  const notebook = panel.content;
  const cell = notebook.widgets[index];
  if (!cell) {
    return;
  }
  notebook.activeCellIndex = index;
  if ('outputHidden' in cell && cell.outputHidden) {
    cell.outputHidden = false;
  }
  await notebook.scrollToCell(cell, 'start');
  const view = cell.node.querySelector<HTMLElement>('[data-llmtrace-view] .lt-scroller');
  view?.scrollIntoView({ block: 'nearest' });
  view?.focus({ preventScroll: true });
}

class TracesPanel extends Widget {
  readonly view: TracesPanelView;
  private panel: NotebookPanel | null = null;

  constructor() {
    super();
    this.id = PANEL_ID;
    this.addClass('jp-LLMTracePanel');
    this.title.caption = 'LLM traces: cost and calls per cell';
    this.title.label = 'LLM';
    this.view = new TracesPanelView({
      reveal: index => {
        if (this.panel) {
          void reveal(this.panel, index);
        }
      }
    });
    this.node.appendChild(this.view.node);
  }

  show_(panel: NotebookPanel | null, l: Ledger | null): void {
    this.panel = panel;
    this.view.render(l, panel ? panel.title.label : null);
  }
}

class StatusItem extends Widget {
  constructor(open: () => void) {
    super({ node: el('button', 'jp-LLMTraceStatus') });
    const button = this.node as HTMLButtonElement;
    button.type = 'button';
    button.title = 'LLM cost and calls of this notebook: open the LLM traces panel';
    button.addEventListener('click', open);
    this.hide();
  }

  set text(value: string | null) {
    this.node.textContent = value ?? '';
    this.setHidden(value === null);
  }
}

function activate(
  app: JupyterFrontEnd,
  tracker: INotebookTracker,
  statusBar: IStatusBar | null
): void {
  const cache = new DocumentCache();
  const ledgers = new WeakMap<NotebookPanel, Ledger>();
  const panel = new TracesPanel();
  app.shell.add(panel, 'right', { rank: 900 });
  const open = () => app.shell.activateById(PANEL_ID);
  app.commands.addCommand(OPEN_COMMAND, { label: 'Show LLM Traces', execute: open });
  // JupyterLab: one item in the status bar, for the current notebook. Notebook 7 has no
  // status bar: each notebook's toolbar gets the item instead.
  const status = statusBar ? new StatusItem(open) : null;
  if (statusBar && status) {
    statusBar.registerStatusItem('llmtrace_nb:cost', {
      item: status,
      align: 'left',
      rank: 50,
      isActive: () => tracker.currentWidget !== null
    });
  }
  const toolbarItems = new WeakMap<NotebookPanel, StatusItem>();

  const showCurrent = () => {
    const current = tracker.currentWidget;
    const l = current ? (ledgers.get(current) ?? null) : null;
    panel.show_(current, l);
    if (status) {
      status.text = statusText(l);
    }
  };
  const refresh = (nb: NotebookPanel) => {
    if (nb.isDisposed) {
      return;
    }
    const l = ledger(cellOutputs(nb), cache);
    ledgers.set(nb, l);
    const item = toolbarItems.get(nb);
    if (item) {
      item.text = statusText(l);
    }
    if (nb === tracker.currentWidget) {
      showCurrent();
    }
  };
  const timers = new WeakMap<NotebookPanel, ReturnType<typeof setTimeout>>();
  const soon = (nb: NotebookPanel) => {
    if (!timers.has(nb)) {
      timers.set(
        nb,
        setTimeout(() => {
          timers.delete(nb);
          refresh(nb);
        }, DEBOUNCE_MS)
      );
    }
  };
  const follow = (nb: NotebookPanel) => {
    if (!status) {
      const item = new StatusItem(open);
      nb.toolbar.insertItem(10, 'llmtraceCost', item);
      toolbarItems.set(nb, item);
    }
    // at once when the notebook is loaded (the numbers are what opening it is for);
    // then outputs arrive through the shared model: any change may be a new trace
    nb.context.ready.then(
      () => refresh(nb),
      () => refresh(nb)
    );
    nb.content.modelContentChanged.connect(() => soon(nb));
  };
  tracker.forEach(follow);
  tracker.widgetAdded.connect((_, nb) => follow(nb));
  tracker.currentChanged.connect(showCurrent);
  showCurrent();
}

export const tracesPlugin: JupyterFrontEndPlugin<void> = {
  id: 'llmtrace_nb:traces-panel',
  description: "A side panel and a status item with the notebook's LLM calls and cost",
  autoStart: true,
  requires: [INotebookTracker],
  optional: [IStatusBar],
  activate
};
