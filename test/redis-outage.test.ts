// Redis frozen, killed or losing replies: the breaker, the local ledger of failMode 'open', the refusals of 'closed',
// and the journal of settlements written (once) when Redis answers again.
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { startRedisProxy, startRedisServer } from './fixtures/redis-server.mjs';
import { storeFor } from './fixtures/redis-store.js';
import { Meter, repoRoot, requireFrom, requireFromRepo, stderrOf, until } from './helpers.js';
import type { UsageEvent } from 'llm-meter';

const fake = await startFakeProviders();
afterAll(() => fake.close());
afterEach(() => fake.reset());

const IORedis = requireFromRepo('ioredis') as typeof import('ioredis').default;
const { OpenAI } = requireFrom(repoRoot, 'openai');
const { LimitStoreUnavailableError } = requireFromRepo('./dist/src/limits/store.js');
const { REPLAY, SETTLE } = requireFromRepo('./dist/src/limits/redis/scripts.js');
const { WindowCalendar } = requireFromRepo('./dist/src/limits/windows.js');

const messages = [{ role: 'user' as const, content: 'x' }];
const prices = { 'openai:gpt-4o': { input_mtok: 0, output_mtok: 1 } };
const calendar = new WindowCalendar(undefined);
const windows = () => [calendar.window('per_day', Date.now()), calendar.window('per_month', Date.now())];
const nano = (usd: number) => Math.round(usd * 1e9);
/** A call that costs exactly what it reserves: $0.001. */
const worstCase = { 'x-fake-usage': JSON.stringify({ completion_tokens: 1000 }) };

function meterOn(url: string, limits: Record<string, unknown> = {}) {
  const events: UsageEvent[] = [];
  const meter = new Meter({ limits: { redis: url, ...limits }, prices, handleExit: false, onEvent: (e) => events.push(e) });
  const client = meter.instrument(new OpenAI({ apiKey: 'k', baseURL: fake.openaiBaseURL, maxRetries: 0 }));
  const call = (tenant: string, headers: Record<string, string> = worstCase) =>
    meter.forTenant(tenant, () => client.chat.completions.create({ model: 'gpt-4o', max_tokens: 1000, messages }, { headers }));
  /** Each limited window's spend equals the sum of the events' cost, and nothing is held. */
  const ledgerEqualsEvents = (tenant: string) =>
    until(async () => {
      const expected = events.filter((e) => e.tenant_id === tenant).reduce((s, e) => s + nano(e.cost_usd!), 0);
      const usage = await meter.getUsage(tenant).catch(() => []);
      return usage.length > 0 && usage.every((w) => w.reservedUsd === 0 && nano(w.spentUsd) === expected);
    }, `the ledger of ${tenant} to equal its events`);
  return { meter, client, events, call, ledgerEqualsEvents };
}

