import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { startRedisServer } from './fixtures/redis-server.mjs';
import { LimitExceededError, Meter, repoRoot, requireFrom, requireFromRepo, runNode, tick, until } from './helpers.js';
import type { UsageEvent } from 'llm-meter';

const redisServer = await startRedisServer();
const fake = await startFakeProviders();
const IORedis = requireFromRepo('ioredis') as typeof import('ioredis').default;
const redis = new IORedis(redisServer.url);
afterAll(async () => {
  redis.disconnect();
  await Promise.all([fake.close(), redisServer.stop()]);
});
afterEach(() => fake.reset());

const { OpenAI } = requireFrom(repoRoot, 'openai');
const { RedisLimitStore, LimitStoreUnavailableError } = requireFromRepo('./dist/src/limits/redis-store.js');
const { AgentLog } = requireFromRepo('./dist/src/log.js');
const { WindowCalendar } = requireFromRepo('./dist/src/limits/windows.js');
const messages = [{ role: 'user' as const, content: 'x' }];
const prices = { 'openai:gpt-4o': { input_mtok: 0, output_mtok: 1 } };
const today = () => new WindowCalendar(undefined).window('per_day', Date.now());

const events: UsageEvent[] = [];
// Instrumented, not patchAll: the tests below give other SDK copies to Meters of their own.
const meter = new Meter({ limits: { redis: redisServer.url, keyPrefix: 't1:' }, prices, handleExit: false, onEvent: (e) => events.push(e) });
const client = meter.instrument(new OpenAI({ apiKey: 'k', baseURL: fake.openaiBaseURL, maxRetries: 0 }));
afterAll(() => meter.shutdown());
afterEach(() => {
  events.length = 0;
});

const call = (tenant: string, headers: Record<string, string> = {}) =>
  meter.forTenant(tenant, () => client.chat.completions.create({ model: 'gpt-4o', max_tokens: 1000, messages }, { headers }));

