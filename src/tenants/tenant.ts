import { AsyncLocalStorage } from 'node:async_hooks';
import { ConfigError, describeValue } from '../errors.js';

export const MAX_TENANT_ID_LENGTH = 256;

/** The tenant a call is billed to, fixed when the call starts. */
export interface TenantContext {
  readonly tenantId: string;
  readonly tags?: Record<string, string>;
}

export function validateTenantId(tenantId: unknown, field = 'tenantId'): string {
  if (typeof tenantId !== 'string' || tenantId.length === 0 || tenantId.length > MAX_TENANT_ID_LENGTH) {
    throw new ConfigError(
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
type GlobalWithStore = typeof globalThis & { [STORE_KEY]?: AsyncLocalStorage<TenantContext> };

function sharedStore(): AsyncLocalStorage<TenantContext> {
  const g = globalThis as GlobalWithStore;
  return (g[STORE_KEY] ??= new AsyncLocalStorage<TenantContext>());
}

export const tenantStore: AsyncLocalStorage<TenantContext> = sharedStore();

export function currentTenant(): TenantContext | undefined {
  return tenantStore.getStore();
}
