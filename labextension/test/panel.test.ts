import { DocumentCache, UNLISTED, ledger, toCsv, toMarkdown, type CellOutputs } from '../src/ledger';
import { TracesPanelView, statusText } from '../src/panel';
import { loadDoc } from './docs';

function outputs(...docs: [number, unknown][]): CellOutputs[] {
  return docs.map(([index, doc]) => ({ index, outputs: [{ key: {}, data: () => doc }] }));
}

describe('the ledger of a notebook', () => {
  it('adds up the cells, and per model the calls it lists', () => {
    const agent = loadDoc('agent');
    const l = ledger(outputs([2, agent], [5, loadDoc('framework')], [7, undefined]));
    expect(l.cells.map(c => [c.index, c.label])).toEqual([
      [2, 'cell [12] rag-eval'],
      [5, expect.any(String)]
    ]);
    expect(l.total.calls).toBe(agent.totals.llm_calls + loadDoc('framework').totals.llm_calls);
    expect(l.total.errors).toBe(1);
    const models = Object.fromEntries(l.models.map(m => [m.model, m.calls]));
    expect(models['house-model-7b']).toBe(1);
    // a framework span and the client span of one call: one call, once
    expect(l.models.reduce((n, m) => n + m.calls, 0)).toBe(l.total.calls);
    expect(l.models[0].costUsd).toBeGreaterThanOrEqual(l.models[1].costUsd ?? 0);
  });

  it('counts what a big document did not list as "(not listed)"', () => {
    const doc = loadDoc('agent');
    doc.totals.llm_calls += 10;
    doc.totals.cost_usd += 0.5;
    const l = ledger(outputs([0, doc]));
    const rest = l.models.find(m => m.model === UNLISTED)!;
    expect(rest.calls).toBe(10);
    expect(rest.costUsd).toBeCloseTo(0.5);
  });

  it('reads each output once', () => {
    const cache = new DocumentCache();
    let reads = 0;
    const cell = { index: 0, outputs: [{ key: {}, data: () => (reads++, loadDoc('agent')) }] };
    ledger([cell], cache);
    ledger([cell], cache);
    expect(reads).toBe(1);
  });

  it('copies as CSV and Markdown that keep commas, quotes and pipes in their cell', () => {
    const table = { head: ['cell', 'cost'], rows: [['a, "b" | c\nd', '0.1']] };
    expect(toCsv(table)).toBe('cell,cost\n"a, ""b"" | c\nd",0.1\n');
    expect(toMarkdown(table)).toBe('| cell | cost |\n| --- | --- |\n| a, "b" \\| c d | 0.1 |\n');
  });
});

describe('the panel', () => {
  it('lists the cells, sorts them, and goes to the one clicked', () => {
    const revealed: number[] = [];
    const view = new TracesPanelView({ reveal: i => revealed.push(i) });
    document.body.replaceChildren(view.node);
    const cheap = loadDoc('framework');
    const l = ledger(outputs([1, cheap], [4, loadDoc('agent')]));
    view.render(l, 'run.ipynb');
    const names = () =>
      Array.from(view.node.querySelectorAll('.lt-panel-cell')).map(b => b.textContent);
    expect(names()[1]).toBe('cell [12] rag-eval');
    view.node.querySelector<HTMLElement>('.lt-sort[data-key="costUsd"]')!.click();
    expect(names()[0]).toBe('cell [12] rag-eval'); // the costlier first
    expect(view.node.querySelector('th[aria-sort="descending"]')!.textContent).toMatch(/^cost/);
    view.node.querySelector<HTMLElement>('.lt-panel-cell')!.click();
    expect(revealed).toEqual([4]);
    expect(statusText(l)).toBe(`LLM ${view.node.querySelector('.lt-panel-cost')!.textContent} · ${l.total.calls} calls`);
  });

  it('says what to do when nothing is traced, and when no notebook is open', () => {
    const view = new TracesPanelView({ reveal: () => undefined });
    expect(view.node.textContent).toContain('Open a notebook');
    view.render(ledger([]), 'empty.ipynb');
    expect(view.node.textContent).toContain('No traced cells');
    expect(statusText(ledger([]))).toBeNull();
  });

  it('shows every name as text', () => {
    const view = new TracesPanelView({ reveal: () => undefined });
    document.body.replaceChildren(view.node);
    view.render(ledger(outputs([0, loadDoc('xss')])), '<img src=x onerror="window.__p=1">');
    expect(view.node.querySelectorAll('img, script')).toHaveLength(0);
    expect((window as any).__p).toBeUndefined();
  });
});
