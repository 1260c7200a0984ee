// The llm-meter benchmark (`npm run bench`): what the agent costs an app that uses the real provider SDKs.
//
// - per call: each SDK's own work with and without the agent on canned responses (no sockets, no delivery: the Meter
//   has no url), every variant on its own copy of the SDK in one process, in CPU-timed batches interleaved for many
//   rounds (overhead.mjs, run in several processes on each Node by overhead-report.mjs): openai (plain call and
//   100-chunk stream), @anthropic-ai/sdk (100-delta stream), @google/genai (100-chunk stream), and openai 6 beside
//   OpenTelemetry's instrumentation, against the SDK in an app that has AsyncLocalStorage on, with an A/A control;
//   `BENCH_QUICK=1 node test/bench/run.mjs overhead` for a run of under a minute;
// - pricing and spend limits: what admission (estimate + reserve + settle) adds to a call, and what trackManually costs;
// - delivery: events/s through the whole delivery path (queue, batching, JSON, gzip, HTTP POST) to a minimal ingest on
//   127.0.0.1, and the heap after GC, in children run with --expose-gc (delivery.mjs); and the heap with the ingest
//   down for good (test/apps/ingest-down.cjs);
// - the fleet store: reserve + settle latency against a redis-server of the bench's own (skipped when none is installed);
// - at startup: wall time of `node app.mjs` that imports openai, bare, with an empty loader thread, and with
//   `--import register.mjs`.
//
// Prints figures and targets; exits 1 only when the agent misbehaves (a bench of a broken agent is worthless), never
// for a missed target. Add a bench by adding a section: `run()` returns the lines it contributes to the summary.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { redisServerInstalled, startRedisServer } from '../fixtures/redis-server.mjs';
import { AgentMisbehaved, fakeFetch, MESSAGES } from './canned.mjs';
import { perCallOverhead } from './overhead-report.mjs';

const benchDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(benchDir, '..', '..');
const requireFromRepo = createRequire(join(repoRoot, 'package.json'));

// As an app gets them: the CJS builds, by package name.
const { OpenAI } = requireFromRepo('openai');
const { VERSION: OPENAI_VERSION } = requireFromRepo('openai/version');
const { VERSION: ANTHROPIC_VERSION } = requireFromRepo('@anthropic-ai/sdk/version');
// @google/genai exports neither its version nor its package.json; its CJS entry is dist/node/index.cjs.
const GENAI_VERSION = JSON.parse(readFileSync(join(dirname(requireFromRepo.resolve('@google/genai')), '..', '..', 'package.json'), 'utf8')).version;
const { Meter } = requireFromRepo('llm-meter');

const ROUNDS = 9;
const BATCH_MS = 200;
const WARMUP_MS = 1500;
const STARTUP_WARMUPS = 2;
const STARTUP_RUNS = 15;
const TENANT = 'bench';
const LIMITED_TENANT = 'bench-limited';

// ---- the meter under test ------------------------------------------------------------------------------------------

// Node 20 leaves an AsyncLocalStorage's promise hook on for the whole process once run() has used it, so after the
// first tenant scope every promise of the unpatched side would pay for it too. Turning the agent's store off before
// each unpatched batch keeps that side as an app without the agent runs; the next forTenant turns it back on.
const tenantStore = globalThis[Symbol.for('llm-meter.tenant-store')];

/** Events seen, and events not billed to a tenant the running batch expects (or partial, or with an error). */
const tally = { events: 0, wrong: 0, tenants: [TENANT] };
const meter = new Meter({
  onEvent(event) {
    tally.events++;
    if (!tally.tenants.includes(event.tenant_id) || event.partial === true || event.error !== undefined) tally.wrong++;
  },
});

// patchAll takes milliseconds (it scans the require cache and starts imports whose tails would land in the next timed
// batch), so it runs only when the agent is off, not before every patched batch.
let agentPatched = false;

function patchAgent() {
  if (agentPatched) return;
  meter.patchAll();
  agentPatched = true;
}

