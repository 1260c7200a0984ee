import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * genai's public methods (`models.generateContent`, ...) are async functions around the hooked internal ones: a call
 * the agent refuses rejects their promise too, and an app that did not await it would crash on an unhandled rejection
 * the agent caused. The public method, guarded, marks its promise handled when (and only when) the agent refused a
 * call inside it; awaiting it still throws the refusal, and any other error stays the app's to handle.
 */
interface OuterCall {
  refused: boolean;
  /** Weakly: the holder lives on in the async context of whatever the call started (a stream's socket, say). */
  promise?: WeakRef<Promise<unknown>>;
}

const outerCalls = new AsyncLocalStorage<OuterCall>();
const ignore = (): void => undefined;

export function guardRefusals(method: Function): Function {
  return function refusalGuarded(this: unknown, ...args: unknown[]): unknown {
    const outer: OuterCall = { refused: false };
    const result: unknown = outerCalls.run(outer, () => Reflect.apply(method, this, args));
    if (result instanceof Promise) {
      if (outer.refused) result.catch(ignore);
      else outer.promise = new WeakRef(result);
    }
    return result;
  };
}

/** Where the agent refuses a call: the public promise around it is marked handled. */
export function refusalIsHandled(): void {
  const outer = outerCalls.getStore();
  if (outer === undefined) return;
  outer.refused = true;
  outer.promise?.deref()?.catch(ignore);
}

/**
 * Guards the methods a class's constructor assigns to each instance (`this.generateContent = async (...) => ...`): an
 * accessor on the prototype receives the assignment and keeps the guarded method on the instance. Returns the undo.
 */
export function guardAssignedMethods(prototype: object, names: readonly string[]): () => void {
  const installed: string[] = [];
  for (const name of names) {
    if (Object.prototype.hasOwnProperty.call(prototype, name)) continue;
    Object.defineProperty(prototype, name, {
      configurable: true,
      enumerable: false,
      get: () => undefined,
      set(this: object, method: unknown) {
        Object.defineProperty(this, name, {
          value: typeof method === 'function' ? guardRefusals(method) : method,
          writable: true,
          configurable: true,
          enumerable: true,
        });
      },
    });
    installed.push(name);
  }
  return () => {
    for (const name of installed) delete (prototype as Record<string, unknown>)[name];
  };
}
