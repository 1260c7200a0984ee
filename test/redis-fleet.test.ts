// A fleet of processes sharing one ledger: on one Redis, and on a Redis Cluster through ioredis' Cluster client. The
// apps run with the agent's default Redis options.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { startRedisCluster, startRedisServer, type RedisCluster } from './fixtures/redis-server.mjs';
import { Meter, repoRoot, requireFromRepo, until } from './helpers.js';

const redisServer = await startRedisServer();
const fake = await startFakeProviders();
const ioredis = requireFromRepo('ioredis') as typeof import('ioredis');
const redis = new ioredis.Redis(redisServer.url);
const children = new Set<ChildProcess>();
afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  redis.disconnect();
  await Promise.all([fake.close(), redisServer.stop()]);
});
afterEach(() => fake.reset());

const nano = (usd: number) => Math.round(usd * 1e9);
const today = () => new Date().toISOString().slice(0, 10);

interface FleetReport {
  admitted: number;
  refused: number;
  costs: number[];
  alerts: Array<{ scope: string; feature?: string; threshold: number; spentUsd: number }>;
  stderr: string;
}

function startApp(env: Record<string, string>) {
  const child = spawn(process.execPath, [join(repoRoot, 'test/apps/fleet-app.mjs')], {
    cwd: repoRoot,
    env: { ...process.env, OPENAI_BASE_URL: fake.openaiBaseURL, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.add(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const closed = new Promise<number | null>((resolve) => child.once('close', resolve));
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', () => stdout.includes('READY') && resolve());
    void closed.then((code) => reject(new Error(`a fleet app exited (${code}) before it was ready: ${stderr}`)));
  });
  return { child, ready, closed, output: () => ({ stdout, stderr }) };
}

/** Starts `count` apps, waits until every one has reached Redis, then lets them all call at once. */
async function runFleet(count: number, env: Record<string, string>): Promise<FleetReport[]> {
  const apps = Array.from({ length: count }, () => startApp(env));
  await Promise.all(apps.map((a) => a.ready));
  for (const app of apps) app.child.stdin!.end('GO\n');
  return Promise.all(
    apps.map(async (app) => {
      const code = await app.closed;
      const { stdout, stderr } = app.output();
      expect(code, stderr).toBe(0);
      return { ...(JSON.parse(stdout.trim().split('\n').at(-1)!) as Omit<FleetReport, 'stderr'>), stderr };
    }),
  );
}

/** At most the limit admitted, every call accounted for, no outage seen, and the ledger equal to the events' cost. */
async function expectFleetWithinLimit(reports: FleetReport[], calls: number, window: Record<string, string>): Promise<void> {
  const admitted = reports.reduce((n, r) => n + r.admitted, 0);
  expect(admitted).toBeLessThanOrEqual(10);
  expect(admitted).toBeGreaterThan(0);
  expect(reports.reduce((n, r) => n + r.admitted + r.refused, 0)).toBe(calls);
  expect(fake.count()).toBe(admitted);
  for (const { stderr } of reports) expect(stderr).not.toMatch(/unavailable/);
  const costs = reports.flatMap((r) => r.costs);
  expect(costs).toHaveLength(admitted);
  expect(window).toEqual({ spent: String(costs.reduce((s, c) => s + nano(c), 0)), reserved: '0' });
}

describe('a fleet of processes sharing one Redis ledger', () => {
  it('8 processes x 50 concurrent calls against a limit that fits exactly 10 worst-case calls: at most 10 admitted', async () => {
    const admin = new Meter({ limits: { redis: redisServer.url }, handleExit: false });
    await admin.setLimit('fleet', { limitUsd: 0.01, frequency: 'per_day' });
    const reports = await runFleet(8, { REDIS_URL: redisServer.url, CALLS: '50' });
    await expectFleetWithinLimit(reports, 400, await redis.hgetall(`llm-meter:{fleet}:d:${today()}`));
    await admin.shutdown();
  }, 120_000);

  it("8 processes spending for one tenant at once: each threshold of the tenant's budget and of its feature's alerts once in the fleet", async () => {
    const admin = new Meter({ limits: { redis: redisServer.url }, handleExit: false });
    await admin.setLimit('alerts', { limitUsd: 0.01, frequency: 'per_day', mode: 'soft' });
    await admin.setLimit('alerts', { limitUsd: 0.005, frequency: 'per_day', mode: 'soft', feature: 'chat' });
    // 8 x 5 calls of $0.001: $0.04, past every threshold of both budgets, written by whichever process.
    const reports = await runFleet(8, { REDIS_URL: redisServer.url, CALLS: '5', TENANT: 'alerts', FEATURE: 'chat', THRESHOLDS: '0.25,0.5,1,2' });
    expect(reports.reduce((n, r) => n + r.admitted, 0)).toBe(40);
    const alerts = reports.flatMap((r) => r.alerts);
    expect(alerts.map((a) => `${a.scope}:${a.feature ?? ''}:${a.threshold}`).sort()).toEqual(
      ['feature:chat:0.25', 'feature:chat:0.5', 'feature:chat:1', 'feature:chat:2', 'tenant::0.25', 'tenant::0.5', 'tenant::1', 'tenant::2'],
    );
    // Each one sent by a process that had seen the spend reach it.
    for (const alert of alerts) expect(alert.spentUsd).toBeGreaterThanOrEqual(alert.threshold * (alert.scope === 'tenant' ? 0.01 : 0.005) - 1e-12);
    // Every check ran before its process let go of Redis: none failed, and shutting down was no outage.
    for (const { stderr } of reports) expect(stderr).not.toMatch(/unavailable|could not be sent/);
    await admin.shutdown();
  }, 120_000);

  it('a process killed with SIGKILL mid-call leaves a lease that expires, and its reservation stays counted', async () => {
    const admin = new Meter({ limits: { redis: redisServer.url }, handleExit: false });
    await admin.setLimit('hang', { limitUsd: 1, frequency: 'per_month' });
    const app = startApp({ REDIS_URL: redisServer.url, MODE: 'hang', TENANT: 'hang', LEASE_MS: '800' });
    await app.ready;
    await until(() => fake.count() === 1, 'the hanging call to go out');
    const leases = await redis.keys('llm-meter:{hang}:r:*');
    expect(leases).toHaveLength(1);
    const ttl = await redis.pttl(leases[0]!);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(800);
    app.child.kill('SIGKILL');
    await app.closed;
    const [month] = await admin.getUsage('hang');
    expect(nano(month!.reservedUsd)).toBe(nano(0.001));
    // No event: the process died before its call ended, and nothing was spent.
    expect(month!.spentUsd).toBe(0);
    await admin.shutdown();
  }, 60_000);
});

describe('a fleet on a Redis Cluster of 3 masters', () => {
  let cluster: RedisCluster;
  beforeAll(async () => {
    cluster = await startRedisCluster(3);
  }, 120_000);
  afterAll(() => cluster?.stop());

  it("8 processes through ioredis' Cluster client: at most the limit admitted, and every key of the tenant in one slot", async () => {
    const client = new ioredis.Cluster(cluster.nodes);
    const admin = new Meter({ limits: { redis: client }, handleExit: false });
    try {
      const tenant = 'org{eu}';
      await admin.setLimit(tenant, { limitUsd: 0.01, frequency: 'per_day' });
      const reports = await runFleet(8, { REDIS_CLUSTER: cluster.nodes.map((n) => `${n.host}:${n.port}`).join(','), TENANT: tenant, CALLS: '50' });
      const prefix = 'llm-meter:{org%7Beu%7D}:';
      await expectFleetWithinLimit(reports, 400, await client.hgetall(`${prefix}d:${today()}`));
      const keysPerMaster = await Promise.all(client.nodes('master').map((node) => node.keys('llm-meter:*')));
      const holding = keysPerMaster.filter((keys) => keys.length > 0);
      expect(holding).toHaveLength(1);
      const keys = holding[0]!;
      expect(keys).toContain(`${prefix}limits`);
      expect(keys).toContain(`${prefix}d:${today()}`);
      expect(keys.filter((k) => k.startsWith(`${prefix}settled:`))).toHaveLength(reports.reduce((n, r) => n + r.admitted, 0));
      const slots = await Promise.all(keys.map((k) => client.cluster('KEYSLOT', k)));
      expect(new Set(slots).size).toBe(1);
    } finally {
      await admin.shutdown();
      client.disconnect();
    }
  }, 120_000);
});
