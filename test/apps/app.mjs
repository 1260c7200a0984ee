// An ESM app for the load-hook tests. LLM_PATCH=before: patchAll runs before the SDK is imported; after: once it is.
// LLM_BOTH_FORMATS=1: also require() the CJS build in the same process.
import { createRequire } from 'node:module';
import { Meter } from 'llm-meter';

const require = createRequire(import.meta.url);
const { openaiCalls } = require('./calls.cjs');
const meter = new Meter({ onEvent: (e) => console.log(`EVENT ${JSON.stringify(e)}`) });
if (process.env.LLM_PATCH === 'before') meter.patchAll();
const { default: OpenAI } = await import('openai');
if (process.env.LLM_PATCH === 'after') meter.patchAll();
if (process.env.LLM_SETTLE_MS) await new Promise((r) => setTimeout(r, Number(process.env.LLM_SETTLE_MS)));

await openaiCalls(meter, OpenAI, 'esm');
if (process.env.LLM_BOTH_FORMATS) await openaiCalls(meter, require('openai').OpenAI, 'cjs');
await meter.shutdown();
console.log('DONE');
