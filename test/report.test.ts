import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { UsageReport, UsageReportGroup } from 'llm-meter';
import { repoRoot, runNode, type NodeRun } from './helpers.js';
import { CALLS, OUTCOMES, writeUsageFile, type FixtureCall } from './fixtures/report/usage-fixture.js';

const BIN = join(repoRoot, 'bin/llm-meter.cjs');
const DIMENSIONS = ['tenant', 'model', 'feature', 'provider', 'day'] as const;
type Dimension = (typeof DIMENSIONS)[number];

let dir: string;
let usageFile: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'llm-meter-report-'));
  usageFile = join(dir, 'usage.jsonl');
  await writeUsageFile(usageFile);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const report = (args: string[], nodeArgs: string[] = []): Promise<NodeRun> => runNode([...nodeArgs, BIN, ...args], { timeoutMs: 25_000 });

async function jsonReport(args: string[]): Promise<UsageReport> {
  const run = await report(['report', usageFile, '--format', 'json', ...args]);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  return JSON.parse(run.stdout);
}

const nano = (usd: number): number => Math.round(usd * 1e9);
const REFUSALS = new Set(['LimitExceededError', 'ModelNotAllowedError', 'RateLimitedError']);

function keyOf(call: FixtureCall, by: Dimension): string {
  if (by === 'tenant') return call.tenant ?? '(none)';
  if (by === 'feature') return call.feature ?? '(none)';
  if (by === 'day') return call.timestamp.slice(0, 10);
  return call[by];
}

/** What the report should say, worked out from the fixture's inputs. */
function expectedGroups(by: Dimension, calls: FixtureCall[] = CALLS, outcomes = OUTCOMES) {
  const groups = new Map<string, { calls: number; input: number; output: number; cached: number; cacheWrite: number; costNano: number; revenueNano?: number; refused: number; errored: number; partial: number }>();
  const group = (key: string) => {
    if (!groups.has(key)) groups.set(key, { calls: 0, input: 0, output: 0, cached: 0, cacheWrite: 0, costNano: 0, refused: 0, errored: 0, partial: 0 });
    return groups.get(key)!;
  };
  for (const call of calls) {
    const g = group(keyOf(call, by));
    g.calls++;
    g.input += call.input_tokens;
    g.output += call.output_tokens;
    g.cached += call.cached_tokens ?? 0;
    g.cacheWrite += call.cache_creation_tokens ?? 0;
    g.costNano += nano(call.cost_usd);
    if (call.error !== undefined) REFUSALS.has(call.error) ? g.refused++ : g.errored++;
    if (call.partial === true) g.partial++;
  }
  // Outcomes count toward a tenant's or a day's revenue; by model, feature or provider they are apart.
  if (by === 'tenant' || by === 'day') {
    for (const outcome of outcomes) {
      const g = group(by === 'tenant' ? outcome.tenant : outcome.timestamp.slice(0, 10));
      g.revenueNano = (g.revenueNano ?? 0) + nano(outcome.revenueUsd);
    }
  }
  return groups;
}

