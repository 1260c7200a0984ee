import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeLago, startFakeOpenMeter, startFakeStripe } from './fixtures/fake-billing.mjs';
import { startFakeIngest } from './fixtures/fake-ingest.mjs';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import type { ManualUsage } from 'llm-meter';
import { ConfigError, Meter, stderrOf, until } from './helpers.js';

type Stripe = Awaited<ReturnType<typeof startFakeStripe>>;
type OpenMeter = Awaited<ReturnType<typeof startFakeOpenMeter>>;
type Lago = Awaited<ReturnType<typeof startFakeLago>>;

const closers: Array<() => Promise<void>> = [];
afterAll(() => Promise.all(closers.map((close) => close())));
async function started<T extends { close(): Promise<void> }>(server: Promise<T>): Promise<T> {
  const s = await server;
  closers.push(() => s.close());
  return s;
}

const quiet = { handleExit: false, flushInterval: 20, onFlushError: () => undefined } as const;
const CUSTOMERS: Record<string, string> = { acme: 'cus_acme', globex: 'cus_globex' };
const usage = (tenant: string | undefined, input: number, output = 1): ManualUsage => ({
  provider: 'openai',
  model: 'gpt-4o',
  input_tokens: input,
  output_tokens: output,
  ...(tenant === undefined ? {} : { tenant_id: tenant }),
});

function stripeSink(stripe: Stripe, extra: Record<string, unknown> = {}) {
  return {
    type: 'stripe' as const,
    apiKey: stripe.apiKey,
    baseUrl: stripe.baseUrl,
    customer: (tenantId: string) => CUSTOMERS[tenantId],
    meters: [{ eventName: 'llm_tokens', value: 'total_tokens' as const }],
    ...extra,
  };
}

