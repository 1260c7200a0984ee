import type { BoundedQueue } from './queue.js';

export interface BatchSender<T> {
  send(batch: readonly T[]): Promise<void>;
}

export interface BatcherOptions {
  flushInterval: number;
  maxBatchSize: number;
  onError(err: Error): void;
}

/**
 * Moves queued items to a sender in batches: every `flushInterval`, or soon after `maxBatchSize` items are waiting.
 * One flush runs at a time; a failed batch goes back to the front of the queue for the next flush. The timer is
 * unref'd: the batcher never keeps a process alive, and nothing it does ever rejects.
 */
export class Batcher<T> {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private earlyFlushScheduled = false;
  /** Items taken from the queue for a POST that has not settled yet. */
  inFlight = 0;

  constructor(
    private readonly queue: BoundedQueue<T>,
    private readonly sender: BatchSender<T>,
    private readonly options: BatcherOptions,
  ) {}

  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => void this.flush(), this.options.flushInterval);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  add(item: T): void {
    this.queue.push(item);
    if (this.queue.size >= this.options.maxBatchSize && !this.earlyFlushScheduled && this.running === undefined) {
      this.earlyFlushScheduled = true;
      setImmediate(() => {
        this.earlyFlushScheduled = false;
        void this.flush();
      }).unref();
    }
  }

  /** Sends everything queued now; resolves when done or when a batch failed (never rejects). */
  flush(): Promise<void> {
    this.running ??= this.drain().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async drain(): Promise<void> {
    while (this.queue.size > 0) {
      const batch = this.queue.take(this.options.maxBatchSize);
      this.inFlight = batch.length;
      try {
        await this.sender.send(batch);
      } catch (err) {
        this.queue.requeueFront(batch);
        this.options.onError(err instanceof Error ? err : new Error(String(err)));
        return;
      } finally {
        this.inFlight = 0;
      }
    }
  }
}
