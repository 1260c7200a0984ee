import { estimateInputTokens } from './estimate.js';
import { ConfigError, LimitExceededError, type LimitFrequency } from '../errors.js';
import type { CallStart } from '../event.js';
import { toNano, toUsd, type Enforcement, type LimitStore, type Reservation, type ReserveOutcome } from './store.js';
import type { PriceBook } from '../pricing.js';
import { BackendLimitStore } from './backend-store.js';
import type { ResolvedConfig } from '../config.js';
import type { AgentLog } from '../log.js';
import { MemoryLimitStore } from './memory-store.js';
import { RedisLimitStore } from './redis-store.js';
import { validateTenantId } from '../tenant.js';
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

export interface Admission {
  reservation?: Reservation | undefined;
  refusal?: Error | undefined;
}

/** The ledger the configuration asks for: in this process (default), Redis, or the app's own backend. */
export function createLimitStore(config: ResolvedConfig, log: AgentLog): LimitStore {
  const { limits } = config;
  if (limits === undefined) return new MemoryLimitStore();
  if (limits.kind === 'redis') return new RedisLimitStore({ ...limits, clock: config.clock }, log);
  return new BackendLimitStore({ ...limits, clock: config.clock }, log);
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

  /**
   * Returns the reservation (none when the tenant has no limit) or the error that refuses the call: at once from an
   * in-process store, as a promise from a fleet-wide one.
   */
  admit(call: CallStart): Admission | Promise<Admission> {
    const tenant = call.tenant;
    if (tenant === undefined) {
      return this.options.requireTenant
        ? { refusal: new RequireTenantError(`requireTenant: ${call.provider} ${call.endpoint} was called outside any tenant scope (wrap it in meter.forTenant)`) }
        : {};
    }
    const limits = this.store.limitsOf?.(tenant.tenantId);
    if (this.store.limitsOf !== undefined && limits === undefined) return {};
    const estimate = this.estimateUsd(call);
    // A model without a price under 'block': a reservation no limit can hold refuses the call wherever a limit exists.
    const blocked = estimate === undefined && this.options.unknownModel === 'block';
    const now = this.options.clock();
    const windows = (limits?.map((l) => l.frequency) ?? FREQUENCIES).map((f) => this.calendar.window(f, now));
    const amount = blocked ? Number.MAX_SAFE_INTEGER : toNano(estimate ?? 0);
    const outcome = this.store.reserve(tenant.tenantId, windows, amount, blocked ? 'strict' : this.options.enforcement);
    if (!(outcome instanceof Promise)) return this.admission(tenant.tenantId, outcome);
    return outcome.then(
      (o) => this.admission(tenant.tenantId, o),
      (err: unknown) => ({ refusal: err instanceof Error ? err : new Error(String(err)) }),
    );
  }

  private admission(tenantId: string, outcome: ReserveOutcome): Admission {
    if (outcome.admitted) return { reservation: outcome.reservation };
    return { refusal: this.limitError(tenantId, outcome.window.frequency, outcome.limitNano, outcome.spentNano, outcome.window.resetsAt) };
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
    const settled = this.store.settle(reservation, toNano(costUsd));
    if (settled instanceof Promise) settled.catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.store.close?.();
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
