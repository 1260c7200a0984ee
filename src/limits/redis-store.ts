import { randomUUID } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { ModelNotAllowedError, RateLimitedError, type LimitFrequency } from '../errors.js';
import { MINUTE_MS, slidingCount, type RateHold, type RateLimit, type RateUsage } from './controls/rate-limits.js';
import type { TenantPolicy } from './controls/model-policy.js';
import type { AgentLog } from '../log.js';
import { LimitStoreFaultError, LimitStoreUnavailableError, type Enforcement, type Booking, type FailMode, type LimitStore, type Reservation, type ReserveOutcome, type SpendSeed, type TenantLimit, type TenantPage, type WindowUsage } from './store.js';
import { FREQUENCIES, scopedWindows, type SpendWindow } from './windows.js';
import { budgetName, type BudgetedCall, type BudgetScope } from './controls/budget-scope.js';
import { ScopeCache, type KnownScopes } from './redis/scope-cache.js';
import { checkFrequency, checkMode, checkNano, checkTenant, checkWindows } from './redis/arguments.js';
import { CircuitBreaker } from './circuit-breaker.js';
import { RedisConnection } from './redis/connection.js';
import type { AppRedisClient } from './redis/app-redis-client.js';
import { RedisOutage } from './redis/errors.js';
import { SettlementJournal, type JournalEntry } from './redis/journal.js';
import { LedgerKeys } from './redis/keys.js';
import { LocalLedger } from './redis/local-ledger.js';
import { parseReserveReply, parseSettleReply, parseStoredNano, type ReserveReply } from './redis/replies.js';
import { RATE_SETTLE, REMOVE_LIMIT, REPLAY, RESERVE, SET_LIMIT, SETTLE } from './redis/scripts.js';


export const DEFAULT_CONNECT_TIMEOUT_MS = 2000;

export interface RedisStoreOptions {
  /** A redis:// url (the store opens its own connection), or the app's ioredis client (a single Redis or a Cluster). */
  redis: string | AppRedisClient;
  keyPrefix: string;
  failMode: FailMode;
  /** How long Redis may answer nothing while a command waits, before the store counts Redis as down (ms). */
  commandTimeout: number;
  /** How long a command may wait for the connection to become ready (ms); default DEFAULT_CONNECT_TIMEOUT_MS. */
  connectTimeout?: number;
  /** How long the store leaves Redis alone after it failed, before trying again (ms). */
  retryAfter: number;
  /** How long a reservation outlives a process that died mid-call; longer than any request (ms). */
  leaseMs: number;
  /** The Meter's defaultLimit: the limits of a tenant that has none of its own. */
  defaults?: readonly TenantLimit[];
  clock: () => number;
}

/** Where a reservation handed out by this store stands in Redis: held there, not there, or unknown (no reply came). */
type Holding = 'held' | 'none' | 'uncertain';

/** Window keys outlive their window a little, so that a call settling just after midnight still finds its window. */
const WINDOW_GRACE_MS = 60 * 60 * 1000;
/**
 * How long a booking trusts this process's list of a tenant's scoped budgets (a reservation checks it every time): a
 * budget set in another process counts this process's bookings of the tenant at most this much later.
 */
const SCOPES_TTL_MS = 60_000;
/** How many times one admission reads a tenant's scoped budgets again when they changed meanwhile. */
const SCOPE_READS = 3;
/** How long Redis remembers that a reservation was settled, or a journal aggregate written. */
const MARKER_TTL_MS = 48 * 60 * 60 * 1000;

/** However busy Redis is answering other commands, no one command waits longer than this. */
const commandDeadline = (commandTimeout: number): number => Math.max(commandTimeout * 20, 5000);

const windowEnd = (window: SpendWindow): number => window.resetsAt.getTime() + WINDOW_GRACE_MS;

/**
 * The fleet-wide ledger: one per tenant and window in Redis, shared by every process. Limits live in Redis too, so a
 * setLimit in one process applies in all of them on their next call.
 *
 * When Redis stops answering (nothing came back for `commandTimeout` while a command waited; time the app kept the
 * event loop busy does not count), a circuit breaker leaves it alone for `retryAfter`, with one warning per outage. Meanwhile 'open' keeps
 * enforcing limits on this process's own spend, from the last state Redis reported; 'closed' refuses limited calls.
 * In both modes settlements go to a journal, written to Redis as soon as it answers again. An error reply is not an
 * outage: it rejects with a LimitStoreFaultError and leaves the breaker alone.
 */
