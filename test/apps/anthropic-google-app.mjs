// An ESM app using @anthropic-ai/sdk and @google/genai, for the load-hook tests. LLM_PATCH=before: patchAll runs before
// the SDKs are imported; after: once they are. LLM_BOTH_FORMATS=1: also require() the CJS builds.
import { createRequire } from 'node:module';
import { Meter } from 'llm-meter';

const require = createRequire(import.meta.url);
const { anthropicGoogleCalls } = require('./calls.cjs');
const meter = new Meter({ onEvent: (e) => console.log(`EVENT ${JSON.stringify(e)}`) });
if (process.env.LLM_PATCH === 'before') meter.patchAll();
const { default: Anthropic } = await import('@anthropic-ai/sdk');
const { GoogleGenAI } = await import('@google/genai');
if (process.env.LLM_PATCH === 'after') meter.patchAll();

await anthropicGoogleCalls(meter, Anthropic, GoogleGenAI, 'esm');
if (process.env.LLM_BOTH_FORMATS) await anthropicGoogleCalls(meter, require('@anthropic-ai/sdk').Anthropic, require('@google/genai').GoogleGenAI, 'cjs');
await meter.shutdown();
console.log('DONE');
