import { calcPrice } from '@pydantic/genai-prices';
import { afterAll, describe, expect, it } from 'vitest';
import { COUNTS, startFakeCompatible } from './fixtures/fake-compatible.mjs';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { clearBeforeEach, ConfigError, LimitExceededError, Meter, patchingMeter, repoRoot, requireFrom, until } from './helpers.js';

const { OpenAI, AzureOpenAI } = requireFrom(repoRoot, 'openai');
const fake = await startFakeCompatible();
afterAll(() => fake.close());
const anthropicFake = await startFakeProviders();
afterAll(() => anthropicFake.close());

const { meter, events } = patchingMeter({
  providerHosts: { 'llm.internal.example.com': 'deepseek', 'https://gateway.example.com/fireworks': 'fireworks' },
});
clearBeforeEach(events, () => {
  fake.requests.length = 0;
});

const messages = [{ role: 'user' as const, content: 'a prompt that must never leave the process' }];
const { PROMPT_TOKENS, CACHED_TOKENS, COMPLETION_TOKENS, REASONING_TOKENS } = COUNTS;

/** A client that keeps its real base URL; its requests reach the fake through the SDK's own `fetch` option. */
function clientFor(baseURL: string, headers: Record<string, string> = {}) {
  return new OpenAI({ apiKey: 'k', baseURL, maxRetries: 0, fetch: fake.routeTo(headers) });
}

/** What the price data charges `provider` for this usage (input_tokens there include the cached ones). */
function libraryCost(provider: string, model: string, usage: { input_tokens: number; output_tokens: number; cache_read_tokens?: number }): number {
  const price = calcPrice(usage, model, { providerId: provider });
  if (price === null) throw new Error(`the price data has no ${provider} ${model}`);
  return price.total_price;
}

async function oneEvent() {
  await until(() => events.length === 1, 'one event');
  return events[0]!;
}

