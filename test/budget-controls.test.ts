// Budget controls on the spend ledger: thresholds that alert once per tenant, window and threshold (fleet-wide on
// Redis), soft limits that alert and never refuse, and a default limit for tenants that have none of their own.
import { createServer, type IncomingMessage } from 'node:http';
import OpenAI from 'openai';
import { afterAll, describe, expect, it } from 'vitest';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { startRedisServer } from './fixtures/redis-server.mjs';
import { ConfigError, LimitExceededError, Meter, requireFromRepo, until } from './helpers.js';

const { ModelNotAllowedError, RateLimitedError } = requireFromRepo('llm-meter') as typeof import('llm-meter');

const providers = await startFakeProviders();
const redisStarted = startRedisServer();
afterAll(async () => Promise.all([providers.close(), (await redisStarted).stop()]));

let run = 0;
const redisLimits = async () => ({ redis: (await redisStarted).url, keyPrefix: `budgets${++run}-${process.pid}:` });
const quiet = { handleExit: false } as const;
/** Spend of exactly `usd`, booked like any event of the tenant. */
const spend = (meter: InstanceType<typeof Meter>, tenant: string, usd: number) =>
  meter.trackManually({ provider: 'openai', model: 'gpt-4o', input_tokens: 1, output_tokens: 1, tenant_id: tenant, cost_usd: usd });

