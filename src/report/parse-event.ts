import { toNano } from '../limits/store.js';
import { TOKEN_FIELDS, type CallStatus, type ReportEvent, type TokenCounts } from './report-event.js';

/**
 * The errors the agent records for a call it refused before sending it (its `error` is the error's name): a spend
 * limit, a model policy, a rate limit, a call without the tenant `requireTenant` asks for.
 */
const REFUSAL_ERRORS: ReadonlySet<string> = new Set(['LimitExceededError', 'ModelNotAllowedError', 'RateLimitedError', 'RequireTenantError']);

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}

function isNonEmptyString(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0;
}

/** An optional field: absent (undefined) is fine, present with another type makes the line unreadable (null). */
function optional<T>(value: unknown, accepts: (value: unknown) => value is T): T | undefined | null {
  if (value === undefined) return undefined;
  return accepts(value) ? value : null;
}

function timestampOf(record: JsonObject): number | undefined {
  if (typeof record.timestamp !== 'string') return undefined;
  const ms = Date.parse(record.timestamp);
  return Number.isNaN(ms) ? undefined : ms;
}

function statusOf(error: string | undefined): CallStatus {
  if (error === undefined) return 'ok';
  // describeError may append a status or code after the name ("APIError: 429").
  const name = error.split(':', 1)[0] ?? error;
  return REFUSAL_ERRORS.has(name) ? 'refused' : 'errored';
}

function parseCall(record: JsonObject, timestampMs: number): ReportEvent | undefined {
  const { provider, model } = record;
  if (!isNonEmptyString(provider) || !isNonEmptyString(model)) return undefined;
  const tokens = {} as TokenCounts;
  for (const field of TOKEN_FIELDS) {
    const value = field === 'input_tokens' || field === 'output_tokens' ? record[field] : (record[field] ?? 0);
    if (!isCount(value)) return undefined;
    tokens[field] = value;
  }
  const tenantId = optional(record.tenant_id, isNonEmptyString);
  const feature = optional(record.feature, isNonEmptyString);
  const cost = optional(record.cost_usd, isCount);
  const revenue = optional(record.revenue_usd, isCount);
  const error = optional(record.error, isNonEmptyString);
  const partial = optional(record.partial, (v): v is boolean => typeof v === 'boolean');
  if (tenantId === null || feature === null || cost === null || revenue === null || error === null || partial === null) return undefined;
  return {
    type: 'usage',
    timestampMs,
    tenantId,
    provider,
    model,
    feature,
    tokens,
    costNano: toNano(cost ?? 0),
    revenueNano: revenue === undefined ? undefined : toNano(revenue),
    status: statusOf(error),
    partial: partial === true,
  };
}

function parseOutcome(record: JsonObject, timestampMs: number): ReportEvent | undefined {
  const tenantId = optional(record.tenant_id, isNonEmptyString);
  if (!isCount(record.revenue_usd) || tenantId === null) return undefined;
  return { type: 'outcome', timestampMs, tenantId, revenueNano: toNano(record.revenue_usd) };
}

/** The event a line of a usage file holds, or undefined when it holds none the report can read. */
export function parseEventLine(line: string): ReportEvent | undefined {
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (!isObject(record)) return undefined;
  const timestampMs = timestampOf(record);
  if (timestampMs === undefined) return undefined;
  if (record.type === 'usage') return parseCall(record, timestampMs);
  if (record.type === 'outcome') return parseOutcome(record, timestampMs);
  return undefined;
}
