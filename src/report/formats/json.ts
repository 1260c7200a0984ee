import { toUsd } from '../../limits/store.js';
import type { Aggregate, GroupDimension, GroupTotals } from '../aggregate.js';
import { TOKEN_FIELDS, type TokenCounts } from '../report-event.js';
import type { ReportContext } from './report-context.js';

/** The totals of `llm-meter report --format json`, of one group or of the whole file: tokens by category, money in USD. */
export type UsageReportTotals = { calls: number } & TokenCounts & {
  cost_usd: number;
  /** With revenue booked on the group's events (and the margin it leaves). */
  revenue_usd?: number;
  margin_usd?: number;
  refused: number;
  errored: number;
  partial: number;
};

/** One group: the tenant, model, feature, provider or day (`2026-11-30`, UTC) named by `key`. */
export type UsageReportGroup = { key: string } & UsageReportTotals;

/** The document `llm-meter report --format json` prints. */
export interface UsageReport {
  groups: UsageReportGroup[];
  total: UsageReportTotals;
  /** Outcome revenue booked on runs of no group (grouped by model, feature or provider). */
  unattributed_revenue_usd?: number;
  skipped_lines: number;
  by: GroupDimension;
  /** The period asked for, as given. */
  from?: string;
  to?: string;
}

function totalsJson(group: GroupTotals): UsageReportTotals {
  const tokens = Object.fromEntries(TOKEN_FIELDS.map((field) => [field, group.tokens[field]])) as TokenCounts;
  const revenue = group.revenueNano === undefined ? {} : { revenue_usd: toUsd(group.revenueNano), margin_usd: toUsd(group.revenueNano - group.costNano) };
  return { calls: group.calls, ...tokens, cost_usd: toUsd(group.costNano), ...revenue, refused: group.refused, errored: group.errored, partial: group.partial };
}

/** The report as one JSON document; every group has every token field, money in USD (summed exactly, in nano-dollars). */
export function formatJson(aggregate: Aggregate, context: ReportContext): string {
  const report: UsageReport = {
    groups: aggregate.groups.map((group) => ({ key: group.key, ...totalsJson(group) })),
    total: totalsJson(aggregate.total),
    ...(aggregate.unattributedRevenueNano === undefined ? {} : { unattributed_revenue_usd: toUsd(aggregate.unattributedRevenueNano) }),
    skipped_lines: context.skippedLines,
    by: aggregate.by,
    ...(context.from === undefined ? {} : { from: context.from }),
    ...(context.to === undefined ? {} : { to: context.to }),
  };
  return `${JSON.stringify(report, null, 2)}\n`;
}