describe('provider identity from the base URL', () => {
  // Each host: its real base URL, a model it serves, and what it bills. Input tokens include cached ones on every host
  // here (OpenAI's convention); the cached part is billed at the host's cache-read rate where it has one.
  const HOSTS = [
    { baseURL: 'https://api.deepseek.com', provider: 'deepseek', host: 'api.deepseek.com', model: 'deepseek-chat', cached: CACHED_TOKENS },
    { baseURL: 'https://api.groq.com/openai/v1', provider: 'groq', host: 'api.groq.com', model: 'llama-3.3-70b-versatile', cached: 0 },
    { baseURL: 'https://api.x.ai/v1', provider: 'x-ai', host: 'api.x.ai', model: 'grok-3', cached: CACHED_TOKENS },
    { baseURL: 'https://api.together.xyz/v1', provider: 'together', host: 'api.together.xyz', model: 'meta-llama/Llama-3.3-70B-Instruct-Turbo', cached: 0 },
    { baseURL: 'https://api.fireworks.ai/inference/v1', provider: 'fireworks', host: 'api.fireworks.ai', model: 'accounts/fireworks/models/llama-v3p1-8b-instruct', cached: 0 },
  ];

  it('five hosts through one openai install in one process: every event names its provider and host, priced at its rates', async () => {
    for (const h of HOSTS) await clientFor(h.baseURL).chat.completions.create({ model: h.model, messages });
    await until(() => events.length === HOSTS.length, 'an event per host');
    expect(fake.requests.map((r) => r.host)).toEqual(HOSTS.map((h) => h.host));
    for (const [i, h] of HOSTS.entries()) {
      const cost = libraryCost(h.provider, h.model, { input_tokens: PROMPT_TOKENS, output_tokens: COMPLETION_TOKENS, ...(h.cached > 0 ? { cache_read_tokens: h.cached } : {}) });
      expect(events[i], h.provider).toMatchObject({ provider: h.provider, host: h.host, model: h.model, input_tokens: PROMPT_TOKENS, output_tokens: COMPLETION_TOKENS });
      if (h.cached > 0) expect(events[i]!.cached_tokens).toBe(h.cached);
      expect(events[i]!.price_unknown).toBeUndefined();
      expect(events[i]!.cost_usd).toBeCloseTo(cost, 9);
    }
  });

  it('a host the price data does not know (a local server) keeps the SDK\'s provider, with its host; an unknown model is metered for tokens', async () => {
    const local = new OpenAI({ apiKey: 'k', baseURL: `${fake.url}/v1`, maxRetries: 0 });
    await local.chat.completions.create({ model: 'llama3', messages });
    const event = await oneEvent();
    expect(event).toMatchObject({ provider: 'openai', host: new URL(fake.url).host, model: 'llama3', input_tokens: PROMPT_TOKENS, output_tokens: COMPLETION_TOKENS, price_unknown: true, cost_usd: 0 });
  });

  it('providerHosts maps a host, or a base-URL prefix, to a provider', async () => {
    await clientFor('https://llm.internal.example.com/v1').chat.completions.create({ model: 'deepseek-chat', messages });
    await clientFor('https://gateway.example.com/fireworks/v1').chat.completions.create({ model: 'accounts/fireworks/models/llama-v3p1-8b-instruct', messages });
    await clientFor('https://gateway.example.com/other/v1').chat.completions.create({ model: 'deepseek-chat', messages });
    await until(() => events.length === 3, 'three events');
    expect(events.map((e) => [e.provider, e.host])).toEqual([
      ['deepseek', 'llm.internal.example.com'],
      ['fireworks', 'gateway.example.com'],
      ['openai', 'gateway.example.com'],
    ]);
    // The internal host answers with plain OpenAI-shaped usage (no cache hits): all input at deepseek-chat's input rate.
    expect(events[0]!.cost_usd).toBeCloseTo(libraryCost('deepseek', 'deepseek-chat', { input_tokens: PROMPT_TOKENS, output_tokens: COMPLETION_TOKENS }), 9);
    expect(events[2]!.price_unknown).toBe(true);
  });

  it('AzureOpenAI is Azure on its own domain and on a custom one; models Azure has no rates of its own for are priced at OpenAI\'s', async () => {
    const onAzure = new AzureOpenAI({ apiKey: 'k', endpoint: 'https://contoso.openai.azure.com', apiVersion: '2024-10-21', maxRetries: 0, fetch: fake.routeTo() });
    const custom = new AzureOpenAI({ apiKey: 'k', endpoint: 'https://llm-gateway.contoso.com', apiVersion: '2024-10-21', maxRetries: 0, fetch: fake.routeTo() });
    await onAzure.chat.completions.create({ model: 'gpt-4o', messages });
    await custom.chat.completions.create({ model: 'gpt-4o', messages });
    await until(() => events.length === 2, 'two events');
    expect(events.map((e) => [e.provider, e.host])).toEqual([
      ['azure', 'contoso.openai.azure.com'],
      ['azure', 'llm-gateway.contoso.com'],
    ]);
    const cost = libraryCost('azure', 'gpt-4o', { input_tokens: PROMPT_TOKENS, output_tokens: COMPLETION_TOKENS });
    expect(events[0]!.cost_usd).toBeCloseTo(cost, 9);
  });

  it('bad providerHosts are refused, naming the entry', () => {
    expect(() => new Meter({ providerHosts: 'deepseek' as any })).toThrow(ConfigError);
    expect(() => new Meter({ providerHosts: { 'llm.example.com': 7 as any } })).toThrow(/providerHosts\["llm.example.com"\] must be a provider id/);
    expect(() => new Meter({ providerHosts: { 'not a host': 'deepseek' } })).toThrow(/providerHosts: "not a host" must be a host/);
    expect(() => new Meter({ providerHosts: { 'https://': 'deepseek' } })).toThrow(/not a valid base URL/);
  });
});

