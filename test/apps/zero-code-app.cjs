// An app with no Meter of its own, for `--require` / `--import llm-meter/register` with LLM_METER_* variables: it only
// scopes its calls to tenants, on the default Meter (getMeter), which it also gives a limit.
const OpenAI = require('openai');
const { getMeter } = require('llm-meter');
const { zeroCodeCalls } = require('./zero-code-calls.cjs');

zeroCodeCalls(getMeter(), new OpenAI({ apiKey: 'sk-test-key', baseURL: process.env.OPENAI_BASE_URL, maxRetries: 0 }));
