/**
 * Holds a Stainless SDK's request until an asynchronous admission (a fleet-wide spend check) has answered, without
 * changing what the caller gets back: the SDK builds its APIPromise as usual, and its own request pipeline awaits the
 * request options before anything is sent. The patched `methodRequest` swaps those options for a promise that waits
 * on the admission, so a refused call rejects inside the SDK, the way its own errors do, and never reaches the network.
 *
 * The hooked method calls `methodRequest` synchronously, so the gate is handed over through a variable set only for
 * the duration of that synchronous call.
 */
/** A gate resolves once the request may go, with a rewrite of its options when the request must change (an output cap). */
export type OptionsRewrite = ((options: Record<string, unknown>) => Record<string, unknown>) | undefined;
let pendingGate: Promise<OptionsRewrite> | undefined;

export function runBehindGate<R>(gate: Promise<OptionsRewrite>, run: () => R): { result: R; gated: boolean } {
  pendingGate = gate;
  try {
    const result = run();
    return { result, gated: pendingGate === undefined };
  } finally {
    pendingGate = undefined;
  }
}

/** The patched methodRequest's step: request options that wait for the pending gate, if a hooked call set one. */
export function gatedOptions(options: unknown): unknown {
  const gate = pendingGate;
  if (gate === undefined) return options;
  pendingGate = undefined;
  return gate.then((rewrite) => (rewrite === undefined ? options : Promise.resolve(options as Record<string, unknown>).then(rewrite)));
}
