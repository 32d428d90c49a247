import { TraceView, VIEW_ATTRIBUTE } from '../src/view';
import { NO_KERNEL, judgementCode, type FeedbackTarget } from '../src/feedback';
import { MAX_VISIBLE_ROWS } from '../src/waterfall';
import { loadDoc } from './docs';

function mount(data: unknown): TraceView {
  const view = new TraceView(data);
  document.body.replaceChildren(view.node);
  return view;
}

function rows(view: TraceView): HTMLElement[] {
  return Array.from(view.node.querySelectorAll<HTMLElement>('.lt-row'));
}

function rowNamed(view: TraceView, name: string): HTMLElement {
  const row = rows(view).find(r => r.querySelector('.lt-name-text')!.textContent === name);
  if (!row) {
    throw new Error(`no row ${name}`);
  }
  return row;
}

function key(view: TraceView, k: string): KeyboardEvent {
  const event = new KeyboardEvent('keydown', { key: k, bubbles: true, cancelable: true });
  view.node.querySelector('.lt-scroller')!.dispatchEvent(event);
  return event;
}

function text(node: Element): string {
  return node.textContent ?? '';
}

describe('the agent trace', () => {
  it('marks itself as the JupyterLab view', () => {
    expect(mount(loadDoc('agent')).node.getAttribute(VIEW_ATTRIBUTE)).toBe('jupyterlab');
  });

  it('puts the totals in the header', () => {
    const header = text(mount(loadDoc('agent')).node.querySelector('.lt-header')!);
    expect(header).toContain('cell [12] rag-eval');
    expect(header).toContain('4.82 s');
    expect(header).toContain('3 LLM calls');
    expect(header).toContain('1,449 tokens (1,264 in · 185 out)');
    expect(header).toContain('$0.0003368');
    expect(header).toContain('1 error');
  });

  it('says which model has no price', () => {
    const notices = text(mount(loadDoc('agent')).node.querySelector('.lt-notices')!);
    expect(notices).toContain('No price for house-model-7b');
  });

  it('shows one row per span, indented by depth', () => {
    const view = mount(loadDoc('agent'));
    expect(rows(view)).toHaveLength(7);
    const indent = (name: string) =>
      parseFloat((rowNamed(view, name).querySelector('.lt-name') as HTMLElement).style.paddingLeft);
    expect(indent('rag-eval')).toBeLessThan(indent('agent step 1'));
    expect(indent('agent step 1')).toBeLessThan(indent('chat gpt-4o-mini'));
    expect(rowNamed(view, 'chat gpt-4o-mini').getAttribute('aria-level')).toBe('3');
  });

  it('shows the key numbers, the error type and "no price"', () => {
    const view = mount(loadDoc('agent'));
    const llm = rowNamed(view, 'chat gpt-4o-mini');
    expect(text(llm.querySelector('.lt-tokens')!)).toBe('1,384');
    expect(text(llm.querySelector('.lt-cost')!)).toBe('$0.0002118');
    expect(text(llm.querySelector('.lt-dur')!)).toBe('1.42 s');
    expect(llm.classList).toContain('lt-kind-llm');
    const failed = rowNamed(view, 'chat gpt-4o');
    expect(failed.classList).toContain('lt-error');
    expect(text(failed.querySelector('.lt-errtype')!)).toBe('RateLimitError');
    expect(text(rowNamed(view, 'chat house-model').querySelector('.lt-cost')!)).toBe('no price');
    expect(text(rowNamed(view, 'retrieve').querySelector('.lt-dur')!)).toBe('38 ms');
    expect(view.node.innerHTML).not.toMatch(/NaN|undefined/);
  });

  it('draws bars on a shared axis, the wait before the first token lighter', () => {
    const view = mount(loadDoc('agent'));
    const ticks = Array.from(view.node.querySelectorAll('.lt-tick')).map(text);
    expect(ticks).toEqual(['0 s', '1 s', '2 s', '3 s', '4 s']);
    const bar = rowNamed(view, 'chat gpt-4o-mini').querySelector<HTMLElement>('.lt-bar')!;
    expect(parseFloat(bar.style.left)).toBeCloseTo((50 / 4820) * 100, 3);
    const wait = bar.querySelector<HTMLElement>('.lt-wait')!;
    expect(parseFloat(wait.style.width)).toBeCloseTo((310 / 1420) * 100, 3);
    expect(rowNamed(view, 'retrieve').querySelector('.lt-wait')).toBeNull();
  });

  it('has a legend of the kinds present', () => {
    const legend = Array.from(mount(loadDoc('agent')).node.querySelectorAll('.lt-legend-label')).map(text);
    expect(legend).toEqual(['llm', 'tool', 'retrieval', 'agent', 'cell', 'error', 'before first token']);
  });

  it('collapses and expands a subtree with its toggle', () => {
    const view = mount(loadDoc('agent'));
    const toggle = rowNamed(view, 'agent step 1').querySelector<HTMLElement>('.lt-toggle')!;
    expect(text(toggle)).toBe('▾');
    toggle.click();
    expect(rows(view)).toHaveLength(5);
    expect(text(rowNamed(view, 'agent step 1').querySelector('.lt-toggle')!)).toBe('▸');
    expect(rowNamed(view, 'agent step 1').getAttribute('aria-expanded')).toBe('false');
    rowNamed(view, 'agent step 1').querySelector<HTMLElement>('.lt-toggle')!.click();
    expect(rows(view)).toHaveLength(7);
  });

  it('moves the selection with the keyboard and opens the detail', () => {
    const view = mount(loadDoc('agent'));
    expect(key(view, 'ArrowDown').defaultPrevented).toBe(true);
    expect(view.waterfall!.selectedIndex).toBe(0);
    key(view, 'ArrowDown'); // retrieve
    key(view, 'ArrowDown'); // agent step 1
    key(view, 'ArrowLeft'); // collapses it
    expect(rows(view)).toHaveLength(5);
    key(view, 'ArrowRight'); // expands it
    expect(rows(view)).toHaveLength(7);
    key(view, 'ArrowRight'); // moves to its first child
    const selected = view.node.querySelector('.lt-row.lt-selected')!;
    expect(text(selected.querySelector('.lt-name-text')!)).toBe('chat gpt-4o-mini');
    expect(view.node.querySelector('.lt-scroller')!.getAttribute('aria-activedescendant')).toBe(selected.id);
    key(view, 'Enter');
    const detail = view.node.querySelector('.lt-detail')!;
    expect(text(detail.querySelector('.lt-detail-name')!)).toBe('chat gpt-4o-mini');
    key(view, 'ArrowLeft'); // a leaf: moves to its parent, and the open detail follows
    expect(text(view.node.querySelector('.lt-detail-name')!)).toBe('agent step 1');
    key(view, 'Escape');
    expect(view.node.querySelector('.lt-detail')).toBeNull();
    key(view, 'End');
    key(view, ' ');
    expect(text(view.node.querySelector('.lt-detail-name')!)).toBe('chat house-model');
    key(view, 'Home');
    expect(view.waterfall!.selectedIndex).toBe(0);
  });

  it('leaves keys it does not use, and shortcuts, to JupyterLab', () => {
    const view = mount(loadDoc('agent'));
    expect(key(view, 'a').defaultPrevented).toBe(false);
    const save = new KeyboardEvent('keydown', { key: 's', ctrlKey: true, bubbles: true, cancelable: true });
    view.node.querySelector('.lt-scroller')!.dispatchEvent(save);
    expect(save.defaultPrevented).toBe(false);
    expect(view.node.querySelector('.lt-scroller')!.hasAttribute('data-lm-suppress-shortcuts')).toBe(true);
  });

  it('shows messages as chat turns in the detail of a clicked span', () => {
    const view = mount(loadDoc('agent'));
    rowNamed(view, 'chat gpt-4o-mini').click();
    const detail = view.node.querySelector('.lt-detail')!;
    const facts = text(detail.querySelector('.lt-facts')!);
    expect(facts).toContain('gpt-4o-mini');
    expect(facts).toContain('openai');
    expect(facts).toContain('TTFT310 ms');
    expect(facts).toContain('1,384 tokens · 1,204 in (1,024 cached) · 180 out');
    expect(facts).toContain('$0.0002118');
    expect(facts).toContain('stop');
    const turns = Array.from(detail.querySelectorAll('.lt-turn')).map(t => [
      text(t.querySelector('.lt-role')!),
      text(t.querySelector('.lt-text')!)
    ]);
    expect(turns).toEqual([
      ['system', 'Be brief.'],
      ['user', 'Capital of France?'],
      ['assistant', 'Paris.']
    ]);
    const attrs = detail.querySelector('details.lt-attrs')!;
    expect(attrs.hasAttribute('open')).toBe(false);
    expect(text(attrs.querySelector('summary')!)).toMatch(/^attributes \(\d+\)$/);
    expect(rowNamed(view, 'chat gpt-4o-mini').classList).toContain('lt-opened');
  });

  it('shows tool calls with their name and arguments', () => {
    const view = mount(loadDoc('agent'));
    rowNamed(view, 'execute_tool search').click();
    const call = view.node.querySelector('.lt-toolcall')!;
    expect(text(call.querySelector('.lt-toolcall-name')!)).toBe('search');
    expect(JSON.parse(text(call.querySelector('.lt-code')!))).toEqual({ q: 'x' });
    const roles = Array.from(view.node.querySelectorAll('.lt-role')).map(text);
    expect(roles).toEqual(['assistant', 'tool']);
  });

  it('shows the error of a failed call', () => {
    const view = mount(loadDoc('agent'));
    rowNamed(view, 'chat gpt-4o').click();
    expect(text(view.node.querySelector('.lt-fact-error')!)).toContain('RateLimitError');
  });

  it('copies messages and span JSON', async () => {
    const writeText = jest.fn().mockResolvedValue(undefined);
    Object.defineProperty(navigator, 'clipboard', { value: { writeText }, configurable: true });
    const view = mount(loadDoc('agent'));
    rowNamed(view, 'chat gpt-4o-mini').click();
    const buttons = Array.from(view.node.querySelectorAll<HTMLButtonElement>('.lt-detail-actions button'));
    buttons.find(b => text(b).includes('copy messages'))!.click();
    await new Promise(r => setTimeout(r, 0));
    expect(writeText).toHaveBeenCalledWith('system: Be brief.\nuser: Capital of France?\nassistant: Paris.');
    buttons.find(b => text(b).includes('span JSON'))!.click();
    await new Promise(r => setTimeout(r, 0));
    expect(JSON.parse(writeText.mock.calls[1][0]).name).toBe('chat gpt-4o-mini');
    expect(text(buttons[1])).toBe('✓ copied');
  });

  it('falls back to a textarea copy without the Clipboard API', async () => {
    Object.defineProperty(navigator, 'clipboard', { value: undefined, configurable: true });
    const exec = jest.fn().mockReturnValue(true);
    (document as any).execCommand = exec;
    const view = mount(loadDoc('agent'));
    rowNamed(view, 'retrieve').click();
    view.node.querySelector<HTMLButtonElement>('.lt-detail-actions button')!.click();
    await new Promise(r => setTimeout(r, 0));
    expect(exec).toHaveBeenCalledWith('copy');
    expect(document.querySelector('textarea')).toBeNull();
  });

  it('filters rows as you type', () => {
    const view = mount(loadDoc('agent'));
    const filter = view.node.querySelector<HTMLInputElement>('.lt-filter')!;
    filter.value = 'gpt-4o';
    filter.dispatchEvent(new Event('input'));
    expect(rows(view).map(r => text(r.querySelector('.lt-name-text')!))).toEqual([
      'rag-eval',
      'agent step 1',
      'chat gpt-4o-mini',
      'chat gpt-4o'
    ]);
    expect(text(view.node.querySelector('.lt-count')!)).toBe('4 of 7 spans');
    expect(rowNamed(view, 'rag-eval').classList).toContain('lt-context');
  });
});

