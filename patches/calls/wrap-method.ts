import type { CallSink } from './call.js';

/**
 * Marks the agent's wrappers. `Symbol.for` so that a second `patchAll()` and a second copy of the agent in the same
 * process both recognise a wrapper and never wrap twice (which would count every call twice).
 */
const WRAPPER_STATE = Symbol.for('llm-meter.wrapper-state');

/** One hooked method. `sink` null = disabled: the wrapper stays (under another tool's) but passes straight through. */
export interface WrappedMethod {
  readonly owner: object;
  readonly method: string;
  readonly original: Function;
  readonly wrapper: Function;
  readonly originalDescriptor: PropertyDescriptor | undefined;
  sink: CallSink | null;
}

export type Intercept = (sink: CallSink, original: Function, thisArg: unknown, args: unknown[]) => unknown;

function stateOf(fn: unknown): WrappedMethod | undefined {
  return typeof fn === 'function' ? (fn as { [WRAPPER_STATE]?: WrappedMethod })[WRAPPER_STATE] : undefined;
}

/** Finds the agent's wrapper in a method, directly or under other tools' wrappers (shimmer's `__original` chain). */
function findWrapper(fn: unknown): WrappedMethod | undefined {
  let current = fn;
  for (let depth = 0; depth < 16 && typeof current === 'function'; depth++) {
    const state = stateOf(current);
    if (state !== undefined) return state;
    current = (current as { __original?: unknown }).__original;
  }
  return undefined;
}

/** True when the agent's wrapper, switched on, is in `fn` (directly or under other tools' wrappers). */
export function isMetered(fn: unknown): boolean {
  const state = findWrapper(fn);
  return state !== undefined && state.sink !== null;
}

export type WrapOutcome = { wrapped: WrappedMethod } | { skipped: 'missing' } | { skipped: 'already-metered'; by: CallSink };

/**
 * Replaces `owner[method]` with a plain `function` wrapper (an arrow or async function would lose `this` or turn the
 * SDK's APIPromise into a plain Promise). If the agent's wrapper is already there, it is re-enabled rather than stacked.
 */
export function wrapMethod(owner: object, method: string, sink: CallSink, intercept: Intercept): WrapOutcome {
  const current = (owner as Record<string, unknown>)[method];
  if (typeof current !== 'function') return { skipped: 'missing' };
  const existing = findWrapper(current);
  if (existing !== undefined) {
    if (existing.sink !== null) return { skipped: 'already-metered', by: existing.sink };
    existing.sink = sink;
    return { wrapped: existing };
  }
  const original = current;
  const state: WrappedMethod = {
    owner,
    method,
    original,
    wrapper: undefined as unknown as Function,
    originalDescriptor: Object.getOwnPropertyDescriptor(owner, method),
    sink,
  };
  const wrapper = function meteredMethod(this: unknown, ...args: unknown[]): unknown {
    const active = state.sink;
    if (active === null) return Reflect.apply(original, this, args);
    return intercept(active, original, this, args);
  };
  Object.defineProperty(wrapper, WRAPPER_STATE, { value: state });
  Object.defineProperty(wrapper, 'name', { value: original.name });
  Object.defineProperty(wrapper, 'length', { value: original.length });
  (state as { wrapper: Function }).wrapper = wrapper;
  Object.defineProperty(owner, method, {
    value: wrapper,
    writable: true,
    configurable: true,
    enumerable: state.originalDescriptor?.enumerable ?? false,
  });
  return { wrapped: state };
}

/** Sets a method on one object, keeping the property as enumerable as it was (own) or hidden (inherited). */
export function replaceOnInstance(target: object, key: PropertyKey, value: Function): void {
  const own = Object.getOwnPropertyDescriptor(target, key);
  Object.defineProperty(target, key, { value, writable: true, configurable: true, enumerable: own?.enumerable ?? false });
}

/**
 * Restores the original method exactly when the agent's wrapper is on top. When another tool wrapped it since, removing
 * ours would silently remove theirs, so the wrapper is disabled instead and passes calls straight through.
 */
export function unwrapMethod(state: WrappedMethod): void {
  state.sink = null;
  const owner = state.owner as Record<string, unknown>;
  if (owner[state.method] !== state.wrapper) return;
  if (state.originalDescriptor !== undefined) Object.defineProperty(owner, state.method, state.originalDescriptor);
  else delete owner[state.method];
}
