import { createRequire } from 'node:module';
import type { BatchSender, SendReport } from '../batcher.js';
import { DeliveryError } from '../retry.js';
import type { AccountDirectory } from './account-lookup.js';
import { meterEventIdentifier, meterPayload, meterTakes, meterValue, type MeteredEvent, type StripeMeter } from './stripe-meters.js';

/** Stripe takes meter events up to 35 days old; an hour's margin for the time a batch spends queued and retried. */
const MAX_AGE_MS = 35 * 24 * 3600_000 - 3600_000;
/** Meter events per v2 stream request (Stripe's maximum). */
const STREAM_CHUNK = 100;
/** v1 requests in flight at once for one batch. */
const V1_CONCURRENCY = 8;
/** A session token is renewed this long before it expires (tokens last 15 minutes). */
const SESSION_MARGIN_MS = 60_000;

interface MeterEventParams {
  event_name: string;
  identifier: string;
  timestamp: number | string;
  payload: Record<string, string>;
}

/** The part of Stripe's library this sink uses. */
interface StripeClient {
  billing: { meterEvents: { create(params: MeterEventParams): Promise<unknown> } };
  v2: {
    billing: {
      meterEventSession: { create(): Promise<{ authentication_token: string; expires_at: string }> };
      meterEventStream: { create(params: { events: MeterEventParams[] }, options: { apiKey: string }): Promise<unknown> };
    };
  };
}

interface StripeFailure {
  type?: string;
  code?: string;
  statusCode?: number;
  message?: string;
}

export interface StripeSenderOptions {
  apiKey: string;
  /** Both the API and the meter event stream go here instead of Stripe's hosts (a test's fake). */
  baseUrl: URL | undefined;
  /** 'v2': the high-throughput meter event stream; 'v1': one request per meter event. */
  api: 'v1' | 'v2';
  meters: readonly StripeMeter[];
  customers: AccountDirectory;
  timeoutMs: number;
  /** Meter events Stripe refused (a 400): reported, not retried. */
  onRejected(err: Error): void;
}

function loadStripe(): new (apiKey: string, config: Record<string, unknown>) => StripeClient {
  const stripe = createRequire(__filename)('stripe') as { default?: unknown; Stripe?: unknown };
  return (stripe.Stripe ?? stripe.default ?? stripe) as new (apiKey: string, config: Record<string, unknown>) => StripeClient;
}

/** Whether Stripe's library can be loaded (the sink needs it; it is an optional peer dependency). */
export function stripeAvailable(): boolean {
  try {
    createRequire(__filename).resolve('stripe');
    return true;
  } catch {
    return false;
  }
}

/**
 * Usage and outcome events as Stripe meter events, through Stripe's own library: one meter event per event and meter
 * that counts it, with an identifier derived from the event id and the meter, so a retry or a replay from another
 * process is deduplicated by Stripe. Events whose tenant has no customer, or older than Stripe accepts, are dropped
 * and counted; the library's own retries are off, the batcher retries.
 */
export class StripeSender implements BatchSender<MeteredEvent> {
  private readonly client: StripeClient;
  private session: { token: string; renewAt: number } | undefined;

  constructor(private readonly options: StripeSenderOptions) {
    const Stripe = loadStripe();
    const { baseUrl } = options;
    this.client = new Stripe(options.apiKey, {
      maxNetworkRetries: 0,
      timeout: options.timeoutMs,
      telemetry: false,
      appInfo: { name: 'llm-meter' },
      ...(baseUrl === undefined
        ? {}
        : { host: baseUrl.hostname, port: Number(baseUrl.port || (baseUrl.protocol === 'https:' ? 443 : 80)), protocol: baseUrl.protocol.slice(0, -1) }),
    });
  }

  takes(event: MeteredEvent): boolean {
    return this.options.meters.some((meter) => meterTakes(meter, event.type));
  }

  async send(events: readonly MeteredEvent[], _key: string, signal: AbortSignal): Promise<SendReport> {
    const dropped: Record<string, number> = {};
    const drop = (reason: string): void => void (dropped[reason] = (dropped[reason] ?? 0) + 1);
    const customers = await abortable(this.options.customers.resolve(tenantsOf(events)), signal);
    const oldest = Date.now() - MAX_AGE_MS;
    const meterEvents: MeterEventParams[] = [];
    /** For each meter event, the event it came from. */
    const owners: number[] = [];
    for (const [index, event] of events.entries()) {
      const customer = event.tenant_id === undefined ? undefined : customers.get(event.tenant_id);
      if (customer === undefined) {
        drop(event.tenant_id === undefined ? 'no_tenant' : 'no_customer');
        continue;
      }
      const at = Date.parse(event.timestamp);
      if (!(at >= oldest)) {
        drop('too_old');
        continue;
      }
      const own: MeterEventParams[] = [];
      let valid = true;
      for (const meter of this.options.meters) {
        if (!meterTakes(meter, event.type)) continue;
        const value = meterValue(meter, event);
        if (value === undefined) valid = false;
        else if (value > 0) {
          const identifier = meterEventIdentifier(event.event_id, meter.eventName);
          const timestamp = this.options.api === 'v1' ? Math.floor(at / 1000) : event.timestamp;
          own.push({ event_name: meter.eventName, identifier, timestamp, payload: meterPayload(meter, event, customer, value) });
        }
      }
      if (!valid) {
        drop('invalid_value');
        continue;
      }
      for (const meterEvent of own) {
        meterEvents.push(meterEvent);
        owners.push(index);
      }
    }
    const rejected = this.options.api === 'v1' ? await this.sendV1(meterEvents, signal) : await this.sendV2(meterEvents, signal);
    const refusedEvents = new Set(rejected.map((i) => owners[i]));
    if (refusedEvents.size > 0) dropped.rejected = refusedEvents.size;
    return { dropped };
  }

