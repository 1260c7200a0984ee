import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { UsageEvent } from 'llm-meter';
import { startFakeGroq } from './fixtures/fake-groq.mjs';
import { eventsPerRequest, eventsPrinted, LimitExceededError, patchingMeter, repoRoot, requireFrom, requireFromRepo, runNode, until } from './helpers.js';

// groq-sdk, the real package over HTTP, against a fake Groq on 127.0.0.1 that speaks Groq's wire format. The client
// keeps its real base URL (https://api.groq.com): its own `fetch` option routes the requests to the fake.
const fake = await startFakeGroq();
afterAll(() => fake.close());

const GROQ_ORIGIN = 'https://api.groq.com';
const toFake = (url: string | URL | Request, init?: RequestInit): Promise<Response> =>
  fetch(String(url instanceof Request ? url.url : url).replace(GROQ_ORIGIN, fake.url), init);

const { calcPrice } = requireFromRepo('@pydantic/genai-prices') as typeof import('@pydantic/genai-prices');
/** What the price library says Groq charges for `usage` on `model`: the expected cost of every case. */
const groqPrice = (model: string, usage: Record<string, number>): number => calcPrice(usage, model, { providerId: 'groq' })!.total_price;

const { meter, events } = patchingMeter();

const Groq = requireFrom(repoRoot, 'groq-sdk').Groq;
const client = new Groq({ apiKey: 'gsk_test', maxRetries: 0, fetch: toFake });

const MODEL = 'openai/gpt-oss-120b';
const messages = [{ role: 'user' as const, content: 'a prompt that must never leave the process' }];
const audioFile = () => new File([new Uint8Array([1, 2, 3, 4])], 'a.mp3', { type: 'audio/mpeg' });
const usageHeader = (usage: Record<string, unknown>) => ({ headers: { 'x-fake-usage': JSON.stringify(usage) } });

const { metered, clear } = eventsPerRequest(events, fake);
afterEach(clear);

