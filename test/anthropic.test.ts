import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { calcPrice } from '@pydantic/genai-prices';
import type { UsageEvent } from 'llm-meter';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { eventsPerRequest, expectEventPerCall, patchingMeter, repoRoot, requireFrom, tick, until } from './helpers.js';

/** @anthropic-ai/sdk copies for the version matrix: the newest at the top level, the older major in its own app root. */
const ANTHROPIC_VERSIONS = {
  'anthropic 1': repoRoot,
  'anthropic 0': join(repoRoot, 'test/sdk-versions/anthropic-0'),
} as const;

const fake = await startFakeProviders();
afterAll(() => fake.close());

const PROMPT = 'a prompt that must never leave the process';
const messages = [{ role: 'user' as const, content: PROMPT }];
// A model name in none of the SDK's deprecation lists (those print a warning), and a small max_tokens (a large one makes
// the SDK refuse a non-streaming call).
const MODEL = 'claude-test-model';
const params = { model: MODEL, max_tokens: 64, messages };

/** Every usage pool at once: input (which EXCLUDES the cache pools), cache read, cache write (5 m + 1 h), output. */
const FULL_USAGE = {
  input_tokens: 100,
  output_tokens: 40,
  cache_read_input_tokens: 300,
  cache_creation_input_tokens: 50,
  cache_creation: { ephemeral_5m_input_tokens: 30, ephemeral_1h_input_tokens: 20 },
  server_tool_use: { web_search_requests: 2 },
};
const FULL_USAGE_EVENT = {
  input_tokens: 100,
  cached_tokens: 300,
  cache_creation_tokens: 50,
  cache_creation_5m_tokens: 30,
  cache_creation_1h_tokens: 20,
  output_tokens: 40,
  total_tokens: 490,
  web_search_requests: 2,
};

// One Meter for the file: the first Meter to patch a class owns it (a second one never double counts).
const { meter, events } = patchingMeter();

