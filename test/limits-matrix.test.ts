// Strict means an upper bound: for each request shape that can cost more than its text suggests, a burst of 20
// concurrent calls against a fake provider that bills the way the real ones do (fixtures/billing.mjs), in each limit
// store, in both enforcement modes. Afterwards: in strict mode the provider's invoice and the ledger stay within the
// limit; in both modes the ledger equals the sum of the events' cost_usd, and no reservation is left open.
import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { startFakeProviders, type BilledRequest } from './fixtures/fake-providers.mjs';
import { startLimitsBackend } from './fixtures/limits-backend.js';
import { startRedisCluster, startRedisServer } from './fixtures/redis-server.mjs';
import { LimitExceededError, Meter, repoRoot, requireFrom, requireFromRepo, until } from './helpers.js';
import type { MeterOptions, UsageEvent } from 'llm-meter';

const fake = await startFakeProviders();
const redisServer = await startRedisServer();
const redisCluster = await startRedisCluster(3);
const backend = await startLimitsBackend();
const IORedis = requireFromRepo('ioredis') as typeof import('ioredis').default;
const clusterClient = new IORedis.Cluster(redisCluster.nodes);
afterAll(async () => {
  clusterClient.disconnect();
  await Promise.all([fake.close(), redisServer.stop(), redisCluster.stop(), backend.close()]);
});

const { OpenAI } = requireFrom(repoRoot, 'openai');
const { Anthropic } = requireFrom(repoRoot, '@anthropic-ai/sdk');
const { GoogleGenAI } = requireFrom(repoRoot, '@google/genai');
const { calcPrice } = requireFromRepo('@pydantic/genai-prices') as typeof import('@pydantic/genai-prices');

type Clients = { openai: InstanceType<typeof OpenAI>; anthropic: InstanceType<typeof Anthropic>; google: InstanceType<typeof GoogleGenAI> };
const bill = (mode = 'worst') => ({ headers: { 'x-fake-bill': mode } });
const user = (content: unknown) => [{ role: 'user' as const, content }];
const imageUrl = (i: number) => ({ type: 'image_url' as const, image_url: { url: `https://example.com/${i}.png`, detail: 'high' as const } });

interface Shape {
  name: string;
  limitUsd: number;
  /** The i-th call of the burst. */
  call(c: Clients, i: number): Promise<unknown>;
  /** Usage reported as strings: the ledger holds such a call at its reservation, above the invoice. */
  untrustedUsage?: true;
  /** One call's worst case is over the limit (input the request cannot bound): strict mode refuses every call. */
  strictRefusesAll?: true;
}

const SHAPES: Shape[] = [
  {
    name: 'n: 8 completions',
    limitUsd: 0.3,
    call: (c) => c.openai.chat.completions.create({ model: 'gpt-4o', messages: user('Tell me a story.'), max_tokens: 1000, n: 8 }, bill()),
  },
  {
    name: 'Gemini candidateCount: 8',
    limitUsd: 0.1,
    call: (c) =>
      c.google.models.generateContent({ model: 'gemini-2.5-flash', contents: 'Tell me a story.', config: { maxOutputTokens: 1000, candidateCount: 8, httpOptions: bill() } }),
  },
  {
    name: '4 images passed by URL',
    limitUsd: 0.05,
    call: (c) =>
      c.openai.chat.completions.create({ model: 'gpt-4o', messages: user([{ type: 'text', text: 'Compare these.' }, ...[0, 1, 2, 3].map(imageUrl)]), max_tokens: 100 }, bill()),
  },
  {
    name: 'Anthropic images by URL',
    limitUsd: 0.05,
    call: (c) =>
      c.anthropic.messages.create(
        { model: 'claude-sonnet-4-5', max_tokens: 100, messages: user([0, 1, 2].map((i) => ({ type: 'image' as const, source: { type: 'url' as const, url: `https://example.com/${i}.png` } }))) },
        bill(),
      ),
  },
  {
    name: 'Gemini images by file URI',
    limitUsd: 0.015,
    call: (c) =>
      c.google.models.generateContent({
        model: 'gemini-2.5-flash',
        contents: [{ role: 'user', parts: [0, 1, 2, 3].map((i) => ({ fileData: { fileUri: `https://example.com/${i}.png`, mimeType: 'image/png' } })) }],
        config: { maxOutputTokens: 100, httpOptions: bill() },
      }),
  },
  {
    name: 'Gemini cachedContent (server-side context cache)',
    limitUsd: 0.05,
    strictRefusesAll: true,
    call: (c) =>
      c.google.models.generateContent({ model: 'gemini-2.5-flash', contents: 'And then?', config: { cachedContent: 'cachedContents/earlier', maxOutputTokens: 500, httpOptions: bill() } }),
  },
  {
    name: 'Gemini without maxOutputTokens',
    limitUsd: 0.1,
    call: (c) => c.google.models.generateContent({ model: 'gemini-2.5-flash', contents: 'Write as much as you like.', config: { httpOptions: bill() } }),
  },
  {
    name: 'previous_response_id (server-side conversation state)',
    limitUsd: 1,
    call: (c) => c.openai.responses.create({ model: 'gpt-4o', input: 'And then?', previous_response_id: 'resp_earlier', max_output_tokens: 500 }, bill()),
  },
  {
    name: 'no max_tokens',
    limitUsd: 0.2,
    call: (c) => c.openai.chat.completions.create({ model: 'gpt-4o', messages: user('Write as much as you like.') }, bill()),
  },
  {
    name: 'a Chinese prompt',
    limitUsd: 0.05,
    call: (c) => c.openai.chat.completions.create({ model: 'gpt-4o', messages: user('请详细解释'.repeat(400)), max_tokens: 100 }, bill()),
  },
  {
    name: 'one call with max_tokens: -1e9 in flight',
    limitUsd: 0.1,
    call: (c, i) => c.openai.chat.completions.create({ model: 'gpt-4o', messages: user('hi'), max_tokens: i === 0 ? -1e9 : 1000 }, bill()),
  },
  {
    name: 'usage reported as strings',
    limitUsd: 0.05,
    untrustedUsage: true,
    call: (c) => c.openai.chat.completions.create({ model: 'gpt-4o', messages: user('hi'), max_tokens: 1000 }, bill('strings')),
  },
  {
    name: 'a stream without max_tokens',
    limitUsd: 0.2,
    call: async (c) => {
      const stream = await c.openai.chat.completions.create({ model: 'gpt-4o', messages: user('Go on.'), stream: true }, bill());
      for await (const _ of stream);
    },
  },
];

