import { parseDocument, totalsOf } from '../src/document';
import { loadDoc } from './docs';

describe('parseDocument on a real document', () => {
  const result = parseDocument(loadDoc('agent'));
  const doc = result.doc!;

  it('reads it without problems', () => {
    expect(result.fatal).toBeNull();
    expect(result.problems).toEqual([]);
    expect(result.newerVersion).toBeNull();
    expect(doc.version).toBe(1);
    expect(doc.cell).toBe(12);
    expect(doc.name).toBe('rag-eval');
    expect(doc.spans).toHaveLength(7);
  });

  it('reads left-out keys as the schema says', () => {
    const root = doc.spans[0];
    expect(root.status).toBe('unset'); // missing status = unset
    expect(root.traceId).toBe(doc.traceId); // missing trace_id = the document's
    const llm = doc.spans.find(s => s.name === 'chat gpt-4o-mini')!;
    expect(llm.totalTokens).toBe(1204 + 180); // missing total = in + out
    expect(llm.requestModel).toBe('gpt-4o-mini'); // missing request model = model
    expect(llm.cacheReadTokens).toBe(1024);
    expect(llm.reasoningTokens).toBeNull();
    expect(llm.isStreaming).toBe(true);
    expect(llm.ttftMs).toBe(310);
    const failed = doc.spans.find(s => s.status === 'error')!;
    expect(failed.errorType).toBe('RateLimitError');
  });

  it('keeps totals, including "no price" for unpriced models', () => {
    expect(doc.totals.llmCalls).toBe(3);
    expect(doc.totals.errors).toBe(1);
    expect(doc.totals.unpricedModels).toEqual(['house-model-7b']);
    const house = doc.spans.find(s => s.model === 'house-model-7b')!;
    expect(house.costUsd).toBeNull();
  });
});

describe('parseDocument on broken input', () => {
  it('says plainly when the data is not a document', () => {
    for (const data of [null, 42, [1, 2], 'not json', true]) {
      const r = parseDocument(data);
      expect(r.doc).toBeNull();
      expect(r.fatal).toMatch(/not a trace document/);
    }
  });

  it('accepts a document stored as JSON text', () => {
    const r = parseDocument(JSON.stringify(loadDoc('agent')));
    expect(r.doc!.spans).toHaveLength(7);
  });

  it('flags a newer version and still reads what it can', () => {
    const raw = loadDoc('agent');
    raw.version = 7;
    raw.spans[0].new_field = { anything: [1, 2] };
    const r = parseDocument(raw);
    expect(r.newerVersion).toBe(7);
    expect(r.doc!.spans).toHaveLength(7);
  });

  it('flags a missing version', () => {
    const raw = loadDoc('agent');
    delete raw.version;
    expect(parseDocument(raw).versionMissing).toBe(true);
  });

  it('coerces ill-typed fields to unknown and reports them once', () => {
    const raw = loadDoc('agent');
    raw.spans[1].duration_ms = 'fast';
    raw.spans[2].duration_ms = 'slow';
    raw.spans[3].input_tokens = -5;
    raw.spans[3].input_messages = 'hello';
    raw.spans[4].status = 'weird';
    raw.spans[5] = 'not a span';
    const r = parseDocument(raw);
    const spans = r.doc!.spans;
    expect(spans).toHaveLength(6);
    expect(spans[1].durationMs).toBeNull();
    expect(spans[3].inputTokens).toBeNull();
    expect(spans[3].inputMessages).toBeNull();
    expect(spans[4].status).toBe('unset');
    expect(r.problems.join('\n')).toMatch(/"duration_ms" is a string, expected a number \(2 times\)/);
    expect(r.problems.join('\n')).toMatch(/a span is a string/);
  });

  it('derives totals when they are missing', () => {
    const raw = loadDoc('agent');
    delete raw.totals;
    const r = parseDocument(raw);
    expect(r.doc!.totals.llmCalls).toBe(3);
    expect(r.doc!.totals.errors).toBe(1);
    expect(r.problems.join()).toMatch(/totals/);
  });

  it('keeps the tree consistent when depth skips levels', () => {
    const r = parseDocument({
      version: 1,
      spans: [
        { span_id: 'a', name: 'a', kind: 'cell', depth: 0, start_ms: 0, duration_ms: 5 },
        { span_id: 'b', name: 'b', kind: 'llm', depth: 4, start_ms: 1, duration_ms: 1 }
      ]
    });
    expect(r.doc!.spans[1].depth).toBe(1);
  });

  it('reads an unknown kind as "other" but keeps its label', () => {
    const r = parseDocument({
      version: 1,
      spans: [{ span_id: 'a', name: 'a', kind: 'guardrail', depth: 0, start_ms: 0 }]
    });
    expect(r.doc!.spans[0].kind).toBe('other');
    expect(r.doc!.spans[0].kindLabel).toBe('guardrail');
  });

  it('never throws, whatever the values are', () => {
    const values: unknown[] = [null, 0, -1, 1e308, 'x', [], {}, [null], { a: [] }, true];
    let seed = 7;
    const pick = () => values[(seed = (seed * 48271) % 2147483647) % values.length];
    const keys = Object.keys(loadDoc('agent').spans[3]).concat(['truncated', 'detail']);
    for (let n = 0; n < 300; n++) {
      const span: Record<string, unknown> = {};
      keys.forEach(k => (span[k] = pick()));
      const doc = { version: pick(), totals: pick(), omitted: pick(), limits: pick(), spans: [span, pick()] };
      expect(() => parseDocument(doc)).not.toThrow();
    }
  });
});

describe('totalsOf', () => {
  it('sums LLM calls and says "no price" when none has one', () => {
    const r = parseDocument({
      version: 1,
      spans: [
        { span_id: 'a', name: 'a', kind: 'llm', depth: 0, start_ms: 0, duration_ms: 10, input_tokens: 3, output_tokens: 2 }
      ]
    });
    const t = totalsOf(r.doc!.spans);
    expect(t.totalTokens).toBe(5);
    expect(t.costUsd).toBeNull();
    expect(t.durationMs).toBe(10);
  });
});