describe('untrusted text', () => {
  it('is shown as text and never becomes markup', () => {
    const view = mount(loadDoc('xss'));
    // attributes: only a fixed set of names (text in title/aria-label is inert), and
    // styles made of numbers only
    const allowed = /^(class|id|role|title|tabindex|type|placeholder|spellcheck|open|style|aria-[a-z]+|data-(index|action|lm-suppress-shortcuts|llmtrace-view))$/;
    const check = () => {
      for (const tag of ['script', 'img', 'iframe', 'svg', 'a', 'style', 'object', 'embed']) {
        expect(view.node.querySelectorAll(tag)).toHaveLength(0);
      }
      for (const node of Array.from(view.node.querySelectorAll('*'))) {
        for (const attr of Array.from(node.attributes)) {
          expect(attr.name).toMatch(allowed);
          if (attr.name === 'style') {
            expect(attr.value).toMatch(/^([a-z-]+: -?[\d.]+(px|%);\s*)+$/);
          }
        }
      }
    };
    // open every span's detail, so messages, tool calls and attributes are drawn too
    let shown = text(view.node);
    check();
    for (let i = 0; i < rows(view).length; i++) {
      rows(view)[i].click();
      view.node.querySelector('details.lt-attrs')!.setAttribute('open', '');
      check();
      shown += text(view.node.querySelector('.lt-detail')!);
    }
    expect((window as any).__xss).toBeUndefined();
    for (const payload of [
      '<script>window.__xss = 1</script>',
      '<img src=x onerror="window.__xss = 2">',
      'javascript:window.__xss=3',
      '"><svg onload="window.__xss=7">',
      ']]></pre><iframe src=javascript:window.__xss=9>'
    ]) {
      expect(shown).toContain(payload);
    }
  });
});

