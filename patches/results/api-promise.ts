import { observeResult, requestIdOf, type Observation } from './observe.js';
import { meterRawResponse } from './raw-response.js';
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

/** One metered call's APIPromise (or a helper's promise chained on it, which only meters raw access). */
interface Watch {
  readonly o: Observation;
  /** The call's result was observed (through its own parse or a helper's transform): once only. */
  observed: boolean;
  /** A helper's promise: only its raw `asResponse()` is metered, its data is observed through the call's own. */
  readonly rawOnly: boolean;
}

/**
 * The watched promises, looked up by the methods the agent hooks on the APIPromise class itself, once per class: the
 * SDK's promise object keeps its own shape (an own property per call would cost the SDK's code on it its fast paths).
 */
const watches = new WeakMap<object, Watch>();
const hookedMethods = new WeakSet<Function>();

function observeOnce(w: Watch, data: unknown, response: Response | undefined): unknown {
  if (w.observed) return data;
  w.observed = true;
  try {
    return observeResult(data, response, w.o);
  } catch (fault) {
    w.o.call.fault(fault);
    return data;
  }
}

/** A caller who takes the raw `Response` (`asResponse()`) is metered as it reads the body. */
function meteredAsResponse(asResponse: Function): Function {
  return function meteredAsResponse(this: ApiPromiseLike) {
    const raw = asResponse.call(this) as Promise<Response>;
    const w = watches.get(this);
    // withResponse() parses too: the parse path meters it, the raw path must not count it again.
    if (w === undefined || this.parsedPromise !== undefined) return raw;
    const o = w.o;
    o.rawTaken = true;
    return raw.then((response) => {
      if (!o.call.done) meterRawResponse(response, o);
      return response;
    });
  };
}

/**
 * SDK helpers (parse, stream, runTools) chain on the create() promise with _thenUnwrap; openai 7 binds it to the
 * original parser, so the transform is where their result can be seen. A helper's own promise can be read raw too
 * (`chat.completions.parse(...).asResponse()`).
 */
function meteredThenUnwrap(thenUnwrap: Function): Function {
  return function meteredThenUnwrap(this: ApiPromiseLike, transform: Transform) {
    const w = watches.get(this);
    if (w === undefined || w.rawOnly) return thenUnwrap.call(this, transform);
    const chained = thenUnwrap.call(this, (data: unknown, props: ParseProps) => transform(observeOnce(w, data, props.response), props)) as unknown;
    if (isApiPromise(chained)) watches.set(chained, { o: w.o, observed: true, rawOnly: true });
    return chained;
  };
}

/**
 * Anthropic's message threads take the raw response props of a streaming create() and parse them with a promise of
 * their own: the body is then read as they read it, as for asResponse().
 */
function meteredResponseProps(responseProps: Function): Function {
  return function meteredResponseProps(this: ApiPromiseLike) {
    const props = responseProps.call(this) as Promise<{ response: Response; options?: { stream?: boolean } }>;
    const w = watches.get(this);
    if (w === undefined || w.rawOnly) return props;
    const o = w.o;
    return props.then((p) => {
      if (!o.call.done && p.options?.stream === true) {
        o.rawTaken = true;
        meterRawResponse(p.response, o);
      }
      return p;
    });
  };
}

const HOOKS: readonly [keyof ApiPromiseLike, (original: Function) => Function][] = [
  ['asResponse', meteredAsResponse],
  ['_thenUnwrap', meteredThenUnwrap],
  ['_responseProps', meteredResponseProps],
];

/**
 * Hooks the class of `promise` where each method is defined, once per class and never undone: on a promise the agent
 * does not watch, the hooks pass straight through (an unpatched client, a later copy of the agent's meter).
 */
function hookClassOf(promise: object): void {
  for (const [name, hook] of HOOKS) {
    let owner = Object.getPrototypeOf(promise) as object | null;
    while (owner !== null && !Object.prototype.hasOwnProperty.call(owner, name)) owner = Object.getPrototypeOf(owner) as object | null;
    if (owner === null) continue;
    const descriptor = Object.getOwnPropertyDescriptor(owner, name)!;
    const original = descriptor.value as unknown;
    if (typeof original !== 'function' || hookedMethods.has(original)) continue;
    const hooked = hook(original);
    hookedMethods.add(hooked);
    Object.defineProperty(owner, name, { ...descriptor, value: hooked });
  }
}

/**
 * Methods an SDK puts on each promise itself (openai 7's client assigns `_thenUnwrap` bound to its own parser): hooked
 * on the promise, by assigning the property it already has.
 */
function hookOwnMethods(promise: object): void {
  const record = promise as Record<string, unknown>;
  // Indexed, without destructuring: this runs on every call.
  for (let i = 0; i < HOOKS.length; i++) {
    const name = HOOKS[i]![0];
    if (!Object.prototype.hasOwnProperty.call(promise, name)) continue;
    const own = record[name];
    if (typeof own === 'function' && !hookedMethods.has(own)) record[name] = HOOKS[i]![1](own);
  }
}

/** Promise classes already hooked: most calls of an app meet one. */
const hookedClasses = new WeakSet<object>();

/**
 * Observes an APIPromise without changing what the caller gets: the same object comes back, its body is parsed only
 * when the caller (or an SDK helper chained on it) asks, errors reach the caller unchanged, and a caller who reads the
 * raw `asResponse()` is still metered, as it reads the body.
 */
export function observeApiPromise(promise: ApiPromiseLike, o: Observation): void {
  const prototype = Object.getPrototypeOf(promise) as object;
  if (!hookedClasses.has(prototype)) {
    hookClassOf(promise);
    hookedClasses.add(prototype);
  }
  const w: Watch = { o, observed: false, rawOnly: false };
  watches.set(promise, w);
  hookOwnMethods(promise);

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

  // An instance field the SDK reads at parse time (its own, reassigned: the promise keeps its shape).
  const parse = promise.parseResponse;
  promise.parseResponse = function meteredParse(this: unknown, clientOrProps: unknown, propsOrNone?: unknown) {
    // openai 5+ and anthropic pass (client, props); openai 4 passes the props alone.
    const props = (propsOrNone ?? clientOrProps) as ParseProps;
    return parse.call(this, clientOrProps, propsOrNone).then(
      (data) => observeOnce(w, data, props.response),
      (err: unknown) => {
        o.call.finish({ error: err, requestId: requestIdOf(props.response, o.requestIdHeader) });
        throw err;
      },
    );
  };
}
