/**
 * Holds a Stainless SDK's request until an asynchronous admission (a fleet-wide spend check) has answered, without
 * changing what the caller gets back: the SDK builds its APIPromise as usual, and its own request pipeline awaits the
 * request options before anything is sent. The patched `methodRequest` swaps those options for a promise that waits
 * on the admission, so a refused call rejects inside the SDK, the way its own errors do, and never reaches the network.
 *
 * The hooked method calls `methodRequest` synchronously, so the gate is handed over through a variable set only for
 * the duration of that synchronous call.
 */
let pendingGate: Promise<unknown> | undefined;

export function runBehindGate<R>(gate: Promise<unknown>, run: () => R): { result: R; gated: boolean } {
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
  return gate.then(() => options);
}
