import type { LimitFrequency } from '../errors.js';
import type { SpendWindow } from './windows.js';
import type { BudgetedCall, BudgetScope } from './controls/budget-scope.js';
import type { TenantPolicy } from './controls/model-policy.js';
import type { LocalRates, RateHold, RateLimit, RateUsage } from './controls/rate-limits.js';

/** Money inside the agent: integer nano-dollars, so that sums never drift. */
export const NANO_PER_USD = 1_000_000_000;
export const toNano = (usd: number): number => Math.round(usd * NANO_PER_USD);
export const toUsd = (nano: number): number => nano / NANO_PER_USD;

/** 'hard' refuses calls that do not fit; 'soft' only alerts (thresholds) and records. */
export type LimitMode = 'hard' | 'soft';

export interface TenantLimit {
  frequency: LimitFrequency;
  limitNano: number;
  /** Default 'hard'. A soft limit is never checked at admission and reserves nothing. */
  mode?: LimitMode;
  /** Fractions of the limit that alert when spend reaches them (default: the Meter's `thresholds`). */
  thresholds?: readonly number[];
  /** A budget of one feature's or model's calls, with a counter of its own; none: the tenant's whole spend. */
  scope?: BudgetScope | undefined;
}

/** An admitted call's hold on a tenant's budget, until it settles at its real cost. */
export interface Reservation {
  id: string;
  tenantId: string;
  windowKeys: string[];
  /** When each window's record may be forgotten (epoch ms), for stores that expire them. */
  windowEnds?: number[];
  amountNano: number;
  /** The call's share of its tenant's rate limits, given back when it settles. */
  rate?: RateHold | undefined;
}

/** How a reservation is admitted: 'strict' when spent + held + this amount fits the limit, 'lenient' while spent + held is under it. */
export type Enforcement = 'strict' | 'lenient';


export type ReserveOutcome =
  /** No reservation when the tenant turned out to have no limit. */
  | { admitted: true; reservation?: Reservation | undefined }
  /** Refused: the window that is full, its limit, its settled spend, and what calls in flight hold in it. */
  | { admitted: false; window: SpendWindow; limitNano: number; spentNano: number; reservedNano: number };

/** What the billing system says a tenant already spent in the current window, when a limit is adopted mid-window. */
export interface SpendSeed {
  window: SpendWindow;
  spentNano: number;
}

export interface WindowUsage {
  frequency: LimitFrequency;
  spentNano: number;
  reservedNano: number;
  /** What the tenant was billed in the window (0 where the store keeps no revenue). */
  revenueNano: number;
  /** Absent where the window has no limit. */
  limitNano?: number | undefined;
  /** A scoped budget's window (listed after the tenant's windows). */
  scope?: BudgetScope | undefined;
  /** With a limit: whether it refuses ('hard') or only alerts ('soft'), and whether it is the Meter's defaultLimit. */
  mode?: LimitMode;
  isDefault?: boolean;
  thresholds?: readonly number[] | undefined;
  /** The window's own key (`d:2026-11-23`): what an alert is sent once per. */
  windowKey: string;
  resetsAt: Date;
}

/** What one recorded event adds to a tenant's current windows. */
export interface Booking {
  spentNano: number;
  revenueNano: number;
  /** Windows whose spend a settlement already counted (the reservation's windows): they get the revenue only. */
  settledWindowKeys?: readonly string[] | undefined;
  /**
   * Booked at most once under this id in a fleet-wide ledger, whichever process books it (a run's revenue, resolved in
   * two processes). In-process, the caller books it once.
   */
  onceId?: string | undefined;
  /** The call's feature and model: its spend also goes to the scoped budgets that apply to it. */
  call?: BudgetedCall | undefined;
}

/**
 * Where limits and spend live. The in-process store answers synchronously (a synchronous check-and-reserve is atomic
 * in one Node process); a fleet-wide store answers with promises, and the request waits for it. Callers accept either.
 */