/** The strict baseline: no patches, and the tenant store's promise hook off, as in an app without the agent. */
function leaveAgentOff() {
  meter.unpatchAll();
  agentPatched = false;
  tenantStore.disable();
}

// ---- canned responses (canned.mjs) ---------------------------------------------------------------------------------

const openai = new OpenAI({ apiKey: 'sk-bench', fetch: fakeFetch, maxRetries: 0 });

async function plainCall() {
  const completion = await openai.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES });
  if (completion.choices.length !== 1) throw new Error('unexpected completion');
}

// ---- per-call measurement ------------------------------------------------------------------------------------------

/**
 * One way of making calls, batch after batch: `enter` sets the agent up before each batch; `tenants` are who each
 * call's event may be billed to (none: no event may come); `sync` for a call that returns no promise.
 */
function newSide(name, fn, { enter, tenants = [], sync = false }) {
  return { name, fn, enter, tenants, sync, calls: 0, times: [] };
}

/** The call patched, in a tenant scope, as a metered app makes it. */
const meteredSide = (call, tenant = TENANT) =>
  newSide(`patched, tenant ${tenant}`, () => meter.forTenant(tenant, call), { enter: patchAgent, tenants: [tenant] });

/**
 * Two sides as one, for a difference far below the noise between batches: the calls alternate (a b b a a b ...), each
 * on its own clock, so both meet the same load. Once warm, `samples` holds each side's ns per call.
 */
function alternatingSide(a, b) {
  if (a.enter !== b.enter || a.sync !== b.sync) throw new Error(`${a.name} and ${b.name} cannot alternate`);
  const sides = [a, b];
  const samples = [[], []];
  let calls = 0;
  const next = () => ((calls >> 1) ^ calls++) & 1;
  const record = (which, start) => {
    if (alternating.warm) samples[which].push(Number(process.hrtime.bigint() - start));
  };
  const fn = a.sync
    ? () => {
        const which = next();
        const start = process.hrtime.bigint();
        sides[which].fn();
        record(which, start);
      }
    : async () => {
        const which = next();
        const start = process.hrtime.bigint();
        await sides[which].fn();
        record(which, start);
      };
  const alternating = newSide(`${a.name} / ${b.name}`, fn, { enter: a.enter, tenants: [...a.tenants, ...b.tenants], sync: a.sync });
  return Object.assign(alternating, { samples });
}

/** Runs `fn` n times, one call after another; returns ns per call. */
async function timeCalls(fn, n) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await fn();
  return Number(process.hrtime.bigint() - start) / n;
}

/** timeCalls for a synchronous `fn`, without the await that would cost more than some such calls do. */
function timeSyncCalls(fn, n) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) fn();
  return Number(process.hrtime.bigint() - start) / n;
}

/** One timed batch on one side; checks it produced exactly one good event per call when metered and none otherwise. */
async function runBatch(side, n) {
  side.enter();
  // Whatever entering started (patchAll's imports of the ESM builds) finishes before the clock starts.
  await nextTurn();
  tally.tenants = side.tenants;
  const before = { ...tally, faults: meter.faults };
  const ns = side.sync ? timeSyncCalls(side.fn, n) : await timeCalls(side.fn, n);
  await nextTurn();
  const events = tally.events - before.events;
  const expected = side.tenants.length === 0 ? 0 : n;
  if (events !== expected || tally.wrong !== before.wrong || meter.faults !== before.faults) {
    throw new AgentMisbehaved(
      `${side.name}: ${n} calls gave ${events} events (expected ${expected}), ` +
        `${tally.wrong - before.wrong} wrong (not tenant ${side.tenants.join(' or ') || 'none'}, partial or error), ${meter.faults - before.faults} agent faults`,
    );
  }
  side.calls += n;
  return ns;
}

/** Doubling batches (the last one cut to fit) until WARMUP_MS has passed; returns the last batch's ns per call. */
async function warmUp(side) {
  const deadline = performance.now() + WARMUP_MS;
  let ns;
  for (let n = 1; performance.now() < deadline; n *= 2) {
    ns = await runBatch(side, n);
    n = Math.max(1, Math.min(n, Math.round(((deadline - performance.now()) * 1e6) / ns / 2)));
  }
  return ns;
}