export class RedisLimitStore implements LimitStore {
  private readonly keys: LedgerKeys;
  private readonly redis: RedisConnection;
  private readonly breaker: CircuitBreaker;
  private readonly local = new LocalLedger();
  private readonly scopes = new ScopeCache();
  private readonly journal = new SettlementJournal();
  /** The reservations this store handed out that are not settled yet: settling one twice finds it gone. */
  private readonly unsettled = new Map<string, Holding>();
  private readonly settling = new Set<Promise<void>>();
  private replaying: Promise<void> | undefined;
  readonly writesLater = true;
  onSpendWritten: ((tenantId: string) => void) | undefined;

  constructor(
    private readonly options: RedisStoreOptions,
    private readonly log: AgentLog,
  ) {
    this.keys = new LedgerKeys(options.keyPrefix);
    this.redis = new RedisConnection(
      options.redis,
      {
        connectTimeout: options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT_MS,
        commandTimeout: options.commandTimeout,
        commandDeadline: commandDeadline(options.commandTimeout),
      },
      () => this.answered(),
    );
    // A monotonic clock, not the Meter's (which tests may freeze): Redis is probed on a timer of its own.
    this.breaker = new CircuitBreaker(options.retryAfter, () => performance.now(), {
      opened: (reason) =>
        this.log.warn(
          `the spend-limit store (Redis) is unavailable (${reason}); ` +
            (options.failMode === 'open' ? "enforcing limits on this process's own spend from the last state seen" : 'refusing limited calls') +
            '; settlements are journalled until it is back',
        ),
      closed: () => this.log.warn(`the spend-limit store (Redis) answers again${this.journal.size > 0 ? `; writing ${this.journal.size} journalled settlement(s)` : ''}`),
      probeDue: () => void this.probe(),
    });
  }

  async setLimit(tenantId: string, limit: TenantLimit, seed?: SpendSeed): Promise<void> {
    checkTenant(tenantId);
    checkFrequency(limit.frequency);
    checkNano(limit.limitNano, 'limitNano');
    const budget = budgetName(limit.frequency, limit.scope);
    const keys = [this.keys.limits(tenantId)];
    const args = [budget, String(limit.limitNano), limit.mode ?? 'hard', (limit.thresholds ?? []).join(',')];
    if (seed !== undefined) {
      checkWindows([seed.window]);
      checkNano(seed.spentNano, 'the seeded spentNano');
      if (seed.window.frequency !== limit.frequency) throw new LimitStoreFaultError(`a ${seed.window.frequency} seed cannot come with a ${limit.frequency} limit`);
      keys.push(this.keys.window(tenantId, seed.window.key));
      args.push(String(seed.spentNano), String(windowEnd(seed.window)));
    }
    await this.ask(() => this.redis.script(SET_LIMIT, keys, args));
    this.local.observeLimit(tenantId, budget, limit.mode === 'soft' ? null : limit.limitNano);
    if (limit.scope !== undefined) this.scopes.forget(tenantId);
  }

  async removeLimit(tenantId: string, frequency: LimitFrequency, scope?: BudgetScope): Promise<void> {
    checkTenant(tenantId);
    checkFrequency(frequency);
    const budget = budgetName(frequency, scope);
    await this.ask(() => this.redis.script(REMOVE_LIMIT, [this.keys.limits(tenantId)], [budget]));
    this.local.observeLimit(tenantId, budget, null);
    if (scope !== undefined) this.scopes.forget(tenantId);
  }

  async setPolicy(tenantId: string, policy: TenantPolicy): Promise<void> {
    checkTenant(tenantId);
    const key = this.keys.limits(tenantId);
    await this.ask(() => this.redis.run((client) => (policy.models === undefined ? client.hdel(key, 'models') : client.hset(key, 'models', policy.models.join('\n')))));
  }

  async policy(tenantId: string): Promise<TenantPolicy> {
    checkTenant(tenantId);
    const models = await this.ask(() => this.redis.run((client) => client.hget(this.keys.limits(tenantId), 'models')));
    return models === null ? {} : { models: models.split('\n') };
  }

