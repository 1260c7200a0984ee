import type { BatchSender } from '../../transport/batcher.js';
import { AccountDirectory, type AccountLookup } from '../../transport/billing/account-lookup.js';
import { LagoSender } from '../../transport/billing/lago-sender.js';
import { StripeSender } from '../../transport/billing/stripe-sender.js';
import { FileSender } from '../../transport/file-sender.js';
import { HttpSender } from '../../transport/http-sender.js';
import type { MeterEvent } from '../event.js';
import type { ResolvedSink } from './sink-options.js';

export interface SinkSender extends BatchSender<MeterEvent> {
  /** Whether this sink gets events like this one (a Stripe sink with token meters takes no outcome events). */
  takes(event: MeterEvent): boolean;
}

const takesAll = (): boolean => true;

/** A billing sink's tenant-to-account lookup, cached, each lookup within the sink's request timeout. */
const accounts = (lookup: AccountLookup, field: string, timeoutMs: number): AccountDirectory => new AccountDirectory(lookup, { field, timeoutMs });

/** What the sink is called in warnings: `the ingest`, `Stripe (sink "billing")`. */
export function sinkLabel(sink: ResolvedSink): string {
  const what = { http: 'the ingest', file: 'the usage file', stripe: 'Stripe', openmeter: 'OpenMeter', lago: 'Lago' }[sink.type];
  return sink.name === sink.type ? what : `${what} (sink "${sink.name}")`;
}

/** The sender of a sink; `onRejected` hears of events a billing API refused for good. */
export function senderFor(sink: ResolvedSink, onRejected: (err: Error) => void): SinkSender {
  const timeoutMs = sink.queue.requestTimeout;
  switch (sink.type) {
    case 'http':
    case 'openmeter': {
      const openMeter = sink.type === 'openmeter';
      const sender = new HttpSender({
        url: sink.url,
        apiKey: sink.apiKey,
        timeoutMs,
        format: openMeter ? 'cloudevents' : sink.format,
        cloudEvents: { source: sink.source, subject: sink.subject, types: openMeter ? { usage: sink.eventType, outcome: sink.outcomeEventType } : {} },
        compress: !openMeter,
        receiver: openMeter ? 'OpenMeter' : 'ingest',
      });
      return Object.assign(sender, { takes: takesAll });
    }
    case 'file':
      return Object.assign(new FileSender(sink.path), { takes: takesAll });
    case 'stripe': {
      const { apiKey, baseUrl, api, meters } = sink;
      return new StripeSender({ apiKey, baseUrl, api, meters, customers: accounts(sink.customer, sink.field, timeoutMs), timeoutMs, onRejected });
    }
    case 'lago': {
      const { url, apiKey, code, outcomeCode } = sink;
      return new LagoSender({ url, apiKey, code, outcomeCode, subscriptions: accounts(sink.subscription, sink.field, timeoutMs), timeoutMs, onRejected });
    }
  }
}
