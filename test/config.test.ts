import { describe, expect, it } from 'vitest';
import { ConfigError, Meter, collectingMeter, repoRoot, requireFromRepo, runNode } from './helpers.js';

describe('Meter options', () => {
  it.each([
    [{ flushInterval: -5 }, /flushInterval must be a positive integer, got -5/],
    [{ flushInterval: Number.NaN }, /flushInterval must be a positive integer, got NaN/],
    [{ maxBatchSize: 0 }, /maxBatchSize must be a positive integer, got 0/],
    [{ maxQueueSize: 1.5 }, /maxQueueSize must be a positive integer, got 1.5/],
    [{ maxQueueSize: 10, maxBatchSize: 20 }, /maxQueueSize \(10\) must be at least maxBatchSize \(20\)/],
    [{ url: 'not a url' }, /url must be an absolute http\(s\) URL/],
    [{ url: 'ftp://example.com/x' }, /url must use http or https, got protocol "ftp:"/],
    // Values in the wrong type are quoted as what they are; a format is checked with or without url.
    [{ format: 'xml' }, /format must be one of 'json', 'cloudevents', got "xml"/],
    [{ flushInterval: '50' }, /flushInterval must be a positive integer, got "50"/],
    [{ limits: { redis: 'redis://127.0.0.1:1', leaseMs: '50' } }, /limits\.leaseMs must be a positive integer, got "50"/],
    [{ patches: ['openai', 'cohere'] }, /patches: unknown provider "cohere"/],
    [{ onEvent: 'log' }, /onEvent must be a function, got "log"/],
    [{ onFlushError: 42 }, /onFlushError must be a function, got 42/],
    [{ debug: 'yes' }, /debug must be a boolean, got "yes"/],
    [{ apiKey: '' }, /apiKey must be a non-empty string/],
    [{ flushIntervl: 5 }, /unknown Meter option "flushIntervl"/],
  ])('%o is refused with a message naming the field and value', (options, message) => {
    expect(() => new Meter(options as any)).toThrow(ConfigError);
    expect(() => new Meter(options as any)).toThrow(message);
  });

  it('a url with credentials never shows them in an error or a debug line', async () => {
    const run = await runNode(
      ['-e', `const { Meter } = require('llm-meter'); const m = new Meter({ url: 'http://user:hunter2pass@127.0.0.1:1/ingest', apiKey: 'sk-ingest-secret', debug: true, flushInterval: 5 }); m.trackManually({ provider: 'openai', model: 'x', input_tokens: 1, output_tokens: 1 }); setTimeout(() => m.shutdown(), 100);`],
      { cwd: repoRoot },
    );
    expect(run.stderr).toContain('[llm-meter]');
    expect(run.stderr).not.toContain('hunter2pass');
    expect(run.stderr).not.toContain('sk-ingest-secret');
  });
});

