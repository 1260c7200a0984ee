import { calcPrice } from '@pydantic/genai-prices';
import { afterAll, describe, expect, it } from 'vitest';
import { readRecording, startRecordingServer } from './fixtures/recording-server.mjs';
import { clearBeforeEach, patchingMeter, repoRoot, requireFrom, until } from './helpers.js';

// Real Gemini API and Vertex AI bodies (test/fixtures/recordings/README.md), served to the real @google/genai SDK. Every
// expected figure is worked out here from Google's billing rules, written beside each case:
//  - promptTokenCount is all prompt input, the cached tokens (cachedContentTokenCount) included;
//  - toolUsePromptTokenCount (e.g. Google Search results) is billed as input and is NOT in promptTokenCount;
//  - thoughtsTokenCount is billed as output and is NOT in candidatesTokenCount;
//  - promptTokensDetails / candidatesTokensDetails / cacheTokensDetails split those counts by modality: audio input,
//    cached audio and image output have their own rates (a part of the count, never an addition);
//  - in a stream every chunk's usageMetadata is the running total: the last one is the call's usage;
//  - Vertex reports the traffic type the call was billed as (usageMetadata.trafficType): ON_DEMAND is the standard
//    rate, ON_DEMAND_FLEX (Flex PayGo) half of it ("a 50% discount compared to Standard PayGo", Vertex's Flex PayGo page).
// Costs are the pinned price library's calcPrice on that usage, in its terms (input_tokens = all input, each
// modality/cache key a part of it).

const server = await startRecordingServer();
afterAll(() => server.close());

const { events } = patchingMeter();
clearBeforeEach(events);

const { GoogleGenAI } = requireFrom(repoRoot, '@google/genai');
const gemini = new GoogleGenAI({ apiKey: 'k', httpOptions: { baseUrl: server.url } });
const vertex = new GoogleGenAI({ vertexai: true, project: 'p', location: 'us-central1', apiKey: 'k', httpOptions: { baseUrl: server.url } });

type Usage = Record<string, number>;

interface Case {
  file: string;
  backend: 'gemini' | 'vertex';
  /** The model the caller asks for; the event's model is the response's modelVersion. */
  model: string;
  /** The event's counts; a field absent here must be absent from the event. */
  counts: Usage;
  /** The billing rule these figures follow. */
  rule: string;
  /** The usage the provider bills, in the price library's terms. */
  billed: Usage;
  /** Vertex's trafficType, the event's service_tier; absent from the Gemini API's responses. */
  trafficType?: string;
  /** A tier priced off the standard rate: its multiplier and the event's price_tier. */
  tier?: { factor: number; label: string };
}

const COUNT_FIELDS = [
  'input_tokens',
  'output_tokens',
  'total_tokens',
  'cached_tokens',
  'reasoning_tokens',
  'audio_input_tokens',
  'cached_input_audio_tokens',
  'input_image_tokens',
  'input_video_tokens',
  'audio_output_tokens',
  'output_image_tokens',
] as const;

