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
  /** The whole exchange, from connecting to the answer's last byte, must end within this many ms. */
  timeoutMs: number;
  /** The request target (path and query) sent exactly as given instead of the url's, never normalised on the way. */
  path?: string;
}

/**
 * One request of the agent's own over node:http(s) — never the app's global fetch, which an app may patch or mock.
 * Resolves with any status; rejects only when no complete answer came (network failure, deadline).
 */
export function sendRequest(url: URL, { method, headers, body, timeoutMs, path }: HttpRequestOptions): Promise<HttpResult> {
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const allHeaders: Record<string, string | number> = { 'user-agent': 'llm-meter', ...headers };
  if (body !== undefined) allHeaders['content-length'] = body.length;
  return new Promise((resolve, reject) => {
    const fail = (err: Error): void => {
      clearTimeout(deadline);
      reject(err);
    };
    const req = send(url, { method, headers: allHeaders, ...(path === undefined ? {} : { path }) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', fail);
      res.on('end', () => {
        clearTimeout(deadline);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') });
      });
    });
    // A deadline for the whole exchange, not node's idle-socket `timeout`: a server that trickles bytes resets that.
    const deadline = setTimeout(() => {
      const err = new Error(`no complete answer within ${timeoutMs} ms`);
      reject(err);
      req.destroy(err);
    }, timeoutMs);
    deadline.unref();
    req.on('error', fail);
    req.end(body);
  });
}
