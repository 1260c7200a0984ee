// One process of a fleet sharing a Redis spend ledger, with the agent's default Redis options. Prints READY once it
// reached Redis, fires CALLS concurrent streaming calls for TENANT when a line arrives on stdin, and prints what it
// admitted and what each call cost. REDIS_CLUSTER=host:port,...: the ledger is a Redis Cluster, reached through the
// app's own ioredis Cluster client. MODE=hang: one admitted call that never ends (for SIGKILL). FEATURE: the calls'
// feature. THRESHOLDS=0.5,1: the Meter's thresholds, and the alerts it sent are printed too.
import { once } from 'node:events';
import { createRequire } from 'node:module';
import { Meter, LimitExceededError } from 'llm-meter';

const require = createRequire(import.meta.url);
const { OpenAI } = require('openai');
const { Cluster } = require('ioredis');

const tenant = process.env.TENANT ?? 'fleet';
const cluster =
  process.env.REDIS_CLUSTER === undefined
    ? undefined
    : new Cluster(process.env.REDIS_CLUSTER.split(',').map((node) => ({ host: node.split(':')[0], port: Number(node.split(':')[1]) })));
const events = [];
const alerts = [];
const thresholds = process.env.THRESHOLDS?.split(',').map(Number);
const meter = new Meter({
  ...(thresholds !== undefined && { thresholds, onThreshold: (alert) => alerts.push(alert) }),
  // A busy machine can take seconds to bring a cluster client up: that is not what the fleet tests measure.
  limits: { redis: cluster ?? process.env.REDIS_URL, leaseMs: Number(process.env.LEASE_MS ?? 900000), connectTimeout: 60000 },
  prices: { 'openai:gpt-4o': { input_mtok: 0, output_mtok: 1 } },
  onEvent: (e) => events.push(e),
});
meter.patchAll();
const client = new OpenAI({ apiKey: 'k', baseURL: process.env.OPENAI_BASE_URL, maxRetries: 0 });

/** Each call costs exactly its reservation, so that the bound holds however the processes interleave. */
const WORST_CASE = { 'x-fake-chunks': '8', 'x-fake-delay-ms': '150', 'x-fake-usage': JSON.stringify({ completion_tokens: 1000 }) };

async function one(headers) {
  try {
    const request = () => client.chat.completions.create({ model: 'gpt-4o', max_tokens: 1000, stream: true, messages: [{ role: 'user', content: 'x' }] }, { headers });
    const stream = await meter.forTenant(tenant, request, { feature: process.env.FEATURE });
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
  await meter.getUsage(tenant);
  console.log('READY');
  await once(process.stdin, 'data');
  process.stdin.destroy();
  const outcomes = await Promise.all(Array.from({ length: Number(process.env.CALLS ?? 50) }, () => one(WORST_CASE)));
  await meter.shutdown();
  cluster?.disconnect();
  console.log(JSON.stringify({ admitted: outcomes.filter((o) => o === 'admitted').length, refused: outcomes.filter((o) => o === 'refused').length, costs: events.filter((e) => !e.error).map((e) => e.cost_usd), alerts }));
}