describe("failMode 'open'", () => {
  it("Redis frozen: each process keeps enforcing the limit on its own spend, from the last state Redis reported; the spend is written when Redis wakes", async () => {
    const server = await startRedisServer();
    const { meter, call, events, ledgerEqualsEvents } = meterOn(server.url);
    try {
      const stderr = await stderrOf(async () => {
        await meter.setLimit('o', { limitUsd: 0.01, frequency: 'per_day' });
        for (let i = 0; i < 4; i++) await call('o');
        await until(() => events.length === 4, 'four events');
        await ledgerEqualsEvents('o');
        server.pause();
        const outcomes = await Promise.allSettled(Array.from({ length: 20 }, () => call('o')));
        // $0.004 spent, $0.001 a call: this process admits the 6 that fit, though Redis could not be asked.
        expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(6);
        expect(fake.count()).toBe(10);
        server.resume();
        await until(() => events.length === 24, 'an event for every call, the refused ones included');
        expect(events.filter((e) => e.cost_usd! > 0)).toHaveLength(10);
        await ledgerEqualsEvents('o');
      });
      expect(stderr.match(/unavailable/g)).toHaveLength(1);
      expect(stderr.match(/answers again/g)).toHaveLength(1);
    } finally {
      server.resume();
      await meter.shutdown();
      await server.stop();
    }
  });

  it("Redis frozen: a feature's budget is enforced too, apart from the tenant's, and both are written when Redis wakes", async () => {
    const server = await startRedisServer();
    const { meter, client, events } = meterOn(server.url);
    const callFor = (feature: string) => meter.forTenant('of', () => client.chat.completions.create({ model: 'gpt-4o', max_tokens: 1000, messages }, { headers: worstCase }), { feature });
    try {
      await stderrOf(async () => {
        await meter.setLimit('of', { limitUsd: 1, frequency: 'per_day' });
        await meter.setLimit('of', { limitUsd: 0.006, frequency: 'per_day', feature: 'chat' });
        for (let i = 0; i < 4; i++) await callFor('chat');
        await until(async () => (await meter.getUsage('of')).every((w) => w.reservedUsd === 0 && w.spentUsd === 0.004), 'four calls in both budgets');
        server.pause();
        const chat = await Promise.allSettled(Array.from({ length: 10 }, () => callFor('chat')));
        // $0.004 of the feature's $0.006 spent, $0.001 a call: the 2 that fit, though Redis could not be asked.
        expect(chat.filter((o) => o.status === 'fulfilled')).toHaveLength(2);
        const search = await Promise.allSettled(Array.from({ length: 3 }, () => callFor('search')));
        expect(search.filter((o) => o.status === 'fulfilled')).toHaveLength(3);
        server.resume();
        await until(() => events.filter((e) => e.cost_usd! > 0).length === 9, 'the nine calls that went out');
        await until(async () => {
          const usage = await meter.getUsage('of').catch(() => []);
          const day = usage.find((w) => w.frequency === 'per_day' && w.feature === undefined);
          const feature = usage.find((w) => w.feature === 'chat');
          return day?.spentUsd === 0.009 && feature?.spentUsd === 0.006 && day.reservedUsd === 0 && feature.reservedUsd === 0;
        }, 'the journalled spend of both budgets in Redis');
      });
    } finally {
      server.resume();
      await meter.shutdown();
      await server.stop();
    }
  });

  it('Redis killed and restarted empty: calls go on, one warning, and the journalled spend is written into the new Redis', async () => {
    const server = await startRedisServer();
    const { meter, call, events, ledgerEqualsEvents } = meterOn(server.url, { retryAfter: 100 });
    try {
      const stderr = await stderrOf(async () => {
        await meter.setLimit('k', { limitUsd: 1, frequency: 'per_day' });
        await server.stop();
        for (let i = 0; i < 5; i++) await call('k', { 'x-fake-usage': JSON.stringify({ completion_tokens: 100 * (i + 1) }) });
        expect(fake.count()).toBe(5);
        await until(() => events.length === 5, 'five events');
        await server.start();
        // A Redis without persistence forgot the limit: set it again once the store reaches Redis.
        await until(() => meter.setLimit('k', { limitUsd: 1, frequency: 'per_day' }).then(() => true, () => false), 'the limit set again');
        await ledgerEqualsEvents('k');
      });
      expect(stderr.match(/unavailable/g)).toHaveLength(1);
    } finally {
      await meter.shutdown();
      await server.stop();
    }
  });
});

