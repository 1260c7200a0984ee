import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { LimitExceededError, Meter, OPENAI_VERSIONS, repoRoot, requireFrom } from './helpers.js';
import type { UsageEvent } from 'llm-meter';

// Requests sent around the named methods — the client's generic post()/request(), and resources the hook table does not
// name — are metered and limited too: nothing reaches the provider around the agent.
const fake = await startFakeProviders();
afterAll(() => fake.close());
afterEach(() => {
  fake.reset();
  events.length = 0;
});

const { OpenAI } = requireFrom(repoRoot, 'openai');
const Anthropic = requireFrom(repoRoot, '@anthropic-ai/sdk').default;
const { GoogleGenAI } = requireFrom(repoRoot, '@google/genai');
const gemini = new GoogleGenAI({ apiKey: 'k', httpOptions: { baseUrl: fake.geminiBaseUrl } });
const openai = new OpenAI({ apiKey: 'k', baseURL: fake.openaiBaseURL, maxRetries: 0 });
const anthropic = new Anthropic({ apiKey: 'k', baseURL: fake.anthropicBaseURL, maxRetries: 0 });

const events: UsageEvent[] = [];
const meter = new Meter({ onEvent: (e) => events.push(e) });
meter.patchAll();
afterAll(() => meter.unpatchAll());
await meter.setLimit('broke', { limitUsd: 0, frequency: 'per_day' });

const chatBody = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 20 };
const messageBody = { model: 'claude-3-5-haiku-latest', max_tokens: 20, messages: [{ role: 'user', content: 'hi' }] };

const BILLABLE_AROUND_THE_HOOKS = {
  'openai client.post /chat/completions': () => openai.post('/chat/completions', { body: chatBody }),
  'openai client.request /chat/completions': () => openai.request({ method: 'post', path: '/chat/completions', body: chatBody }),
  'openai client.post /responses': () => openai.post('/responses', { body: { model: 'gpt-4o-mini', input: 'hi', max_output_tokens: 20 } }),
  'openai batches.create': () => openai.batches.create({ input_file_id: 'file-1', endpoint: '/v1/chat/completions', completion_window: '24h' }),
  'openai videos.create': () => openai.videos.create({ prompt: 'a cat', model: 'sora-2' }),
  'openai beta.threads.runs.create': () => openai.beta.threads.runs.create('thread_1', { assistant_id: 'asst_1' }),
  'anthropic client.post /v1/messages': () => anthropic.post('/v1/messages', { body: messageBody }),
  'anthropic messages.batches.create': () => anthropic.messages.batches.create({ requests: [{ custom_id: 'a', params: messageBody }] }),
  'genai batches.create': () => gemini.batches.create({ model: 'gemini-2.0-flash', src: [{ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }] }),
  'genai generateImages': () => gemini.models.generateImages({ model: 'imagen-4.0-generate-001', prompt: 'a cat' }),
} as Record<string, () => PromiseLike<unknown>>;

describe('a tenant at a $0 limit', () => {
  it.each(Object.keys(BILLABLE_AROUND_THE_HOOKS))('%s: refused, and the provider sees nothing', async (name) => {
    const err = await meter.forTenant('broke', BILLABLE_AROUND_THE_HOOKS[name]!).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(LimitExceededError);
    expect(fake.count()).toBe(0);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ tenant_id: 'broke', error: expect.anything() });
  });

  it('free requests pass through, with no event: reads, deletes, uploads, token counts, moderation', async () => {
    await meter.forTenant('broke', async () => {
      await openai.models.list().catch(() => undefined);
      await openai.moderations.create({ input: 'hi' }).catch(() => undefined);
      await openai.files.del?.('file-1').catch(() => undefined);
      await anthropic.messages.countTokens({ model: 'claude-3-5-haiku-latest', messages: messageBody.messages }).catch(() => undefined);
    });
    expect(events).toEqual([]);
    expect(fake.count()).toBeGreaterThanOrEqual(3);
  });
});

