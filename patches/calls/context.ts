import { currentScope, tenantStore, type ScopeContext } from '../../src/tenants/tenant.js';
import { replaceOnInstance } from './wrap-method.js';

type Runner = <R>(fn: () => R) => R;
const STEPS = ['next', 'return', 'throw'] as const;

function bindSteps(iterator: unknown, run: Runner): void {
  if (iterator === null || typeof iterator !== 'object') return;
  const target = iterator as Record<string, unknown>;
  for (const step of STEPS) {
    const original = target[step];
    if (typeof original !== 'function') continue;
    target[step] = function contextBoundStep(this: unknown, ...args: unknown[]) {
      return run(() => Reflect.apply(original, this, args));
    };
  }
}

/** Binds each method an object inherits (a tool runner's iterator, `then`, `runUntilDone`, ...), on the object itself. */
function bindMethods(target: object, run: Runner): void {
  for (let proto = Object.getPrototypeOf(target) as object | null; proto !== null && proto !== Object.prototype; proto = Object.getPrototypeOf(proto) as object | null) {
    for (const key of Reflect.ownKeys(proto)) {
      if (key === 'constructor' || Object.prototype.hasOwnProperty.call(target, key)) continue;
      const method = Object.getOwnPropertyDescriptor(proto, key)?.value as unknown;
      if (typeof method !== 'function') continue;
      replaceOnInstance(target, key, function contextBoundMethod(this: unknown, ...args: unknown[]) {
        const result = run(() => Reflect.apply(method, this, args));
        if (typeof (result as { next?: unknown } | null)?.next === 'function') bindSteps(result, run);
        return result;
      });
    }
  }
}

/**
 * Runs what a lazily started helper does in the tenant scope of the call that created it, so that the requests it
 * makes on first read (and so their tenant and limits) belong to the caller, not to whoever reads it: a stream's
 * next/return/throw, or every method of a runner object (anthropic's tool runner). The same object comes back. Only
 * the tenant is carried over (the app's own async context is the reader's, as without the agent), and only when the
 * reader is in another scope: a stream read where it was made, the common case, runs as it is.
 */
export function bindStreamToCallerContext(result: unknown): unknown {
  const scope = currentScope();
  const run: Runner = (fn) => (currentScope() === scope ? fn() : tenantStore.run(scope as ScopeContext, fn));
  const bind = (value: unknown): unknown => {
    if (value === null || typeof value !== 'object') return value;
    if (typeof (value as { next?: unknown }).next === 'function') bindSteps(value, run);
    else bindMethods(value, run);
    return value;
  };
  return result instanceof Promise ? result.then(bind) : bind(result);
}
