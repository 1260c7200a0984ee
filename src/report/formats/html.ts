import { readFileSync } from 'node:fs';
import type { Aggregate, GroupTotals } from '../aggregate.js';
import { formatUsd } from '../money.js';
import { OTHER_TENANTS, type SpendOverTime } from '../spend-over-time.js';
import { displayColumns } from './columns.js';
import type { ReportContext } from './report-context.js';

/** What the page shows: the groups asked for, and the two charts, which are by tenant and day, and by model. */
export interface HtmlReport {
  aggregate: Aggregate;
  spendOverTime: SpendOverTime;
  /** Models, most costly first. */
  models: GroupTotals[];
  context: ReportContext;
}

/** Colours of the spend chart's series, in order; the last one is for the tenants past the top ones. */
export const SERIES_COLOURS = ['#e6194b', '#3cb44b', '#4363d8', '#f58231', '#911eb4', '#42d4f4', '#f032e6', '#9a6324'];
export const OTHERS_COLOUR = '#808080';
export const MODEL_BAR_COLOUR = '#2f6fdf';
export const TOP_MODELS = 10;

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON for a `<script type="application/json">`: with `<` escaped, no `</script>` or `<!--` in the data can end it. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c');
}

/** uPlot, inlined: the page makes no request at all (it may be opened offline, or mailed). */
function uPlotAssets(): { script: string; css: string } {
  return {
    script: readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8'),
    css: readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8'),
  };
}

function groupTable(aggregate: Aggregate): string {
  const columns = displayColumns(aggregate);
  const cells = (group: GroupTotals, tag: 'td' | 'th'): string =>
    columns.map((c) => `<${tag}${c.numeric ? ' class="num"' : ''}>${escapeHtml(c.cell(group))}</${tag}>`).join('');
  const head = columns.map((c) => `<th${c.numeric ? ' class="num"' : ''}>${escapeHtml(c.header)}</th>`).join('');
  const rows = aggregate.groups.map((g) => `<tr>${cells(g, 'td')}</tr>`).join('\n');
  const total = cells({ ...aggregate.total, key: 'Total' }, 'th');
  return `<table id="groups">\n<thead><tr>${head}</tr></thead>\n<tbody>\n${rows}\n</tbody>\n<tfoot><tr>${total}</tr></tfoot>\n</table>`;
}

function modelBars(models: GroupTotals[]): string {
  const top = models.slice(0, TOP_MODELS);
  if (top.length === 0) return '<p class="empty">No calls in this period.</p>';
  const most = Math.max(...top.map((m) => m.costNano));
  const items = top.map((m) => {
    const percent = most > 0 ? ((m.costNano / most) * 100).toFixed(2) : '0';
    return (
      `<li><span class="bar-label">${escapeHtml(m.key)}</span>` +
      `<span class="bar-track"><span class="bar" style="width:${percent}%"></span></span>` +
      `<span class="bar-value">$${formatUsd(m.costNano, 6)}</span></li>`
    );
  });
  return `<ol class="bars" id="models">\n${items.join('\n')}\n</ol>`;
}

function period(context: ReportContext): string {
  if (context.from === undefined && context.to === undefined) return 'all events';
  return `from ${context.from ?? 'the first event'} to ${context.to ?? 'the last event'}`;
}

