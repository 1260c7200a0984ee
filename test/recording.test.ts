// Without an onEvent hook, a call's event is built, priced, settled and delivered in batches off the call's path (see
// src/call-recorder.ts). Whoever reads what recording produces — stats, flush, getUsage, a limited tenant's next call,
// the exit path — must see every call that ended before it, exactly once.
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { startRedisServer } from './fixtures/redis-server.mjs';
import { LimitExceededError, Meter, repoRoot, requireFrom, requireFromRepo, runNode } from './helpers.js';
import type { UsageEvent } from 'llm-meter';

const fake = await startFakeProviders();
afterAll(() => fake.close());
afterEach(() => fake.reset());

const { OpenAI } = requireFrom(repoRoot, 'openai');
const messages = [{ role: 'user' as const, content: 'hi' }];
// Input free, output $1 per million tokens: the fake's 7 completion tokens cost $0.000007; max_tokens 1000 reserves $0.001.
const prices = { 'openai:gpt-4o': { input_mtok: 0, output_mtok: 1 } };
const CALL_COST = 7e-6;

function usageFile(): string {
  return join(mkdtempSync(join(tmpdir(), 'llm-meter-recording-')), 'usage.jsonl');
}

function eventsIn(file: string): UsageEvent[] {
  return readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((line) => JSON.parse(line) as UsageEvent);
}

type MeterInstance = InstanceType<typeof Meter>;
type MeterOptions = ConstructorParameters<typeof Meter>[0];

function meteredClient(meter: MeterInstance) {
  return meter.instrument(new OpenAI({ apiKey: 'k', baseURL: fake.openaiBaseURL, maxRetries: 0 }));
}

/** Runs `test` with a Meter of these options (no onEvent hook: recording is batched) and a client it meters. */
async function withMeter(options: MeterOptions, test: (meter: MeterInstance, client: ReturnType<typeof meteredClient>) => Promise<void>): Promise<void> {
  const meter = new Meter({ prices, handleExit: false, ...options });
  try {
    await test(meter, meteredClient(meter));
  } finally {
    await meter.shutdown();
  }
}

async function monthOf(meter: MeterInstance, tenantId: string) {
  return (await meter.getUsage(tenantId)).find((w) => w.frequency === 'per_month');
}

