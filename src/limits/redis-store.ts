import { createHash, randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import type { Redis, RedisOptions } from 'ioredis';
import { ConfigError, type LimitFrequency } from '../errors.js';
import type { AdmissionMode, LimitStore, Reservation, ReserveOutcome, SpendSeed, TenantLimit, WindowUsage } from './store.js';
import type { AgentLog } from '../log.js';
import { RESERVE_SCRIPT, SETTLE_SCRIPT } from './redis-scripts.js';
import type { SpendWindow } from './windows.js';

export type FailMode = 'open' | 'closed';

export interface RedisStoreOptions {
  redis: string | Redis;
  keyPrefix: string;
  failMode: FailMode;
  /** How long a Redis command may take before the store counts Redis as down (ms). */
  commandTimeout: number;
  /** How long the store leaves Redis alone after it failed, before trying again (ms). */
  retryAfter: number;
  /** How long a reservation outlives a process that died mid-call; longer than any request (ms). */
  leaseMs: number;
  clock: () => number;
}

/** Redis could not be reached and failMode is 'closed': the call is refused rather than let through unchecked. */
export class LimitStoreUnavailableError extends Error {
  override name = 'LimitStoreUnavailableError';
}

/** A settlement that could not reach Redis (fail-open): replayed, idempotently, when Redis is back. */
interface JournalEntry {
  reservation: Reservation;
  actualNano: number;
}

/** Window keys outlive their window a little, so that a call settling just after midnight still finds its window. */
const WINDOW_GRACE_MS = 60 * 60 * 1000;
const SETTLED_MARKER_TTL_MS = 48 * 60 * 60 * 1000;

function sha1(text: string): string {
  return createHash('sha1').update(text).digest('hex');
}

function loadIoredis(): new (url: string, options: RedisOptions) => Redis {
  try {
    const ioredis = createRequire(__filename)('ioredis') as { default?: unknown; Redis?: unknown };
    return (ioredis.Redis ?? ioredis.default ?? ioredis) as new (url: string, options: RedisOptions) => Redis;
  } catch {
    throw new ConfigError('limits.redis needs the ioredis package: npm install ioredis');
  }
}

/**
 * The fleet-wide ledger: one per tenant and window in Redis, shared by every process. Limits live in Redis too, so a
 * setLimit in one process applies in all of them on their next call. A slow or dead Redis costs a call at most one
 * command timeout, then the store leaves Redis alone for `retryAfter` (a circuit breaker) and either admits calls and
 * journals their spend for replay ('open') or refuses them ('closed') — with one warning per outage.
 */
export class RedisLimitStore implements LimitStore {
  private readonly client: Redis;
  private readonly ownsClient: boolean;
  private readonly reserveSha = sha1(RESERVE_SCRIPT);
  private readonly settleSha = sha1(SETTLE_SCRIPT);
  private unavailableUntil = 0;
  private outage = false;
  private journal: JournalEntry[] = [];
  private replaying: Promise<void> | undefined;
  /** Settlements on their way to Redis: close() waits for them. */
  private readonly settling = new Set<Promise<unknown>>();

  constructor(
    private readonly options: RedisStoreOptions,
    private readonly log: AgentLog,
  ) {
    if (typeof options.redis === 'string') {
      const Client = loadIoredis();
      this.client = new Client(options.redis, {
        commandTimeout: options.commandTimeout,
        connectTimeout: Math.max(options.commandTimeout, 1000),
        maxRetriesPerRequest: 0,
        retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
      });
      this.ownsClient = true;
      // The agent's own connection must never keep the process alive, and its errors are the breaker's business.
      this.client.on('error', () => undefined);
      this.client.on('connect', () => (this.client as unknown as { stream?: { unref?: () => void } }).stream?.unref?.());
    } else {
      this.client = options.redis;
      this.ownsClient = false;
    }
  }

  /** Keys of one tenant share the `{tenant}` hash tag, so that they live in one Redis Cluster slot. */
  key(tenantId: string, suffix: string): string {
    return `${this.options.keyPrefix}{${tenantId.replace(/[{}]/g, (c) => (c === '{' ? '%7B' : '%7D'))}}:${suffix}`;
  }

  async setLimit(tenantId: string, limit: TenantLimit, seed?: SpendSeed): Promise<void> {
    await this.command(() => this.client.hset(this.key(tenantId, 'limits'), limit.frequency, String(limit.limitNano)));
    if (seed !== undefined) {
      const key = this.key(tenantId, seed.window.key);
      await this.command(() => this.client.multi().hset(key, 'spent', String(seed.spentNano)).pexpireat(key, seed.window.resetsAt.getTime() + WINDOW_GRACE_MS).exec());
    }
  }

  async removeLimit(tenantId: string, frequency: LimitFrequency): Promise<void> {
    await this.command(() => this.client.hdel(this.key(tenantId, 'limits'), frequency));
  }

  async reserve(tenantId: string, windows: readonly SpendWindow[], amountNano: number, mode: AdmissionMode): Promise<ReserveOutcome> {
    if (this.isDown()) return this.whileDown(tenantId, windows);
    const id = randomUUID();
    const keys = [this.key(tenantId, 'limits'), ...windows.map((w) => this.key(tenantId, w.key)), this.key(tenantId, `r:${id}`)];
    const expiries = windows.map((w) => String(w.resetsAt.getTime() + WINDOW_GRACE_MS));
    const args = [String(amountNano), mode === 'strict' ? '1' : mode === 'always' ? '2' : '0', String(this.options.leaseMs), String(windows.length), ...windows.map((w) => w.frequency), ...expiries];
    let reply: Array<number | string>;
    try {
      reply = (await this.command(() => this.script(this.reserveSha, RESERVE_SCRIPT, keys, args))) as Array<number | string>;
    } catch (err) {
      if (err instanceof LimitStoreUnavailableError && this.options.failMode === 'open') return this.whileDown(tenantId, windows);
      throw err;
    }
    if (Number(reply[0]) === 0) {
      return { admitted: false, window: windows[Number(reply[1]) - 1]!, limitNano: Number(reply[2]), spentNano: Number(reply[3]), reservedNano: Number(reply[4]) };
    }
    const reserved = reply.slice(1).map((i) => windows[Number(i) - 1]!);
    if (reserved.length === 0) return { admitted: true };
    return {
      admitted: true,
      reservation: { id, tenantId, windowKeys: reserved.map((w) => w.key), windowEnds: reserved.map((w) => w.resetsAt.getTime() + WINDOW_GRACE_MS), amountNano },
    };
  }

  async settle(reservation: Reservation, actualNano: number): Promise<void> {
    if (this.isDownQuietly()) {
      this.journal.push({ reservation, actualNano });
      return;
    }
    const settled = this.command(() => this.settleInRedis({ reservation, actualNano })).catch(() => {
      this.journal.push({ reservation, actualNano });
    });
    this.settling.add(settled);
    await settled;
    this.settling.delete(settled);
  }

  async usage(tenantId: string, windows: readonly SpendWindow[]): Promise<WindowUsage[]> {
    const limits = await this.command(() => this.client.hgetall(this.key(tenantId, 'limits')));
    const report: WindowUsage[] = [];
    for (const window of windows) {
      const limit = limits[window.frequency];
      if (limit === undefined) continue;
      const [spent, reserved] = await this.command(() => this.client.hmget(this.key(tenantId, window.key), 'spent', 'reserved'));
      report.push({ frequency: window.frequency, spentNano: Number(spent ?? 0), reservedNano: Number(reserved ?? 0), limitNano: Number(limit), resetsAt: window.resetsAt });
    }
    return report;
  }

  /** Settlements waiting for Redis (fail-open). */
  get pendingReplay(): number {
    return this.journal.length;
  }

  async close(): Promise<void> {
    await Promise.all([...this.settling]);
    await this.replaying;
    if (this.ownsClient) this.client.disconnect();
  }

  private settleInRedis({ reservation, actualNano }: JournalEntry): Promise<unknown> {
    const { tenantId } = reservation;
    const keys = [this.key(tenantId, `settled:${reservation.id}`), this.key(tenantId, `r:${reservation.id}`), ...reservation.windowKeys.map((k) => this.key(tenantId, k))];
    // Amounts go to HINCRBY as the strings JS makes of them: a Lua number can print as -0 or 1e+15, which Redis refuses.
    const args = [String(-reservation.amountNano), String(actualNano), String(SETTLED_MARKER_TTL_MS), String(this.options.clock()), ...(reservation.windowEnds ?? []).map(String)];
    return this.script(this.settleSha, SETTLE_SCRIPT, keys, args);
  }

  /** Fail-open admits with a local reservation of nothing in Redis; its spend is journalled at settle time. */
  private whileDown(tenantId: string, windows: readonly SpendWindow[]): ReserveOutcome {
    if (this.options.failMode === 'closed') throw new LimitStoreUnavailableError('the spend-limit store (Redis) is unavailable; failMode is closed');
    return {
      admitted: true,
      reservation: { id: randomUUID(), tenantId, windowKeys: windows.map((w) => w.key), windowEnds: windows.map((w) => w.resetsAt.getTime() + WINDOW_GRACE_MS), amountNano: 0 },
    };
  }

  private isDownQuietly(): boolean {
    return this.options.clock() < this.unavailableUntil;
  }

  private isDown(): boolean {
    if (this.options.clock() >= this.unavailableUntil) return false;
    if (this.options.failMode === 'closed') throw new LimitStoreUnavailableError('the spend-limit store (Redis) is unavailable; failMode is closed');
    return true;
  }

  private async command<T>(run: () => Promise<T>): Promise<T> {
    try {
      const result = await run();
      if (this.outage) this.recovered();
      return result;
    } catch (err) {
      this.unavailableUntil = this.options.clock() + this.options.retryAfter;
      if (!this.outage) {
        this.outage = true;
        this.log.warn(
          `the spend-limit store (Redis) is unavailable (${(err as Error).message}); ` +
            (this.options.failMode === 'open' ? 'admitting calls and keeping their spend for replay' : 'refusing limited calls') +
            ` until it answers again`,
        );
      }
      throw new LimitStoreUnavailableError(`the spend-limit store (Redis) is unavailable: ${(err as Error).message}`);
    }
  }

  private recovered(): void {
    this.outage = false;
    this.log.warn(`the spend-limit store (Redis) answers again; replaying ${this.journal.length} settlement(s)`);
    this.replaying ??= this.replay().finally(() => (this.replaying = undefined));
  }

  private async replay(): Promise<void> {
    while (this.journal.length > 0) {
      const entry = this.journal[0]!;
      try {
        await this.settleInRedis(entry);
      } catch {
        return;
      }
      this.journal.shift();
    }
  }

  private async script(sha: string, source: string, keys: string[], args: string[]): Promise<unknown> {
    try {
      return await this.client.evalsha(sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!String((err as Error).message).includes('NOSCRIPT')) throw err;
      return this.client.eval(source, keys.length, ...keys, ...args);
    }
  }
}
