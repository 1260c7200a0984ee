// A child of the bench (run.mjs): the agent's per-call overhead, measured in one process. Every variant of a workload
// gets its own fresh copy of the SDK (its require.cache entries dropped, then required again), so patching one copy
// cannot touch another; the agent goes on its copies through meter.instrument(client), never patchAll(). Batches of
// about batchMs of calls, one per variant in each round, in a random order, for many rounds, each timed on process
// CPU time (user + system: the GC and compiler threads' work counts too). Prints one JSON line: per workload and
// variant, the CPU ns of each timed batch and the calls timed.
//
//   node test/bench/overhead.mjs '{"rounds":400,"workloads":["openai-plain", ...]}'   (the other options: see `config`)
//
// Exits 2, with {"misbehaved": "..."} as its last line, when the agent did not meter exactly the calls it should have.
import { AsyncLocalStorage } from 'node:async_hooks';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join, sep } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import {
  AgentMisbehaved,
  anthropicStreamBody,
  ANTHROPIC_MODEL,
  drain,
  fakeFetch,
  geminiStreamBody,
  GEMINI_MODEL,
  MESSAGES,
  sseFetch,
  STREAM_CHUNKS,
} from './canned.mjs';
import { sdkRoot } from '../fixtures/sdk-root.mjs';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const requireFromRepo = createRequire(join(repoRoot, 'package.json'));
// The newest majors (they declare Node >= 22: app roots installed on demand); at the top level openai 6, the major
// @opentelemetry/instrumentation-openai supports.
const requireFromOpenai7 = createRequire(join(sdkRoot('openai-7'), 'package.json'));
const requireFromGenai3 = createRequire(join(sdkRoot('genai-3'), 'package.json'));
const requireFromOpenai6 = requireFromRepo;

const config = { rounds: 400, warmupRounds: 20, warmupMs: 500, warmupMaxMs: 15_000, batchMs: 1.5, workloads: [], ...JSON.parse(process.argv[2] ?? '{}') };
const TENANT = 'bench';
const LIMITED_TENANT = 'bench-limited';

// ---- fresh copies of an SDK ----------------------------------------------------------------------------------------

/** The directory of the package `name` as `requireFn` resolves it. */
function packageDir(requireFn, name) {
  let dir = dirname(requireFn.resolve(name));
  while (!isPackageRoot(dir, name)) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`no package.json of ${name} above ${requireFn.resolve(name)}`);
    dir = up;
  }
  return dir;
}

function isPackageRoot(dir, name) {
  try {
    return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).name === name;
  } catch {
    return false;
  }
}

/** The package's exports from a copy no one else holds: every module under its directory is loaded anew. */
function freshCopy(requireFn, name) {
  const prefix = packageDir(requireFn, name) + sep;
  for (const key of Object.keys(requireFn.cache)) if (key.startsWith(prefix)) delete requireFn.cache[key];
  return requireFn(name);
}

const versionOf = (requireFn, name) => JSON.parse(readFileSync(join(packageDir(requireFn, name), 'package.json'), 'utf8')).version;

// ---- the meter under test ------------------------------------------------------------------------------------------

const { Meter } = requireFromRepo('llm-meter');
const tenantStore = globalThis[Symbol.for('llm-meter.tenant-store')];

// As an app runs it in production: events delivered to a usage file (queued, batched, written), no onEvent hook, so
// calls are recorded in batches off the call's path. Each batch's calls must each add one event (stats), and at the
// end every event in the file must be a good one for the tenant that made the call (checkEvents).
const usageFile = join(mkdtempSync(join(tmpdir(), 'llm-meter-bench-')), 'usage.jsonl');
const meter = new Meter({ file: usageFile, flushInterval: 200, maxBatchSize: 1000, maxQueueSize: 100_000, handleExit: false });
/** Calls made per tenant, for the check of the usage file. */
const tally = { [TENANT]: 0, [LIMITED_TENANT]: 0 };
const recorded = () => {
  const { queued, sent, dropped } = meter.stats();
  return queued + sent + dropped;
};
await meter.setLimit(LIMITED_TENANT, { limitUsd: 1e9, frequency: 'per_month' });