describe('llm-meter report', () => {
  it.each(DIMENSIONS)('--by %s: one group per key with exact sums, in the documented order', async (by) => {
    const json = await jsonReport(['--by', by]);
    const expected = expectedGroups(by);
    expect(json.by).toBe(by);
    expect(json.skipped_lines).toBe(0);
    expect(json.groups.map((g: any) => g.key).sort()).toEqual([...expected.keys()].sort());
    for (const group of json.groups) {
      const e = expected.get(group.key)!;
      expect(group).toMatchObject({
        calls: e.calls,
        input_tokens: e.input,
        output_tokens: e.output,
        cached_tokens: e.cached,
        cache_creation_tokens: e.cacheWrite,
        cost_usd: e.costNano / 1e9,
        refused: e.refused,
        errored: e.errored,
        partial: e.partial,
      });
      if (e.revenueNano === undefined) {
        expect(group).not.toHaveProperty('revenue_usd');
        expect(group).not.toHaveProperty('margin_usd');
      } else {
        expect(group.revenue_usd).toBe(e.revenueNano / 1e9);
        expect(group.margin_usd).toBe((e.revenueNano - e.costNano) / 1e9);
      }
    }
    const costs = json.groups.map((g: any) => nano(g.cost_usd));
    if (by === 'day') expect(json.groups.map((g: any) => g.key)).toEqual([...expected.keys()].sort());
    else expect(costs).toEqual([...costs].sort((a: number, b: number) => b - a));
    const totalCostNano = CALLS.reduce((sum, c) => sum + nano(c.cost_usd), 0);
    const totalRevenueNano = OUTCOMES.reduce((sum, o) => sum + nano(o.revenueUsd), 0);
    expect(json.total).toMatchObject({ calls: CALLS.length, cost_usd: totalCostNano / 1e9, revenue_usd: totalRevenueNano / 1e9, margin_usd: (totalRevenueNano - totalCostNano) / 1e9 });
    expect(json.total).not.toHaveProperty('key');
    if (by === 'tenant' || by === 'day') expect(json).not.toHaveProperty('unattributed_revenue_usd');
    else expect(json.unattributed_revenue_usd).toBe(totalRevenueNano / 1e9);
  });

  it('json: the documented shape, with every token field', async () => {
    const json = await jsonReport(['--by', 'provider', '--from', '2026-11-02', '--to', '2026-11-03']);
    // Exhaustive at compile time: the exported types name exactly these fields.
    const reportFields: Record<keyof UsageReport, true> = { groups: true, total: true, unattributed_revenue_usd: true, skipped_lines: true, by: true, from: true, to: true };
    const groupFields: Record<keyof UsageReportGroup, true> = {
      key: true, calls: true, input_tokens: true, output_tokens: true, cached_tokens: true, cache_creation_tokens: true, reasoning_tokens: true,
      audio_input_tokens: true, audio_output_tokens: true, cost_usd: true, revenue_usd: true, margin_usd: true, refused: true, errored: true, partial: true,
    };
    expect(Object.keys(json)).toEqual(Object.keys(reportFields));
    expect(Object.keys(json.groups[0]!)).toEqual(Object.keys(groupFields).filter((f) => f !== 'revenue_usd' && f !== 'margin_usd'));
    expect(json).toMatchObject({ from: '2026-11-02', to: '2026-11-03', by: 'provider' });
  });

  it('--from and --to filter by timestamp: a date is a whole UTC day, a date-time is exact', async () => {
    const within = (from: number, to: number) => (c: { timestamp: string }) => Date.parse(c.timestamp) >= from && Date.parse(c.timestamp) <= to;
    const cases: [string[], (c: { timestamp: string }) => boolean][] = [
      [['--from', '2026-11-02', '--to', '2026-11-03'], within(Date.parse('2026-11-02T00:00:00Z'), Date.parse('2026-11-03T23:59:59.999Z'))],
      [['--to', '2026-11-01'], within(-Infinity, Date.parse('2026-11-01T23:59:59.999Z'))],
      [['--from=2026-11-03T12:00:00Z'], within(Date.parse('2026-11-03T12:00:00Z'), Infinity)],
      [['--from', '2026-11-02T01:00+01:00', '--to', '2026-11-04T02:00:00.000Z'], within(Date.parse('2026-11-02T00:00:00Z'), Date.parse('2026-11-04T02:00:00Z'))],
    ];
    for (const [args, selects] of cases) {
      const json = await jsonReport(['--by', 'day', ...args]);
      const expected = expectedGroups('day', CALLS.filter(selects), OUTCOMES.filter(selects));
      expect(json.groups.map((g: any) => [g.key, g.calls, nano(g.cost_usd), g.revenue_usd === undefined ? undefined : nano(g.revenue_usd)]), args.join(' ')).toEqual(
        [...expected.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([key, e]) => [key, e.calls, e.costNano, e.revenueNano]),
      );
    }
  });

  it('table: aligned columns, a header and a total row, money to 6 decimals', async () => {
    const run = await report(['report', usageFile, '--by', 'model']);
    expect(run.code).toBe(0);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^model +calls +input +output +cache read +cache write +cost \$ +revenue \$ +margin \$ +refused +errored +partial$/);
    const rule = lines[1]!;
    expect(lines.filter((l) => l === rule)).toHaveLength(2);
    const totalLine = lines.find((l) => l.startsWith('TOTAL'))!;
    const totalCostNano = CALLS.reduce((sum, c) => sum + nano(c.cost_usd), 0);
    // Rounded to 6 decimals, trailing zeros past the cents left out.
    expect(totalLine).toContain(` ${String(Math.round(totalCostNano / 1000) / 1e6)} `);
    // Right-aligned: every row of the group section ends at the same column as the header.
    const dataRows = lines.slice(2, lines.indexOf(rule, 2));
    expect(dataRows).toHaveLength(new Set(CALLS.map((c) => c.model)).size);
    for (const row of [...dataRows, totalLine]) expect(row.length).toBe(lines[0]!.length);
    expect(run.stdout).toContain("Revenue of run outcomes, in the total but not any model's: $2.60");
  });

  it('csv: RFC 4180 quoting, a formula guard on keys, exact money', async () => {
    const run = await report(['report', usageFile, '--format', 'csv']);
    expect(run.code).toBe(0);
    expect(run.stdout.startsWith('tenant,calls,input_tokens,output_tokens,cached_tokens,cache_creation_tokens,reasoning_tokens,audio_input_tokens,audio_output_tokens,cost_usd,revenue_usd,margin_usd,refused,errored,partial\r\n')).toBe(true);
    expect(run.stdout).toContain(`\r\n"'=HYPERLINK(""http://evil"",""x"")",1,10,10,0,0,0,0,0,0.02,,,0,0,0\r\n`);
    expect(run.stdout).toContain(`\r\n"a, ""quoted"" tenant",1,10,10,0,0,0,0,0,0.03,,,0,0,0\r\n`);
    const globex = expectedGroups('tenant').get('globex')!;
    expect(run.stdout).toContain(`\r\nglobex,3,9700,1590,8000,500,0,0,0,${globex.costNano / 1e9},0.10,${(nano(0.1) - globex.costNano) / 1e9},1,0,0\r\n`);
    // 1 header + one row per tenant, no total row.
    expect(run.stdout.split('\r\n').filter(Boolean)).toHaveLength(1 + expectedGroups('tenant').size);
  });

  it('skips and counts lines that are not events, and still exits 0', async () => {
    const file = join(dir, 'with-junk.jsonl');
    const real = readFileSync(usageFile, 'utf8').trimEnd().split('\n');
    const noTimestamp = { ...JSON.parse(real[0]!), timestamp: undefined };
    const junk = ['{not json', '[1,2,3]', JSON.stringify(noTimestamp), '', JSON.stringify({ ...JSON.parse(real[1]!), cost_usd: 'lots' })];
    writeFileSync(file, [real[0], real[1], ...junk, ...real.slice(2)].join('\n') + '\n');
    const run = await report(['report', file, '--format', 'json']);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('llm-meter: skipped 4 lines that are not events (first at line 3)\n');
    const json = JSON.parse(run.stdout);
    expect(json.skipped_lines).toBe(4);
    expect(json.total.calls).toBe(CALLS.length);
  });

  it.each([
    [['report', 'x.jsonl', '--by', 'modle'], '--by must be one of tenant, model, feature, provider, day, got "modle"'],
    [['report', 'x.jsonl', '--format', 'xml'], '--format must be one of table, csv, json, html, got "xml"'],
    [['report', 'x.jsonl', '--from', '2026-13-01'], '--from must be a date (2026-11-01) or an ISO date-time (2026-11-01T08:00:00Z), got "2026-13-01"'],
    [['report', 'x.jsonl', '--to', 'yesterday'], '--to must be a date (2026-11-01) or an ISO date-time (2026-11-01T08:00:00Z), got "yesterday"'],
    [['report', 'x.jsonl', '--from', '2026-11-05', '--to', '2026-11-01'], '--from "2026-11-05" is not before --to "2026-11-01"'],
    [['report', 'x.jsonl', '--colour'], 'unknown option "--colour"'],
    [['report', 'x.jsonl', '--by'], '--by needs a value'],
    [['report'], 'missing the usage file to read (a path, or - for stdin)'],
    [['summarise', 'x.jsonl'], 'unknown command "summarise"'],
    [[], 'missing command'],
  ])('bad arguments %j: exit 2 with a message naming them', async (args, message) => {
    const run = await report(args);
    expect(run.code).toBe(2);
    expect(run.stdout).toBe('');
    expect(run.stderr.split('\n')[0]).toBe(`llm-meter: ${message}`);
  });

  it('--help prints the usage', async () => {
    for (const args of [['--help'], ['report', '--help'], ['report', '-h']]) {
      const run = await report(args);
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/^Usage: llm-meter report <usage.jsonl \| -> \[options\]/);
      expect(run.stdout).toContain('--by <key>');
    }
  });

  it('a missing file: a clear error, exit 2', async () => {
    const missing = join(dir, 'nope.jsonl');
    const run = await report(['report', missing]);
    expect(run.code).toBe(2);
    expect(run.stderr).toBe(`llm-meter: cannot read ${JSON.stringify(missing)}: no such file\n`);
  });

  it('- reads stdin', async () => {
    const child = spawn(process.execPath, [BIN, 'report', '-', '--format', 'json', '--by', 'provider'], { cwd: repoRoot, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stdin.end(readFileSync(usageFile));
    const [code] = await once(child, 'close');
    expect(code).toBe(0);
    const json = JSON.parse(stdout);
    const expected = expectedGroups('provider');
    expect(json.groups.map((g: any) => [g.key, g.calls, nano(g.cost_usd)])).toEqual(
      [...expected.entries()].sort(([, a], [, b]) => b.costNano - a.costNano).map(([key, e]) => [key, e.calls, e.costNano]),
    );
  });

  it('streams a large file: 200k lines in a 64 MB heap', async () => {
    const file = join(dir, 'large.jsonl');
    const sample = JSON.parse(readFileSync(usageFile, 'utf8').split('\n')[0]!);
    const lines = 200_000;
    const tenants = 50;
    const out = createWriteStream(file);
    for (let i = 0; i < lines; i++) {
      const event = { ...sample, event_id: `big-${i}`, tenant_id: `tenant-${i % tenants}`, cost_usd: 0.000001, input_tokens: 3, output_tokens: 1, total_tokens: 4 };
      if (!out.write(`${JSON.stringify(event)}\n`)) await once(out, 'drain');
    }
    out.end();
    await once(out, 'close');
    const run = await report(['report', file, '--format', 'json'], ['--max-old-space-size=64']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const json = JSON.parse(run.stdout);
    expect(json.groups).toHaveLength(tenants);
    expect(json.total).toMatchObject({ calls: lines, input_tokens: 3 * lines, output_tokens: lines, cost_usd: (lines * 1000) / 1e9 });
    for (const group of json.groups) expect(group).toMatchObject({ calls: lines / tenants, cost_usd: ((lines / tenants) * 1000) / 1e9 });
  }, 60_000);
});
