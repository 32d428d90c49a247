import * as fs from 'fs';
import * as path from 'path';

import extensions, { compareRendererFactory, rendererFactory } from '../src/index';
import { COMPARE_MIME_TYPE } from '../src/compare';
import { MIME_TYPE } from '../src/document';
import { CompareRenderer, TraceRenderer } from '../src/renderer';
import { loadDoc } from './docs';

function mimeModel(data: Record<string, unknown>): any {
  return { data, metadata: {}, trusted: false, setData: () => undefined };
}

describe('the mime extensions', () => {
  it('are safe and rank below text/html', () => {
    const [extension, compare] = extensions;
    expect(extension.rendererFactory.safe).toBe(true);
    expect(extension.rendererFactory.mimeTypes).toEqual(['application/vnd.llmtrace.trace+json']);
    expect(extension.rank).toBe(0);
    expect(rendererFactory.defaultRank).toBeLessThan(50);
    expect(compare.rendererFactory).toBe(compareRendererFactory);
    expect(compareRendererFactory.safe).toBe(true);
    expect(compareRendererFactory.mimeTypes).toEqual(['application/vnd.llmtrace.compare+json']);
    expect(compareRendererFactory.defaultRank).toBeLessThan(50);
  });
});

const XSS = '<img src=x onerror="window.__xss = 21">';

function comparison(): Record<string, unknown> {
  const side = (calls: number, cost: number) => ({
    calls,
    errors: 0,
    input_tokens: 100 * calls,
    output_tokens: 10 * calls,
    cache_read_tokens: 0,
    cost_usd: cost,
    wall_ms: 1200,
    latency_p50_ms: 300,
    latency_p95_ms: 900,
    ttft_p50_ms: null
  });
  return {
    version: 1,
    labels: ['prompt v1', XSS],
    metrics: [
      'calls',
      'errors',
      'input_tokens',
      'output_tokens',
      'cache_read_tokens',
      'cost_usd',
      'wall_ms',
      'latency_p50_ms',
      'latency_p95_ms',
      'ttft_p50_ms'
    ],
    totals: [side(2, 0.001), side(3, 0.0015)],
    models: [{ model: 'gpt-4o', sides: [side(2, 0.001), side(3, 0.0015)] }],
    pairs: [
      {
        index: 0,
        calls: [
          { model: 'gpt-4o', output: 'Paris is the capital', cost_usd: 0.0005 },
          { model: 'gpt-4o', output: `Paris ${XSS}`, cost_usd: 0.0005 }
        ],
        diffs: [
          [
            ['=', 'Paris '],
            ['-', 'is the capital'],
            ['+', XSS]
          ]
        ]
      },
      { index: 1, calls: [null, { model: 'gpt-4o', output: 'Rome' }] },
      'not a pair'
    ],
    more_pairs: 0,
    judgements: [[{ name: 'exact', count: 2, mean_score: 0.5, pass_rate: 0.5 }], []]
  };
}

