// Every reservation settles exactly once, on every path a call can take, and the ledger equals the events.
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { startRedisServer } from './fixtures/redis-server.mjs';
import { eventsPrinted, LimitExceededError, Meter, OPENAI_VERSIONS, repoRoot, requireFrom, requireFromRepo, runNode, until } from './helpers.js';
import type { UsageEvent } from 'llm-meter';

const fake = await startFakeProviders();
afterAll(() => fake.close());
afterEach(() => fake.reset());

const { OpenAI } = requireFrom(repoRoot, 'openai');
const { Anthropic } = requireFrom(repoRoot, '@anthropic-ai/sdk');
const events: UsageEvent[] = [];
const meter = new Meter({ unknownModel: 'block', handleExit: false, onEvent: (e) => events.push(e) });
const openai = meter.instrument(new OpenAI({ apiKey: 'k', baseURL: fake.openaiBaseURL, maxRetries: 0 }));
const anthropic = meter.instrument(new Anthropic({ apiKey: 'k', baseURL: fake.anthropicBaseURL, maxRetries: 0 }));
afterAll(() => meter.shutdown());
afterEach(() => {
  events.length = 0;
});

const nano = (usd: number) => Math.round(usd * 1e9);
const ledgerEqualsEvents = async (tenant: string) => {
  const [day] = await meter.getUsage(tenant);
  expect(day!.reservedUsd).toBe(0);
  expect(nano(day!.spentUsd)).toBe(events.filter((e) => e.tenant_id === tenant).reduce((s, e) => s + nano(e.cost_usd!), 0));
};

describe('every reservation settles', () => {
  it('the SDK throws before sending (Anthropic refuses a long non-streaming request): the reservation is released', async () => {
    await meter.setLimit('guard', { limitUsd: 100, frequency: 'per_day' });
    const attempt = () =>
      meter.forTenant('guard', () => anthropic.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 1_000_000, messages: [{ role: 'user', content: 'x' }] }));
    expect(attempt).toThrow(/streaming/i);
    expect(fake.count()).toBe(0);
    await ledgerEqualsEvents('guard');
  });

  it('the SDK throws before a fleet-wide admission has answered: the reservation that arrives later is released', async () => {
    const redisServer = await startRedisServer();
    const fleet = new Meter({ limits: { redis: redisServer.url }, handleExit: false });
    const redis = new (requireFromRepo('ioredis') as typeof import('ioredis').default)(redisServer.url);
    const OldAnthropic = requireFrom(join(repoRoot, 'test/sdk-versions/anthropic-0'), '@anthropic-ai/sdk').Anthropic;
    const client = fleet.instrument(new OldAnthropic({ apiKey: 'k', baseURL: fake.anthropicBaseURL, maxRetries: 0 }));
    try {
      await fleet.setLimit('guard', { limitUsd: 100, frequency: 'per_day' });
      const attempt = () => fleet.forTenant('guard', () => client.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 1_000_000, messages: [{ role: 'user', content: 'x' }] }));
      expect(attempt).toThrow(/streaming/i);
      // The window's `reserved` field appears with the reservation and returns to 0 when it is released.
      const day = `llm-meter:{guard}:d:${new Date().toISOString().slice(0, 10)}`;
      await until(async () => (await redis.hget(day, 'reserved')) === '0', 'the late reservation released');
      expect(await redis.hget(day, 'spent')).toBe('0');
      expect(fake.count()).toBe(0);
    } finally {
      redis.disconnect();
      await fleet.shutdown();
      await redisServer.stop();
    }
  });

  it('a call never awaited is recorded once and settled, at the latest when its promise is collected', async () => {
    const run = await runNode(['--expose-gc', join(repoRoot, 'test/apps/unawaited-call.cjs')], { env: { OPENAI_BASE_URL: fake.openaiBaseURL } });
    expect(run.stderr).toBe('');
    const printed = eventsPrinted(run.stdout);
    expect(printed).toHaveLength(1);
    const usage = JSON.parse(run.stdout.split('\n').find((l) => l.startsWith('USAGE '))!.slice('USAGE '.length)) as { spentUsd: number; reservedUsd: number };
    expect(usage.reservedUsd).toBe(0);
    expect(nano(usage.spentUsd)).toBe(nano(printed[0]!.cost_usd!));
    expect(printed[0]!.cost_usd).toBeGreaterThan(0);
  });

  it("batch results are paid for already: each succeeded row enters the ledger, and reading them is never refused, even under unknownModel 'block' at a $0 limit", async () => {
    const params = { model: 'claude-sonnet-4-5', max_tokens: 100, messages: [{ role: 'user' as const, content: 'x' }] };
    const batch = await anthropic.messages.batches.create({ requests: [{ custom_id: 'a', params }, { custom_id: 'b', params }] });
    await meter.setLimit('batch', { limitUsd: 0, frequency: 'per_day' });
    const rows: unknown[] = [];
    for await (const row of await meter.forTenant('batch', () => anthropic.messages.batches.results(batch.id))) rows.push(row);
    expect(rows).toHaveLength(2);
    await until(() => events.filter((e) => e.tenant_id === 'batch').length === 2, 'one event per row');
    const [day] = await meter.getUsage('batch');
    expect(day!.spentUsd).toBeGreaterThan(0);
    await ledgerEqualsEvents('batch');
    // Spend already made still counts against the limit: the next real call is refused.
    await expect(meter.forTenant('batch', () => anthropic.messages.create(params))).rejects.toBeInstanceOf(LimitExceededError);
  });

  it('usage that arrives invalid settles at the reservation, never at $0', async () => {
    await meter.setLimit('strings', { limitUsd: 1, frequency: 'per_day' });
    await meter.forTenant('strings', () =>
      openai.chat.completions.create({ model: 'gpt-4o', max_tokens: 1000, messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-fake-usage': JSON.stringify({ prompt_tokens: '9', completion_tokens: -4 }) } }),
    );
    await until(() => events.length === 1, 'the event');
    expect(events[0]).toMatchObject({ usage_invalid: true, cost_estimated: true });
    // 1000 output tokens at $10 per million, plus the input bound.
    expect(events[0]!.cost_usd).toBeGreaterThan(0.01);
    await ledgerEqualsEvents('strings');
  });
});

