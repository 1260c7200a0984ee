import type { LimitFrequency } from '../errors.js';
import type { AdmissionMode, LimitStore, Reservation, ReserveOutcome, SpendSeed, TenantLimit, WindowUsage } from './store.js';
import type { SpendWindow } from './windows.js';

interface Counter {
  spent: number;
  reserved: number;
}

/** The default store: one process, one ledger, every operation synchronous (and therefore atomic). */
export class MemoryLimitStore implements LimitStore {
  private readonly limits = new Map<string, TenantLimit[]>();
  /** tenant → window key → counter; only the current window of each frequency is kept. */
  private readonly counters = new Map<string, Map<string, Counter>>();
  private readonly open = new Set<string>();
  /** Reservation ids only need to be unique in this process. */
  private nextId = 0;

  setLimit(tenantId: string, limit: TenantLimit, seed?: SpendSeed): void {
    const others = (this.limits.get(tenantId) ?? []).filter((l) => l.frequency !== limit.frequency);
    this.limits.set(tenantId, [...others, limit]);
    if (seed !== undefined) this.counter(tenantId, seed.window).spent = seed.spentNano;
  }

  removeLimit(tenantId: string, frequency: LimitFrequency): void {
    const remaining = (this.limits.get(tenantId) ?? []).filter((l) => l.frequency !== frequency);
    if (remaining.length === 0) this.limits.delete(tenantId);
    else this.limits.set(tenantId, remaining);
  }

  limitsOf(tenantId: string): readonly TenantLimit[] | undefined {
    return this.limits.get(tenantId);
  }

  reserve(tenantId: string, windows: readonly SpendWindow[], amountNano: number, mode: AdmissionMode): ReserveOutcome {
    const limits = this.limits.get(tenantId) ?? [];
    // Plain loops: this runs on every call of a limited tenant.
    const counters: Counter[] = [];
    const windowKeys: string[] = [];
    for (let i = 0; i < windows.length; i++) {
      const window = windows[i]!;
      const counter = this.counter(tenantId, window);
      counters.push(counter);
      windowKeys.push(window.key);
      const limit = limits.find((l) => l.frequency === window.frequency);
      if (limit === undefined) continue;
      const { spent, reserved } = counter;
      const fits = mode === 'always' || (mode === 'strict' ? spent + reserved + amountNano <= limit.limitNano : spent + reserved < limit.limitNano);
      if (!fits) return { admitted: false, window, limitNano: limit.limitNano, spentNano: spent, reservedNano: reserved };
    }
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

  usage(tenantId: string, windows: readonly SpendWindow[]): WindowUsage[] {
    const limits = this.limits.get(tenantId) ?? [];
    return limits.map((limit) => {
      const window = windows.find((w) => w.frequency === limit.frequency)!;
      const counter = this.counters.get(tenantId)?.get(window.key);
      return {
        frequency: limit.frequency,
        spentNano: counter?.spent ?? 0,
        reservedNano: counter?.reserved ?? 0,
        limitNano: limit.limitNano,
        resetsAt: window.resetsAt,
      };
    });
  }

  private counter(tenantId: string, window: SpendWindow): Counter {
    let tenantCounters = this.counters.get(tenantId);
    if (tenantCounters === undefined) this.counters.set(tenantId, (tenantCounters = new Map()));
    let counter = tenantCounters.get(window.key);
    if (counter === undefined) {
      const prefix = window.key.slice(0, 2);
      for (const key of tenantCounters.keys()) if (key.startsWith(prefix)) tenantCounters.delete(key);
      tenantCounters.set(window.key, (counter = { spent: 0, reserved: 0 }));
    }
    return counter;
  }
}
