import { Batcher } from '../../transport/batcher.js';
import { waitUntil } from '../../transport/deadline.js';
import { FileSender } from '../../transport/file-sender.js';
import { Outbox, type OutboxCounts } from '../../transport/outbox/outbox.js';
import { BoundedQueue } from '../../transport/queue.js';
import type { ResolvedConfig } from '../config.js';
import type { MeterEvent } from '../event.js';
import type { AgentLog } from '../log.js';
import { displayUrl } from '../option-checks.js';
import { joinExitFlush, leaveExitFlush, type ExitParticipant } from './exit-flush.js';
import type { ResolvedSink } from './sink-options.js';
import { senderFor, sinkLabel, type SinkSender } from './sink-senders.js';

export interface SinkStats {
  type: ResolvedSink['type'];
  /** Not delivered yet: queued, or in the batch being sent. */
  queued: number;
  sent: number;
  /** Never to be delivered: the sum of `droppedBy`. */
  dropped: number;
  /** Drops by reason: `queue_full`, `rejected` (refused for good), `no_customer`, `too_old`, ... */
  droppedBy: Record<string, number>;
  retried: number;
  failedBatches: number;
}

export interface DeliveryStats {
  /** The first sink's figures (the ingest of `url`, else the usage file of `file`, else the first of `sinks`). */
  queued: number;
  sent: number;
  dropped: number;
  retried: number;
  failedBatches: number;
  /** Every sink's figures, by name. */
  sinks: Record<string, SinkStats>;
  /** With an outbox: what it wrote, replayed and could not keep. */
  outbox?: OutboxCounts;
}

/** Events a sink leaves out by design, as the warning (once per sink and reason) says; refusals are reported as errors. */
const UNSENT: Record<string, string> = {
  no_tenant: 'without a tenant',
  no_customer: 'of tenants without a Stripe customer',
  no_subscription: 'of tenants without a Lago subscription',
  too_old: 'older than Stripe accepts (35 days)',
  invalid_value: 'with a value Stripe cannot take',
};

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || host === '::1' || /^127\./.test(host);
}

interface Sink {
  spec: ResolvedSink;
  sender: SinkSender;
  batcher: Batcher<MeterEvent>;
  /** `the ingest`, `Stripe (sink "billing")`. */
  label: string;
}

/**
 * Where events go once recorded: each sink through its own bounded queue and batcher, so one that is down holds up no
 * other. With an outbox, an event reaches the sinks once it is on disk, and is released there once every sink is done
 * with it. Flushed on the process's way out. Once closed, an event is counted as dropped.
 */
export class Delivery {
  private readonly sinks: Sink[] = [];
  private readonly exitParticipant: ExitParticipant;
  private recorded = 0;
  private closed = false;
  /** Events recorded after close(): they reach onEvent, and no sink. */
  private droppedAfterClose = 0;
  private outbox: Outbox<MeterEvent> | undefined;
  /** Events recorded while the outbox opens (and replays): appended to it once open. */
  private beforeOutbox: MeterEvent[] | undefined;
  private readonly outboxOpened: Promise<void> | undefined;

  constructor(
    config: ResolvedConfig,
    private readonly log: AgentLog,
    /** A failed POST or write, its message already free of secrets. */
    onError: (err: Error) => void,
    /** Hands over the calls that ended but are not recorded yet: done before anything delivery holds is read. */
    private readonly recordPending: () => void,
  ) {
    for (const spec of config.sinks) {
      const sender = senderFor(spec, onError);
      const batcher = new Batcher<MeterEvent>(new BoundedQueue<MeterEvent>(spec.queue.maxQueueSize), sender, {
        flushInterval: spec.queue.flushInterval,
        maxBatchSize: spec.queue.maxBatchSize,
        maxQueueSize: spec.queue.maxQueueSize,
        backoff: { baseMs: 200, maxMs: 30_000 },
        onError,
        onSettled: (items) => this.outbox?.ack(spec.name, items[items.length - 1]!),
        onDropped: (reason) => {
          const what = UNSENT[reason];
          if (what !== undefined) log.warnOnce(`unsent:${spec.name}:${reason}`, `${sinkLabel(spec)}: events ${what} are not sent (counted in stats().sinks.${spec.name}.droppedBy.${reason})`);
        },
      });
      batcher.start();
      const sink: Sink = { spec, sender, batcher, label: sinkLabel(spec) };
      this.sinks.push(sink);
      this.announce(sink);
    }
    if (config.outbox !== undefined && this.sinks.length > 0) {
      this.beforeOutbox = [];
      this.outboxOpened = this.openOutbox(config.outbox, onError);
    }
    this.exitParticipant = {
      undelivered: () => {
        recordPending();
        return this.sinks.reduce((n, s) => n + s.batcher.undelivered, 0) + (this.beforeOutbox?.length ?? 0);
      },
      recorded: () => {
        recordPending();
        return this.recorded;
      },
      drain: (deadline) => this.drain(deadline),
      writeNow: () => this.writeNow(),
      shutdownTimeout: config.shutdownTimeout,
    };
    if (this.sinks.length > 0 && config.handleExit) joinExitFlush(this.exitParticipant);
  }

