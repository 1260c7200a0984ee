// A child of the bench (run.mjs), started with --expose-gc: tracks N events through the agent's whole delivery path
// (queue of QUEUE events, batching, JSON, gzip, HTTP POST) to the ingest at URL, as fast as the queue allows; prints one
// JSON line: the wall ms from the first event tracked to the end of shutdown() (every event acknowledged by the
// ingest), the delivery stats, and, with `heap`, the heap after a full GC before, at every chunk (peak, and the most
// events queued then) and after.
//
//   node --expose-gc test/bench/delivery.mjs URL N QUEUE [heap]
//
// The producer yields a turn every chunk, and waits while the queue could not take another chunk: the queue is the
// agent's bound, and an overflow would be the bench outrunning it, not the agent losing events. With `heap` the
// forced GCs run inside the clock, so that run's time is no throughput figure (run.mjs times a run without).
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const requireFromRepo = createRequire(join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'package.json'));
const { Meter } = requireFromRepo('llm-meter');

const [url, total, maxQueueSize, mode] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4]), process.argv[5]];
const CHUNK = 5_000;
const sampleHeap = mode === 'heap';

const heapMb = () => {
  global.gc();
  return process.memoryUsage().heapUsed / 2 ** 20;
};

// shutdownTimeout: time enough to drain a full queue on a slow machine (the default 5 s is about the app's exit).
const meter = new Meter({ url, maxBatchSize: 500, maxQueueSize, flushInterval: 50, handleExit: false, shutdownTimeout: 60_000 });
const baseMb = sampleHeap ? heapMb() : 0;
let peakMb = baseMb;
let maxQueued = 0;
const start = performance.now();
for (let i = 0; i < total; i++) {
  meter.trackManually({ provider: 'openai', model: 'gpt-4o', input_tokens: i, output_tokens: 10, tenant_id: 't' + (i % 100) });
  if (i % CHUNK === CHUNK - 1) {
    // A turn of the event loop, so that the batcher's early flush and the sends in flight move on.
    await nextTurn();
    if (sampleHeap) {
      peakMb = Math.max(peakMb, heapMb());
      maxQueued = Math.max(maxQueued, meter.stats().queued);
    }
    while (meter.stats().queued > maxQueueSize - CHUNK) await sleep(1);
  }
}
await meter.shutdown();
const ms = performance.now() - start;
const endMb = sampleHeap ? heapMb() : 0;
console.log(JSON.stringify({ ms, stats: meter.stats(), ...(sampleHeap ? { baseMb, peakMb, endMb, maxQueued } : {}) }));
