import type { CallSink } from './call.js';
import { interceptCall } from './intercept.js';
import { asRecord, type HookTarget, type ProviderPatch } from '../provider.js';
import { unpricedCall } from '../unpriced.js';
import { gatedOptions } from '../requests/request-gate.js';
import { withBodyAdditionsInline } from '../requests/body-additions.js';
import { isAgentSending, sendingAsAgent } from './agent-sending.js';
import { withField } from '../../src/fast-objects.js';

// Requests the app sends through a Stainless client's generic methods (`client.post(path, opts)`,
// `client.request(options)`) or through resources the hook table does not name (`batches.create`, `videos.create`,
// `beta.threads.runs.create`): nothing reaches the provider around the agent.

/** How a generic request is billed. */
type RequestRoute = { free: true } | { target: HookTarget };

/** Requests that cost nothing: reads, deletions, updates, and the POSTs a provider lists as free. */
function isFreeRequest(method: string, path: string, freePosts: RegExp): boolean {
  return method.toLowerCase() !== 'post' || freePosts.test(path);
}

const unpricedTargets = new Map<string, HookTarget>();
const MAX_UNPRICED_TARGETS = 256;

/**
 * A billable request the agent cannot price when it is sent (a batch, a video, an assistants run): one event with the
 * path as its endpoint and price_unknown, and the unknownModel policy for a limited tenant.
 */
function unpricedTarget(path: string): HookTarget {
  let target = unpricedTargets.get(path);
  if (target === undefined) {
    if (unpricedTargets.size >= MAX_UNPRICED_TARGETS) unpricedTargets.clear();
    target = {
      endpoint: path,
      classPath: [],
      clientPath: [],
      method: 'request',
      ...unpricedCall,
    };
    unpricedTargets.set(path, target);
  }
  return target;
}

/** The path without its query string or trailing slash. */
function routePath(path: string): string {
  const query = path.indexOf('?');
  const bare = query === -1 ? path : path.slice(0, query);
  return bare.length > 1 && bare.endsWith('/') ? bare.slice(0, -1) : bare;
}

function routeOf(provider: ProviderPatch, method: unknown, path: unknown): RequestRoute | undefined {
  const routes = provider.requestRoutes;
  if (routes === undefined || typeof method !== 'string' || typeof path !== 'string') return undefined;
  const bare = routePath(path);
  if (isFreeRequest(method, bare, routes.freePosts)) return { free: true };
  const named = provider.targets.find((t) => t.path === path) ?? provider.targets.find((t) => t.path === bare);
  return { target: named ?? unpricedTarget(bare) };
}

/** What a request's options become once its gate has answered, the agent's body fields included. */
export type SendableOptions = (options: unknown) => unknown;

/**
 * The agent's body fields are added where the client encodes the body (its hooked `bodyEncoder`), or, for a build
 * without one (openai 4), put into the body when its options are made sendable.
 */
export function sendableOptionsFor(encodesBody: boolean): SendableOptions {
  return encodesBody ? gatedOptions : (options) => withBodyAdditionsInline(gatedOptions(options));
}

/**
 * A generic request, metered like the named method it stands for: the body is the params the named method would take.
 * `send(options)` sends the request with (possibly rewritten) options.
 */
function interceptRequest(
  provider: ProviderPatch,
  sink: CallSink,
  sendable: SendableOptions,
  client: unknown,
  method: unknown,
  path: unknown,
  options: unknown,
  send: (options: unknown) => unknown,
): unknown {
  const route = routeOf(provider, method, path);
  if (route === undefined || 'free' in route) return sendingAsAgent(() => send(options));
  // `resource` for the hook: what a named method's `this` offers (its client), so that a refusal is built by this client.
  const resource = { _client: client };
  // SDK resources pass their options as a promise: the request is gated on its admission, its body read from the
  // response alone (a request to a named endpoint sent this way is priced from its usage, but its bound is unknown).
  if (typeof (options as PromiseLike<unknown> | undefined)?.then === 'function') {
    return interceptCall(provider, route.target, sink, () => send(sendable(options)), resource, []);
  }
  const opts = asRecord(options);
  return interceptCall(provider, route.target, sink, (body: unknown) => send(sendable(withField(opts, 'body', body))), resource, [opts?.body]);
}

/** The arguments with the one at `index` replaced. */
function replacedAt(args: readonly unknown[], index: number, value: unknown): unknown[] {
  const copy = args.slice();
  copy[index] = value;
  return copy;
}

/**
 * The patched `methodRequest(method, path, options)`: the request of a hooked call waits for its gate (see
 * request-gate.ts); any other is metered here.
 */
export function interceptMethodRequest(provider: ProviderPatch, sendable: SendableOptions, sink: CallSink, original: Function, client: unknown, args: unknown[]): unknown {
  const options = args[2];
  // The hooked call's own request, on every call: its options change only when a gate waits for it.
  if (isAgentSending()) {
    const sent = sendable(options);
    return Reflect.apply(original, client, sent === options ? args : replacedAt(args, 2, sent));
  }
  return interceptRequest(provider, sink, sendable, client, args[0], args[1], options, (sent) => Reflect.apply(original, client, replacedAt(args, 2, sent)));
}

/** The patched `request(options)`, which the app may call itself: metered unless a hooked call or the agent sends. */
export function interceptRawRequest(provider: ProviderPatch, sendable: SendableOptions, sink: CallSink, original: Function, client: unknown, args: unknown[]): unknown {
  if (isAgentSending()) return Reflect.apply(original, client, args);
  const options = args[0];
  const record = asRecord(options);
  return interceptRequest(provider, sink, sendable, client, record?.method, record?.path, options, (sent) => Reflect.apply(original, client, replacedAt(args, 0, sent)));
}