/** The value below which a fraction `p` of `values` lies (p = 1: the largest). */
const percentile = (values, p) => [...values].sort((a, b) => a - b)[Math.min(values.length - 1, Math.floor(values.length * p))];
const median = (values) => percentile(values, 0.5);

/** Mean of the middle 90% of `values`: the worst of the load's spikes out, the agent's own garbage collection in. */
function trimmedMean(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const cut = Math.floor(sorted.length * 0.05);
  const kept = sorted.slice(cut, sorted.length - cut);
  return kept.reduce((sum, ns) => sum + ns, 0) / kept.length;
}

/**
 * Warms every side up, then times ROUNDS batches of each (filling side.times), interleaved; leaves the agent off.
 * Returns the calls per batch.
 */
async function measure(sides) {
  let perCall = 0;
  for (const s of sides) perCall = Math.max(perCall, await warmUp(s));
  for (const s of sides) s.warm = true;
  const n = Math.max(10, Math.round((BATCH_MS * 1e6) / perCall));
  for (let round = 0; round < ROUNDS; round++) {
    // Rotate which side goes first, so none always runs right after another's garbage.
    for (let i = 0; i < sides.length; i++) {
      const s = sides[(round + i) % sides.length];
      s.times.push(await runBatch(s, n));
    }
  }
  leaveAgentOff();
  return n;
}

const micros = (ns) => `${(ns / 1000).toFixed(1).padStart(7)} µs`;
const nanos = (ns) => `${Math.round(ns)} ns`;

// ---- pricing and spend limits --------------------------------------------------------------------------------------

const PRICING_TARGET_NS = 2000;
const MANUAL_USAGE = {
  provider: 'openai',
  model: 'gpt-4o-2024-08-06',
  input_tokens: 1000,
  output_tokens: 200,
  cached_tokens: 300,
  tenant_id: TENANT,
};
// A model no price source knows: trackManually does all the same work but pricing (cached as unknown after one call).
const UNPRICED_USAGE = { ...MANUAL_USAGE, model: 'gpt-bench-unpriced' };

/** What a call of b costs over a call of a, measured alternating: difference of trimmed means, and of medians. */
async function extraCost(a, b) {
  const alternating = alternatingSide(a, b);
  const n = await measure([alternating]);
  const [aSamples, bSamples] = alternating.samples;
  const [aNs, bNs] = [trimmedMean(aSamples), trimmedMean(bSamples)];
  return { n, calls: aSamples.length, aNs, bNs, ns: bNs - aNs, medianNs: median(bSamples) - median(aSamples) };
}

/**
 * Admission, through the public API: the same patched plain call for a tenant without a limit and for one with a
 * limit it never reaches. Both sides price the call; only the limited one estimates, reserves and settles.
 */
async function admissionCost() {
  await meter.setLimit(LIMITED_TENANT, { limitUsd: 1e9, frequency: 'per_month' });
  const admission = await extraCost(meteredSide(plainCall, TENANT), meteredSide(plainCall, LIMITED_TENANT));
  const [usage] = await meter.getUsage(LIMITED_TENANT);
  if (usage === undefined || usage.reservedUsd !== 0 || !(usage.spentUsd > 0)) {
    throw new AgentMisbehaved(`the limited tenant's window reads ${JSON.stringify(usage)}: every reservation should be settled at a cost`);
  }
  console.log(
    `  admission: ${ROUNDS} batches x ${admission.n} calls alternating, ${admission.calls} timed a side; medians differ by ` +
      `${nanos(admission.medianNs)}; one event per call, every reservation settled ($${usage.spentUsd.toFixed(2)} spent): OK`,
  );
  return admission;
}