  async setRateLimit(tenantId: string, limit: RateLimit): Promise<void> {
    checkTenant(tenantId);
    const key = this.keys.limits(tenantId);
    const fields: Array<[keyof RateLimit, string]> = [['requestsPerMinute', 'rate:rpm'], ['tokensPerMinute', 'rate:tpm'], ['concurrent', 'rate:concurrent']];
    await this.ask(() =>
      this.redis.run((client) => {
        const batch = client.multi();
        for (const [option, field] of fields) {
          const value = limit[option];
          if (value === undefined) batch.hdel(key, field);
          else batch.hset(key, field, String(value));
        }
        return batch.exec();
      }),
    );
  }

  /** Read as the reserve script counts, by this process's clock. */
  async rateUsage(tenantId: string, now: number): Promise<RateUsage> {
    checkTenant(tenantId);
    const [counts, inFlight] = await this.ask(() =>
      this.redis.run((client) => Promise.all([client.hmget(this.keys.rates(tenantId), 'm', 'r0', 'r1', 't0', 't1'), client.zcount(this.keys.inFlight(tenantId), `(${now}`, '+inf')])),
    );
    const [at, r0, r1, t0, t1] = counts.map(parseStoredNano) as [number, number, number, number, number];
    const minute = Math.floor(now / MINUTE_MS);
    const [requests, tokens] = at === minute ? [[r0, r1], [t0, t1]] : at === minute - 1 ? [[r1, 0], [t1, 0]] : [[0, 0], [0, 0]];
    return {
      requestsPerMinute: Math.ceil(slidingCount(requests[0]!, requests[1]!, now)),
      tokensPerMinute: Math.ceil(slidingCount(tokens[0]!, tokens[1]!, now)),
      inFlight,
    };
  }

  async rateLimit(tenantId: string): Promise<RateLimit> {
    checkTenant(tenantId);
    const [rpm, tpm, concurrent] = await this.ask(() => this.redis.run((client) => client.hmget(this.keys.limits(tenantId), 'rate:rpm', 'rate:tpm', 'rate:concurrent')));
    const out: RateLimit = {};
    if (rpm !== null && rpm !== undefined) out.requestsPerMinute = parseStoredNano(rpm);
    if (tpm !== null && tpm !== undefined) out.tokensPerMinute = parseStoredNano(tpm);
    if (concurrent !== null && concurrent !== undefined) out.concurrent = parseStoredNano(concurrent);
    return out;
  }

  async reserve(tenantId: string, periods: readonly SpendWindow[], amountNano: number, mode: Enforcement, call: BudgetedCall = {}, tokens = 0): Promise<ReserveOutcome> {
    checkTenant(tenantId);
    checkWindows(periods);
    checkNano(amountNano, 'amountNano');
    checkMode(mode);
    checkNano(tokens, 'tokens');
    for (let read = 1; ; read++) {
      const known = this.scopes.of(tenantId);
      const windows = [...periods, ...scopedWindows(known.budgets, periods, call)];
      const outcome = await this.reserveOnce(tenantId, windows, known, amountNano, mode, call.model, tokens);
      if (outcome !== 'stale scopes') return outcome;
      if (read === SCOPE_READS) throw new LimitStoreFaultError(`the scoped budgets of tenant ${JSON.stringify(tenantId)} changed ${SCOPE_READS} times during one admission`);
      try {
        await this.readScopes(tenantId);
      } catch (err) {
        if (err instanceof RedisOutage) return this.reserveLocally(randomUUID(), tenantId, windows, amountNano, mode, false);
        throw err;
      }
    }
  }

