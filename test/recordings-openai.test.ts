// Every OpenAI recording in fixtures/recordings, served to the real SDK with the agent loaded. Each expected count is
// derived from the provider's billing rule written beside the case (never from what the agent computes), and each cost
// is @pydantic/genai-prices' own calcPrice for that usage, in the library's terms (`input_tokens` is all input, and a
// pool such as `cache_read_tokens` or `input_audio_tokens` is a part of it).
import { afterAll, describe, expect, it } from 'vitest';
import { calcPrice, type Usage } from '@pydantic/genai-prices';
import type { UsageEvent } from 'llm-meter';
import { readRecording, startRecordingServer } from './fixtures/recording-server.mjs';
import { patchingMeter, repoRoot, requireFrom, until } from './helpers.js';

const server = await startRecordingServer();
afterAll(() => server.close());

const { meter, events } = patchingMeter();

const { OpenAI, AzureOpenAI } = requireFrom(repoRoot, 'openai');
const client = new OpenAI({ apiKey: 'k', baseURL: `${server.url}/v1`, maxRetries: 0 });
const messages = [{ role: 'user' as const, content: 'hi' }];
const audioFile = () => new File([new Uint8Array([1, 2, 3, 4])], 'a.mp3', { type: 'audio/mpeg' });

async function drain(stream: AsyncIterable<unknown>): Promise<number> {
  let items = 0;
  for await (const _ of stream) items++;
  return items;
}

/** The one event of a call served `file`. */
async function recorded(file: string, call: () => Promise<unknown>, edit?: (text: string) => string): Promise<UsageEvent> {
  events.length = 0;
  server.serve(file, edit);
  await call();
  await until(() => events.length > 0, `the event of ${file}`);
  expect(events).toHaveLength(1);
  return events[0]!;
}

/** Every count the event carries (so a count the agent adds or drops fails the comparison too). */
function counts(event: UsageEvent): Record<string, number> {
  return Object.fromEntries(Object.entries(event).filter(([key, value]) => typeof value === 'number' && key !== 'duration_ms' && key !== 'cost_usd'));
}

/** Costs are rounded to whole nano-dollars; `tierFactor` is the service tier's multiplier on the library's standard price. */
function expectCost(event: UsageEvent, model: string, usage: Usage, tierFactor = 1): void {
  const price = calcPrice(usage, model, { providerId: 'openai', timestamp: new Date(event.timestamp) });
  expect(price, `a library price for ${model}`).not.toBeNull();
  expect(event.price_unknown).toBeUndefined();
  expect(event.cost_estimated).toBeUndefined();
  expect(event.price_inconsistent).toBeUndefined();
  expect(Math.abs(event.cost_usd! - price!.total_price * tierFactor)).toBeLessThanOrEqual(1e-9);
}

/** A cost priced (wholly or partly) from llm-meter's own table, src/pricing/supplementary.ts; `usd` worked out by hand. */
function expectTableCost(event: UsageEvent, usd: number, source: RegExp): void {
  expect(event.price_unknown).toBeUndefined();
  expect(event.price_inconsistent).toBeUndefined();
  expect(event.price_source).toMatch(source);
  expect(Math.abs(event.cost_usd! - usd)).toBeLessThanOrEqual(1e-9);
}

function expectComplete(event: UsageEvent): void {
  expect(event.partial).toBeUndefined();
  expect(event.usage_invalid).toBeUndefined();
  expect(event.error).toBeUndefined();
}