describe('adopting a limit mid-window', () => {
  it('setLimit(..., { spentUsd }) seeds what the billing system says was spent in the current window', async () => {
    await meter.setLimit('seeded', { limitUsd: 1, frequency: 'per_month', spentUsd: 0.995 });
    const [month] = await meter.getUsage('seeded');
    expect(month).toMatchObject({ spentUsd: 0.995, reservedUsd: 0, limitUsd: 1 });
    const err = await meter
      .forTenant('seeded', () => openai.chat.completions.create({ model: 'gpt-4o', max_tokens: 1000, messages: [{ role: 'user', content: 'x' }] }))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LimitExceededError);
    expect(fake.count()).toBe(0);
  });

  it('refuses a bad spentUsd, naming it', async () => {
    await expect(meter.setLimit('seeded', { limitUsd: 1, frequency: 'per_day', spentUsd: -1 })).rejects.toThrow(/spentUsd.*-1/);
  });
});

describe('LimitExceededError says why, in numbers', () => {
  it('spent, held, this call at worst, the limit, and the output cap that would fit', async () => {
    await meter.setLimit('why', { limitUsd: 0.01, frequency: 'per_day', spentUsd: 0.004 });
    const err = (await meter
      .forTenant('why', () => openai.chat.completions.create({ model: 'gpt-4o', max_tokens: 1000, messages: [{ role: 'user', content: 'x' }] }))
      .catch((e: unknown) => e)) as InstanceType<typeof LimitExceededError>;
    expect(err).toBeInstanceOf(LimitExceededError);
    expect(err).toMatchObject({ tenantId: 'why', limitUsd: 0.01, spentUsd: 0.004, heldUsd: 0 });
    // gpt-4o: $10 per million output tokens; the input is a few dozen bytes at $2.50 per million.
    expect(err.requestUsd).toBeGreaterThan(0.01);
    expect(err.requestUsd).toBeLessThan(0.0105);
    expect(err.fitsWithOutputCap).toBeGreaterThan(500);
    expect(err.fitsWithOutputCap).toBeLessThan(600);
    expect(err.message).toContain('$0.004 spent');
    expect(err.message).toContain(`set max_tokens to at most ${err.fitsWithOutputCap}`);
    const retry = await meter.forTenant('why', () =>
      openai.chat.completions.create({ model: 'gpt-4o', max_tokens: err.fitsWithOutputCap!, messages: [{ role: 'user', content: 'x' }] }),
    );
    expect(retry.choices).toHaveLength(1);
  });

  it("a model without a price under unknownModel 'block' says so", async () => {
    await meter.setLimit('unpriced', { limitUsd: 1, frequency: 'per_day' });
    const err = await meter
      .forTenant('unpriced', () => openai.chat.completions.create({ model: 'no-such-model', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }))
      .catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/no price is known for its model/);
  });
});

describe('strict mode sends the cap it reserved for', () => {
  it('a limited request without an output cap goes out with defaultMaxOutputTokens; the caller object is untouched', async () => {
    await meter.setLimit('capped', { limitUsd: 1, frequency: 'per_day' });
    const params = { model: 'gpt-4o', messages: [{ role: 'user' as const, content: 'x' }] };
    await meter.forTenant('capped', () => openai.chat.completions.create(params));
    expect(fake.requests[0]!.body.max_completion_tokens).toBe(4096);
    expect(params).not.toHaveProperty('max_completion_tokens');
    await openai.chat.completions.create(params);
    expect(fake.requests[1]!.body).not.toHaveProperty('max_completion_tokens');
  });

  it('lenient mode leaves the request alone', async () => {
    const lenient = new Meter({ enforcement: 'lenient', handleExit: false });
    const client = lenient.instrument(new (requireFrom(OPENAI_VERSIONS['openai 7'], 'openai').OpenAI)({ apiKey: 'k', baseURL: fake.openaiBaseURL, maxRetries: 0 }));
    await lenient.setLimit('lenient', { limitUsd: 1, frequency: 'per_day' });
    await lenient.forTenant('lenient', () => client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }));
    expect(fake.requests[0]!.body).not.toHaveProperty('max_completion_tokens');
    await lenient.shutdown();
  });
});
