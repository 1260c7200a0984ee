import { requestIdOf, type Observation } from './observe.js';
import type { ResponseFacts } from './provider.js';
import { settleWhenAbandoned } from './stream.js';

/** A JSON body larger than this is passed on unread: no usage object is that large. */
const MAX_JSON_BODY_BYTES = 16 * 1024 * 1024;

/** Reads the facts of a body from its bytes, as they pass: server-sent events one by one, anything else at its end. */
class BodyReader {
  private readonly decoder = new TextDecoder();
  private readonly sse: boolean;
  private pending = '';
  private readonly chunks: Uint8Array[] = [];
  private size = 0;
  readonly facts: ResponseFacts = {};

  constructor(
    private readonly o: Observation,
    contentType: string,
  ) {
    this.sse = contentType.includes('text/event-stream');
  }

  push(bytes: Uint8Array): void {
    if (!this.sse) {
      this.size += bytes.byteLength;
      if (this.size <= MAX_JSON_BODY_BYTES) this.chunks.push(bytes);
      return;
    }
    this.pending += this.decoder.decode(bytes, { stream: true });
    const blocks = this.pending.split(/\r?\n\r?\n/);
    this.pending = blocks.pop() ?? '';
    for (const block of blocks) this.readEvent(block);
  }

  end(): ResponseFacts {
    if (this.sse) {
      this.readEvent(this.pending + this.decoder.decode());
      return this.facts;
    }
    if (this.size > MAX_JSON_BODY_BYTES) return this.facts;
    const text = Buffer.concat(this.chunks).toString('utf8');
    let data: unknown = text;
    try {
      data = JSON.parse(text);
    } catch {
      // A body that is not JSON is read as text.
    }
    return Object.assign(this.facts, this.o.target.readResponse(data, this.o.args));
  }

  private readEvent(block: string): void {
    const readItem = this.o.target.readStreamItem;
    if (readItem === undefined) return;
    const data = block
      .split(/\r?\n/)
      .filter((line) => line.startsWith('data:'))
      .map((line) => line.slice(line.startsWith('data: ') ? 6 : 5))
      .join('\n');
    if (data === '' || data === '[DONE]') return;
    let item: unknown;
    try {
      item = JSON.parse(data);
    } catch {
      return;
    }
    readItem(item, this.facts, false);
  }
}

/**
 * Meters a call whose caller takes the raw `Response` (`asResponse()`): the caller gets a Response like the SDK's whose
 * body is the SDK's own, read through the agent as the caller reads it (nothing read ahead, nothing buffered for the
 * caller), and a caller who cancels its body cancels the SDK's, so the request stops.
 */
export function meteredResponse(response: Response, o: Observation): Response {
  const requestId = requestIdOf(response, o.requestIdHeader);
  const source = response.body;
  if (!response.ok || source === null) {
    o.call.finish(response.ok ? { ...o.target.readResponse(undefined, o.args), requestId } : { error: { name: 'APIError', status: response.status }, requestId });
    return response;
  }
  const reader = source.getReader();
  const body = new BodyReader(o, response.headers.get('content-type') ?? '');
  const read = (step: (b: BodyReader) => void): void => {
    try {
      step(body);
    } catch (fault) {
      o.call.fault(fault);
    }
  };
  const stream = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        let chunk: Awaited<ReturnType<typeof reader.read>>;
        try {
          chunk = await reader.read();
        } catch (err) {
          o.call.finishInBackground({ ...body.facts, error: err, requestId, partial: body.facts.complete !== true });
          controller.error(err);
          return;
        }
        if (chunk.done) {
          read((b) => b.end());
          o.call.finishInBackground({ ...body.facts, requestId, partial: body.facts.usage === undefined });
          controller.close();
          return;
        }
        read((b) => b.push(chunk.value));
        controller.enqueue(chunk.value);
      },
      cancel(reason) {
        o.call.finishInBackground({ ...body.facts, requestId, partial: body.facts.complete !== true });
        return reader.cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
  const metered = new Response(stream, { status: response.status, statusText: response.statusText, headers: response.headers });
  for (const key of ['url', 'redirected', 'type'] as const) Object.defineProperty(metered, key, { value: response[key], enumerable: true });
  settleWhenAbandoned(metered, o.call, requestId);
  return metered;
}
