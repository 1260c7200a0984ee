// A CommonJS app using @anthropic-ai/sdk and @google/genai, for the load-hook tests. LLM_PATCH=before: patchAll runs
// before the SDKs are required; after: once they are. Anthropic finds the fake through ANTHROPIC_BASE_URL, genai through
// FAKE_GEMINI_BASE_URL (passed as httpOptions.baseUrl).
const { Meter } = require('llm-meter');

const meter = new Meter({ onEvent: (e) => console.log(`EVENT ${JSON.stringify(e)}`) });
if (process.env.LLM_PATCH === 'before') meter.patchAll();
const Anthropic = require('@anthropic-ai/sdk');
const { GoogleGenAI } = require('@google/genai');
if (process.env.LLM_PATCH === 'after') meter.patchAll();

const messages = [{ role: 'user', content: 'hello' }];

async function main() {
  const anthropic = new Anthropic({ apiKey: 'sk-ant-app', maxRetries: 0 });
  const genai = new GoogleGenAI({ apiKey: 'k', httpOptions: { baseUrl: process.env.FAKE_GEMINI_BASE_URL } });
  await meter.forTenant('cjs', async () => {
    await anthropic.messages.create({ model: 'claude-test-model', max_tokens: 64, messages });
    const stream = await anthropic.messages.create({ model: 'claude-test-model', max_tokens: 64, messages, stream: true });
    for await (const _ of stream);
    await genai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'hello' });
    const chunks = await genai.models.generateContentStream({ model: 'gemini-2.5-flash', contents: 'hello' });
    for await (const _ of chunks);
  });
  await meter.shutdown();
  console.log('DONE');
}
main();
