import {
  formatCost,
  formatCount,
  formatDuration,
  formatTick,
  formatTokenSummary,
  niceStep,
  plural
} from '../src/format';

describe('formatCount', () => {
  it('uses thousands separators and a dash for unknown', () => {
    expect(formatCount(12431)).toBe('12,431');
    expect(formatCount(0)).toBe('0');
    expect(formatCount(null)).toBe('–');
    expect(formatCount(NaN)).toBe('–');
  });
});

describe('formatDuration', () => {
  it('shows ms below one second and s above', () => {
    expect(formatDuration(38)).toBe('38 ms');
    expect(formatDuration(0.4)).toBe('0 ms');
    expect(formatDuration(1420)).toBe('1.42 s');
    expect(formatDuration(4820)).toBe('4.82 s');
    expect(formatDuration(1234567)).toBe('1,234.57 s');
  });

  it('never says NaN', () => {
    expect(formatDuration(null)).toBe('–');
    expect(formatDuration(undefined)).toBe('–');
    expect(formatDuration(NaN)).toBe('–');
    expect(formatDuration(Infinity)).toBe('–');
  });
});

describe('formatCost', () => {
  it('keeps 4 significant digits', () => {
    expect(formatCost(0.0183)).toBe('$0.0183');
    expect(formatCost(0.00041234)).toBe('$0.0004123');
    expect(formatCost(0.0003368)).toBe('$0.0003368');
    expect(formatCost(1.23456)).toBe('$1.235');
    expect(formatCost(12.5)).toBe('$12.5');
    expect(formatCost(999.99)).toBe('$1000');
    expect(formatCost(123456.7)).toBe('$123,457');
  });

  it('never uses scientific notation', () => {
    expect(formatCost(1e-9)).toBe('$0.000000001');
    expect(formatCost(1.2345e-7)).toBe('$0.0000001235');
    expect(formatCost(3e-12)).not.toMatch(/e/i);
  });

  it('says "no price" for an unknown cost and $0 for none', () => {
    expect(formatCost(null)).toBe('no price');
    expect(formatCost(NaN)).toBe('no price');
    expect(formatCost(0)).toBe('$0');
  });
});

describe('summaries', () => {
  it('pluralizes and summarizes tokens as the header does', () => {
    expect(plural(1, 'LLM call')).toBe('1 LLM call');
    expect(plural(7, 'LLM call')).toBe('7 LLM calls');
    expect(formatTokenSummary(12431, 9870, 2561)).toBe('12,431 tokens (9,870 in · 2,561 out)');
  });
});

describe('axis', () => {
  it('picks 1-2-5 steps', () => {
    expect(niceStep(4820)).toBe(1000);
    expect(niceStep(100)).toBe(20);
    expect(niceStep(2.5)).toBe(0.5);
    expect(niceStep(0)).toBe(1);
    expect(niceStep(NaN)).toBe(1);
  });

  it('labels ticks in one unit per axis', () => {
    expect(formatTick(0, 1000, 4820)).toBe('0 s');
    expect(formatTick(3000, 1000, 4820)).toBe('3 s');
    expect(formatTick(0, 500, 2000)).toBe('0.0 s');
    expect(formatTick(1500, 500, 2000)).toBe('1.5 s');
    expect(formatTick(40, 20, 100)).toBe('40 ms');
    expect(formatTick(0.5, 0.5, 2)).toBe('0.5 ms');
    expect(formatTick(20000, 5000, 20000)).toBe('20 s');
  });
});

describe('any finite number renders', () => {
  it.each([1e-200, 5e-324, 0, -0, 1e300])('formats %p', value => {
    expect(formatDuration(value).length).toBeLessThan(30);
    expect(formatCost(value).length).toBeLessThan(30);
    expect(() => formatTick(value, niceStep(value), value)).not.toThrow();
    expect(Number.isFinite(niceStep(value))).toBe(true);
  });
});