  /** Never rejects: an outbox that cannot be had is reported and disabled, and events go from memory. */
  private async openOutbox(options: NonNullable<ResolvedConfig['outbox']>, onError: (err: Error) => void): Promise<void> {
    const outbox = await Outbox.open<MeterEvent>({
      ...options,
      sinks: this.sinks.map((s) => s.spec.name),
      onWritten: (events) => this.dispatch(events),
      onReplay: (name, events) => {
        const sink = this.sinks.find((s) => s.spec.name === name);
        if (sink !== undefined) for (const event of events) this.offer(sink, event);
      },
      onError,
    });
    this.outbox = outbox;
    const waiting = this.beforeOutbox ?? [];
    this.beforeOutbox = undefined;
    for (const event of waiting) outbox.append(event);
    if (this.closed) await outbox.close();
  }

  add(event: MeterEvent): void {
    this.recorded++;
    if (this.closed) {
      this.droppedAfterClose++;
      return;
    }
    if (this.outbox !== undefined) this.outbox.append(event);
    else if (this.beforeOutbox !== undefined) this.beforeOutbox.push(event);
    else for (const sink of this.sinks) this.offer(sink, event);
  }

  /** Sends what is queued now, each batch once; with an outbox, the sinks' acknowledgements are on disk after it. */
  async flush(): Promise<void> {
    this.recordPending();
    await this.written();
    await Promise.all(this.sinks.map((s) => s.batcher.flush()));
    await this.outbox?.persistAcks();
  }

  /**
   * Delivers what is queued, retrying, until done or the deadline (abandoning a request still in flight then), warns
   * once about what it gave up on, and stops.
   */
  async close(deadline: number): Promise<void> {
    await this.drain(deadline);
    this.closed = true;
    for (const { batcher } of this.sinks) batcher.stop();
    await this.outbox?.close();
    leaveExitFlush(this.exitParticipant);
    this.warnUndelivered(`shutdown gave up after shutdownTimeout (${this.exitParticipant.shutdownTimeout} ms)`);
  }

  stats(): DeliveryStats {
    this.recordPending();
    const sinks: Record<string, SinkStats> = {};
    for (const { spec, batcher } of this.sinks) {
      const { sent, retried, failedBatches } = batcher.counts;
      sinks[spec.name] = { type: spec.type, queued: batcher.undelivered, sent, dropped: batcher.dropped, droppedBy: batcher.droppedBy, retried, failedBatches };
    }
    const primary = this.sinks[0] === undefined ? undefined : sinks[this.sinks[0].spec.name]!;
    const stats: DeliveryStats = {
      queued: primary?.queued ?? 0,
      sent: primary?.sent ?? 0,
      dropped: (primary?.dropped ?? 0) + (primary === undefined ? 0 : this.droppedAfterClose),
      retried: primary?.retried ?? 0,
      failedBatches: primary?.failedBatches ?? 0,
      sinks,
    };
    if (this.outbox !== undefined) stats.outbox = { ...this.outbox.counts };
    return stats;
  }

  /** Events on disk reach every sink that takes them, in order. */
  private dispatch(events: readonly MeterEvent[]): void {
    for (const sink of this.sinks) for (const event of events) this.offer(sink, event);
  }

  /**
   * An event a sink does not take is done for it at once, but only while nothing earlier is outstanding there: the
   * outbox keeps one mark per sink, and a later batch's settlement covers it otherwise.
   */
  private offer(sink: Sink, event: MeterEvent): void {
    if (sink.sender.takes(event)) sink.batcher.add(event);
    else if (sink.batcher.undelivered === 0) this.outbox?.ack(sink.spec.name, event);
  }

  /** Resolves once what was recorded so far is on disk and with the sinks. */
  private async written(): Promise<void> {
    await this.outboxOpened;
    await this.outbox?.settled();
  }

  private async drain(deadline: number): Promise<void> {
    this.recordPending();
    await waitUntil(this.written(), deadline);
    await Promise.all(this.sinks.map((s) => s.batcher.drainUntil(deadline)));
  }

  /** The process's last moment: what the outbox holds goes to disk, the usage files get what they can. */
  private writeNow(): void {
    try {
      this.recordPending();
      // Recorded before the outbox could open: the usage files are their only way out now.
      if (this.beforeOutbox !== undefined) this.dispatch(this.beforeOutbox.splice(0));
      this.outbox?.writeNow();
      for (const { sender, batcher } of this.sinks) {
        if (sender instanceof FileSender) batcher.deliverNow((events) => sender.sendNow(events));
      }
      this.outbox?.closeNow();
    } finally {
      this.warnUndelivered('exiting');
    }
  }

  private announce({ spec, label }: Sink): void {
    const url = 'url' in spec ? spec.url : 'baseUrl' in spec ? spec.baseUrl : undefined;
    this.log.debug(`sink ${spec.name}: delivering to ${url === undefined ? label : displayUrl(url)} every ${spec.queue.flushInterval} ms`);
    if (url !== undefined && url.protocol === 'http:' && !isLoopback(url.hostname)) {
      this.log.warn(`sink ${spec.name}: ${displayUrl(url)} is plain http to another host: usage data and the api key travel unencrypted`);
    }
  }

  private warnUndelivered(occasion: string): void {
    const lost = this.sinks.filter((s) => s.batcher.undelivered > 0).map((s) => `${s.batcher.undelivered} usage event(s) not delivered to ${s.label}`);
    if (lost.length > 0) this.log.warn(`${occasion}: ${lost.join(', ')}${this.outbox === undefined ? '' : ' (kept in the outbox for the next start)'}`);
  }
}