describe('the settlement journal', () => {
  it('settlements while the breaker is open are summed per tenant and window, and a late reply writes them, once', async () => {
    const server = await startRedisServer();
    // retryAfter is long: only a late reply can bring the store back within the test.
    const { store, warnings } = storeFor(server.url, { keyPrefix: 'j:', retryAfter: 600_000 });
    const redis = new IORedis(server.url);
    try {
      await store.setLimit('j', { frequency: 'per_day', limitNano: 1e12 });
      await store.setLimit('j', { frequency: 'per_month', limitNano: 1e12 });
      const outcomes = await Promise.all(Array.from({ length: 500 }, () => store.reserve('j', windows(), 5000, 'strict')));
      server.pause();
      await expect(store.usage('j', windows())).rejects.toBeInstanceOf(LimitStoreUnavailableError);
      const actuals = outcomes.map((_, i) => 1000 + i);
      await Promise.all(outcomes.map((o, i) => store.settle(o.reservation, actuals[i])));
      // 500 settlements, two windows: two entries.
      expect(store.pendingReplay).toBe(2);
      expect(warnings).toHaveLength(1);
      server.resume();
      await until(() => store.pendingReplay === 0, 'the journal to be written');
      expect(warnings[1]).toMatch(/answers again/);
      const total = String(actuals.reduce((s, a) => s + a, 0));
      for (const window of windows()) expect(await redis.hgetall(`j:{j}:${window.key}`)).toEqual({ spent: total, reserved: '0' });
    } finally {
      server.resume();
      await store.close();
      redis.disconnect();
      await server.stop();
    }
  });

  it('a settlement or a journal write whose reply is lost is written again under the same id, and counted once', async () => {
    const server = await startRedisServer();
    const proxy = await startRedisProxy(server.port);
    const { store } = storeFor(proxy.url, { keyPrefix: 'lost:', retryAfter: 50 });
    const redis = new IORedis(server.url);
    try {
      await store.setLimit('l', { frequency: 'per_day', limitNano: 1e12 });
      await store.setLimit('l', { frequency: 'per_month', limitNano: 1e12 });
      const [first, second, third] = await Promise.all([1, 2, 3].map(() => store.reserve('l', windows(), 5000, 'strict')));
      // Scripts already cached in Redis: the first request of each is the script itself, not a NOSCRIPT round.
      await redis.script('LOAD', SETTLE.source);
      await redis.script('LOAD', REPLAY.source);
      // The settle runs in Redis but its reply never arrives: the store cannot know, and journals it under its id.
      proxy.loseReplyTo(`settled:${first.reservation.id}`);
      await store.settle(first.reservation, 1000);
      // The breaker opened in this turn of the event loop and stays open: these two are summed per window.
      const later = [store.settle(second.reservation, 2000), store.settle(third.reservation, 3000)];
      // The first journal aggregate written runs in Redis, and its reply is lost too.
      proxy.loseReplyTo('replayed:');
      await Promise.all(later);
      expect(store.pendingReplay).toBe(3);
      expect(proxy.cuts).toBe(1);
      await until(() => store.pendingReplay === 0, 'the journal to be written');
      expect(proxy.cuts).toBe(2);
      for (const window of windows()) expect(await redis.hgetall(`lost:{l}:${window.key}`)).toEqual({ spent: '6000', reserved: '0' });
    } finally {
      await store.close();
      redis.disconnect();
      await proxy.close();
      await server.stop();
    }
  });
});

describe("failMode 'closed'", () => {
  it('limited calls are refused with LimitStoreUnavailableError and nothing is sent; a call in flight is journalled and written later', async () => {
    const server = await startRedisServer();
    const { meter, client, call, events, ledgerEqualsEvents } = meterOn(server.url, { failMode: 'closed' });
    const OldOpenAI = requireFrom(join(repoRoot, 'test/sdk-versions/openai-5'), 'openai').OpenAI;
    const old = meter.instrument(new OldOpenAI({ apiKey: 'k', baseURL: fake.openaiBaseURL, maxRetries: 0 }));
    try {
      const stderr = await stderrOf(async () => {
        await meter.setLimit('c', { limitUsd: 1, frequency: 'per_day' });
        const stream = await meter.forTenant('c', () => client.chat.completions.create({ model: 'gpt-4o', max_tokens: 1000, stream: true, messages }, { headers: { 'x-fake-chunks': '3' } }));
        server.pause();
        for await (const _ of stream);
        await until(() => events.length === 1, 'the event of the call in flight');
        for (const c of [client, old]) {
          const err = await meter.forTenant('c', () => c.chat.completions.create({ model: 'gpt-4o', max_tokens: 10, messages })).catch((e: unknown) => e);
          expect(err).toBeInstanceOf(LimitStoreUnavailableError);
        }
        await expect(call('c')).rejects.toBeInstanceOf(LimitStoreUnavailableError);
        expect(fake.count()).toBe(1);
        await client.chat.completions.create({ model: 'gpt-4o', messages });
        expect(fake.count()).toBe(2);
        server.resume();
        await ledgerEqualsEvents('c');
      });
      expect(stderr.match(/unavailable.*refusing limited calls/g)).toHaveLength(1);
    } finally {
      server.resume();
      await meter.shutdown();
      await server.stop();
    }
  });
});
