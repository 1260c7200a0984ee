import { join } from 'node:path';
import type { UsageEvent } from 'llm-meter';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeBedrock } from './fixtures/fake-bedrock.mjs';
import { COUNTS, startFakeCompatible } from './fixtures/fake-compatible.mjs';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { eventsPrinted, NODE_MATRIX, repoRoot, requireFromRepo, runNode, sdkRoot } from './helpers.js';

// The Vercel AI SDK 7 (LanguageModelV4, ESM only, Node >= 22) in a child app under `--import register.mjs`, once per
// Node: test/apps/ai-sdk-7.mjs runs every scenario in a tenant named after it, each request carrying `x-scenario`.

const { calcPrice } = requireFromRepo('@pydantic/genai-prices') as typeof import('@pydantic/genai-prices');
const AI_7 = sdkRoot('ai-7');
const NODES = NODE_MATRIX.filter((n) => Number(n.version.split('.')[0]) >= 22);

const fake = await startFakeProviders();
const compat = await startFakeCompatible();
const bedrock = await startFakeBedrock();
afterAll(async () => {
  await fake.close();
  await compat.close();
  await bedrock.close();
});

const CLAUDE_ON_BEDROCK = 'us.anthropic.claude-sonnet-4-20250514-v1:0';

/** What the price data charges `provider` for this usage (its input_tokens include the cache pools). */
function listPrice(provider: string, model: string, usage: Record<string, number>): number {
  const price = calcPrice(usage, model, { providerId: provider });
  if (price === null) throw new Error(`the price data has no ${provider} ${model}`);
  return price.total_price;
}

interface Run {
  code: number | null;
  stderr: string;
  stdout: string;
  events: UsageEvent[];
  results: Map<string, any>;
  /** Requests the fake OpenAI / Anthropic / Gemini server saw, per scenario. */
  requests: Map<string, { path: string; body: any }[]>;
  compatRequests: { host: string; path: string; body: any }[];
  bedrockPaths: string[];
  /** Requests the fake servers saw in all. */
  sent: number;
}

async function runApp(node: string): Promise<Run> {
  fake.reset();
  compat.requests.length = 0;
  bedrock.reset();
  // 100 new input tokens, 1000 read from the cache, 500 written to it.
  bedrock.steer({ usage: { inputTokens: 100, outputTokens: 20, cacheReadInputTokens: 1000, cacheWriteInputTokens: 500 } });
  const child = await runNode(['--import', join(repoRoot, 'register.mjs'), join(repoRoot, 'test/apps/ai-sdk-7.mjs')], {
    execPath: node,
    env: { AI_ROOT: AI_7, FAKE_URL: fake.url, COMPAT_URL: compat.url, BEDROCK_URL: bedrock.url },
    timeoutMs: 60_000,
  });
  const results = new Map<string, any>();
  for (const line of child.stdout.split('\n')) {
    if (!line.startsWith('RESULT ')) continue;
    const { scenario, ...result } = JSON.parse(line.slice('RESULT '.length));
    results.set(scenario, result);
  }
  const requests = new Map<string, { path: string; body: any }[]>();
  for (const r of fake.requests) {
    const scenario = String(r.headers['x-scenario']);
    requests.set(scenario, [...(requests.get(scenario) ?? []), { path: r.path, body: r.body }]);
  }
  return {
    ...child,
    events: eventsPrinted(child.stdout),
    results,
    requests,
    compatRequests: [...compat.requests],
    bedrockPaths: bedrock.requests.map((r) => r.path),
    sent: fake.requests.length + compat.requests.length + bedrock.requests.length,
  };
}

if (NODES.length === 0) it.skip('ai 7 needs Node 22 or 24, which this platform cannot fetch', () => {});

