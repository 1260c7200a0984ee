import type { CallOutcome, CallStart } from './event.js';

/** Calls recorded at once when this many have ended within one turn of the event loop. */
const BATCH_SIZE = 64;

/**
 * Calls that ended, turned into events off the call's path: building, pricing, settling and emitting an event is done
 * for a batch at a time, on the next turn of the event loop (or at once when a batch is full). Whoever reads what
 * recording produces (stats, spend, delivery, the exit path) drains first, so nothing is read stale. A limited call's
 * admission reads the ledger as it is, and drains only when it would otherwise refuse: until then a call that ended
 * still holds its reservation, the safe side of a budget.
 */
export class CallRecorder {
  /** start, outcome, endedAt of each call, flat: no object per call. */
  private pending: unknown[] = [];
  private scheduled = false;

  constructor(private readonly recordNow: (start: CallStart, outcome: CallOutcome, endedAt: number) => void) {}

  add(start: CallStart, outcome: CallOutcome, endedAt: number): void {
    this.pending.push(start, outcome, endedAt);
    if (this.pending.length >= BATCH_SIZE * 3) this.drain();
    else if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.drainScheduled);
    }
  }

  /** Records every call that ended so far; true when there was any. */
  drain(): boolean {
    const batch = this.pending;
    if (batch.length === 0) return false;
    this.pending = [];
    for (let i = 0; i < batch.length; i += 3) this.recordNow(batch[i] as CallStart, batch[i + 1] as CallOutcome, batch[i + 2] as number);
    return true;
  }

  private readonly drainScheduled = (): void => {
    this.scheduled = false;
    this.drain();
  };
}