// Chat completions: `cached_tokens` is a subset of `prompt_tokens` (billed at the cache-read rate), `reasoning_tokens` a
// subset of `completion_tokens` (billed as output), `prompt_tokens_details.audio_tokens` a subset of `prompt_tokens`
// (billed at the model's audio-input rate, where it has one).
describe('chat.completions', () => {
  it('oai-chat-vercel-text.json: gpt-4.1-nano, 16 in, 363 out', async () => {
    const event = await recorded('openai/oai-chat-vercel-text.json', () => client.chat.completions.create({ model: 'gpt-4.1-nano', messages }));
    expectComplete(event);
    expect(event).toMatchObject({ model: 'gpt-4.1-nano-2025-04-14', event_id: 'chatcmpl-D8Z5f52zQqikDBEKQMQoYcWMcWPeU', stream: false });
    expect(counts(event)).toEqual({ input_tokens: 16, output_tokens: 363, total_tokens: 379, cached_tokens: 0, reasoning_tokens: 0 });
    expectCost(event, 'gpt-4.1-nano', { input_tokens: 16, output_tokens: 363 });
  });

  it('oai-chat-vercel-text-stream.sse: the caller did not ask for usage; the agent reads the chunk it asked for', async () => {
    let usageSeen = false;
    const event = await recorded('openai/oai-chat-vercel-text-stream.sse', async () => {
      const stream = await client.chat.completions.create({ model: 'gpt-4.1-nano', messages, stream: true });
      for await (const chunk of stream) if (chunk.usage) usageSeen = true;
    });
    expect(usageSeen).toBe(false);
    expectComplete(event);
    expect(event).toMatchObject({ model: 'gpt-4.1-nano-2025-04-14', event_id: 'chatcmpl-D8Z5oo6uDh67AD85p73ksdT1KxhE0', stream: true });
    expect(counts(event)).toEqual({ input_tokens: 16, output_tokens: 300, total_tokens: 316, cached_tokens: 0, reasoning_tokens: 0 });
    expectCost(event, 'gpt-4.1-nano', { input_tokens: 16, output_tokens: 300 });
    // Every chunk says `service_tier: "default"`: the standard price, no tier multiplier.
    expect(event.service_tier).toBe('default');
    expect(event.price_tier).toBeUndefined();
  });

  it('oai-chat-azure-router-stream.sse: identity from the first non-empty id and model, not the content-filter chunk', async () => {
    const azure = new AzureOpenAI({ apiKey: 'k', endpoint: server.url, apiVersion: '2025-04-01-preview', deployment: 'model-router', maxRetries: 0 });
    const event = await recorded('openai/oai-chat-azure-router-stream.sse', async () => {
      await drain(await azure.chat.completions.create({ model: 'model-router', messages, stream: true }));
    });
    expectComplete(event);
    // The router answered with gpt-5-nano: that model's price, not the deployment's name.
    expect(event).toMatchObject({ model: 'gpt-5-nano-2025-08-07', event_id: 'chatcmpl-CYPS1lijGoK8gd9lYzY3r9Sx50nbt', stream: true });
    expect(counts(event)).toEqual({ input_tokens: 15, output_tokens: 78, total_tokens: 93, cached_tokens: 0, reasoning_tokens: 64 });
    expectCost(event, 'gpt-5-nano', { input_tokens: 15, output_tokens: 78 });
  });

  it.each([
    ['oai-chat-otel-plain.json', 'chatcmpl-Bs24CNH3ITxv65qJpGjVXijYv6qX2', 22, 3],
    ['oai-chat-otel-tools-1.json', 'chatcmpl-BuC0QNgPhzfHw7tSwGnvSOIL636JK', 57, 46],
    ['oai-chat-otel-tools-2.json', 'chatcmpl-BuC0RWtqOwuGmjmhnEbVkzMHfn3yD', 125, 26],
    // n: 2 — usage covers both choices: completion_tokens is the sum over them.
    ['oai-chat-otel-multi-choice.json', 'chatcmpl-BuBWCXM60KsHvr7qJbN0qJTHUTm98', 22, 6],
  ])('%s: gpt-4o-mini', async (file, id, input, output) => {
    const event = await recorded(`openai/${file}`, () => client.chat.completions.create({ model: 'gpt-4o-mini', messages }));
    expectComplete(event);
    expect(event).toMatchObject({ model: 'gpt-4o-mini-2024-07-18', event_id: id, stream: false });
    expect(counts(event)).toEqual({ input_tokens: input, output_tokens: output, total_tokens: input + output, cached_tokens: 0, reasoning_tokens: 0 });
    expectCost(event, 'gpt-4o-mini', { input_tokens: input, output_tokens: output });
  });

  it('oai-chat-otel-stream-usage.sse: the caller asked for usage and sees it', async () => {
    let usageSeen = false;
    const event = await recorded('openai/oai-chat-otel-stream-usage.sse', async () => {
      const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages, stream: true, stream_options: { include_usage: true } });
      for await (const chunk of stream) if (chunk.usage) usageSeen = true;
    });
    expect(usageSeen).toBe(true);
    expectComplete(event);
    expect(event).toMatchObject({ model: 'gpt-4o-mini-2024-07-18', event_id: 'chatcmpl-BuDrRRWybY6JHzabaUyR2OtaEGp79', stream: true });
    expect(counts(event)).toEqual({ input_tokens: 22, output_tokens: 4, total_tokens: 26, cached_tokens: 0, reasoning_tokens: 0 });
    expectCost(event, 'gpt-4o-mini', { input_tokens: 22, output_tokens: 4 });
  });

  it.each([
    ['oai-chat-pyd-audio-in.json', 'chatcmpl-BExZy74Y67dd65ec2z4iuzM0Exnks', 64, 44, 9],
    ['oai-chat-pyd-audio-url.json', 'chatcmpl-BQFlHSj56WMjKA8bTAEuRxfL5V9zm', 81, 69, 72],
  ])('%s: gpt-4o-audio-preview, audio input a part of prompt_tokens', async (file, id, input, audio, output) => {
    const event = await recorded(`openai/${file}`, () => client.chat.completions.create({ model: 'gpt-4o-audio-preview', messages }));
    expectComplete(event);
    expect(event).toMatchObject({ model: 'gpt-4o-audio-preview-2024-12-17', event_id: id });
    expect(counts(event)).toEqual({ input_tokens: input, output_tokens: output, total_tokens: input + output, cached_tokens: 0, reasoning_tokens: 0, audio_input_tokens: audio });
    // The bundled data has only the text rates ($2.50 in, $10 out per 1M); the audio tokens are billed at $40 per 1M
    // (OpenAI's rate for the 2024-12-17 snapshot), from llm-meter's table.
    expect(calcPrice({}, 'gpt-4o-audio-preview', { providerId: 'openai' })!.model_price.input_audio_mtok).toBeUndefined();
    expectTableCost(event, ((input - audio) * 2.5 + audio * 40 + output * 10) / 1e6, /^@pydantic\/genai-prices@[\d.]+ \+ llm-meter table 2026-11$/);
  });

  it('oai-chat-pyd-o3mini-reasoning.json: 64 reasoning tokens inside the 87 completion tokens, billed once as output', async () => {
    const event = await recorded('openai/oai-chat-pyd-o3mini-reasoning.json', () => client.chat.completions.create({ model: 'o3-mini', messages }));
    expectComplete(event);
    expect(event).toMatchObject({ model: 'o3-mini-2025-01-31', event_id: 'chatcmpl-Dr3KNfXKBS1oDOrhqYDuLYdjX9PM4' });
    expect(counts(event)).toEqual({ input_tokens: 7, output_tokens: 87, total_tokens: 94, cached_tokens: 0, reasoning_tokens: 64 });
    expectCost(event, 'o3-mini', { input_tokens: 7, output_tokens: 87 });
  });

  // gpt-5.6-sol bills cache writes (`cache_write_tokens`, like `cached_tokens` a part of `prompt_tokens`) at 1.25x input.
  it.each([
    ['oai-chat-pyd-cache-write.json', 'chatcmpl-E1mBLGr3Ql1FsH8cdc76XdGw3PleH', 0, 4012],
    ['oai-chat-pyd-cache-read.json', 'chatcmpl-E1mBQt42vYTsKNd5wnyJlT0db7v9S', 4012, 0],
  ])('%s: cache pools are parts of prompt_tokens', async (file, id, read, write) => {
    const event = await recorded(`openai/${file}`, () => client.chat.completions.create({ model: 'gpt-5.6-sol', messages }));
    expectComplete(event);
    expect(event).toMatchObject({ model: 'gpt-5.6-sol', event_id: id });
    expect(counts(event)).toEqual({ input_tokens: 4020, output_tokens: 4, total_tokens: 4024, reasoning_tokens: 0, cached_tokens: read, cache_creation_tokens: write });
    expectCost(event, 'gpt-5.6-sol', { input_tokens: 4020, cache_read_tokens: read, cache_write_tokens: write, output_tokens: 4 });
  });
});

