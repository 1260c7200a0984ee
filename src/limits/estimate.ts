// Imported, not read from globalThis where Node defines them as getters: this runs on every limited call.
import { Blob, Buffer } from 'node:buffer';

/**
 * What a request's input can cost at most, measured before the provider has counted anything. Text is measured in
 * UTF-8 bytes: no tokenizer of these providers makes a token shorter than one byte, whatever the script. Media parts
 * (images, audio, video, documents) are counted by kind, for a per-item ceiling; input the request cannot bound at all
 * (server-side conversation state, files of unknown size) marks the measure unbounded.
 */
export const MEDIA_KINDS = ['image', 'audio', 'video', 'document'] as const;
export type MediaKind = (typeof MEDIA_KINDS)[number];

/** A provider's reading of one object of its request params: a media part, input it cannot bound, or neither. */
export type InputPart = MediaKind | 'unbounded' | undefined;
export type InputClassifier = (part: Record<string, unknown>) => InputPart;

export interface InputMeasure {
  /** UTF-8 bytes of every key and string outside media parts. */
  bytes: number;
  /** UTF-16 code units of the same, for the average-based (lenient) estimate. */
  chars: number;
  /** Objects and arrays: each may cost a few tokens of framing (roles, separators). */
  containers: number;
  media: Record<MediaKind, number>;
  /** The request refers to input whose size it does not carry. */
  unbounded: boolean;
  /** Tool definitions: providers add a system prompt of their own for them. */
  tools: boolean;
  /** The request asks for prompt caching (`cache_control`): cache writes, dearer than input, may be billed. */
  cacheWrites: boolean;
}

/** Deeper than any real request; past it the measure gives up and calls the input unbounded. */
const MAX_DEPTH = 64;

/** Plain objects and arrays: the request as apps write it. Anything else may be an upload or a stream. */
function isPlainData(value: object): boolean {
  const prototype = Object.getPrototypeOf(value) as unknown;
  return prototype === Object.prototype || prototype === Array.prototype || prototype === null;
}

/** Binary data and streams: an SDK uploads them as they are (multipart), it does not serialise them as text. */
function isUpload(value: object): boolean {
  return ArrayBuffer.isView(value) || value instanceof ArrayBuffer || value instanceof Blob || Symbol.asyncIterator in value;
}

/**
 * What JSON.stringify writes in place of `value` under `key`: what its toJSON returns, a boxed primitive unboxed;
 * undefined where it writes nothing (a function, a symbol, undefined) and for an upload.
 */
function serialisedForm(value: unknown, key: string | number): unknown {
  if (typeof value === 'object' && value !== null) {
    const plain = isPlainData(value);
    if (!plain && isUpload(value)) return undefined;
    const toJSON = (value as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === 'function') value = toJSON.call(value, String(key)) as unknown;
    else if (plain) return value;
    if (value instanceof String || value instanceof Number || value instanceof Boolean) return value.valueOf();
  }
  return typeof value === 'function' || typeof value === 'symbol' ? undefined : value;
}

/**
 * Measures the request as its SDK serialises it (JSON.stringify), and at no greater cost: toJSON is honoured, and each
 * value is read once per place it appears. A request JSON.stringify cannot serialise (a cycle; a toJSON or getter that
 * throws) the SDK cannot send either: the measure stops where JSON.stringify would, calls the input unbounded, and never
 * throws.
 */
export function measureInput(params: unknown, classify: InputClassifier): InputMeasure {
  const measure: InputMeasure = { bytes: 0, chars: 0, containers: 0, media: { image: 0, audio: 0, video: 0, document: 0 }, unbounded: false, tools: false, cacheWrites: false };
  const ancestors: object[] = [];
  const text = (value: string): void => {
    measure.bytes += Buffer.byteLength(value, 'utf8');
    measure.chars += value.length;
  };
  /** Measures a value already in its serialised form. */
  const visit = (value: unknown, depth: number): void => {
    if (typeof value === 'string') return text(value);
    if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return text(String(value));
    if (value === null || typeof value !== 'object') return;
    if (depth > MAX_DEPTH) {
      measure.unbounded = true;
      return;
    }
    if (ancestors.includes(value)) throw new TypeError('the request is cyclic');
    ancestors.push(value);
    measure.containers++;
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) visit(serialisedForm(value[i], i), depth + 1);
    } else visitObject(value as Record<string, unknown>, depth);
    ancestors.pop();
  };
  const visitObject = (value: Record<string, unknown>, depth: number): void => {
    const part = classify(value);
    if (part === 'unbounded') measure.unbounded = true;
    else if (part !== undefined) {
      measure.media[part]++;
      return;
    }
    for (const key of Object.keys(value)) {
      const item = serialisedForm(value[key], key);
      if (item === undefined) continue;
      if (key === 'tools' && Array.isArray(item) && item.length > 0) measure.tools = true;
      else if (key === 'cache_control') measure.cacheWrites = true;
      text(key);
      visit(item, depth + 1);
    }
  };
  try {
    visit(serialisedForm(params, ''), 0);
  } catch {
    measure.unbounded = true;
  }
  return measure;
}

/** The media kind of a MIME type (Gemini's inlineData / fileData parts). */
export function mediaKindOf(mimeType: unknown): MediaKind {
  if (typeof mimeType !== 'string') return 'document';
  if (mimeType.startsWith('image/')) return 'image';
  if (mimeType.startsWith('audio/')) return 'audio';
  if (mimeType.startsWith('video/')) return 'video';
  return 'document';
}
