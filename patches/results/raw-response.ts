import { reportedCostHeader, requestIdOf, type Observation } from './observe.js';
import { outcomeOf, type ResponseFacts } from '../provider.js';
import { settleWhenAbandoned } from './stream.js';
import { replaceOnInstance } from '../calls/wrap-method.js';

/** A JSON body larger than this is passed on unread: no usage object is that large. */
const MAX_JSON_BODY_BYTES = 16 * 1024 * 1024;

/** Reads the facts of a body from its bytes, as they pass: server-sent events one by one, anything else at its end. */
class BodyReader {
  private readonly decoder = new TextDecoder();
  readonly sse: boolean;
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

  /** The whole body at once, as a body method resolved it. */
  readWhole(body: { text: string } | { json: unknown } | { bytes: ArrayBuffer | Uint8Array }): void {
    if ('json' in body) {
      Object.assign(this.facts, this.o.target.readResponse(body.json, this.o.args));
      return;
    }
    this.push('text' in body ? new TextEncoder().encode(body.text) : body.bytes instanceof Uint8Array ? body.bytes : new Uint8Array(body.bytes));
    this.end();
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

/** The body methods that read it whole, by what they resolve to. */
const WHOLE_BODY_READS = { text: 'text', json: 'json', arrayBuffer: 'bytes', bytes: 'bytes' } as const;

/**
 * Meters a call whose caller takes the raw `Response` (`asResponse()`), as the response is read, whoever reads it (the
 * caller, or the SDK parsing it later): the caller keeps the SDK's own Response object, nothing is read ahead, and a
 * caller who cancels the body cancels the SDK's, so the request stops. `body` is the SDK's body seen through the agent,
 * taken from it only once someone reads; `text()`, `json()`, `arrayBuffer()` and `bytes()` are the Response's own,
 * observed when they resolve.
 */
export function meterRawResponse(response: Response, o: Observation): void {
  const requestId = requestIdOf(response, o.requestIdHeader);
  if (!response.ok) {
    o.call.finish({ error: { name: 'APIError', status: response.status }, requestId });
    return;
  }
  const source = response.body;
  const reader = new BodyReader(o, response.headers.get('content-type') ?? '');
  const finish = (step: (b: BodyReader) => void, partial?: boolean, error?: unknown): void => {
    try {
      step(reader);
    } catch (fault) {
      o.call.fault(fault);
    }
    if (!reader.sse) reader.facts.reportedCostUsd ??= reportedCostHeader(response, o.call);
    const outcome = outcomeOf(reader.facts, requestId);
    outcome.partial = partial ?? outcome.usage === undefined;
    if (error !== undefined) outcome.error = error;
    o.call.finishInBackground(outcome);
  };
  if (isNodeReadable(source)) {
    // node-fetch (openai 4's default on Node): a Node stream, read by the SDK's own body methods too.
    meterNodeBodyInPlace(source, reader, finish, () => o.call.done);
  } else if (source !== null) {
    let metered: ReadableStream<Uint8Array> | undefined;
    Object.defineProperty(response, 'body', { configurable: true, enumerable: true, get: () => (metered ??= meteredBody(source, reader, finish)) });
  }
  for (const [method, read] of Object.entries(WHOLE_BODY_READS)) {
    const original = (response as unknown as Record<string, unknown>)[method];
    if (typeof original !== 'function') continue;
    replaceOnInstance(response, method, function meteredRead(this: Response, ...args: unknown[]) {
      return (Reflect.apply(original, this, args) as Promise<unknown>).then((value) => {
        if (!o.call.done) finish((b) => b.readWhole(read === 'json' ? { json: value } : read === 'text' ? { text: value as string } : { bytes: value as ArrayBuffer }));
        return value;
      });
    });
  }
  settleWhenAbandoned(response, o.call, requestId);
}

type Finish = (step: (b: BodyReader) => void, partial?: boolean, error?: unknown) => void;

/** The parts of a Node `Readable` (node-fetch's `Response.body`) the agent relies on. */
interface NodeReadableLike {
  pipe: Function;
  emit: (event: string | symbol, ...args: unknown[]) => boolean;
}

function isNodeReadable(body: unknown): body is NodeReadableLike {
  const b = body as Partial<NodeReadableLike> | null;
  return b !== null && typeof b === 'object' && typeof b.pipe === 'function' && typeof b.emit === 'function' && typeof (b as { getReader?: unknown }).getReader !== 'function';
}

/**
 * Meters a Node stream body in place, as its reader reads it: the stream's own events are observed as it emits them
 * ('data' only as a consumer reads; 'end'; 'error'; 'close' before the end when the consumer destroyed it). No listener
 * is added (one would start the flow, or take an 'error' the app must see), nothing is read ahead.
 */
function meterNodeBodyInPlace(source: NodeReadableLike, body: BodyReader, finish: Finish, done: () => boolean): void {
  const emit = source.emit;
  replaceOnInstance(source, 'emit', function meteredEmit(this: unknown, event: string | symbol, ...args: unknown[]) {
    if (!done()) {
      if (event === 'data') {
        const chunk = args[0];
        try {
          body.push(typeof chunk === 'string' ? new TextEncoder().encode(chunk) : (chunk as Uint8Array));
        } catch {
          // A chunk the agent cannot read is the caller's all the same.
        }
      } else if (event === 'end') finish((b) => b.end());
      else if (event === 'error') finish(() => undefined, body.facts.complete !== true, args[0]);
      else if (event === 'close') finish(() => undefined, body.facts.complete !== true);
    }
    return Reflect.apply(emit, this, [event, ...args]) as boolean;
  });
}

/** The SDK's body as its reader sees it, read through the agent; its reader is taken on the first read, not before. */
function meteredBody(source: ReadableStream<Uint8Array>, body: BodyReader, finish: Finish): ReadableStream<Uint8Array> {
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        reader ??= source.getReader();
        let chunk: Awaited<ReturnType<typeof reader.read>>;
        try {
          chunk = await reader.read();
        } catch (err) {
          finish(() => undefined, body.facts.complete !== true, err);
          controller.error(err);
          return;
        }
        if (chunk.done) {
          finish((b) => b.end());
          controller.close();
          return;
        }
        try {
          body.push(chunk.value);
        } catch {
          // A chunk the agent cannot read is the caller's all the same.
        }
        controller.enqueue(chunk.value);
      },
      cancel(reason) {
        finish(() => undefined, body.facts.complete !== true);
        return (reader ?? source).cancel(reason);
      },
    },
    { highWaterMark: 0 },
  );
}