// Legacy completions report only prompt and completion tokens.
describe('completions', () => {
  it('oai-legacy-vercel.json', async () => {
    const event = await recorded('openai/oai-legacy-vercel.json', () => client.completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: 'hi' }));
    expectComplete(event);
    expect(event).toMatchObject({ model: 'gpt-3.5-turbo-instruct:20230824-v2', event_id: 'cmpl-D8ZFHlGItjM5Nghki1LmZIRscBz2P', endpoint: 'completions' });
    expect(counts(event)).toEqual({ input_tokens: 14, output_tokens: 16, total_tokens: 30 });
    expectCost(event, 'gpt-3.5-turbo-instruct', { input_tokens: 14, output_tokens: 16 });
  });

  it('oai-legacy-vercel-stream.sse', async () => {
    const event = await recorded('openai/oai-legacy-vercel-stream.sse', async () => {
      await drain(await client.completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: 'hi', stream: true }));
    });
    expectComplete(event);
    expect(event).toMatchObject({ model: 'gpt-3.5-turbo-instruct:20230824-v2', event_id: 'cmpl-D8ZFN477TMm6AoQohx2jSTOJMh60M', stream: true });
    expect(counts(event)).toEqual({ input_tokens: 14, output_tokens: 16, total_tokens: 30 });
    expectCost(event, 'gpt-3.5-turbo-instruct', { input_tokens: 14, output_tokens: 16 });
  });
});

