import { readOutputBound, type CapToSend, type OutputBound } from '../../patches/requests/output-bound.js';
import { measureInput, MEDIA_KINDS, type InputMeasure } from './estimate.js';
import type { MediaTokenCeilings } from './input-ceilings.js';
import { ConfigError, describeValue, LimitExceededError, ModelNotAllowedError, RateLimitedError, type LimitFrequency } from '../errors.js';
import { validateRateLimit, type RateLimit, type RateUsage } from './controls/rate-limits.js';
import { modelAllowed, validatePolicy, type TenantPolicy } from './controls/model-policy.js';
import type { CallStart } from '../event.js';
import { toNano, toUsd, type Enforcement, type LimitMode, type LimitStore, type Reservation, type ReserveOutcome, type TenantLimit } from './store.js';
import { BudgetAlerts, validateThresholds, type BudgetAlertOptions } from './controls/budget-alerts.js';
import type { PriceBook } from '../pricing/price-book.js';
import { BackendLimitStore } from './backend-store.js';
import type { ResolvedConfig } from '../config.js';
import type { AgentLog } from '../log.js';
import { MemoryLimitStore } from './memory-store.js';
import { RedisLimitStore } from './redis-store.js';
import { validateTenantId } from '../tenants/tenant.js';
import { rejectUnknownKeys } from '../option-checks.js';
import { FREQUENCIES, scopedWindow, validateFrequency, type SpendWindow, type WindowCalendar } from './windows.js';
import { scopeFields, scopeOfInput, type BudgetedCall } from './controls/budget-scope.js';

export type UnknownModelPolicy = 'allow' | 'block';

export interface SpendLimitOptions {
  enforcement: Enforcement;
  unknownModel: UnknownModelPolicy;
  requireTenant: boolean;
  /** Output tokens assumed for a reservation when the request sets no maximum. */
  defaultMaxOutputTokens: number;
  /** Input tokens reserved for input that cannot be bounded, when the model's context window is unknown. */
  maxInputTokens: number;
  mediaTokens: MediaTokenCeilings;
  clock: () => number;
}

export interface SetLimitInput {
  limitUsd: number;
  frequency: LimitFrequency;
  /** What the billing system says the tenant already spent in the current window (adopting a limit mid-window). */
  spentUsd?: number;
  /** 'hard' (default) refuses calls that do not fit; 'soft' never refuses: it alerts at its thresholds and records. */
  mode?: LimitMode;
  /** Fractions of the limit that alert (onThreshold, the webhook) once each per window; default the Meter's `thresholds`. */
  thresholds?: number[];
  /** A budget of this feature's calls only (the scope's `feature`), with its own counter. */
  feature?: string;
  /** A budget of this model's calls only: an exact id, or a prefix ending in `*`. */
  model?: string;
}

/** Which of a tenant's budgets `removeLimit` removes: the whole spend's (none), a feature's or a model's. */
export interface BudgetSelector {
  feature?: string;
  model?: string;
}

export interface WindowReport {
  frequency: LimitFrequency;
  spentUsd: number;
  reservedUsd: number;
  /** What the tenant was billed in the window (booked with its events). */
  revenueUsd: number;
  /** revenueUsd - spentUsd, computed exactly (in nano-dollars). */
  marginUsd: number;
  /** Only where a limit is set for the window (the tenant's own, or the Meter's defaultLimit). */
  limitUsd?: number;
  mode?: LimitMode;
  /** The limit is the Meter's defaultLimit: the tenant has none of its own. */
  isDefault?: boolean;
  /** The thresholds that alert for this limit. */
  thresholds?: number[];
  /** A scoped budget's window: the feature or the model (id or prefix) it covers. */
  feature?: string;
  model?: string;
  resetsAt: Date;
}

/** `inspect`: everything that applies to a tenant, and where it stands. */
export interface TenantInspection {
  tenantId: string;
  /** Its windows (spend, limits, thresholds), then its budgets of a feature or a model. */
  windows: WindowReport[];
  policy: TenantPolicy;
  rateLimit: RateLimit;
  /** Its sliding counts of the last minute, and its calls in flight. */
  rateUsage: RateUsage;
}