const CASES: Case[] = [
  {
    file: 'gem-pyd-cached.json',
    backend: 'gemini',
    model: 'gemini-2.5-flash',
    rule: 'cached tokens are a part of the prompt, billed at the cache-read rate; thoughts are billed as output (2 + 42)',
    counts: { input_tokens: 3520, output_tokens: 44, total_tokens: 3564, cached_tokens: 3512, reasoning_tokens: 42 },
    billed: { input_tokens: 3520, cache_read_tokens: 3512, output_tokens: 44 },
  },
  {
    file: 'gem-pyd-image-out.json',
    backend: 'gemini',
    model: 'gemini-2.5-flash-image',
    rule: 'image output tokens (1290 of the 1336 candidates tokens) are billed at the image output rate, the other 46 as text',
    counts: { input_tokens: 17, output_tokens: 1336, total_tokens: 1353, output_image_tokens: 1290 },
    billed: { input_tokens: 17, output_tokens: 1336, output_image_tokens: 1290 },
  },
  {
    file: 'gem-pyd-video-audio.json',
    backend: 'gemini',
    model: 'gemini-2.0-flash',
    rule: 'video input is billed at the text input rate (gemini-2.0-flash); the AUDIO entry carries no tokenCount: 0 audio tokens (10 + 258 = 268)',
    counts: { input_tokens: 268, output_tokens: 162, total_tokens: 430, audio_input_tokens: 0, input_video_tokens: 258 },
    billed: { input_tokens: 268, input_video_tokens: 258, output_tokens: 162 },
  },
  {
    file: 'gem-pyd-youtube-audio-cached.json',
    backend: 'gemini',
    model: 'gemini-2.5-flash',
    rule:
      'audio input is billed at the audio rate, cached audio at the cached-audio rate: 1881 of the 1917 audio tokens and 17379 of the 17713 prompt tokens come from the cache; thoughts are output (68 + 821)',
    counts: {
      input_tokens: 17713,
      output_tokens: 889,
      total_tokens: 18602,
      cached_tokens: 17379,
      reasoning_tokens: 821,
      audio_input_tokens: 1917,
      cached_input_audio_tokens: 1881,
      input_video_tokens: 15780,
    },
    billed: {
      input_tokens: 17713,
      cache_read_tokens: 17379,
      input_audio_tokens: 1917,
      cache_audio_read_tokens: 1881,
      input_video_tokens: 15780,
      output_tokens: 889,
    },
  },
  {
    file: 'gem-pyd-websearch.json',
    backend: 'gemini',
    model: 'gemini-2.5-pro',
    rule: 'tool-use prompt tokens (search results) are billed as input on top of the prompt (17 + 119); thoughts are output (201 + 213)',
    counts: { input_tokens: 136, output_tokens: 414, total_tokens: 550, reasoning_tokens: 213 },
    billed: { input_tokens: 136, output_tokens: 414 },
  },
  {
    file: 'gem-pyd-websearch-stream.sse',
    backend: 'gemini',
    model: 'gemini-2.5-pro',
    rule: 'the last chunk is the usage; tool-use prompt tokens are input (17 + 102); thoughts are output (241 + 412)',
    counts: { input_tokens: 119, output_tokens: 653, total_tokens: 772, reasoning_tokens: 412 },
    billed: { input_tokens: 119, output_tokens: 653 },
  },
  {
    file: 'gem-pyd-stream-live-usage.sse',
    backend: 'gemini',
    model: 'gemini-2.5-flash',
    rule: 'usage is on every chunk and grows: the last one (80 candidates) is the usage, never a sum; thoughts are output (80 + 35)',
    counts: { input_tokens: 18, output_tokens: 115, total_tokens: 133, reasoning_tokens: 35 },
    billed: { input_tokens: 18, output_tokens: 115 },
  },
  {
    file: 'gem-pyd-thinking-stream.sse',
    backend: 'gemini',
    model: 'gemini-2.5-pro',
    rule: 'the last chunk is the usage; thoughts are output (469 + 787), the first chunks have thoughts and no candidates count',
    counts: { input_tokens: 34, output_tokens: 1256, total_tokens: 1290, reasoning_tokens: 787 },
    billed: { input_tokens: 34, output_tokens: 1256 },
  },
  {
    file: 'gem-vercel-text.json',
    backend: 'gemini',
    model: 'gemini-3-pro-preview',
    rule: 'thoughts are billed as output (28 + 244)',
    counts: { input_tokens: 9, output_tokens: 272, total_tokens: 281, reasoning_tokens: 244 },
    billed: { input_tokens: 9, output_tokens: 272 },
  },
  {
    file: 'gem-vercel-text-stream.sse',
    backend: 'gemini',
    model: 'gemini-3-pro-preview',
    rule: 'the last chunk is the usage (the last two repeat it: never summed); thoughts are output (23 + 185)',
    counts: { input_tokens: 9, output_tokens: 208, total_tokens: 217, reasoning_tokens: 185 },
    billed: { input_tokens: 9, output_tokens: 208 },
  },
  {
    file: 'gem-vercel-reasoning.json',
    backend: 'gemini',
    model: 'gemini-3-pro-preview',
    rule: 'thoughts are billed as output (29 + 282)',
    counts: { input_tokens: 9, output_tokens: 311, total_tokens: 320, reasoning_tokens: 282 },
    billed: { input_tokens: 9, output_tokens: 311 },
  },
  {
    file: 'gem-vercel-reasoning-gemini3.json',
    backend: 'gemini',
    model: 'gemini-3-pro-preview',
    rule: 'thoughts are billed as output (29 + 258)',
    counts: { input_tokens: 9, output_tokens: 287, total_tokens: 296, reasoning_tokens: 258 },
    billed: { input_tokens: 9, output_tokens: 287 },
  },
  {
    file: 'gem-vercel-reasoning-stream.sse',
    backend: 'gemini',
    model: 'gemini-3-pro-preview',
    rule: 'the last chunk is the usage (the last two repeat it: never summed); thoughts are output (29 + 256)',
    counts: { input_tokens: 9, output_tokens: 285, total_tokens: 294, reasoning_tokens: 256 },
    billed: { input_tokens: 9, output_tokens: 285 },
  },
  {
    file: 'gem-vercel-toolcall.json',
    backend: 'gemini',
    model: 'gemini-3-pro-preview',
    rule: 'a function call is ordinary output; thoughts are billed as output (15 + 893)',
    counts: { input_tokens: 29, output_tokens: 908, total_tokens: 937, reasoning_tokens: 893 },
    billed: { input_tokens: 29, output_tokens: 908 },
  },
  {
    file: 'vtx-pyd-basic.json',
    backend: 'vertex',
    model: 'gemini-2.0-flash',
    rule: 'text in, text out',
    counts: { input_tokens: 13, output_tokens: 8, total_tokens: 21 },
    billed: { input_tokens: 13, output_tokens: 8 },
    trafficType: 'ON_DEMAND',
  },
  {
    file: 'vtx-pyd-audio-url.json',
    backend: 'vertex',
    model: 'gemini-2.0-flash',
    rule: 'audio input (150 of the 159 prompt tokens) is billed at the audio input rate, 7x the text rate on gemini-2.0-flash',
    counts: { input_tokens: 159, output_tokens: 22, total_tokens: 181, audio_input_tokens: 150 },
    billed: { input_tokens: 159, input_audio_tokens: 150, output_tokens: 22 },
    trafficType: 'ON_DEMAND',
  },
  {
    file: 'vtx-pyd-flex.json',
    backend: 'vertex',
    model: 'gemini-3-flash-preview',
    rule: 'thoughts are billed as output (1 + 51); trafficType ON_DEMAND_FLEX: half the standard rate',
    counts: { input_tokens: 5, output_tokens: 52, total_tokens: 57, reasoning_tokens: 51 },
    billed: { input_tokens: 5, output_tokens: 52 },
    trafficType: 'ON_DEMAND_FLEX',
    tier: { factor: 0.5, label: 'service_tier=ON_DEMAND_FLEX x0.5' },
  },
  {
    file: 'vtx-vercel-stream-toolcall.sse',
    backend: 'vertex',
    model: 'gemini-3.1-pro-preview',
    rule: 'every chunk but the last has a usageMetadata with no counts (trafficType only): the last is the usage; thoughts are output (684 + 1026)',
    counts: { input_tokens: 31, output_tokens: 1710, total_tokens: 1741, reasoning_tokens: 1026 },
    billed: { input_tokens: 31, output_tokens: 1710 },
    trafficType: 'ON_DEMAND',
  },
];