// Responses API: `input_tokens_details.cached_tokens` is a subset of `input_tokens`, `reasoning_tokens` a subset of
// `output_tokens`. Hosted tools are billed per call on top of tokens: web search $10 per 1,000 `search` actions (opening
// a page or finding within it is not a billable search; the response's `tool_usage.web_search.num_requests`, where
// present, is that count), file search $2.50 per 1,000 calls.
describe('responses', () => {
  it.each([
    ['oai-resp-otel-plain.json', 'gpt-4o-mini-2024-07-18', 'gpt-4o-mini', 22, 0, 3, 0],
    ['oai-resp-pyd-image-input.json', 'gpt-4o-2024-08-06', 'gpt-4o', 1349, 1024, 10, 0],
    ['oai-resp-pyd-o3mini.json', 'o3-mini-2025-01-31', 'o3-mini', 13, 0, 1915, 1600],
    ['oai-resp-vercel-phase.json', 'gpt-5.3-codex', 'gpt-5.3-codex', 7243, 3072, 423, 58],
    // Shell calls run in the caller's environment: no hosted-tool charge.
    ['oai-resp-vercel-shell-skills.json', 'gpt-5.2-2025-12-11', 'gpt-5.2', 1499, 1024, 331, 100],
    ['oai-resp-vercel-reasoning.json', 'gpt-5-mini-2025-08-07', 'gpt-5-mini', 865, 0, 163, 128],
  ])('%s: tokens only', async (file, model, priceId, input, cached, output, reasoning) => {
    const body = JSON.parse(readRecording(`openai/${file}`)) as { id: string };
    const event = await recorded(`openai/${file}`, () => client.responses.create({ model: priceId, input: 'hi' }));
    expectComplete(event);
    expect(event).toMatchObject({ model, event_id: body.id, endpoint: 'responses', stream: false });
    expect(counts(event)).toEqual({ input_tokens: input, output_tokens: output, total_tokens: input + output, cached_tokens: cached, reasoning_tokens: reasoning });
    expectCost(event, priceId, { input_tokens: input, cache_read_tokens: cached, output_tokens: output });
  });

  it('oai-resp-pyd-cache-read.json: tool_usage counting zero web searches adds none', async () => {
    const event = await recorded('openai/oai-resp-pyd-cache-read.json', () => client.responses.create({ model: 'gpt-5.6-sol', input: 'hi' }));
    expectComplete(event);
    expect(event).toMatchObject({ model: 'gpt-5.6-sol', event_id: 'resp_0dec647b9ff1df8d006a5716666d8c8199aaf0491f9a22e34d' });
    expect(counts(event)).toEqual({ input_tokens: 4020, output_tokens: 5, total_tokens: 4025, cached_tokens: 4012, cache_creation_tokens: 0, reasoning_tokens: 0 });
    expectCost(event, 'gpt-5.6-sol', { input_tokens: 4020, cache_read_tokens: 4012, output_tokens: 5 });
  });

  it('oai-resp-vercel-websearch.json: one search action (open_page and find_in_page are free)', async () => {
    const event = await recorded('openai/oai-resp-vercel-websearch.json', () =>
      client.responses.create({ model: 'gpt-5-mini', input: 'hi', tools: [{ type: 'web_search' }] }),
    );
    expectComplete(event);
    expect(event).toMatchObject({ model: 'gpt-5-mini-2025-08-07', event_id: 'resp_0953eda47ee17412006933306199c88195b44f9cf2986e1d5b' });
    expect(counts(event)).toEqual({ input_tokens: 19681, output_tokens: 3773, total_tokens: 23454, cached_tokens: 3712, reasoning_tokens: 3136, web_search_requests: 1 });
    expectCost(event, 'gpt-5-mini', { input_tokens: 19681, cache_read_tokens: 3712, output_tokens: 3773, web_searches: 1 });
  });

  it('oai-resp-vercel-websearch-stream.sse: two search actions among six web_search_call items', async () => {
    const event = await recorded('openai/oai-resp-vercel-websearch-stream.sse', async () => {
      await drain(await client.responses.create({ model: 'gpt-5-mini', input: 'hi', tools: [{ type: 'web_search' }], stream: true }));
    });
    expectComplete(event);
    expect(event).toMatchObject({ model: 'gpt-5-mini-2025-08-07', event_id: 'resp_0cc96ac817fdc57e00693337060a408198b92bf1f99cf1b8ec', stream: true });
    expect(counts(event)).toEqual({ input_tokens: 31073, output_tokens: 4416, total_tokens: 35489, cached_tokens: 3712, reasoning_tokens: 3712, web_search_requests: 2 });
    expectCost(event, 'gpt-5-mini', { input_tokens: 31073, cache_read_tokens: 3712, output_tokens: 4416, web_searches: 2 });
  });

  it('oai-resp-pyd-websearch.json: gpt-5, one search', async () => {
    const event = await recorded('openai/oai-resp-pyd-websearch.json', () => client.responses.create({ model: 'gpt-5', input: 'hi', tools: [{ type: 'web_search' }] }));
    expectComplete(event);
    expect(event).toMatchObject({ model: 'gpt-5-2025-08-07', event_id: 'resp_028829e50fbcad090068c9c82e1e0081958ddc581008b39428' });
    expect(counts(event)).toEqual({ input_tokens: 9299, output_tokens: 577, total_tokens: 9876, cached_tokens: 8448, reasoning_tokens: 512, web_search_requests: 1 });
    expectCost(event, 'gpt-5', { input_tokens: 9299, cache_read_tokens: 8448, output_tokens: 577, web_searches: 1 });
  });

  it('oai-resp-pyd-websearch-stream.sse: gpt-5, one search', async () => {
    const event = await recorded('openai/oai-resp-pyd-websearch-stream.sse', async () => {
      await drain(await client.responses.create({ model: 'gpt-5', input: 'hi', tools: [{ type: 'web_search' }], stream: true }));
    });
    expectComplete(event);
    expect(event).toMatchObject({ model: 'gpt-5-2025-08-07', event_id: 'resp_00a60507bf41223d0068c9d2fbf93481a0ba2a7796ae2cab4c', stream: true });
    expect(counts(event)).toEqual({ input_tokens: 9463, output_tokens: 582, total_tokens: 10045, cached_tokens: 8320, reasoning_tokens: 512, web_search_requests: 1 });
    expectCost(event, 'gpt-5', { input_tokens: 9463, cache_read_tokens: 8320, output_tokens: 582, web_searches: 1 });
    // response.created says the requested `auto`; response.completed the tier that served it, `default`.
    expect(event.service_tier).toBe('default');
    expect(event.price_tier).toBeUndefined();
  });

  it('oai-resp-vercel-file-search.json: one file_search_call', async () => {
    const event = await recorded('openai/oai-resp-vercel-file-search.json', () =>
      client.responses.create({ model: 'gpt-5-mini', input: 'hi', tools: [{ type: 'file_search', vector_store_ids: ['vs_1'] }] }),
    );
    expectComplete(event);
    expect(event).toMatchObject({ model: 'gpt-5-mini-2025-08-07', event_id: 'resp_0a098396a8feca410068caae39e7648196b346e99fa8ec494c' });
    expect(counts(event)).toEqual({ input_tokens: 3700, output_tokens: 741, total_tokens: 4441, cached_tokens: 2560, reasoning_tokens: 640, file_search_calls: 1 });
    expectCost(event, 'gpt-5-mini', { input_tokens: 3700, cache_read_tokens: 2560, output_tokens: 741, storage_searches: 1 });
  });

  it('oai-resp-vercel-compaction-stream.sse: 49,792 of 51,097 input tokens cached', async () => {
    const event = await recorded('openai/oai-resp-vercel-compaction-stream.sse', async () => {
      await drain(await client.responses.create({ model: 'gpt-5.2', input: 'hi', stream: true }));
    });
    expectComplete(event);
    expect(event).toMatchObject({ model: 'gpt-5.2-2025-12-11', event_id: 'resp_0e2ed64344ac7f31016994b30480ac819785e6e4cd43a28c52', stream: true });
    expect(counts(event)).toEqual({ input_tokens: 51097, output_tokens: 2505, total_tokens: 53602, cached_tokens: 49792, reasoning_tokens: 0 });
    expectCost(event, 'gpt-5.2', { input_tokens: 51097, cache_read_tokens: 49792, output_tokens: 2505 });
  });

  // service_tier "flex": "Tokens are priced at Batch API rates" (OpenAI's flex processing guide), 50% of the standard
  // price (OpenAI's Batch API FAQ); the pinned price data has standard rates only: half the library's price.
  it('oai-resp-pyd-flex-stream.sse: flex, at half the standard price', async () => {
    const event = await recorded('openai/oai-resp-pyd-flex-stream.sse', async () => {
      await drain(await client.responses.create({ model: 'gpt-5', input: 'hi', service_tier: 'flex', stream: true }));
    });
    expectComplete(event);
    expect(event).toMatchObject({ model: 'gpt-5-2025-08-07', event_id: 'resp_0050471a34b36ae60068c97b94a480819587a9d70cf2979b33', stream: true });
    expect(counts(event)).toEqual({ input_tokens: 53, output_tokens: 469, total_tokens: 522, cached_tokens: 0, reasoning_tokens: 448 });
    expect(event).toMatchObject({ service_tier: 'flex', price_tier: 'service_tier=flex x0.5' });
    expectCost(event, 'gpt-5', { input_tokens: 53, output_tokens: 469 }, 0.5);
  });

  // Derived from the flex recording, the only change being the tier the stream reports: `priority` ("Fast mode" since
  // 2026-07-30) has its own rates per model (openai.com/api-priority-processing), gpt-5 $2.50 in / $20 out per million.
  it('oai-resp-pyd-flex-stream.sse served as priority: gpt-5 priority rates', async () => {
    const event = await recorded(
      'openai/oai-resp-pyd-flex-stream.sse',
      async () => drain(await client.responses.create({ model: 'gpt-5', input: 'hi', service_tier: 'priority', stream: true })),
      (text) => text.replaceAll('"service_tier":"flex"', '"service_tier":"priority"'),
    );
    expectComplete(event);
    expect(event).toMatchObject({ service_tier: 'priority', price_tier: 'service_tier=priority (gpt-5 priority rates)' });
    expectTableCost(event, (53 * 2.5 + 469 * 20) / 1e6, /^@pydantic\/genai-prices@/);
  });
});