/** A page of `listTenants`: pass `cursor` back for the next one; none when the window has no more tenants. */
export interface TenantUsagePage {
  tenants: Array<{ tenantId: string; spentUsd: number; revenueUsd: number }>;
  cursor?: string;
}

/** What one recorded event of a tenant adds to its ledger. */
export interface BookEntry {
  /** The event's cost. */
  spentUsd: number;
  /** What the tenant is billed for it. */
  revenueUsd: number;
  /** The reservation the call settled at its cost: its windows already count the spend. */
  settledIn?: Reservation | undefined;
  /** See Booking.onceId. */
  onceId?: string | undefined;
  /** The call's feature and model, for its scoped budgets. */
  call?: BudgetedCall | undefined;
}

export interface Admission {
  reservation?: Reservation | undefined;
  refusal?: Error | undefined;
  /** Strict mode's output cap for a request that set none: sent with the request, so the reservation bounds it. */
  sendOutputCap?: CapToSend | undefined;
}

/** A call no limit applies to: shared, so that the common case allocates nothing. */
const ADMITTED: Admission = Object.freeze({});

/** A call's worst case: what its reservation holds. */
export interface CallBound {
  inputTokens: number;
  /** Output tokens per completion (the cap) and how many completions. */
  outputCap: number;
  completions: number;
  inputUsd: number;
  outputUsdPerToken: number;
  amountUsd: number;
}

/** Tokens a rate limit counts a call for at admission: its input, estimated at 3 characters a token. */
const inputEstimate = (measure: InputMeasure): number => Math.ceil(measure.chars / AVERAGE_CHARS_PER_TOKEN);

/** Framing tokens an object or array of the request may add (role markers, separators). */
const FRAMING_TOKENS = 4;
/** The system prompt providers add for tool definitions (Anthropic documents up to a few hundred tokens). */
const TOOLS_TOKENS = 1024;
/** Real tokenizers average about 4 characters a token; lenient mode's estimate assumes 3. */
const AVERAGE_CHARS_PER_TOKEN = 3;

const money = (usd: number): number => (Number.isFinite(usd) && usd > 0 ? usd : 0);

/** The ledger the configuration asks for: in this process (default), Redis, or the app's own backend. */
export function createLimitStore(config: ResolvedConfig, log: AgentLog): LimitStore {
  const { limits, defaultLimits } = config;
  if (limits === undefined) return new MemoryLimitStore(log, undefined, defaultLimits);
  if (limits.kind === 'redis') return new RedisLimitStore({ ...limits, defaults: defaultLimits, clock: config.clock }, log);
  return new BackendLimitStore({ ...limits, clock: config.clock }, log);
}

export class RequireTenantError extends ConfigError {
  override name = 'RequireTenantError';
}

/**
 * Spend limits per tenant and calendar window, checked before a request leaves: an admitted call holds a reservation
 * (in strict mode an upper bound of what it can cost) until it settles at its real cost.
 */
export class SpendLimits {
  private readonly alerts: BudgetAlerts | undefined;
  private readonly alertThresholds: readonly number[];

  constructor(
    private readonly store: LimitStore,
    private readonly calendar: WindowCalendar,
    private readonly prices: PriceBook,
    private readonly options: SpendLimitOptions,
    /**
     * Settles the calls that ended but are not recorded yet (true when there were any), so that a limited tenant's call
     * sees their cost rather than their reservations.
     */
    private readonly recordPending: () => boolean,
    alerts?: BudgetAlertOptions,
  ) {
    this.alertThresholds = alerts?.thresholds ?? [1];
    const budgetAlerts = alerts === undefined ? undefined : new BudgetAlerts(store, () => this.windows(undefined), alerts);
    if (budgetAlerts?.enabled !== true) return;
    this.alerts = budgetAlerts;
    if (store.writesLater === true) store.onSpendWritten = (tenantId) => budgetAlerts.spent(tenantId);
  }

