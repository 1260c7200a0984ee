import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

export interface HttpRequestOptions {
  method: string;
  headers: Record<string, string | number>;
  body?: Buffer;
  timeoutMs: number;
}

/**
 * One request of the agent's own over node:http(s) — never the app's global fetch, which an app may patch or mock.
 * Resolves with any status; rejects only when no answer came (network failure, timeout).
 */
export function sendRequest(url: URL, { method, headers, body, timeoutMs }: HttpRequestOptions): Promise<HttpResult> {
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const allHeaders: Record<string, string | number> = { 'user-agent': 'llm-meter', ...headers };
  if (body !== undefined) allHeaders['content-length'] = body.length;
  return new Promise((resolve, reject) => {
    const req = send(url, { method, headers: allHeaders, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(body);
  });
}
