import type { LimitFrequency } from '../errors.js';
import { LocalControls } from './controls/local-controls.js';
import type { AgentLog } from '../log.js';
import { BackendClient } from './backend/backend-client.js';
import { CircuitBreaker } from './circuit-breaker.js';
import { SpendJournal } from './backend/spend-journal.js';
import { TenantTally } from './backend/tenant-tally.js';

import { LimitStoreFaultError, LimitStoreUnavailableError, toUsd, type TenantPage, type Enforcement, type Booking, type FailMode, type LimitStore, type Reservation, type ReserveOutcome, type SpendSeed, type TenantLimit, type WindowUsage } from './store.js';
import type { SpendWindow } from './windows.js';
import type { BudgetScope } from './controls/budget-scope.js';

export interface BackendStoreOptions {
  url: URL;
  apiKey: string | undefined;
  /** How long an answer from the backend is trusted (ms). */
  cacheTtl: number;
  failMode: FailMode;
  /** How long the store leaves the backend alone after it failed, before trying again (ms). */
  retryAfter: number;
  /** The deadline of each request to the backend (ms). */
  timeoutMs: number;
  clock: () => number;
}

/**
 * The app's own backend as the limit store (see the README for the protocol). An answer is trusted for `cacheTtl`;
 * on top of it the store counts what the answer cannot include yet — this process's spend until the backend has
 * acknowledged it, and the reservations of calls in flight — so a burst inside the cache window is still stopped.
 * Settled spend is posted to the backend's ledger in the background, idempotently. A slow or dead backend costs a call
 * at most one request deadline; then it is left alone for `retryAfter`, and the store either goes on enforcing what it
 * knows ('open') or refuses limited calls ('closed'). Exact for one process; a fleet is as exact as the answers are
 * fresh (use the Redis store for a fleet-exact ledger).
 */
/** The backend's protocol has no alerts, policies or rate limits: each process keeps its own (see the README). */
export class BackendLimitStore extends LocalControls implements LimitStore {
  private readonly tenants = new Map<string, TenantTally>();
  /** One question to the backend per tenant at a time: a burst waits for the same answer. */
  private readonly asking = new Map<string, Promise<void>>();
  private readonly held = new Set<string>();
  private readonly client: BackendClient;
  private readonly journal: SpendJournal;
  private nextId = 0;

  constructor(
    private readonly options: BackendStoreOptions,
    log: AgentLog,
  ) {
    super();
    const whileDown = options.failMode === 'open' ? "enforcing limits on its last answers and this process's own spend" : 'refusing limited calls';
    const breaker = new CircuitBreaker(options.retryAfter, options.clock, {
      opened: (reason) => log.warn(`the limits backend is unavailable (${reason}); ${whileDown} until it answers again`),
      closed: () => {
        log.warn('the limits backend answers again');
        this.journal.drainSoon();
      },
    });
    this.client = new BackendClient(options, breaker);
    this.journal = new SpendJournal(this.client, options.retryAfter, log, (tenantId, nano) => this.tally(tenantId).acknowledged(nano));
  }

  async setLimit(tenantId: string, limit: TenantLimit, seed?: SpendSeed): Promise<void> {
    if (limit.scope !== undefined) throw scopedBudgetsUnsupported();
    const body = { limit_usd: toUsd(limit.limitNano), frequency: limit.frequency, ...(seed && { spent_usd: toUsd(seed.spentNano), window: seed.window.key }) };
    const status = await this.client.putLimit(tenantId, body);
    if (status < 200 || status >= 300) throw new LimitStoreUnavailableError(`the limits backend answered HTTP ${status} to setLimit`);
    this.tally(tenantId).changed();
  }

  async removeLimit(tenantId: string, frequency: LimitFrequency, scope?: BudgetScope): Promise<void> {
    if (scope !== undefined) throw scopedBudgetsUnsupported();
    const status = await this.client.deleteLimit(tenantId, frequency);
    if ((status < 200 || status >= 300) && status !== 404) throw new LimitStoreUnavailableError(`the limits backend answered HTTP ${status} to removeLimit`);
    this.tally(tenantId).changed();
  }

  async reserve(tenantId: string, windows: readonly SpendWindow[], amountNano: number, mode: Enforcement): Promise<ReserveOutcome> {
    const tally = await this.known(tenantId);
    if (tally.limits?.length === 0) return { admitted: true };
    const full = tally.fullLimit(amountNano, mode);
    if (full !== undefined) {
      return {
        admitted: false,
        window: { frequency: full.frequency, key: windows.find((w) => w.frequency === full.frequency)?.key ?? full.frequency, resetsAt: full.resetsAt },
        limitNano: full.limitNano,
        spentNano: full.spentNano + tally.spentNano,
        reservedNano: tally.reservedNano,
      };
    }
    // Also when the backend never answered for the tenant (failMode 'open'): its spend still reaches the ledger.
    tally.reservedNano += amountNano;
    const reservation: Reservation = { id: `b${++this.nextId}`, tenantId, windowKeys: windows.map((w) => w.key), amountNano };
    this.held.add(reservation.id);
    return { admitted: true, reservation };
  }

