import { createServer, type IncomingMessage } from 'node:http';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { LimitExceededError, Meter, repoRoot, requireFrom } from './helpers.js';

/** A fake of the app's own backend, speaking the documented limits protocol. */
async function startLimitsBackend() {
  const limits = new Map<string, { limit_usd: number; spent_usd: number; frequency: string; resets_at: string }>();
  const requests: { method: string; path: string; auth: string | undefined }[] = [];
  const body = (req: IncomingMessage) => new Promise<string>((r) => { let s = ''; req.on('data', (c) => (s += c)); req.on('end', () => r(s)); });
  const server = createServer(async (req, res) => {
    const url = new URL(req.url!, 'http://x');
    requests.push({ method: req.method!, path: url.pathname, auth: req.headers.authorization });
    const tenant = decodeURIComponent(url.pathname.replace(/^\/api\/limits\//, ''));
    if (req.method === 'GET') {
      const limit = limits.get(tenant);
      res.writeHead(limit ? 200 : 404, { 'content-type': 'application/json' }).end(JSON.stringify(limit ?? { error: 'no limit' }));
    } else if (req.method === 'PUT') {
      const { limit_usd, frequency } = JSON.parse(await body(req));
      limits.set(tenant, { limit_usd, frequency, spent_usd: limits.get(tenant)?.spent_usd ?? 0, resets_at: '2026-12-01T00:00:00Z' });
      res.writeHead(204).end();
    } else {
      limits.delete(tenant);
      res.writeHead(204).end();
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as { port: number }).port}/api`,
    limits,
    requests,
    gets: () => requests.filter((r) => r.method === 'GET').length,
    close: () => new Promise((r) => server.close(r)),
  };
}

const fake = await startFakeProviders();
const backend = await startLimitsBackend();
afterAll(() => Promise.all([fake.close(), backend.close()]));
afterEach(() => {
  fake.reset();
  backend.requests.length = 0;
});

let clock = Date.parse('2026-11-23T12:00:00Z');
const meter = new Meter({
  limits: { url: backend.url, apiKey: 'backend-key', limitCheckCacheTtl: 5000 },
  prices: { 'openai:gpt-4o': { input_mtok: 0, output_mtok: 1 } },
  clock: () => clock,
  handleExit: false,
});
const { OpenAI } = requireFrom(repoRoot, 'openai');
const client = meter.instrument(new OpenAI({ apiKey: 'k', baseURL: fake.openaiBaseURL, maxRetries: 0 }));
const call = (tenant: string) =>
  meter.forTenant(tenant, () => client.chat.completions.create({ model: 'gpt-4o', max_tokens: 1000, messages: [{ role: 'user', content: 'x' }] }));

describe("the app's own backend as the limit store", () => {
  it('answers are cached for limitCheckCacheTtl', async () => {
    backend.limits.set('cached', { limit_usd: 1, spent_usd: 0, frequency: 'per_month', resets_at: '2026-12-01T00:00:00Z' });
    for (let i = 0; i < 5; i++) await call('cached');
    expect(backend.gets()).toBe(1);
    expect(backend.requests[0]!.auth).toBe('Bearer backend-key');
    clock += 5001;
    await call('cached');
    expect(backend.gets()).toBe(2);
  });

  it('a burst inside the cache window is stopped by the local trip-wire', async () => {
    backend.limits.set('burst', { limit_usd: 0.01, spent_usd: 0.004, frequency: 'per_day', resets_at: '2026-11-24T00:00:00Z' });
    const results = await Promise.allSettled(Array.from({ length: 30 }, () => call('burst')));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(6);
    expect(results.filter((r) => r.status === 'rejected').every((r) => (r as PromiseRejectedResult).reason instanceof LimitExceededError)).toBe(true);
    expect(fake.count()).toBe(6);
    expect(backend.gets()).toBe(1);
    const [usage] = await meter.getUsage('burst');
    expect(usage!.spentUsd).toBeCloseTo(0.004 + 6 * 7e-6, 9);
  });

  it('setLimit writes the limit to the backend and drops the cached answer at once', async () => {
    backend.limits.set('flip', { limit_usd: 1, spent_usd: 0, frequency: 'per_month', resets_at: '2026-12-01T00:00:00Z' });
    await call('flip');
    await meter.setLimit('flip', { limitUsd: 0, frequency: 'per_month' });
    await expect(call('flip')).rejects.toBeInstanceOf(LimitExceededError);
    expect(backend.requests.map((r) => r.method)).toEqual(['GET', 'PUT', 'GET']);
    expect(fake.count()).toBe(1);
  });

  it('a tenant the backend knows no limit for is never refused', async () => {
    await call('free');
    expect(fake.count()).toBe(1);
  });
});