describe.each(Object.entries(ANTHROPIC_VERSIONS))('%s', (_label, appRoot) => {
  const sdk = requireFrom(appRoot, '@anthropic-ai/sdk');
  const Anthropic = sdk.Anthropic ?? sdk.default;
  const { betaTool } = requireFrom(appRoot, '@anthropic-ai/sdk/helpers/beta/json-schema');
  const client = new Anthropic({ apiKey: 'sk-ant-test', baseURL: fake.anthropicBaseURL, maxRetries: 0 });

  const { metered, clear } = eventsPerRequest(events, fake);
  afterEach(clear);

  const lookupTool = () =>
    betaTool({ name: 'lookup', description: 'Looks a thing up', inputSchema: { type: 'object', properties: {} }, run: () => 'found it' });

  it('messages.create: every usage pool, ids, model, tenant, endpoint', async () => {
    let result: any;
    const [event] = await metered(async () => {
      result = await meter.forTenant('acme', () =>
        client.messages.create(params, { headers: { 'x-fake-usage': JSON.stringify(FULL_USAGE), 'x-fake-model': 'claude-test-model-20250101' } }),
      );
    });
    expect(event).toMatchObject({
      tenant_id: 'acme',
      provider: 'anthropic',
      endpoint: 'messages',
      model: 'claude-test-model-20250101',
      stream: false,
      ...FULL_USAGE_EVENT,
    });
    expect(event.event_id).toBe(result.id);
    expect(event.event_id).toMatch(/^msg_/);
    expect(event.request_id).toBe(result._request_id);
    expect(event.request_id).toMatch(/^req_/);
    expect(event.partial).toBeUndefined();
    expect(event.error).toBeUndefined();
    expect(JSON.stringify(event)).not.toContain('prompt that must never');
  });

  it('returns the SDK result untouched, with _request_id', async () => {
    const result = await client.messages.create(params);
    expect(result.type).toBe('message');
    expect(result.content).toEqual([{ type: 'text', text: 'Hello from the' }]);
    expect(result._request_id).toMatch(/^req_/);
    expect(result.usage.input_tokens).toBe(21);
  });

  it('default usage: total = input + output, no cache split or web search reported when absent', async () => {
    const [plain] = await metered(() => client.messages.create(params));
    expect(plain).toMatchObject({ input_tokens: 21, output_tokens: 9, total_tokens: 30, cached_tokens: 0, cache_creation_tokens: 0 });
    expect(plain).not.toHaveProperty('web_search_requests');
    clear();
    const noSplit = { cache_read_input_tokens: 7, cache_creation_input_tokens: 5, cache_creation: null, server_tool_use: null };
    const [event] = await metered(() => client.messages.create(params, { headers: { 'x-fake-usage': JSON.stringify(noSplit) } }));
    expect(event).toMatchObject({ input_tokens: 21, cached_tokens: 7, cache_creation_tokens: 5, output_tokens: 9, total_tokens: 42 });
    expect(event).not.toHaveProperty('cache_creation_5m_tokens');
    expect(event).not.toHaveProperty('cache_creation_1h_tokens');
    expect(event).not.toHaveProperty('web_search_requests');
  });

  it('withResponse and asResponse keep working and are metered once', async () => {
    const [withEvent] = await metered(async () => {
      const { data, response, request_id } = await client.messages.create(params).withResponse();
      expect(data.type).toBe('message');
      expect(response.status).toBe(200);
      expect(request_id).toMatch(/^req_/);
    });
    expect(withEvent).toMatchObject({ input_tokens: 21, output_tokens: 9, total_tokens: 30, request_id: expect.stringMatching(/^req_/) });
    clear();
    const [rawEvent] = await metered(async () => {
      const response = await client.messages.create(params).asResponse();
      const body = await response.json();
      expect(body.type).toBe('message');
    });
    expect(rawEvent).toMatchObject({ input_tokens: 21, output_tokens: 9, total_tokens: 30 });
    clear();
    const [rawStreamEvent] = await metered(async () => {
      const response = await client.messages.create({ ...params, stream: true }).asResponse();
      expect(await response.text()).toContain('message_stop');
    });
    expect(rawStreamEvent).toMatchObject({ stream: true, input_tokens: 21, output_tokens: 9, total_tokens: 30 });
  });

  it('streaming create: input and cache counts from message_start, output from message_delta', async () => {
    const types: string[] = [];
    const [event] = await metered(async () => {
      const stream = await meter.forTenant('t-stream', () =>
        client.messages.create({ ...params, stream: true }, { headers: { 'x-fake-usage': JSON.stringify(FULL_USAGE) } }),
      );
      for await (const item of stream) types.push(item.type);
    });
    expect(types[0]).toBe('message_start');
    expect(types.at(-1)).toBe('message_stop');
    expect(types).toContain('message_delta');
    expect(event).toMatchObject({ tenant_id: 't-stream', endpoint: 'messages', stream: true, ...FULL_USAGE_EVENT });
    expect(event.event_id).toMatch(/^msg_/);
    expect(event.request_id).toMatch(/^req_/);
    expect(event.partial).toBeUndefined();
    expect(event.error).toBeUndefined();
  });

  it('streaming: message_delta usage is cumulative, the event takes the last value, never the sum', async () => {
    const usage = JSON.stringify({ output_tokens: 40 });
    const [event] = await metered(async () => {
      const stream = await client.messages.create({ ...params, stream: true }, { headers: { 'x-fake-multi-delta': '1', 'x-fake-usage': usage } });
      const deltas: number[] = [];
      for await (const item of stream) if (item.type === 'message_delta') deltas.push(item.usage.output_tokens);
      expect(deltas).toEqual([20, 40]);
    });
    // A sum would give 60 (or 61 with message_start's provisional 1).
    expect(event).toMatchObject({ stream: true, input_tokens: 21, output_tokens: 40, total_tokens: 61 });
  });

  it('beta.messages.create, plain and streaming', async () => {
    const [plain] = await metered(() => meter.forTenant('beta', () => client.beta.messages.create(params)));
    expect(plain).toMatchObject({ tenant_id: 'beta', provider: 'anthropic', endpoint: 'beta.messages', stream: false, input_tokens: 21, output_tokens: 9, total_tokens: 30 });
    expect(plain.event_id).toMatch(/^msg_/);
    expect(plain.request_id).toMatch(/^req_/);
    clear();
    const [streamed] = await metered(async () => {
      const stream = await client.beta.messages.create(
        { ...params, stream: true },
        { headers: { 'x-fake-multi-delta': '1', 'x-fake-usage': JSON.stringify(FULL_USAGE) } },
      );
      for await (const _ of stream);
    });
    expect(streamed).toMatchObject({ endpoint: 'beta.messages', stream: true, ...FULL_USAGE_EVENT });
  });

  it('messages.stream(): MessageStream + finalMessage() is one event', async () => {
    const [event] = await metered(async () => {
      const stream = client.messages.stream(params, { headers: { 'x-fake-multi-delta': '1' } });
      const final = await stream.finalMessage();
      expect(final.content[0].text).toBe('Hello from the');
      expect(final.usage.output_tokens).toBe(9);
    });
    expect(event).toMatchObject({ endpoint: 'messages', stream: true, input_tokens: 21, output_tokens: 9, total_tokens: 30 });
    expect(event.event_id).toMatch(/^msg_/);
    expect(event.partial).toBeUndefined();
  });

  it('messages.stream(): text events and finalText() with the helper iterated', async () => {
    const [event] = await metered(async () => {
      const stream = client.messages.stream(params);
      const pieces: string[] = [];
      stream.on('text', (text: string) => pieces.push(text));
      expect(await stream.finalText()).toBe('Hello from the');
      expect(pieces.join('')).toBe('Hello from the');
    });
    expect(event).toMatchObject({ stream: true, total_tokens: 30 });
  });

  it('messages.stream(): abort() mid-way is one event', async () => {
    const [event] = await metered(async () => {
      const stream = client.messages.stream(params, { headers: { 'x-fake-chunks': '50', 'x-fake-delay-ms': '5' } });
      let n = 0;
      stream.on('text', () => {
        if (++n === 2) stream.abort();
      });
      await stream.done().catch(() => undefined);
    });
    expect(event).toMatchObject({ endpoint: 'messages', stream: true, input_tokens: 21 });
  });

  it('beta.messages.stream() is one event', async () => {
    const [event] = await metered(async () => {
      const final = await client.beta.messages.stream(params).finalMessage();
      expect(final.content[0].text).toBe('Hello from the');
    });
    expect(event).toMatchObject({ endpoint: 'beta.messages', stream: true, input_tokens: 21, output_tokens: 9, total_tokens: 30 });
  });

  it('messages.parse and beta.messages.parse: one event each', async () => {
    expect(typeof client.messages.parse).toBe('function');
    const [parsed] = await metered(async () => {
      const message = await client.messages.parse(params);
      expect(message.content[0].text).toBe('Hello from the');
    });
    expect(parsed).toMatchObject({ endpoint: 'messages', stream: false, total_tokens: 30 });
    clear();
    const [betaParsed] = await metered(async () => {
      const message = await client.beta.messages.parse(params);
      expect(message.content[0].text).toBe('Hello from the');
    });
    expect(betaParsed).toMatchObject({ endpoint: 'beta.messages', stream: false, total_tokens: 30 });
  });

  it('beta toolRunner (awaited): one event per round, each with the tenant', async () => {
    const run = vi.fn(() => 'found it');
    const rounds = await metered(() =>
      meter.forTenant('tools', async () => {
        const tool = { ...lookupTool(), run };
        const final = await client.beta.messages.toolRunner({ ...params, tools: [tool] });
        expect(final.content[0].text).toBe('Hello from the');
      }),
    );
    expect(run).toHaveBeenCalledTimes(1);
    expect(fake.count()).toBe(2);
    expect(rounds.map((e) => [e.endpoint, e.stream, e.tenant_id, e.total_tokens])).toEqual([
      ['beta.messages', false, 'tools', 30],
      ['beta.messages', false, 'tools', 30],
    ]);
    expect(new Set(rounds.map((e) => e.event_id)).size).toBe(2);
  });

  it('beta toolRunner created in a tenant scope and run outside it: its rounds are billed to that tenant', async () => {
    const rounds = await metered(async () => {
      const runner = meter.forTenant('tools-later', () => client.beta.messages.toolRunner({ ...params, tools: [lookupTool()] }));
      for await (const _ of runner);
    });
    expect(rounds.map((e) => e.tenant_id)).toEqual(['tools-later', 'tools-later']);
  });

  it('beta toolRunner created in an over-limit tenant scope and run outside it: refused, nothing sent', async () => {
    await meter.setLimit('tools-broke', { limitUsd: 0, frequency: 'per_day' });
    const runner = meter.forTenant('tools-broke', () => client.beta.messages.toolRunner({ ...params, tools: [lookupTool()] }));
    await expect(runner.runUntilDone()).rejects.toThrow(/limit/i);
    await expect(Promise.resolve(runner)).rejects.toThrow(/limit/i);
    expect(fake.count()).toBe(0);
  });

  it('beta toolRunner runUntilDone(): one event per round', async () => {
    const rounds = await metered(async () => {
      const runner = client.beta.messages.toolRunner({ ...params, tools: [lookupTool()] });
      const final = await runner.runUntilDone();
      expect(final.content[0].text).toBe('Hello from the');
    });
    expect(rounds).toHaveLength(2);
    expect(rounds.every((e) => e.endpoint === 'beta.messages' && e.input_tokens === 21)).toBe(true);
  });

  it('beta toolRunner with stream: true: one event per round', async () => {
    const rounds = await metered(async () => {
      const runner = client.beta.messages.toolRunner({ ...params, tools: [lookupTool()], stream: true });
      const final = await runner.runUntilDone();
      expect(final.content[0].text).toBe('Hello from the');
    });
    expect(fake.count()).toBe(2);
    expect(rounds.map((e) => [e.endpoint, e.stream, e.input_tokens, e.output_tokens])).toEqual([
      ['beta.messages', true, 21, 9],
      ['beta.messages', true, 21, 9],
    ]);
  });

  const hasThreads = typeof client.beta.messages.thread === 'function';

  it.runIf(hasThreads)('beta message thread: send() is one event', async () => {
    const thread = client.beta.messages.thread({ model: MODEL, max_tokens: 64 });
    const [sent] = await metered(async () => {
      const reply = await meter.forTenant('thread', () => thread.send({ role: 'user', content: PROMPT }));
      expect(reply.content[0].text).toBe('Hello from the');
    });
    expect(sent).toMatchObject({ tenant_id: 'thread', endpoint: 'beta.messages', stream: false, total_tokens: 30 });
  });

  it.runIf(hasThreads)('beta message thread: stream() is one event', async () => {
    const thread = client.beta.messages.thread({ model: MODEL, max_tokens: 64 });
    const [streamed] = await metered(async () => {
      const final = await meter.forTenant('thread', () => thread.stream({ role: 'user', content: PROMPT }).finalMessage());
      expect(final.content[0].text).toBe('Hello from the');
    });
    expect(streamed).toMatchObject({ tenant_id: 'thread', endpoint: 'beta.messages', stream: true, total_tokens: 30 });
  });

  it('countTokens (and beta countTokens) yield no event', async () => {
    const counted = await client.messages.countTokens({ model: MODEL, messages });
    expect(counted.input_tokens).toBe(21);
    const betaCounted = await client.beta.messages.countTokens({ model: MODEL, messages });
    expect(betaCounted.input_tokens).toBe(21);
    expect(fake.count('count_tokens')).toBe(2);
    await tick(30);
    expect(events).toHaveLength(0);
  });

  it.each([
    ['messages', (c: any) => c.messages.batches],
    ['beta.messages', (c: any) => c.beta.messages.batches],
  ])('%s.batches.results(): one event per succeeded row, with the tenant of the results() call', async (_name, batchesOf) => {
    const batches = batchesOf(client);
    const request = (customId: string) => ({ custom_id: customId, params });
    const batch = await batches.create({ requests: [request('first'), request('err-1'), request('second')] });
    await batches.retrieve(batch.id);
    // Creating a batch starts spend the agent cannot price yet (its rows are billed through results()): one event at no
    // cost, so that a tenant with no room left cannot start one. Retrieving it is free.
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ endpoint: '/v1/messages/batches', price_unknown: true, cost_usd: 0, total_tokens: 0 });
    events.length = 0;

    const results = await meter.forTenant('batch-tenant', () => batches.results(batch.id));
    const rows: any[] = [];
    for await (const row of results) rows.push(row); // iterated outside the scope
    expect(rows.map((r) => [r.custom_id, r.result.type])).toEqual([
      ['first', 'succeeded'],
      ['err-1', 'errored'],
      ['second', 'succeeded'],
    ]);
    await until(() => events.length >= 2, 'the row events');
    await tick(10);
    expect(events).toHaveLength(2);
    expect(events.map((e) => e.event_id)).toEqual([rows[0].result.message.id, rows[2].result.message.id]);
    for (const event of events) {
      expect(event).toMatchObject({
        provider: 'anthropic',
        endpoint: 'messages.batches',
        tenant_id: 'batch-tenant',
        model: MODEL,
        input_tokens: 21,
        output_tokens: 9,
        total_tokens: 30,
        stream: false,
      });
      expect(event.error).toBeUndefined();
    }
  });

  // Tiers and residency, from what each response's usage reports. Anthropic bills Message Batches rows at 50% of the
  // standard price (its batch processing guide), US-only inference (`usage.inference_geo: "us"`) at 1.1x the standard
  // rates (its data residency billing note; `global` is standard), and the two stack. No multiplier is published for
  // the priority tier, nor one for fast mode across models: they are recorded and priced at the standard rate. The
  // standard price is the pinned library's for the fake's usage (21 in, 9 out) on a priced model.
  const TIER_MODEL = 'claude-sonnet-4-6';
  const standardPrice = calcPrice({ input_tokens: 21, output_tokens: 9 }, TIER_MODEL, { providerId: 'anthropic' })!.total_price;
  const tierHeaders = (usage: object) => ({ 'x-fake-model': TIER_MODEL, 'x-fake-usage': JSON.stringify(usage) });
  const tierOf = (e: UsageEvent) => ({ service_tier: e.service_tier, inference_geo: e.inference_geo, speed: e.speed, price_tier: e.price_tier });

  it.each([
    { name: 'standard, global', stream: false, usage: { service_tier: 'standard', inference_geo: 'global' }, priceTier: undefined, factor: 1 },
    { name: 'US-only inference', stream: false, usage: { service_tier: 'standard', inference_geo: 'us' }, priceTier: 'inference_geo=us x1.1', factor: 1.1 },
    { name: 'US-only inference, streamed', stream: true, usage: { service_tier: 'standard', inference_geo: 'us' }, priceTier: 'inference_geo=us x1.1', factor: 1.1 },
    { name: 'priority', stream: false, usage: { service_tier: 'priority' }, priceTier: undefined, factor: 1 },
    { name: 'fast mode', stream: false, usage: { service_tier: 'standard', speed: 'fast' }, priceTier: undefined, factor: 1 },
  ])('messages.create, $name: the reported tier on the event, priced at x$factor', async ({ stream, usage, priceTier, factor }) => {
    const [event] = await metered(async () => {
      const result = await client.messages.create({ ...params, stream }, { headers: tierHeaders(usage) });
      if (stream) for await (const _ of result) void _;
    });
    expect(event).toMatchObject({ model: TIER_MODEL, stream, input_tokens: 21, output_tokens: 9 });
    expect(tierOf(event!)).toEqual({ ...usage, price_tier: priceTier });
    expect(Math.abs(event!.cost_usd! - standardPrice * factor)).toBeLessThanOrEqual(1e-9);
  });

  it.each([
    { name: 'global', usage: {}, priceTier: 'service_tier=batch x0.5', factor: 0.5 },
    { name: 'US-only inference', usage: { inference_geo: 'us' }, priceTier: 'service_tier=batch x0.5, inference_geo=us x1.1', factor: 0.5 * 1.1 },
  ])('batches.results(), $name: every row is batch, priced at x$factor', async ({ usage, priceTier, factor }) => {
    const batch = await client.messages.batches.create({ requests: [{ custom_id: 'a', params }, { custom_id: 'b', params }] }, { headers: tierHeaders(usage) });
    events.length = 0;
    for await (const _ of await client.messages.batches.results(batch.id)) void _;
    await until(() => events.length >= 2, 'the row events');
    expect(events).toHaveLength(2);
    for (const event of events) {
      expect(event).toMatchObject({ endpoint: 'messages.batches', model: TIER_MODEL, input_tokens: 21, output_tokens: 9 });
      expect(tierOf(event)).toEqual({ service_tier: 'batch', ...usage, price_tier: priceTier });
      expect(Math.abs(event.cost_usd! - standardPrice * factor)).toBeLessThanOrEqual(1e-9);
    }
  });

  it('batches.results() hands back the SDK decoder itself (its controller included)', async () => {
    const batch = await client.messages.batches.create({ requests: [{ custom_id: 'only', params }] });
    const results = await client.messages.batches.results(batch.id);
    expect(results.controller).toBeInstanceOf(AbortController);
    const rows: any[] = [];
    for await (const row of results) rows.push(row);
    expect(rows).toHaveLength(1);
    await until(() => events.some((e) => e.endpoint === 'messages.batches'), 'the row event');
    expect(events.filter((e) => e.endpoint === 'messages.batches')).toMatchObject([{ total_tokens: 30 }]);
  });

  it.each([400, 429, 500])('provider %i reaches the caller unchanged and yields one event with error', async (status) => {
    let caught: any;
    const [event] = await metered(async () => {
      try {
        await meter.forTenant('err', () => client.messages.create(params, { headers: { 'x-fake-status': String(status) } }));
      } catch (err) {
        caught = err;
      }
    });
    expect(caught).toBeInstanceOf(Anthropic.APIError);
    expect(caught.status).toBe(status);
    expect(event).toMatchObject({
      tenant_id: 'err',
      provider: 'anthropic',
      endpoint: 'messages',
      model: MODEL,
      error: expect.stringContaining(String(status)),
      input_tokens: 0,
      output_tokens: 0,
    });
    expect(event.error).not.toMatch(/Fake|Too Many|prompt/i);
  });

  it('a provider error on a streaming call and on beta: one event each with error', async () => {
    let caught: any;
    const [streamEvent] = await metered(async () => {
      caught = await client.messages.create({ ...params, stream: true }, { headers: { 'x-fake-status': '429' } }).catch((e: unknown) => e);
    });
    expect(caught).toBeInstanceOf(Anthropic.RateLimitError);
    expect(streamEvent).toMatchObject({ stream: true, error: expect.stringContaining('429') });
    clear();
    const [betaEvent] = await metered(async () => {
      caught = await client.beta.messages.create(params, { headers: { 'x-fake-status': '500' } }).catch((e: unknown) => e);
    });
    expect(caught).toBeInstanceOf(Anthropic.InternalServerError);
    expect(betaEvent).toMatchObject({ endpoint: 'beta.messages', error: expect.stringContaining('500') });
    clear();
    const [helperEvent] = await metered(async () => {
      caught = await client.messages.stream(params, { headers: { 'x-fake-status': '400' } }).finalMessage().catch((e: unknown) => e);
    });
    expect(caught).toBeInstanceOf(Anthropic.BadRequestError);
    expect(helperEvent).toMatchObject({ stream: true, error: expect.stringContaining('400') });
  });

  it('a network error yields one event with error', async () => {
    const dead = new Anthropic({ apiKey: 'k', baseURL: 'http://127.0.0.1:1', maxRetries: 0 });
    await expect(dead.messages.create(params)).rejects.toBeInstanceOf(Anthropic.APIConnectionError);
    await until(() => events.length === 1, 'the error event');
    await tick(10);
    expect(events).toHaveLength(1);
    expect(events[0].error).toMatch(/APIConnectionError/);
  });

  it('an error inside the stream reaches the caller and yields one event with error and the input it saw', async () => {
    let caught: unknown;
    const [event] = await metered(async () => {
      const stream = await client.messages.create({ ...params, stream: true }, { headers: { 'x-fake-stream-error': '1' } });
      try {
        for await (const _ of stream);
      } catch (err) {
        caught = err;
      }
    });
    expect(caught).toBeInstanceOf(Anthropic.APIError);
    expect(event).toMatchObject({ stream: true, error: expect.stringMatching(/Error/), input_tokens: 21 });
    expect(event.error).not.toMatch(/Overloaded/);
  });

  it('early break past message_start: exactly one event, with the input tokens it saw', async () => {
    const [event] = await metered(async () => {
      const stream = await client.messages.create({ ...params, stream: true }, { headers: { 'x-fake-chunks': '20', 'x-fake-delay-ms': '5' } });
      let n = 0;
      for await (const _ of stream) if (++n === 3) break;
    });
    await tick(150); // the rest of the stream would have arrived by now
    expect(events).toHaveLength(1);
    expect(event).toMatchObject({ stream: true, input_tokens: 21, event_id: expect.stringMatching(/^msg_/) });
    expect(event.error).toBeUndefined();
    // The final message_delta never arrived: the output count is provisional, and the event says so.
    expect(event.partial).toBe(true);
  });

  it('controller.abort(): exactly one event, with the input tokens it saw', async () => {
    const [event] = await metered(async () => {
      const stream = await client.messages.create({ ...params, stream: true }, { headers: { 'x-fake-chunks': '50', 'x-fake-delay-ms': '5' } });
      let n = 0;
      for await (const _ of stream) if (++n === 3) stream.controller.abort();
      expect(stream.controller.signal.aborted).toBe(true);
    });
    await tick(50);
    expect(events).toHaveLength(1);
    expect(event).toMatchObject({ stream: true, input_tokens: 21, partial: true });
  });

  it('the tenant is captured at call start: a stream created in scope and read outside it', async () => {
    const stream = await meter.forTenant('a', () => client.messages.create({ ...params, stream: true }));
    const helper = meter.forTenant('b', () => client.messages.stream(params));
    await meter.forTenant('other', async () => {
      for await (const _ of stream);
      await helper.finalMessage();
    });
    await until(() => events.length === 2, 'both events');
    expect(events.map((e) => e.tenant_id).sort()).toEqual(['a', 'b']);
  });

  it('no prompt text in any event', async () => {
    await metered(async () => {
      await client.messages.create(params);
      const stream = await client.messages.create({ ...params, stream: true });
      for await (const _ of stream);
      await client.messages.stream(params).finalMessage();
      await client.beta.messages.create({ ...params, system: PROMPT });
      await client.messages.create(params, { headers: { 'x-fake-status': '400' } }).catch(() => undefined);
    });
    expect(events).toHaveLength(5);
    expect(JSON.stringify(events)).not.toContain('never leave');
  });

  it('200 concurrent calls across 20 tenants, plain and streaming: each event carries its own tenant', async () => {
    const calls = Array.from({ length: 200 }, (_, i) => {
      const tenant = `tenant-${i % 20}`;
      const headers = { 'x-fake-usage': JSON.stringify({ input_tokens: i }) };
      return meter.forTenant(tenant, async () => {
        await tick(i % 5);
        if (i % 2 === 0) return { tenant, i, id: (await client.messages.create(params, { headers })).id };
        const stream = await client.messages.create({ ...params, stream: true }, { headers });
        let id = '';
        for await (const item of stream) if (item.type === 'message_start') id = item.message.id;
        return { tenant, i, id };
      });
    });
    await expectEventPerCall(events, await Promise.all(calls), ({ i }) => ({ input_tokens: i, stream: i % 2 === 1 }));
  });
});
