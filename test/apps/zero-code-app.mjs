// The ES module twin of zero-code-app.cjs.
import OpenAI from 'openai';
import { getMeter } from 'llm-meter';
import { createRequire } from 'node:module';

const { zeroCodeCalls } = createRequire(import.meta.url)('./zero-code-calls.cjs');
await zeroCodeCalls(getMeter(), new OpenAI({ apiKey: 'sk-test-key', baseURL: process.env.OPENAI_BASE_URL, maxRetries: 0 }));