describe('plain statements of what is missing', () => {
  it('says when a cell recorded no spans', () => {
    const view = mount(loadDoc('empty'));
    expect(text(view.node)).toContain('No spans were recorded in this cell.');
    expect(text(view.node.querySelector('.lt-header')!)).toContain('0 LLM calls');
    expect(view.node.querySelector('.lt-header')!.textContent).toContain('$0');
  });

  it('says when a newer llmtrace_nb wrote the trace, and shows what it can', () => {
    const raw = loadDoc('agent');
    raw.version = 3;
    const view = mount(raw);
    expect(text(view.node)).toContain('This trace was written by a newer llmtrace_nb (version 3)');
    expect(rows(view)).toHaveLength(7);
  });

  it('shows a document with missing and ill-typed fields', () => {
    const view = mount({
      version: 1,
      name: 5,
      totals: 'lots',
      spans: [
        { name: 'root', depth: 0 },
        { name: ['odd'], kind: 'llm', depth: 1, start_ms: 'soon', duration_ms: -3, cost_usd: 'cheap' },
        7
      ]
    });
    expect(rows(view)).toHaveLength(2);
    expect(text(view.node)).toContain('Some fields of this trace could not be read');
    expect(text(view.node)).toContain('(unnamed span)');
    expect(view.node.innerHTML).not.toMatch(/NaN/);
  });

  it('says what was left out of a truncated trace', () => {
    const raw = loadDoc('agent');
    raw.omitted = { spans: 250, llm_calls: 200, input_tokens: 1000, output_tokens: 500, cost_usd: 0.5, errors: 2 };
    raw.open = true;
    raw.open_spans = 2;
    raw.spans[3].truncated = true;
    raw.spans[4].detail = 'omitted';
    delete raw.spans[4].input_messages;
    delete raw.spans[4].output_messages;
    const view = mount(raw);
    const notices = text(view.node.querySelector('.lt-notices')!);
    expect(notices).toContain('250 more spans not shown');
    expect(notices).toContain('2 spans still running');
    rowNamed(view, 'chat gpt-4o-mini').click();
    expect(text(view.node.querySelector('.lt-detail')!)).toContain('Long texts of this span were cut to 2,000 characters');
    rowNamed(view, 'execute_tool search').click();
    expect(text(view.node.querySelector('.lt-detail')!)).toContain('were left out of the saved trace');
  });

  it('says when the data is not a trace document at all', () => {
    expect(text(mount('nonsense').node)).toContain('not a trace document');
    expect(text(mount([1, 2]).node)).toContain('not a trace document');
  });
});

