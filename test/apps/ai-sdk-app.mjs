// The Vercel AI SDK (ai 5 or 6, with its real provider packages) against the fake servers, for test/ai-sdk.test.ts.
//   node --import ./register.mjs test/apps/ai-sdk-app.mjs <app root> <esm|cjs>
// esm imports the packages' ESM builds, cjs requires their CJS builds. Each scenario runs in a tenant of its own name
// and sends `x-scenario: <name>` with its requests. Prints `RESULT <scenario> {json}` (what the caller saw),
// `REQUEST {json}` (what the fakes received) and `EVENT {json}` lines, then DONE. LLM_METER=off: no agent at all, and
// no limit scenario (for comparing what the caller sees with and without the agent).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startFakeCompatible } from '../fixtures/fake-compatible.mjs';
import { startFakeProviders } from '../fixtures/fake-providers.mjs';

const [root, format] = process.argv.slice(2);
const metered = process.env.LLM_METER !== 'off';
const appRequire = createRequire(join(root, 'app.js'));

/** A package as the app root resolves it, in the build `format` names (read off its own `exports`). */
async function load(name) {
  if (format === 'cjs') return appRequire(name);
  const marker = `/node_modules/${name}/`;
  const main = appRequire.resolve(name);
  const dir = main.slice(0, main.lastIndexOf(marker) + marker.length);
  const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  return import(pathToFileURL(join(dir, manifest.exports['.'].import)).href);
}

const fake = await startFakeProviders();
const compatible = await startFakeCompatible();
const events = [];
const agent = metered ? createRequire(import.meta.url)('llm-meter') : undefined;
const meter = agent !== undefined ? new agent.Meter({ debug: process.env.LLM_DEBUG === '1', onEvent: (e) => events.push(e) }) : undefined;
meter?.patchAll();
const forTenant = (tenant, fn) => (meter === undefined ? fn() : meter.forTenant(tenant, fn));

const ai = await load('ai');
const { z } = appRequire('zod');
const { createOpenAI } = await load('@ai-sdk/openai');
const { createAnthropic } = await load('@ai-sdk/anthropic');
const { createGoogleGenerativeAI } = await load('@ai-sdk/google');
const { createOpenAICompatible } = await load('@ai-sdk/openai-compatible');

const openai = createOpenAI({ apiKey: 'k', baseURL: fake.openaiBaseURL });
const anthropic = createAnthropic({ apiKey: 'k', baseURL: `${fake.anthropicBaseURL}/v1` });
const google = createGoogleGenerativeAI({ apiKey: 'k', baseURL: `${fake.geminiBaseUrl}/v1beta` });
const deepseek = createOpenAICompatible({ name: 'deepseek', apiKey: 'k', baseURL: 'https://api.deepseek.com', includeUsage: true, fetch: compatible.routeTo() });

const PROMPT = 'a prompt that must never leave the process';
const ANTHROPIC_CACHE = JSON.stringify({ cache_read_input_tokens: 100, cache_creation_input_tokens: 50 });

const results = [];
const result = (scenario, value) => results.push([scenario, value]);
const usageOf = (u) => ({ input: u?.inputTokens, output: u?.outputTokens, cached: u?.cachedInputTokens });
const errorName = (err) => (agent !== undefined && err instanceof agent.LimitExceededError ? 'LimitExceededError' : err?.name);

/** Reads a streamText result to its end: the part types the caller saw, its usage and its errors. */
async function readAll(stream) {
  const parts = [];
  for await (const part of stream.fullStream) parts.push(part.type === 'error' ? `error:${errorName(part.error)}` : part.type);
  return { parts, usage: usageOf(await stream.usage.catch(() => undefined)) };
}

const weather = () => ai.tool({ description: 'the weather', inputSchema: z.object({}), execute: async () => 'sunny' });

