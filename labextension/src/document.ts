/**
 * Reading the trace document (schema version 1). Its schema is
 * `llmtrace_nb/_shape/trace_document.schema.json`; the types of the document as written
 * (`*Json`) are generated from it into `document.generated.ts` (`npm run build:types`).
 *
 * The document comes from a saved notebook, so anything can be in it: an older or newer
 * llmtrace_nb, a hand-edited file, a truncated download. Parsing therefore never throws:
 * every field is checked and coerced, what cannot be read becomes "unknown" (null) and
 * is reported once in `problems`, and the view shows whatever is left.
 */

import type {
  EvaluationJson,
  EvictedJson,
  LimitsJson,
  MessageJson,
  OmittedJson,
  SpanJson,
  SpanKind,
  SpanStatus,
  ToolCallJson,
  TotalsJson,
  TraceDocumentJson
} from './document.generated';

export const MIME_TYPE = 'application/vnd.llmtrace.trace+json';
/** The schema version this extension was written for. */
export const SUPPORTED_VERSION = 1;

/**
 * The view's types follow from the document's generated ones (`*Json`, from the schema):
 * the same keys in camelCase, every one present, an optional key (one the document leaves
 * out when unknown) read as null. Keys the view reads its own way are named where it does,
 * so a key added to or taken from the schema fails `tsc` here until the parser agrees.
 */
type Camel<S extends string> = S extends `${infer Head}_${infer Tail}`
  ? `${Head}${Capitalize<Camel<Tail>>}`
  : S;
type Read<T> = {
  [K in keyof T & string as Camel<K>]-?:
    Exclude<T[K], undefined> | (undefined extends T[K] ? null : never);
};
/** `Omit<A, K> & B` as one object type (readable in editors and errors) */
type With<A, K extends keyof A, B> = {
  [P in Exclude<keyof A, K> | keyof B]: P extends keyof B ? B[P] : P extends keyof A ? A[P] : never;
};

/** Every kind of the schema once, in the legend's order: a Record, so `tsc` fails when
 * the schema's kinds and this list part. */
const KIND_ORDER: Record<SpanKind, true> = {
  llm: true,
  embedding: true,
  tool: true,
  retrieval: true,
  agent: true,
  chain: true,
  cell: true,
  other: true
};
export const KINDS = Object.keys(KIND_ORDER) as readonly SpanKind[];
export type Kind = SpanKind;
/** `unset` is what a span without a status key has. */
export type Status = SpanStatus | 'unset';

export type ToolCall = Read<ToolCallJson>;

/** A judgement of the span (gen_ai.evaluation.result): its name, score, label, why. */
export type Evaluation = Read<EvaluationJson>;

export type Message = With<
  Read<MessageJson>,
  'toolCalls' | 'unreadable',
  { toolCalls: ToolCall[] }
>;

export type Span = With<
  Read<SpanJson>,
  | 'name'
  | 'kind'
  | 'status'
  | 'isStreaming'
  | 'inputMessages'
  | 'outputMessages'
  | 'attributes'
  | 'truncated'
  | 'detail'
  | 'evaluations',
  {
    name: string;
    kind: Kind;
    /** the kind as written, when it is not one of KINDS (shown, colored as "other") */
    kindLabel: string;
    status: Status;
    isStreaming: boolean;
    inputMessages: Message[] | null;
    outputMessages: Message[] | null;
    attributes: Record<string, unknown> | null;
    truncated: boolean;
    /** "detail": "omitted" */
    detailOmitted: boolean;
    /** judgements of the span, oldest first (none: empty) */
    evaluations: Evaluation[];
    /** the span as it was in the document, for "copy span JSON" */
    raw: unknown;
  }
>;

/** costUsd null: no price known; see TotalsJson */
export type Totals = Read<TotalsJson>;
export type Omitted = Read<OmittedJson>;
/** Spans of the cell that left the buffer (max_spans): not listed; the totals include
 * them, but for the uncounted ones. */
export type Evicted = Read<EvictedJson>;

type Limits = Read<LimitsJson>;

export type TraceDocument = With<
  Read<TraceDocumentJson>,
  'version' | 'generator' | 'totals' | 'omitted' | 'evicted' | 'limits' | 'spans',
  {
    /** null when missing; another version than SUPPORTED_VERSION is read as well as it can be */
    version: number | null;
    generator: string | null;
    totals: Totals;
    omitted: Omitted | null;
    evicted: Evicted | null;
    spans: Span[];
  } & { [K in keyof Limits]: Limits[K] | null }
>;

export interface ParseResult {
  /** null only when the data is not a trace document at all */
  doc: TraceDocument | null;
  /** a version newer than SUPPORTED_VERSION, or an unreadable one */
  newerVersion: number | null;
  versionMissing: boolean;
  /** why nothing could be read, when doc is null */
  fatal: string | null;
  /** what could not be read, one line per distinct problem */
  problems: string[];
}

