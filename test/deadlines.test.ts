// Hard deadlines: whatever a peer does — here, answer 200 and then drip one byte every 300 ms, never ending — the agent
// never holds the app past its own deadlines, and every event recorded is accounted for.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ManualUsage, MeterOptions, UsageEvent } from 'llm-meter';
import { startFakeIngest } from './fixtures/fake-ingest.mjs';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { ConfigError, Meter, repoRoot, requireFrom, requireFromRepo, runNode, stderrOf, until } from './helpers.js';

const { LimitStoreUnavailableError } = requireFromRepo('llm-meter') as typeof import('llm-meter');
const { Batcher } = requireFromRepo('./dist/transport/batcher.js');
const { BoundedQueue } = requireFromRepo('./dist/transport/queue.js');
const { HttpSender } = requireFromRepo('./dist/transport/http-sender.js');

/** What the upper bounds below allow on top of a deadline: timers firing late on a busy machine, a process torn down. */
const MARGIN_MS = 2000;

interface Drip {
  url: string;
  requests: { method: string; path: string; at: number }[];
  /** Connections still open. */
  open(): number;
  close(): Promise<void>;
}

/**
 * A peer that answers every request 200 with its headers, then one byte every 300 ms, and never ends; `answer` may
 * answer some requests properly instead, `onRequest` sees each one as it arrives.
 */
