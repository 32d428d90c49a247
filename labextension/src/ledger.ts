/**
 * A notebook's LLM spend, read from the trace documents saved in its outputs: per traced
 * cell, per model, and in all. It needs no kernel: the documents are the record.
 *
 * No JupyterLab types here (the panel and the status item draw it; jest tests it).
 */

import { parseDocument, type Span, type TraceDocument } from './document';
import { title } from './header';

/** One traced cell's output (a cell run several times has one document: its last). */
export interface CellSpend {
  /** the cell's position in the notebook (what a click scrolls to) */
  index: number;
  /** "cell [12] rag-eval" */
  label: string;
  calls: number;
  inputTokens: number;
  outputTokens: number;
  /** null: no price known for any call */
  costUsd: number | null;
  durationMs: number | null;
  errors: number;
}

export interface ModelSpend {
  model: string;
  calls: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number | null;
}

export interface Ledger {
  cells: CellSpend[];
  models: ModelSpend[];
  total: Omit<CellSpend, 'index' | 'label'>;
}

/** The cost of spans past the document's listing: counted in totals, not per model. */
export const UNLISTED = '(not listed)';

/** One output of a cell: ``key`` is the output's model (stable while it is unchanged),
 * ``data`` reads its trace document's JSON (undefined when it carries none). */
export interface TraceOutput {
  key: object;
  data(): unknown;
}

/** What the ledger needs of a notebook: each code cell's outputs. */
export interface CellOutputs {
  index: number;
  outputs: readonly TraceOutput[];
}

const addCost = (a: number | null, b: number | null): number | null =>
  a === null ? b : b === null ? a : a + b;

/**
 * Reads each output once: a notebook changes on every keystroke, and reading an output's
 * data copies it (JupyterLab's output models hand out a fresh copy each time), so the
 * parsed document (or null: not a trace) is kept for as long as the output model lives.
 */
export class DocumentCache {
  private readonly docs = new WeakMap<object, TraceDocument | null>();

  read(output: TraceOutput): TraceDocument | null {
    let doc = this.docs.get(output.key);
    if (doc === undefined) {
      const data = output.data();
      doc = typeof data === 'object' && data !== null ? parseDocument(data).doc : null;
      this.docs.set(output.key, doc);
    }
    return doc;
  }
}

function counted(span: Span): boolean {
  return (span.kind === 'llm' || span.kind === 'embedding') && span.duplicateOf === null;
}

export function ledger(cells: readonly CellOutputs[], cache = new DocumentCache()): Ledger {
  const out: CellSpend[] = [];
  const models = new Map<string, ModelSpend>();
  const model = (name: string) => {
    let m = models.get(name);
    if (!m) {
      m = { model: name, calls: 0, inputTokens: 0, outputTokens: 0, costUsd: null };
      models.set(name, m);
    }
    return m;
  };
  for (const cell of cells) {
    for (const output of cell.outputs) {
      const doc = cache.read(output);
      if (!doc) {
        continue;
      }
      const t = doc.totals;
      out.push({
        index: cell.index,
        label: title(doc),
        calls: t.llmCalls,
        inputTokens: t.inputTokens,
        outputTokens: t.outputTokens,
        costUsd: t.costUsd,
        durationMs: t.durationMs,
        errors: t.errors
      });
      let listedCalls = 0;
      let listedCost: number | null = null;
      for (const span of doc.spans.filter(counted)) {
        const m = model(span.model ?? '(unknown model)');
        m.calls += 1;
        m.inputTokens += span.inputTokens ?? 0;
        m.outputTokens += span.outputTokens ?? 0;
        m.costUsd = addCost(m.costUsd, span.costUsd);
        listedCalls += 1;
        listedCost = addCost(listedCost, span.costUsd);
      }
      // a big cell's document lists its first spans only: the rest still count, once
      if (t.llmCalls > listedCalls) {
        const rest = model(UNLISTED);
        rest.calls += t.llmCalls - listedCalls;
        const cost = t.costUsd === null ? null : t.costUsd - (listedCost ?? 0);
        rest.costUsd = addCost(rest.costUsd, cost !== null && cost > 1e-12 ? cost : null);
      }
    }
  }
  const total = out.reduce(
    (acc, c) => ({
      calls: acc.calls + c.calls,
      inputTokens: acc.inputTokens + c.inputTokens,
      outputTokens: acc.outputTokens + c.outputTokens,
      costUsd: addCost(acc.costUsd, c.costUsd),
      durationMs: addCost(acc.durationMs, c.durationMs),
      errors: acc.errors + c.errors
    }),
    {
      calls: 0,
      inputTokens: 0,
      outputTokens: 0,
      costUsd: null,
      durationMs: null,
      errors: 0
    } as Ledger['total']
  );
  const byCost = [...models.values()].sort((a, b) => (b.costUsd ?? -1) - (a.costUsd ?? -1));
  return { cells: out, models: byCost, total };
}

/** A table as rows of text, for the copy buttons. */
export interface TextTable {
  head: string[];
  rows: string[][];
}

function csvField(text: string): string {
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function toCsv(table: TextTable): string {
  return [table.head, ...table.rows].map(r => r.map(csvField).join(',')).join('\n') + '\n';
}

function markdownField(text: string): string {
  // a pipe would end the cell, a newline the row
  return text.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

export function toMarkdown(table: TextTable): string {
  const line = (r: string[]) => `| ${r.map(markdownField).join(' | ')} |`;
  return (
    [line(table.head), line(table.head.map(() => '---')), ...table.rows.map(line)].join('\n') + '\n'
  );
}

/** A cost for copying: exact to 8 decimals, no trailing zeros; empty when unknown. */
const exactCost = (v: number | null) => (v === null ? '' : v.toFixed(8).replace(/\.?0+$/, ''));

/** Exact numbers for copying: costs to 8 decimals, durations in ms. */
export function cellsTable(l: Ledger): TextTable {
  return {
    head: ['cell', 'calls', 'input_tokens', 'output_tokens', 'cost_usd', 'duration_ms', 'errors'],
    rows: l.cells.map(c => [
      c.label,
      String(c.calls),
      String(c.inputTokens),
      String(c.outputTokens),
      exactCost(c.costUsd),
      c.durationMs === null ? '' : String(Math.round(c.durationMs)),
      String(c.errors)
    ])
  };
}

export function modelsTable(l: Ledger): TextTable {
  return {
    head: ['model', 'calls', 'input_tokens', 'output_tokens', 'cost_usd'],
    rows: l.models.map(m => [
      m.model,
      String(m.calls),
      String(m.inputTokens),
      String(m.outputTokens),
      exactCost(m.costUsd)
    ])
  };
}
