import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { eventsPrinted, repoRoot, runNode } from './helpers.js';

const fake = await startFakeProviders();
afterAll(() => fake.close());

describe('a stream dropped without being read', () => {
  it('is still recorded once, as partial, when it is collected', async () => {
    const run = await runNode(['--expose-gc', join(repoRoot, 'test/apps/abandoned-stream.cjs')], {
      env: { OPENAI_BASE_URL: fake.openaiBaseURL, FAKE_GEMINI_BASE_URL: fake.geminiBaseUrl },
    });
    expect(run.stderr).toBe('');
    expect(run.stdout).toContain('DONE');
    expect(fake.count()).toBe(2);
    const events = eventsPrinted(run.stdout);
    expect(events.map((e) => [e.provider, e.tenant_id, e.stream, e.partial]).sort()).toEqual([
      ['google', 'dropped', true, true],
      ['openai', 'dropped', true, true],
    ]);
  });
});
