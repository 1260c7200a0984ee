// A limited tenant's call that is never awaited: run with --expose-gc. Its request still went out, so it must be
// recorded once and its reservation settled; prints the events and the tenant's usage once nothing is held any more.
const { Meter } = require('llm-meter');

const meter = new Meter({ handleExit: false, onEvent: (e) => console.log(`EVENT ${JSON.stringify(e)}`) });
meter.patchAll();
const { OpenAI } = require('openai');

async function main() {
  const openai = new OpenAI({ apiKey: 'k', baseURL: process.env.OPENAI_BASE_URL, maxRetries: 0 });
  await meter.setLimit('unawaited', { limitUsd: 1, frequency: 'per_day' });
  meter.forTenant('unawaited', () => void openai.chat.completions.create({ model: 'gpt-4o', max_tokens: 100, messages: [{ role: 'user', content: 'x' }] }));
  const deadline = Date.now() + 15_000;
  let usage = await meter.getUsage('unawaited');
  while (usage[0].reservedUsd > 0 && Date.now() < deadline) {
    global.gc();
    await new Promise((r) => setTimeout(r, 10));
    usage = await meter.getUsage('unawaited');
  }
  console.log(`USAGE ${JSON.stringify(usage[0])}`);
}
main();
