// The llm-meter benchmark (`npm run bench`): what the agent costs an app that uses the real openai SDK.
//
// - per call: the SDK's own work with and without the agent, in one process, on canned responses (no sockets, no
//   delivery: the Meter has no url), interleaved in rounds so drift hits both sides alike;
// - at startup: wall time of `node app.mjs` that imports openai, bare, with an empty loader thread, and with
//   `--import register.mjs`.
//
// Prints figures and targets; exits 1 only when the agent misbehaves (a bench of a broken agent is worthless), never
// for a missed target. Add a bench by adding a section: `run()` returns the lines it contributes to the summary.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { supportsSyncHooks } from 'import-in-the-middle/supports-sync-hooks.mjs';

const benchDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(benchDir, '..', '..');
const requireFromRepo = createRequire(join(repoRoot, 'package.json'));

// As an app gets them: the CJS builds, by package name.
const { OpenAI } = requireFromRepo('openai');
const { VERSION: OPENAI_VERSION } = requireFromRepo('openai/version');
const { Meter } = requireFromRepo('llm-meter');

const ROUNDS = 9;
const BATCH_MS = 200;
const WARMUP_MS = 1500;
const STARTUP_WARMUPS = 2;
const STARTUP_RUNS = 15;
const TENANT = 'bench';

class AgentMisbehaved extends Error {}

// ---- the meter under test ------------------------------------------------------------------------------------------

// Node 20 leaves an AsyncLocalStorage's promise hook on for the whole process once run() has used it, so after the
// first tenant scope every promise of the unpatched side would pay for it too. Turning the agent's store off before
// each unpatched batch keeps that side as an app without the agent runs; the next forTenant turns it back on.
const tenantStore = globalThis[Symbol.for('llm-meter.tenant-store')];

const tally = { events: 0, wrong: 0 };
const meter = new Meter({
  onEvent(event) {
    tally.events++;
    if (event.tenant_id !== TENANT || event.partial === true || event.error !== undefined) tally.wrong++;
  },
});

// ---- canned OpenAI responses ---------------------------------------------------------------------------------------

const STREAM_CHUNKS = 100;
const CREATED = 1_730_000_000;
const USAGE = {
  prompt_tokens: 412,
  completion_tokens: 118,
  total_tokens: 530,
  prompt_tokens_details: { cached_tokens: 256, audio_tokens: 0 },
  completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
};

const COMPLETION_BODY = JSON.stringify({
  id: 'chatcmpl-bench0001',
  object: 'chat.completion',
  created: CREATED,
  model: 'gpt-4o-2024-08-06',
  choices: [
    {
      index: 0,
      message: {
        role: 'assistant',
        content: 'Your invoice total is $1,284.50, due on 15 March. The two largest items are the annual support plan and seat upgrades.',
        refusal: null,
        annotations: [],
      },
      logprobs: null,
      finish_reason: 'stop',
    },
  ],
  usage: USAGE,
  service_tier: 'default',
  system_fingerprint: 'fp_bench01',
});

function chunk(index, delta, finishReason, includeUsage) {
  const body = {
    id: 'chatcmpl-bench0002',
    object: 'chat.completion.chunk',
    created: CREATED,
    model: 'gpt-4o-mini-2024-07-18',
    service_tier: 'default',
    system_fingerprint: 'fp_bench02',
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
  };
  // With include_usage the API puts `usage: null` on every chunk, and the usage on a last chunk of its own.
  return includeUsage ? { ...body, usage: null } : body;
}

/** The SSE body of a 100-chunk chat stream, as the API sends it with or without `stream_options.include_usage`. */
function streamBody(includeUsage) {
  const chunks = Array.from({ length: STREAM_CHUNKS }, (_, i) => {
    if (i === 0) return chunk(i, { role: 'assistant', content: '', refusal: null }, null, includeUsage);
    if (i === STREAM_CHUNKS - 1) return chunk(i, {}, 'stop', includeUsage);
    return chunk(i, { content: ` word${i}` }, null, includeUsage);
  });
  if (includeUsage) chunks.push({ ...chunk(0, {}, null, false), choices: [], usage: USAGE });
  return `${chunks.map((c) => `data: ${JSON.stringify(c)}\n\n`).join('')}data: [DONE]\n\n`;
}