// The app's own AsyncLocalStorage (most servers have one, through their framework or tracing).
const appStore = new AsyncLocalStorage();
const APP_CONTEXT = Object.freeze({ requestId: 'bench' });

// Node 20 and 22 run every AsyncLocalStorage through one promise hook, on while any store is enabled. Each batch sets
// the stores up explicitly, so that exactly one store is on for the ALS-on variants and none for ALS off: the agent is
// charged for its code, not for a second store's share of the hook (an app with a store of its own pays that too).
// Between two ALS-on variants the next store is enabled (run() with a new store does) before the other is disabled,
// so the hook itself stays on: turning it off and on would tax whichever batch follows.
const TENANT_STORE_ON = Object.freeze({ tenantId: 'store-on-only' });
const noop = () => {};

function alsOff() {
  appStore.disable();
  tenantStore.disable();
}
function appAlsOn() {
  appStore.run(APP_CONTEXT, noop);
  tenantStore.disable();
}
function agentAlsOn() {
  tenantStore.run(TENANT_STORE_ON, noop);
  appStore.disable();
}

// ---- variants ------------------------------------------------------------------------------------------------------

/**
 * One way of making a workload's call, on the client `make()` returns. `enter()` sets the stores up before a batch;
 * `scope(fn)` wraps each call (a tenant scope, the app's store); `tenant`: whose events each call must produce (none:
 * no event may come); `spans`: each call must end an OpenTelemetry span.
 */
function variant(key, label, make, { enter, scope, tenant, spans = false }) {
  return { key, label, make, enter, scope, tenant, spans };
}

/**
 * The variants with their clients, the copies loaded in a random order: what shared code (undici, the agent) meets
 * first can favour one copy, and each process then favours another, which shows in the spread, not as a bias.
 */
function build(specs) {
  const clients = new Map();
  for (const spec of shuffle([...specs])) clients.set(spec, spec.make());
  return specs.map((spec) => ({ ...spec, client: clients.get(spec), cpuNs: [] }));
}

const inAppStore = (fn) => appStore.run(APP_CONTEXT, fn);
const direct = (fn) => fn();

/** The variants every workload has, each on a client of a copy of its own made by `newClient()`. */
function standardVariants(newClient) {
  const agentClient = () => meter.instrument(newClient());
  return [
    variant('raw-off', 'raw SDK, ALS off', newClient, { enter: alsOff, scope: direct }),
    variant('raw', 'raw SDK, ALS on (baseline)', newClient, { enter: appAlsOn, scope: inAppStore }),
    variant('aa', 'raw SDK, 2nd copy (A/A)', newClient, { enter: appAlsOn, scope: inAppStore }),
    variant('agent', 'agent', agentClient, { enter: agentAlsOn, scope: (fn) => meter.forTenant(TENANT, fn), tenant: TENANT }),
    variant('limit', 'agent + limit', agentClient, {
      enter: agentAlsOn,
      scope: (fn) => meter.forTenant(LIMITED_TENANT, fn),
      tenant: LIMITED_TENANT,
    }),
  ];
}

// ---- minimal wrapper: the least a metering wrapper can do -----------------------------------------------------------

const wrapperTally = { usages: 0 };

/**
 * A reference, not a product: wraps one copy's Completions.prototype.create with one `then` on the parsed response
 * (APIPromise._thenUnwrap, which keeps the APIPromise's own methods) and, for a stream, one async-generator step per
 * item; it reads `usage` and nothing else (no tenant, no pricing, no event, no include_usage).
 */
function wrapMinimally(client) {
  const proto = Object.getPrototypeOf(client.chat.completions);
  const create = proto.create;
  proto.create = function create_(body, options) {
    const promise = create.call(this, body, options);
    return promise._thenUnwrap((result) => (body?.stream === true ? meteredStream(result) : noteUsage(result)));
  };
  return client;
}

