import { observeResult, requestIdOf, type Observation } from './observe.js';
import { readRawResponse } from './raw-response.js';

/** The parts of a Stainless APIPromise the agent relies on (same shape in openai 5-7 and @anthropic-ai/sdk). */
interface ApiPromiseLike {
  responsePromise: Promise<{ response: Response }>;
  parseResponse: (client: unknown, props: { response: Response }) => Promise<unknown>;
  parsedPromise?: Promise<unknown>;
  asResponse(): Promise<Response>;
}

export function isApiPromise(value: unknown): value is ApiPromiseLike {
  const p = value as Partial<ApiPromiseLike> | null;
  return (
    p !== null &&
    typeof p === 'object' &&
    typeof p.parseResponse === 'function' &&
    typeof p.asResponse === 'function' &&
    typeof p.responsePromise?.then === 'function'
  );
}

/**
 * Observes an APIPromise without changing what the caller gets: the same object comes back, its body is parsed only
 * when the caller asks (through the SDK's own parse), errors reach the caller unchanged, and a caller who reads the raw
 * `asResponse()` is still metered from a clone of the body.
 */
export function observeApiPromise(promise: ApiPromiseLike, o: Observation): void {
  // Replaced by a derived promise that rejects the same way: the caller sees the same error, and an unawaited failing
  // call behaves as it would without the agent.
  promise.responsePromise = promise.responsePromise.then(undefined, (err: unknown) => {
    o.call.finish({ error: err });
    throw err;
  });

  const parse = promise.parseResponse;
  promise.parseResponse = function meteredParse(this: unknown, client, props) {
    return parse.call(this, client, props).then(
      (data) => {
        try {
          observeResult(data, props.response, o);
        } catch (fault) {
          o.call.fault(fault);
        }
        return data;
      },
      (err: unknown) => {
        o.call.finish({ error: err, requestId: requestIdOf(props.response, o.requestIdHeader) });
        throw err;
      },
    );
  };

  const asResponse = promise.asResponse;
  Object.defineProperty(promise, 'asResponse', {
    configurable: true,
    writable: true,
    enumerable: false,
    value: function meteredAsResponse(this: ApiPromiseLike) {
      const raw = asResponse.call(this);
      // withResponse() parses too: the parse path meters it, the raw path must not count it again.
      if (this.parsedPromise !== undefined) return raw;
      return raw.then((response) => {
        if (!o.call.done) readRawResponse(response, o);
        return response;
      });
    },
  });
}
