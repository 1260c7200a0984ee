import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { calcPrice } from '@pydantic/genai-prices';
import { startFakeBedrock } from './fixtures/fake-bedrock.mjs';
import { collectingMeter, eventsPrinted, LimitExceededError, patchingMeter, repoRoot, requireFromRepo, runNode, until } from './helpers.js';

// The SDK warns on Node 20 that later releases need Node 22: not what these tests are about.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

const fake = await startFakeBedrock();
afterAll(() => fake.close());

const { meter, events } = patchingMeter();

// The real SDK, talking HTTP/1.1 to the fake (the default handler speaks HTTP/2).
const B = requireFromRepo('@aws-sdk/client-bedrock-runtime');
const { NodeHttpHandler } = requireFromRepo('@smithy/node-http-handler');
const clientOptions = {
  region: 'us-east-1',
  endpoint: fake.url,
  credentials: { accessKeyId: 'AKIDFAKE', secretAccessKey: 'fake-secret' },
  requestHandler: new NodeHttpHandler(),
  maxAttempts: 1,
};
const client = new B.BedrockRuntimeClient(clientOptions);

const PROMPT = 'a prompt that must never leave the process';
const CLAUDE = 'us.anthropic.claude-sonnet-4-20250514-v1:0';
const messages = [{ role: 'user', content: [{ text: PROMPT }] }];
const invokeBody = JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 100, messages: [{ role: 'user', content: PROMPT }] });

/**
 * What Bedrock bills, priced by the library with provider 'aws': input (which EXCLUDES cache reads and writes in every
 * Bedrock usage report), cache reads and cache writes, each at its own rate, and output. The library's `input_tokens`
 * is the whole input, cache pools included, so they are added back.
 */
function expectedCost(model: string, u: { input: number; output: number; cacheRead?: number; cacheWrite?: number }): number {
  const cacheRead = u.cacheRead ?? 0;
  const cacheWrite = u.cacheWrite ?? 0;
  const price = calcPrice({ input_tokens: u.input + cacheRead + cacheWrite, cache_read_tokens: cacheRead, cache_write_tokens: cacheWrite, output_tokens: u.output }, model, { providerId: 'aws' });
  if (price === null) throw new Error(`no price for ${model}`);
  return price.total_price;
}

beforeEach(() => {
  events.length = 0;
  fake.reset();
});

/** Runs fn, then waits for one event per request the fake received (and checks there is exactly that many). */
async function metered(fn: () => Promise<unknown>): Promise<any[]> {
  await fn();
  const wanted = fake.count();
  await until(() => events.length >= wanted, `${wanted} events`);
  expect(events.length).toBe(wanted);
  return [...events];
}

const decode = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

