// Budgets of one feature's or one model's calls: their own counter per window, checked with the tenant's in the same
// admission (one script on Redis), in process and on Redis, plain and streamed.
import OpenAI from 'openai';
import { afterAll, describe, expect, it } from 'vitest';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { startRedisServer } from './fixtures/redis-server.mjs';
import { LimitExceededError, Meter, until } from './helpers.js';

const providers = await startFakeProviders();
const redisStarted = startRedisServer();
afterAll(async () => Promise.all([providers.close(), (await redisStarted).stop()]));

let run = 0;
const quiet = { handleExit: false } as const;
type AnyMeter = InstanceType<typeof Meter>;
const chatRequests = () => providers.requests.filter((r) => r.path.endsWith('/chat/completions'));
const client = (meter: AnyMeter, tenant: string, feature?: string) =>
  meter.wrap(new OpenAI({ apiKey: 'sk-test-key', baseURL: providers.openaiBaseURL, maxRetries: 0 }), { customerId: tenant, ...(feature !== undefined && { feature }) });
const ask = (openai: OpenAI, model = 'gpt-4o') => openai.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] });
const askStreamed = async (openai: OpenAI, model = 'gpt-4o') => {
  const stream = await openai.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }], stream: true });
  for await (const _chunk of stream);
};
const budgetOf = async (meter: AnyMeter, tenant: string, budget: { feature?: string; model?: string; frequency?: string }) =>
  (await meter.getUsage(tenant)).find((w) => w.feature === budget.feature && w.model === budget.model && w.frequency === (budget.frequency ?? 'per_day'))!;
const close = (a: number, b: number) => Math.abs(a - b) < 1e-9;

