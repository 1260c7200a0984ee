import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { canFetchNode, eventsPrinted, fetchNode, repoRoot, runNode } from './helpers.js';

// Node 22.22.3+ has in-thread module hooks: register.mjs then uses them instead of the loader thread.
let node22 = '';
const fake = await startFakeProviders();
afterAll(() => fake.close());

describe.runIf(canFetchNode)('Node 22 with in-thread module hooks', () => {
  beforeAll(() => {
    node22 = fetchNode('22.23.3');
  }, 120_000);

  it('the binary is installed and supports the sync hooks', async () => {
    const run = await runNode(
      ['--input-type=module', '-e', `import { supportsSyncHooks } from 'import-in-the-middle/supports-sync-hooks.mjs'; console.log(process.versions.node, supportsSyncHooks());`],
      { execPath: node22 },
    );
    expect(run.stdout.trim()).toBe('22.23.3 true');
  });

  it.each(['app.mjs', 'app.cjs'])('%s under --import register.mjs: every call metered, stream included', async (app) => {
    const run = await runNode(['--import', join(repoRoot, 'register.mjs'), join(repoRoot, 'test/apps', app)], {
      execPath: node22,
      env: { OPENAI_BASE_URL: fake.openaiBaseURL, LLM_PATCH: 'after' },
    });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(eventsPrinted(run.stdout).map((e) => [e.stream, e.total_tokens])).toEqual([
      [false, 18],
      [true, 18],
    ]);
  });
});
