/**
 * While a hooked method (or the agent itself) is sending, the client's request methods it goes through let its request
 * pass straight on: it is already metered, and counts once. Set only for the synchronous part of the send: the SDKs
 * call their request methods synchronously from the public ones.
 */
let agentSending = 0;

/** Runs `send` as a request the agent already accounts for. */
export function sendingAsAgent<R>(send: () => R): R {
  agentSending++;
  try {
    return send();
  } finally {
    agentSending--;
  }
}

export function isAgentSending(): boolean {
  return agentSending > 0;
}
