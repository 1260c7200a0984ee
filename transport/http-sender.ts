import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import { sendRequest } from './http-request.js';
import { DeliveryError, isRetryableStatus, parseRetryAfter } from './retry.js';

const gzipAsync = promisify(gzip);

export type WireFormat = 'json' | 'cloudevents';

export interface HttpSenderOptions {
  url: URL;
  apiKey: string | undefined;
  timeoutMs: number;
  format: WireFormat;
  /** CloudEvents `source`. */
  source: string;
}

interface WireEvent {
  /** 'usage' or 'outcome'. */
  type: string;
  event_id: string;
  tenant_id?: string;
  timestamp: string;
}

/**
 * POSTs one batch as gzip JSON: `{"events":[...]}`, or a CloudEvents 1.0 batch. Compression runs on libuv's thread
 * pool, off the event loop. Failures become a DeliveryError that says whether a retry can help.
 */
export class HttpSender {
  constructor(private readonly options: HttpSenderOptions) {}

  /** `signal` abandons the POST (the batch stays the caller's to send again). */
  async send(events: readonly WireEvent[], idempotencyKey: string, signal?: AbortSignal): Promise<void> {
    const { url, apiKey, timeoutMs, format } = this.options;
    const json = format === 'cloudevents' ? JSON.stringify(events.map((e) => this.cloudEvent(e))) : JSON.stringify({ events });
    const body = await gzipAsync(json);
    const headers: Record<string, string | number> = {
      'content-type': format === 'cloudevents' ? 'application/cloudevents-batch+json' : 'application/json',
      'content-encoding': 'gzip',
      'idempotency-key': idempotencyKey,
    };
    if (apiKey !== undefined) headers.authorization = `Bearer ${apiKey}`;
    let answer;
    try {
      answer = await sendRequest(url, { method: 'POST', headers, body, timeoutMs, signal });
    } catch (err) {
      throw new DeliveryError(`ingest request failed: ${(err as Error).message}`, true);
    }
    const { status } = answer;
    if (status >= 200 && status < 300) return;
    const retryAfter = parseRetryAfter(answer.headers['retry-after'] as string | undefined);
    throw new DeliveryError(`ingest answered HTTP ${status}`, isRetryableStatus(status), status, retryAfter);
  }

  private cloudEvent(event: WireEvent): Record<string, unknown> {
    const ce: Record<string, unknown> = {
      specversion: '1.0',
      id: event.event_id,
      source: this.options.source,
      type: `llm.${event.type}`,
      time: event.timestamp,
      datacontenttype: 'application/json',
      data: event,
    };
    if (event.tenant_id !== undefined) ce.subject = event.tenant_id;
    return ce;
  }
}
