import type { MeteredCall } from '../calls/call.js';
import { usageOf, type HookTarget } from '../provider.js';
import { hasIteratorProperty, ItemEventIterator, MeteredIterator, meterStreamInPlace, settleWhenAbandoned } from './stream.js';

/** Everything needed to read one call's result. */
export interface Observation {
  call: MeteredCall;
  target: HookTarget;
  args: readonly unknown[];
  hideInjected: boolean;
  requestIdHeader: string | undefined;
  /** The caller took the raw response: its body, read through the agent, records the call. */
  rawTaken: boolean;
}

export function requestIdOf(response: Response | undefined, header: string | undefined): string | undefined {
  if (header === undefined || response === undefined) return undefined;
  return response.headers?.get(header) ?? undefined;
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return value !== null && typeof value === 'object' && typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function';
}

/**
 * Records a call's result and returns what the caller gets: the same value, except a bare async generator, which comes
 * back behind a metered iterator (a Stainless `Stream` is metered in place instead, so the SDK's own object survives).
 */
export function observeResult(data: unknown, response: Response | undefined, o: Observation): unknown {
  const requestId = requestIdOf(response, o.requestIdHeader);
  const readEachItem = o.target.readEachItem;
  if (readEachItem !== undefined && isAsyncIterable(data)) {
    o.call.abandon();
    // In place, so the caller keeps the SDK's own object (its controller, its response).
    const iterate = data[Symbol.asyncIterator];
    Object.defineProperty(data, Symbol.asyncIterator, {
      configurable: true,
      writable: true,
      value: function meteredItems(this: unknown) {
        return new ItemEventIterator(iterate.call(this), o.call, readEachItem);
      },
    });
    return data;
  }
  const readItem = o.target.readStreamItem;
  if (readItem !== undefined) {
    if (hasIteratorProperty(data)) {
      meterStreamInPlace(data, o.call, readItem, o.hideInjected, requestId);
      settleWhenAbandoned(data, o.call, requestId);
      return data;
    }
    if (isAsyncIterable(data)) {
      const stream = new MeteredIterator(data[Symbol.asyncIterator](), o.call, readItem, o.hideInjected, requestId);
      settleWhenAbandoned(stream, o.call, requestId);
      return stream;
    }
  }
  const facts = o.target.readResponse(data, o.args);
  o.call.finish({ usage: usageOf(facts), model: facts.model, responseId: facts.responseId, requestId });
  return data;
}
