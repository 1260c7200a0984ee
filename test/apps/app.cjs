// A CommonJS app for the load-hook tests. LLM_PATCH=before: patchAll runs before the SDK is required; after: once it is.
const { Meter } = require('llm-meter');

const meter = new Meter({ onEvent: (e) => console.log(`EVENT ${JSON.stringify(e)}`) });
if (process.env.LLM_PATCH === 'before') meter.patchAll();
const OpenAI = require('openai');
if (process.env.LLM_PATCH === 'after') meter.patchAll();

const messages = [{ role: 'user', content: 'hello' }];
async function main() {
  const client = new OpenAI({ apiKey: 'sk-app', maxRetries: 0 });
  await meter.forTenant('cjs', async () => {
    await client.chat.completions.create({ model: 'gpt-4o', messages });
    const stream = await client.chat.completions.create({ model: 'gpt-4o', messages, stream: true });
    for await (const _ of stream);
  });
  await meter.shutdown();
  console.log('DONE');
}
main();
