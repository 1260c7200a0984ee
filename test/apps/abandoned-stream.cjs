// A stream created and dropped without being read: run with --expose-gc; its call must still be recorded, once.
const { Meter } = require('llm-meter');

const meter = new Meter({ onEvent: (e) => console.log(`EVENT ${JSON.stringify(e)}`) });
meter.patchAll();
const { OpenAI } = require('openai');
const { GoogleGenAI } = require('@google/genai');

async function main() {
  const openai = new OpenAI({ apiKey: 'k', maxRetries: 0 });
  const gemini = new GoogleGenAI({ apiKey: 'k', httpOptions: { baseUrl: process.env.FAKE_GEMINI_BASE_URL } });
  await meter.forTenant('dropped', async () => {
    await openai.chat.completions.create({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'x' }] });
    await gemini.models.generateContentStream({ model: 'gemini-2.5-flash', contents: 'x' });
  });
  for (let i = 0; i < 10; i++) {
    global.gc();
    await new Promise((r) => setTimeout(r, 20));
  }
  console.log('DONE');
}
main();
