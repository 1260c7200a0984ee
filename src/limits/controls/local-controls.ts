import type { TenantPolicy } from './model-policy.js';
import { LocalRates, type RateLimit, type RateUsage } from './rate-limits.js';
import { windowFamily, type SpendWindow } from '../windows.js';

/**
 * Alerts, policies and rate limits kept in this process: the part of the in-process ledger, and of the app's backend
 * store (whose protocol has none of them), that is the same in both. They extend it.
 */
export abstract class LocalControls {
  /** window key → `tenant \0 threshold`; a window's set goes once a newer window of its budget is claimed in. */
  private readonly sent = new Map<string, Set<string>>();
  private readonly policies = new Map<string, TenantPolicy>();
  readonly localRates = new LocalRates();

  claimAlert(tenantId: string, window: SpendWindow, threshold: number): boolean {
    let sent = this.sent.get(window.key);
    if (sent === undefined) {
      const family = windowFamily(window.key);
      for (const key of this.sent.keys()) if (windowFamily(key) === family) this.sent.delete(key);
      this.sent.set(window.key, (sent = new Set()));
    }
    const alert = `${tenantId}\0${threshold}`;
    if (sent.has(alert)) return false;
    sent.add(alert);
    return true;
  }

  setPolicy(tenantId: string, policy: TenantPolicy): void {
    if (policy.models === undefined) this.policies.delete(tenantId);
    else this.policies.set(tenantId, policy);
  }

  policyOf(tenantId: string): TenantPolicy | undefined {
    return this.policies.get(tenantId);
  }

  policy(tenantId: string): TenantPolicy {
    return this.policies.get(tenantId) ?? {};
  }

  setRateLimit(tenantId: string, limit: RateLimit): void {
    this.localRates.set(tenantId, limit);
  }

  rateLimit(tenantId: string): RateLimit {
    return this.localRates.of(tenantId) ?? {};
  }

  rateUsage(tenantId: string, now: number): RateUsage {
    return this.localRates.usage(tenantId, now);
  }
}
