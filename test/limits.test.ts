import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { LimitExceededError, Meter, repoRoot, requireFrom, tick, until } from './helpers.js';
import type { UsageEvent } from 'llm-meter';

const fake = await startFakeProviders();
afterAll(() => fake.close());
afterEach(() => fake.reset());

const { OpenAI } = requireFrom(repoRoot, 'openai');
const messages = [{ role: 'user' as const, content: 'hi' }];
const client = new OpenAI({ apiKey: 'k', baseURL: fake.openaiBaseURL, maxRetries: 0 });

// Input free, output $1 per million tokens: a call with max_tokens 1000 reserves exactly $0.001.
const prices = { 'openai:gpt-4o': { input_mtok: 0, output_mtok: 1 } };
let clock = Date.parse('2026-11-23T12:00:00Z');
const events: UsageEvent[] = [];
const meter = new Meter({ prices, clock: () => clock, onEvent: (e) => events.push(e) });
meter.patchAll();
afterAll(() => meter.unpatchAll());
afterEach(() => {
  events.length = 0;
  clock = Date.parse('2026-11-23T12:00:00Z');
});

// After every test: for each tenant that made calls, the ledger's settled spend equals the sum of its events' cost,
// and nothing stays held. (The calendar test moves the clock across windows: it checks its windows itself.)
const DEFAULT_CLOCK = Date.parse('2026-11-23T12:00:00Z');
afterEach(async () => {
  if (clock !== DEFAULT_CLOCK) return;
  for (const tenant of new Set(events.map((e) => e.tenant_id).filter((t) => t !== undefined))) {
    const cost = events.filter((e) => e.tenant_id === tenant).reduce((sum, e) => sum + Math.round(e.cost_usd! * 1e9), 0);
    for (const window of await meter.getUsage(tenant)) {
      expect(window.reservedUsd, `${tenant} ${window.frequency} held`).toBe(0);
      expect(Math.round(window.spentUsd * 1e9), `${tenant} ${window.frequency} ledger`).toBe(cost);
    }
  }
});

const call = (tenant: string, extra: Record<string, unknown> = {}) =>
  meter.forTenant(tenant, () => client.chat.completions.create({ model: 'gpt-4o', messages, max_tokens: 1000, ...extra }));

describe('refusal before any traffic', () => {
  it('a tenant over its limit is refused with LimitExceededError, and the provider sees no request', async () => {
    await meter.setLimit('broke', { limitUsd: 0.0005, frequency: 'per_day' });
    const err = await call('broke').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LimitExceededError);
    expect(err).toMatchObject({ tenantId: 'broke', frequency: 'per_day', limitUsd: 0.0005, spentUsd: 0 });
    expect((err as InstanceType<typeof LimitExceededError>).resetsAt.toISOString()).toBe('2026-11-24T00:00:00.000Z');
    expect(fake.count()).toBe(0);
  });

  it('the refusal is the SDK-style rejected APIPromise: withResponse rejects, streams are refused alike', async () => {
    await meter.setLimit('broke2', { limitUsd: 0, frequency: 'per_month' });
    await expect(call('broke2').withResponse()).rejects.toBeInstanceOf(LimitExceededError);
    await expect(call('broke2', { stream: true })).rejects.toBeInstanceOf(LimitExceededError);
    const helper = meter.forTenant('broke2', () => client.chat.completions.stream({ model: 'gpt-4o', messages, max_tokens: 10 }));
    const helperErr = await helper.finalChatCompletion().catch((e: unknown) => e);
    expect((helperErr as Error).cause ?? helperErr).toBeInstanceOf(LimitExceededError);
    expect(fake.count()).toBe(0);
  });

  it('an unawaited refused call does not crash the process', async () => {
    await meter.setLimit('broke3', { limitUsd: 0, frequency: 'per_day' });
    void call('broke3');
    meter.forTenant('broke3', () => void client.chat.completions.create({ model: 'gpt-4o', messages, stream: true }));
    await tick(50);
    expect(fake.count()).toBe(0);
  });

  it('a refused call yields one event with the error and no cost', async () => {
    await meter.setLimit('broke4', { limitUsd: 0, frequency: 'per_day' });
    await call('broke4').catch(() => undefined);
    await until(() => events.length === 1, 'the refusal event');
    expect(events[0]).toMatchObject({ tenant_id: 'broke4', error: 'LimitExceededError', cost_usd: 0 });
  });

  it('setLimit takes effect on the very next call; removeLimit lifts it', async () => {
    await call('flip');
    await meter.setLimit('flip', { limitUsd: 0, frequency: 'per_day' });
    await expect(call('flip')).rejects.toBeInstanceOf(LimitExceededError);
    await meter.removeLimit('flip', 'per_day');
    await call('flip');
    expect(fake.count()).toBe(2);
  });

  it('calls outside any tenant scope are never refused', async () => {
    await client.chat.completions.create({ model: 'gpt-4o', messages, max_tokens: 1_000_000 });
    expect(fake.count()).toBe(1);
  });
});

