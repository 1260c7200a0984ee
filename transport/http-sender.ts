import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
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
  event_id: string;
  tenant_id?: string;
  timestamp: string;
}

/**
 * POSTs one batch as gzip JSON: `{"events":[...]}`, or a CloudEvents 1.0 batch. Compression runs on libuv's thread
 * pool, off the event loop. Uses node:http rather than global fetch, so an app that patches or mocks fetch never sees
 * (or breaks) the agent's own traffic. Failures become a DeliveryError that says whether a retry can help.
 */
export class HttpSender {
  constructor(private readonly options: HttpSenderOptions) {}

  async send(events: readonly WireEvent[], idempotencyKey: string): Promise<void> {
    const { url, apiKey, timeoutMs, format } = this.options;
    const json = format === 'cloudevents' ? JSON.stringify(events.map((e) => this.cloudEvent(e))) : JSON.stringify({ events });
    const body = await gzipAsync(json);
    const headers: Record<string, string | number> = {
      'content-type': format === 'cloudevents' ? 'application/cloudevents-batch+json' : 'application/json',
      'content-encoding': 'gzip',
      'content-length': body.length,
      'idempotency-key': idempotencyKey,
      'user-agent': 'llm-meter',
    };
    if (apiKey !== undefined) headers.authorization = `Bearer ${apiKey}`;
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    await new Promise<void>((resolve, reject) => {
      const req = send(url, { method: 'POST', headers, timeout: timeoutMs }, (res) => {
        res.resume();
        res.on('error', (err) => reject(new DeliveryError(`ingest response failed: ${err.message}`, true)));
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) return resolve();
          const retryAfter = parseRetryAfter(res.headers['retry-after'] as string | undefined);
          reject(new DeliveryError(`ingest answered HTTP ${status}`, isRetryableStatus(status), status, retryAfter));
        });
      });
      req.on('timeout', () => req.destroy(new DeliveryError(`ingest did not answer within ${timeoutMs} ms`, true)));
      req.on('error', (err) => reject(err instanceof DeliveryError ? err : new DeliveryError(`ingest request failed: ${err.message}`, true)));
      req.end(body);
    });
  }

  private cloudEvent(event: WireEvent): Record<string, unknown> {
    const ce: Record<string, unknown> = {
      specversion: '1.0',
      id: event.event_id,
      source: this.options.source,
      type: 'llm.usage',
      time: event.timestamp,
      datacontenttype: 'application/json',
      data: event,
    };
    if (event.tenant_id !== undefined) ce.subject = event.tenant_id;
    return ce;
  }
}
