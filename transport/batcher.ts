import { randomUUID } from 'node:crypto';
import { setTimeout as pause } from 'node:timers/promises';
import type { BoundedQueue } from './queue.js';
import { backoffDelay, DeliveryError, type BackoffOptions } from './retry.js';

/** What a sender did not send of a batch it otherwise delivered, by reason (e.g. `no_customer`): dropped for good. */
export interface SendReport {
  dropped: Record<string, number>;
}

export interface BatchSender<T> {
  /** Should reject promptly once `signal` aborts: the batch is then abandoned, neither sent nor failed. */
  send(batch: readonly T[], idempotencyKey: string, signal: AbortSignal): Promise<SendReport | void>;
}

export interface BatcherOptions<T> {
  flushInterval: number;
  maxBatchSize: number;
  maxQueueSize: number;
  backoff: BackoffOptions;
  onError(err: Error): void;
  /** A batch the receiver is done with, oldest first: sent, or dropped for good. */
  onSettled?(items: readonly T[]): void;
  /** Items dropped for good, by reason (not the queue's overflow). */
  onDropped?(reason: string, n: number): void;
}

/** A batch on its way: it keeps its events and its idempotency key across every retry. */
interface PendingBatch<T> {
  key: string;
  items: T[];
  attempts: number;
}

export interface DeliveryCounts {
  sent: number;
  /** Refused by the receiver for good (a non-retryable 4xx), or left out by the sender (see droppedBy). */
  dropped: number;
  /** `dropped`, and the queue's overflow (`queue_full`), by reason. */
  droppedBy: Record<string, number>;
  retried: number;
  failedBatches: number;
}

/**
 * Moves queued items to a sender in batches: every `flushInterval`, or soon after `maxBatchSize` items are waiting.
 * One send runs at a time. A failed batch is retried as the same batch (same key) with exponential backoff and full
 * jitter, honouring Retry-After up to the backoff maximum, while new items keep queueing behind it; memory stays within
 * `maxQueueSize` items in all. Timers are unref'd: the batcher never keeps a process alive, and nothing it does ever
 * rejects.
 */
export class Batcher<T> {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private pending: PendingBatch<T> | undefined;
  private notBefore = 0;
  private earlyFlushScheduled = false;
  private stopped = false;
  /** The send in flight, abandoned when a drain's deadline passes. */
  private sending: AbortController | undefined;
  readonly counts: DeliveryCounts = { sent: 0, dropped: 0, droppedBy: {}, retried: 0, failedBatches: 0 };

  constructor(
    private readonly queue: BoundedQueue<T>,
    private readonly sender: BatchSender<T>,
    private readonly options: BatcherOptions<T>,
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

  /** No more background sends (a retry already scheduled included); flush() and drainUntil() still send. */
  stop(): void {
    this.stopped = true;
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
  flush(): Promise<void> {
    return this.sendQueued(undefined);
  }

  /**
   * Keeps sending, waiting out backoff, until nothing is left or the deadline passes (shutdown, exit). At the deadline
   * the send in flight is abandoned, its batch kept: this never resolves later than the deadline, whatever the peer does.
   */
  async drainUntil(deadline: number): Promise<void> {
    const cutOff = new AbortController();
    const expired = new Promise<void>((resolve) => cutOff.signal.addEventListener('abort', () => resolve(), { once: true }));
    const timer = setTimeout(() => {
      cutOff.abort();
      this.sending?.abort();
    }, Math.max(0, deadline - Date.now()));
    try {
      while (!cutOff.signal.aborted) {
        await Promise.race([this.sendQueued(cutOff.signal), expired]);
        if (this.undelivered === 0) return;
        await pause(Math.max(this.notBefore - Date.now(), 1), undefined, { signal: cutOff.signal }).catch(() => undefined);
      }
    } finally {
      clearTimeout(timer);
      cutOff.abort();
    }
  }

  /**
   * The process's last moment (exit): hands everything undelivered, oldest first, to a synchronous write, and counts
   * it as sent, or as dropped when the write throws.
   */
  deliverNow(write: (items: readonly T[]) => void): void {
    const items = [...(this.pending?.items ?? []), ...this.queue.take(this.queue.size)];
    this.pending = undefined;
    try {
      write(items);
      this.counts.sent += items.length;
    } catch (err) {
      this.countDropped('write_failed', items.length);
      throw err;
    }
    this.options.onSettled?.(items);
  }

  get dropped(): number {
    return this.queue.dropped + this.counts.dropped;
  }

  /** Every drop so far, by reason. */
  get droppedBy(): Record<string, number> {
    return this.queue.dropped === 0 ? { ...this.counts.droppedBy } : { ...this.counts.droppedBy, queue_full: this.queue.dropped };
  }

  private countDropped(reason: string, n: number): void {
    if (n === 0) return;
    this.counts.dropped += n;
    this.counts.droppedBy[reason] = (this.counts.droppedBy[reason] ?? 0) + n;
    this.options.onDropped?.(reason, n);
  }

  private backgroundFlush(): void {
    if (this.stopped || Date.now() < this.notBefore || this.running !== undefined) return;
    void this.flush();
  }

  /** Sends what is queued, each batch once, after any send already running; none starts once `cutOff` fired. */
  private async sendQueued(cutOff: AbortSignal | undefined): Promise<void> {
    while (this.running !== undefined) await this.running;
    if (cutOff?.aborted === true) return;
    this.running = this.sendAll(cutOff).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async sendAll(cutOff: AbortSignal | undefined): Promise<void> {
    while ((this.pending !== undefined || this.queue.size > 0) && cutOff?.aborted !== true) {
      const batch = (this.pending ??= { key: randomUUID(), items: this.queue.take(this.options.maxBatchSize), attempts: 0 });
      const sending = (this.sending = new AbortController());
      try {
        const report = await this.sender.send(batch.items, batch.key, sending.signal);
        let left = 0;
        if (report) {
          for (const [reason, n] of Object.entries(report.dropped)) {
            this.countDropped(reason, n);
            left += n;
          }
        }
        this.counts.sent += batch.items.length - left;
        this.pending = undefined;
        this.notBefore = 0;
        this.options.onSettled?.(batch.items);
      } catch (err) {
        // Abandoned at a drain's deadline: the batch stays pending, as it was, for a later send or the exit write.
        if (sending.signal.aborted) return;
        const error = err instanceof Error ? err : new Error(String(err));
        this.options.onError(error);
        if (!(error instanceof DeliveryError) || !error.retryable) {
          this.countDropped('rejected', batch.items.length);
          this.counts.failedBatches++;
          this.pending = undefined;
          this.options.onSettled?.(batch.items);
          continue;
        }
        batch.attempts++;
        this.counts.retried++;
        // A server's Retry-After is honoured up to the backoff maximum: a huge one would stall delivery for good.
        const retryAfter = Math.min(error.retryAfterMs ?? 0, this.options.backoff.maxMs);
        const delay = Math.max(retryAfter, backoffDelay(batch.attempts, this.options.backoff));
        this.notBefore = Date.now() + delay;
        const retry = setTimeout(() => this.backgroundFlush(), delay);
        retry.unref();
        return;
      } finally {
        this.sending = undefined;
      }
    }
  }
}