  /** One reserve script, with the windows of the scoped budgets this process knows of (`known`). */
  private async reserveOnce(
    tenantId: string,
    windows: readonly SpendWindow[],
    known: KnownScopes,
    amountNano: number,
    mode: Enforcement,
    model: string | undefined,
    tokens: number,
  ): Promise<ReserveOutcome | 'stale scopes'> {
    const id = randomUUID();
    const keys = [
      this.keys.limits(tenantId),
      this.keys.reservation(tenantId, id),
      this.keys.settled(tenantId, id),
      this.keys.rates(tenantId),
      this.keys.inFlight(tenantId),
      ...windows.map((w) => this.keys.window(tenantId, w.key)),
    ];
    const args = [
      String(amountNano),
      mode,
      String(this.options.leaseMs),
      model ?? '',
      String(tokens),
      known.version,
      ...windows.flatMap((w) => [budgetName(w.frequency, w.scope), w.key, String(windowEnd(w)), w.scope === undefined ? this.defaultLimit(w.frequency) : '-']),
    ];
    let reply: ReserveReply;
    try {
      reply = parseReserveReply(await this.send(() => this.redis.script(RESERVE, keys, args, (late) => this.heardLateReserve(id, tenantId, windows, late))), windows.length);
    } catch (err) {
      if (err instanceof RedisOutage) return this.reserveLocally(id, tenantId, windows, amountNano, mode, err.sent);
      throw err;
    }
    if (reply.status === 'stale scopes') return reply.status;
    this.scopes.confirmed(tenantId, known, this.options.clock());
    this.observe(tenantId, windows, reply);
    if (reply.status === 'model not allowed') {
      const allowed = await this.policy(tenantId).then((p) => p.models ?? [], () => []);
      throw new ModelNotAllowedError(tenantId, model, allowed);
    }
    if (reply.status === 'rate limited') {
      const { kind, limit, retryAfterMs } = reply.rateLimited!;
      throw new RateLimitedError(tenantId, kind, limit, retryAfterMs);
    }
    if (reply.status === 'refused') {
      const { limitNano, spentNano, reservedNano } = reply.windows[reply.refusedIndex]!;
      return { admitted: false, window: windows[reply.refusedIndex]!, limitNano: limitNano!, spentNano, reservedNano };
    }
    if (reply.status === 'already settled') throw new LimitStoreFaultError('Redis holds a settlement for a reservation that was just made');
    const held = windows.filter((_, i) => reply.windows[i]!.limitNano !== undefined);
    const rate = reply.countedInRates || reply.holdsConcurrency ? { minute: reply.minute, tokens: reply.countedInRates ? tokens : 0, concurrent: reply.holdsConcurrency } : undefined;
    if (held.length === 0 && rate === undefined) return { admitted: true };
    const reservation = this.handOut(id, tenantId, held, amountNano, 'held');
    reservation.rate = rate;
    return { admitted: true, reservation };
  }

  /** Never rejects: a settlement that cannot be written now goes to the journal. */
  settle(reservation: Reservation, actualNano: number, tokens = 0): Promise<void> {
    const holding = this.unsettled.get(reservation.id);
    if (holding === undefined) return Promise.resolve();
    this.unsettled.delete(reservation.id);
    if (reservation.rate !== undefined) this.settleRates(reservation, reservation.rate, tokens);
    if (reservation.windowKeys.length === 0) return Promise.resolve();
    const settling = this.settleNow(reservation, holding, this.amountToSettle(reservation, actualNano)).catch((err: unknown) =>
      this.log.warn(`a settlement could not be kept: ${err instanceof Error ? err.message : String(err)}`),
    );
    this.settling.add(settling);
    void settling.then(() => this.settling.delete(settling));
    return settling;
  }

