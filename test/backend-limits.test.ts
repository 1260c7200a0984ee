import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { BackendLimitsOptions, MeterOptions, UsageEvent } from 'llm-meter';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { startLimitsBackend, type Behaviour } from './fixtures/limits-backend.js';
import { ConfigError, LimitExceededError, Meter, repoRoot, requireFrom, requireFromRepo, runNode, stderrOf, until } from './helpers.js';

const { LimitStoreUnavailableError } = requireFromRepo('llm-meter') as typeof import('llm-meter');
const { sendRequest } = requireFromRepo('./dist/transport/http-request.js');

const nano = (usd: number): number => Math.round(usd * 1e9);

const fake = await startFakeProviders();
const backend = await startLimitsBackend();
afterAll(() => Promise.all([fake.close(), backend.close()]));

const { OpenAI } = requireFrom(repoRoot, 'openai');
const prices = { 'openai:gpt-4o': { input_mtok: 0, output_mtok: 1 } };
/** max_tokens 1000 at $1 per million output tokens: every call reserves $0.001 and costs $0.000001 per output token. */
const RESERVED_USD = 0.001;
const TTL = 5000;
let clock = Date.parse('2026-11-23T12:00:00Z');

let running: { meter: InstanceType<typeof Meter>; everyCallRecorded: () => boolean } | undefined;
afterEach(async () => {
  backend.state.behaviour = 'answers';
  // A call settles a tick after its caller sees it end: its spend must not reach the backend during the next test.
  if (running !== undefined) await until(running.everyCallRecorded, 'an event per call');
  await running?.meter.shutdown();
  running = undefined;
  fake.reset();
  backend.reset();
});

/** A Meter on the fake backend (one at a time: each instruments the same SDK copy), and a call of one tenant. */
function startMeter(limits: Partial<BackendLimitsOptions> = {}, options: MeterOptions = {}) {
  const events: UsageEvent[] = [];
  const meter = new Meter({
    limits: { url: backend.url, apiKey: 'backend-key', limitCheckCacheTtl: TTL, ...limits },
    prices,
    clock: () => clock,
    handleExit: false,
    onEvent: (e) => events.push(e),
    ...options,
  });
  let calls = 0;
  running = { meter, everyCallRecorded: () => events.length === calls };
  const client = meter.instrument(new OpenAI({ apiKey: 'k', baseURL: fake.openaiBaseURL, maxRetries: 0 }));
  const unscopedCall = (outputTokens = 7) => {
    calls++;
    return client.chat.completions.create(
      { model: 'gpt-4o', max_tokens: 1000, messages: [{ role: 'user', content: 'x' }] },
      { headers: { 'x-fake-usage': JSON.stringify({ completion_tokens: outputTokens }) } },
    );
  };
  const call = (tenant: string, outputTokens = 7) => meter.forTenant(tenant, () => unscopedCall(outputTokens));
  const spentNano = () => events.reduce((sum, e) => sum + nano(e.cost_usd ?? 0), 0);
  return { meter, call, unscopedCall, events, spentNano };
}

const requestsSince = (start: number) => backend.requests.slice(start);