const PROVIDER = 'google';

describe.each(CASES)('$file', ({ file, backend, model, counts, rule, billed, trafficType, tier }) => {
  const stream = file.endsWith('.sse');

  it(`${stream ? 'generateContentStream' : 'generateContent'}: counts and cost (${rule})`, async () => {
    server.serve(`google/${file}`);
    const ai = backend === 'vertex' ? vertex : gemini;
    if (stream) {
      for await (const chunk of await ai.models.generateContentStream({ model, contents: 'x' })) void chunk;
    } else {
      await ai.models.generateContent({ model, contents: 'x' });
    }
    expect(server.requests.at(-1)!.path).toMatch(backend === 'vertex' ? /\/projects\/p\/locations\/us-central1\/publishers\/google\/models\// : /^\/v1[a-z0-9]*\/models\//);
    await until(() => events.length === 1, 'the event');
    const event = events[0]!;
    const modelVersion = JSON.parse(stream ? lastData(file) : readRecording(`google/${file}`)).modelVersion as string;
    expect(event).toMatchObject({ provider: PROVIDER, endpoint: stream ? 'streamGenerateContent' : 'generateContent', model: modelVersion, stream });
    expect(event.partial).toBeUndefined();
    expect(event.usage_invalid).toBeUndefined();
    const recorded = Object.fromEntries(COUNT_FIELDS.filter((f) => event[f] !== undefined).map((f) => [f, event[f]]));
    expect(recorded).toEqual(counts);
    expect(event.service_tier).toBe(trafficType);
    expect(event.price_tier).toBe(tier?.label);

    const price = calcPrice(billed, modelVersion, { providerId: PROVIDER });
    expect(price).not.toBeNull();
    expect(event.price_unknown).toBeUndefined();
    expect(event.price_inconsistent).toBeUndefined();
    // Events carry whole nano-dollars: within 1e-9 of the library's (standard) figure times the tier's multiplier.
    expect(Math.abs(event.cost_usd! - price!.total_price * (tier?.factor ?? 1))).toBeLessThanOrEqual(1e-9);
  });
});

describe('vtx-vercel-embedding.json', () => {
  it('embedContent on Vertex (:predict): the per-embedding token counts add up; billed per character', async () => {
    server.serve('google/vtx-vercel-embedding.json');
    const model = 'text-embedding-005';
    await vertex.models.embedContent({ model, contents: ['a', 'b'] });
    expect(server.requests.at(-1)!.path).toMatch(/:predict$/);
    await until(() => events.length === 1, 'the event');
    // Vertex reports token_count per embedding (5 and 6); the response's tokens are their sum.
    expect(events[0]).toMatchObject({ provider: PROVIDER, endpoint: 'embedContent', model, input_tokens: 11, output_tokens: 0, total_tokens: 11 });
    // Vertex bills text-embedding-005 per 1,000 input characters (metadata.billableCharacterCount, 35 here), at
    // $0.000025 per 1,000 (online requests). The price library has no price for the model: the rate is llm-meter's table.
    expect(calcPrice({ input_tokens: 11 }, model, { providerId: PROVIDER })).toBeNull();
    expect(events[0]).toMatchObject({ character_count: 35, price_source: 'llm-meter table 2026-11' });
    expect(events[0]!.price_unknown).toBeUndefined();
    expect(Math.abs(events[0]!.cost_usd! - (35 / 1000) * 0.000025)).toBeLessThanOrEqual(1e-9);
  });
});

/** The last `data:` line of a recorded stream: the chunk that carries the final usage and modelVersion. */
function lastData(file: string): string {
  return readRecording(`google/${file}`)
    .split('\n')
    .filter((line) => line.startsWith('data:'))
    .at(-1)!
    .slice('data:'.length);
}
