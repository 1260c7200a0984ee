import { ConfigError, describeValue } from '../../errors.js';

/** A tenant's rate limits: requests and tokens per minute, and calls in flight at once. */
export interface RateLimit {
  requestsPerMinute?: number;
  tokensPerMinute?: number;
  concurrent?: number;
}

/** Where a tenant stands in its rate windows now: the sliding counts of the last minute, and its calls in flight. */
export interface RateUsage {
  requestsPerMinute: number;
  tokensPerMinute: number;
  /** Counted only under a `concurrent` limit. */
  inFlight: number;
}

export type RateLimitKind = 'requests_per_minute' | 'tokens_per_minute' | 'concurrent';

/** An admitted call's share of its tenant's rates, until it settles. */
export interface RateHold {
  /** The minute (epoch ms / 60 000) its tokens were counted in. */
  minute: number;
  /** The input estimate counted at admission. */
  tokens: number;
  /** Whether it holds a place among the concurrent calls. */
  concurrent: boolean;
}

export type RateOutcome = { admitted: true; hold: RateHold } | { admitted: false; kind: RateLimitKind; limit: number; retryAfterMs: number };

export const MINUTE_MS = 60_000;
/** When a concurrency limit refuses, nothing says when a call will end: the caller is told to try again after this. */
export const CONCURRENT_RETRY_MS = 1000;

/**
 * A sliding-window counter: this minute's count plus the previous minute's, weighted by the part of it still inside the
 * last 60 s. Exact when the previous minute's calls were spread evenly; otherwise it can be off by the previous minute's
 * unevenness (at worst, a burst at the end of the previous minute counts as if spread over it).
 */
export function slidingCount(previous: number, current: number, now: number): number {
  return previous * ((MINUTE_MS - (now % MINUTE_MS)) / MINUTE_MS) + current;
}

/** How long until `amount` more fits under `limit`, as the window slides (at best the next minute). */
export function waitFor(previous: number, current: number, amount: number, limit: number, now: number): number {
  const elapsed = now % MINUTE_MS;
  const room = limit - current - amount;
  if (room >= 0 && previous > 0) {
    const needed = MINUTE_MS * (1 - room / previous);
    return Math.max(1, Math.ceil(needed - elapsed));
  }
  return MINUTE_MS - elapsed + (amount > limit ? MINUTE_MS : 0);
}

/** Where a hold's minute is counted now: this minute (1), the previous one (0), or out of the window. */
function slotOf(hold: RateHold, minute: number): 0 | 1 | undefined {
  return hold.minute === minute ? 1 : hold.minute === minute - 1 ? 0 : undefined;
}

interface TenantRates {
  limit: RateLimit;
  minute: number;
  requests: [number, number];
  tokens: [number, number];
  inFlight: number;
}

/** Rate limits kept in this process: the in-process store, and the app's backend (whose protocol has none). */
export class LocalRates {
  private readonly tenants = new Map<string, TenantRates>();

  set(tenantId: string, limit: RateLimit): void {
    if (Object.keys(limit).length === 0) {
      this.tenants.delete(tenantId);
      return;
    }
    const state = this.tenants.get(tenantId);
    if (state !== undefined) state.limit = limit;
    else this.tenants.set(tenantId, { limit, minute: 0, requests: [0, 0], tokens: [0, 0], inFlight: 0 });
  }

  of(tenantId: string): RateLimit | undefined {
    return this.tenants.get(tenantId)?.limit;
  }

  usage(tenantId: string, now: number): RateUsage {
    const state = this.tenants.get(tenantId);
    if (state === undefined) return { requestsPerMinute: 0, tokensPerMinute: 0, inFlight: 0 };
    this.roll(state, now);
    return {
      requestsPerMinute: Math.ceil(slidingCount(state.requests[0], state.requests[1], now)),
      tokensPerMinute: Math.ceil(slidingCount(state.tokens[0], state.tokens[1], now)),
      inFlight: state.inFlight,
    };
  }

  admit(tenantId: string, tokens: number, now: number): RateOutcome | undefined {
    const state = this.tenants.get(tenantId);
    if (state === undefined) return undefined;
    const minute = this.roll(state, now);
    const { requestsPerMinute: rpm, tokensPerMinute: tpm, concurrent } = state.limit;
    if (concurrent !== undefined && state.inFlight + 1 > concurrent) return { admitted: false, kind: 'concurrent', limit: concurrent, retryAfterMs: CONCURRENT_RETRY_MS };
    if (rpm !== undefined && slidingCount(state.requests[0], state.requests[1], now) + 1 > rpm) {
      return { admitted: false, kind: 'requests_per_minute', limit: rpm, retryAfterMs: waitFor(state.requests[0], state.requests[1], 1, rpm, now) };
    }
    if (tpm !== undefined && slidingCount(state.tokens[0], state.tokens[1], now) + tokens > tpm) {
      return { admitted: false, kind: 'tokens_per_minute', limit: tpm, retryAfterMs: waitFor(state.tokens[0], state.tokens[1], tokens, tpm, now) };
    }
    state.requests[1]++;
    state.tokens[1] += tokens;
    if (concurrent !== undefined) state.inFlight++;
    return { admitted: true, hold: { minute, tokens, concurrent: concurrent !== undefined } };
  }

  /** The call was refused after all (by a spend limit): it counts for nothing. */
  cancel(tenantId: string, hold: RateHold, now: number): void {
    const state = this.tenants.get(tenantId);
    if (state === undefined) return;
    this.settle(tenantId, hold, 0, now);
    const slot = slotOf(hold, state.minute);
    if (slot !== undefined) state.requests[slot] = Math.max(0, state.requests[slot] - 1);
  }

  /** The call ended: its place among the concurrent ones is given back, and its real token count replaces the estimate. */
  settle(tenantId: string, hold: RateHold, actualTokens: number, now: number): void {
    const state = this.tenants.get(tenantId);
    if (state === undefined) return;
    if (hold.concurrent) state.inFlight = Math.max(0, state.inFlight - 1);
    const slot = slotOf(hold, this.roll(state, now));
    if (slot !== undefined) state.tokens[slot] = Math.max(0, state.tokens[slot] + actualTokens - hold.tokens);
  }

  private roll(state: TenantRates, now: number): number {
    const minute = Math.floor(now / MINUTE_MS);
    if (minute !== state.minute) {
      const adjacent = minute === state.minute + 1;
      state.requests = [adjacent ? state.requests[1] : 0, 0];
      state.tokens = [adjacent ? state.tokens[1] : 0, 0];
      state.minute = minute;
    }
    return minute;
  }
}

export function validateRateLimit(value: unknown): RateLimit {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError(`setRateLimit: expected { requestsPerMinute?, tokensPerMinute?, concurrent? }, got ${describeValue(value)}`);
  }
  const out: RateLimit = {};
  for (const [key, n] of Object.entries(value as Record<string, unknown>)) {
    if (key !== 'requestsPerMinute' && key !== 'tokensPerMinute' && key !== 'concurrent') throw new ConfigError(`setRateLimit: unknown option ${JSON.stringify(key)}`);
    if (n === undefined) continue;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n <= 0) throw new ConfigError(`setRateLimit: ${key} must be a positive integer, got ${describeValue(n)}`);
    out[key] = n;
  }
  return out;
}
