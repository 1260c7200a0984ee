const ESCAPES: Record<string, string> = { '%': '%25', '{': '%7B', '}': '%7D' };
const UNESCAPES: Record<string, string> = { '%25': '%', '%7B': '{', '%7D': '}' };

/**
 * A tenant id as it appears inside a key: '%', '{' and '}' percent-encoded, so that two tenant ids never share a key
 * and the id can never end the `{...}` hash tag early.
 */
function escapeTenant(tenantId: string): string {
  return tenantId.replace(/[%{}]/g, (c) => ESCAPES[c]!);
}

/**
 * The ledger's keys: `<prefix>{<tenant>}:<record>`. The `{tenant}` hash tag puts every key of a tenant in one Redis
 * Cluster slot, so that one script can touch all of them.
 */
export class LedgerKeys {
  constructor(private readonly prefix: string) {}

  /** The hash of the tenant's limits, one field per frequency. */
  limits(tenantId: string): string {
    return this.of(tenantId, 'limits');
  }

  /** The hash of one window (`d:2026-11-23`, `m:2026-11`): spent and reserved. */
  window(tenantId: string, windowKey: string): string {
    return this.of(tenantId, windowKey);
  }

  /** A reservation's lease: a hash of what it holds in each window. */
  reservation(tenantId: string, reservationId: string): string {
    return this.of(tenantId, `r:${reservationId}`);
  }

  /** Marks a reservation as settled: settling it again changes nothing. */
  settled(tenantId: string, reservationId: string): string {
    return this.of(tenantId, `settled:${reservationId}`);
  }

  /** The tenant's rate counters: this minute's and the last one's requests and tokens. */
  rates(tenantId: string): string {
    return this.of(tenantId, 'rates');
  }

  /** The tenant's calls in flight under a concurrency limit, scored by when their lease ends. */
  inFlight(tenantId: string): string {
    return this.of(tenantId, 'inflight');
  }

  /** Marks an alert (a threshold of a window) as sent by some process: the fleet sends it once. */
  alert(tenantId: string, windowKey: string, threshold: number): string {
    return this.of(tenantId, `alert:${windowKey}:${threshold}`);
  }

  /** Marks a journal replay as written: writing it again changes nothing. */
  replayed(tenantId: string, replayId: string): string {
    return this.of(tenantId, `replayed:${replayId}`);
  }

  /** A SCAN pattern for every tenant's key of this record (the prefix's glob characters escaped). */
  everyTenant(record: string): string {
    return `${this.prefix.replace(/[*?[\]\\]/g, (c) => `\\${c}`)}{*}:${record}`;
  }

  /** The tenant a key of this prefix belongs to. */
  tenantOf(key: string): string | undefined {
    if (!key.startsWith(`${this.prefix}{`)) return undefined;
    const end = key.indexOf('}', this.prefix.length + 1);
    return end < 0 ? undefined : key.slice(this.prefix.length + 1, end).replace(/%25|%7B|%7D/g, (c) => UNESCAPES[c]!);
  }

  private of(tenantId: string, record: string): string {
    return `${this.prefix}{${escapeTenant(tenantId)}}:${record}`;
  }
}
