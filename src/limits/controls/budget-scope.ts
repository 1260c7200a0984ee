import { ConfigError, describeValue, type LimitFrequency } from '../../errors.js';
import { MAX_LABEL_LENGTH } from '../../tenants/tenant.js';
import { modelAllowed } from './model-policy.js';

/** What a scoped budget covers: one feature's calls (the scope's `feature`), or a model's (an exact id, or a prefix ending in `*`). */
export interface BudgetScope {
  kind: 'feature' | 'model';
  value: string;
  /** `f:chat`, `m:gpt-4o%2A`: the scope inside window keys and Redis fields (only [A-Za-z0-9_.%-] after the colon). */
  key: string;
}

/** What of a call decides which scoped budgets apply to it. */
export interface BudgetedCall {
  feature?: string | undefined;
  model?: string | undefined;
}

const KIND_PREFIX = { feature: 'f', model: 'm' } as const;

/** Every character outside [A-Za-z0-9_.-] as its UTF-8 bytes, percent-encoded: a key then never holds a separator. */
const encode = (value: string): string =>
  value.replace(/[^A-Za-z0-9_.-]/gu, (c) => [...Buffer.from(c)].map((b) => `%${b.toString(16).toUpperCase().padStart(2, '0')}`).join(''));

function budgetScope(kind: BudgetScope['kind'], value: string): BudgetScope {
  return { kind, value, key: `${KIND_PREFIX[kind]}:${encode(value)}` };
}

/** The scope of a key made by budgetScope; undefined for anything else. */
export function parseScopeKey(key: string): BudgetScope | undefined {
  const match = /^([fm]):([A-Za-z0-9_.%-]+)$/.exec(key);
  if (match === null) return undefined;
  try {
    return budgetScope(match[1] === 'f' ? 'feature' : 'model', decodeURIComponent(match[2]!));
  } catch {
    return undefined;
  }
}

/** The scope `setLimit` / `removeLimit` name with `feature` or `model` (at most one), checked; undefined for the tenant's whole spend. */
export function scopeOfInput(input: { feature?: unknown; model?: unknown }, at: string): BudgetScope | undefined {
  const { feature, model } = input;
  if (feature !== undefined && model !== undefined) throw new ConfigError(`${at}a budget covers a feature or a model, not both: got feature ${describeValue(feature)} and model ${describeValue(model)}`);
  if (feature !== undefined) {
    if (typeof feature !== 'string' || feature.length === 0 || feature.length > MAX_LABEL_LENGTH) {
      throw new ConfigError(`${at}feature must be a non-empty string of at most ${MAX_LABEL_LENGTH} characters, got ${describeValue(feature)}`);
    }
    return budgetScope('feature', feature);
  }
  if (model === undefined) return undefined;
  if (typeof model !== 'string' || model.trim() === '' || model.length > MAX_LABEL_LENGTH || model.slice(0, -1).includes('*')) {
    throw new ConfigError(`${at}model must be a model id, or a prefix ending in '*' (no other '*'), got ${describeValue(model)}`);
  }
  return budgetScope('model', model);
}

export function budgetApplies(scope: BudgetScope, call: BudgetedCall): boolean {
  return scope.kind === 'feature' ? call.feature === scope.value : modelAllowed([scope.value], call.model);
}

/** The name of a budget among a tenant's: `per_day`, or `per_day|f:chat` for a scoped one. */
export function budgetName(frequency: LimitFrequency, scope: BudgetScope | undefined): string {
  return scope === undefined ? frequency : `${frequency}|${scope.key}`;
}

/** The public form of a scope: `{ feature }` or `{ model }`. */
export function scopeFields(scope: BudgetScope | undefined): { feature?: string; model?: string } {
  if (scope === undefined) return {};
  return scope.kind === 'feature' ? { feature: scope.value } : { model: scope.value };
}
