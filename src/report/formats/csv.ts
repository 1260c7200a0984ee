import type { Aggregate, GroupTotals } from '../aggregate.js';
import { formatUsd } from '../money.js';
import { TOKEN_FIELDS } from '../report-event.js';

/**
 * A field as RFC 4180 has it (quoted when it holds a comma, a quote or a line break), and a text that a spreadsheet
 * would run as a formula (starting = + - @, or a tab or carriage return) prefixed with an apostrophe.
 */
function csvField(text: string, isText: boolean): string {
  const safe = isText && /^[=+\-@\t\r]/.test(text) ? `'${text}` : text;
  return /[",\r\n]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
}

/** Exact to the nano-dollar: a CSV is read by programs. */
const usd = (nano: number): string => formatUsd(nano, 9);

/**
 * One row per group, the same columns whatever the data (every token category; revenue and margin empty where a
 * group booked none), so that a program reading it can rely on them. No total row: it would be summed with the rest.
 */
export function formatCsv(aggregate: Aggregate): string {
  const header = [aggregate.by, 'calls', ...TOKEN_FIELDS, 'cost_usd', 'revenue_usd', 'margin_usd', 'refused', 'errored', 'partial'];
  const row = (g: GroupTotals): string[] => [
    csvField(g.key, true),
    String(g.calls),
    ...TOKEN_FIELDS.map((field) => String(g.tokens[field])),
    usd(g.costNano),
    g.revenueNano === undefined ? '' : usd(g.revenueNano),
    g.revenueNano === undefined ? '' : usd(g.revenueNano - g.costNano),
    String(g.refused),
    String(g.errored),
    String(g.partial),
  ];
  return [header.join(','), ...aggregate.groups.map((g) => row(g).join(','))].map((line) => `${line}\r\n`).join('');
}
