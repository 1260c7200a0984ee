// The published package: what `npm pack` puts in it, that installing it runs no script, and that a TypeScript app
// type-checks against it with `tsc --strict` and no skipLibCheck, without ioredis or stripe installed.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repoRoot, runNode } from './helpers.js';

const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const manifest = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as {
  scripts: Record<string, string>;
  dependencies: Record<string, string>;
  peerDependencies: Record<string, string>;
};

let files: string[] = [];
let consumer = '';
let packDir = '';
afterAll(() => {
  for (const dir of [consumer, packDir]) if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

/** A consumer app's directory with the packed package installed, its dependencies linked, and no optional peer. */
function installInConsumer(tarball: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'llm-meter-consumer-'));
  const target = join(dir, 'node_modules/llm-meter');
  mkdirSync(target, { recursive: true });
  execFileSync('tar', ['-xzf', tarball, '-C', target, '--strip-components=1']);
  for (const name of [...Object.keys(manifest.dependencies), '@types/node']) {
    mkdirSync(dirname(join(dir, 'node_modules', name)), { recursive: true });
    symlinkSync(join(repoRoot, 'node_modules', name), join(dir, 'node_modules', name));
  }
  return dir;
}

beforeAll(() => {
  packDir = mkdtempSync(join(tmpdir(), 'llm-meter-pack-'));
  // --ignore-scripts: the suite runs on the dist it built; the pack must not build it again under the other tests.
  const [report] = JSON.parse(execFileSync(npm, ['pack', '--json', '--ignore-scripts', '--pack-destination', packDir], { cwd: repoRoot, encoding: 'utf8' })) as [
    { filename: string; files: { path: string }[] },
  ];
  files = report.files.map((f) => f.path);
  consumer = installInConsumer(join(packDir, report.filename));
}, 120_000);

