import { GROUP_DIMENSIONS, type GroupDimension } from './aggregate.js';
import { parseInstant, type DateRange } from './date-range.js';

export const FORMATS = ['table', 'csv', 'json', 'html'] as const;
export type ReportFormat = (typeof FORMATS)[number];

export const DEFAULT_HTML_FILE = 'llm-meter-report.html';

export const USAGE = `Usage: llm-meter report <usage.jsonl | -> [options]

Summarises a JSON Lines file of llm-meter events (the agent's \`file\` sink); \`-\` reads stdin.

Options:
  --by <key>        group by tenant (default), model, feature, provider or day (UTC)
  --from <date>     only events at or after this date (2026-11-01) or date-time (2026-11-01T08:00Z)
  --to <date>       only events up to this date (inclusive: the whole day) or date-time
  --format <fmt>    table (default), csv, json or html
  --out <file>      write the report to this file (html: default ${DEFAULT_HTML_FILE})
  -h, --help        show this help
`;

export interface ReportArguments {
  file: string;
  by: GroupDimension;
  range: DateRange;
  /** `--from` / `--to` as given, for the report to echo. */
  from: string | undefined;
  to: string | undefined;
  format: ReportFormat;
  out: string | undefined;
}

export type Command = { kind: 'help' } | { kind: 'report'; args: ReportArguments };

/** The user asked for something the command does not take: reported with the usage hint, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

const VALUE_OPTIONS = ['--by', '--from', '--to', '--format', '--out'] as const;
type ValueOption = (typeof VALUE_OPTIONS)[number];

function oneOf<T extends string>(option: string, value: string, allowed: readonly T[]): T {
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new UsageError(`${option} must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
}

function instant(option: string, value: string | undefined, end: boolean): number | undefined {
  if (value === undefined) return undefined;
  const ms = parseInstant(value, end);
  if (ms === undefined) throw new UsageError(`${option} must be a date (2026-11-01) or an ISO date-time (2026-11-01T08:00:00Z), got ${JSON.stringify(value)}`);
  return ms;
}

/** Options as `--by day` or `--by=day`; a value may not be missing, nor be given twice. */
function readOptions(argv: string[]): { positional: string[]; values: Partial<Record<ValueOption, string>> } {
  const positional: string[] = [];
  const values: Partial<Record<ValueOption, string>> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-' || !arg.startsWith('-')) {
      positional.push(arg);
      continue;
    }
    const equals = arg.indexOf('=');
    const name = equals === -1 ? arg : arg.slice(0, equals);
    if (!(VALUE_OPTIONS as readonly string[]).includes(name)) throw new UsageError(`unknown option ${JSON.stringify(name)}`);
    const option = name as ValueOption;
    const value = equals === -1 ? argv[++i] : arg.slice(equals + 1);
    if (value === undefined || value === '') throw new UsageError(`${option} needs a value`);
    if (values[option] !== undefined) throw new UsageError(`${option} is given more than once`);
    values[option] = value;
  }
  return { positional, values };
}

/** The command line after `llm-meter`. */
export function parseCommand(argv: string[]): Command {
  if (argv.includes('--help') || argv.includes('-h')) return { kind: 'help' };
  const [command, ...rest] = argv;
  if (command === undefined) throw new UsageError('missing command');
  if (command !== 'report') throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  const { positional, values } = readOptions(rest);
  const [file, extra] = positional;
  if (file === undefined) throw new UsageError('missing the usage file to read (a path, or - for stdin)');
  if (extra !== undefined) throw new UsageError(`unexpected argument ${JSON.stringify(extra)}`);
  const range: DateRange = { startMs: instant('--from', values['--from'], false), endMs: instant('--to', values['--to'], true) };
  if (range.startMs !== undefined && range.endMs !== undefined && range.startMs >= range.endMs) {
    throw new UsageError(`--from ${JSON.stringify(values['--from'])} is not before --to ${JSON.stringify(values['--to'])}`);
  }
  return {
    kind: 'report',
    args: {
      file,
      by: values['--by'] === undefined ? 'tenant' : oneOf('--by', values['--by'], GROUP_DIMENSIONS),
      range,
      from: values['--from'],
      to: values['--to'],
      format: values['--format'] === undefined ? 'table' : oneOf('--format', values['--format'], FORMATS),
      out: values['--out'],
    },
  };
}
