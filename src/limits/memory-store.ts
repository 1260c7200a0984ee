import type { LimitFrequency } from '../errors.js';
import type { AgentLog } from '../log.js';
import type { Enforcement, Booking, LimitStore, TenantPage, Reservation, ReserveOutcome, SpendSeed, TenantLimit, WindowUsage } from './store.js';
import { scopedWindow, scopedWindows, windowFamily, type SpendWindow } from './windows.js';
import { LocalControls } from './controls/local-controls.js';
import { budgetApplies, type BudgetedCall, type BudgetScope } from './controls/budget-scope.js';

interface Counter {
  spent: number;
  reserved: number;
  revenue: number;
}

/**
 * Tenants without a limit whose counters the in-process ledger keeps at most; past that, the least recently booked one
 * is forgotten. Limited tenants are always kept (their counters are what their limits are checked against), and so is
 * every tenant when there is a defaultLimit.
 */
export const MAX_UNLIMITED_TENANTS = 10_000;

/** The default store: one process, one ledger, every operation synchronous (and therefore atomic). */
export class MemoryLimitStore extends LocalControls implements LimitStore {
  /** Every tenant's own limits, hard and soft, of its whole spend and scoped. */
  private readonly limits = new Map<string, TenantLimit[]>();
  /**
   * What admission checks for a tenant with limits of its own (the hot path reads only this): its hard limits, and the
   * hard defaults when none of its own covers its whole spend.
   */
  private readonly enforced = new Map<string, TenantLimit[]>();
  private readonly defaultsEnforced: TenantLimit[] | undefined;
  /** tenant → window key → counter; only the current window of each frequency is kept. */
  private readonly counters = new Map<string, Map<string, Counter>>();
  /** Tenants with counters and no limit, least recently booked first (a Set keeps insertion order). */
  private readonly unlimited = new Set<string>();
  private readonly open = new Set<string>();
  /** Reservation ids only need to be unique in this process. */
  private nextId = 0;
  private forgotten = 0;

  constructor(
    private readonly log?: AgentLog,
    private readonly maxUnlimitedTenants = MAX_UNLIMITED_TENANTS,
    /** The Meter's defaultLimit: the limits of a tenant that has none of its own. */
    private readonly defaults: readonly TenantLimit[] = [],
  ) {
    super();
    const hard = defaults.filter((l) => l.mode !== 'soft');
    this.defaultsEnforced = hard.length > 0 ? hard : undefined;
  }

  /** Tenants without a limit whose counters were dropped to keep memory bounded. */
  get forgottenTenants(): number {
    return this.forgotten;
  }

  setLimit(tenantId: string, limit: TenantLimit, seed?: SpendSeed): void {
    const others = (this.limits.get(tenantId) ?? []).filter((l) => !sameBudget(l, limit.frequency, limit.scope));
    this.keep(tenantId, [...others, limit]);
    this.unlimited.delete(tenantId);
    if (seed !== undefined) this.counter(tenantId, seed.window).spent = seed.spentNano;
  }

  removeLimit(tenantId: string, frequency: LimitFrequency, scope?: BudgetScope): void {
    const remaining = (this.limits.get(tenantId) ?? []).filter((l) => !sameBudget(l, frequency, scope));
    this.keep(tenantId, remaining);
    if (remaining.length === 0 && this.defaults.length === 0 && this.counters.has(tenantId)) this.touch(tenantId);
  }

  /** The hard limits admission checks, scoped ones included (whether they apply is up to the call). */
  limitsOf(tenantId: string): readonly TenantLimit[] | undefined {
    return this.limits.has(tenantId) ? this.enforced.get(tenantId) : this.defaultsEnforced;
  }

  reserve(tenantId: string, windows: readonly SpendWindow[], amountNano: number, mode: Enforcement, call: BudgetedCall = {}): ReserveOutcome {
    const limits = this.limitsOf(tenantId);
    if (limits === undefined) return { admitted: true };
    // Plain loops: this runs on every call of a limited tenant.
    const counters: Counter[] = [];
    const windowKeys: string[] = [];
    for (let i = 0; i < limits.length; i++) {
      const limit = limits[i]!;
      if (limit.scope !== undefined && !budgetApplies(limit.scope, call)) continue;
      const period = windows.find((w) => w.frequency === limit.frequency);
      if (period === undefined) continue;
      const window = limit.scope === undefined ? period : scopedWindow(period, limit.scope);
      const counter = this.counter(tenantId, window);
      const { spent, reserved } = counter;
      const fits = mode === 'strict' ? spent + reserved + amountNano <= limit.limitNano : spent + reserved < limit.limitNano;
      if (!fits) return { admitted: false, window, limitNano: limit.limitNano, spentNano: spent, reservedNano: reserved };
      counters.push(counter);
      windowKeys.push(window.key);
    }
    if (counters.length === 0) return { admitted: true };
    for (const counter of counters) counter.reserved += amountNano;
    const reservation: Reservation = { id: `r${++this.nextId}`, tenantId, windowKeys, amountNano };
    this.open.add(reservation.id);
    return { admitted: true, reservation };
  }