export interface LimitStore {
  /** Sets a limit; with a seed, the window's settled spend becomes the seed's (calls in flight keep their holds). */
  setLimit(tenantId: string, limit: TenantLimit, seed?: SpendSeed): void | Promise<void>;
  removeLimit(tenantId: string, frequency: LimitFrequency, scope?: BudgetScope): void | Promise<void>;
  /**
   * The tenant's limits, or undefined when it has none: a synchronous shortcut for the common case, offered only by a
   * store that holds limits in this process. Without it, every scoped call asks `reserve`.
   */
  limitsOf?(tenantId: string): readonly TenantLimit[] | undefined;
  /**
   * Checks every limited window of the tenant (`windows`: the periods of the frequencies concerned) and every scoped
   * budget that applies to `call` in those periods, and reserves in all of them, or in none. A store without `policyOf`
   * checks the tenant's model policy here too (rejecting with a ModelNotAllowedError), and one without `localRates`
   * its rate limits (rejecting with a RateLimitedError; `tokens` is the call's input estimate).
   */
  reserve(tenantId: string, windows: readonly SpendWindow[], amountNano: number, mode: Enforcement, call?: BudgetedCall, tokens?: number): ReserveOutcome | Promise<ReserveOutcome>;
  setPolicy(tenantId: string, policy: TenantPolicy): void | Promise<void>;
  /** The tenant's policy, synchronously: offered by a store that holds policies in this process. */
  policyOf?(tenantId: string): TenantPolicy | undefined;
  policy(tenantId: string): TenantPolicy | Promise<TenantPolicy>;
  setRateLimit(tenantId: string, limit: RateLimit): void | Promise<void>;
  rateLimit(tenantId: string): RateLimit | Promise<RateLimit>;
  /** The tenant's sliding counts of the last minute and its calls in flight (`now`: the Meter's clock). */
  rateUsage(tenantId: string, now: number): RateUsage | Promise<RateUsage>;
  /** Rate limits kept in this process (a store without them checks rates in `reserve`). */
  readonly localRates?: LocalRates;
  /**
   * Replaces the reservation by the actual cost (0 releases it). Keyed on the reservation's own id: settling it twice
   * changes nothing. Never rejects: a settlement that cannot be written now is kept and written later.
   */
  settle(reservation: Reservation, actualNano: number, tokens?: number): void | Promise<void>;
  /**
   * Adds an event's spend (except in its settled windows) and revenue to the tenant's windows, limited or not: the same
   * counters limits are checked against. Never throws or rejects: a write that cannot be made now is kept and retried.
   */
  book(tenantId: string, windows: readonly SpendWindow[], booking: Booking): void | Promise<void>;
  /** Every window asked about, in that order, then the window of each scoped budget; `limitNano` where a limit is set. */
  usage(tenantId: string, windows: readonly SpendWindow[]): WindowUsage[] | Promise<WindowUsage[]>;
  /**
   * True for the first caller (in this process, or in the fleet for a fleet-wide store) to claim this alert: a
   * threshold of a tenant's window is sent once. A claim that cannot be made now resolves false (never rejects).
   */
  claimAlert(tenantId: string, window: SpendWindow, threshold: number): boolean | Promise<boolean>;
  /**
   * For a store that writes spend after settle and book return (to Redis): set by its owner, called with the tenant
   * once that spend is in the ledger (thresholds are checked then).
   */
  onSpendWritten?: ((tenantId: string) => void) | undefined;
  readonly writesLater?: boolean;
  /**
   * Tenants with spend or revenue in the window, about `limit` at a time from `cursor` (a page: pass the cursor it
   * answers to get the next; none when done).
   */
  tenantsWithUsage(window: SpendWindow, limit: number, cursor: string | undefined): TenantPage | Promise<TenantPage>;
  /** Tenants without a limit whose counters were dropped to bound memory (an in-process store). */
  readonly forgottenTenants?: number;
  /** For a store that writes later: resolves once the spend settled and booked so far is written (or journalled). */
  flushed?(): Promise<void>;
  /** Waits for settlements under way and lets go of connections. */
  close?(): Promise<void>;
}

/** What a fleet-wide store does while it cannot be reached: keep enforcing on what it last knew ('open'), or refuse. */
export type FailMode = 'open' | 'closed';

/** The limit store could not be reached and failMode is 'closed': the call is refused rather than let through unchecked. */
export class LimitStoreUnavailableError extends Error {
  override name = 'LimitStoreUnavailableError';
}

/**
 * The store answered, with an error: a script error, an invalid argument, a key of the wrong type. A fault of the
 * ledger or of its caller, not an outage: retrying it or admitting calls unchecked would not help.
 */
export class LimitStoreFaultError extends Error {
  override name = 'LimitStoreFaultError';
}

export interface TenantPage {
  tenants: Array<{ tenantId: string; spentNano: number; revenueNano: number }>;
  cursor?: string | undefined;
}