  settle(reservation: Reservation, actualNano: number): void {
    if (!this.held.delete(reservation.id)) return;
    this.tally(reservation.tenantId).settled(reservation.amountNano, actualNano);
    if (actualNano > 0) this.journal.add(reservation.tenantId, reservation.windowKeys, actualNano);
  }

  /**
   * The backend's protocol has no revenue, and the backend keeps a ledger only for tenants with a limit: revenue is
   * ignored, and spend is posted as a spend record (in every window it was not settled in) for a tenant the backend
   * keeps limits for, or has not answered for yet. Never rejects.
   */
  async book(tenantId: string, windows: readonly SpendWindow[], booking: Booking): Promise<void> {
    const { spentNano, settledWindowKeys } = booking;
    const windowKeys = windows.map((w) => w.key).filter((key) => settledWindowKeys?.includes(key) !== true);
    if (spentNano <= 0 || windowKeys.length === 0) return;
    let tally: TenantTally;
    try {
      tally = await this.known(tenantId);
    } catch {
      // failMode 'closed' and the backend is away: like a refused reservation, the spend is not counted here.
      return;
    }
    if (tally.limits?.length === 0) return;
    tally.settled(0, spentNano);
    this.journal.add(tenantId, windowKeys, spentNano);
  }

  /**
   * Limited windows as the backend answers them, and the others with zeros: the backend counts spend only against
   * limits, and its protocol carries no revenue (always 0 here).
   */
  async usage(tenantId: string, windows: readonly SpendWindow[]): Promise<WindowUsage[]> {
    const tally = await this.known(tenantId);
    if (tally.limits === undefined) throw new LimitStoreUnavailableError('the limits backend is unavailable and has not answered for this tenant yet');
    return windows.map((window) => {
      const limit = tally.limits!.find((l) => l.frequency === window.frequency);
      if (limit === undefined) return { frequency: window.frequency, spentNano: 0, reservedNano: 0, revenueNano: 0, windowKey: window.key, resetsAt: window.resetsAt };
      return {
        frequency: limit.frequency,
        spentNano: limit.spentNano + tally.spentNano,
        reservedNano: tally.reservedNano,
        revenueNano: 0,
        limitNano: limit.limitNano,
        mode: 'hard' as const,
        windowKey: window.key,
        resetsAt: limit.resetsAt,
      };
    });
  }


  /** The backend keeps the ledger: it is the one to list its tenants. */
  tenantsWithUsage(): TenantPage {
    throw new LimitStoreFaultError('listing tenants is not part of the limits backend protocol: ask your backend, which keeps the ledger');
  }

  async close(): Promise<void> {
    await this.journal.close();
  }

  /**
   * The tenant's tally with an answer fresher than cacheTtl, or — the backend being down — with whatever it last
   * answered (failMode 'open'; nothing when it never did), or LimitStoreUnavailableError (failMode 'closed').
   */
  private async known(tenantId: string): Promise<TenantTally> {
    const tally = this.tally(tenantId);
    if (this.options.clock() - tally.askedAt < this.options.cacheTtl) return tally;
    try {
      await this.ask(tenantId, tally);
    } catch (err) {
      if (this.options.failMode === 'closed' || !(err instanceof LimitStoreUnavailableError)) throw err;
    }
    return tally;
  }

  private ask(tenantId: string, tally: TenantTally): Promise<void> {
    let asking = this.asking.get(tenantId);
    if (asking === undefined) {
      const askedAt = this.options.clock();
      const version = tally.asking();
      asking = this.client
        .getLimits(tenantId)
        .then((limits) => tally.answered(limits, askedAt, version))
        .finally(() => this.asking.delete(tenantId));
      this.asking.set(tenantId, asking);
    }
    return asking;
  }

  private tally(tenantId: string): TenantTally {
    let tally = this.tenants.get(tenantId);
    if (tally === undefined) this.tenants.set(tenantId, (tally = new TenantTally()));
    return tally;
  }
}

/** The protocol's ledger is one per tenant and window: the backend would have to count each feature's and model's spend. */
const scopedBudgetsUnsupported = (): LimitStoreFaultError =>
  new LimitStoreFaultError("budgets of a feature or a model are not part of the limits backend protocol: use the in-process or the Redis store for them");