describe('CompareRenderer', () => {
  it('draws totals with changes, judgements, models and paired calls', async () => {
    const renderer = compareRendererFactory.createRenderer({
      mimeType: COMPARE_MIME_TYPE
    } as any) as CompareRenderer;
    await renderer.renderModel(mimeModel({ [COMPARE_MIME_TYPE]: comparison() }));
    const node = renderer.node;
    expect(node.classList).toContain('jp-LLMTraceCompareRenderer');
    const text = node.textContent ?? '';
    expect(text).toContain('compare: prompt v1 vs ' + XSS);
    expect(text).toContain('+1 (1.50×)');
    expect(text).toContain('exact');
    expect(text).toContain('50 %');
    expect(node.querySelectorAll('details.lc-pair')).toHaveLength(2);
    expect(node.querySelector('del')!.textContent).toBe('is the capital');
    expect(node.querySelector('ins')!.textContent).toBe(XSS);
    expect(node.querySelectorAll('img, script')).toHaveLength(0);
    expect((window as any).__xss).toBeUndefined();
  });

  it('titles pairs by span name when paired so', async () => {
    const renderer = new CompareRenderer();
    const data = {
      ...comparison(),
      paired_by: 'name',
      pairs: [
        { index: 0, name: 'openai.chat', nth: 1, calls: [{ model: 'a' }, { model: 'b' }] },
        { index: 1, name: XSS, nth: 2, calls: [{ model: 'a' }, null] }
      ]
    };
    await renderer.renderModel(mimeModel({ [COMPARE_MIME_TYPE]: data }));
    const titles = [...renderer.node.querySelectorAll('details.lc-pair > summary')].map(
      s => s.textContent
    );
    expect(titles).toEqual(['openai.chat 1: a vs b', `${XSS} 2: a vs –`]);
    expect(renderer.node.textContent).toContain('calls, paired by span name');
    expect(renderer.node.querySelectorAll('img, script')).toHaveLength(0);
  });

  it('never throws, and says when the data is not a comparison', async () => {
    const renderer = new CompareRenderer();
    for (const data of [undefined, null, 'x', 3, { labels: 'no' }, { labels: [], totals: 'x' }]) {
      await renderer.renderModel(mimeModel({ [COMPARE_MIME_TYPE]: data, 'text/plain': 'p' }));
      expect(renderer.node.textContent).toContain('not a comparison');
    }
    await renderer.renderModel(
      mimeModel({ [COMPARE_MIME_TYPE]: { labels: [1, null], totals: [null, 'x'], pairs: 'x' } })
    );
    expect(renderer.node.textContent).toContain('side 2');
  });
});

describe('TraceRenderer', () => {
  it('renders a saved document', async () => {
    const renderer = rendererFactory.createRenderer({ mimeType: MIME_TYPE } as any) as TraceRenderer;
    await renderer.renderModel(mimeModel({ [MIME_TYPE]: loadDoc('agent'), 'text/plain': 'x' }));
    expect(renderer.node.querySelectorAll('.lt-row')).toHaveLength(7);
    expect(renderer.node.classList).toContain('jp-LLMTraceRenderer');
  });

  it('re-renders when the output changes', async () => {
    const renderer = new TraceRenderer();
    await renderer.renderModel(mimeModel({ [MIME_TYPE]: loadDoc('agent') }));
    await renderer.renderModel(mimeModel({ [MIME_TYPE]: loadDoc('empty') }));
    expect(renderer.node.querySelectorAll('.lt-row')).toHaveLength(0);
    expect(renderer.node.querySelectorAll('.lt-root')).toHaveLength(1);
  });

  it('never throws out of renderModel', async () => {
    const renderer = new TraceRenderer();
    for (const data of [undefined, null, 'x', 3, { spans: 'no' }, { version: 1, spans: [null] }]) {
      await expect(renderer.renderModel(mimeModel({ [MIME_TYPE]: data }))).resolves.toBeUndefined();
    }
  });

  it('falls back to the text summary if drawing fails', async () => {
    const renderer = new TraceRenderer();
    const doc = loadDoc('agent');
    // a getter that throws stands in for a bug in the view
    Object.defineProperty(doc, 'spans', { get: () => { throw new Error('boom'); } });
    await renderer.renderModel(mimeModel({ [MIME_TYPE]: doc, 'text/plain': 'rag-eval · 4.82 s' }));
    expect(renderer.node.textContent).toContain('could not draw this output (boom)');
    expect(renderer.node.querySelector('pre')!.textContent).toBe('rag-eval · 4.82 s');
  });
});

describe('the sources', () => {
  it('never write markup from strings', () => {
    const dir = path.resolve(__dirname, '../src');
    for (const file of fs.readdirSync(dir)) {
      const source = fs.readFileSync(path.join(dir, file), 'utf-8');
      expect([file, source.match(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|\.href\s*=|\.src\s*=/g)]).toEqual([file, null]);
    }
  });
});
