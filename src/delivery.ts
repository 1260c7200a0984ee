import { hostname } from 'node:os';
import { Batcher, type BatchSender } from '../transport/batcher.js';
import { FileSender } from '../transport/file-sender.js';
import { HttpSender } from '../transport/http-sender.js';
import { BoundedQueue } from '../transport/queue.js';
import { displayUrl, type ResolvedConfig } from './config.js';
import type { UsageEvent } from './event.js';
import { joinExitFlush, leaveExitFlush, type ExitParticipant } from './exit-flush.js';
import type { AgentLog } from './log.js';

export interface DeliveryStats {
  queued: number;
  sent: number;
  dropped: number;
  retried: number;
  failedBatches: number;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || host === '::1' || /^127\./.test(host);
}

/**
 * Where events go once recorded: the ingest (when `url` is set) and the usage file (when `file` is set), each through
 * its own bounded queue and batcher, flushed on the process's way out.
 */
export class Delivery {
  private readonly batchers: Batcher<UsageEvent>[] = [];
  private readonly usageFile: { sender: FileSender; batcher: Batcher<UsageEvent> } | undefined;
  private readonly exitParticipant: ExitParticipant;
  private recorded = 0;

  constructor(
    config: ResolvedConfig,
    log: AgentLog,
    /** A failed POST or write, its message already free of secrets. */
    onError: (err: Error) => void,
  ) {
    const { url, file } = config;
    const open = (sender: BatchSender<UsageEvent>): Batcher<UsageEvent> => {
      const batcher = new Batcher<UsageEvent>(new BoundedQueue<UsageEvent>(config.maxQueueSize), sender, {
        flushInterval: config.flushInterval,
        maxBatchSize: config.maxBatchSize,
        maxQueueSize: config.maxQueueSize,
        backoff: { baseMs: 200, maxMs: 30_000 },
        onError,
      });
      batcher.start();
      this.batchers.push(batcher);
      return batcher;
    };
    if (url !== undefined) {
      const source = `//llm-meter/${hostname()}/${process.pid}`;
      open(new HttpSender({ url, apiKey: config.apiKey, timeoutMs: config.requestTimeout, format: config.format, source }));
      log.debug(`delivering to ${displayUrl(url)} every ${config.flushInterval} ms`);
      if (url.protocol === 'http:' && !isLoopback(url.hostname)) {
        log.warn(`url ${displayUrl(url)} is plain http to another host: usage data and the api key travel unencrypted`);
      }
    }
    if (file !== undefined) {
      const sender = new FileSender(file);
      this.usageFile = { sender, batcher: open(sender) };
    }
    this.exitParticipant = {
      undelivered: () => this.batchers.reduce((n, b) => n + b.undelivered, 0),
      recorded: () => this.recorded,
      drain: (deadline) => this.drain(deadline),
      writeNow: () => this.usageFile?.sender.sendNow(this.usageFile.batcher.takeAll()),
      shutdownTimeout: config.shutdownTimeout,
    };
    if (this.batchers.length > 0 && config.handleExit) joinExitFlush(this.exitParticipant);
  }

  add(event: UsageEvent): void {
    this.recorded++;
    for (const batcher of this.batchers) batcher.add(event);
  }

  /** Sends what is queued now, each batch once. */
  async flush(): Promise<void> {
    await Promise.all(this.batchers.map((b) => b.flush()));
  }

  /** Delivers what is queued, retrying, until done or the deadline; then stops the timers. */
  async close(deadline: number): Promise<void> {
    await this.drain(deadline);
    for (const batcher of this.batchers) batcher.stop();
    leaveExitFlush(this.exitParticipant);
  }

  /** Of the ingest, or of the usage file when there is no url. */
  stats(): DeliveryStats {
    const primary = this.batchers[0];
    if (primary === undefined) return { queued: 0, sent: 0, dropped: 0, retried: 0, failedBatches: 0 };
    const { sent, retried, failedBatches } = primary.counts;
    return { queued: primary.undelivered, sent, dropped: primary.dropped, retried, failedBatches };
  }

  private async drain(deadline: number): Promise<void> {
    await Promise.all(this.batchers.map((b) => b.drainUntil(deadline)));
  }
}