describe('Stripe meter events', () => {
  let stripe: Stripe;
  let providers: Awaited<ReturnType<typeof startFakeProviders>>;
  beforeAll(async () => {
    stripe = await started(startFakeStripe());
    providers = await started(startFakeProviders());
  });

  it('one meter event per usage event and meter, through the v2 stream: integer values, dimensions, a stable identifier', async () => {
    const events: any[] = [];
    const before = stripe.meterEvents.length;
    const meter = new Meter({
      ...quiet,
      onEvent: (e) => events.push(e),
      sinks: [
        stripeSink(stripe, {
          meters: [
            { eventName: 'llm_tokens', value: 'total_tokens' },
            { eventName: 'llm_input_tokens', value: 'input_tokens', dimensions: ['model'] },
            { eventName: 'llm_cost', value: 'cost_micros' },
          ],
        }),
      ],
    });
    const client = meter.wrap(new OpenAI({ apiKey: 'sk-test-key', baseURL: providers.openaiBaseURL, maxRetries: 0 }), { customerId: 'acme' });
    await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] });
    const stream = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], stream: true });
    for await (const _ of stream);
    await meter.shutdown();

    expect(events).toHaveLength(2);
    const v2 = stripe.meterEvents.slice(before);
    expect(v2.every((m: any) => m.via === 'v2')).toBe(true);
    const expected = events.flatMap((e) => [
      { event_name: 'llm_tokens', value: String(e.total_tokens) },
      { event_name: 'llm_input_tokens', value: String(e.input_tokens), model: e.model },
      // Stripe values are whole numbers: cost in micro-dollars, rounded.
      { event_name: 'llm_cost', value: String(Math.round(e.cost_usd * 1e6)) },
    ]);
    expect(v2.map((m: any) => ({ event_name: m.event_name, ...m.payload }))).toEqual(
      expected.map((m) => ({ ...m, stripe_customer_id: 'cus_acme' })),
    );
    expect(events.every((e) => e.cost_usd > 0 && e.total_tokens > 0)).toBe(true);
    expect(new Set(v2.map((m: any) => m.identifier)).size).toBe(6);
    expect(v2.map((m: any) => m.timestamp)).toEqual(events.flatMap((e) => [e.timestamp, e.timestamp, e.timestamp]));
    expect(stripe.rejected).toEqual([]);
    const streamRequests = stripe.requests.filter((r: any) => r.path === '/v2/billing/meter_event_stream');
    expect(streamRequests.every((r: any) => r.headers.authorization === `Bearer ${stripe.sessions.at(-1).authentication_token}`)).toBe(true);
  });

  it('at most 100 meter events a stream request (a batch of 60 events with two meters is two requests)', async () => {
    const meter = new Meter({
      ...quiet,
      maxBatchSize: 60,
      flushInterval: 60_000,
      sinks: [stripeSink(stripe, { meters: [{ eventName: 'llm_tokens', value: 'total_tokens' }, { eventName: 'llm_output', value: 'output_tokens' }] })],
    });
    const requestsBefore = stripe.requests.length;
    const before = stripe.meterEvents.length;
    for (let i = 1; i <= 60; i++) meter.trackManually(usage('acme', i));
    await meter.shutdown();
    const sizes = stripe.requests.slice(requestsBefore).filter((r: any) => r.path === '/v2/billing/meter_event_stream').map((r: any) => r.body.events.length);
    expect(sizes).toEqual([100, 20]);
    expect(stripe.meterEvents.length - before).toBe(120);
  });

  it('the same event sent twice (another process, a replay) is one meter event: the identifier derives from the event id and meter', async () => {
    const before = stripe.meterEvents.length;
    for (let i = 0; i < 2; i++) {
      const meter = new Meter({ ...quiet, sinks: [stripeSink(stripe)] });
      meter.trackManually({ ...usage('acme', 10, 5), event_id: '7d3c7d7e-4b7a-4b9e-9a4b-6d0f1f7d2a11' });
      await meter.shutdown();
    }
    expect(stripe.meterEvents.slice(before).map((m: any) => m.payload.value)).toEqual(['15']);
  });

  it('a tenant without customer, an event without tenant and one older than Stripe takes are counted and never sent, and hold up no one', async () => {
    const lookups: string[] = [];
    const meter = new Meter({
      ...quiet,
      sinks: [
        stripeSink(stripe, {
          customer: async (tenantId: string) => {
            lookups.push(tenantId);
            await new Promise((r) => setImmediate(r));
            return CUSTOMERS[tenantId];
          },
        }),
      ],
    });
    const before = stripe.meterEvents.length;
    meter.trackManually(usage('acme', 1));
    meter.trackManually(usage('initech', 2));
    meter.trackManually(usage(undefined, 3));
    meter.trackManually({ ...usage('globex', 4), timestamp: new Date(Date.now() - 36 * 24 * 3600_000) });
    await meter.flush();
    meter.trackManually(usage('acme', 5));
    meter.trackManually(usage('globex', 6));
    await meter.shutdown();
    expect(stripe.meterEvents.slice(before).map((m: any) => [m.payload.stripe_customer_id, m.payload.value])).toEqual([
      ['cus_acme', '2'],
      ['cus_acme', '6'],
      ['cus_globex', '7'],
    ]);
    // Looked up once per tenant, the answer cached (initech's "none" too).
    expect([...lookups].sort()).toEqual(['acme', 'globex', 'initech']);
    expect(meter.stats().sinks.stripe).toMatchObject({ sent: 3, dropped: 3, droppedBy: { no_customer: 1, no_tenant: 1, too_old: 1 }, queued: 0 });
  });

  it('says once per sink and reason what it leaves out', async () => {
    const stderr = await stderrOf(async () => {
      const meter = new Meter({ ...quiet, sinks: [stripeSink(stripe)] });
      for (let i = 1; i <= 3; i++) meter.trackManually(usage('initech', i));
      await meter.flush();
      meter.trackManually(usage('initech', 4));
      meter.trackManually(usage(undefined, 1));
      await meter.shutdown();
    });
    expect(stderr.match(/Stripe: events of tenants without a Stripe customer are not sent \(counted in stats\(\)\.sinks\.stripe\.droppedBy\.no_customer\)/g)).toHaveLength(1);
    expect(stderr.match(/Stripe: events without a tenant are not sent/g)).toHaveLength(1);
  });

  it('an expired session token is renewed and the events sent once', async () => {
    const meter = new Meter({ ...quiet, sinks: [stripeSink(stripe)] });
    const before = stripe.meterEvents.length;
    const sessionsBefore = stripe.sessions.length;
    meter.trackManually(usage('acme', 1));
    await meter.flush();
    stripe.expireSessions();
    meter.trackManually(usage('acme', 2));
    await meter.shutdown();
    expect(stripe.meterEvents.slice(before).map((m: any) => m.payload.value)).toEqual(['2', '3']);
    expect(stripe.sessions.length - sessionsBefore).toBe(2);
    expect(meter.stats().sinks.stripe).toMatchObject({ sent: 2, dropped: 0 });
  });

  it("Stripe's rate limit (429) is retried with backoff; every event arrives once", async () => {
    let limited = 0;
    stripe.respondWith(({ path }: { path: string }) => (path.endsWith('meter_event_stream') && limited++ < 2 ? { status: 429 } : undefined));
    const meter = new Meter({ ...quiet, sinks: [stripeSink(stripe)] });
    const before = stripe.meterEvents.length;
    for (let i = 1; i <= 5; i++) meter.trackManually(usage('acme', i));
    await until(() => stripe.meterEvents.length - before === 5, 'the five events past the rate limit');
    stripe.respondWith(() => undefined);
    await meter.shutdown();
    expect(meter.stats().sinks.stripe).toMatchObject({ sent: 5, dropped: 0, retried: 2 });
  });

  it('a value Stripe cannot take (more than 15 significant digits) is counted, not sent', async () => {
    const meter = new Meter({ ...quiet, sinks: [stripeSink(stripe)] });
    const before = stripe.meterEvents.length;
    meter.trackManually(usage('acme', 1e15));
    meter.trackManually(usage('acme', 1));
    await meter.shutdown();
    expect(stripe.meterEvents.slice(before).map((m: any) => m.payload.value)).toEqual(['2']);
    expect(meter.stats().sinks.stripe.droppedBy).toEqual({ invalid_value: 1 });
  });

  it('v1: one form-encoded request per meter event; a validation error drops that event only', async () => {
    const meter = new Meter({ ...quiet, sinks: [stripeSink(stripe, { api: 'v1', customer: (t: string) => (t === 'bad' ? 'not a customer' : CUSTOMERS[t]) })] });
    const before = stripe.meterEvents.length;
    stripe.respondWith(({ body }: { body: any }) => (body?.['payload[stripe_customer_id]'] === 'not a customer' ? { status: 400 } : undefined));
    meter.trackManually(usage('acme', 1));
    meter.trackManually(usage('bad', 2));
    meter.trackManually(usage('globex', 3));
    await meter.shutdown();
    stripe.respondWith(() => undefined);
    const sent = stripe.meterEvents.slice(before);
    expect(sent.map((m: any) => [m.via, m.payload.stripe_customer_id, m.payload.value])).toEqual([
      ['v1', 'cus_acme', '2'],
      ['v1', 'cus_globex', '4'],
    ]);
    expect(meter.stats().sinks.stripe).toMatchObject({ sent: 2, droppedBy: { rejected: 1 } });
  });

  it('resolved runs as a meter of outcome events; token meters take no outcome events', async () => {
    const meter = new Meter({
      ...quiet,
      sinks: [stripeSink(stripe, { meters: [{ eventName: 'llm_tokens', value: 'total_tokens' }, { eventName: 'resolutions', value: 'resolved_runs' }] })],
    });
    const before = stripe.meterEvents.length;
    meter.forTenant('acme', () => {
      meter.forRun('ticket-1', () => meter.trackManually(usage(undefined, 3)));
      meter.forRun('ticket-2', () => meter.trackManually(usage(undefined, 4)));
    });
    meter.resolve({ runId: 'ticket-1', outcome: 'resolved' });
    meter.resolve({ runId: 'ticket-2', outcome: 'escalated' });
    await meter.shutdown();
    expect(stripe.meterEvents.slice(before).map((m: any) => [m.event_name, m.payload.value])).toEqual([
      ['llm_tokens', '4'],
      ['llm_tokens', '5'],
      ['resolutions', '1'],
    ]);
  });
});

