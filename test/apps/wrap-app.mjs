// An app that meters through wrapped clients only: plain `node`, no --import, no patchAll. The first argument names the
// provider (openai, anthropic or google); LLM_WRAP_FORM=function wraps with wrapOpenAI / wrapAnthropic / wrapGoogle
// instead of meter.wrap. LLM_FEATURE and LLM_METRIC_CODE go into the wrap options when set. The fakes' base URLs come
// from OPENAI_BASE_URL, ANTHROPIC_BASE_URL and FAKE_GEMINI_BASE_URL. Each client makes a plain call and a stream read
// to the end, outside any tenant scope: the wrap alone names the customer.
import { Meter, wrapAnthropic, wrapGoogle, wrapOpenAI } from 'llm-meter';

const provider = process.argv[2];
const meter = new Meter({ onEvent: (e) => console.log(`EVENT ${JSON.stringify(e)}`) });
const options = {
  customerId: 'acme',
  ...(process.env.LLM_FEATURE && { feature: process.env.LLM_FEATURE }),
  ...(process.env.LLM_METRIC_CODE && { metricCode: process.env.LLM_METRIC_CODE }),
};
const byFunction = process.env.LLM_WRAP_FORM === 'function';
const messages = [{ role: 'user', content: 'hello' }];

if (provider === 'openai') {
  const { default: OpenAI } = await import('openai');
  const raw = new OpenAI({ apiKey: 'sk-app', maxRetries: 0 });
  const client = byFunction ? wrapOpenAI(raw, meter, options) : meter.wrap(raw, options);
  if (client !== raw) throw new Error('wrap must return the client itself');
  await client.chat.completions.create({ model: 'gpt-4o', messages });
  const stream = await client.chat.completions.create({ model: 'gpt-4o', messages, stream: true });
  for await (const _ of stream);
} else if (provider === 'anthropic') {
  const { default: Anthropic } = await import('@anthropic-ai/sdk');
  const raw = new Anthropic({ apiKey: 'sk-ant-app', maxRetries: 0 });
  const client = byFunction ? wrapAnthropic(raw, meter, options) : meter.wrap(raw, options);
  if (client !== raw) throw new Error('wrap must return the client itself');
  await client.messages.create({ model: 'claude-test-model', max_tokens: 64, messages });
  const stream = await client.messages.create({ model: 'claude-test-model', max_tokens: 64, messages, stream: true });
  for await (const _ of stream);
} else if (provider === 'google') {
  const { GoogleGenAI } = await import('@google/genai');
  const raw = new GoogleGenAI({ apiKey: 'k', httpOptions: { baseUrl: process.env.FAKE_GEMINI_BASE_URL } });
  const client = byFunction ? wrapGoogle(raw, meter, options) : meter.wrap(raw, options);
  if (client !== raw) throw new Error('wrap must return the client itself');
  await client.models.generateContent({ model: 'gemini-2.5-flash', contents: 'hello' });
  const chunks = await client.models.generateContentStream({ model: 'gemini-2.5-flash', contents: 'hello' });
  for await (const _ of chunks);
} else {
  throw new Error(`unknown provider ${provider}`);
}

await meter.shutdown();
console.log('DONE');
