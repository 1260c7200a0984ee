export interface BreakerEvents {
  /** The store stopped answering (once per outage). */
  opened(reason: string): void;
  /** It answers again. */
  closed(): void;
  /** `retryAfter` has passed since the last failure, for a store that probes on its own rather than on the next call. */
  probeDue?(): void;
}

/**
 * A circuit breaker around a limit store (Redis, the app's backend): after a failure the store is left alone for
 * `retryAfter`, so that a dead store costs the app one timeout, not one per call; then a single request goes through
 * as a probe while the others still count the store as down. Any answer closes it, a late one included.
 */
export class CircuitBreaker {
  private state: 'closed' | 'open' | 'probing' = 'closed';
  private retryAt = 0;
  private probeTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly retryAfter: number,
    /** The time the breaker waits on (ms): the Meter's clock, or a monotonic one. */
    private readonly now: () => number,
    private readonly events: BreakerEvents,
  ) {}

  get isOpen(): boolean {
    return this.state !== 'closed';
  }

  /** May a request go to the store now? Once `retryAfter` has passed, the first one to ask goes as the probe. */
  allows(): boolean {
    if (this.state === 'closed') return true;
    if (this.state === 'probing' || this.now() < this.retryAt) return false;
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
    this.retryAt = this.now() + this.retryAfter;
    const probeDue = this.events.probeDue;
    if (probeDue !== undefined) {
      clearTimeout(this.probeTimer);
      this.probeTimer = setTimeout(() => {
        this.retryAt = Number.NEGATIVE_INFINITY;
        probeDue();
      }, this.retryAfter).unref();
    }
    if (wasClosed) this.events.opened(reason);
  }

  stop(): void {
    clearTimeout(this.probeTimer);
  }
}