describe("the app's own backend as the limit store", () => {
  it('answers are cached for limitCheckCacheTtl', async () => {
    const { call } = startMeter();
    backend.set('cached', 'per_month', 1);
    for (let i = 0; i < 5; i++) await call('cached');
    expect(backend.gets()).toBe(1);
    expect(backend.requests[0]!.auth).toBe('Bearer backend-key');
    clock += TTL + 1;
    await call('cached');
    expect(backend.gets()).toBe(2);
  });

  it('rate limits and model policies hold with a backend store too (kept in this process), with or without a spend limit', async () => {
    const { call, meter } = startMeter();
    backend.set('rated', 'per_day', 100);
    await meter.setRateLimit('rated', { requestsPerMinute: 3 });
    await meter.setRateLimit('unlimited', { requestsPerMinute: 2 });
    const results = await Promise.allSettled(Array.from({ length: 5 }, () => call('rated')));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
    expect(results.filter((r) => r.status === 'rejected').every((r) => (r as PromiseRejectedResult).reason.name === 'RateLimitedError')).toBe(true);
    const others = await Promise.allSettled(Array.from({ length: 4 }, () => call('unlimited')));
    expect(others.filter((r) => r.status === 'fulfilled')).toHaveLength(2);
    // A rate-limited tenant's spend limit still holds.
    backend.set('tight', 'per_day', 0);
    await meter.setRateLimit('tight', { requestsPerMinute: 10 });
    await expect(call('tight')).rejects.toBeInstanceOf(LimitExceededError);
    await meter.setPolicy('rated', { models: ['gpt-4o-mini'] });
    clock += 120_000;
    await expect(call('rated')).rejects.toMatchObject({ name: 'ModelNotAllowedError', model: 'gpt-4o' });
  });

  it("refuses a feature's or a model's budget, which its protocol cannot count, before asking the backend", async () => {
    const { meter } = startMeter();
    await expect(meter.setLimit('acme', { limitUsd: 1, frequency: 'per_day', feature: 'chat' })).rejects.toThrow(/budgets of a feature or a model are not part of the limits backend protocol/);
    await expect(meter.removeLimit('acme', 'per_day', { model: 'gpt-4o' })).rejects.toThrow(/not part of the limits backend protocol/);
    expect(backend.requests.filter((r) => r.method !== 'GET')).toHaveLength(0);
  });

  it('a burst inside the cache window is stopped by the local trip-wire', async () => {
    const { call, meter } = startMeter();
    backend.set('burst', 'per_day', 0.01, 0.004);
    const results = await Promise.allSettled(Array.from({ length: 30 }, () => call('burst')));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(6);
    expect(results.filter((r) => r.status === 'rejected').every((r) => (r as PromiseRejectedResult).reason instanceof LimitExceededError)).toBe(true);
    expect(fake.count()).toBe(6);
    expect(backend.gets()).toBe(1);
    await until(() => backend.ledger.get('burst') === nano(6 * 7e-6), 'the spend in the ledger');
    const [usage] = await meter.getUsage('burst');
    expect(usage!.spentUsd).toBeCloseTo(0.004 + 6 * 7e-6, 9);
    expect(usage!.reservedUsd).toBe(0);
  });

  it('setLimit writes the limit to the backend and drops the cached answer at once', async () => {
    const { call, meter } = startMeter();
    backend.set('flip', 'per_month', 1);
    await call('flip');
    await meter.setLimit('flip', { limitUsd: 0, frequency: 'per_month' });
    await expect(call('flip')).rejects.toBeInstanceOf(LimitExceededError);
    expect(backend.requests.filter((r) => r.method !== 'POST').map((r) => r.method)).toEqual(['GET', 'PUT', 'GET']);
    expect(fake.count()).toBe(1);
  });

  it('a tenant the backend knows no limit for is never refused, and posts no spend', async () => {
    const { call } = startMeter();
    await call('free');
    expect(fake.count()).toBe(1);
    expect(backend.requests.map((r) => r.method)).toEqual(['GET']);
  });

  it('setLimit with spentUsd seeds the window: the backend stores it, and it counts at once', async () => {
    const { call, meter } = startMeter();
    await meter.setLimit('seeded', { limitUsd: 1, frequency: 'per_month', spentUsd: 0.9995 });
    expect(backend.requests[0]).toMatchObject({ method: 'PUT', body: { limit_usd: 1, frequency: 'per_month', spent_usd: 0.9995, window: `m:${new Date(clock).toISOString().slice(0, 7)}` } });
    expect(backend.limits.get('seeded')!.get('per_month')!.spentNano).toBe(nano(0.9995));
    const refusal = await call('seeded').catch((e: unknown) => e);
    expect(refusal).toBeInstanceOf(LimitExceededError);
    expect((refusal as InstanceType<typeof LimitExceededError>).spentUsd).toBeCloseTo(0.9995, 9);
    await meter.setLimit('seeded', { limitUsd: 1, frequency: 'per_month', spentUsd: 1 - RESERVED_USD });
    await call('seeded');
    expect(fake.count()).toBe(1);
  });
});

