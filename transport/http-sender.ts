import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { promisify } from 'node:util';
import { gzip } from 'node:zlib';

const gzipAsync = promisify(gzip);

export class IngestHttpError extends Error {
  override name = 'IngestHttpError';
  constructor(readonly status: number) {
    super(`ingest answered HTTP ${status}`);
  }
}

export interface HttpSenderOptions {
  url: URL;
  apiKey: string | undefined;
  timeoutMs: number;
}

/**
 * POSTs a batch as gzip JSON `{"events":[...]}`. Compression runs on libuv's thread pool, off the event loop. Uses
 * node:http rather than global fetch, so an app that patches or mocks fetch never sees (or breaks) the agent's traffic.
 */
export class HttpSender {
  constructor(private readonly options: HttpSenderOptions) {}

  async send(events: readonly unknown[]): Promise<void> {
    const body = await gzipAsync(JSON.stringify({ events }));
    const { url, apiKey, timeoutMs } = this.options;
    const headers: Record<string, string | number> = {
      'content-type': 'application/json',
      'content-encoding': 'gzip',
      'content-length': body.length,
      'user-agent': 'llm-meter',
    };
    if (apiKey !== undefined) headers.authorization = `Bearer ${apiKey}`;
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    await new Promise<void>((resolve, reject) => {
      const req = send(url, { method: 'POST', headers, timeout: timeoutMs }, (res) => {
        res.resume();
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          if (status >= 200 && status < 300) resolve();
          else reject(new IngestHttpError(status));
        });
        res.on('error', reject);
      });
      req.on('timeout', () => req.destroy(new Error(`ingest did not answer within ${timeoutMs} ms`)));
      req.on('error', (err) => reject(new Error(`ingest request failed: ${err.message}`)));
      req.end(body);
    });
  }
}