describe('OpenMeter', () => {
  let openmeter: OpenMeter;
  beforeAll(async () => {
    openmeter = await started(startFakeOpenMeter());
  });

  it('CloudEvents with a subject always (the tenant, or the configured one), a fixed source and the configured types', async () => {
    const meter = new Meter({
      ...quiet,
      sinks: [{ type: 'openmeter', baseUrl: openmeter.baseUrl, apiKey: openmeter.apiKey, subject: 'house', eventType: 'prompt' }],
    });
    const a = meter.trackManually(usage('acme', 1));
    const b = meter.trackManually(usage(undefined, 2));
    meter.forRun('r1', () => meter.trackManually(usage('acme', 3)));
    const outcome = meter.resolve({ runId: 'r1', tenantId: 'acme', outcome: 'resolved', revenueUsd: 2 });
    await meter.shutdown();
    expect(openmeter.events.map((ce: any) => [ce.id, ce.type, ce.subject, ce.source])).toEqual([
      [a.event_id, 'prompt', 'acme', 'llm-meter'],
      [b.event_id, 'prompt', 'house', 'llm-meter'],
      [expect.any(String), 'prompt', 'acme', 'llm-meter'],
      [outcome.event_id, 'llm.outcome', 'acme', 'llm-meter'],
    ]);
    expect(openmeter.events[0].data).toMatchObject({ input_tokens: 1, output_tokens: 1, total_tokens: 2 });
    expect(openmeter.requests.every((r: any) => r.headers.authorization === `Bearer ${openmeter.apiKey}`)).toBe(true);
  });

  it('a 503 is retried and the batch arrives once; a redelivery of the same events is deduplicated', async () => {
    let failures = 0;
    openmeter.respondWith(() => (failures++ < 2 ? { status: 503 } : undefined));
    const before = openmeter.events.length;
    const meter = new Meter({ ...quiet, sinks: [{ type: 'openmeter', baseUrl: openmeter.baseUrl, apiKey: openmeter.apiKey }] });
    const event = meter.trackManually(usage('acme', 1));
    await until(() => openmeter.events.length > before, 'delivery after the outage');
    await meter.shutdown();
    openmeter.respondWith(() => undefined);
    const again = new Meter({ ...quiet, sinks: [{ type: 'openmeter', baseUrl: openmeter.baseUrl, apiKey: openmeter.apiKey }] });
    again.trackManually({ ...usage('acme', 1), event_id: event.event_id });
    await again.shutdown();
    expect(openmeter.events.slice(before).map((ce: any) => ce.id)).toEqual([event.event_id]);
    expect(openmeter.duplicates).toBeGreaterThanOrEqual(1);
  });
});