/** Pricing, through the public API: trackManually of a known model against the same record of an unpriced one. */
async function pricingCost() {
  const manualSide = (usage) =>
    newSide(`trackManually ${usage.model}`, () => meter.trackManually(usage), { enter: leaveAgentOff, tenants: [TENANT], sync: true });
  const [unpriced, priced] = [manualSide(UNPRICED_USAGE), manualSide(MANUAL_USAGE)];
  const [unpricedEvent, pricedEvent] = [unpriced.fn(), priced.fn()];
  if (!(pricedEvent.cost_usd > 0) || pricedEvent.price_unknown === true || unpricedEvent.price_unknown !== true) {
    throw new AgentMisbehaved(`trackManually priced ${MANUAL_USAGE.model} at ${pricedEvent.cost_usd} and ${UNPRICED_USAGE.model} at ${unpricedEvent.cost_usd}`);
  }
  const pricing = await extraCost(unpriced, priced);
  console.log(
    `  pricing: ${ROUNDS} batches x ${pricing.n} trackManually calls alternating, ${pricing.calls} timed a side; medians differ by ` +
      `${nanos(pricing.medianNs)}; one event each, priced ($${pricedEvent.cost_usd}) and unknown: OK`,
  );
  return pricing;
}

const ADMISSION_OPS = 20_000;

/**
 * Admission alone, per call: the strict bound of the bench's chat request (input measured, rates looked up), the
 * in-process reserve, and the settle, timed one call at a time.
 */
function admissionLatency() {
  const dist = (...path) => requireFromRepo(join(repoRoot, 'dist', ...path));
  const { SpendLimits } = dist('src', 'limits', 'spend-limits.js');
  const { MemoryLimitStore } = dist('src', 'limits', 'memory-store.js');
  const { WindowCalendar } = dist('src', 'limits', 'windows.js');
  const { PriceBook } = dist('src', 'pricing', 'price-book.js');
  const { resolveMediaTokens } = dist('src', 'limits', 'input-ceilings.js');
  const { openaiPatch } = dist('patches', 'openai.js');
  const options = { enforcement: 'strict', unknownModel: 'allow', requireTenant: false, defaultMaxOutputTokens: 4096, maxInputTokens: 1_048_576, mediaTokens: resolveMediaTokens(undefined), clock: Date.now };
  const store = new MemoryLimitStore();
  const limits = new SpendLimits(store, new WindowCalendar(undefined), new PriceBook({}, () => false, () => undefined), options, () => false);
  store.setLimit('admitted', { frequency: 'per_month', limitNano: 1e18 });
  const chat = openaiPatch.targets[0];
  const times = [];
  for (let i = 0; i < STORE_WARMUPS + ADMISSION_OPS; i++) {
    const params = { model: 'gpt-4o', messages: MESSAGES, max_tokens: 500 };
    const call = { provider: 'openai', endpoint: 'chat.completions', requestedModel: 'gpt-4o', tenant: { tenantId: 'admitted' }, startedAtWall: Date.now(), target: chat, classifyInput: openaiPatch.classifyInput, args: [params] };
    const start = process.hrtime.bigint();
    const { reservation } = limits.admit(call);
    limits.settle(reservation, 0.001);
    const ns = Number(process.hrtime.bigint() - start);
    if (reservation === undefined) throw new AgentMisbehaved('a limited tenant was admitted without a reservation');
    if (i >= STORE_WARMUPS) times.push(ns);
  }
  const [usage] = store.usage('admitted', [new WindowCalendar(undefined).window('per_month', Date.now())]);
  if (usage.reservedNano !== 0) throw new AgentMisbehaved(`after ${ADMISSION_OPS} admit + settle, ${usage.reservedNano} nano-USD stay reserved`);
  return times;
}

