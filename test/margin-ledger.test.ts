// The ledger of spend and revenue per tenant and window (live gross margin): every tenant, limited or not, in process
// and on Redis (fleet-wide), exact in nano-dollars, bounded in memory.
import { afterAll, describe, expect, it } from 'vitest';
import { startRedisServer } from './fixtures/redis-server.mjs';
import { Meter, requireFromRepo, until } from './helpers.js';

const { SpendLimits, createLimitStore } = requireFromRepo('./dist/src/limits/spend-limits.js');
const { MAX_UNLIMITED_TENANTS } = requireFromRepo('./dist/src/limits/memory-store.js');
const { resolveConfig } = requireFromRepo('./dist/src/config.js');
const { PriceBook } = requireFromRepo('./dist/src/pricing/price-book.js');
const { WindowCalendar } = requireFromRepo('./dist/src/limits/windows.js');

const nano = (usd: number) => Math.round(usd * 1e9);

/** A log that keeps every warning it is asked for, with its key. */
function keepingLog() {
  const warnings: Array<{ key?: string; message: string }> = [];
  return {
    warnings,
    debugEnabled: false,
    debug: () => undefined,
    debugOnce: () => undefined,
    warn: (message: string) => warnings.push({ message }),
    warnOnce: (key: string, message: string) => warnings.push({ key, message }),
    redact: (t: string) => t,
  };
}

/** SpendLimits and its store, made the way the Meter makes them. */
function ledger(options: Record<string, unknown> = {}, clock: () => number = Date.now) {
  const log = keepingLog();
  const config = { ...resolveConfig(options, []), clock };
  const store = createLimitStore(config, log);
  const limits = new SpendLimits(store, new WindowCalendar(config.timezone), new PriceBook(config.prices, () => undefined), config, () => false);
  return { limits, store, log, calendar: new WindowCalendar(config.timezone) };
}

type Report = { frequency: string; spentUsd: number; reservedUsd: number; revenueUsd: number; marginUsd: number; limitUsd?: number; resetsAt: Date };
const byFrequency = (usage: Report[]) => Object.fromEntries(usage.map((w) => [w.frequency, w])) as Record<'per_day' | 'per_month', Report>;