describe('Lago', () => {
  let lago: Lago;
  beforeAll(async () => {
    lago = await started(startFakeLago({ subscriptions: ['sub_acme', 'sub_globex'] }));
  });
  const lagoSink = (extra: Record<string, unknown> = {}) => ({
    type: 'lago' as const,
    baseUrl: lago.baseUrl,
    apiKey: lago.apiKey,
    subscription: (tenantId: string) => ({ acme: 'sub_acme', globex: 'sub_globex' })[tenantId],
    ...extra,
  });

  it('batch events: transaction_id is the event id, the tenant its subscription, the metric code, usage as properties', async () => {
    const meter = new Meter({ ...quiet, sinks: [lagoSink({ outcomeCode: 'resolutions' })] });
    const a = meter.trackManually({ ...usage('acme', 10, 5), cost_usd: 0.0125 });
    const b = meter.trackManually(usage('initech', 1));
    meter.forRun('r9', () => meter.trackManually(usage('globex', 2)));
    const outcome = meter.resolve({ runId: 'r9', tenantId: 'globex', outcome: 'resolved', revenueUsd: 1.5 });
    await meter.shutdown();
    const sent = lago.events.filter((e: any) => [a.event_id, b.event_id, outcome.event_id].includes(e.transaction_id));
    expect(sent).toEqual([
      {
        transaction_id: a.event_id,
        external_subscription_id: 'sub_acme',
        code: 'llm_tokens',
        timestamp: Date.parse(a.timestamp) / 1000,
        properties: { input_tokens: 10, output_tokens: 5, total_tokens: 15, cost_usd: 0.0125, model: 'gpt-4o', provider: 'openai', endpoint: a.endpoint },
      },
      expect.objectContaining({ transaction_id: outcome.event_id, external_subscription_id: 'sub_globex', code: 'resolutions', properties: expect.objectContaining({ outcome: 'resolved', revenue_usd: 1.5, calls: 1 }) }),
    ]);
    expect(meter.stats().sinks.lago).toMatchObject({ sent: 3, droppedBy: { no_subscription: 1 } });
  });

  it('a 422 drops that batch, counted; the next batch goes through', async () => {
    let first = true;
    lago.respondWith(() => (first ? ((first = false), { status: 422 }) : undefined));
    const errors: Error[] = [];
    const meter = new Meter({ ...quiet, onFlushError: (e) => errors.push(e), sinks: [lagoSink()] });
    meter.trackManually(usage('acme', 1));
    await meter.flush();
    const kept = meter.trackManually(usage('acme', 2));
    await meter.shutdown();
    lago.respondWith(() => undefined);
    expect(lago.events.at(-1).transaction_id).toBe(kept.event_id);
    expect(errors.map((e) => e.message)).toEqual(['Lago answered HTTP 422']);
    expect(meter.stats().sinks.lago).toMatchObject({ sent: 1, droppedBy: { rejected: 1 } });
  });
});