type Obj = Record<string, unknown>;

/** Collects problems once per distinct message, with how many spans had it. */
class Problems {
  private counts = new Map<string, number>();

  add(message: string): void {
    this.counts.set(message, (this.counts.get(message) ?? 0) + 1);
  }

  list(): string[] {
    return [...this.counts].map(([message, n]) =>
      n > 1 ? `${message} (${n.toLocaleString('en-US')} times)` : message
    );
  }
}

function isObject(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) {
    return 'null';
  }
  if (Array.isArray(value)) {
    return 'a list';
  }
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

/** Field readers: missing (undefined or null) is unknown; a wrong type is a problem. The
 * keys are those of T, the object's generated type, so a key the schema lacks fails `tsc`. */
class Reader<T> {
  constructor(
    private readonly obj: Obj,
    private readonly where: string,
    private readonly problems: Problems
  ) {}

  private bad(key: keyof T & string, expected: string): null {
    this.problems.add(
      `${this.where}: "${key}" is ${describe(this.obj[key])}, expected ${expected}`
    );
    return null;
  }

  has(key: keyof T & string): boolean {
    return this.obj[key] !== undefined && this.obj[key] !== null;
  }

  number(key: keyof T & string): number | null {
    const value = this.obj[key];
    if (value === undefined || value === null) {
      return null;
    }
    return typeof value === 'number' && Number.isFinite(value) ? value : this.bad(key, 'a number');
  }

  /** a count: a finite number >= 0, rounded */
  count(key: keyof T & string): number | null {
    const value = this.number(key);
    if (value === null) {
      return null;
    }
    return value >= 0 ? Math.round(value) : this.bad(key, 'a count >= 0');
  }

  text(key: keyof T & string): string | null {
    const value = this.obj[key];
    if (value === undefined || value === null) {
      return null;
    }
    if (typeof value === 'string') {
      return value;
    }
    // a number or boolean where text was expected is still readable as text
    if (typeof value === 'number' || typeof value === 'boolean') {
      return String(value);
    }
    return this.bad(key, 'text');
  }

  bool(key: keyof T & string): boolean | null {
    const value = this.obj[key];
    if (value === undefined || value === null) {
      return null;
    }
    return typeof value === 'boolean' ? value : this.bad(key, 'true or false');
  }

  object(key: keyof T & string): Obj | null {
    const value = this.obj[key];
    if (value === undefined || value === null) {
      return null;
    }
    return isObject(value) ? value : this.bad(key, 'an object');
  }

  list(key: keyof T & string): unknown[] | null {
    const value = this.obj[key];
    if (value === undefined || value === null) {
      return null;
    }
    return Array.isArray(value) ? value : this.bad(key, 'a list');
  }
}

