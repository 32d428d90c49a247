/**
 * The only ways this extension writes to the DOM.
 *
 * Everything in a trace document is data a model, a tool or a user wrote, so text goes
 * in through `textContent` only (never parsed as HTML), no URL is ever built from it, and
 * style values come from numbers that were checked to be finite. Keeping these few
 * helpers as the single door makes that easy to review.
 */

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className?: string,
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

/** Appends children (skipping null) and returns the parent, for compact building. */
export function append<T extends HTMLElement>(
  parent: T,
  ...children: (Node | null | undefined)[]
): T {
  for (const child of children) {
    if (child) {
      parent.appendChild(child);
    }
  }
  return parent;
}

/** A finite number or the fallback: guards every value that reaches a style. */
export function finite(value: number, fallback = 0): number {
  return Number.isFinite(value) ? value : fallback;
}

export function px(value: number): string {
  return `${finite(value).toFixed(2)}px`;
}

export function pct(value: number): string {
  return `${Math.min(100, Math.max(0, finite(value))).toFixed(4)}%`;
}

/** A class name from a fixed set, never from data as written. */
export function safeClass<T extends string>(
  prefix: string,
  value: string,
  allowed: readonly T[],
  fallback: T
): string {
  return prefix + ((allowed as readonly string[]).includes(value) ? value : fallback);
}

let counter = 0;

/** A document-unique id prefix for one view (for aria-activedescendant and labels). */
export function uniqueId(prefix: string): string {
  counter += 1;
  return `${prefix}-${counter}`;
}

/**
 * Puts text on the clipboard: the async Clipboard API where the page allows it, else
 * the old hidden-textarea copy, which works in contexts the API refuses (some iframes,
 * plain-http hosts that are not localhost).
 */
export async function copyText(text: string): Promise<boolean> {
  try {
    if (navigator.clipboard && typeof navigator.clipboard.writeText === 'function') {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // fall through to the textarea copy
  }
  const area = el('textarea');
  area.value = text;
  area.setAttribute('readonly', '');
  area.style.position = 'fixed';
  area.style.opacity = '0';
  document.body.appendChild(area);
  area.select();
  let ok = false;
  try {
    ok = typeof document.execCommand === 'function' && document.execCommand('copy');
  } catch {
    ok = false;
  }
  area.remove();
  return ok;
}
