import fc from 'fast-check';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { join } from 'node:path';
import { Meter, repoRoot, requireFrom, requireFromRepo, runNode, stderrOf, until } from './helpers.js';
import type { UsageEvent } from 'llm-meter';

const fake = await startFakeProviders();
afterAll(() => fake.close());
afterEach(() => fake.reset());

const { BUILT_IN_PATCHES } = requireFromRepo('./dist/patches/index.js');
const { buildEvent, USAGE_FIELDS } = requireFromRepo('./dist/src/event.js');

const start = { provider: 'p', identity: { provider: 'p', host: undefined, unknownHost: false }, inputExcludesCache: false, endpoint: 'e', requestedModel: 'm', stream: false, tenant: undefined, startedAt: 0, startedAtWall: 0, args: [] };

describe('usage extractors never throw, and events only carry trusted counts', () => {
  const targets = BUILT_IN_PATCHES.flatMap((p: any) => p.targets.map((t: any) => ({ provider: p.name, target: t })));

  it(`fuzzed responses and stream items through all ${targets.length} extractors`, () => {
    fc.assert(
      fc.property(fc.constantFrom(...targets), fc.anything({ withNullPrototype: true, withBigInt: false }), fc.anything(), fc.boolean(), ({ target }, data, params, hide) => {
        const facts = target.readResponse(data, [params]);
        const streamFacts = {};
        target.readStreamItem?.(data, streamFacts, hide);
        target.readEachItem?.(data);
        for (const f of [facts, streamFacts]) {
          const event = buildEvent(start, { usage: (f as { usage?: unknown }).usage }, 1);
          for (const field of USAGE_FIELDS) {
            const value = event[field];
            if (value !== undefined) expect(Number.isFinite(value) && value >= 0).toBe(true);
          }
        }
      }),
      { numRuns: 3000 },
    );
  });

  it('usage of the wrong shape (strings, negative, huge) is dropped and flagged, never thrown', () => {
    const chat = BUILT_IN_PATCHES[0].targets[0];
    const facts = chat.readResponse({ usage: { prompt_tokens: '12', completion_tokens: -5, total_tokens: 1e300, prompt_tokens_details: { cached_tokens: null } } }, [{}]);
    const event = buildEvent(start, facts, 1);
    expect(event).toMatchObject({ input_tokens: 0, output_tokens: 0, usage_invalid: true });
  });
});

describe('a fault in the agent never reaches the app', () => {
  const { OpenAI } = requireFrom(repoRoot, 'openai');
  const messages = [{ role: 'user' as const, content: 'hi' }];

  it('a throwing onEvent: the call returns exactly what the SDK returned', async () => {
    const meter = new Meter({ onEvent: () => { throw new Error('boom'); }, handleExit: false });
    const client = meter.instrument(new OpenAI({ apiKey: 'k', baseURL: fake.openaiBaseURL, maxRetries: 0 }));
    const log = await stderrOf(async () => {
      const r = await client.chat.completions.create({ model: 'gpt-4o', messages });
      expect(r.object).toBe('chat.completion');
      const s = await client.chat.completions.create({ model: 'gpt-4o', messages, stream: true });
      let n = 0;
      for await (const _ of s) n++;
      expect(n).toBeGreaterThan(0);
    });
    expect(meter.faults).toBe(2);
    expect(log.match(/internal fault/g)).toHaveLength(1);
    meter.unpatchAll();
  });

  it('raiseOnError: a fault on a path no caller waits on never becomes an unhandled rejection', async () => {
    const meter = new Meter({ raiseOnError: true, onEvent: () => { throw new Error('boom'); }, handleExit: false });
    const client = meter.instrument(new OpenAI({ apiKey: 'k', baseURL: fake.openaiBaseURL, maxRetries: 0 }));
    try {
      await stderrOf(async () => {
        const err = await client.chat.completions.create({ model: 'gpt-4o', messages }, { headers: { 'x-fake-status': '500' } }).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(OpenAI.APIError);
        // The parse path has a caller: there the agent's fault does reach the app, as raiseOnError asks.
        await expect(client.chat.completions.create({ model: 'gpt-4o', messages })).rejects.toThrow('boom');
        await new Promise((r) => setTimeout(r, 50));
      });
      expect(meter.faults).toBe(2);
    } finally {
      meter.unpatchAll();
    }
  });

  it('a response with usage of the wrong shape reaches the caller untouched; the event is flagged', async () => {
    const events: UsageEvent[] = [];
    const meter = new Meter({ onEvent: (e) => events.push(e), handleExit: false });
    const client = meter.instrument(new OpenAI({ apiKey: 'k', baseURL: fake.openaiBaseURL, maxRetries: 0 }));
    const weird = JSON.stringify({ prompt_tokens: 'many', completion_tokens: -3, total_tokens: 1e308, prompt_tokens_details: 'x' });
    const r = await client.chat.completions.create({ model: 'gpt-4o', messages }, { headers: { 'x-fake-usage': weird } });
    expect(r.usage.prompt_tokens).toBe('many');
    await until(() => events.length === 1, 'the event');
    expect(events[0]).toMatchObject({ input_tokens: 0, output_tokens: 0, usage_invalid: true });
    meter.unpatchAll();
  });
});

describe('memory stays flat when the ingest is down for good', () => {
  it('1,000,000 events: the queue stays bounded, retained memory stays flat, every event not kept is counted', async () => {
    const run = await runNode(['--expose-gc', join(repoRoot, 'test/apps/ingest-down.cjs'), '1000000'], { cwd: repoRoot, timeoutMs: 100_000 });
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout.trim().split('\n').at(-1)!);
    console.log(`1,000,000 events with the ingest down: heap after GC ${report.baseMb} MB at start, ${report.peakMb} MB at most; dropped ${report.stats.dropped}`);
    expect(report.stats.queued).toBeLessThanOrEqual(1000);
    expect(report.stats.queued + report.stats.dropped + report.stats.sent).toBe(1_000_000);
    expect(report.peakMb - report.baseMb).toBeLessThan(16);
  }, 120_000);
});