const STREAM_BODY = { withUsage: streamBody(true), withoutUsage: streamBody(false) };
const JSON_HEADERS = { 'content-type': 'application/json', 'x-request-id': 'req_bench0001' };
const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'x-request-id': 'req_bench0002' };

/** The client's `fetch`: answers in-process, streaming usage only when the request asked for it (as the agent does). */
async function fakeFetch(_url, init) {
  const request = JSON.parse(init.body);
  if (request.stream !== true) return new Response(COMPLETION_BODY, { headers: JSON_HEADERS });
  const body = request.stream_options?.include_usage === true ? STREAM_BODY.withUsage : STREAM_BODY.withoutUsage;
  return new Response(body, { headers: SSE_HEADERS });
}

const openai = new OpenAI({ apiKey: 'sk-bench', fetch: fakeFetch, maxRetries: 0 });
const MESSAGES = [
  { role: 'system', content: 'You are a billing assistant. Answer in two sentences.' },
  { role: 'user', content: 'What do I owe this month, and what are the largest items?' },
];

async function plainCall() {
  const completion = await openai.chat.completions.create({ model: 'gpt-4o', messages: MESSAGES });
  if (completion.choices.length !== 1) throw new Error('unexpected completion');
}

async function streamCall() {
  const stream = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: MESSAGES, stream: true });
  let seen = 0;
  for await (const c of stream) if (c.choices.length === 1) seen++;
  // The usage-only chunk the agent asked for must stay hidden, so both sides hand the caller the same 100 chunks.
  if (seen !== STREAM_CHUNKS) throw new AgentMisbehaved(`the caller saw ${seen} stream chunks, not ${STREAM_CHUNKS}`);
}

// ---- per-call overhead ---------------------------------------------------------------------------------------------

/** Runs `fn` n times, one call after another; returns ns per call. */
async function timeCalls(fn, n) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await fn();
  return Number(process.hrtime.bigint() - start) / n;
}

/** One timed batch on one side; checks it produced exactly one good event per call when patched and none otherwise. */
async function runBatch(side, n) {
  side.enter();
  const before = { ...tally, faults: meter.faults };
  const ns = await timeCalls(side.fn, n);
  await nextTurn();
  const events = tally.events - before.events;
  const expected = side.patched ? n : 0;
  if (events !== expected || tally.wrong !== before.wrong || meter.faults !== before.faults) {
    throw new AgentMisbehaved(
      `${side.name}: ${n} calls gave ${events} events (expected ${expected}), ` +
        `${tally.wrong - before.wrong} wrong (not tenant '${TENANT}', partial or error), ${meter.faults - before.faults} agent faults`,
    );
  }
  side.calls += n;
  return ns;
}

/** Doubling batches until WARMUP_MS has passed; returns the last batch's ns per call. */
async function warmUp(side) {
  const deadline = performance.now() + WARMUP_MS;
  let ns;
  for (let n = 1; performance.now() < deadline; n *= 2) ns = await runBatch(side, n);
  return ns;
}

const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

function leaveAgentOff() {
  meter.unpatchAll();
  tenantStore.disable();
}

/** Median ns per call of each side over ROUNDS interleaved batches, after warming both up. */
async function compare(name, unpatchedFn, patchedFn, target) {
  const unpatched = { name: 'unpatched', fn: unpatchedFn, patched: false, enter: leaveAgentOff, calls: 0, times: [] };
  const patched = { name: 'patched', fn: patchedFn, patched: true, enter: () => meter.patchAll(), calls: 0, times: [] };
  const perCall = Math.max(await warmUp(unpatched), await warmUp(patched));
  const n = Math.max(10, Math.round((BATCH_MS * 1e6) / perCall));
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate which side goes first, so neither always runs right after the other's garbage.
    const order = round % 2 === 0 ? [unpatched, patched] : [patched, unpatched];
    for (const side of order) side.times.push(await runBatch(side, n));
  }
  leaveAgentOff();
  const ratios = patched.times.map((ns, round) => ns / unpatched.times[round]);
  console.log(
    `  ${ROUNDS} rounds x ${n} calls a side, ratio per round ${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)}; ` +
      `one event for each of ${patched.calls} patched calls, none for ${unpatched.calls} unpatched: OK`,
  );
  return [overheadLine(name, median(unpatched.times), median(patched.times), target)];
}

