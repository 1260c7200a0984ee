import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeLago, startFakeOpenMeter, startFakeStripe } from './fixtures/fake-billing.mjs';

const gzipAsync = promisify(gzip);

/** The error a promise rejects with (the test fails if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<any> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

describe('fake Stripe, driven by the real stripe library', () => {
  let fake: Awaited<ReturnType<typeof startFakeStripe>>;
  let stripe: Stripe;
  const clientFor = (key: string) => new Stripe(key, { host: '127.0.0.1', port: new URL(fake.baseUrl).port, protocol: 'http', maxNetworkRetries: 0 });
  beforeAll(async () => {
    fake = await startFakeStripe();
    stripe = clientFor(fake.apiKey);
  });
  afterAll(() => fake.close());

  it('v1: creates a meter event, answers the meter event object, refuses a repeated identifier and a bad value', async () => {
    const timestamp = Math.floor(Date.now() / 1000) - 60;
    const created = await stripe.billing.meterEvents.create({
      event_name: 'llm_tokens',
      payload: { stripe_customer_id: 'cus_1', value: '12' },
      identifier: 'v1-a',
      timestamp,
    });
    expect(created).toMatchObject({ object: 'billing.meter_event', event_name: 'llm_tokens', identifier: 'v1-a', livemode: false, timestamp, payload: { stripe_customer_id: 'cus_1', value: '12' } });
    expect(fake.meterEvents.at(-1)).toEqual({ event_name: 'llm_tokens', payload: { stripe_customer_id: 'cus_1', value: '12' }, identifier: 'v1-a', timestamp, via: 'v1' });
    expect(fake.requests.at(-1)).toMatchObject({ method: 'POST', path: '/v1/billing/meter_events', status: 200, body: { 'payload[value]': '12' } });

    const again = await rejection(stripe.billing.meterEvents.create({ event_name: 'llm_tokens', payload: { stripe_customer_id: 'cus_1', value: '1' }, identifier: 'v1-a' }));
    expect(again).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(again).toMatchObject({ statusCode: 400, message: 'An event already exists with identifier v1-a.' });
    expect(again.headers['stripe-should-retry']).toBe('false');

    const digits = await rejection(stripe.billing.meterEvents.create({ event_name: 'llm_tokens', payload: { stripe_customer_id: 'cus_1', value: '1000000000000000' } }));
    expect(digits).toMatchObject({ statusCode: 400, code: 'meter_event_value_too_many_digits', param: 'payload[value]' });
    const old = await rejection(stripe.billing.meterEvents.create({ event_name: 'e', payload: { stripe_customer_id: 'cus_1', value: '1' }, timestamp: timestamp - 36 * 86_400 }));
    expect(old.code).toBe('timestamp_too_far_in_past');
    const missing = await rejection(stripe.billing.meterEvents.create({ event_name: '', payload: { value: '1' } }));
    expect(missing.code).toBe('parameter_invalid_empty');
    expect(fake.rejected.map((r: any) => r.code)).toEqual(['meter_event_value_too_many_digits', 'timestamp_too_far_in_past']);

    const unauthorized = await rejection(clientFor('sk_test_wrong').billing.meterEvents.create({ event_name: 'e', payload: { stripe_customer_id: 'c', value: '1' } }));
    expect(unauthorized).toBeInstanceOf(Stripe.errors.StripeAuthenticationError);
  });

  it('v1: a retry under the same Idempotency-Key replays the first answer', async () => {
    const send = () =>
      fetch(`${fake.baseUrl}/v1/billing/meter_events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${fake.apiKey}`, 'content-type': 'application/x-www-form-urlencoded', 'idempotency-key': 'key-1' },
        body: 'event_name=e&payload[stripe_customer_id]=cus_1&payload[value]=3&identifier=idem-1',
      });
    const first = await send();
    const second = await send();
    expect([first.status, second.status]).toEqual([200, 200]);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    expect(fake.meterEvents.filter((m: any) => m.identifier === 'idem-1')).toHaveLength(1);
  });

  it('v2: a session, then the stream with the session token; duplicates and bad events dropped silently', async () => {
    const session = await stripe.v2.billing.meterEventSession.create();
    expect(session).toMatchObject({ object: 'v2.billing.meter_event_session', livemode: false });
    expect(Date.parse(session.expires_at) - Date.parse(session.created)).toBe(15 * 60_000);
    expect(fake.sessions.at(-1).authentication_token).toBe(session.authentication_token);

    const timestamp = new Date(Date.now() - 1000).toISOString();
    const event = (identifier: string, value: string) => ({ event_name: 'llm_tokens', identifier, timestamp, payload: { stripe_customer_id: 'cus_2', value } });
    const before = fake.meterEvents.length;
    const answer = await stripe.v2.billing.meterEventStream.create({ events: [event('v2-a', '5'), event('v2-a', '5'), event('v2-b', '1.5')] }, { apiKey: session.authentication_token });
    expect(answer as unknown).toEqual({});
    expect(fake.meterEvents.slice(before)).toEqual([{ event_name: 'llm_tokens', identifier: 'v2-a', timestamp, payload: { stripe_customer_id: 'cus_2', value: '5' }, via: 'v2' }]);
    expect(fake.duplicates).toBeGreaterThanOrEqual(1);
    expect(fake.rejected.at(-1)).toMatchObject({ via: 'v2', code: 'meter_event_invalid_value', event: { identifier: 'v2-b' } });
    expect(fake.requests.at(-1)!.headers.authorization).toBe(`Bearer ${session.authentication_token}`);

    const empty = await rejection(stripe.v2.billing.meterEventStream.create({ events: [] }, { apiKey: session.authentication_token }));
    expect(empty).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(empty).toMatchObject({ statusCode: 400, code: 'invalid_fields' });
    const unixSeconds = await rejection(
      stripe.v2.billing.meterEventStream.create({ events: [{ ...event('v2-c', '1'), timestamp: '1700000000' }] }, { apiKey: session.authentication_token }),
    );
    expect(unixSeconds.statusCode).toBe(400);
  });

  it('v2: an expired session token is TemporarySessionExpiredError', async () => {
    const session = await stripe.v2.billing.meterEventSession.create();
    fake.expireSessions();
    const expired = await rejection(
      stripe.v2.billing.meterEventStream.create({ events: [{ event_name: 'e', payload: { stripe_customer_id: 'c', value: '1' } }] }, { apiKey: session.authentication_token }),
    );
    expect(expired).toBeInstanceOf(Stripe.errors.TemporarySessionExpiredError);
    expect(expired).toMatchObject({ statusCode: 401, code: 'billing_meter_event_session_expired' });
    const unknown = await rejection(stripe.v2.billing.meterEventStream.create({ events: [{ event_name: 'e', payload: {} }] }, { apiKey: 'not-a-token' }));
    expect(unknown).toBeInstanceOf(Stripe.errors.TemporarySessionExpiredError);
  });

  it("a 429 is Stripe's rate limit body, StripeRateLimitError in v1 and v2", async () => {
    fake.respondWith(() => ({ status: 429 }));
    try {
      const v1 = await rejection(stripe.billing.meterEvents.create({ event_name: 'e', payload: { stripe_customer_id: 'c', value: '1' } }));
      expect(v1).toBeInstanceOf(Stripe.errors.StripeRateLimitError);
      expect(v1).toMatchObject({ statusCode: 429, code: 'rate_limit' });
      expect(v1.headers['stripe-rate-limited-reason']).toBe('global-rate');
      const v2 = await rejection(stripe.v2.billing.meterEventStream.create({ events: [{ event_name: 'e', payload: {} }] }, { apiKey: 'any' }));
      expect(v2).toBeInstanceOf(Stripe.errors.StripeRateLimitError);
    } finally {
      fake.respondWith(() => undefined);
    }
    expect(fake.requests.slice(-2).map((r: any) => r.status)).toEqual([429, 429]);
  });

  it('waitForMeterEvents rejects with what did arrive', async () => {
    await expect(fake.waitForMeterEvents(fake.meterEvents.length + 1, 50)).rejects.toThrow(/timed out after 50ms waiting for \d+ meter events/);
  });
});

describe('fake OpenMeter', () => {
  let fake: Awaited<ReturnType<typeof startFakeOpenMeter>>;
  beforeAll(async () => {
    fake = await startFakeOpenMeter();
  });
  afterAll(() => fake.close());

  const cloudEvent = (id: string, extra: Record<string, unknown> = {}) => ({ specversion: '1.0', id, source: 'llm-meter', type: 'prompt', subject: 'acme', time: new Date().toISOString(), data: { tokens: 3 }, ...extra });
  const post = async (events: unknown, { key = fake.apiKey, compress = false } = {}) => {
    const json = JSON.stringify(events);
    return fetch(`${fake.baseUrl}/api/v1/events`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/cloudevents-batch+json', ...(compress ? { 'content-encoding': 'gzip' } : {}) },
      body: compress ? await gzipAsync(json) : json,
    });
  };

  it('a gzipped batch is 204; a repeated (source, id) is taken and dropped; a batch with an event without subject is refused whole', async () => {
    expect((await post([cloudEvent('a'), cloudEvent('b')], { compress: true })).status).toBe(204);
    expect((await post([cloudEvent('b'), cloudEvent('c')])).status).toBe(204);
    expect(fake.events.map((e: any) => e.id)).toEqual(['a', 'b', 'c']);
    expect(fake.duplicates).toBe(1);

    const { subject: _, ...noSubject } = cloudEvent('d');
    const refused = await post([cloudEvent('e'), noSubject]);
    expect(refused.status).toBe(400);
    expect(refused.headers.get('content-type')).toBe('application/problem+json');
    expect(await refused.json()).toMatchObject({ type: 'about:blank', title: 'Bad Request', status: 400, detail: 'invalid event: subject: REQUIRED' });
    expect((await post([cloudEvent('f', { specversion: '0.3' })])).status).toBe(400);
    expect(fake.events.map((e: any) => e.id)).toEqual(['a', 'b', 'c']);

    expect((await post([cloudEvent('g')], { key: 'wrong' })).status).toBe(401);
    await expect(fake.waitForEvents(3, 100)).resolves.toHaveLength(3);
  });
});

describe('fake Lago', () => {
  let fake: Awaited<ReturnType<typeof startFakeLago>>;
  beforeAll(async () => {
    fake = await startFakeLago({ subscriptions: ['sub_1'] });
  });
  afterAll(() => fake.close());

  const lagoEvent = (transaction_id: string, extra: Record<string, unknown> = {}) => ({ transaction_id, external_subscription_id: 'sub_1', code: 'llm_tokens', timestamp: 1_700_000_000.5, properties: { tokens: 3 }, ...extra });
  const post = (body: unknown, key = fake.apiKey) =>
    fetch(`${fake.baseUrl}/api/v1/events/batch`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });

  it('a good batch is 200 with the events; a repeated transaction_id and an invalid event are 422 validation_errors for the batch', async () => {
    const ok = await post({ events: [lagoEvent('t1'), lagoEvent('t2', { timestamp: '1700000001' }), lagoEvent('t3', { external_subscription_id: 'sub_unknown' })] });
    expect(ok.status).toBe(200);
    const body = (await ok.json()) as any;
    expect(body.events.map((e: any) => [e.transaction_id, e.timestamp, e.lago_subscription_id === null])).toEqual([
      ['t1', '2023-11-14T22:13:20.500Z', false],
      ['t2', '2023-11-14T22:13:21.000Z', false],
      ['t3', '2023-11-14T22:13:20.500Z', true],
    ]);
    expect(fake.events).toEqual([lagoEvent('t1'), lagoEvent('t2', { timestamp: '1700000001' })]);
    expect(fake.dropped.map((e: any) => e.transaction_id)).toEqual(['t3']);

    const repeated = await post({ events: [lagoEvent('t4'), lagoEvent('t1')] });
    expect(repeated.status).toBe(422);
    expect(await repeated.json()).toEqual({ status: 422, error: 'Unprocessable Entity', code: 'validation_errors', error_details: { 1: { transaction_id: ['value_already_exist'] } } });
    expect(fake.duplicates).toBe(1);

    const invalid = await post({ events: [lagoEvent('t5'), { transaction_id: 't6', external_subscription_id: 'sub_1', timestamp: 'yesterday' }] });
    expect(invalid.status).toBe(422);
    expect(((await invalid.json()) as any).error_details).toEqual({ 1: { code: ['value_is_mandatory'], timestamp: ['invalid_format'] } });
    expect(((await (await post({ events: Array.from({ length: 101 }, (_, i) => lagoEvent(`x${i}`)) })).json()) as any).error_details).toEqual({ events: ['too_many_events'] });
    expect((await post({ events: [] })).status).toBe(422);
    expect(fake.events.map((e: any) => e.transaction_id)).toEqual(['t1', 't2']);

    const unauthorized = await post({ events: [lagoEvent('t7')] }, 'wrong');
    expect([unauthorized.status, await unauthorized.json()]).toEqual([401, { status: 401, error: 'Unauthorized' }]);
  });

  it('with the ClickHouse events store a repeated transaction_id is taken and dropped', async () => {
    const clickhouse = await startFakeLago({ eventsStore: 'clickhouse' });
    try {
      const send = () =>
        fetch(`${clickhouse.baseUrl}/api/v1/events/batch`, {
          method: 'POST',
          headers: { authorization: `Bearer ${clickhouse.apiKey}`, 'content-type': 'application/json' },
          body: JSON.stringify({ events: [lagoEvent('c1')] }),
        });
      expect([(await send()).status, (await send()).status]).toEqual([200, 200]);
      expect([clickhouse.events.length, clickhouse.duplicates]).toEqual([1, 1]);
    } finally {
      await clickhouse.close();
    }
  });
});
