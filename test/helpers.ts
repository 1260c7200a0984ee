import { afterAll, beforeEach, expect } from 'vitest';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Meter as MeterClass, MeterOptions, UsageEvent } from 'llm-meter';
import { canFetchNode, fetchNode } from './fixtures/node-binary.mjs';
import { sdkRoot } from './fixtures/sdk-root.mjs';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
export const requireFromRepo = createRequire(join(repoRoot, 'package.json'));

/** The agent as an app gets it: the built package (CJS), so in-process tests share one copy with child processes. */
export const { Meter, LimitExceededError, ConfigError } = requireFromRepo('llm-meter') as typeof import('llm-meter');

/**
 * SDK copies installed for the version matrix: at the top level the newest major that declares the project's engines,
 * older majors in app roots of their own, and the major that declares Node >= 22 in one installed on demand.
 */
export const OPENAI_VERSIONS = {
  'openai 7': sdkRoot('openai-7'),
  'openai 6': repoRoot,
  'openai 5': join(repoRoot, 'test/sdk-versions/openai-5'),
  'openai 4': join(repoRoot, 'test/sdk-versions/openai-4'),
} as const;

/** Requires a module as an app in `appRoot` would: the real package from that root's node_modules. */
export function requireFrom<T = any>(appRoot: string, specifier: string): T {
  return createRequire(join(appRoot, 'app.js'))(specifier) as T;
}

export function collectingMeter(options: MeterOptions = {}): { meter: MeterClass; events: UsageEvent[] } {
  const events: UsageEvent[] = [];
  const meter = new Meter({ ...options, onEvent: (e) => events.push(e) });
  return { meter, events };
}

/** The test file's Meter: every SDK patched until the file ends (the first Meter to patch a class owns it), events collected. */
export function patchingMeter(options: MeterOptions = {}): { meter: MeterClass; events: UsageEvent[] } {
  const collected = collectingMeter(options);
  collected.meter.patchAll();
  afterAll(() => collected.meter.unpatchAll());
  return collected;
}

/** Empties `events` before each test, and resets whatever else a test starts from (a fake's request log). */
export function clearBeforeEach(events: unknown[], reset?: () => void): void {
  beforeEach(() => {
    events.length = 0;
    reset?.();
  });
}

export interface NodeRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export { canFetchNode, fetchNode, sdkRoot };

/**
 * The Nodes test apps run on: this one, the oldest the package's engines admit (the test runner itself needs a newer
 * one), and Node 22 and 24 (fetched once from npm) where the platform allows.
 */
export const NODE_MATRIX: { name: string; version: string; binary: () => string }[] = [
  { name: `this Node (${process.versions.node})`, version: process.versions.node, binary: () => process.execPath },
  // Under test/node-matrix.mjs the whole suite runs on each Node: the apps too run on the Node under test alone.
  ...(canFetchNode && process.env.NODE_MATRIX_RUN !== 'this-node-only'
    ? [
        { name: 'Node 20.6', version: '20.6.1', binary: () => fetchNode('20.6.1') },
        { name: 'Node 22', version: '22.23.3', binary: () => fetchNode('22.23.3') },
        { name: 'Node 24', version: '24.22.3', binary: () => fetchNode('24.22.3') },
      ]
    : []),
];

export function runNode(
  args: string[],
  options: { cwd?: string; env?: Record<string, string>; timeoutMs?: number; execPath?: string } = {},
): Promise<NodeRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(options.execPath ?? process.execPath, args, {
      cwd: options.cwd ?? repoRoot,
      env: { ...process.env, ...options.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** Lines a child app printed as `EVENT {json}`. */
export function eventsPrinted(stdout: string): UsageEvent[] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('EVENT '))
    .map((line) => JSON.parse(line.slice('EVENT '.length)) as UsageEvent);
}

export const tick = (ms = 0): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Waits until `predicate` holds (events settle a tick or two after the caller's promise resolves). */
/** Waits for a condition (sync or async). The deadline only stops a test that would otherwise hang: keep it generous. */
export async function until(predicate: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await tick(5);
  }
}

/**
 * The per-file harness of the provider tests: `metered(fn)` runs fn, lets events settle, and checks one event per HTTP
 * request the fake received; `clear()` forgets both.
 */
export function eventsPerRequest(events: UsageEvent[], fake: { count(path?: string): number; reset(): void }) {
  const clear = (): void => {
    events.length = 0;
    fake.reset();
  };
  const metered = async (fn: () => Promise<unknown>): Promise<UsageEvent[]> => {
    await fn();
    // On a timeout, fall through to the count assertion: its message says how many events came for how many requests.
    await until(() => events.length >= fake.count(), 'one event per request').catch(() => undefined);
    await tick(10);
    expect(events.length).toBe(fake.count());
    return [...events];
  };
  return { metered, clear };
}

/** Captures what the process writes to stderr while `fn` runs (the agent's warnings and debug lines). */
export async function stderrOf(fn: () => Promise<void>): Promise<string> {
  const write = process.stderr.write.bind(process.stderr);
  let out = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    out += chunk.toString();
    return true;
  }) as typeof process.stderr.write;
  try {
    await fn();
  } finally {
    process.stderr.write = write;
  }
  return out;
}

/**
 * The concurrency tests' check: once `results.length` events have arrived, each call's event (found by the id the
 * caller saw) carries the caller's tenant and what `expected` says of that call.
 */
export async function expectEventPerCall<R extends { id: string; tenant: string }>(
  events: UsageEvent[],
  results: R[],
  expected: (result: R) => Partial<UsageEvent>,
): Promise<void> {
  await until(() => events.length === results.length, `${results.length} events`);
  const byId = new Map(events.map((e) => [e.event_id, e]));
  expect(byId.size).toBe(results.length);
  for (const result of results) expect(byId.get(result.id)).toMatchObject({ tenant_id: result.tenant, ...expected(result) });
}
