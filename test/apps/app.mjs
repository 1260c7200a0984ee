// An ESM app for the load-hook tests. LLM_PATCH=before: patchAll runs before the SDK is imported; after: once it is.
// LLM_BOTH_FORMATS=1: also require() the CJS build in the same process.
import { createRequire } from 'node:module';
import { Meter } from 'llm-meter';

const meter = new Meter({ onEvent: (e) => console.log(`EVENT ${JSON.stringify(e)}`) });
if (process.env.LLM_PATCH === 'before') meter.patchAll();
const { default: OpenAI } = await import('openai');
if (process.env.LLM_PATCH === 'after') meter.patchAll();
if (process.env.LLM_SETTLE_MS) await new Promise((r) => setTimeout(r, Number(process.env.LLM_SETTLE_MS)));

const messages = [{ role: 'user', content: 'hello' }];
async function exercise(OpenAIClass, tenant) {
  const client = new OpenAIClass({ apiKey: 'sk-app', maxRetries: 0 });
  await meter.forTenant(tenant, async () => {
    await client.chat.completions.create({ model: 'gpt-4o', messages });
    const stream = await client.chat.completions.create({ model: 'gpt-4o', messages, stream: true });
    for await (const _ of stream);
  });
}
await exercise(OpenAI, 'esm');
if (process.env.LLM_BOTH_FORMATS) await exercise(createRequire(import.meta.url)('openai').OpenAI, 'cjs');
await meter.shutdown();
console.log('DONE');
