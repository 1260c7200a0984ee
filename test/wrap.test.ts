// Wrapped clients (meter.wrap, wrapOpenAI / wrapAnthropic / wrapGoogle): metering that needs no --import and no
// patchAll, the customer a client is billed to, revenue and provided costs, limits, runs resolved to outcomes, and the
// per-tenant margins the ledger keeps (in memory and on a Redis shared by two Meters).
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Meter as MeterClass, MeterOptions, UsageEvent } from 'llm-meter';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { startRedisServer } from './fixtures/redis-server.mjs';
import { ConfigError, eventsPrinted, LimitExceededError, Meter, OPENAI_VERSIONS, repoRoot, requireFrom, requireFromRepo, runNode, until } from './helpers.js';

/** An event as this feature emits it: usage events and outcome events, with the fields the feature adds. */
type Ev = Omit<UsageEvent, 'type'> & { type?: string } & Record<string, any>;

const { wrapOpenAI, wrapAnthropic } = requireFromRepo('llm-meter') as typeof import('llm-meter');

const fake = await startFakeProviders();
afterAll(() => fake.close());
afterEach(() => fake.reset());

const { OpenAI } = requireFrom(repoRoot, 'openai');
const anthropicSdk = requireFrom(repoRoot, '@anthropic-ai/sdk');
const Anthropic = anthropicSdk.Anthropic ?? anthropicSdk.default;
// SDK copies no other test here wraps: a Meter that wraps them first owns their classes (see the last describe).
const OpenAI7 = requireFrom(OPENAI_VERSIONS['openai 7'], 'openai').OpenAI;
const OpenAI5 = requireFrom(join(repoRoot, 'test/sdk-versions/openai-5'), 'openai').OpenAI;
const anthropic0Sdk = requireFrom(join(repoRoot, 'test/sdk-versions/anthropic-0'), '@anthropic-ai/sdk');
const Anthropic0 = anthropic0Sdk.Anthropic ?? anthropic0Sdk.default;

const messages = [{ role: 'user' as const, content: 'hello' }];
const ANTHROPIC_MODEL = 'claude-test-model';
// Prices known to the test, so that every call costs something (the fake's Anthropic model is in no price list).
const prices = {
  'openai:gpt-4o': { input_mtok: 2.5, output_mtok: 10 },
  'anthropic:claude-test-model': { input_mtok: 3, output_mtok: 15 },
};
const nano = (usd: number | undefined) => Math.round((usd ?? 0) * 1e9);
const sumNano = (events: Ev[], field: 'cost_usd' | 'revenue_usd') => events.reduce((s, e) => s + nano(e[field]), 0);

const newOpenAI = (Cls = OpenAI) => new Cls({ apiKey: 'sk-test', baseURL: fake.openaiBaseURL, maxRetries: 0 });
const newAnthropic = (Cls = Anthropic) => new Cls({ apiKey: 'sk-ant-test', baseURL: fake.anthropicBaseURL, maxRetries: 0 });
const chat = (client: any, headers: Record<string, string> = {}) =>
  client.chat.completions.create({ model: 'gpt-4o', max_tokens: 100, messages }, { headers });
const chatStream = async (client: any) => {
  const stream = await client.chat.completions.create({ model: 'gpt-4o', max_tokens: 100, messages, stream: true });
  for await (const _ of stream);
};
const anthropicCall = (client: any) => client.messages.create({ model: ANTHROPIC_MODEL, max_tokens: 64, messages });
const anthropicStream = async (client: any) => {
  const stream = await client.messages.create({ model: ANTHROPIC_MODEL, max_tokens: 64, messages, stream: true });
  for await (const _ of stream);
};

function collecting(options: MeterOptions = {}): { meter: MeterClass; events: Ev[] } {
  const events: Ev[] = [];
  const meter = new Meter({ prices, handleExit: false, ...options, onEvent: (e) => events.push(e as Ev), onOutcome: (e) => events.push(e as unknown as Ev) });
  return { meter, events };
}

const usageEvents = (events: Ev[]) => events.filter((e) => e.type === 'usage');

// ---------------------------------------------------------------------------------------------------------------------
// Apps: plain node, wrapped clients only
// ---------------------------------------------------------------------------------------------------------------------

const ENDPOINTS = {
  openai: ['chat.completions', 'chat.completions'],
  anthropic: ['messages', 'messages'],
  google: ['generateContent', 'streamGenerateContent'],
} as const;

