// An ESM app using @anthropic-ai/sdk and @google/genai, for the load-hook tests. LLM_PATCH=before: patchAll runs before
// the SDKs are imported; after: once they are. Anthropic finds the fake through ANTHROPIC_BASE_URL, genai through
// FAKE_GEMINI_BASE_URL (passed as httpOptions.baseUrl). LLM_BOTH_FORMATS=1: also require() the CJS builds.
import { createRequire } from 'node:module';
import { Meter } from 'llm-meter';

const meter = new Meter({ onEvent: (e) => console.log(`EVENT ${JSON.stringify(e)}`) });
if (process.env.LLM_PATCH === 'before') meter.patchAll();
const { default: Anthropic } = await import('@anthropic-ai/sdk');
const { GoogleGenAI } = await import('@google/genai');
if (process.env.LLM_PATCH === 'after') meter.patchAll();

const messages = [{ role: 'user', content: 'hello' }];

async function exercise(AnthropicClass, GoogleGenAIClass, tenant) {
  const anthropic = new AnthropicClass({ apiKey: 'sk-ant-app', maxRetries: 0 });
  const genai = new GoogleGenAIClass({ apiKey: 'k', httpOptions: { baseUrl: process.env.FAKE_GEMINI_BASE_URL } });
  await meter.forTenant(tenant, async () => {
    await anthropic.messages.create({ model: 'claude-test-model', max_tokens: 64, messages });
    const stream = await anthropic.messages.create({ model: 'claude-test-model', max_tokens: 64, messages, stream: true });
    for await (const _ of stream);
    await genai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'hello' });
    const chunks = await genai.models.generateContentStream({ model: 'gemini-2.5-flash', contents: 'hello' });
    for await (const _ of chunks);
  });
}

await exercise(Anthropic, GoogleGenAI, 'esm');
if (process.env.LLM_BOTH_FORMATS) {
  const require = createRequire(import.meta.url);
  await exercise(require('@anthropic-ai/sdk').Anthropic, require('@google/genai').GoogleGenAI, 'cjs');
}
await meter.shutdown();
console.log('DONE');
