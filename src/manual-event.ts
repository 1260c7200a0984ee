import { randomUUID } from 'node:crypto';
import { ConfigError, describeValue } from './errors.js';
import { BILLING_TERMS, stampLabels, USAGE_FIELDS, type BillingTerm, type UsageCounts, type UsageEvent } from './event.js';
import type { ProviderId } from './providers/provider-id.js';
import { validateTags, validateTenantId, type ScopeContext } from './tenants/tenant.js';

/** A usage record the app reports itself. Counts are non-negative numbers; the tenant defaults to the current scope. */
export interface ManualUsage extends UsageCounts, Partial<Record<BillingTerm, string>> {
  provider: ProviderId;
  model: string;
  input_tokens: number;
  output_tokens: number;
  tenant_id?: string;
  endpoint?: string;
  event_id?: string;
  request_id?: string;
  duration_ms?: number;
  timestamp?: string | Date;
  tags?: Record<string, string>;
  /** A cost reported with the usage (e.g. by a gateway): the event's cost, with the agent's own estimate beside it. */
  cost_usd?: number;
}

const OTHER_FIELDS = new Set<string>(['provider', 'model', 'tenant_id', 'endpoint', 'event_id', 'request_id', 'timestamp', 'tags', 'duration_ms', 'cost_usd', ...BILLING_TERMS]);
const COUNT_FIELDS = new Set<string>(USAGE_FIELDS);

function requiredString(usage: Record<string, unknown>, field: string): string {
  const value = usage[field];
  if (typeof value !== 'string' || value.length === 0) {
    throw new ConfigError(`trackManually: ${field} must be a non-empty string, got ${describeValue(value)}`);
  }
  return value;
}

function optionalString(usage: Record<string, unknown>, field: string): string | undefined {
  return usage[field] === undefined ? undefined : requiredString(usage, field);
}

function count(usage: Record<string, unknown>, field: string): number {
  const value = usage[field];
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new ConfigError(`trackManually: ${field} must be a finite, non-negative number, got ${describeValue(value)}`);
  }
  return value;
}

function timestampOf(value: unknown): string {
  if (value === undefined) return new Date().toISOString();
  const date = value instanceof Date ? value : typeof value === 'string' ? new Date(value) : undefined;
  if (date === undefined || Number.isNaN(date.getTime())) {
    throw new ConfigError(`trackManually: timestamp must be a Date or an ISO 8601 string, got ${describeValue(value)}`);
  }
  return date.toISOString();
}

export function reportedCost(usage: ManualUsage): number | undefined {
  return usage.cost_usd === undefined ? undefined : count(usage as unknown as Record<string, unknown>, 'cost_usd');
}

export function validateManualEvent(usage: ManualUsage, scope: ScopeContext | undefined): UsageEvent {
  if (usage === null || typeof usage !== 'object') {
    throw new ConfigError(`trackManually: expected a usage object, got ${describeValue(usage)}`);
  }
  const raw = usage as unknown as Record<string, unknown>;
  for (const key of Object.keys(raw)) {
    if (!OTHER_FIELDS.has(key) && !COUNT_FIELDS.has(key)) throw new ConfigError(`trackManually: unknown field ${JSON.stringify(key)}`);
  }
  const event: UsageEvent = {
    type: 'usage',
    event_id: optionalString(raw, 'event_id') ?? randomUUID(),
    // An id the price data does not know is taken (the type asks for a cast): a provider of the app's own.
    provider: requiredString(raw, 'provider') as ProviderId,
    model: requiredString(raw, 'model'),
    endpoint: optionalString(raw, 'endpoint') ?? 'manual',
    input_tokens: count(raw, 'input_tokens'),
    output_tokens: count(raw, 'output_tokens'),
    total_tokens: 0,
    duration_ms: raw.duration_ms === undefined ? 0 : count(raw, 'duration_ms'),
    timestamp: timestampOf(raw.timestamp),
    stream: false,
  };
  for (const field of USAGE_FIELDS) {
    if (raw[field] !== undefined) event[field] = count(raw, field);
  }
  if (raw.total_tokens === undefined) event.total_tokens = event.input_tokens + event.output_tokens;
  for (const term of BILLING_TERMS) {
    const value = optionalString(raw, term);
    if (value !== undefined) event[term] = value;
  }
  const tenantId = raw.tenant_id === undefined ? scope?.tenantId : validateTenantId(raw.tenant_id, 'trackManually: tenant_id');
  if (tenantId !== undefined) event.tenant_id = tenantId;
  const requestId = optionalString(raw, 'request_id');
  if (requestId !== undefined) event.request_id = requestId;
  // The scope's labels apply to usage of the scope's own tenant (or of a scope with none, e.g. forRun alone), not to
  // usage reported for another tenant.
  if (scope?.tenantId === undefined || scope.tenantId === tenantId) stampLabels(event, scope);
  const tags = validateTags(raw.tags, 'trackManually: tags');
  if (tags !== undefined) event.tags = tags;
  return event;
}
