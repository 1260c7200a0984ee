// The calls the load-hook test apps make, shared by their ESM and CommonJS forms. Each takes the SDK classes the app
// loaded (so that the app, not this file, decides which build is used) and runs its calls in one tenant scope.

const messages = [{ role: 'user', content: 'hello' }];

/** OpenAI: one plain chat call and one stream, read to the end. The SDK finds the fake through OPENAI_BASE_URL. */
async function openaiCalls(meter, OpenAI, tenant) {
  const client = new OpenAI({ apiKey: 'sk-app', maxRetries: 0 });
  await meter.forTenant(tenant, async () => {
    await client.chat.completions.create({ model: 'gpt-4o', messages });
    const stream = await client.chat.completions.create({ model: 'gpt-4o', messages, stream: true });
    for await (const _ of stream);
  });
}

/** Anthropic (ANTHROPIC_BASE_URL) and genai (FAKE_GEMINI_BASE_URL): a plain call and a stream each. */
async function anthropicGoogleCalls(meter, Anthropic, GoogleGenAI, tenant) {
  const anthropic = new Anthropic({ apiKey: 'sk-ant-app', maxRetries: 0 });
  const genai = new GoogleGenAI({ apiKey: 'k', httpOptions: { baseUrl: process.env.FAKE_GEMINI_BASE_URL } });
  await meter.forTenant(tenant, async () => {
    await anthropic.messages.create({ model: 'claude-test-model', max_tokens: 64, messages });
    const stream = await anthropic.messages.create({ model: 'claude-test-model', max_tokens: 64, messages, stream: true });
    for await (const _ of stream);
    await genai.models.generateContent({ model: 'gemini-2.5-flash', contents: 'hello' });
    const chunks = await genai.models.generateContentStream({ model: 'gemini-2.5-flash', contents: 'hello' });
    for await (const _ of chunks);
  });
}

module.exports = { openaiCalls, anthropicGoogleCalls };
