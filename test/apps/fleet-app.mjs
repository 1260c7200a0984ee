// One process of a fleet sharing a Redis spend ledger. Fires N concurrent streaming calls for one tenant at START_AT,
// and prints what it admitted and what each call cost. MODE=hang: one admitted call that never ends (for SIGKILL).
import { createRequire } from 'node:module';
import { Meter, LimitExceededError } from 'llm-meter';

const require = createRequire(import.meta.url);
const { OpenAI } = require('openai');
const events = [];
const meter = new Meter({
  // Eight busy processes on a small machine: the event loop lags, so the command timeout must be generous.
  limits: { redis: process.env.REDIS_URL, leaseMs: Number(process.env.LEASE_MS ?? 900000), commandTimeout: 2000 },
  prices: { 'openai:gpt-4o': { input_mtok: 0, output_mtok: 1 } },
  onEvent: (e) => events.push(e),
});
meter.patchAll();
const client = new OpenAI({ apiKey: 'k', baseURL: process.env.OPENAI_BASE_URL, maxRetries: 0 });

async function one(headers) {
  try {
    const stream = await meter.forTenant('fleet', () => client.chat.completions.create({ model: 'gpt-4o', max_tokens: 1000, stream: true, messages: [{ role: 'user', content: 'x' }] }, { headers }));
    for await (const _ of stream);
    return 'admitted';
  } catch (err) {
    if (err instanceof LimitExceededError) return 'refused';
    throw err;
  }
}

if (process.env.MODE === 'hang') {
  void one({ 'x-fake-hang': '1' });
  console.log('READY');
} else {
  await new Promise((r) => setTimeout(r, Math.max(0, Number(process.env.START_AT) - Date.now())));
  const outcomes = await Promise.all(Array.from({ length: Number(process.env.CALLS ?? 50) }, () => one({ 'x-fake-chunks': '8', 'x-fake-delay-ms': '150' })));
  await meter.shutdown();
  console.log(JSON.stringify({ admitted: outcomes.filter((o) => o === 'admitted').length, refused: outcomes.filter((o) => o === 'refused').length, costs: events.filter((e) => !e.error).map((e) => e.cost_usd) }));
}
