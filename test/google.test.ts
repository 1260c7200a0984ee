import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { eventsPerRequest, expectEventPerCall, patchingMeter, repoRoot, requireFrom, runNode, sdkRoot, tick, until } from './helpers.js';

/** @google/genai copies for the version matrix (the app roots of helpers.ts's OPENAI_VERSIONS, for genai). */
const GENAI_VERSIONS = {
  'genai 3': sdkRoot('genai-3'),
  'genai 2': repoRoot,
  'genai 1': join(repoRoot, 'test/sdk-versions/genai-1'),
} as const;

/** Every test runs against each SDK version in both of its backends. */
const MATRIX = Object.entries(GENAI_VERSIONS).flatMap(([label, appRoot]) =>
  (['gemini', 'vertex'] as const).map((mode) => ({ label: `${label} (${mode === 'gemini' ? 'Gemini API' : 'Vertex AI'})`, appRoot, mode })),
);

const fake = await startFakeProviders();
afterAll(() => fake.close());

const PROMPT = 'a prompt that must never leave the process';
const MODEL = 'gemini-2.5-flash';

/** Per-request headers for genai go in config.httpOptions.headers. */
const steer = (headers: Record<string, string>) => ({ httpOptions: { headers } });

// One Meter for the file: the first Meter to patch a class owns it (a second one never double counts).
const { meter, events } = patchingMeter();

/**
 * Vertex AI credentials that need no network: an API key beside project and location (genai 1.x rejects that pair, so
 * there a google-auth-library client that hands out a fixed bearer token, through the SDK's own `googleAuthOptions`).
 */
function vertexAuth(appRoot: string): Record<string, unknown> {
  if (appRoot !== GENAI_VERSIONS['genai 1']) return { apiKey: 'k' };
  return { googleAuthOptions: { authClient: { getRequestHeaders: async () => new Headers({ authorization: 'Bearer t' }) } } };
}

