/**
 * The comparison of runs (`llmtrace_nb.compare()`, MIME type
 * application/vnd.llmtrace.compare+json): its data read defensively, and drawn as tables
 * — totals with changes against the first side, judgements, per model — and the calls
 * paired (in order, or by span name) with their outputs' word diff.
 *
 * Like the trace document, the data comes from a notebook and may be anything: reading
 * never throws, a part that cannot be read is left out, and every text goes in as text.
 */

import { append, el } from './dom';
import { formatCost, formatDuration } from './format';
import { notice } from './notices';

export const COMPARE_MIME_TYPE = 'application/vnd.llmtrace.compare+json';

type Obj = Record<string, unknown>;
type Metrics = Record<string, number | null>;

const LABELS: Record<string, string> = {
  calls: 'LLM calls',
  errors: 'errors',
  input_tokens: 'input tokens',
  output_tokens: 'output tokens',
  cache_read_tokens: 'cached tokens',
  cost_usd: 'cost',
  wall_ms: 'wall time',
  latency_p50_ms: 'latency p50',
  latency_p95_ms: 'latency p95',
  ttft_p50_ms: 'TTFT p50'
};

function isObject(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function num(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

function str(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function metricsOf(value: unknown, names: string[]): Metrics {
  const obj = isObject(value) ? value : {};
  return Object.fromEntries(names.map(n => [n, num(obj[n])]));
}

export function valueText(metric: string, value: number | null): string {
  if (metric === 'cost_usd') {
    return formatCost(value);
  }
  if (value === null) {
    return '–';
  }
  return metric.endsWith('_ms') ? formatDuration(value) : value.toLocaleString('en-US');
}

export function deltaText(metric: string, first: number | null, other: number | null): string {
  if (first === null || other === null) {
    return '';
  }
  const delta = other - first;
  const sign = delta > 0 ? '+' : delta < 0 ? '−' : '±';
  const shown = delta ? valueText(metric, Math.abs(delta)) : '0';
  return `${sign}${shown}${first ? ` (${(other / first).toFixed(2)}×)` : ''}`;
}

function table(labels: string[], metrics: string[], sides: Metrics[]): HTMLElement {
  const node = el('table', 'lc-table');
  const head = el('tr');
  head.appendChild(el('th'));
  labels.forEach(l => head.appendChild(el('th', '', l)));
  labels.slice(1).forEach(l => head.appendChild(el('th', '', `Δ ${l}`)));
  node.appendChild(append(el('thead'), head));
  const body = el('tbody');
  for (const metric of metrics) {
    const row = el('tr');
    row.appendChild(el('th', '', LABELS[metric] ?? metric));
    const values = sides.map(s => s[metric] ?? null);
    values.forEach(v => row.appendChild(el('td', '', valueText(metric, v))));
    values.slice(1).forEach(v => row.appendChild(el('td', '', deltaText(metric, values[0], v))));
    body.appendChild(row);
  }
  return append(node, body);
}

function diffNode(ops: unknown[]): HTMLElement {
  const pre = el('pre', 'lc-output');
  for (const op of ops) {
    const [kind, words] = Array.isArray(op) ? op : [];
    if (typeof words !== 'string') {
      continue;
    }
    pre.appendChild(
      kind === '-'
        ? el('del', '', words)
        : kind === '+'
          ? el('ins', '', words)
          : el('span', '', words)
    );
  }
  return pre;
}

function callLine(label: string, call: unknown): HTMLElement {
  const line = el('div', 'lc-call');
  line.appendChild(el('b', '', `${label}: `));
  if (!isObject(call)) {
    line.appendChild(el('span', 'lc-muted', '(no call)'));
    return line;
  }
  const tokens = [num(call.input_tokens), num(call.output_tokens)];
  const parts = [
    str(call.model) ?? str(call.name) ?? '',
    tokens.some(t => t !== null) ? `${tokens[0] ?? 0} in · ${tokens[1] ?? 0} out` : '',
    formatCost(num(call.cost_usd)),
    formatDuration(num(call.duration_ms))
  ];
  line.appendChild(el('span', '', parts.filter(Boolean).join(' · ')));
  return line;
}

/** "call 3" for a pair in order, "openai.chat 2" for one paired by span name. */
function pairTitle(pair: Obj): string {
  const name = str(pair.name);
  if (name !== null) {
    return `${name} ${num(pair.nth) ?? 1}`;
  }
  return `call ${(num(pair.index) ?? 0) + 1}`;
}

function pairNode(labels: string[], pair: Obj): HTMLElement {
  const calls = list(pair.calls);
  const diffs = list(pair.diffs);
  const details = el('details', 'lc-pair');
  const models = calls.map(c => (isObject(c) ? str(c.model) : null) ?? '–');
  details.appendChild(el('summary', '', `${pairTitle(pair)}: ${models.join(' vs ')}`));
  labels.forEach((label, i) => details.appendChild(callLine(label, calls[i])));
  labels.forEach((label, i) => {
    const call = calls[i];
    const output = isObject(call) ? str(call.output) : null;
    if (output === null) {
      return;
    }
    const ops = i > 0 ? diffs[i - 1] : null;
    const box = el('div', 'lc-side');
    box.appendChild(el('b', '', label));
    box.appendChild(Array.isArray(ops) ? diffNode(ops) : el('pre', 'lc-output', output));
    details.appendChild(box);
  });
  return details;
}

/** The comparison drawn; a root with a notice when the data cannot be read at all. */
export function renderComparison(data: unknown): HTMLElement {
  const root = el('div', 'lt-root lc-root');
  if (!isObject(data) || !Array.isArray(data.labels) || !Array.isArray(data.totals)) {
    root.appendChild(notice('error', 'This output is not a comparison llmtrace_nb can read.'));
    return root;
  }
  const labels = data.labels.map((l, i) => str(l) ?? `side ${i + 1}`);
  const metrics = list(data.metrics).filter((m): m is string => typeof m === 'string');
  const given = list(data.totals);
  const totals = labels.map((_, i) => metricsOf(given[i], metrics));
  root.appendChild(el('div', 'lc-title', `compare: ${labels.join(' vs ')}`));
  root.appendChild(table(labels, metrics, totals));
  const judged = list(data.judgements);
  const rows: HTMLElement[] = [];
  labels.forEach((label, i) => {
    for (const j of list(judged[i])) {
      if (!isObject(j) || str(j.name) === null) {
        continue;
      }
      const row = el('tr');
      const mean = num(j.mean_score);
      const rate = num(j.pass_rate);
      [label, str(j.name) ?? '', String(num(j.count) ?? 0)].forEach(t =>
        row.appendChild(el('td', '', t))
      );
      row.appendChild(el('td', '', mean === null ? '' : mean.toPrecision(3)));
      row.appendChild(el('td', '', rate === null ? '' : `${Math.round(rate * 100)} %`));
      rows.push(row);
    }
  });
  if (rows.length) {
    root.appendChild(el('div', 'lc-heading', 'judgements'));
    const head = el('tr');
    ['side', 'evaluation', 'count', 'mean score', 'pass rate'].forEach(h =>
      head.appendChild(el('th', '', h))
    );
    root.appendChild(
      append(el('table', 'lc-table'), append(el('thead'), head), append(el('tbody'), ...rows))
    );
  }
  const models = list(data.models).filter(isObject);
  if (models.length) {
    root.appendChild(el('div', 'lc-heading', 'per model'));
    for (const entry of models) {
      const sides = list(entry.sides);
      root.appendChild(el('div', 'lc-model', str(entry.model) ?? '(no model)'));
      root.appendChild(
        table(
          labels,
          metrics.filter(m => m !== 'wall_ms'),
          labels.map((_, i) => metricsOf(sides[i], metrics))
        )
      );
    }
  }
  const pairs = list(data.pairs).filter(isObject);
  if (pairs.length) {
    const by = data.paired_by === 'name' ? 'by span name' : 'in order';
    root.appendChild(el('div', 'lc-heading', `calls, paired ${by}`));
    pairs.forEach(p => root.appendChild(pairNode(labels, p)));
  }
  const more = num(data.more_pairs);
  if (more) {
    root.appendChild(el('div', 'lc-muted', `${more} more calls not paired here`));
  }
  return root;
}