async function startDrip(
  options: { answer?: (req: IncomingMessage) => { status: number; body?: unknown } | undefined; onRequest?: (req: IncomingMessage) => void } = {},
): Promise<Drip> {
  const requests: Drip['requests'] = [];
  const sockets = new Set<Socket>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    requests.push({ method: req.method!, path: req.url!, at: Date.now() });
    req.resume();
    const answer = options.answer?.(req);
    if (answer !== undefined) {
      res.writeHead(answer.status, { 'content-type': 'application/json' }).end(answer.body === undefined ? undefined : JSON.stringify(answer.body));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).write(' ');
    const drip = setInterval(() => res.write(' '), 300);
    res.on('close', () => clearInterval(drip));
    options.onRequest?.(req);
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    open: () => sockets.size,
    close: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

const peers: Array<{ close(): Promise<void> }> = [];
async function drip(options?: Parameters<typeof startDrip>[0]): Promise<Drip> {
  const peer = await startDrip(options);
  peers.push(peer);
  return peer;
}
const fake = await startFakeProviders();
afterAll(() => Promise.all([fake.close(), ...peers.map((p) => p.close())]));

const meters: Array<InstanceType<typeof Meter>> = [];
afterEach(async () => {
  await Promise.all(meters.splice(0).map((m) => m.shutdown()));
  fake.reset();
});
function meterOf(options: MeterOptions): InstanceType<typeof Meter> {
  const meter = new Meter({ handleExit: false, onFlushError: () => undefined, ...options });
  meters.push(meter);
  return meter;
}

const usage = (i: number): ManualUsage => ({ provider: 'openai', model: 'gpt-4o', input_tokens: i, output_tokens: 1 });
const { OpenAI } = requireFrom(repoRoot, 'openai');
const messages = [{ role: 'user', content: 'x' }];

/** queued + sent + dropped: every event recorded is, at any time, exactly one of them. */
const accountedFor = (meter: InstanceType<typeof Meter>): number => {
  const { queued, sent, dropped } = meter.stats();
  return queued + sent + dropped;
};

describe('shutdown() against an ingest that drips its answer', () => {
  it('returns within shutdownTimeout, abandons the request in flight, and warns once with the count', async () => {
    const ingest = await drip();
    const meter = meterOf({ url: `${ingest.url}/ingest`, shutdownTimeout: 1000, flushInterval: 60_000 });
    for (let i = 0; i < 3; i++) meter.trackManually(usage(i));
    void meter.flush();
    await until(() => ingest.requests.length === 1, 'the POST at the ingest');
    let took = 0;
    const stderr = await stderrOf(async () => {
      const started = Date.now();
      await meter.shutdown();
      took = Date.now() - started;
    });
    expect(took).toBeLessThan(1000 + MARGIN_MS);
    expect(meter.stats()).toMatchObject({ queued: 3, sent: 0, dropped: 0 });
    const warnings = stderr.split('\n').filter((line) => line.includes('usage event'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/shutdown.*3 usage event\(s\) not delivered to the ingest/);
    // Nothing of the agent's lingers on the wire to hold the process once shutdown() has returned.
    await until(() => ingest.open() === 0, 'the abandoned connection to close', 5000);
  });
});

describe('Retry-After', () => {
  const hugeRetryAfter = async () => {
    const ingest = await startFakeIngest({ respondWith: ({ attempt }) => (attempt === 1 ? { status: 429, headers: { 'retry-after': '99999999' } } : undefined) });
    peers.push(ingest);
    return ingest;
  };
  const warnings: string[] = [];
  const onWarning = (w: Error): void => void warnings.push(w.name);
  beforeEach(() => {
    warnings.length = 0;
    process.on('warning', onWarning);
  });
  afterEach(() => void process.off('warning', onWarning));

  it('a huge Retry-After prints no TimeoutOverflowWarning in the app', async () => {
    const ingest = await hugeRetryAfter();
    const meter = meterOf({ url: ingest.url, flushInterval: 20 });
    meter.trackManually(usage(1));
    // The retry's timer is set with the count; Node would emit the warning on the next tick.
    await until(() => meter.stats().retried === 1, 'the 429');
    await new Promise((resolve) => setImmediate(resolve));
    expect(warnings).not.toContain('TimeoutOverflowWarning');
  });

  it('a huge Retry-After is capped at the backoff maximum: delivery goes on', async () => {
    const ingest = await hugeRetryAfter();
    const sender = new HttpSender({ url: new URL(ingest.url), apiKey: undefined, timeoutMs: 5000, format: 'json', source: 'test' });
    const batcher = new Batcher(new BoundedQueue(10), sender, {
      flushInterval: 20,
      maxBatchSize: 10,
      maxQueueSize: 10,
      backoff: { baseMs: 10, maxMs: 300 },
      onError: () => undefined,
    });
    try {
      batcher.start();
      batcher.add({ event_id: 'e1', timestamp: new Date().toISOString() });
      // The ingest has the event before the batcher has read the answer: wait for the batcher's own count.
      await until(() => batcher.counts.sent === 1, 'delivery after the capped wait', 10_000);
      expect(ingest.events).toHaveLength(1);
      expect(batcher.counts).toMatchObject({ sent: 1, retried: 1 });
      expect(warnings).not.toContain('TimeoutOverflowWarning');
    } finally {
      batcher.stop();
    }
  });
});

describe('every event accounted for', () => {
  it('an event recorded after shutdown() reaches onEvent and counts as dropped; trackManually and setLimit are refused, forTenant still runs fn', async () => {
    const ingest = await startFakeIngest();
    peers.push(ingest);
    const events: UsageEvent[] = [];
    const meter = meterOf({ url: ingest.url, onEvent: (e) => events.push(e) });
    const client = meter.instrument(new OpenAI({ apiKey: 'k', baseURL: fake.openaiBaseURL, maxRetries: 0 }));
    meter.trackManually(usage(1));
    // A stream started before shutdown() and read to its end after it: its event is recorded after shutdown.
    const stream = await client.chat.completions.create(
      { model: 'gpt-4o', messages, stream: true, stream_options: { include_usage: true } },
      { headers: { 'x-fake-chunks': '3', 'x-fake-delay-ms': '50' } },
    );
    await meter.shutdown();
    expect(accountedFor(meter)).toBe(events.length);
    for await (const _ of stream);
    await until(() => events.length === 2, 'the late event at onEvent');
    expect(accountedFor(meter)).toBe(2);
    expect(meter.stats()).toMatchObject({ queued: 0, sent: 1, dropped: 1 });

    expect(() => meter.trackManually(usage(2))).toThrow(ConfigError);
    expect(() => meter.trackManually(usage(2))).toThrow(/trackManually.*shut down/);
    await expect(meter.setLimit('acme', { limitUsd: 1, frequency: 'per_day' })).rejects.toThrow(ConfigError);
    await expect(meter.setLimit('acme', { limitUsd: 1, frequency: 'per_day' })).rejects.toThrow(/setLimit.*shut down/);
    expect(meter.forTenant('acme', () => 'ran')).toBe('ran');
    expect(events).toHaveLength(2);
    expect(accountedFor(meter)).toBe(2);
    expect(ingest.events).toHaveLength(1);
  });
});

describe('the signal path (a real child process)', () => {
  const app = join(repoRoot, 'test/apps/deadline-sigterm.cjs');

  it('SIGTERM while the ingest drips: the process ends by the signal within shutdownTimeout, saying what was lost', async () => {
    const ingest = await drip();
    const run = await runNode([app], { env: { INGEST_URL: `${ingest.url}/ingest`, SHUTDOWN_TIMEOUT: '1000' }, timeoutMs: 25_000 });
    const ended = Date.now();
    expect(run.signal).toBe('SIGTERM');
    expect(ingest.requests).toHaveLength(1);
    expect(ended - ingest.requests[0]!.at).toBeLessThan(1000 + MARGIN_MS);
    expect(run.stderr).toMatch(/3 usage event\(s\) not delivered to the ingest/);
  });

  it('a second SIGTERM while flushing ends the process at once, the way it would without the agent', async () => {
    let secondSignalAt = 0;
    const ingest = await drip({
      onRequest: (req) => {
        secondSignalAt = Date.now();
        process.kill(Number(/\/(\d+)$/.exec(req.url!)![1]), 'SIGTERM');
      },
    });
    const run = await runNode([app], { env: { INGEST_URL: `${ingest.url}/ingest`, SHUTDOWN_TIMEOUT: '15000' }, timeoutMs: 25_000 });
    const ended = Date.now();
    expect(run.signal).toBe('SIGTERM');
    expect(secondSignalAt).toBeGreaterThan(0);
    expect(ended - secondSignalAt).toBeLessThan(MARGIN_MS);
  });
});

describe('the limits backend drips its answers', () => {
  const limitAnswer = [{ frequency: 'per_month', limit_usd: 1, spent_usd: 0, resets_at: '2999-01-01T00:00:00Z' }];

  it.each(['open', 'closed'] as const)("failMode '%s': the app's call is held no longer than requestTimeout, then decided by the fail mode", async (failMode) => {
    const backend = await drip();
    const meter = meterOf({ limits: { url: `${backend.url}/api`, failMode }, requestTimeout: 1500 });
    const client = meter.instrument(new OpenAI({ apiKey: 'k', baseURL: fake.openaiBaseURL, maxRetries: 0 }));
    const started = Date.now();
    let outcome: unknown;
    await stderrOf(async () => {
      outcome = await meter.forTenant('t', () => client.chat.completions.create({ model: 'gpt-4o', max_tokens: 10, messages })).then(
        () => 'answered',
        (err: unknown) => err,
      );
    });
    expect(Date.now() - started).toBeLessThan(1500 + MARGIN_MS);
    expect(backend.requests.map((r) => r.method)).toEqual(['GET']);
    if (failMode === 'open') expect(outcome).toBe('answered');
    else expect(outcome).toBeInstanceOf(LimitStoreUnavailableError);
    expect(fake.count()).toBe(failMode === 'open' ? 1 : 0);
  });

  it('shutdown() with spend still to post returns within shutdownTimeout, and the process then ends on its own', async () => {
    const backend = await drip({ answer: (req) => (req.method === 'GET' ? { status: 200, body: limitAnswer } : undefined) });
    const run = await runNode([join(repoRoot, 'test/apps/deadline-backend.cjs')], {
      env: { BACKEND_URL: `${backend.url}/api`, OPENAI_BASE_URL: fake.openaiBaseURL, SHUTDOWN_TIMEOUT: '1000' },
      timeoutMs: 25_000,
    });
    const ended = Date.now();
    expect(run).toMatchObject({ code: 0, signal: null });
    const [, took, returnedAt] = /SHUTDOWN (\d+) (\d+)/.exec(run.stdout)!.map(Number);
    expect(backend.requests.map((r) => r.method)).toEqual(['GET', 'POST']);
    expect(fake.count()).toBe(1);
    expect(took).toBeLessThan(1000 + MARGIN_MS);
    expect(ended - returnedAt!).toBeLessThan(MARGIN_MS);
  });
});