describe('an app that only wraps its clients (plain node: no --import, no patchAll)', () => {
  it.each([
    ['openai', 'method'],
    ['openai', 'function'],
    ['anthropic', 'method'],
    ['anthropic', 'function'],
    ['google', 'method'],
    ['google', 'function'],
  ] as const)('%s wrapped by %s: one event per call, billed to the customer, with feature and metric code', async (provider, form) => {
    const named = form === 'method';
    const run = await runNode([join(repoRoot, 'test/apps/wrap-app.mjs'), provider], {
      env: {
        OPENAI_BASE_URL: fake.openaiBaseURL,
        ANTHROPIC_BASE_URL: fake.anthropicBaseURL,
        FAKE_GEMINI_BASE_URL: fake.geminiBaseUrl,
        LLM_WRAP_FORM: form,
        ...(named ? { LLM_FEATURE: 'chat', LLM_METRIC_CODE: 'chat_tokens' } : {}),
      },
    });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('DONE');
    const events = eventsPrinted(run.stdout) as Ev[];
    expect(fake.count()).toBe(2);
    expect(events).toHaveLength(2);
    expect(events.map((e) => [e.endpoint, e.stream])).toEqual([
      [ENDPOINTS[provider][0], false],
      [ENDPOINTS[provider][1], true],
    ]);
    for (const event of events) {
      expect(event).toMatchObject({ type: 'usage', tenant_id: 'acme', provider, metric_code: named ? 'chat_tokens' : 'llm_tokens' });
      expect(event.feature).toBe(named ? 'chat' : undefined);
      expect(event.input_tokens).toBeGreaterThan(0);
      expect(event.output_tokens).toBeGreaterThan(0);
      expect(event.error).toBeUndefined();
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// In process: wrapped clients, no patching
// ---------------------------------------------------------------------------------------------------------------------

const { meter, events } = collecting();
afterAll(() => meter.shutdown());
afterEach(() => {
  events.length = 0;
});

/** Runs `fn`, then waits for `count` more usage events and returns them. */
async function eventsOf(count: number, fn: () => Promise<unknown>, from: Ev[] = events): Promise<Ev[]> {
  const before = usageEvents(from).length;
  await fn();
  await until(() => usageEvents(from).length >= before + count, `${count} usage events`);
  const added = usageEvents(from).slice(before);
  expect(added).toHaveLength(count);
  return added;
}

describe('a wrapped client, in process', () => {
  it('carries the wrap options onto its events; the customer wins over an enclosing forTenant', async () => {
    const client = meter.wrap(newOpenAI(), {
      customerId: 'acme',
      feature: 'search',
      metricCode: 'search_tokens',
      runId: 'run-opts',
      agentId: 'agent-7',
      tags: { tier: 'gold' },
    });
    const got = await eventsOf(2, () => meter.forTenant('other', async () => {
      await chat(client);
      await chatStream(client);
    }, { tags: { scope: 'outer' } }));
    expect(fake.count()).toBe(2);
    for (const event of got) {
      expect(event).toMatchObject({
        type: 'usage',
        tenant_id: 'acme',
        provider: 'openai',
        feature: 'search',
        metric_code: 'search_tokens',
        run_id: 'run-opts',
        agent_id: 'agent-7',
      });
      expect(event.tags).toMatchObject({ tier: 'gold' });
      expect(event.total_tokens).toBeGreaterThan(0);
    }
  });

  it('metric_code defaults to llm_tokens; no feature, run or agent unless given', async () => {
    const client = meter.wrap(newOpenAI(), { customerId: 'acme' });
    const [event] = await eventsOf(1, () => chat(client));
    expect(event).toMatchObject({ type: 'usage', tenant_id: 'acme', metric_code: 'llm_tokens' });
    expect(event.feature).toBeUndefined();
    expect(event.run_id).toBeUndefined();
    expect(event.agent_id).toBeUndefined();
    expect(event.revenue_usd).toBeUndefined();
  });

  it('wrapOpenAI and wrapAnthropic are meter.wrap in function form, returning the client itself', async () => {
    const rawOpenAI = newOpenAI();
    const rawAnthropic = newAnthropic();
    expect(wrapOpenAI(rawOpenAI, meter, { customerId: 'fn-co', feature: 'f' })).toBe(rawOpenAI);
    expect(wrapAnthropic(rawAnthropic, meter, { customerId: 'fn-co', feature: 'f' })).toBe(rawAnthropic);
    const got = await eventsOf(2, async () => {
      await chat(rawOpenAI);
      await anthropicCall(rawAnthropic);
    });
    expect(got.map((e) => [e.provider, e.tenant_id, e.feature])).toEqual([
      ['openai', 'fn-co', 'f'],
      ['anthropic', 'fn-co', 'f'],
    ]);
  });

  it('a withOptions copy stays wrapped, for the same customer', async () => {
    const client = meter.wrap(newOpenAI(), { customerId: 'copy-co', feature: 'copy' });
    const copy = client.withOptions({ timeout: 30_000 });
    expect(copy).not.toBe(client);
    const got = await eventsOf(2, async () => {
      await chat(copy);
      await chatStream(copy);
    });
    expect(fake.count()).toBe(2);
    for (const event of got) expect(event).toMatchObject({ tenant_id: 'copy-co', feature: 'copy', metric_code: 'llm_tokens' });
  });

  it('an Anthropic withOptions copy, and a copy of a copy, stay wrapped', async () => {
    const client = meter.wrap(newAnthropic(), { customerId: 'copy-co', feature: 'copy-ant', revenueUsd: 0.01 });
    const copy = client.withOptions({ timeout: 30_000 });
    const copyOfCopy = copy.withOptions({ maxRetries: 0 });
    const got = await eventsOf(3, async () => {
      await anthropicCall(copy);
      await anthropicStream(copy);
      await meter.forTenant('other', () => anthropicCall(copyOfCopy));
    });
    expect(fake.count()).toBe(3);
    for (const event of got) expect(event).toMatchObject({ provider: 'anthropic', tenant_id: 'copy-co', feature: 'copy-ant', revenue_usd: 0.01 });
  });

  it('revenueUsd as a number is stamped on every event', async () => {
    const client = meter.wrap(newOpenAI(), { customerId: 'rev-co', revenueUsd: 0.05 });
    const got = await eventsOf(2, async () => {
      await chat(client);
      await chatStream(client);
    });
    expect(got.map((e) => e.revenue_usd)).toEqual([0.05, 0.05]);
  });

  it('revenueUsd as a function of the response and the event', async () => {
    const seen: Array<[any, Ev]> = [];
    const client = meter.wrap(newOpenAI(), {
      customerId: 'rev-fn-co',
      revenueUsd: (res: any, event: Ev) => {
        seen.push([res, event]);
        return res.choices.length * 0.01 + event.output_tokens * 0.001;
      },
    });
    const result = await chat(client, { 'x-fake-usage': JSON.stringify({ completion_tokens: 7 }) });
    await until(() => usageEvents(events).length === 1, 'the event');
    const [event] = usageEvents(events);
    expect(event.revenue_usd).toBeCloseTo(0.01 + 0.007, 12);
    expect(seen).toHaveLength(1);
    expect(seen[0][0].id).toBe(result.id);
    expect(seen[0][1].output_tokens).toBe(7);
  });

  it('a revenueUsd function that throws costs the app nothing: the call succeeds, no revenue_usd, one fault', async () => {
    const client = meter.wrap(newOpenAI(), {
      customerId: 'rev-throws-co',
      revenueUsd: () => {
        throw new Error('the app’s revenue function is broken');
      },
    });
    const faults = meter.faults;
    const result = await chat(client);
    expect(result.object).toBe('chat.completion');
    await until(() => usageEvents(events).length === 1, 'the event');
    const [event] = usageEvents(events);
    expect(event.tenant_id).toBe('rev-throws-co');
    expect(event).not.toHaveProperty('revenue_usd');
    expect(meter.faults).toBe(faults + 1);
  });

  it('providerCostUsd is the cost, verbatim, with price_source provided', async () => {
    const fixed = meter.wrap(newOpenAI(), { customerId: 'cost-co', providerCostUsd: 0.123 });
    const byResponse = meter.wrap(newAnthropic(), {
      customerId: 'cost-co',
      providerCostUsd: (res: any) => (res.usage.input_tokens + res.usage.output_tokens) * 1e-6,
    });
    const [a] = await eventsOf(1, () => chat(fixed));
    expect(a).toMatchObject({ cost_usd: 0.123, price_source: 'provided' });
    const [b] = await eventsOf(1, () => anthropicCall(byResponse));
    expect(b.price_source).toBe('provided');
    expect(nano(b.cost_usd)).toBe(nano((b.input_tokens + b.output_tokens) * 1e-6));
  });

  it('a spend limit refuses a wrapped call before any request reaches the provider', async () => {
    await meter.setLimit('broke-co', { limitUsd: 0.000001, frequency: 'per_month' });
    const openai = meter.wrap(newOpenAI(), { customerId: 'broke-co' });
    const anthropic = meter.wrap(newAnthropic(), { customerId: 'broke-co' });
    await expect(chat(openai)).rejects.toBeInstanceOf(LimitExceededError);
    await expect(chatStream(openai)).rejects.toBeInstanceOf(LimitExceededError);
    await expect(anthropicCall(anthropic)).rejects.toBeInstanceOf(LimitExceededError);
    // Inside another tenant's scope the customer's limit still applies.
    await expect(meter.forTenant('rich-co', () => chat(openai))).rejects.toBeInstanceOf(LimitExceededError);
    expect(fake.count()).toBe(0);
    // As for a patched call: one event per refusal, with the error and no cost, billed to the customer.
    await until(() => usageEvents(events).length === 4, 'the refusal events');
    for (const event of usageEvents(events)) expect(event).toMatchObject({ tenant_id: 'broke-co', error: 'LimitExceededError', cost_usd: 0 });
    const [month] = await meter.getUsage('broke-co');
    expect(month).toMatchObject({ frequency: 'per_month', spentUsd: 0, reservedUsd: 0, limitUsd: 0.000001 });
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// Runs and outcomes
// ---------------------------------------------------------------------------------------------------------------------

describe('a run resolved to an outcome', () => {
  it('five calls across two providers, resolved once then twice: one event_id, calls 5, their cost, revenue booked once', async () => {
    const openai = meter.wrap(newOpenAI(), { customerId: 'run-co', runId: 'run-5' });
    const anthropic = meter.wrap(newAnthropic(), { customerId: 'run-co', runId: 'run-5' });
    const got = await eventsOf(5, async () => {
      await chat(openai, { 'x-fake-usage': JSON.stringify({ prompt_tokens: 1234, completion_tokens: 567 }) });
      await chatStream(openai);
      await chat(openai);
      await anthropicCall(anthropic);
      await anthropicStream(anthropic);
    });
    expect(got.map((e) => e.run_id)).toEqual(['run-5', 'run-5', 'run-5', 'run-5', 'run-5']);
    expect(got.map((e) => e.provider)).toEqual(['openai', 'openai', 'openai', 'anthropic', 'anthropic']);
    const costNano = sumNano(got, 'cost_usd');
    expect(costNano).toBeGreaterThan(0);

    const first = await meter.resolve({ runId: 'run-5', tenantId: 'run-co', outcome: 'resolved', revenueUsd: 2 });
    expect(first).toMatchObject({ type: 'outcome', run_id: 'run-5', tenant_id: 'run-co', outcome: 'resolved', revenue_usd: 2, calls: 5 });
    expect(nano(first.cost_usd)).toBe(costNano);
    expect(typeof first.event_id).toBe('string');
    expect(typeof first.timestamp).toBe('string');

    const second = await meter.resolve({ runId: 'run-5', tenantId: 'run-co', outcome: 'resolved', revenueUsd: 2 });
    expect(second.event_id).toBe(first.event_id);
    expect(second).toMatchObject({ calls: 5, revenue_usd: 2 });
    expect(nano(second.cost_usd)).toBe(costNano);

    const expected = [nano(2), costNano, nano(2) - costNano];
    const sums = async () => (await meter.getUsage('run-co')).map((w) => [w.frequency, nano(w.revenueUsd), nano(w.spentUsd), nano(w.marginUsd)]);
    await until(async () => (await sums()).every(([, ...got]) => JSON.stringify(got) === JSON.stringify(expected)), 'the ledger').catch(() => undefined);
    expect((await sums()).sort()).toEqual([
      ['per_day', ...expected],
      ['per_month', ...expected],
    ]);
  });

  it('the outcome event is handed to onOutcome, once per resolve', async () => {
    const client = meter.wrap(newOpenAI(), { customerId: 'on-event-co', runId: 'run-on-event' });
    await eventsOf(1, () => chat(client));
    const outcome = await meter.resolve({ runId: 'run-on-event', outcome: 'resolved', revenueUsd: 1 });
    expect(outcome).toMatchObject({ type: 'outcome', tenant_id: 'on-event-co', calls: 1 });
    expect(events.filter((e) => e.type === 'outcome')).toEqual([outcome]);
  });

  it('forRun inside forTenant: the run_id of the scope, its calls and cost counted by resolve', async () => {
    const openai = meter.wrap(newOpenAI(), { customerId: 'scope-run-co' });
    const anthropic = meter.wrap(newAnthropic(), { customerId: 'scope-run-co' });
    const got = await eventsOf(3, () =>
      meter.forTenant('scope-run-co', () =>
        meter.forRun('run-scoped', async () => {
          await chat(openai);
          await anthropicCall(anthropic);
          await anthropicStream(anthropic);
        }),
      ),
    );
    // A call outside the run does not count toward it.
    await eventsOf(1, () => chat(openai));
    expect(got.map((e) => [e.tenant_id, e.run_id])).toEqual([
      ['scope-run-co', 'run-scoped'],
      ['scope-run-co', 'run-scoped'],
      ['scope-run-co', 'run-scoped'],
    ]);
    const outcome = await meter.resolve({ runId: 'run-scoped', outcome: 'escalated', revenueUsd: 0 });
    expect(outcome).toMatchObject({ type: 'outcome', run_id: 'run-scoped', outcome: 'escalated', revenue_usd: 0, calls: 3 });
    expect(nano(outcome.cost_usd)).toBe(sumNano(got, 'cost_usd'));
  });

  it('a failed run of a tenant with revenue-bearing calls: margins per tenant equal the sums over its events', async () => {
    const a = meter.wrap(newOpenAI(), { customerId: 'margin-a', revenueUsd: 0.02 });
    const b = meter.wrap(newAnthropic(), { customerId: 'margin-b', revenueUsd: (res: any, e: Ev) => (res?.usage.output_tokens ?? e.output_tokens) * 0.0001 });
    await eventsOf(5, async () => {
      await chat(a);
      await chatStream(a);
      await anthropicCall(b);
      await anthropicStream(b);
      await chat(a, { 'x-fake-usage': JSON.stringify({ completion_tokens: 999 }) });
    });
    const outcome = await meter.resolve({ runId: 'margin-run', tenantId: 'margin-b', outcome: 'failed', revenueUsd: 0.5 });
    expect(outcome).toMatchObject({ calls: 0, cost_usd: 0, revenue_usd: 0.5 });
    for (const tenant of ['margin-a', 'margin-b']) {
      const mine = usageEvents(events).filter((e) => e.tenant_id === tenant);
      const revenue = sumNano(mine, 'revenue_usd') + (tenant === 'margin-b' ? nano(0.5) : 0);
      const spent = sumNano(mine, 'cost_usd');
      expect(revenue).toBeGreaterThan(0);
      const expected = [revenue, spent, revenue - spent];
      const sums = async () => (await meter.getUsage(tenant)).map((w) => [nano(w.revenueUsd), nano(w.spentUsd), nano(w.marginUsd)]);
      await until(async () => JSON.stringify(await sums()) === JSON.stringify([expected, expected]), `the ledger of ${tenant}`).catch(() => undefined);
      expect(await sums(), tenant).toEqual([expected, expected]);
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// Margins on a Redis ledger shared by two Meters
// ---------------------------------------------------------------------------------------------------------------------

describe('margins on a Redis ledger shared by two Meters', () => {
  let redisServer: Awaited<ReturnType<typeof startRedisServer>>;
  let one: ReturnType<typeof collecting>;
  let two: ReturnType<typeof collecting>;
  beforeAll(async () => {
    redisServer = await startRedisServer();
    one = collecting({ limits: { redis: redisServer.url, keyPrefix: 'wrap:' } });
    two = collecting({ limits: { redis: redisServer.url, keyPrefix: 'wrap:' } });
  });
  afterAll(async () => {
    await Promise.all([one?.meter.shutdown(), two?.meter.shutdown()]);
    await redisServer?.stop();
  });

  it('a limit set through one Meter refuses the wrapped calls of the other before any request', async () => {
    await one.meter.setLimit('fleet-broke', { limitUsd: 0.000001, frequency: 'per_month' });
    const client = two.meter.wrap(newOpenAI(OpenAI7), { customerId: 'fleet-broke' });
    await expect(chat(client)).rejects.toBeInstanceOf(LimitExceededError);
    await expect(chatStream(client)).rejects.toBeInstanceOf(LimitExceededError);
    expect(fake.count()).toBe(0);
  });

  it('revenue, spend and margin per tenant are the fleet-wide sums of the events', async () => {
    // Each Meter wraps clients of SDK copies of its own, as two processes of a fleet would.
    const oneA = one.meter.wrap(newOpenAI(OpenAI5), { customerId: 'fleet-a', revenueUsd: 0.03 });
    const oneB = one.meter.wrap(newAnthropic(Anthropic0), { customerId: 'fleet-b', revenueUsd: (res: any, e: Ev) => (res?.usage.output_tokens ?? e.output_tokens) * 0.001 });
    const twoA = two.meter.wrap(newOpenAI(OpenAI7), { customerId: 'fleet-a', revenueUsd: (res: any) => res.choices.length * 0.07 });
    const twoB = two.meter.wrap(newOpenAI(OpenAI7), { customerId: 'fleet-b', providerCostUsd: 0.2, revenueUsd: 0.25 });
    await Promise.all([
      eventsOf(4, async () => {
        await chat(oneA);
        await chatStream(oneA);
        await anthropicCall(oneB);
        await anthropicStream(oneB);
      }, one.events),
      eventsOf(3, async () => {
        await chat(twoA);
        await chat(twoA, { 'x-fake-usage': JSON.stringify({ completion_tokens: 3000 }) });
        await chat(twoB);
      }, two.events),
    ]);
    const outcome = await one.meter.resolve({ runId: 'fleet-run', tenantId: 'fleet-a', outcome: 'resolved', revenueUsd: 1.5 });
    expect(outcome.revenue_usd).toBe(1.5);
    // Resolved again in the same process: the same outcome, its revenue not booked a second time.
    const again = await one.meter.resolve({ runId: 'fleet-run', tenantId: 'fleet-a', outcome: 'resolved', revenueUsd: 1.5 });
    expect(again.event_id).toBe(outcome.event_id);
    // Resolved in a third process of the fleet too: the same event id, and its revenue still booked once fleet-wide.
    // (Its shutdown waits for its ledger writes.)
    const three = collecting({ limits: { redis: redisServer.url, keyPrefix: 'wrap:' } });
    expect(three.meter.resolve({ runId: 'fleet-run', tenantId: 'fleet-a', outcome: 'resolved', revenueUsd: 1.5 }).event_id).toBe(outcome.event_id);
    await three.meter.shutdown();

    const all = [...usageEvents(one.events), ...usageEvents(two.events)].filter((e) => e.tenant_id !== 'fleet-broke');
    expect(all).toHaveLength(7);
    for (const tenant of ['fleet-a', 'fleet-b']) {
      const mine = all.filter((e) => e.tenant_id === tenant);
      const revenue = sumNano(mine, 'revenue_usd') + (tenant === 'fleet-a' ? nano(1.5) : 0);
      const spent = sumNano(mine, 'cost_usd');
      expect(spent).toBeGreaterThan(0);
      const expected = [revenue, spent, revenue - spent];
      for (const m of [one.meter, two.meter]) {
        const sums = async () => (await m.getUsage(tenant)).map((w) => [nano(w.revenueUsd), nano(w.spentUsd), nano(w.marginUsd)]);
        await until(async () => JSON.stringify(await sums()) === JSON.stringify([expected, expected]), `the Redis ledger of ${tenant} to equal its events`).catch(() => undefined);
        expect(await sums(), tenant).toEqual([expected, expected]);
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// Two Meters in one process, wrapping clients of the same SDK class
// ---------------------------------------------------------------------------------------------------------------------

describe('two Meters wrapping clients of one SDK class', () => {
  const second = collecting();
  afterAll(() => second.meter.shutdown());

  it("each wrapped client's calls go to the Meter that wrapped it (its events, its limits)", async () => {
    // `meter` has wrapped clients of this OpenAI class in the tests above; this one is the second Meter's.
    const mine = meter.wrap(newOpenAI(), { customerId: 'first-co' });
    const theirs = second.meter.wrap(newOpenAI(), { customerId: 'second-co' });
    await eventsOf(1, () => chat(mine));
    await chat(theirs);
    await eventsOf(1, () => chat(mine)); // one more through the first Meter: a barrier for anything misrouted
    expect(usageEvents(events).map((e) => e.tenant_id)).toEqual(['first-co', 'first-co']);
    await until(() => usageEvents(second.events).length >= 1, "the second Meter's event").catch(() => undefined);
    expect(usageEvents(second.events).map((e) => e.tenant_id)).toEqual(['second-co']);

    fake.reset();
    await second.meter.setLimit('second-broke', { limitUsd: 0.000001, frequency: 'per_month' });
    const refused = second.meter.wrap(newOpenAI(), { customerId: 'second-broke' });
    await expect(chat(refused)).rejects.toBeInstanceOf(LimitExceededError);
    expect(fake.count()).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------------------------------
// Wrapped and class-patched (last: patchAll reaches every SDK copy this process loaded)
// ---------------------------------------------------------------------------------------------------------------------

describe('a client both wrapped and class-patched', () => {
  beforeAll(() => meter.patchAll());
  afterAll(() => meter.unpatchAll());

  it('one event per call, billed to the wrap customer even inside forTenant', async () => {
    const client = meter.wrap(newOpenAI(), { customerId: 'acme', feature: 'both' });
    const anthropic = meter.wrap(newAnthropic(), { customerId: 'acme', feature: 'both' });
    const got = await eventsOf(4, () =>
      meter.forTenant('other', async () => {
        await chat(client);
        await chatStream(client);
        await anthropicCall(anthropic);
        await anthropicStream(anthropic);
      }),
    );
    expect(fake.count()).toBe(4);
    expect(got.map((e) => [e.provider, e.tenant_id, e.feature])).toEqual([
      ['openai', 'acme', 'both'],
      ['openai', 'acme', 'both'],
      ['anthropic', 'acme', 'both'],
      ['anthropic', 'acme', 'both'],
    ]);
    // Nothing more comes later: the call counts once, not once per instrumentation.
    const plain = newOpenAI();
    await eventsOf(1, () => meter.forTenant('other', () => chat(plain)));
    expect(usageEvents(events)).toHaveLength(5);
    expect(usageEvents(events)[4].tenant_id).toBe('other');
  });

  it('a client patched first and wrapped after its class was patched: still one event per call', async () => {
    const client = newOpenAI();
    await eventsOf(1, () => meter.forTenant('other', () => chat(client)));
    meter.wrap(client, { customerId: 'late-co' });
    const got = await eventsOf(2, () =>
      meter.forTenant('other', async () => {
        await chat(client);
        await chatStream(client);
      }),
    );
    expect(fake.count()).toBe(3);
    expect(got.map((e) => e.tenant_id)).toEqual(['late-co', 'late-co']);
    expect(usageEvents(events)).toHaveLength(3);
  });
});

describe('bad input to wrap, forTenant, forRun and resolve', () => {
  const { meter } = collecting();
  afterAll(() => meter.shutdown());

  it('is refused with an error naming the field and the value', () => {
    const client = newOpenAI();
    const refusals: [() => unknown, RegExp][] = [
      [() => meter.wrap(client, {} as never), /customerId must be a non-empty string.*got undefined/],
      [() => meter.wrap(client, { customerId: '' }), /customerId must be a non-empty string.*got ""/],
      [() => meter.wrap(client, { customerId: 'acme', revenueUsd: -1 }), /revenueUsd must be a finite number >= 0.*got -1/],
      [() => meter.wrap(client, { customerId: 'acme', providerCostUsd: Number.NaN }), /providerCostUsd must be a finite number >= 0.*got NaN/],
      [() => meter.wrap(client, { customerId: 'acme', feature: 42 as never }), /feature must be a non-empty string.*got 42/],
      [() => meter.wrap({ not: 'a client' }, { customerId: 'acme' }), /not a client of a supported SDK/],
      [() => meter.forTenant('acme', () => 1, { runId: '' }), /runId must be a non-empty string/],
      [() => meter.forRun(undefined as never, () => 1), /forRun: runId must be a non-empty string/],
      [() => meter.resolve({ runId: 'r', outcome: 'won' as never }), /outcome must be one of resolved, escalated, failed, got "won"/],
      [() => meter.resolve({ runId: 'r', outcome: 'resolved', revenueUsd: Number.POSITIVE_INFINITY }), /revenueUsd must be a finite number >= 0, got Infinity/],
      [() => meter.resolve({ runId: '', outcome: 'resolved' }), /resolve: runId must be a non-empty string/],
    ];
    for (const [attempt, message] of refusals) expect(attempt).toThrow(message);
    for (const [attempt] of refusals) expect(attempt).toThrow(ConfigError);
  });
});