describe.each([
  ['in process', false],
  ['on Redis, two Meters', true],
])('scoped budgets (%s)', (_, onRedis) => {
  /** One Meter in process; on Redis a second one on the same ledger, which sets the budgets. */
  const setUp = async () => {
    const options = { ...quiet, ...(onRedis && { limits: { redis: (await redisStarted).url, keyPrefix: `scoped${++run}-${process.pid}:` } }) };
    const meter = new Meter(options);
    const admin = onRedis ? new Meter(options) : meter;
    return { meter, admin, done: () => Promise.all([meter.shutdown(), onRedis ? admin.shutdown() : undefined]) };
  };

  it("a feature's budget stops only that feature's calls, before any request; their spend counts in both budgets", async () => {
    const { meter, admin, done } = await setUp();
    const tenant = `feature-${++run}`;
    // Spend of the tenant before its feature budget exists: the new budget's counter must not take its place.
    meter.trackManually({ provider: 'openai', model: 'gpt-4o', input_tokens: 1, output_tokens: 1, tenant_id: tenant, cost_usd: 0.5 });
    await until(async () => close((await budgetOf(admin, tenant, {})).spentUsd, 0.5), 'the first spend in the ledger');
    await admin.setLimit(tenant, { limitUsd: 100, frequency: 'per_day' });
    await admin.setLimit(tenant, { limitUsd: 1, frequency: 'per_day', feature: 'chat', spentUsd: 1 });
    expect((await budgetOf(admin, tenant, {})).spentUsd).toBe(0.5);
    providers.reset();

    const chat = client(meter, tenant, 'chat');
    for (const call of [() => ask(chat), () => askStreamed(chat)]) {
      const refusal = await call().catch((e: unknown) => e);
      expect(refusal).toBeInstanceOf(LimitExceededError);
      expect(refusal).toMatchObject({ tenantId: tenant, feature: 'chat', model: undefined, frequency: 'per_day', limitUsd: 1, spentUsd: 1 });
      expect((refusal as Error).message).toContain('its feature "chat" per_day spend limit of $1');
    }
    expect(chatRequests()).toHaveLength(0);
    // Another feature, and no feature at all: the tenant's own budget has room.
    await ask(client(meter, tenant, 'search'));
    await askStreamed(client(meter, tenant, 'search'));
    await ask(client(meter, tenant));
    expect(chatRequests()).toHaveLength(3);

    // With room in the feature's budget, its calls go out and their cost lands in both the feature's and the tenant's.
    await admin.setLimit(tenant, { limitUsd: 1, frequency: 'per_day', feature: 'chat', spentUsd: 0 });
    const before = (await budgetOf(admin, tenant, {})).spentUsd;
    await ask(chat);
    await askStreamed(chat);
    expect(chatRequests()).toHaveLength(5);
    await until(async () => (await budgetOf(admin, tenant, { feature: 'chat' })).spentUsd > 0 && (await budgetOf(admin, tenant, {})).reservedUsd === 0, 'the chat spend settled');
    const feature = await budgetOf(admin, tenant, { feature: 'chat' });
    const whole = await budgetOf(admin, tenant, {});
    expect(close(whole.spentUsd - before, feature.spentUsd)).toBe(true);
    expect(feature).toMatchObject({ feature: 'chat', limitUsd: 1, mode: 'hard', isDefault: false, reservedUsd: 0 });
    await done();
  });

  it("a model's budget covers the ids it names (exact, or a prefix ending in '*') and no other model", async () => {
    const { meter, admin, done } = await setUp();
    const tenant = `model-${++run}`;
    await admin.setLimit(tenant, { limitUsd: 0, frequency: 'per_month', model: 'gpt-4o-mini*' });
    await admin.setLimit(tenant, { limitUsd: 0, frequency: 'per_day', model: 'o3' });
    providers.reset();
    const openai = client(meter, tenant);
    await expect(ask(openai, 'gpt-4o-mini')).rejects.toMatchObject({ name: 'LimitExceededError', model: 'gpt-4o-mini*', frequency: 'per_month' });
    await expect(askStreamed(openai, 'gpt-4o-mini-2024-07-18')).rejects.toMatchObject({ model: 'gpt-4o-mini*' });
    await expect(ask(openai, 'o3')).rejects.toMatchObject({ model: 'o3', frequency: 'per_day' });
    expect(chatRequests()).toHaveLength(0);
    await ask(openai, 'gpt-4o');
    await askStreamed(openai, 'o3-mini');
    expect(chatRequests().map((r) => r.body.model)).toEqual(['gpt-4o', 'o3-mini']);
    expect((await meter.getUsage(tenant)).filter((w) => w.model !== undefined).map((w) => [w.model, w.frequency, w.limitUsd])).toEqual(
      expect.arrayContaining([
        ['gpt-4o-mini*', 'per_month', 0],
        ['o3', 'per_day', 0],
      ]),
    );
    // Removed, the budget no longer applies.
    await admin.removeLimit(tenant, 'per_month', { model: 'gpt-4o-mini*' });
    await ask(openai, 'gpt-4o-mini');
    await done();
  });

  it('concurrent calls reserve in every budget that applies at once: of 8 streams that each fit alone, exactly 3 fit the feature', async () => {
    const { meter, admin, done } = await setUp();
    const tenant = `burst-${++run}`;
    const burst = [client(meter, tenant, 'burst'), client(admin, tenant, 'burst')];
    const open = (i: number) => burst[i % 2]!.chat.completions.create({ model: 'gpt-4o', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }], stream: true });
    // What one such call holds: its refusal by an empty budget says.
    await admin.setLimit(tenant, { limitUsd: 0, frequency: 'per_day', feature: 'burst' });
    const probe = (await open(0).catch((e: unknown) => e)) as InstanceType<typeof LimitExceededError>;
    const held = probe.requestUsd!;
    expect(held).toBeGreaterThan(0);
    await admin.setLimit(tenant, { limitUsd: held * 3.5, frequency: 'per_day', feature: 'burst' });
    await admin.setLimit(tenant, { limitUsd: 100, frequency: 'per_day' });
    providers.reset();
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => open(i)));
    const streams = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    expect(streams).toHaveLength(3);
    expect(results.filter((r) => r.status === 'rejected').every((r) => (r as PromiseRejectedResult).reason instanceof LimitExceededError)).toBe(true);
    expect(chatRequests()).toHaveLength(3);
    // The 3 open streams hold their bound in the feature's budget and in the tenant's.
    expect(close((await budgetOf(admin, tenant, { feature: 'burst' })).reservedUsd, 3 * held)).toBe(true);
    expect(close((await budgetOf(admin, tenant, {})).reservedUsd, 3 * held)).toBe(true);
    for (const stream of streams) for await (const _chunk of stream);
    await until(async () => (await budgetOf(admin, tenant, { feature: 'burst' })).reservedUsd === 0, 'the streams settled');
    const feature = await budgetOf(admin, tenant, { feature: 'burst' });
    expect(feature.spentUsd).toBeGreaterThan(0);
    expect(close(feature.spentUsd, (await budgetOf(admin, tenant, {})).spentUsd)).toBe(true);
    await done();
  });

  it('a soft feature budget never refuses: it records the spend and alerts with its scope', async () => {
    const alerts: any[] = [];
    const options = { ...quiet, onThreshold: (a: unknown) => alerts.push(a), ...(onRedis && { limits: { redis: (await redisStarted).url, keyPrefix: `scoped${++run}-${process.pid}:` } }) };
    const meter = new Meter(options);
    const tenant = `soft-${++run}`;
    await meter.setLimit(tenant, { limitUsd: 0.000001, frequency: 'per_day', feature: 'chat', mode: 'soft' });
    providers.reset();
    const chat = client(meter, tenant, 'chat');
    await ask(chat);
    await askStreamed(chat);
    expect(chatRequests().every((r) => r.body.max_completion_tokens === undefined && r.body.max_tokens === undefined)).toBe(true);
    await until(() => alerts.length === 1, 'the alert at 100 %');
    expect(alerts[0]).toMatchObject({ tenantId: tenant, scope: 'feature', feature: 'chat', threshold: 1, mode: 'soft', limitUsd: 0.000001 });
    expect(alerts.filter((a) => a.scope === 'tenant')).toHaveLength(0);
    await until(async () => (await budgetOf(meter, tenant, { feature: 'chat' })).spentUsd === (await budgetOf(meter, tenant, {})).spentUsd, 'both calls booked');
    await meter.shutdown();
  });
});

