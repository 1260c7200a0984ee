import type { Aggregate, GroupTotals } from '../aggregate.js';
import { formatUsd } from '../money.js';
import type { TokenField } from '../report-event.js';

/** A column of the report as people read it (the table and the HTML page). */
export interface DisplayColumn {
  header: string;
  numeric: boolean;
  cell(group: GroupTotals): string;
}

const TOKEN_HEADERS: Record<TokenField, string> = {
  input_tokens: 'input',
  output_tokens: 'output',
  cached_tokens: 'cache read',
  cache_creation_tokens: 'cache write',
  reasoning_tokens: 'reasoning',
  audio_input_tokens: 'audio in',
  audio_output_tokens: 'audio out',
};

/** Money shown to people: up to 6 decimals (a cheap call costs fractions of a cent). */
const DISPLAY_DECIMALS = 6;

function formatCount(count: number): string {
  return count.toLocaleString('en-US', { maximumFractionDigits: 3 });
}

/**
 * The columns worth showing: input and output tokens always, other token categories only where some call had them,
 * revenue and margin only where some event booked revenue (blank for groups without).
 */
export function displayColumns(aggregate: Aggregate): DisplayColumn[] {
  const columns: DisplayColumn[] = [
    { header: aggregate.by, numeric: false, cell: (g) => g.key },
    { header: 'calls', numeric: true, cell: (g) => formatCount(g.calls) },
  ];
  for (const [field, header] of Object.entries(TOKEN_HEADERS) as [TokenField, string][]) {
    const always = field === 'input_tokens' || field === 'output_tokens';
    if (always || aggregate.total.tokens[field] > 0) columns.push({ header, numeric: true, cell: (g) => formatCount(g.tokens[field]) });
  }
  columns.push({ header: 'cost $', numeric: true, cell: (g) => formatUsd(g.costNano, DISPLAY_DECIMALS) });
  if (aggregate.total.revenueNano !== undefined) {
    const ifRevenue = (g: GroupTotals, nano: (revenueNano: number) => number): string =>
      g.revenueNano === undefined ? '' : formatUsd(nano(g.revenueNano), DISPLAY_DECIMALS);
    columns.push({ header: 'revenue $', numeric: true, cell: (g) => ifRevenue(g, (revenue) => revenue) });
    columns.push({ header: 'margin $', numeric: true, cell: (g) => ifRevenue(g, (revenue) => revenue - g.costNano) });
  }
  columns.push(
    { header: 'refused', numeric: true, cell: (g) => formatCount(g.refused) },
    { header: 'errored', numeric: true, cell: (g) => formatCount(g.errored) },
    { header: 'partial', numeric: true, cell: (g) => formatCount(g.partial) },
  );
  return columns;
}
