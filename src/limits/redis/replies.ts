import type { WindowState } from './local-ledger.js';
import { LimitStoreFaultError } from '../store.js';

/** What the ledger's scripts answer, checked: a reply of another shape is a fault, never read as money. */

export interface ReserveReply {
  status: 'admitted' | 'refused' | 'already settled' | 'model not allowed';
  /** The window that refused (an index into the windows asked about). */
  refusedIndex: number;
  windows: WindowState[];
}

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
  const values = integers(reply, 2 + 3 * windowCount);
  const [status, refused] = values as [number, number];
  const windows = Array.from({ length: windowCount }, (_, i) => {
    const limit = values[2 + 3 * i]!;
    return { limitNano: limit < 0 ? undefined : limit, spentNano: values[3 + 3 * i]!, reservedNano: values[4 + 3 * i]! };
  });
  if (status === 1) return { status: 'admitted', refusedIndex: -1, windows };
  if (status === 2) return { status: 'already settled', refusedIndex: -1, windows };
  if (status === 3) return { status: 'model not allowed', refusedIndex: -1, windows };
  if (status === 0 && refused >= 1 && refused <= windowCount && windows[refused - 1]!.limitNano !== undefined) return { status: 'refused', refusedIndex: refused - 1, windows };
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
