// The OpenTelemetry GenAI client metrics of each call, read back with the OpenTelemetry SDK's in-memory exporter: real
// SDK calls (plain and streamed) against the fake providers, and the numbers derived from each provider's usage.
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader, type DataPoint, type Histogram } from '@opentelemetry/sdk-metrics';
import { metrics } from '@opentelemetry/api';
import { afterAll, describe, expect, it } from 'vitest';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { ConfigError, LimitExceededError, Meter } from './helpers.js';
import type { UsageEvent } from 'llm-meter';

const fake = await startFakeProviders();
afterAll(() => fake.close());

/** A MeterProvider whose every export lands in memory, read by flushing it. */
function otel() {
  const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  // The interval is never waited for: forceFlush collects.
  const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
  const provider = new MeterProvider({ readers: [reader] });
  const points = async (name: string) => {
    await reader.forceFlush();
    const latest = exporter.getMetrics().at(-1);
    const metric = latest?.scopeMetrics.flatMap((s) => s.metrics).find((m) => m.descriptor.name === name);
    return { descriptor: metric?.descriptor, points: (metric?.dataPoints ?? []) as DataPoint<Histogram | number>[] };
  };
  return { provider, points, shutdown: () => provider.shutdown() };
}

const sum = (p: DataPoint<Histogram | number>) => (typeof p.value === 'number' ? p.value : p.value.sum!);
const count = (p: DataPoint<Histogram | number>) => (typeof p.value === 'number' ? 1 : p.value.count);

