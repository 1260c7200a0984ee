import { afterAll, describe, expect, it } from 'vitest';
import { startFakeIngest } from './fixtures/fake-ingest.mjs';
import type { ManualUsage } from 'llm-meter';
import { Meter, tick, until } from './helpers.js';

const ingest = await startFakeIngest();
afterAll(() => ingest.close());

const usage = (i: number): ManualUsage => ({ provider: 'openai', model: 'gpt-4o', input_tokens: i, output_tokens: 1, tenant_id: `t${i % 3}` });

describe('batched delivery', () => {
  it('POSTs gzip JSON {"events":[...]} with the Bearer key on the flush timer', async () => {
    const start = ingest.batches.length;
    const meter = new Meter({ url: ingest.url, apiKey: 'ingest-secret', flushInterval: 50 });
    for (let i = 0; i < 5; i++) meter.trackManually(usage(i));
    await until(() => ingest.batches.length > start, 'the timed flush');
    const batch = ingest.batches[start];
    expect(batch.headers['content-encoding']).toBe('gzip');
    expect(batch.headers['content-type']).toBe('application/json');
    expect(batch.headers.authorization).toBe('Bearer ingest-secret');
    expect(batch.events.map((e: any) => e.input_tokens)).toEqual([0, 1, 2, 3, 4]);
    await meter.shutdown();
  });

  it('flushes early at maxBatchSize, in batches of at most that size', async () => {
    const start = ingest.batches.length;
    const meter = new Meter({ url: ingest.url, flushInterval: 60_000, maxBatchSize: 10 });
    for (let i = 0; i < 25; i++) meter.trackManually(usage(i));
    await until(() => ingest.batches.slice(start).reduce((n: number, b: any) => n + b.events.length, 0) >= 20, 'two early batches');
    const sizes = ingest.batches.slice(start).map((b: any) => b.events.length);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(10);
    await meter.flush();
    expect(ingest.batches.slice(start).reduce((n: number, b: any) => n + b.events.length, 0)).toBe(25);
    await meter.shutdown();
  });

  it('a failed POST goes to onFlushError and its events stay queued for the next flush', async () => {
    const errors: Error[] = [];
    let fail = true;
    ingest.respondWith(() => (fail ? { status: 503 } : undefined));
    const before = ingest.events.length;
    const meter = new Meter({ url: ingest.url, apiKey: 'ingest-secret', flushInterval: 60_000, onFlushError: (e) => errors.push(e) });
    for (let i = 0; i < 3; i++) meter.trackManually(usage(i));
    await meter.flush();
    expect(errors).toHaveLength(1);
    expect(errors[0].message).toMatch(/503/);
    expect(errors[0].message).not.toContain('ingest-secret');
    expect(meter.stats()).toMatchObject({ queued: 3, dropped: 0 });
    fail = false;
    await meter.flush();
    expect(ingest.events.length - before).toBe(3);
    expect(meter.stats().queued).toBe(0);
    ingest.respondWith(() => undefined);
    await meter.shutdown();
  });

  it('an unreachable ingest never throws into the app and never leaves an unhandled rejection', async () => {
    const errors: Error[] = [];
    const meter = new Meter({ url: 'http://127.0.0.1:1/ingest', flushInterval: 10, onFlushError: (e) => errors.push(e) });
    meter.trackManually(usage(1));
    await until(() => errors.length >= 2, 'repeated flush failures');
    expect(meter.stats().queued).toBe(1);
    await meter.shutdown();
  });

  it('overflow drops the OLDEST events and counts them', async () => {
    ingest.respondWith(() => ({ status: 500 }));
    const meter = new Meter({ url: ingest.url, flushInterval: 60_000, maxBatchSize: 2, maxQueueSize: 5, onFlushError: () => undefined });
    for (let i = 0; i < 8; i++) meter.trackManually(usage(i));
    expect(meter.stats()).toMatchObject({ queued: 5, dropped: 3 });
    ingest.respondWith(() => undefined);
    const before = ingest.events.length;
    await meter.flush();
    expect(ingest.events.slice(before).map((e: any) => e.input_tokens)).toEqual([3, 4, 5, 6, 7]);
    await meter.shutdown();
  });

  it('without url nothing leaves the process: events reach onEvent only', async () => {
    const before = ingest.batches.length;
    const seen: unknown[] = [];
    const meter = new Meter({ onEvent: (e) => seen.push(e) });
    meter.trackManually(usage(1));
    await meter.flush();
    await tick(20);
    expect(seen).toHaveLength(1);
    expect(ingest.batches.length).toBe(before);
    expect(meter.stats()).toEqual({ queued: 0, sent: 0, dropped: 0, retried: 0, failedBatches: 0, sinks: {} });
    await meter.shutdown();
  });

  it('the flush timer never keeps a process alive', async () => {
    const { runNode, repoRoot } = await import('./helpers.js');
    const run = await runNode(
      ['-e', `const { Meter } = require('llm-meter'); const m = new Meter({ url: '${ingest.url}', flushInterval: 100000 }); m.trackManually({ provider: 'openai', model: 'x', input_tokens: 1, output_tokens: 1 }); console.log('end of script');`],
      { cwd: repoRoot, timeoutMs: 5000 },
    );
    expect(run.stdout).toContain('end of script');
    expect(run.signal).toBeNull();
    expect(run.code).toBe(0);
  });
});