describe('a 10k-span trace', () => {
  it('renders only the rows in view, quickly', () => {
    const raw = loadDoc('big');
    const start = performance.now();
    const view = mount(raw);
    const elapsed = performance.now() - start;
    expect(view.result.doc!.spans.length).toBe(10000);
    expect(rows(view).length).toBeLessThan(200);
    expect(rows(view).length).toBeGreaterThanOrEqual(MAX_VISIBLE_ROWS);
    expect(elapsed).toBeLessThan(3000);
    const spacer = view.node.querySelector<HTMLElement>('.lt-spacer')!;
    expect(parseFloat(spacer.style.height)).toBeGreaterThan(10000 * 20);
  });

  it('scrolls to rows far down and keeps selection visible', () => {
    const view = mount(loadDoc('big'));
    key(view, 'End');
    const last = view.node.querySelector('.lt-row.lt-selected')!;
    expect(Number((last as HTMLElement).dataset.index)).toBe(9999);
    expect(rows(view).length).toBeLessThan(200);
    const scroller = view.node.querySelector<HTMLElement>('.lt-scroller')!;
    expect(scroller.scrollTop).toBeGreaterThan(0);
    scroller.scrollTop = 0;
    scroller.dispatchEvent(new Event('scroll'));
    expect(rows(view)[0].dataset.index).toBe('0');
  });

  it('filters and collapses all in well under a second', () => {
    const view = mount(loadDoc('big'));
    const filter = view.node.querySelector<HTMLInputElement>('.lt-filter')!;
    const start = performance.now();
    filter.value = 'agent';
    filter.dispatchEvent(new Event('input'));
    const collapse = Array.from(view.node.querySelectorAll<HTMLButtonElement>('.lt-button')).find(
      b => text(b) === 'collapse all'
    )!;
    filter.value = '';
    filter.dispatchEvent(new Event('input'));
    collapse.click();
    expect(performance.now() - start).toBeLessThan(1000);
    expect(rows(view)).toHaveLength(1);
  });
});