function noteUsage(result) {
  if (result?.usage) wrapperTally.usages++;
  return result;
}

function meteredStream(stream) {
  const iterate = stream[Symbol.asyncIterator].bind(stream);
  stream[Symbol.asyncIterator] = async function* () {
    for await (const item of iterate()) yield noteUsage(item);
  };
  return stream;
}

// ---- workloads -----------------------------------------------------------------------------------------------------

const openaiClient = (requireFn) => () => {
  const { OpenAI } = freshCopy(requireFn, 'openai');
  return new OpenAI({ apiKey: 'sk-bench', fetch: fakeFetch, maxRetries: 0 });
};

async function openaiPlain(client) {
  const completion = await client.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES });
  if (completion.choices.length !== 1) throw new Error('unexpected completion');
}

async function openaiStream(client) {
  const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: MESSAGES, stream: true });
  // The usage-only chunk the agent asks for must stay hidden: every variant hands the caller the same 100 chunks.
  await drain(stream, (c) => c.choices.length === 1, STREAM_CHUNKS, 'stream chunks');
}

function anthropicClient() {
  const { Anthropic } = freshCopy(requireFromRepo, '@anthropic-ai/sdk');
  return new Anthropic({ apiKey: 'sk-ant-bench', fetch: sseFetch(anthropicStreamBody()), maxRetries: 0 });
}

async function anthropicStream(client) {
  const stream = await client.messages.create({
    model: ANTHROPIC_MODEL,
    max_tokens: 1024,
    system: MESSAGES[0].content,
    messages: MESSAGES.slice(1),
    stream: true,
  });
  await drain(stream, (event) => event.type === 'content_block_delta', STREAM_CHUNKS, 'content_block_delta events');
}

function geminiClient() {
  const { GoogleGenAI } = freshCopy(requireFromGenai3, '@google/genai');
  return new GoogleGenAI({ apiKey: 'bench-key', httpOptions: { fetch: sseFetch(geminiStreamBody()) } });
}

async function geminiStream(client) {
  const stream = await client.models.generateContentStream({ model: GEMINI_MODEL, contents: MESSAGES[1].content });
  await drain(stream, (c) => c.candidates?.length === 1, STREAM_CHUNKS, 'stream chunks');
}

const openaiVariants = (requireFn) => {
  const newClient = openaiClient(requireFn);
  return () => [
    ...standardVariants(newClient),
    variant('wrapper', 'minimal wrapper', () => wrapMinimally(newClient()), { enter: appAlsOn, scope: inAppStore }),
  ];
};

const WORKLOADS = {
  'openai-plain': { call: openaiPlain, variants: openaiVariants(requireFromOpenai7) },
  'openai-stream': { call: openaiStream, variants: openaiVariants(requireFromOpenai7) },
  'anthropic-stream': { call: anthropicStream, variants: () => standardVariants(anthropicClient) },
  'gemini-stream': { call: geminiStream, variants: () => standardVariants(geminiClient) },
  // Beside OpenTelemetry's instrumentation, which supports openai < 7: every variant on an openai 6 copy.
  'openai6-plain': { call: openaiPlain, variants: openaiVariants(requireFromOpenai6), otel: true },
  'openai6-stream': { call: openaiStream, variants: openaiVariants(requireFromOpenai6), otel: true },
};

// ---- OpenTelemetry's openai instrumentation, with a real tracer provider ---------------------------------------------

const spans = { ended: 0, bad: 0 };

/**
 * Enables @opentelemetry/instrumentation-openai with a BasicTracerProvider whose SimpleSpanProcessor hands each ended
 * span to an exporter that counts it (no context manager: the app's store stands in for one). Its hook
 * (require-in-the-middle) instruments every `require('openai')` of a supported version from then on, so it is enabled
 * after every other copy is loaded, and the copies loaded after it are its own.
 */