/** Any JSON value as display text: strings as they are, the rest as JSON. */
export function asText(value: unknown): string {
  if (typeof value === 'string') {
    return value;
  }
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function readToolCall(value: unknown): ToolCall | null {
  if (!isObject(value)) {
    return null;
  }
  const str = (key: keyof ToolCallJson): string | null =>
    value[key] === undefined || value[key] === null ? null : asText(value[key]);
  return { id: str('id'), name: str('name'), arguments: str('arguments') };
}

function readMessages(value: unknown[] | null, problems: Problems): Message[] | null {
  if (value === null) {
    return null;
  }
  const out: Message[] = [];
  for (const item of value) {
    if (!isObject(item)) {
      problems.add(`a message is ${describe(item)}, expected an object`);
      continue;
    }
    const str = (key: keyof MessageJson): string | null =>
      item[key] === undefined || item[key] === null ? null : asText(item[key]);
    const toolCalls: keyof MessageJson = 'tool_calls';
    const calls = Array.isArray(item[toolCalls]) ? item[toolCalls] : [];
    out.push({
      role: str('role') ?? 'unknown',
      content: str('content'),
      toolCalls: calls.map(readToolCall).filter((c): c is ToolCall => c !== null),
      toolCallId: str('tool_call_id'),
      name: str('name'),
      finishReason: str('finish_reason')
    });
  }
  return out;
}

function readEvaluations(value: unknown[] | null, problems: Problems): Evaluation[] {
  const out: Evaluation[] = [];
  for (const item of value ?? []) {
    if (!isObject(item)) {
      problems.add(`an evaluation is ${describe(item)}, expected an object`);
      continue;
    }
    const r = new Reader<EvaluationJson>(item, 'evaluation', problems);
    const name = r.text('name');
    if (name === null) {
      problems.add('evaluation: "name" is missing, left out');
      continue;
    }
    out.push({
      name,
      score: r.number('score'),
      label: r.text('label'),
      explanation: r.text('explanation'),
      negative: r.bool('negative') ?? false
    });
  }
  return out;
}

function readKind(text: string | null): { kind: Kind; label: string } {
  const label = text ?? 'other';
  const kind = (KINDS as readonly string[]).includes(label) ? (label as Kind) : 'other';
  return { kind, label };
}

function readStatus(text: string | null, problems: Problems): Status {
  if (text === null) {
    return 'unset'; // left out of the document when unset
  }
  if (text === 'ok' || text === 'error' || text === 'unset') {
    return text;
  }
  problems.add(`span: unknown status "${text}", read as unset`);
  return 'unset';
}

function readSpan(
  value: unknown,
  previousDepth: number,
  docTraceId: string | null,
  problems: Problems
): Span | null {
  if (!isObject(value)) {
    problems.add(`a span is ${describe(value)}, expected an object`);
    return null;
  }
  const r = new Reader<SpanJson>(value, 'span', problems);
  let depth = r.count('depth') ?? 0;
  // Spans come in tree order, so a span is at most one level below the one before it;
  // a deeper value would make the indentation lie about the tree.
  if (depth > previousDepth + 1) {
    problems.add('span: "depth" skips a level, read as one below the span before it');
    depth = previousDepth + 1;
  }
  const startMs = r.number('start_ms');
  if (startMs === null) {
    problems.add('span: "start_ms" is missing, drawn at the start of the cell');
  }
  let durationMs = r.number('duration_ms');
  if (durationMs !== null && durationMs < 0) {
    problems.add('span: "duration_ms" is negative, read as unknown');
    durationMs = null;
  }
  const inputTokens = r.count('input_tokens');
  const outputTokens = r.count('output_tokens');
  let totalTokens = r.count('total_tokens');
  if (totalTokens === null && (inputTokens !== null || outputTokens !== null)) {
    totalTokens = (inputTokens ?? 0) + (outputTokens ?? 0); // left out when in + out
  }
  const model = r.text('model');
  const { kind, label } = readKind(r.text('kind'));
  const detailOmitted = r.text('detail') === 'omitted';
  const attributes = r.object('attributes');
  let ttftMs = r.number('ttft_ms');
  if (ttftMs !== null && ttftMs < 0) {
    ttftMs = null;
  }
  return {
    spanId: r.text('span_id'),
    parentSpanId: r.text('parent_span_id'),
    traceId: r.text('trace_id') ?? docTraceId,
    name: r.text('name') ?? '(unnamed span)',
    kind,
    kindLabel: label,
    status: readStatus(r.text('status'), problems),
    errorType: r.text('error_type'),
    depth,
    startMs: startMs ?? 0,
    durationMs,
    ttftMs,
    provider: r.text('provider'),
    model,
    tool: r.text('tool'),
    requestModel: r.text('request_model') ?? model,
    responseModel: r.text('response_model') ?? model,
    inputTokens,
    outputTokens,
    totalTokens,
    cacheReadTokens: r.count('cache_read_tokens'),
    cacheWriteTokens: r.count('cache_write_tokens'),
    reasoningTokens: r.count('reasoning_tokens'),
    costUsd: r.number('cost_usd'),
    isStreaming: r.bool('is_streaming') ?? false,
    duplicateOf: r.text('duplicate_of'),
    finishReasons: r.text('finish_reasons'),
    inputMessages: readMessages(r.list('input_messages'), problems),
    outputMessages: readMessages(r.list('output_messages'), problems),
    attributes,
    truncated: r.bool('truncated') ?? false,
    detailOmitted,
    evaluations: readEvaluations(r.list('evaluations'), problems),
    raw: value
  };
}

const PRICED_KINDS: ReadonlySet<Kind> = new Set(['llm', 'embedding']);

/** Totals from the spans, for a document whose "totals" cannot be read. */
export function totalsOf(spans: Span[]): Totals {
  const counted = spans.filter(s => s.duplicateOf === null);
  const calls = counted.filter(s => PRICED_KINDS.has(s.kind));
  const sum = (f: (s: Span) => number | null) => calls.reduce((acc, s) => acc + (f(s) ?? 0), 0);
  const costs = calls.filter(s => s.costUsd !== null);
  const end = spans.reduce((acc, s) => Math.max(acc, s.startMs + (s.durationMs ?? 0)), 0);
  const input = sum(s => s.inputTokens);
  const output = sum(s => s.outputTokens);
  return {
    spans: spans.length,
    llmCalls: calls.length,
    inputTokens: input,
    outputTokens: output,
    totalTokens: input + output,
    cacheReadTokens: sum(s => s.cacheReadTokens),
    cacheWriteTokens: sum(s => s.cacheWriteTokens),
    costUsd: costs.length ? sum(s => s.costUsd) : calls.length ? null : 0,
    durationMs: spans.length ? end : 0,
    errors: counted.filter(s => s.status === 'error').length,
    sameCallSpans: spans.length - counted.length,
    unpricedModels: []
  };
}

function readTotals(value: Obj | null, spans: Span[], problems: Problems): Totals {
  const derived = totalsOf(spans);
  if (value === null) {
    problems.add('"totals" is missing; the header shows totals of the spans shown');
    return derived;
  }
  const r = new Reader<TotalsJson>(value, 'totals', problems);
  const input = r.count('input_tokens') ?? derived.inputTokens;
  const output = r.count('output_tokens') ?? derived.outputTokens;
  const models = r.list('unpriced_models') ?? [];
  return {
    spans: r.count('spans') ?? derived.spans,
    llmCalls: r.count('llm_calls') ?? derived.llmCalls,
    inputTokens: input,
    outputTokens: output,
    totalTokens: r.count('total_tokens') ?? input + output,
    cacheReadTokens: r.count('cache_read_tokens') ?? derived.cacheReadTokens,
    cacheWriteTokens: r.count('cache_write_tokens') ?? derived.cacheWriteTokens,
    // null is meaningful here: "no price", not "unknown field"
    costUsd: r.has('cost_usd') ? r.number('cost_usd') : r.has('llm_calls') ? null : derived.costUsd,
    durationMs: r.number('duration_ms') ?? derived.durationMs,
    errors: r.count('errors') ?? derived.errors,
    sameCallSpans: r.count('same_call_spans') ?? derived.sameCallSpans,
    unpricedModels: models.filter((m): m is string => typeof m === 'string')
  };
}

function readEvicted(value: Obj | null, problems: Problems): Evicted | null {
  if (value === null) {
    return null;
  }
  const r = new Reader<EvictedJson>(value, 'evicted', problems);
  const spans = r.count('spans') ?? 0;
  return spans > 0 ? { spans, uncounted: r.count('uncounted') ?? 0 } : null;
}

function readOmitted(value: Obj | null, problems: Problems): Omitted | null {
  if (value === null) {
    return null;
  }
  const r = new Reader<OmittedJson>(value, 'omitted', problems);
  const spans = r.count('spans') ?? 0;
  if (spans === 0) {
    return null;
  }
  return {
    spans,
    llmCalls: r.count('llm_calls') ?? 0,
    inputTokens: r.count('input_tokens') ?? 0,
    outputTokens: r.count('output_tokens') ?? 0,
    costUsd: r.number('cost_usd'),
    errors: r.count('errors') ?? 0
  };
}

/** The document as the view needs it, from whatever JSON the output holds. */
export function parseDocument(data: unknown): ParseResult {
  const problems = new Problems();
  const result: ParseResult = {
    doc: null,
    newerVersion: null,
    versionMissing: false,
    fatal: null,
    problems: []
  };
  if (typeof data === 'string') {
    // some frontends store JSON outputs as text
    try {
      data = JSON.parse(data);
    } catch {
      result.fatal = 'This output is not a trace document: its data is text, not JSON.';
      return result;
    }
  }
  if (!isObject(data)) {
    result.fatal = `This output is not a trace document: its data is ${describe(data)}, not an object.`;
    return result;
  }
  const r = new Reader<TraceDocumentJson>(data, 'document', problems);
  const version = data.version;
  if (typeof version === 'number' && Number.isFinite(version)) {
    if (version !== SUPPORTED_VERSION) {
      result.newerVersion = version;
    }
  } else {
    result.versionMissing = true;
  }
  const docTraceId = r.text('trace_id');
  const rawSpans = r.list('spans') ?? [];
  if (!r.has('spans')) {
    problems.add('"spans" is missing');
  }
  const spans: Span[] = [];
  let previousDepth = -1;
  for (const raw of rawSpans) {
    const span = readSpan(raw, previousDepth, docTraceId, problems);
    if (span) {
      spans.push(span);
      previousDepth = span.depth;
    }
  }
  const limits = r.object('limits');
  const lr = limits ? new Reader<LimitsJson>(limits, 'limits', problems) : null;
  const openSpans = r.count('open_spans') ?? 0;
  result.doc = {
    version: typeof version === 'number' ? version : null,
    generator: r.text('generator'),
    cell: r.number('cell'),
    name: r.text('name') ?? 'trace',
    startTime: r.text('start_time'),
    traceId: docTraceId,
    open: (r.bool('open') ?? false) || openSpans > 0,
    openSpans,
    totals: readTotals(r.object('totals'), spans, problems),
    omitted: readOmitted(r.object('omitted'), problems),
    evicted: readEvicted(r.object('evicted'), problems),
    maxSpans: lr ? lr.count('max_spans') : null,
    maxText: lr ? lr.count('max_text') : null,
    spans
  };
  result.problems = problems.list();
  return result;
}