describe('groq-sdk chat completions', () => {
  it('create: one event, provider groq, model, tokens and cost; the SDK result untouched', async () => {
    // Billing: input at the input rate, cached input (a part of prompt_tokens) at the cache-read rate, output at the output rate.
    const usage = { prompt_tokens: 1000, completion_tokens: 200, total_tokens: 1200, prompt_tokens_details: { cached_tokens: 400 } };
    let result: any;
    const [event] = await metered(async () => {
      result = await meter.forTenant('acme', () => client.chat.completions.create({ model: MODEL, messages }, usageHeader(usage)));
    });
    expect(client.baseURL).toBe(GROQ_ORIGIN);
    expect(result.object).toBe('chat.completion');
    expect(result.x_groq.usage).toEqual({ dram_cached_tokens: 5, sram_cached_tokens: 7 });
    expect(event).toMatchObject({
      tenant_id: 'acme',
      provider: 'groq',
      endpoint: 'chat.completions',
      model: MODEL,
      input_tokens: 1000,
      output_tokens: 200,
      total_tokens: 1200,
      cached_tokens: 400,
      stream: false,
      request_id: result.x_groq.id,
    });
    expect(event!.event_id).toBe(result.id);
    expect(event!.cost_usd).toBeCloseTo(groqPrice(MODEL, { input_tokens: 1000, cache_read_tokens: 400, output_tokens: 200 }), 9);
    expect(event!.partial).toBeUndefined();
    expect(event!.error).toBeUndefined();
    expect(JSON.stringify(event)).not.toContain('prompt that must never');
  });

  it('withResponse and asResponse are metered once each', async () => {
    const [withEvent] = await metered(async () => {
      const { data, response } = await client.chat.completions.create({ model: MODEL, messages }).withResponse();
      expect(data.object).toBe('chat.completion');
      expect(response.status).toBe(200);
    });
    expect(withEvent).toMatchObject({ input_tokens: 120, output_tokens: 30 });
    clear();
    const [rawEvent] = await metered(async () => {
      const response = await client.chat.completions.create({ model: MODEL, messages, stream: true }).asResponse();
      expect(await response.text()).toContain('[DONE]');
    });
    // Read off the raw SSE body as the caller reads it: the final chunk's x_groq.usage.
    expect(rawEvent).toMatchObject({ stream: true, input_tokens: 120, output_tokens: 30, total_tokens: 150 });
  });

  it('stream read to the end: usage from the final chunk\'s x_groq, nothing added to the request, every chunk the caller\'s', async () => {
    // Billing: as for create; Groq reports the stream's usage on its final chunk, unasked.
    const usage = { prompt_tokens: 321, completion_tokens: 54, total_tokens: 375 };
    const chunks: any[] = [];
    const [event] = await metered(async () => {
      const stream = await meter.forTenant('t-stream', () => client.chat.completions.create({ model: MODEL, messages, stream: true }, usageHeader(usage)));
      for await (const chunk of stream) chunks.push(chunk);
    });
    expect(fake.requests[0]!.body).not.toHaveProperty('stream_options');
    expect(chunks).toHaveLength(5);
    expect(chunks.at(-1).x_groq.usage.total_tokens).toBe(375);
    expect(event).toMatchObject({ tenant_id: 't-stream', provider: 'groq', model: MODEL, stream: true, input_tokens: 321, output_tokens: 54, total_tokens: 375 });
    expect(event!.event_id).toBe(chunks[0].id);
    expect(event!.cost_usd).toBeCloseTo(groqPrice(MODEL, { input_tokens: 321, output_tokens: 54 }), 9);
    expect(event!.partial).toBeUndefined();
  });

  it('stream with the caller\'s stream_options.include_usage: the caller sees the usage chunk, usage counted once', async () => {
    const chunks: any[] = [];
    const [event] = await metered(async () => {
      const stream = await client.chat.completions.create({ model: MODEL, messages, stream: true, stream_options: { include_usage: true } } as never);
      for await (const chunk of stream as AsyncIterable<any>) chunks.push(chunk);
    });
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage: { total_tokens: 150 } });
    expect(event).toMatchObject({ stream: true, input_tokens: 120, output_tokens: 30, total_tokens: 150 });
    expect(event!.cost_usd).toBeCloseTo(groqPrice(MODEL, { input_tokens: 120, output_tokens: 30 }), 9);
  });

  it('early break: one partial event, the request aborted', async () => {
    const [event] = await metered(async () => {
      const stream = await client.chat.completions.create({ model: MODEL, messages, stream: true }, { headers: { 'x-fake-chunks': '50', 'x-fake-delay-ms': '5' } });
      for await (const _ of stream) break;
      await until(() => fake.requests[0]!.clientGone === true, 'the fake sees the connection closed');
    });
    expect(fake.requests[0]!.streamEnded).toBeUndefined();
    expect(event).toMatchObject({ provider: 'groq', stream: true, partial: true, input_tokens: 0 });
    expect(event!.error).toBeUndefined();
  });

  it('a break after the final usage chunk is not partial', async () => {
    const [event] = await metered(async () => {
      const stream = await client.chat.completions.create({ model: MODEL, messages, stream: true });
      for await (const chunk of stream) if (chunk.x_groq?.usage) break;
    });
    expect(event).toMatchObject({ stream: true, total_tokens: 150 });
    expect(event!.partial).toBeUndefined();
  });

  it('a stream without usage ends partial', async () => {
    const [event] = await metered(async () => {
      const stream = await client.chat.completions.create({ model: MODEL, messages, stream: true }, { headers: { 'x-fake-no-usage': '1' } });
      for await (const _ of stream);
    });
    expect(event).toMatchObject({ stream: true, partial: true });
  });

  it('an error inside the stream reaches the caller and yields one partial event with the error', async () => {
    let caught: unknown;
    const [event] = await metered(async () => {
      const stream = await client.chat.completions.create({ model: MODEL, messages, stream: true }, { headers: { 'x-fake-stream-error': '1' } });
      try {
        for await (const _ of stream);
      } catch (err) {
        caught = err;
      }
    });
    expect(caught).toBeInstanceOf(Groq.APIError);
    expect(event).toMatchObject({ provider: 'groq', stream: true, partial: true, error: expect.stringMatching(/Error/) });
  });

  it.each([400, 429, 500])('HTTP %i reaches the caller unchanged and yields one event with the error', async (status) => {
    let caught: any;
    const [event] = await metered(async () => {
      caught = await meter
        .forTenant('err', () => client.chat.completions.create({ model: MODEL, messages }, { headers: { 'x-fake-status': String(status) } }))
        .catch((e: unknown) => e);
    });
    expect(caught).toBeInstanceOf(Groq.APIError);
    expect(caught.status).toBe(status);
    expect(event).toMatchObject({ tenant_id: 'err', provider: 'groq', model: MODEL, error: expect.stringContaining(String(status)), input_tokens: 0 });
    expect(event!.error).not.toMatch(/fake status/);
  });
});

