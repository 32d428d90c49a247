import * as fs from 'fs';
import * as path from 'path';

import extension, { rendererFactory } from '../src/index';
import { MIME_TYPE } from '../src/document';
import { TraceRenderer } from '../src/renderer';
import { loadDoc } from './docs';

function mimeModel(data: Record<string, unknown>): any {
  return { data, metadata: {}, trusted: false, setData: () => undefined };
}

describe('the mime extension', () => {
  it('is safe and ranks below text/html', () => {
    expect(extension.rendererFactory.safe).toBe(true);
    expect(extension.rendererFactory.mimeTypes).toEqual(['application/vnd.llmtrace.trace+json']);
    expect(extension.rank).toBe(0);
    expect(rendererFactory.defaultRank).toBeLessThan(50);
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