describe('the Redis ledger, in one process', () => {
  it('a refused call is held before the request: the provider sees nothing, the APIPromise rejects', async () => {
    await meter.setLimit('r-broke', { limitUsd: 0.0005, frequency: 'per_day' });
    await expect(call('r-broke')).rejects.toBeInstanceOf(LimitExceededError);
    await expect(call('r-broke').withResponse()).rejects.toBeInstanceOf(LimitExceededError);
    expect(fake.count()).toBe(0);
  });

  it('the counter equals the sum of the events cost_usd; reservations return to zero', async () => {
    await meter.setLimit('r-sum', { limitUsd: 1, frequency: 'per_day' });
    await meter.setLimit('r-sum', { limitUsd: 5, frequency: 'per_month' });
    await Promise.all(Array.from({ length: 20 }, (_, i) => call('r-sum', { 'x-fake-usage': JSON.stringify({ completion_tokens: i + 1 }) })));
    await until(() => events.length === 20, 'events');
    await tick(50);
    const [day, month] = await meter.getUsage('r-sum');
    const total = events.reduce((s, e) => s + e.cost_usd!, 0);
    expect(day!.spentUsd).toBeCloseTo(total, 9);
    expect(month!.spentUsd).toBeCloseTo(total, 9);
    expect(day!.reservedUsd).toBe(0);
    const hash = await redis.hgetall(`t1:{r-sum}:${today().key}`);
    expect(Number(hash.spent)).toBe(events.reduce((s, e) => s + Math.round(e.cost_usd! * 1e9), 0));
    expect(await redis.pttl(`t1:{r-sum}:${today().key}`)).toBeGreaterThan(0);
  });

  it('strict admission across concurrent calls: at most the limit is ever reserved', async () => {
    await meter.setLimit('r-burst', { limitUsd: 0.01, frequency: 'per_day' });
    const results = await Promise.allSettled(Array.from({ length: 60 }, () => call('r-burst', { 'x-fake-delay-ms': '0' })));
    expect(results.filter((r) => r.status === 'fulfilled').length).toBeLessThanOrEqual(60);
    expect(fake.count()).toBe(results.filter((r) => r.status === 'fulfilled').length);
    const [day] = await meter.getUsage('r-burst');
    expect(day!.spentUsd + day!.reservedUsd).toBeLessThanOrEqual(0.01);
  });

  it('setLimit in one process applies in another on its next call', async () => {
    const other = new Meter({ limits: { redis: redisServer.url, keyPrefix: 't1:' }, handleExit: false });
    await call('r-shared');
    await other.setLimit('r-shared', { limitUsd: 0, frequency: 'per_month' });
    await expect(call('r-shared')).rejects.toBeInstanceOf(LimitExceededError);
    await other.removeLimit('r-shared', 'per_month');
    await call('r-shared');
    await other.shutdown();
  });

  it('settling the same event twice changes nothing', async () => {
    const store = new RedisLimitStore({ redis: redisServer.url, keyPrefix: 't2:', failMode: 'open', commandTimeout: 500, retryAfter: 1000, leaseMs: 60_000, clock: Date.now }, new AgentLog(false, []));
    await store.setLimit('s', { frequency: 'per_day', limitNano: 1e9 });
    const outcome = await store.reserve('s', [today()], 5000, 'strict');
    expect(outcome.admitted).toBe(true);
    await store.settle(outcome.reservation, 1200, 'evt-1');
    await store.settle(outcome.reservation, 1200, 'evt-1');
    expect(await redis.hgetall(`t2:{s}:${today().key}`)).toMatchObject({ spent: '1200', reserved: '0' });
    await store.close();
  });

  it("every key of a tenant maps to one Redis Cluster slot", async () => {
    const slot = requireFromRepo('cluster-key-slot') as (key: string) => number;
    const store = new RedisLimitStore({ redis: redisServer.url, keyPrefix: 'p:', failMode: 'open', commandTimeout: 100, retryAfter: 100, leaseMs: 1000, clock: Date.now }, new AgentLog(false, []));
    const keys = ['limits', 'd:2026-11-23', 'm:2026-11', 'r:abc', 'settled:evt'].map((s) => store.key('acme', s));
    expect(new Set(keys.map(slot)).size).toBe(1);
    expect(store.key('we{ir}d', 'limits')).toBe('p:{we%7Bir%7Dd}:limits');
    await store.close();
  });
});

describe('Redis down and back', () => {
  it("failMode 'open': calls go on, one warning, and the spend is replayed when Redis is back", async () => {
    const server = await startRedisServer();
    const warnings: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((c: string) => (warnings.push(String(c)), true)) as typeof process.stderr.write;
    const seen: UsageEvent[] = [];
    const m = new Meter({ limits: { redis: server.url, retryAfter: 200 }, prices, handleExit: false, onEvent: (e) => seen.push(e) });
    const c = m.instrument(new (requireFrom(join(repoRoot, 'test/sdk-versions/openai-6'), 'openai').OpenAI)({ apiKey: 'k', baseURL: fake.openaiBaseURL, maxRetries: 0 }));
    try {
      await m.setLimit('o', { limitUsd: 1, frequency: 'per_day' });
      await server.stop();
      for (let i = 0; i < 5; i++) await m.forTenant('o', () => c.chat.completions.create({ model: 'gpt-4o', max_tokens: 10, messages }));
      expect(fake.count()).toBe(5);
      await server.start();
      // A restarted Redis without persistence has forgotten the limit: set it again once the agent reaches it.
      await until(() => warnings.some((w) => w.includes('answers again')), 'recovery', 5000).catch(() => undefined);
      for (let i = 0; i < 50; i++) {
        if (await m.setLimit('o', { limitUsd: 1, frequency: 'per_day' }).then(() => true, () => false)) break;
        await tick(100);
      }
      await until(() => warnings.some((w) => w.includes('answers again')), 'recovery');
      await tick(100);
      const [day] = await m.getUsage('o');
      expect(day!.spentUsd).toBeCloseTo(seen.reduce((s, e) => s + e.cost_usd!, 0), 9);
      expect(warnings.filter((w) => w.includes('unavailable'))).toHaveLength(1);
    } finally {
      process.stderr.write = write;
      await m.shutdown();
      await server.stop();
    }
  });

  it("failMode 'closed': limited calls are refused with LimitStoreUnavailableError, and nothing is sent", async () => {
    const server = await startRedisServer();
    const m = new Meter({ limits: { redis: server.url, failMode: 'closed' }, prices, handleExit: false });
    const c = m.instrument(new (requireFrom(join(repoRoot, 'test/sdk-versions/openai-5'), 'openai').OpenAI)({ apiKey: 'k', baseURL: fake.openaiBaseURL, maxRetries: 0 }));
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = (() => true) as typeof process.stderr.write;
    try {
      await server.stop();
      const err = await m.forTenant('c', () => c.chat.completions.create({ model: 'gpt-4o', max_tokens: 10, messages })).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LimitStoreUnavailableError);
      expect(fake.count()).toBe(0);
      await c.chat.completions.create({ model: 'gpt-4o', messages });
      expect(fake.count()).toBe(1);
    } finally {
      process.stderr.write = write;
      await m.shutdown();
    }
  });
});

