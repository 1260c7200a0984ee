/** Events from `startMs` (inclusive) to `endMs` (exclusive); either end may be open. */
export interface DateRange {
  startMs: number | undefined;
  endMs: number | undefined;
}

const DAY_MS = 86_400_000;
const DATE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,3})\d*)?)?(Z|[+-]\d{2}:\d{2})?$/;

/** Ms since the epoch of a UTC calendar time, or undefined when a field is out of range (2026-02-30, 24:00). */
function utcMs(parts: number[]): number | undefined {
  const [year, month, day, hour = 0, minute = 0, second = 0, milli = 0] = parts as [number, number, number, ...number[]];
  const ms = Date.UTC(year, month - 1, day, hour, minute, second, milli);
  const date = new Date(ms);
  const fits =
    date.getUTCFullYear() === year && date.getUTCMonth() === month - 1 && date.getUTCDate() === day &&
    date.getUTCHours() === hour && date.getUTCMinutes() === minute && date.getUTCSeconds() === second;
  return fits ? ms : undefined;
}

/** The offset of a zone (`Z`, `+02:00`), or undefined when it is out of range. */
function offsetMs(zone: string | undefined): number | undefined {
  if (zone === undefined || zone === 'Z') return 0;
  const hours = Number(zone.slice(1, 3));
  const minutes = Number(zone.slice(4, 6));
  if (hours > 23 || minutes > 59) return undefined;
  return (zone.startsWith('-') ? -1 : 1) * (hours * 60 + minutes) * 60_000;
}

/**
 * An instant of `--from` / `--to`: a date (`2026-11-01`, a whole UTC day) or a date-time (`2026-11-01T08:30`, with
 * seconds, a fraction, `Z` or an offset; without a zone, UTC). For a date, `end` gives the end of the day, so that
 * `--to 2026-11-30` includes that day. Undefined when the text is neither.
 */
export function parseInstant(text: string, end: boolean): number | undefined {
  const date = DATE.exec(text);
  if (date !== null) {
    const ms = utcMs(date.slice(1, 4).map(Number));
    return ms === undefined ? undefined : end ? ms + DAY_MS : ms;
  }
  const dateTime = DATE_TIME.exec(text);
  if (dateTime === null) return undefined;
  const [, year, month, day, hour, minute, second, fraction, zone] = dateTime;
  const ms = utcMs([year, month, day, hour, minute, second ?? '0', (fraction ?? '0').padEnd(3, '0')].map(Number));
  const offset = offsetMs(zone);
  if (ms === undefined || offset === undefined) return undefined;
  // A date-time `--to` is inclusive too: events stamped at that very millisecond are in.
  return ms - offset + (end ? 1 : 0);
}

export function inRange(range: DateRange, timestampMs: number): boolean {
  return (range.startMs === undefined || timestampMs >= range.startMs) && (range.endMs === undefined || timestampMs < range.endMs);
}
