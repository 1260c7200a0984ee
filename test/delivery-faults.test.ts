import { createServer } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { startFakeIngest, type IngestFault, type IngestRequest } from './fixtures/fake-ingest.mjs';
import type { ManualUsage } from 'llm-meter';
import { Meter, repoRoot, runNode, until } from './helpers.js';

type Ingest = Awaited<ReturnType<typeof startFakeIngest>>;
const ingests: Ingest[] = [];
afterAll(() => Promise.all(ingests.map((i) => i.close())));

async function ingestWith(respondWith?: (req: IngestRequest) => IngestFault | undefined, port?: number): Promise<Ingest> {
  const ingest = await startFakeIngest({ respondWith, port });
  ingests.push(ingest);
  return ingest;
}

const usage = (i: number): ManualUsage => ({ provider: 'openai', model: 'gpt-4o', input_tokens: i, output_tokens: 1 });
const fastRetries = { flushInterval: 20, handleExit: false, onFlushError: () => undefined };

/** Every event the ingest accepted, by id: exactly once each, and all of them. */
function expectExactlyOnce(ingest: Ingest, ids: string[]): void {
  const seen = ingest.events.map((e: { event_id: string }) => e.event_id);
  expect(new Set(seen).size).toBe(seen.length);
  expect(new Set(seen)).toEqual(new Set(ids));
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

describe('delivery under faults (real sockets on 127.0.0.1)', () => {
  it('ingest down at start, then back: every event delivered exactly once', async () => {
    const port = await freePort();
    const meter = new Meter({ url: `http://127.0.0.1:${port}/ingest`, ...fastRetries });
    const ids = Array.from({ length: 30 }, (_, i) => meter.trackManually(usage(i)).event_id);
    await until(() => meter.stats().retried >= 2, 'a few failed attempts');
    const ingest = await ingestWith(undefined, port);
    await until(() => ingest.events.length >= 30 && meter.stats().sent === 30, 'delivery once the ingest is back', 10_000);
    expectExactlyOnce(ingest, ids);
    expect(meter.stats()).toMatchObject({ queued: 0, sent: 30, dropped: 0, failedBatches: 0 });
    await meter.shutdown();
  });

  it('500 bursts: retried with the same Idempotency-Key until accepted', async () => {
    const ingest = await ingestWith(({ attempt }) => (attempt <= 3 ? { status: 500 } : undefined));
    const meter = new Meter({ url: ingest.url, ...fastRetries, maxBatchSize: 10 });
    const ids = Array.from({ length: 25 }, (_, i) => meter.trackManually(usage(i)).event_id);
    await until(() => ingest.events.length >= 25, 'delivery after the bursts', 10_000);
    expectExactlyOnce(ingest, ids);
    const keysByBatch = new Map<string, Set<string>>();
    for (const b of ingest.batches) {
      const batchId = b.events.map((e: { event_id: string }) => e.event_id).join(',');
      keysByBatch.set(batchId, (keysByBatch.get(batchId) ?? new Set()).add(b.headers['idempotency-key']));
    }
    for (const keys of keysByBatch.values()) expect(keys.size).toBe(1);
    expect(meter.stats().retried).toBeGreaterThanOrEqual(9);
    await meter.shutdown();
  });

  it('429 with Retry-After: the next attempt waits as long as the server asked', async () => {
    const times: number[] = [];
    const ingest = await ingestWith(({ attempt }) => {
      times.push(Date.now());
      return attempt === 1 ? { status: 429, headers: { 'retry-after': '1' } } : undefined;
    });
    const meter = new Meter({ url: ingest.url, ...fastRetries });
    meter.trackManually(usage(1));
    await until(() => ingest.events.length === 1, 'delivery after Retry-After', 5000);
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(950);
    await meter.shutdown();
  });

  it('a server slower than the timeout: the attempt is abandoned and retried under the same key', async () => {
    const ingest = await ingestWith(({ attempt }) => (attempt === 1 ? { delayMs: 600 } : undefined));
    const meter = new Meter({ url: ingest.url, ...fastRetries, requestTimeout: 150 });
    const { event_id } = meter.trackManually(usage(1));
    await until(() => ingest.batches.length >= 2 && ingest.events.length >= 1, 'the retry', 5000);
    await new Promise((r) => setTimeout(r, 700));
    // The slow server may still have accepted the first attempt: a deduping backend sees one key, one event id.
    expect(new Set(ingest.batches.map((b: { headers: Record<string, string> }) => b.headers['idempotency-key'])).size).toBe(1);
    expect(new Set(ingest.events.map((e: { event_id: string }) => e.event_id))).toEqual(new Set([event_id]));
    expect(meter.stats().retried).toBeGreaterThanOrEqual(1);
    await meter.shutdown();
  });

  it('connection reset mid-request: retried and delivered once', async () => {
    const ingest = await ingestWith(({ attempt }) => (attempt === 1 ? { reset: true } : undefined));
    const meter = new Meter({ url: ingest.url, ...fastRetries });
    const ids = [meter.trackManually(usage(1)).event_id, meter.trackManually(usage(2)).event_id];
    await until(() => ingest.events.length >= 2, 'delivery after the reset', 5000);
    expectExactlyOnce(ingest, ids);
    await meter.shutdown();
  });

  it('a 400 on one batch: that batch is dropped and counted, later batches are fine', async () => {
    const errors: Error[] = [];
    const ingest = await ingestWith(({ index }) => (index === 0 ? { status: 400 } : undefined));
    const meter = new Meter({ url: ingest.url, ...fastRetries, maxBatchSize: 5, flushInterval: 60_000, onFlushError: (e) => errors.push(e) });
    for (let i = 0; i < 5; i++) meter.trackManually(usage(i));
    await meter.flush();
    const later = Array.from({ length: 5 }, (_, i) => meter.trackManually(usage(i)).event_id);
    await meter.flush();
    expectExactlyOnce(ingest, later);
    expect(meter.stats()).toMatchObject({ sent: 5, dropped: 5, failedBatches: 1, retried: 0, queued: 0 });
    expect(errors.map((e) => e.message)).toEqual(['ingest answered HTTP 400']);
    await meter.shutdown();
  });

  it('shutdown() waits for queued and in-flight events, bounded by shutdownTimeout', async () => {
    const slow = await ingestWith(() => ({ delayMs: 200 }));
    const meter = new Meter({ url: slow.url, ...fastRetries, flushInterval: 60_000 });
    for (let i = 0; i < 120; i++) meter.trackManually(usage(i));
    await meter.shutdown();
    expect(slow.events).toHaveLength(120);

    const dead = new Meter({ url: `http://127.0.0.1:${await freePort()}/ingest`, ...fastRetries, shutdownTimeout: 300 });
    dead.trackManually(usage(1));
    const started = Date.now();
    await dead.shutdown();
    expect(Date.now() - started).toBeLessThan(1500);
    expect(dead.stats().queued).toBe(1);
  });
});

describe('the way out of the process', () => {
  const script = (url: string, body: string) =>
    `const { Meter } = require('llm-meter');
const meter = new Meter({ url: ${JSON.stringify(url)}, flushInterval: 60000 });
for (let i = 0; i < 40; i++) meter.trackManually({ provider: 'openai', model: 'gpt-4o', input_tokens: i, output_tokens: 1 });
${body}`;

  it('an app that just ends: the queue is flushed on beforeExit, and the process exits', async () => {
    const ingest = await ingestWith();
    const run = await runNode(['-e', script(ingest.url, `console.log('end of script');`)], { cwd: repoRoot, timeoutMs: 8000 });
    expect(run).toMatchObject({ code: 0, signal: null });
    expect(ingest.events).toHaveLength(40);
  });

  it('SIGTERM while a batch is in flight: the child exits by the signal and the ingest has every event', async () => {
    const ingest = await ingestWith(() => ({ delayMs: 300 }));
    const run = await runNode(
      ['-e', script(ingest.url, `meter.flush(); setTimeout(() => process.kill(process.pid, 'SIGTERM'), 50); setInterval(() => {}, 1000);`)],
      { cwd: repoRoot, timeoutMs: 8000 },
    );
    expect(run.signal).toBe('SIGTERM');
    expect(ingest.events).toHaveLength(40);
  });

  it("SIGINT with the app's own handler: the handler runs, the agent flushes, and the app decides when to exit", async () => {
    const ingest = await ingestWith(() => ({ delayMs: 100 }));
    const run = await runNode(
      [
        '-e',
        script(
          ingest.url,
          `process.on('SIGINT', () => { console.log('app handler ran'); setTimeout(() => process.exit(7), 800); });
setTimeout(() => process.kill(process.pid, 'SIGINT'), 50); setInterval(() => {}, 1000);`,
        ),
      ],
      { cwd: repoRoot, timeoutMs: 8000 },
    );
    expect(run.stdout).toContain('app handler ran');
    expect(run.code).toBe(7);
    expect(ingest.events).toHaveLength(40);
  });

  it('process.exit() from user code: the usage file is written synchronously; the network cannot be', async () => {
    const { mkdtempSync, readFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const file = join(mkdtempSync(join(tmpdir(), 'llm-meter-file-')), 'usage.jsonl');
    const run = await runNode(
      ['-e', `const { Meter } = require('llm-meter'); const meter = new Meter({ file: ${JSON.stringify(file)}, flushInterval: 60000 });
for (let i = 0; i < 3; i++) meter.trackManually({ provider: 'openai', model: 'gpt-4o', input_tokens: i, output_tokens: 1 });
process.exit(0);`],
      { cwd: repoRoot },
    );
    expect(run.code).toBe(0);
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((e) => e.input_tokens)).toEqual([0, 1, 2]);
  });
});

describe('formats and sinks', () => {
  it("format: 'cloudevents' sends a CloudEvents 1.0 batch", async () => {
    const ingest = await ingestWith();
    const meter = new Meter({ url: ingest.url, format: 'cloudevents', handleExit: false });
    const event = meter.forTenant('acme', () => meter.trackManually(usage(3)));
    await meter.shutdown();
    const batch = ingest.batches[0]!;
    expect(batch.headers['content-type']).toBe('application/cloudevents-batch+json');
    expect(batch.body[0]).toMatchObject({ specversion: '1.0', id: event.event_id, type: 'llm.usage', subject: 'acme', time: event.timestamp });
    expect(ingest.events[0]).toEqual(JSON.parse(JSON.stringify(event)));
  });

  it('CloudEvents have the same source in every process (so a redelivery is deduplicated) and always a subject', async () => {
    // Receivers dedupe on (source, id) and OpenMeter refuses a whole batch with an event without subject: a source of
    // host and pid made another process's redelivery a new event, and an event without tenant cost the batch.
    const ingest = await ingestWith();
    const app = `
      const { Meter } = require('llm-meter');
      const meter = new Meter({ url: process.env.INGEST, format: 'cloudevents', handleExit: false });
      meter.trackManually({ provider: 'openai', model: 'gpt-4o', input_tokens: 1, output_tokens: 1 });
      meter.shutdown();
    `;
    for (let i = 0; i < 2; i++) expect((await runNode(['-e', app], { env: { INGEST: ingest.url } })).code).toBe(0);
    const sent = ingest.batches.flatMap((b) => b.body);
    expect(sent.map((ce) => [ce.source, ce.subject])).toEqual([['llm-meter', 'unattributed'], ['llm-meter', 'unattributed']]);
    const meter = new Meter({ sinks: [{ type: 'http', url: ingest.url, format: 'cloudevents', source: 'shop-api', subject: 'internal' }], handleExit: false });
    meter.trackManually(usage(1));
    await meter.shutdown();
    expect(ingest.batches.at(-1)!.body[0]).toMatchObject({ source: 'shop-api', subject: 'internal' });
  });

  it("a run's outcome event travels with the usage events, as llm.outcome in CloudEvents form", async () => {
    const ingest = await ingestWith();
    const meter = new Meter({ url: ingest.url, format: 'cloudevents', handleExit: false });
    const call = meter.forTenant('acme', () => meter.forRun('ticket-7', () => meter.trackManually(usage(3))));
    const outcome = meter.resolve({ runId: 'ticket-7', outcome: 'resolved', revenueUsd: 0.5 });
    await meter.shutdown();
    const sent = ingest.batches.flatMap((b) => b.body);
    expect(sent.map((ce) => [ce.type, ce.id, ce.subject])).toEqual([
      ['llm.usage', call.event_id, 'acme'],
      ['llm.outcome', outcome.event_id, 'acme'],
    ]);
    expect(sent[1].data).toEqual(JSON.parse(JSON.stringify(outcome)));
    expect(outcome).toMatchObject({ type: 'outcome', run_id: 'ticket-7', outcome: 'resolved', revenue_usd: 0.5, calls: 1, cost_usd: call.cost_usd });
  });

  it('file: appends one JSON event per line, with or without url', async () => {
    const { mkdtempSync, readFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const file = join(mkdtempSync(join(tmpdir(), 'llm-meter-file-')), 'usage.jsonl');
    const ingest = await ingestWith();
    const meter = new Meter({ url: ingest.url, file, handleExit: false });
    for (let i = 0; i < 4; i++) meter.trackManually(usage(i));
    await meter.shutdown();
    expect(readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l).input_tokens)).toEqual([0, 1, 2, 3]);
    expect(ingest.events).toHaveLength(4);
  });
});
