import { toUsd } from '../../limits/store.js';
import type { Aggregate, GroupTotals } from '../aggregate.js';
import { TOKEN_FIELDS, type TokenField } from '../report-event.js';
import type { ReportContext } from './report-context.js';

type GroupJson = { key?: string; calls: number } & Record<TokenField, number> & {
  cost_usd: number;
  revenue_usd?: number;
  margin_usd?: number;
  refused: number;
  errored: number;
  partial: number;
};

function groupJson(group: GroupTotals, withKey: boolean): GroupJson {
  const json = (withKey ? { key: group.key, calls: group.calls } : { calls: group.calls }) as GroupJson;
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
  const report: Record<string, unknown> = {
    groups: aggregate.groups.map((g) => groupJson(g, true)),
    total: groupJson(aggregate.total, false),
  };
  if (aggregate.unattributedRevenueNano !== undefined) report.unattributed_revenue_usd = toUsd(aggregate.unattributedRevenueNano);
  report.skipped_lines = context.skippedLines;
  report.by = aggregate.by;
  if (context.from !== undefined) report.from = context.from;
  if (context.to !== undefined) report.to = context.to;
  return `${JSON.stringify(report, null, 2)}\n`;
}