  /**
   * Never throws or rejects. Goes to Redis the way journalled settlements do: summed per tenant and window (bookings of
   * the same moment travel together), each sum written once under its own id by the REPLAY script, retried while Redis
   * is away. Meanwhile this process's view of a tenant it already knows counts the spend.
   */
  book(tenantId: string, periods: readonly SpendWindow[], booking: Booking): void {
    const { spentNano, revenueNano } = booking;
    try {
      checkTenant(tenantId);
      checkWindows(periods);
      checkNano(spentNano, 'spentNano');
      checkNano(revenueNano, 'revenueNano');
    } catch (err) {
      this.log.warnOnce('redis-book-arguments', `a booking was dropped: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    const call = booking.call ?? {};
    if (spentNano === 0 || booking.call === undefined || this.scopes.fresh(tenantId, this.options.clock(), SCOPES_TTL_MS)) {
      this.journalBooking(tenantId, [...periods, ...scopedWindows(this.scopes.of(tenantId).budgets, periods, call)], booking);
      return;
    }
    // The tenant's scoped budgets are read first (off the call's path), so that the spend reaches those that apply.
    const booked = this.readScopes(tenantId)
      .catch(() => this.log.warnOnce('redis-book-scopes', "the spend-limit store (Redis) could not be asked for a tenant's feature and model budgets: its spend was booked to those this process knew of"))
      .then(() => this.journalBooking(tenantId, [...periods, ...scopedWindows(this.scopes.of(tenantId).budgets, periods, call)], booking))
      .catch((err: unknown) => this.log.warn(`a booking could not be kept: ${err instanceof Error ? err.message : String(err)}`));
    this.settling.add(booked);
    void booked.then(() => this.settling.delete(booked));
  }

  private journalBooking(tenantId: string, windows: readonly SpendWindow[], booking: Booking): void {
    const { spentNano, revenueNano, settledWindowKeys, onceId } = booking;
    const spentKeys: string[] = [];
    for (const window of windows) {
      const spent = settledWindowKeys?.includes(window.key) === true ? 0 : spentNano;
      if (spent === 0 && revenueNano === 0) continue;
      if (spent > 0) spentKeys.push(window.key);
      this.journal.addToWindow(tenantId, window.key, windowEnd(window), spent, 0, revenueNano, onceId);
    }
    if (spentKeys.length > 0) this.local.settle(tenantId, spentKeys, 0, spentNano);
    // While the breaker is open, the journal is written once Redis answers again.
    if (!this.breaker.isOpen) this.replaySoon();
  }

  async usage(tenantId: string, windows: readonly SpendWindow[]): Promise<WindowUsage[]> {
    checkTenant(tenantId);
    checkWindows(windows);
    // One round trip: the commands travel together on the connection (a tenant's keys share a Cluster slot).
    const [limits, ...counters] = await this.ask(() =>
      this.redis.run((client) =>
        Promise.all([client.hgetall(this.keys.limits(tenantId)), ...windows.map((w) => client.hmget(this.keys.window(tenantId, w.key), 'spent', 'reserved', 'revenue'))]),
      ),
    );
    const fields = limits as Record<string, string>;
    const own = FREQUENCIES.some((f) => fields[f] !== undefined || fields[`soft:${f}`] !== undefined);
    const known = this.scopes.remember(tenantId, fields['scopes:v'], fields.scopes, this.options.clock());
    const scoped = scopedWindows(known.budgets, windows, undefined);
    const scopedCounters =
      scoped.length === 0 ? [] : await this.ask(() => this.redis.run((client) => Promise.all(scoped.map((w) => client.hmget(this.keys.window(tenantId, w.key), 'spent', 'reserved', 'revenue')))));
    const usageOf = (window: SpendWindow, [spent, reserved, revenue]: Array<string | null>, limit: Partial<WindowUsage>): WindowUsage => ({
      frequency: window.frequency,
      spentNano: parseStoredNano(spent),
      reservedNano: parseStoredNano(reserved),
      revenueNano: parseStoredNano(revenue),
      ...limit,
      ...(window.scope !== undefined && { scope: window.scope }),
      windowKey: window.key,
      resetsAt: window.resetsAt,
    });
    return [
      ...windows.map((w, i) => usageOf(w, counters[i] as Array<string | null>, own ? storedLimit(fields, w.frequency) : defaultOf(this.options.defaults, w.frequency))),
      ...scoped.map((w, i) => usageOf(w, scopedCounters[i]!, storedLimit(fields, budgetName(w.frequency, w.scope)))),
    ];
  }

  /** Reads the tenant's list of scoped budgets (and its version) into this process's cache. */
  private async readScopes(tenantId: string): Promise<KnownScopes> {
    const [list, version] = await this.send(() => this.redis.run((client) => client.hmget(this.keys.limits(tenantId), 'scopes', 'scopes:v')));
    return this.scopes.remember(tenantId, version, list, this.options.clock());
  }

  /**
   * SCANs for the window's key of every tenant, on each master of a Cluster in turn; the cursor is `node:cursor`. A page
   * holds what one SCAN step found (about `limit`), with each tenant's spend and revenue.
   */
  async tenantsWithUsage(window: SpendWindow, limit: number, cursor: string | undefined): Promise<TenantPage> {
    checkWindows([window]);
    const [node, scanCursor] = cursor === undefined ? [0, '0'] : [Number(cursor.split(':')[0]), cursor.split(':')[1] ?? '0'];
    if (!Number.isSafeInteger(node) || node < 0 || !/^\d+$/.test(scanCursor)) throw new LimitStoreFaultError(`not a cursor of listTenants: ${JSON.stringify(cursor)}`);
    return this.ask(() =>
      this.redis.run(async (client) => {
        const nodes: Array<Pick<Redis, 'scan' | 'hmget'>> = 'nodes' in client && typeof client.nodes === 'function' ? (client as Cluster).nodes('master') : [client as Redis];
        if (node >= nodes.length) return { tenants: [] };
        const [next, keys] = await nodes[node]!.scan(scanCursor, 'MATCH', this.keys.everyTenant(window.key), 'COUNT', Math.min(Math.max(limit, 10), 1000));
        const counters = await Promise.all(keys.map((key) => nodes[node]!.hmget(key, 'spent', 'revenue')));
        const tenants: TenantPage['tenants'] = [];
        keys.forEach((key, i) => {
          const tenantId = this.keys.tenantOf(key);
          const [spent, revenue] = counters[i]!;
          const entry = { tenantId: tenantId!, spentNano: parseStoredNano(spent), revenueNano: parseStoredNano(revenue) };
          if (tenantId !== undefined && (entry.spentNano > 0 || entry.revenueNano > 0)) tenants.push(entry);
        });
        const more = next !== '0' ? `${node}:${next}` : node + 1 < nodes.length ? `${node + 1}:0` : undefined;
        return { tenants, cursor: more };
      }),
    );
  }

  /** SET NX on a key of the alert, expiring with its window: whichever process gets it first sends the alert. */
  async claimAlert(tenantId: string, window: SpendWindow, threshold: number): Promise<boolean> {
    try {
      checkTenant(tenantId);
      checkWindows([window]);
      const ttl = String(Math.max(1, windowEnd(window) - this.options.clock()));
      const reply = await this.send(() => this.redis.run((client) => client.set(this.keys.alert(tenantId, window.key, threshold), '1', 'PX', ttl, 'NX')));
      return reply === 'OK';
    } catch {
      // Unknown whether another process sent it: not sending is the side that never alerts twice.
      return false;
    }
  }

  /** The default hard limit of a frequency as the reserve script takes it ('-' for none). */
  private defaultLimit(frequency: LimitFrequency): string {
    const limit = this.options.defaults?.find((l) => l.frequency === frequency && l.mode !== 'soft');
    return limit === undefined ? '-' : String(limit.limitNano);
  }

  /**
   * Gives the call's rate hold back. Not journalled: while Redis is away, a place among the concurrent calls comes back
   * when its lease ends, and the minute's token count keeps the estimate.
   */
  private settleRates(reservation: Reservation, hold: RateHold, tokens: number): void {
    const { id, tenantId } = reservation;
    const actual = Number.isSafeInteger(tokens) && tokens >= 0 ? tokens : hold.tokens;
    void this.send(() => this.redis.script(RATE_SETTLE, [this.keys.rates(tenantId), this.keys.inFlight(tenantId)], [id, String(hold.minute), String(hold.tokens), String(actual)])).catch(
      () => undefined,
    );
  }

  /** Settlements waiting for Redis. */
  get pendingReplay(): number {
    return this.journal.size;
  }

  /** Resolves once what was settled and booked so far is written, or journalled while Redis is away. */
  async flushed(): Promise<void> {
    await Promise.all([...this.settling]);
    await this.replaying;
    if (this.journal.size > 0 && !this.breaker.isOpen) {
      this.replaySoon();
      await this.replaying;
    }
  }

  async close(): Promise<void> {
    await this.flushed();
    if (this.journal.size > 0) this.log.warn(`${this.journal.size} journalled settlement(s) could not be written to the spend-limit store (Redis) before shutdown`);
    this.breaker.stop();
    this.redis.close();
  }

  /** Sends a command unless the breaker holds Redis off, and tells the breaker how it went. */
  private async send<T>(command: () => Promise<T>): Promise<T> {
    if (!this.breaker.allows()) throw new RedisOutage('Redis is left alone after a failure', false);
    try {
      const result = await command();
      this.answered();
      return result;
    } catch (err) {
      if (err instanceof RedisOutage) this.breaker.failed(err.message);
      else if (err instanceof LimitStoreFaultError) this.answered();
      throw err;
    }
  }

  /** For what the app awaits itself (setLimit, removeLimit, usage): an outage rejects with LimitStoreUnavailableError. */
  private async ask<T>(command: () => Promise<T>): Promise<T> {
    try {
      return await this.send(command);
    } catch (err) {
      if (err instanceof RedisOutage) throw new LimitStoreUnavailableError(`the spend-limit store (Redis) is unavailable: ${err.message}`);
      throw err;
    }
  }

  /** Redis answered something: the breaker closes, and the journal is written if it holds anything. */
  private answered(): void {
    this.breaker.answered();
    if (this.journal.size > 0) this.replaySoon();
  }

  private async probe(): Promise<void> {
    try {
      await this.send(() => this.redis.run((client) => client.ping()));
    } catch {
      // The breaker has taken note; the next probe is due after retryAfter.
    }
  }

  /**
   * Redis did not answer the reserve. 'closed' refuses the call; 'open' decides on this process's last view of the
   * ledger. When the command went out, Redis may hold the reservation all the same: the call's settlement (or, when
   * refused here, a release) is written under the reservation's id, which releases whatever Redis holds.
   */
  private reserveLocally(id: string, tenantId: string, windows: readonly SpendWindow[], amountNano: number, mode: Enforcement, sent: boolean): ReserveOutcome {
    const release = (): void => {
      if (sent) this.journal.addUncertain(this.reservation(id, tenantId, windows, 0), 0);
    };
    if (this.options.failMode === 'closed') {
      release();
      throw new LimitStoreUnavailableError('the spend-limit store (Redis) is unavailable; failMode is closed');
    }
    const local = this.local.reserve(tenantId, windows, amountNano, mode);
    if (!local.admitted) {
      release();
      return local;
    }
    const held = sent ? windows : local.windows;
    if (held.length === 0) return { admitted: true };
    return { admitted: true, reservation: this.handOut(id, tenantId, held, amountNano, sent ? 'uncertain' : 'none') };
  }

  /** The reply to a reserve that had timed out: what it says of the ledger is still the latest news. */
  private heardLateReserve(id: string, tenantId: string, windows: readonly SpendWindow[], late: unknown): void {
    let reply: ReserveReply;
    try {
      reply = parseReserveReply(late, windows.length);
    } catch {
      return;
    }
    this.observe(tenantId, windows, reply);
    if (reply.status !== 'admitted' && this.unsettled.get(id) === 'uncertain') this.unsettled.set(id, 'none');
  }

  private async settleNow(reservation: Reservation, holding: Holding, actualNano: number): Promise<void> {
    try {
      const counters = parseSettleReply(await this.send(() => this.writeSettlement(reservation, actualNano)), reservation.windowKeys.length);
      counters?.forEach((c, i) => this.local.observeCounter(reservation.tenantId, reservation.windowKeys[i]!, c.spentNano, c.reservedNano));
      this.onSpendWritten?.(reservation.tenantId);
    } catch (err) {
      if (err instanceof LimitStoreFaultError) {
        this.log.warn(`a settlement Redis refused was dropped: ${err.message}`);
        return;
      }
      if (!(err instanceof RedisOutage)) throw err;
      this.journalSettlement(reservation, holding, actualNano, err.sent);
    }
  }

  private journalSettlement(reservation: Reservation, holding: Holding, actualNano: number, sent: boolean): void {
    const { tenantId, windowKeys, amountNano } = reservation;
    this.local.settle(tenantId, windowKeys, amountNano, actualNano);
    if (sent || holding === 'uncertain') {
      this.journal.addUncertain(reservation, actualNano);
      return;
    }
    const release = holding === 'held' ? amountNano : 0;
    windowKeys.forEach((key, i) => this.journal.addToWindow(tenantId, key, reservation.windowEnds![i]!, actualNano, release));
  }

  private writeSettlement(reservation: Reservation, actualNano: number): Promise<unknown> {
    const { id, tenantId, windowKeys } = reservation;
    const keys = [this.keys.settled(tenantId, id), this.keys.reservation(tenantId, id), ...windowKeys.map((k) => this.keys.window(tenantId, k))];
    const args = [String(actualNano), String(MARKER_TTL_MS), String(this.options.clock()), ...windowKeys.flatMap((k, i) => [k, String(reservation.windowEnds![i])])];
    return this.redis.script(SETTLE, keys, args, () => this.journal.resolved(id));
  }

  private replaySoon(): void {
    this.replaying ??= this.replay().finally(() => (this.replaying = undefined));
  }

  /** Writes the journal, entry by entry, until it is empty or Redis goes away again. */
  private async replay(): Promise<void> {
    for (let entry = this.journal.next(); entry !== undefined; entry = this.journal.next()) {
      try {
        await this.send(() => this.writeEntry(entry!));
      } catch (err) {
        if (!(err instanceof LimitStoreFaultError)) return;
        this.log.warn(`a journalled settlement Redis refused was dropped: ${err.message}`);
      }
      this.journal.done(entry);
    }
  }

  private async writeEntry(entry: JournalEntry): Promise<void> {
    if (entry.kind === 'reservation') {
      parseSettleReply(await this.writeSettlement(entry.reservation, entry.actualNano), entry.reservation.windowKeys.length);
      this.onSpendWritten?.(entry.reservation.tenantId);
      return;
    }
    const { id, tenantId, windowKey } = entry;
    const keys = [this.keys.replayed(tenantId, id), this.keys.window(tenantId, windowKey)];
    const args = [String(entry.spentNano), String(entry.releaseNano), String(MARKER_TTL_MS), String(this.options.clock()), String(entry.windowEnd), String(entry.revenueNano)];
    const [counter] = parseSettleReply(await this.redis.script(REPLAY, keys, args), 1) ?? [];
    // Bookings reach every tenant: only those this process already keeps a view of are kept up to date.
    if (counter !== undefined) this.local.observeKnownCounter(tenantId, windowKey, counter.spentNano, counter.reservedNano);
    this.onSpendWritten?.(tenantId);
  }

  private observe(tenantId: string, windows: readonly SpendWindow[], reply: ReserveReply): void {
    windows.forEach((window, i) => this.local.observeWindow(tenantId, window, reply.windows[i]!));
  }

  /** A settlement whose amount is not a valid one counts at the reservation: over-counting is the safe side. */
  private amountToSettle(reservation: Reservation, actualNano: number): number {
    if (Number.isSafeInteger(actualNano) && actualNano >= 0) return actualNano;
    this.log.warnOnce('redis-settle-amount', 'a settlement came with an amount that is not a non-negative integer of nano-dollars; it counts at its reservation');
    return reservation.amountNano;
  }

  private handOut(id: string, tenantId: string, windows: readonly SpendWindow[], amountNano: number, holding: Holding): Reservation {
    this.unsettled.set(id, holding);
    return this.reservation(id, tenantId, windows, amountNano);
  }

  private reservation(id: string, tenantId: string, windows: readonly SpendWindow[], amountNano: number): Reservation {
    return { id, tenantId, windowKeys: windows.map((w) => w.key), windowEnds: windows.map(windowEnd), amountNano };
  }
}

/** A tenant's own limit of a budget (see budgetName), as its limits hash holds it: hard in `<budget>`, soft in `soft:<budget>`. */
function storedLimit(fields: Record<string, string>, budget: string): Partial<WindowUsage> {
  const hard = fields[budget];
  const soft = fields[`soft:${budget}`];
  if (hard === undefined && soft === undefined) return {};
  const thresholds = fields[`thresholds:${budget}`]?.split(',').map(Number).filter((t) => Number.isFinite(t) && t > 0);
  return { limitNano: parseStoredNano(hard ?? soft ?? null), mode: hard !== undefined ? 'hard' : 'soft', isDefault: false, thresholds };
}

function defaultOf(defaults: readonly TenantLimit[] | undefined, frequency: LimitFrequency): Partial<WindowUsage> {
  const limit = defaults?.find((l) => l.frequency === frequency);
  if (limit === undefined) return {};
  return { limitNano: limit.limitNano, mode: limit.mode ?? 'hard', isDefault: true, thresholds: limit.thresholds };
}