describe('a fleet of processes sharing one Redis ledger', () => {
  it('8 processes x 50 concurrent calls against a limit that fits exactly 10 worst-case calls: at most 10 admitted', async () => {
    await redis.del('llm-meter:{fleet}:limits');
    const admin = new Meter({ limits: { redis: redisServer.url }, handleExit: false });
    await admin.setLimit('fleet', { limitUsd: 0.01, frequency: 'per_day' });
    const startAt = String(Date.now() + 2500);
    const runs = await Promise.all(
      Array.from({ length: 8 }, () =>
        runNode([join(repoRoot, 'test/apps/fleet-app.mjs')], { env: { REDIS_URL: redisServer.url, OPENAI_BASE_URL: fake.openaiBaseURL, START_AT: startAt, CALLS: '50' }, timeoutMs: 30_000 }),
      ),
    );
    const reports = runs.map((r) => {
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { admitted: number; refused: number; costs: number[] };
    });
    const admitted = reports.reduce((n, r) => n + r.admitted, 0);
    expect(admitted).toBeLessThanOrEqual(10);
    expect(admitted).toBeGreaterThan(0);
    expect(reports.reduce((n, r) => n + r.admitted + r.refused, 0)).toBe(400);
    expect(fake.count()).toBe(admitted);
    const [day] = await admin.getUsage('fleet');
    expect(day!.spentUsd).toBeLessThanOrEqual(0.01);
    expect(day!.reservedUsd).toBe(0);
    const costs = reports.flatMap((r) => r.costs);
    expect(Number((await redis.hgetall(`llm-meter:{fleet}:${today().key}`)).spent)).toBe(costs.reduce((s, c) => s + Math.round(c * 1e9), 0));
    await admin.shutdown();
  }, 60_000);

  it('a process killed with SIGKILL mid-call leaves a lease that expires, and its reservation stays counted', async () => {
    await redis.del('llm-meter:{fleet}:limits');
    const admin = new Meter({ limits: { redis: redisServer.url }, handleExit: false });
    await admin.setLimit('fleet', { limitUsd: 1, frequency: 'per_month' });
    const child = spawn(process.execPath, [join(repoRoot, 'test/apps/fleet-app.mjs')], {
      cwd: repoRoot,
      env: { ...process.env, REDIS_URL: redisServer.url, OPENAI_BASE_URL: fake.openaiBaseURL, MODE: 'hang', LEASE_MS: '800' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve) => child.stdout!.on('data', (d) => String(d).includes('READY') && resolve()));
    await until(() => fake.count() === 1, 'the hanging call to go out', 5000);
    const leases = await redis.keys('llm-meter:{fleet}:r:*');
    expect(leases).toHaveLength(1);
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    await until(() => false, 'never', 1000).catch(() => undefined);
    expect(await redis.exists(leases[0]!)).toBe(0);
    const [month] = await admin.getUsage('fleet');
    expect(month!.reservedUsd).toBeCloseTo(0.001, 9);
    await admin.shutdown();
  }, 30_000);
});