describe.each(NODES)('ai 7 on $name', ({ binary }) => {
  let run: Run;
  const fakeHost = new URL(fake.url).host;
  const eventsOf = (tenant: string): UsageEvent[] => run.events.filter((e) => e.tenant_id === tenant);
  const requestsOf = (scenario: string) => run.requests.get(scenario) ?? [];

  beforeAll(async () => {
    run = await runApp(binary());
  }, 120_000);

  it('the app ran every scenario; one event per request sent (plus one per refused call); no prompt text in any event', () => {
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('DONE');
    for (const [scenario, result] of run.results) expect(result.thrown, scenario).toBeUndefined();
    const refused = run.events.filter((e) => e.error === 'LimitExceededError').length;
    expect(refused).toBe(3);
    expect(run.events.length).toBe(run.sent + refused);
    expect(JSON.stringify(run.events)).not.toContain('SECRET-PROMPT-7');
  });

  it('generateText, OpenAI chat and Responses: exact tokens, provider, model, endpoint, host, request id, list price', () => {
    const [chat] = eventsOf('openai-chat');
    const [responses] = eventsOf('openai-responses');
    expect(eventsOf('openai-chat')).toHaveLength(1);
    expect(requestsOf('openai-chat').map((r) => r.path)).toEqual(['/v1/chat/completions']);
    expect(chat).toMatchObject({ provider: 'openai', model: 'gpt-4o', endpoint: 'chat', stream: false, input_tokens: 11, output_tokens: 7, total_tokens: 18, host: fakeHost });
    expect(chat!.request_id).toMatch(/^req_\d+$/);
    expect(chat!.partial).toBeUndefined();
    // OpenAI bills prompt_tokens (cached ones included, at the cached rate) and completion_tokens at the model's rates.
    expect(chat!.cost_usd).toBeCloseTo(listPrice('openai', 'gpt-4o', { input_tokens: 11, output_tokens: 7 }), 9);

    expect(eventsOf('openai-responses')).toHaveLength(1);
    expect(requestsOf('openai-responses').map((r) => r.path)).toEqual(['/v1/responses']);
    expect(responses).toMatchObject({ provider: 'openai', model: 'gpt-4o', endpoint: 'responses', stream: false, input_tokens: 13, output_tokens: 9, total_tokens: 22 });
    // The Responses API bills input_tokens and output_tokens alike.
    expect(responses!.cost_usd).toBeCloseTo(listPrice('openai', 'gpt-4o', { input_tokens: 13, output_tokens: 9 }), 9);
  });

  it('streamText read to the end: one complete event, the same usage as the response', () => {
    expect(run.results.get('stream-end')).toMatchObject({ text: 'Hello from the', errors: [] });
    expect(eventsOf('stream-end')).toEqual([
      expect.objectContaining({ provider: 'openai', model: 'gpt-4o', endpoint: 'chat', stream: true, input_tokens: 11, output_tokens: 7 }),
    ]);
    expect(eventsOf('stream-end')[0]!.partial).toBeUndefined();
    expect(eventsOf('stream-end')[0]!.cost_usd).toBeCloseTo(listPrice('openai', 'gpt-4o', { input_tokens: 11, output_tokens: 7 }), 9);
    expect(eventsOf('stream-responses-end')).toEqual([expect.objectContaining({ endpoint: 'responses', stream: true, input_tokens: 13, output_tokens: 9 })]);
    expect(eventsOf('stream-responses-end')[0]!.partial).toBeUndefined();
  });

  it('streamText aborted after its first text, before its usage: one partial event', () => {
    expect(run.results.get('stream-abort')).toEqual({ text: 'Hello', aborted: true });
    expect(requestsOf('stream-abort')).toHaveLength(1);
    expect(eventsOf('stream-abort')).toEqual([expect.objectContaining({ model: 'gpt-4o', stream: true, partial: true, input_tokens: 0, output_tokens: 0 })]);
  });

  it('streamText failing part-way: one partial event, whether the provider reports the error in the stream or the connection drops', () => {
    // OpenAI sends an error chunk and ends the stream: the provider ends it with a finish part that has no usage.
    expect(run.results.get('stream-error')).toMatchObject({ text: 'Hello', errors: ['AI_StreamProviderError'] });
    expect(requestsOf('stream-error')).toHaveLength(1);
    expect(eventsOf('stream-error')).toEqual([expect.objectContaining({ stream: true, partial: true, input_tokens: 0, output_tokens: 0 })]);
    // Anthropic sends an error event: the provider ends its stream with no finish part at all.
    expect(run.results.get('stream-error-anthropic')).toMatchObject({ text: 'Hello', errors: ['AI_StreamProviderError'] });
    expect(requestsOf('stream-error-anthropic')).toHaveLength(1);
    expect(eventsOf('stream-error-anthropic')).toEqual([expect.objectContaining({ provider: 'anthropic', stream: true, partial: true })]);
    // Gemini's connection drops: the model's stream fails, and so does streamText's.
    expect(run.results.get('stream-dropped')).toMatchObject({ text: 'Hello', threw: expect.stringMatching(/^AI_APICallError/) });
    expect(requestsOf('stream-dropped')).toHaveLength(1);
    expect(eventsOf('stream-dropped')).toEqual([expect.objectContaining({ provider: 'google', stream: true, partial: true })]);
    expect(eventsOf('stream-dropped')[0]!.error).toMatch(/APICallError/);
  });

  it('a multi-step tool call: one event per model call, each in the caller\'s tenant (generateText and streamText)', () => {
    expect(run.results.get('tool-steps')).toMatchObject({ steps: 2, text: 'Hello from the' });
    const sent = requestsOf('tool-steps');
    expect(sent).toHaveLength(2);
    expect(sent[1]!.body.messages.at(-1).role).toBe('tool');
    expect(eventsOf('tool-steps')).toEqual([
      expect.objectContaining({ endpoint: 'chat', stream: false, input_tokens: 11, output_tokens: 7 }),
      expect.objectContaining({ endpoint: 'chat', stream: false, input_tokens: 11, output_tokens: 7 }),
    ]);
    expect(run.results.get('tool-steps-stream')).toMatchObject({ steps: 2, errors: [] });
    expect(requestsOf('tool-steps-stream')).toHaveLength(2);
    expect(eventsOf('tool-steps-stream')).toEqual([
      expect.objectContaining({ provider: 'anthropic', endpoint: 'messages', stream: true, input_tokens: 21, output_tokens: 9 }),
      expect.objectContaining({ provider: 'anthropic', endpoint: 'messages', stream: true, input_tokens: 21, output_tokens: 9 }),
    ]);
  });

  it('generateObject: one event for its one request', () => {
    expect(run.results.get('generate-object')).toEqual({ object: {} });
    expect(requestsOf('generate-object').map((r) => r.body.response_format.type)).toEqual(['json_schema']);
    expect(eventsOf('generate-object')).toEqual([expect.objectContaining({ endpoint: 'chat', input_tokens: 11, output_tokens: 7 })]);
  });

  it('embed and embedMany: one event per request (embedMany sends its three values in one), at the embedding price', () => {
    expect(run.results.get('embed')).toEqual({ one: { tokens: 5 }, many: { tokens: 5 }, vectors: 3 });
    expect(requestsOf('embed').map((r) => r.path)).toEqual(['/v1/embeddings', '/v1/embeddings']);
    const events = eventsOf('embed');
    expect(events).toHaveLength(2);
    for (const event of events) {
      expect(event).toMatchObject({ provider: 'openai', model: 'text-embedding-3-small', endpoint: 'embeddings', stream: false, input_tokens: 5, output_tokens: 0 });
      // Embeddings bill input tokens only.
      expect(event.cost_usd).toBeCloseTo(listPrice('openai', 'text-embedding-3-small', { input_tokens: 5 }), 9);
    }
  });

  it('Anthropic: the cache pools counted once in the input, each at its own rate (generateText and streamText)', () => {
    expect(requestsOf('anthropic').map((r) => r.path)).toEqual(['/v1/messages', '/v1/messages']);
    const events = eventsOf('anthropic');
    expect(events.map((e) => e.stream)).toEqual([false, true]);
    // Anthropic's input_tokens (100) excludes cache reads (1000, billed at 0.1x the input rate) and 5-minute cache
    // writes (500, at 1.25x); the price data's input_tokens is the whole input, the pools inside it.
    const cost = listPrice('anthropic', 'claude-sonnet-4-5', { input_tokens: 1600, cache_read_tokens: 1000, cache_write_tokens: 500, output_tokens: 20 });
    for (const event of events) {
      expect(event).toMatchObject({ provider: 'anthropic', model: 'claude-sonnet-4-5', endpoint: 'messages', input_tokens: 1600, cached_tokens: 1000, cache_creation_tokens: 500, output_tokens: 20, total_tokens: 1620 });
      expect(event.cost_usd).toBeCloseTo(cost, 9);
    }
  });

  it('Google: thinking tokens counted as output (generateText), and a stream\'s final usage', () => {
    const [generated, streamed] = eventsOf('google');
    expect(eventsOf('google')).toHaveLength(2);
    expect(requestsOf('google').map((r) => r.path.split(':')[1])).toEqual(['generateContent', 'streamGenerateContent?alt=sse']);
    expect(generated).toMatchObject({ provider: 'google', model: 'gemini-2.5-flash', endpoint: 'generative-ai', stream: false, input_tokens: 8, output_tokens: 9, reasoning_tokens: 4 });
    // Gemini bills thoughtsTokenCount (4) as output, beside candidatesTokenCount (5).
    expect(generated!.cost_usd).toBeCloseTo(listPrice('google', 'gemini-2.5-flash', { input_tokens: 8, output_tokens: 9 }), 9);
    expect(streamed).toMatchObject({ stream: true, input_tokens: 8, output_tokens: 5 });
    expect(streamed!.partial).toBeUndefined();
  });

  it('openai-compatible at https://api.deepseek.com: provider deepseek, its cache hits at the cache-hit rate; a stream sent without a usage request is partial', () => {
    const { PROMPT_TOKENS, CACHED_TOKENS, COMPLETION_TOKENS } = COUNTS;
    expect(run.compatRequests.map((r) => [r.host, r.path, r.body.stream ?? false, r.body.stream_options?.include_usage ?? false])).toEqual([
      ['api.deepseek.com', '/chat/completions', false, false],
      ['api.deepseek.com', '/chat/completions', true, true],
      ['api.deepseek.com', '/chat/completions', true, false],
    ]);
    const [generated, streamed, noUsage] = eventsOf('deepseek');
    expect(eventsOf('deepseek')).toHaveLength(3);
    // DeepSeek's prompt_cache_hit_tokens are part of prompt_tokens, billed at the cache-hit rate; the rest at the miss rate.
    const cost = listPrice('deepseek', 'deepseek-chat', { input_tokens: PROMPT_TOKENS, cache_read_tokens: CACHED_TOKENS, output_tokens: COMPLETION_TOKENS });
    for (const event of [generated!, streamed!]) {
      expect(event).toMatchObject({ provider: 'deepseek', host: 'api.deepseek.com', model: 'deepseek-chat', endpoint: 'chat', input_tokens: PROMPT_TOKENS, cached_tokens: CACHED_TOKENS, output_tokens: COMPLETION_TOKENS });
      expect(event.partial).toBeUndefined();
      expect(event.cost_usd).toBeCloseTo(cost, 9);
    }
    expect(noUsage).toMatchObject({ provider: 'deepseek', stream: true, partial: true, input_tokens: 0, output_tokens: 0 });
  });

  it('Amazon Bedrock (Converse): provider aws, the cache pools counted once, each at its own rate', () => {
    expect(run.bedrockPaths).toEqual([`/model/${CLAUDE_ON_BEDROCK}/converse`, `/model/${CLAUDE_ON_BEDROCK}/converse-stream`]);
    const events = eventsOf('bedrock');
    expect(events.map((e) => e.stream)).toEqual([false, true]);
    // Bedrock's inputTokens (100) excludes cache reads (1000, at 0.1x the input rate) and writes (500, at 1.25x), as
    // Anthropic's do; the price data's input_tokens is the whole input.
    const cost = listPrice('aws', CLAUDE_ON_BEDROCK, { input_tokens: 1600, cache_read_tokens: 1000, cache_write_tokens: 500, output_tokens: 20 });
    for (const event of events) {
      expect(event).toMatchObject({ provider: 'aws', model: CLAUDE_ON_BEDROCK, input_tokens: 1600, cached_tokens: 1000, cache_creation_tokens: 500, output_tokens: 20, total_tokens: 1620 });
      expect(event.partial).toBeUndefined();
      expect(event.cost_usd).toBeCloseTo(cost, 9);
    }
  });

  it('a tenant over its limit is refused with LimitExceededError before any request: generateText, streamText, embed', () => {
    expect(run.results.get('limit-refused')).toEqual({
      generated: 'LimitExceededError',
      streamed: { text: '', errors: ['LimitExceededError'], onError: ['LimitExceededError'] },
      embedded: 'LimitExceededError',
    });
    expect(requestsOf('limit-refused')).toHaveLength(0);
    expect(eventsOf('limit-refused').map((e) => [e.endpoint, e.stream, e.error, e.cost_usd])).toEqual([
      ['chat', false, 'LimitExceededError', 0],
      ['chat', true, 'LimitExceededError', 0],
      ['embeddings', false, 'LimitExceededError', 0],
    ]);
  });

  it('a limited tenant under its limit: admitted with the output cap strict mode sends; a stream that failed before its usage is costed at its reservation', () => {
    expect(run.results.get('limit-admitted')).toMatchObject({ text: 'Hello from the', failed: { errors: ['AI_StreamProviderError'] } });
    // The requests set no maxOutputTokens: strict mode sent defaultMaxOutputTokens (4096), the cap the reservation assumed.
    expect(requestsOf('limit-admitted').map((r) => [r.body.stream ?? false, r.body.max_tokens])).toEqual([
      [false, 4096],
      [true, 4096],
    ]);
    const [generated, failed] = eventsOf('limit-admitted');
    expect(eventsOf('limit-admitted')).toHaveLength(2);
    expect(generated).toMatchObject({ input_tokens: 11, output_tokens: 7 });
    expect(generated!.cost_usd).toBeCloseTo(listPrice('openai', 'gpt-4o', { input_tokens: 11, output_tokens: 7 }), 9);
    expect(failed).toMatchObject({ stream: true, partial: true, cost_estimated: true });
    expect(failed!.cost_usd).toBeGreaterThanOrEqual(listPrice('openai', 'gpt-4o', { input_tokens: 0, output_tokens: 4096 }));
  });

  it('two tenants\' calls interleaved: each event in the tenant whose call it was', () => {
    expect(requestsOf('interleaved')).toHaveLength(4);
    const inputs = (tenant: string) => eventsOf(tenant).map((e) => [e.stream, e.input_tokens]).sort();
    expect(inputs('tenant-a')).toEqual([[false, 101], [true, 100]]);
    expect(inputs('tenant-b')).toEqual([[false, 201], [true, 200]]);
  });

  it('ai 7\'s own telemetry (a global integration, a tracing-channel subscriber) sees every call, and nothing is counted twice', () => {
    expect(run.results.get('telemetry')).toMatchObject({ modelCallEnds: 3, embedEnds: 1 });
    expect(run.results.get('telemetry').traced).toBeGreaterThan(0);
    expect(requestsOf('telemetry')).toHaveLength(4);
    expect(eventsOf('telemetry').map((e) => [e.endpoint, e.stream])).toEqual([
      ['chat', false],
      ['chat', true],
      ['chat', true],
      ['embeddings', false],
    ]);
  });
});