async function pricingAndLimits() {
  const admission = await admissionCost();
  const latency = admissionLatency();
  const pricing = await pricingCost();
  const totalNs = admission.ns + pricing.ns;
  const verdict = totalNs < PRICING_TARGET_NS ? 'PASS' : 'OVER';
  const label = (text) => text.padEnd(26);
  return [
    `${label('admission (spend limit)')} ${nanos(admission.ns)} a call for estimate + reserve + settle: patched plain openai call ` +
      `${micros(admission.bNs).trim()} for a tenant with a limit, ${micros(admission.aNs).trim()} without`,
    `${label('admission alone')} strict bound + in-process reserve + settle, one call at a time: p50 ${nanos(median(latency))} ` +
      `p99 ${nanos(percentile(latency, 0.99))}`,
    `${label('pricing')} ${nanos(pricing.ns)} a call: trackManually ${nanos(pricing.bNs)} for a known model ` +
      `(validates, builds, prices, emits), ${nanos(pricing.aNs)} for an unpriced one`,
    `${label('pricing + limits')} ${nanos(totalNs)} a call  (target < ${nanos(PRICING_TARGET_NS)}) ${verdict}` +
      `   (calls alternating, 5%-trimmed means)`,
  ];
}

// ---- delivery throughput and memory -------------------------------------------------------------------------------

const DELIVERY_EVENTS = 200_000;
const DELIVERY_QUEUE = 100_000;
const DELIVERY_TARGET_PER_S = 10_000;
/** Of heap at most per event the queue can hold. */
const DELIVERY_TARGET_BYTES_PER_QUEUED = 1024;
const INGEST_DOWN_EVENTS = 1_000_000;
/** The safety test's bound on heap growth with the ingest down for good. */
const INGEST_DOWN_TARGET_MB = 16;

const count = (n) => n.toLocaleString('en-US');
const mb = (value) => `${value.toFixed(1)} MB`;

/** The least an ingest can be: reads and discards each body, answers 200, counts POSTs and bytes. */
function startIngest() {
  const ingest = { url: '', posts: 0, bytes: 0 };
  const server = createServer((req, res) => {
    req.on('data', (data) => (ingest.bytes += data.length));
    req.on('end', () => {
      ingest.posts++;
      res.end();
    });
  });
  ingest.close = () => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  };
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(Object.assign(ingest, { url: `http://127.0.0.1:${server.address().port}/ingest` })));
  });
}

/**
 * `node args` from the repo root, without blocking this process (whose ingest the child may be posting to); resolves
 * with the JSON of the last line it prints.
 */
function childReport(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let [stdout, stderr] = ['', ''];
    child.stdout.on('data', (data) => (stdout += data));
    child.stderr.on('data', (data) => (stderr += data));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code !== 0) return reject(new Error(`node ${args.join(' ')} exited ${code ?? signal}: ${stderr}`));
      resolve(JSON.parse(stdout.trim().split('\n').at(-1)));
    });
  });
}

/** One run of delivery.mjs against `ingest`; every event must be acknowledged, none dropped. */
async function deliveryRun(ingest, mode = []) {
  const [posts, bytes] = [ingest.posts, ingest.bytes];
  const report = await childReport(['--expose-gc', join(benchDir, 'delivery.mjs'), ingest.url, String(DELIVERY_EVENTS), String(DELIVERY_QUEUE), ...mode]);
  const { sent, dropped, queued } = report.stats;
  if (sent !== DELIVERY_EVENTS || dropped !== 0 || queued !== 0) {
    throw new AgentMisbehaved(`${count(DELIVERY_EVENTS)} events to a healthy ingest: ${JSON.stringify(report.stats)}, not all sent and none dropped`);
  }
  return { ...report, posts: ingest.posts - posts, bytes: ingest.bytes - bytes };
}