describe('groq-sdk audio', () => {
  it('transcriptions and translations, verbose_json: billed per second of audio (duration)', async () => {
    // Billing: whisper is priced per hour of input audio; the event carries the seconds verbose_json reports.
    const [transcription] = await metered(() =>
      meter.forTenant('audio', () =>
        client.audio.transcriptions.create({ model: 'whisper-large-v3', file: audioFile(), response_format: 'verbose_json' }, { headers: { 'x-fake-duration': '42.5' } }),
      ),
    );
    expect(fake.requests[0]!.body).toMatchObject({ model: 'whisper-large-v3', response_format: 'verbose_json' });
    expect(transcription).toMatchObject({ tenant_id: 'audio', provider: 'groq', endpoint: 'audio.transcriptions', model: 'whisper-large-v3', duration_seconds: 42.5 });
    expect(transcription!.cost_usd).toBeCloseTo(groqPrice('whisper-large-v3', { audio_seconds: 42.5 }), 9);
    clear();
    const [translation] = await metered(() =>
      client.audio.translations.create({ model: 'whisper-large-v3', file: audioFile(), response_format: 'verbose_json' }),
    );
    expect(translation).toMatchObject({ provider: 'groq', endpoint: 'audio.translations', duration_seconds: 30 });
    expect(translation!.cost_usd).toBeCloseTo(groqPrice('whisper-large-v3', { audio_seconds: 30 }), 9);
  });

  it('a transcription in json or text reports no duration: one event, without usage', async () => {
    for (const format of ['json', 'text'] as const) {
      const [event] = await metered(() => client.audio.transcriptions.create({ model: 'whisper-large-v3-turbo', file: audioFile(), response_format: format }));
      expect(event).toMatchObject({ provider: 'groq', endpoint: 'audio.transcriptions', model: 'whisper-large-v3-turbo' });
      // Nothing says how long the audio was: the event is partial, priced at the call's reservation.
      expect(event).toMatchObject({ partial: true });
      expect(event!.duration_seconds).toBeUndefined();
      clear();
    }
  });

  it('speech: billed per character of input', async () => {
    const [event] = await metered(async () => {
      const response = await client.audio.speech.create({ model: 'playai-tts', voice: 'Fritz-PlayAI', input: 'héllo wörld 👋', response_format: 'wav' });
      expect((await response.arrayBuffer()).byteLength).toBeGreaterThan(0);
    });
    expect(event).toMatchObject({ provider: 'groq', endpoint: 'audio.speech', character_count: 13 });
  });
});

describe('groq-sdk generic requests (client.post)', () => {
  it('client.post("/openai/v1/chat/completions") yields the same event as chat.completions.create', async () => {
    const body = { model: MODEL, messages };
    const recorded = await metered(async () => {
      await meter.forTenant('acme', () => client.post('/openai/v1/chat/completions', { body }));
      await meter.forTenant('acme', () => client.chat.completions.create(body));
    });
    const strip = ({ event_id, request_id, duration_ms, timestamp, ...rest }: UsageEvent) => rest;
    expect(strip(recorded[0]!)).toEqual(strip(recorded[1]!));
    expect(recorded[0]).toMatchObject({ provider: 'groq', endpoint: 'chat.completions', input_tokens: 120, cost_usd: expect.any(Number) });
    expect(recorded[0]!.cost_usd).toBeGreaterThan(0);
  });

  it('uploads and reads pass through with no event; a batch is billable at an unknown price', async () => {
    await meter.forTenant('acme', async () => {
      await client.post('/openai/v1/files', { body: { purpose: 'batch' } });
      await client.get('/openai/v1/models').catch(() => undefined);
    });
    expect(fake.count()).toBe(2);
    expect(events).toEqual([]);
    clear();
    const [batch] = await metered(() => meter.forTenant('acme', () => client.batches.create({ completion_window: '24h', endpoint: '/v1/chat/completions', input_file_id: 'file_1' })));
    expect(batch).toMatchObject({ provider: 'groq', tenant_id: 'acme', price_unknown: true });
  });
});

