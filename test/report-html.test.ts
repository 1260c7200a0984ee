import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PNG } from 'pngjs';
import { repoRoot, runNode } from './helpers.js';
import { CALLS, OUTCOMES, SCRIPT_MODEL, writeUsageFile, XSS_TENANT } from './fixtures/report/usage-fixture.js';

const BIN = join(repoRoot, 'bin/llm-meter.cjs');
const CHROMIUM_TIMEOUT_MS = 60_000;

let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'llm-meter-report-html-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function chromiumPath(): string {
  const found = spawnSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).stdout.trim();
  if (found === '') throw new Error('chromium is not installed: run `apt-get install chromium` (the CI script installs it)');
  return found;
}

/** Runs headless Chromium on a page, in its own profile, killed if it outlives the timeout. */
function chromium(args: string[]): Promise<string> {
  const profile = mkdtempSync(join(dir, 'profile-'));
  return new Promise((resolve, reject) => {
    const child = spawn(chromiumPath(), ['--headless', '--no-sandbox', '--disable-gpu', '--hide-scrollbars', '--window-size=1200,900', `--user-data-dir=${profile}`, '--virtual-time-budget=5000', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), CHROMIUM_TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      rmSync(profile, { recursive: true, force: true });
      if (code === 0) resolve(stdout);
      else reject(new Error(`chromium ${args.join(' ')} ended with ${code ?? signal}: ${stderr.slice(-2000)}`));
    });
  });
}

async function htmlReport(usageFile: string, out: string): Promise<string> {
  const run = await runNode([BIN, 'report', usageFile, '--format', 'html', '--out', out]);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  expect(run.stdout).toBe(`${out}\n`);
  return readFileSync(out, 'utf8');
}

function hexColour(hex: string): [number, number, number] {
  return [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16)) as [number, number, number];
}

/**
 * Pixels of a colour in a screenshot: all of them, and the "solid" ones, whose neighbours 2 px away on all four sides
 * are that colour too: a chart's drawn point is solid, the legend's 2 px outlined marker and a 3 px line are not.
 */
function colourPixels(png: PNG, hex: string): { all: number; solid: number; solidMeanX: number } {
  const [r, g, b] = hexColour(hex);
  const near = (x: number, y: number): boolean => {
    if (x < 0 || y < 0 || x >= png.width || y >= png.height) return false;
    const i = (y * png.width + x) * 4;
    return Math.abs(png.data[i]! - r) <= 12 && Math.abs(png.data[i + 1]! - g) <= 12 && Math.abs(png.data[i + 2]! - b) <= 12;
  };
  let all = 0;
  let solid = 0;
  let solidX = 0;
  for (let y = 0; y < png.height; y++) {
    for (let x = 0; x < png.width; x++) {
      if (!near(x, y)) continue;
      all++;
      if (near(x - 2, y) && near(x + 2, y) && near(x, y - 2) && near(x, y + 2)) {
        solid++;
        solidX += x;
      }
    }
  }
  return { all, solid, solidMeanX: solid === 0 ? Number.NaN : solidX / solid };
}

/** The page's own data block: the colours it draws with, and the series it drew. */
function pageData(html: string): { seriesColours: string[]; spendOverTime: { days: string[]; series: { name: string; costsUsd: number[] }[] } } {
  const json = /<script type="application\/json" id="report-data">([^<]*)<\/script>/.exec(html)![1]!;
  return JSON.parse(json);
}