const SCENARIOS = {
  'openai-chat': async (headers) => {
    const r = await ai.generateText({ model: openai.chat('gpt-4o'), prompt: PROMPT, headers });
    return { text: r.text, usage: usageOf(r.usage), finish: r.finishReason };
  },
  'openai-responses': async (headers) => {
    const r = await ai.generateText({ model: openai.responses('gpt-4o'), prompt: PROMPT, headers });
    return { text: r.text, usage: usageOf(r.usage), finish: r.finishReason };
  },
  'stream-chat': (headers) => readAll(ai.streamText({ model: openai.chat('gpt-4o'), prompt: PROMPT, headers })),
  'stream-responses': (headers) => readAll(ai.streamText({ model: openai.responses('gpt-4o'), prompt: PROMPT, headers })),
  'stream-abort': async (headers) => {
    // Aborted as soon as the response starts (the fake then waits a minute before its next frame): no usage comes.
    let responded;
    const started = new Promise((resolve) => (responded = resolve));
    const fetchNoting = (url, init) => fetch(url, init).then((response) => (responded(), response));
    const model = createOpenAI({ apiKey: 'k', baseURL: fake.openaiBaseURL, fetch: fetchNoting }).chat('gpt-4o');
    const abort = new AbortController();
    const stream = ai.streamText({ model, prompt: PROMPT, headers: { ...headers, 'x-fake-delay-ms': '60000' }, abortSignal: abort.signal, onError: () => undefined });
    await started;
    abort.abort();
    const parts = [];
    for await (const part of stream.fullStream) parts.push(part.type);
    return { last: parts.at(-1) };
  },
  'stream-error': (headers) => readAll(ai.streamText({ model: openai.chat('gpt-4o'), prompt: PROMPT, headers: { ...headers, 'x-fake-stream-error': '1' }, onError: () => undefined })),
  'anthropic-stream-error': (headers) =>
    readAll(ai.streamText({ model: anthropic('claude-sonnet-4-5'), prompt: PROMPT, headers: { ...headers, 'x-fake-stream-error': '1' }, onError: () => undefined })),
  tools: async (headers) => {
    const r = await ai.generateText({ model: openai.chat('gpt-4o'), prompt: PROMPT, headers, tools: { weather: weather() }, stopWhen: ai.stepCountIs(3) });
    return { text: r.text, steps: r.steps.length, usage: usageOf(r.totalUsage) };
  },
  'stream-tools': async (headers) => {
    const r = await readAll(ai.streamText({ model: openai.chat('gpt-4o'), prompt: PROMPT, headers, tools: { weather: weather() }, stopWhen: ai.stepCountIs(3) }));
    return { steps: r.parts.filter((p) => p === 'finish-step').length, usage: r.usage };
  },
  object: async (headers) => {
    const r = await ai.generateObject({ model: openai.chat('gpt-4o'), schema: z.object({}), prompt: PROMPT, headers });
    return { object: r.object, usage: usageOf(r.usage) };
  },
  embed: async (headers) => {
    const one = await ai.embed({ model: openai.embedding('text-embedding-3-small'), value: PROMPT, headers });
    const many = await ai.embedMany({ model: openai.embedding('text-embedding-3-small'), values: [PROMPT, PROMPT, PROMPT], headers });
    return { one: one.usage, many: [many.usage, many.embeddings.length] };
  },
  anthropic: async (headers) => {
    const r = await ai.generateText({ model: anthropic('claude-sonnet-4-5'), prompt: PROMPT, headers: { ...headers, 'x-fake-usage': ANTHROPIC_CACHE } });
    const s = await readAll(ai.streamText({ model: anthropic('claude-sonnet-4-5'), prompt: PROMPT, headers: { ...headers, 'x-fake-usage': ANTHROPIC_CACHE } }));
    return { text: r.text, usage: usageOf(r.usage), stream: s };
  },
  google: async (headers) => {
    const r = await ai.generateText({ model: google('gemini-2.5-flash'), prompt: PROMPT, headers });
    const s = await readAll(ai.streamText({ model: google('gemini-2.5-flash'), prompt: PROMPT, headers }));
    return { text: r.text, usage: usageOf(r.usage), stream: s };
  },
  deepseek: async () => {
    const r = await ai.generateText({ model: deepseek('deepseek-chat'), prompt: PROMPT });
    const s = await readAll(ai.streamText({ model: deepseek('deepseek-chat'), prompt: PROMPT }));
    return { text: r.text, usage: usageOf(r.usage), stream: s };
  },
  // Two tenants at once, their calls interleaved: each sends its tenant in `x-tenant`, for matching events to calls.
  concurrent: async () => {
    const calls = (tenant) =>
      forTenant(tenant, () => {
        const headers = { 'x-scenario': 'concurrent', 'x-tenant': tenant };
        return Promise.all([
          ai.generateText({ model: openai.chat('gpt-4o'), prompt: PROMPT, headers }),
          readAll(ai.streamText({ model: openai.chat('gpt-4o'), prompt: PROMPT, headers })),
          ai.generateText({ model: openai.responses('gpt-4o'), prompt: PROMPT, headers }),
          readAll(ai.streamText({ model: anthropic('claude-sonnet-4-5'), prompt: PROMPT, headers })),
        ]);
      });
    await Promise.all([calls('tenant-a'), calls('tenant-b')]);
    return {};
  },
  limited: async (headers) => {
    await meter.setLimit('limited', { limitUsd: 1, frequency: 'per_day', spentUsd: 1 });
    const generate = await ai.generateText({ model: openai.chat('gpt-4o'), prompt: PROMPT, headers }).then(() => 'sent', errorName);
    const errors = [];
    const stream = await readAll(ai.streamText({ model: openai.chat('gpt-4o'), prompt: PROMPT, headers, onError: ({ error }) => errors.push(errorName(error)) }));
    return { generate, stream, onError: errors };
  },
};

for (const [name, run] of Object.entries(SCENARIOS)) {
  if (name === 'limited' && !metered) continue;
  try {
    result(name, await forTenant(name, () => run({ 'x-scenario': name })));
  } catch (err) {
    result(name, { threw: errorName(err), message: err?.message });
  }
}

const requests = [
  ...fake.requests.map((r, i) => ({ path: r.path, scenario: r.headers['x-scenario'], tenant: r.headers['x-tenant'], requestId: `req_${i + 1}`, body: r.body })),
  ...compatible.requests.map((r) => ({ host: r.host, path: r.path, scenario: 'deepseek', body: r.body })),
];
const refused = metered ? 2 : 0;
if (meter !== undefined) {
  const deadline = Date.now() + 10_000;
  while (events.length < requests.length + refused && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  await meter.shutdown();
}
for (const [scenario, value] of results) console.log(`RESULT ${scenario} ${JSON.stringify(value)}`);
for (const request of requests) console.log(`REQUEST ${JSON.stringify(request)}`);
for (const event of events) console.log(`EVENT ${JSON.stringify(event)}`);
console.log('DONE');
// The aborted stream's fake is still waiting to write its next frame.
process.exit(0);
