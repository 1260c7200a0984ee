import { utcDay } from '../timestamps.js';
import { TOKEN_FIELDS, type ReportedCall, type ReportEvent, type TokenCounts } from './report-event.js';

export const GROUP_DIMENSIONS = ['tenant', 'model', 'feature', 'provider', 'day'] as const;
export type GroupDimension = (typeof GROUP_DIMENSIONS)[number];

/** The key of events without a tenant or a feature. */
export const NO_KEY = '(none)';

/** One group's sums. Money is in integer nano-dollars, so that sums are exact. */
export interface GroupTotals {
  key: string;
  calls: number;
  tokens: TokenCounts;
  costNano: number;
  /** Undefined when no event of the group booked revenue. */
  revenueNano: number | undefined;
  refused: number;
  errored: number;
  partial: number;
}

export interface Aggregate {
  by: GroupDimension;
  /** Sorted by cost, most first; by day, oldest first. */
  groups: GroupTotals[];
  total: GroupTotals;
  /**
   * Revenue of run outcomes when grouping by model, feature or provider: a run's revenue is not any one model's (its
   * calls may use several), so it is kept out of the groups and reported beside them; `total` includes it.
   * Undefined when there is none, or when grouping by tenant or day (the outcome's own tenant and day take it).
   */
  unattributedRevenueNano: number | undefined;
}

function emptyTotals(key: string): GroupTotals {
  const tokens = {} as TokenCounts;
  for (const field of TOKEN_FIELDS) tokens[field] = 0;
  return { key, calls: 0, tokens, costNano: 0, revenueNano: undefined, refused: 0, errored: 0, partial: 0 };
}

function addRevenue(totals: GroupTotals, revenueNano: number): void {
  totals.revenueNano = (totals.revenueNano ?? 0) + revenueNano;
}

function addCall(totals: GroupTotals, call: ReportedCall): void {
  totals.calls++;
  for (const field of TOKEN_FIELDS) totals.tokens[field] += call.tokens[field];
  totals.costNano += call.costNano;
  if (call.revenueNano !== undefined) addRevenue(totals, call.revenueNano);
  if (call.status === 'refused') totals.refused++;
  else if (call.status === 'errored') totals.errored++;
  if (call.partial) totals.partial++;
}

/** The group an event belongs to; undefined for an outcome the dimension does not apply to. */
function keyOf(event: ReportEvent, by: GroupDimension): string | undefined {
  switch (by) {
    case 'tenant':
      return event.tenantId ?? NO_KEY;
    case 'day':
      return utcDay(event.timestampMs);
    case 'model':
      return event.type === 'usage' ? event.model : undefined;
    case 'provider':
      return event.type === 'usage' ? event.provider : undefined;
    case 'feature':
      return event.type === 'usage' ? (event.feature ?? NO_KEY) : undefined;
  }
}

/** Sums events into groups by one dimension; memory grows with the number of groups, not of events. */
export class Aggregator {
  private readonly groups = new Map<string, GroupTotals>();
  private readonly total = emptyTotals('total');
  private unattributedRevenueNano: number | undefined;

  constructor(readonly by: GroupDimension) {}

  add(event: ReportEvent): void {
    const key = keyOf(event, this.by);
    if (event.type === 'usage') {
      addCall(this.total, event);
      if (key !== undefined) addCall(this.group(key), event);
      return;
    }
    addRevenue(this.total, event.revenueNano);
    if (key !== undefined) addRevenue(this.group(key), event.revenueNano);
    else this.unattributedRevenueNano = (this.unattributedRevenueNano ?? 0) + event.revenueNano;
  }

  result(): Aggregate {
    const groups = [...this.groups.values()];
    if (this.by === 'day') groups.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    else groups.sort((a, b) => b.costNano - a.costNano || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return { by: this.by, groups, total: this.total, unattributedRevenueNano: this.unattributedRevenueNano };
  }

  private group(key: string): GroupTotals {
    let totals = this.groups.get(key);
    if (totals === undefined) {
      totals = emptyTotals(key);
      this.groups.set(key, totals);
    }
    return totals;
  }
}
