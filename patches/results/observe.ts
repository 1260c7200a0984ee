import type { MeteredCall } from '../calls/call.js';
import { outcomeOf, type HookTarget } from '../provider.js';
import { isWebReadableStream, meterWebStreamInPlace } from './web-stream.js';
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
  /** The object the hooked method was called on. */
  resource: unknown;
}

export function requestIdOf(response: Response | undefined, header: string | undefined): string | undefined {
  if (header === undefined || response === undefined) return undefined;
  return response.headers?.get(header) ?? undefined;
}

/** The cost a LiteLLM proxy reports for a whole (non-streamed) response, in USD. */
const COST_HEADER = 'x-litellm-response-cost';

/** A gateway's cost header, read only from hosts the price data does not know (a proxy in front of a provider). */
export function reportedCostHeader(response: Response | undefined, call: MeteredCall): number | undefined {
  if (response === undefined || !call.start.identity.unknownHost) return undefined;
  const value = response.headers?.get(COST_HEADER);
  if (value === null || value === undefined || value === '') return undefined;
  const cost = Number(value);
  return Number.isFinite(cost) && cost >= 0 ? cost : undefined;
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return value !== null && typeof value === 'object' && typeof (value as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function';
}

/**
 * Records a call's result and returns what the caller gets: the same value, except a bare async generator, which comes
 * back behind a metered iterator (a Stainless `Stream` is metered in place instead, so the SDK's own object survives).
 */
export function observeResult(data: unknown, response: Response | undefined, o: Observation): unknown {
  const requestId = requestIdOf(response, o.requestIdHeader) ?? o.target.requestIdOf?.(data);
  const readEachItem = o.target.readEachItem;
  if (readEachItem !== undefined && isAsyncIterable(data)) {
    o.call.abandon();
    // In place, so the caller keeps the SDK's own object (its controller, its response).
    iterateThrough(data, (items) => new ItemEventIterator(items, o.call, readEachItem));
    return data;
  }
  const readItem = o.target.streamReaderFor?.(o.resource) ?? o.target.readStreamItem;
  if (readItem !== undefined) {
    if (hasIteratorProperty(data)) {
      meterStreamInPlace(data, o.call, readItem, o.hideInjected, requestId);
      settleWhenAbandoned(data, o.call, requestId);
      return data;
    }
    const streamAt = o.target.streamAt;
    const stream = streamAt === undefined ? data : (data as Record<string, unknown> | null | undefined)?.[streamAt];
    const metered = (items: AsyncIterator<unknown>) => new MeteredIterator(items, o.call, readItem, o.hideInjected, requestId);
    // A web ReadableStream (Speakeasy's EventStream, an AI SDK model's parts): metered in place, so the caller keeps
    // its reader, tee and pipes.
    if (isWebReadableStream(stream)) {
      meterWebStreamInPlace(stream, o.call, readItem, o.hideInjected, requestId);
      settleWhenAbandoned(stream, o.call, requestId);
      return data;
    }
    if (isAsyncIterable(stream)) {
      // A stream the result holds (Bedrock's) is metered in place; a bare async generator comes back behind one.
      if (streamAt !== undefined) {
        iterateThrough(stream, metered);
        settleWhenAbandoned(stream, o.call, requestId);
        return data;
      }
      const iterator = metered(stream[Symbol.asyncIterator]());
      settleWhenAbandoned(iterator, o.call, requestId);
      return iterator;
    }
  }
  const facts = o.target.readResponse(data, o.args, o.resource);
  facts.reportedCostUsd ??= reportedCostHeader(response, o.call);
  const outcome = outcomeOf(facts, requestId);
  if (o.call.start.binding?.readsResponse === true) outcome.response = data;
  o.call.finish(outcome);
  return data;
}

/** Makes every iteration of `iterable` (the SDK's own object) go through `wrap`. */
function iterateThrough(iterable: AsyncIterable<unknown>, wrap: (items: AsyncIterator<unknown>) => AsyncIterator<unknown>): void {
  const iterate = iterable[Symbol.asyncIterator];
  Object.defineProperty(iterable, Symbol.asyncIterator, {
    configurable: true,
    writable: true,
    value: function meteredItems(this: unknown) {
      return wrap(iterate.call(this));
    },
  });
}
