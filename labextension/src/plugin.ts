/**
 * The JupyterLab plugin half of the extension. The feedback plugin connects trace views
 * to their notebook's kernel, so a thumb on a call is recorded where the call was made;
 * the traces plugin (traces.ts) is the notebook's side panel and status item.
 *
 * Mime renderers (index.ts) are given data, not a kernel; this plugin is the one place
 * that knows notebooks. It works the same in Notebook 7, which has the same tracker.
 * Without a notebook tracker (another front end) the thumbs stay disabled.
 */

import type { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { INotebookTracker, type NotebookPanel } from '@jupyterlab/notebook';

import { NO_KERNEL, setFeedbackBridge, type FeedbackBridge, type FeedbackTarget } from './feedback';
import { tracesPlugin } from './traces';

class NotebookFeedback implements FeedbackBridge {
  private readonly listeners = new Set<() => void>();

  constructor(private readonly tracker: INotebookTracker) {
    const notify = () => this.listeners.forEach(listener => listener());
    const follow = (panel: NotebookPanel) => {
      // any notebook's kernel change may be the one a view lives in; views re-check
      panel.sessionContext.kernelChanged.connect(notify);
      panel.sessionContext.statusChanged.connect(notify);
      panel.sessionContext.connectionStatusChanged.connect(notify);
    };
    tracker.forEach(follow);
    tracker.widgetAdded.connect((_, panel) => follow(panel));
  }

  targetFor(node: HTMLElement): FeedbackTarget {
    // resolved on each use: the output may not be attached yet, or move, or its
    // notebook's kernel may change under it
    const kernel = () =>
      this.tracker.find(panel => panel.node.contains(node))?.sessionContext.session?.kernel ?? null;
    return {
      unavailable: () => {
        if (!node.isConnected) {
          return NO_KERNEL;
        }
        const k = kernel();
        if (!k) {
          return NO_KERNEL;
        }
        if (k.connectionStatus !== 'connected' || k.status === 'dead') {
          return 'The kernel is not connected';
        }
        if (k.status === 'starting' || k.status === 'restarting' || k.status === 'unknown') {
          return 'The kernel is starting';
        }
        return null;
      },
      send: async code => {
        const k = kernel();
        if (!k) {
          throw new Error(NO_KERNEL);
        }
        // silent: no execution count, no output in any cell; stop_on_error false: a
        // refused judgement must not cancel the cells queued behind it
        const reply = await k.requestExecute({
          code,
          silent: true,
          store_history: false,
          allow_stdin: false,
          stop_on_error: false
        }).done;
        const content = reply.content;
        if (content.status === 'error') {
          throw new Error(`${content.ename}: ${content.evalue}`);
        }
        if (content.status !== 'ok') {
          throw new Error(`the kernel answered ${content.status}`);
        }
      },
      watch: changed => {
        this.listeners.add(changed);
        return () => this.listeners.delete(changed);
      }
    };
  }
}

const feedbackPlugin: JupyterFrontEndPlugin<void> = {
  id: 'llmtrace_nb:feedback',
  description: 'Sends thumbs up / down from llmtrace_nb trace views to the notebook kernel',
  autoStart: true,
  optional: [INotebookTracker],
  activate: (_app: JupyterFrontEnd, tracker: INotebookTracker | null) => {
    if (tracker) {
      setFeedbackBridge(new NotebookFeedback(tracker));
    }
  }
};

export default [feedbackPlugin, tracesPlugin];
