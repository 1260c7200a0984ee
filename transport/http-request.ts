import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { DeliveryError, isRetryableStatus, parseRetryAfter } from './retry.js';

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
  /** Abandons the request: it rejects at once and its connection is destroyed (a caller's own deadline). */
  signal?: AbortSignal;
  /** Once this fires, the request no longer keeps the process alive; it still ends by its own deadline. */
  detach?: AbortSignal;
}

/**
 * One request of the agent's own over node:http(s) — never the app's global fetch, which an app may patch or mock.
 * Resolves with any status; rejects only when no complete answer came (network failure, deadline, abandoned).
 */
export function sendRequest(url: URL, { method, headers, body, timeoutMs, path, signal, detach }: HttpRequestOptions): Promise<HttpResult> {
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const allHeaders: Record<string, string | number> = { 'user-agent': 'llm-meter', ...headers };
  if (body !== undefined) allHeaders['content-length'] = body.length;
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) return reject(new Error('request abandoned before it was sent'));
    const req = send(url, { method, headers: allHeaders, ...(path === undefined ? {} : { path }) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', fail);
      res.on('end', () => {
        settle();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') });
      });
    });
    // A deadline for the whole exchange, not node's idle-socket `timeout`: a server that trickles bytes resets that.
    const deadline = setTimeout(() => stop(new Error(`no complete answer within ${timeoutMs} ms`)), timeoutMs);
    deadline.unref();
    const abandon = (): void => stop(new Error("request abandoned at its caller's deadline"));
    const release = (): void => void req.socket?.unref();
    const settle = (): void => {
      clearTimeout(deadline);
      signal?.removeEventListener('abort', abandon);
      detach?.removeEventListener('abort', release);
    };
    const fail = (err: Error): void => {
      settle();
      reject(err);
    };
    const stop = (err: Error): void => {
      fail(err);
      req.destroy(err);
    };
    signal?.addEventListener('abort', abandon, { once: true });
    detach?.addEventListener('abort', release, { once: true });
    // A kept-alive socket is ref'd again when reused: a request detached already unrefs whichever socket it gets.
    req.on('socket', (socket) => {
      if (detach?.aborted === true) socket.unref();
    });
    req.on('error', fail);
    req.end(body);
  });
}

/** A POST whose answer matters only by its status: a 2xx resolves, anything else is a DeliveryError naming `receiver`. */
export async function post(receiver: string, url: URL, options: Omit<HttpRequestOptions, 'method'>): Promise<void> {
  let answer;
  try {
    answer = await sendRequest(url, { method: 'POST', ...options });
  } catch (err) {
    throw new DeliveryError(`${receiver} request failed: ${(err as Error).message}`, true);
  }
  const { status } = answer;
  if (status >= 200 && status < 300) return;
  const retryAfter = parseRetryAfter(answer.headers['retry-after'] as string | undefined);
  throw new DeliveryError(`${receiver} answered HTTP ${status}`, isRetryableStatus(status), status, retryAfter, answer.text.slice(0, 65_536));
}
