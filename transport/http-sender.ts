import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { toCloudEvent, type CloudEventNaming, type WireEvent } from './cloudevents.js';
import { post } from './http-request.js';

const gzipAsync = promisify(gzip);

export type WireFormat = 'json' | 'cloudevents';

export interface HttpSenderOptions {
  url: URL;
  /** Sent as `Authorization: Bearer <apiKey>`. */
  apiKey: string | undefined;
  timeoutMs: number;
  format: WireFormat;
  /** How events are named as CloudEvents (format 'cloudevents'). */
  cloudEvents: CloudEventNaming;
  /** Gzip the body (off the event loop, on libuv's thread pool). */
  compress: boolean;
  /** Names the receiver in error messages: 'ingest', 'OpenMeter'. */
  receiver: string;
}

/**
 * POSTs one batch as JSON: `{"events":[...]}`, or a CloudEvents 1.0 batch. Failures become a DeliveryError that says
 * whether a retry can help.
 */
export class HttpSender {
  constructor(private readonly options: HttpSenderOptions) {}

  /** `signal` abandons the POST (the batch stays the caller's to send again). */
  async send(events: readonly WireEvent[], idempotencyKey: string, signal?: AbortSignal): Promise<void> {
    const { url, apiKey, timeoutMs, format, cloudEvents, compress, receiver } = this.options;
    const json = format === 'cloudevents' ? JSON.stringify(events.map((e) => toCloudEvent(e, cloudEvents))) : JSON.stringify({ events });
    const body = compress ? await gzipAsync(json) : Buffer.from(json);
    const headers: Record<string, string | number> = {
      'content-type': format === 'cloudevents' ? 'application/cloudevents-batch+json' : 'application/json',
      'idempotency-key': idempotencyKey,
    };
    if (compress) headers['content-encoding'] = 'gzip';
    if (apiKey !== undefined) headers.authorization = `Bearer ${apiKey}`;
    await post(receiver, url, { headers, body, timeoutMs, signal });
  }
}
