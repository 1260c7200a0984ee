import { calcPrice } from '@pydantic/genai-prices';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { COUNTS, startFakeCompatible } from './fixtures/fake-compatible.mjs';
import { clearBeforeEach, patchingMeter, repoRoot, requireFrom, until } from './helpers.js';

// The AI SDK's providers with model classes of their own (ai 6's CommonJS builds, patched by the require hook), each
// keeping its real base URL; requests reach the fake through the provider's own `fetch` setting.
const appRoot = join(repoRoot, 'test/sdk-versions/ai-6');
const fake = await startFakeCompatible();
afterAll(() => fake.close());

const { meter, events } = patchingMeter();
clearBeforeEach(events, () => {
  fake.requests.length = 0;
});

const ai = requireFrom(appRoot, 'ai');
const fetch = fake.routeTo();
const { PROMPT_TOKENS, CACHED_TOKENS, COMPLETION_TOKENS } = COUNTS;

const PROVIDERS = [
  { name: 'groq', model: () => requireFrom(appRoot, '@ai-sdk/groq').createGroq({ apiKey: 'k', fetch })('llama-3.3-70b-versatile'), host: 'api.groq.com', cached: 0 },
  { name: 'x-ai', model: () => requireFrom(appRoot, '@ai-sdk/xai').createXai({ apiKey: 'k', fetch }).chat('grok-3'), host: 'api.x.ai', cached: CACHED_TOKENS },
  { name: 'deepseek', model: () => requireFrom(appRoot, '@ai-sdk/deepseek').createDeepSeek({ apiKey: 'k', fetch })('deepseek-chat'), host: 'api.deepseek.com', cached: CACHED_TOKENS },
  { name: 'mistral', model: () => requireFrom(appRoot, '@ai-sdk/mistral').createMistral({ apiKey: 'k', fetch })('mistral-large-latest'), host: 'api.mistral.ai', cached: 0 },
  { name: 'azure', model: () => requireFrom(appRoot, '@ai-sdk/azure').createAzure({ apiKey: 'k', resourceName: 'contoso', fetch }).chat('gpt-4o'), host: 'contoso.openai.azure.com', cached: 0 },
];

describe('AI SDK providers with model classes of their own', () => {
  it.each(PROVIDERS)('$name: one event with its provider, host and rates', async ({ name, model, host, cached }) => {
    const instance = model();
    await meter.forTenant('acme', () => ai.generateText({ model: instance, prompt: 'a prompt that must never leave the process' }));
    await until(() => events.length === 1, 'the event');
    const event = events[0]!;
    expect(fake.requests.map((r) => r.host)).toEqual([host]);
    expect(event).toMatchObject({ tenant_id: 'acme', provider: name, host, input_tokens: PROMPT_TOKENS, output_tokens: COMPLETION_TOKENS });
    if (cached > 0) expect(event.cached_tokens).toBe(cached);
    // The price data's rates for this provider: input (the cached part at its cache rate, where it reports one) and output.
    const price = calcPrice({ input_tokens: PROMPT_TOKENS, output_tokens: COMPLETION_TOKENS, ...(cached > 0 ? { cache_read_tokens: cached } : {}) }, event.model, { providerId: name });
    expect(price, `a ${name} price for ${event.model}`).not.toBeNull();
    expect(event.cost_usd).toBeCloseTo(price!.total_price, 9);
  });
});
