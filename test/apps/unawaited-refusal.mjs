// Unawaited calls the agent refuses, through genai's public methods: the process must not crash. Prints 'alive' once
// every refusal was recorded. With `app-error` as argument, an unawaited call that fails at the provider is left
// unhandled as without the agent (the process crashes). With `instrument`, the client is instrumented instead of the
// SDK patched.
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { Meter } = require('../../dist/src/index.js');
const { GoogleGenAI } = await import('@google/genai');

const events = [];
const meter = new Meter({ onEvent: (e) => events.push(e) });
if (process.argv[2] !== 'instrument') meter.patchAll();
await meter.setLimit('broke', { limitUsd: 0, frequency: 'per_day' });
const ai = new GoogleGenAI({ apiKey: 'k', httpOptions: { baseUrl: process.env.GEMINI_BASE_URL } });
if (process.argv[2] === 'instrument') meter.instrument(ai);
const request = { model: 'gemini-2.0-flash', contents: 'hi' };

if (process.argv[2] === 'app-error') {
  ai.models.generateContent({ ...request, config: { httpOptions: { headers: { 'x-fake-status': '400' } } } });
} else {
  meter.forTenant('broke', () => {
    ai.models.generateContent(request);
    ai.models.generateContentStream(request);
    ai.models.embedContent({ model: 'gemini-embedding-001', contents: 'hi' });
    ai.batches.create({ model: 'gemini-2.0-flash', src: [{ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }] });
    ai.chats.create({ model: 'gemini-2.0-flash' }).sendMessage({ message: 'hi' });
  });
  while (events.length < 5) await new Promise((resolve) => setImmediate(resolve));
  // Unhandled rejections are reported after the microtask queue drains: give them that chance.
  for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
  console.log('alive', events.map((e) => e.endpoint).sort().join(','));
}
