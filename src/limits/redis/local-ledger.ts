import type { Enforcement } from '../store.js';
import { windowFamily, type SpendWindow } from '../windows.js';
import { budgetName } from '../controls/budget-scope.js';

/** What Redis said about one window of a tenant: its limit (undefined: none), settled spend and holds. */
export interface WindowState {
  limitNano: number | undefined;
  spentNano: number;
  reservedNano: number;
}

interface Counter {
  spentNano: number;
  reservedNano: number;
}

interface TenantView {
  /** Per budget (see budgetName): the limit, or null when Redis said there is none. A budget never heard of is absent. */
  limits: Map<string, number | null>;
  /** The current window of each budget. */
  counters: Map<string, Counter>;
}

export type LocalAdmission =
  /** The windows the reservation holds: those with a limit, and those whose limit this process never heard of. */
  | { admitted: true; windows: SpendWindow[] }
  | { admitted: false; window: SpendWindow; limitNano: number; spentNano: number; reservedNano: number };

/**
 * This process's copy of the ledger, for while Redis is away: the last state Redis reported for each tenant and window,
 * plus what this process reserved and settled since. Limits stay enforced on this process's own spend (the rest of the
 * fleet is invisible until Redis is back); a tenant never heard of is admitted, its spend journalled all the same.
 */
export class LocalLedger {
  private readonly tenants = new Map<string, TenantView>();

  observeWindow(tenantId: string, window: SpendWindow, state: WindowState): void {
    const view = this.view(tenantId);
    view.limits.set(budgetName(window.frequency, window.scope), state.limitNano ?? null);
    const counter = this.counter(view, window.key);
    counter.spentNano = state.spentNano;
    counter.reservedNano = state.reservedNano;
  }

  observeCounter(tenantId: string, windowKey: string, spentNano: number, reservedNano: number): void {
    const counter = this.counter(this.view(tenantId), windowKey);
    counter.spentNano = spentNano;
    counter.reservedNano = reservedNano;
  }

  /** The same, for a tenant this process already keeps a view of: what Redis says of others is not kept. */
  observeKnownCounter(tenantId: string, windowKey: string, spentNano: number, reservedNano: number): void {
    const view = this.tenants.get(tenantId);
    if (view === undefined) return;
    const counter = this.counter(view, windowKey);
    counter.spentNano = spentNano;
    counter.reservedNano = reservedNano;
  }

  observeLimit(tenantId: string, budget: string, limitNano: number | null): void {
    this.view(tenantId).limits.set(budget, limitNano);
  }

  reserve(tenantId: string, windows: readonly SpendWindow[], amountNano: number, mode: Enforcement): LocalAdmission {
    const view = this.view(tenantId);
    const held = windows.filter((w) => view.limits.get(budgetName(w.frequency, w.scope)) !== null);
    for (const window of held) {
      const limitNano = view.limits.get(budgetName(window.frequency, window.scope));
      if (limitNano === undefined || limitNano === null) continue;
      const { spentNano, reservedNano } = this.counter(view, window.key);
      const used = spentNano + reservedNano;
      const fits = mode === 'strict' ? used + amountNano <= limitNano : used < limitNano;
      if (!fits) return { admitted: false, window, limitNano, spentNano, reservedNano };
    }
    for (const window of held) this.counter(view, window.key).reservedNano += amountNano;
    return { admitted: true, windows: held };
  }

  settle(tenantId: string, windowKeys: readonly string[], heldNano: number, actualNano: number): void {
    const view = this.tenants.get(tenantId);
    for (const key of windowKeys) {
      const counter = view?.counters.get(key);
      if (counter === undefined) continue; // the window has rolled over: its counts no longer matter
      counter.reservedNano = Math.max(0, counter.reservedNano - heldNano);
      counter.spentNano += actualNano;
    }
  }

  private view(tenantId: string): TenantView {
    let view = this.tenants.get(tenantId);
    if (view === undefined) this.tenants.set(tenantId, (view = { limits: new Map(), counters: new Map() }));
    return view;
  }

  private counter(view: TenantView, windowKey: string): Counter {
    let counter = view.counters.get(windowKey);
    if (counter === undefined) {
      const family = windowFamily(windowKey);
      for (const key of view.counters.keys()) if (windowFamily(key) === family) view.counters.delete(key);
      view.counters.set(windowKey, (counter = { spentNano: 0, reservedNano: 0 }));
    }
    return counter;
  }
}
