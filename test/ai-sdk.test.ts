import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { UsageEvent } from 'llm-meter';
import { eventsPrinted, repoRoot, requireFromRepo, runNode } from './helpers.js';

// The Vercel AI SDK and its real provider packages, in child apps under `node --import ./register.mjs`
// (test/apps/ai-sdk-app.mjs), against the fake OpenAI / Anthropic / Gemini servers and a DeepSeek host kept at its real
// base URL. Each scenario runs in a tenant named after it and marks its requests with `x-scenario`.

const { calcPrice } = requireFromRepo('@pydantic/genai-prices') as typeof import('@pydantic/genai-prices');

const app = join(repoRoot, 'test/apps/ai-sdk-app.mjs');
const register = join(repoRoot, 'register.mjs');
const PROMPT_WORDS = 'must never leave the process';

interface Request {
  path: string;
  scenario: string;
  tenant?: string;
  requestId?: string;
  host?: string;
  body: unknown;
}

interface AppRun {
  stderr: string;
  results: Map<string, any>;
  requests: Request[];
  events: UsageEvent[];
}

async function runApp(appRoot: string, format: 'esm' | 'cjs', env: Record<string, string> = {}): Promise<AppRun> {
  const metered = env.LLM_METER !== 'off';
  const run = await runNode([...(metered ? ['--import', register] : []), app, appRoot, format], { env, timeoutMs: 60_000 });
  expect(run.stdout, run.stderr).toContain('DONE');
  expect(run.code).toBe(0);
  const lines = run.stdout.split('\n');
  const results = new Map<string, any>();
  for (const line of lines.filter((l) => l.startsWith('RESULT '))) {
    const [, scenario, json] = /^RESULT (\S+) (.*)$/.exec(line)!;
    results.set(scenario!, JSON.parse(json!));
  }
  const requests = lines.filter((l) => l.startsWith('REQUEST ')).map((l) => JSON.parse(l.slice('REQUEST '.length)) as Request);
  return { stderr: run.stderr, results, requests, events: eventsPrinted(run.stdout) };
}

/** What the provider charges for this usage, by the price library (input_tokens there include the cache pools). */
function price(provider: string, model: string, usage: { input_tokens: number; output_tokens?: number; cache_read_tokens?: number; cache_write_tokens?: number }): number {
  const result = calcPrice(usage, model, { providerId: provider });
  if (result === null) throw new Error(`the price data has no ${provider} ${model}`);
  return result.total_price;
}

const ofTenant = (run: AppRun, tenant: string): UsageEvent[] => run.events.filter((e) => e.tenant_id === tenant);
const requestsOf = (run: AppRun, scenario: string): Request[] => run.requests.filter((r) => r.scenario === scenario);

const VERSIONS = [
  {
    label: 'ai 5 (LanguageModelV2)',
    // Its packages are hoisted to the repo's node_modules; zod is its own.
    appRoot: join(repoRoot, 'test/sdk-versions/ai-5'),
    packages: { '@ai-sdk/openai': '2.0.131', '@ai-sdk/anthropic': '2.0.112', '@ai-sdk/google': '2.0.108', '@ai-sdk/openai-compatible': '1.0.61' },
    // V2: Anthropic's inputTokens exclude the cache pools; its reads are in cachedInputTokens, its writes in metadata.
    anthropicSdkInput: 21,
    // V2 hands back the provider's body only for a response that was not streamed: DeepSeek's cache hits are read there.
    deepseekStreamCacheHits: false,
    // V2's doStream returns as soon as the response starts: the abort cuts the model's stream short.
    abortCutsStream: true,
  },
  {
    label: 'ai 6 (LanguageModelV3)',
    appRoot: join(repoRoot, 'test/sdk-versions/ai-6'),
    packages: { '@ai-sdk/openai': '3.0.141', '@ai-sdk/anthropic': '3.0.140', '@ai-sdk/google': '3.0.141', '@ai-sdk/openai-compatible': '2.0.92' },
    // V3: inputTokens.total includes the cache pools.
    anthropicSdkInput: 171,
    deepseekStreamCacheHits: true,
    // V3's doStream waits for the stream's first chunk: the abort makes doStream itself fail.
    abortCutsStream: false,
  },
];

