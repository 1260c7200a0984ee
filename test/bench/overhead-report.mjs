// The per-call overhead section of the bench: runs overhead.mjs in several processes, one after another, on this Node
// and the newest Node the tests use, and prints, per Node, a table of each variant's cost against the raw SDK in an app
// with AsyncLocalStorage on: per process the median over rounds of (variant CPU per call / baseline CPU per call in
// the same round); across processes their median and min–max. The ratio of sums (total CPU / total CPU, which keeps
// every GC or background-compile burst a batch met) is printed too, in a second table.
//
//   BENCH_QUICK=1          2 processes, fewer rounds, this Node only, no openai 6 / OpenTelemetry (under a minute)
//   BENCH_WORKLOADS=a,b    only these workloads (openai-plain, openai-stream, anthropic-stream, gemini-stream,
//                          openai6-plain, openai6-stream)
//   BENCH_PROCESSES=n      processes per Node
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { AgentMisbehaved } from './canned.mjs';
import { fetchNode } from '../fixtures/node-binary.mjs';

const benchDir = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(benchDir, '..', '..');

const WORKLOADS = [
  { key: 'openai-plain', label: 'openai plain', target: 1.05 },
  { key: 'openai-stream', label: 'openai stream', target: 1.03 },
  { key: 'anthropic-stream', label: 'anthropic stream', target: 1.03 },
  { key: 'gemini-stream', label: 'gemini stream', target: 1.03 },
  // Every variant on openai 6 copies, beside OpenTelemetry's instrumentation (not in quick runs).
  { key: 'openai6-plain', label: 'openai 6 plain', target: 1.05, full: true },
  { key: 'openai6-stream', label: 'openai 6 stream', target: 1.03, full: true },
];
const VARIANTS = [
  { key: 'raw-off', label: 'raw SDK, ALS off' },
  { key: 'aa', label: 'raw SDK, A/A copy' },
  { key: 'agent', label: 'agent', targeted: true },
  { key: 'limit', label: 'agent + limit', targeted: true },
  { key: 'wrapper', label: 'minimal wrapper' },
  { key: 'otel', label: 'OpenTelemetry' },
];
const AA_TOLERANCE = 0.02;

const QUICK = process.env.BENCH_QUICK === '1';
const RUN = QUICK
  ? { processes: 2, child: { rounds: 150, warmupRounds: 10, warmupMs: 300, warmupMaxMs: 5000 } }
  : { processes: 5, child: { rounds: 400, warmupRounds: 20, warmupMs: 500, warmupMaxMs: 15_000 } };

// The newest Node of test/helpers.ts's NODE_MATRIX, cached where fetchNode puts it.
const NEWEST_NODE = '24.22.3';

/** This Node, and (unless quick) the newest one, fetched from npm once as test/helpers.ts's fetchNode does. */
function nodes(log) {
  if (QUICK) return [process.execPath];
  try {
    const newest = fetchNode(NEWEST_NODE);
    return newest === process.execPath ? [newest] : [process.execPath, newest];
  } catch (err) {
    log(`  node ${NEWEST_NODE} unavailable (${err.message.split('\n')[0]}): this Node only`);
    return [process.execPath];
  }
}

