import { randomUUID } from 'node:crypto';
import type { AgentLog } from '../../log.js';
import { toUsd } from '../store.js';
import type { BackendClient } from './backend-client.js';

/** Spend of one tenant in one set of windows: what waits to be sent, and the batch on its way (or to be retried). */
interface Account {
  key: string;
  tenantId: string;
  windowKeys: readonly string[];
  pendingNano: number;
  /** Once sent, a batch never changes: a retry carries the same id and amount, so the backend counts it once. */
  sending: { spendId: string; nano: number } | undefined;
}

/** Spend requests in flight at once, across tenants. */
const PARALLEL_POSTS = 8;

/**
 * Carries the spend this process settles to the backend's ledger, off the caller's path. Settlements add up per
 * tenant and windows while a batch is on its way, so memory stays bounded however long the backend is down; a failed
 * batch is retried unchanged after `retryAfter`, or as soon as the backend answers again.
 */
export class SpendJournal {
  private readonly accounts = new Map<string, Account>();
  private draining: Promise<void> | undefined;
  private drainQueued = false;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Fired by close(): from then on no post of the journal keeps the process alive. */
  private readonly closing = new AbortController();

  constructor(
    private readonly client: BackendClient,
    private readonly retryAfter: number,
    private readonly log: AgentLog,
    /** The backend has counted this spend (or refused it for good): it is no longer this process's to carry. */
    private readonly onCounted: (tenantId: string, nano: number) => void,
  ) {}

  add(tenantId: string, windowKeys: readonly string[], nano: number): void {
    const key = JSON.stringify([tenantId, ...windowKeys]);
    let account = this.accounts.get(key);
    if (account === undefined) this.accounts.set(key, (account = { key, tenantId, windowKeys, pendingNano: 0, sending: undefined }));
    account.pendingNano += nano;
    this.drainSoon();
  }

  /** Sends on the next turn of the event loop, so that settlements of the same moment travel together. */
  drainSoon(): void {
    if (this.drainQueued) return;
    this.drainQueued = true;
    setImmediate(() => {
      this.drainQueued = false;
      void this.drain();
    });
  }

  /**
   * Sends what is waiting, once, and stops retrying: a closed journal sets no more timers, and its posts, those in
   * flight included, no longer keep the process alive (the caller bounds how long it waits for them).
   */
  async close(): Promise<void> {
    this.closing.abort();
    clearTimeout(this.retryTimer);
    await this.drain();
  }

  private drain(): Promise<void> {
    this.draining ??= this.sendAll()
      .catch(() => undefined)
      .finally(() => (this.draining = undefined));
    return this.draining;
  }

  /** Rounds of batches until nothing waits, or a round gets nothing through (the backend is down). */
  private async sendAll(): Promise<void> {
    for (;;) {
      const round = this.nextRound();
      if (round.length === 0) return;
      const delivered = await Promise.all(round.map((account) => this.send(account)));
      if (!delivered.includes(true)) return this.retryLater();
    }
  }

  private nextRound(): Account[] {
    const round: Account[] = [];
    for (const account of this.accounts.values()) {
      if (round.length === PARALLEL_POSTS) break;
      if (account.sending === undefined) {
        account.sending = { spendId: randomUUID(), nano: account.pendingNano };
        account.pendingNano = 0;
      }
      round.push(account);
    }
    return round;
  }

  private async send(account: Account): Promise<boolean> {
    const batch = account.sending!;
    let status: number;
    try {
      status = await this.client.postSpend(account.tenantId, { spend_id: batch.spendId, spent_usd: toUsd(batch.nano), windows: account.windowKeys }, this.closing.signal);
    } catch {
      return false;
    }
    // 404: the backend keeps no limit for the tenant, so no ledger either. Any other refusal would come back the same.
    if ((status < 200 || status >= 300) && status !== 404) {
      this.log.warnOnce(`limits-spend:${status}`, `the limits backend refused spend records with HTTP ${status}; that spend is missing from its ledger`);
    }
    account.sending = undefined;
    if (account.pendingNano === 0) this.accounts.delete(account.key);
    this.onCounted(account.tenantId, batch.nano);
    return true;
  }

  private retryLater(): void {
    if (this.closing.signal.aborted || this.retryTimer !== undefined) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.drain();
    }, this.retryAfter);
    this.retryTimer.unref();
  }
}
