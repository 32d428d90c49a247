/**
 * The JupyterLab mime extension for llmtrace_nb trace documents.
 *
 * rank 0: the display bundle also carries text/html (rank 50 in JupyterLab), and the
 * renderer with the lower rank wins, so where this extension is installed the
 * interactive view replaces the static twin. safe: the view never runs or injects
 * anything from the data, so it may render in untrusted notebooks too — which is every
 * notebook opened from disk, the case this extension exists for.
 */

import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';

import { COMPARE_MIME_TYPE } from './compare';
import { MIME_TYPE } from './document';
import { CompareRenderer, TraceRenderer } from './renderer';

export const rendererFactory: IRenderMime.IRendererFactory = {
  safe: true,
  mimeTypes: [MIME_TYPE],
  defaultRank: 0,
  createRenderer: options => new TraceRenderer(options.mimeType)
};

/** compare() outputs: the same ranking and safety as the trace view. */
export const compareRendererFactory: IRenderMime.IRendererFactory = {
  safe: true,
  mimeTypes: [COMPARE_MIME_TYPE],
  defaultRank: 0,
  createRenderer: options => new CompareRenderer(options.mimeType)
};

const extensions: IRenderMime.IExtension[] = [
  {
    id: 'llmtrace_nb:trace',
    description: 'Interactive waterfall for llmtrace_nb trace documents',
    rendererFactory,
    rank: 0,
    dataType: 'json'
  },
  {
    id: 'llmtrace_nb:compare',
    description: 'Runs side by side, from llmtrace_nb.compare()',
    rendererFactory: compareRendererFactory,
    rank: 0,
    dataType: 'json'
  }
];

export default extensions;
