// A CommonJS app for the load-hook tests. LLM_PATCH=before: patchAll runs before the SDK is required; after: once it is.
const { Meter } = require('llm-meter');
const { openaiCalls } = require('./calls.cjs');

const meter = new Meter({ onEvent: (e) => console.log(`EVENT ${JSON.stringify(e)}`) });
if (process.env.LLM_PATCH === 'before') meter.patchAll();
const OpenAI = require('openai');
if (process.env.LLM_PATCH === 'after') meter.patchAll();

async function main() {
  await openaiCalls(meter, OpenAI, 'cjs');
  await meter.shutdown();
  console.log('DONE');
}
main();
