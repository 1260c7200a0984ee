// One call of a limited tenant through the real openai SDK (OPENAI_BASE_URL), with the app's own limits backend
// (BACKEND_URL) as the store, then shutdown(). Prints how long shutdown() took and when it returned, then ends on its own.
const { Meter } = require('llm-meter');
const OpenAI = require('openai');

async function main() {
  const meter = new Meter({
    limits: { url: process.env.BACKEND_URL },
    prices: { 'openai:gpt-4o': { input_mtok: 0, output_mtok: 1 } },
    shutdownTimeout: Number(process.env.SHUTDOWN_TIMEOUT),
  });
  const client = meter.instrument(new OpenAI({ apiKey: 'k', maxRetries: 0 }));
  await meter.forTenant('t', () => client.chat.completions.create({ model: 'gpt-4o', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }));
  const started = Date.now();
  await meter.shutdown();
  console.log(`SHUTDOWN ${Date.now() - started} ${Date.now()}`);
}
main();
