import { Readable } from 'node:stream';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { AGENT_MODEL, EMBEDDING_TOKENS_PER_INPUT, startFakeMistral } from './fixtures/fake-mistral.mjs';
import { eventsPerRequest, eventsPrinted, LimitExceededError, patchingMeter, repoRoot, requireFrom, requireFromRepo, runNode, until } from './helpers.js';

const { calcPrice } = requireFromRepo('@pydantic/genai-prices') as typeof import('@pydantic/genai-prices');

const fake = await startFakeMistral();
afterAll(() => fake.close());

// One Meter for the file, patching before the SDK loads: @mistralai/mistralai is ESM only, and this require() of it
// (require(esm), Node 20.19+) goes through the agent's require hook.
const { meter, events } = patchingMeter();
const { Mistral } = requireFrom(repoRoot, '@mistralai/mistralai');
const client = new Mistral({ apiKey: 'k', serverURL: fake.url });

const { metered, clear } = eventsPerRequest(events, fake);
afterEach(clear);

const PROMPT = 'a prompt that must never leave the process';
const messages = [{ role: 'user', content: PROMPT }];
const steer = (headers: Record<string, string>) => ({ headers });

/** What Mistral charges for this usage, by the price library (its own calcPrice), at Mistral's prices. */
const price = (model: string, usage: { input_tokens: number; output_tokens: number; cache_read_tokens?: number }) =>
  calcPrice(usage, model, { providerId: 'mistral' })!.total_price;