  /**
   * Returns the reservation (none when the tenant has no limit) or the error that refuses the call: at once from an
   * in-process store, as a promise from a fleet-wide one.
   */
  admit(call: CallStart): Admission | Promise<Admission> {
    const tenant = call.tenant;
    if (call.paidEarlier === true) return ADMITTED;
    if (tenant === undefined) {
      return this.options.requireTenant
        ? { refusal: new RequireTenantError(`requireTenant: ${call.provider} ${call.endpoint} was called outside any tenant scope (wrap it in meter.forTenant)`) }
        : ADMITTED;
    }
    const policy = this.store.policyOf?.(tenant.tenantId);
    if (policy?.models !== undefined && !modelAllowed(policy.models, call.requestedModel)) {
      return { refusal: new ModelNotAllowedError(tenant.tenantId, call.requestedModel, policy.models) };
    }
    const rates = this.store.localRates;
    const rate = rates?.of(tenant.tenantId);
    if (rates === undefined || rate === undefined) return this.admitSpend(call, tenant.tenantId, undefined);
    const measure = rate.tokensPerMinute === undefined ? undefined : measureInput(call.args[0], call.classifyInput);
    const tokens = measure === undefined ? 0 : inputEstimate(measure);
    let outcome = rates.admit(tenant.tenantId, tokens, this.options.clock());
    // Calls that ended but are not recorded yet still hold their place: only a refusal needs them settled first.
    if (outcome?.admitted === false && this.recordPending()) outcome = rates.admit(tenant.tenantId, tokens, this.options.clock());
    if (outcome === undefined) return this.admitSpend(call, tenant.tenantId, measure);
    if (!outcome.admitted) return { refusal: new RateLimitedError(tenant.tenantId, outcome.kind, outcome.limit, outcome.retryAfterMs) };
    const { hold } = outcome;
    const tenantId = tenant.tenantId;
    const withHold = (admission: Admission): Admission => {
      if (admission.refusal !== undefined) {
        rates.cancel(tenantId, hold, this.options.clock());
        return admission;
      }
      const reservation = admission.reservation ?? { id: 'rate', tenantId, windowKeys: [], amountNano: 0 };
      reservation.rate = hold;
      return { ...admission, reservation };
    };
    const admission = this.admitSpend(call, tenantId, measure);
    return admission instanceof Promise ? admission.then(withHold) : withHold(admission);
  }

  /** `measured`: the request's input, when the rate check has measured it already (it is walked once at most). */
  private admitSpend(call: CallStart, tenantId: string, measured: InputMeasure | undefined): Admission | Promise<Admission> {
    const limits = this.store.limitsOf?.(tenantId);
    if (this.store.limitsOf !== undefined && limits === undefined) return ADMITTED;
    const measure = (): InputMeasure => (measured ??= measureInput(call.args[0], call.classifyInput));
    // A fleet-wide store hears of the settlements first. In-process, a call that ended and is not settled yet still
    // holds its reservation (in strict mode never less than its cost): only a refusal needs them settled, and then
    // the call asks again.
    const local = this.store.limitsOf !== undefined;
    if (!local) this.recordPending();
    const output = readOutputBound(call.target, call.args[0]);
    const bound = this.bound(call, output, measure);
    // A model without a price under 'block': a reservation no limit can hold refuses the call wherever a limit exists.
    const blocked = bound === undefined && this.options.unknownModel === 'block';
    const windows = this.windows(limits);
    // A call the agent cannot price (unknown model, a batch, a video) still costs something: it needs room left.
    const amount = blocked ? Number.MAX_SAFE_INTEGER : bound === undefined ? 1 : toNano(bound.amountUsd);
    const mode = blocked ? 'strict' : this.options.enforcement;
    // A store without rates of its own checks them in `reserve`: it needs the estimate whether or not a limit uses it.
    const tokens = this.store.localRates === undefined ? inputEstimate(measure()) : 0;
    const budgeted: BudgetedCall = { model: call.requestedModel, feature: call.tenant?.feature };
    let outcome = this.store.reserve(tenantId, windows, amount, mode, budgeted, tokens);
    if (local && !(outcome instanceof Promise) && !outcome.admitted && this.recordPending()) {
      outcome = this.store.reserve(tenantId, windows, amount, mode, budgeted, tokens);
    }
    if (!(outcome instanceof Promise)) return this.admission(tenantId, outcome, output, bound);
    return outcome.then(
      (o) => this.admission(tenantId, o, output, bound),
      (err: unknown) => ({ refusal: err instanceof Error ? err : new Error(String(err)) }),
    );
  }