// Embeddings bill input tokens only.
describe('embeddings', () => {
  it.each([
    ['oai-emb-vercel.json', 12],
    ['oai-emb-otel.json', 8],
  ])('%s', async (file, input) => {
    const event = await recorded(`openai/${file}`, () => client.embeddings.create({ model: 'text-embedding-3-small', input: ['a', 'b'] }));
    expectComplete(event);
    expect(event).toMatchObject({ model: 'text-embedding-3-small', endpoint: 'embeddings' });
    expect(counts(event)).toEqual({ input_tokens: input, output_tokens: 0, total_tokens: input });
    expectCost(event, 'text-embedding-3-small', { input_tokens: input });
  });
});

// gpt-4o-transcribe bills tokens: audio input at the audio rate (`audio_tokens` a part of `input_tokens`), the text
// output at the output rate. whisper-1 bills the audio's duration, which `usage.seconds` reports (rounded up).
describe('audio.transcriptions', () => {
  it('oai-stt-4o-transcribe-doc.json', async () => {
    const event = await recorded('openai/oai-stt-4o-transcribe-doc.json', () => client.audio.transcriptions.create({ model: 'gpt-4o-transcribe', file: audioFile() }));
    expectComplete(event);
    expect(event).toMatchObject({ model: 'gpt-4o-transcribe', endpoint: 'audio.transcriptions' });
    expect(counts(event)).toEqual({ input_tokens: 14, output_tokens: 45, total_tokens: 59, audio_input_tokens: 14 });
    expectCost(event, 'gpt-4o-transcribe', { input_tokens: 14, input_audio_tokens: 14, output_tokens: 45 });
  });

  it('oai-stt-4o-transcribe-doc-stream.sse: transcript.text.done usage without a `type` is still token usage', async () => {
    const event = await recorded('openai/oai-stt-4o-transcribe-doc-stream.sse', async () => {
      await drain(await client.audio.transcriptions.create({ model: 'gpt-4o-transcribe', file: audioFile(), stream: true }));
    });
    expectComplete(event);
    expect(event).toMatchObject({ model: 'gpt-4o-transcribe', stream: true });
    expect(counts(event)).toEqual({ input_tokens: 14, output_tokens: 45, total_tokens: 59, audio_input_tokens: 14 });
    expectCost(event, 'gpt-4o-transcribe', { input_tokens: 14, input_audio_tokens: 14, output_tokens: 45 });
  });

  it('oai-stt-whisper-verbose.json: 37 billed seconds, not the 36.71 s duration', async () => {
    const event = await recorded('openai/oai-stt-whisper-verbose.json', () =>
      client.audio.transcriptions.create({ model: 'whisper-1', file: audioFile(), response_format: 'verbose_json' }),
    );
    expectComplete(event);
    expect(event).toMatchObject({ model: 'whisper-1' });
    expect(counts(event)).toEqual({ input_tokens: 0, output_tokens: 0, total_tokens: 0, duration_seconds: 37 });
    expectCost(event, 'whisper-1', { audio_seconds: 37 });
  });
});