describe('Converse', () => {
  it('one event: provider aws, model, tokens, request id, tenant, cost; no prompt text', async () => {
    let response: any;
    const [event] = await metered(async () => {
      response = await meter.forTenant('acme', () => client.send(new B.ConverseCommand({ modelId: CLAUDE, messages, inferenceConfig: { maxTokens: 100 } })));
    });
    expect(response.output.message.content[0].text).toBe('Hello from Bedrock');
    expect(event).toMatchObject({
      tenant_id: 'acme',
      provider: 'aws',
      endpoint: 'converse',
      model: CLAUDE,
      stream: false,
      input_tokens: 11,
      output_tokens: 7,
      total_tokens: 18,
      request_id: response.$metadata.requestId,
    });
    expect(event.request_id).toMatch(/^req-/);
    expect(event.error).toBeUndefined();
    expect(event.partial).toBeUndefined();
    // 11 input + 7 output at Claude Sonnet 4's Bedrock rates.
    expect(event.cost_usd).toBeCloseTo(expectedCost(CLAUDE, { input: 11, output: 7 }), 12);
    expect(event.cost_usd).toBeGreaterThan(0);
    expect(JSON.stringify(event)).not.toContain('never leave');
    expect(fake.requests[0].path).toBe(`/model/${CLAUDE}/converse`);
  });

  it('cache reads and writes: apart from input, each priced at its own rate', async () => {
    fake.steer({ usage: { inputTokens: 20, outputTokens: 30, cacheReadInputTokens: 1000, cacheWriteInputTokens: 500 } });
    const [event] = await metered(() => client.send(new B.ConverseCommand({ modelId: CLAUDE, messages })));
    expect(event).toMatchObject({ input_tokens: 20, output_tokens: 30, cached_tokens: 1000, cache_creation_tokens: 500, total_tokens: 1550 });
    // input 20 at the input rate, 1000 cache reads at the read rate, 500 cache writes at the write rate, 30 output.
    const expected = expectedCost(CLAUDE, { input: 20, output: 30, cacheRead: 1000, cacheWrite: 500 });
    expect(event.cost_usd).toBeCloseTo(expected, 12);
    // Not the price of 20 input tokens with the cache pools taken out of them.
    expect(event.cost_usd).toBeGreaterThan(expectedCost(CLAUDE, { input: 20, output: 30 }));
  });

  it('the aggregated client (BedrockRuntime.converse) and a base model id', async () => {
    const nova = 'amazon.nova-lite-v1:0';
    const aggregated = new B.BedrockRuntime(clientOptions);
    const [event] = await metered(() => aggregated.converse({ modelId: nova, messages }));
    expect(event).toMatchObject({ provider: 'aws', model: nova, endpoint: 'converse', input_tokens: 11, output_tokens: 7 });
    expect(event.cost_usd).toBeCloseTo(expectedCost(nova, { input: 11, output: 7 }), 12);
  });

  it('the callback form send(command, cb) and send(command, options, cb): metered, the callback gets the output', async () => {
    const viaCallback = (withOptions: boolean) =>
      new Promise<any>((resolve, reject) => {
        const cb = (err: unknown, data: any) => (err ? reject(err) : resolve(data));
        const command = new B.ConverseCommand({ modelId: CLAUDE, messages });
        meter.forTenant('cb', () => (withOptions ? client.send(command, {}, cb) : client.send(command, cb)));
      });
    const results: any[] = [];
    const recorded = await metered(async () => {
      results.push(await viaCallback(false), await viaCallback(true));
    });
    expect(results.map((r) => r.usage.totalTokens)).toEqual([18, 18]);
    expect(recorded.map((e) => [e.tenant_id, e.endpoint, e.total_tokens, e.request_id])).toEqual([
      ['cb', 'converse', 18, results[0].$metadata.requestId],
      ['cb', 'converse', 18, results[1].$metadata.requestId],
    ]);
  });

  it.each([400, 429, 500])('HTTP %i: the SDK error reaches the caller; one event with the error and the request id', async (status) => {
    fake.steer({ status });
    let caught: any;
    const [event] = await metered(async () => {
      caught = await meter.forTenant('err', () => client.send(new B.ConverseCommand({ modelId: CLAUDE, messages }))).catch((e: unknown) => e);
    });
    expect(caught.$metadata.httpStatusCode).toBe(status);
    expect(event).toMatchObject({ tenant_id: 'err', provider: 'aws', endpoint: 'converse', model: CLAUDE, error: caught.name, input_tokens: 0, output_tokens: 0, cost_usd: 0 });
    expect(event.request_id).toBe(caught.$metadata.requestId);
  });

  it('SDK retries (5xx) are one call: one event', async () => {
    fake.steer({ status: 503 });
    const retrying = new B.BedrockRuntimeClient({ ...clientOptions, maxAttempts: 2 });
    await retrying.send(new B.ConverseCommand({ modelId: CLAUDE, messages })).catch(() => undefined);
    expect(fake.count()).toBe(2);
    await until(() => events.length === 1, 'the event');
    // Every attempt has been answered: an event per attempt would have been recorded by now.
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ error: 'ServiceUnavailableException', request_id: 'req-2' });
  });
});