  /** The current windows of the limits' frequencies (of both without limits): the periods every budget is counted in. */
  private windows(limits: readonly { frequency: LimitFrequency }[] | undefined): SpendWindow[] {
    const now = this.options.clock();
    const windows: SpendWindow[] = [];
    for (const frequency of FREQUENCIES) {
      if (limits === undefined || limits.some((l) => l.frequency === frequency)) windows.push(this.calendar.window(frequency, now));
    }
    return windows;
  }

  private admission(tenantId: string, outcome: ReserveOutcome, output: OutputBound, bound: CallBound | undefined): Admission {
    if (!outcome.admitted) return { refusal: this.limitError(tenantId, outcome, output, bound) };
    const reservation = outcome.reservation;
    const path = output.sendCapAt;
    // A reservation of rates alone holds no spend: the request is sent as it is.
    if (reservation === undefined || reservation.windowKeys.length === 0 || bound === undefined || path === undefined || this.options.enforcement !== 'strict') {
      return { reservation };
    }
    return { reservation, sendOutputCap: { path, tokens: bound.outputCap } };
  }

  /**
   * What a call can cost at most: its input (bounded by its UTF-8 bytes, media ceilings and the context window; in
   * lenient mode an average estimate) plus its output cap times its completions. Undefined for a model without a price.
   */
  private bound(call: CallStart, output: OutputBound, measureInputOf: () => InputMeasure): CallBound | undefined {
    if (call.target.unpriced === true) return undefined;
    const model = call.requestedModel;
    if (model === undefined) return undefined;
    const measure = measureInputOf();
    const inputTokens = this.inputTokens(call.provider, measure, this.prices.contextWindow(call.provider, model) ?? this.options.maxInputTokens);
    const audio = measure.unbounded || measure.media.audio > 0 || measure.media.video > 0;
    const rates = this.prices.reservationRates(call.provider, model, inputTokens, { audio, cacheWrites: measure.cacheWrites }, call.startedAtWall);
    if (rates === undefined) return undefined;
    const outputCap = output.cap ?? this.options.defaultMaxOutputTokens;
    const inputUsd = money(inputTokens * rates.inputPerToken + rates.perRequest);
    const outputUsdPerToken = money(rates.outputPerToken);
    const amountUsd = money(inputUsd + outputCap * output.completions * outputUsdPerToken);
    return { inputTokens, outputCap, completions: output.completions, inputUsd, outputUsdPerToken, amountUsd };
  }

  private inputTokens(provider: string, measure: InputMeasure, contextWindow: number): number {
    if (measure.unbounded) return contextWindow;
    let tokens =
      this.options.enforcement === 'strict'
        ? measure.bytes + measure.containers * FRAMING_TOKENS + (measure.tools ? TOOLS_TOKENS : 0)
        : Math.ceil(measure.chars / AVERAGE_CHARS_PER_TOKEN);
    const ceilings = this.options.mediaTokens[provider] ?? {};
    for (const kind of MEDIA_KINDS) {
      const items = measure.media[kind];
      if (items === 0) continue;
      const ceiling = ceilings[kind];
      if (ceiling === undefined) return contextWindow;
      tokens += items * ceiling;
    }
    return Math.min(tokens, contextWindow);
  }

  /**
   * The cost a partial or untrustworthy call of a limited tenant is held to: its reservation. (A call that reserved
   * nothing has no budget to protect; its request is not read again after it was sent.)
   */
  reservedUsd(call: CallStart): number | undefined {
    return call.reservation !== undefined ? toUsd(call.reservation.amountNano) : undefined;
  }

  /** Settles the call's spend at its cost, and gives its rate hold back with its real token count. */
  settle(reservation: Reservation, costUsd: number, tokens = 0): void {
    if (reservation.rate !== undefined && this.store.localRates !== undefined) {
      this.store.localRates.settle(reservation.tenantId, reservation.rate, tokens, this.options.clock());
      reservation.rate = undefined;
      if (reservation.windowKeys.length === 0) return;
    }
    const settled = this.store.settle(reservation, toNano(money(costUsd)), tokens);
    if (settled instanceof Promise) settled.catch(() => undefined);
    else this.spent(reservation.tenantId);
  }

  /** Spend of the tenant is in an in-process ledger now (a store that writes later says so itself). */
  private spent(tenantId: string): void {
    if (this.alerts !== undefined && this.store.writesLater !== true) this.alerts.spent(tenantId);
  }