const micros = (ns) => `${(ns / 1000).toFixed(1).padStart(7)} µs`;

function overheadLine(name, unpatchedNs, patchedNs, target) {
  const ratio = patchedNs / unpatchedNs;
  const verdict = ratio <= target ? 'PASS' : 'OVER';
  return (
    `${name.padEnd(24)} unpatched ${micros(unpatchedNs)}   patched ${micros(patchedNs)}   ` +
    `ratio ${ratio.toFixed(2)}  (target <= ${target.toFixed(2)}) ${verdict}`
  );
}

// ---- startup -------------------------------------------------------------------------------------------------------

/** Wall ms of one `node [args] app.mjs` from spawn to exit. */
function timeStartup(args) {
  const start = performance.now();
  const child = spawnSync(process.execPath, [...args, join(benchDir, 'app.mjs')], { cwd: repoRoot, stdio: ['ignore', 'ignore', 'pipe'] });
  const ms = performance.now() - start;
  if (child.status !== 0) throw new Error(`node ${args.join(' ')} app.mjs exited ${child.status ?? child.signal}: ${child.stderr}`);
  return ms;
}

async function startup() {
  const variants = {
    none: [],
    loaderThread: ['--import', join(benchDir, 'register-noop-hooks.mjs')],
    agent: ['--import', join(repoRoot, 'register.mjs')],
  };
  const times = { none: [], loaderThread: [], agent: [] };
  for (let run = 0; run < STARTUP_WARMUPS + STARTUP_RUNS; run++) {
    for (const [key, args] of Object.entries(variants)) {
      const ms = timeStartup(args);
      if (run >= STARTUP_WARMUPS) times[key].push(ms);
    }
  }
  const [none, loaderThread, agent] = [times.none, times.loaderThread, times.agent].map(median);
  const ms = (value) => `${Math.round(value)} ms`;
  const hooks = supportsSyncHooks() ? 'in-thread sync hooks (module.registerHooks)' : 'async loader thread (module.register)';
  return [
    `startup (import openai): none ${ms(none)} | loader thread only ${ms(loaderThread)} | --import register.mjs ${ms(agent)}` +
      ` → agent adds ${ms(agent - loaderThread)} over the loader thread`,
    `  medians of ${STARTUP_RUNS} runs each; --import register.mjs costs ${ms(agent - none)} in all, ` +
      `of which the loader thread ${ms(loaderThread - none)}; the agent used the ${hooks}`,
  ];
}

// ---- main ----------------------------------------------------------------------------------------------------------

/** The same call on both sides; the patched side runs it in a tenant scope, as a metered app would. */
function overheadSection(name, call, target) {
  return { name, run: () => compare(name, call, () => meter.forTenant(TENANT, call), target) };
}

const sections = [
  overheadSection('openai plain call', plainCall, 1.1),
  overheadSection('openai 100-chunk stream', streamCall, 1.05),
  { name: 'startup', run: startup },
];

async function main() {
  const header = `llm-meter bench — node ${process.version}, openai ${OPENAI_VERSION}`;
  console.log(`${header}\n`);
  const summary = [];
  for (const section of sections) {
    console.log(`${section.name} ...`);
    summary.push(...(await section.run()));
  }
  console.log(`\n${header}\n${summary.join('\n')}`);
}

try {
  await main();
} catch (err) {
  console.error(err instanceof AgentMisbehaved ? `FAIL: the agent misbehaved: ${err.message}` : err);
  process.exitCode = 1;
}
