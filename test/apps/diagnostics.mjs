// Usage: node [--import register.mjs] diagnostics.mjs <never-patch|debug>
// never-patch: loads openai and makes no Meter. debug: a debug Meter, two calls outside any tenant scope.
import OpenAI from 'openai';
import { createRequire } from 'node:module';

const { Meter } = createRequire(import.meta.url)('../../dist/src/index.js');
const client = new OpenAI({ apiKey: 'k', baseURL: process.env.OPENAI_BASE_URL, maxRetries: 0 });
if (process.argv[2] === 'debug') {
  const meter = new Meter({ debug: true });
  meter.patchAll();
  for (let i = 0; i < 2; i++) await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
  await meter.shutdown();
}