describe('ConverseStream', () => {
  const stream = () => client.send(new B.ConverseStreamCommand({ modelId: CLAUDE, messages }));

  it('complete: the caller gets every event; one event with the metadata usage', async () => {
    fake.steer({ usage: { cacheReadInputTokens: 40, cacheWriteInputTokens: 8 } });
    const seen: string[] = [];
    let output: any;
    const [event] = await metered(async () => {
      output = await meter.forTenant('s', stream);
      for await (const item of output.stream) seen.push(Object.keys(item)[0]!);
    });
    expect(seen).toEqual(['messageStart', 'contentBlockDelta', 'contentBlockDelta', 'contentBlockDelta', 'contentBlockStop', 'messageStop', 'metadata']);
    expect(event).toMatchObject({ tenant_id: 's', provider: 'aws', endpoint: 'converse.stream', stream: true, model: CLAUDE, input_tokens: 11, output_tokens: 7, cached_tokens: 40, cache_creation_tokens: 8, total_tokens: 66, request_id: output.$metadata.requestId });
    expect(event.partial).toBeUndefined();
    // 11 input, 40 cache reads, 8 cache writes, 7 output.
    expect(event.cost_usd).toBeCloseTo(expectedCost(CLAUDE, { input: 11, output: 7, cacheRead: 40, cacheWrite: 8 }), 12);
  });

  it('early break: one partial event', async () => {
    const [event] = await metered(async () => {
      const output = await stream();
      for await (const _ of output.stream) break;
    });
    expect(event).toMatchObject({ endpoint: 'converse.stream', stream: true, partial: true });
    expect(event.error).toBeUndefined();
  });

  it('an exception mid-stream reaches the caller; one partial event with the error', async () => {
    fake.steer({ streamError: true });
    let caught: any;
    const seen: string[] = [];
    const [event] = await metered(async () => {
      const output = await stream();
      try {
        for await (const item of output.stream) seen.push(Object.keys(item)[0]!);
      } catch (err) {
        caught = err;
      }
    });
    expect(seen).toEqual(['messageStart', 'contentBlockDelta']);
    expect(caught.name).toBe('ModelStreamErrorException');
    expect(event).toMatchObject({ endpoint: 'converse.stream', partial: true, error: 'ModelStreamErrorException' });
  });
});

