// The Redis ledger in one process: admission, keys, idempotent settlement, faults, and command timeouts that measure
// Redis rather than the app's event loop. Outages are in redis-outage.test.ts, fleets in redis-fleet.test.ts.
import { createServer, type Socket } from 'node:net';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { startRedisServer } from './fixtures/redis-server.mjs';
import { storeFor } from './fixtures/redis-store.js';
import { LimitExceededError, Meter, repoRoot, requireFrom, requireFromRepo, until } from './helpers.js';
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
const { LimitStoreFaultError, LimitStoreUnavailableError } = requireFromRepo('./dist/src/limits/store.js');
const { LedgerKeys } = requireFromRepo('./dist/src/limits/redis/keys.js');
const scripts = requireFromRepo('./dist/src/limits/redis/scripts.js');
const { WindowCalendar } = requireFromRepo('./dist/src/limits/windows.js');
const slotOf = requireFromRepo('cluster-key-slot') as (key: string) => number;

const messages = [{ role: 'user' as const, content: 'x' }];
const prices = { 'openai:gpt-4o': { input_mtok: 0, output_mtok: 1 } };
const calendar = new WindowCalendar(undefined);
const today = () => calendar.window('per_day', Date.now());
const thisMonth = () => calendar.window('per_month', Date.now());
const nano = (usd: number) => Math.round(usd * 1e9);

/** Keeps the event loop busy, as an app's synchronous work does. */
function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

const events: UsageEvent[] = [];
const tenantsCalled = new Set<string>();
// Instrumented, not patchAll: other tests in this process give SDK copies to Meters of their own.
const meter = new Meter({ limits: { redis: redisServer.url, keyPrefix: 't1:' }, prices, handleExit: false, onEvent: (e) => events.push(e) });
const client = meter.instrument(new OpenAI({ apiKey: 'k', baseURL: fake.openaiBaseURL, maxRetries: 0 }));
afterAll(() => meter.shutdown());

const call = (tenant: string, headers: Record<string, string> = {}) => {
  tenantsCalled.add(tenant);
  return meter.forTenant(tenant, () => client.chat.completions.create({ model: 'gpt-4o', max_tokens: 1000, messages }, { headers }));
};

// After every test that made calls: each limited window's spend is the sum of the events' cost, and nothing is held.
afterEach(async () => {
  for (const tenant of tenantsCalled) {
    const expected = events.filter((e) => e.tenant_id === tenant).reduce((s, e) => s + nano(e.cost_usd!), 0);
    await until(async () => (await meter.getUsage(tenant)).every((w) => w.reservedUsd === 0 && nano(w.spentUsd) === expected), `the ledger of ${tenant} to equal its events`);
  }
  tenantsCalled.clear();
  events.length = 0;
});

