import { ConfigError, type LimitFrequency } from '../errors.js';
import { toNano, toUsd, type AdmissionMode, type LimitStore, type Reservation, type ReserveOutcome, type TenantLimit, type WindowUsage } from './store.js';
import type { AgentLog } from '../log.js';
import { LimitStoreUnavailableError, type FailMode } from './redis-store.js';
import { validateFrequency, type SpendWindow } from './windows.js';
import { sendRequest } from '../../transport/http-request.js';

export interface BackendStoreOptions {
  url: URL;
  apiKey: string | undefined;
  /** How long an answer from the backend is trusted (ms). */
  cacheTtl: number;
  failMode: FailMode;
  timeoutMs: number;
  clock: () => number;
}

/** One limit as the backend answers it, plus what this process has seen since. */
interface CachedLimit {
  frequency: LimitFrequency;
  limitNano: number;
  spentNano: number;
  resetsAt: Date;
}

interface CachedTenant {
  fetchedAt: number;
  limits: CachedLimit[];
  /** Spend settled here since the answer: the local trip-wire that stops a burst inside the cache window. */
  localSpentNano: number;
  localReservedNano: number;
}

/**
 * The app's own backend as the limit store (the classic design): `GET <url>/limits/<tenant>` answers
 * `{ limit_usd, spent_usd, frequency, resets_at }` (or an array of them; 404 = no limit). An answer is cached for
 * `cacheTtl`, and the spend this process settles meanwhile is added to it, so that a burst inside the cache window is
 * still stopped. Only as exact as the backend's spend figure is fresh: several processes each see their own local
 * spend only (use the Redis store for a fleet-exact ledger).
 */
export class BackendLimitStore implements LimitStore {
  private readonly cache = new Map<string, CachedTenant>();
  /** One question to the backend per tenant at a time: a burst waits for the same answer. */
  private readonly asking = new Map<string, Promise<CachedTenant>>();
  private warned = false;
  private nextId = 0;

  constructor(
    private readonly options: BackendStoreOptions,
    private readonly log: AgentLog,
  ) {}

