import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { startFakeIngest } from './fixtures/fake-ingest.mjs';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { LimitExceededError, Meter, repoRoot, requireFrom, stderrOf, tick } from './helpers.js';
import type { UsageEvent } from 'llm-meter';

const fake = await startFakeProviders();
const ingest = await startFakeIngest();
afterAll(() => Promise.all([fake.close(), ingest.close()]));

describe('privacy: no prompt or completion text, no key, anywhere the agent writes', () => {
  const { OpenAI } = requireFrom(repoRoot, 'openai');
  const { Anthropic } = requireFrom(repoRoot, '@anthropic-ai/sdk');
  const { GoogleGenAI } = requireFrom(repoRoot, '@google/genai');
  const events: UsageEvent[] = [];
  const errors: string[] = [];
  const meter = new Meter({ url: ingest.url, apiKey: 'sk-ingest-SECRETKEY', debug: true, handleExit: false, onEvent: (e) => events.push(e) });
  meter.patchAll();
  afterAll(() => meter.unpatchAll());
  const openai = new OpenAI({ apiKey: 'sk-openai-SECRETKEY', baseURL: fake.openaiBaseURL, maxRetries: 0 });
  const anthropic = new Anthropic({ apiKey: 'sk-ant-SECRETKEY', baseURL: fake.anthropicBaseURL, maxRetries: 0 });
  const gemini = new GoogleGenAI({ apiKey: 'gm-SECRETKEY', httpOptions: { baseUrl: fake.geminiBaseUrl } });

  it('random prompts and completions through every provider surface', async () => {
    const secret = fc.stringMatching(/^[A-Za-z0-9]{12,24}$/).map((s) => `Q${s}`);
    await fc.assert(
      fc.asyncProperty(secret, secret, async (prompt, completion) => {
        events.length = 0;
        const headers = { 'x-fake-text': completion };
        const log = await stderrOf(async () => {
          await meter.forTenant('t', async () => {
            await openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: prompt }] }, { headers });
            for await (const _ of await openai.chat.completions.create({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: prompt }] }, { headers }));
            await openai.responses.create({ model: 'gpt-4.1', input: prompt }, { headers });
            await openai.embeddings.create({ model: 'text-embedding-3-small', input: prompt });
            await anthropic.messages.create({ model: 'claude-haiku-4-5', max_tokens: 10, messages: [{ role: 'user', content: prompt }] }, { headers });
            for await (const _ of await anthropic.messages.create({ model: 'claude-haiku-4-5', max_tokens: 10, stream: true, messages: [{ role: 'user', content: prompt }] }, { headers }));
            await gemini.models.generateContent({ model: 'gemini-2.5-flash', contents: prompt, config: { httpOptions: { headers } } });
            await openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: prompt }] }, { headers: { 'x-fake-status': '400' } }).catch((e: Error) => errors.push(e.message));
          });
          await meter.setLimit('capped', { limitUsd: 0, frequency: 'per_day' });
          await meter
            .forTenant('capped', () => openai.chat.completions.create({ model: 'gpt-4o', max_tokens: 5, messages: [{ role: 'user', content: prompt }] }))
            .catch((e: Error) => {
              expect(e).toBeInstanceOf(LimitExceededError);
              errors.push(e.message);
            });
          await meter.flush();
        });
        await tick(5);
        const bodies = ingest.batches.map((b: { body: unknown }) => JSON.stringify(b.body)).join('\n');
        const everything = [JSON.stringify(events), bodies, log, errors.join('\n'), JSON.stringify(meter.stats())].join('\n');
        expect(events.length).toBe(9);
        for (const text of [prompt, completion, 'SECRETKEY']) expect(everything).not.toContain(text);
        expect(log).toContain('[llm-meter] event');
      }),
      { numRuns: 15 },
    );
  }, 60_000);

  it('a plain http:// url to another host gets one warning at construction', async () => {
    const log = await stderrOf(async () => {
      new Meter({ url: 'http://user:pw-SECRET@ingest.example.com/usage', handleExit: false });
      new Meter({ url: 'http://127.0.0.1:9/usage', handleExit: false });
      new Meter({ url: 'https://ingest.example.com/usage', handleExit: false });
    });
    expect(log.match(/plain http/g)).toHaveLength(1);
    expect(log).not.toContain('pw-SECRET');
  });
});