  /**
   * Books a recorded event of a tenant, limited or not, into its current windows (daily and monthly): its spend in every
   * window its settled reservation did not count it in, its revenue in all of them. Spend already made at the provider
   * (a batch result row) is `{ spentUsd: cost, revenueUsd: 0 }`: never refused, always in the ledger, counted against
   * limits. Off the app's call path: never throws, never rejects (a fleet store keeps a failed write and retries it).
   */
  book(tenantId: string, entry: BookEntry): void {
    try {
      const spentNano = toNano(money(entry.spentUsd));
      const revenueNano = toNano(money(entry.revenueUsd));
      if (spentNano === 0 && revenueNano === 0) return;
      const booked = this.store.book(tenantId, this.windows(undefined), { spentNano, revenueNano, settledWindowKeys: entry.settledIn?.windowKeys, onceId: entry.onceId, call: entry.call });
      if (booked instanceof Promise) booked.catch(() => undefined);
      else if (spentNano > 0) this.spent(tenantId);
    } catch {
      // The stores do not throw here; a ledger fault must still never reach the app's call.
    }
  }

  /** Tenants without a limit whose counters an in-process ledger forgot to stay bounded (see MAX_UNLIMITED_TENANTS). */
  get forgottenTenants(): number {
    return this.store.forgottenTenants ?? 0;
  }

  /** The last spend is written first and its thresholds checked, while the store is still open. */
  async close(): Promise<void> {
    await this.store.flushed?.();
    await this.alerts?.settled();
    this.alerts?.stop();
    await this.store.close?.();
  }

  async setLimit(tenantId: string, input: SetLimitInput): Promise<void> {
    validateTenantId(tenantId);
    if (input === null || typeof input !== 'object') throw new ConfigError(`setLimit: expected { limitUsd, frequency }, got ${describeValue(input)}`);
    // A misspelt `feature` must not turn a feature's budget into one of the tenant's whole spend.
    rejectUnknownKeys(input as unknown as Record<string, unknown>, SET_LIMIT_OPTIONS, 'setLimit option');
    const limitUsd = usdAmount(input.limitUsd, 'limitUsd');
    const spentUsd = input.spentUsd === undefined ? undefined : usdAmount(input.spentUsd, 'spentUsd');
    const frequency = validateFrequency(input.frequency);
    const scope = scopeOfInput(input, 'setLimit: ');
    const period = this.calendar.window(frequency, this.options.clock());
    const seed = spentUsd === undefined ? undefined : { window: scope === undefined ? period : scopedWindow(period, scope), spentNano: toNano(spentUsd) };
    await this.store.setLimit(tenantId, { ...validateLimitTerms(input, 'setLimit: '), frequency, limitNano: toNano(limitUsd), ...(scope !== undefined && { scope }) }, seed);
  }

  async setPolicy(tenantId: string, policy: TenantPolicy): Promise<void> {
    validateTenantId(tenantId);
    await this.store.setPolicy(tenantId, validatePolicy(policy));
  }

  async policy(tenantId: string): Promise<TenantPolicy> {
    validateTenantId(tenantId);
    return this.store.policy(tenantId);
  }

  /** Tenants with spend or revenue in the current window of `frequency`, a page at a time. */
  async tenants(frequency: LimitFrequency, limit: number, cursor: string | undefined): Promise<TenantUsagePage> {
    const page = await this.store.tenantsWithUsage(this.calendar.window(frequency, this.options.clock()), limit, cursor);
    return {
      tenants: page.tenants.map((t) => ({ tenantId: t.tenantId, spentUsd: toUsd(t.spentNano), revenueUsd: toUsd(t.revenueNano) })),
      ...(page.cursor !== undefined && { cursor: page.cursor }),
    };
  }

  async setRateLimit(tenantId: string, limit: RateLimit): Promise<void> {
    validateTenantId(tenantId);
    await this.store.setRateLimit(tenantId, validateRateLimit(limit));
  }

  async rateLimit(tenantId: string): Promise<RateLimit> {
    validateTenantId(tenantId);
    return this.store.rateLimit(tenantId);
  }

