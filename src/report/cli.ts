import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Aggregator } from './aggregate.js';
import { DEFAULT_HTML_FILE, parseCommand, USAGE, UsageError, type ReportArguments } from './arguments.js';
import { inRange } from './date-range.js';
import { formatCsv } from './formats/csv.js';
import { formatHtml } from './formats/html.js';
import { formatJson } from './formats/json.js';
import type { ReportContext } from './formats/report-context.js';
import { formatTable } from './formats/table.js';
import { readEvents, UnreadableFileError } from './read-events.js';
import type { ReportEvent } from './report-event.js';
import { DailyTenantSpend } from './spend-over-time.js';

/** Tenants drawn in the spend chart; the rest are summed into one series. */
const CHART_TENANTS = 8;

/** Exit code of a mistake of the user's (arguments, a file that is not there), as command-line tools use it. */
const USAGE_EXIT_CODE = 2;

/** Reads the file once, feeding every event in the period to each summary the format needs; returns the page or text. */
async function buildReport(args: ReportArguments): Promise<{ output: string; context: ReportContext; firstSkippedLine: number | undefined }> {
  const groups = new Aggregator(args.by);
  // Only the HTML page draws these; the other formats do not pay for them.
  const charts = args.format === 'html' ? { spend: new DailyTenantSpend(), models: new Aggregator('model') } : undefined;
  const skipped = await readEvents(args.file, (event: ReportEvent) => {
    if (!inRange(args.range, event.timestampMs)) return;
    groups.add(event);
    charts?.spend.add(event);
    charts?.models.add(event);
  });
  const context: ReportContext = { from: args.from, to: args.to, skippedLines: skipped.count };
  const aggregate = groups.result();
  const output =
    charts !== undefined
      ? formatHtml({ aggregate, context, spendOverTime: charts.spend.series(CHART_TENANTS), models: charts.models.result().groups })
      : args.format === 'json'
        ? formatJson(aggregate, context)
        : args.format === 'csv'
          ? formatCsv(aggregate)
          : formatTable(aggregate);
  return { output, context, firstSkippedLine: skipped.firstLine };
}

async function report(args: ReportArguments): Promise<void> {
  const { output, context, firstSkippedLine } = await buildReport(args);
  if (context.skippedLines > 0) {
    const lines = context.skippedLines === 1 ? '1 line that is not an event' : `${context.skippedLines} lines that are not events`;
    process.stderr.write(`llm-meter: skipped ${lines} (first at line ${firstSkippedLine})\n`);
  }
  const out = args.out ?? (args.format === 'html' ? DEFAULT_HTML_FILE : undefined);
  if (out === undefined) {
    process.stdout.write(output);
    return;
  }
  const path = resolve(out);
  await writeFile(path, output);
  process.stdout.write(`${path}\n`);
}

/** `llm-meter <argv>`: sets process.exitCode (0, or 2 for a usage mistake, 1 for a fault) and never throws. */
export async function main(argv: string[]): Promise<void> {
  try {
    const command = parseCommand(argv);
    if (command.kind === 'help') {
      process.stdout.write(USAGE);
      return;
    }
    await report(command.args);
    process.exitCode = 0;
  } catch (err) {
    const isUsage = err instanceof UsageError;
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`llm-meter: ${message}\n${isUsage ? 'Run "llm-meter report --help" for usage.\n' : ''}`);
    process.exitCode = isUsage || err instanceof UnreadableFileError ? USAGE_EXIT_CODE : 1;
  }
}