/** What the provider charged, by its price list (the price library's own calcPrice). */
function invoiceUsd(billed: readonly BilledRequest[], models: Map<string, string>): number {
  let total = 0;
  for (const { path, usage } of billed) {
    const input = usage.prompt_tokens ?? usage.input_tokens ?? usage.promptTokenCount ?? 0;
    const output = usage.completion_tokens ?? usage.output_tokens ?? usage.candidatesTokenCount ?? 0;
    const cacheRead = usage.cachedContentTokenCount ?? 0;
    const provider = path.includes('generateContent') ? 'google' : path.endsWith('/v1/messages') ? 'anthropic' : 'openai';
    const model = models.get(provider)!;
    total += calcPrice({ input_tokens: input, output_tokens: output, cache_read_tokens: cacheRead }, model, { providerId: provider })!.total_price;
  }
  return total;
}

const MODELS = new Map([
  ['openai', 'gpt-4o'],
  ['anthropic', 'claude-sonnet-4-5'],
  ['google', 'gemini-2.5-flash'],
]);

interface Store {
  limits(): MeterOptions['limits'];
  /** The ledger's settled spend for the budget's window, once nothing is held. */
  spentNano(meter: InstanceType<typeof Meter>, tenant: string, feature: string | undefined): Promise<number>;
  /** Whether the store keeps budgets of a feature. */
  scoped: boolean;
}

const viaUsage = async (meter: InstanceType<typeof Meter>, tenant: string, feature: string | undefined) =>
  nano((await meter.getUsage(tenant)).find((w) => w.feature === feature && w.frequency === 'per_day')!.spentUsd);

const STORES: Record<string, Store> = {
  'in-process': { limits: () => undefined, spentNano: viaUsage, scoped: true },
  Redis: { limits: () => ({ redis: redisServer.url, keyPrefix: `matrix-${randomUUID()}:` }), spentNano: viaUsage, scoped: true },
  'Redis Cluster': { limits: () => ({ redis: clusterClient, keyPrefix: `matrix-${randomUUID()}:` }), spentNano: viaUsage, scoped: true },
  // A cache that always asks again: every admission sees the backend's figure plus this process's own. The ledger is
  // the backend's own: settled spend reaches it off the calls' path.
  backend: { limits: () => ({ url: backend.url, limitCheckCacheTtl: 1 }), spentNano: async (_meter, tenant) => backend.ledger.get(tenant) ?? 0, scoped: false },
};

const nano = (usd: number) => Math.round(usd * 1e9);

/** The limit is the tenant's, or a feature's budget (the calls run in that feature; the tenant's own limit is ample). */
const BUDGETS = [undefined, 'matrix-feature'] as const;