describe.each([
  ['in process', false],
  ['on Redis', true],
])('alerts of several budgets of one tenant (%s)', (_, onRedis) => {
  it("each budget's thresholds alert once per window, however the checks of the tenant's budgets interleave", async () => {
    const alerts: any[] = [];
    const options = { ...quiet, thresholds: [0.5, 1], onThreshold: (a: unknown) => alerts.push(a), ...(onRedis && { limits: { redis: (await redisStarted).url, keyPrefix: `alerts${++run}-${process.pid}:` } }) };
    const meter = new Meter(options);
    await meter.setLimit('acme', { limitUsd: 1, frequency: 'per_day', mode: 'soft' });
    await meter.setLimit('acme', { limitUsd: 1, frequency: 'per_day', mode: 'soft', feature: 'chat' });
    await meter.setLimit('acme', { limitUsd: 1, frequency: 'per_day', mode: 'soft', feature: 'search' });
    const spend = (feature: string, usd: number) =>
      meter.forTenant('acme', () => meter.trackManually({ provider: 'openai', model: 'gpt-4o', input_tokens: 1, output_tokens: 1, cost_usd: usd }), { feature });
    const key = (a: any) => `${a.feature ?? 'tenant'}:${a.threshold}`;
    spend('chat', 0.6);
    await until(() => alerts.length >= 2, 'the tenant and chat at 50 %');
    spend('search', 0.6);
    await until(() => alerts.length >= 4, 'search at 50 %, the tenant at 100 %');
    for (let i = 0; i < 4; i++) {
      spend(i % 2 === 0 ? 'chat' : 'search', 0.1);
      await until(async () => (await budgetOf(meter, 'acme', {})).spentUsd >= 1.3 + 0.1 * i - 1e-9, 'the spend in the ledger');
    }
    await meter.shutdown();
    // chat and search end at $0.80 each, the tenant at $1.60.
    expect(alerts.map(key).sort()).toEqual(['chat:0.5', 'search:0.5', 'tenant:0.5', 'tenant:1']);
  });
});