describe('the spend ledger', () => {
  it('settled spend is posted to <url>/limits/<tenant>/spend: a spend_id, the amount, the windows', async () => {
    const { call, spentNano } = startMeter();
    const today = new Date(clock).toISOString();
    backend.set('ledger', 'per_day', 1);
    for (let i = 1; i <= 5; i++) await call('ledger', i * 100);
    await until(() => backend.ledger.get('ledger') === spentNano(), 'the ledger to equal the events');
    const posts = backend.requests.filter((r) => r.method === 'POST');
    expect(posts.length).toBeGreaterThan(0);
    for (const post of posts) {
      expect(post.path).toBe('/api/limits/ledger/spend');
      expect(post.auth).toBe('Bearer backend-key');
      expect(post.body).toEqual({ spend_id: expect.stringMatching(/^[0-9a-f-]{36}$/), spent_usd: expect.any(Number), windows: [`d:${today.slice(0, 10)}`, `m:${today.slice(0, 7)}`] });
    }
  });

  it('a burst of concurrent calls under a strict limit, with answers lost on the way: spend stays within the limit, and the ledger equals the events', async () => {
    // The real clock and a 1 ms cache: answers, spend posts and their acknowledgements interleave every which way.
    const { call, events, spentNano } = startMeter({ limitCheckCacheTtl: 1, retryAfter: 20 }, { clock: Date.now });
    backend.set('strict', 'per_day', 0.01);
    backend.state.loseSpendAnswers = 3;
    let calls = 0;
    for (let wave = 0; wave < 3; wave++) {
      const results = await Promise.allSettled(Array.from({ length: 30 }, (_, i) => call('strict', 500 + ((wave * 30 + i) * 37) % 501)));
      calls += results.length;
      for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(LimitExceededError);
    }
    await until(() => events.length === calls, 'an event per call');
    const admitted = events.filter((e) => e.error === undefined);
    expect(admitted.length).toBeGreaterThan(0);
    expect(admitted.length).toBeLessThan(calls);
    expect(fake.count()).toBe(admitted.length);
    expect(spentNano()).toBeLessThanOrEqual(nano(0.01));
    await until(() => backend.ledger.get('strict') === spentNano(), 'the ledger to equal the events');
    // Once all of it is counted, each answer lost on the way has been retried under the same spend_id, counted once.
    const lost = 3 - backend.state.loseSpendAnswers;
    expect(lost).toBeGreaterThan(0);
    await until(() => backend.state.repeatedSpendIds === lost, 'the lost answers retried');
    expect(backend.ledger.get('strict')).toBe(spentNano());
  });
});

describe('tenant ids in paths', () => {
  const nasty: Record<string, string> = {
    '..': '%2E%2E',
    '.': '%2E',
    '%2E%2E': '%252E%252E',
    '%2e%2e': '%252e%252e',
    '/': '%2F',
    '../admin': '%2E%2E%2Fadmin',
    'a/../b': 'a%2F%2E%2E%2Fb',
    '\\..\\': '%5C%2E%2E%5C',
    '?frequency=per_day': '%3Ffrequency%3Dper_day',
    '#top': '%23top',
    '%': '%25',
    'a b': 'a%20b',
    'é': '%C3%A9',
    '租户': '%E7%A7%9F%E6%88%B7',
    '😀': '%F0%9F%98%80',
  };

  it('every id reaches the backend exactly encoded, on a path of its own; `..` with a $0 limit is refused', async () => {
    const { call, meter } = startMeter();
    for (const [tenant, encoded] of Object.entries(nasty)) {
      const start = backend.requests.length;
      await meter.setLimit(tenant, { limitUsd: 0, frequency: 'per_month' });
      await expect(call(tenant)).rejects.toBeInstanceOf(LimitExceededError);
      expect(requestsSince(start).map((r) => `${r.method} ${r.path}`)).toEqual([`PUT /api/limits/${encoded}`, `GET /api/limits/${encoded}`]);
    }
    expect([...backend.limits.keys()].sort()).toEqual(Object.keys(nasty).sort());
    expect(new Set(backend.requests.map((r) => r.path)).size).toBe(Object.keys(nasty).length);
    expect(fake.count()).toBe(0);
  });

  it('an id that is not well-formed Unicode never reaches the backend', async () => {
    const { meter } = startMeter();
    await expect(meter.setLimit('\uD800', { limitUsd: 1, frequency: 'per_month' })).rejects.toBeInstanceOf(ConfigError);
    expect(backend.requests).toHaveLength(0);
  });
});

