import type { LimitFrequency } from '../../errors.js';
import { sendRequest, type HttpResult } from '../../../transport/http-request.js';
import { isRetryableStatus } from '../../../transport/retry.js';
import { toNano } from '../store.js';
import { FREQUENCIES } from '../windows.js';
import type { CircuitBreaker } from '../circuit-breaker.js';
import { LimitStoreUnavailableError } from '../store.js';
import { tenantPath } from './tenant-path.js';

export interface BackendClientOptions {
  url: URL;
  apiKey: string | undefined;
  /** The deadline of each request (ms). */
  timeoutMs: number;
}

/** One limit as the backend answers it. */
export interface LimitAnswer {
  frequency: LimitFrequency;
  limitNano: number;
  spentNano: number;
  resetsAt: Date;
}

export interface LimitBody {
  limit_usd: number;
  frequency: LimitFrequency;
  /** With a seed: the window's settled spend becomes this. */
  spent_usd?: number;
  /** With a seed: the agent's key of the window the seed is for (`m:2026-11`). */
  window?: string;
}

export interface SpendBody {
  /** Counted once by the backend, however often it is sent. */
  spend_id: string;
  spent_usd: number;
  /** The agent's keys of the windows the spend belongs to (`d:2026-11-23`, `m:2026-11`). */
  windows: readonly string[];
}

/**
 * The limits protocol, request by request, through the circuit breaker. A request counts as the backend failing when
 * no complete answer comes within the deadline or the answer is 408, 429 or 5xx; the limits question also when any
 * other answer than 2xx or 404 comes, since then the store knows nothing. Other 4xx statuses are returned.
 */
export class BackendClient {
  constructor(
    private readonly options: BackendClientOptions,
    private readonly breaker: CircuitBreaker,
  ) {}

  /** The tenant's limits; none when the backend answers 404. */
  getLimits(tenantId: string): Promise<LimitAnswer[]> {
    const path = tenantPath(this.options.url, tenantId);
    return this.guarded(async () => {
      const answer = await this.send('GET', path);
      if (answer.status === 404) return [];
      if (answer.status < 200 || answer.status >= 300) throw new Error(`HTTP ${answer.status}`);
      return readLimits(answer.text);
    });
  }

  putLimit(tenantId: string, body: LimitBody): Promise<number> {
    return this.statusOf('PUT', tenantPath(this.options.url, tenantId), body);
  }

  deleteLimit(tenantId: string, frequency: LimitFrequency): Promise<number> {
    return this.statusOf('DELETE', tenantPath(this.options.url, tenantId, `?frequency=${frequency}`));
  }

  /** Once `detach` fires, the post no longer keeps the process alive (it still ends by its deadline). */
  postSpend(tenantId: string, body: SpendBody, detach?: AbortSignal): Promise<number> {
    return this.statusOf('POST', tenantPath(this.options.url, tenantId, '/spend'), body, detach);
  }

  /** Runs a request unless the backend is being left alone; anything the request throws counts as the backend failing. */
  private async guarded<T>(request: () => Promise<T>): Promise<T> {
    if (!this.breaker.allows()) throw new LimitStoreUnavailableError('the limits backend is unavailable; it is left alone until its retry time');
    try {
      const result = await request();
      this.breaker.answered();
      return result;
    } catch (err) {
      this.breaker.failed((err as Error).message);
      throw new LimitStoreUnavailableError(`the limits backend is unavailable: ${(err as Error).message}`);
    }
  }

  private statusOf(method: string, path: string, body?: unknown, detach?: AbortSignal): Promise<number> {
    return this.guarded(async () => {
      const { status } = await this.send(method, path, body, detach);
      if (isRetryableStatus(status)) throw new Error(`HTTP ${status}`);
      return status;
    });
  }

  private send(method: string, path: string, body?: unknown, detach?: AbortSignal): Promise<HttpResult> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.options.apiKey !== undefined) headers.authorization = `Bearer ${this.options.apiKey}`;
    return sendRequest(this.options.url, {
      method,
      path,
      headers,
      timeoutMs: this.options.timeoutMs,
      detach,
      ...(body === undefined ? {} : { body: Buffer.from(JSON.stringify(body)) }),
    });
  }
}

/** `{ limit_usd, spent_usd, frequency, resets_at }` or an array of them. */
function readLimits(text: string): LimitAnswer[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error('the answer to a limits question is not JSON');
  }
  return (Array.isArray(parsed) ? parsed : [parsed]).map((item) => {
    const a = (item ?? {}) as { limit_usd?: unknown; spent_usd?: unknown; frequency?: unknown; resets_at?: unknown };
    const resetsAt = new Date(typeof a.resets_at === 'string' ? a.resets_at : Number.NaN);
    if (!isAmount(a.limit_usd) || !isAmount(a.spent_usd) || !FREQUENCIES.includes(a.frequency as LimitFrequency) || Number.isNaN(resetsAt.getTime())) {
      throw new Error('the answer to a limits question has an unexpected shape');
    }
    return { frequency: a.frequency as LimitFrequency, limitNano: toNano(a.limit_usd), spentNano: toNano(a.spent_usd), resetsAt };
  });
}

function isAmount(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}