describe('groq-sdk spend limits', () => {
  it('input Groq adds itself (browser_search, compound systems) is unbounded when a reservation is sized', () => {
    const { groqPatch } = requireFromRepo('./dist/patches/groq.js');
    expect(groqPatch.classifyInput({ type: 'browser_search' })).toBe('unbounded');
    expect(groqPatch.classifyInput({ model: 'groq/compound-mini', messages })).toBe('unbounded');
    expect(groqPatch.classifyInput({ type: 'image_url', image_url: { url: 'data:' } })).toBe('image');
    expect(groqPatch.classifyInput({ model: MODEL, messages })).toBeUndefined();
  });

  it('a tenant over its limit is refused before any request: create, stream, and client.post', async () => {
    await meter.setLimit('broke', { limitUsd: 0.00001, frequency: 'per_day' });
    const refused = [
      () => client.chat.completions.create({ model: MODEL, messages, max_tokens: 1000 }),
      () => client.chat.completions.create({ model: MODEL, messages, max_tokens: 1000, stream: true }),
      () => client.post('/openai/v1/chat/completions', { body: { model: MODEL, messages, max_tokens: 1000 } }),
      () => client.chat.completions.create({ model: MODEL, messages, max_tokens: 1000 }).withResponse(),
    ];
    for (const call of refused) {
      const err = await meter.forTenant('broke', call).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(LimitExceededError);
      expect(err).toMatchObject({ tenantId: 'broke', frequency: 'per_day' });
    }
    expect(fake.count()).toBe(0);
    await until(() => events.length === refused.length, 'one refusal event per call');
    for (const event of events) expect(event).toMatchObject({ tenant_id: 'broke', provider: 'groq', error: 'LimitExceededError', cost_usd: 0 });
  });

  it('within its limit the call goes through, and its cost counts against the tenant', async () => {
    await meter.setLimit('funded', { limitUsd: 1, frequency: 'per_day' });
    const [event] = await metered(() => meter.forTenant('funded', () => client.chat.completions.create({ model: MODEL, messages, max_tokens: 100 })));
    const [window] = await meter.getUsage('funded');
    expect(window!.spentUsd).toBeCloseTo(event!.cost_usd!, 12);
  });
});

describe('groq-sdk loaded by an app under node --import ./register.mjs', () => {
  // An app of its own, outside the repo: llm-meter and groq-sdk installed in its node_modules (links to this repo's).
  const appDir = mkdtempSync(join(tmpdir(), 'llm-meter-groq-'));
  mkdirSync(join(appDir, 'node_modules'));
  symlinkSync(repoRoot, join(appDir, 'node_modules', 'llm-meter'));
  symlinkSync(join(repoRoot, 'node_modules', 'groq-sdk'), join(appDir, 'node_modules', 'groq-sdk'));
  const calls = `
const meter = new Meter({ onEvent: (e) => console.log('EVENT ' + JSON.stringify(e)) });
meter.patchAll();
const client = new Groq({ apiKey: 'gsk_test', maxRetries: 0, fetch: (url, init) => fetch(String(url).replace('${GROQ_ORIGIN}', process.env.FAKE_GROQ), init) });
const messages = [{ role: 'user', content: 'hi' }];
await meter.forTenant('app', async () => {
  await client.chat.completions.create({ model: '${MODEL}', messages });
  const stream = await client.chat.completions.create({ model: '${MODEL}', messages, stream: true });
  for await (const _ of stream);
});
await meter.shutdown();
console.log('BUILD ' + (Object.getPrototypeOf(client).constructor === GroqFromCjs ? 'cjs' : 'esm'));
console.log('DONE');
`;
  writeFileSync(
    join(appDir, 'app.mjs'),
    `import { createRequire } from 'node:module';
import { Meter } from 'llm-meter';
import Groq from 'groq-sdk';
const GroqFromCjs = createRequire(import.meta.url)('groq-sdk').Groq;
${calls}`,
  );
  writeFileSync(
    join(appDir, 'app.cjs'),
    `const { Meter } = require('llm-meter');
const Groq = require('groq-sdk');
const GroqFromCjs = Groq.Groq;
(async () => {${calls}})();
`,
  );

  it.each([
    ['app.mjs', 'esm'],
    ['app.cjs', 'cjs'],
  ])('%s (%s build): every call metered, stream included', async (app, build) => {
    const run = await runNode(['--import', join(repoRoot, 'register.mjs'), join(appDir, app)], { cwd: appDir, env: { FAKE_GROQ: fake.url } });
    expect(run.stderr).not.toMatch(/Error|warning/i);
    expect(run.stdout).toContain(`BUILD ${build}`);
    expect(run.stdout).toContain('DONE');
    expect(run.code).toBe(0);
    const printed = eventsPrinted(run.stdout);
    expect(printed.map((e) => [e.provider, e.tenant_id, e.stream, e.total_tokens, e.partial])).toEqual([
      ['groq', 'app', false, 150, undefined],
      ['groq', 'app', true, 150, undefined],
    ]);
    fake.reset();
  });
});
