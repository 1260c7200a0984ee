import type { TenantPolicy } from './model-policy.js';
import { LocalRates, type RateLimit } from './rate-limits.js';
import type { SpendWindow } from '../windows.js';

/**
 * What a store that keeps them in this process keeps of alerts, policies and rate limits: the in-process ledger, and the app's
 * backend (whose protocol has neither).
 */
export class LocalControls {
  /** window key → `tenant \0 threshold`; a window's set goes once a newer window of its frequency is claimed in. */
  private readonly sent = new Map<string, Set<string>>();
  private readonly policies = new Map<string, TenantPolicy>();
  readonly rates = new LocalRates();

  claimAlert(tenantId: string, window: SpendWindow, threshold: number): boolean {
    let sent = this.sent.get(window.key);
    if (sent === undefined) {
      const prefix = window.key.slice(0, 2);
      for (const key of this.sent.keys()) if (key.startsWith(prefix)) this.sent.delete(key);
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

  rateLimit(tenantId: string): RateLimit {
    return this.rates.of(tenantId) ?? {};
  }
}