describe('metered like the named method', () => {
  it('client.post("/chat/completions") yields the same event as chat.completions.create', async () => {
    const viaPost = (await meter.forTenant('acme', () => openai.post('/chat/completions', { body: chatBody }))) as { id: string };
    await meter.forTenant('acme', () => openai.chat.completions.create(chatBody as never));
    expect(viaPost.id).toMatch(/./);
    expect(events).toHaveLength(2);
    const strip = ({ event_id, request_id, duration_ms, timestamp, ...rest }: UsageEvent) => rest;
    expect(strip(events[0]!)).toEqual(strip(events[1]!));
    expect(events[0]).toMatchObject({ endpoint: 'chat.completions', tenant_id: 'acme', input_tokens: expect.any(Number) });
    expect(events[0]!.input_tokens).toBeGreaterThan(0);
    expect(events[0]!.cost_usd).toBeGreaterThan(0);
  });

  it('a stream through client.post carries its usage, and the caller sees the chunks the SDK gives', async () => {
    const stream = (await meter.forTenant('acme', () =>
      openai.post('/chat/completions', { body: { ...chatBody, stream: true }, stream: true }),
    )) as AsyncIterable<{ choices: unknown[] }>;
    let chunks = 0;
    for await (const chunk of stream) if (chunk.choices.length > 0) chunks++;
    expect(chunks).toBeGreaterThan(0);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ endpoint: 'chat.completions', stream: true });
    expect(events[0]!.output_tokens).toBeGreaterThan(0);
    expect(events[0]!.partial).toBeUndefined();
  });

  it('a billable path the agent cannot price: one event with the path as endpoint and price_unknown', async () => {
    await meter.forTenant('acme', () => openai.batches.create({ input_file_id: 'file-1', endpoint: '/v1/chat/completions', completion_window: '24h' })).catch(() => undefined);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ endpoint: '/batches', tenant_id: 'acme', price_unknown: true, cost_usd: 0 });
  });

  it('genai batches.create: one event at an unknown price', async () => {
    await meter
      .forTenant('acme', () => gemini.batches.create({ model: 'gemini-2.0-flash', src: [{ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }] }))
      .catch(() => undefined);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ provider: 'google', endpoint: 'batches.create', tenant_id: 'acme', price_unknown: true, cost_usd: 0 });
  });

  it('a named method counts once: its own request through the client is not metered again', async () => {
    await meter.forTenant('acme', () => openai.chat.completions.create(chatBody as never));
    await meter.forTenant('acme', () => anthropic.messages.create(messageBody as never));
    expect(events.map((e) => e.endpoint)).toEqual(['chat.completions', 'messages']);
  });
});

describe('unknownModel: block', () => {
  it('refuses a billable request the agent cannot price, for a limited tenant with room left; unlimited tenants pass', async () => {
    // Patching belongs to one Meter at a time: this one takes over every copy.
    meter.unpatchAll();
    const { OpenAI: OpenAI7 } = requireFrom(OPENAI_VERSIONS['openai 7'], 'openai');
    const blocking = new Meter({ unknownModel: 'block', onEvent: (e) => events.push(e) });
    blocking.patchAll();
    try {
      await blocking.setLimit('rich', { limitUsd: 10, frequency: 'per_day' });
      const client = new OpenAI7({ apiKey: 'k', baseURL: fake.openaiBaseURL, maxRetries: 0 });
      const batch = () => client.batches.create({ input_file_id: 'file-1', endpoint: '/v1/chat/completions', completion_window: '24h' });
      await expect(blocking.forTenant('rich', batch)).rejects.toBeInstanceOf(LimitExceededError);
      expect(fake.count()).toBe(0);
      await blocking.forTenant('unlimited', batch).catch(() => undefined);
      expect(fake.count('/batches')).toBe(1);
    } finally {
      await blocking.shutdown();
    }
  });
});
