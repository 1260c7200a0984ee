import type { BatchSender, SendReport } from '../batcher.js';
import { post } from '../http-request.js';
import { DeliveryError } from '../retry.js';
import type { AccountDirectory } from './account-lookup.js';
import type { MeteredEvent } from './stripe-meters.js';

/** Events per request to Lago's batch endpoint (its maximum). */
const LAGO_CHUNK = 100;

export interface LagoSenderOptions {
  url: URL;
  apiKey: string;
  /** The billable metric code of usage events (default: the event's `metric_code`, else `llm_tokens`). */
  code: string | undefined;
  /** The billable metric code of outcome events; without one they are not sent. */
  outcomeCode: string | undefined;
  subscriptions: AccountDirectory;
  timeoutMs: number;
  onRejected(err: Error): void;
}

/** The fields of usage and outcome events Lago gets as properties, for its billable metrics to aggregate. */
const PROPERTIES = [
  'input_tokens', 'output_tokens', 'total_tokens', 'cached_tokens', 'cache_creation_tokens', 'reasoning_tokens', 'cost_usd',
  'revenue_usd', 'model', 'provider', 'endpoint', 'feature', 'run_id', 'agent_id', 'outcome', 'calls',
] as const;

interface LagoEvent {
  transaction_id: string;
  external_subscription_id: string;
  code: string;
  timestamp: number;
  properties: Record<string, string | number>;
}

/**
 * Usage (and, with an `outcomeCode`, outcome) events to Lago's batch events API: `transaction_id` is the event id, so
 * Lago dedupes a retry or a replay; the tenant becomes the subscription the app's lookup names. Events of tenants
 * without a subscription are dropped and counted.
 */
export class LagoSender implements BatchSender<MeteredEvent> {
  constructor(private readonly options: LagoSenderOptions) {}

  takes(event: MeteredEvent): boolean {
    return event.type === 'usage' || (event.type === 'outcome' && this.options.outcomeCode !== undefined);
  }

  async send(events: readonly MeteredEvent[], idempotencyKey: string, signal: AbortSignal): Promise<SendReport> {
    const dropped: Record<string, number> = {};
    const drop = (reason: string, n = 1): void => void (dropped[reason] = (dropped[reason] ?? 0) + n);
    const tenants = new Set<string>();
    for (const event of events) if (event.tenant_id !== undefined) tenants.add(event.tenant_id);
    const subscriptions = await this.options.subscriptions.resolve(tenants);
    const lagoEvents: LagoEvent[] = [];
    for (const event of events) {
      const subscription = event.tenant_id === undefined ? undefined : subscriptions.get(event.tenant_id);
      if (subscription === undefined) drop(event.tenant_id === undefined ? 'no_tenant' : 'no_subscription');
      else lagoEvents.push(this.lagoEvent(event, subscription));
    }
    for (let i = 0; i < lagoEvents.length; i += LAGO_CHUNK) {
      const key = `${idempotencyKey}-${i / LAGO_CHUNK}`;
      let chunk = lagoEvents.slice(i, i + LAGO_CHUNK);
      try {
        await this.post(chunk, key, signal);
      } catch (err) {
        if (!(err instanceof DeliveryError) || err.status !== 422) throw err;
        // Lago (with its Postgres store) refuses a whole batch for a transaction id it has: those events are in Lago
        // already (an earlier attempt, a replay), so the rest is sent again without them.
        const known = alreadyTaken(err.answer);
        const fresh = chunk.filter((_, index) => !known.has(index));
        if (known.size === 0 || fresh.length === chunk.length) {
          drop('rejected', chunk.length);
          this.options.onRejected(err);
          continue;
        }
        chunk = fresh;
        if (chunk.length > 0) await this.post(chunk, `${key}-fresh`, signal).catch((again: unknown) => {
          if (!(again instanceof DeliveryError) || again.status !== 422) throw again;
          drop('rejected', chunk.length);
          this.options.onRejected(again);
        });
      }
    }
    return { dropped };
  }

  private lagoEvent(event: MeteredEvent, subscription: string): LagoEvent {
    const properties: Record<string, string | number> = {};
    const fields = event as unknown as Record<string, unknown>;
    for (const name of PROPERTIES) {
      const value = fields[name];
      if (typeof value === 'number' || typeof value === 'string') properties[name] = value;
    }
    const code = event.type === 'outcome' ? this.options.outcomeCode! : (this.options.code ?? (fields.metric_code as string | undefined) ?? 'llm_tokens');
    return {
      transaction_id: event.event_id,
      external_subscription_id: subscription,
      code,
      timestamp: Date.parse(event.timestamp) / 1000,
      properties,
    };
  }

  private async post(events: LagoEvent[], idempotencyKey: string, signal: AbortSignal): Promise<void> {
    const { url, apiKey, timeoutMs } = this.options;
    const body = Buffer.from(JSON.stringify({ events }));
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${apiKey}`, 'idempotency-key': idempotencyKey };
    await post('Lago', url, { headers, body, timeoutMs, signal });
  }
}

/** The batch positions a 422 names as `transaction_id: ["value_already_exist"]`, and nothing else wrong with them. */
function alreadyTaken(answer: string | undefined): Set<number> {
  const known = new Set<number>();
  let details: unknown;
  try {
    details = (JSON.parse(answer ?? '') as { error_details?: unknown }).error_details;
  } catch {
    return known;
  }
  if (details === null || typeof details !== 'object') return known;
  for (const [index, problems] of Object.entries(details)) {
    const fields = problems !== null && typeof problems === 'object' ? Object.entries(problems as Record<string, unknown>) : [];
    const onlyDuplicate = fields.length === 1 && fields[0]![0] === 'transaction_id' && JSON.stringify(fields[0]![1]) === '["value_already_exist"]';
    if (onlyDuplicate && /^\d+$/.test(index)) known.add(Number(index));
  }
  return known;
}
