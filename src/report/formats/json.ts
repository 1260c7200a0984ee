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

function groupJson(group: GroupTotals, withKey: boolean): UsageReportTotals {
  const json = (withKey ? { key: group.key, calls: group.calls } : { calls: group.calls }) as UsageReportTotals;
  for (const field of TOKEN_FIELDS) json[field] = group.tokens[field];
  json.cost_usd = toUsd(group.costNano);
  if (group.revenueNano !== undefined) {
    json.revenue_usd = toUsd(group.revenueNano);
    json.margin_usd = toUsd(group.revenueNano - group.costNano);
  }
  json.refused = group.refused;
  json.errored = group.errored;
  json.partial = group.partial;
  return json;
}

/** The report as one JSON document; every group has every token field, money in USD (summed exactly, in nano-dollars). */
export function formatJson(aggregate: Aggregate, context: ReportContext): string {
  const report: Partial<UsageReport> = {
    groups: aggregate.groups.map((g) => groupJson(g, true) as UsageReportGroup),
    total: groupJson(aggregate.total, false),
  };
  if (aggregate.unattributedRevenueNano !== undefined) report.unattributed_revenue_usd = toUsd(aggregate.unattributedRevenueNano);
  report.skipped_lines = context.skippedLines;
  report.by = aggregate.by;
  if (context.from !== undefined) report.from = context.from;
  if (context.to !== undefined) report.to = context.to;
  return `${JSON.stringify(report, null, 2)}\n`;
}