describe('OpenTelemetry GenAI metrics', () => {
  it('token usage, duration and cost of OpenAI calls, plain and streamed, with the conventions\' attributes and the tenant', async () => {
    const { provider, points, shutdown } = otel();
    const events: UsageEvent[] = [];
    const meter = new Meter({ handleExit: false, openTelemetry: { meterProvider: provider }, onEvent: (e) => events.push(e) });
    const openai = meter.instrument(new OpenAI({ apiKey: 'sk-test-key', baseURL: fake.openaiBaseURL, maxRetries: 0 }));
    await meter.forTenant('acme', async () => {
      await openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] });
      const stream = await openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], stream: true });
      for await (const _chunk of stream);
    });
    expect(events).toHaveLength(2);
    const tokens = await points('gen_ai.client.token.usage');
    expect(tokens.descriptor).toMatchObject({ unit: '{token}' });
    const input = tokens.points.filter((p) => p.attributes['gen_ai.token.type'] === 'input');
    const output = tokens.points.filter((p) => p.attributes['gen_ai.token.type'] === 'output');
    expect(input.reduce((n, p) => n + sum(p), 0)).toBe(events.reduce((n, e) => n + e.input_tokens, 0));
    expect(output.reduce((n, p) => n + sum(p), 0)).toBe(events.reduce((n, e) => n + e.output_tokens, 0));
    expect(input.reduce((n, p) => n + count(p), 0)).toBe(2);
    expect(input[0]!.attributes).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai',
      'gen_ai.request.model': 'gpt-4o',
      'gen_ai.response.model': events[0]!.model,
      'server.address': '127.0.0.1',
      'llm_meter.tenant_id': 'acme',
    });
    const duration = await points('gen_ai.client.operation.duration');
    expect(duration.descriptor).toMatchObject({ unit: 's' });
    expect(duration.points.reduce((n, p) => n + count(p), 0)).toBe(2);
    expect(duration.points.reduce((n, p) => n + sum(p), 0)).toBeCloseTo(events.reduce((n, e) => n + e.duration_ms / 1000, 0), 9);
    const cost = await points('llm_meter.client.cost');
    expect(cost.points.reduce((n, p) => n + sum(p), 0)).toBeCloseTo(events.reduce((n, e) => n + e.cost_usd!, 0), 12);
    await meter.shutdown();
    await shutdown();
  });

  it("Anthropic's input counts its cache reads and writes, as the conventions say; a refused call is an error.type", async () => {
    const { provider, points, shutdown } = otel();
    const events: UsageEvent[] = [];
    const meter = new Meter({ handleExit: false, openTelemetry: { meterProvider: provider, tenantAttribute: false }, onEvent: (e) => events.push(e) });
    const anthropic = meter.instrument(new Anthropic({ apiKey: 'sk-ant-test', baseURL: fake.anthropicBaseURL, maxRetries: 0 }));
    // Anthropic bills input_tokens (uncached), cache_read_input_tokens and cache_creation_input_tokens apart.
    const usage = { input_tokens: 20, cache_read_input_tokens: 300, cache_creation_input_tokens: 50, output_tokens: 7 };
    await meter.forTenant('acme', () =>
      anthropic.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-fake-usage': JSON.stringify(usage) } }),
    );
    await meter.setLimit('capped', { limitUsd: 0, frequency: 'per_day' });
    await expect(
      meter.forTenant('capped', () => anthropic.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] })),
    ).rejects.toBeInstanceOf(LimitExceededError);
    const tokens = await points('gen_ai.client.token.usage');
    const input = tokens.points.find((p) => p.attributes['gen_ai.token.type'] === 'input')!;
    expect(sum(input)).toBe(20 + 300 + 50);
    expect(sum(tokens.points.find((p) => p.attributes['gen_ai.token.type'] === 'output')!)).toBe(7);
    expect(input.attributes).toMatchObject({ 'gen_ai.provider.name': 'anthropic', 'gen_ai.operation.name': 'chat' });
    expect(Object.keys(input.attributes)).not.toContain('llm_meter.tenant_id');
    // The refused call never reached the provider: no tokens, one duration with its error type.
    expect(count(input)).toBe(1);
    const refused = (await points('gen_ai.client.operation.duration')).points.filter((p) => p.attributes['error.type'] === 'LimitExceededError');
    expect(refused.reduce((n, p) => n + count(p), 0)).toBe(1);
    expect(events.map((e) => e.error)).toEqual([undefined, 'LimitExceededError']);
    await meter.shutdown();
    await shutdown();
  });

  it('openTelemetry: true takes the global MeterProvider, as an app with the OpenTelemetry SDK registers it', async () => {
    const { provider, points, shutdown } = otel();
    metrics.setGlobalMeterProvider(provider);
    try {
      const meter = new Meter({ handleExit: false, openTelemetry: true });
      meter.trackManually({ provider: 'anthropic', model: 'claude-sonnet-4-5', input_tokens: 10, cached_tokens: 90, output_tokens: 5, tenant_id: 't' });
      const input = (await points('gen_ai.client.token.usage')).points.find((p) => p.attributes['gen_ai.token.type'] === 'input')!;
      // A manual event of Anthropic counts input as Anthropic does: cache reads apart, added back here.
      expect(sum(input)).toBe(100);
      await meter.shutdown();
    } finally {
      metrics.disable();
      await shutdown();
    }
  });

  it('a MeterProvider that throws costs the app nothing: the fault is counted', async () => {
    const throwing = { getMeter: () => ({ createHistogram: () => ({ record: () => { throw new Error('exporter down'); } }), createCounter: () => ({ add: () => undefined }) }) };
    const meter = new Meter({ handleExit: false, openTelemetry: { meterProvider: throwing } });
    expect(() => meter.trackManually({ provider: 'openai', model: 'gpt-4o', input_tokens: 1, output_tokens: 1 })).not.toThrow();
    expect(meter.faults).toBe(1);
    await meter.shutdown();
  });

  it.each([
    [{ openTelemetry: 'yes' }, /openTelemetry must be true or \{ meterProvider\?, tenantAttribute\? \}, got "yes"/],
    [{ openTelemetry: { meterProvider: {} } }, /openTelemetry.meterProvider must be an OpenTelemetry MeterProvider \(with getMeter\), got an object/],
    [{ openTelemetry: { tenantAttribute: '' } }, /openTelemetry.tenantAttribute must be an attribute name or false, got ""/],
    [{ openTelemetry: { exporter: 'otlp' } }, /unknown openTelemetry option "exporter"/],
  ])('refuses %o, naming the field and the value', (options, message) => {
    expect(() => new Meter({ handleExit: false, ...(options as object) })).toThrow(ConfigError);
    expect(() => new Meter({ handleExit: false, ...(options as object) })).toThrow(message);
  });
});
