// The demo: a small multi-tenant app, run with `node --import ./register.mjs test/demo/app.mjs` (npm run demo).
// No keys, no network: the bundled fake providers and fake ingest run on 127.0.0.1 inside this process.
import Anthropic from '@anthropic-ai/sdk';
import { GoogleGenAI } from '@google/genai';
import OpenAI from 'openai';
import { rmSync } from 'node:fs';
import { relative } from 'node:path';
import { LimitExceededError, Meter } from 'llm-meter';
import { startFakeIngest } from '../fixtures/fake-ingest.mjs';
import { startFakeProviders } from '../fixtures/fake-providers.mjs';

const provider = await startFakeProviders();
const ingest = await startFakeIngest();

// Events go to the ingest, and to a JSON Lines file (started afresh each run) for the report command.
const usageFile = 'usage.jsonl';
rmSync(usageFile, { force: true });
const meter = new Meter({ url: ingest.url, apiKey: 'demo-ingest-key', file: usageFile, flushInterval: 200 });
meter.patchAll();
// initech is on the free plan: a small daily budget, enforced before any request leaves. Each call holds a
// reservation (its input plus its max_tokens of output) until it settles, so a concurrent burst cannot overspend.
await meter.setLimit('initech', { limitUsd: 0.005, frequency: 'per_day' });

// The app's own code: nothing here knows about metering except the tenant scope.
const openai = new OpenAI({ apiKey: 'sk-demo', baseURL: provider.openaiBaseURL });
const anthropic = new Anthropic({ apiKey: 'sk-ant-demo', baseURL: provider.anthropicBaseURL });
const gemini = new GoogleGenAI({ apiKey: 'demo', httpOptions: { baseUrl: provider.geminiBaseUrl } });

async function answerQuestion(question) {
  const completion = await openai.chat.completions.create({ model: 'gpt-4o', max_tokens: 200, messages: [{ role: 'user', content: question }] });
  return completion.choices[0].message.content;
}

async function streamSummary(text) {
  const stream = await anthropic.messages.create({ model: 'claude-haiku-4-5', max_tokens: 200, stream: true, messages: [{ role: 'user', content: text }] });
  let summary = '';
  for await (const event of stream) if (event.type === 'content_block_delta') summary += event.delta.text ?? '';
  return summary;
}

async function translate(text) {
  let out = '';
  for await (const chunk of await gemini.models.generateContentStream({ model: 'gemini-2.5-flash', contents: text, config: { maxOutputTokens: 200 } })) {
    out += chunk.text ?? '';
  }
  return out;
}

async function indexDocument(text) {
  await openai.embeddings.create({ model: 'text-embedding-3-small', input: text });
}

const refused = new Map();
async function handleRequest(tenant, i) {
  return meter.forTenant(tenant, async () => {
    try {
      if (i % 4 === 0) await indexDocument(`document ${i}`);
      if (i % 3 === 0) return await streamSummary(`summarise ${i}`);
      if (i % 3 === 1) return await translate(`translate ${i}`);
      return await answerQuestion(`question ${i}`);
    } catch (err) {
      if (!(err instanceof LimitExceededError)) throw err;
      refused.set(tenant, (refused.get(tenant) ?? 0) + 1);
      return 'Your plan is out of AI credit for today.';
    }
  });
}

const traffic = { acme: 12, globex: 7, initech: 6 };
for (const [tenant, n] of Object.entries(traffic)) {
  await Promise.all(Array.from({ length: n }, (_, i) => handleRequest(tenant, i)));
}
const initechUsage = await meter.getUsage('initech');
await meter.shutdown();

// What the backend received, per tenant.
const rows = new Map();
for (const e of ingest.events) {
  const row = rows.get(e.tenant_id) ?? { calls: 0, refused: 0, input: 0, output: 0, cost: 0, providers: new Set() };
  if (e.error === 'LimitExceededError') row.refused++;
  else row.calls++;
  row.input += e.input_tokens + (e.provider === 'anthropic' ? (e.cached_tokens ?? 0) + (e.cache_creation_tokens ?? 0) : 0);
  row.output += e.output_tokens;
  row.cost += e.cost_usd;
  row.providers.add(e.provider);
  rows.set(e.tenant_id, row);
}
const pad = (v, n) => String(v).padStart(n);
console.log(`\nllm-meter demo: ${ingest.events.length} usage events delivered in ${ingest.batches.length} gzip batch(es)\n`);
console.log(`${'tenant'.padEnd(10)}${pad('calls', 6)}${pad('refused', 9)}${pad('input', 8)}${pad('output', 8)}${pad('cost USD', 12)}  providers`);
for (const [tenant, r] of [...rows].sort()) {
  console.log(`${tenant.padEnd(10)}${pad(r.calls, 6)}${pad(r.refused, 9)}${pad(r.input, 8)}${pad(r.output, 8)}${pad(r.cost.toFixed(6), 12)}  ${[...r.providers].sort().join(', ')}`);
}
const day = initechUsage[0];
console.log(
  `\ninitech's daily limit: $${day.limitUsd} — spent $${day.spentUsd.toFixed(6)}, ${refused.get('initech') ?? 0} call(s) refused before reaching the provider` +
    ` (resets ${day.resetsAt.toISOString()})`,
);

async function fleetDemo(redisUrl) {
  const { spawn } = await import('node:child_process');
  const admin = new Meter({ limits: { redis: redisUrl }, handleExit: false });
  await admin.setLimit('fleet', { limitUsd: 0.005, frequency: 'per_day' });
  const before = (await admin.getUsage('fleet'))[0];
  const startAt = String(Date.now() + 1500);
  const worker = () =>
    new Promise((resolve, reject) => {
      let out = '';
      const child = spawn(process.execPath, [new URL('../apps/fleet-app.mjs', import.meta.url).pathname], {
        env: { ...process.env, OPENAI_BASE_URL: provider.openaiBaseURL, START_AT: startAt, CALLS: '20' },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      child.stdout.on('data', (d) => (out += d));
      child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').at(-1))) : reject(new Error(`worker exited ${code}`))));
    });
  const reports = await Promise.all([worker(), worker()]);
  const after = (await admin.getUsage('fleet'))[0];
  console.log(`\nfleet: two processes, one Redis ledger, tenant "fleet" limited to $${after.limitUsd} a day (each call may cost up to $0.001)`);
  reports.forEach((r, i) => console.log(`  process ${i + 1}: ${r.admitted} admitted, ${r.refused} refused`));
  console.log(`  spent today: $${after.spentUsd.toFixed(6)} (was $${before.spentUsd.toFixed(6)}), reserved now $${after.reservedUsd}`);
  await admin.shutdown();
}

const sent = ingest.events.filter((e) => e.error !== 'LimitExceededError').length;
if (sent !== provider.count() || day.spentUsd > day.limitUsd || !refused.get('initech')) {
  console.error(`demo FAILED: ${provider.count()} provider calls, ${sent} metered calls, initech spent ${day.spentUsd}`);
  process.exitCode = 1;
}

// With REDIS_URL set: two processes share one Redis ledger, and one limit holds across both.
if (process.env.REDIS_URL) await fleetDemo(process.env.REDIS_URL);

const report = relative(process.cwd(), new URL('../../bin/llm-meter.cjs', import.meta.url).pathname);
console.log(`\nthe ${ingest.events.length} events went to the ingest at ${ingest.url} and to ./${usageFile}; to see them:`);
console.log(`  node ${report} report ${usageFile} --by tenant`);
console.log(`  node ${report} report ${usageFile} --by model --format html --out usage-report.html`);
await Promise.all([provider.close(), ingest.close()]);