describe('DeepSeek', () => {
  const deepseek = () => clientFor('https://api.deepseek.com');

  it('cache hits and misses: prompt_cache_hit_tokens are the cached part of the input, billed at the cache-hit rate', async () => {
    await deepseek().chat.completions.create({ model: 'deepseek-chat', messages });
    const event = await oneEvent();
    expect(event).toMatchObject({ provider: 'deepseek', input_tokens: PROMPT_TOKENS, cached_tokens: CACHED_TOKENS, output_tokens: COMPLETION_TOKENS });
    // deepseek-chat: 400 misses at the input rate, 800 hits at the cache-hit rate, 300 at the output rate.
    expect(event.cost_usd).toBeCloseTo(libraryCost('deepseek', 'deepseek-chat', { input_tokens: PROMPT_TOKENS, cache_read_tokens: CACHED_TOKENS, output_tokens: COMPLETION_TOKENS }), 9);
  });

  it('deepseek-reasoner: reasoning tokens are part of the output tokens, billed at the output rate', async () => {
    await deepseek().chat.completions.create({ model: 'deepseek-reasoner', messages });
    const event = await oneEvent();
    expect(event).toMatchObject({ model: 'deepseek-reasoner', reasoning_tokens: REASONING_TOKENS, output_tokens: COMPLETION_TOKENS });
    expect(event.cost_usd).toBeCloseTo(libraryCost('deepseek', 'deepseek-reasoner', { input_tokens: PROMPT_TOKENS, cache_read_tokens: CACHED_TOKENS, output_tokens: COMPLETION_TOKENS }), 9);
  });

  it('fill-in-the-middle on the beta base URL is endpoint fim.completions; a plain completion stays completions', async () => {
    const beta = clientFor('https://api.deepseek.com/beta');
    await beta.completions.create({ model: 'deepseek-chat', prompt: 'def f(', suffix: '    return x' });
    await beta.completions.create({ model: 'deepseek-chat', prompt: 'def f(' });
    await until(() => events.length === 2, 'two events');
    expect(events.map((e) => [e.endpoint, e.provider])).toEqual([
      ['fim.completions', 'deepseek'],
      ['completions', 'deepseek'],
    ]);
    expect(fake.requests[0]!.path).toBe('/beta/completions');
  });

  it('a stream: the usage the agent asked for is read and hidden from the caller, priced at DeepSeek\'s rates', async () => {
    const stream = await deepseek().chat.completions.create({ model: 'deepseek-chat', messages, stream: true });
    const chunks: any[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(fake.requests[0]!.body.stream_options).toEqual({ include_usage: true });
    expect(chunks.every((c) => c.choices.length > 0 && !('usage' in c))).toBe(true);
    const event = await oneEvent();
    expect(event).toMatchObject({ provider: 'deepseek', stream: true, input_tokens: PROMPT_TOKENS, cached_tokens: CACHED_TOKENS, output_tokens: COMPLETION_TOKENS });
    expect(event.partial).toBeUndefined();
  });

  it('a tenant\'s limit sees DeepSeek spend: a reservation at DeepSeek\'s rates refuses a call that cannot fit, before any request', async () => {
    const client = deepseek();
    await meter.setLimit('deepseek-tenant', { limitUsd: 0.000001, frequency: 'per_day' });
    await expect(meter.forTenant('deepseek-tenant', () => client.chat.completions.create({ model: 'deepseek-chat', messages }))).rejects.toBeInstanceOf(LimitExceededError);
    expect(fake.requests).toHaveLength(0);
  });
});

describe('an SDK pointed at another provider\'s compatible API', () => {
  it('Anthropic\'s SDK at DeepSeek\'s Anthropic API: a DeepSeek event, its cache pools counted the Anthropic way, at DeepSeek\'s rates', async () => {
    const { Anthropic } = requireFrom(repoRoot, '@anthropic-ai/sdk');
    const client = new Anthropic({
      apiKey: 'k',
      baseURL: 'https://api.deepseek.com/anthropic',
      maxRetries: 0,
      fetch: (url: string, init: RequestInit) => fetch(url.replace('https://api.deepseek.com/anthropic', anthropicFake.anthropicBaseURL), init),
    });
    // Anthropic usage: input_tokens leave out the 100 cache reads and the 50 cache writes.
    const usage = { input_tokens: 30, cache_read_input_tokens: 100, cache_creation_input_tokens: 50, output_tokens: 20 };
    await client.messages.create({ model: 'deepseek-chat', max_tokens: 64, messages }, { headers: { 'x-fake-usage': JSON.stringify(usage) } });
    const event = await oneEvent();
    expect(event).toMatchObject({ provider: 'deepseek', host: 'api.deepseek.com', input_tokens: 30, cached_tokens: 100, cache_creation_tokens: 50, output_tokens: 20 });
    // The price data's input is all of it: 180 tokens, 100 of them at DeepSeek's cache-hit rate.
    expect(event.cost_usd).toBeCloseTo(libraryCost('deepseek', 'deepseek-chat', { input_tokens: 180, cache_read_tokens: 100, output_tokens: 20 }), 9);
  });
});

describe('costs the provider or gateway reports', () => {
  const openrouter = (headers: Record<string, string> = {}) => clientFor('https://openrouter.ai/api/v1', headers);

  it('OpenRouter: usage.cost is the cost, the agent\'s estimate beside it, and the provider that served the call', async () => {
    await openrouter().chat.completions.create({ model: 'openai/gpt-4o', messages });
    const event = await oneEvent();
    expect(event).toMatchObject({ provider: 'openrouter', host: 'openrouter.ai', model: 'openai/gpt-4o', upstream_provider: 'DeepInfra', price_source: 'reported', cost_usd: 0.00131, cached_tokens: CACHED_TOKENS });
    expect(event.estimated_cost_usd).toBeCloseTo(libraryCost('openrouter', 'openai/gpt-4o', { input_tokens: PROMPT_TOKENS, cache_read_tokens: CACHED_TOKENS, output_tokens: COMPLETION_TOKENS }), 9);
  });

  it('OpenRouter with the caller\'s own key (BYOK): its fee plus what the upstream provider charged', async () => {
    await openrouter({ 'x-byok': '1' }).chat.completions.create({ model: 'openai/gpt-4o', messages });
    const event = await oneEvent();
    expect(event.cost_usd).toBeCloseTo(0.0000655 + 0.00131, 12);
  });

  it('OpenRouter streams report the cost on the usage chunk', async () => {
    const stream = await openrouter().chat.completions.create({ model: 'openai/gpt-4o', messages, stream: true });
    for await (const _chunk of stream) void _chunk;
    const event = await oneEvent();
    expect(event).toMatchObject({ provider: 'openrouter', stream: true, price_source: 'reported', cost_usd: 0.00131, upstream_provider: 'DeepInfra' });
  });

  it('a LiteLLM proxy\'s response-cost header is the cost of a call through it; the spend ledger counts that cost', async () => {
    const client = clientFor('https://litellm.internal.example.com/v1');
    await meter.setLimit('litellm-tenant', { limitUsd: 10, frequency: 'per_day' });
    await meter.forTenant('litellm-tenant', () => client.chat.completions.create({ model: 'gpt-4o', messages }));
    const event = await oneEvent();
    expect(event).toMatchObject({ provider: 'openai', host: 'litellm.internal.example.com', price_source: 'reported', cost_usd: 0.004321 });
    expect(event.estimated_cost_usd).toBeCloseTo(libraryCost('openai', 'gpt-4o', { input_tokens: PROMPT_TOKENS, output_tokens: COMPLETION_TOKENS }), 9);
    const [window] = await meter.getUsage('litellm-tenant');
    expect(window!.spentUsd).toBeCloseTo(0.004321, 9);
  });

  it('a cost header from a host the price data knows is not trusted: the provider\'s own prices stand', async () => {
    // A header on a host the price data knows is not a gateway's: it must not set a tenant's bill.
    await clientFor('https://api.together.xyz/v1', { 'x-fake-cost-header': '9' }).chat.completions.create({ model: 'meta-llama/Llama-3.3-70B-Instruct-Turbo', messages });
    const event = await oneEvent();
    expect(event.price_source).not.toBe('reported');
  });
});
