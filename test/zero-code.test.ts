// Zero code: `--require` or `--import llm-meter/register` (on the command line or in NODE_OPTIONS) with LLM_METER_*
// variables makes the default Meter and patches everything; the app only scopes its calls (and reaches the Meter with
// getMeter). Real child processes on every Node of the matrix, against the fake providers.
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { ConfigError, Meter, NODE_MATRIX, requireFromRepo, runNode } from './helpers.js';
import type { UsageEvent } from 'llm-meter';

const fake = await startFakeProviders();
afterAll(() => fake.close());

const { optionsFromEnvironment, ENVIRONMENT_VARIABLES } = requireFromRepo('./dist/src/zero-code/environment.js') as typeof import('../src/zero-code/environment.js');

const usageFile = () => join(mkdtempSync(join(tmpdir(), 'zero-code-')), 'usage.jsonl');
const eventsIn = (file: string): UsageEvent[] =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter((line) => line !== '')
        .map((line) => JSON.parse(line) as UsageEvent)
    : [];
const chatCalls = () => fake.requests.filter((r) => r.path.endsWith('/chat/completions'));

const LAUNCHES: Array<[string, string[], Record<string, string>]> = [
  ['--require, a CommonJS app', ['--require', 'llm-meter/register', 'test/apps/zero-code-app.cjs'], {}],
  ['--import, an ES module app', ['--import', 'llm-meter/register', 'test/apps/zero-code-app.mjs'], {}],
  ['--require, an ES module app', ['--require', 'llm-meter/register', 'test/apps/zero-code-app.mjs'], {}],
  ['NODE_OPTIONS=--require, a CommonJS app', ['test/apps/zero-code-app.cjs'], { NODE_OPTIONS: '--require llm-meter/register' }],
  ['NODE_OPTIONS=--import, an ES module app', ['test/apps/zero-code-app.mjs'], { NODE_OPTIONS: '--import llm-meter/register' }],
];

describe.each(NODE_MATRIX)('zero code on $name', ({ binary }) => {
  it.each(LAUNCHES)('%s: every call metered to the JSONL file for its tenant; limits set through getMeter() hold', async (_, args, env) => {
    const file = usageFile();
    fake.reset();
    const run = await runNode(args, { execPath: binary(), env: { ...env, LLM_METER_FILE: file, LLM_METER_FLUSH_INTERVAL: '50', OPENAI_BASE_URL: fake.openaiBaseURL }, timeoutMs: 60_000 });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('REFUSED LimitExceededError');
    expect(run.stderr).toBe('');
    const events = eventsIn(file);
    expect(events.map((e) => [e.tenant_id, e.stream, e.model, e.error === undefined])).toEqual([
      ['acme', false, 'gpt-4o', true],
      ['acme', true, 'gpt-4o', true],
      ['capped', false, 'gpt-4o', false],
    ]);
    expect(events.slice(0, 2).every((e) => e.cost_usd! > 0 && e.input_tokens > 0)).toBe(true);
    // The refused call never left: two requests reached the provider.
    expect(chatCalls()).toHaveLength(2);
  });
});

describe.each(NODE_MATRIX)('register as a preload of any script on $name', ({ binary }) => {
  it.each([['--require'], ['--import']])('%s llm-meter/register with a `node -e` script that requires builtins and an SDK', async (flag) => {
    const run = await runNode([flag, 'llm-meter/register', '-e', "require('module'); require('node:fs'); require('openai'); console.log('ran')"], { execPath: binary(), env: { LLM_METER_FILE: usageFile() } });
    expect(run.stderr).toBe('');
    expect(run.stdout.trim()).toBe('ran');
    expect(run.code).toBe(0);
  });
});

