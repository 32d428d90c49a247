/**
 * Number formats shared by the whole view, matching the Python views
 * (`llmtrace_nb/views/text.py`) so a notebook reads the same in every frontend:
 * thousands separators; cost to 4 significant digits and never in scientific notation;
 * durations in ms below 1 s and in s above; never "NaN" — unknown is "–", an unpriced
 * model is "no price".
 */

// A fixed locale: the same notebook must read the same on every machine, and the
// Python views use "," for thousands.
const INTEGER = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
const TWO_DECIMALS = new Intl.NumberFormat('en-US', {
  minimumFractionDigits: 2,
  maximumFractionDigits: 2
});

function known(value: number | null | undefined): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

export function formatCount(n: number | null | undefined): string {
  return known(n) ? INTEGER.format(n) : '–';
}

/** Below this a cost reads "<$0.000000001" (as in text.py): 1e-200 is 200 zeros. */
const MIN_COST = 1e-9;
/** Past this many seconds (or dollars) a number is written with 3 significant digits. */
const MAX_PLAIN_SECONDS = 1e9;
const MAX_PLAIN_COST = 1e15;
/** Intl.NumberFormat takes at most 100 fraction digits; an axis needs far fewer. */
const MAX_DECIMALS = 20;

export function formatDuration(ms: number | null | undefined): string {
  if (!known(ms)) {
    return '–';
  }
  if (Math.abs(ms) < 1000) {
    return `${INTEGER.format(ms + 0).replace(/^-0$/, '0')} ms`;
  }
  const seconds = ms / 1000;
  return Math.abs(seconds) < MAX_PLAIN_SECONDS
    ? `${TWO_DECIMALS.format(seconds)} s`
    : `${seconds.toPrecision(3)} s`;
}

export function formatCost(usd: number | null | undefined): string {
  if (!known(usd)) {
    return 'no price';
  }
  if (usd === 0) {
    return '$0';
  }
  const sign = usd < 0 ? '-' : '';
  const abs = Math.abs(usd);
  if (usd > 0 && usd < MIN_COST) {
    return `<$${MIN_COST.toFixed(9)}`;
  }
  if (abs >= MAX_PLAIN_COST) {
    return `${sign}$${abs.toPrecision(3)}`;
  }
  if (abs >= 1000) {
    return `${sign}$${INTEGER.format(abs)}`;
  }
  const decimals = Math.max(0, 3 - Math.floor(Math.log10(abs)));
  // toFixed never uses exponent notation below 1e21, unlike toString/toPrecision
  let text = abs.toFixed(Math.min(decimals, 100));
  if (text.includes('.')) {
    text = text.replace(/0+$/, '').replace(/\.$/, '');
  }
  return `${sign}$${text}`;
}

export function plural(n: number, word: string): string {
  return `${formatCount(n)} ${word}${n === 1 ? '' : 's'}`;
}

/** "12,431 tokens (9,870 in · 2,561 out)" */
export function formatTokenSummary(total: number, input: number, output: number): string {
  return `${plural(total, 'token')} (${formatCount(input)} in · ${formatCount(output)} out)`;
}

/** A step of 1, 2 or 5 × 10^k so that `extent` is cut into about `target` parts. */
export function niceStep(extent: number, target = 5): number {
  if (!known(extent) || extent <= 0) {
    return 1;
  }
  // at least a microsecond: 5e-324 / 5 is 0, whose logarithm is -Infinity
  const raw = Math.max(extent / Math.max(1, target), 1e-3);
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const unit = raw / power;
  const nice = unit < 1.5 ? 1 : unit < 3 ? 2 : unit < 7 ? 5 : 10;
  return nice * power;
}

/**
 * An axis label at `ms`, precise enough to tell ticks `step` ms apart. One axis uses one
 * unit: seconds when it reaches `axisEnd` >= 1 s with steps of 100 ms or more.
 */
export function formatTick(ms: number, step: number, axisEnd = ms): string {
  const seconds = axisEnd >= 1000 && step >= 100;
  // `+ 0` turns -0 (a tick at the origin of an axis starting a hair before 0) into 0
  const value = (seconds ? ms / 1000 : ms) + 0;
  const unitStep = seconds ? step / 1000 : step;
  const decimals = Math.min(MAX_DECIMALS, Math.max(0, Math.ceil(-Math.log10(unitStep) - 1e-9)));
  const text = new Intl.NumberFormat('en-US', {
    minimumFractionDigits: decimals,
    maximumFractionDigits: decimals
  }).format(value);
  return `${text} ${seconds ? 's' : 'ms'}`;
}