describe('@mistralai/mistralai: chat', () => {
  it('chat.complete: one event with tokens, model, id, tenant and cost', async () => {
    let response: any;
    const [event] = await metered(async () => {
      response = await meter.forTenant('acme', () => client.chat.complete({ model: 'mistral-small-latest', messages }));
    });
    expect(response.choices[0].message.content).toBe('hi');
    expect(fake.requests[0].path).toBe('/v1/chat/completions');
    expect(event).toMatchObject({
      tenant_id: 'acme',
      provider: 'mistral',
      endpoint: 'chat.completions',
      model: 'mistral-small-latest',
      input_tokens: 12,
      output_tokens: 8,
      total_tokens: 20,
      stream: false,
    });
    expect(event.event_id).toBe(response.id);
    // Billing: prompt tokens at the input rate, completion tokens at the output rate.
    expect(event.cost_usd).toBeCloseTo(price('mistral-small-latest', { input_tokens: 12, output_tokens: 8 }), 12);
    expect(event.price_unknown).toBeUndefined();
    expect(event.partial).toBeUndefined();
    expect(event.error).toBeUndefined();
    expect(JSON.stringify(event)).not.toContain('never leave');
  });

  it('chat.complete: the model the response names; cached prompt tokens at the cache-read rate', async () => {
    const usage = { prompt_tokens: 2000, completion_tokens: 100, total_tokens: 2100, prompt_tokens_details: { cached_tokens: 1536 } };
    const [event] = await metered(() =>
      client.chat.complete({ model: 'mistral-large-latest', messages, promptCacheKey: 'session-1' }, steer({ 'x-fake-model': 'mistral-large-2512', 'x-fake-usage': JSON.stringify(usage) })),
    );
    expect(event).toMatchObject({ model: 'mistral-large-2512', input_tokens: 2000, cached_tokens: 1536, output_tokens: 100, total_tokens: 2100 });
    // Billing: cached prompt tokens are part of prompt_tokens and billed at the cache-read rate (10% of input).
    expect(event.cost_usd).toBeCloseTo(price('mistral-large-2512', { input_tokens: 2000, cache_read_tokens: 1536, output_tokens: 100 }), 12);
    expect(event.cost_usd).toBeLessThan(price('mistral-large-2512', { input_tokens: 2000, output_tokens: 100 }));
  });

  it('chat.parse (structured output) sends its own request: one event', async () => {
    const [event] = await metered(async () => {
      const response = await client.chat.parse({ model: 'mistral-small-latest', messages, responseFormat: requireFrom(repoRoot, 'zod/v4').object({}) });
      expect(response.usage.promptTokens).toBe(12);
    });
    expect(event).toMatchObject({ endpoint: 'chat.completions', model: 'mistral-small-latest', input_tokens: 12, output_tokens: 8, stream: false });
  });

  it('chat.stream: usage from the last chunk, the EventStream handed back as the SDK made it', async () => {
    const texts: string[] = [];
    let stream: any;
    const [event] = await metered(async () => {
      stream = await meter.forTenant('t-stream', () => client.chat.stream({ model: 'mistral-small-latest', messages }));
      for await (const item of stream) texts.push(item.data.choices[0].delta.content);
    });
    expect(stream).toBeInstanceOf(ReadableStream);
    expect(texts.join('')).toBe('Hello from the');
    expect(fake.requests[0].streamEnded).toBe(true);
    expect(event).toMatchObject({
      tenant_id: 't-stream',
      provider: 'mistral',
      endpoint: 'chat.completions',
      model: 'mistral-small-latest',
      stream: true,
      input_tokens: 12,
      output_tokens: 8,
      total_tokens: 20,
    });
    expect(event.event_id).toMatch(/^cmpl-/);
    // Billing: as for a complete, from the usage on the final chunk.
    expect(event.cost_usd).toBeCloseTo(price('mistral-small-latest', { input_tokens: 12, output_tokens: 8 }), 12);
    expect(event.partial).toBeUndefined();
    expect(event.error).toBeUndefined();
    expect(JSON.stringify(event)).not.toContain('never leave');
  });

  it('chat.stream read with getReader(): one complete event', async () => {
    const [event] = await metered(async () => {
      const stream = await client.chat.stream({ model: 'mistral-small-latest', messages });
      const reader = stream.getReader();
      let items = 0;
      for (let r = await reader.read(); r.done !== true; r = await reader.read()) items++;
      expect(items).toBe(4);
    });
    expect(event).toMatchObject({ stream: true, input_tokens: 12, output_tokens: 8 });
    expect(event.partial).toBeUndefined();
  });

  it('chat.stream through tee() and Readable.fromWeb(): one complete event each', async () => {
    const teed = await metered(async () => {
      const [a, b] = (await client.chat.stream({ model: 'mistral-small-latest', messages })).tee();
      const seen: unknown[][] = [[], []];
      await Promise.all([a, b].map(async (branch: any, i) => {
        for await (const item of branch) seen[i]!.push(item);
      }));
      expect(seen[0]).toHaveLength(4);
      expect(seen[1]).toHaveLength(4);
    });
    expect(teed[0]).toMatchObject({ stream: true, input_tokens: 12, output_tokens: 8 });
    expect(teed[0]!.partial).toBeUndefined();
    clear();
    const [piped] = await metered(async () => {
      const readable = Readable.fromWeb(await client.chat.stream({ model: 'mistral-small-latest', messages }), { objectMode: true });
      let items = 0;
      for await (const _ of readable) items++;
      expect(items).toBe(4);
    });
    expect(piped).toMatchObject({ stream: true, input_tokens: 12, output_tokens: 8 });
    expect(piped!.partial).toBeUndefined();
  });

  it('chat.stream early break before the usage: one partial event at the reservation, the request closed', async () => {
    await meter.setLimit('brk', { limitUsd: 1, frequency: 'per_day' });
    const [event] = await metered(async () => {
      const stream = await meter.forTenant('brk', () => client.chat.stream({ model: 'mistral-small-latest', messages, maxTokens: 100 }, steer({ 'x-fake-hold': '1' })));
      for await (const _ of stream) break;
    });
    expect(event).toMatchObject({ tenant_id: 'brk', stream: true, partial: true, endpoint: 'chat.completions', cost_estimated: true });
    expect(event.error).toBeUndefined();
    expect(event.cost_usd).toBeGreaterThan(0);
    const [day] = await meter.getUsage('brk');
    expect(day).toMatchObject({ spentUsd: event.cost_usd, reservedUsd: 0 });
    await until(() => fake.requests[0]!.clientGone === true, 'the connection closed by the break');
  });

  it('chat.stream break after the usage chunk: complete, not partial', async () => {
    const [event] = await metered(async () => {
      const stream = await client.chat.stream({ model: 'mistral-small-latest', messages });
      for await (const item of stream) if (item.data.usage !== undefined) break;
    });
    expect(event).toMatchObject({ stream: true, input_tokens: 12, output_tokens: 8 });
    expect(event.partial).toBeUndefined();
  });

  it('chat.stream without usage: one partial event', async () => {
    const [event] = await metered(async () => {
      for await (const _ of await client.chat.stream({ model: 'mistral-small-latest', messages }, steer({ 'x-fake-no-usage': '1' })));
    });
    expect(event).toMatchObject({ stream: true, partial: true, input_tokens: 0, output_tokens: 0 });
  });

  it('an error mid-stream reaches the caller and yields one event with the error', async () => {
    let caught: unknown;
    const [event] = await metered(async () => {
      const stream = await client.chat.stream({ model: 'mistral-small-latest', messages }, steer({ 'x-fake-stream-error': '1' }));
      try {
        for await (const _ of stream);
      } catch (err) {
        caught = err;
      }
    });
    expect(caught).toBeInstanceOf(Error);
    expect(event).toMatchObject({ stream: true, partial: true, error: expect.any(String) });
  });

  it.each([400, 401, 422, 429, 500])('HTTP %i reaches the caller unchanged and yields one event with the error', async (status) => {
    let caught: any;
    const [event] = await metered(async () => {
      caught = await client.chat.complete({ model: 'mistral-small-latest', messages }, steer({ 'x-fake-status': String(status) })).catch((e: unknown) => e);
    });
    expect(caught.statusCode).toBe(status);
    expect(event).toMatchObject({ provider: 'mistral', endpoint: 'chat.completions', stream: false, error: expect.stringContaining(String(status)), input_tokens: 0 });
    expect(event.error).not.toMatch(/Fake|prompt/);
  });

  it('an HTTP error on a streaming call: one event with the error', async () => {
    const [event] = await metered(async () => {
      await expect(client.chat.stream({ model: 'mistral-small-latest', messages }, steer({ 'x-fake-status': '429' }))).rejects.toMatchObject({ statusCode: 429 });
    });
    expect(event).toMatchObject({ stream: true, error: expect.stringContaining('429') });
  });
});

