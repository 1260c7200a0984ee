import { afterAll, describe, expect, it } from 'vitest';
import type { UsageEvent } from 'llm-meter';
import { startRecordingServer } from './fixtures/recording-server.mjs';
import { clearBeforeEach, patchingMeter, repoRoot, requireFrom, requireFromRepo, until } from './helpers.js';

const { calcPrice } = requireFromRepo('@pydantic/genai-prices') as typeof import('@pydantic/genai-prices');

/*
 * Anthropic's billing rules, which every expected figure below follows:
 * - `input_tokens` excludes both cache pools: the prompt is input + cache read + cache write.
 * - cache writes are billed at the 5-minute or the 1-hour write rate per `cache_creation`'s split; the default TTL is
 *   5 minutes.
 * - `output_tokens` includes thinking: `output_tokens_details.thinking_tokens` is a part of it, never billed twice.
 * - web searches are billed per request (`server_tool_use.web_search_requests`), on top of the tokens.
 * - a stream's `message_delta` usage is cumulative: its counts replace `message_start`'s.
 * - with context compaction, the top-level usage is the final iteration's only; each `usage.iterations` entry is billed.
 * total_tokens = input + cache read + cache write + output.
 * - `usage.service_tier` `standard` and `inference_geo` `global` or `not_available` (a model without the choice) are
 *   the standard price: no multiplier (price_tier absent).
 */
interface Counts {
  input_tokens: number;
  output_tokens: number;
  cached_tokens?: number;
  cache_creation_tokens?: number;
  cache_creation_5m_tokens?: number;
  cache_creation_1h_tokens?: number;
  reasoning_tokens?: number;
  web_search_requests?: number;
  total_tokens: number;
}

interface Case {
  file: string;
  model: string;
  /** Sent through `client.beta.messages` (context-management and compaction betas). */
  beta?: boolean;
  /** Which rule the figures show. */
  rule: string;
  /** The service tier and inference geo the recording's usage reports, as the event must carry them. */
  terms: { service_tier?: string; inference_geo?: string };
  expected: Counts;
}

const NO_CACHE = { cached_tokens: 0, cache_creation_tokens: 0, cache_creation_5m_tokens: 0, cache_creation_1h_tokens: 0 };