describe('a backend that is down, slow, or never done answering', () => {
  const misbehaviours: Behaviour[] = ['fails', 'never answers', 'stalls after its headers', 'trickles its answer'];

  it.each(misbehaviours)("failMode 'open', a backend that %s: the call is decided on the last answer once the deadline passes", async (behaviour) => {
    const { call } = startMeter({ failMode: 'open' }, { requestTimeout: 1000 });
    backend.set('slow-open', 'per_month', 1);
    await call('slow-open');
    const start = backend.requests.length;
    backend.state.behaviour = behaviour;
    clock += TTL + 1;
    await stderrOf(async () => {
      await call('slow-open');
    });
    expect(fake.count()).toBe(2);
    expect(requestsSince(start).filter((r) => r.method === 'GET')).toHaveLength(1);
  });

  it.each(misbehaviours)("failMode 'closed', a backend that %s: the call is refused with LimitStoreUnavailableError once the deadline passes", async (behaviour) => {
    const { call } = startMeter({ failMode: 'closed' }, { requestTimeout: 1000 });
    backend.set('slow-closed', 'per_month', 1);
    await call('slow-closed');
    backend.state.behaviour = behaviour;
    clock += TTL + 1;
    await stderrOf(async () => {
      await expect(call('slow-closed')).rejects.toBeInstanceOf(LimitStoreUnavailableError);
    });
    expect(fake.count()).toBe(1);
  });

  it("the breaker: a failed backend is asked once per retryAfter, with one warning; the spend held meanwhile reaches it once it is back", async () => {
    const { call, events, spentNano } = startMeter({ retryAfter: 60_000 });
    backend.set('down', 'per_month', 1);
    const stderr = await stderrOf(async () => {
      await call('down');
      await until(() => backend.ledger.get('down') === spentNano(), 'the first spend in the ledger');
      backend.state.behaviour = 'fails';
      clock += TTL + 1;
      let start = backend.requests.length;
      for (let i = 0; i < 10; i++) await call('down');
      expect(requestsSince(start)).toHaveLength(1);
      await until(() => events.length === 11, 'the events');

      clock += 60_000;
      start = backend.requests.length;
      await Promise.all(Array.from({ length: 5 }, () => call('down')));
      expect(requestsSince(start)).toHaveLength(1);

      backend.state.behaviour = 'answers';
      clock += 60_000;
      await call('down');
      await until(() => events.length === 17, 'the events');
      await until(() => backend.ledger.get('down') === spentNano(), 'the held spend in the ledger');
    });
    expect(fake.count()).toBe(17);
    expect(stderr.split('\n').filter((line) => line.includes('unavailable'))).toHaveLength(1);
    expect(stderr).toContain('answers again');
    expect(stderr).not.toContain('backend-key');
  });

  it("failMode 'open' still stops a tenant at its limit while the backend is down: its last answer plus this process's spend", async () => {
    const { call, spentNano } = startMeter({ retryAfter: 60_000 });
    backend.set('capped', 'per_day', 0.01, 0.006);
    await call('capped', 1000);
    await until(() => backend.ledger.get('capped') === spentNano(), 'the first spend in the ledger');
    backend.state.behaviour = 'fails';
    clock += TTL + 1;
    await stderrOf(async () => {
      for (let i = 0; i < 3; i++) await call('capped', 1000);
      const refusal = await call('capped', 1000).catch((e: unknown) => e);
      expect(refusal).toBeInstanceOf(LimitExceededError);
      expect((refusal as InstanceType<typeof LimitExceededError>).spentUsd + (refusal as InstanceType<typeof LimitExceededError>).heldUsd).toBeCloseTo(0.006 + 4 * RESERVED_USD, 9);
    });
    expect(fake.count()).toBe(4);
  });

  it("failMode 'closed' refuses limited calls without asking the backend again, and lets unscoped calls through", async () => {
    const { call, unscopedCall, spentNano } = startMeter({ failMode: 'closed', retryAfter: 60_000 });
    backend.set('refused', 'per_month', 1);
    await call('refused');
    await until(() => backend.ledger.get('refused') === spentNano(), 'the first spend in the ledger');
    backend.state.behaviour = 'fails';
    clock += TTL + 1;
    const start = backend.requests.length;
    const stderr = await stderrOf(async () => {
      for (let i = 0; i < 5; i++) await expect(call('refused')).rejects.toBeInstanceOf(LimitStoreUnavailableError);
    });
    expect(requestsSince(start)).toHaveLength(1);
    expect(stderr).toContain('refusing limited calls');
    await unscopedCall();
    expect(fake.count()).toBe(2);
  });
});

describe('the request deadline', () => {
  it('covers the whole answer: a server that trickles its answer is cut off', async () => {
    backend.state.behaviour = 'trickles its answer';
    await expect(sendRequest(new URL(`${backend.url}/limits/x`), { method: 'GET', headers: {}, timeoutMs: 300 })).rejects.toThrow('no complete answer within 300 ms');
  });

  it('never keeps a process alive once the answer is in', async () => {
    const script = `require(process.argv[1]).sendRequest(new URL(process.argv[2]), { method: 'GET', headers: {}, timeoutMs: 600000 }).then((r) => console.log('status', r.status))`;
    const run = await runNode(['-e', script, join(repoRoot, 'dist/transport/http-request.js'), `${backend.url}/limits/nobody`]);
    expect(run).toMatchObject({ code: 0, signal: null });
    expect(run.stdout).toContain('status 404');
  });
});

describe('options', () => {
  it('retryAfter is validated like the other limits options', () => {
    expect(() => new Meter({ limits: { url: backend.url, retryAfter: 0 } })).toThrow(/retryAfter must be a positive integer/);
    expect(() => new Meter({ limits: { url: backend.url, retryAfter: 1.5 } })).toThrow(ConfigError);
    expect(() => new Meter({ limits: { url: backend.url, retryAfter: '5000' as any } })).toThrow(ConfigError);
  });
});