describe('zero code: the environment', () => {
  it('without any LLM_METER_* variable, register only installs the load hooks, and says so when nothing patches', async () => {
    const run = await runNode(['--require', 'llm-meter/register', '-e', "require('openai'); setTimeout(() => {}, 10)"], { env: {} });
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(/openai loaded under --import llm-meter\/register, but no Meter patched it/);
  });

  it('a bad variable is reported, naming it and its value, and the app runs unmetered', async () => {
    const file = usageFile();
    fake.reset();
    const env = { LLM_METER_FILE: file, LLM_METER_FLUSH_INTERVAL: 'soon', OPENAI_BASE_URL: fake.openaiBaseURL };
    const run = await runNode(['--require', 'llm-meter/register', 'test/apps/zero-code-app.cjs'], { env, timeoutMs: 60_000 });
    expect(run.stderr).toContain('[llm-meter] error: LLM_METER_FLUSH_INTERVAL: flushInterval must be a positive integer');
    expect(run.stderr).toContain('"soon"');
    expect(run.stderr).toContain('nothing is metered');
    expect(eventsIn(file)).toEqual([]);
  });

  it('LLM_METER_RAISE_ON_ERROR: a bad variable stops the app at start instead', async () => {
    const run = await runNode(['--require', 'llm-meter/register', '-e', "console.log('RAN')"], { env: { LLM_METER_ENFORCEMENT: 'tight', LLM_METER_RAISE_ON_ERROR: 'true' } });
    expect(run.code).not.toBe(0);
    expect(run.stdout).not.toContain('RAN');
    expect(run.stderr).toMatch(/ConfigError: LLM_METER_ENFORCEMENT: enforcement must be one of 'strict', 'lenient', got "tight"/);
  });

  it('reads each variable as the option it sets', () => {
    const options = optionsFromEnvironment({
      LLM_METER_URL: 'https://ingest.example.com/v1/usage',
      LLM_METER_API_KEY: 'secret-key',
      LLM_METER_FORMAT: 'cloudevents',
      LLM_METER_FLUSH_INTERVAL: '250',
      LLM_METER_DEBUG: 'yes',
      LLM_METER_PATCHES: 'openai, anthropic',
      LLM_METER_THRESHOLDS: '0.5,0.8,1',
      LLM_METER_REDIS_URL: 'redis://127.0.0.1:6379',
      LLM_METER_FAIL_MODE: 'closed',
      LLM_METER_DEFAULT_LIMIT_USD: '2.5',
      LLM_METER_DEFAULT_LIMIT_FREQUENCY: 'per_day',
      LLM_METER_REQUIRE_TENANT: 'false',
      OTHER: 'ignored',
    });
    expect(options).toEqual({
      url: 'https://ingest.example.com/v1/usage',
      apiKey: 'secret-key',
      format: 'cloudevents',
      flushInterval: 250,
      debug: true,
      patches: ['openai', 'anthropic'],
      thresholds: [0.5, 0.8, 1],
      limits: { redis: 'redis://127.0.0.1:6379', failMode: 'closed' },
      defaultLimit: { limitUsd: 2.5, frequency: 'per_day' },
      requireTenant: false,
    });
    expect(optionsFromEnvironment({ PATH: '/bin' })).toBeUndefined();
    expect(ENVIRONMENT_VARIABLES).toContain('LLM_METER_REDIS_URL');
  });

  it.each([
    [{ LLM_METER_MAX_QUEUE_SIZE: '-5' }, /LLM_METER_MAX_QUEUE_SIZE: maxQueueSize must be a positive integer, got -5/],
    [{ LLM_METER_DEBUG: 'maybe' }, /LLM_METER_DEBUG: debug must be a boolean, got "maybe"/],
    [{ LLM_METER_PATCHES: 'openai,opena1' }, /LLM_METER_PATCHES: patches: unknown provider "opena1"/],
    [{ LLM_METER_FAIL_MODE: 'open' }, /LLM_METER_FAIL_MODE.* need LLM_METER_REDIS_URL or LLM_METER_LIMITS_URL/],
    [{ LLM_METER_DEFAULT_LIMIT_USD: '5' }, /LLM_METER_DEFAULT_LIMIT_USD and LLM_METER_DEFAULT_LIMIT_FREQUENCY: defaultLimit.frequency is required/],
    [{ LLM_METER_URL: 'ftp://x' }, /LLM_METER_URL: url must use http or https/],
    [{ LLM_METER_API_KEY: '' }, /LLM_METER_API_KEY: apiKey must be a non-empty string, got an empty string/],
  ])('refuses %o, naming the variable', (env, message) => {
    expect(() => optionsFromEnvironment(env)).toThrow(ConfigError);
    expect(() => optionsFromEnvironment(env)).toThrow(message);
  });

  it('an unknown LLM_METER_* variable is warned about, naming it, and ignored', async () => {
    expect(optionsFromEnvironment({ LLM_METER_ULR: 'https://x' })).toBeUndefined();
    const run = await runNode(['--require', 'llm-meter/register', '-e', "require('llm-meter').getMeter(); console.log('ran')"], { env: { LLM_METER_ULR: 'https://x' } });
    expect(run.stdout.trim()).toBe('ran');
    // Once from register, once from the Meter that getMeter() made: each says what it ignored.
    expect(run.stderr).toContain('unknown environment variable LLM_METER_ULR, ignored (known: LLM_METER_URL, ');
  });

  it('never repeats a key or a secret url in its errors', () => {
    const thrown = (env: Record<string, string>) => {
      try {
        optionsFromEnvironment(env);
      } catch (err) {
        return (err as Error).message;
      }
      return '';
    };
    expect(thrown({ LLM_METER_API_KEY: 'sk-live-123', LLM_METER_FORMAT: 'xml' })).not.toContain('sk-live-123');
    expect(thrown({ LLM_METER_URL: 'https://user:hunter2@in gest' })).not.toContain('hunter2');
  });

  it('options in code win over the environment, whose other variables still apply', async () => {
    const file = usageFile();
    const code = `
      const { Meter } = require('llm-meter');
      const meter = new Meter({ flushInterval: 100, handleExit: false });
      meter.trackManually({ provider: 'openai', model: 'gpt-4o', input_tokens: 1, output_tokens: 1, tenant_id: 't' });
      meter.shutdown().then(() => console.log('DONE'));`;
    // LLM_METER_FLUSH_INTERVAL is invalid, but the code sets flushInterval: only LLM_METER_FILE is taken.
    const run = await runNode(['-e', code], { env: { LLM_METER_FILE: file, LLM_METER_FLUSH_INTERVAL: 'never' } });
    expect(run.stdout, run.stderr).toContain('DONE');
    expect(eventsIn(file).map((e) => e.tenant_id)).toEqual(['t']);
  });

  it('a Meter made in code with a bad variable throws a ConfigError naming it', () => {
    const saved = process.env.LLM_METER_ENFORCEMENT;
    process.env.LLM_METER_ENFORCEMENT = 'tight';
    try {
      expect(() => new Meter({ handleExit: false })).toThrow(/LLM_METER_ENFORCEMENT: enforcement must be one of 'strict', 'lenient', got "tight"/);
    } finally {
      if (saved === undefined) delete process.env.LLM_METER_ENFORCEMENT;
      else process.env.LLM_METER_ENFORCEMENT = saved;
    }
  });
});