for (const [storeName, store] of Object.entries(STORES)) {
  for (const [enforcement, feature] of (['strict', 'lenient'] as const).flatMap((e) => BUDGETS.filter((f) => f === undefined || store.scoped).map((f) => [e, f] as const))) {
    describe(`${storeName} store, ${enforcement}${feature === undefined ? '' : ", a feature's budget"}`, () => {
      for (const shape of SHAPES) {
        it(`${shape.name}: ${enforcement === 'strict' ? 'the invoice stays within the limit; ' : ''}the ledger equals the events`, async () => {
          fake.reset();
          const events: UsageEvent[] = [];
          const meter = new Meter({ enforcement, limits: store.limits(), handleExit: false, onEvent: (e) => events.push(e) });
          const clients: Clients = {
            openai: meter.instrument(new OpenAI({ apiKey: 'k', baseURL: fake.openaiBaseURL, maxRetries: 0 })),
            anthropic: meter.instrument(new Anthropic({ apiKey: 'k', baseURL: fake.anthropicBaseURL, maxRetries: 0 })),
            google: meter.instrument(new GoogleGenAI({ apiKey: 'k', httpOptions: { baseUrl: fake.geminiBaseUrl } })),
          };
          const tenant = `matrix-${randomUUID()}`;
          try {
            if (feature !== undefined) await meter.setLimit(tenant, { limitUsd: 1000, frequency: 'per_day' });
            await meter.setLimit(tenant, { limitUsd: shape.limitUsd, frequency: 'per_day', ...(feature !== undefined && { feature }) });
            const results = await Promise.allSettled(Array.from({ length: 20 }, (_, i) => meter.forTenant(tenant, () => shape.call(clients, i), { feature })));
            await until(() => events.length === 20, 'one event per call');
            const admitted = results.filter((r) => r.status === 'fulfilled').length;
            if (enforcement === 'strict' && shape.strictRefusesAll === true) {
              expect(admitted).toBe(0);
              for (const r of results) expect((r as PromiseRejectedResult).reason).toBeInstanceOf(LimitExceededError);
            } else {
              expect(admitted, 'a limit that admits nothing proves nothing').toBeGreaterThan(0);
            }
            await until(async () => (await meter.getUsage(tenant)).every((w) => w.reservedUsd === 0), 'every reservation settled');
            const eventsTotal = events.reduce((sum, e) => sum + nano(e.cost_usd!), 0);
            let spent = 0;
            await until(async () => (spent = await store.spentNano(meter, tenant, feature)) === eventsTotal, 'the ledger to hold what the events cost').catch(() => undefined);
            expect(spent).toBe(eventsTotal);
            const invoice = invoiceUsd(fake.billed, MODELS);
            expect(fake.billed.length).toBe(admitted);
            // Each event's cost is rounded to the nano-dollar on its own: at most one unit apart per call.
            if (shape.untrustedUsage === true) expect(eventsTotal).toBeGreaterThanOrEqual(nano(invoice) - 20);
            else expect(Math.abs(eventsTotal - nano(invoice))).toBeLessThanOrEqual(20);
            if (enforcement === 'strict') {
              expect(invoice).toBeLessThanOrEqual(shape.limitUsd + 1e-9);
              expect(spent).toBeLessThanOrEqual(nano(shape.limitUsd));
            }
          } finally {
            await meter.shutdown();
          }
        });
      }
    });
  }
}

// The model allow-list and the rate limits sit on the same admission path as the limits: every shape, every store.
for (const [storeName, store] of Object.entries(STORES)) {
  describe(`${storeName} store: the allow-list and the rate limit`, () => {
    for (const shape of SHAPES) {
      it(`${shape.name}: a model outside the allow-list is refused before any request; of 20 at once under 5 a minute, 5 go out`, async () => {
        fake.reset();
        const meter = new Meter({ limits: store.limits(), handleExit: false });
        const clients: Clients = {
          openai: meter.instrument(new OpenAI({ apiKey: 'k', baseURL: fake.openaiBaseURL, maxRetries: 0 })),
          anthropic: meter.instrument(new Anthropic({ apiKey: 'k', baseURL: fake.anthropicBaseURL, maxRetries: 0 })),
          google: meter.instrument(new GoogleGenAI({ apiKey: 'k', httpOptions: { baseUrl: fake.geminiBaseUrl } })),
        };
        const tenant = `controls-${randomUUID()}`;
        const burst = () => Promise.allSettled(Array.from({ length: 20 }, (_, i) => meter.forTenant(tenant, () => shape.call(clients, i))));
        const reasons = (results: PromiseSettledResult<unknown>[]) => results.flatMap((r) => (r.status === 'rejected' ? [(r.reason as Error).name] : []));
        try {
          await meter.setPolicy(tenant, { models: ['none-such-model'] });
          expect(reasons(await burst())).toEqual(Array(20).fill('ModelNotAllowedError'));
          expect(fake.count()).toBe(0);
          await meter.setPolicy(tenant, {});
          await meter.setRateLimit(tenant, { requestsPerMinute: 5 });
          // The provider may refuse a request that went out (max_tokens: -1e9): only the agent's refusals are counted.
          expect(reasons(await burst()).filter((name) => name === 'RateLimitedError')).toHaveLength(15);
          expect(fake.count()).toBe(5);
        } finally {
          await meter.shutdown();
        }
      });
    }
  });
}
