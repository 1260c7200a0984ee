import type { Aggregate } from '../aggregate.js';
import { formatUsd } from '../money.js';
import { displayColumns } from './columns.js';

/** Control characters in a key (a tenant id is the app's data) shown escaped, so they cannot move the terminal's cursor. */
function printable(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Aligned text columns: a header, a row per group, a total row; numbers right-aligned. */
export function formatTable(aggregate: Aggregate): string {
  const columns = displayColumns(aggregate);
  const total = { ...aggregate.total, key: 'TOTAL' };
  const rows = [
    columns.map((c) => c.header),
    ...aggregate.groups.map((group) => columns.map((c) => printable(c.cell(group)))),
    columns.map((c) => c.cell(total)),
  ];
  const widths = columns.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const line = (row: string[]): string =>
    row.map((cell, i) => (columns[i]!.numeric ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!))).join('  ').trimEnd();
  const rule = widths.map((w) => '-'.repeat(w)).join('  ');
  const body = rows.slice(1, -1).map(line);
  const lines = [line(rows[0]!), rule, ...body, rule, line(rows[rows.length - 1]!)];
  if (aggregate.unattributedRevenueNano !== undefined) {
    lines.push('', `Revenue of run outcomes, in the total but not any ${aggregate.by}'s: $${formatUsd(aggregate.unattributedRevenueNano, 6)}`);
  }
  return `${lines.join('\n')}\n`;
}