describe('llm-meter report --format html', () => {
  it('is one self-contained page: no URL it would load, no external script or stylesheet, user data escaped', async () => {
    const usageFile = join(dir, 'usage.jsonl');
    // Ten tenants, so that the chart draws the top 8 and sums the rest.
    const smallTenants = ['small-1', 'small-2', 'small-3'].map((tenant, i) => ({ ...CALLS[0]!, tenant, cost_usd: 0.001 * (i + 1), timestamp: `2026-11-0${i + 2}T10:00:00.000Z` }));
    const calls = [...CALLS, ...smallTenants];
    await writeUsageFile(usageFile, calls, OUTCOMES);
    const html = await htmlReport(usageFile, join(dir, 'report.html'));
    // Tags outside scripts (a script's code may hold `<` comparisons): none loads anything.
    const withoutScriptBodies = html.replace(/(<script[^>]*>)[\s\S]*?<\/script>/g, '$1</script>');
    const tags = withoutScriptBodies.match(/<[a-z][^>]*>/gi)!;
    for (const tag of tags) {
      expect(tag).not.toMatch(/\b(src|href)\s*=\s*["']?\s*(https?:)?\/\//i);
      expect(tag).not.toMatch(/^<(link|img|iframe|object|embed|base)\b/i);
      if (tag.startsWith('<script')) expect(tag).not.toMatch(/\bsrc\s*=/i);
    }
    expect(html).not.toMatch(/url\(\s*["']?\s*(https?:)?\/\//i);
    expect(html).not.toMatch(/@import/i);
    // uPlot is inline.
    expect(html).toContain(readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js', { paths: [repoRoot] }), 'utf8').slice(0, 200));
    // The hostile tenant and model appear only escaped: as text in the page, with `<` escaped in the data block.
    expect(html).not.toContain(XSS_TENANT);
    expect(html).not.toContain(SCRIPT_MODEL);
    expect(html).toContain('&#60;img src=x onerror=&#34;document.title=&#39;pwned&#39;&#34;&#62;');
    expect(html).toContain('\\u003cimg src=x');
    // The chart's data: daily cost per tenant, exact sums of the fixture's calls.
    const data = pageData(html);
    expect(data.spendOverTime.days).toEqual(['2026-11-01', '2026-11-02', '2026-11-03', '2026-11-04']);
    const nanoOf = (tenant: string, day?: string) =>
      calls.filter((c) => (c.tenant ?? '(none)') === tenant && (day === undefined || c.timestamp.startsWith(day))).reduce((sum, c) => sum + Math.round(c.cost_usd * 1e9), 0);
    const ranked = [...new Set(calls.map((c) => c.tenant ?? '(none)'))].sort((a, b) => nanoOf(b) - nanoOf(a));
    // Top 8 tenants, each a series of its daily cost, and the rest summed into one.
    expect(data.spendOverTime.series.map((s) => s.name)).toEqual([...ranked.slice(0, 8), '(others)']);
    for (const series of data.spendOverTime.series.slice(0, 8)) {
      expect(series.costsUsd, series.name).toEqual(data.spendOverTime.days.map((day) => nanoOf(series.name, day) / 1e9));
    }
    expect(data.spendOverTime.series[8]!.costsUsd).toEqual(data.spendOverTime.days.map((day) => ranked.slice(8).reduce((sum, t) => sum + nanoOf(t, day), 0) / 1e9));

    const page = pathToFileURL(join(dir, 'report.html')).href;
    const dom = await chromium(['--dump-dom', page]);
    expect(dom).toMatch(/<body[^>]*data-rendered="true"/);
    expect(dom).toContain('<title>llm-meter report</title>');
    expect(dom).not.toContain('pwned</title>');
    // The tenant is text (escaped in the serialised DOM), in the table and the chart's legend; no such element exists.
    expect(dom).toContain('&lt;img src=x onerror="document.title=\'pwned\'"&gt;');
    expect(dom).not.toMatch(/<img[^>]*onerror/);
    expect(dom).toContain('&lt;/script&gt;&lt;script&gt;document.title="pwned"&lt;/script&gt;');

    const screenshot = join(dir, 'report.png');
    await chromium([`--screenshot=${screenshot}`, page]);
    expect(existsSync(screenshot)).toBe(true);
    const png = PNG.sync.read(readFileSync(screenshot));
    expect([png.width, png.height]).toEqual([1200, 900]);
    // Each top tenant's colour shows (lines at 0 overlap, so a series may be mostly hidden); together they fill the chart.
    const drawn = data.seriesColours.map((colour) => colourPixels(png, colour));
    for (const [i, pixels] of drawn.slice(0, data.spendOverTime.series.length - 1).entries()) {
      expect(pixels.all, `series ${i} (${data.spendOverTime.series[i]!.name})`).toBeGreaterThan(0);
    }
    expect(drawn.reduce((sum, p) => sum + p.solid, 0)).toBeGreaterThan(0);
    expect(drawn.reduce((sum, p) => sum + p.all, 0)).toBeGreaterThan(3000);
    // The model bars.
    expect(colourPixels(png, '#2f6fdf').solid).toBeGreaterThan(2000);
  }, 180_000);

  it('renders a single day of data', async () => {
    const usageFile = join(dir, 'one-day.jsonl');
    const oneDay = CALLS.filter((c) => c.timestamp.startsWith('2026-11-02')).map((c) => ({ ...c }));
    await writeUsageFile(usageFile, oneDay, []);
    const out = join(dir, 'one-day.html');
    const html = await htmlReport(usageFile, out);
    const data = pageData(html);
    expect(data.spendOverTime.days).toEqual(['2026-11-02']);
    const page = pathToFileURL(out).href;
    expect(await chromium(['--dump-dom', page])).toMatch(/<body[^>]*data-rendered="true"/);
    const screenshot = join(dir, 'one-day.png');
    await chromium([`--screenshot=${screenshot}`, page]);
    const png = PNG.sync.read(readFileSync(screenshot));
    // One point per tenant, drawn in the middle of the chart: the day is the whole x axis (half a day either side).
    for (const [i, series] of data.spendOverTime.series.entries()) {
      const { solid, solidMeanX } = colourPixels(png, data.seriesColours[i]!);
      expect(solid, series.name).toBeGreaterThan(0);
      expect(solidMeanX / png.width, series.name).toBeGreaterThan(0.4);
      expect(solidMeanX / png.width, series.name).toBeLessThan(0.65);
    }
  }, 180_000);
});
