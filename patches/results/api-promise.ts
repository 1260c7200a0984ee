import { observeResult, requestIdOf, type Observation } from './observe.js';
import { meterRawResponse } from './raw-response.js';
import { replaceOnInstance } from '../calls/wrap-method.js';
import { settleWhenAbandoned } from './stream.js';

type ParseProps = { response: Response };
type Transform = (data: unknown, props: ParseProps) => unknown;

/** The parts of a Stainless APIPromise the agent relies on (openai 4-7, @anthropic-ai/sdk). */
interface ApiPromiseLike {
  responsePromise: Promise<{ response: Response }>;
  /** `(client, props)`; `(props)` in openai 4, whose APIPromise holds no client. */
  parseResponse: (...args: unknown[]) => Promise<unknown>;
  parsedPromise?: Promise<unknown>;
  asResponse(): Promise<Response>;
  _thenUnwrap?: (transform: Transform) => unknown;
  _responseProps?: () => Promise<{ response: Response; options?: { stream?: boolean } }>;
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

/** A caller who takes the raw `Response` (`asResponse()`) is metered as it reads the body. */
function meterRawAccess(promise: ApiPromiseLike, o: Observation): void {
  const asResponse = promise.asResponse;
  replaceOnInstance(promise, 'asResponse', function meteredAsResponse(this: ApiPromiseLike) {
    const raw = asResponse.call(this);
    // withResponse() parses too: the parse path meters it, the raw path must not count it again.
    if (this.parsedPromise !== undefined) return raw;
    o.rawTaken = true;
    return raw.then((response) => {
      if (!o.call.done) meterRawResponse(response, o);
      return response;
    });
  });
}

/**
 * Observes an APIPromise without changing what the caller gets: the same object comes back, its body is parsed only
 * when the caller (or an SDK helper chained on it) asks, errors reach the caller unchanged, and a caller who reads the
 * raw `asResponse()` is still metered, as it reads the body.
 */
export function observeApiPromise(promise: ApiPromiseLike, o: Observation): void {
  let observed = false;
  const observeOnce = (data: unknown, response: Response | undefined): unknown => {
    if (observed) return data;
    observed = true;
    try {
      return observeResult(data, response, o);
    } catch (fault) {
      o.call.fault(fault);
      return data;
    }
  };

  // Watching the request settles the call on a provider or network error whoever consumes it. The handler resolves, so
  // it never creates an unhandled rejection of its own; the caller still gets the SDK's own rejection. A response that
  // arrives before anyone asked for its body (a promise not awaited, so far) is watched until its promise is
  // collected: a call never awaited is still recorded then, at the latest. (Only then: a watch on every call costs.)
  promise.responsePromise.then(
    () => {
      if (promise.parsedPromise === undefined && !o.rawTaken && !o.call.done) settleWhenAbandoned(promise, o.call, undefined);
    },
    (err: unknown) => o.call.finishInBackground({ error: err }),
  );

  const parse = promise.parseResponse;
  promise.parseResponse = function meteredParse(this: unknown, clientOrProps: unknown, propsOrNone?: unknown) {
    // openai 5+ and anthropic pass (client, props); openai 4 passes the props alone.
    const props = (propsOrNone ?? clientOrProps) as ParseProps;
    return parse.call(this, clientOrProps, propsOrNone).then(
      (data) => observeOnce(data, props.response),
      (err: unknown) => {
        o.call.finish({ error: err, requestId: requestIdOf(props.response, o.requestIdHeader) });
        throw err;
      },
    );
  };

  // SDK helpers (parse, stream, runTools) chain on the create() promise with _thenUnwrap; openai 7 binds it to the
  // original parser, so the transform is where their result can be seen.
  const thenUnwrap = promise._thenUnwrap;
  if (typeof thenUnwrap === 'function') {
    replaceOnInstance(promise, '_thenUnwrap', function meteredThenUnwrap(this: unknown, transform: Transform) {
      const chained = thenUnwrap.call(this, (data: unknown, props: ParseProps) => transform(observeOnce(data, props.response), props));
      // A helper's own promise can be read raw too (`chat.completions.parse(...).asResponse()`).
      if (isApiPromise(chained)) meterRawAccess(chained, o);
      return chained;
    });
  }

  meterRawAccess(promise, o);

  // Anthropic's message threads take the raw response props of a streaming create() and parse them with a promise of
  // their own: the body is then read as they read it, as for asResponse().
  const responseProps = promise._responseProps;
  if (typeof responseProps === 'function') {
    replaceOnInstance(promise, '_responseProps', function meteredResponseProps(this: ApiPromiseLike) {
      return responseProps.call(this).then((props) => {
        if (!o.call.done && props.options?.stream === true) {
          o.rawTaken = true;
          meterRawResponse(props.response, o);
        }
        return props;
      });
    });
  }
}
