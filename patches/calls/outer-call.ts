import { AsyncLocalStorage } from 'node:async_hooks';

/**
 * genai's public methods (`models.generateContent`, ...) are async functions around the hooked internal ones: a call
 * the agent refuses rejects their promise too, and an app that did not await it would crash on an unhandled rejection
 * the agent caused. The public method, guarded, marks its promise handled when (and only when) the agent refused a
 * call inside it; awaiting it still throws the refusal, and any other error stays the app's to handle.
 */
interface OuterCall {
  /** The public call this one runs inside (chats.sendMessage around models.generateContent): refused with it. */
  parent: OuterCall | undefined;
  refused: boolean;
  /** Weakly: the holder lives on in the async context of whatever the call started (a stream's socket, say). */
  promise?: WeakRef<Promise<unknown>>;
}

const outerCalls = new AsyncLocalStorage<OuterCall>();
const ignore = (): void => undefined;

const GUARDED = Symbol.for('llm-meter.refusal-guarded');

export function guardRefusals(method: Function): Function {
  if ((method as { [GUARDED]?: true })[GUARDED] === true) return method;
  const guarded = function refusalGuarded(this: unknown, ...args: unknown[]): unknown {
    const outer: OuterCall = { parent: outerCalls.getStore(), refused: false };
    const result: unknown = outerCalls.run(outer, () => Reflect.apply(method, this, args));
    if (result instanceof Promise) {
      if (outer.refused) result.catch(ignore);
      else outer.promise = new WeakRef(result);
    }
    return result;
  };
  Object.defineProperty(guarded, GUARDED, { value: true });
  return guarded;
}

/** Where the agent refuses a call: the public promises around it are marked handled. */
export function refusalIsHandled(): void {
  for (let outer = outerCalls.getStore(); outer !== undefined; outer = outer.parent) {
    outer.refused = true;
    outer.promise?.deref()?.catch(ignore);
  }
}

/**
 * Guards public methods of a class: those on its prototype in place, and those its constructor assigns to each instance
 * (`this.generateContent = async (...) => ...`) through an accessor on the prototype that receives the assignment and
 * keeps the guarded method on the instance. Returns the undo.
 */
export function guardPublicMethods(prototype: object, names: readonly string[]): () => void {
  const undos: (() => void)[] = [];
  for (const name of names) {
    const own = Object.getOwnPropertyDescriptor(prototype, name);
    if (own !== undefined) {
      if (typeof own.value !== 'function' || (own.value as { [GUARDED]?: true })[GUARDED] === true) continue;
      Object.defineProperty(prototype, name, { ...own, value: guardRefusals(own.value as Function) });
      undos.push(() => Object.defineProperty(prototype, name, own));
      continue;
    }
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
    undos.push(() => delete (prototype as Record<string, unknown>)[name]);
  }
  return () => {
    for (const undo of undos) undo();
  };
}