function enableOpenTelemetry() {
  const { OpenAIInstrumentation } = requireFromOpenai6('@opentelemetry/instrumentation-openai');
  const { BasicTracerProvider, SimpleSpanProcessor } = requireFromOpenai6('@opentelemetry/sdk-trace-base');
  const exporter = {
    export(batch, done) {
      // A stream's span has usage only when the app asked for include_usage (OpenTelemetry does not ask for it).
      for (const span of batch) if (span.attributes['gen_ai.request.model'] !== undefined) spans.ended++;
      else spans.bad++;
      done({ code: 0 });
    },
    shutdown: async () => {},
  };
  const instrumentation = new OpenAIInstrumentation();
  instrumentation.setTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
  // Its metrics on the API's no-op meter provider (it needs one set to record a stream's duration at all).
  instrumentation.setMeterProvider(requireFromOpenai6('@opentelemetry/api').metrics.getMeterProvider());
  instrumentation.enable();
}

const otelVariant = (requireFn) =>
  variant('otel', 'OpenTelemetry', openaiClient(requireFn), { enter: appAlsOn, scope: inAppStore, spans: true });

// ---- measurement ---------------------------------------------------------------------------------------------------

const cpuNs = () => {
  const { user, system } = process.cpuUsage();
  return (user + system) * 1000;
};

/**
 * One batch of `n` calls on one variant, on the CPU clock; the clock stops after a turn of the event loop, so work the
 * agent defers past the call is timed too. Checks the batch produced exactly one good event per call, or none.
 */
async function runBatch(v, call, n) {
  v.enter();
  const [before, faults, spansBefore] = [recorded(), meter.faults, spans.ended];
  const start = cpuNs();
  for (let i = 0; i < n; i++) await v.scope(() => call(v.client));
  await nextTurn();
  const ns = cpuNs() - start;
  const events = recorded() - before;
  const expected = v.tenant === undefined ? 0 : n;
  if (v.tenant !== undefined) tally[v.tenant] += n;
  if (events !== expected || meter.faults !== faults) {
    throw new AgentMisbehaved(`${v.label}: ${n} calls gave ${events} events (expected ${expected}), ${meter.faults - faults} agent faults`);
  }
  // Not the agent, but a comparison with a tracer that records nothing would be worthless too.
  if (spans.ended - spansBefore !== (v.spans ? n : 0) || spans.bad !== 0) {
    throw new Error(`${v.label}: ${n} calls ended ${spans.ended - spansBefore} spans of a chat call, and ${spans.bad} others`);
  }
  return ns;
}

/** Fisher–Yates, in place. */
function shuffle(items) {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  return items;
}

/**
 * Rounds of one batch per variant, in a new random order each round: what a batch inherits from the one before it
 * (its garbage, the ALS hook turned back on after ALS off) lands on every variant alike. A mere rotation would keep
 * each variant behind the same neighbour.
 */
async function rounds(variants, call, n, count, record) {
  for (let round = 0; round < count; round++) {
    for (const v of shuffle([...variants])) {
      const ns = await runBatch(v, call, n);
      if (record) v.cpuNs.push(ns);
    }
  }
}

/** Calls per batch: as many as fit in batchMs on the baseline as it runs now. */
async function batchSize(variants, call) {
  const baseline = variants.find((v) => v.key === 'raw');
  const ns = [];
  for (let i = 0; i < 7; i++) ns.push(await runBatch(baseline, call, 10));
  const perCall = ns.sort((a, b) => a - b)[3] / 10;
  return Math.max(1, Math.round((config.batchMs * 1e6) / perCall));
}

/**
 * Warm-up at the final batch size until the CPU of a block of rounds stops falling (within 2% of the block before:
 * the copies' code has tiered up and settled), or warmupMaxMs; a copy still compiling would read slow.
 */