// gpt-image bills text input, image input (at the image-input rate; `image_tokens` a part of `input_tokens`) and the
// output image tokens at the output rate.
describe('images', () => {
  const usage = { input_tokens: 50, input_image_tokens: 40, output_tokens: 50 };
  const expected = { input_tokens: 50, output_tokens: 50, total_tokens: 100, input_text_tokens: 10, input_image_tokens: 40, output_image_tokens: 50, image_count: 1 };

  it('oai-img-gptimage-doc.json', async () => {
    const event = await recorded('openai/oai-img-gptimage-doc.json', () => client.images.generate({ model: 'gpt-image-1', prompt: 'x' }));
    expectComplete(event);
    expect(event).toMatchObject({ model: 'gpt-image-1', endpoint: 'images.generate' });
    expect(counts(event)).toEqual(expected);
    expectCost(event, 'gpt-image-1', usage);
  });

  it('oai-img-gptimage-doc-stream.sse', async () => {
    const event = await recorded('openai/oai-img-gptimage-doc-stream.sse', async () => {
      await drain(await client.images.generate({ model: 'gpt-image-1', prompt: 'x', stream: true }));
    });
    expectComplete(event);
    expect(event).toMatchObject({ model: 'gpt-image-1', stream: true });
    expect(counts(event)).toEqual(expected);
    expectCost(event, 'gpt-image-1', usage);
  });

  // Cached input is billed apart from fresh input: cached text at the cache-read rate, cached image input at the
  // cached-image rate; each is a part of its modality's input (and of `input_tokens`). No recording has cached gpt-image
  // input, so these counts are reported as the app would for one.
  it('cached gpt-image input: text and image each at their cache-read rate', () => {
    const event = meter.trackManually({
      provider: 'openai',
      model: 'gpt-image-1',
      input_tokens: 50,
      output_tokens: 50,
      input_text_tokens: 10,
      cached_input_text_tokens: 4,
      input_image_tokens: 40,
      cached_input_image_tokens: 30,
    });
    expectCost(event, 'gpt-image-1', { input_tokens: 50, input_image_tokens: 40, cache_read_tokens: 34, cache_image_read_tokens: 30, output_tokens: 50 });
  });

  // DALL-E 3 bills per image by the requested size and quality (the response says neither); the pinned price data has
  // no DALL-E prices, so they come from llm-meter's table: standard $0.04 (1024x1024) / $0.08 (1024x1792, 1792x1024),
  // hd $0.08 / $0.12. A request without size or quality is 1024x1024 standard, the API's defaults.
  it('oai-img-dalle3.json: two images, no usage, default size and quality: 2 x $0.04', async () => {
    expect(calcPrice({}, 'dall-e-3', { providerId: 'openai' })).toBeNull();
    const event = await recorded('openai/oai-img-dalle3.json', () => client.images.generate({ model: 'dall-e-3', prompt: 'x', n: 2 }));
    expectComplete(event);
    expect(event).toMatchObject({ model: 'dall-e-3' });
    expect(counts(event)).toEqual({ input_tokens: 0, output_tokens: 0, total_tokens: 0, image_count: 2 });
    expectTableCost(event, 2 * 0.04, /^llm-meter table 2026-11$/);
  });

  it('oai-img-dalle3.json asked for at 1792x1024, hd: 2 x $0.12', async () => {
    const event = await recorded('openai/oai-img-dalle3.json', () => client.images.generate({ model: 'dall-e-3', prompt: 'x', n: 2, size: '1792x1024', quality: 'hd' }));
    expect(counts(event)).toEqual({ input_tokens: 0, output_tokens: 0, total_tokens: 0, image_count: 2, image_width: 1792, image_height: 1024, hd_image_count: 2 });
    expectTableCost(event, 2 * 0.12, /^llm-meter table 2026-11$/);
  });

  it('oai-img-dalle3.json asked for at 1024x1792, standard: 2 x $0.08', async () => {
    const event = await recorded('openai/oai-img-dalle3.json', () => client.images.generate({ model: 'dall-e-3', prompt: 'x', n: 2, size: '1024x1792', quality: 'standard' }));
    expect(counts(event)).toEqual({ input_tokens: 0, output_tokens: 0, total_tokens: 0, image_count: 2, image_width: 1024, image_height: 1792 });
    expectTableCost(event, 2 * 0.08, /^llm-meter table 2026-11$/);
  });

  it('oai-img-dalle3.json asked for at a size DALL-E 3 has no price for: price unknown', async () => {
    const event = await recorded('openai/oai-img-dalle3.json', () => client.images.generate({ model: 'dall-e-3', prompt: 'x', n: 2, size: '512x512' }));
    expect(event).toMatchObject({ image_count: 2, image_width: 512, image_height: 512, cost_usd: 0, price_unknown: true });
  });
});