describe('recording in batches, off the call path', () => {
  it('stats count a call the moment it returns; flush writes its event with tenant and cost', async () => {
    const file = usageFile();
    await withMeter({ file }, async (meter, client) => {
      await meter.forTenant('acme', () => client.chat.completions.create({ model: 'gpt-4o', messages }));
      expect(meter.stats().queued).toBe(1);
      await meter.flush();
      const [event, ...more] = eventsIn(file);
      expect(more).toHaveLength(0);
      expect(event).toMatchObject({ tenant_id: 'acme', model: 'gpt-4o', output_tokens: 7, cost_usd: CALL_COST });
    });
  });

  it('getUsage right after a call: its cost spent, nothing still held', async () => {
    await withMeter({}, async (meter, client) => {
      await meter.setLimit('acme', { limitUsd: 1, frequency: 'per_month' });
      await meter.forTenant('acme', () => client.chat.completions.create({ model: 'gpt-4o', messages, max_tokens: 1000 }));
      expect(await monthOf(meter, 'acme')).toMatchObject({ spentUsd: CALL_COST, reservedUsd: 0 });
    });
  });

  it("a limited tenant's next call sees the previous call settled at its cost, not still reserved", async () => {
    await withMeter({}, async (meter, client) => {
      // Room for one reservation ($0.001) plus the first call's cost, not for two reservations.
      await meter.setLimit('acme', { limitUsd: 0.0015, frequency: 'per_month' });
      const call = () => meter.forTenant('acme', () => client.chat.completions.create({ model: 'gpt-4o', messages, max_tokens: 1000 }));
      await call();
      await expect(call()).resolves.toMatchObject({ object: 'chat.completion' });
      await expect(call()).resolves.toMatchObject({ object: 'chat.completion' });
      expect(fake.count('/chat/completions')).toBe(3);
      expect((await monthOf(meter, 'acme'))!.spentUsd).toBeCloseTo(3 * CALL_COST, 12);
      await meter.setLimit('acme', { limitUsd: 3 * CALL_COST + 0.0005, frequency: 'per_month' });
      await expect(call()).rejects.toBeInstanceOf(LimitExceededError);
    });
  });

  it('shutdown right after a call: its spend reaches the fleet ledger in Redis before the store closes', async () => {
    const redisServer = await startRedisServer();
    const options = { limits: { redis: redisServer.url, keyPrefix: 'recording:' }, prices, handleExit: false };
    const meter = new Meter(options);
    const reader = new Meter(options);
    try {
      const client = meteredClient(meter);
      await meter.setLimit('acme', { limitUsd: 1, frequency: 'per_month' });
      await meter.forTenant('acme', () => client.chat.completions.create({ model: 'gpt-4o', messages, max_tokens: 1000 }));
      await meter.shutdown();
      expect(await monthOf(reader, 'acme')).toMatchObject({ spentUsd: CALL_COST, reservedUsd: 0 });
    } finally {
      await meter.shutdown();
      await reader.shutdown();
      await redisServer.stop();
    }
  });

  it('200 concurrent calls, more than a batch: 200 events, each once', async () => {
    const file = usageFile();
    await withMeter({ file, maxQueueSize: 1000 }, async (meter, client) => {
      await Promise.all(
        Array.from({ length: 200 }, (_, i) => meter.forTenant(`t${i % 7}`, () => client.chat.completions.create({ model: 'gpt-4o', messages }))),
      );
      await meter.flush();
      const events = eventsIn(file);
      expect(events).toHaveLength(200);
      expect(new Set(events.map((e) => e.request_id)).size).toBe(200);
      for (let t = 0; t < 7; t++) expect(events.filter((e) => e.tenant_id === `t${t}`)).toHaveLength(Math.ceil((200 - t) / 7));
    });
  });

  it.each([
    ['process.exit() right after the call', 'process.exit(0);'],
    ['the script simply ends', ''],
  ])('%s: the usage file has the event', async (_name, ending) => {
    const file = usageFile();
    const script = `
      const { Meter } = require('llm-meter');
      const OpenAI = require('openai');
      const meter = new Meter({ file: ${JSON.stringify(file)}, flushInterval: 100000 });
      const client = meter.instrument(new OpenAI({ apiKey: 'k', baseURL: ${JSON.stringify(fake.openaiBaseURL)}, maxRetries: 0 }));
      meter.forTenant('acme', () => client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })).then(() => { ${ending} });
    `;
    const run = await runNode(['-e', script], { cwd: repoRoot });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(eventsIn(file)).toMatchObject([{ tenant_id: 'acme', model: 'gpt-4o', output_tokens: 7 }]);
  });
});

describe("the event's timestamp", () => {
  const { isoTimestamp } = requireFromRepo('./dist/src/timestamps.js') as { isoTimestamp: (ms: number) => string };

  it('is exactly toISOString() of the start, for calls in the same second and across seconds, days and years', () => {
    fc.assert(
      fc.property(fc.integer({ min: -62_198_755_200_000, max: 253_402_300_799_999 }), fc.array(fc.integer({ min: -1500, max: 1500 }), { maxLength: 8 }), (ms, steps) => {
        for (const t of [ms, ...steps.map((step) => ms + step)]) expect(isoTimestamp(t)).toBe(new Date(t).toISOString());
      }),
      { numRuns: 2000 },
    );
    for (const t of [0, -1, 999, 1000, Date.parse('2026-12-31T23:59:59.999Z'), Date.parse('2027-01-01T00:00:00.000Z'), 8.64e15, -8.64e15]) {
      expect(isoTimestamp(t)).toBe(new Date(t).toISOString());
    }
  });
});
