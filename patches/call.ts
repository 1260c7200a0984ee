import type { CallOutcome, CallStart } from '../src/event.js';
import type { RequestFacts } from './provider.js';

/** What a wrapper reports to: implemented by the Meter that installed it. */
export interface CallSink {
  /** Starts a call: tenant and clock captured now, spend limits checked (a refused call carries its refusal). */
  begin(provider: string, endpoint: string, request: RequestFacts, args: readonly unknown[]): MeteredCall;
  record(start: CallStart, outcome: CallOutcome): void;
  /** A fault inside the agent: counted and logged; rethrown only with raiseOnError. */
  fault(err: unknown): void;
}

/** One intercepted call. Whatever path it ends on, it is recorded exactly once. */
export class MeteredCall {
  private settled = false;

  constructor(
    private readonly sink: CallSink,
    readonly start: CallStart,
    /** Set when spend limits refuse the call: it must not be sent. */
    readonly refusal?: Error,
    /** Set when the spend check answers asynchronously: the request must wait for it, and fail if it rejects. */
    readonly admission?: Promise<void>,
  ) {}

  get done(): boolean {
    return this.settled;
  }

  finish(outcome: CallOutcome): void {
    if (this.settled) return;
    this.settled = true;
    this.sink.record(this.start, outcome);
  }

  /**
   * For paths no caller is waiting on (a watcher of the request, a clone being read, a collected stream): a fault the
   * sink rethrows under raiseOnError has nobody to reach there, and must not become an unhandled rejection.
   */
  finishInBackground(outcome: CallOutcome): void {
    try {
      this.finish(outcome);
    } catch {
      // Already counted and logged by the sink.
    }
  }

  /** Records one billed unit of a call that returns several (batch results), sharing the call's tenant and endpoint. */
  recordItem(outcome: CallOutcome): void {
    this.sink.record(this.start, outcome);
  }

  /** The request never left (the SDK threw before sending), or it is billed per item: no event for the call itself. */
  abandon(): void {
    this.settled = true;
  }

  fault(err: unknown): void {
    this.sink.fault(err);
  }
}
