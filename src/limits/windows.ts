import { ConfigError, describeValue, type LimitFrequency } from '../errors.js';
import { budgetApplies, type BudgetedCall, type BudgetScope } from './controls/budget-scope.js';

export const FREQUENCIES: readonly LimitFrequency[] = ['per_day', 'per_month'];

/** One calendar window of a limit: its key (which names the period) and when it ends. */
export interface SpendWindow {
  frequency: LimitFrequency;
  /** `d:2026-11-23` or `m:2026-11`, in the configured time zone. */
  key: string;
  resetsAt: Date;
  /** A scoped budget's window: its own counter, keyed `d:2026-11-23|f:chat`. */
  scope?: BudgetScope | undefined;
}

/** The window of a scoped budget in the same period as the tenant's `window`. */
export function scopedWindow(window: SpendWindow, scope: BudgetScope): SpendWindow {
  return { frequency: window.frequency, key: `${window.key}|${scope.key}`, resetsAt: window.resetsAt, scope };
}

/**
 * The windows of the scoped ones among `budgets` in the periods of `windows`: those that apply to `call`, or all of
 * them without a call.
 */
export function scopedWindows(
  budgets: readonly { frequency: LimitFrequency; scope?: BudgetScope | undefined }[] | undefined,
  windows: readonly SpendWindow[],
  call: BudgetedCall | undefined,
): SpendWindow[] {
  const out: SpendWindow[] = [];
  for (const { frequency, scope } of budgets ?? []) {
    if (scope === undefined || (call !== undefined && !budgetApplies(scope, call))) continue;
    const period = windows.find((w) => w.frequency === frequency);
    if (period !== undefined) out.push(scopedWindow(period, scope));
  }
  return out;
}

/** What a window key stays the same for from one period to the next: its frequency and its scope (`d:|f:chat`). */
export function windowFamily(windowKey: string): string {
  const scoped = windowKey.indexOf('|');
  return scoped < 0 ? windowKey.slice(0, 2) : windowKey.slice(0, 2) + windowKey.slice(scoped);
}

export function validateFrequency(value: unknown): LimitFrequency {
  if (!FREQUENCIES.includes(value as LimitFrequency)) {
    throw new ConfigError(`frequency must be one of ${FREQUENCIES.join(', ')}, got ${describeValue(value)}`);
  }
  return value as LimitFrequency;
}

export function validateTimeZone(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  try {
    if (typeof value !== 'string') throw new RangeError();
    new Intl.DateTimeFormat('en-US', { timeZone: value });
    return value;
  } catch {
    throw new ConfigError(`timezone must be an IANA time zone name (e.g. "Europe/Paris"), got ${describeValue(value)}`);
  }
}

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/**
 * Calendar windows: a day from local midnight, a month from the 1st, in UTC unless a time zone is given. Computed
 * from the clock at each call, so a window rolls over by itself; nothing ever needs resetting.
 */
export class WindowCalendar {
  private readonly parts: Intl.DateTimeFormat | undefined;
  /** The current window of each frequency, with its start: recomputed only when the clock leaves it (hot path). */
  private readonly current = new Map<LimitFrequency, { window: SpendWindow; from: number; until: number }>();

  constructor(readonly timeZone: string | undefined) {
    this.parts =
      timeZone === undefined || timeZone === 'UTC'
        ? undefined
        : new Intl.DateTimeFormat('en-US', { timeZone, year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric', hourCycle: 'h23' });
  }

  window(frequency: LimitFrequency, now: number): SpendWindow {
    const cached = this.current.get(frequency);
    if (cached !== undefined && now >= cached.from && now < cached.until) return cached.window;
    const { year, month, day } = this.localDate(now);
    const daily = frequency === 'per_day';
    const from = daily ? this.startOfLocalDay(year, month, day) : this.startOfLocalDay(year, month, 1);
    const resetsAt = daily ? this.startOfLocalDay(year, month, day + 1) : this.startOfLocalDay(year, month + 1, 1);
    const window: SpendWindow = { frequency, key: daily ? `d:${year}-${pad(month)}-${pad(day)}` : `m:${year}-${pad(month)}`, resetsAt };
    this.current.set(frequency, { window, from: from.getTime(), until: resetsAt.getTime() });
    return window;
  }

  private localDate(now: number): { year: number; month: number; day: number } {
    if (this.parts === undefined) {
      const d = new Date(now);
      return { year: d.getUTCFullYear(), month: d.getUTCMonth() + 1, day: d.getUTCDate() };
    }
    const fields = Object.fromEntries(this.parts.formatToParts(now).map((p) => [p.type, Number(p.value)]));
    return { year: fields.year as number, month: fields.month as number, day: fields.day as number };
  }

  /** The UTC instant of local 00:00 on a date (month/day may overflow: Date.UTC normalises them). */
  private startOfLocalDay(year: number, month: number, day: number): Date {
    const utcMidnight = Date.UTC(year, month - 1, day);
    if (this.parts === undefined) return new Date(utcMidnight);
    // Local midnight = UTC midnight minus the zone's offset at that moment; one correction covers DST changes.
    let guess = utcMidnight - this.offsetAt(utcMidnight);
    guess = utcMidnight - this.offsetAt(guess);
    return new Date(guess);
  }

  private offsetAt(instant: number): number {
    const f = Object.fromEntries(this.parts!.formatToParts(instant).map((p) => [p.type, Number(p.value)]));
    const asUtc = Date.UTC(f.year as number, (f.month as number) - 1, f.day as number, f.hour as number, f.minute as number, f.second as number);
    return asUtc - Math.floor(instant / 1000) * 1000;
  }
}