/** One overhead.mjs process; resolves with its report (the JSON of its last line). */
function child(node, config) {
  return new Promise((resolve, reject) => {
    const proc = spawn(node, [join(benchDir, 'overhead.mjs'), JSON.stringify(config)], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let [stdout, stderr] = ['', ''];
    proc.stdout.on('data', (data) => (stdout += data));
    proc.stderr.on('data', (data) => (stderr += data));
    proc.on('error', reject);
    proc.on('close', (code, signal) => {
      const last = stdout.trim().split('\n').at(-1);
      if (code === 2 && last?.startsWith('{"misbehaved"')) return reject(new AgentMisbehaved(JSON.parse(last).misbehaved));
      if (code !== 0) return reject(new Error(`overhead.mjs on ${node} exited ${code ?? signal}: ${stderr}`));
      resolve(JSON.parse(last));
    });
  });
}

// ---- statistics ----------------------------------------------------------------------------------------------------

const sum = (values) => values.reduce((a, b) => a + b, 0);
const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/** A variant against the baseline in one process: median of the per-round ratios, and ratio of sums. */
function ratios(variant, baseline) {
  return {
    median: median(variant.cpuNs.map((ns, round) => ns / baseline.cpuNs[round])),
    sums: sum(variant.cpuNs) / sum(baseline.cpuNs),
  };
}

/** Across processes: the median and the range of one figure. */
const spread = (values) => ({ mid: median(values), min: Math.min(...values), max: Math.max(...values) });

/** Per workload and variant, the spread over processes of both ratios; and the baseline's CPU µs per call. */
function aggregate(reports, workloads) {
  const table = {};
  for (const { key } of workloads) {
    const runs = reports.map((r) => r.results[key]);
    const baselineUs = spread(runs.map((r) => sum(r.variants.raw.cpuNs) / r.variants.raw.calls / 1000));
    const cells = {};
    for (const { key: v } of VARIANTS) {
      if (runs.some((r) => r.variants[v] === undefined)) continue;
      const per = runs.map((r) => ratios(r.variants[v], r.variants.raw));
      cells[v] = { median: spread(per.map((p) => p.median)), sums: spread(per.map((p) => p.sums)) };
    }
    table[key] = { baselineUs, batch: runs.map((r) => r.batch), cells };
  }
  return table;
}

// ---- printing ------------------------------------------------------------------------------------------------------

const CELL = 24;
const ROW = 20;
const fmt = (s) => `${s.mid.toFixed(3)} (${s.min.toFixed(3)}–${s.max.toFixed(3)})`;
const pct = (ratio) => `${ratio >= 1 ? '+' : ''}${((ratio - 1) * 100).toFixed(1)}%`;

function tableLines(table, workloads, which) {
  const lines = [`  ${''.padEnd(ROW)}${workloads.map((w) => w.label.padEnd(CELL)).join('')}`];
  for (const v of VARIANTS) {
    if (!workloads.some((w) => table[w.key].cells[v.key])) continue;
    const cells = workloads.map((w) => (table[w.key].cells[v.key] ? fmt(table[w.key].cells[v.key][which]) : '—').padEnd(CELL));
    lines.push(`  ${v.label.padEnd(ROW)}${cells.join('')}`);
  }
  return lines;
}

function nodeReport(version, reports, workloads, log) {
  const table = aggregate(reports, workloads);
  const head = `node ${version}, ${reports.length} processes`;
  log(`  ${head}: per process, median over rounds of (variant / raw SDK with ALS on) CPU per call; median (min–max) of processes`);
  for (const line of tableLines(table, workloads, 'median')) log(line);
  log(`  ratio of sums (total CPU over all rounds; keeps every GC and background-compile burst a batch met):`);
  for (const line of tableLines(table, workloads, 'sums')) log(line);
  const baseline = workloads.map((w) => `${w.label} ${table[w.key].baselineUs.mid.toFixed(1)} µs (batch ${median(table[w.key].batch)})`);
  log(`  baseline CPU per call: ${baseline.join(', ')}`);
  const summary = [];
  for (const w of workloads) {
    const { cells } = table[w.key];
    const aa = cells.aa.median.mid;
    const aaOk = Math.abs(aa - 1) <= AA_TOLERANCE;
    const targets = VARIANTS.filter((v) => v.targeted && cells[v.key])
      .map((v) => `${v.label} ${fmt(cells[v.key].median)} (target <= ${w.target.toFixed(2)}) ${cells[v.key].median.mid <= w.target ? 'PASS' : 'OVER'}`)
      .join(', ');
    const als = cells['raw-off'] ? `; ALS on costs ${pct(1 / cells['raw-off'].median.mid)} over ALS off` : '';
    const references = VARIANTS.filter((v) => !v.targeted && v.key !== 'raw-off' && v.key !== 'aa' && cells[v.key])
      .map((v) => `; ${v.label} ${fmt(cells[v.key].median)}`)
      .join('');
    summary.push(
      `${`${w.label} (${version})`.padEnd(34)} ${targets}; A/A drift ${pct(aa)} ${aaOk ? 'OK' : `OVER ±${AA_TOLERANCE * 100}%: figures unreliable`}` +
        `${als}${references}`,
    );
  }
  for (const line of summary) log(`  ${line}`);
  return summary;
}

/** The section: lines for the summary; throws AgentMisbehaved when a child saw the agent meter a call wrong. */
export async function perCallOverhead(log) {
  const only = process.env.BENCH_WORKLOADS?.split(',').map((w) => w.trim());
  const workloads = WORKLOADS.filter((w) => (only === undefined ? !(QUICK && w.full) : only.includes(w.key)));
  const processes = Number(process.env.BENCH_PROCESSES ?? RUN.processes);
  const config = { ...RUN.child, workloads: workloads.map((w) => w.key) };
  const summary = [];
  for (const node of nodes(log)) {
    const reports = [];
    for (let i = 0; i < processes; i++) {
      const started = performance.now();
      reports.push(await child(node, config));
      log(`  ${reports[i].versions.node}: process ${i + 1} of ${processes} done (${((performance.now() - started) / 1000).toFixed(1)} s)`);
    }
    const { versions } = reports[0];
    log(
      `  ${versions.node}: openai ${versions.openai}, @anthropic-ai/sdk ${versions.anthropic}, @google/genai ${versions.genai}; ` +
        `${config.rounds} rounds of ~${RUN.child.batchMs ?? 1.5} ms batches a variant; every agent call metered once, for its tenant, ` +
        `none by the other copies, the limited tenant's reservations all settled` +
        `${workloads.some((w) => w.full) ? ', one OpenTelemetry span per traced call' : ''}: OK`,
    );
    summary.push(...nodeReport(versions.node, reports, workloads, log));
  }
  return summary;
}