describe('in process', () => {
  const NOV_23 = Date.parse('2026-11-23T12:00:00Z');

  it('a tenant without a limit: both windows, the exact sums of its bookings, revenue and margin', async () => {
    let now = NOV_23;
    const { limits } = ledger({}, () => now);
    limits.book('free', { spentUsd: 0.1, revenueUsd: 0.1 });
    limits.book('free', { spentUsd: 0.2, revenueUsd: 0.2 });
    limits.book('free', { spentUsd: 0.000_000_7, revenueUsd: 0.5 });
    const usage: Report[] = await limits.usage('free');
    expect(usage.map((w) => w.frequency)).toEqual(['per_day', 'per_month']);
    for (const window of usage) {
      expect(window).toEqual({
        frequency: window.frequency,
        spentUsd: 0.300_000_7,
        reservedUsd: 0,
        revenueUsd: 0.8,
        marginUsd: 0.499_999_3,
        resetsAt: window.frequency === 'per_day' ? new Date('2026-11-24T00:00:00Z') : new Date('2026-12-01T00:00:00Z'),
      });
      expect('limitUsd' in window).toBe(false);
    }
    // The next day: the daily window starts from zero, the monthly one goes on.
    now = Date.parse('2026-11-24T00:00:00Z');
    limits.book('free', { spentUsd: 0.1, revenueUsd: 0 });
    const next = byFrequency(await limits.usage('free'));
    expect(next.per_day).toMatchObject({ spentUsd: 0.1, revenueUsd: 0, marginUsd: -0.1 });
    expect(next.per_month).toMatchObject({ spentUsd: 0.400_000_7, revenueUsd: 0.8, marginUsd: 0.399_999_3 });
  });

  it('a tenant with nothing booked: both windows with zeros; a booking of nothing writes nothing', async () => {
    const { limits, store } = ledger({}, () => NOV_23);
    limits.book('nothing', { spentUsd: 0, revenueUsd: 0 });
    expect(await limits.usage('nothing')).toEqual([
      { frequency: 'per_day', spentUsd: 0, reservedUsd: 0, revenueUsd: 0, marginUsd: 0, resetsAt: new Date('2026-11-24T00:00:00Z') },
      { frequency: 'per_month', spentUsd: 0, reservedUsd: 0, revenueUsd: 0, marginUsd: 0, resetsAt: new Date('2026-12-01T00:00:00Z') },
    ]);
    expect((store as { counters: Map<string, unknown> }).counters.has('nothing')).toBe(false);
  });

  it('revenue sums exactly: 0.1 + 0.2 is 0.3', async () => {
    const { limits } = ledger({}, () => NOV_23);
    limits.book('exact', { spentUsd: 0, revenueUsd: 0.1 });
    limits.book('exact', { spentUsd: 0, revenueUsd: 0.2 });
    const { per_day, per_month } = byFrequency(await limits.usage('exact'));
    expect(per_day.revenueUsd).toBe(0.3);
    expect(per_month.revenueUsd).toBe(0.3);
    expect(per_day.marginUsd).toBe(0.3);
  });

  it('a limited tenant: a settled call is counted once in its limited window and booked in the other; booked spend counts against the limit', async () => {
    const { limits, store, calendar } = ledger({}, () => NOV_23);
    await limits.setLimit('capped', { limitUsd: 1, frequency: 'per_day' });
    const day = calendar.window('per_day', NOV_23);
    const outcome = store.reserve('capped', [day], nano(0.5), 'strict');
    expect(outcome.admitted).toBe(true);
    limits.settle(outcome.reservation, 0.3);
    limits.book('capped', { spentUsd: 0.3, revenueUsd: 0.45, settledIn: outcome.reservation });
    const usage: Report[] = await limits.usage('capped');
    // The limited window first, as getUsage always listed it.
    expect(usage.map((w) => w.frequency)).toEqual(['per_day', 'per_month']);
    const { per_day, per_month } = byFrequency(usage);
    expect(per_day).toMatchObject({ spentUsd: 0.3, reservedUsd: 0, revenueUsd: 0.45, marginUsd: 0.15, limitUsd: 1 });
    expect(per_month).toMatchObject({ spentUsd: 0.3, reservedUsd: 0, revenueUsd: 0.45, marginUsd: 0.15 });
    expect('limitUsd' in per_month).toBe(false);
    // Spend made at the provider (batch results) is booked into every window, and the limit sees it.
    limits.book('capped', { spentUsd: 0.7, revenueUsd: 0 });
    expect(byFrequency(await limits.usage('capped')).per_day.spentUsd).toBe(1);
    expect(store.reserve('capped', [day], 1, 'strict').admitted).toBe(false);
  });

  it('a monthly limit is listed first', async () => {
    const { limits } = ledger({}, () => NOV_23);
    await limits.setLimit('monthly', { limitUsd: 5, frequency: 'per_month' });
    limits.book('monthly', { spentUsd: 0.25, revenueUsd: 1 });
    const usage: Report[] = await limits.usage('monthly');
    expect(usage.map((w) => [w.frequency, w.limitUsd, w.spentUsd, w.marginUsd])).toEqual([
      ['per_month', 5, 0.25, 0.75],
      ['per_day', undefined, 0.25, 0.75],
    ]);
  });

  it(`keeps at most ${MAX_UNLIMITED_TENANTS} tenants without a limit: the least recently booked is forgotten, counted and logged; limited tenants stay`, async () => {
    const { limits, log } = ledger({}, () => NOV_23);
    expect(MAX_UNLIMITED_TENANTS).toBe(10_000);
    await limits.setLimit('kept', { limitUsd: 100, frequency: 'per_day' });
    limits.book('kept', { spentUsd: 1, revenueUsd: 2 });
    for (let i = 0; i < MAX_UNLIMITED_TENANTS; i++) limits.book(`t${i}`, { spentUsd: 0.01, revenueUsd: 0.02 });
    expect(limits.forgottenTenants).toBe(0);
    expect(log.warnings).toEqual([]);
    // t0 is booked again: t1 is now the least recently booked.
    limits.book('t0', { spentUsd: 0.01, revenueUsd: 0 });
    limits.book('one-too-many', { spentUsd: 0.01, revenueUsd: 0.02 });
    expect(limits.forgottenTenants).toBe(1);
    expect(byFrequency(await limits.usage('t1')).per_month).toMatchObject({ spentUsd: 0, revenueUsd: 0 });
    expect(byFrequency(await limits.usage('t0')).per_month).toMatchObject({ spentUsd: 0.02, revenueUsd: 0.02 });
    expect(byFrequency(await limits.usage('one-too-many')).per_month).toMatchObject({ spentUsd: 0.01, revenueUsd: 0.02 });
    expect(byFrequency(await limits.usage('kept')).per_day).toMatchObject({ spentUsd: 1, revenueUsd: 2, limitUsd: 100 });
    expect(log.warnings).toHaveLength(1);
    expect(log.warnings[0]!.message).toMatch(/at most 10000 tenants without a limit/);
    limits.book('and-another', { spentUsd: 0.01, revenueUsd: 0 });
    expect(limits.forgottenTenants).toBe(2);
    // Logged once per log: every warning asked for has the same key (AgentLog.warnOnce prints the first only).
    expect(new Set(log.warnings.map((w) => w.key)).size).toBe(1);
    expect(byFrequency(await limits.usage('t2')).per_month.spentUsd).toBe(0);
  });

  it('through the Meter: trackManually books a tenant without a limit, getUsage shows both windows', async () => {
    const meter = new Meter({ handleExit: false, clock: () => NOV_23 });
    try {
      for (const cost of [0.1, 0.2, 0.3]) meter.forTenant('manual', () => meter.trackManually({ provider: 'openai', model: 'm', input_tokens: 1, output_tokens: 1, cost_usd: cost }));
      const usage = byFrequency((await meter.getUsage('manual')) as Report[]);
      expect(usage.per_day).toMatchObject({ spentUsd: 0.6, reservedUsd: 0, revenueUsd: 0, marginUsd: -0.6 });
      expect(usage.per_month).toMatchObject({ spentUsd: 0.6, reservedUsd: 0, revenueUsd: 0, marginUsd: -0.6 });
    } finally {
      await meter.shutdown();
    }
  });
});