async function delivery() {
  const ingest = await startIngest();
  let timed, sampled;
  try {
    timed = await deliveryRun(ingest);
    sampled = await deliveryRun(ingest, ['heap']);
  } finally {
    await ingest.close();
  }
  const down = await childReport(['--expose-gc', join(repoRoot, 'test', 'apps', 'ingest-down.cjs'), String(INGEST_DOWN_EVENTS)]);
  if (down.stats.queued + down.stats.dropped !== INGEST_DOWN_EVENTS || down.stats.sent !== 0) {
    throw new AgentMisbehaved(`${count(INGEST_DOWN_EVENTS)} events with the ingest down: ${JSON.stringify(down.stats)}, not queued + dropped = all`);
  }
  console.log(
    `  ${count(DELIVERY_EVENTS)} events a run, all sent, none dropped, in ${count(timed.posts)} and ${count(sampled.posts)} POSTs: OK; ` +
      `ingest down: ${count(down.stats.queued)} queued + ${count(down.stats.dropped)} dropped = ${count(INGEST_DOWN_EVENTS)}: OK`,
  );
  const perS = DELIVERY_EVENTS / (timed.ms / 1000);
  const growthMb = sampled.peakMb - sampled.baseMb;
  const perQueued = (growthMb * 2 ** 20) / Math.max(1, sampled.maxQueued);
  const downGrowthMb = down.peakMb - down.baseMb;
  const label = (text) => text.padEnd(26);
  const verdict = (pass) => (pass ? 'PASS' : 'OVER');
  return [
    `${label('delivery, ingest up')} ${count(Math.round(perS))} events/s tracked → acknowledged: ${count(DELIVERY_EVENTS)} in ` +
      `${(timed.ms / 1000).toFixed(2)} s, queue of ${count(DELIVERY_QUEUE)} + batches of 500 + JSON + gzip (${Math.round(timed.bytes / DELIVERY_EVENTS)} B an event) ` +
      `+ POST to 127.0.0.1  (target >= ${count(DELIVERY_TARGET_PER_S)}) ${verdict(perS >= DELIVERY_TARGET_PER_S)}`,
    `${label('delivery heap, ingest up')} peak ${mb(sampled.peakMb)} after GC: +${mb(growthMb)} over the start (${mb(sampled.baseMb)}) ` +
      `with up to ${count(sampled.maxQueued)} queued, ${Math.round(perQueued)} B an event; ${mb(sampled.endMb)} after shutdown  ` +
      `(target <= ${DELIVERY_TARGET_BYTES_PER_QUEUED} B an event) ${verdict(perQueued <= DELIVERY_TARGET_BYTES_PER_QUEUED)}`,
    `${label('delivery heap, ingest down')} ${count(INGEST_DOWN_EVENTS)} events to a closed port, maxQueueSize 1000: peak ` +
      `${mb(down.peakMb)} after GC, +${mb(downGrowthMb)} over the start  (target < +${INGEST_DOWN_TARGET_MB} MB) ` +
      `${verdict(downGrowthMb < INGEST_DOWN_TARGET_MB)}`,
  ];
}

// ---- fleet store latency -------------------------------------------------------------------------------------------

const STORE_WARMUPS = 500;
const STORE_OPS = 5_000;
const STORE_TARGET_P50_MS = 0.5;
const STORE_TENANT = 't';
const RESERVE_NANO = 1000;
const SETTLE_NANO = 500;

/** Sequential reserve + settle through the store; ms of each, and of the pair, for the timed ones. */
async function reserveAndSettle(store, windows) {
  const times = { reserve: [], settle: [], both: [] };
  for (let i = 0; i < STORE_WARMUPS + STORE_OPS; i++) {
    const start = process.hrtime.bigint();
    const outcome = await store.reserve(STORE_TENANT, windows, RESERVE_NANO, 'strict');
    const reserved = process.hrtime.bigint();
    if (!outcome.admitted || outcome.reservation === undefined) throw new AgentMisbehaved(`reserve ${i} gave ${JSON.stringify(outcome)}, not a reservation`);
    await store.settle(outcome.reservation, SETTLE_NANO);
    const end = process.hrtime.bigint();
    if (i < STORE_WARMUPS) continue;
    times.reserve.push(Number(reserved - start) / 1e6);
    times.settle.push(Number(end - reserved) / 1e6);
    times.both.push(Number(end - start) / 1e6);
  }
  return times;
}

const BURST_CALLS = 2_000;

/**
 * 2,000 calls at once, with the store's default timeouts (commandTimeout 100 ms) and failMode 'closed', so that a
 * breaker that opens shows as a refused call: ms from each call's reserve to its settle being written.
 */
