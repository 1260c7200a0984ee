// The Vercel AI SDK 7 (ESM only, Node >= 22) under `--import register.mjs`, for test/ai-sdk-7.test.ts. Every call runs
// in a tenant named after its scenario and sends `x-scenario: <name>`, so the parent matches events and the requests
// its fake servers saw. Prints `EVENT {json}` per event and `RESULT {json}` per scenario (what the app saw).
//
//   AI_ROOT     the app root whose node_modules hold ai 7 and its providers
//   FAKE_URL    test/fixtures/fake-providers.mjs (OpenAI, Anthropic, Gemini)
//   COMPAT_URL  test/fixtures/fake-compatible.mjs (OpenAI-compatible hosts, reached with their real base URLs)
//   BEDROCK_URL test/fixtures/fake-bedrock.mjs (Converse, ConverseStream)
import diagnosticsChannel from 'node:diagnostics_channel';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Meter } from 'llm-meter';

const { AI_ROOT, FAKE_URL, COMPAT_URL, BEDROCK_URL } = process.env;
const PROMPT = 'SECRET-PROMPT-7 must never leave the process';
const appRequire = createRequire(`${AI_ROOT}/app.js`);
const load = (name) => import(pathToFileURL(appRequire.resolve(name)).href);

globalThis.AI_SDK_LOG_WARNINGS = false;
const meter = new Meter({ onEvent: (e) => console.log(`EVENT ${JSON.stringify(e)}`), handleExit: false });
meter.patchAll();

const ai = await load('ai');
const { z } = await load('zod');
const { createOpenAI } = await load('@ai-sdk/openai');
const { createAnthropic } = await load('@ai-sdk/anthropic');
const { createGoogleGenerativeAI } = await load('@ai-sdk/google');
const { createOpenAICompatible } = await load('@ai-sdk/openai-compatible');
const { createAmazonBedrock } = await load('@ai-sdk/amazon-bedrock');

/**
 * A fetch that holds back a response's SSE frames after the first `frames` of them, until the request is aborted:
 * the caller has seen content but never the final usage, whenever it aborts.
 */
function holdAfter(frames) {
  return async (input, init = {}) => {
    const response = await fetch(input, init);
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffered = '';
    let passed = 0;
    const body = new ReadableStream({
      start(controller) {
        init.signal?.addEventListener('abort', () => controller.error(init.signal.reason), { once: true });
      },
      async pull(controller) {
        while (passed < frames) {
          const end = buffered.indexOf('\n\n');
          if (end !== -1) {
            controller.enqueue(new TextEncoder().encode(buffered.slice(0, end + 2)));
            buffered = buffered.slice(end + 2);
            passed++;
            return;
          }
          const { done, value } = await reader.read();
          if (done) return controller.close();
          buffered += decoder.decode(value, { stream: true });
        }
        return new Promise(() => {}); // held until the abort errors the stream
      },
    });
    return new Response(body, { status: response.status, headers: response.headers });
  };
}

/** Sends each request to the fake OpenAI-compatible server, naming the host it was meant for (see routeTo there). */
function routeToCompatible(input, init = {}) {
  const target = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
  const headers = new Headers(init.headers);
  headers.set('x-routed-host', target.host);
  return fetch(`${COMPAT_URL}${target.pathname}${target.search}`, { ...init, headers });
}

const openai = createOpenAI({ apiKey: 'k', baseURL: `${FAKE_URL}/v1` });
const heldOpenai = createOpenAI({ apiKey: 'k', baseURL: `${FAKE_URL}/v1`, fetch: holdAfter(2) });
const anthropic = createAnthropic({ apiKey: 'k', baseURL: `${FAKE_URL}/v1` });
const google = createGoogleGenerativeAI({ apiKey: 'k', baseURL: `${FAKE_URL}/v1beta` });
const deepseek = createOpenAICompatible({ name: 'deepseek', apiKey: 'k', baseURL: 'https://api.deepseek.com', includeUsage: true, fetch: routeToCompatible });
// Without includeUsage the provider asks for no usage chunk: its streams end without usage.
const deepseekNoUsage = createOpenAICompatible({ name: 'deepseek', apiKey: 'k', baseURL: 'https://api.deepseek.com', fetch: routeToCompatible });

const bedrock = createAmazonBedrock({ region: 'us-east-1', baseURL: BEDROCK_URL, accessKeyId: 'AKIDFAKE', secretAccessKey: 'fake-secret' });
const CLAUDE_ON_BEDROCK = 'us.anthropic.claude-sonnet-4-20250514-v1:0';

const headersFor = (scenario, extra = {}) => ({ 'x-scenario': scenario, ...extra });
const errorName = (err) => (err === undefined ? undefined : err?.name === 'AI_RetryError' || err?.cause ? `${err.name}(${errorName(err.cause ?? err.lastError)})` : err?.name);

