// The demo: a small multi-tenant app, run with `node --import ./register.mjs test/demo/app.mjs` (npm run demo).
// No keys, no network: the bundled fake provider and fake ingest run on 127.0.0.1 inside this process.
import OpenAI from 'openai';
import { Meter } from 'llm-meter';
import { startFakeIngest } from '../fixtures/fake-ingest.mjs';
import { startFakeProviders } from '../fixtures/fake-providers.mjs';

const provider = await startFakeProviders();
const ingest = await startFakeIngest();

const meter = new Meter({ url: ingest.url, apiKey: 'demo-ingest-key', flushInterval: 200 });
meter.patchAll();

// The app's own code: nothing here knows about metering except the tenant scope.
const openai = new OpenAI({ apiKey: 'sk-demo', baseURL: provider.openaiBaseURL });

async function answerQuestion(question) {
  const completion = await openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: question }] });
  return completion.choices[0].message.content;
}

async function streamSummary(text) {
  const stream = await openai.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: text }] });
  let summary = '';
  for await (const chunk of stream) summary += chunk.choices[0]?.delta?.content ?? '';
  return summary;
}

async function indexDocument(text) {
  await openai.embeddings.create({ model: 'text-embedding-3-small', input: text });
}

async function handleRequest(tenant, i) {
  return meter.forTenant(tenant, async () => {
    if (i % 3 === 0) await indexDocument(`document ${i}`);
    if (i % 2 === 0) return streamSummary(`summarise ${i}`);
    return answerQuestion(`question ${i}`);
  });
}

const traffic = { acme: 12, globex: 7, initech: 3 };
await Promise.all(Object.entries(traffic).flatMap(([tenant, n]) => Array.from({ length: n }, (_, i) => handleRequest(tenant, i))));
await meter.shutdown();

// What the backend received, per tenant.
const rows = new Map();
for (const e of ingest.events) {
  const row = rows.get(e.tenant_id) ?? { calls: 0, streams: 0, input: 0, output: 0, total: 0, models: new Set() };
  row.calls++;
  if (e.stream) row.streams++;
  row.input += e.input_tokens;
  row.output += e.output_tokens;
  row.total += e.total_tokens;
  row.models.add(e.model);
  rows.set(e.tenant_id, row);
}
const pad = (v, n) => String(v).padStart(n);
console.log(`\nllm-meter demo: ${ingest.events.length} usage events delivered in ${ingest.batches.length} gzip batch(es)\n`);
console.log(`${'tenant'.padEnd(10)}${pad('calls', 7)}${pad('streams', 9)}${pad('input', 8)}${pad('output', 8)}${pad('total', 8)}  models`);
for (const [tenant, r] of [...rows].sort()) {
  console.log(`${tenant.padEnd(10)}${pad(r.calls, 7)}${pad(r.streams, 9)}${pad(r.input, 8)}${pad(r.output, 8)}${pad(r.total, 8)}  ${[...r.models].sort().join(', ')}`);
}
const expected = Object.values(traffic).reduce((a, b) => a + b, 0) + provider.count('/embeddings');
if (ingest.events.length !== provider.count() || provider.count() !== expected) {
  console.error(`demo FAILED: ${provider.count()} provider calls, ${ingest.events.length} events`);
  process.exitCode = 1;
}
await Promise.all([provider.close(), ingest.close()]);