async function concurrentBurst(store, windows) {
  const one = async () => {
    const start = process.hrtime.bigint();
    const outcome = await store.reserve(STORE_TENANT, windows, RESERVE_NANO, 'strict');
    if (!outcome.admitted || outcome.reservation === undefined) throw new AgentMisbehaved(`a burst call gave ${JSON.stringify(outcome)}, not a reservation`);
    await store.settle(outcome.reservation, SETTLE_NANO);
    return Number(process.hrtime.bigint() - start) / 1e6;
  };
  const started = performance.now();
  const times = await Promise.all(Array.from({ length: BURST_CALLS }, one));
  return { times, wallMs: performance.now() - started };
}

async function fleetStore() {
  const label = 'fleet store (Redis)'.padEnd(26);
  if (!redisServerInstalled()) {
    console.log('  skipped: redis-server is not installed');
    return [`${label} skipped: redis-server is not installed  (target p50 < ${STORE_TARGET_P50_MS} ms)`];
  }
  const { RedisLimitStore } = requireFromRepo(join(repoRoot, 'dist', 'src', 'limits', 'redis-store.js'));
  const { AgentLog } = requireFromRepo(join(repoRoot, 'dist', 'src', 'log.js'));
  const { WindowCalendar } = requireFromRepo(join(repoRoot, 'dist', 'src', 'limits', 'windows.js'));
  const redis = await startRedisServer();
  let times, usage, burst;
  try {
    // The defaults an app gets (commandTimeout 100 ms, retryAfter 5 s); 'closed' so that a breaker that opens refuses.
    const options = { redis: redis.url, keyPrefix: 'bench:', failMode: 'closed', commandTimeout: 100, retryAfter: 5000, leaseMs: 60_000, clock: Date.now };
    const store = new RedisLimitStore(options, new AgentLog(false, []));
    try {
      await store.setLimit(STORE_TENANT, { frequency: 'per_month', limitNano: 1e15 });
      const windows = ['per_day', 'per_month'].map((f) => new WindowCalendar(undefined).window(f, Date.now()));
      times = await reserveAndSettle(store, windows);
      burst = await concurrentBurst(store, windows);
      usage = await store.usage(STORE_TENANT, windows);
    } finally {
      await store.close();
    }
  } finally {
    await redis.stop();
  }
  const calls = STORE_WARMUPS + STORE_OPS + BURST_CALLS;
  const [month] = usage;
  if (usage.length !== 1 || month.spentNano !== calls * SETTLE_NANO || month.reservedNano !== 0) {
    throw new AgentMisbehaved(`after ${calls} reserve + settle the per_month window reads ${JSON.stringify(usage)}, not ${calls * SETTLE_NANO} spent, 0 reserved`);
  }
  console.log(`  ${STORE_WARMUPS} warm-up + ${STORE_OPS} timed reserve + settle one after another, then ${BURST_CALLS} at once; every call admitted, window spent = settled, nothing left reserved: OK`);
  const ms = (value) => `${value.toFixed(3)} ms`;
  const p50 = median(times.both);
  return [
    `${label} reserve + settle p50 ${ms(p50)} p99 ${ms(percentile(times.both, 0.99))} max ${ms(percentile(times.both, 1))} ` +
      `(reserve p50 ${ms(median(times.reserve))}, settle p50 ${ms(median(times.settle))}; local redis-server)  ` +
      `(target p50 < ${STORE_TARGET_P50_MS} ms) ${p50 < STORE_TARGET_P50_MS ? 'PASS' : 'OVER'}`,
    `${'fleet store, 2,000 at once'.padEnd(26)} reserve + settle p50 ${ms(median(burst.times))} p99 ${ms(percentile(burst.times, 0.99))} ` +
      `max ${ms(percentile(burst.times, 1))}, all ${BURST_CALLS} in ${ms(burst.wallMs)}; default timeouts, failMode 'closed': ` +
      `every call admitted by Redis, the breaker never opened`,
  ];
}

// ---- startup -------------------------------------------------------------------------------------------------------

