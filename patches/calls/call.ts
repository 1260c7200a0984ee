import type { CallOutcome, CallStart } from '../../src/event.js';
import type { CapToSend } from '../requests/output-bound.js';
import type { HookTarget, ProviderPatch } from '../provider.js';

/** What a wrapper reports to: implemented by the Meter that installed it. */
export interface CallSink {
  /** Starts a call: tenant and clock captured now, spend limits checked (a refused call carries its refusal). */
  begin(provider: ProviderPatch, target: HookTarget, args: readonly unknown[], resource: unknown): MeteredCall;
  record(start: CallStart, outcome: CallOutcome): void;
  /** The request never left: its reservation (now, or when its admission answers) is released. */
  release(start: CallStart): void;
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
    /**
     * Set when the spend check answers asynchronously: the request must wait for it, and fail if it rejects. It resolves
     * to the output cap strict mode sends with the request, if any.
     */
    readonly admission?: Promise<CapToSend | undefined>,
    /** The output cap strict mode sends with a request that set none (known at once from an in-process check). */
    readonly sendOutputCap?: CapToSend,
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
   * For paths no caller is waiting on (a watcher of the request, a raw body being read, a collected stream): a fault the
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
    if (this.settled) return;
    this.settled = true;
    this.sink.release(this.start);
  }

  fault(err: unknown): void {
    this.sink.fault(err);
  }
}
