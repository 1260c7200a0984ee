import { randomUUID } from 'node:crypto';
import type { BoundedQueue } from './queue.js';
import { backoffDelay, DeliveryError, type BackoffOptions } from './retry.js';

export interface BatchSender<T> {
  send(batch: readonly T[], idempotencyKey: string): Promise<void>;
}

export interface BatcherOptions {
  flushInterval: number;
  maxBatchSize: number;
  maxQueueSize: number;
  backoff: BackoffOptions;
  onError(err: Error): void;
}

/** A batch on its way: it keeps its events and its idempotency key across every retry. */
interface PendingBatch<T> {
  key: string;
  items: T[];
  attempts: number;
}

export interface DeliveryCounts {
  sent: number;
  /** Dropped: pushed out of a full queue, or refused by the server for good (a non-retryable 4xx). */
  dropped: number;
  retried: number;
  failedBatches: number;
}

const sleep = (ms: number, keepAlive: boolean): Promise<void> =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    if (!keepAlive) timer.unref();
  });

/**
 * Moves queued items to a sender in batches: every `flushInterval`, or soon after `maxBatchSize` items are waiting.
 * One send runs at a time. A failed batch is retried as the same batch (same key) with exponential backoff and full
 * jitter, honouring Retry-After, while new items keep queueing behind it; memory stays within `maxQueueSize` items in
 * all. Timers are unref'd: the batcher never keeps a process alive, and nothing it does ever rejects.
 */
export class Batcher<T> {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private pending: PendingBatch<T> | undefined;
  private notBefore = 0;
  private earlyFlushScheduled = false;
  readonly counts: DeliveryCounts = { sent: 0, dropped: 0, retried: 0, failedBatches: 0 };

  constructor(
    private readonly queue: BoundedQueue<T>,
    private readonly sender: BatchSender<T>,
    private readonly options: BatcherOptions,
  ) {}

  /** Items not delivered yet: queued, or in the batch being sent. */
  get undelivered(): number {
    return this.queue.size + (this.pending?.items.length ?? 0);
  }

  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => this.backgroundFlush(), this.options.flushInterval);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  add(item: T): void {
    this.queue.push(item);
    while (this.undelivered > this.options.maxQueueSize) this.queue.dropOldest();
    if (this.queue.size >= this.options.maxBatchSize && !this.earlyFlushScheduled) {
      this.earlyFlushScheduled = true;
      setImmediate(() => {
        this.earlyFlushScheduled = false;
        this.backgroundFlush();
      }).unref();
    }
  }

  /** Sends what is queued now, each batch once; resolves when done or when a batch failed (never rejects). */
  async flush(): Promise<void> {
    while (this.running !== undefined) await this.running;
    this.running = this.sendAll().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** Keeps sending, waiting out backoff, until nothing is left or the deadline passes (shutdown, exit). */
  async drainUntil(deadline: number): Promise<void> {
    for (;;) {
      await this.flush();
      if (this.undelivered === 0) return;
      const now = Date.now();
      if (now >= deadline) return;
      await sleep(Math.min(Math.max(this.notBefore - now, 1), deadline - now), true);
    }
  }

  /** Removes and returns everything undelivered, oldest first (for a last synchronous write at exit). */
  takeAll(): T[] {
    const items = [...(this.pending?.items ?? []), ...this.queue.take(this.queue.size)];
    this.pending = undefined;
    return items;
  }

  get dropped(): number {
    return this.queue.dropped + this.counts.dropped;
  }

  private backgroundFlush(): void {
    if (Date.now() < this.notBefore || this.running !== undefined) return;
    void this.flush();
  }

  private async sendAll(): Promise<void> {
    while (this.pending !== undefined || this.queue.size > 0) {
      const batch = (this.pending ??= { key: randomUUID(), items: this.queue.take(this.options.maxBatchSize), attempts: 0 });
      try {
        await this.sender.send(batch.items, batch.key);
        this.counts.sent += batch.items.length;
        this.pending = undefined;
        this.notBefore = 0;
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        this.options.onError(error);
        if (!(error instanceof DeliveryError) || !error.retryable) {
          this.counts.dropped += batch.items.length;
          this.counts.failedBatches++;
          this.pending = undefined;
          continue;
        }
        batch.attempts++;
        this.counts.retried++;
        const delay = Math.max(error.retryAfterMs ?? 0, backoffDelay(batch.attempts, this.options.backoff));
        this.notBefore = Date.now() + delay;
        sleep(delay, false).then(() => this.backgroundFlush(), () => undefined);
        return;
      }
    }
  }
}