const PAGE_CSS = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 28px 0 8px; }
.meta { color: #555; margin: 0; }
#spend-chart { min-height: 380px; }
.bars { list-style: none; padding: 0; margin: 0; max-width: 900px; }
.bars li { display: grid; grid-template-columns: 260px 1fr 120px; gap: 8px; align-items: center; margin: 4px 0; }
.bar-label { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.bar-track { background: #eee; height: 16px; }
.bar { display: block; height: 16px; background: ${MODEL_BAR_COLOUR}; }
.bar-value { text-align: right; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; }
th, td { padding: 3px 10px; border-bottom: 1px solid #ddd; text-align: left; white-space: nowrap; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
tfoot th { border-top: 2px solid #999; }
`;

/** Draws the spend chart from the page's data, then marks the page rendered. Plain ES5: it runs as the page's own. */
const PAGE_SCRIPT = `
(function () {
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var spend = data.spendOverTime;
  var target = document.getElementById('spend-chart');
  var DAY = 86400;
  if (spend.days.length === 0) {
    target.textContent = 'No calls in this period.';
  } else {
    var xs = spend.days.map(function (day) { return Date.parse(day + 'T00:00:00Z') / 1000; });
    var series = [{ label: 'day', value: function (u, v) { return v == null ? '--' : new Date(v * 1000).toISOString().slice(0, 10); } }];
    spend.series.forEach(function (s, i) {
      var colour = s.name === data.othersName ? data.othersColour : data.seriesColours[i % data.seriesColours.length];
      series.push({
        label: s.name,
        stroke: colour,
        width: 3,
        points: { show: true, size: 8, fill: colour, stroke: colour },
        value: function (u, v) { return v == null ? '--' : '$' + v.toFixed(6); }
      });
    });
    new uPlot({
      width: Math.max(400, target.clientWidth),
      height: 360,
      series: series,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'); },
      scales: {
        // Half a day either side of the data, so that the first and last days' points and labels are not cut off. From
        // the days themselves: for a single day uPlot hands the range function a span of its own (years wide).
        x: { time: true, range: function () { return [xs[0] - DAY / 2, xs[xs.length - 1] + DAY / 2]; } },
        y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } }
      },
      axes: [{
        // Whole days only: the data is per day, hours between them would mean nothing.
        incrs: [DAY, 2 * DAY, 7 * DAY, 14 * DAY, 28 * DAY, 91 * DAY, 364 * DAY],
        values: function (u, ticks) { return ticks.map(function (t) { return new Date(t * 1000).toISOString().slice(0, 10); }); }
      }, { size: 80, values: function (u, ticks) { return ticks.map(function (t) { return '$' + t; }); } }]
    }, [xs].concat(spend.series.map(function (s) { return s.costsUsd; })), target);
  }
  document.body.dataset.rendered = 'true';
})();
`;

/** One self-contained page: styles, data and scripts inline, no URL anywhere it would load from. */
export function formatHtml(report: HtmlReport): string {
  const { aggregate, context } = report;
  const assets = uPlotAssets();
  const data = {
    spendOverTime: report.spendOverTime,
    seriesColours: SERIES_COLOURS,
    othersColour: OTHERS_COLOUR,
    othersName: OTHER_TENANTS,
  };
  const summary =
    `${aggregate.total.calls.toLocaleString('en-US')} calls, $${formatUsd(aggregate.total.costNano, 6)} spent; ${period(context)}` +
    (context.skippedLines > 0 ? `; skipped ${context.skippedLines} ${context.skippedLines === 1 ? 'line that is not an event' : 'lines that are not events'}` : '');
  const unattributed =
    aggregate.unattributedRevenueNano === undefined
      ? ''
      : `\n<p class="meta">Revenue of run outcomes, in the total but not any ${escapeHtml(aggregate.by)}'s: $${formatUsd(aggregate.unattributedRevenueNano, 6)}</p>`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>llm-meter report</title>
<style>${assets.css}</style>
<style>${PAGE_CSS}</style>
</head>
<body>
<h1>LLM usage report</h1>
<p class="meta">${escapeHtml(summary)}</p>
<h2>Daily cost per tenant</h2>
<div id="spend-chart"></div>
<h2>Top models by cost</h2>
${modelBars(report.models)}
<h2>By ${escapeHtml(aggregate.by)}</h2>
${groupTable(aggregate)}${unattributed}
<script type="application/json" id="report-data">${scriptJson(data)}</script>
<script>${assets.script}</script>
<script>${PAGE_SCRIPT}</script>
</body>
</html>
`;
}
