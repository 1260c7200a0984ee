import { DeliveryError } from '../retry.js';

/** The app's function from a tenant id to its id in the billing system (a Stripe customer, a Lago subscription). */
export type AccountLookup = (tenantId: string) => string | undefined | null | Promise<string | undefined | null>;

export interface AccountLookupOptions {
  /** Names the option in errors: 'sinks[2].customer'. */
  field: string;
  /** How long one lookup may take before the batch is tried again later. */
  timeoutMs: number;
  /** Tenants kept (the oldest answers forgotten first). */
  maxEntries?: number;
  /** How long "no account" is believed, so that a customer created later is picked up (ms). */
  missTtlMs?: number;
}

interface Entry {
  account: string | undefined;
  /** For a miss: when to ask again. */
  until: number;
}

/**
 * Resolves tenants to billing accounts through the app's lookup, cached. A lookup that throws, rejects or outlives its
 * deadline fails the batch with a retryable error (the billing system or the app's database may be back soon); an answer
 * that is not a non-empty string means "no account".
 */
export class AccountDirectory {
  private readonly cache = new Map<string, Entry>();
  private readonly maxEntries: number;
  private readonly missTtlMs: number;

  constructor(
    private readonly lookup: AccountLookup,
    private readonly options: AccountLookupOptions,
  ) {
    this.maxEntries = options.maxEntries ?? 10_000;
    this.missTtlMs = options.missTtlMs ?? 60_000;
  }

  /** The account of each tenant (undefined: none), looked up at most once each, all at once. */
  async resolve(tenantIds: Iterable<string>): Promise<Map<string, string | undefined>> {
    const now = Date.now();
    const out = new Map<string, string | undefined>();
    const asking: Array<Promise<void>> = [];
    for (const tenantId of tenantIds) {
      if (out.has(tenantId)) continue;
      const cached = this.cache.get(tenantId);
      if (cached !== undefined && (cached.account !== undefined || cached.until > now)) {
        out.set(tenantId, cached.account);
        continue;
      }
      out.set(tenantId, undefined);
      asking.push(this.ask(tenantId).then((account) => void out.set(tenantId, account)));
    }
    await Promise.all(asking);
    return out;
  }

  private async ask(tenantId: string): Promise<string | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DeliveryError(`${this.options.field} did not answer within ${this.options.timeoutMs} ms`, true)), this.options.timeoutMs);
      timer.unref();
    });
    let answer: unknown;
    try {
      answer = await Promise.race([Promise.resolve().then(() => this.lookup(tenantId)), deadline]);
    } catch (err) {
      if (err instanceof DeliveryError) throw err;
      throw new DeliveryError(`${this.options.field} failed: ${err instanceof Error ? err.name : typeof err}`, true);
    } finally {
      clearTimeout(timer);
    }
    const account = typeof answer === 'string' && answer !== '' ? answer : undefined;
    this.cache.delete(tenantId);
    this.cache.set(tenantId, { account, until: Date.now() + this.missTtlMs });
    if (this.cache.size > this.maxEntries) this.cache.delete(this.cache.keys().next().value as string);
    return account;
  }
}