/** Reads a streamText result to its end: text, the error parts of its full stream, what onError saw, what it threw. */
async function readStream(result, seen) {
  let text = '';
  const errors = [];
  let threw;
  try {
    for await (const part of result.fullStream) {
      if (part.type === 'text-delta') text += part.text;
      if (part.type === 'error') errors.push(errorName(part.error));
    }
  } catch (err) {
    threw = errorName(err);
  }
  return { text, errors, onError: seen.map(errorName), threw };
}

function streamText(options) {
  const seen = [];
  const result = ai.streamText({ ...options, onError: ({ error }) => seen.push(error) });
  return { result, seen };
}

const weather = ai.tool({ description: 'the weather', inputSchema: z.object({}), execute: async () => 'sunny' });

const SCENARIOS = {
  async 'openai-chat'(h) {
    const r = await ai.generateText({ model: openai.chat('gpt-4o'), prompt: PROMPT, headers: h });
    return { text: r.text, usage: r.usage };
  },
  async 'openai-responses'(h) {
    const r = await ai.generateText({ model: openai.responses('gpt-4o'), prompt: PROMPT, headers: h });
    return { text: r.text, usage: r.usage };
  },
  async 'stream-end'(h) {
    const { result, seen } = streamText({ model: openai.chat('gpt-4o'), prompt: PROMPT, headers: h });
    return readStream(result, seen);
  },
  async 'stream-responses-end'(h) {
    const { result, seen } = streamText({ model: openai.responses('gpt-4o'), prompt: PROMPT, headers: h });
    return readStream(result, seen);
  },
  async 'stream-abort'(h) {
    const controller = new AbortController();
    const { result } = streamText({ model: heldOpenai.chat('gpt-4o'), prompt: PROMPT, headers: h, abortSignal: controller.signal });
    let text = '';
    let aborted = false;
    for await (const part of result.fullStream) {
      if (part.type === 'text-delta') {
        text += part.text;
        controller.abort();
      }
      if (part.type === 'abort') aborted = true;
    }
    return { text, aborted };
  },
  async 'stream-error'(h) {
    const { result, seen } = streamText({ model: openai.chat('gpt-4o'), prompt: PROMPT, headers: { ...h, 'x-fake-stream-error': '1' } });
    return readStream(result, seen);
  },
  async 'stream-dropped'(h) {
    // Gemini's fake drops the connection after the first chunk.
    const { result, seen } = streamText({ model: google('gemini-2.5-flash'), prompt: PROMPT, headers: { ...h, 'x-fake-stream-error': '1' } });
    return readStream(result, seen);
  },
  async 'stream-error-anthropic'(h) {
    const { result, seen } = streamText({ model: anthropic('claude-sonnet-4-5'), prompt: PROMPT, headers: { ...h, 'x-fake-stream-error': '1' } });
    return readStream(result, seen);
  },
  async 'tool-steps'(h) {
    const r = await ai.generateText({ model: openai.chat('gpt-4o'), prompt: PROMPT, headers: h, tools: { weather }, stopWhen: ai.stepCountIs(3) });
    return { steps: r.steps.length, text: r.text };
  },
  async 'tool-steps-stream'(h) {
    const { result, seen } = streamText({ model: anthropic('claude-sonnet-4-5'), prompt: PROMPT, headers: h, tools: { weather }, stopWhen: ai.stepCountIs(3) });
    const read = await readStream(result, seen);
    return { ...read, steps: (await result.steps).length };
  },
  async 'generate-object'(h) {
    const r = await ai.generateObject({ model: openai.chat('gpt-4o'), prompt: PROMPT, headers: h, schema: z.object({}) });
    return { object: r.object };
  },
  async embed(h) {
    const one = await ai.embed({ model: openai.embedding('text-embedding-3-small'), value: PROMPT, headers: h });
    const many = await ai.embedMany({ model: openai.embedding('text-embedding-3-small'), values: [PROMPT, 'b', 'c'], headers: h });
    return { one: one.usage, many: many.usage, vectors: many.embeddings.length };
  },
  async anthropic(h) {
    // 100 new input tokens, 1000 read from the cache and 500 written to it: Anthropic reports the three pools apart.
    const usage = { input_tokens: 100, cache_read_input_tokens: 1000, cache_creation_input_tokens: 500, cache_creation: { ephemeral_5m_input_tokens: 500, ephemeral_1h_input_tokens: 0 }, output_tokens: 20 };
    const cached = { ...h, 'x-fake-usage': JSON.stringify(usage) };
    const r = await ai.generateText({ model: anthropic('claude-sonnet-4-5'), prompt: PROMPT, headers: cached });
    const { result, seen } = streamText({ model: anthropic('claude-sonnet-4-5'), prompt: PROMPT, headers: cached });
    return { usage: r.usage, stream: await readStream(result, seen) };
  },
  async google(h) {
    const r = await ai.generateText({ model: google('gemini-2.5-flash'), prompt: PROMPT, headers: { ...h, 'x-fake-thoughts': '4' } });
    const { result, seen } = streamText({ model: google('gemini-2.5-flash'), prompt: PROMPT, headers: h });
    return { usage: r.usage, stream: await readStream(result, seen) };
  },
  async deepseek(h) {
    const r = await ai.generateText({ model: deepseek.chatModel('deepseek-chat'), prompt: PROMPT, headers: h });
    const { result, seen } = streamText({ model: deepseek.chatModel('deepseek-chat'), prompt: PROMPT, headers: h });
    const stream = await readStream(result, seen);
    const noUsage = streamText({ model: deepseekNoUsage.chatModel('deepseek-chat'), prompt: PROMPT, headers: h });
    return { usage: r.usage, stream, noUsage: await readStream(noUsage.result, noUsage.seen) };
  },
  async bedrock(h) {
    const r = await ai.generateText({ model: bedrock(CLAUDE_ON_BEDROCK), prompt: PROMPT, headers: h });
    const { result, seen } = streamText({ model: bedrock(CLAUDE_ON_BEDROCK), prompt: PROMPT, headers: h });
    return { usage: r.usage, stream: await readStream(result, seen) };
  },
  async 'limit-admitted'(h) {
    const r = await ai.generateText({ model: openai.chat('gpt-4o'), prompt: PROMPT, headers: h });
    const failed = streamText({ model: openai.chat('gpt-4o'), prompt: PROMPT, headers: { ...h, 'x-fake-stream-error': '1' } });
    return { text: r.text, failed: await readStream(failed.result, failed.seen) };
  },
  async 'limit-refused'(h) {
    const generated = await ai.generateText({ model: openai.chat('gpt-4o'), prompt: PROMPT, headers: h }).then(
      () => 'sent',
      (err) => errorName(err),
    );
    const { result, seen } = streamText({ model: openai.chat('gpt-4o'), prompt: PROMPT, headers: h });
    const streamed = await readStream(result, seen);
    const embedded = await ai.embed({ model: openai.embedding('text-embedding-3-small'), value: PROMPT, headers: h }).then(
      () => 'sent',
      (err) => errorName(err),
    );
    return { generated, streamed, embedded };
  },
};

