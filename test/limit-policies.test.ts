import { afterEach, afterAll, describe, expect, it } from 'vitest';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { ConfigError, LimitExceededError, Meter, OPENAI_VERSIONS, repoRoot, requireFrom } from './helpers.js';

// Each Meter here owns its own SDK copy (the first Meter to patch a class receives its calls).
const fake = await startFakeProviders();
afterAll(() => fake.close());
afterEach(() => fake.reset());

const { OpenAI } = requireFrom(repoRoot, 'openai');
const { OpenAI: OpenAI7 } = requireFrom(OPENAI_VERSIONS['openai 7'], 'openai');
const { OpenAI: OpenAI5 } = requireFrom(OPENAI_VERSIONS['openai 5'], 'openai');
const messages = [{ role: 'user' as const, content: 'hi' }];
const prices = { 'openai:gpt-4o': { input_mtok: 0, output_mtok: 1 } };

describe('limit policies', () => {
  it('lenient: admits while spent + reserved < limit', async () => {
    const lenient = new Meter({ prices, enforcement: 'lenient' });
    const c = lenient.instrument(new OpenAI5({ apiKey: 'k', baseURL: fake.openaiBaseURL, maxRetries: 0 }));
    await lenient.setLimit('len', { limitUsd: 0.0025, frequency: 'per_day' });
    const results = await Promise.allSettled(
      Array.from({ length: 10 }, () => lenient.forTenant('len', () => c.chat.completions.create({ model: 'gpt-4o', messages, max_tokens: 1000 }))),
    );
    expect(results.filter((r) => r.status === 'fulfilled').length).toBe(3);
    lenient.unpatchAll();
  });

  it('requireTenant: an unscoped call fails with a clear error and sends nothing', async () => {
    const strict = new Meter({ requireTenant: true });
    const c = strict.instrument(new OpenAI7({ apiKey: 'k', baseURL: fake.openaiBaseURL, maxRetries: 0 }));
    const err = await c.chat.completions.create({ model: 'gpt-4o', messages }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as Error).message).toMatch(/outside any tenant scope/);
    expect(fake.count()).toBe(0);
    await strict.forTenant('t', () => c.chat.completions.create({ model: 'gpt-4o', messages }));
    expect(fake.count()).toBe(1);
    strict.unpatchAll();
  });

  it("unknownModel: 'block' refuses a limited tenant's call to a model without a price; 'allow' admits it", async () => {
    const allowing = new Meter();
    const a = allowing.instrument(new OpenAI7({ apiKey: 'k', baseURL: fake.openaiBaseURL, maxRetries: 0 }));
    await allowing.setLimit('unk', { limitUsd: 100, frequency: 'per_day' });
    await allowing.forTenant('unk', () => a.chat.completions.create({ model: 'private-model', messages }));
    allowing.unpatchAll();
    const blocking = new Meter({ unknownModel: 'block' });
    const c = blocking.instrument(new OpenAI({ apiKey: 'k', baseURL: fake.openaiBaseURL, maxRetries: 0 }));
    await blocking.setLimit('unk', { limitUsd: 100, frequency: 'per_day' });
    await expect(blocking.forTenant('unk', () => c.chat.completions.create({ model: 'private-model', messages }))).rejects.toBeInstanceOf(LimitExceededError);
    expect(fake.count()).toBe(1);
    blocking.unpatchAll();
  });

});