const CASES: Case[] = [
  {
    file: 'ant-vercel-text.json',
    model: 'claude-sonnet-4-5-20250929',
    rule: 'total = 12 input + 29 output',
    terms: { service_tier: 'standard', inference_geo: 'not_available' },
    expected: { input_tokens: 12, output_tokens: 29, ...NO_CACHE, total_tokens: 41 },
  },
  {
    file: 'ant-vercel-websearch.json',
    model: 'claude-sonnet-4-20250514',
    rule: 'two web searches billed per request besides 27,118 input tokens (search results are input)',
    terms: { service_tier: 'standard' },
    expected: { input_tokens: 27118, output_tokens: 600, ...NO_CACHE, web_search_requests: 2, total_tokens: 27718 },
  },
  {
    file: 'ant-vercel-thinking.json',
    model: 'claude-sonnet-4-5-20250929',
    beta: true,
    rule: 'no output_tokens_details: reasoning not reported; the thinking is inside the 33 output tokens',
    terms: { service_tier: 'standard', inference_geo: 'not_available' },
    expected: { input_tokens: 69, output_tokens: 33, ...NO_CACHE, total_tokens: 102 },
  },
  {
    file: 'ant-vercel-opus5-thinking.json',
    model: 'claude-opus-5',
    rule: '139 thinking tokens are a part of the 1,699 output tokens, billed once as output',
    terms: { service_tier: 'standard', inference_geo: 'global' },
    expected: { input_tokens: 51, output_tokens: 1699, ...NO_CACHE, reasoning_tokens: 139, total_tokens: 1750 },
  },
  {
    file: 'ant-1h-cache-write.json',
    model: 'claude-haiku-4-5-20251001',
    rule: 'all 2,177 cache writes at the 1-hour rate; input 10 excludes them',
    terms: { service_tier: 'standard' },
    expected: {
      input_tokens: 10,
      output_tokens: 285,
      cached_tokens: 0,
      cache_creation_tokens: 2177,
      cache_creation_5m_tokens: 0,
      cache_creation_1h_tokens: 2177,
      total_tokens: 10 + 2177 + 285,
    },
  },
  {
    file: 'ant-pyd-cache-read.json',
    model: 'claude-sonnet-4-5-20250929',
    rule: '1,111 cache reads at the read rate; input 3 excludes them',
    terms: { service_tier: 'standard', inference_geo: 'not_available' },
    expected: { input_tokens: 3, output_tokens: 406, ...NO_CACHE, cached_tokens: 1111, total_tokens: 3 + 1111 + 406 },
  },
  {
    file: 'ant-pyd-cache-read-write.json',
    model: 'claude-sonnet-4-5-20250929',
    rule: 'input 3 excludes both 1,111 cache reads and 418 five-minute cache writes',
    terms: { service_tier: 'standard', inference_geo: 'not_available' },
    expected: {
      input_tokens: 3,
      output_tokens: 33,
      cached_tokens: 1111,
      cache_creation_tokens: 418,
      cache_creation_5m_tokens: 418,
      cache_creation_1h_tokens: 0,
      total_tokens: 3 + 1111 + 418 + 33,
    },
  },
  {
    file: 'ant-pyd-sonnet5-cache.json',
    model: 'claude-sonnet-5',
    rule: 'input 16 excludes 13,637 reads and 7,049 five-minute writes; 33 thinking tokens inside the 344 output; 0 searches',
    terms: { service_tier: 'standard', inference_geo: 'global' },
    expected: {
      input_tokens: 16,
      output_tokens: 344,
      cached_tokens: 13637,
      cache_creation_tokens: 7049,
      cache_creation_5m_tokens: 7049,
      cache_creation_1h_tokens: 0,
      reasoning_tokens: 33,
      total_tokens: 16 + 13637 + 7049 + 344,
    },
  },
  {
    file: 'ant-pyd-websearch.json',
    model: 'claude-sonnet-4-20250514',
    rule: 'one web search billed per request',
    terms: { service_tier: 'standard' },
    expected: { input_tokens: 8984, output_tokens: 520, ...NO_CACHE, web_search_requests: 1, total_tokens: 9504 },
  },
  {
    file: 'ant-vercel-text-stream.sse',
    model: 'claude-sonnet-4-5-20250929',
    rule: 'message_delta output 30 replaces message_start provisional 1',
    terms: { service_tier: 'standard', inference_geo: 'not_available' },
    expected: { input_tokens: 12, output_tokens: 30, ...NO_CACHE, total_tokens: 42 },
  },
  {
    file: 'ant-vercel-websearch-stream.sse',
    model: 'claude-sonnet-4-20250514',
    rule: 'message_delta input 15,665 (search results included) replaces message_start 2,037; one search',
    terms: { service_tier: 'standard' },
    expected: { input_tokens: 15665, output_tokens: 795, ...NO_CACHE, web_search_requests: 1, total_tokens: 15665 + 795 },
  },
  {
    file: 'ant-vercel-cache-stream.sse',
    model: 'claude-sonnet-5',
    rule:
      'message_delta (cumulative over the code-execution loop) replaces every message_start count; it gives no 5m/1h ' +
      "split for its 3,337 writes, so message_start's split of 3,068 is stale and left out; no TTL was asked, so the " +
      'writes are billed at the default 5-minute rate',
    terms: { service_tier: 'standard', inference_geo: 'global' },
    expected: {
      input_tokens: 6,
      output_tokens: 198,
      cached_tokens: 6289,
      cache_creation_tokens: 3337,
      reasoning_tokens: 0,
      total_tokens: 6 + 6289 + 3337 + 198,
    },
  },
  {
    file: 'ant-vercel-thinking-stream.sse',
    model: 'claude-sonnet-4-5-20250929',
    beta: true,
    rule: 'thinking inside the 53 output tokens of the final message_delta',
    terms: { service_tier: 'standard', inference_geo: 'not_available' },
    expected: { input_tokens: 69, output_tokens: 53, ...NO_CACHE, total_tokens: 122 },
  },
  {
    file: 'ant-vercel-delta-input.sse',
    model: 'claude-opus-4-5-20251101',
    rule: 'message_delta input 61 replaces message_start 43 (cumulative, not added); no cache fields reported',
    terms: {},
    expected: { input_tokens: 61, output_tokens: 2, total_tokens: 63 },
  },
  {
    file: 'ant-pyd-thinking-stream.sse',
    model: 'claude-sonnet-4-20250514',
    rule: 'thinking inside the 282 output tokens of the final message_delta',
    terms: { service_tier: 'standard', inference_geo: 'not_available' },
    expected: { input_tokens: 43, output_tokens: 282, ...NO_CACHE, total_tokens: 325 },
  },
  {
    file: 'ant-pyd-websearch-stream.sse',
    model: 'claude-sonnet-4-20250514',
    rule: 'message_delta input 31,772 replaces message_start 2,050; two searches',
    terms: { service_tier: 'standard' },
    expected: { input_tokens: 31772, output_tokens: 644, ...NO_CACHE, web_search_requests: 2, total_tokens: 31772 + 644 },
  },
  {
    file: 'ant-pyd-compaction-cache-stream.sse',
    model: 'claude-sonnet-4-6',
    beta: true,
    rule:
      'compaction: the top level (181 in, 0 cache read, 8 out) is the final iteration only; both iterations are billed: ' +
      'input 100 + 181, cache read 55,096 + 0, output 83 + 8',
    terms: { service_tier: 'standard', inference_geo: 'global' },
    expected: {
      input_tokens: 100 + 181,
      output_tokens: 83 + 8,
      cached_tokens: 55096,
      cache_creation_tokens: 0,
      cache_creation_5m_tokens: 0,
      cache_creation_1h_tokens: 0,
      total_tokens: 281 + 55096 + 91,
    },
  },
];