describe('on Redis, fleet-wide', () => {
  const redisServerStarted = startRedisServer();
  afterAll(async () => (await redisServerStarted).stop());
  let run = 0;
  const prefix = () => `margin${++run}-${process.pid}:`;
  /** Two ledgers on one Redis and key prefix, as two processes of a fleet. */
  const twoProcesses = async () => {
    const redisServer = await redisServerStarted;
    const keyPrefix = prefix();
    return [ledger({ limits: { redis: redisServer.url, keyPrefix } }), ledger({ limits: { redis: redisServer.url, keyPrefix } })] as const;
  };

  it('two processes booking into one tenant: either sees the fleet-wide sums, revenue and margin exact', async () => {
    const [a, b] = await twoProcesses();
    try {
      a.limits.book('shared', { spentUsd: 0.1, revenueUsd: 0.1 });
      b.limits.book('shared', { spentUsd: 0.2, revenueUsd: 0.2 });
      a.limits.book('shared', { spentUsd: 0.000_000_001, revenueUsd: 0.4 });
      const expected = { spentUsd: 0.300_000_001, reservedUsd: 0, revenueUsd: 0.7, marginUsd: 0.399_999_999 };
      for (const side of [a, b]) {
        await until(async () => (await side.limits.usage('shared')).every((w: Report) => w.spentUsd === expected.spentUsd && w.revenueUsd === expected.revenueUsd), 'the fleet-wide sums');
        const usage: Report[] = await side.limits.usage('shared');
        expect(usage.map((w) => w.frequency)).toEqual(['per_day', 'per_month']);
        for (const window of usage) expect(window).toMatchObject(expected);
      }
      expect(a.log.warnings).toEqual([]);
      expect(b.log.warnings).toEqual([]);
    } finally {
      await Promise.all([a.limits.close(), b.limits.close()]);
    }
  });

  it('a limited tenant: a settled reservation plus its booking counts the cost once per window; revenue in both', async () => {
    const [a, b] = await twoProcesses();
    try {
      await a.limits.setLimit('capped', { limitUsd: 2, frequency: 'per_day' });
      const now = Date.now();
      const windows = ['per_day', 'per_month'].map((f) => a.calendar.window(f, now));
      const outcome = await a.store.reserve('capped', windows, nano(0.5), 'strict');
      // Redis holds the reservation in the limited window only.
      expect(outcome.reservation.windowKeys).toEqual([windows[0].key]);
      await a.store.settle(outcome.reservation, nano(0.1));
      a.limits.book('capped', { spentUsd: 0.1, revenueUsd: 0.1, settledIn: outcome.reservation });
      b.limits.book('capped', { spentUsd: 0.2, revenueUsd: 0.2 });
      await until(async () => (await b.limits.usage('capped')).every((w: Report) => w.revenueUsd === 0.3), 'both bookings written');
      const usage: Report[] = await b.limits.usage('capped');
      expect(usage.map((w) => w.frequency)).toEqual(['per_day', 'per_month']);
      const { per_day, per_month } = byFrequency(usage);
      expect(per_day).toMatchObject({ spentUsd: 0.3, reservedUsd: 0, revenueUsd: 0.3, marginUsd: 0, limitUsd: 2 });
      expect(per_month).toMatchObject({ spentUsd: 0.3, reservedUsd: 0, revenueUsd: 0.3, marginUsd: 0 });
      expect('limitUsd' in per_month).toBe(false);
      // The booked spend counts against the limit fleet-wide: 0.3 spent of 2, so 1.7 more fits, and then not 1 nano more.
      expect((await b.store.reserve('capped', [windows[0]], nano(1.7), 'strict')).admitted).toBe(true);
      expect((await a.store.reserve('capped', [windows[0]], 1, 'strict')).admitted).toBe(false);
    } finally {
      await Promise.all([a.limits.close(), b.limits.close()]);
    }
  });

  it('Redis away: bookings are journalled (summed per tenant and window) and written once it is back', async () => {
    const server = await startRedisServer();
    const keyPrefix = prefix();
    const a = ledger({ limits: { redis: server.url, keyPrefix, retryAfter: 50 } });
    try {
      a.limits.book('away', { spentUsd: 0.1, revenueUsd: 0.2 });
      await until(async () => (await a.limits.usage('away'))[0].revenueUsd === 0.2, 'the first booking written');
      await server.stop();
      await expect(a.limits.usage('away')).rejects.toThrow(/unavailable/);
      a.limits.book('away', { spentUsd: 0.2, revenueUsd: 0.1 });
      a.limits.book('away', { spentUsd: 0.3, revenueUsd: 0.1 });
      expect(a.store.pendingReplay).toBe(2);
      await server.start();
      await until(() => a.store.pendingReplay === 0, 'the journal written');
      // Redis came back empty: what it holds is what was journalled while it was away, each booking once.
      for (const window of (await a.limits.usage('away')) as Report[]) expect(window).toMatchObject({ spentUsd: 0.5, revenueUsd: 0.2, marginUsd: -0.3 });
      expect(a.log.warnings.map((w) => w.message).join('\n')).toMatch(/unavailable/);
    } finally {
      await a.limits.close();
      await server.stop();
    }
  });

  it('through two Meters: trackManually in one, getUsage in the other shows it; the window records expire', async () => {
    const redisServer = await redisServerStarted;
    const keyPrefix = prefix();
    const one = new Meter({ limits: { redis: redisServer.url, keyPrefix }, handleExit: false });
    const two = new Meter({ limits: { redis: redisServer.url, keyPrefix }, handleExit: false });
    const redis = new (requireFromRepo('ioredis') as typeof import('ioredis').default)(redisServer.url);
    try {
      one.forTenant('fleet', () => one.trackManually({ provider: 'openai', model: 'm', input_tokens: 1, output_tokens: 1, cost_usd: 0.1 }));
      two.forTenant('fleet', () => two.trackManually({ provider: 'openai', model: 'm', input_tokens: 1, output_tokens: 1, cost_usd: 0.2 }));
      for (const meter of [one, two]) {
        await until(async () => ((await meter.getUsage('fleet')) as Report[]).every((w) => w.spentUsd === 0.3), 'the fleet-wide spend');
        for (const window of (await meter.getUsage('fleet')) as Report[]) expect(window).toMatchObject({ spentUsd: 0.3, marginUsd: -0.3 });
      }
      const keys = await redis.keys(`${keyPrefix}{fleet}:[dm]:*`);
      expect(keys).toHaveLength(2);
      for (const key of keys) expect(await redis.pttl(key)).toBeGreaterThan(0);
    } finally {
      redis.disconnect();
      await Promise.all([one.shutdown(), two.shutdown()]);
    }
  });
});
