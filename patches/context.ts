import { AsyncLocalStorage } from 'node:async_hooks';

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

/**
 * Runs the steps of a lazily started stream in the async context of the call that created it, so that the requests it
 * makes on first read (and so their tenant) belong to the caller, not to whoever reads the stream. The same iterator
 * object comes back, its own next/return/throw bound.
 */
export function bindStreamToCallerContext(result: unknown): unknown {
  const run = AsyncLocalStorage.snapshot() as Runner;
  if (result instanceof Promise) {
    return result.then((iterator: unknown) => {
      bindSteps(iterator, run);
      return iterator;
    });
  }
  bindSteps(result, run);
  return result;
}
