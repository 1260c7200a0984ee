import { toUsd } from '../limits/store.js';
import { utcDay } from '../timestamps.js';
import type { ReportEvent } from './report-event.js';
import { NO_KEY } from './aggregate.js';

const DAY_MS = 86_400_000;

export interface SpendSeries {
  name: string;
  /** Cost per day of `days`, in USD. */
  costsUsd: number[];
}

export interface SpendOverTime {
  /** Every UTC day from the first event's to the last's, `YYYY-MM-DD`, days without calls included. */
  days: string[];
  series: SpendSeries[];
}

/** The name of the series that sums the tenants past the top ones. */
export const OTHER_TENANTS = '(others)';

/** Daily cost per tenant, for the spend chart; memory grows with tenants times days. */
export class DailyTenantSpend {
  /** Nano-dollars per day per tenant. */
  private readonly byTenant = new Map<string, Map<string, number>>();
  private firstDayMs = Infinity;
  private lastDayMs = -Infinity;

  add(event: ReportEvent): void {
    if (event.type !== 'usage') return;
    const dayMs = Math.floor(event.timestampMs / DAY_MS) * DAY_MS;
    this.firstDayMs = Math.min(this.firstDayMs, dayMs);
    this.lastDayMs = Math.max(this.lastDayMs, dayMs);
    const tenant = event.tenantId ?? NO_KEY;
    let days = this.byTenant.get(tenant);
    if (days === undefined) {
      days = new Map();
      this.byTenant.set(tenant, days);
    }
    const day = utcDay(dayMs);
    days.set(day, (days.get(day) ?? 0) + event.costNano);
  }

  /** The `top` tenants by cost, each a series, and the rest summed into one, `(others)`. */
  series(top: number): SpendOverTime {
    const days: string[] = [];
    for (let ms = this.firstDayMs; ms <= this.lastDayMs; ms += DAY_MS) days.push(utcDay(ms));
    const ranked = [...this.byTenant.entries()]
      .map(([tenant, costs]) => ({ tenant, costs, totalNano: [...costs.values()].reduce((a, b) => a + b, 0) }))
      .sort((a, b) => b.totalNano - a.totalNano || (a.tenant < b.tenant ? -1 : 1));
    const toSeries = (name: string, costMaps: Map<string, number>[]): SpendSeries => ({
      name,
      costsUsd: days.map((day) => toUsd(costMaps.reduce((sum, costs) => sum + (costs.get(day) ?? 0), 0))),
    });
    const series = ranked.slice(0, top).map(({ tenant, costs }) => toSeries(tenant, [costs]));
    const rest = ranked.slice(top);
    if (rest.length > 0) series.push(toSeries(OTHER_TENANTS, rest.map((r) => r.costs)));
    return { days, series };
  }
}