describe('tenant scopes', () => {
  it.each([['   '], ['\t\n'], ['acme\u0000'], ['acme\r\nX-Injected: 1'], ['\u0085acme']])('tenant id %j (blank or with control characters) is refused as the empty id is', async (id) => {
    const { meter } = collectingMeter();
    const { TenantIdError } = requireFromRepo('llm-meter') as typeof import('llm-meter');
    expect(() => meter.forTenant(id, () => 1)).toThrow(TenantIdError);
    expect(() => meter.forTenant(id, () => 1)).toThrow(/tenantId must not (be only whitespace|contain control characters), got "/);
    await expect(meter.setLimit(id, { limitUsd: 1, frequency: 'per_day' })).rejects.toMatchObject({ name: 'TenantIdError' });
    expect(() => meter.wrap({}, { customerId: id })).toThrow(TenantIdError);
  });

  it.each([[''], [42], [null], ['x'.repeat(257)]])('tenant id %j is refused with a clear error', (id) => {
    const { meter } = collectingMeter();
    expect(() => meter.forTenant(id as any, () => 1)).toThrow(/tenantId must be a non-empty string of at most 256 characters/);
    expect(() => meter.setTenant(id as any)).toThrow(ConfigError);
    expect(() => meter.setTenant(id as any)).toThrow(expect.objectContaining({ name: 'TenantIdError' }));
  });

  it('forTenant returns what fn returns, sync or promise; innermost scope wins', async () => {
    const { meter, events } = collectingMeter();
    expect(meter.forTenant('a', () => 7)).toBe(7);
    await expect(meter.forTenant('a', async () => 8)).resolves.toBe(8);
    meter.forTenant('outer', () => {
      meter.trackManually({ provider: 'openai', model: 'm', input_tokens: 1, output_tokens: 1 });
      meter.forTenant('inner', () => meter.trackManually({ provider: 'openai', model: 'm', input_tokens: 1, output_tokens: 1 }));
    });
    expect(events.map((e) => e.tenant_id)).toEqual(['outer', 'inner']);
  });

  it('setTenant applies to the rest of the current async context only', async () => {
    const { meter, events } = collectingMeter();
    const track = () => meter.trackManually({ provider: 'openai', model: 'm', input_tokens: 1, output_tokens: 1 });
    await Promise.all([
      (async () => {
        meter.setTenant('req-1');
        await new Promise((r) => setTimeout(r, 5));
        track();
      })(),
      (async () => {
        meter.setTenant('req-2');
        track();
      })(),
    ]);
    expect(events.map((e) => e.tenant_id).sort()).toEqual(['req-1', 'req-2']);
  });

  it('scope tags are copied onto events', () => {
    const { meter, events } = collectingMeter();
    meter.forTenant('a', () => meter.trackManually({ provider: 'openai', model: 'm', input_tokens: 1, output_tokens: 1 }), { tags: { feature: 'search' } });
    expect(events[0].tags).toEqual({ feature: 'search' });
    expect(() => meter.forTenant('a', () => 1, { tags: { n: 1 as any } })).toThrow(/tags.n must be a string, got 1/);
  });
});

describe('trackManually', () => {
  it('records a complete event with the scope tenant and computed total', () => {
    const { meter, events } = collectingMeter();
    meter.forTenant('acme', () => meter.trackManually({ provider: 'aws', model: 'llama', input_tokens: 10, output_tokens: 5, cached_tokens: 2 }));
    expect(events[0]).toMatchObject({ tenant_id: 'acme', provider: 'aws', model: 'llama', endpoint: 'manual', total_tokens: 15, cached_tokens: 2, stream: false });
    expect(events[0].event_id).toMatch(/^[0-9a-f-]{36}$/);
  });

  it.each([
    [{ provider: '', model: 'm', input_tokens: 1, output_tokens: 1 }, /provider must be a non-empty string, got ""/],
    [{ provider: 'p', model: 'm', input_tokens: -1, output_tokens: 1 }, /input_tokens must be a finite, non-negative number, got -1/],
    [{ provider: 'p', model: 'm', input_tokens: 1, output_tokens: Infinity }, /output_tokens must be a finite, non-negative number, got Infinity/],
    [{ provider: 'p', model: 'm', input_tokens: 1, output_tokens: 1, colour: 'red' }, /unknown field "colour"/],
    [{ provider: 'p', model: 'm', input_tokens: 1, output_tokens: 1, tenant_id: '' }, /tenant_id must be a non-empty string/],
  ])('%o is refused', (usage, message) => {
    const { meter } = collectingMeter();
    expect(() => meter.trackManually(usage as any)).toThrow(message);
  });
});

describe('the package entry points', () => {
  it('import and require give the same Meter and LimitExceededError', async () => {
    const run = await runNode(
      [
        '--input-type=module',
        '-e',
        `import { Meter, LimitExceededError } from 'llm-meter'; import { createRequire } from 'node:module';
const cjs = createRequire(import.meta.url)('llm-meter');
console.log(typeof Meter, typeof LimitExceededError, cjs.Meter === Meter, cjs.LimitExceededError === LimitExceededError);`,
      ],
      { cwd: repoRoot },
    );
    expect(run.stdout.trim()).toBe('function function true true');
  });
});