async function settle(variants, call, n) {
  const deadline = performance.now() + config.warmupMaxMs;
  const block = async () => {
    const start = cpuNs();
    await rounds(variants, call, n, config.warmupRounds, false);
    return cpuNs() - start;
  };
  const started = performance.now();
  let previous = await block();
  let blocks = 1;
  while (performance.now() < deadline) {
    const current = await block();
    blocks++;
    if (current > previous * 0.98) break;
    previous = current;
  }
  return { blocks, ms: Math.round(performance.now() - started) };
}

async function measure(name, variants) {
  const workload = WORKLOADS[name];
  // Each copy is JIT-compiled on its own, and cold an SDK call costs many times what it does warm: a first warm-up
  // of a few calls a batch, then one at about the batch size until the copies settle, and only then the batch size
  // is fixed.
  const deadline = performance.now() + config.warmupMs * variants.length;
  while (performance.now() < deadline) await rounds(variants, workload.call, 4, 1, false);
  const warmup = await settle(variants, workload.call, await batchSize(variants, workload.call));
  const n = await batchSize(variants, workload.call);
  await rounds(variants, workload.call, n, config.warmupRounds, false);
  await rounds(variants, workload.call, n, config.rounds, true);
  const result = { batch: n, rounds: config.rounds, warmup, variants: {} };
  for (const v of variants) result.variants[v.key] = { label: v.label, cpuNs: v.cpuNs, calls: n * v.cpuNs.length };
  return result;
}

/** The usage file holds one good event (not partial, no error) per call, each for the tenant that made it. */
async function checkEvents() {
  await meter.flush();
  const { dropped } = meter.stats();
  const found = { [TENANT]: 0, [LIMITED_TENANT]: 0 };
  for (const line of readFileSync(usageFile, 'utf8').split('\n')) {
    if (line === '') continue;
    const event = JSON.parse(line);
    if (!Object.hasOwn(found, event.tenant_id) || event.partial === true || event.error !== undefined || !(event.cost_usd > 0)) {
      throw new AgentMisbehaved(`a bad event in the usage file: ${line}`);
    }
    found[event.tenant_id]++;
  }
  if (dropped !== 0 || found[TENANT] !== tally[TENANT] || found[LIMITED_TENANT] !== tally[LIMITED_TENANT]) {
    throw new AgentMisbehaved(`the usage file has ${JSON.stringify(found)} events for ${JSON.stringify(tally)} calls (${dropped} dropped)`);
  }
}

/** Every reservation the limited tenant's calls made was settled at a cost. */
async function checkLimitSettled() {
  const [usage] = await meter.getUsage(LIMITED_TENANT);
  if (usage === undefined || usage.reservedUsd !== 0 || !(usage.spentUsd > 0)) {
    throw new AgentMisbehaved(`the limited tenant's window reads ${JSON.stringify(usage)}: every reservation should be settled at a cost`);
  }
}

const versions = {
  node: process.version,
  openai: versionOf(requireFromOpenai7, 'openai'),
  anthropic: versionOf(requireFromRepo, '@anthropic-ai/sdk'),
  genai: versionOf(requireFromGenai3, '@google/genai'),
  openai6: versionOf(requireFromOpenai6, 'openai'),
};

try {
  // Every copy is loaded before OpenTelemetry's hook goes on, and its own copies after.
  const variants = Object.fromEntries(config.workloads.map((name) => [name, build(WORKLOADS[name].variants())]));
  const traced = config.workloads.filter((name) => WORKLOADS[name].otel);
  if (traced.length > 0) enableOpenTelemetry();
  for (const name of traced) variants[name].push(...build([otelVariant(requireFromOpenai6)]));
  const results = {};
  for (const name of config.workloads) results[name] = await measure(name, variants[name]);
  await checkLimitSettled();
  await checkEvents();
  console.log(JSON.stringify({ versions, results, wrapperUsages: wrapperTally.usages }));
} catch (err) {
  if (!(err instanceof AgentMisbehaved)) throw err;
  console.log(JSON.stringify({ misbehaved: err.message }));
  process.exitCode = 2;
} finally {
  await meter.shutdown();
  rmSync(dirname(usageFile), { recursive: true, force: true });
}