describe.each(MATRIX)('$label', ({ appRoot, mode }) => {
  const { GoogleGenAI, ApiError } = requireFrom(appRoot, '@google/genai');
  const ai =
    mode === 'vertex'
      ? new GoogleGenAI({ vertexai: true, project: 'p', location: 'us-central1', ...vertexAuth(appRoot), httpOptions: { baseUrl: fake.geminiBaseUrl } })
      : new GoogleGenAI({ apiKey: 'k', httpOptions: { baseUrl: fake.geminiBaseUrl } });

  const { metered, clear } = eventsPerRequest(events, fake);
  afterEach(clear);

  /** A CallableTool: the fake answers the first round with a functionCall to it, the second with text. */
  function lookupTool() {
    const callTool = vi.fn(async (calls: Array<{ name: string }>) =>
      calls.map((call) => ({ functionResponse: { name: call.name, response: { result: 'found it' } } })),
    );
    const tool = {
      tool: async () => ({ functionDeclarations: [{ name: 'lookup', description: 'Looks a thing up', parameters: { type: 'OBJECT', properties: {} } }] }),
      callTool,
    };
    return { tool, callTool };
  }

  it('the requests reach the backend under test', async () => {
    await ai.models.generateContent({ model: MODEL, contents: 'x' });
    expect(fake.requests[0].path).toMatch(mode === 'vertex' ? /^\/v1beta1\/projects\/p\/locations\/us-central1\/publishers\/google\/models\// : /^\/v1[a-z0-9]*\/models\//);
  });

  it('generateContent: tokens, thinking tokens, ids, model version, tenant', async () => {
    let response: any;
    const [event] = await metered(async () => {
      response = await meter.forTenant('acme', () =>
        ai.models.generateContent({ model: MODEL, contents: PROMPT, config: steer({ 'x-fake-thoughts': '4', 'x-fake-model': 'gemini-2.5-flash-002' }) }),
      );
    });
    expect(response.text).toBe('hi');
    expect(event).toMatchObject({
      tenant_id: 'acme',
      provider: 'google',
      endpoint: 'generateContent',
      model: 'gemini-2.5-flash-002',
      input_tokens: 8,
      output_tokens: 9, // candidates 5 + thoughts 4: thinking is billed as output
      reasoning_tokens: 4,
      total_tokens: 17,
      stream: false,
    });
    expect(event.event_id).toBe(response.responseId);
    expect(event.event_id).toMatch(/^resp-/);
    expect(event.partial).toBeUndefined();
    expect(event.error).toBeUndefined();
    expect(JSON.stringify(event)).not.toContain('prompt that must never');
  });

  it('generateContent: cached and tool-use prompt tokens', async () => {
    const usage = {
      promptTokenCount: 100,
      cachedContentTokenCount: 60,
      toolUsePromptTokenCount: 7,
      candidatesTokenCount: 20,
      thoughtsTokenCount: 5,
      totalTokenCount: 132,
    };
    const [event] = await metered(() =>
      ai.models.generateContent({ model: MODEL, contents: 'x', config: steer({ 'x-fake-usage': JSON.stringify(usage) }) }),
    );
    expect(event).toMatchObject({ input_tokens: 107, cached_tokens: 60, output_tokens: 25, reasoning_tokens: 5, total_tokens: 132 });
  });

  it('generateContent without thinking reports no reasoning_tokens', async () => {
    const [event] = await metered(() => ai.models.generateContent({ model: MODEL, contents: 'x' }));
    expect(event).toMatchObject({ input_tokens: 8, output_tokens: 5, total_tokens: 13 });
    expect(event).not.toHaveProperty('reasoning_tokens');
    expect(event).not.toHaveProperty('cached_tokens');
    expect(event.model).toBe(MODEL);
  });

  it('generateContentStream: usage from the last chunk', async () => {
    const texts: string[] = [];
    const [event] = await metered(async () => {
      const stream = await meter.forTenant('t-stream', () => ai.models.generateContentStream({ model: MODEL, contents: PROMPT }));
      for await (const chunk of stream) texts.push(chunk.text);
    });
    expect(texts).toEqual(['Hello', ' from', ' the']);
    expect(event).toMatchObject({
      tenant_id: 't-stream',
      provider: 'google',
      endpoint: 'streamGenerateContent',
      model: MODEL,
      stream: true,
      input_tokens: 8,
      output_tokens: 5,
      total_tokens: 13,
    });
    expect(event.event_id).toMatch(/^resp-/);
    expect(event.partial).toBeUndefined();
    expect(event.error).toBeUndefined();
  });

  it('generateContentStream: cumulative usage on every chunk, the event equals the last, never the sum', async () => {
    const seen: number[] = [];
    const [event] = await metered(async () => {
      const stream = await ai.models.generateContentStream({
        model: MODEL,
        contents: 'x',
        config: steer({ 'x-fake-usage-every-chunk': '1', 'x-fake-thoughts': '3', 'x-fake-chunks': '4' }),
      });
      for await (const chunk of stream) seen.push(chunk.usageMetadata.candidatesTokenCount);
    });
    expect(seen).toHaveLength(4);
    expect(seen.at(-1)).toBe(5);
    // Summing would give input 32, thoughts 12, and more output.
    expect(event).toMatchObject({ input_tokens: 8, output_tokens: 8, reasoning_tokens: 3, total_tokens: 16 });
  });

  it('generateContentStream without usage: one partial event', async () => {
    const [event] = await metered(async () => {
      const stream = await ai.models.generateContentStream({ model: MODEL, contents: 'x', config: steer({ 'x-fake-no-usage': '1' }) });
      for await (const _ of stream);
    });
    expect(event).toMatchObject({ stream: true, partial: true, input_tokens: 0, output_tokens: 0 });
    expect(event.error).toBeUndefined();
  });

  it('embedContent', async () => {
    if (mode === 'gemini') {
      const [event] = await metered(async () => {
        const response = await ai.models.embedContent({ model: 'text-embedding-004', contents: PROMPT });
        expect(response.embeddings[0].values).toHaveLength(8);
      });
      // The Gemini API reports no usage for embeddings.
      expect(event).toMatchObject({ provider: 'google', endpoint: 'embedContent', model: 'text-embedding-004', input_tokens: 0, output_tokens: 0, stream: false });
      expect(JSON.stringify(event)).not.toContain('prompt that must never');
      return;
    }
    // Vertex AI: :predict for text-embedding models (a token count per instance), :embedContent for Gemini ones.
    const [predicted] = await metered(async () => {
      const response = await ai.models.embedContent({ model: 'text-embedding-005', contents: ['a', 'b'] });
      expect(response.embeddings.map((e: any) => e.statistics.tokenCount)).toEqual([5, 5]);
    });
    expect(fake.requests[0].path).toMatch(/:predict$/);
    expect(predicted).toMatchObject({ endpoint: 'embedContent', model: 'text-embedding-005', input_tokens: 10, output_tokens: 0, total_tokens: 10 });
    expect(predicted.partial).toBeUndefined();
    clear();
    const [embedded] = await metered(() => ai.models.embedContent({ model: 'gemini-embedding-2', contents: 'x' }));
    expect(fake.requests[0].path).toMatch(/:embedContent$/);
    expect(embedded).toMatchObject({ endpoint: 'embedContent', model: 'gemini-embedding-2', input_tokens: 5, total_tokens: 5 });
    expect(embedded.partial).toBeUndefined();
  });

  it('chats: sendMessage and sendMessageStream, one event each, the tenant kept', async () => {
    const chatEvents = await metered(() =>
      meter.forTenant('chat', async () => {
        const chat = ai.chats.create({ model: MODEL });
        const reply = await chat.sendMessage({ message: PROMPT });
        expect(reply.text).toBe('hi');
        const stream = await chat.sendMessageStream({ message: 'and again', config: steer({ 'x-fake-thoughts': '2' }) });
        for await (const _ of stream);
        expect(chat.getHistory()[0].parts[0].text).toBe(PROMPT);
      }),
    );
    expect(chatEvents.map((e) => [e.endpoint, e.stream, e.tenant_id, e.total_tokens, e.output_tokens])).toEqual([
      ['generateContent', false, 'chat', 13, 5],
      ['streamGenerateContent', true, 'chat', 15, 7],
    ]);
    expect(JSON.stringify(chatEvents)).not.toContain('never leave');
  });

  it('automatic function calling with a CallableTool: one event per HTTP round', async () => {
    const { tool, callTool } = lookupTool();
    const rounds = await metered(async () => {
      const response = await meter.forTenant('afc', () => ai.models.generateContent({ model: MODEL, contents: PROMPT, config: { tools: [tool] } }));
      expect(response.text).toBe('hi');
    });
    expect(callTool).toHaveBeenCalledTimes(1);
    expect(fake.count()).toBe(2);
    expect(rounds.map((e) => [e.endpoint, e.stream, e.tenant_id, e.input_tokens, e.output_tokens])).toEqual([
      ['generateContent', false, 'afc', 8, 5],
      ['generateContent', false, 'afc', 8, 5],
    ]);
    expect(new Set(rounds.map((e) => e.event_id)).size).toBe(2);
  });

  it('automatic function calling, streamed: one event per HTTP round', async () => {
    const { tool, callTool } = lookupTool();
    const rounds = await metered(() =>
      meter.forTenant('afc', async () => {
        const stream = await ai.models.generateContentStream({ model: MODEL, contents: 'x', config: { tools: [tool] } });
        for await (const _ of stream);
      }),
    );
    expect(callTool).toHaveBeenCalledTimes(1);
    expect(rounds.map((e) => [e.endpoint, e.stream, e.tenant_id, e.total_tokens])).toEqual([
      ['streamGenerateContent', true, 'afc', 13],
      ['streamGenerateContent', true, 'afc', 13],
    ]);
  });

  it.each([400, 429, 500])('provider %i reaches the caller unchanged and yields one event with error', async (status) => {
    let caught: any;
    const [event] = await metered(async () => {
      try {
        await meter.forTenant('err', () => ai.models.generateContent({ model: MODEL, contents: 'x', config: steer({ 'x-fake-status': String(status) }) }));
      } catch (err) {
        caught = err;
      }
    });
    expect(caught).toBeInstanceOf(ApiError);
    expect(caught.status).toBe(status);
    expect(event).toMatchObject({
      tenant_id: 'err',
      provider: 'google',
      endpoint: 'generateContent',
      model: MODEL,
      error: expect.stringContaining(String(status)),
      input_tokens: 0,
      output_tokens: 0,
    });
    expect(event.error).not.toMatch(/Fake|RESOURCE_EXHAUSTED|prompt/i);
  });

  it('a provider error on a streaming call and on embedContent: one event each with error', async () => {
    let caught: any;
    const [streamEvent] = await metered(async () => {
      caught = await ai.models.generateContentStream({ model: MODEL, contents: 'x', config: steer({ 'x-fake-status': '429' }) }).catch((e: unknown) => e);
    });
    expect(caught).toBeInstanceOf(ApiError);
    expect(caught.status).toBe(429);
    expect(streamEvent).toMatchObject({ endpoint: 'streamGenerateContent', stream: true, error: expect.stringContaining('429') });
    clear();
    const [embedEvent] = await metered(async () => {
      caught = await ai.models.embedContent({ model: 'text-embedding-004', contents: 'x', config: steer({ 'x-fake-status': '400' }) }).catch((e: unknown) => e);
    });
    expect(caught).toBeInstanceOf(ApiError);
    expect(embedEvent).toMatchObject({ endpoint: 'embedContent', error: expect.stringContaining('400') });
  });

  it('a network error yields one event with error', async () => {
    const dead =
      mode === 'vertex'
        ? new GoogleGenAI({ vertexai: true, project: 'p', location: 'us-central1', ...vertexAuth(appRoot), httpOptions: { baseUrl: 'http://127.0.0.1:1' } })
        : new GoogleGenAI({ apiKey: 'k', httpOptions: { baseUrl: 'http://127.0.0.1:1' } });
    const caught = await dead.models.generateContent({ model: MODEL, contents: 'x' }).catch((e: unknown) => e);
    expect(caught).toBeInstanceOf(Error);
    await until(() => events.length === 1, 'the error event');
    await tick(10);
    expect(events).toHaveLength(1);
    expect(events[0].error).toBeTruthy();
  });

  it('an error inside the stream reaches the caller and yields one event with error', async () => {
    let caught: unknown;
    let chunks = 0;
    const [event] = await metered(async () => {
      const stream = await ai.models.generateContentStream({ model: MODEL, contents: 'x', config: steer({ 'x-fake-stream-error': '1' }) });
      try {
        for await (const _ of stream) chunks++;
      } catch (err) {
        caught = err;
      }
    });
    expect(chunks).toBe(1);
    expect(caught).toBeInstanceOf(Error);
    expect(event).toMatchObject({ stream: true, partial: true, input_tokens: 0, error: expect.any(String) });
  });

  it('early break before any usage: exactly one partial event, even after the response ends', async () => {
    const [event] = await metered(async () => {
      const stream = await ai.models.generateContentStream({ model: MODEL, contents: 'x', config: steer({ 'x-fake-chunks': '5', 'x-fake-delay-ms': '10' }) });
      for await (const _ of stream) break;
    });
    await tick(120); // the HTTP response is not aborted by the break: let it finish
    expect(events).toHaveLength(1);
    expect(event).toMatchObject({ stream: true, partial: true, input_tokens: 0, output_tokens: 0 });
    expect(event.error).toBeUndefined();
  });

  it('early break after cumulative usage arrived: one partial event with the usage seen so far', async () => {
    const [event] = await metered(async () => {
      const stream = await ai.models.generateContentStream({
        model: MODEL,
        contents: 'x',
        config: steer({ 'x-fake-chunks': '5', 'x-fake-delay-ms': '10', 'x-fake-usage-every-chunk': '1' }),
      });
      let n = 0;
      for await (const _ of stream) if (++n === 2) break;
    });
    await tick(100);
    expect(events).toHaveLength(1);
    // After 2 of 5 chunks: prompt counted in full, candidates round(5 * 2/5) = 2.
    expect(event).toMatchObject({ stream: true, input_tokens: 8, output_tokens: 2, total_tokens: 10 });
    // Cut short before the final usage: the counts are a floor, and the event says so.
    expect(event.partial).toBe(true);
  });

  it('config.abortSignal aborting a stream: one event', async () => {
    const controller = new AbortController();
    let caught: any;
    const [event] = await metered(async () => {
      const stream = await ai.models.generateContentStream({
        model: MODEL,
        contents: 'x',
        config: { abortSignal: controller.signal, ...steer({ 'x-fake-chunks': '50', 'x-fake-delay-ms': '5' }) },
      });
      let n = 0;
      try {
        for await (const _ of stream) if (++n === 2) controller.abort();
      } catch (err) {
        caught = err;
      }
    });
    expect(caught?.name).toBe('AbortError');
    expect(event).toMatchObject({ stream: true, partial: true, error: expect.stringContaining('AbortError') });
  });

  it('config.abortSignal aborting a pending generateContent: one event', async () => {
    const controller = new AbortController();
    const [event] = await metered(async () => {
      const pending = ai.models.generateContent({ model: MODEL, contents: 'x', config: { abortSignal: controller.signal, ...steer({ 'x-fake-hang': '1' }) } });
      await until(() => fake.count() === 1, 'the request to arrive');
      controller.abort();
      await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    });
    expect(event).toMatchObject({ stream: false, error: expect.stringContaining('AbortError'), input_tokens: 0 });
  });

  it('the tenant is captured at call start: a stream created in scope and read outside it', async () => {
    const stream = await meter.forTenant('a', () => ai.models.generateContentStream({ model: MODEL, contents: 'x' }));
    const chat = meter.forTenant('b', () => ai.chats.create({ model: MODEL }));
    const chatStream = await meter.forTenant('b', () => chat.sendMessageStream({ message: 'x' }));
    await meter.forTenant('other', async () => {
      for await (const _ of stream);
      for await (const _ of chatStream);
    });
    await until(() => events.length === 2, 'both events');
    expect(events.map((e) => e.tenant_id).sort()).toEqual(['a', 'b']);
  });

  it('the tenant is captured at call start: an automatic-function-calling stream read outside its scope', async () => {
    const { tool } = lookupTool();
    const stream = await meter.forTenant('a', () => ai.models.generateContentStream({ model: MODEL, contents: 'x', config: { tools: [tool] } }));
    for await (const _ of stream);
    await until(() => events.length === 2, 'both rounds');
    expect(events.map((e) => e.tenant_id)).toEqual(['a', 'a']);
  });

  it('no prompt text in any event', async () => {
    await metered(async () => {
      await ai.models.generateContent({ model: MODEL, contents: PROMPT, config: { systemInstruction: PROMPT } });
      const stream = await ai.models.generateContentStream({ model: MODEL, contents: [{ role: 'user', parts: [{ text: PROMPT }] }] });
      for await (const _ of stream);
      await ai.models.embedContent({ model: 'text-embedding-004', contents: PROMPT });
      await ai.models.generateContent({ model: MODEL, contents: PROMPT, config: steer({ 'x-fake-status': '400' }) }).catch(() => undefined);
    });
    expect(events).toHaveLength(4);
    expect(JSON.stringify(events)).not.toContain('never leave');
  });

  it('200 concurrent calls across 20 tenants, plain and streaming: each event carries its own tenant', async () => {
    const calls = Array.from({ length: 200 }, (_, i) => {
      const tenant = `tenant-${i % 20}`;
      const config = steer({ 'x-fake-usage': JSON.stringify({ promptTokenCount: i, totalTokenCount: i + 5 }) });
      return meter.forTenant(tenant, async () => {
        await tick(i % 5);
        if (i % 2 === 0) return { tenant, i, id: (await ai.models.generateContent({ model: MODEL, contents: 'x', config })).responseId };
        const stream = await ai.models.generateContentStream({ model: MODEL, contents: 'x', config });
        let id = '';
        for await (const chunk of stream) id = chunk.responseId;
        return { tenant, i, id };
      });
    });
    await expectEventPerCall(events, await Promise.all(calls), ({ i }) => ({ input_tokens: i, total_tokens: i + 5, stream: i % 2 === 1 }));
  });
});

describe('an unawaited call the agent refuses', () => {
  it('through genai public methods never crashes the process; an app error still surfaces as without the agent', async () => {
    const app = join(repoRoot, 'test/apps/unawaited-refusal.mjs');
    const refused = await runNode(['--import', join(repoRoot, 'register.mjs'), app], { env: { GEMINI_BASE_URL: fake.geminiBaseUrl } });
    expect(refused.stderr).toBe('');
    expect(refused.stdout.trim()).toBe('alive batches.create,embedContent,generateContent,generateContent,streamGenerateContent');
    expect(refused.code).toBe(0);
    const instrumented = await runNode([app, 'instrument'], { env: { GEMINI_BASE_URL: fake.geminiBaseUrl } });
    expect(instrumented.stderr).toBe('');
    expect(instrumented.stdout.trim()).toBe(refused.stdout.trim());
    const appError = await runNode(['--import', join(repoRoot, 'register.mjs'), app, 'app-error'], { env: { GEMINI_BASE_URL: fake.geminiBaseUrl } });
    expect(appError.code).not.toBe(0);
    expect(appError.stderr).toMatch(/400/);
  });
});