/** Wall ms of one `node [args] app.mjs` from spawn to exit. */
function timeStartup(node, args) {
  const start = performance.now();
  const child = spawnSync(node, [...args, join(benchDir, 'app.mjs')], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = performance.now() - start;
  if (child.status !== 0) throw new Error(`node ${args.join(' ')} app.mjs exited ${child.status ?? child.signal}: ${child.stderr}`);
  return ms;
}

/** The Node versions to time startup on: this one, and Node 22 (in-thread hooks) once `npm test` has fetched it. */
function startupNodes() {
  const node22 = join(repoRoot, 'node_modules/.cache/llm-meter-node-22/package/bin/node');
  return existsSync(node22) && node22 !== process.execPath ? [process.execPath, node22] : [process.execPath];
}

function hooksUsedBy(node) {
  const probe = spawnSync(node, ['--input-type=module', '-e', `import { supportsSyncHooks } from 'import-in-the-middle/supports-sync-hooks.mjs'; console.log(process.version, supportsSyncHooks())`], {
    cwd: repoRoot,
    encoding: 'utf8',
  });
  const [version, sync] = probe.stdout.trim().split(' ');
  return { version, hooks: sync === 'true' ? 'in-thread sync hooks (module.registerHooks)' : 'async loader thread (module.register)' };
}

async function startupOn(node) {
  const variants = {
    none: [],
    loaderThread: ['--import', join(benchDir, 'register-noop-hooks.mjs')],
    agent: ['--import', join(repoRoot, 'register.mjs')],
  };
  const times = { none: [], loaderThread: [], agent: [] };
  for (let run = 0; run < STARTUP_WARMUPS + STARTUP_RUNS; run++) {
    for (const [key, args] of Object.entries(variants)) {
      const ms = timeStartup(node, args);
      if (run >= STARTUP_WARMUPS) times[key].push(ms);
    }
  }
  const [none, loaderThread, agent] = [times.none, times.loaderThread, times.agent].map(median);
  const ms = (value) => `${Math.round(value)} ms`;
  const { version, hooks } = hooksUsedBy(node);
  return [
    `startup on node ${version} (import openai): none ${ms(none)} | async loader thread only ${ms(loaderThread)} | --import register.mjs ${ms(agent)}` +
      ` → the agent adds ${ms(agent - none)} to a bare start`,
    `  medians of ${STARTUP_RUNS} runs each; the agent used the ${hooks}` +
      (hooks.startsWith('async') ? `, whose thread alone costs ${ms(loaderThread - none)}: the agent adds ${ms(agent - loaderThread)} on top` : ''),
  ];
}

async function startup() {
  const lines = [];
  for (const node of startupNodes()) lines.push(...(await startupOn(node)));
  return lines;
}

// ---- main ----------------------------------------------------------------------------------------------------------

const sections = [
  { name: 'per-call overhead', run: () => perCallOverhead(console.log) },
  { name: 'pricing + limits', run: pricingAndLimits },
  { name: 'delivery throughput and memory', run: delivery },
  { name: 'fleet store latency', run: fleetStore },
  { name: 'startup', run: startup },
];

async function main() {
  const header =
    `llm-meter bench — node ${process.version}; top-level openai ${OPENAI_VERSION}, @anthropic-ai/sdk ${ANTHROPIC_VERSION}, ` +
    `@google/genai ${GENAI_VERSION} (the per-call overhead names the copies it measures)`;
  console.log(`${header}\n`);
  const summary = [];
  // `npm run bench -- <words>` runs only the sections whose name contains one of them.
  const only = process.argv.slice(2);
  for (const section of sections.filter((s) => only.length === 0 || only.some((word) => s.name.includes(word)))) {
    console.log(`${section.name} ...`);
    const start = performance.now();
    summary.push(...(await section.run()));
    console.log(`  (${((performance.now() - start) / 1000).toFixed(1)} s)`);
  }
  console.log(`\n${header}\n${summary.join('\n')}`);
}

try {
  await main();
} catch (err) {
  console.error(err instanceof AgentMisbehaved ? `FAIL: the agent misbehaved: ${err.message}` : err);
  process.exitCode = 1;
}