describe('the package', () => {
  it('holds the built code, its declarations, both register entry points, the README and the licence, and nothing else', () => {
    for (const file of ['package.json', 'README.md', 'LICENSE', 'register.mjs', 'register.cjs', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/zero-code/register.js']) {
      expect(files).toContain(file);
    }
    const outside = files.filter((f) => !/^dist\/(src|patches|transport)\/.+\.(js|d\.ts)$/.test(f));
    expect(outside.sort()).toEqual(['LICENSE', 'README.md', 'bin/llm-meter.cjs', 'package.json', 'register.cjs', 'register.mjs']);
    // No source maps pointing at sources the package does not hold, no tests, no TypeScript sources.
    expect(files.filter((f) => f.endsWith('.map') || f.startsWith('test/') || (f.endsWith('.ts') && !f.endsWith('.d.ts')))).toEqual([]);
  });

  it('runs no script when installed: it is built when packed', () => {
    for (const hook of ['preinstall', 'install', 'postinstall', 'prepare']) expect(manifest.scripts[hook], hook).toBeUndefined();
    expect(manifest.scripts.prepack).toBe('npm run build');
  });

  it('publishes no declaration that names an optional peer', () => {
    const declarations = files.filter((f) => f.endsWith('.d.ts'));
    expect(declarations.length).toBeGreaterThan(50);
    for (const file of declarations) {
      const text = readFileSync(join(consumer, 'node_modules/llm-meter', file), 'utf8');
      for (const peer of Object.keys(manifest.peerDependencies)) {
        expect(text, file).not.toMatch(new RegExp(`(from|import\\()\\s*['"]${peer.replace('/', '\\/')}['"/]`));
      }
    }
  });

  it('a strict TypeScript app, ES module and CommonJS, type-checks against it without skipLibCheck', () => {
    writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
    writeFileSync(
      join(consumer, 'app.mts'),
      `import { Meter, getMeter, LimitExceededError, TenantIdError, type MeterOptions, type PatchName, type ProviderId, type TenantInspection, type ThresholdAlert, type UsageEvent, type UsageReport, type WindowReport } from 'llm-meter';
const patches: PatchName[] = ['openai', 'anthropic', 'ai-sdk-openai'];
const options: MeterOptions = {
  url: 'https://ingest.example.com/v1/usage',
  patches,
  limits: { redis: 'redis://127.0.0.1:6379', failMode: 'closed' },
  sinks: [{ type: 'file', path: './usage.jsonl' }],
  onEvent: (event: UsageEvent) => void event.cost_usd,
  onThreshold: (alert: ThresholdAlert) => void alert.scope,
};
const meter = new Meter(options);
const usage: Promise<WindowReport[]> = meter.getUsage('acme');
const inspection: Promise<TenantInspection> = getMeter().inspect('acme');
// @ts-expect-error a misspelt provider does not compile
meter.patch('opneai');
// @ts-expect-error nor in the options
const misspelt: MeterOptions = { patches: ['opneai'] };
// @ts-expect-error the agent's internals are not part of its types
void meter.begin;
const priced: MeterOptions = { prices: { 'openai:gpt-4o': { input_mtok: 2.5, output_mtok: 10 } }, providerHosts: { 'llm.internal': 'deepseek' } };
// @ts-expect-error a misspelt provider in a price key does not compile
const badPrice: MeterOptions = { prices: { 'opneai:gpt-4o': { input_mtok: 2.5, output_mtok: 10 } } };
// @ts-expect-error nor as a host's provider
const badHost: MeterOptions = { providerHosts: { 'llm.internal': 'deep-seek' } };
// @ts-expect-error nor in manual usage
meter.trackManually({ provider: 'antropic', model: 'claude-sonnet-4-5', input_tokens: 1, output_tokens: 1 });
// A provider of the app's own is named with a cast.
meter.trackManually({ provider: 'acme' as ProviderId, model: 'acme-1', input_tokens: 1, output_tokens: 1 });
const isOpenai = (event: UsageEvent): boolean => event.provider === 'openai';
const reportCost = (report: UsageReport): number => report.groups.reduce((sum, group) => sum + group.cost_usd, 0);
export { usage, inspection, misspelt, priced, badPrice, badHost, isOpenai, reportCost, LimitExceededError, TenantIdError };
`,
    );
    writeFileSync(
      join(consumer, 'app.cts'),
      `import llmMeter = require('llm-meter');
const meter: llmMeter.Meter = new llmMeter.Meter({ file: './usage.jsonl', limits: { url: 'https://limits.example.com' } });
export = meter.forTenant('acme', () => meter.stats().queued);
`,
    );
    writeFileSync(
      join(consumer, 'tsconfig.json'),
      JSON.stringify({ compilerOptions: { strict: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', noEmit: true, types: ['node'] }, files: ['app.mts', 'app.cts'] }),
    );
    const tsc = join(repoRoot, 'node_modules/typescript/bin/tsc');
    let output = '';
    try {
      execFileSync(process.execPath, [tsc, '-p', consumer], { encoding: 'utf8' });
    } catch (err) {
      output = String((err as { stdout?: string }).stdout ?? err);
    }
    expect(output).toBe('');
    expect(readdirSync(join(consumer, 'node_modules'))).not.toContain('ioredis');
  });

  it('loads from the package alone: require, import and the register preload', async () => {
    const required = await runNode(['-e', "const m = require('llm-meter'); console.log(typeof m.Meter, typeof m.getMeter)"], { cwd: consumer });
    expect(required.stdout.trim(), required.stderr).toBe('function function');
    const imported = await runNode(['--input-type=module', '-e', "const m = await import('llm-meter'); console.log(typeof m.Meter)"], { cwd: consumer });
    expect(imported.stdout.trim(), imported.stderr).toBe('function');
    const preloaded = await runNode(['--require', 'llm-meter/register', '-e', "console.log('ran')"], { cwd: consumer, env: { LLM_METER_FILE: join(consumer, 'usage.jsonl') } });
    expect(preloaded.stdout.trim(), preloaded.stderr).toBe('ran');
    expect(preloaded.stderr).toBe('');
  });
});
