import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { ConfigError, LimitExceededError, Meter, repoRoot, requireFrom, until } from './helpers.js';
import type { UsageEvent } from 'llm-meter';

// The middleware is for models the load hooks cannot reach (a framework's bundle): here, ESM builds imported by the
// test itself, which no load hook saw. ai 7 (Node >= 22) is covered by test/ai-sdk-7.test.ts.
const VERSIONS = [
  { label: 'ai 5', appRoot: join(repoRoot, 'test/sdk-versions/ai-5'), middleware: 'v2' as const },
  { label: 'ai 6', appRoot: join(repoRoot, 'test/sdk-versions/ai-6'), middleware: 'v3' as const },
];

const fake = await startFakeProviders();
afterAll(() => fake.close());

describe.each(VERSIONS)('$label: meter.languageModelMiddleware', ({ appRoot, middleware }) => {
  const resolve = (specifier: string) => requireFrom(appRoot, 'node:module').createRequire(join(appRoot, 'app.js')).resolve(specifier);
  const events: UsageEvent[] = [];
  const meter = new Meter({ handleExit: false, onEvent: (e) => events.push(e) });
  afterAll(() => meter.shutdown());
  beforeEach(() => {
    events.length = 0;
  });

  async function load() {
    const ai = await import(resolve('ai'));
    const { createOpenAI } = await import(resolve('@ai-sdk/openai'));
    return { ai, openai: createOpenAI({ apiKey: 'k', baseURL: fake.openaiBaseURL }) };
  }

  it('meters the model it wraps, plain and streamed, in the caller\'s tenant', async () => {
    const { ai, openai } = await load();
    const model = ai.wrapLanguageModel({ model: openai.chat('gpt-4o'), middleware: meter.languageModelMiddleware(middleware) });
    await meter.forTenant('acme', async () => {
      await ai.generateText({ model, prompt: 'a prompt that must never leave the process' });
      const stream = ai.streamText({ model, prompt: 'a prompt that must never leave the process' });
      for await (const _text of stream.textStream) void _text;
    });
    await until(() => events.length === 2, 'two events');
    // The fake's default OpenAI usage: 11 input and 7 output tokens; gpt-4o at $2.50 / $10 per million.
    for (const [i, stream] of [false, true].entries()) {
      expect(events[i]).toMatchObject({ tenant_id: 'acme', provider: 'openai', endpoint: 'chat', model: 'gpt-4o', stream, input_tokens: 11, output_tokens: 7 });
      expect(events[i]!.cost_usd).toBeCloseTo((11 * 2.5 + 7 * 10) / 1e6, 12);
    }
    expect(JSON.stringify(events)).not.toContain('must never leave');
  });

  it('refuses a tenant over its limit before any request, as an error of the call', async () => {
    const { ai, openai } = await load();
    const model = ai.wrapLanguageModel({ model: openai.chat('gpt-4o'), middleware: meter.languageModelMiddleware(middleware) });
    await meter.setLimit('over', { limitUsd: 0.0000001, frequency: 'per_day' });
    const before = fake.requests.length;
    await expect(meter.forTenant('over', () => ai.generateText({ model, prompt: 'x', maxRetries: 0 }))).rejects.toBeInstanceOf(LimitExceededError);
    // streamText reports a stream's error to `onError` (by default it prints it) and as an `error` part.
    const stream = meter.forTenant('over', () => ai.streamText({ model, prompt: 'x', maxRetries: 0, onError: () => undefined }));
    await expect((async () => {
      for await (const part of stream.fullStream) if (part.type === 'error') throw part.error;
    })()).rejects.toBeInstanceOf(LimitExceededError);
    expect(fake.requests.length).toBe(before);
  });

  it('a model whose class the agent patched is metered there: wrapped too, each call still counts once', async () => {
    const { ai, openai } = await load();
    const inner = meter.instrument(openai.chat('gpt-4o'));
    const model = ai.wrapLanguageModel({ model: inner, middleware: meter.languageModelMiddleware(middleware) });
    await meter.forTenant('acme', () => ai.generateText({ model, prompt: 'x' }));
    await until(() => events.length >= 1, 'the event');
    await meter.flush();
    expect(events).toHaveLength(1);
    meter.unpatchAll();
  });

  it('a bad version is refused, naming it', () => {
    expect(() => meter.languageModelMiddleware('v9' as any)).toThrow(ConfigError);
    expect(() => meter.languageModelMiddleware('v9' as any)).toThrow(/version must be one of v2, v3, v4, got "v9"/);
  });
});