async function webhookReceiver() {
  const bodies: Array<{ headers: IncomingMessage['headers']; body: any }> = [];
  const server = createServer((req, res) => {
    let text = '';
    req.on('data', (d: Buffer) => (text += d));
    req.on('end', () => {
      bodies.push({ headers: req.headers, body: JSON.parse(text) });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/alerts`;
  return { url, bodies, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

describe.each([
  ['in process', async () => ({})],
  ['on Redis', async () => ({ limits: await redisLimits() })],
])('thresholds (%s)', (_, store) => {
  it('each threshold alerts once per window, at the spend that reached it, to onThreshold and the webhook', async () => {
    const webhook = await webhookReceiver();
    const alerts: any[] = [];
    const meter = new Meter({ ...quiet, ...(await store()), thresholds: [0.5, 0.8, 1], onThreshold: (a) => alerts.push(a), thresholdWebhook: { url: webhook.url, apiKey: 'hook-key' } });
    await meter.setLimit('acme', { limitUsd: 1, frequency: 'per_day' });
    // 0.3, 0.6 (past 0.5), 0.9 (past 0.8), 1.2 (past 1), 1.5: three alerts, one each.
    for (let i = 0; i < 5; i++) {
      spend(meter, 'acme', 0.3);
      const count = alerts.length;
      await until(async () => (await meter.getUsage('acme'))[0]!.spentUsd >= 0.3 * (i + 1) - 1e-9, 'the spend in the ledger');
      if (i >= 1 && i <= 3) await until(() => alerts.length === count + 1, `the alert after spend ${i + 1}`);
    }
    await until(() => webhook.bodies.length === 3, 'three webhook posts');
    await meter.shutdown();
    expect(alerts.map((a) => [a.threshold, a.frequency, a.spentUsd, a.limitUsd, a.mode, a.isDefault])).toEqual([
      [0.5, 'per_day', 0.6, 1, 'hard', false],
      [0.8, 'per_day', 0.9, 1, 'hard', false],
      [1, 'per_day', 1.2, 1, 'hard', false],
    ]);
    expect(alerts.every((a) => a.tenantId === 'acme' && a.scope === 'tenant' && a.resetsAt instanceof Date)).toBe(true);
    expect(webhook.bodies.map((b) => b.body.threshold).sort()).toEqual([0.5, 0.8, 1]);
    expect(webhook.bodies[0]!.headers.authorization).toBe('Bearer hook-key');
    expect(new Set(webhook.bodies.map((b) => b.headers['idempotency-key'])).size).toBe(3);
    expect(webhook.bodies[0]!.body).toMatchObject({ type: 'llm.budget.threshold', tenant_id: 'acme', frequency: 'per_day', limit_usd: 1 });
    await webhook.close();
  });

  it("a limit's own thresholds win over the Meter's", async () => {
    const alerts: any[] = [];
    const meter = new Meter({ ...quiet, ...(await store()), thresholds: [0.5], onThreshold: (a) => alerts.push(a) });
    await meter.setLimit('acme', { limitUsd: 10, frequency: 'per_month', thresholds: [0.25] });
    spend(meter, 'acme', 3);
    await until(() => alerts.length === 1, 'the alert');
    spend(meter, 'acme', 3);
    await until(async () => (await meter.getUsage('acme')).find((w) => w.frequency === 'per_month')!.spentUsd === 6, 'the spend');
    await meter.shutdown();
    expect(alerts.map((a) => [a.threshold, a.frequency])).toEqual([[0.25, 'per_month']]);
  });
});

describe('thresholds across a fleet', () => {
  it('8 Meters on one Redis, spending for one tenant at once: every threshold alerts exactly once', async () => {
    const limits = await redisLimits();
    const alerts: any[] = [];
    const meters = Array.from({ length: 8 }, () => new Meter({ ...quiet, limits, thresholds: [0.25, 0.5, 0.75, 1], onThreshold: (a) => alerts.push(a) }));
    await meters[0]!.setLimit('acme', { limitUsd: 8, frequency: 'per_day' });
    // 8 x 10 x $0.12 = $9.60: past every threshold, each Meter spending concurrently.
    for (let round = 0; round < 10; round++) for (const meter of meters) spend(meter, 'acme', 0.12);
    await until(async () => Math.abs((await meters[0]!.getUsage('acme'))[0]!.spentUsd - 9.6) < 1e-9, 'every spend in Redis');
    await until(() => alerts.length === 4, 'the four alerts');
    await Promise.all(meters.map((m) => m.shutdown()));
    expect(alerts.map((a) => a.threshold).sort()).toEqual([0.25, 0.5, 0.75, 1]);
  });
});

describe.each([
  ['in process', async () => ({})],
  ['on Redis', async () => ({ limits: await redisLimits() })],
])('soft limits and the default limit (%s)', (_, store) => {
  const client = (meter: InstanceType<typeof Meter>, tenant: string) =>
    meter.wrap(new OpenAI({ apiKey: 'sk-test-key', baseURL: providers.openaiBaseURL, maxRetries: 0 }), { customerId: tenant });

  it('a soft limit never refuses and leaves the request as it was, plain or streamed; it alerts and records', async () => {
    const alerts: any[] = [];
    const meter = new Meter({ ...quiet, ...(await store()), onThreshold: (a) => alerts.push(a) });
    await meter.setLimit('acme', { limitUsd: 0.000001, frequency: 'per_day', mode: 'soft' });
    const openai = client(meter, 'acme');
    providers.reset();
    for (let i = 0; i < 3; i++) await openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] });
    const stream = await openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], stream: true });
    for await (const _chunk of stream);
    expect(providers.requests.filter((r) => r.path.endsWith('/chat/completions'))).toHaveLength(4);
    // Nothing added: a hard limit in strict mode would send an output cap with each request.
    expect(providers.requests.every((r) => r.body.max_completion_tokens === undefined && r.body.max_tokens === undefined)).toBe(true);
    await until(() => alerts.length === 1, 'the alert at 100 %');
    const [day] = await meter.getUsage('acme');
    expect(day).toMatchObject({ frequency: 'per_day', limitUsd: 0.000001, mode: 'soft', isDefault: false, thresholds: [1] });
    expect(day!.spentUsd).toBeGreaterThan(0.000001);
    expect(alerts[0]).toMatchObject({ mode: 'soft', threshold: 1 });
    await meter.shutdown();
  });

  it('the default limit applies to a tenant without a limit of its own, before any request; setLimit overrides it', async () => {
    const meter = new Meter({ ...quiet, ...(await store()), defaultLimit: { limitUsd: 0, frequency: 'per_day' } });
    providers.reset();
    await expect(client(meter, 'unknown-customer').chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })).rejects.toBeInstanceOf(LimitExceededError);
    expect(providers.requests).toHaveLength(0);
    expect((await meter.getUsage('unknown-customer'))[0]).toMatchObject({ frequency: 'per_day', limitUsd: 0, mode: 'hard', isDefault: true });
    // A policy, a rate limit or a budget of one feature is not a limit of the tenant's own: the default still applies.
    await meter.setPolicy('unknown-customer', { models: ['gpt-4o'] });
    await meter.setRateLimit('unknown-customer', { concurrent: 5 });
    await meter.setLimit('unknown-customer', { limitUsd: 5, frequency: 'per_day', feature: 'chat' });
    expect((await meter.getUsage('unknown-customer'))[0]).toMatchObject({ frequency: 'per_day', limitUsd: 0, mode: 'hard', isDefault: true });
    await expect(client(meter, 'unknown-customer').chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })).rejects.toMatchObject({ name: 'LimitExceededError', limitUsd: 0 });
    await meter.setLimit('paying', { limitUsd: 5, frequency: 'per_month' });
    await client(meter, 'paying').chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] });
    expect(providers.requests).toHaveLength(1);
    expect((await meter.getUsage('paying')).map((w) => [w.frequency, w.limitUsd, w.isDefault])).toEqual([
      ['per_month', 5, false],
      ['per_day', undefined, undefined],
    ]);
    await meter.removeLimit('paying', 'per_month');
    await expect(client(meter, 'paying').chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })).rejects.toBeInstanceOf(LimitExceededError);
    await meter.shutdown();
  });
});

describe.each([
  ['in process', async () => ({}), false],
  ['on Redis, set by another Meter', async () => ({ limits: await redisLimits() }), true],
])('model allow-lists (%s)', (_, store, fleet) => {
  it('a model outside the list is refused before any request, plain or streamed; the list allows exact ids and prefixes', async () => {
    const options = { ...quiet, ...(await store()) };
    const meter = new Meter(options);
    const admin = fleet ? new Meter(options) : meter;
    await admin.setPolicy('acme', { models: ['gpt-4o-mini', 'o3*'] });
    const openai = meter.wrap(new OpenAI({ apiKey: 'sk-test-key', baseURL: providers.openaiBaseURL, maxRetries: 0 }), { customerId: 'acme' });
    providers.reset();
    const refused = await openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ModelNotAllowedError);
    expect(refused).toMatchObject({ tenantId: 'acme', model: 'gpt-4o', allowed: ['gpt-4o-mini', 'o3*'] });
    expect((refused as Error).message).toBe('tenant "acme" may not call model "gpt-4o": its policy allows "gpt-4o-mini", "o3*"');
    await expect(openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], stream: true })).rejects.toBeInstanceOf(ModelNotAllowedError);
    expect(providers.requests).toHaveLength(0);
    await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
    await openai.chat.completions.create({ model: 'o3-mini', messages: [{ role: 'user', content: 'hi' }] });
    // Another tenant has no policy.
    await meter.wrap(new OpenAI({ apiKey: 'sk-test-key', baseURL: providers.openaiBaseURL, maxRetries: 0 }), { customerId: 'globex' }).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] });
    expect(providers.requests.map((r) => r.body.model)).toEqual(['gpt-4o-mini', 'o3-mini', 'gpt-4o']);
    expect(await meter.getPolicy('acme')).toEqual({ models: ['gpt-4o-mini', 'o3*'] });
    await admin.setPolicy('acme', {});
    await openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] });
    expect(providers.requests).toHaveLength(4);
    await meter.shutdown();
    if (fleet) await admin.shutdown();
  });
});

describe.each([
  ['in process', async () => ({}), false],
  ['on Redis, set by another Meter', async () => ({ limits: await redisLimits() }), true],
])('rate limits (%s)', (_, store, fleet) => {
  const chat = (openai: OpenAI, content = 'hi') => openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }] });
  const setUp = async (limit: Record<string, number>, tenant: string, extra: Record<string, unknown> = {}) => {
    const options = { ...quiet, ...(await store()) };
    const meter = new Meter({ ...options, ...extra });
    const admin = fleet ? new Meter(options) : meter;
    await admin.setRateLimit(tenant, limit);
    const openai = meter.wrap(new OpenAI({ apiKey: 'sk-test-key', baseURL: providers.openaiBaseURL, maxRetries: 0 }), { customerId: tenant });
    return { meter, admin, openai, done: async () => Promise.all([meter.shutdown(), fleet ? admin.shutdown() : undefined]) };
  };

  it('requests per minute: of a burst of 8 at once, exactly 5 go out; the others are refused with a retry time', async () => {
    const tenant = `rpm-${run}`;
    const { meter, openai, done } = await setUp({ requestsPerMinute: 5 }, tenant);
    providers.reset();
    const results = await Promise.allSettled(Array.from({ length: 8 }, () => chat(openai)));
    const refused = results.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(5);
    expect(refused).toHaveLength(3);
    for (const err of refused) {
      expect(err).toBeInstanceOf(RateLimitedError);
      expect(err).toMatchObject({ limit: 'requests_per_minute', limitValue: 5 });
      expect(err.retryAfterMs).toBeGreaterThan(0);
      expect(err.retryAfterMs).toBeLessThanOrEqual(120_000);
    }
    expect(providers.requests).toHaveLength(5);
    expect(await meter.getRateLimit(tenant)).toEqual({ requestsPerMinute: 5 });
    // The refused calls count for nothing; a minute boundary since would weight the 5 by what is left of it (ceil: 5).
    expect((await meter.inspect(tenant)).rateUsage).toMatchObject({ requestsPerMinute: 5, inFlight: 0 });
    await done();
  });

  it('calls in flight: a third concurrent stream is refused; once one ends, the next goes out', async () => {
    const tenant = `conc-${run}`;
    const { openai, admin, done } = await setUp({ concurrent: 2 }, tenant);
    providers.reset();
    const stream = () => openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], stream: true });
    const first = await stream();
    const second = await stream();
    const third = await stream().catch((e: unknown) => e);
    expect(third).toBeInstanceOf(RateLimitedError);
    expect(third).toMatchObject({ limit: 'concurrent', limitValue: 2 });
    expect((await admin.inspect(tenant)).rateUsage.inFlight).toBe(2);
    for await (const _chunk of first);
    await until(async () => !((await stream().then((s) => (s.controller.abort(), s)).catch((e: unknown) => e)) instanceof RateLimitedError), 'a place once the first stream ended');
    for await (const _chunk of second);
    expect(providers.requests.filter((r) => r.path.endsWith('/chat/completions')).length).toBeGreaterThanOrEqual(3);
    await done();
  });

  it('tokens per minute: input counted at admission and settled at the real count; past the limit, refused', async () => {
    const tenant = `tpm-${run}`;
    const { meter, openai, done } = await setUp({ tokensPerMinute: 1000 }, tenant);
    providers.reset();
    let refusal: any;
    // Billed from the request (about 100 input tokens, and the 50 output tokens of its cap): about 150 a call.
    const call = () =>
      openai.chat.completions.create({ model: 'gpt-4o-mini', max_tokens: 50, messages: [{ role: 'user', content: 'x'.repeat(300) }] }, { headers: { 'x-fake-bill': 'worst' } });
    for (let i = 0; i < 40 && refusal === undefined; i++) await call().catch((e: unknown) => (refusal = e));
    expect(refusal).toBeInstanceOf(RateLimitedError);
    expect(refusal).toMatchObject({ limit: 'tokens_per_minute', limitValue: 1000 });
    expect(refusal.retryAfterMs).toBeGreaterThan(0);
    // Each call was admitted while the real counts of the calls before it, plus its own input estimate, fit; the
    // refused one did not fit (its estimate is below a call's real count, which adds its output).
    const counts = providers.billed.map((b) => b.usage.prompt_tokens! + b.usage.completion_tokens!);
    const total = counts.reduce((n, c) => n + c, 0);
    const last = counts.at(-1)!;
    expect(counts.length).toBeGreaterThan(1);
    expect(total - last).toBeLessThanOrEqual(1000);
    expect(total + last).toBeGreaterThan(1000);
    // The minute's count holds the real counts of the calls that went out (a minute boundary since: fewer, weighted).
    const { tokensPerMinute } = (await meter.inspect(tenant)).rateUsage;
    expect(tokensPerMinute).toBeGreaterThan(0);
    expect(tokensPerMinute).toBeLessThanOrEqual(total);
    await done();
  });
});

describe.each([
  ['in process', async () => ({})],
  ['on Redis', async () => ({ limits: await redisLimits() })],
])('inspection (%s)', (_, store) => {
  it('lists the tenants with usage in the window, a bounded page at a time, every one once', async () => {
    const meter = new Meter({ ...quiet, ...(await store()) });
    const ids = Array.from({ length: 25 }, (_, i) => `list-${i}`);
    for (const [i, id] of ids.entries()) spend(meter, id, (i + 1) / 100);
    const seen = new Map<string, number>();
    await until(async () => {
      seen.clear();
      let cursor: string | undefined;
      do {
        const page = await meter.listTenants({ limit: 10, cursor });
        expect(page.tenants.length).toBeLessThanOrEqual(100);
        for (const t of page.tenants) seen.set(t.tenantId, t.spentUsd);
        cursor = page.cursor;
      } while (cursor !== undefined);
      return seen.size === 25;
    }, 'every tenant listed');
    expect([...seen].sort(([a], [b]) => a.localeCompare(b))).toEqual(ids.map((id, i) => [id, (i + 1) / 100]).sort(([a], [b]) => String(a).localeCompare(String(b))));
    await meter.setPolicy('list-3', { models: ['gpt-4o-mini'] });
    await meter.setRateLimit('list-3', { concurrent: 2 });
    await meter.setLimit('list-3', { limitUsd: 5, frequency: 'per_month', mode: 'soft' });
    expect(await meter.inspect('list-3')).toMatchObject({
      tenantId: 'list-3',
      policy: { models: ['gpt-4o-mini'] },
      rateLimit: { concurrent: 2 },
      windows: [{ frequency: 'per_month', limitUsd: 5, mode: 'soft', spentUsd: 0.04 }, { frequency: 'per_day', spentUsd: 0.04 }],
    });
    await expect(meter.listTenants({ limit: 0 })).rejects.toThrow(/listTenants: limit must be an integer from 1 to 1000, got 0/);
    await meter.shutdown();
  });
});

describe('budget options', () => {
  const invalid: Array<[string, Record<string, unknown>, RegExp]> = [
    ['a threshold of 0', { thresholds: [0, 0.5] }, /thresholds must be an array of fractions of the limit above 0 .*got an array/],
    ['thresholds not an array', { thresholds: 0.8 }, /thresholds must be an array .*got 0\.8/],
    ['a default limit without frequency', { defaultLimit: { limitUsd: 5 } }, /defaultLimit\.frequency is required/],
    ['a default limit of -1', { defaultLimit: { limitUsd: -1, frequency: 'per_day' } }, /defaultLimit\.limitUsd must be a finite, non-negative number, got -1/],
    ['two defaults per day', { defaultLimit: [{ limitUsd: 1, frequency: 'per_day' }, { limitUsd: 2, frequency: 'per_day' }] }, /defaultLimit\[1\]\.frequency "per_day" has a default limit already/],
    ['a default mode', { defaultLimit: { limitUsd: 1, frequency: 'per_day', mode: 'warn' } }, /defaultLimit\.mode must be 'hard' or 'soft', got "warn"/],
    ['a webhook url', { thresholdWebhook: 'not a url' }, /thresholdWebhook\.url must be an absolute http\(s\) URL/],
    ['onThreshold', { onThreshold: 'log' }, /onThreshold must be a function, got "log"/],
  ];
  it.each(invalid)('refuses %s, naming the field and the value', (_, options, message) => {
    expect(() => new Meter({ ...quiet, ...options } as never)).toThrow(ConfigError);
    expect(() => new Meter({ ...quiet, ...options } as never)).toThrow(message);
  });

  it('setPolicy checks its input', async () => {
    const meter = new Meter(quiet);
    await expect(meter.setPolicy('acme', { models: 'gpt-4o' } as never)).rejects.toThrow(/setPolicy: models must be an array of model ids or prefixes ending in '\*', got "gpt-4o"/);
    await expect(meter.setPolicy('acme', { model: ['gpt-4o'] } as never)).rejects.toThrow(/setPolicy: unknown option "model"/);
    await meter.shutdown();
  });

  it('setLimit checks mode and thresholds', async () => {
    const meter = new Meter(quiet);
    await expect(meter.setLimit('acme', { limitUsd: 1, frequency: 'per_day', mode: 'warn' as never })).rejects.toThrow(/setLimit: mode must be 'hard' or 'soft', got "warn"/);
    await expect(meter.setLimit('acme', { limitUsd: 1, frequency: 'per_day', thresholds: [-1] })).rejects.toThrow(/setLimit: thresholds must be an array/);
    await meter.shutdown();
  });
});
