// An app with a durable outbox, for the crash test. It makes CALLS chat calls through a wrapped OpenAI client (to the
// fake providers at PROVIDERS), with two sinks: the ingest at INGEST and OpenMeter at OPENMETER. With FLUSH_AFTER=n it
// flushes once after the n-th call (that batch is delivered, and the sinks' acknowledgements are on disk). It prints
// each event's id (EVENT <id>), then RECORDED once every event is in the outbox; with HOLD=1 it then sends the rest
// and stays up (to be killed), else it shuts down and prints the stats (STATS <json>).
import { Meter } from 'llm-meter';
import OpenAI from 'openai';

const calls = Number(process.env.CALLS);
const flushAfter = Number(process.env.FLUSH_AFTER ?? -1);
const meter = new Meter({
  outbox: process.env.OUTBOX,
  sinks: [
    { type: 'http', url: process.env.INGEST },
    { type: 'openmeter', baseUrl: process.env.OPENMETER, apiKey: process.env.OPENMETER_KEY },
  ],
  flushInterval: 60_000,
  requestTimeout: 60_000,
  onEvent: (e) => console.log(`EVENT ${e.event_id}`),
});
const client = meter.wrap(new OpenAI({ apiKey: 'sk-test-key', baseURL: process.env.PROVIDERS, maxRetries: 0 }), { customerId: 'acme' });
for (let i = 1; i <= calls; i++) {
  await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `call ${i}` }] });
  if (i === flushAfter) await meter.flush();
}
await new Promise((resolve) => {
  const poll = setInterval(() => {
    if ((meter.stats().outbox?.written ?? 0) >= calls) resolve(clearInterval(poll));
  }, 5);
});
console.log('RECORDED');
if (process.env.HOLD === '1') {
  void meter.flush();
  setInterval(() => {}, 1000);
}
else {
  await meter.shutdown();
  console.log(`STATS ${JSON.stringify(meter.stats())}`);
}
