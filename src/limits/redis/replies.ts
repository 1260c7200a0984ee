import type { WindowState } from './local-ledger.js';
import { LimitStoreFaultError } from '../store.js';
import type { RateLimitKind } from '../controls/rate-limits.js';

/** What the ledger's scripts answer, checked: a reply of another shape is a fault, never read as money. */

export interface ReserveReply {
  status: 'admitted' | 'refused' | 'already settled' | 'model not allowed' | 'rate limited' | 'stale scopes';
  /** The window that refused (an index into the windows asked about). */
  refusedIndex: number;
  /** With 'rate limited': which limit, its value, and when the call would fit. */
  rateLimited?: { kind: RateLimitKind; limit: number; retryAfterMs: number };
  /** The minute (by Redis' clock) the call's rates were counted in. */
  minute: number;
  countedInRates: boolean;
  holdsConcurrency: boolean;
  windows: WindowState[];
}

const RATE_KINDS: Record<number, RateLimitKind> = { 1: 'requests_per_minute', 2: 'tokens_per_minute', 3: 'concurrent' };

export interface CounterState {
  spentNano: number;
  reservedNano: number;
}

function integers(reply: unknown, length: number): number[] {
  if (!Array.isArray(reply) || reply.length !== length || !reply.every((v) => Number.isSafeInteger(v))) {
    throw new LimitStoreFaultError('Redis answered a spend-ledger script with a reply of an unexpected shape');
  }
  return reply as number[];
}

export function parseReserveReply(reply: unknown, windowCount: number): ReserveReply {
  const values = integers(reply, 6 + 3 * windowCount);
  const [status, refused, retryAfterMs, minute, rateLimit, flags] = values as [number, number, number, number, number, number];
  const windows = Array.from({ length: windowCount }, (_, i) => {
    const limit = values[6 + 3 * i]!;
    return { limitNano: limit < 0 ? undefined : limit, spentNano: values[7 + 3 * i]!, reservedNano: values[8 + 3 * i]! };
  });
  const reply_ = { refusedIndex: -1, minute, countedInRates: (flags & 1) !== 0, holdsConcurrency: (flags & 2) !== 0, windows };
  if (status === 1) return { status: 'admitted', ...reply_ };
  if (status === 2) return { status: 'already settled', ...reply_ };
  if (status === 3) return { status: 'model not allowed', ...reply_ };
  if (status === 5) return { status: 'stale scopes', ...reply_ };
  if (status === 4 && RATE_KINDS[refused] !== undefined) return { status: 'rate limited', ...reply_, rateLimited: { kind: RATE_KINDS[refused]!, limit: rateLimit, retryAfterMs } };
  if (status === 0 && refused >= 1 && refused <= windowCount && windows[refused - 1]!.limitNano !== undefined) return { status: 'refused', ...reply_, refusedIndex: refused - 1 };
  throw new LimitStoreFaultError('Redis answered the reserve script with an unknown outcome');
}

/** Each window's counters after the settlement, or undefined when it had been settled already. */
export function parseSettleReply(reply: unknown, windowCount: number): CounterState[] | undefined {
  if (Array.isArray(reply) && reply.length === 1 && reply[0] === 0) return undefined;
  const values = integers(reply, 1 + 2 * windowCount);
  if (values[0] !== 1) throw new LimitStoreFaultError('Redis answered the settle script with an unknown outcome');
  return Array.from({ length: windowCount }, (_, i) => ({ spentNano: values[1 + 2 * i]!, reservedNano: values[2 + 2 * i]! }));
}

/** A field of a window or limits hash as read back: absent is zero, anything but an integer is a fault. */
export function parseStoredNano(value: string | null | undefined): number {
  if (value === null || value === undefined) return 0;
  const number = Number(value);
  if (!/^-?\d+$/.test(value) || !Number.isSafeInteger(number)) throw new LimitStoreFaultError('a spend-ledger field in Redis does not hold an integer');
  return number;
}
