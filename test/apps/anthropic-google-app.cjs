// A CommonJS app using @anthropic-ai/sdk and @google/genai, for the load-hook tests. LLM_PATCH=before: patchAll runs
// before the SDKs are required; after: once they are.
const { Meter } = require('llm-meter');
const { anthropicGoogleCalls } = require('./calls.cjs');

const meter = new Meter({ onEvent: (e) => console.log(`EVENT ${JSON.stringify(e)}`) });
if (process.env.LLM_PATCH === 'before') meter.patchAll();
const Anthropic = require('@anthropic-ai/sdk');
const { GoogleGenAI } = require('@google/genai');
if (process.env.LLM_PATCH === 'after') meter.patchAll();

async function main() {
  await anthropicGoogleCalls(meter, Anthropic, GoogleGenAI, 'cjs');
  await meter.shutdown();
  console.log('DONE');
}
main();
