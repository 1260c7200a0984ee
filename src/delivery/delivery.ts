import { hostname } from 'node:os';
import { Batcher, type BatchSender } from '../../transport/batcher.js';
import { FileSender } from '../../transport/file-sender.js';
import { HttpSender } from '../../transport/http-sender.js';
import { BoundedQueue } from '../../transport/queue.js';
import { displayUrl, type ResolvedConfig } from '../config.js';
import type { MeterEvent } from '../event.js';
import { joinExitFlush, leaveExitFlush, type ExitParticipant } from './exit-flush.js';
import type { AgentLog } from '../log.js';

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

/** Where events go, and how an event that never got there is told in a warning. */
interface Destination {
  batcher: Batcher<MeterEvent>;
  /** `3 usage event(s) ${notDone}` */
  notDone: string;
}

/**
 * Where events go once recorded: the ingest (when `url` is set) and the usage file (when `file` is set), each through
 * its own bounded queue and batcher, flushed on the process's way out. Once closed, an event is counted as dropped.
 */
export class Delivery {
  private readonly destinations: Destination[] = [];
  private readonly usageFile: { sender: FileSender; batcher: Batcher<MeterEvent> } | undefined;
  private readonly exitParticipant: ExitParticipant;
  private recorded = 0;
  private closed = false;
  /** Events recorded after close(): they reach onEvent, and no destination. */
  private droppedAfterClose = 0;

  constructor(
    config: ResolvedConfig,
    private readonly log: AgentLog,
    /** A failed POST or write, its message already free of secrets. */
    onError: (err: Error) => void,
    /** Hands over the calls that ended but are not recorded yet: done before anything delivery holds is read. */
    private readonly recordPending: () => void,
  ) {
    const { url, file } = config;
    const open = (sender: BatchSender<MeterEvent>, notDone: string): Batcher<MeterEvent> => {
      const batcher = new Batcher<MeterEvent>(new BoundedQueue<MeterEvent>(config.maxQueueSize), sender, {
        flushInterval: config.flushInterval,
        maxBatchSize: config.maxBatchSize,
        maxQueueSize: config.maxQueueSize,
        backoff: { baseMs: 200, maxMs: 30_000 },
        onError,
      });
      batcher.start();
      this.destinations.push({ batcher, notDone });
      return batcher;
    };
    if (url !== undefined) {
      const source = `//llm-meter/${hostname()}/${process.pid}`;
      open(new HttpSender({ url, apiKey: config.apiKey, timeoutMs: config.requestTimeout, format: config.format, source }), 'not delivered to the ingest');
      log.debug(`delivering to ${displayUrl(url)} every ${config.flushInterval} ms`);
      if (url.protocol === 'http:' && !isLoopback(url.hostname)) {
        log.warn(`url ${displayUrl(url)} is plain http to another host: usage data and the api key travel unencrypted`);
      }
    }
    if (file !== undefined) {
      const sender = new FileSender(file);
      this.usageFile = { sender, batcher: open(sender, 'written to the usage file') };
    }
    this.exitParticipant = {
      undelivered: () => {
        recordPending();
        return this.destinations.reduce((n, d) => n + d.batcher.undelivered, 0);
      },
      recorded: () => {
        recordPending();
        return this.recorded;
      },
      drain: (deadline) => this.drain(deadline),
      writeNow: () => {
        try {
          recordPending();
          this.usageFile?.batcher.deliverNow((events) => this.usageFile?.sender.sendNow(events));
        } finally {
          this.warnUndelivered('exiting');
        }
      },
      shutdownTimeout: config.shutdownTimeout,
    };
    if (this.destinations.length > 0 && config.handleExit) joinExitFlush(this.exitParticipant);
  }

  add(event: MeterEvent): void {
    this.recorded++;
    if (this.closed) {
      this.droppedAfterClose++;
      return;
    }
    for (const { batcher } of this.destinations) batcher.add(event);
  }

  /** Sends what is queued now, each batch once. */
  async flush(): Promise<void> {
    this.recordPending();
    await Promise.all(this.destinations.map((d) => d.batcher.flush()));
  }

  /**
   * Delivers what is queued, retrying, until done or the deadline (abandoning a request still in flight then), warns
   * once about what it gave up on, and stops.
   */
  async close(deadline: number): Promise<void> {
    await this.drain(deadline);
    this.closed = true;
    for (const { batcher } of this.destinations) batcher.stop();
    leaveExitFlush(this.exitParticipant);
    this.warnUndelivered(`shutdown gave up after shutdownTimeout (${this.exitParticipant.shutdownTimeout} ms)`);
  }

  /** Of the ingest, or of the usage file when there is no url; zeros when events go to neither. */
  stats(): DeliveryStats {
    this.recordPending();
    const primary = this.destinations[0]?.batcher;
    if (primary === undefined) return { queued: 0, sent: 0, dropped: 0, retried: 0, failedBatches: 0 };
    const { sent, retried, failedBatches } = primary.counts;
    return { queued: primary.undelivered, sent, dropped: primary.dropped + this.droppedAfterClose, retried, failedBatches };
  }

  private async drain(deadline: number): Promise<void> {
    this.recordPending();
    await Promise.all(this.destinations.map((d) => d.batcher.drainUntil(deadline)));
  }

  private warnUndelivered(occasion: string): void {
    const lost = this.destinations.filter((d) => d.batcher.undelivered > 0).map((d) => `${d.batcher.undelivered} usage event(s) ${d.notDone}`);
    if (lost.length > 0) this.log.warn(`${occasion}: ${lost.join(', ')}`);
  }
}