  /** One JSON request to the backend: its status and parsed body (undefined when empty or not JSON). */
  private async call(method: string, url: URL, body?: unknown): Promise<{ status: number; body: unknown }> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (this.options.apiKey !== undefined) headers.authorization = `Bearer ${this.options.apiKey}`;
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const answer = await sendRequest(url, { method, headers, timeoutMs: this.options.timeoutMs, ...(payload === undefined ? {} : { body: payload }) });
    let parsed: unknown;
    try {
      parsed = answer.text === '' ? undefined : JSON.parse(answer.text);
    } catch {
      parsed = undefined;
    }
    return { status: answer.status, body: parsed };
  }

  private limitUrl(tenantId: string, query = ''): URL {
    const base = this.options.url.href.replace(/\/+$/, '');
    return new URL(`${base}/limits/${encodeURIComponent(tenantId)}${query}`);
  }

  async setLimit(tenantId: string, limit: TenantLimit): Promise<void> {
    this.cache.delete(tenantId);
    const body = { limit_usd: toUsd(limit.limitNano), frequency: limit.frequency };
    const res = await this.call('PUT', this.limitUrl(tenantId), body);
    if (res.status < 200 || res.status >= 300) throw new LimitStoreUnavailableError(`the limits backend answered HTTP ${res.status} to setLimit`);
  }

  async removeLimit(tenantId: string, frequency: LimitFrequency): Promise<void> {
    this.cache.delete(tenantId);
    const res = await this.call('DELETE', this.limitUrl(tenantId, `?frequency=${frequency}`));
    if ((res.status < 200 || res.status >= 300) && res.status !== 404) {
      throw new LimitStoreUnavailableError(`the limits backend answered HTTP ${res.status} to removeLimit`);
    }
  }

  async reserve(tenantId: string, _windows: readonly SpendWindow[], amountNano: number, mode: AdmissionMode): Promise<ReserveOutcome> {
    let tenant: CachedTenant | undefined;
    try {
      tenant = await this.tenant(tenantId);
    } catch (err) {
      if (this.options.failMode === 'closed') throw err;
      return { admitted: true };
    }
    if (tenant.limits.length === 0) return { admitted: true };
    const used = tenant.localSpentNano + tenant.localReservedNano;
    for (const limit of tenant.limits) {
      const total = limit.spentNano + used;
      const fits = mode === 'always' || (mode === 'strict' ? total + amountNano <= limit.limitNano : total < limit.limitNano);
      if (!fits) {
        return {
          admitted: false,
          window: { frequency: limit.frequency, key: limit.frequency, resetsAt: limit.resetsAt },
          limitNano: limit.limitNano,
          spentNano: limit.spentNano + tenant.localSpentNano,
          reservedNano: tenant.localReservedNano,
        };
      }
    }
    tenant.localReservedNano += amountNano;
    return { admitted: true, reservation: { id: `b${++this.nextId}`, tenantId, windowKeys: [], amountNano } };
  }

  settle(reservation: Reservation, actualNano: number): void {
    const tenant = this.cache.get(reservation.tenantId);
    if (tenant === undefined) return;
    tenant.localReservedNano = Math.max(0, tenant.localReservedNano - reservation.amountNano);
    tenant.localSpentNano += actualNano;
  }

  async usage(tenantId: string): Promise<WindowUsage[]> {
    const tenant = await this.tenant(tenantId);
    return tenant.limits.map((l) => ({
      frequency: l.frequency,
      spentNano: l.spentNano + tenant.localSpentNano,
      reservedNano: tenant.localReservedNano,
      limitNano: l.limitNano,
      resetsAt: l.resetsAt,
    }));
  }

  /** The cached answer, or a fresh one once it is older than cacheTtl (the local tally then starts again). */
  private tenant(tenantId: string): Promise<CachedTenant> {
    const cached = this.cache.get(tenantId);
    if (cached !== undefined && this.options.clock() - cached.fetchedAt < this.options.cacheTtl) return Promise.resolve(cached);
    let asking = this.asking.get(tenantId);
    if (asking === undefined) {
      asking = this.ask(tenantId, cached).finally(() => this.asking.delete(tenantId));
      this.asking.set(tenantId, asking);
    }
    return asking;
  }

  private async ask(tenantId: string, cached: CachedTenant | undefined): Promise<CachedTenant> {
    const now = this.options.clock();
    let limits: CachedLimit[];
    try {
      limits = await this.fetchLimits(tenantId);
    } catch (err) {
      if (!this.warned) {
        this.warned = true;
        this.log.warn(`the limits backend is unavailable (${(err as Error).message}); ${this.options.failMode === 'open' ? 'admitting calls' : 'refusing limited calls'} until it answers`);
      }
      if (cached !== undefined && this.options.failMode === 'open') return cached;
      throw err instanceof LimitStoreUnavailableError ? err : new LimitStoreUnavailableError(`the limits backend is unavailable: ${(err as Error).message}`);
    }
    this.warned = false;
    const fresh: CachedTenant = { fetchedAt: now, limits, localSpentNano: 0, localReservedNano: cached?.localReservedNano ?? 0 };
    this.cache.set(tenantId, fresh);
    return fresh;
  }

  private async fetchLimits(tenantId: string): Promise<CachedLimit[]> {
    const res = await this.call('GET', this.limitUrl(tenantId));
    if (res.status === 404) return [];
    if (res.status < 200 || res.status >= 300) throw new LimitStoreUnavailableError(`the limits backend answered HTTP ${res.status}`);
    const answers = Array.isArray(res.body) ? res.body : [res.body];
    return answers.map((answer) => {
      const a = answer as { limit_usd?: unknown; spent_usd?: unknown; frequency?: unknown; resets_at?: unknown };
      if (typeof a.limit_usd !== 'number' || typeof a.spent_usd !== 'number' || typeof a.resets_at !== 'string') {
        throw new ConfigError(`the limits backend answered an unexpected shape for ${JSON.stringify(tenantId)}`);
      }
      return { frequency: validateFrequency(a.frequency), limitNano: toNano(a.limit_usd), spentNano: toNano(a.spent_usd), resetsAt: new Date(a.resets_at) };
    });
  }
}
