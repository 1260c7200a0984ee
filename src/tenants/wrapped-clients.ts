import { ConfigError, describeValue } from '../errors.js';
import type { UsageEvent } from '../event.js';
import type { CallSink } from '../../patches/calls/call.js';
import { mergedScope, scopeWithin, validateTenantId, type Labels, type ScopeContext, type TenantContext } from './tenant.js';

/** A per-call amount in USD: fixed, or worked out from the SDK's response (undefined for a stream) and the event. */
export type CallAmount = number | ((response: unknown, event: UsageEvent) => number);

/** `meter.wrap(client, options)`: every call through the client is billed to `customerId`. */
export interface WrapOptions extends Labels {
  customerId: string;
  /** Revenue booked for each call (stamped as `revenue_usd`, and kept in the tenant's ledger beside its spend). */
  revenueUsd?: CallAmount;
  /** A cost the app knows better than the price data: used verbatim (`price_source: 'provided'`). */
  providerCostUsd?: CallAmount;
}

/** A wrapped client's terms, as every call through it reads them. */
export interface ClientBinding {
  /** The Meter that wrapped the client: its calls are that Meter's, whichever Meter patched the client's classes. */
  readonly sink: CallSink;
  /** The customer's scope: its tenant and the wrapper's labels. */
  readonly scope: TenantContext;
  readonly revenueUsd: CallAmount | undefined;
  readonly providerCostUsd: CallAmount | undefined;
  /** An amount reads the response: the call keeps its result until it is recorded. */
  readonly readsResponse: boolean;
}

export const DEFAULT_METRIC_CODE = 'llm_tokens';

function validateAmount(value: unknown, field: string): CallAmount | undefined {
  if (value === undefined || typeof value === 'function') return value as CallAmount | undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new ConfigError(`${field} must be a finite number >= 0 (USD) or a function (response, event) => number, got ${describeValue(value)}`);
  }
  return value;
}

/** Validates `meter.wrap`'s options, with errors that name the field and the value. */
export function clientBinding(options: unknown, sink: CallSink, field = 'wrap'): ClientBinding {
  if (options === null || typeof options !== 'object') throw new ConfigError(`${field}: options must be an object with a customerId, got ${describeValue(options)}`);
  const o = options as WrapOptions;
  const customerId = validateTenantId(o.customerId, `${field}: customerId`);
  const scope = scopeWithin(undefined, customerId, { ...o, metricCode: o.metricCode ?? DEFAULT_METRIC_CODE }, field) as TenantContext;
  const revenueUsd = validateAmount(o.revenueUsd, `${field}: revenueUsd`);
  const providerCostUsd = validateAmount(o.providerCostUsd, `${field}: providerCostUsd`);
  return { sink, scope, revenueUsd, providerCostUsd, readsResponse: typeof revenueUsd === 'function' || typeof providerCostUsd === 'function' };
}

/**
 * The wrapped clients and their resources, in a WeakMap shared by every copy of the agent in the process (the class a
 * client's calls go through may have been patched by another Meter or copy).
 */
const BINDINGS_KEY = Symbol.for('llm-meter.client-bindings');
type GlobalWithBindings = typeof globalThis & { [BINDINGS_KEY]?: { map: WeakMap<object, ClientBinding>; any: boolean } };
const registry = ((globalThis as GlobalWithBindings)[BINDINGS_KEY] ??= { map: new WeakMap(), any: false });

export function bindObjects(objects: readonly object[], binding: ClientBinding): void {
  for (const object of objects) registry.map.set(object, binding);
  registry.any = true;
}

/**
 * The binding of the object a hooked method ran on: a wrapped client's resource (`client.chat.completions`), or the
 * client itself (a generic request, Bedrock's `send`), found through a Stainless resource's `_client`.
 */
export function bindingOf(resource: unknown): ClientBinding | undefined {
  if (!registry.any || resource === null || typeof resource !== 'object') return undefined;
  const own = registry.map.get(resource);
  if (own !== undefined) return own;
  const client = (resource as { _client?: unknown })._client;
  return client !== null && typeof client === 'object' ? registry.map.get(client) : undefined;
}

/**
 * A call through a wrapped client: billed to the client's customer whatever scope encloses it (the wrapper was made for
 * that customer; a scope is only ambient), with the wrapper's labels, and the scope's where the wrapper sets none
 * (a run inside forRun, say).
 */
export function scopeOfCall(binding: ClientBinding, ambient: ScopeContext | undefined): TenantContext {
  return ambient === undefined ? binding.scope : (mergedScope(ambient, binding.scope) as TenantContext);
}