/** The provider's charge for these counts, by the price library (whose input_tokens is the whole prompt). */
function libraryCost(model: string, c: Counts, timestamp: string): number {
  const cacheRead = c.cached_tokens ?? 0;
  const cacheWrite = c.cache_creation_tokens ?? 0;
  const price = calcPrice(
    {
      input_tokens: c.input_tokens + cacheRead + cacheWrite,
      output_tokens: c.output_tokens,
      cache_read_tokens: cacheRead,
      cache_write_tokens: cacheWrite,
      cache_write_1h_tokens: c.cache_creation_1h_tokens ?? 0,
      web_searches: c.web_search_requests ?? 0,
    },
    model,
    { providerId: 'anthropic', timestamp: new Date(timestamp) },
  );
  return price!.total_price;
}

const COUNT_FIELDS = [
  'input_tokens',
  'output_tokens',
  'cached_tokens',
  'cache_creation_tokens',
  'cache_creation_5m_tokens',
  'cache_creation_1h_tokens',
  'reasoning_tokens',
  'web_search_requests',
  'total_tokens',
] as const;

const server = await startRecordingServer();
afterAll(() => server.close());

const { events } = patchingMeter();
clearBeforeEach(events);

const sdk = requireFrom(repoRoot, '@anthropic-ai/sdk');
const Anthropic = sdk.Anthropic ?? sdk.default;
const client = new Anthropic({ apiKey: 'k', baseURL: server.url, maxRetries: 0 });

describe('recorded Anthropic responses', () => {
  it.each(CASES)('$file: $rule', async ({ file, model, beta, terms, expected }) => {
    server.serve(`anthropic/${file}`);
    const stream = file.endsWith('.sse');
    const messages = beta === true ? client.beta.messages : client.messages;
    const result = await messages.create({ model, max_tokens: 1024, messages: [{ role: 'user', content: 'hi' }], stream });
    if (stream) for await (const _event of result);
    await until(() => events.length === 1, 'one event');
    const event = events[0] as UsageEvent;

    expect(event).toMatchObject({ provider: 'anthropic', endpoint: beta === true ? 'beta.messages' : 'messages', model, stream });
    expect(Object.fromEntries(COUNT_FIELDS.map((f) => [f, event[f]]))).toEqual(expected);
    expect({ service_tier: event.service_tier, inference_geo: event.inference_geo, price_tier: event.price_tier }).toEqual(terms);
    expect(event.price_unknown).toBeUndefined();
    expect(event.price_inconsistent).toBeUndefined();
    // Event costs are whole nano-dollars.
    expect(Math.abs(event.cost_usd! - libraryCost(model, expected, event.timestamp))).toBeLessThanOrEqual(1e-9);
  });
});