async function interleaved() {
  // Two tenants' calls in flight at once, their streams read in turns: each call's usage names whose call it was.
  const usage = (prompt) => ({ 'x-fake-usage': JSON.stringify({ prompt_tokens: prompt, total_tokens: prompt + 7 }) });
  const start = (tenant, prompt) =>
    meter.forTenant(tenant, () => ({
      stream: streamText({ model: openai.chat('gpt-4o'), prompt: PROMPT, headers: headersFor('interleaved', usage(prompt)) }),
      generated: ai.generateText({ model: openai.chat('gpt-4o'), prompt: PROMPT, headers: headersFor('interleaved', usage(prompt + 1)) }),
    }));
  const a = start('tenant-a', 100);
  const b = start('tenant-b', 200);
  const readB = await readStream(b.stream.result, b.stream.seen);
  const readA = await readStream(a.stream.result, a.stream.seen);
  await Promise.all([a.generated, b.generated]);
  return { a: readA.text, b: readB.text };
}

async function withTelemetry() {
  // ai 7's telemetry: a global integration, and a subscriber on its tracing channel (which then wraps every call).
  const seen = { modelCallEnds: 0, embedEnds: 0, traced: 0 };
  ai.registerTelemetry({ onLanguageModelCallEnd: () => void seen.modelCallEnds++, onEmbedEnd: () => void seen.embedEnds++ });
  const channel = diagnosticsChannel.tracingChannel(ai.AI_SDK_TELEMETRY_TRACING_CHANNEL);
  const subscriber = { start: () => void seen.traced++, end() {}, asyncStart() {}, asyncEnd() {}, error() {} };
  channel.subscribe(subscriber);
  try {
    const h = headersFor('telemetry');
    return await meter.forTenant('telemetry', async () => {
      await ai.generateText({ model: openai.chat('gpt-4o'), prompt: PROMPT, headers: h, telemetry: { isEnabled: true, functionId: 'fn' } });
      const { result, seen: errors } = streamText({ model: openai.chat('gpt-4o'), prompt: PROMPT, headers: h, tools: { weather }, stopWhen: ai.stepCountIs(3) });
      await readStream(result, errors);
      await ai.embed({ model: openai.embedding('text-embedding-3-small'), value: PROMPT, headers: h });
      return seen;
    });
  } finally {
    channel.unsubscribe(subscriber);
    globalThis.AI_SDK_TELEMETRY_INTEGRATIONS = [];
  }
}

await meter.setLimit('limit-refused', { limitUsd: 0, frequency: 'per_day' });
await meter.setLimit('limit-admitted', { limitUsd: 5, frequency: 'per_day' });
for (const [name, run] of Object.entries(SCENARIOS)) {
  const result = await meter.forTenant(name, () => run(headersFor(name))).catch((err) => ({ thrown: errorName(err), message: String(err?.message) }));
  console.log(`RESULT ${JSON.stringify({ scenario: name, ...result })}`);
}
console.log(`RESULT ${JSON.stringify({ scenario: 'interleaved', ...(await interleaved()) })}`);
console.log(`RESULT ${JSON.stringify({ scenario: 'telemetry', ...(await withTelemetry()) })}`);
await meter.shutdown();
console.log('DONE');
