import type { Enforcement } from '../store.js';
import type { LimitAnswer } from './backend-client.js';

/**
 * What this process knows of one tenant: the backend's last answer, and what of its own the answer cannot include —
 * spend not yet acknowledged by the backend, spend acknowledged after the question left, reservations in flight.
 */
export class TenantTally {
  limits: LimitAnswer[] | undefined;
  /** When the question behind `limits` left (ms on the store's clock); -Infinity once a change made it stale. */
  askedAt = Number.NEGATIVE_INFINITY;
  reservedNano = 0;
  unacknowledgedNano = 0;
  /** Acknowledged after the question behind `limits` left: the backend may have answered before counting it. */
  private acknowledgedSinceAnswerNano = 0;
  /** The same for the question under way, which becomes the figure above when its answer comes. */
  private acknowledgedSinceAskNano = 0;
  /** Bumped by every change of the tenant's limits, so that an answer older than the change is not trusted. */
  private version = 0;

  /** Settled spend as far as this process can tell: never less than what the backend has counted. */
  get spentNano(): number {
    return this.unacknowledgedNano + this.acknowledgedSinceAnswerNano;
  }

  /** Starts a question; returns what `answered` takes to tell whether a change overtook it. */
  asking(): number {
    this.acknowledgedSinceAskNano = 0;
    return this.version;
  }

  answered(limits: LimitAnswer[], askedAt: number, askedVersion: number): void {
    this.limits = limits;
    this.askedAt = askedVersion === this.version ? askedAt : Number.NEGATIVE_INFINITY;
    this.acknowledgedSinceAnswerNano = this.acknowledgedSinceAskNano;
  }

  changed(): void {
    this.version++;
    this.askedAt = Number.NEGATIVE_INFINITY;
  }

  settled(reservedNano: number, actualNano: number): void {
    this.reservedNano -= reservedNano;
    this.unacknowledgedNano += actualNano;
  }

  acknowledged(nano: number): void {
    this.unacknowledgedNano -= nano;
    this.acknowledgedSinceAnswerNano += nano;
    this.acknowledgedSinceAskNano += nano;
  }

  /** The first limit the amount does not fit in, counting the backend's spend, this process's and its holds. */
  fullLimit(amountNano: number, mode: Enforcement): LimitAnswer | undefined {
    const held = this.spentNano + this.reservedNano;
    return this.limits?.find((limit) => {
      const total = limit.spentNano + held;
      return mode === 'strict' ? total + amountNano > limit.limitNano : total >= limit.limitNano;
    });
  }
}
