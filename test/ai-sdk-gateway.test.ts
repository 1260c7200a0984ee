import { calcPrice } from '@pydantic/genai-prices';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { COST, COUNTS, startFakeGateway } from './fixtures/fake-gateway.mjs';
import { clearBeforeEach, LimitExceededError, patchingMeter, repoRoot, requireFrom } from './helpers.js';

// The Vercel AI Gateway provider (@ai-sdk/gateway, what `ai` uses for a plain 'openai/gpt-4o' model id), ai 6's
// CommonJS builds patched by the require hook, against a fake gateway speaking its protocol (see the fixture's header):
// the call is priced as the upstream provider's, and the cost the gateway reports is the event's cost.
// ai 5's (the repository's own, @ai-sdk/gateway 2.x, LanguageModelV2: flat usage) speaks the same protocol.
const fake = await startFakeGateway();
afterAll(() => fake.close());

const { meter, events } = patchingMeter();
clearBeforeEach(events, () => {
  fake.reset();
});

const VERSIONS = [
  { name: 'ai 6', appRoot: join(repoRoot, 'test/sdk-versions/ai-6'), specification: '3' },
  { name: 'ai 5', appRoot: repoRoot, specification: '2' },
].map(({ name, appRoot, specification }) => ({
  name,
  specification,
  ai: requireFrom(appRoot, 'ai'),
  gateway: requireFrom(appRoot, '@ai-sdk/gateway').createGateway({ apiKey: 'k', baseURL: fake.url }),
}));
const { INPUT_TOKENS, OUTPUT_TOKENS } = COUNTS;

/** The agent's own price of the fake's usage: OpenAI's list price for gpt-4o. */
function listPrice(): number {
  const price = calcPrice({ input_tokens: INPUT_TOKENS, output_tokens: OUTPUT_TOKENS }, 'gpt-4o', { providerId: 'openai' });
  expect(price, 'an openai price for gpt-4o').not.toBeNull();
  return price!.total_price;
}

async function drain(stream: { fullStream: AsyncIterable<{ type: string; error?: unknown }> }): Promise<unknown[]> {
  const errors: unknown[] = [];
  for await (const part of stream.fullStream) if (part.type === 'error') errors.push(part.error);
  return errors;
}

describe.each(VERSIONS)('AI SDK gateway provider (@ai-sdk/gateway, $name)', ({ ai, gateway, specification }) => {
  it('speaks the gateway protocol the fake answers: POST {baseURL}/language-model, the model in a header', async () => {
    const result = await meter.forTenant('acme', () => ai.generateText({ model: gateway('openai/gpt-4o'), prompt: 'hi' }));
    expect(result.text).toBe('Hello from the gateway');
    expect(result.providerMetadata.gateway.cost).toBe(COST);
    expect(fake.requests.map((r) => [r.method, r.path, r.headers['ai-language-model-id'], r.headers['ai-language-model-streaming'], r.headers['ai-language-model-specification-version']])).toEqual([
      ['POST', '/v3/ai/language-model', 'openai/gpt-4o', 'false', specification],
    ]);
  });

  it.each([false, true])('stream %s: one event priced as OpenAI, at the cost the gateway reports', async (stream) => {
    const model = gateway('openai/gpt-4o');
    if (stream) {
      const result = meter.forTenant('acme', () => ai.streamText({ model, prompt: 'hi' }));
      expect(await drain(result)).toEqual([]);
      expect((await result.providerMetadata)?.gateway?.cost).toBe(COST);
    } else {
      await meter.forTenant('acme', () => ai.generateText({ model, prompt: 'hi' }));
    }
    await meter.flush();
    expect(events).toHaveLength(1);
    expect(fake.count('/language-model')).toBe(1);
    const event = events[0]!;
    expect(event).toMatchObject({ tenant_id: 'acme', provider: 'openai', stream, input_tokens: INPUT_TOKENS, output_tokens: OUTPUT_TOKENS, price_source: 'reported' });
    // generateText: the request's id (the client replaces the body's `response` with the HTTP headers and raw body);
    // streamText: the `response-metadata` part's modelId, which the fake reports as the upstream's 'gpt-4o'.
    expect(event.model).toBe(stream ? 'gpt-4o' : 'openai/gpt-4o');
    expect(event.cost_usd).toBe(Number(COST));
    expect(event.estimated_cost_usd).toBeCloseTo(listPrice(), 12);
    expect(event.estimated_cost_usd).not.toBe(event.cost_usd);
  });

  it('a tenant over its limit is refused with LimitExceededError before the gateway gets a request', async () => {
    await meter.setLimit('over', { limitUsd: 0.0000001, frequency: 'per_day' });
    const model = gateway('openai/gpt-4o');
    await expect(meter.forTenant('over', () => ai.generateText({ model, prompt: 'x', maxRetries: 0 }))).rejects.toBeInstanceOf(LimitExceededError);
    const result = meter.forTenant('over', () => ai.streamText({ model, prompt: 'x', maxRetries: 0, onError: () => undefined }));
    const errors = await drain(result);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(LimitExceededError);
    expect(fake.requests).toEqual([]);
  });
});