  settle(reservation: Reservation, actualNano: number): void {
    // Keyed on the reservation: one per call, so settling a call twice finds it gone.
    if (!this.open.delete(reservation.id)) return;
    const tenantCounters = this.counters.get(reservation.tenantId);
    for (const key of reservation.windowKeys) {
      const counter = tenantCounters?.get(key);
      if (counter === undefined) continue; // the window has rolled over: its counts no longer matter
      counter.reserved -= reservation.amountNano;
      counter.spent += actualNano;
    }
  }

  book(tenantId: string, windows: readonly SpendWindow[], booking: Booking): void {
    const { spentNano, revenueNano, settledWindowKeys } = booking;
    const own = this.limits.get(tenantId);
    if (own === undefined && this.defaults.length === 0) this.touch(tenantId);
    for (const window of [...windows, ...scopedWindows(own, windows, booking.call ?? {})]) {
      const spent = settledWindowKeys?.includes(window.key) === true ? 0 : spentNano;
      if (spent === 0 && revenueNano === 0) continue;
      const counter = this.counter(tenantId, window);
      counter.spent += spent;
      counter.revenue += revenueNano;
    }
  }

  usage(tenantId: string, windows: readonly SpendWindow[]): WindowUsage[] {
    const own = this.limits.get(tenantId);
    const ownWhole = own?.filter((l) => l.scope === undefined) ?? [];
    const limits = ownWhole.length > 0 ? ownWhole : this.defaults;
    const tenantCounters = this.counters.get(tenantId);
    const scoped = scopedWindows(own, windows, undefined);
    return [...windows, ...scoped].map((window) => {
      const counter = tenantCounters?.get(window.key);
      const limit = window.scope === undefined ? limits.find((l) => l.frequency === window.frequency) : own?.find((l) => sameBudget(l, window.frequency, window.scope));
      return {
        frequency: window.frequency,
        spentNano: counter?.spent ?? 0,
        reservedNano: counter?.reserved ?? 0,
        revenueNano: counter?.revenue ?? 0,
        ...(limit !== undefined && { limitNano: limit.limitNano, mode: limit.mode ?? 'hard', isDefault: !(own?.includes(limit) ?? false), thresholds: limit.thresholds }),
        ...(window.scope !== undefined && { scope: window.scope }),
        windowKey: window.key,
        resetsAt: window.resetsAt,
      };
    });
  }

  tenantsWithUsage(window: SpendWindow, limit: number, cursor: string | undefined): TenantPage {
    const entries = [...this.counters];
    const from = cursor === undefined ? 0 : Number(cursor);
    const tenants: TenantPage['tenants'] = [];
    let i = Number.isSafeInteger(from) && from >= 0 ? from : 0;
    for (; i < entries.length && tenants.length < limit; i++) {
      const [tenantId, windows] = entries[i]!;
      const counter = windows.get(window.key);
      if (counter !== undefined && (counter.spent > 0 || counter.revenue > 0)) tenants.push({ tenantId, spentNano: counter.spent, revenueNano: counter.revenue });
    }
    return { tenants, cursor: i < entries.length ? String(i) : undefined };
  }

  private keep(tenantId: string, limits: TenantLimit[]): void {
    if (limits.length === 0) {
      this.limits.delete(tenantId);
      this.enforced.delete(tenantId);
      return;
    }
    this.limits.set(tenantId, limits);
    const hard = limits.filter((l) => l.mode !== 'soft');
    if (!limits.some((l) => l.scope === undefined)) hard.push(...(this.defaultsEnforced ?? []));
    if (hard.length > 0) this.enforced.set(tenantId, hard);
    else this.enforced.delete(tenantId);
  }

  /** The tenant (without a limit) was booked: it becomes the most recent, and the least recent goes past the bound. */
  private touch(tenantId: string): void {
    this.unlimited.delete(tenantId);
    this.unlimited.add(tenantId);
    if (this.unlimited.size <= this.maxUnlimitedTenants) return;
    const oldest = this.unlimited.values().next().value!;
    this.unlimited.delete(oldest);
    this.counters.delete(oldest);
    this.forgotten++;
    this.log?.warnOnce(
      'limits-forgotten-tenants',
      `the in-process spend ledger keeps the spend and revenue of at most ${this.maxUnlimitedTenants} tenants without a limit; ` +
        'the least recently booked ones are forgotten (their usage reads zero), tenants with a limit are always kept',
    );
  }

  private counter(tenantId: string, window: SpendWindow): Counter {
    let tenantCounters = this.counters.get(tenantId);
    if (tenantCounters === undefined) this.counters.set(tenantId, (tenantCounters = new Map()));
    let counter = tenantCounters.get(window.key);
    if (counter === undefined) {
      const family = windowFamily(window.key);
      for (const key of tenantCounters.keys()) if (windowFamily(key) === family) tenantCounters.delete(key);
      tenantCounters.set(window.key, (counter = { spent: 0, reserved: 0, revenue: 0 }));
    }
    return counter;
  }
}

function sameBudget(limit: TenantLimit, frequency: LimitFrequency, scope: BudgetScope | undefined): boolean {
  return limit.frequency === frequency && limit.scope?.key === scope?.key;
}