describe('the Redis ledger, in one process', () => {
  it('a refused call is held before the request: the provider sees nothing, the APIPromise rejects', async () => {
    await meter.setLimit('r-broke', { limitUsd: 0.0005, frequency: 'per_day' });
    await expect(call('r-broke')).rejects.toBeInstanceOf(LimitExceededError);
    await expect(call('r-broke').withResponse()).rejects.toBeInstanceOf(LimitExceededError);
    expect(fake.count()).toBe(0);
  });

  it('the day and month counters equal the sum of the events cost_usd; the window keys expire by themselves', async () => {
    await meter.setLimit('r-sum', { limitUsd: 1, frequency: 'per_day' });
    await meter.setLimit('r-sum', { limitUsd: 5, frequency: 'per_month' });
    await Promise.all(Array.from({ length: 20 }, (_, i) => call('r-sum', { 'x-fake-usage': JSON.stringify({ completion_tokens: i + 1 }) })));
    await until(() => events.length === 20, 'events');
    const total = events.reduce((s, e) => s + nano(e.cost_usd!), 0);
    await until(async () => Number(await redis.hget(`t1:{r-sum}:${thisMonth().key}`, 'spent')) === total, 'every settlement');
    expect(Number(await redis.hget(`t1:{r-sum}:${today().key}`, 'spent'))).toBe(total);
    expect(await redis.pttl(`t1:{r-sum}:${today().key}`)).toBeGreaterThan(0);
    expect(await redis.pttl(`t1:{r-sum}:${thisMonth().key}`)).toBeGreaterThan(0);
  });

  it('strict admission across concurrent calls: at most the limit is ever spent and held', async () => {
    await meter.setLimit('r-burst', { limitUsd: 0.01, frequency: 'per_day' });
    const results = await Promise.allSettled(Array.from({ length: 60 }, () => call('r-burst', { 'x-fake-usage': JSON.stringify({ completion_tokens: 1000 }) })));
    const admitted = results.filter((r) => r.status === 'fulfilled').length;
    expect(admitted).toBe(10);
    expect(fake.count()).toBe(admitted);
    const [day] = await meter.getUsage('r-burst');
    expect(nano(day!.spentUsd + day!.reservedUsd)).toBeLessThanOrEqual(nano(0.01));
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

  it('a limit set with a seed sets the window spend in the same step, and the window still expires', async () => {
    const { store } = storeFor(redisServer.url, { keyPrefix: 'seed:' });
    await store.setLimit('s', { frequency: 'per_day', limitNano: 10_000 }, { window: today(), spentNano: 9_000 });
    expect(await redis.hgetall(`seed:{s}:${today().key}`)).toEqual({ spent: '9000' });
    expect(await redis.pttl(`seed:{s}:${today().key}`)).toBeGreaterThan(0);
    expect(await redis.hget('seed:{s}:limits', 'per_day')).toBe('10000');
    expect((await store.reserve('s', [today()], 2_000, 'strict')).admitted).toBe(false);
    await expect(store.setLimit('s', { frequency: 'per_day', limitNano: 1 }, { window: thisMonth(), spentNano: 1 })).rejects.toBeInstanceOf(LimitStoreFaultError);
    await store.close();
  });

  it('settling the same reservation twice changes nothing', async () => {
    const { store } = storeFor(redisServer.url, { keyPrefix: 't2:' });
    await store.setLimit('s', { frequency: 'per_day', limitNano: 1e9 });
    const outcome = await store.reserve('s', [today()], 5000, 'strict');
    expect(outcome.admitted).toBe(true);
    await store.settle(outcome.reservation, 1200);
    await store.settle(outcome.reservation, 1200);
    expect(await redis.hgetall(`t2:{s}:${today().key}`)).toEqual({ spent: '1200', reserved: '0' });
    expect(await redis.exists(`t2:{s}:settled:${outcome.reservation.id}`)).toBe(1);
    expect(await redis.exists(`t2:{s}:r:${outcome.reservation.id}`)).toBe(0);
    await store.close();
  });
});

describe('keys', () => {
  it('every key of a tenant maps to one Redis Cluster slot', () => {
    const keys = new LedgerKeys('p:');
    for (const tenant of ['acme', 'we{ir}d', 'a}b{c', '%7B']) {
      const all = [keys.limits(tenant), keys.window(tenant, 'd:2026-11-23'), keys.window(tenant, 'm:2026-11'), keys.reservation(tenant, 'x'), keys.settled(tenant, 'x'), keys.replayed(tenant, 'y')];
      expect(new Set(all.map(slotOf)).size).toBe(1);
    }
    expect(keys.limits('we{ir}d')).toBe('p:{we%7Bir%7Dd}:limits');
  });

  it('tenant ids are escaped one to one: org{eu} and org%7Beu%7D keep ledgers of their own', async () => {
    const keys = new LedgerKeys('p:');
    expect(keys.limits('org{eu}')).not.toBe(keys.limits('org%7Beu%7D'));
    expect(keys.limits('org%7Beu%7D')).toBe('p:{org%257Beu%257D}:limits');
    const { store } = storeFor(redisServer.url, { keyPrefix: 'esc:' });
    const settled: Record<string, number> = { 'org{eu}': 700, 'org%7Beu%7D': 300 };
    for (const [tenant, actual] of Object.entries(settled)) {
      await store.setLimit(tenant, { frequency: 'per_day', limitNano: 1e9 });
      const outcome = await store.reserve(tenant, [today()], 1000, 'strict');
      await store.settle(outcome.reservation, actual);
    }
    for (const [tenant, actual] of Object.entries(settled)) {
      const [day] = await store.usage(tenant, [today()]);
      expect(day).toMatchObject({ spentNano: actual, reservedNano: 0 });
    }
    await store.close();
  });
});

describe('error replies are faults, not outages', () => {
  it('a key of the wrong type: reserve rejects with LimitStoreFaultError, the breaker stays closed, other tenants go on', async () => {
    const { store, warnings } = storeFor(redisServer.url, { keyPrefix: 'wt:' });
    await store.setLimit('bad', { frequency: 'per_day', limitNano: 1e9 });
    await store.setLimit('good', { frequency: 'per_day', limitNano: 1e9 });
    await redis.set(`wt:{bad}:${today().key}`, 'not a hash');
    for (let i = 0; i < 3; i++) await expect(store.reserve('bad', [today()], 10, 'strict')).rejects.toBeInstanceOf(LimitStoreFaultError);
    const outcome = await store.reserve('good', [today()], 10, 'strict');
    expect(outcome.reservation).toBeDefined();
    await store.settle(outcome.reservation, 10);
    expect(await redis.hgetall(`wt:{good}:${today().key}`)).toEqual({ spent: '10', reserved: '0' });
    expect(warnings).toEqual([]);
    expect(store.pendingReplay).toBe(0);
    await store.close();
  });

  it('a settle Redis refuses never rejects and writes nothing: no marker without the spend, no window half done', async () => {
    const { store, warnings } = storeFor(redisServer.url, { keyPrefix: 'sf:' });
    await store.setLimit('t', { frequency: 'per_day', limitNano: 1e9 });
    await store.setLimit('t', { frequency: 'per_month', limitNano: 1e9 });
    const outcome = await store.reserve('t', [today(), thisMonth()], 500, 'strict');
    expect(outcome.reservation.windowKeys).toEqual([today().key, thisMonth().key]);
    await redis.del(`sf:{t}:${thisMonth().key}`);
    await redis.rpush(`sf:{t}:${thisMonth().key}`, 'not a hash');
    await expect(store.settle(outcome.reservation, 400)).resolves.toBeUndefined();
    expect(await redis.exists(`sf:{t}:settled:${outcome.reservation.id}`)).toBe(0);
    expect(await redis.hgetall(`sf:{t}:${today().key}`)).toEqual({ reserved: '500' });
    expect(await redis.exists(`sf:{t}:r:${outcome.reservation.id}`)).toBe(1);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/refused.*dropped/);
    expect(store.pendingReplay).toBe(0);
    await store.close();
  });

  it('invalid arguments are refused before anything reaches Redis', async () => {
    const { store, warnings } = storeFor(redisServer.url, { keyPrefix: 'args:' });
    for (const amount of [-1, 1.5, Number.NaN, 2 ** 53, '5', undefined]) {
      await expect(store.reserve('t', [today()], amount, 'strict')).rejects.toBeInstanceOf(LimitStoreFaultError);
    }
    await expect(store.reserve('t', [today()], 1, 'generous')).rejects.toBeInstanceOf(LimitStoreFaultError);
    await expect(store.reserve('t', [], 1, 'strict')).rejects.toBeInstanceOf(LimitStoreFaultError);
    await expect(store.reserve('t', [{ ...today(), key: 'd:today' }], 1, 'strict')).rejects.toBeInstanceOf(LimitStoreFaultError);
    await expect(store.reserve('t', [{ ...today(), frequency: 'per_month' }], 1, 'strict')).rejects.toBeInstanceOf(LimitStoreFaultError);
    await expect(store.reserve('', [today()], 1, 'strict')).rejects.toBeInstanceOf(LimitStoreFaultError);
    await expect(store.setLimit('t', { frequency: 'per_day', limitNano: -5 })).rejects.toBeInstanceOf(LimitStoreFaultError);
    await expect(store.setLimit('t', { frequency: 'per_week', limitNano: 5 })).rejects.toBeInstanceOf(LimitStoreFaultError);
    await expect(store.setLimit('t', { frequency: 'per_day', limitNano: 5 }, { window: today(), spentNano: 0.5 })).rejects.toBeInstanceOf(LimitStoreFaultError);
    expect(await redis.keys('args:*')).toEqual([]);
    expect(warnings).toEqual([]);
    await store.close();
  });

  it('the scripts check their arguments and keys before their first write', async () => {
    const { RESERVE, SETTLE, REPLAY, SET_LIMIT, REMOVE_LIMIT, RATE_SETTLE } = scripts;
    const k = (record: string) => `lua:{t}:${record}`;
    const day = today().key;
    const refused: Array<[{ source: string }, string[], string[]]> = [
      [RESERVE, [k('limits'), k('r:1'), k('settled:1'), k('rates'), k('inflight'), k(day)], ['-1', 'strict', '1000', '', '0', '0', 'per_day', day, '99999999999999', '-']],
      [RESERVE, [k('limits'), k('r:1'), k('settled:1'), k('rates'), k('inflight'), k(day)], ['1e3', 'strict', '1000', '', '0', '0', 'per_day', day, '99999999999999', '-']],
      [RESERVE, [k('limits'), k('r:1'), k('settled:1'), k('rates'), k('inflight'), k(day)], ['99999999999999999', 'strict', '1000', '', '0', '0', 'per_day', day, '99999999999999', '-']],
      [RESERVE, [k('limits'), k('r:1'), k('settled:1'), k('rates'), k('inflight'), k(day)], ['5', 'generous', '1000', '', '0', '0', 'per_day', day, '99999999999999', '-']],
      [RESERVE, [k('limits'), k('r:1'), k('settled:1'), k('rates'), k('inflight'), k(day)], ['5', 'strict', '1000', '', '0', '0', 'per_day', day, '-']],
      [RESERVE, [k('limits'), k('r:1'), k('settled:1'), k('rates'), k('inflight'), k(day)], ['5', 'strict', '1000', '', '0', '0', 'per day', day, '99999999999999', '-']],
      [RESERVE, [k('limits'), k('r:1'), k('settled:1'), k('rates'), k('inflight'), k(day)], ['5', 'strict', '1000', '', '0', '0', 'per_day', day, '99999999999999', 'lots']],
      [SETTLE, [k('settled:1'), k('r:1'), k(day)], ['1.5', '1000', '1', day, '99999999999999']],
      [SETTLE, [k('settled:1'), k('r:1'), k(day)], ['5', '1000', '1', day]],
      [REPLAY, [k('replayed:1'), k(day)], ['5', '-1', '1000', '1', '99999999999999']],
      [RESERVE, [k('limits'), k('r:1'), k('settled:1'), k('rates'), k('inflight'), k(day)], ['5', 'strict', '1000', '', 'x', '0', 'per_day', day, '99999999999999', '-']],
      [RATE_SETTLE, [k('rates'), k('inflight')], ['r1', '1', '-5', '0']],
      [SET_LIMIT, [k('limits')], ['per_day', '']],
      [SET_LIMIT, [k('limits')], ['per_day', '5', 'warn', '']],
      [SET_LIMIT, [k('limits')], ['per_day', '5', 'hard', '0.5;1']],
      [SET_LIMIT, [k('limits'), k(day)], ['per_day', '5', 'hard', '', 'x', '99999999999999']],
      [SET_LIMIT, [k('limits')], ['per_day|f:a b', '5', 'hard', '']],
      [REMOVE_LIMIT, [k('limits')], ['per_day|f:a\nb']],
      [REMOVE_LIMIT, [k('limits')], []],
    ];
    for (const [script, keys, args] of refused) {
      await expect(redis.eval(script.source, keys.length, ...keys, ...args), args.join(' ')).rejects.toThrow(/^ERR /);
    }
    expect(await redis.keys('lua:*')).toEqual([]);
    // A limit stored as something else than an integer, or a window of the wrong type: refused before any write.
    await redis.hset(k('limits'), 'per_day', 'lots');
    await expect(redis.eval(RESERVE.source, 6, k('limits'), k('r:1'), k('settled:1'), k('rates'), k('inflight'), k(day), '5', 'strict', '1000', '', '0', '0', 'per_day', day, '99999999999999', '-')).rejects.toThrow(/integer/);
    await redis.hset(k('limits'), 'per_day', '100');
    await redis.set(k(day), 'x');
    await expect(redis.eval(SETTLE.source, 3, k('settled:1'), k('r:1'), k(day), '5', '1000', '1', day, '99999999999999')).rejects.toThrow(/^WRONGTYPE/);
    expect((await redis.keys('lua:*')).sort()).toEqual([k(day), k('limits')].sort());
  });
});

describe('timeouts measure Redis, not the event loop', () => {
  const clients: Array<import('ioredis').default> = [];
  afterAll(() => clients.forEach((c) => c.disconnect()));
  const appClient = (options: import('ioredis').RedisOptions = {}) => {
    const c = new IORedis(redisServer.url, options);
    clients.push(c);
    return c;
  };

  it.each([
    ['a url, first command (it waits for the connection)', () => redisServer.url, false],
    ['a url, connected', () => redisServer.url, true],
    ["the app's ioredis client, connecting", () => appClient(), false],
    ["the app's ioredis client, connected", () => appClient(), true],
    ["the app's lazy ioredis client", () => appClient({ lazyConnect: true }), false],
  ])('150 ms of synchronous work right after setLimit is issued does not fail it: %s', async (_name, target, warm) => {
    const { store, warnings } = storeFor(target(), { keyPrefix: 'busy:' });
    if (warm) await store.usage('warm', [today()]);
    for (let i = 0; i < 3; i++) {
      const set = store.setLimit(`busy-${i}`, { frequency: 'per_day', limitNano: 1e9 });
      busy(150);
      await set;
      const reserving = store.reserve(`busy-${i}`, [today()], 10, 'strict');
      busy(150);
      const { reservation } = await reserving;
      const settling = store.settle(reservation, 10);
      busy(150);
      await settling;
    }
    expect(warnings).toEqual([]);
    expect(store.pendingReplay).toBe(0);
    for (let i = 0; i < 3; i++) expect(await redis.hgetall(`busy:{busy-${i}}:${today().key}`)).toEqual({ spent: '10', reserved: '0' });
    await redis.del(...(await redis.keys('busy:*')));
    await store.close();
  });

  it.each([
    ['a url', () => redisServer.url],
    ["the app's ioredis client", () => appClient()],
  ])('2,000 concurrent reserve + settle with the default options never open the breaker: %s', async (_name, target) => {
    const { store, warnings } = storeFor(target(), { keyPrefix: 'many:' });
    await store.setLimit('many', { frequency: 'per_day', limitNano: 1e15 });
    await store.setLimit('many', { frequency: 'per_month', limitNano: 1e15 });
    const windows = [today(), thisMonth()];
    const actuals = Array.from({ length: 2000 }, (_, i) => 1000 + i);
    await Promise.all(
      actuals.map(async (actual) => {
        const outcome = await store.reserve('many', windows, 5000, 'strict');
        await store.settle(outcome.reservation, actual);
      }),
    );
    expect(warnings).toEqual([]);
    expect(store.pendingReplay).toBe(0);
    const total = String(actuals.reduce((s, a) => s + a, 0));
    for (const window of windows) expect(await redis.hgetall(`many:{many}:${window.key}`)).toEqual({ spent: total, reserved: '0' });
    await redis.del(...(await redis.keys('many:*')));
    await store.close();
  });

  it("the app's own client gets the store's deadline: a frozen Redis is an outage, and the store comes back with it", async () => {
    const frozen = await startRedisServer();
    const app = new IORedis(frozen.url);
    const { store, warnings } = storeFor(app, { keyPrefix: 'frozen:', failMode: 'closed', retryAfter: 50 });
    try {
      await store.setLimit('f', { frequency: 'per_day', limitNano: 1e9 });
      frozen.pause();
      await expect(store.reserve('f', [today()], 10, 'strict')).rejects.toBeInstanceOf(LimitStoreUnavailableError);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatch(/unavailable.*refusing limited calls/);
      frozen.resume();
      await until(() => warnings.some((w) => w.includes('answers again')), 'the store to hear from Redis again');
      const { reservation } = await store.reserve('f', [today()], 10, 'strict');
      await store.settle(reservation, 7);
      // The reserve that timed out ran when Redis woke up; the release journalled for it has freed its hold.
      await until(() => store.pendingReplay === 0, 'the journal to be written');
      expect(await app.hgetall(`frozen:{f}:${today().key}`)).toEqual({ spent: '7', reserved: '0' });
    } finally {
      frozen.resume();
      await store.close();
      app.disconnect();
      await frozen.stop();
    }
  });

  it('a Redis that accepts connections but never answers: the connect deadline, not a command timeout, gives up', async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((s) => sockets.add(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const { port } = silent.address() as { port: number };
    const { store, warnings } = storeFor(`redis://127.0.0.1:${port}`, { connectTimeout: 300 });
    try {
      const err = await store.setLimit('x', { frequency: 'per_day', limitNano: 1 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LimitStoreUnavailableError);
      expect((err as Error).message).toMatch(/no connection to Redis within 300 ms|could not connect/);
      expect(warnings).toHaveLength(1);
    } finally {
      await store.close();
      for (const s of sockets) s.destroy();
      await new Promise((r) => silent.close(r));
    }
  });
});