  async rateUsage(tenantId: string): Promise<RateUsage> {
    validateTenantId(tenantId);
    return this.store.rateUsage(tenantId, this.options.clock());
  }

  async removeLimit(tenantId: string, frequency: LimitFrequency, budget?: BudgetSelector): Promise<void> {
    validateTenantId(tenantId);
    if (budget !== undefined && (budget === null || typeof budget !== 'object')) throw new ConfigError(`removeLimit: expected { feature } or { model }, got ${describeValue(budget)}`);
    if (budget !== undefined) rejectUnknownKeys(budget as Record<string, unknown>, REMOVE_LIMIT_OPTIONS, 'removeLimit option');
    const scope = budget === undefined ? undefined : scopeOfInput(budget, 'removeLimit: ');
    await this.store.removeLimit(tenantId, validateFrequency(frequency), scope);
  }

  async usage(tenantId: string): Promise<WindowReport[]> {
    validateTenantId(tenantId);
    const usage = await this.store.usage(tenantId, this.windows(undefined));
    // Limited windows first, as getUsage always listed them; then the others; then the scoped budgets.
    const whole = usage.filter((u) => u.scope === undefined);
    const ordered = [...whole.filter((u) => u.limitNano !== undefined), ...whole.filter((u) => u.limitNano === undefined), ...usage.filter((u) => u.scope !== undefined)];
    return ordered.map((u) => ({
      frequency: u.frequency,
      spentUsd: toUsd(u.spentNano),
      reservedUsd: toUsd(u.reservedNano),
      revenueUsd: toUsd(u.revenueNano),
      marginUsd: toUsd(u.revenueNano - u.spentNano),
      ...(u.limitNano !== undefined && {
        limitUsd: toUsd(u.limitNano),
        mode: u.mode ?? 'hard',
        isDefault: u.isDefault === true,
        thresholds: [...(u.thresholds ?? this.alertThresholds)],
      }),
      ...scopeFields(u.scope),
      resetsAt: u.resetsAt,
    }));
  }

  private limitError(tenantId: string, outcome: Extract<ReserveOutcome, { admitted: false }>, output: OutputBound, bound: CallBound | undefined): LimitExceededError {
    const limitUsd = toUsd(outcome.limitNano);
    const spentUsd = toUsd(outcome.spentNano);
    const heldUsd = toUsd(outcome.reservedNano);
    let fitsWithOutputCap: number | undefined;
    if (bound !== undefined && bound.outputUsdPerToken > 0 && output.capPath !== undefined) {
      const room = limitUsd - spentUsd - heldUsd - bound.inputUsd;
      const cap = Math.floor(room / (bound.outputUsdPerToken * bound.completions));
      if (cap >= 1 && cap < bound.outputCap) fitsWithOutputCap = cap;
    }
    return new LimitExceededError({
      tenantId,
      frequency: outcome.window.frequency,
      limitUsd,
      spentUsd,
      heldUsd,
      requestUsd: bound?.amountUsd,
      resetsAt: outcome.window.resetsAt ?? this.calendar.window(outcome.window.frequency, this.options.clock()).resetsAt,
      fitsWithOutputCap,
      outputCapParam: output.capPath?.join('.'),
      ...scopeFields(outcome.window.scope),
    });
  }
}

const SET_LIMIT_OPTIONS = new Set(['limitUsd', 'frequency', 'spentUsd', 'mode', 'thresholds', 'feature', 'model']);
const REMOVE_LIMIT_OPTIONS = new Set(['feature', 'model']);

/** A dollar amount of a limit, checked: finite and not negative. */
export function usdAmount(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new ConfigError(`${field} must be a finite, non-negative number, got ${describeValue(value)}`);
  return value;
}

/** A limit's mode and thresholds, checked. */
export function validateLimitTerms(input: { mode?: unknown; thresholds?: unknown }, at: string): Pick<TenantLimit, 'mode' | 'thresholds'> {
  const mode = input.mode ?? 'hard';
  if (mode !== 'hard' && mode !== 'soft') throw new ConfigError(`${at}mode must be 'hard' or 'soft', got ${describeValue(mode)}`);
  const thresholds = validateThresholds(input.thresholds, `${at}thresholds`);
  return { mode, ...(thresholds !== undefined && { thresholds }) };
}