describe('several sinks', () => {
  it('each has its own queue: an ingest that is down holds up neither the file nor Stripe, and its events wait for it', async () => {
    const stripe = await started(startFakeStripe());
    let down = true;
    const ingest = await startFakeIngest({ respondWith: () => (down ? { status: 503 } : undefined) });
    closers.push(() => ingest.close());
    const file = join(mkdtempSync(join(tmpdir(), 'llm-meter-sinks-')), 'usage.jsonl');
    const meter = new Meter({ ...quiet, url: ingest.url, file, sinks: [stripeSink(stripe)] });
    const ids = [1, 2, 3].map((i) => meter.trackManually(usage('acme', i)).event_id);
    await until(() => stripe.meterEvents.length === 3, 'Stripe, while the ingest is down');
    await meter.flush();
    expect(readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l).event_id)).toEqual(ids);
    const stats = meter.stats();
    expect(Object.keys(stats.sinks)).toEqual(['http', 'file', 'stripe']);
    expect(stats.sinks.http!.queued).toBe(3);
    expect(stats).toMatchObject({ queued: 3, sent: 0 });
    down = false;
    await meter.shutdown();
    expect(ingest.events.map((e: any) => e.event_id)).toEqual(ids);
  });
});

describe('sink options', () => {
  const invalid: Array<[string, unknown, RegExp]> = [
    ['not an array', 'stripe', /sinks must be an array of sink options, got "stripe"/],
    ['unknown type', [{ type: 'kafka' }], /sinks\[0\]\.type must be one of 'http', 'file', 'stripe', 'openmeter', 'lago', got "kafka"/],
    ['unknown key', [{ type: 'file', path: 'x', paht: 'y' }], /unknown sinks\[0\] option "paht"/],
    ['http without url', [{ type: 'http' }], /sinks\[0\]\.url is required/],
    ['a bad url', [{ type: 'openmeter', baseUrl: 'ftp://x' }], /sinks\[0\]\.baseUrl must use http or https/],
    ['stripe without key', [{ type: 'stripe', customer: () => 'c', meters: [{ eventName: 'e', value: 'total_tokens' }] }], /sinks\[0\]\.apiKey is required/],
    ['stripe without customer', [{ type: 'stripe', apiKey: 'sk', meters: [{ eventName: 'e', value: 'total_tokens' }] }], /sinks\[0\]\.customer is required/],
    ['stripe without meters', [{ type: 'stripe', apiKey: 'sk', customer: () => 'c', meters: [] }], /sinks\[0\]\.meters must be a non-empty array/],
    ['a meter value', [{ type: 'stripe', apiKey: 'sk', customer: () => 'c', meters: [{ eventName: 'e', value: 'tokens' }] }], /sinks\[0\]\.meters\[0\]\.value must be one of .*got "tokens"/],
    ['a dimension', [{ type: 'stripe', apiKey: 'sk', customer: () => 'c', meters: [{ eventName: 'e', value: 'total_tokens', dimensions: ['tenant'] }] }], /sinks\[0\]\.meters\[0\]\.dimensions must be an array of/],
    ['lago without subscription', [{ type: 'lago', apiKey: 'k' }], /sinks\[0\]\.subscription is required/],
    ['two sinks named alike', [{ type: 'file', path: 'a', name: 'x' }, { type: 'file', path: 'b', name: 'x' }], /sinks\[1\]\.name "x" is used by another sink/],
    ['a queue option', [{ type: 'file', path: 'a', maxBatchSize: 0 }], /sinks\[0\]\.maxBatchSize must be a positive integer, got 0/],
  ];
  it.each(invalid)('refuses %s, naming the field and the value', (_, sinks, message) => {
    expect(() => new Meter({ handleExit: false, sinks: sinks as never })).toThrow(ConfigError);
    expect(() => new Meter({ handleExit: false, sinks: sinks as never })).toThrow(message);
  });

  it('names sinks by type, numbering repeats; the outbox option is checked too', () => {
    const meter = new Meter({ handleExit: false, file: '/dev/null', sinks: [{ type: 'file', path: '/dev/null' }] });
    expect(Object.keys(meter.stats().sinks)).toEqual(['file', 'file-2']);
    expect(() => new Meter({ handleExit: false, outbox: { dir: '' } })).toThrow(/outbox\.dir must be a file path, got ""/);
    expect(() => new Meter({ handleExit: false, outbox: { dir: 'x', fsync: 'yes' } as never })).toThrow(/outbox\.fsync must be a boolean, got "yes"/);
  });
});