describe('@mistralai/mistralai: fim, agents, embeddings', () => {
  it('fim.complete and fim.stream', async () => {
    const [complete, streamed] = await metered(async () => {
      const response = await client.fim.complete({ model: 'codestral-2508', prompt: 'def add(a, b):', suffix: PROMPT });
      expect(response.choices[0].message.content).toBe('return a + b');
      for await (const _ of await client.fim.stream({ model: 'codestral-2508', prompt: 'def add(a, b):', suffix: 'x' }));
    });
    expect(fake.requests.map((r) => r.path)).toEqual(['/v1/fim/completions', '/v1/fim/completions']);
    for (const [event, stream] of [[complete, false], [streamed, true]] as const) {
      expect(event).toMatchObject({ provider: 'mistral', endpoint: 'fim.completions', model: 'codestral-2508', stream, input_tokens: 15, output_tokens: 6, total_tokens: 21 });
      // Billing: codestral's prompt and completion token rates.
      expect(event.cost_usd).toBeCloseTo(price('codestral-2508', { input_tokens: 15, output_tokens: 6 }), 12);
      expect(event.partial).toBeUndefined();
    }
    expect(JSON.stringify([complete, streamed])).not.toContain('never leave');
  });

  it('agents.complete and agents.stream: the model from the response', async () => {
    const [complete, streamed] = await metered(() =>
      meter.forTenant('agents', async () => {
        await client.agents.complete({ agentId: 'ag-123', messages });
        for await (const _ of await client.agents.stream({ agentId: 'ag-123', messages }));
      }),
    );
    for (const [event, stream] of [[complete, false], [streamed, true]] as const) {
      expect(event).toMatchObject({ tenant_id: 'agents', provider: 'mistral', endpoint: 'agents.completions', model: AGENT_MODEL, stream, input_tokens: 30, output_tokens: 10 });
      // Billing: the tokens at the prices of the model the agent ran on.
      expect(event.cost_usd).toBeCloseTo(price(AGENT_MODEL, { input_tokens: 30, output_tokens: 10 }), 12);
    }
  });

  it('embeddings.create', async () => {
    const [event] = await metered(async () => {
      const response = await client.embeddings.create({ model: 'mistral-embed', inputs: [PROMPT, 'b', 'c'] });
      expect(response.data).toHaveLength(3);
    });
    const tokens = 3 * EMBEDDING_TOKENS_PER_INPUT;
    expect(event).toMatchObject({ provider: 'mistral', endpoint: 'embeddings', model: 'mistral-embed', input_tokens: tokens, output_tokens: 0, total_tokens: tokens, stream: false });
    // Billing: input tokens only.
    expect(event.cost_usd).toBeCloseTo(price('mistral-embed', { input_tokens: tokens, output_tokens: 0 }), 12);
    expect(JSON.stringify(event)).not.toContain('never leave');
  });
});

