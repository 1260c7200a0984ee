import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { collectingMeter, ConfigError, OPENAI_VERSIONS, repoRoot, requireFrom, requireFromRepo, stderrOf, tick } from './helpers.js';

const fake = await startFakeProviders();
afterAll(() => fake.close());
afterEach(() => fake.reset());

const messages = [{ role: 'user' as const, content: 'hi' }];
const { OpenAI } = requireFrom(repoRoot, 'openai');
const { OpenAI: OpenAI7 } = requireFrom(OPENAI_VERSIONS['openai 7'], 'openai');

function clientFor(OpenAIClass: any) {
  return new OpenAIClass({ apiKey: 'k', baseURL: fake.openaiBaseURL, maxRetries: 0 });
}

const patchedPrototypes = () => [
  OpenAI.Chat.Completions.prototype,
  OpenAI.Responses.prototype,
  OpenAI.Completions.prototype,
  OpenAI.Embeddings.prototype,
  OpenAI.Audio.Transcriptions.prototype,
  OpenAI.Audio.Translations.prototype,
  OpenAI.Audio.Speech.prototype,
  OpenAI.Images.prototype,
];

function snapshotMethods() {
  return patchedPrototypes().flatMap((proto) =>
    ['create', 'generate', 'edit'].map((name) => ({ proto, name, descriptor: Object.getOwnPropertyDescriptor(proto, name) })),
  );
}

describe('patch and unpatch', () => {
  it('unpatchAll restores every original function and descriptor exactly', async () => {
    const before = snapshotMethods();
    const { meter } = collectingMeter();
    meter.patchAll();
    expect(OpenAI.Chat.Completions.prototype.create).not.toBe(before[0].descriptor?.value);
    expect(Object.keys(OpenAI.Chat.Completions.prototype)).toEqual([]);
    meter.unpatchAll();
    for (const { proto, name, descriptor } of before) expect(Object.getOwnPropertyDescriptor(proto, name)).toEqual(descriptor);
  });

  it('a second patchAll and a second Meter count each call once', async () => {
    const first = collectingMeter();
    const second = collectingMeter();
    const warnings = await stderrOf(async () => {
      first.meter.patchAll();
      first.meter.patchAll();
    });
    expect(warnings).toBe('');
    // The second Meter says that the calls are not its own (once, however many methods it found metered).
    expect((await stderrOf(async () => second.meter.patchAll())).match(/openai is metered by another Meter already/g)).toHaveLength(1);
    await clientFor(OpenAI).chat.completions.create({ model: 'gpt-4o', messages });
    await tick(20);
    expect(first.events.length + second.events.length).toBe(1);
    first.meter.unpatchAll();
    second.meter.unpatchAll();
  });

  it('a second copy of the agent in the process counts each call once', async () => {
    const first = collectingMeter();
    first.meter.patchAll();
    const distFiles = Object.keys(requireFromRepo.cache).filter((f) => f.includes('/dist/'));
    const saved = distFiles.map((f) => [f, requireFromRepo.cache[f]] as const);
    for (const f of distFiles) delete requireFromRepo.cache[f];
    const copy = requireFromRepo('llm-meter') as typeof import('llm-meter');
    for (const [f, m] of saved) requireFromRepo.cache[f] = m;
    expect(copy.Meter).not.toBe(first.meter.constructor);
    const copyEvents: unknown[] = [];
    const copyMeter = new copy.Meter({ onEvent: (e) => copyEvents.push(e) });
    copyMeter.patchAll();
    await clientFor(OpenAI).chat.completions.create({ model: 'gpt-4o', messages });
    await tick(20);
    expect(first.events.length + copyEvents.length).toBe(1);
    first.meter.unpatchAll();
    copyMeter.unpatchAll();
  });

  it("unpatch never removes another tool's wrapper on top of ours; it disables ours", async () => {
    const original = OpenAI.Chat.Completions.prototype.create;
    const { meter, events } = collectingMeter();
    meter.patchAll();
    const ours = OpenAI.Chat.Completions.prototype.create;
    let theirCalls = 0;
    // The shape OpenTelemetry's shimmer leaves: a wrapper with __original pointing at what it wrapped.
    const theirs = function (this: unknown, ...args: unknown[]) {
      theirCalls++;
      return ours.apply(this, args);
    };
    Object.assign(theirs, { __original: ours, __wrapped: true, __unwrap: () => undefined });
    OpenAI.Chat.Completions.prototype.create = theirs;

    meter.unpatchAll();
    expect(OpenAI.Chat.Completions.prototype.create).toBe(theirs);
    await clientFor(OpenAI).chat.completions.create({ model: 'gpt-4o', messages });
    await tick(20);
    expect(theirCalls).toBe(1);
    expect(events).toHaveLength(0);

    // Patching again finds our wrapper under theirs and re-enables it instead of stacking a second one.
    meter.patchAll();
    expect(OpenAI.Chat.Completions.prototype.create).toBe(theirs);
    await clientFor(OpenAI).chat.completions.create({ model: 'gpt-4o', messages });
    await tick(20);
    expect(events).toHaveLength(1);
    meter.unpatchAll();
    OpenAI.Chat.Completions.prototype.create = original;
  });

  it('patch and unpatch one provider by name; unknown names are refused', () => {
    const { meter } = collectingMeter();
    const original = OpenAI.Embeddings.prototype.create;
    meter.patch('openai');
    expect(OpenAI.Embeddings.prototype.create).not.toBe(original);
    meter.unpatch('openai');
    expect(OpenAI.Embeddings.prototype.create).toBe(original);
    expect(() => meter.patch('nope' as never)).toThrow(ConfigError);
    expect(() => meter.patch('nope' as never)).toThrow(/"nope"/);
  });
});

describe('instrument(client)', () => {
  it('patches exactly the build and copy behind that client', async () => {
    const { meter, events } = collectingMeter();
    const client7 = meter.instrument(clientFor(OpenAI7));
    await client7.chat.completions.create({ model: 'gpt-4o', messages });
    await clientFor(OpenAI).chat.completions.create({ model: 'gpt-4o', messages });
    await tick(20);
    expect(fake.count()).toBe(2);
    expect(events).toHaveLength(1);
    meter.unpatchAll();
  });

  it('refuses what is not a supported client', () => {
    const { meter } = collectingMeter();
    expect(() => meter.instrument({})).toThrow(/not a client of a supported SDK/);
  });
});

describe('every installed copy', () => {
  it('patchAll covers each copy the app loaded', async () => {
    const { meter, events } = collectingMeter();
    meter.patchAll();
    for (const root of Object.values(OPENAI_VERSIONS)) {
      const { OpenAI: O } = requireFrom(root, 'openai');
      await clientFor(O).embeddings.create({ model: 'text-embedding-3-small', input: 'x' });
    }
    await tick(20);
    expect(events).toHaveLength(Object.keys(OPENAI_VERSIONS).length);
    meter.unpatchAll();
  });
});
