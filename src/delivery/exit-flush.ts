/** What a Meter offers the process's exit path. */
export interface ExitParticipant {
  /** Events not delivered yet. */
  undelivered(): number;
  /** Events recorded so far (to tell whether anything new happened since the last exit flush). */
  recorded(): number;
  /** Sends what it can until the deadline, and resolves by then whatever a peer does; never rejects. */
  drain(deadline: number): Promise<void>;
  /**
   * The last synchronous chance, at 'exit' or before a signal ends the process: writes what can be written without the
   * event loop (the usage file) and says what is lost. (Its name stays: copies of the agent share the registry.)
   */
  writeNow(): void;
  shutdownTimeout: number;
}

const SIGNALS = ['SIGTERM', 'SIGINT'] as const;

interface ExitRegistry {
  participants: Set<ExitParticipant>;
  installed: boolean;
  lastBeforeExitRecorded: number;
  signalling: boolean;
}

const REGISTRY_KEY = Symbol.for('llm-meter.exit-registry');
const registry: ExitRegistry = ((globalThis as Record<symbol, unknown>)[REGISTRY_KEY] as ExitRegistry | undefined) ??
  ((globalThis as Record<symbol, unknown>)[REGISTRY_KEY] = { participants: new Set(), installed: false, lastBeforeExitRecorded: -1, signalling: false } as ExitRegistry);

const undelivered = (): number => [...registry.participants].reduce((n, p) => n + p.undelivered(), 0);
const recorded = (): number => [...registry.participants].reduce((n, p) => n + p.recorded(), 0);
const drainAll = (): Promise<unknown> =>
  Promise.all([...registry.participants].map((p) => p.drain(Date.now() + p.shutdownTimeout)));

/**
 * beforeExit: the loop is empty but the process may still do async work: flush (once per batch of new events, so a
 * dead ingest cannot keep the process looping).
 */
function onBeforeExit(): void {
  const seen = recorded();
  if (undelivered() === 0 || seen === registry.lastBeforeExitRecorded) return;
  registry.lastBeforeExitRecorded = seen;
  void drainAll();
}

/**
 * SIGTERM / SIGINT: flush (bounded by shutdownTimeout), then end the way the process would have without the agent:
 * if the app listens for the signal itself, its handler decides; otherwise the signal's default action (termination)
 * is restored and the signal raised again. A second signal while flushing is the user insisting: it ends the process
 * at once (or, when the app listens for it, is the app's handler's alone, as always).
 */
function onSignal(signal: NodeJS.Signals): void {
  const appHandlesIt = process.listenerCount(signal) > 1;
  if (registry.signalling) {
    if (!appHandlesIt) endBy(signal);
    return;
  }
  registry.signalling = true;
  void drainAll().finally(() => {
    registry.signalling = false;
    if (!appHandlesIt) endBy(signal);
  });
}

/** Ends the process by the signal's default action, after the last synchronous write ('exit' does not run then). */
function endBy(signal: NodeJS.Signals): void {
  onExit();
  uninstall();
  process.kill(process.pid, signal);
}

function onExit(): void {
  for (const p of registry.participants) {
    try {
      p.writeNow();
    } catch {
      // Nothing can be reported any more.
    }
  }
}

function install(): void {
  if (registry.installed) return;
  registry.installed = true;
  process.on('beforeExit', onBeforeExit);
  process.on('exit', onExit);
  for (const signal of SIGNALS) process.on(signal, onSignal);
}

function uninstall(): void {
  if (!registry.installed) return;
  registry.installed = false;
  process.removeListener('beforeExit', onBeforeExit);
  process.removeListener('exit', onExit);
  for (const signal of SIGNALS) process.removeListener(signal, onSignal);
}

/** Signal listeners do not keep the event loop alive: installing them never keeps a process running. */
export function joinExitFlush(participant: ExitParticipant): void {
  registry.participants.add(participant);
  install();
}

export function leaveExitFlush(participant: ExitParticipant): void {
  registry.participants.delete(participant);
  if (registry.participants.size === 0) uninstall();
}
