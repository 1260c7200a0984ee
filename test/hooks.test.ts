import { mkdtempSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { eventsPrinted, repoRoot, runNode } from './helpers.js';

const fake = await startFakeProviders();
afterAll(() => fake.close());

const register = join(repoRoot, 'register.mjs');

async function runApp(app: string, env: Record<string, string>, withRegister = true) {
  const args = withRegister ? ['--import', register, join(repoRoot, 'test/apps', app)] : [join(repoRoot, 'test/apps', app)];
  const run = await runNode(args, { env: { OPENAI_BASE_URL: fake.openaiBaseURL, ...env } });
  // Without register.mjs an ES module app is told, once, that the agent could only reach what it imported itself.
  const expected = withRegister || !app.endsWith('.mjs') ? '' : /^\[llm-meter\] warning: this ES module app was started without --import[^\n]*\n/;
  expect(run.stderr.replace(expected, '')).not.toMatch(/Error|warning/i);
  expect(run.stdout).toContain('DONE');
  expect(run.code).toBe(0);
  return eventsPrinted(run.stdout);
}

describe('apps under node --import ./register.mjs', () => {
  it.each([
    ['app.mjs', 'before'],
    ['app.mjs', 'after'],
    ['app.cjs', 'before'],
    ['app.cjs', 'after'],
  ])('%s with patchAll %s the SDK loads: every call metered, stream included', async (app, when) => {
    const events = await runApp(app, { LLM_PATCH: when });
    expect(events).toHaveLength(2);
    expect(events.map((e) => [e.stream, e.total_tokens, e.partial])).toEqual([
      [false, 18, undefined],
      [true, 18, undefined],
    ]);
    expect(new Set(events.map((e) => e.tenant_id)).size).toBe(1);
  });

  it('both module formats in one process: the ESM and CJS builds are both patched', async () => {
    const events = await runApp('app.mjs', { LLM_PATCH: 'after', LLM_BOTH_FORMATS: '1' });
    expect(events.map((e) => e.tenant_id)).toEqual(['esm', 'esm', 'cjs', 'cjs']);
  });
});

describe('without register.mjs', () => {
  it('a CJS app: patchAll before and after require', async () => {
    for (const when of ['before', 'after']) {
      const events = await runApp('app.cjs', { LLM_PATCH: when }, false);
      expect(events).toHaveLength(2);
    }
  });

  it('an ESM app: patchAll after import works once the best-effort import settles', async () => {
    const events = await runApp('app.mjs', { LLM_PATCH: 'after', LLM_SETTLE_MS: '200' }, false);
    expect(events).toHaveLength(2);
  });
});

describe('an app with no provider SDK installed', () => {
  it('loads the agent, patches nothing, and still records manual usage', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'llm-meter-nosdk-'));
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(repoRoot, join(dir, 'node_modules', 'llm-meter'));
    writeFileSync(
      join(dir, 'app.mjs'),
      `import { Meter } from 'llm-meter';
const meter = new Meter({ onEvent: (e) => console.log('EVENT ' + JSON.stringify(e)) });
meter.patchAll();
let sdk = 'absent';
try { await import('openai'); sdk = 'present'; } catch {}
meter.trackManually({ provider: 'openai', model: 'gpt-4o', input_tokens: 3, output_tokens: 4 });
await meter.shutdown();
console.log('SDK ' + sdk);
console.log('DONE');
`,
    );
    const run = await runNode(['--import', 'llm-meter/register', join(dir, 'app.mjs')], { cwd: dir });
    expect(run.stderr).toBe('');
    expect(run.stdout).toContain('SDK absent');
    expect(eventsPrinted(run.stdout)).toMatchObject([{ endpoint: 'manual', total_tokens: 7 }]);
    expect(run.code).toBe(0);
  });
});