describe('a framework span and the client span of one call', () => {
  it('counts the call once in the header', () => {
    const header = text(mount(loadDoc('framework')).node.querySelector('.lt-header')!);
    expect(header).toContain('1 LLM call');
    expect(header).toContain('120 tokens');
  });

  it('marks the inner row "same call" and shows no second cost', () => {
    const view = mount(loadDoc('framework'));
    const inner = rowNamed(view, 'openai.chat');
    expect(text(inner.querySelector('.lt-tokens')!)).toBe('same call');
    expect(text(inner.querySelector('.lt-cost')!)).toBe('');
    expect(inner.getAttribute('aria-label')).toContain('counted once');
    const outer = rowNamed(view, 'chat gpt-4o-mini');
    expect(text(outer.querySelector('.lt-tokens')!)).toBe('120');
    expect(text(outer.querySelector('.lt-cost')!)).toMatch(/^\$/);
  });

  it('says why in a note', () => {
    const notices = text(mount(loadDoc('framework')).node.querySelector('.lt-notices')!);
    expect(notices).toContain('1 span marked "same call"');
  });
});

describe('a cell whose spans left the buffer', () => {
  it('says so, and whether the totals count them', () => {
    const raw = loadDoc('agent');
    raw.evicted = { spans: 2001, uncounted: 0 };
    let notices = text(mount(raw).node.querySelector('.lt-notices')!);
    expect(notices).toContain('2,001 spans of this cell left the buffer');
    expect(notices).toContain('the totals include them');
    raw.evicted = { spans: 2001, uncounted: 12 };
    notices = text(mount(raw).node.querySelector('.lt-notices')!);
    expect(notices).toContain('12 of them left before they could be counted');
  });
});

