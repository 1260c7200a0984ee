import type { MeteredCall } from '../calls/call.js';
import { MeteredIterator, type StreamItemReader } from './stream.js';
import type { ReadableWritablePair, StreamPipeOptions } from 'node:stream/web';

/** A web ReadableStream (not only an instance of this realm's class: any object with its reading methods). */
export function isWebReadableStream(value: unknown): value is ReadableStream {
  if (value instanceof ReadableStream) return true;
  const stream = value as Partial<ReadableStream> | null;
  return typeof stream === 'object' && stream !== null && typeof stream.getReader === 'function' && typeof stream.pipeTo === 'function';
}

function define(target: object, key: PropertyKey, value: Function): void {
  Object.defineProperty(target, key, { value, writable: true, configurable: true, enumerable: false });
}

/**
 * Meters a web ReadableStream (Speakeasy's `EventStream`, which SDKs such as @mistralai/mistralai resolve a streaming
 * call to) in place, so the caller keeps the SDK's own object: every way of reading it (for await, `values()`,
 * `getReader()`, `tee()`, `pipeTo()`, `pipeThrough()`, `Readable.fromWeb`) reads its items through one MeteredIterator,
 * which records the call once (at the end, on cancel or break, or on error). The stream's methods are replaced on the
 * instance only.
 */
export function meterWebStreamInPlace(stream: ReadableStream, call: MeteredCall, readItem: StreamItemReader, hideInjected: boolean, requestId: string | undefined): void {
  const metered = (inner: AsyncIterator<unknown>): MeteredIterator<unknown> => new MeteredIterator(inner, call, readItem, hideInjected, requestId);
  const iterate = (stream as unknown as AsyncIterable<unknown>)[Symbol.asyncIterator];
  const values = (stream as { values?: (...args: unknown[]) => AsyncIterator<unknown> }).values;
  const getReader = stream.getReader;

  define(stream, Symbol.asyncIterator, function meteredAsyncIterator(this: unknown, ...args: unknown[]) {
    return metered(Reflect.apply(iterate, this, args) as AsyncIterator<unknown>);
  });
  if (typeof values === 'function') {
    define(stream, 'values', function meteredValues(this: unknown, ...args: unknown[]) {
      return metered(Reflect.apply(values, this, args));
    });
  }
  // A reader's reads (and tee, the pipes, Readable.fromWeb) may run inside the runtime, past any method of a reader
  // (Node 24's Readable.fromWeb does): they get a stream whose every item is pulled through the metered iterator. One
  // per stream, so that a reader released and taken again goes on where the last one stopped.
  let meteredStream: ReadableStream | undefined;
  const throughMeteredReader = (self: ReadableStream): ReadableStream => {
    if (meteredStream !== undefined) return meteredStream;
    const reader = Reflect.apply(getReader, self, []) as ReadableStreamDefaultReader<unknown>;
    const items = metered({
      next: () => reader.read() as Promise<IteratorResult<unknown>>,
      return: (reason?: unknown) => reader.cancel(reason).then(() => ({ done: true as const, value: undefined })),
    });
    meteredStream = new ReadableStream(
      {
        pull: (controller) =>
          items.next().then((result) => {
            if (result.done === true) controller.close();
            else controller.enqueue(result.value);
          }),
        cancel: (reason) => items.return(reason).then(() => undefined),
      },
      { highWaterMark: 0 },
    );
    return meteredStream;
  };
  define(stream, 'getReader', function meteredGetReader(this: ReadableStream, ...args: unknown[]) {
    if ((args[0] as { mode?: unknown } | undefined)?.mode === 'byob') return Reflect.apply(getReader, this, args);
    return throughMeteredReader(this).getReader();
  });
  define(stream, 'tee', function meteredTee(this: ReadableStream) {
    return throughMeteredReader(this).tee();
  });
  define(stream, 'pipeTo', function meteredPipeTo(this: ReadableStream, destination: WritableStream, options?: StreamPipeOptions) {
    let source: ReadableStream;
    try {
      source = throughMeteredReader(this);
    } catch (err) {
      return Promise.reject(err);
    }
    return source.pipeTo(destination, options);
  });
  define(stream, 'pipeThrough', function meteredPipeThrough(this: ReadableStream, transform: ReadableWritablePair<unknown, unknown>, options?: StreamPipeOptions) {
    return throughMeteredReader(this).pipeThrough(transform, options);
  });
}