describe('InvokeModel', () => {
  it('Anthropic body: the caller gets the same bytes; usage with cache pools from the body', async () => {
    fake.steer({ usage: { inputTokens: 5, outputTokens: 9, cacheReadInputTokens: 300, cacheWriteInputTokens: 12 } });
    let output: any;
    const [event] = await metered(async () => {
      output = await client.send(new B.InvokeModelCommand({ modelId: CLAUDE, body: invokeBody, contentType: 'application/json', accept: 'application/json' }));
    });
    const body = JSON.parse(decode(output.body));
    expect(body.usage).toEqual({ input_tokens: 5, cache_creation_input_tokens: 12, cache_read_input_tokens: 300, output_tokens: 9 });
    expect(output.body.transformToString()).toBe(decode(output.body));
    expect(event).toMatchObject({ provider: 'aws', endpoint: 'invoke_model', stream: false, model: CLAUDE, input_tokens: 5, output_tokens: 9, cached_tokens: 300, cache_creation_tokens: 12, total_tokens: 326, request_id: output.$metadata.requestId });
    // 5 input, 300 cache reads, 12 cache writes, 9 output.
    expect(event.cost_usd).toBeCloseTo(expectedCost(CLAUDE, { input: 5, output: 9, cacheRead: 300, cacheWrite: 12 }), 12);
    expect(JSON.stringify(event)).not.toContain('never leave');
  });

  it.each([
    ['Amazon Nova', 'us.amazon.nova-pro-v1:0', { messages: [{ role: 'user', content: [{ text: PROMPT }] }] }, 11, 7],
    ['Meta Llama', 'meta.llama3-1-8b-instruct-v1:0', { prompt: PROMPT }, 11, 7],
    ['Amazon Titan text', 'amazon.titan-text-express-v1', { inputText: PROMPT }, 11, 7],
  ])('%s body shape', async (_label, modelId, request, input, output) => {
    const [event] = await metered(() => client.send(new B.InvokeModelCommand({ modelId, body: JSON.stringify(request), contentType: 'application/json' })));
    expect(event).toMatchObject({ provider: 'aws', endpoint: 'invoke_model', model: modelId, input_tokens: input, output_tokens: output, total_tokens: input + output });
    expect(event.price_unknown).toBeUndefined();
    // Plain input and output at the model's Bedrock rates.
    expect(event.cost_usd).toBeCloseTo(expectedCost(modelId, { input, output }), 12);
  });

  it('Nova cache pools from the body', async () => {
    const nova = 'us.amazon.nova-pro-v1:0';
    fake.steer({ usage: { inputTokens: 3, outputTokens: 4, cacheReadInputTokens: 100 } });
    const [event] = await metered(() => client.send(new B.InvokeModelCommand({ modelId: nova, body: '{}' })));
    expect(event).toMatchObject({ input_tokens: 3, output_tokens: 4, cached_tokens: 100, cache_creation_tokens: 0, total_tokens: 107 });
    // 3 input, 100 cache reads, 4 output.
    expect(event.cost_usd).toBeCloseTo(expectedCost(nova, { input: 3, output: 4, cacheRead: 100 }), 12);
  });

  it('a 4xx: one error event', async () => {
    fake.steer({ status: 403 });
    const [event] = await metered(() => client.send(new B.InvokeModelCommand({ modelId: CLAUDE, body: invokeBody })).catch(() => undefined));
    expect(event).toMatchObject({ endpoint: 'invoke_model', error: 'AccessDeniedException', input_tokens: 0 });
    expect(event.request_id).toMatch(/^req-/);
  });
});

