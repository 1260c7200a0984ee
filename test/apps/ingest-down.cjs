// Tracks N events against an ingest that is down for good, and reports the heap after GC (run with --expose-gc).
const { Meter } = require('llm-meter');

async function main() {
  const total = Number(process.argv[2] ?? 1_000_000);
  const meter = new Meter({ url: 'http://127.0.0.1:1/ingest', flushInterval: 20, maxQueueSize: 1000, handleExit: false, onFlushError: () => undefined });
  const heapMb = () => {
    global.gc();
    return process.memoryUsage().heapUsed / 2 ** 20;
  };
  const baseMb = heapMb();
  let peakMb = baseMb;
  for (let i = 0; i < total; i++) {
    meter.trackManually({ provider: 'openai', model: 'gpt-4o', input_tokens: i, output_tokens: 1, tenant_id: `t${i % 100}` });
    if (i % 50_000 === 49_999) {
      await new Promise((r) => setImmediate(r));
      peakMb = Math.max(peakMb, heapMb());
    }
  }
  const stats = meter.stats();
  console.log(JSON.stringify({ baseMb: +baseMb.toFixed(1), peakMb: +peakMb.toFixed(1), stats }));
  process.exit(0);
}
main();
