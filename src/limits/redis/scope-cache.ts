import type { LimitFrequency } from '../../errors.js';
import { parseScopeKey, type BudgetScope } from '../controls/budget-scope.js';
import { FREQUENCIES } from '../windows.js';

interface ScopedBudget {
  frequency: LimitFrequency;
  scope: BudgetScope;
}

export interface KnownScopes {
  /** The version of the tenant's list in Redis ('0': it never had a scoped budget). */
  version: string;
  budgets: ScopedBudget[];
  /** When this process read the list (ms, the store's clock). */
  readAt: number;
}

/** Tenants whose scoped budgets this process remembers at most; past that, the least recently used is read again. */
const MAX_TENANTS = 10_000;
const NONE: KnownScopes = Object.freeze({ version: '0', budgets: [], readAt: -Infinity }) as KnownScopes;

/**
 * What this process knows of each tenant's scoped budgets (a feature's, a model's): the reserve script must be handed
 * their keys, and checks the version it was given against the one in Redis (a mismatch: read the list again and retry).
 */
export class ScopeCache {
  private readonly tenants = new Map<string, KnownScopes>();

  /** What is known of the tenant (nothing: version '0', which is right for every tenant that never had one). */
  of(tenantId: string): KnownScopes {
    const known = this.tenants.get(tenantId);
    if (known === undefined) return NONE;
    this.tenants.delete(tenantId);
    this.tenants.set(tenantId, known);
    return known;
  }

  /** The tenant's budgets changed here: they are read again before they are needed. */
  forget(tenantId: string): void {
    this.tenants.delete(tenantId);
  }

  /** Whether the tenant's list was read at most `maxAgeMs` ago. */
  fresh(tenantId: string, now: number, maxAgeMs: number): boolean {
    const known = this.tenants.get(tenantId);
    return known !== undefined && now - known.readAt <= maxAgeMs;
  }

  /** Redis just took `known` as the current version: it is as good as read now. */
  confirmed(tenantId: string, known: KnownScopes, now: number): void {
    if (known === NONE) this.remember(tenantId, '0', undefined, now);
    else known.readAt = now;
  }

  /** Keeps the list as the limits hash holds it: `scopes` (one budget name a line) and `scopes:v`. */
  remember(tenantId: string, version: string | null | undefined, list: string | null | undefined, now: number): KnownScopes {
    const known: KnownScopes = { version: version ?? '0', budgets: parseBudgets(list), readAt: now };
    this.tenants.delete(tenantId);
    this.tenants.set(tenantId, known);
    if (this.tenants.size > MAX_TENANTS) this.tenants.delete(this.tenants.keys().next().value!);
    return known;
  }
}

function parseBudgets(list: string | null | undefined): ScopedBudget[] {
  const budgets: ScopedBudget[] = [];
  for (const name of list?.split('\n') ?? []) {
    const bar = name.indexOf('|');
    const frequency = name.slice(0, bar) as LimitFrequency;
    const scope = parseScopeKey(name.slice(bar + 1));
    if (bar > 0 && FREQUENCIES.includes(frequency) && scope !== undefined) budgets.push({ frequency, scope });
  }
  return budgets;
}
