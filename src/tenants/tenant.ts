import { AsyncLocalStorage } from 'node:async_hooks';
import { ConfigError, describeValue } from '../errors.js';

export const MAX_TENANT_ID_LENGTH = 256;

/** What a scope says of the calls inside it: the tenant billed, and the labels its events carry. */
export interface ScopeContext {
  /** Absent in a run scope (forRun) outside any tenant scope: a wrapped client may still name the customer. */
  readonly tenantId?: string;
  readonly tags?: Record<string, string>;
  readonly feature?: string;
  readonly runId?: string;
  readonly agentId?: string;
  readonly metricCode?: string;
}

/** The tenant a call is billed to, fixed when the call starts, with its scope's labels. */
export type TenantContext = ScopeContext & { readonly tenantId: string };

/** The labels a scope or a wrapped client may set, in the API's names. */
export interface Labels {
  feature?: string;
  runId?: string;
  agentId?: string;
  metricCode?: string;
  tags?: Record<string, string>;
}

export const MAX_LABEL_LENGTH = 256;

/** A label: a non-empty string of at most 256 characters; undefined when absent. */
export function validateLabel(value: unknown, field: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_LABEL_LENGTH) {
    throw new ConfigError(`${field} must be a non-empty string of at most ${MAX_LABEL_LENGTH} characters, got ${describeValue(value)}`);
  }
  return value;
}

/** A scope of `labels` (validated) inside `outer`: what `labels` sets wins, tags are merged (the inner ones win). */
export function scopeWithin(outer: ScopeContext | undefined, tenantId: string | undefined, labels: Labels, field: string): ScopeContext {
  const inner: ScopeContext = {
    tenantId,
    tags: validateTags(labels.tags, `${field}.tags`),
    feature: validateLabel(labels.feature, `${field}.feature`),
    runId: validateLabel(labels.runId, `${field}.runId`),
    agentId: validateLabel(labels.agentId, `${field}.agentId`),
    metricCode: validateLabel(labels.metricCode, `${field}.metricCode`),
  };
  return mergedScope(outer, inner);
}

/** `inner` (already valid) inside `outer`: what `inner` sets wins, tags are merged (the inner ones win). */
export function mergedScope(outer: ScopeContext | undefined, inner: ScopeContext): ScopeContext {
  const tags = inner.tags === undefined ? outer?.tags : outer?.tags === undefined ? inner.tags : { ...outer.tags, ...inner.tags };
  const scope: { -readonly [K in keyof ScopeContext]: ScopeContext[K] } = {};
  const tenantId = inner.tenantId ?? outer?.tenantId;
  const feature = inner.feature ?? outer?.feature;
  const runId = inner.runId ?? outer?.runId;
  const agentId = inner.agentId ?? outer?.agentId;
  const metricCode = inner.metricCode ?? outer?.metricCode;
  if (tenantId !== undefined) scope.tenantId = tenantId;
  if (tags !== undefined) scope.tags = tags;
  if (feature !== undefined) scope.feature = feature;
  if (runId !== undefined) scope.runId = runId;
  if (agentId !== undefined) scope.agentId = agentId;
  if (metricCode !== undefined) scope.metricCode = metricCode;
  return scope;
}

/**
 * A tenant id that cannot be one: not a string, empty or only whitespace, too long, or holding control characters (a
 * header or a log line could carry them in). A ConfigError for `instanceof`, named apart: it comes from the app's data.
 */
export class TenantIdError extends ConfigError {
  override name = 'TenantIdError';
}

const CONTROL_CHARACTERS = /[\u0000-\u001f\u007f-\u009f]/;

export function validateTenantId(tenantId: unknown, field = 'tenantId'): string {
  if (typeof tenantId === 'string' && tenantId.length > 0 && tenantId.trim() === '') {
    throw new TenantIdError(`${field} must not be only whitespace, got ${describeValue(tenantId)}`);
  }
  if (typeof tenantId === 'string' && CONTROL_CHARACTERS.test(tenantId)) {
    throw new TenantIdError(`${field} must not contain control characters, got ${describeValue(tenantId)}`);
  }
  if (typeof tenantId !== 'string' || tenantId.length === 0 || tenantId.length > MAX_TENANT_ID_LENGTH) {
    throw new TenantIdError(
      `${field} must be a non-empty string of at most ${MAX_TENANT_ID_LENGTH} characters, got ${describeValue(tenantId)}` +
        (typeof tenantId === 'string' && tenantId.length > MAX_TENANT_ID_LENGTH ? ` (${tenantId.length} characters)` : ''),
    );
  }
  return tenantId;
}

export function validateTags(tags: unknown, field = 'tags'): Record<string, string> | undefined {
  if (tags === undefined) return undefined;
  if (tags === null || typeof tags !== 'object' || Array.isArray(tags)) {
    throw new ConfigError(`${field} must be an object of string values, got ${describeValue(tags)}`);
  }
  for (const [key, value] of Object.entries(tags)) {
    if (typeof value !== 'string') throw new ConfigError(`${field}.${key} must be a string, got ${describeValue(value)}`);
  }
  return { ...(tags as Record<string, string>) };
}

/** Which tenant the current async context bills to. One store per process, shared by every copy of the agent. */
const STORE_KEY = Symbol.for('llm-meter.tenant-store');
type GlobalWithStore = typeof globalThis & { [STORE_KEY]?: AsyncLocalStorage<ScopeContext> };

function sharedStore(): AsyncLocalStorage<ScopeContext> {
  const g = globalThis as GlobalWithStore;
  return (g[STORE_KEY] ??= new AsyncLocalStorage<ScopeContext>());
}

export const tenantStore: AsyncLocalStorage<ScopeContext> = sharedStore();

export function currentScope(): ScopeContext | undefined {
  return tenantStore.getStore();
}

/** The current scope when it names a tenant. */
export function currentTenant(): TenantContext | undefined {
  const scope = tenantStore.getStore();
  return scope?.tenantId === undefined ? undefined : (scope as TenantContext);
}
