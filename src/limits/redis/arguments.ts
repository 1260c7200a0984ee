import { describeValue, type LimitFrequency } from '../../errors.js';
import type { Enforcement } from '../store.js';
import { FREQUENCIES, type SpendWindow } from '../windows.js';
import { LimitStoreFaultError } from '../store.js';

/**
 * Checks of what the store is asked to write, made before anything goes to Redis (the scripts check again, before
 * their first write).
 */

/** A period, then for a scoped budget's window its scope (see budget-scope.ts). */
const WINDOW_KEYS: Record<LimitFrequency, RegExp> = {
  per_day: /^d:\d{4}-\d{2}-\d{2}(\|[fm]:[A-Za-z0-9_.%-]+)?$/,
  per_month: /^m:\d{4}-\d{2}(\|[fm]:[A-Za-z0-9_.%-]+)?$/,
};
const MODES: readonly Enforcement[] = ['strict', 'lenient'];

export function checkTenant(tenantId: unknown): void {
  if (typeof tenantId !== 'string' || tenantId.length === 0) throw new LimitStoreFaultError(`tenantId must be a non-empty string, got ${describeValue(tenantId)}`);
}

/** Money in the ledger: an integer number of nano-dollars, exact in a double and in a Lua number. */
export function checkNano(value: unknown, what: string): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new LimitStoreFaultError(`${what} must be a non-negative integer of nano-dollars below 2^53, got ${describeValue(value)}`);
  }
}

export function checkFrequency(frequency: unknown): asserts frequency is LimitFrequency {
  if (!FREQUENCIES.includes(frequency as LimitFrequency)) throw new LimitStoreFaultError(`frequency must be one of ${FREQUENCIES.join(', ')}, got ${describeValue(frequency)}`);
}

export function checkMode(mode: unknown): void {
  if (!MODES.includes(mode as Enforcement)) throw new LimitStoreFaultError(`the admission mode must be one of ${MODES.join(', ')}, got ${describeValue(mode)}`);
}

export function checkWindows(windows: readonly SpendWindow[]): void {
  if (!Array.isArray(windows) || windows.length === 0) throw new LimitStoreFaultError(`expected at least one window, got ${describeValue(windows)}`);
  for (const window of windows) {
    const frequency: unknown = window?.frequency;
    checkFrequency(frequency);
    if (typeof window.key !== 'string' || !WINDOW_KEYS[frequency].test(window.key)) {
      throw new LimitStoreFaultError(`not a window key: ${describeValue(window.key)}`);
    }
    if (!(window.resetsAt instanceof Date) || !Number.isFinite(window.resetsAt.getTime())) throw new LimitStoreFaultError(`the window ${window.key} has no valid end`);
  }
}
