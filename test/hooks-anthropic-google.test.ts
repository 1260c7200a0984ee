import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { eventsPrinted, repoRoot, runNode } from './helpers.js';

const fake = await startFakeProviders();
afterAll(() => fake.close());
afterEach(() => fake.reset());

const register = join(repoRoot, 'register.mjs');

async function runApp(app: string, env: Record<string, string>) {
  const run = await runNode(['--import', register, join(repoRoot, 'test/apps', app)], {
    env: { ANTHROPIC_BASE_URL: fake.anthropicBaseURL, FAKE_GEMINI_BASE_URL: fake.geminiBaseUrl, ...env },
  });
  expect(run.stderr).toBe('');
  expect(run.stdout).toContain('DONE');
  expect(run.code).toBe(0);
  return eventsPrinted(run.stdout);
}

/** What each app sends, in order: Anthropic create, Anthropic stream, Gemini generateContent, Gemini stream. */
const EXPECTED = [
  ['anthropic', 'messages', false, 21, 9, 30, undefined],
  ['anthropic', 'messages', true, 21, 9, 30, undefined],
  ['google', 'generateContent', false, 8, 5, 13, undefined],
  ['google', 'streamGenerateContent', true, 8, 5, 13, undefined],
];
const summary = (e: any) => [e.provider, e.endpoint, e.stream, e.input_tokens, e.output_tokens, e.total_tokens, e.partial];

describe('Anthropic and Gemini apps under node --import ./register.mjs', () => {
  it.each([
    ['anthropic-google-app.mjs', 'before', 'esm'],
    ['anthropic-google-app.mjs', 'after', 'esm'],
    ['anthropic-google-app.cjs', 'before', 'cjs'],
    ['anthropic-google-app.cjs', 'after', 'cjs'],
  ])('%s with patchAll %s the SDKs load: one event per call, streams included', async (app, when, tenant) => {
    const events = await runApp(app, { LLM_PATCH: when });
    expect(fake.count()).toBe(4);
    expect(events.map(summary)).toEqual(EXPECTED);
    expect(events.map((e) => e.tenant_id)).toEqual([tenant, tenant, tenant, tenant]);
    expect(events.map((e) => e.error)).toEqual([undefined, undefined, undefined, undefined]);
  });

  it('both module formats in one process: the ESM and CJS builds of both SDKs are patched', async () => {
    const events = await runApp('anthropic-google-app.mjs', { LLM_PATCH: 'after', LLM_BOTH_FORMATS: '1' });
    expect(fake.count()).toBe(8);
    expect(events.map(summary)).toEqual([...EXPECTED, ...EXPECTED]);
    expect(events.map((e) => e.tenant_id)).toEqual(['esm', 'esm', 'esm', 'esm', 'cjs', 'cjs', 'cjs', 'cjs']);
  });
});