describe('concurrency', () => {
  it('strict: 200 concurrent calls against a limit that fits exactly 10 worst-case calls admit 10; the settled total stays under the limit', async () => {
    await meter.setLimit('burst', { limitUsd: 0.01, frequency: 'per_day' });
    const results = await Promise.allSettled(Array.from({ length: 200 }, () => call('burst')));
    const admitted = results.filter((r) => r.status === 'fulfilled').length;
    expect(admitted).toBe(10);
    expect(results.filter((r) => r.status === 'rejected').every((r) => (r as PromiseRejectedResult).reason instanceof LimitExceededError)).toBe(true);
    expect(fake.count()).toBe(10);
    await until(() => events.length === 200, 'all events');
    const [day] = await meter.getUsage('burst');
    expect(day).toMatchObject({ frequency: 'per_day', limitUsd: 0.01, reservedUsd: 0 });
    expect(day!.spentUsd).toBeCloseTo(10 * 7e-6, 12);
    expect(day!.spentUsd).toBeLessThanOrEqual(0.01);
    const settled = events.reduce((sum, e) => sum + (e.cost_usd ?? 0), 0);
    expect(settled).toBeCloseTo(day!.spentUsd, 12);
  });

  it('an early break settles the reservation-sized estimate, and nothing stays reserved', async () => {
    await meter.setLimit('brk', { limitUsd: 1, frequency: 'per_day' });
    const stream = await call('brk', { stream: true });
    for await (const _ of stream) break;
    await until(() => events.length === 1, 'the stream event');
    expect(events[0]).toMatchObject({ partial: true, cost_estimated: true, cost_usd: 0.001 });
    const [day] = await meter.getUsage('brk');
    expect(day).toMatchObject({ spentUsd: 0.001, reservedUsd: 0 });
  });

  it('a provider error releases the reservation entirely', async () => {
    await meter.setLimit('fail', { limitUsd: 1, frequency: 'per_day' });
    await call('fail', {}).catch(() => undefined);
    await meter.forTenant('fail', () => client.chat.completions.create({ model: 'gpt-4o', messages, max_tokens: 1000 }, { headers: { 'x-fake-status': '500' } })).catch(() => undefined);
    await until(() => events.length === 2, 'two events');
    const [day] = await meter.getUsage('fail');
    expect(day!.reservedUsd).toBe(0);
    expect(day!.spentUsd).toBeCloseTo(7e-6, 12);
  });
});

describe('calendar windows', () => {
  it('the daily window rolls over at midnight UTC, the monthly one on the 1st', async () => {
    await meter.setLimit('cal', { limitUsd: 1, frequency: 'per_day' });
    await meter.setLimit('cal', { limitUsd: 5, frequency: 'per_month' });
    clock = Date.parse('2026-11-30T23:59:59Z');
    await call('cal');
    await until(() => events.length === 1, 'event');
    let usage = await meter.getUsage('cal');
    expect(usage.map((u) => u.spentUsd)).toEqual([7e-6, 7e-6]);
    expect(usage.map((u) => u.resetsAt.toISOString())).toEqual(['2026-12-01T00:00:00.000Z', '2026-12-01T00:00:00.000Z']);
    clock = Date.parse('2026-12-01T00:00:00Z');
    usage = await meter.getUsage('cal');
    expect(usage.map((u) => u.spentUsd)).toEqual([0, 0]);
    await call('cal');
    clock = Date.parse('2026-12-02T00:00:01Z');
    usage = await meter.getUsage('cal');
    expect(usage.find((u) => u.frequency === 'per_day')!.spentUsd).toBe(0);
    expect(usage.find((u) => u.frequency === 'per_month')!.spentUsd).toBeCloseTo(7e-6, 12);
  });

  it('the timezone option moves the windows to local midnight', async () => {
    const tokyo = new Meter({ prices, timezone: 'Asia/Tokyo', clock: () => Date.parse('2026-11-23T16:00:00Z') });
    await tokyo.setLimit('tz', { limitUsd: 1, frequency: 'per_day' });
    await tokyo.setLimit('tz', { limitUsd: 1, frequency: 'per_month' });
    const usage = await tokyo.getUsage('tz');
    expect(usage.map((u) => u.resetsAt.toISOString())).toEqual(['2026-11-24T15:00:00.000Z', '2026-11-30T15:00:00.000Z']);
  });
});

describe('policies and bad input', () => {
  it.each([
    [{ limitUsd: -1, frequency: 'per_day' }, /limitUsd must be a finite, non-negative number, got -1/],
    [{ limitUsd: Number.NaN, frequency: 'per_day' }, /got NaN/],
    [{ limitUsd: Infinity, frequency: 'per_day' }, /got Infinity/],
    [{ limitUsd: 5, frequency: 'per_week' }, /frequency must be one of per_day, per_month, got "per_week"/],
  ])('setLimit refuses %o', async (limit, message) => {
    await expect(meter.setLimit('x', limit as any)).rejects.toThrow(message);
  });

  it('bad tenant ids and time zones are refused', async () => {
    await expect(meter.setLimit('', { limitUsd: 1, frequency: 'per_day' })).rejects.toThrow(/tenantId must be a non-empty string/);
    expect(() => new Meter({ timezone: 'Mars/Olympus' })).toThrow(/timezone must be an IANA time zone name.*"Mars\/Olympus"/);
    expect(() => new Meter({ enforcement: 'loose' as any })).toThrow(/enforcement must be one of 'strict', 'lenient', got "loose"/);
  });
});