describe.each(VERSIONS)('$label', (version) => {
  let runs: Record<'esm' | 'cjs' | 'unmetered', AppRun>;
  beforeAll(async () => {
    const [esm, cjs, unmetered] = await Promise.all([
      runApp(version.appRoot, 'esm', { LLM_DEBUG: '1' }),
      runApp(version.appRoot, 'cjs', { LLM_DEBUG: '1' }),
      runApp(version.appRoot, 'esm', { LLM_METER: 'off' }),
    ]);
    runs = { esm, cjs, unmetered };
  }, 120_000);

  describe.each(['esm', 'cjs'] as const)('%s builds', (format) => {
    const build = format === 'esm' ? 'ESM' : 'CJS';

    it(`the agent patched the ${format === 'esm' ? 'ESM' : 'CJS'} build of each provider package, and wrote nothing but its debug lines`, () => {
      const run = runs[format];
      for (const [name, packageVersion] of Object.entries(version.packages)) expect(run.stderr).toContain(`[llm-meter] patching ${name} ${packageVersion} (${build} build)`);
      const other = run.stderr.split('\n').filter((l) => l !== '' && !/^\[llm-meter\] (patching|event) /.test(l));
      expect(other).toEqual([]);
    });

    it('one event per model call, each in the caller\'s tenant; refused calls never reach the fakes; no prompt text in events', () => {
      const run = runs[format];
      const solo = [...new Set(run.requests.map((r) => r.scenario))].filter((s) => s !== 'concurrent');
      for (const scenario of solo) expect(ofTenant(run, scenario).length, scenario).toBe(requestsOf(run, scenario).length);
      expect(requestsOf(run, 'limited')).toEqual([]);
      expect(run.events.length).toBe(run.requests.length + 2);
      expect(JSON.stringify(run.events)).not.toContain(PROMPT_WORDS);
    });

    it('generateText, OpenAI chat and responses models: exact tokens, model, endpoint and cost', () => {
      const run = runs[format];
      expect(ofTenant(run, 'openai-chat')).toEqual([
        expect.objectContaining({ provider: 'openai', model: 'gpt-4o', endpoint: 'chat', stream: false, input_tokens: 11, output_tokens: 7, total_tokens: 18, request_id: 'req_1', host: expect.stringMatching(/^127\.0\.0\.1:\d+$/) }),
      ]);
      expect(ofTenant(run, 'openai-responses')).toEqual([
        expect.objectContaining({ provider: 'openai', model: 'gpt-4o', endpoint: 'responses', stream: false, input_tokens: 13, output_tokens: 9, total_tokens: 22, request_id: 'req_2' }),
      ]);
      // OpenAI bills input and output tokens at the model's rates (none cached here).
      expect(ofTenant(run, 'openai-chat')[0]!.cost_usd).toBeCloseTo(price('openai', 'gpt-4o', { input_tokens: 11, output_tokens: 7 }), 12);
      expect(ofTenant(run, 'openai-responses')[0]!.cost_usd).toBeCloseTo(price('openai', 'gpt-4o', { input_tokens: 13, output_tokens: 9 }), 12);
      for (const e of [...ofTenant(run, 'openai-chat'), ...ofTenant(run, 'openai-responses')]) expect(e.partial).toBeUndefined();
    });

    it('streamText read to the end: one complete event, chat and responses', () => {
      const run = runs[format];
      expect(ofTenant(run, 'stream-chat')).toEqual([expect.objectContaining({ endpoint: 'chat', stream: true, input_tokens: 11, output_tokens: 7, request_id: 'req_3' })]);
      expect(ofTenant(run, 'stream-responses')).toEqual([expect.objectContaining({ endpoint: 'responses', stream: true, input_tokens: 13, output_tokens: 9, request_id: 'req_4' })]);
      for (const e of [...ofTenant(run, 'stream-chat'), ...ofTenant(run, 'stream-responses')]) {
        expect(e.partial).toBeUndefined();
        expect(e.error).toBeUndefined();
      }
    });

    it('streamText aborted through abortSignal: one event, the abort, no usage', () => {
      const run = runs[format];
      expect(run.results.get('stream-abort')).toEqual({ last: 'abort' });
      const [event, ...more] = ofTenant(run, 'stream-abort');
      expect(more).toEqual([]);
      expect(event).toMatchObject({ endpoint: 'chat', stream: true, input_tokens: 0, output_tokens: 0, cost_usd: 0, error: 'AbortError' });
      // Cut short with its stream open (partial), or failed while the SDK still waited for the stream's first chunk.
      if (version.abortCutsStream) expect(event).toMatchObject({ partial: true, request_id: 'req_5' });
      else expect(event!.partial).toBeUndefined();
    });

    it('streamText errored mid-stream (OpenAI, Anthropic): one partial event each, the SDK\'s error part passed on', () => {
      const run = runs[format];
      expect(run.results.get('stream-error').parts).toContain('error:undefined');
      expect(run.results.get('anthropic-stream-error').parts).toContain('error:undefined');
      expect(ofTenant(run, 'stream-error')).toEqual([expect.objectContaining({ provider: 'openai', stream: true, partial: true, input_tokens: 0, output_tokens: 0 })]);
      expect(ofTenant(run, 'anthropic-stream-error')).toEqual([expect.objectContaining({ provider: 'anthropic', stream: true, partial: true, input_tokens: 0, output_tokens: 0 })]);
    });

    it('a multi-step call with a tool (generateText and streamText): one event per model call, all in the caller\'s tenant', () => {
      const run = runs[format];
      expect(run.results.get('tools')).toMatchObject({ steps: 2 });
      expect(run.results.get('stream-tools')).toMatchObject({ steps: 2 });
      expect(ofTenant(run, 'tools').map((e) => [e.endpoint, e.stream, e.input_tokens, e.output_tokens])).toEqual([
        ['chat', false, 11, 7],
        ['chat', false, 11, 7],
      ]);
      expect(ofTenant(run, 'stream-tools').map((e) => [e.endpoint, e.stream, e.input_tokens, e.output_tokens, e.partial])).toEqual([
        ['chat', true, 11, 7, undefined],
        ['chat', true, 11, 7, undefined],
      ]);
    });

    it('generateObject, embed and embedMany', () => {
      const run = runs[format];
      expect(run.results.get('object')).toMatchObject({ object: {} });
      expect(ofTenant(run, 'object')).toEqual([expect.objectContaining({ endpoint: 'chat', stream: false, input_tokens: 11, output_tokens: 7 })]);
      const embedCost = price('openai', 'text-embedding-3-small', { input_tokens: 5 });
      const embeddings = ofTenant(run, 'embed');
      expect(embeddings.map((e) => [e.provider, e.endpoint, e.model, e.input_tokens, e.output_tokens])).toEqual([
        ['openai', 'embeddings', 'text-embedding-3-small', 5, 0],
        ['openai', 'embeddings', 'text-embedding-3-small', 5, 0],
      ]);
      for (const e of embeddings) expect(e.cost_usd).toBeCloseTo(embedCost, 12);
    });

    it('Anthropic: cache reads and writes counted once, whichever convention the SDK version reports them in', () => {
      const run = runs[format];
      const result = run.results.get('anthropic');
      expect(result.usage).toEqual({ input: version.anthropicSdkInput, output: 9, cached: 100 });
      expect(result.stream.usage).toEqual(result.usage);
      // Anthropic bills 21 uncached input tokens, 100 cache reads and 50 cache writes, each at its rate, and 9 output tokens.
      const cost = price('anthropic', 'claude-sonnet-4-5', { input_tokens: 171, cache_read_tokens: 100, cache_write_tokens: 50, output_tokens: 9 });
      const events = ofTenant(run, 'anthropic');
      expect(events.map((e) => e.stream)).toEqual([false, true]);
      for (const e of events) {
        expect(e).toMatchObject({ provider: 'anthropic', model: 'claude-sonnet-4-5', endpoint: 'messages', input_tokens: 171, cached_tokens: 100, cache_creation_tokens: 50, output_tokens: 9, total_tokens: 180 });
        expect(e.cost_usd).toBeCloseTo(cost, 12);
      }
    });

    it('Google (generateText and streamText)', () => {
      const run = runs[format];
      const cost = price('google', 'gemini-2.5-flash', { input_tokens: 8, output_tokens: 5 });
      const events = ofTenant(run, 'google');
      expect(events.map((e) => e.stream)).toEqual([false, true]);
      for (const e of events) {
        expect(e).toMatchObject({ provider: 'google', model: 'gemini-2.5-flash', input_tokens: 8, output_tokens: 5, total_tokens: 13 });
        expect(e.cost_usd).toBeCloseTo(cost, 12);
      }
    });

    it('openai-compatible at https://api.deepseek.com: provider deepseek, its host, its cache hits at the cache rate', () => {
      const run = runs[format];
      expect(requestsOf(run, 'deepseek').map((r) => r.host)).toEqual(['api.deepseek.com', 'api.deepseek.com']);
      // DeepSeek bills prompt_cache_hit_tokens (800 of the 1,200 prompt tokens) at its cache-hit rate.
      const withHits = price('deepseek', 'deepseek-chat', { input_tokens: 1200, cache_read_tokens: 800, output_tokens: 300 });
      const [generated, streamed] = ofTenant(run, 'deepseek');
      for (const e of [generated!, streamed!]) expect(e).toMatchObject({ provider: 'deepseek', host: 'api.deepseek.com', model: 'deepseek-chat', endpoint: 'chat', input_tokens: 1200, output_tokens: 300 });
      expect(generated).toMatchObject({ stream: false, cached_tokens: 800 });
      expect(generated!.cost_usd).toBeCloseTo(withHits, 12);
      if (version.deepseekStreamCacheHits) {
        expect(streamed).toMatchObject({ stream: true, cached_tokens: 800 });
        expect(streamed!.cost_usd).toBeCloseTo(withHits, 12);
      } else {
        // The V2 stream never shows the agent DeepSeek's own usage: every prompt token is priced as uncached.
        expect(streamed!.cached_tokens).toBeUndefined();
        expect(streamed!.cost_usd).toBeCloseTo(price('deepseek', 'deepseek-chat', { input_tokens: 1200, output_tokens: 300 }), 12);
      }
    });

    it('a tenant over its limit is refused before any request: generateText rejects, streamText streams the error', () => {
      const run = runs[format];
      expect(run.results.get('limited')).toEqual({
        generate: 'LimitExceededError',
        stream: { parts: ['start', 'error:LimitExceededError'], usage: {} },
        onError: ['LimitExceededError'],
      });
      expect(requestsOf(run, 'limited')).toEqual([]);
      expect(ofTenant(run, 'limited').map((e) => [e.stream, e.error, e.input_tokens, e.cost_usd])).toEqual([
        [false, 'LimitExceededError', 0, 0],
        [true, 'LimitExceededError', 0, 0],
      ]);
    });

    it('two tenants calling at once: each event in the tenant of the call that made its request', () => {
      const run = runs[format];
      const byId = new Map(requestsOf(run, 'concurrent').map((r) => [r.requestId, r]));
      for (const tenant of ['tenant-a', 'tenant-b']) {
        const events = ofTenant(run, tenant);
        expect(events.map((e) => `${e.endpoint}:${e.stream}`).sort()).toEqual(['chat:false', 'chat:true', 'messages:true', 'responses:false']);
        for (const e of events) expect(byId.get(e.request_id)?.tenant, `${tenant} ${e.request_id}`).toBe(tenant);
      }
    });
  });

  it('the agent changes nothing the app sees or sends: results and request bodies as without it', () => {
    const { limited: _limited, ...withAgent } = Object.fromEntries(runs.esm.results);
    expect(withAgent).toEqual(Object.fromEntries(runs.unmetered.results));
    expect(Object.fromEntries(runs.cjs.results)).toEqual(Object.fromEntries(runs.esm.results));
    const bodies = (run: AppRun) => run.requests.map((r) => JSON.stringify([r.scenario, r.path, r.body])).sort();
    expect(bodies(runs.esm)).toEqual(bodies(runs.unmetered));
    expect(bodies(runs.cjs)).toEqual(bodies(runs.unmetered));
    expect(runs.unmetered.stderr).toBe('');
  });
});