describe('scoped budgets across a fleet on Redis', () => {
  it("a budget set or removed by another process applies to this one's next call, though it admitted the tenant before", async () => {
    const options = { ...quiet, limits: { redis: (await redisStarted).url, keyPrefix: `scoped-fleet-${process.pid}:` } };
    const [meter, admin] = [new Meter(options), new Meter(options)];
    const chat = client(meter, 'acme', 'chat');
    await ask(chat);
    await admin.setLimit('acme', { limitUsd: 0, frequency: 'per_day', feature: 'chat' });
    await expect(ask(chat)).rejects.toMatchObject({ name: 'LimitExceededError', feature: 'chat' });
    await admin.removeLimit('acme', 'per_day', { feature: 'chat' });
    await ask(chat);
    // Set again: the list of the tenant's budgets moved on twice since this process last read it.
    await admin.setLimit('acme', { limitUsd: 0, frequency: 'per_day', feature: 'chat' });
    await expect(askStreamed(chat)).rejects.toMatchObject({ name: 'LimitExceededError', feature: 'chat' });
    await Promise.all([meter.shutdown(), admin.shutdown()]);
  });
});

describe('scoped budget options', () => {
  it('refuses what does not name one budget, naming the field and the value', async () => {
    const meter = new Meter(quiet);
    await expect(meter.setLimit('acme', { limitUsd: 1, frequency: 'per_day', feature: 'chat', model: 'gpt-4o' })).rejects.toThrow(
      /setLimit: a budget covers a feature or a model, not both: got feature "chat" and model "gpt-4o"/,
    );
    await expect(meter.setLimit('acme', { limitUsd: 1, frequency: 'per_day', model: 'gpt-*-mini' })).rejects.toThrow(/setLimit: model must be a model id, or a prefix ending in '\*'.*got "gpt-\*-mini"/);
    await expect(meter.setLimit('acme', { limitUsd: 1, frequency: 'per_day', feature: '' })).rejects.toThrow(/setLimit: feature must be a non-empty string/);
    // A misspelt feature would otherwise cap the tenant's whole spend.
    await expect(meter.setLimit('acme', { limitUsd: 1, frequency: 'per_day', feture: 'chat' } as never)).rejects.toThrow(/unknown setLimit option "feture"/);
    await expect(meter.removeLimit('acme', 'per_day', { featur: 'chat' } as never)).rejects.toThrow(/unknown removeLimit option "featur"/);
    await expect(meter.setLimit('acme', '50' as never)).rejects.toThrow(/setLimit: expected \{ limitUsd, frequency \}, got "50"/);
    expect(await meter.getUsage('acme')).toHaveLength(2);
    await meter.shutdown();
  });

  it('keeps budgets of features whose names hold any character apart', async () => {
    const meter = new Meter(quiet);
    for (const feature of ['a|b', 'a%7Cb', 'é', '}{*']) await meter.setLimit('acme', { limitUsd: 1, frequency: 'per_day', feature });
    expect((await meter.getUsage('acme')).filter((w) => w.feature !== undefined).map((w) => w.feature)).toEqual(['a|b', 'a%7Cb', 'é', '}{*']);
    await meter.shutdown();
  });
});
