// Lifetimes of native memory. A tensor's memory is freed when it is disposed, never by waiting for
// V8's garbage collector (which only frees what was forgotten, as a last resort). Three ways:
//   - t.dispose(), or TypeScript's `using t = ...` (Symbol.dispose);
//   - tidy(fn): every tensor created while fn runs is disposed when it returns, except what it
//     returns (found in arrays and plain objects) and what keep() marks;
//   - owners that dispose what they hold (modules, optimizers).

/** Something that owns native memory. */
export interface Owned {
  dispose(): void;
  /** Set by keep(): tidy() scopes leave it alone. */
  _kept: boolean;
  readonly isDisposed: boolean;
  /** Called when no scope will dispose it any more (made outside scopes, kept, or returned from the outermost). */
  _unscoped?(): void;
}

const stack: Owned[][] = [];

/** Called by every new tensor: the innermost open scope takes it. Returns false when no scope is open. */
export function track(x: Owned): boolean {
  if (!stack.length) return false;
  stack[stack.length - 1]!.push(x);
  return true;
}

/** Marks tensors to outlive every enclosing tidy() scope; they must then be disposed by their owner. */
export function keep<T extends Owned>(x: T): T {
  if (!x._kept) {
    x._kept = true;
    if (stack.length) x._unscoped?.();
  }
  return x;
}

function collect(v: unknown, into: Set<Owned>, depth = 0): void {
  if (v === null || typeof v !== 'object' || depth > 8) return;
  if (typeof (v as Owned).dispose === 'function' && '_kept' in (v as object)) {
    into.add(v as Owned);
    return;
  }
  if (Array.isArray(v)) {
    for (const e of v) collect(e, into, depth + 1);
    return;
  }
  if (v instanceof Map) {
    for (const e of v.values()) collect(e, into, depth + 1);
    return;
  }
  const proto = Object.getPrototypeOf(v);
  if (proto === Object.prototype || proto === null) for (const e of Object.values(v)) collect(e, into, depth + 1);
}

/**
 * Runs fn in a scope: tensors it creates are disposed when it returns, except those in its result
 * (which move to the enclosing scope) and kept ones. fn must be synchronous: a scope cannot span an
 * await, since other work would run inside it.
 */
export function tidy<T>(fn: () => T): T {
  const scope: Owned[] = [];
  stack.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    stack.pop();
    for (const x of scope) if (!x._kept) x.dispose();
    throw e;
  }
  stack.pop();
  if (result && typeof (result as { then?: unknown }).then === 'function') {
    for (const x of scope) if (!x._kept) x.dispose();
    throw new TypeError('tidy(fn): fn returned a Promise; a scope cannot span an await (use tidy inside the async function)');
  }
  const out = new Set<Owned>();
  collect(result, out);
  const parent = stack.length ? stack[stack.length - 1] : null;
  for (const x of scope) {
    if (out.has(x)) {
      if (parent) parent.push(x);
      else x._unscoped?.();
    } else if (!x._kept) x.dispose();
  }
  return result;
}

/** How many scopes are open (for tests and for code that must not run inside one). */
export function scopeDepth(): number {
  return stack.length;
}
