import type { AgentLog } from '../../log.js';
import { LimitStoreUnavailableError } from '../redis-store.js';

export interface CircuitBreakerOptions {
  /** How long a failed backend is left alone before one request may try it again (ms). */
  retryAfter: number;
  clock: () => number;
  /** What the store does while the backend is down, for the warning. */
  whileDown: string;
}

/**
 * Guards every request to the limits backend. After a failure the backend is left alone for `retryAfter`; then a
 * single request probes it while the others still count it as down. One warning per outage, one line when it ends.
 */
export class CircuitBreaker {
  private downUntil = 0;
  private outage = false;
  private probing = false;

  constructor(
    private readonly options: CircuitBreakerOptions,
    private readonly log: AgentLog,
    private readonly onRecovered: () => void,
  ) {}

  /** Runs the request unless the backend is being left alone; anything the request throws counts as the backend failing. */
  async run<T>(request: () => Promise<T>): Promise<T> {
    if (!this.admits()) throw new LimitStoreUnavailableError('the limits backend is unavailable; it is left alone until its retry time');
    const probe = this.outage;
    try {
      const result = await request();
      if (probe) this.probing = false;
      this.succeeded();
      return result;
    } catch (err) {
      if (probe) this.probing = false;
      this.failed(err as Error);
      throw new LimitStoreUnavailableError(`the limits backend is unavailable: ${(err as Error).message}`);
    }
  }

  private admits(): boolean {
    if (!this.outage) return true;
    if (this.probing || this.options.clock() < this.downUntil) return false;
    this.probing = true;
    return true;
  }

  private succeeded(): void {
    if (!this.outage) return;
    this.outage = false;
    this.log.warn('the limits backend answers again');
    this.onRecovered();
  }

  private failed(err: Error): void {
    this.downUntil = this.options.clock() + this.options.retryAfter;
    if (this.outage) return;
    this.outage = true;
    this.log.warn(`the limits backend is unavailable (${err.message}); ${this.options.whileDown} until it answers again`);
  }
}