describe('InvokeModelWithResponseStream', () => {
  const stream = (modelId = CLAUDE) => client.send(new B.InvokeModelWithResponseStreamCommand({ modelId, body: invokeBody, contentType: 'application/json' }));

  it('complete: the caller gets every chunk, byte for byte; usage from the invocation metrics', async () => {
    fake.steer({ usage: { inputTokens: 14, outputTokens: 6, cacheReadInputTokens: 200, cacheWriteInputTokens: 0 } });
    const types: string[] = [];
    let output: any;
    let last: any;
    const [event] = await metered(async () => {
      output = await meter.forTenant('ims', () => stream());
      for await (const item of output.body) {
        last = JSON.parse(decode(item.chunk.bytes));
        types.push(last.type);
      }
    });
    expect(types).toEqual(['message_start', 'content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
    expect(last['amazon-bedrock-invocationMetrics']).toMatchObject({ inputTokenCount: 14, outputTokenCount: 6, cacheReadInputTokenCount: 200 });
    expect(event).toMatchObject({ tenant_id: 'ims', provider: 'aws', endpoint: 'invoke_model.stream', stream: true, model: CLAUDE, input_tokens: 14, output_tokens: 6, cached_tokens: 200, total_tokens: 220, request_id: output.$metadata.requestId });
    expect(event.partial).toBeUndefined();
    // 14 input, 200 cache reads, 6 output.
    expect(event.cost_usd).toBeCloseTo(expectedCost(CLAUDE, { input: 14, output: 6, cacheRead: 200 }), 12);
  });

  it('a Titan stream: the metrics on its last chunk', async () => {
    const titan = 'amazon.titan-text-express-v1';
    const [event] = await metered(async () => {
      const output = await stream(titan);
      for await (const _ of output.body);
    });
    expect(event).toMatchObject({ model: titan, input_tokens: 11, output_tokens: 7, total_tokens: 18 });
    expect(event.partial).toBeUndefined();
  });

  it('early break: one partial event', async () => {
    const [event] = await metered(async () => {
      const output = await stream();
      for await (const _ of output.body) break;
    });
    expect(event).toMatchObject({ endpoint: 'invoke_model.stream', partial: true, input_tokens: 0 });
  });

  it('an exception mid-stream: one partial event with the error', async () => {
    fake.steer({ streamError: true });
    let caught: any;
    const [event] = await metered(async () => {
      const output = await stream();
      try {
        for await (const _ of output.body);
      } catch (err) {
        caught = err;
      }
    });
    expect(caught.name).toBe('ModelStreamErrorException');
    expect(event).toMatchObject({ endpoint: 'invoke_model.stream', partial: true, error: 'ModelStreamErrorException' });
  });
});

describe('spend limits', () => {
  afterEach(async () => {
    await meter.removeLimit('broke', 'per_day');
  });

  it.each([
    ['Converse', () => new B.ConverseCommand({ modelId: CLAUDE, messages })],
    ['ConverseStream', () => new B.ConverseStreamCommand({ modelId: CLAUDE, messages })],
    ['InvokeModel', () => new B.InvokeModelCommand({ modelId: CLAUDE, body: invokeBody })],
    ['InvokeModelWithResponseStream', () => new B.InvokeModelWithResponseStreamCommand({ modelId: CLAUDE, body: invokeBody })],
  ])('%s over the limit: refused with LimitExceededError, nothing sent', async (_label, command) => {
    await meter.setLimit('broke', { limitUsd: 0, frequency: 'per_day' });
    const err = await meter.forTenant('broke', () => client.send(command())).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LimitExceededError);
    await until(() => events.length === 1, 'the refusal event');
    expect(events[0]).toMatchObject({ tenant_id: 'broke', provider: 'aws', error: 'LimitExceededError', cost_usd: 0 });
    expect(fake.count()).toBe(0);
  });

  it('the callback form is refused through its callback', async () => {
    await meter.setLimit('broke', { limitUsd: 0, frequency: 'per_day' });
    const err = await new Promise((resolve) => meter.forTenant('broke', () => client.send(new B.ConverseCommand({ modelId: CLAUDE, messages }), (e: unknown) => resolve(e))));
    expect(err).toBeInstanceOf(LimitExceededError);
    expect(fake.count()).toBe(0);
  });

  it('strict enforcement sends the reserved maxTokens on a Converse request that sets none, and the SDK still takes the command', async () => {
    const strict = collectingMeter({ enforcement: 'strict' });
    // This file's meter owns the patch: a second meter's limits are checked only through its own patch, so unpatch ours.
    meter.unpatchAll();
    strict.meter.patchAll();
    try {
      await strict.meter.setLimit('capped', { limitUsd: 1, frequency: 'per_day' });
      const output = await strict.meter.forTenant('capped', () => client.send(new B.ConverseCommand({ modelId: CLAUDE, messages })));
      expect(output.usage.totalTokens).toBe(18);
      expect(fake.requests[0].body.inferenceConfig.maxTokens).toBeGreaterThan(0);
      await until(() => strict.events.length === 1, 'the strict event');
    } finally {
      strict.meter.unpatchAll();
      meter.patchAll();
    }
  });
});

describe('other commands and instrument()', () => {
  it('ApplyGuardrail and CountTokens pass straight through, unmetered', async () => {
    const guardrail = await client.send(new B.ApplyGuardrailCommand({ guardrailIdentifier: 'g1', guardrailVersion: '1', source: 'INPUT', content: [{ text: { text: PROMPT } }] }));
    expect(guardrail.action).toBe('NONE');
    const counted = await client.send(new B.CountTokensCommand({ modelId: CLAUDE, input: { converse: { messages } } }));
    expect(counted.inputTokens).toBe(9);
    expect(fake.count()).toBe(2);
    // A metered call after them is the only event.
    await client.send(new B.ConverseCommand({ modelId: CLAUDE, messages }));
    await until(() => events.length === 1, 'the converse event');
    expect(events.map((e) => e.endpoint)).toEqual(['converse']);
  });

  it("send is the client's own, around the inherited one: other AWS clients' send (smithy's Client) is untouched", () => {
    const smithyClient = Object.getPrototypeOf(B.BedrockRuntimeClient.prototype);
    expect(Object.hasOwn(B.BedrockRuntimeClient.prototype, 'send')).toBe(true);
    expect(smithyClient.send).not.toBe(B.BedrockRuntimeClient.prototype.send);
    expect(smithyClient.send.name).toBe('send');
    meter.unpatch('bedrock');
    expect(Object.hasOwn(B.BedrockRuntimeClient.prototype, 'send')).toBe(false);
    meter.patch('bedrock');
  });

  it('instrument(client) on a fresh meter meters that client', async () => {
    meter.unpatchAll();
    const own = collectingMeter();
    try {
      own.meter.instrument(client);
      await client.send(new B.ConverseCommand({ modelId: CLAUDE, messages }));
      await until(() => own.events.length === 1, 'the instrumented event');
      expect(own.events[0]).toMatchObject({ provider: 'aws', endpoint: 'converse', total_tokens: 18 });
    } finally {
      own.meter.unpatchAll();
      meter.patchAll();
    }
  });
});

describe('apps under node --import ./register.mjs', () => {
  const register = join(repoRoot, 'register.mjs');
  const appCode = (load: string) => `
${load}
const { NodeHttpHandler } = require('@smithy/node-http-handler');
const meter = new Meter({ onEvent: (e) => console.log('EVENT ' + JSON.stringify(e)) });
meter.patchAll();
const client = new B.BedrockRuntimeClient({ region: 'us-east-1', endpoint: process.env.FAKE_BEDROCK_URL, credentials: { accessKeyId: 'a', secretAccessKey: 'b' }, requestHandler: new NodeHttpHandler(), maxAttempts: 1 });
const modelId = '${CLAUDE}';
const messages = [{ role: 'user', content: [{ text: 'hi' }] }];
await meter.forTenant('app', async () => {
  await client.send(new B.ConverseCommand({ modelId, messages }));
  const out = await client.send(new B.ConverseStreamCommand({ modelId, messages }));
  for await (const _ of out.stream);
  await client.send(new B.InvokeModelCommand({ modelId, body: '{}' }));
  const body = (await client.send(new B.InvokeModelWithResponseStreamCommand({ modelId, body: '{}' }))).body;
  for await (const _ of body);
});
await meter.shutdown();
console.log('DONE');
`;
  const ESM = appCode(`import { createRequire } from 'node:module';
const require = createRequire(process.cwd() + '/app.mjs');
import * as B from '@aws-sdk/client-bedrock-runtime';
import { Meter } from 'llm-meter';`);
  const CJS = `(async () => {${appCode(`const B = require('@aws-sdk/client-bedrock-runtime');
const { Meter } = require('llm-meter');`)}})();`;

  it.each([
    ['ESM import', ['--input-type=module', '-e', ESM]],
    ['CJS require', ['-e', CJS]],
  ])('%s: one event per call, all four operations', async (_label, args) => {
    const run = await runNode(['--import', register, ...args], { env: { FAKE_BEDROCK_URL: fake.url, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' } });
    expect(run.stderr).toBe('');
    expect(run.stdout).toContain('DONE');
    expect(run.code).toBe(0);
    expect(fake.count()).toBe(4);
    const printed = eventsPrinted(run.stdout);
    expect(printed.map((e) => [e.provider, e.endpoint, e.stream, e.tenant_id, e.input_tokens, e.output_tokens, e.partial])).toEqual([
      ['aws', 'converse', false, 'app', 11, 7, undefined],
      ['aws', 'converse.stream', true, 'app', 11, 7, undefined],
      ['aws', 'invoke_model', false, 'app', 11, 7, undefined],
      ['aws', 'invoke_model.stream', true, 'app', 11, 7, undefined],
    ]);
  });
});
