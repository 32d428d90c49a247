import { parseDocument } from '../src/document';
import { TraceModel } from '../src/model';
import { loadDoc } from './docs';

function agentModel(): TraceModel {
  const doc = parseDocument(loadDoc('agent')).doc!;
  return new TraceModel(doc.spans, doc.totals.durationMs);
}

describe('TraceModel', () => {
  it('knows the tree from the depths', () => {
    const m = agentModel();
    const names = m.spans.map(s => s.name);
    const agent = names.indexOf('agent step 1');
    expect(m.parent[agent]).toBe(0);
    expect(m.subtreeEnd[0]).toBe(7);
    expect(m.subtreeEnd[agent]).toBe(agent + 3);
    expect(m.hasChildren(agent)).toBe(true);
    expect(m.path(agent + 1)).toEqual([0, agent, agent + 1]);
  });

  it('collapses and expands subtrees', () => {
    const m = agentModel();
    expect(m.visible).toHaveLength(7);
    const agent = m.spans.findIndex(s => s.name === 'agent step 1');
    m.toggle(agent);
    expect(m.visible).toHaveLength(5);
    expect(m.visibleAncestor(agent + 1)).toBe(agent);
    m.toggle(0);
    expect(m.visible).toEqual([0]);
    m.setAllCollapsed(false);
    expect(m.visible).toHaveLength(7);
  });

  it('filters by name, kind or model and keeps ancestors for context', () => {
    const m = agentModel();
    m.setFilter('TOOL');
    const names = m.visible.map(i => m.spans[i].name);
    expect(names).toEqual(['rag-eval', 'agent step 1', 'execute_tool search']);
    expect(m.isMatch(0)).toBe(false);
    m.setFilter('house-model');
    expect(m.visible.map(i => m.spans[i].name)).toEqual(['rag-eval', 'chat house-model']);
    m.setFilter('ratelimit');
    expect(m.visible).toHaveLength(2);
    m.setFilter('no such span');
    expect(m.visible).toHaveLength(0);
    m.setFilter('');
    expect(m.visible).toHaveLength(7);
  });

  it('puts bars on one axis with round ticks', () => {
    const m = agentModel();
    expect(m.axisStart).toBe(0);
    expect(m.axisEnd).toBe(4820);
    const { step, ticks } = m.ticks();
    expect(step).toBe(1000);
    expect(ticks.map(t => t.ms)).toEqual([0, 1000, 2000, 3000, 4000]);
    const llm = m.spans.findIndex(s => s.name === 'chat gpt-4o-mini');
    const bar = m.bar(llm);
    expect(bar.left).toBeCloseTo((50 / 4820) * 100);
    expect(bar.width).toBeCloseTo((1420 / 4820) * 100);
    expect(bar.wait).toBeCloseTo((310 / 1420) * 100);
  });

  it('copes with an axis of zero length', () => {
    const doc = parseDocument({
      version: 1,
      spans: [{ span_id: 'a', name: 'a', kind: 'llm', depth: 0, start_ms: 0, duration_ms: 0 }]
    }).doc!;
    const m = new TraceModel(doc.spans, 0);
    expect(m.axisEnd).toBeGreaterThan(m.axisStart);
    expect(Number.isFinite(m.bar(0).left)).toBe(true);
    expect(m.ticks().ticks.length).toBeGreaterThan(0);
  });
});
