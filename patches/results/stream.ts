import type { MeteredCall } from '../calls/call.js';
import { outcomeOf, type ResponseFacts } from '../provider.js';

/**
 * Reads one item into `facts`, and says what the caller gets: false, the item as it is; true, nothing (the agent asked
 * for the item, and it must be hidden); an object, that object in the item's place (the item without what the agent
 * asked for in it).
 */
export type StreamItemReader = (item: unknown, facts: ResponseFacts, hideInjected: boolean) => boolean | object;

/**
 * Passes a stream's items through unchanged (except items the agent asked for itself, which it hides), reads usage off
 * them as they go by, and records the call exactly once: at the end, on `break` (return), or on error.
 */
export class MeteredIterator<T> implements AsyncIterableIterator<T> {
  readonly facts: ResponseFacts = {};
  // Bound once: next() runs per item, on the hot path of every stream.
  private readonly onResultBound = (result: IteratorResult<T>) => this.onResult(result);
  private readonly onErrorBound = (err: unknown) => this.onError(err);

  constructor(
    private readonly inner: AsyncIterator<T>,
    private readonly call: MeteredCall,
    private readonly readItem: StreamItemReader,
    private readonly hideInjected: boolean,
    private readonly requestId: string | undefined,
    /** The SDK's own abort signal: an aborted stream ends its loop normally, but it did not complete. */
    private readonly abortSignal?: AbortSignal,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<T>> {
    return this.inner.next().then(this.onResultBound, this.onErrorBound);
  }

  return(value?: unknown): Promise<IteratorResult<T>> {
    const closing = this.inner.return?.(value) ?? Promise.resolve({ done: true as const, value: value as T });
    this.settle(undefined, true);
    return closing;
  }

  throw(err?: unknown): Promise<IteratorResult<T>> {
    this.settle(err, true);
    return this.inner.throw?.(err) ?? Promise.reject(err);
  }

  private onResult(result: IteratorResult<T>): IteratorResult<T> | Promise<IteratorResult<T>> {
    if (result.done === true) {
      this.settle(undefined, this.abortSignal?.aborted === true);
      return result;
    }
    let verdict: boolean | object = false;
    try {
      verdict = this.readItem(result.value, this.facts, this.hideInjected);
    } catch (fault) {
      this.call.fault(fault);
    }
    if (verdict === false || verdict === result.value) return result;
    return verdict === true ? this.next() : { done: false, value: verdict as T };
  }

  private onError(err: unknown): never {
    this.settle(err, true);
    throw err;
  }

  /** Partial: the usage never arrived, or the stream was cut short before its final usage (break, abort, error). */
  private settle(error: unknown, cutShort: boolean): void {
    if (this.call.done) return;
    const outcome = outcomeOf(this.facts, this.requestId);
    outcome.partial = outcome.usage === undefined || (cutShort && this.facts.complete !== true);
    if (error !== undefined) outcome.error = error;
    this.call.finish(outcome);
  }
}

interface IteratorHolder {
  iterator: (...args: unknown[]) => AsyncIterator<unknown>;
  controller?: AbortController;
}

export function hasIteratorProperty(value: unknown): value is IteratorHolder {
  return value !== null && typeof value === 'object' && typeof (value as { iterator?: unknown }).iterator === 'function';
}

/**
 * Meters a Stainless `Stream` in place: its `iterator` property feeds `[Symbol.asyncIterator]`, `tee()` and
 * `toReadableStream()`, so wrapping it covers them all while the caller keeps the SDK's own object (and its controller).
 */
export function meterStreamInPlace(stream: IteratorHolder, call: MeteredCall, readItem: StreamItemReader, hideInjected: boolean, requestId: string | undefined): void {
  const inner = stream.iterator;
  stream.iterator = function meteredIterator(this: unknown, ...args: unknown[]) {
    return new MeteredIterator(inner.apply(this, args), call, readItem, hideInjected, requestId, stream.controller?.signal);
  };
}

/** Passes items through unchanged and records an event for each billed one (batch results). */
export class ItemEventIterator<T> implements AsyncIterableIterator<T> {
  constructor(
    private readonly inner: AsyncIterator<T>,
    private readonly call: MeteredCall,
    private readonly readEachItem: (item: unknown) => ResponseFacts | undefined,
  ) {}

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorResult<T>> {
    return this.inner.next().then((result) => {
      if (result.done !== true) {
        try {
          const facts = this.readEachItem(result.value);
          if (facts !== undefined) this.call.recordItem({ usage: facts.usage, model: facts.model, responseId: facts.responseId });
        } catch (fault) {
          this.call.fault(fault);
        }
      }
      return result;
    });
  }

  return(value?: unknown): Promise<IteratorResult<T>> {
    return this.inner.return?.(value) ?? Promise.resolve({ done: true as const, value: value as T });
  }
}

/**
 * A call whose result the caller drops without reading it — a promise never awaited, a stream not read to the end —
 * was still sent, and billed: when that object is garbage collected, the call is recorded as partial (at its
 * reservation). A call read to the end, broken out of or failed is recorded then. The call is the unregister token: the
 * promise's watch is handed over to the stream it resolves to.
 */
const abandoned = new FinalizationRegistry<{ call: MeteredCall; requestId: string | undefined }>(({ call, requestId }) => {
  if (!call.done) call.finishInBackground({ requestId, partial: true });
});

export function settleWhenAbandoned(result: object, call: MeteredCall, requestId: string | undefined): void {
  abandoned.unregister(call);
  abandoned.register(result, { call, requestId }, call);
}