describe.each([
  ['stripe', () => started(startFakeStripe()), (s: any) => stripeSink(s), (s: any) => s.meterEvents.map((m: any) => m.identifier), '/v2/billing/meter_event_stream'],
  ['openmeter', () => started(startFakeOpenMeter()), (s: any) => ({ type: 'openmeter', baseUrl: s.baseUrl, apiKey: s.apiKey }), (s: any) => s.events.map((e: any) => e.id), '/api/v1/events'],
  [
    'lago',
    () => started(startFakeLago()),
    (s: any) => ({ type: 'lago', baseUrl: s.baseUrl, apiKey: s.apiKey, subscription: (t: string) => `sub_${t}` }),
    (s: any) => s.events.map((e: any) => e.transaction_id),
    '/api/v1/events/batch',
  ],
] as const)('%s faults: every event arrives once', (name, start, sinkOf, received, path) => {
  const faults: Array<[string, (attempt: number) => Record<string, unknown> | undefined]> = [
    ['a 503, twice', (attempt) => (attempt <= 2 ? { status: 503 } : undefined)],
    // Twice: Stripe's library itself retries a closed connection once, whatever its retry setting.
    ['a connection reset, twice', (attempt) => (attempt <= 2 ? { reset: true } : undefined)],
    ['an answer slower than requestTimeout (the first attempt may still count)', (attempt) => (attempt === 1 ? { delayMs: 400 } : undefined)],
  ];
  it.each(faults)('%s', async (_fault, fault) => {
    const server = await start();
    let attempts = 0;
    server.respondWith((request: { path: string }) => (request.path === path ? fault(++attempts) : undefined));
    const meter = new Meter({ ...quiet, requestTimeout: 150, sinks: [sinkOf(server) as never] });
    for (let i = 1; i <= 4; i++) meter.trackManually(usage('acme', i));
    await until(() => received(server).length === 4 && meter.stats().sinks[name]!.sent === 4, 'the four events past the fault');
    await meter.shutdown();
    expect(new Set(received(server)).size).toBe(4);
    expect(meter.stats().sinks[name]).toMatchObject({ sent: 4, dropped: 0, queued: 0 });
    expect(meter.stats().sinks[name]!.retried).toBeGreaterThanOrEqual(1);
  });
});

describe('replays toward deduplicating billing APIs', () => {
  it('Lago: a batch with transaction ids Lago has (a 422 for the whole batch) delivers the rest', async () => {
    const lago = await started(startFakeLago());
    const sink = { type: 'lago' as const, baseUrl: lago.baseUrl, apiKey: lago.apiKey, subscription: (t: string) => `sub_${t}` };
    const first = new Meter({ ...quiet, sinks: [sink] });
    const old = first.trackManually(usage('acme', 1));
    await first.shutdown();
    const errors: Error[] = [];
    const second = new Meter({ ...quiet, sinks: [sink], onFlushError: (e) => errors.push(e) });
    second.trackManually({ ...usage('acme', 1), event_id: old.event_id });
    const fresh = second.trackManually(usage('acme', 2));
    await second.shutdown();
    expect(lago.events.map((e: any) => e.transaction_id)).toEqual([old.event_id, fresh.event_id]);
    expect(lago.duplicates).toBe(1);
    expect(second.stats().sinks.lago).toMatchObject({ sent: 2, dropped: 0 });
  });

  it('Stripe v1: an identifier Stripe has (a 400) counts as delivered', async () => {
    const stripe = await started(startFakeStripe());
    const sink = stripeSink(stripe, { api: 'v1' });
    const id = '0b6b7c1e-8f0e-4a55-9d0a-3f3c2d1e0f9a';
    for (let i = 0; i < 2; i++) {
      const meter = new Meter({ ...quiet, sinks: [sink] });
      meter.trackManually({ ...usage('acme', 3), event_id: id });
      await meter.shutdown();
      expect(meter.stats().sinks.stripe).toMatchObject({ sent: 1, dropped: 0 });
    }
    expect(stripe.meterEvents.map((m: any) => m.payload.value)).toEqual(['4']);
    expect(stripe.duplicates).toBe(1);
  });
});