  /** Returns the meter events Stripe refused for good, by index. */
  private async sendV2(meterEvents: MeterEventParams[], signal: AbortSignal): Promise<number[]> {
    const rejected: number[] = [];
    for (let i = 0; i < meterEvents.length; i += STREAM_CHUNK) {
      const chunk = meterEvents.slice(i, i + STREAM_CHUNK);
      try {
        await this.streamChunk(chunk, signal);
      } catch (err) {
        if (!isInvalidRequest(err)) throw deliveryError(err);
        for (let j = i; j < i + chunk.length; j++) rejected.push(j);
        this.options.onRejected(deliveryError(err));
      }
    }
    return rejected;
  }

  private async streamChunk(events: MeterEventParams[], signal: AbortSignal): Promise<void> {
    try {
      await abortable(this.client.v2.billing.meterEventStream.create({ events }, { apiKey: await this.sessionToken(signal) }), signal);
    } catch (err) {
      if (!isSessionExpired(err)) throw err;
      // Expired before we thought it would (a clock apart from Stripe's): a new session, and the chunk once more.
      this.session = undefined;
      await abortable(this.client.v2.billing.meterEventStream.create({ events }, { apiKey: await this.sessionToken(signal) }), signal);
    }
  }

  private async sessionToken(signal: AbortSignal): Promise<string> {
    if (this.session !== undefined && Date.now() < this.session.renewAt) return this.session.token;
    const created = await abortable(this.client.v2.billing.meterEventSession.create(), signal);
    const expiresAt = Date.parse(created.expires_at);
    this.session = { token: created.authentication_token, renewAt: (Number.isFinite(expiresAt) ? expiresAt : Date.now() + 15 * 60_000) - SESSION_MARGIN_MS };
    return this.session.token;
  }

  private async sendV1(meterEvents: MeterEventParams[], signal: AbortSignal): Promise<number[]> {
    const rejected: number[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < meterEvents.length) {
        const index = next++;
        const params = meterEvents[index]!;
        try {
          await abortable(this.client.billing.meterEvents.create(params), signal);
        } catch (err) {
          if (isDuplicate(err)) continue;
          if (!isInvalidRequest(err)) {
            next = meterEvents.length; // the other workers take no more: the batch is retried whole
            throw deliveryError(err);
          }
          rejected.push(index);
          this.options.onRejected(deliveryError(err));
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(V1_CONCURRENCY, meterEvents.length) }, worker));
    return rejected;
  }
}

function tenantsOf(events: readonly MeteredEvent[]): Set<string> {
  const tenants = new Set<string>();
  for (const event of events) if (event.tenant_id !== undefined) tenants.add(event.tenant_id);
  return tenants;
}

/** The promise, or a rejection as soon as the signal aborts (Stripe's library takes no signal). */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new DeliveryError('abandoned', true));
  return new Promise<T>((resolve, reject) => {
    const abandon = (): void => reject(new DeliveryError('abandoned', true));
    signal.addEventListener('abort', abandon, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', abandon);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', abandon);
        reject(err);
      },
    );
  });
}

const failure = (err: unknown): StripeFailure => (err !== null && typeof err === 'object' ? (err as StripeFailure) : {});

function isSessionExpired(err: unknown): boolean {
  const { type, code } = failure(err);
  return type === 'TemporarySessionExpiredError' || code === 'billing_meter_event_session_expired';
}

/**
 * An identifier Stripe has seen already: the meter event is recorded (an earlier attempt or another process sent it).
 * Stripe answers it with a 400 that has no code, only its message.
 */
function isDuplicate(err: unknown): boolean {
  const { statusCode, message } = failure(err);
  return statusCode === 400 && /already exists with identifier/i.test(message ?? '');
}

function isInvalidRequest(err: unknown): boolean {
  return failure(err).statusCode === 400;
}

/** Stripe's answer as a DeliveryError: 429, 5xx and no answer at all are worth retrying. */
function deliveryError(err: unknown): DeliveryError {
  if (err instanceof DeliveryError) return err;
  const { type, code, statusCode } = failure(err);
  const what = [type, code].filter((s) => s !== undefined).join(' ');
  if (statusCode === undefined) return new DeliveryError(`Stripe request failed: ${what || 'no answer'}`, true);
  return new DeliveryError(`Stripe answered HTTP ${statusCode}${what ? ` (${what})` : ''}`, statusCode === 429 || statusCode >= 500, statusCode);
}
