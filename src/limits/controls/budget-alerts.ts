import { createHash } from 'node:crypto';
import { ConfigError, describeValue, type LimitFrequency } from '../../errors.js';
import { setTimeout as pause } from 'node:timers/promises';
import { post } from '../../../transport/http-request.js';
import { backoffDelay, DeliveryError } from '../../../transport/retry.js';
import { toUsd, type LimitMode, type LimitStore, type WindowUsage } from '../store.js';
import type { SpendWindow } from '../windows.js';
import { scopeFields } from './budget-scope.js';

/** A budget's spend reached one of its thresholds: sent once per tenant, window and threshold (fleet-wide on Redis). */
export interface ThresholdAlert {
  tenantId: string;
  frequency: LimitFrequency;
  /** What the budget covers: the tenant's whole spend, or one feature's or model's calls (named in `feature` / `model`). */
  scope: 'tenant' | 'feature' | 'model';
  feature?: string;
  model?: string;
  /** The fraction of the limit reached, e.g. 0.8. */
  threshold: number;
  spentUsd: number;
  limitUsd: number;
  mode: LimitMode;
  /** The limit is the Meter's defaultLimit (the tenant has none of its own). */
  isDefault: boolean;
  resetsAt: Date;
}

export interface BudgetAlertOptions {
  /** Fractions of a limit that alert, for limits that set none of their own. */
  thresholds: readonly number[];
  onThreshold: ((alert: ThresholdAlert) => void) | undefined;
  webhook: { url: URL; apiKey: string | undefined } | undefined;
  timeoutMs: number;
  /** A fault of the hook or the webhook: reported, never thrown. */
  onError(err: Error): void;
}

const WEBHOOK_ATTEMPTS = 3;
/** The delivery's own backoff (full jitter), shorter: an alert is worth little once late. */
const WEBHOOK_BACKOFF = { baseMs: 500, maxMs: 5_000 };

/**
 * Watches the spend of tenants with a limit and sends each threshold once: after spend is booked, off the call's path.
 * Per tenant, one check runs at a time and one more is kept for the spend booked meanwhile, so a busy tenant costs one
 * read of its usage at a time whatever its call rate.
 */
export class BudgetAlerts {
  /** Per tenant, the check under way, and whether spend was booked since it started. */
  private readonly checking = new Map<string, { again: boolean; done: Promise<void> }>();
  private stopped = false;

  constructor(
    private readonly store: LimitStore,
    private readonly windows: () => SpendWindow[],
    private readonly options: BudgetAlertOptions,
  ) {}

  get enabled(): boolean {
    return this.options.onThreshold !== undefined || this.options.webhook !== undefined;
  }

  /** Spend was booked for the tenant: its thresholds are checked soon. */
  spent(tenantId: string): void {
    if (this.stopped) return;
    const running = this.checking.get(tenantId);
    if (running !== undefined) {
      running.again = true;
      return;
    }
    const state = { again: false, done: Promise.resolve() };
    state.done = pause(0, undefined, { ref: false }).then(() => this.checkWhileDirty(tenantId, state));
    this.checking.set(tenantId, state);
  }

  /** The store is closing: spend written from now on is not checked (its reads would fail). */
  stop(): void {
    this.stopped = true;
  }

  /** Resolves once every check under way is done (shutdown, tests). */
  async settled(): Promise<void> {
    await Promise.all([...this.checking.values()].map((c) => c.done));
  }

  private async checkWhileDirty(tenantId: string, state: { again: boolean }): Promise<void> {
    try {
      do {
        state.again = false;
        await this.check(tenantId);
      } while (state.again);
    } catch (err) {
      this.options.onError(err instanceof Error ? err : new Error(String(err)));
    } finally {
      this.checking.delete(tenantId);
    }
  }

  private async check(tenantId: string): Promise<void> {
    const windows = this.windows();
    const usage = await this.store.usage(tenantId, windows);
    for (const window of usage) {
      if (window.limitNano === undefined || window.limitNano === 0) continue;
      const period: SpendWindow = { frequency: window.frequency, key: window.windowKey, resetsAt: window.resetsAt, scope: window.scope };
      for (const threshold of window.thresholds ?? this.options.thresholds) {
        if (window.spentNano < Math.ceil(threshold * window.limitNano)) continue;
        if (!(await this.store.claimAlert(tenantId, period, threshold))) continue;
        this.send(alertOf(tenantId, window, threshold));
      }
    }
  }

  private send(alert: ThresholdAlert): void {
    try {
      this.options.onThreshold?.(alert);
    } catch (err) {
      this.options.onError(new Error(`onThreshold threw: ${err instanceof Error ? err.name : typeof err}`));
    }
    if (this.options.webhook !== undefined) void this.postWebhook(alert, this.options.webhook);
  }

  /** Retried a few times; the Idempotency-Key lets a receiver drop a repeat. */
  private async postWebhook(alert: ThresholdAlert, webhook: { url: URL; apiKey: string | undefined }): Promise<void> {
    const body = Buffer.from(
      JSON.stringify({
        type: 'llm.budget.threshold',
        tenant_id: alert.tenantId,
        frequency: alert.frequency,
        scope: alert.scope,
        ...(alert.feature !== undefined && { feature: alert.feature }),
        ...(alert.model !== undefined && { model: alert.model }),
        threshold: alert.threshold,
        spent_usd: alert.spentUsd,
        limit_usd: alert.limitUsd,
        mode: alert.mode,
        is_default: alert.isDefault,
        resets_at: alert.resetsAt.toISOString(),
      }),
    );
    const budget = alert.feature !== undefined ? `\0f\0${alert.feature}` : alert.model !== undefined ? `\0m\0${alert.model}` : '';
    const key = createHash('sha256').update(`${alert.tenantId}\0${alert.frequency}\0${alert.resetsAt.toISOString()}\0${alert.threshold}${budget}`).digest('hex');
    const headers: Record<string, string> = { 'content-type': 'application/json', 'idempotency-key': key };
    if (webhook.apiKey !== undefined) headers.authorization = `Bearer ${webhook.apiKey}`;
    for (let attempt = 1; ; attempt++) {
      try {
        await post('threshold webhook', webhook.url, { headers, body, timeoutMs: this.options.timeoutMs });
        return;
      } catch (err) {
        if (!(err instanceof DeliveryError) || !err.retryable || attempt === WEBHOOK_ATTEMPTS) {
          this.options.onError(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        await pause(backoffDelay(attempt, WEBHOOK_BACKOFF), undefined, { ref: false });
      }
    }
  }
}

function alertOf(tenantId: string, window: WindowUsage, threshold: number): ThresholdAlert {
  return {
    tenantId,
    frequency: window.frequency,
    scope: window.scope?.kind ?? 'tenant',
    ...scopeFields(window.scope),
    threshold,
    spentUsd: toUsd(window.spentNano),
    limitUsd: toUsd(window.limitNano!),
    mode: window.mode ?? 'hard',
    isDefault: window.isDefault === true,
    resetsAt: window.resetsAt,
  };
}

/** Thresholds as fractions of a limit: finite, above 0 (above 1 alerts on overspend of a soft limit), sorted, once each. */
export function validateThresholds(value: unknown, field: string): number[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((t) => typeof t === 'number' && Number.isFinite(t) && t > 0 && t <= 100)) {
    throw new ConfigError(`${field} must be an array of fractions of the limit above 0 (e.g. [0.5, 0.8, 1]), got ${describeValue(value)}`);
  }
  return [...new Set(value as number[])].sort((a, b) => a - b);
}
