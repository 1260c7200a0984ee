import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { collectingMeter, ConfigError, NODE_MATRIX, repoRoot, requireFrom, runNode, until } from './helpers.js';
import type { UsageEvent } from 'llm-meter';

const fake = await startFakeProviders();
afterAll(() => fake.close());
afterEach(() => fake.reset());

// ---- the contract, in this process -----------------------------------------------------------------------------------

describe('meter.middleware: Connect-style (req, res, next)', () => {
  const { OpenAI } = requireFrom(repoRoot, 'openai');
  const { meter, events } = collectingMeter({ handleExit: false });
  const client = meter.instrument(new OpenAI({ apiKey: 'k', baseURL: fake.openaiBaseURL, maxRetries: 0 }));
  const complete = () => client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] });
  afterEach(() => {
    events.length = 0;
  });
  afterAll(() => meter.shutdown());

  /** Runs the middleware on a request: what it passed to next, and the event of the call next started (when no error). */
  async function pass(resolveTenant: (req: { tenant?: unknown }) => unknown, tenant?: unknown): Promise<{ args: unknown[]; event?: UsageEvent }> {
    events.length = 0;
    const middleware = meter.middleware(resolveTenant as (req: { tenant?: unknown }) => string | undefined);
    let call: Promise<unknown> | undefined;
    const args = await new Promise<unknown[]>((resolve) =>
      middleware({ tenant }, {}, (...nextArgs: unknown[]) => {
        if (nextArgs.length === 0) call = complete();
        resolve(nextArgs);
      }),
    );
    if (call === undefined) return { args };
    await call;
    await until(() => events.length === 1, 'the event');
    return { args, event: events[0] };
  }

  it('a request with a tenant: the rest of the chain bills to it, tags included; next() without an error', async () => {
    const middleware = meter.middleware((req: { tenant: string }) => req.tenant, { tags: { surface: 'api' } });
    await new Promise<void>((resolve, reject) => middleware({ tenant: 'acme' }, {}, (err) => (err === undefined ? complete().then(() => resolve(), reject) : reject(err))));
    await until(() => events.length === 1, 'the event');
    expect(events[0]).toMatchObject({ tenant_id: 'acme', tags: { surface: 'api' } });
  });

  it.each([
    ['undefined', undefined],
    ['null', null],
  ])('a request without a tenant (%s) goes on untouched: next() at once, its calls bill to no tenant', async (_, none) => {
    let nextCalled = false;
    meter.middleware<object>(() => none as undefined)({}, {}, () => (nextCalled = true));
    expect(nextCalled).toBe(true);
    const { args, event } = await pass(() => none);
    expect(args).toEqual([]);
    expect(event?.tenant_id).toBeUndefined();
  });

  it('an async resolver: the chain goes on in its tenant once it answers', async () => {
    const { args, event } = await pass(async (req) => req.tenant, 'later');
    expect(args).toEqual([]);
    expect(event?.tenant_id).toBe('later');
    expect((await pass(async () => undefined)).event?.tenant_id).toBeUndefined();
  });

  it('a resolver that throws or rejects: its error goes to next(err), as Express expects', async () => {
    const boom = new Error('no session');
    expect((await pass(() => { throw boom; })).args).toEqual([boom]);
    expect((await pass(() => Promise.reject(boom))).args).toEqual([boom]);
    expect(events).toEqual([]);
  });

  it.each([
    ['an empty string', ''],
    ['a number', 42],
    ['257 characters', 'x'.repeat(257)],
  ])('an invalid tenant id (%s) goes to next(ConfigError)', async (_, tenant) => {
    const [err] = (await pass((req) => req.tenant, tenant)).args;
    expect(err).toBeInstanceOf(ConfigError);
    expect((await pass(async (req) => req.tenant, tenant)).args[0]).toBeInstanceOf(ConfigError);
  });

  it('a resolver that is not a function, or bad tags, throw ConfigError when the middleware is made', () => {
    expect(() => meter.middleware('tenant' as never)).toThrow(ConfigError);
    expect(() => meter.middleware(() => 'a', { tags: { n: 1 } as never })).toThrow(ConfigError);
  });
});

describe('a throw from the next middleware', () => {
  it('with a resolver that answers at once: it reaches the caller, as Express and Connect expect', () => {
    const boom = new Error('downstream bug');
    const { meter } = collectingMeter({ handleExit: false });
    expect(() => meter.middleware<object>(() => 'acme')({}, {}, () => { throw boom; })).toThrow(boom);
  });

  it('with an async resolver: never an unhandled rejection; it reaches uncaughtException, as from any callback', async () => {
    const run = await runNode([join(repoRoot, 'test/apps/middleware-next-throws.cjs')]);
    expect(run.stderr).toBe('');
    expect(run.stdout.trim().split('\n')).toEqual(['uncaughtException downstream bug']);
  });
});

// ---- no request bills to another's tenant, on a keep-alive connection, on every Node ------------------------------------

interface RequestResult {
  reused: boolean;
  status: number;
  tenants: (string | null)[];
}

async function serve(node: string, scope: string): Promise<{ results: RequestResult[]; node: string }> {
  const run = await runNode([join(repoRoot, 'test/apps/middleware-server.cjs'), scope], { execPath: node, env: { OPENAI_BASE_URL: fake.openaiBaseURL } });
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  const lines = run.stdout.trim().split('\n');
  return {
    results: lines.filter((l) => l.startsWith('RESULT ')).map((l) => JSON.parse(l.slice('RESULT '.length)) as RequestResult),
    node: lines.find((l) => l.startsWith('NODE '))!.slice('NODE '.length),
  };
}

// One connection: the first request opens it, the next two reuse it. Each request made two calls.
const ONE_CONNECTION = [false, true, true];

describe.each(NODE_MATRIX)('$name: a request for "victim", then two anonymous ones on the same keep-alive connection', ({ version, binary }) => {
  let node = '';
  beforeAll(() => {
    node = binary();
  }, 180_000);

  it.each(['middleware', 'async-resolver', 'fastify-onRequest', 'fastify-preHandler'])('%s: only the victim request bills to victim', async (scope) => {
    const { results, node: ran } = await serve(node, scope);
    expect(ran).toBe(version);
    expect(results.map((r) => r.reused)).toEqual(ONE_CONNECTION);
    expect(results.map((r) => [r.status, r.tenants])).toEqual([
      [200, ['victim', 'victim']],
      [200, [null, null]],
      [200, [null, null]],
    ]);
  });

  it('setTenant in the handler (why the README shows middleware): the connection carries the tenant on Node 20 and 22 only', async () => {
    const { results, node: ran } = await serve(node, 'set-tenant');
    expect(results.map((r) => r.reused)).toEqual(ONE_CONNECTION);
    const leaked = Number(ran.split('.')[0]) < 24;
    expect(results.map((r) => r.tenants)).toEqual([['victim', 'victim'], ...Array(2).fill(leaked ? ['victim', 'victim'] : [null, null])]);
  });
});
