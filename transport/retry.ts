/** Why a POST failed, and whether trying the same batch again can help. */
export class DeliveryError extends Error {
  override name = 'DeliveryError';
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly status?: number,
    /** The server's Retry-After, in ms. */
    readonly retryAfterMs?: number,
    /** The answer's body (for a sender to read the receiver's reasons; never put in a message). */
    readonly answer?: string,
  ) {
    super(message);
  }
}

/** Network errors, timeouts, 408, 429 and 5xx are worth retrying; any other 4xx will fail the same way again. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/** Retry-After as seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(header: string | undefined, now = Date.now()): number | undefined {
  if (header === undefined || header.trim() === '') return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
}

/** Exponential backoff with full jitter: a uniform delay in [0, min(max, base * 2^attempt)). */
export function backoffDelay(attempt: number, { baseMs, maxMs }: BackoffOptions, random: () => number = Math.random): number {
  return Math.floor(random() * Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30)));
}
