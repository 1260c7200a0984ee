import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { clearBeforeEach, patchingMeter, repoRoot, requireFrom, until } from './helpers.js';

// Image, transcription and speech models of the AI SDK (ai 6's CommonJS builds, patched by the require hook): each
// call is one event with the units its price is made of.
const appRoot = join(repoRoot, 'test/sdk-versions/ai-6');
const fake = await startFakeProviders();
afterAll(() => fake.close());

const { meter, events } = patchingMeter();
clearBeforeEach(events);

const ai = requireFrom(appRoot, 'ai');
const { createOpenAI } = requireFrom(appRoot, '@ai-sdk/openai');
const openai = createOpenAI({ apiKey: 'k', baseURL: fake.openaiBaseURL });
/** The fake's usage for an image call: 50 input (prompt text) and 200 output (image) tokens. */
const IMAGE_USAGE = { input_tokens: 50, output_tokens: 200 };

describe('AI SDK media models', () => {
  it('DALL-E 3: one image of the requested size, priced per image ($0.04 at 1024x1024, standard quality)', async () => {
    await meter.forTenant('acme', () => ai.generateImage({ model: openai.image('dall-e-3'), prompt: 'x', size: '1024x1024' }));
    await until(() => events.length === 1, 'the event');
    expect(events[0]).toMatchObject({ tenant_id: 'acme', provider: 'openai', endpoint: 'image', model: 'dall-e-3', image_count: 1, image_width: 1024, image_height: 1024, cost_usd: 0.04 });
  });

  it('gpt-image-1: text input tokens and image output tokens at their rates ($5 and $40 per million)', async () => {
    await meter.forTenant('acme', () => ai.generateImage({ model: openai.image('gpt-image-1'), prompt: 'x' }));
    await until(() => events.length === 1, 'the event');
    expect(events[0]).toMatchObject({ model: 'gpt-image-1', input_text_tokens: IMAGE_USAGE.input_tokens, output_image_tokens: IMAGE_USAGE.output_tokens, image_count: 1 });
    expect(events[0]!.cost_usd).toBeCloseTo((IMAGE_USAGE.input_tokens * 5 + IMAGE_USAGE.output_tokens * 40) / 1e6, 12);
  });

  it('tts-1: the characters of the text, at $15 per million characters', async () => {
    await meter.forTenant('acme', () => ai.experimental_generateSpeech({ model: openai.speech('tts-1'), text: 'hello world' }));
    await until(() => events.length === 1, 'the event');
    expect(events[0]).toMatchObject({ endpoint: 'speech', model: 'tts-1', character_count: 11 });
    expect(events[0]!.cost_usd).toBeCloseTo((11 * 15) / 1e6, 12);
  });

  it('a transcription that reports no duration is one partial event (whisper is billed per second)', async () => {
    await meter.forTenant('acme', () => ai.experimental_transcribe({ model: openai.transcription('whisper-1'), audio: new Uint8Array([1, 2, 3]) }));
    await until(() => events.length === 1, 'the event');
    expect(events[0]).toMatchObject({ endpoint: 'transcription', model: 'whisper-1', partial: true });
  });
});