describe('judgements on their span', () => {
  function judged(): Record<string, any> {
    const doc = loadDoc('agent');
    const call = doc.spans.find((s: any) => s.name === 'chat gpt-4o-mini');
    call.evaluations = [
      { name: 'exact_match', score: 1, label: 'pass', negative: false },
      {
        name: '<img src=x onerror="window.__xss = 11">',
        label: 'thumbs_down',
        explanation: '<script>window.__xss = 12</script> wrong city',
        negative: true
      },
      'not an evaluation',
      { score: 3, negative: false }
    ];
    return doc;
  }

  it('puts a badge per evaluation on the row, negative ones marked', () => {
    const row = rowNamed(mount(judged()), 'chat gpt-4o-mini');
    const badges = Array.from(row.querySelectorAll('.lt-eval'));
    expect(badges.map(text)).toEqual([
      '✓ exact_match',
      '✗ <img src=x onerror="window.__xss = 11">'
    ]);
    expect(badges[1].classList.contains('lt-eval-negative')).toBe(true);
    expect(badges[1].getAttribute('title')).toContain('wrong city');
    expect(row.getAttribute('aria-label')).toContain('judged exact_match 1 · pass');
  });

  it('counts them in the header and lists them in the detail, as text', () => {
    const view = mount(judged());
    expect(text(view.node.querySelector('.lt-header')!)).toContain('2 judgements, 1 negative');
    rowNamed(view, 'chat gpt-4o-mini').click();
    const box = view.node.querySelector('.lt-detail .lt-evals')!;
    expect(text(box)).toContain('exact_match 1 · pass');
    expect(text(box)).toContain('thumbs_down (negative)');
    expect(text(box.querySelector('.lt-eval-why')!)).toBe(
      '<script>window.__xss = 12</script> wrong city'
    );
    expect(view.node.querySelectorAll('script, img')).toHaveLength(0);
    expect((window as any).__xss).toBeUndefined();
  });

  it('says what it could not read, and shows no badge without judgements', () => {
    const view = mount(judged());
    expect(text(view.node.querySelector('.lt-notices')!)).toContain('evaluation');
    expect(rowNamed(view, 'retrieve').querySelectorAll('.lt-eval')).toHaveLength(0);
    expect(text(mount(loadDoc('agent')).node.querySelector('.lt-header')!)).not.toContain(
      'judgement'
    );
  });
});

