export interface BreakerEvents {
  /** Redis stopped answering (once per outage). */
  opened(reason: string): void;
  /** Redis answers again. */
  closed(): void;
  /** `retryAfter` has passed since the last failure: the next command may go as a probe. */
  probeDue(): void;
}

/**
 * A circuit breaker around Redis: after a failure the store leaves Redis alone for `retryAfter`, so that a dead Redis
 * costs the app one timeout, not one per call; then one command goes through as a probe. Any answer from Redis closes
 * it, a late one included. It moves on timers and answers only, never on reading a clock: within one turn of the
 * event loop, a breaker that opened stays open.
 */
export class CircuitBreaker {
  private state: 'closed' | 'open' | 'probe due' | 'probing' = 'closed';
  private probeTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly retryAfter: number,
    private readonly events: BreakerEvents,
  ) {}

  get isOpen(): boolean {
    return this.state !== 'closed';
  }

  /** May a command go to Redis now? Once a probe is due, the first one to ask goes as the probe. */
  allows(): boolean {
    if (this.state === 'closed') return true;
    if (this.state !== 'probe due') return false;
    this.state = 'probing';
    return true;
  }

  answered(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.probeTimer);
    this.events.closed();
  }

  failed(reason: string): void {
    const wasClosed = this.state === 'closed';
    this.state = 'open';
    clearTimeout(this.probeTimer);
    this.probeTimer = setTimeout(() => {
      this.state = 'probe due';
      this.events.probeDue();
    }, this.retryAfter).unref();
    if (wasClosed) this.events.opened(reason);
  }

  stop(): void {
    clearTimeout(this.probeTimer);
  }
}