describe('@mistralai/mistralai: spend limits', () => {
  it('a tenant over its limit is refused before any request, on every hooked method', async () => {
    await meter.setLimit('broke', { limitUsd: 0, frequency: 'per_day' });
    const calls = [
      () => client.chat.complete({ model: 'mistral-small-latest', messages }),
      () => client.chat.stream({ model: 'mistral-small-latest', messages }),
      () => client.fim.complete({ model: 'codestral-2508', prompt: 'x' }),
      () => client.fim.stream({ model: 'codestral-2508', prompt: 'x' }),
      () => client.agents.complete({ agentId: 'ag-1', messages }),
      () => client.embeddings.create({ model: 'mistral-embed', inputs: ['x'] }),
    ];
    for (const call of calls) {
      const err = await meter.forTenant('broke', call).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LimitExceededError);
      expect(err).toMatchObject({ tenantId: 'broke', frequency: 'per_day' });
    }
    await until(() => events.length === calls.length, 'one event per refused call');
    expect(fake.count()).toBe(0);
    expect(events.every((e) => e.tenant_id === 'broke' && e.error === 'LimitExceededError' && e.cost_usd === 0)).toBe(true);
  });

  it('an unawaited refused call does not crash the process', async () => {
    await meter.setLimit('broke-unawaited', { limitUsd: 0, frequency: 'per_day' });
    meter.forTenant('broke-unawaited', () => void client.chat.complete({ model: 'mistral-small-latest', messages }));
    meter.forTenant('broke-unawaited', () => void client.chat.stream({ model: 'mistral-small-latest', messages }));
    await until(() => events.length === 2, 'the two refusal events');
    expect(fake.count()).toBe(0);
  });

  it('a small limit admits cheap calls, then refuses once spent, with no request sent', async () => {
    const once = price('mistral-small-latest', { input_tokens: 12, output_tokens: 8 });
    await meter.setLimit('small', { limitUsd: 0.01, frequency: 'per_day' });
    await meter.forTenant('small', () => client.chat.complete({ model: 'mistral-small-latest', messages, maxTokens: 50 }));
    expect(fake.count()).toBe(1);
    await until(() => events.length === 1, 'the admitted call');
    expect(events[0]!.cost_usd).toBeCloseTo(once, 12);
    await meter.setLimit('small', { limitUsd: once, frequency: 'per_day' });
    await expect(meter.forTenant('small', () => client.chat.complete({ model: 'mistral-small-latest', messages, maxTokens: 50 }))).rejects.toBeInstanceOf(LimitExceededError);
    expect(fake.count()).toBe(1);
  });
});

describe('@mistralai/mistralai: apps under node --import ./register.mjs', () => {
  const APP = (load: string) => `
    ${load}
    const { Meter } = await import('llm-meter');
    const meter = new Meter({ onEvent: (e) => console.log('EVENT ' + JSON.stringify(e)) });
    meter.patchAll();
    const client = new Mistral({ apiKey: 'k', serverURL: process.env.FAKE_MISTRAL_URL });
    const messages = [{ role: 'user', content: 'secret prompt' }];
    await meter.forTenant('app', async () => {
      await client.chat.complete({ model: 'mistral-small-latest', messages });
      for await (const _ of await client.chat.stream({ model: 'mistral-small-latest', messages }));
      await client.fim.complete({ model: 'codestral-2508', prompt: 'x' });
      await client.embeddings.create({ model: 'mistral-embed', inputs: ['x'] });
    });
    await meter.shutdown();
    console.log('DONE');
  `;
  const ESM_IMPORT = `import { Mistral } from '@mistralai/mistralai';`;
  const CJS_REQUIRE = `const { Mistral } = require('@mistralai/mistralai');`;

  it.each([
    ['an ES module app importing the SDK', ['--input-type=module'], ESM_IMPORT],
    ['a CommonJS app requiring the SDK (require(esm))', ['--input-type=commonjs'], CJS_REQUIRE],
  ])('%s: one event per call', async (_name, inputType, load) => {
    const code = inputType[0] === '--input-type=commonjs' ? `(async () => {${APP(load)}})().catch((e) => { console.error(e); process.exit(1); });` : APP(load);
    // The SDK is some 1,200 ES modules: loading it (more so through Node 20's loader thread) takes seconds on a slow disk.
    const run = await runNode(['--import', './register.mjs', ...inputType, '--eval', code], { env: { FAKE_MISTRAL_URL: fake.url }, timeoutMs: 120_000 });
    expect(run.stdout).toContain('DONE');
    expect(run.code).toBe(0);
    // Node 20 calls require(esm) experimental; nothing else may be written.
    expect(run.stderr.replace(/^.*ExperimentalWarning.*\n(\(Use `node --trace-warnings.*\n)?/gm, '')).toBe('');
    const printed = eventsPrinted(run.stdout);
    expect(fake.count()).toBe(4);
    expect(printed.map((e) => [e.provider, e.endpoint, e.stream, e.model, e.input_tokens, e.output_tokens, e.tenant_id, e.partial])).toEqual([
      ['mistral', 'chat.completions', false, 'mistral-small-latest', 12, 8, 'app', undefined],
      ['mistral', 'chat.completions', true, 'mistral-small-latest', 12, 8, 'app', undefined],
      ['mistral', 'fim.completions', false, 'codestral-2508', 15, 6, 'app', undefined],
      ['mistral', 'embeddings', false, 'mistral-embed', 4, 0, 'app', undefined],
    ]);
    expect(run.stdout).not.toContain('secret prompt');
  }, 150_000);
});