describe('thumbs up / down on calls', () => {
  /** A kernel stand-in: it records the code it is asked to run and answers as told. */
  class Kernel implements FeedbackTarget {
    sent: string[] = [];
    reason: string | null = null;
    fail: string | null = null;
    private listeners: (() => void)[] = [];
    unavailable(): string | null {
      return this.reason;
    }
    send(code: string): Promise<void> {
      this.sent.push(code);
      return this.fail ? Promise.reject(new Error(this.fail)) : Promise.resolve();
    }
    watch(changed: () => void): () => void {
      this.listeners.push(changed);
      return () => undefined;
    }
  }

  function mountWith(kernel: FeedbackTarget | null, name: 'agent' | 'framework' = 'agent') {
    const view = new TraceView(loadDoc(name), kernel);
    document.body.replaceChildren(view.node);
    return view;
  }

  const settle = () => new Promise(resolve => setTimeout(resolve, 0));

  it('shows none without a kernel bridge, and only on calls counted on their own row', () => {
    expect(mountWith(null).node.querySelectorAll('.lt-thumb')).toHaveLength(0);
    const view = mountWith(new Kernel());
    const judged = rows(view).filter(r => r.querySelector('.lt-thumbs'));
    expect(judged.length).toBe(3);
    expect(judged.every(r => r.classList.contains('lt-kind-llm'))).toBe(true);
    const framework = mountWith(new Kernel(), 'framework');
    expect(rowNamed(framework, 'openai.chat').querySelector('.lt-thumbs')).toBeNull();
    expect(rowNamed(framework, 'chat gpt-4o-mini').querySelector('.lt-thumbs')).not.toBeNull();
  });

  it('is disabled with the reason as its tooltip when no kernel is connected', () => {
    const kernel = new Kernel();
    kernel.reason = NO_KERNEL;
    const button = rowNamed(mountWith(kernel), 'chat gpt-4o-mini').querySelector<HTMLButtonElement>(
      '.lt-thumb-down'
    )!;
    expect(button.disabled).toBe(true);
    expect(button.title).toBe(NO_KERNEL);
  });

  it('sends the call ids to the kernel, then shows the judgement on the row', async () => {
    const kernel = new Kernel();
    const view = mountWith(kernel);
    const row = rowNamed(view, 'chat gpt-4o-mini');
    const span = view.result.doc!.spans.find(s => s.name === 'chat gpt-4o-mini')!;
    row.querySelector<HTMLElement>('.lt-thumb-down')!.click();
    expect(view.waterfall!.selectedIndex).toBe(-1); // a thumb does not open the detail
    await settle();
    expect(kernel.sent).toEqual([judgementCode(span.traceId!, span.spanId!, 'down')]);
    expect(kernel.sent[0]).toContain(`"span_id": "${span.spanId}"`);
    expect(kernel.sent[0]).toContain('label="thumbs_down"');
    const after = rowNamed(view, 'chat gpt-4o-mini');
    expect(text(after.querySelector('.lt-eval-negative')!)).toBe('✗ feedback');
    expect(after.querySelector('.lt-thumb-down')!.getAttribute('aria-pressed')).toBe('true');
    expect(text(view.node.querySelector('.lt-feedback-status')!)).toContain(
      'Recorded thumbs down for chat gpt-4o-mini'
    );
  });

  it('says when the kernel refused, and shows no badge', async () => {
    const kernel = new Kernel();
    kernel.fail = "LookupError: no collected span 'abc' (evicted, or never collected)";
    const view = mountWith(kernel);
    rowNamed(view, 'chat gpt-4o-mini').querySelector<HTMLElement>('.lt-thumb-up')!.click();
    await settle();
    expect(text(view.node.querySelector('.lt-feedback-status')!)).toContain(
      'Not recorded (LookupError'
    );
    expect(rowNamed(view, 'chat gpt-4o-mini').querySelectorAll('.lt-eval')).toHaveLength(0);
  });

  it('works from the keyboard and from the detail pane', async () => {
    const kernel = new Kernel();
    const view = mountWith(kernel);
    rowNamed(view, 'chat gpt-4o-mini').click();
    key(view, '+');
    await settle();
    expect(kernel.sent[0]).toContain('label="thumbs_up"');
    const pane = view.node.querySelector('.lt-detail')!;
    expect(text(pane.querySelector('.lt-evals')!)).toContain('feedback 1 · thumbs_up');
    pane.querySelector<HTMLElement>('.lt-thumb-down')!.click();
    await settle();
    expect(kernel.sent[1]).toContain('label="thumbs_down"');
  });

  it('follows the kernel: enabled once one connects', () => {
    const kernel = new Kernel();
    kernel.reason = NO_KERNEL;
    const view = mountWith(kernel);
    const row = rowNamed(view, 'chat gpt-4o-mini');
    kernel.reason = null;
    view.thumbs!.refresh();
    // only the buttons are redrawn: the row is the same element (hover, a click in
    // progress, anything holding it, keep it)
    expect(rowNamed(view, 'chat gpt-4o-mini')).toBe(row);
    const button = row.querySelector<HTMLButtonElement>('.lt-thumb-up')!;
    expect(button.disabled).toBe(false);
  });

  it('writes no id into code unless it is hex', () => {
    expect(() => judgementCode('0'.repeat(32), '"); import os; ("', 'up')).toThrow('no ids');
    expect(() => judgementCode('x'.repeat(32), 'a'.repeat(16), 'up')).toThrow('no ids');
    expect(judgementCode('a'.repeat(32), 'b'.repeat(16), 'up')).toBe(
      '__import__("llmtrace_nb").evaluate({"trace_id": "' +
        'a'.repeat(32) +
        '", "span_id": "' +
        'b'.repeat(16) +
        '"}, name="feedback", score=1.0, label="thumbs_up")'
    );
  });
});

describe('rows that say what they are', () => {
  it("puts a call's model beside its name when the name does not say it", () => {
    const view = mount(loadDoc('agent'));
    const house = rowNamed(view, 'chat house-model');
    expect(text(house.querySelector('.lt-name-label')!)).toBe('house-model-7b');
    expect(house.querySelector<HTMLElement>('.lt-name-full')!.title).toBe(
      'chat house-model · house-model-7b'
    );
    expect(house.getAttribute('aria-label')).toMatch(/^chat house-model · house-model-7b/);
    expect(rowNamed(view, 'chat gpt-4o-mini').querySelector('.lt-name-label')).toBeNull();
  });

  it("puts a tool span's tool beside a name that does not say it", () => {
    const doc = loadDoc('agent');
    const tool = doc.spans.find((s: any) => s.kind === 'tool');
    tool.name = 'execute_tool';
    tool.tool = 'search_docs';
    const row = rowNamed(mount(doc), 'execute_tool');
    expect(text(row.querySelector('.lt-name-label')!)).toBe('search_docs');
  });
});
