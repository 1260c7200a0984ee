import { estimateInputTokens } from '../patches/estimate.js';
import { ConfigError, LimitExceededError, type LimitFrequency } from './errors.js';
import type { CallStart } from './event.js';
import { toNano, toUsd, type Enforcement, type LimitStore, type Reservation } from './limit-store.js';
import type { PriceBook } from './pricing.js';
import { validateTenantId } from './tenant.js';
import { FREQUENCIES, validateFrequency, type WindowCalendar } from './windows.js';

export type UnknownModelPolicy = 'allow' | 'block';

export interface SpendLimitOptions {
  enforcement: Enforcement;
  unknownModel: UnknownModelPolicy;
  requireTenant: boolean;
  /** Output tokens assumed for a reservation when the request sets no maximum. */
  defaultMaxOutputTokens: number;
  clock: () => number;
}

export interface SetLimitInput {
  limitUsd: number;
  frequency: LimitFrequency;
}

export interface WindowReport {
  frequency: LimitFrequency;
  spentUsd: number;
  reservedUsd: number;
  limitUsd: number;
  resetsAt: Date;
}

export class RequireTenantError extends ConfigError {
  override name = 'RequireTenantError';
}

/**
 * Spend limits per tenant and calendar window, checked before a request leaves: an admitted call holds a reservation
 * (estimated input cost + its maximum output cost) until it settles at its real cost.
 */
export class SpendLimits {
  constructor(
    private readonly store: LimitStore,
    private readonly calendar: WindowCalendar,
    private readonly prices: PriceBook,
    private readonly options: SpendLimitOptions,
  ) {}

  /** Returns the reservation (undefined when the tenant has no limit), or the error that refuses the call. */
  admit(call: CallStart): { reservation?: Reservation; refusal?: Error } {
    const tenant = call.tenant;
    if (tenant === undefined) {
      return this.options.requireTenant
        ? { refusal: new RequireTenantError(`requireTenant: ${call.provider} ${call.endpoint} was called outside any tenant scope (wrap it in meter.forTenant)`) }
        : {};
    }
    const limits = this.store.limitsOf(tenant.tenantId);
    if (limits === undefined) return {};
    const estimate = this.estimateUsd(call);
    if (estimate === undefined && this.options.unknownModel === 'block') {
      const limit = limits[0]!;
      return { refusal: this.limitError(tenant.tenantId, limit.frequency, limit.limitNano, 0) };
    }
    const now = this.options.clock();
    const windows = limits.map((l) => this.calendar.window(l.frequency, now));
    const outcome = this.store.reserve(tenant.tenantId, windows, toNano(estimate ?? 0), this.options.enforcement);
    if (outcome instanceof Promise) throw new ConfigError('this limit store answers asynchronously, which admission does not support yet');
    if (outcome.admitted) return { reservation: outcome.reservation };
    return { refusal: this.limitError(tenant.tenantId, outcome.window.frequency, outcome.limitNano, outcome.spentNano, outcome.window.resetsAt) };
  }

  /** The cost to hold for a call: its estimated input plus its maximum output. Undefined for a model without a price. */
  estimateUsd(call: CallStart): number | undefined {
    const model = call.requestedModel;
    const rates = model === undefined ? undefined : this.prices.reservationRates(call.provider, model);
    if (rates === undefined) return undefined;
    const maxOutput = call.maxOutputTokens ?? this.options.defaultMaxOutputTokens;
    return estimateInputTokens(call.args[0]) * rates.inputPerToken + maxOutput * rates.outputPerToken;
  }

  settle(reservation: Reservation, costUsd: number): void {
    void this.store.settle(reservation, toNano(costUsd));
  }

  async setLimit(tenantId: string, input: SetLimitInput): Promise<void> {
    validateTenantId(tenantId);
    if (input === null || typeof input !== 'object') throw new ConfigError(`setLimit: expected { limitUsd, frequency }, got ${String(input)}`);
    const { limitUsd } = input;
    if (typeof limitUsd !== 'number' || !Number.isFinite(limitUsd) || limitUsd < 0) {
      throw new ConfigError(`limitUsd must be a finite, non-negative number, got ${String(limitUsd)}`);
    }
    await this.store.setLimit(tenantId, { frequency: validateFrequency(input.frequency), limitNano: toNano(limitUsd) });
  }

  async removeLimit(tenantId: string, frequency: LimitFrequency): Promise<void> {
    validateTenantId(tenantId);
    await this.store.removeLimit(tenantId, validateFrequency(frequency));
  }

  async usage(tenantId: string): Promise<WindowReport[]> {
    validateTenantId(tenantId);
    const now = this.options.clock();
    const windows = FREQUENCIES.map((f) => this.calendar.window(f, now));
    const usage = await this.store.usage(tenantId, windows);
    return usage.map((u) => ({
      frequency: u.frequency,
      spentUsd: toUsd(u.spentNano),
      reservedUsd: toUsd(u.reservedNano),
      limitUsd: toUsd(u.limitNano),
      resetsAt: u.resetsAt,
    }));
  }

  private limitError(tenantId: string, frequency: LimitFrequency, limitNano: number, spentNano: number, resetsAt?: Date): LimitExceededError {
    return new LimitExceededError({
      tenantId,
      frequency,
      limitUsd: toUsd(limitNano),
      spentUsd: toUsd(spentNano),
      resetsAt: resetsAt ?? this.calendar.window(frequency, this.options.clock()).resetsAt,
    });
  }
}
