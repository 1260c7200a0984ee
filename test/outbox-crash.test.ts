import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startFakeOpenMeter } from './fixtures/fake-billing.mjs';
import { startFakeIngest } from './fixtures/fake-ingest.mjs';
import { startFakeProviders } from './fixtures/fake-providers.mjs';
import { repoRoot, runNode, until } from './helpers.js';

const providers = await startFakeProviders();
const openmeter = await startFakeOpenMeter();
afterAll(() => Promise.all([providers.close(), openmeter.close()]));

const APP = join(repoRoot, 'test/apps/outbox-app.mjs');
const idsPrinted = (stdout: string): string[] => [...stdout.matchAll(/^EVENT (\S+)$/gm)].map((m) => m[1]!);

describe('the durable outbox', () => {
  it('SIGKILL while the ingest is slow: on restart every event arrives, exactly once', async () => {
    // The ingest takes the first batch, then hangs on the next one: the app is killed with that batch in flight.
    let hanging = 0;
    const ingest = await startFakeIngest({ respondWith: ({ index }) => (index === 0 ? undefined : (hanging++, { delayMs: 120_000 })) });
    const outbox = mkdtempSync(join(tmpdir(), 'llm-meter-outbox-'));
    const env = { OUTBOX: outbox, INGEST: ingest.url, OPENMETER: openmeter.baseUrl, OPENMETER_KEY: openmeter.apiKey, PROVIDERS: providers.openaiBaseURL };
    try {
      const child = spawn(process.execPath, [APP], { cwd: repoRoot, env: { ...process.env, ...env, CALLS: '20', FLUSH_AFTER: '10', HOLD: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d));
      child.stderr.on('data', (d: Buffer) => (stderr += d));
      const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('close', (_, signal) => resolve(signal)));
      await until(() => stdout.includes('RECORDED') && hanging === 1, `the second batch in flight (${stderr})`, 20_000);
      child.kill('SIGKILL');
      expect(await exited).toBe('SIGKILL');
      const first = idsPrinted(stdout);
      expect(first).toHaveLength(20);
      expect(ingest.events.map((e: { event_id: string }) => e.event_id)).toEqual(first.slice(0, 10));

      ingest.respondWith(() => undefined);
      const restart = await runNode([APP], { env: { ...env, CALLS: '3' }, timeoutMs: 30_000 });
      expect(restart.code, restart.stderr).toBe(0);
      const second = idsPrinted(restart.stdout);
      const stats = JSON.parse(restart.stdout.match(/^STATS (.*)$/m)![1]!);
      expect(stats.outbox.replayed).toBeGreaterThanOrEqual(10);

      // The ingest does not dedupe: each event arrived once. OpenMeter dedupes on (source, id): one event each too.
      const all = [...first, ...second];
      expect(ingest.events.map((e: { event_id: string }) => e.event_id).sort()).toEqual([...all].sort());
      expect(openmeter.events.filter((ce: { id: string }) => all.includes(ce.id)).map((ce: { id: string }) => ce.id).sort()).toEqual([...all].sort());

      // Everything was released: a third start sends nothing.
      const before = ingest.events.length;
      const third = await runNode([APP], { env: { ...env, CALLS: '0' }, timeoutMs: 30_000 });
      expect(third.code, third.stderr).toBe(0);
      expect(JSON.parse(third.stdout.match(/^STATS (.*)$/m)![1]!).outbox.replayed).toBe(0);
      expect(ingest.events.length).toBe(before);
    } finally {
      await ingest.close();
    }
  });
});

