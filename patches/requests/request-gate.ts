import { BODY_ADDITIONS } from './body-additions.js';
import type { CapToSend } from './output-bound.js';
import { withField } from '../../src/fast-objects.js';

/**
 * Holds a Stainless SDK's request until an asynchronous admission (a fleet-wide spend check) has answered, and carries
 * what the agent adds to the request, without changing what the caller gets back: the SDK builds its APIPromise as
 * usual, and its own request pipeline awaits the request options before anything is sent. The patched `methodRequest`
 * hands those options over to the gate, so a refused call rejects inside the SDK, the way its own errors do, and never
 * reaches the network.
 *
 * The hooked method calls `methodRequest` synchronously, so the gate is handed over through a variable set only for
 * the duration of that synchronous call.
 */
export type OptionsRewrite = ((options: Record<string, unknown>) => Record<string, unknown>) | undefined;
/** A rewrite of the request's options to apply now, or a promise of one: the request waits for it. */
export type RequestGate = OptionsRewrite | Promise<OptionsRewrite>;
let pendingGate: RequestGate | undefined;

export function runBehindGate<R>(gate: RequestGate, run: () => R): { result: R; gated: boolean } {
  pendingGate = gate;
  try {
    const result = run();
    return { result, gated: pendingGate === undefined };
  } finally {
    pendingGate = undefined;
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | undefined)?.then === 'function';
}

function rewritten(options: unknown, rewrite: OptionsRewrite): unknown {
  if (rewrite === undefined) return options;
  if (isThenable(options)) return Promise.resolve(options).then((o) => rewrite(o as Record<string, unknown>));
  return rewrite(options as Record<string, unknown>);
}

/** The patched methodRequest's step: request options that wait for the pending gate, if a hooked call set one. */
export function gatedOptions(options: unknown): unknown {
  const gate = pendingGate;
  if (gate === undefined) return options;
  pendingGate = undefined;
  if (typeof gate === 'function') return rewritten(options, gate);
  return gate.then((rewrite) => rewritten(options, rewrite));
}

/** The rewrite that has the body encoded with `additions` and the output cap, if any. */
export function addingToBody(additions: Record<string, unknown> | undefined, cap: CapToSend | undefined): OptionsRewrite {
  if (cap === undefined && additions === undefined) return undefined;
  const fields: Record<string, unknown> = { ...additions };
  if (cap !== undefined) fields[cap.path[0]!] = nestedValue(cap.path, cap.tokens);
  return (options) => withField(options, BODY_ADDITIONS, fields);
}

/** `value` under the path's keys after the first (`{ b: { c: value } }` for `a.b.c`), built without computed keys. */
function nestedValue(path: readonly string[], value: unknown): unknown {
  let nested = value;
  for (let i = path.length - 1; i > 0; i--) {
    const parent: Record<string, unknown> = {};
    parent[path[i]!] = nested;
    nested = parent;
  }
  return nested;
}
