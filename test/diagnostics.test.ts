import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { repoRoot, runNode } from './helpers.js';

// What a user needs on day one to see whether the agent reached their SDK.
const fake = await startFakeProviders();
afterAll(() => fake.close());

const app = join(repoRoot, 'test/apps/diagnostics.mjs');
const register = ['--import', join(repoRoot, 'register.mjs')];
const env = { OPENAI_BASE_URL: fake.openaiBaseURL };
const lines = (stderr: string, pattern: RegExp) => stderr.split('\n').filter((line) => pattern.test(line));

describe('diagnostics', () => {
  it('--import register, but no Meter ever patched: one warning naming the SDK', async () => {
    const run = await runNode([...register, app, 'never-patch'], { env });
    expect(run.code).toBe(0);
    expect(lines(run.stderr, /warning/)).toEqual([expect.stringMatching(/openai loaded under --import llm-meter\/register, but no Meter patched it/)]);
  });

  it('debug: which SDK copy and build was patched, and a call outside any tenant scope once per endpoint', async () => {
    const run = await runNode([...register, app, 'debug'], { env });
    expect(run.code).toBe(0);
    expect(lines(run.stderr, /patching openai/)).toEqual([expect.stringMatching(/^\[llm-meter\] patching openai \d+\.\d+\.\d+ \(ESM build\) in .*node_modules.openai$/)]);
    expect(lines(run.stderr, /outside any tenant scope/)).toEqual(['[llm-meter] openai chat.completions called outside any tenant scope: its events carry no tenant_id']);
    expect(lines(run.stderr, /warning/)).toEqual([]);
  });

  it('an ES module app started without --import: one warning that says what was and was not reached', async () => {
    const run = await runNode([app, 'debug'], { env });
    expect(run.code).toBe(0);
    expect(lines(run.stderr, /warning/)).toEqual([expect.stringMatching(/started without --import llm-meter\/register: the agent patched the builds of openai/)]);
  });
});
